// npe/core/rng.h: the random generator behind every sampled scene.
#pragma once

#include <cstdint>

namespace npe {

// A small counter-based random generator (SplitMix64, Steele et al. 2014): scene i's stream is
// seeded from (seed, i) alone, so results do not depend on threads or on the standard library.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream);
  uint64_t next();
  double uniform();  // [0, 1), 53 random bits
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int64_t below(int64_t n);  // integer in [0, n)

 private:
  uint64_t state_;
};

}  // namespace npe
