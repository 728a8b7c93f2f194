// npe/core/progress.h: progress reporting on stderr.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace npe {

// Progress: a progress bar on a terminal (redrawn at most 10 times a second), a plain periodic
// line (every `plain_every` seconds) when stderr is not a terminal. Writes to stderr.
class Progress {
 public:
  Progress(std::string label, int64_t total, double plain_every = 10.0);
  // `done` items so far; `extra` is appended (e.g. "loss 1.2e-3").
  void update(int64_t done, const std::string& extra = "");
  // Ends the bar with a newline (idempotent).
  void finish();
  ~Progress();
  double seconds() const;

 private:
  std::string label_;
  int64_t total_;
  double plain_every_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
  int64_t last_done_ = 0;
};

}  // namespace npe
