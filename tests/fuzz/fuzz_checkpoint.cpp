// libFuzzer harness: parse_checkpoint (npe/model/checkpoint.h), the reader of npe-train's
// checkpoints used by npe-eval, npe-render, npe-sysid and --resume, on arbitrary bytes.
// Corpus: corpus/checkpoint/ (small classic, modern, np and lstm checkpoints).
#include "fuzz_util.h"
#include "npe/model/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return npe::fuzz::expect_npe_error([&] {
    npe::model::Checkpoint ck = npe::model::parse_checkpoint(npe::fuzz::bytes(data, size), "fuzz.pt", std::nullopt);
    // an accepted checkpoint must run: one forward pass on a 2-ball frame
    torch::NoGradGuard no_grad;
    const torch::Tensor prev = torch::rand({1, 2, 5}) + 0.5, cur = torch::rand({1, 2, 5}) + 0.5;
    const torch::Tensor v = ck.net->forward(prev, cur);
    if (v.sizes() != torch::IntArrayRef({1, 2, 2})) std::abort();
  });
}
