// libFuzzer harness: LaunchProblem::from_json_text (npe/gpu/optimize.h), npe-optimize's problem
// file, then the engine world it describes. Input: JSON text. Corpus: corpus/launch_problem/.
#include "fuzz_util.h"
#include "npe/rollout/optimize.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return npe::fuzz::expect_npe_error([&] {
    const npe::rollout::LaunchProblem p = npe::rollout::LaunchProblem::from_json_text(npe::fuzz::bytes(data, size),
                                                                                      "fuzz.json");
    if (p.shooter == p.target_ball || p.balls.size() < 2) std::abort();
  });
}
