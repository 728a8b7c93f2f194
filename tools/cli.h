// tools/cli.h: the shared shell of every npe command-line tool: flag parsing errors and npe::Error
// become one line "npe-x: error: ..." on stderr and exit status 2; anything else unexpected is
// reported the same way with exit status 1 (never an uncaught exception or a core dump). A tool
// that stopped cleanly on SIGINT/SIGTERM (npe::Interrupted) exits with status 130.
#pragma once

#include <cstdio>
#include <exception>
#include <string>

#include <cxxopts.hpp>
#include <fmt/format.h>

#include "npe/core/error.h"

namespace npe::tools {

template <typename Fn>
int run_tool(const char* name, Fn&& body) {
  try {
    return body();
  } catch (const cxxopts::exceptions::exception& e) {
    fmt::print(stderr, "{}: error: {} (see {} --help)\n", name, e.what(), name);
    return 2;
  } catch (const npe::Interrupted& e) {
    fmt::print(stderr, "{}: {}\n", name, e.what());
    return 130;  // as a shell reports a process ended by SIGINT
  } catch (const npe::Error& e) {
    fmt::print(stderr, "{}: error: {}\n", name, e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: internal error: {}\n", name, e.what());
    return 1;
  }
}

// Parses argv; unknown flags and stray positional arguments are errors that name them.
inline cxxopts::ParseResult parse(cxxopts::Options& options, int argc, char** argv) {
  cxxopts::ParseResult r = options.parse(argc, argv);
  if (!r.unmatched().empty())
    throw npe::Error(fmt::format("unexpected argument '{}' (flags start with --)", r.unmatched().front()));
  return r;
}

}  // namespace npe::tools
