// app/rng: splitmix64, a tiny generator whose output depends only on its seed, on every
// platform: what makes the generated assets and the demo's data the same on every run. Each
// (seed, purpose, id) can get a stream of its own, so a name is made again from its id alone.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace edge::app {

struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // 1..n, low ids far more likely the larger `skew` is (1: uniform).
  uint32_t skewed(uint32_t n, double skew) {
    auto k = static_cast<uint32_t>(n * std::pow(unit(), skew));
    return 1 + std::min(k, n - 1);
  }
  template <size_t N>
  std::string_view pick(const std::array<std::string_view, N>& words) {
    return words[below(static_cast<uint32_t>(N))];
  }
};

}  // namespace edge::app
