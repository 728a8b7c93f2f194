// libFuzzer harness: a dataset's manifest (parse_manifest; merged sharded datasets too, whose splits
// list parts) and one split array checked against it (parse_npy_f32 + check_split), as npe-train,
// npe-eval and npe-render read them; and the same manifest text read as a shard's manifest
// (Manifest::from_json with shard = true, as npe-datagen --merge_shards reads them).
// Input: a 4-byte little-endian length L, L bytes of manifest JSON, then the .npy bytes of the
// manifest's "train" split. Corpus: corpus/dataset/ (small npe datasets of every kind of world).
#include <cstring>

#include "fuzz_util.h"
#include "npe/datagen/dataset.h"
#include "npe/core/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t len = 0;
  std::memcpy(&len, data, 4);
  if (len > size - 4) return 0;
  const std::string manifest = npe::fuzz::bytes(data + 4, len);
  const std::string npy = npe::fuzz::bytes(data + 4 + len, size - 4 - len);
  npe::fuzz::expect_npe_error([&] {
    const npe::datagen::Manifest m = npe::datagen::parse_manifest(manifest, "fuzz.json");
    const npe::datagen::Trajectories t = npe::datagen::check_split(
        m, "train", npe::parse_npy_f32(npy, "fuzz_train.npy"), "fuzz_train.npy");
    // what the trainers do next with an accepted split: count each scene's balls
    for (int64_t s = 0; s < t.scenes; ++s)
      if (t.balls_in(s) < 1 || t.balls_in(s) > t.num_balls) std::abort();
  });
  return npe::fuzz::expect_npe_error([&] {
    const npe::datagen::Manifest m = npe::datagen::Manifest::from_json(
        npe::parse_json(manifest, "fuzz.json", "a shard manifest"), "fuzz.json", true);
    if (m.shard.count < 1 || m.shard.index < 0 || m.shard.index >= m.shard.count) std::abort();
  });
}
