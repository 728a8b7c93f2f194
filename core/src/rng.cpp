#include "npe/core/rng.h"

namespace npe {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

Rng::Rng(uint64_t seed, uint64_t stream) {
  uint64_t s = seed;
  const uint64_t a = splitmix64(s);
  uint64_t t = stream ^ 0x5851f42d4c957f2dULL;
  state_ = a ^ splitmix64(t);
}

uint64_t Rng::next() { return splitmix64(state_); }

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

int64_t Rng::below(int64_t n) {
  // Lemire's multiply-shift; the tiny bias (n / 2^64) is irrelevant for n <= 2^32.
  return static_cast<int64_t>((static_cast<unsigned __int128>(next()) * static_cast<uint64_t>(n)) >> 64);
}

}  // namespace npe
