// rules/rate_limit: per-client limits shared by every worker thread: request rates (token buckets
// per zone and client) and open connections (a count per client).
//
// Clients: an IPv4 client is its 4 bytes; an IPv6 client is its /64 prefix (the first 8 bytes),
// since one host usually owns a whole /64 and could otherwise take a fresh address per request.
// The two families never share a key, whatever the bytes.
//
// Why these designs:
// - Memory is bounded whatever the number of addresses: the limiter holds at most `capacity`
//   buckets and forgets some when full; the connection counter is two fixed tables. A flood of
//   made-up addresses costs evictions or shared slots, never memory.
// - The limiter is split into shards by a hash of the key, each with its own lock, its own part of
//   the capacity and its own eviction: threads meet only when their keys share a shard, where a
//   single lock would serialise every request of every worker.
// - Eviction prefers a bucket that is full again (forgetting it changes no answer, since a new
//   bucket starts full) over the least recently used one, and counts the others (forgotten()):
//   a client refused recently and still asking stays among the recently used and keeps its
//   empty bucket, unless the shard is flooded with new keys faster than it asks.
// - The connection counter is a count-min sketch: a client's count is the smaller of two counters
//   indexed by two different hashes. Sharing a slot can only add other clients' connections, so
//   the count is never below the truth: a limit may refuse a client early (when both of its
//   slots are crowded), never let one past it.
// Slots depend on a random seed drawn per instance, so which addresses share a shard or a slot
// cannot be worked out in advance from outside.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "rules/address.h"

namespace edge::rules {

// Token buckets per (zone, client). A zone is a 64-bit id (zone_id() of its name); the rate and
// burst are given on each call, so a zone's settings may change (on reload) without a rebuild:
// a bucket refills at the rate of the call that reads it, up to that call's burst.
//
// Memory: at most `capacity` buckets (under 100 bytes each, reserved at construction), split
// evenly among up to 64 shards of at least 16 buckets. A new key in a full shard evicts one of its
// buckets: among its 8 least recently used, the oldest one that is full again at the call's
// time, else the least recently used of all. Every take() uses its bucket, allowed or refused.
// So a bucket that is not full is dropped only when it is the least recently used of its shard and
// the 7 after it are not full either. No allocation after construction.
//
// Threads: every function may be called from any thread at once.
class RateLimiter {
 public:
  struct Verdict {
    bool allowed;
    uint64_t retry_after_ms;  // refused: the time until one whole token is there (>= 1); allowed: 0
  };

  // capacity 0 holds nothing: every call is then answered as for a new client (allowed).
  explicit RateLimiter(size_t capacity);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // A stable 64-bit id for a zone name (FNV-1a): the same in every process and run.
  static uint64_t zone_id(std::string_view name);

  // Refills the bucket of (zone, client) by the time since its last call (per_second tokens a
  // second, up to `burst`), then takes one token if a whole one is there. A new client starts with
  // `burst` tokens. A `now_ms` before the bucket's last call adds nothing (the bucket keeps its
  // time). The caller promises per_second > 0 and burst >= 1.
  Verdict take(uint64_t zone, const IpAddress& client, double per_second, double burst, uint64_t now_ms);

  size_t size() const;        // buckets held, all shards
  uint64_t forgotten() const;  // buckets evicted while not full: answers that may have changed

 private:
  struct Shard;
  size_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
  uint64_t seed_;
  std::atomic<uint64_t> forgotten_{0};
};

// Open connections per client, all workers together: two tables of atomic counters (a count-min
// sketch, see above). Memory: 2 * slots_per_table * 4 bytes, whatever the number of clients
// (slots_per_table is taken between 1 and 2^32).
//
// Threads: every function may be called from any thread at once; all are lock-free. try_open()
// reads the estimate and then increments, so two threads seeing max - 1 together both succeed:
// a client may get one connection past `max` per racing thread. The counters stay exact sums of
// the open connections mapped to them whatever the interleaving, since each successful
// try_open() adds one to both and its close() removes one from both.
class ClientConnCounter {
 public:
  explicit ClientConnCounter(size_t slots_per_table = 65536);
  ClientConnCounter(const ClientConnCounter&) = delete;
  ClientConnCounter& operator=(const ClientConnCounter&) = delete;

  // false, changing nothing, when the client's estimate is already >= max; else counts one more.
  bool try_open(const IpAddress& client, uint32_t max);
  // Only after a successful try_open() for the same client.
  void close(const IpAddress& client);
  // The client's open connections, or more when both of its slots are shared; never fewer.
  uint32_t estimate(const IpAddress& client) const;

 private:
  struct Slots {
    size_t first, second;
  };
  Slots slots_of(const IpAddress& client) const;

  size_t slots_per_table_;
  std::unique_ptr<std::atomic<uint32_t>[]> first_;
  std::unique_ptr<std::atomic<uint32_t>[]> second_;
  uint64_t seed_;
};

}  // namespace edge::rules
