// npe/core/interrupt.h: clean stops on SIGINT and SIGTERM.
#pragma once

#include <string>

#include "npe/core/error.h"

namespace npe {

// Makes SIGINT and SIGTERM set a flag that long loops poll (interrupt_requested) so that they
// stop cleanly: npe-datagen leaves no partial file, npe-train writes a last checkpoint. A second
// signal ends the process at once (the default action). Only tools that poll install it.
void install_interrupt_handlers();
bool interrupt_requested();
// Throws Interrupted with `what` when a stop was requested.
void throw_if_interrupted(const std::string& what);

}  // namespace npe
