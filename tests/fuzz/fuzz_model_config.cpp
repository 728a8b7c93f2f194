// libFuzzer harness: ModelConfig::from_json (npe/model/model.h), the model record of a checkpoint,
// then make_model on what it accepts. Input: JSON text. Corpus: corpus/model_config/.
#include "fuzz_util.h"
#include "npe/model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(npe::fuzz::bytes(data, size));
  } catch (const nlohmann::json::exception&) {
    return 0;  // JSON syntax is nlohmann's; the checkpoint reader turns its errors into npe::Error
  }
  return npe::fuzz::expect_npe_error([&] {
    const npe::model::ModelConfig c = npe::model::ModelConfig::from_json(j, "fuzz model config");
    // Accepted sizes are at most 2^30 parameters; build the model when it is small enough for
    // the fuzzer's memory limit, as a checkpoint reader would.
    const double params = 2.0 * (c.enc_blocks + c.dec_blocks) * double(c.msg_dim) * c.msg_dim * c.expansion;
    if (params < 1e6) npe::model::make_model(c);
  });
}
