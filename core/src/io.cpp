#include "npe/core/io.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <signal.h>  // kill(pid, 0): is a temporary file's writer alive
#include <unistd.h>

namespace npe {
namespace fs = std::filesystem;

namespace {
std::string errno_text() { return std::strerror(errno); }

void create_parent(const fs::path& path) {
  const fs::path parent = path.parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec)
    throw Error(
        fmt::format("cannot create directory '{}' for output '{}': {}", parent.string(), path.string(), ec.message()));
}

}  // namespace

fs::path temp_path_for(const fs::path& path) {
  return path.parent_path() / fmt::format(".{}.tmp.{}", path.filename().string(), static_cast<long>(::getpid()));
}

void remove_stale_temps(const fs::path& path) {
  const std::string stem = fmt::format(".{}.tmp.", path.filename().string());
  std::error_code ec;
  const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, stem.size(), stem) != 0) continue;
    char* tail = nullptr;
    const long pid = std::strtol(name.c_str() + stem.size(), &tail, 10);
    if (pid <= 0 || *tail != '\0' || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // its writer still runs
    std::error_code rm;
    fs::remove(it->path(), rm);
  }
}

AtomicFile::AtomicFile(fs::path path) : path_(std::move(path)) {
  create_parent(path_);
  tmp_ = temp_path_for(path_);
  file_ = std::fopen(tmp_.c_str(), "wb");
  if (!file_) throw Error(fmt::format("cannot write output '{}': {}", path_.string(), errno_text()));
}

AtomicFile::~AtomicFile() {
  if (!file_) return;
  std::fclose(file_);
  std::remove(tmp_.c_str());
}

void AtomicFile::commit() {
  std::FILE* f = file_;
  file_ = nullptr;
  const bool written = std::fflush(f) == 0 && !std::ferror(f) && ::fsync(::fileno(f)) == 0;
  const std::string why = errno_text();
  if (std::fclose(f) != 0 || !written) {
    std::remove(tmp_.c_str());
    throw Error(fmt::format("error writing '{}': {}", path_.string(), why));
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const std::string e = errno_text();
    std::remove(tmp_.c_str());
    throw Error(fmt::format("cannot move '{}' into place as '{}': {}", tmp_.string(), path_.string(), e));
  }
  remove_stale_temps(path_);
}

void write_file_atomic(const fs::path& path, const std::function<void(std::FILE*)>& write) {
  AtomicFile out(path);
  write(out.get());
  out.commit();
}

void write_file_atomic(const fs::path& path, const std::string& bytes) {
  write_file_atomic(path, [&](std::FILE* f) {
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
      throw Error(fmt::format("error writing '{}': {}", path.string(), errno_text()));
  });
}

void check_writable(const fs::path& path) {
  create_parent(path);
  const fs::path probe = temp_path_for(path);
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (!f) throw Error(fmt::format("cannot write output '{}': {}", path.string(), errno_text()));
  std::fclose(f);
  std::remove(probe.c_str());
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(fmt::format("cannot open '{}': {}", path.string(), fs::exists(path) ? errno_text() : "no such file"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("error reading '{}'", path.string()));
  return ss.str();
}

}  // namespace npe
