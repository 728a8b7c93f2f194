// The classic NPE's hand-written step in a build without a CUDA compiler: no kernels (TrainStep
// keeps libtorch's step); the CPU reference (classic_fused.cpp) is always built.
#include <stdexcept>

#include "classic_fused.h"

namespace npe::model::fused {

bool device_limits(int*, int64_t*) { return false; }
void prepare_loss_grad(int, int) { throw std::runtime_error("classic fused step: built without a CUDA compiler"); }
void launch_loss_grad(const Batch&, const StepState&, int, void*) {
  throw std::runtime_error("classic fused step: built without a CUDA compiler");
}
void launch_step(const Batch&, const UpdateConfig&, const StepState&, int, void*) {
  throw std::runtime_error("classic fused step: built without a CUDA compiler");
}
void launch_update(const UpdateConfig&, const StepState&, void*) {
  throw std::runtime_error("classic fused step: built without a CUDA compiler");
}

}  // namespace npe::model::fused
