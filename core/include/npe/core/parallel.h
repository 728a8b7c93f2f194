// npe/core/parallel.h: thread counts and a blocked parallel loop over std::thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace npe {

// More threads than this are refused: beyond it a count is a typo, not a machine.
constexpr int kMaxThreads = 1024;

// A thread count resolved: `threads` when positive, otherwise the hardware threads (at least 1).
// Throws npe::FieldError (field "threads") for a negative count or one above kMaxThreads.
int resolve_threads(int threads);

// Runs fn(begin, end) over [0, n) in contiguous blocks on `threads` threads; rethrows the first
// exception.
template <class Fn>
void parallel_for(int64_t n, int threads, const Fn& fn) {
  int t = resolve_threads(threads);
  t = static_cast<int>(std::min<int64_t>(t, std::max<int64_t>(1, n)));
  if (t == 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::exception_ptr failure;
  std::mutex mu;
  std::vector<std::thread> pool;
  for (int k = 0; k < t; ++k) {
    const int64_t b = n * k / t, e = n * (k + 1) / t;
    pool.emplace_back([&, b, e] {
      try {
        fn(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failure) failure = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace npe
