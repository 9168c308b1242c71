// cache/store: the RAM tier of the HTTP cache: stored responses, shared by every worker thread,
// bounded in memory, evicted by S3-FIFO.
//
// Objects: a CachedObject is built once (by the fetch that stored it) and never changed after
// insert(), except for its `invalidated` flag (a soft purge). Readers get an ObjectRef, a
// shared_ptr to a const object: a body being delivered stays alive and is never copied, whatever
// the store does meanwhile (replace, evict, purge).
//
// Keys: a key (cache::cache_key) has one or more variants, told apart by their variant string
// (cache::vary_key over the Vary names the stored response gave; "" without Vary). A new object
// with the same key and variant replaces the old one.
//
// Memory: every object is charged its head, body, key and a fixed overhead; the sum never stays
// above `memory` after insert() returns. Objects over `max_object` are refused.
//
// Eviction (S3-FIFO): new objects enter a small FIFO (a tenth of the memory); an object leaving
// the small FIFO goes to the main FIFO if it was read since it came in, else it is evicted and
// its key remembered in a ghost FIFO; an object whose key is in the ghost FIFO enters the main
// FIFO directly. The main FIFO gives an object that was read another round (up to 3 reads
// remembered) before evicting it. One-hit wonders thus leave quickly without disturbing the
// popular objects, which a plain LRU lets a scan flush out.
//
// Threads: every public function may be called from any thread. The store is lock-striped by
// key for lookups; insertion and eviction take the stripe's lock and, briefly, the FIFO lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cache/policy.h"
#include "http/message.h"

namespace edge::cache {

struct CachedObject {
  std::string key;      // cache_key(host, target)
  std::string variant;  // vary_key of the request that fetched it; "" without Vary
  std::vector<std::string> vary_names;  // lower-case names from the response's Vary, sorted
  int status = 200;
  std::string reason;
  http::Headers headers;  // as stored: hop-by-hop fields already removed
  std::string body;
  AgeBasis age;
  Seconds lifetime = 0;
  CacheControl cc;                // the response's directives
  std::vector<std::string> tags;  // Surrogate-Key / xkey values
  // Set by a soft purge: the object stays, but is treated as stale from then on.
  mutable std::atomic<bool> invalidated{false};

  uint64_t charge() const;  // bytes counted against the store's memory
};
using ObjectRef = std::shared_ptr<const CachedObject>;

struct StoreStats {
  uint64_t objects = 0;
  uint64_t bytes = 0;
  uint64_t inserts = 0;
  uint64_t evictions = 0;
  uint64_t refused_too_large = 0;
};

class Store {
 public:
  Store(uint64_t memory, uint64_t max_object);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // The variant of `key` whose Vary selection matches these request headers, or null. Counts as
  // a read for eviction.
  ObjectRef lookup(std::string_view key, const http::Headers& request_headers);

  // Stores (or replaces) the object. False when it is larger than max_object or than the whole
  // memory; nothing is stored then.
  bool insert(ObjectRef object);

  // Removes every variant of the key; returns how many objects went. With `soft`, marks them
  // invalidated instead and returns how many were marked.
  size_t purge(std::string_view key, bool soft);
  // Every object whose tags include `tag`, removed or (soft) marked.
  size_t purge_tag(std::string_view tag, bool soft);
  // Every object for which `match` is true, removed or marked; for bans swept in the background.
  size_t purge_if(const std::function<bool(const CachedObject&)>& match, bool soft);

  StoreStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::cache
