// Private to npe_model: a callable captured as a CUDA graph (libtorch's at::cuda::CUDAGraph) on
// a side stream, then replayed on the current stream. Built from cuda_graph.cpp when npe has a
// CUDA compiler, otherwise from cuda_graph_stub.cpp (available() is false, the rest throws).
#pragma once

#include <functional>
#include <memory>

namespace npe::model {

// The current CUDA stream of libtorch (a cudaStream_t), where npe's own kernels are launched so
// that they are ordered with libtorch's and captured with them; nullptr without CUDA.
void* current_cuda_stream();

class StepGraph {
 public:
  static bool available();
  StepGraph();
  ~StepGraph();
  // One eager call of `body` on the side stream (warm-up: lazy initialisation of cuBLAS handles,
  // autograd's stream bookkeeping and the allocator happens outside the capture).
  void warm(const std::function<void()>& body);
  // Captures one call of `body` (nothing runs); replay() then runs it.
  void capture(const std::function<void()>& body);
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace npe::model
