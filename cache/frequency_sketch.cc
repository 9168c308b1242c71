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

size_t FrequencySketch::keys_for(size_t expected_keys) {
  return std::bit_ceil(std::clamp<size_t>(expected_keys, 1024, size_t{1} << 22));
}

FrequencySketch::Table::Table(size_t keys)
    // Sixteen counters per expected key (a quarter of a block), as TinyLFU's sketches are sized:
    // few collisions for the keys that matter.
    : blocks(keys / 4),
      sample(kSamplePerKey * static_cast<uint64_t>(keys)),
      counters(std::make_unique<std::atomic<uint8_t>[]>(blocks * kBlock)) {}

FrequencySketch::FrequencySketch(size_t expected_keys) {
  tables_.push_back(std::make_unique<Table>(keys_for(expected_keys)));
  table_.store(tables_.back().get(), std::memory_order_release);
}

FrequencySketch::~FrequencySketch() = default;

size_t FrequencySketch::memory() const {
  size_t bytes = 0;
  for (const auto& t : tables_) bytes += t->blocks * kBlock;
  return bytes;
}

void FrequencySketch::resize(size_t expected_keys) {
  const size_t blocks = keys_for(expected_keys) / 4;
  Table* current = table_.load(std::memory_order_relaxed);
  if (current->blocks == blocks) return;
  Table* next = nullptr;
  for (const auto& t : tables_)
    if (t->blocks == blocks) next = t.get();
  if (next) {
    // A reader of long ago may still bump one of these: that only blurs a count.
    for (size_t i = 0; i < blocks * kBlock; ++i) next->counters[i].store(0, std::memory_order_relaxed);
    next->increments.store(0, std::memory_order_relaxed);
  } else {
    tables_.push_back(std::make_unique<Table>(blocks * 4));
    next = tables_.back().get();
  }
  table_.store(next, std::memory_order_release);
}

void FrequencySketch::Table::positions(uint64_t hash, size_t (&at)[4]) const {
  const uint64_t h = mix(hash);
  const size_t block = static_cast<size_t>(h & (blocks - 1)) * kBlock;
  const uint64_t inside = h >> 40;  // bits the block index never uses (blocks < 2^40)
  for (size_t i = 0; i < 4; ++i) at[i] = block + i * 16 + static_cast<size_t>((inside >> (4 * i)) & 15);
}

void FrequencySketch::increment(uint64_t hash) {
  Table& t = *table_.load(std::memory_order_acquire);
  size_t at[4];
  t.positions(hash, at);
  // Only the least counters move (conservative update): a popular neighbour in one of the four
  // places does not inflate the others.
  uint8_t least = kMaxCount;
  for (size_t i : at) least = std::min(least, t.counters[i].load(std::memory_order_relaxed));
  if (least >= kMaxCount) return;
  for (size_t i : at) {
    if (t.counters[i].load(std::memory_order_relaxed) == least)
      t.counters[i].store(static_cast<uint8_t>(least + 1), std::memory_order_relaxed);
  }
  if (t.increments.fetch_add(1, std::memory_order_relaxed) + 1 == t.sample) t.halve();
}

uint32_t FrequencySketch::estimate(uint64_t hash) const {
  const Table& t = *table_.load(std::memory_order_acquire);
  size_t at[4];
  t.positions(hash, at);
  uint8_t least = kMaxCount;
  for (size_t i : at) least = std::min(least, t.counters[i].load(std::memory_order_relaxed));
  return least;
}

void FrequencySketch::Table::halve() {
  // Only the thread whose increment reached the sample gets here; increments meanwhile may be
  // lost or halved twice, which the estimates tolerate.
  for (size_t i = 0; i < blocks * kBlock; ++i)
    counters[i].store(static_cast<uint8_t>(counters[i].load(std::memory_order_relaxed) >> 1), std::memory_order_relaxed);
  increments.store(0, std::memory_order_relaxed);
}

}  // namespace edge::cache
