#include "npe/model/distributed.h"

#include <cerrno>
#include <cstdlib>
#include <exception>
#include <limits>

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "collectives.h"
#include "npe/core/error.h"

namespace npe::model {
namespace {

// An integer environment variable in [lo, hi]; throws npe::Error naming it otherwise.
int env_int(const char* name, const char* value, int lo, int hi) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || errno == ERANGE || v < lo || v > hi)
    throw Error(fmt::format("{}: expected an integer in [{}, {}], found '{}'", name, lo, hi, value));
  return static_cast<int>(v);
}

constexpr int kMaxWorld = 1 << 20;

// An exception's message without libtorch's C++ backtrace.
std::string plain_message(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

}  // namespace

DistEnv dist_env_from(const std::function<const char*(const char*)>& getenv) {
  DistEnv e;
  const char* rank = getenv("RANK");
  const char* world = getenv("WORLD_SIZE");
  const char* slurm_tasks = getenv("SLURM_NTASKS");
  if (rank || world) {
    if (!rank || !world)
      throw Error(fmt::format("{} is set but {} is not: a launch of several processes sets both (torchrun does)",
                              rank ? "RANK" : "WORLD_SIZE", rank ? "WORLD_SIZE" : "RANK"));
    e.world_size = env_int("WORLD_SIZE", world, 1, kMaxWorld);
    e.rank = env_int("RANK", rank, 0, kMaxWorld);
    const char* local = getenv("LOCAL_RANK");
    e.local_rank = local ? env_int("LOCAL_RANK", local, 0, kMaxWorld) : e.rank;
    e.launcher = "env";
  } else if (slurm_tasks && env_int("SLURM_NTASKS", slurm_tasks, 1, kMaxWorld) > 1) {
    const char* procid = getenv("SLURM_PROCID");
    if (!procid) throw Error("SLURM_NTASKS > 1 but SLURM_PROCID is not set: start npe-train with srun");
    e.world_size = env_int("SLURM_NTASKS", slurm_tasks, 1, kMaxWorld);
    e.rank = env_int("SLURM_PROCID", procid, 0, kMaxWorld);
    const char* local = getenv("SLURM_LOCALID");
    e.local_rank = local ? env_int("SLURM_LOCALID", local, 0, kMaxWorld) : 0;
    if (!getenv("MASTER_ADDR"))
      throw Error(fmt::format("MASTER_ADDR: not set, and a Slurm step of {} tasks needs it: export "
                              "MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n1) before srun",
                              e.world_size));
    e.launcher = "slurm";
  } else {
    return e;  // one process
  }
  if (e.rank >= e.world_size)
    throw Error(fmt::format("{}: expected a rank in [0, {}) (the world size), found {}",
                            e.launcher == "slurm" ? "SLURM_PROCID" : "RANK", e.world_size, e.rank));
  if (const char* addr = getenv("MASTER_ADDR")) {
    if (!*addr) throw Error("MASTER_ADDR: expected a host name or address, found an empty string");
    e.master_addr = addr;
  }
  if (const char* port = getenv("MASTER_PORT")) e.master_port = env_int("MASTER_PORT", port, 1, 65535);
  if (const char* agent = getenv("TORCHELASTIC_USE_AGENT_STORE"); agent && std::string(agent) == "True") {
    e.agent_store = true;
    const char* attempt = getenv("TORCHELASTIC_RESTART_COUNT");
    e.store_prefix = fmt::format("/worker/attempt_{}", attempt ? attempt : "0");
  }
  return e;
}

torch::Device local_cuda_device(const DistEnv& env) {
  const int count = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  return torch::Device(torch::kCUDA,
                       static_cast<c10::DeviceIndex>(count > 0 ? env.local_rank % count : env.local_rank));
}

DistEnv dist_env_from_environment() {
  return dist_env_from([](const char* name) { return std::getenv(name); });
}

struct ProcessGroup::Impl {
  int rank = 0, size = 1;
  torch::Device device = torch::kCPU;
  c10::intrusive_ptr<c10d::Store> store;
  std::unique_ptr<Collectives> coll;
};

ProcessGroup::ProcessGroup() : impl_(std::make_unique<Impl>()) {}

