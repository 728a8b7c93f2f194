// npe/datagen/io.h: errors, atomic file output and progress reporting shared by every npe tool.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>

namespace npe {

// Error: every user-facing failure (bad flag, bad file, unwritable path). The message names the
// file or flag, what was expected and what was found; tools print it and exit non-zero.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Interrupted: a tool was asked to stop by SIGINT or SIGTERM (install_interrupt_handlers) and
// stopped cleanly; tools exit with status 130.
class Interrupted : public Error {
 public:
  using Error::Error;
};

// Makes SIGINT and SIGTERM set a flag that long loops poll (interrupt_requested) so that they
// stop cleanly: npe-datagen leaves no partial file, npe-train writes a last checkpoint. A second
// signal ends the process at once (the default action). Only tools that poll install it.
void install_interrupt_handlers();
bool interrupt_requested();
// Throws Interrupted with `what` when a stop was requested.
void throw_if_interrupted(const std::string& what);

// AtomicFile: a file written in place of `path` only when committed. The data goes to a
// temporary file beside `path` (".<name>.tmp.<pid>", same directory, so the rename cannot cross
// file systems); commit() flushes, fsyncs and renames it over `path`. Destroyed uncommitted (an
// error, an exception), the temporary file is removed and `path` is left as it was. A process
// killed outright (SIGKILL) can leave a temporary file: the next commit to the same path removes
// those of processes no longer running. Creates missing parent directories; throws npe::Error
// naming `path` when it cannot be written.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();
  std::FILE* get() const { return file_; }
  const std::filesystem::path& path() const { return path_; }
  void commit();

 private:
  std::filesystem::path path_, tmp_;
  std::FILE* file_ = nullptr;
};

// The temporary name AtomicFile uses for `path` in this process.
std::filesystem::path temp_path_for(const std::filesystem::path& path);
// Removes temporary files of `path` left by processes no longer running (a SIGKILL mid-write).
void remove_stale_temps(const std::filesystem::path& path);

// Writes a file atomically (an AtomicFile committed when `write` returns): `write` fills a temporary file beside `path` (same directory, so the
// rename cannot cross file systems), which is flushed and renamed over `path` only when `write`
// returns normally. On any error the temporary file is removed and `path` is left as it was.
// Creates missing parent directories. Throws npe::Error naming `path` when it cannot be written.
void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(std::FILE*)>& write);

// Convenience overload for a whole in-memory buffer.
void write_file_atomic(const std::filesystem::path& path, const std::string& bytes);

// Checks, before any long computation, that a file can be created at `path` (the parent
// directory is created if missing, and a probe file is written and removed there).
// Throws npe::Error naming `path` and the system's reason otherwise.
void check_writable(const std::filesystem::path& path);

// A --threads value resolved: `threads` when positive, otherwise the hardware threads (at least 1).
int resolve_threads(int threads);

// Reads a whole file; throws npe::Error naming `path` if it is missing or unreadable.
std::string read_file(const std::filesystem::path& path);

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
