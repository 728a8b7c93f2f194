// libFuzzer harness: parse_metrics_csv (npe/model/metrics_csv.h), read by npe-render and
// npe-train --resume. Input: CSV text. Corpus: corpus/metrics_csv/.
#include "fuzz_util.h"
#include "npe/model/metrics_csv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return npe::fuzz::expect_npe_error([&] {
    const auto rows = npe::model::parse_metrics_csv(npe::fuzz::bytes(data, size), "fuzz.csv");
    for (size_t i = 1; i < rows.size(); ++i)
      if (rows[i].step <= rows[i - 1].step) std::abort();
  });
}
