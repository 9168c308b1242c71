// rules/rate_limit: see rate_limit.h.
#include "rules/rate_limit.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <mutex>
#include <random>
#include <utility>
#include <vector>

namespace edge::rules {
namespace {

constexpr uint32_t kNone = UINT32_MAX;
constexpr size_t kMaxShards = 64;
constexpr size_t kMinShardBuckets = 16;
constexpr int kEvictionScan = 8;
constexpr uint64_t kV6Tag = 0x9e3779b97f4a7c15;

// splitmix64's finaliser: every input bit reaches every output bit.
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9;
  x ^= x >> 27;
  x *= 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

uint64_t random_seed() {
  std::random_device device;
  return uint64_t{device()} << 32 | device();
}

struct ClientKey {
  uint64_t bits;
  bool v6;
  bool operator==(const ClientKey&) const = default;
};

ClientKey client_key(const IpAddress& address) {
  uint64_t bits = 0;
  for (size_t i = 0; i < (address.v6 ? 8 : 4); ++i) bits = bits << 8 | address.bytes[i];
  return {bits, address.v6};
}

uint64_t client_hash(ClientKey key, uint64_t seed) { return mix(key.bits ^ seed) ^ (key.v6 ? kV6Tag : 0); }

struct Bucket {
  uint64_t zone;
  ClientKey client;
  uint64_t hash;
  double tokens;
  double per_second;
  double burst;
  uint64_t last_ms;
  uint32_t newer;
  uint32_t older;
};

double tokens_at(const Bucket& b, uint64_t now_ms) {
  if (now_ms <= b.last_ms) return b.tokens;
  return std::min(b.burst, b.tokens + static_cast<double>(now_ms - b.last_ms) * b.per_second / 1000.0);
}

// The division and tokens_at() may round apart by a millisecond; tokens_at() decides, so that a
// client coming back exactly after the delay it was given is let in.
uint64_t ms_until_token(const Bucket& b) {
  double exact = std::ceil((1.0 - b.tokens) * 1000.0 / b.per_second);
  uint64_t ms = exact < 1.0 ? 1 : exact > 1e15 ? uint64_t{1000000000000000} : static_cast<uint64_t>(exact);
  for (int i = 0; i < 2 && ms > 1 && tokens_at(b, b.last_ms + ms - 1) >= 1.0; ++i) --ms;
  for (int i = 0; i < 2 && tokens_at(b, b.last_ms + ms) < 1.0; ++i) ++ms;
  return ms;
}

}  // namespace

// Buckets live in a vector reserved up front, so indices stay valid and nothing is allocated per
// request; the index is open addressing with linear probing over twice the capacity (probes stay
// short) and backward-shift deletion (no tombstones to pile up under churn).
struct alignas(64) RateLimiter::Shard {
  mutable std::mutex mutex;
  size_t capacity = 0;
  std::vector<Bucket> buckets;
  std::vector<uint32_t> index;  // bucket + 1; 0 is empty
  uint32_t newest = kNone;
  uint32_t oldest = kNone;

  size_t position(uint64_t hash, uint64_t zone, ClientKey client) const {
    size_t mask = index.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      if (index[i] == 0) return i;
      const Bucket& b = buckets[index[i] - 1];
      if (b.hash == hash && b.zone == zone && b.client == client) return i;
    }
  }

  void unindex(uint32_t bucket) {
    size_t mask = index.size() - 1;
    size_t hole = buckets[bucket].hash & mask;
    while (index[hole] != bucket + 1) hole = (hole + 1) & mask;
    for (size_t i = (hole + 1) & mask; index[i] != 0; i = (i + 1) & mask) {
      size_t home = buckets[index[i] - 1].hash & mask;
      // An entry may fill the hole only if its probe from home passes through it.
      if (((i - home) & mask) >= ((i - hole) & mask)) {
        index[hole] = index[i];
        hole = i;
      }
    }
    index[hole] = 0;
  }

  void unlink(uint32_t i) {
    Bucket& b = buckets[i];
    (b.newer == kNone ? newest : buckets[b.newer].older) = b.older;
    (b.older == kNone ? oldest : buckets[b.older].newer) = b.newer;
  }

  void make_newest(uint32_t i) {
    buckets[i].newer = kNone;
    buckets[i].older = newest;
    (newest == kNone ? oldest : buckets[newest].newer) = i;
    newest = i;
  }

  // Frees a bucket for a new key; also says whether it still held information (was not full).
  std::pair<uint32_t, bool> evict(uint64_t now_ms) {
    uint32_t victim = oldest;
    bool full = false;
    for (uint32_t i = oldest, n = 0; i != kNone && n < kEvictionScan; i = buckets[i].newer, ++n) {
      if (tokens_at(buckets[i], now_ms) >= buckets[i].burst) {
        victim = i;
        full = true;
        break;
      }
    }
    unlink(victim);
    unindex(victim);
    return {victim, !full};
  }
};

