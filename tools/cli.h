// tools/cli.h: the shared shell of every npe command-line tool: flag parsing errors and npe::Error
// become one line "npe-x: error: ..." on stderr and exit status 2; anything else unexpected is
// reported the same way with exit status 1 (never an uncaught exception or a core dump). A tool
// that stopped cleanly on SIGINT/SIGTERM (npe::Interrupted) exits with status 130.
#pragma once

#include <cstdio>
#include <exception>
#include <map>
#include <set>
#include <string>

#include <cxxopts.hpp>
#include <fmt/format.h>

#include "npe/core/error.h"

namespace npe::tools {

// The running tool's flags, registered by parse(): libraries name fields (npe::FieldError), and a
// field is shown as the flag that sets it: the flag of the same name, or the tool's rename.
struct FieldFlags {
  std::set<std::string> flags;                 // long names of the tool's flags
  std::map<std::string, std::string> renames;  // field -> flag where they differ (frame_dt -> dt)
};
inline FieldFlags& field_flags() {
  static FieldFlags f;
  return f;
}

// "--flag rest" for an error about a field the tool has a flag for; otherwise the library's text.
inline std::string flag_message(const npe::FieldError& e) {
  const FieldFlags& f = field_flags();
  const auto r = f.renames.find(e.field());
  const std::string flag = r == f.renames.end() ? e.field() : r->second;
  return f.flags.count(flag) ? "--" + flag + e.rest() : e.what();
}

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
  } catch (const npe::FieldError& e) {
    fmt::print(stderr, "{}: error: {}\n", name, flag_message(e));
    return 2;
  } catch (const npe::Error& e) {
    fmt::print(stderr, "{}: error: {}\n", name, e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: internal error: {}\n", name, e.what());
    return 1;
  }
}

// Parses argv; unknown flags and stray positional arguments are errors that name them. Registers
// the flags, with `renames` (field -> flag), for the errors libraries raise about fields.
inline cxxopts::ParseResult parse(cxxopts::Options& options, int argc, char** argv,
                                  std::map<std::string, std::string> renames = {}) {
  FieldFlags& f = field_flags();
  for (const std::string& g : options.groups())
    for (const cxxopts::HelpOptionDetails& d : options.group_help(g).options) f.flags.insert(d.l.begin(), d.l.end());
  f.renames = std::move(renames);
  cxxopts::ParseResult r = options.parse(argc, argv);
  if (!r.unmatched().empty())
    throw npe::Error(fmt::format("unexpected argument '{}' (flags start with --)", r.unmatched().front()));
  return r;
}

}  // namespace npe::tools
