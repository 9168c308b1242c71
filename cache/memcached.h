// cache/memcached: a client for a pool of memcached servers that never makes its caller wait.
//
// libmemcached blocks, so the pool runs it on `threads` dedicated threads, each owning its own
// memcached_st (a handle is never shared between threads). Operations are queued; a thread takes
// one, runs it to the end (bounded by `timeout`), and hands the result to the caller's executor.
//
// Servers and keys: keys are spread over `servers` by consistent hashing (ketama, MD5), so adding
// or removing a server moves only the keys of its share of the ring. The pool speaks memcached's
// ASCII protocol: the binary protocol is deprecated by memcached itself, and ASCII is what other
// tools writing the same keys (nginx's memcached module, scripts) speak. A multi-get is one
// "get k1 k2 ..." per server, sent to all of them before any answer is read.
//
// Batching: a thread that takes a get from the queue also takes the gets queued right behind it
// (consecutive gets at the head of the queue, up to kMaxBatchKeys keys in all; a get with more
// keys than that goes alone) and asks for all their keys in one multi-get, so a burst of gets
// costs one round trip per server instead of one per get. Nothing is reordered: a get never
// overtakes an operation queued before it. Each get still completes on its own (its own result,
// in its own key order, through its own `post`); see McGetResult for its status.
//
// Failures: every network step (connect, poll, send, receive) is bounded by `timeout`. A server
// that fails `failure_limit` times in a row is taken out of the ring (its keys fall to the other
// servers, where they miss at first) for `retry_after`, then tried again. A failed or timed-out
// operation completes with kError or kTimeout; nothing is retried by the pool: memcached is a
// cache, and the caller goes on without it.
//
// Large values: memcached refuses items over its item limit (1 MiB by default, `-I`). A set whose
// key and value, with about 100 bytes of the server's per-item overhead, exceed `item_limit`
// completes with kTooLarge without reaching the network; the tier keeps such objects out of
// memcached (they live in RAM only), rather than splitting them. The same check applies to add
// and cas, and to the part an append adds; the size of the appended-to value is unknown here,
// so a result over the limit is the server's to refuse (see append).
//
// Threads and callbacks: every public function may be called from any thread, and never blocks
// on memcached. An operation that returns false was refused at once (the queue holds
// `max_pending` operations, a key is not a valid memcached key, a cas has no CAS id, or the pool
// is shutting down) and its callback is never called. One that returns true calls its callback exactly once, as
// post(task), from a pool thread: `post` chooses where the callback runs (a worker passes a
// function that queues the task on its loop and signals its uv_async_t; a test may run it
// inline). The destructor stops the threads: operations still queued complete with kCancelled,
// so `post` must stay callable until the pool is destroyed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edge::cache {

struct MemcachedConfig {
  std::vector<std::string> servers;  // "host:port"; host is a name or an IPv4/IPv6 literal
  std::chrono::milliseconds timeout{50};
  int threads = 2;
  size_t max_pending = 10000;         // operations queued and not yet taken by a thread
  size_t item_limit = 1024 * 1024;    // the servers' -I
  int failure_limit = 2;              // consecutive failures before a server leaves the ring
  std::chrono::seconds retry_after{2};  // how long a failed server stays out
};

enum class McStatus {
  kOk,         // done (a get: every key answered, hit or miss)
  kNotFound,   // remove, increment, cas: the key was not there
  kNotStored,  // add: the key exists; append: the key is missing; cas: the value changed since gets
  kError,      // a server failed or answered an error (a get: some keys may still have values)
  kTimeout,    // a server did not answer within the timeout
  kTooLarge,   // set, add, cas, append: over item_limit, not sent
  kCancelled,  // the pool was destroyed before the operation ran
};
const char* mc_status_name(McStatus status);

struct McGetResult {
  // A get batched with others (see Batching above) is kOk when every one of its keys has a value,
  // even if a server that held only other gets' keys failed; otherwise it has the status of the
  // whole multi-get, so a miss may be reported with kError when any server of the batch failed.
  McStatus status = McStatus::kOk;
  // values[i] is the value of keys[i], or nullopt (a miss, or its server failed).
  std::vector<std::optional<std::string>> values;
};

