// The collectives of a ProcessGroup of several processes: NCCL (see collectives.h), the library
// and headers of the torch wheel's nvidia-nccl dependency, the same NCCL libtorch loads.
#include <cstring>

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#include <fmt/format.h>
#include <nccl.h>

#include "collectives.h"
#include "npe/core/error.h"

namespace npe::model {
namespace {

std::string nccl_failure(ncclResult_t r, ncclComm_t comm, const char* what) {
  const char* last = comm ? ncclGetLastError(comm) : nullptr;
  return fmt::format("NCCL {} failed: {}{}{} (NCCL {}.{}.{}; NCCL_DEBUG=INFO prints more)", what, ncclGetErrorString(r),
                     last && *last ? ": " : "", last ? last : "", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
}

ncclDataType_t nccl_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kInt64: return ncclInt64;
    case torch::kBFloat16: return ncclBfloat16;
    default:
      throw Error(fmt::format("process group: expected a float32, float64, int64 or bfloat16 tensor, found {}",
                              c10::toString(t.scalar_type())));
  }
}

ncclRedOp_t nccl_op(Reduce op) {
  switch (op) {
    case Reduce::Sum: return ncclSum;
    case Reduce::Avg: return ncclAvg;
    case Reduce::Max: return ncclMax;
    case Reduce::Min: return ncclMin;
  }
  return ncclSum;
}

class NcclCollectives final : public Collectives {
 public:
  NcclCollectives(c10d::Store& store, int rank, int size, int device) : device_(device) {
    const int count = static_cast<int>(c10::cuda::device_count());
    if (device < 0 || device >= count)
      throw Error(fmt::format("CUDA device {} (from LOCAL_RANK): this process sees {} CUDA device{}; data-parallel "
                              "training runs one process per GPU",
                              device, count, count == 1 ? "" : "s"));
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    ncclUniqueId id;
    const std::string key = "npe/nccl_unique_id";
    if (rank == 0) {
      if (const ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess)
        throw Error(nccl_failure(r, nullptr, "ncclGetUniqueId"));
      const auto* b = reinterpret_cast<const uint8_t*>(&id);
      store.set(key, std::vector<uint8_t>(b, b + sizeof(id)));
    } else {
      const std::vector<uint8_t> v = store.get(key);  // waits for rank 0, up to the store's timeout
      if (v.size() != sizeof(id))
        throw Error(fmt::format("rendezvous: the store's NCCL id has {} bytes, expected {}", v.size(), sizeof(id)));
      std::memcpy(&id, v.data(), sizeof(id));
    }
    if (const ncclResult_t r = ncclCommInitRank(&comm_, size, id, rank); r != ncclSuccess)
      throw Error(nccl_failure(r, nullptr, "ncclCommInitRank"));
  }
  ~NcclCollectives() override { close(true); }

  void all_reduce(const torch::Tensor& t, Reduce op) override {
    check(t);
    const ncclResult_t r = ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t),
                                         nccl_op(op), comm_, at::cuda::getCurrentCUDAStream(device_).stream());
    if (r != ncclSuccess) throw Error(nccl_failure(r, comm_, "all-reduce"));
  }

  void broadcast(const torch::Tensor& t, int root) override {
    check(t);
    const ncclResult_t r = ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t), root,
                                         comm_, at::cuda::getCurrentCUDAStream(device_).stream());
    if (r != ncclSuccess) throw Error(nccl_failure(r, comm_, "broadcast"));
  }

  void close(bool abort) override {
    if (!comm_) return;
    if (abort) {
      ncclCommAbort(comm_);
    } else {
      ncclCommFinalize(comm_);  // flushes this communicator's pending operations
      ncclCommDestroy(comm_);
    }
    comm_ = nullptr;
  }

 private:
  void check(const torch::Tensor& t) const {
    if (!t.is_cuda() || t.get_device() != device_ || !t.is_contiguous())
      throw Error(fmt::format("process group: expected a contiguous tensor on cuda:{}, found {} on {}{}", device_,
                              c10::toString(t.scalar_type()), t.device().str(), t.is_contiguous() ? "" : " (strided)"));
  }

  int device_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

bool nccl_available() { return true; }

std::unique_ptr<Collectives> make_nccl_collectives(c10d::Store& store, int rank, int size, int device) {
  return std::make_unique<NcclCollectives>(store, rank, size, device);
}

}  // namespace npe::model