RateLimiter::RateLimiter(size_t capacity) : shard_count_(1), seed_(random_seed()) {
  while (shard_count_ < kMaxShards && capacity / (shard_count_ * 2) >= kMinShardBuckets) shard_count_ *= 2;
  shards_ = std::make_unique<Shard[]>(shard_count_);
  for (size_t s = 0; s < shard_count_; ++s) {
    Shard& shard = shards_[s];
    shard.capacity = capacity / shard_count_ + (s < capacity % shard_count_ ? 1 : 0);
    shard.buckets.reserve(shard.capacity);
    size_t slots = 2;
    while (slots < 2 * shard.capacity) slots *= 2;
    shard.index.assign(slots, 0);
  }
}

RateLimiter::~RateLimiter() = default;

uint64_t RateLimiter::zone_id(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3;
  return h;
}

RateLimiter::Verdict RateLimiter::take(uint64_t zone, const IpAddress& client, double per_second, double burst,
                                       uint64_t now_ms) {
  assert(per_second > 0 && burst >= 1);
  ClientKey key = client_key(client);
  uint64_t hash = mix(client_hash(key, seed_) ^ zone);
  Shard& shard = shards_[(hash >> 40) & (shard_count_ - 1)];
  if (shard.capacity == 0) return {true, 0};

  std::lock_guard lock(shard.mutex);
  size_t at = shard.position(hash, zone, key);
  uint32_t i;
  if (shard.index[at] != 0) {
    i = shard.index[at] - 1;
    shard.unlink(i);
  } else {
    if (shard.buckets.size() < shard.capacity) {
      i = static_cast<uint32_t>(shard.buckets.size());
      shard.buckets.emplace_back();
    } else {
      auto [victim, informative] = shard.evict(now_ms);
      if (informative) forgotten_.fetch_add(1, std::memory_order_relaxed);
      i = victim;
      at = shard.position(hash, zone, key);  // the eviction may have moved entries
    }
    shard.index[at] = i + 1;
    shard.buckets[i] = Bucket{zone, key, hash, burst, per_second, burst, now_ms, kNone, kNone};
  }
  shard.make_newest(i);

  Bucket& b = shard.buckets[i];
  b.per_second = per_second;
  b.burst = burst;
  b.tokens = tokens_at(b, now_ms);
  b.last_ms = std::max(b.last_ms, now_ms);
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return {true, 0};
  }
  return {false, ms_until_token(b) + (b.last_ms - now_ms)};
}

size_t RateLimiter::size() const {
  size_t total = 0;
  for (size_t s = 0; s < shard_count_; ++s) {
    std::lock_guard lock(shards_[s].mutex);
    total += shards_[s].buckets.size();
  }
  return total;
}

uint64_t RateLimiter::forgotten() const { return forgotten_.load(std::memory_order_relaxed); }

ClientConnCounter::ClientConnCounter(size_t slots_per_table)
    : slots_per_table_(std::clamp<size_t>(slots_per_table, 1, size_t{1} << 32)),
      first_(std::make_unique<std::atomic<uint32_t>[]>(slots_per_table_)),
      second_(std::make_unique<std::atomic<uint32_t>[]>(slots_per_table_)),
      seed_(random_seed()) {}

// One hash, its halves for the two tables: independent enough for count-min, one mix per call.
// Each half is mapped onto the table by multiplication, which needs no power-of-two size.
ClientConnCounter::Slots ClientConnCounter::slots_of(const IpAddress& client) const {
  uint64_t h = mix(client_hash(client_key(client), seed_));
  return {static_cast<size_t>(((h >> 32) * slots_per_table_) >> 32),
          static_cast<size_t>(((h & 0xffffffff) * slots_per_table_) >> 32)};
}

bool ClientConnCounter::try_open(const IpAddress& client, uint32_t max) {
  Slots s = slots_of(client);
  if (std::min(first_[s.first].load(), second_[s.second].load()) >= max) return false;
  first_[s.first].fetch_add(1);
  second_[s.second].fetch_add(1);
  return true;
}

void ClientConnCounter::close(const IpAddress& client) {
  Slots s = slots_of(client);
  first_[s.first].fetch_sub(1);
  second_[s.second].fetch_sub(1);
}

uint32_t ClientConnCounter::estimate(const IpAddress& client) const {
  Slots s = slots_of(client);
  return std::min(first_[s.first].load(), second_[s.second].load());
}

}  // namespace edge::rules
