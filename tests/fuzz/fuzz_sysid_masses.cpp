// libFuzzer harness: parse_identified_masses (npe/gpu/sysid.h), npe-eval --sim_masses's reader of
// npe-sysid output, for 3 scenes of 4 balls. Input: JSON text. Corpus: corpus/sysid_masses/.
#include <cmath>

#include "fuzz_util.h"
#include "npe/rollout/sysid.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return npe::fuzz::expect_npe_error([&] {
    const auto m = npe::rollout::parse_identified_masses(npe::fuzz::bytes(data, size), "fuzz.json", "--sim_masses", 3,
                                                         4);
    if (m.size() != 3) std::abort();
    for (const auto& row : m)
      for (double v : row)
        if (row.size() != 4 || !(v > 0) || !std::isfinite(v)) std::abort();
  });
}
