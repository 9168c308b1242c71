// cache/counters: what the cache did with requests, per configured host entry.
//
// Each worker owns one Counters and is its only writer (relaxed atomics, so a reader on another
// thread, the admin port, sums the workers' counters without locks and without tearing).
// Host indexes are those of Config::hosts.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace edge::cache {

#define EDGE_CACHE_EVENTS(X)                                                        \
  X(kHit, "hits", "served from the cache, fresh")                                 \
  X(kMiss, "misses", "fetched from the backend for the cache")                    \
  X(kPass, "passes", "sent to the backend without the cache")                     \
  X(kCoalesced, "coalesced", "waited for another request's fetch of the same key") \
  X(kHitForPass, "hit_for_pass", "passed because the key was recently not storable") \
  X(kStale, "stale", "served stale (grace, stale-while-revalidate, stale-if-error)") \
  X(kRevalidated, "revalidated", "revalidated with the backend (304)")                \
  X(kEsiFailed, "esi_failed", "ESI/SSI includes that failed and were left out or replaced by alt")

enum class Event {
#define EDGE_ENUM(name, key, help) name,
  EDGE_CACHE_EVENTS(EDGE_ENUM)
#undef EDGE_ENUM
      kCount
};
constexpr size_t kEventCount = static_cast<size_t>(Event::kCount);
const char* event_key(Event event);   // "hits", ... (JSON keys and metric names)
const char* event_help(Event event);  // one line for humans (metric HELP)

class Counters {
 public:
  explicit Counters(size_t hosts) : hosts_(hosts), counts_(new std::atomic<uint64_t>[hosts * kEventCount]) {
    for (size_t i = 0; i < hosts * kEventCount; ++i) counts_[i].store(0, std::memory_order_relaxed);
  }
  void count(int host, Event event) {
    if (host < 0 || static_cast<size_t>(host) >= hosts_) return;
    std::atomic<uint64_t>& n = counts_[static_cast<size_t>(host) * kEventCount + static_cast<size_t>(event)];
    n.store(n.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // one writer
  }
  uint64_t get(size_t host, Event event) const {
    return counts_[host * kEventCount + static_cast<size_t>(event)].load(std::memory_order_relaxed);
  }
  size_t hosts() const { return hosts_; }

 private:
  size_t hosts_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
};

}  // namespace edge::cache
