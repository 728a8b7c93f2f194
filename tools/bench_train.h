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

// npe-bench train-dp, started by a launcher (torchrun --no-python --nproc_per_node=K): the modern
// model at batch 2048 per GPU (graph + bf16, npe-train's CUDA default) on one GPU (process 0
// alone), then data parallel on all K; and the NCCL all-reduce of its gradient alone. Process 0
// prints the table (samples/s, step time, speedup over one GPU, all-reduce time) and writes
// `csv_path` and `json_path`. Returns the process exit code.
int bench_train_data_parallel(bool quick, const std::string& csv_path, const std::string& json_path);

// npe-bench control (bench_control.cpp): the herding task's environment frames per second,
// forward (random actions, no gradient) and forward + backward (windows of 16 steps
// back-propagated into the actions, as APG does), with 4,096 environments on CUDA and 256 on the
// CPU; prints a table and writes `csv_path` and `json_path`. Returns the process exit code.
int bench_control(bool do_cpu, bool do_cuda, bool quick, int repeats, const std::string& csv_path,
                  const std::string& json_path);

}  // namespace npe::tools
