// The modern NPE's hand-written step in a build without a CUDA compiler: no kernels (TrainStep
// keeps libtorch's step).
#include <stdexcept>

#include "modern_fused.h"

namespace npe::model::fused {

const char* modern_unsupported(const ModernShape&) { return "no CUDA kernels in this build"; }
int64_t modern_workspace_bytes(const ModernShape&) { return 0; }
void modern_prepare(const ModernShape&, const ModernModel&, void*) {
  throw std::runtime_error("modern fused step: built without a CUDA compiler");
}
void launch_modern_loss_grad(const Batch&, const int64_t*, const ModernShape&, const ModernModel&, void*, float*,
                             void*) {
  throw std::runtime_error("modern fused step: built without a CUDA compiler");
}

}  // namespace npe::model::fused
