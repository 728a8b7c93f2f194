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

#include "npe/core/error.h"

namespace npe::fuzz {

inline std::string bytes(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

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
