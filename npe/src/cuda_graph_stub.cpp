// StepGraph in a build without a CUDA compiler: no graphs (TrainStep runs its step eagerly).
#include "cuda_graph.h"

#include "npe/core/error.h"

namespace npe::model {

void* current_cuda_stream() { return nullptr; }

struct StepGraph::Impl {};

bool StepGraph::available() { return false; }
StepGraph::StepGraph() { throw Error("CUDA graphs: npe was built without a CUDA compiler"); }
StepGraph::~StepGraph() = default;
void StepGraph::warm(const std::function<void()>&) {}
void StepGraph::capture(const std::function<void()>&) {}
void StepGraph::replay() {}

}  // namespace npe::model
