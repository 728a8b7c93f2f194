// Helpers shared by the tests: fresh temporary directories, random seeds, running tools.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace npe::test {

// A fresh, empty directory under the system temp dir, removed by the destructor.
struct TempDir {
  TempDir();
  ~TempDir();
  std::filesystem::path path;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// Seeds that differ from run to run: each call returns a new seed derived from one base seed
// per test process, printed as "[seed] NPE_TEST_SEED=<base>" so that a failure can be replayed.
uint64_t fresh_seed();

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};
// Runs a shell command, capturing its output.
CommandResult run_command(const std::string& command);

// Path of a built npe tool, e.g. tool("npe-datagen").
std::string tool(const std::string& name);

}  // namespace npe::test
