// proxy/tier: the memcached tier. The HTTP cache's second tier (after the RAM store), shared by
// every edge node on the same memcached pool, and the source static routes answer from.
//
// Keys: an HTTP cache object is kept under http_key(cache key, key-cookie part); a static
// route's under its expanded `key` template (cache/static_key.h), which other tools may write.
// Values are edge records (cache/record.h); under a static key a value that is not one (a
// "foreign" value: no record magic) is a body as it is, served with a Content-Type from the
// path's extension, as nginx's memcached module serves such values.
//
// Purges across nodes: every purge by URL or tag and every ban made through an admin port is
// appended to an invalidation log kept in memcached (cache/invalidation.h, key kLogKey), and a
// record read back is checked against the entries made since it was stored: a hard one makes
// it a miss, a soft one makes it stale. Each append is followed by a new random token under
// kTokenKey. Every lookup fetches the token with the record in the same multi-get; the parsed
// log is cached per process with the token it was read after, and fetched again only when the
// token differs (or is missing). A log that is missing or does not parse is replaced by an
// empty one created now, so every record stored before is a miss: nothing purged can come back.
//
// memcached slow or down: a lookup that fails or times out is a miss (the request goes on to
// the backend), writes are fire and forget; the pool skips a failing server for a while
// (cache/memcached.h) and the counters show it. Bodies over max_item are kept out of memcached
// (they stay in the RAM tier only), never split.
//
// Threads: every function may be called from any thread. Callbacks run through the `post`
// given with each call (a worker's or the admin's LoopTasks). The Tier must outlive every loop
// that may still run one of its callbacks: it is destroyed after the workers and the admin
// loop have ended (callbacks still queued then are dropped unrun, cache/memcached.h).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/invalidation.h"
#include "cache/memcached.h"
#include "cache/store.h"
#include "conf/config.h"
#include "proxy/metrics.h"

namespace edge::proxy {

struct TierCounters {
  uint64_t lookups = 0;
  uint64_t hits = 0;          // edge records found usable (fresh or stale)
  uint64_t foreign = 0;       // foreign values served (static routes)
  uint64_t misses = 0;        // nothing under the key, or memcached failed
  uint64_t purged = 0;        // records found, purged by the invalidation log
  uint64_t unparsable = 0;    // values that are not valid records where one was expected
  uint64_t stores = 0;        // records written
  uint64_t too_large = 0;     // records over max_item, kept out
  uint64_t invalidations = 0; // purges and bans recorded in the log
  uint64_t invalidation_failures = 0;
  uint64_t log_reads = 0;     // times the log was fetched (its token changed)
  cache::McCounters pool;
  // From the ask to memcached's answer (queueing on the pool included): a lookup's multi-get,
  // a write-through's set.
  HistogramCounts get_latency;
  HistogramCounts set_latency;
};

class Tier {
 public:
  using Post = cache::MemcachedPool::Post;
  static constexpr std::string_view kLogKey = "edge:invalidations";
  static constexpr std::string_view kTokenKey = "edge:invalidations:token";

  struct Found {
    enum class Kind { kMiss, kRecord, kForeign };
    Kind kind = Kind::kMiss;
    // kRecord and kForeign: a complete object owned by the caller, in no store yet. A record a
    // soft entry of the log concerns comes back with `invalidated` set.
    std::shared_ptr<cache::CachedObject> object;
    bool assemble = false;  // kRecord: a page to compile and assemble (ESI/SSI)
  };
  using FoundCallback = std::function<void(Found)>;

  struct Lookup {
    std::string key;
    // A static route's key: a value that is not a record is served as a body (path: for its
    // Content-Type), fresh for `foreign_lifetime` seconds once in the RAM tier.
    bool foreign_ok = false;
    std::string path;
    cache::Seconds foreign_lifetime = 0;
  };

  explicit Tier(const conf::Config& config);
  ~Tier();
  Tier(const Tier&) = delete;
  Tier& operator=(const Tier&) = delete;

  // The memcached key of an HTTP cache object: "edge:" + key (+ "|" + key-cookie part), or its
  // SHA-256 ("edge:#<hex>") when that is not a valid memcached key.
  static std::string http_key(std::string_view cache_key, std::string_view key_extra);

  // Looks `lookup.key` up. False when memcached cannot be asked now (a miss at once, nothing
  // called back); else `done` is called exactly once through `post`.
  bool lookup(Lookup lookup, Post post, FoundCallback done);

  // Write-through: the record of a complete object under `key`, kept for as long as it may be
  // used (its remaining freshness, plus grace or stale-while-revalidate / stale-if-error);
  // nothing is written when that is not positive. Fire and forget.
  void store(const cache::CachedObject& object, std::string key);

  // A purge or ban made here: deletes `remove_keys`, appends `entry` (its `at` set to now) to
  // the invalidation log and renews the token. done(ok, error) through `post` once it holds (or
  // failed: memcached down or refusing), exactly once.
  using RecordCallback = std::function<void(bool ok, std::string error)>;
  void record(cache::Invalidation entry, std::vector<std::string> remove_keys, Post post, RecordCallback done);

  TierCounters counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::proxy