struct McCounters {
  uint64_t gets = 0;    // keys asked for, by get and gets
  uint64_t hits = 0;
  uint64_t misses = 0;  // keys asked for and not found (including on a failed server)
  uint64_t sets = 0;    // stores that succeeded: set, add, append, cas
  uint64_t removes = 0;
  uint64_t errors = 0;  // operations that ended in kError or kTooLarge
  uint64_t timeouts = 0;
  uint64_t refused = 0;  // operations refused at once (queue full, bad key, shutting down)
  uint64_t not_stored = 0;  // add, append and cas that ended in kNotStored (not errors)
  uint64_t increments = 0;  // increments that succeeded
  uint64_t batches = 0;     // multi-gets sent for gets: gets / batches is the keys per round trip
};

class MemcachedPool {
 public:
  // Runs a task where the caller wants its callbacks to run. Called from pool threads.
  using Post = std::function<void(std::function<void()>)>;
  using GetCallback = std::function<void(McGetResult)>;
  using DoneCallback = std::function<void(McStatus)>;
  // kOk with the value after the increment; any other status with 0.
  using CountCallback = std::function<void(McStatus, uint64_t new_value)>;
  // kOk with the value and its CAS id, or with nullopt and 0 for a miss; any other status with
  // nullopt and 0.
  using CasGetCallback = std::function<void(McStatus, std::optional<std::string> value, uint64_t cas)>;

  // The most keys one batched multi-get asks for (see Batching above).
  static constexpr size_t kMaxBatchKeys = 64;

  // Starts the threads. Server entries that are not host:port are skipped (conf/ validates them
  // first); with no server left, every operation is refused.
  explicit MemcachedPool(MemcachedConfig config);
  ~MemcachedPool();
  MemcachedPool(const MemcachedPool&) = delete;
  MemcachedPool& operator=(const MemcachedPool&) = delete;

  // A key memcached's ASCII protocol accepts: 1 to 250 bytes, no space or control character.
  static bool valid_key(std::string_view key);

  // One multi-get for all `keys` (duplicates allowed). `keys` is copied.
  bool get(std::vector<std::string> keys, Post post, GetCallback done);
  // Stores `value` under `key` for `ttl` seconds (0: until evicted; memcached reads values over 30
  // days as a Unix time, so the tier caps its TTLs below that).
  bool set(std::string key, std::string value, uint32_t ttl_seconds, Post post, DoneCallback done);
  bool remove(std::string key, Post post, DoneCallback done);
  // Stores `value` only if `key` is absent: kOk, or kNotStored when it exists.
  bool add(std::string key, std::string value, uint32_t ttl_seconds, Post post, DoneCallback done);
  // Appends `value` to the value of an existing `key` (its TTL unchanged): kOk, or kNotStored when
  // the key is missing. kTooLarge when key and `value` alone exceed item_limit (not sent). A
  // result over the server's limit is refused by the server: memcached 1.6 answers NOT_STORED,
  // as for a missing key, so that is kNotStored too (kTooLarge if a server says "too large").
  bool append(std::string key, std::string value, Post post, DoneCallback done);
  // Adds `delta` to the decimal number stored under `key`, wrapping at 2^64: kOk with the new
  // value, kNotFound when the key is missing (the ASCII protocol has no initial value: add it
  // first), kError when the value is not a number.
  bool increment(std::string key, uint64_t delta, Post post, CountCallback done);
  // Reads one key with its CAS id, for a later cas. Never batched with gets.
  bool gets(std::string key, Post post, CasGetCallback done);
  // Stores `value` only if the item is unchanged since the gets that returned `cas_id`: kOk,
  // kNotStored when it changed (EXISTS), kNotFound when it is gone. A `cas_id` of 0 (never a
  // real id) is refused at once.
  bool cas(std::string key, std::string value, uint32_t ttl_seconds, uint64_t cas_id, Post post, DoneCallback done);

  McCounters counters() const;
  size_t pending() const;  // queued, not yet taken

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::cache
