// The collectives of a build without NCCL (see collectives.h).
#include "collectives.h"

#include <fmt/format.h>

#include "npe/core/error.h"

namespace npe::model {

bool nccl_available() { return false; }

std::unique_ptr<Collectives> make_nccl_collectives(c10d::Store&, int, int, int) {
  throw Error("this npe was built without NCCL");
}

}  // namespace npe::model
