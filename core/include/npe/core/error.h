// npe/core/error.h: the exceptions every npe library throws for user-facing failures.
#pragma once

#include <stdexcept>

namespace npe {

// Error: every user-facing failure (bad argument, bad file, unwritable path). The message names
// the file or field, what was expected and what was found; tools map a field to its flag, print
// the message and exit non-zero.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Interrupted: a long operation was asked to stop by SIGINT or SIGTERM (install_interrupt_handlers)
// and stopped cleanly; tools exit with status 130.
class Interrupted : public Error {
 public:
  using Error::Error;
};

}  // namespace npe
