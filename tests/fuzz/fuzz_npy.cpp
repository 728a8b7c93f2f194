// libFuzzer harness: parse_npy_f32 (npe/core/npy.h), the reader of every dataset array, on
// arbitrary bytes. Corpus: corpus/npy/ (.npy files of npe datasets and of NumPy).
#include "fuzz_util.h"
#include "npe/core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return npe::fuzz::expect_npe_error([&] {
    const npe::NpyArray a = npe::parse_npy_f32(npe::fuzz::bytes(data, size), "fuzz.npy");
    size_t count = 1;
    for (int64_t d : a.shape) count *= static_cast<size_t>(d);
    if (count != a.data.size()) std::abort();  // the shape must describe the data read
  });
}
