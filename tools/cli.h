// tools/cli.h: the shared shell of every npe command-line tool: flag parsing errors and npe::Error
// become one line "npe-x: error: ..." on stderr and exit status 2; anything else unexpected is
// reported the same way with exit status 1 (never an uncaught exception or a core dump). A tool
// that stopped cleanly on SIGINT/SIGTERM (npe::Interrupted) exits with status 130.
#pragma once

#include <cstdint>
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

// Whether `s` is valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
inline bool valid_utf8(const std::string& s) {
  static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};  // shortest form of each length
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n = 0;
    uint32_t cp = c;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c >> 5) == 0x6) {
      n = 1, cp = c & 0x1f;
    } else if ((c >> 4) == 0xe) {
      n = 2, cp = c & 0x0f;
    } else if ((c >> 3) == 0x1e) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (int k = 1; k <= n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += static_cast<size_t>(n) + 1;
  }
  return true;
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
  // Paths and names end up in JSON outputs (manifests, checkpoints' metadata), which hold text:
  // refused here, before anything is written, rather than half-way through a write.
  for (const cxxopts::KeyValue& kv : r.arguments())
    if (!valid_utf8(kv.value()))
      throw npe::Error(fmt::format("--{}: expected UTF-8 text (names and paths are recorded in JSON), found bytes "
                                   "that are not UTF-8",
                                   kv.key()));
  return r;
}

}  // namespace npe::tools
