// npe/core/io.h: outputs that are never half-written (atomic replace), never replace what they
// must not and have one writer at a time; inputs read only from regular files of a checked size.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "npe/core/error.h"

namespace npe {

// Outputs (docs/outputs.md). An output path names a regular file or nothing yet; a symbolic link is
// followed to its final target, which is written (the link stays). An output whose target exists
// and is not a regular file (a device such as /dev/full, a FIFO, a directory, a socket, or a link to
// one, such as /proc/self/fd/1) is refused: npe replaces outputs atomically and never writes into
// such files. Every output is written to a temporary file beside its target and renamed over it
// only when complete.

// The file that output `path` names: `path`, or the final target of its symbolic links. Throws
// npe::Error naming `path` and what it is when the target exists and is not a regular file, or when
// the links loop.
std::filesystem::path output_target(const std::filesystem::path& path);

// TempOutput: the temporary file of one output, beside its target (same directory, so the rename
// cannot cross file systems), named ".<name>.tmp.<pid>.<64 random bits>" (unique across processes
// and PID namespaces; long names are shortened with a hash so that a legal output name always has a
// legal temporary name). It is created empty and exclusively, and holds an exclusive flock while
// this object lives: a temporary whose lock is free belongs to a writer that died (SIGKILL), and
// the next commit to the same output removes it. commit() fsyncs and renames it over the target.
// Destroyed uncommitted, it is removed and the target is left as it was. Creates missing parent
// directories; throws npe::Error naming `path` when it cannot be written.
class TempOutput {
 public:
  explicit TempOutput(std::filesystem::path path);
  TempOutput(const TempOutput&) = delete;
  TempOutput& operator=(const TempOutput&) = delete;
  ~TempOutput();
  const std::filesystem::path& path() const { return path_; }      // the output as named
  const std::filesystem::path& target() const { return target_; }  // the file it replaces
  const std::filesystem::path& temp() const { return temp_; }      // where to write meanwhile
  int fd() const { return fd_; }                                   // open for writing, locked
  void commit();

 private:
  std::filesystem::path path_, target_, temp_;
  int fd_ = -1;
};

// AtomicFile: a TempOutput written through a FILE*: commit() flushes, fsyncs and renames.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();
  std::FILE* get() const { return file_; }
  const std::filesystem::path& path() const { return out_.path(); }
  const std::filesystem::path& temp() const { return out_.temp(); }
  void commit();

 private:
  TempOutput out_;
  std::FILE* file_ = nullptr;
};

// Removes the temporary files of output `path` whose writers died (their flock is free).
void remove_stale_temps(const std::filesystem::path& path);

// OutputLock: one writer per output. An exclusive flock on ".<name>.lock" beside `path` (created if
// missing, removed on release), held while this object lives, so that a second process writing the
// same output is refused instead of mixing its files with the first's (flock works across PID
// namespaces on one host). Throws npe::Error naming `label` (the flag or field that named the
// output), the path and the process that holds it.
class OutputLock {
 public:
  OutputLock(const std::filesystem::path& path, const std::string& label);
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  ~OutputLock();

 private:
  std::filesystem::path lock_;
  int fd_ = -1;
};

// One file a command reads or writes, for check_distinct_files.
struct CommandFile {
  std::string label;  // what names it in errors: the tool's flag, or a role such as "dataset file"
  std::filesystem::path path;
  bool output = false;
};
// Throws npe::Error naming the label when an output is refused by output_target (a device, a
// FIFO, ...), and naming both labels and the file when an output is the same file as an input
// or as another output (the same path once links and ".." are resolved, or the same inode): a
// command must never replace what it reads, nor write one file twice.
void check_distinct_files(const std::vector<CommandFile>& files);

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

// Reads are bounded: only regular files are opened (a FIFO, a device such as /dev/zero or a
// directory is refused before it is opened, so no read blocks or grows without end), and a file's
// size is checked against what the reader expects before its bytes are read.

// Text files (JSON manifests, CSV, problems) larger than this are refused.
constexpr uint64_t kMaxTextBytes = uint64_t{256} << 20;

// InputFile: a regular file open for reading, with its size. Throws npe::Error naming `path` when
// it is missing, not a regular file, or unreadable.
class InputFile {
 public:
  explicit InputFile(const std::filesystem::path& path);
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();
  uint64_t size() const { return size_; }
  // Reads exactly `n` bytes at the current position; throws npe::Error naming the file (and
  // `what`) when fewer are there.
  void read(void* dst, size_t n, const char* what);

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  uint64_t size_ = 0;
};

// Reads a whole regular file of at most `max_bytes`; throws npe::Error naming `path` if it is
// missing, not a regular file, larger, or unreadable.
std::string read_file(const std::filesystem::path& path, uint64_t max_bytes = kMaxTextBytes);

}  // namespace npe
