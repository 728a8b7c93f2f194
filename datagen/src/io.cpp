#include "npe/datagen/io.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <unistd.h>

namespace npe {
namespace fs = std::filesystem;

namespace {
std::string errno_text() { return std::strerror(errno); }

fs::path temp_path_for(const fs::path& path) {
  return path.parent_path() /
         fmt::format(".{}.tmp.{}", path.filename().string(), static_cast<long>(::getpid()));
}

void create_parent(const fs::path& path) {
  const fs::path parent = path.parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec)
    throw Error(fmt::format("cannot create directory '{}' for output '{}': {}", parent.string(),
                            path.string(), ec.message()));
}
}  // namespace

void write_file_atomic(const fs::path& path, const std::function<void(std::FILE*)>& write) {
  create_parent(path);
  const fs::path tmp = temp_path_for(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f)
    throw Error(fmt::format("cannot write output '{}': {}", path.string(), errno_text()));
  try {
    write(f);
    if (std::fflush(f) != 0 || std::ferror(f))
      throw Error(fmt::format("error writing '{}': {}", path.string(), errno_text()));
    ::fsync(::fileno(f));
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    throw Error(fmt::format("error closing '{}': {}", path.string(), errno_text()));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    std::remove(tmp.c_str());
    throw Error(fmt::format("cannot move '{}' into place as '{}': {}", tmp.string(),
                            path.string(), why));
  }
}

void write_file_atomic(const fs::path& path, const std::string& bytes) {
  write_file_atomic(path, [&](std::FILE* f) {
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
      throw Error(fmt::format("error writing '{}': {}", path.string(), errno_text()));
  });
}

int resolve_threads(int threads) {
  return threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void check_writable(const fs::path& path) {
  create_parent(path);
  const fs::path probe = temp_path_for(path);
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (!f)
    throw Error(fmt::format("cannot write output '{}': {}", path.string(), errno_text()));
  std::fclose(f);
  std::remove(probe.c_str());
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(fmt::format("cannot open '{}': {}", path.string(),
                            fs::exists(path) ? errno_text() : "no such file"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("error reading '{}'", path.string()));
  return ss.str();
}

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
    fmt::print(stderr, "\r{} [{}{}] {:5.1f}% {}/{} {:.3g}/s eta {:.0f}s {}\x1b[K", label_,
               std::string(filled, '#'), std::string(kWidth - filled, '.'), 100 * frac, done,
               total_, rate, eta, extra);
  } else {
    fmt::print(stderr, "{}: {}/{} ({:.1f}%) {:.3g}/s {:.0f}s {}\n", label_, done, total_,
               100 * frac, rate, secs, extra);
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
