// tests/fuzz/fuzz_util.h: what every npe libFuzzer harness checks. A reader given arbitrary bytes
// must either accept them or throw npe::Error (one clear message naming the file); any other
// exception (a library's text leaking out), a crash, a sanitizer report, a hang (-timeout) or an
// allocation beyond -rss_limit_mb is a finding. scripts/fuzz.sh builds and runs the harnesses.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <typeinfo>

#include <sys/mman.h>
#include <unistd.h>

#include "npe/core/error.h"

namespace npe::fuzz {

inline std::string bytes(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// The bytes as a file (an anonymous in-memory one, memfd_create), so that a harness reads them
// through the bounded file readers (npe/core/io.h InputFile) as the tools do. path() names it.
class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size) : fd_(::memfd_create("npe-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0 || (size && ::write(fd_, data, size) != static_cast<ssize_t>(size))) std::abort();
  }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  ~MemFile() { ::close(fd_); }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

template <typename F>
int expect_npe_error(F&& read) {
  try {
    read();
  } catch (const npe::Error&) {
    // the expected answer to bad input
  } catch (const std::exception& e) {
    std::fprintf(stderr, "npe fuzz finding: %s escaped instead of npe::Error: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
  return 0;
}

}  // namespace npe::fuzz