namespace {

// The rendezvous: libtorch's TCPStore at MASTER_ADDR:MASTER_PORT (see distributed.h).
c10::intrusive_ptr<c10d::Store> join_store(const DistEnv& env, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(env.master_port);
  o.isServer = !env.agent_store && env.rank == 0;
  // Every process counts itself in (waitWorkers); the server's constructor then waits for all of
  // them, as torch.distributed's env:// rendezvous does. torchrun's agent store counts nobody.
  o.numWorkers = env.agent_store ? std::nullopt : std::optional<std::size_t>(env.world_size);
  o.waitWorkers = !env.agent_store;
  o.timeout = timeout;
  try {
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
    if (env.agent_store) store = c10::make_intrusive<c10d::PrefixStore>(env.store_prefix, store);
    return store;
  } catch (const std::exception& e) {
    throw Error(fmt::format("rendezvous at MASTER_ADDR {} MASTER_PORT {} (rank {} of {}{}) failed: {}", env.master_addr,
                            env.master_port, env.rank, env.world_size, env.agent_store ? ", torchrun's store" : "",
                            plain_message(e)));
  }
}

}  // namespace

ProcessGroup::ProcessGroup(const DistEnv& env, torch::Device device, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.rank = env.rank;
  m.size = env.world_size;
  if (!env.distributed()) return;
  if (!device.is_cuda())
    throw Error(fmt::format("WORLD_SIZE {}: data-parallel training runs one process per CUDA device (NCCL); this "
                            "run's device is {}",
                            env.world_size, device.str()));
  if (!nccl_available())
    throw Error(fmt::format("WORLD_SIZE {}: data-parallel training needs NCCL, and this npe was built without it "
                            "(no CUDA compiler, or no nvidia/nccl beside the torch wheel); run one process",
                            env.world_size));
  m.store = join_store(env, timeout);
  m.device = local_cuda_device(env);
  m.coll = make_nccl_collectives(*m.store, m.rank, m.size, m.device.index());
}

ProcessGroup ProcessGroup::store_only(const DistEnv& env, std::chrono::milliseconds timeout) {
  ProcessGroup g;
  g.impl_->rank = env.rank;
  g.impl_->size = env.world_size;
  if (env.distributed()) g.impl_->store = join_store(env, timeout);
  return g;
}

ProcessGroup::ProcessGroup(ProcessGroup&&) noexcept = default;

ProcessGroup::~ProcessGroup() {
  if (impl_ && impl_->coll) impl_->coll->close(std::uncaught_exceptions() > 0);
}

int ProcessGroup::rank() const { return impl_->rank; }
int ProcessGroup::size() const { return impl_->size; }
bool ProcessGroup::nccl_available() { return model::nccl_available(); }

namespace {
void need_collectives(const ProcessGroup& g, const Collectives* coll) {
  if (g.size() > 1 && !coll) throw Error("process group: joined for its store only (store_only): no collectives");
}
}  // namespace

void ProcessGroup::all_reduce(const torch::Tensor& t, Reduce op) {
  need_collectives(*this, impl_->coll.get());
  if (impl_->coll) impl_->coll->all_reduce(t, op);
}

void ProcessGroup::broadcast(const torch::Tensor& t, int root) {
  need_collectives(*this, impl_->coll.get());
  if (impl_->coll) impl_->coll->broadcast(t, root);
}

bool ProcessGroup::any(bool local) {
  need_collectives(*this, impl_->coll.get());
  if (!impl_->coll) return local;
  const torch::Tensor flag = torch::full({}, local ? 1 : 0,
                                         torch::TensorOptions().dtype(torch::kLong).device(impl_->device));
  impl_->coll->all_reduce(flag, Reduce::Max);
  return flag.item<int64_t>() != 0;
}

void ProcessGroup::agree(const std::string& phase, const std::function<void()>& work) {
  std::string failure;
  try {
    work();
  } catch (const std::exception& e) {
    if (!impl_->store) throw;  // a group of one: the error as it is
    failure = plain_message(e);
    if (failure.empty()) failure = "failed";
  }
  if (!impl_->store) return;
  Impl& m = *impl_;
  const std::string key = "npe/agree/" + phase + "/";
  m.store->set(key + std::to_string(m.rank), std::vector<uint8_t>(failure.begin(), failure.end()));
  if (!failure.empty()) throw Error(failure);
  for (int r = 0; r < m.size; ++r) {
    std::vector<uint8_t> v;
    try {
      v = m.store->get(key + std::to_string(r));  // waits up to the store's timeout
    } catch (const std::exception& e) {
      throw Error(
          fmt::format("rank {} did not finish '{}' within the rendezvous timeout: {}", r, phase, plain_message(e)));
    }
    if (!v.empty()) throw Error(fmt::format("rank {}: {}", r, std::string(v.begin(), v.end())));
  }
}

}  // namespace npe::model
