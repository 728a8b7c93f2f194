#include "test_util.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <ftw.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

namespace npe::test {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::random_device rd;
  path = fs::temp_directory_path() / ("npe-test-" + std::to_string(rd()) + std::to_string(rd()));
  fs::create_directories(path);
}

// Removes the tree with POSIX nftw, not std::filesystem::remove_all: libtorch.so exports its own
// std::filesystem::remove_all, which crashes when it wins symbol lookup (seen with g++ 12 and 13).
TempDir::~TempDir() {
  ::nftw(path.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
         FTW_DEPTH | FTW_PHYS);
}

uint64_t fresh_seed() {
  if (const char* s = std::getenv("NPE_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  const uint64_t seed = (static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}();
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::fprintf(stderr, "[seed] NPE_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  return seed;
}

CommandResult run_command(const std::string& command) {
  CommandResult r{-1, ""};
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string tool(const std::string& name) { return std::string(NPE_TEST_BIN_DIR) + "/" + name; }

}  // namespace npe::test
