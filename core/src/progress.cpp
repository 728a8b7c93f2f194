#include "npe/core/progress.h"

#include <cstdio>

#include <fmt/format.h>
#include <unistd.h>

namespace npe {

Progress::Progress(std::string label, int64_t total, double plain_every)
    : label_(std::move(label)),
      total_(total),
      plain_every_(plain_every),
      tty_(::isatty(::fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, const std::string& extra) {
  const auto now = std::chrono::steady_clock::now();
  const double since_last = std::chrono::duration<double>(now - last_).count();
  const bool last = done >= total_;
  if (!last && since_last < (tty_ ? 0.1 : plain_every_)) return;
  const double secs = seconds();
  const double rate = secs > 0 ? done / secs : 0.0;
  const double frac = total_ > 0 ? static_cast<double>(done) / total_ : 1.0;
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    const double eta = rate > 0 ? (total_ - done) / rate : 0.0;
    fmt::print(stderr, "\r{} [{}{}] {:5.1f}% {}/{} {:.3g}/s eta {:.0f}s {}\x1b[K", label_, std::string(filled, '#'),
               std::string(kWidth - filled, '.'), 100 * frac, done, total_, rate, eta, extra);
  } else {
    fmt::print(stderr, "{}: {}/{} ({:.1f}%) {:.3g}/s {:.0f}s {}\n", label_, done, total_, 100 * frac, rate, secs,
               extra);
  }
  std::fflush(stderr);
  last_ = now;
  last_done_ = done;
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_) fmt::print(stderr, "\n");
}

Progress::~Progress() { finish(); }

}  // namespace npe
