// npe/core/cuda_check.h: the one check of a CUDA runtime call's status, for npe's .cu files.
#pragma once

#include <string>

#include <cuda_runtime.h>

#include "npe/core/error.h"

namespace npe {

// Throws npe::Error "CUDA error in <what>: <name> (<description>)" unless `e` is cudaSuccess.
inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}
// After a kernel launch: the launch's own error (bad configuration, too much shared memory).
inline void cuda_check_launch(const char* what) { cuda_check(cudaGetLastError(), what); }

}  // namespace npe
