#include "npe/core/io.h"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>  // flock
#include <sys/stat.h>
#include <unistd.h>

namespace npe {
namespace fs = std::filesystem;

namespace {
// The system's reason, or a plain one when a call failed without setting errno (a short write).
// Callers set errno = 0 before a call that may fail without setting it (fwrite, fread, fflush).
std::string errno_text() { return errno != 0 ? std::strerror(errno) : "an I/O error (a short read or write)"; }

void create_parent(const fs::path& path) {
  const fs::path parent = path.parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec)
    throw Error(
        fmt::format("cannot create directory '{}' for output '{}': {}", parent.string(), path.string(), ec.message()));
}

// What a non-regular file is, in words.
std::string kind_of(fs::file_type t) {
  switch (t) {
    case fs::file_type::directory: return "a directory";
    case fs::file_type::character: return "a character device";
    case fs::file_type::block: return "a block device";
    case fs::file_type::fifo: return "a FIFO (named pipe)";
    case fs::file_type::socket: return "a socket";
    case fs::file_type::symlink: return "a symbolic link";
    default: return "not a regular file";
  }
}

// FNV-1a, for shortening long temporary names (not security).
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// ".<name>.tmp." (long names shortened so that the temporary name stays within NAME_MAX).
std::string temp_stem(const fs::path& target) {
  const std::string name = target.filename().string();
  constexpr size_t kMaxName = 180;  // + ".tmp." + pid + "." + 16 hex digits <= 255
  if (name.size() <= kMaxName) return "." + name + ".tmp.";
  return fmt::format(".{}~{:016x}.tmp.", name.substr(0, kMaxName - 17), fnv1a(name));
}

uint64_t random_u64() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

fs::path output_target(const fs::path& path) {
  std::error_code ec;
  const fs::file_status link = fs::symlink_status(path, ec);
  if (ec || link.type() == fs::file_type::not_found) return path;  // a new file (or a parent to create)
  if (link.type() == fs::file_type::regular) return path;
  // What the path finally names, as the kernel resolves it (also /proc's magic links, such as
  // /proc/self/fd/1 to a pipe): only a regular file or nothing yet may be replaced.
  const fs::file_status final = fs::status(path, ec);
  if (ec && final.type() != fs::file_type::not_found) {
    if (ec == std::errc::too_many_symbolic_link_levels)
      throw Error(fmt::format("output '{}': too many levels of symbolic links", path.string()));
    throw Error(fmt::format("output '{}': {}", path.string(), ec.message()));
  }
  if (final.type() != fs::file_type::regular && final.type() != fs::file_type::not_found) {
    std::error_code rl;
    const fs::path to = link.type() == fs::file_type::symlink ? fs::read_symlink(path, rl) : fs::path();
    throw Error(fmt::format("output '{}'{}: is {}; expected a regular file or a new path (npe replaces its outputs "
                            "atomically and never writes into devices, pipes or directories)",
                            path.string(), to.empty() ? "" : fmt::format(" (a link to '{}')", to.string()),
                            kind_of(final.type())));
  }
  // a link to a regular file or to a new path: the file at the end of the chain is replaced
  fs::path p = path;
  for (int hops = 0; fs::is_symlink(fs::symlink_status(p, ec)); ++hops) {
    if (hops >= 40) throw Error(fmt::format("output '{}': too many levels of symbolic links", path.string()));
    const fs::path to = fs::read_symlink(p, ec);
    if (ec) throw Error(fmt::format("output '{}': cannot read the link: {}", path.string(), ec.message()));
    p = to.is_absolute() ? to : p.parent_path() / to;
  }
  // The chain's end must be the file the kernel resolves (a /proc link to a deleted file reads
  // back as "/x (deleted)", a path that is not that file).
  struct stat named {
  }, end{};
  if (final.type() == fs::file_type::regular && (::stat(path.c_str(), &named) != 0 || ::stat(p.c_str(), &end) != 0 ||
                                                 named.st_dev != end.st_dev || named.st_ino != end.st_ino))
    throw Error(fmt::format("output '{}': its links lead to '{}', which is not the file it names (a deleted or "
                            "anonymous file); expected a regular file or a new path",
                            path.string(), p.string()));
  return p;
}

TempOutput::TempOutput(fs::path path) : path_(std::move(path)) {
  target_ = output_target(path_);
  create_parent(target_);
  // Created under a name the stale-temp sweep does not match, locked, and only then renamed to
  // the temporary name: a sweep never finds a live writer's file unlocked.
  const std::string stem = temp_stem(target_);
  fs::path fresh;
  for (int attempt = 0; fd_ < 0; ++attempt) {
    const std::string tail = fmt::format("{}.{:016x}", static_cast<long>(::getpid()), random_u64());
    fresh = target_.parent_path() / (stem.substr(0, stem.size() - 4) + "new." + tail);  // ".<name>.new.<tail>"
    temp_ = target_.parent_path() / (stem + tail);
    fd_ = ::open(fresh.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);  // 0666 & ~umask, as fopen
    if (fd_ < 0 && (errno != EEXIST || attempt > 8))
      throw Error(fmt::format("cannot write output '{}': {}", path_.string(), errno_text()));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0 || ::rename(fresh.c_str(), temp_.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(fresh.c_str());
    ::close(fd_);
    fd_ = -1;
    throw Error(fmt::format("cannot create the temporary file of output '{}': {}", path_.string(), why));
  }
}

TempOutput::~TempOutput() {
  if (fd_ < 0) return;
  ::unlink(temp_.c_str());  // while still locked: a stale-temp sweep never sees it half-removed
  ::close(fd_);
}

void TempOutput::commit() {
  if (::fsync(fd_) != 0) {
    const std::string why = errno_text();
    throw Error(fmt::format("error writing '{}': {}", path_.string(), why));
  }
  // the target may have become a device or a FIFO since we started: check again
  if (output_target(path_) != target_)
    throw Error(fmt::format("output '{}': its link changed while it was written; not replaced", path_.string()));
  if (std::rename(temp_.c_str(), target_.c_str()) != 0) {
    const std::string e = errno_text();
    throw Error(fmt::format("cannot move '{}' into place as '{}': {}", temp_.string(), target_.string(), e));
  }
  ::close(fd_);
  fd_ = -1;
  remove_stale_temps(target_);
}

void remove_stale_temps(const fs::path& path) {
  const std::string stem = temp_stem(path);
  // ".<name>.new.": a file between its creation and its lock (a writer killed there), removed once
  // it is a minute old; ".<name>.tmp.": removed as soon as its lock is free
  const std::string fresh = stem.substr(0, stem.size() - 4) + "new.";
  std::error_code ec;
  const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path f = it->path();
    const std::string name = f.filename().string();
    const bool temp = name.compare(0, stem.size(), stem) == 0;
    if (!temp && name.compare(0, fresh.size(), fresh) != 0) continue;
    std::error_code te;
    if (!temp && now - fs::last_write_time(f, te) < std::chrono::minutes(1)) continue;
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    struct stat st {};
    // a regular file whose lock is free: its writer is gone (a live writer holds LOCK_EX)
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0) ::unlink(f.c_str());
    ::close(fd);
  }
}

