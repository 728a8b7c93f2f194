// Helpers shared by the tests: fresh temporary directories, random seeds, running tools.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace npe::test {

// A fresh, empty directory under the system temp dir, removed by the destructor.
struct TempDir {
  TempDir();
  ~TempDir();
  std::filesystem::path path;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// Seeds for randomised tests: each call returns a new seed derived from one base seed per test
// process, printed as "[seed] NPE_TEST_SEED=<base>". The base is fixed (CI) unless NPE_TEST_SEED
// names one or says "fresh" (scripts/seed_sweep.sh); rapidcheck properties use the same base.
uint64_t fresh_seed();

// A TCP port on 127.0.0.1 that no socket uses now: the kernel's choice for a bind to port 0,
// released before returning (another process could take it in between; a fixed or drawn port is
// far likelier to collide with one already in use).
int free_tcp_port();

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};
// FNV-1a, 64 bits, of `bytes`: the committed fingerprints of the determinism tests (a fixed,
// documented function, unlike std::hash, whose values the standard library may change).
uint64_t fnv1a64(const void* bytes, size_t size, uint64_t h = 0xcbf29ce484222325ULL);

// Runs a shell command, capturing its output.
CommandResult run_command(const std::string& command);

// Path of a built npe tool, e.g. tool("npe-datagen").
std::string tool(const std::string& name);

// The derivative at 0 of f(e) (f evaluated at an offset e of one input) by central differences
// at steps h, h/2 and h/4, Richardson-extrapolated (error O(h^4)). Returns nothing when the two
// extrapolations disagree by more than 1e-7 (1 + |value|): the function is not smooth within the
// steps (in the simulator: the force's second derivative jumps at the ends of a contact's onset
// ramp), and the entry is to be left out.
std::optional<double> richardson_derivative(const std::function<double(double)>& f, double h);

}  // namespace npe::test
