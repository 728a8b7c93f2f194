#include "npe/datagen/io.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <signal.h>
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
    throw Error(fmt::format("cannot create directory '{}' for output '{}': {}", parent.string(),
                            path.string(), ec.message()));
}

volatile std::sig_atomic_t g_interrupt = 0;

extern "C" void on_interrupt(int sig) {
  g_interrupt = 1;
  std::signal(sig, SIG_DFL);  // a second signal ends the process at once
}
}  // namespace

void install_interrupt_handlers() {
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
}

bool interrupt_requested() { return g_interrupt != 0; }

void throw_if_interrupted(const std::string& what) {
  if (interrupt_requested()) throw Interrupted(what);
}

fs::path temp_path_for(const fs::path& path) {
  return path.parent_path() /
         fmt::format(".{}.tmp.{}", path.filename().string(), static_cast<long>(::getpid()));
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