AtomicFile::AtomicFile(fs::path path) : out_(std::move(path)) {
  // fclose closes the copy; the lock stays with out_'s descriptor
  const int fd = ::fcntl(out_.fd(), F_DUPFD_CLOEXEC, 0);
  file_ = fd < 0 ? nullptr : ::fdopen(fd, "wb");
  if (!file_) {
    if (fd >= 0) ::close(fd);
    throw Error(fmt::format("cannot write output '{}': {}", out_.path().string(), errno_text()));
  }
}

AtomicFile::~AtomicFile() {
  if (file_) std::fclose(file_);
}

void AtomicFile::commit() {
  std::FILE* f = file_;
  file_ = nullptr;
  errno = 0;
  const bool written = std::fflush(f) == 0 && !std::ferror(f);
  const std::string why = errno_text();
  if (std::fclose(f) != 0 || !written) throw Error(fmt::format("error writing '{}': {}", path().string(), why));
  out_.commit();
}

OutputLock::OutputLock(const fs::path& path, const std::string& label) {
  const fs::path target = output_target(path);
  create_parent(target);
  lock_ = target.parent_path() / ("." + target.filename().string() + ".lock");
  for (;;) {
    fd_ = ::open(lock_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0)
      throw Error(fmt::format("{} '{}': cannot create the lock file '{}': {}", label, path.string(), lock_.string(),
                              errno_text()));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char buf[32] = {};
      const ssize_t n = ::pread(fd_, buf, sizeof(buf) - 1, 0);
      ::close(fd_);
      fd_ = -1;
      const std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("?");
      throw Error(fmt::format("{} '{}': another process (pid {}) is writing it (lock '{}'); wait for it to finish or "
                              "choose another output",
                              label, path.string(), holder.substr(0, holder.find('\n')), lock_.string()));
    }
    // The holder before us removes the lock file when it releases it: make sure ours is still the
    // file at that name, else lock the new one.
    struct stat held {
    }, now{};
    if (::fstat(fd_, &held) == 0 && ::stat(lock_.c_str(), &now) == 0 && held.st_ino == now.st_ino &&
        held.st_dev == now.st_dev)
      break;
    ::close(fd_);
    fd_ = -1;
  }
  const std::string pid = fmt::format("{}\n", static_cast<long>(::getpid()));
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // the pid is only for the message of a refused second writer
  }
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(lock_.c_str());  // while still holding it (see the constructor's check)
  ::close(fd_);
}

