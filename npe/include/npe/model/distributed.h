// npe/model/distributed.h: data-parallel training across processes, one per GPU, on one or
// several machines.
//
// The processes are started by a standard launcher and find each other through its environment:
//   torchrun --no-python --nproc_per_node=K npe-train ...      RANK, LOCAL_RANK, WORLD_SIZE,
//                                                              MASTER_ADDR, MASTER_PORT
//   srun ... npe-train ...   (Slurm)                           SLURM_PROCID, SLURM_LOCALID,
//                                                              SLURM_NTASKS (+ MASTER_ADDR/PORT)
// Rendezvous goes through libtorch's c10d::TCPStore at MASTER_ADDR:MASTER_PORT, hosted by rank 0,
// or by torchrun's agent when it says so (TORCHELASTIC_USE_AGENT_STORE=True: every process is a
// client and keys live under /worker/attempt_<TORCHELASTIC_RESTART_COUNT>, as
// torch.distributed's env:// initialisation does). Over the store rank 0 hands out an NCCL unique
// id and every process joins one NCCL communicator on GPU LOCAL_RANK; the collectives are NCCL's,
// enqueued on the current CUDA stream, so that they are ordered with the training step's kernels
// and can be captured in its CUDA graph.
//
// NCCL is the only all-reduce backend: libtorch's Gloo backend cannot be built against the torch
// wheel, which ships no Gloo headers. A build without CUDA, or a torch without NCCL, refuses a
// launch of more than one process (npe::Error naming WORLD_SIZE), and a group of one process
// (no launcher variables) needs neither store nor NCCL: every collective is the identity.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <torch/torch.h>

namespace npe::model {

// Where this process stands in the launch, from the launcher's environment.
struct DistEnv {
  int rank = 0, local_rank = 0, world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool agent_store = false;       // torchrun's agent hosts the store (TORCHELASTIC_USE_AGENT_STORE)
  std::string store_prefix;       // key prefix under the agent's store ("/worker/attempt_<n>")
  std::string launcher = "none";  // "none" | "env" (RANK/WORLD_SIZE, e.g. torchrun) | "slurm"
  bool distributed() const { return world_size > 1; }
};

// Reads the launch from `getenv` (a lookup returning nullptr for unset variables): RANK and
// WORLD_SIZE (with LOCAL_RANK, default RANK) when both are set; otherwise Slurm's SLURM_PROCID,
// SLURM_NTASKS and SLURM_LOCALID when SLURM_NTASKS > 1 (an srun step of several tasks), then
// MASTER_ADDR must be set; otherwise one process. MASTER_PORT defaults to 29500. Throws
// npe::Error naming the variable, what was expected and what was found (a non-integer, RANK
// outside [0, WORLD_SIZE), LOCAL_RANK < 0, a port outside [1, 65535], one of RANK/WORLD_SIZE
// without the other).
DistEnv dist_env_from(const std::function<const char*(const char*)>& getenv);
DistEnv dist_env_from_environment();  // dist_env_from(std::getenv)

// The CUDA device of this process: LOCAL_RANK modulo the devices it sees, so that a launcher
// that shows each process all of a machine's GPUs (torchrun; srun without GPU binding) and one
// that shows each process only its own (srun --gpus-per-task=1: LOCAL_RANK 3 sees one device)
// both give each process a GPU of its own.
torch::Device local_cuda_device(const DistEnv& env);

enum class Reduce { Sum, Avg, Max, Min };

// The processes of one training run. A group of one is the identity; a group of several is an
// NCCL communicator plus the c10d store that set it up (see the file comment).
class ProcessGroup {
 public:
  ProcessGroup();  // a group of one
  // Joins the group `env` describes on CUDA device local_cuda_device(env) (made the current device).
  // Blocks until every process has joined or `timeout` passed. Throws npe::Error when the group
  // has several processes and this build has no NCCL or the device is not CUDA, when the process
  // sees no GPU, and when the rendezvous or NCCL fails (with NCCL's message).
  ProcessGroup(const DistEnv& env, torch::Device device, std::chrono::milliseconds timeout = std::chrono::minutes(30));
  // Joins the rendezvous store only, on any device: agree() works, the collectives throw
  // npe::Error. For tests of the rendezvous (on machines without GPUs) and processes that only
  // need to agree.
  static ProcessGroup store_only(const DistEnv& env, std::chrono::milliseconds timeout = std::chrono::minutes(30));
  ~ProcessGroup();  // a clean NCCL destroy, or an abort while an exception unwinds
  ProcessGroup(ProcessGroup&&) noexcept;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int size() const;
  bool is_root() const { return rank() == 0; }
  // True when this build can run groups of several processes (compiled with NCCL).
  static bool nccl_available();

  // In place, over every process: `t` is a contiguous CUDA tensor (float32, float64, int64, or
  // bfloat16) on this process's device; enqueued on the current CUDA stream (nothing waits; a
  // CUDA graph being captured records it). Every process must make the same calls in the same
  // order with tensors of the same shape and dtype.
  void all_reduce(const torch::Tensor& t, Reduce op);
  void broadcast(const torch::Tensor& t, int root = 0);
  // True when `local` is true on any process (a collective; waits for the device).
  bool any(bool local);

  // Runs `work` on every process, then agrees through the store: when it threw npe::Error (or
  // std::exception) on any process, it throws npe::Error on every process, with this process's
  // own message or "rank R: <its message>". The control plane for set-up (reading the data and a
  // checkpoint) that may fail on one process only, so that no process waits for ever in a
  // collective. `phase` names it (distinct per call).
  void agree(const std::string& phase, const std::function<void()>& work);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace npe::model
