// tools/bench_train.h: npe-bench train, the training step's throughput (in its own translation
// unit, the only one of npe-bench that includes libtorch).
#pragma once

#include <string>

namespace npe::tools {

// Times npe-train's step (TrainStep: window gather, forward, loss, backward, clipping, optimizer)
// for the classic model at batch 50 and the modern one at batch 2048, on the CPU and/or CUDA;
// prints a table and writes `csv_path` and `json_path`. Returns the process exit code.
int bench_train(bool do_cpu, bool do_cuda, bool quick, int threads, const std::string& csv_path,
                const std::string& json_path);

}  // namespace npe::tools
