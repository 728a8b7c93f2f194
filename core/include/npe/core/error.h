// npe/core/error.h: the exceptions every npe library throws for user-facing failures.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace npe {

// Error: every user-facing failure (bad argument, bad file, unwritable path). The message names
// the file or field, what was expected and what was found; tools map a field to its flag, print
// the message and exit non-zero.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// FieldError: an Error about one field of a config or world struct (a library's input). what()
// reads field + rest, rest starting with ": " or " " ("radius: expected a positive radius in px,
// found -1"); a tool prints the flag that sets the field in its place (tools/cli.h), so libraries
// name fields and never flags.
class FieldError : public Error {
 public:
  FieldError(std::string field, const std::string& rest) : Error(field + rest), field_(std::move(field)), rest_(rest) {}
  const std::string& field() const { return field_; }
  const std::string& rest() const { return rest_; }

 private:
  std::string field_, rest_;
};

// Interrupted: a long operation was asked to stop by SIGINT or SIGTERM (install_interrupt_handlers)
// and stopped cleanly; tools exit with status 130.
class Interrupted : public Error {
 public:
  using Error::Error;
};

}  // namespace npe
