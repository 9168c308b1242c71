#include "cache/frequency_sketch.h"

#include <algorithm>
#include <bit>

namespace edge::cache {

namespace {
// Hashes come from callers (the store's is SipHash, a test's may be std::hash): this spreads their
// bits over all 64 before they pick a block and four counters (splitmix64's finaliser).
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

FrequencySketch::FrequencySketch(size_t expected_keys) {
  // Sixteen counters per expected key (a quarter of a block), as TinyLFU's sketches are sized:
  // few collisions for the keys that matter.
  const size_t keys = std::clamp<size_t>(expected_keys, 1024, size_t{1} << 22);
  blocks_ = std::bit_ceil(keys) / 4;
  sample_ = kSamplePerKey * static_cast<uint64_t>(keys);
  counters_ = std::make_unique<std::atomic<uint8_t>[]>(blocks_ * kBlock);
}

void FrequencySketch::positions(uint64_t hash, size_t (&at)[4]) const {
  const uint64_t h = mix(hash);
  const size_t block = static_cast<size_t>(h & (blocks_ - 1)) * kBlock;
  const uint64_t inside = h >> 40;  // bits the block index never uses (blocks_ < 2^40)
  for (size_t i = 0; i < 4; ++i) at[i] = block + i * 16 + static_cast<size_t>((inside >> (4 * i)) & 15);
}

void FrequencySketch::increment(uint64_t hash) {
  size_t at[4];
  positions(hash, at);
  // Only the least counters move (conservative update): a popular neighbour in one of the four
  // places does not inflate the others.
  uint8_t least = kMaxCount;
  for (size_t i : at) least = std::min(least, counters_[i].load(std::memory_order_relaxed));
  if (least >= kMaxCount) return;
  for (size_t i : at) {
    if (counters_[i].load(std::memory_order_relaxed) == least)
      counters_[i].store(static_cast<uint8_t>(least + 1), std::memory_order_relaxed);
  }
  if (increments_.fetch_add(1, std::memory_order_relaxed) + 1 == sample_) halve();
}

uint32_t FrequencySketch::estimate(uint64_t hash) const {
  size_t at[4];
  positions(hash, at);
  uint8_t least = kMaxCount;
  for (size_t i : at) least = std::min(least, counters_[i].load(std::memory_order_relaxed));
  return least;
}

void FrequencySketch::halve() {
  // Only the thread whose increment reached the sample gets here; increments meanwhile may be
  // lost or halved twice, which the estimates tolerate.
  for (size_t i = 0; i < blocks_ * kBlock; ++i)
    counters_[i].store(static_cast<uint8_t>(counters_[i].load(std::memory_order_relaxed) >> 1),
                       std::memory_order_relaxed);
  increments_.store(0, std::memory_order_relaxed);
}

}  // namespace edge::cache
