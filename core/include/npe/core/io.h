// npe/core/io.h: file output that is never half-written (atomic replace), and whole-file reads.
#pragma once

#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include "npe/core/error.h"

namespace npe {

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
void write_file_atomic(const std::filesystem::path& path, const std::function<void(std::FILE*)>& write);

// Convenience overload for a whole in-memory buffer.
void write_file_atomic(const std::filesystem::path& path, const std::string& bytes);

// Checks, before any long computation, that a file can be created at `path` (the parent
// directory is created if missing, and a probe file is written and removed there).
// Throws npe::Error naming `path` and the system's reason otherwise.
void check_writable(const std::filesystem::path& path);

// Reads a whole file; throws npe::Error naming `path` if it is missing or unreadable.
std::string read_file(const std::filesystem::path& path);

}  // namespace npe