namespace {
// The identity of a file that exists (device, inode), following links.
bool same_file(const fs::path& a, const fs::path& b) {
  struct stat sa {
  }, sb{};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}
}  // namespace

void check_distinct_files(const std::vector<CommandFile>& files) {
  for (const CommandFile& f : files) {  // an output that is a device or a FIFO: refused before any work
    if (!f.output) continue;
    try {
      output_target(f.path);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", f.label, e.what()));
    }
  }
  std::vector<fs::path> resolved;
  for (const CommandFile& f : files) {
    std::error_code ec;
    fs::path r = fs::weakly_canonical(f.path, ec);
    resolved.push_back(ec ? fs::absolute(f.path).lexically_normal() : r);
  }
  for (size_t i = 0; i < files.size(); ++i)
    for (size_t j = 0; j < files.size(); ++j) {
      if (i == j || !files[i].output || (files[j].output && j < i)) continue;
      if (resolved[i] == resolved[j] || same_file(files[i].path, files[j].path))
        throw Error(fmt::format("{} '{}': is the same file as {} '{}'; expected an output that is {}", files[i].label,
                                files[i].path.string(), files[j].label, files[j].path.string(),
                                files[j].output ? "not another output of this command" : "not one of its inputs"));
    }
}

void write_file_atomic(const fs::path& path, const std::function<void(std::FILE*)>& write) {
  AtomicFile out(path);
  write(out.get());
  out.commit();
}

void write_file_atomic(const fs::path& path, const std::string& bytes) {
  write_file_atomic(path, [&](std::FILE* f) {
    errno = 0;
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
      throw Error(fmt::format("error writing '{}': {}", path.string(), errno_text()));
  });
}

void check_writable(const fs::path& path) {
  TempOutput probe(path);  // resolves and checks the target, creates the parent; removed unused
}

InputFile::InputFile(const fs::path& path) : path_(path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);  // follows links
  if (st.type() == fs::file_type::not_found) throw Error(fmt::format("cannot open '{}': no such file", path.string()));
  if (ec) throw Error(fmt::format("cannot open '{}': {}", path.string(), ec.message()));
  if (st.type() != fs::file_type::regular)
    throw Error(fmt::format("'{}': is {}; expected a regular file", path.string(), kind_of(st.type())));
  // O_NONBLOCK: were it swapped for a FIFO since the check, open must not wait for a writer
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat s {};
  if (fd < 0 || ::fstat(fd, &s) != 0 || !S_ISREG(s.st_mode)) {
    const std::string why = fd < 0 ? errno_text() : "not a regular file";
    if (fd >= 0) ::close(fd);
    throw Error(fmt::format("cannot open '{}': {}", path.string(), why));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  file_ = ::fdopen(fd, "rb");
  if (!file_) {
    ::close(fd);
    throw Error(fmt::format("cannot open '{}': {}", path.string(), errno_text()));
  }
  size_ = static_cast<uint64_t>(s.st_size);
}

InputFile::~InputFile() {
  if (file_) std::fclose(file_);
}

void InputFile::read(void* dst, size_t n, const char* what) {
  errno = 0;
  if (n && std::fread(dst, 1, n, file_) != n)
    throw Error(fmt::format("error reading '{}' ({}): {}", path_.string(), what,
                            std::ferror(file_) ? errno_text() : "the file ended early"));
}

std::string read_file(const fs::path& path, uint64_t max_bytes) {
  InputFile in(path);
  if (in.size() > max_bytes)
    throw Error(fmt::format("'{}': expected at most {} bytes, found {}", path.string(), max_bytes, in.size()));
  std::string bytes(static_cast<size_t>(in.size()), '\0');
  in.read(bytes.data(), bytes.size(), "the whole file");
  return bytes;
}

}  // namespace npe
