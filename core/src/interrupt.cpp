#include "npe/core/interrupt.h"

#include <csignal>

namespace npe {
namespace {

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

}  // namespace npe
