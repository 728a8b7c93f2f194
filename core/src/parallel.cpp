#include "npe/core/parallel.h"

#include <fmt/format.h>

#include "npe/core/error.h"

namespace npe {

int resolve_threads(int threads) {
  if (threads < 0 || threads > kMaxThreads)
    throw FieldError("threads", fmt::format(": expected 0 (all cores) to {} threads, found {}", kMaxThreads, threads));
  return threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace npe
