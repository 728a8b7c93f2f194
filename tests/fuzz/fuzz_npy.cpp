// libFuzzer harness: parse_npy_f32 and read_npy_f32 (npe/core/npy.h), the readers of every dataset
// array, on arbitrary bytes (as a file through the bounded reader too; both must agree). Corpus: corpus/npy/ (.npy files of npe datasets and of NumPy).
#include "fuzz_util.h"
#include "npe/core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto check = [](const npe::NpyArray& a) {
    size_t count = 1;
    for (int64_t d : a.shape) count *= static_cast<size_t>(d);
    if (count != a.data.size()) std::abort();  // the shape must describe the data read
  };
  bool parsed = false, read = true;
  npe::fuzz::expect_npe_error([&] {
    check(npe::parse_npy_f32(npe::fuzz::bytes(data, size), "fuzz.npy"));
    parsed = true;
  });
  // the same bytes as a file, through the bounded reader the tools use: the same verdict
  const npe::fuzz::MemFile file(data, size);
  npe::fuzz::expect_npe_error([&] {
    read = false;
    check(npe::read_npy_f32(file.path()));
    read = true;
  });
  if (parsed != read) std::abort();  // the file reader and the bytes reader must agree
  return 0;
}
