// Private to npe_model: the collectives of a ProcessGroup of several processes. Built from
// nccl.cpp when npe has a CUDA compiler and the torch wheel's NCCL (nvidia/nccl) was found,
// otherwise from nccl_stub.cpp (available() is false, make_nccl_collectives throws).
#pragma once

#include <memory>

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/torch.h>

#include "npe/model/distributed.h"

namespace npe::model {

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual void all_reduce(const torch::Tensor& t, Reduce op) = 0;
  virtual void broadcast(const torch::Tensor& t, int root) = 0;
  // Releases the communicator: `abort` while an exception unwinds (peers may be gone).
  virtual void close(bool abort) = 0;
};

bool nccl_available();
// Makes CUDA device `device` current and joins the NCCL communicator of `size` processes whose
// unique id rank 0 publishes in `store`. Throws npe::Error with NCCL's message on failure.
std::unique_ptr<Collectives> make_nccl_collectives(c10d::Store& store, int rank, int size, int device);

}  // namespace npe::model
