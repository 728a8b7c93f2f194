// Helpers of the datagen tests that write sharded datasets (generate_test.cpp, dataset_test.cpp).
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "npe/datagen/dataset.h"
#include "npe/datagen/generate.h"
#include "npe/core/error.h"

namespace npe::datagen::test_util {

// Writes the N shards of `c` (npe-datagen --shard k/N for each k, each a whole generate_dataset
// run) and merges them (--merge_shards N).
inline Manifest generate_shards(DatagenConfig c, int64_t num_shards) {
  for (c.shard = 0, c.num_shards = num_shards; c.shard < num_shards; ++c.shard) generate_dataset(c);
  return merge_shards(c.out_prefix, num_shards);
}

// The npe::Error that `f` throws (a test failure when none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no npe::Error thrown";
  return "";
}

}  // namespace npe::datagen::test_util
