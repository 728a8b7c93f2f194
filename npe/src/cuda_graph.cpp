#include "cuda_graph.h"

#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace npe::model {

struct StepGraph::Impl {
  c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
  at::cuda::CUDAGraph graph;
  // Runs `f` on the side stream, ordered after the current stream's work and before its later work.
  void on_side(const std::function<void()>& f) {
    const c10::cuda::CUDAStream cur = c10::cuda::getCurrentCUDAStream();
    at::cuda::CUDAEvent before, after;
    before.record(cur);
    before.block(side);
    {
      c10::cuda::CUDAStreamGuard guard(side);
      f();
    }
    after.record(side);
    after.block(cur);
  }
};

void* current_cuda_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

bool StepGraph::available() { return true; }
StepGraph::StepGraph() : impl_(std::make_unique<Impl>()) {}
StepGraph::~StepGraph() = default;

void StepGraph::warm(const std::function<void()>& body) { impl_->on_side(body); }

void StepGraph::capture(const std::function<void()>& body) {
  impl_->on_side([&] {
    impl_->graph.capture_begin();
    body();
    impl_->graph.capture_end();
  });
}

void StepGraph::replay() { impl_->graph.replay(); }

}  // namespace npe::model
