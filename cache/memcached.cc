#include "cache/memcached.h"

#include <libmemcached/memcached.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <variant>

namespace edge::cache {
namespace {

// memcached's own item header, the key's terminator, flags, CAS and the value's "\r\n": what an
// item costs the server beyond its key and value, rounded up so a value we accept is never
// refused for a few bytes.
constexpr size_t kItemOverhead = 96;

struct Server {
  std::string host;
  in_port_t port;
};

std::optional<Server> parse_server(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<unsigned>(c - '0');
    if (port > 65535) return std::nullopt;
  }
  if (port == 0 || host.empty()) return std::nullopt;
  return Server{std::string(host), static_cast<in_port_t>(port)};
}

McStatus status_of(memcached_return_t rc) {
  switch (rc) {
    case MEMCACHED_SUCCESS:
    case MEMCACHED_STORED:
    case MEMCACHED_DELETED:
    case MEMCACHED_END:
      return McStatus::kOk;
    case MEMCACHED_NOTFOUND:
      return McStatus::kNotFound;
    case MEMCACHED_NOTSTORED:    // add of an existing key, append to a missing one
    case MEMCACHED_DATA_EXISTS:  // cas after a change
      return McStatus::kNotStored;
    case MEMCACHED_TIMEOUT:
      return McStatus::kTimeout;
    case MEMCACHED_E2BIG:
      return McStatus::kTooLarge;
    default:
      return McStatus::kError;
  }
}

// A handle per thread, configured identically, so every thread maps a key to the same server.
memcached_st* make_handle(const std::vector<Server>& servers, const MemcachedConfig& config) {
  memcached_st* mc = memcached_create(nullptr);
  if (!mc) return nullptr;
  for (const Server& s : servers) memcached_server_add(mc, s.host.c_str(), s.port);
  const auto ms = static_cast<uint64_t>(config.timeout.count());
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA_HASH, MEMCACHED_HASH_MD5);
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_NO_BLOCK, 1);
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, ms);
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, ms);
  // These two are in microseconds, unlike the others.
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SND_TIMEOUT, ms * 1000);
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, ms * 1000);
  // Enabling removal presets its own failure limit, so ours is set after it.
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_REMOVE_FAILED_SERVERS, 1);
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SERVER_FAILURE_LIMIT, static_cast<uint64_t>(config.failure_limit));
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, static_cast<uint64_t>(config.retry_after.count()));
  return mc;
}

}  // namespace

const char* mc_status_name(McStatus status) {
  switch (status) {
    case McStatus::kOk: return "ok";
    case McStatus::kNotFound: return "not found";
    case McStatus::kNotStored: return "not stored";
    case McStatus::kError: return "error";
    case McStatus::kTimeout: return "timeout";
    case McStatus::kTooLarge: return "too large";
    case McStatus::kCancelled: return "cancelled";
  }
  return "?";
}

struct MemcachedPool::Impl {
  using Callback = std::variant<DoneCallback, GetCallback, CountCallback, CasGetCallback>;

  struct Op {
    enum Kind { kGet, kGets, kSet, kAdd, kAppend, kCas, kRemove, kIncrement } kind;
    std::vector<std::string> keys;  // a get's
    std::string key;                // every other operation's
    std::string value;
    uint32_t ttl = 0;
    uint64_t number = 0;  // increment: the delta; cas: the CAS id
    Post post;
    Callback done;  // GetCallback for kGet, CasGetCallback for kGets, CountCallback for kIncrement
  };

  // One key of a batch: it answers value `index` of op `op`.
  struct Slot {
    std::string_view key;
    uint32_t op;
    uint32_t index;
  };

  // A thread's handle and the buffers it reuses from one operation to the next, so a batch
  // allocates only what it hands to the callers.
  struct Worker {
    memcached_st* mc = nullptr;
    memcached_result_st result;  // initialized while mc is set
    std::vector<Op> batch;
    std::vector<Slot> slots;
    std::vector<const char*> key_ptrs;
    std::vector<size_t> key_lengths;
    std::vector<McGetResult> results;
  };

  MemcachedConfig config;
  std::vector<Server> servers;

  mutable std::mutex mutex;
  std::condition_variable wake;
  std::deque<Op> queue;   // guarded by mutex
  bool stopping = false;  // guarded by mutex
  int idle = 0;           // threads waiting on `wake`; guarded by mutex
  std::vector<std::thread> threads;

  std::atomic<uint64_t> gets{0}, hits{0}, misses{0}, sets{0}, removes{0}, errors{0}, timeouts{0}, refused{0},
      not_stored{0}, increments{0}, batches{0};

  bool refuse() {
    refused.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  bool submit(Op op) {
    bool notify;
    {
      std::lock_guard lock(mutex);
      if (stopping || servers.empty() || queue.size() >= config.max_pending) return refuse();
      queue.push_back(std::move(op));
      // A busy thread looks at the queue again before it waits, so only an idle one needs the
      // signal.
      notify = idle > 0;
    }
    // Outside the lock, so the woken thread does not wake into a held mutex.
    if (notify) wake.notify_one();
    return true;
  }

  bool submit_keyed(Op op) {
    if (!MemcachedPool::valid_key(op.key)) return refuse();
    return submit(std::move(op));
  }

  void count(McStatus status) {
    if (status == McStatus::kTimeout) timeouts.fetch_add(1, std::memory_order_relaxed);
    if (status == McStatus::kError || status == McStatus::kTooLarge) errors.fetch_add(1, std::memory_order_relaxed);
    if (status == McStatus::kNotStored) not_stored.fetch_add(1, std::memory_order_relaxed);
  }

  static void post_get(Op& op, McGetResult result) {
    op.post([done = std::get<GetCallback>(std::move(op.done)), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  }

  static void post_gets(Op& op, McStatus status, std::optional<std::string> value, uint64_t cas) {
    op.post([done = std::get<CasGetCallback>(std::move(op.done)), status, value = std::move(value), cas]() mutable {
      done(status, std::move(value), cas);
    });
  }

  // Completes `op` with `status` and no value, whatever its kind; uncounted.
  static void post_status(Op& op, McStatus status) {
    switch (op.kind) {
      case Op::kGet:
        post_get(op, McGetResult{status, std::vector<std::optional<std::string>>(op.keys.size())});
        break;
      case Op::kGets:
        post_gets(op, status, std::nullopt, 0);
        break;
      case Op::kIncrement:
        op.post([done = std::get<CountCallback>(std::move(op.done)), status] { done(status, 0); });
        break;
      default:
        op.post([done = std::get<DoneCallback>(std::move(op.done)), status] { done(status); });
        break;
    }
  }

  void finish(Op& op, McStatus status) {
    count(status);
    post_status(op, status);
  }

  // Takes the next operation into w.batch: a get with the gets queued right behind it, up to
  // kMaxBatchKeys keys, or one other operation. False when the pool is stopping.
  bool take(Worker& w) {
    w.batch.clear();
    std::unique_lock lock(mutex);
    while (!stopping && queue.empty()) {
      ++idle;
      wake.wait(lock);
      --idle;
    }
    if (stopping) return false;
    size_t keys = queue.front().keys.size();
    w.batch.push_back(std::move(queue.front()));
    queue.pop_front();
    if (w.batch.front().kind != Op::kGet) return true;
    while (!queue.empty() && queue.front().kind == Op::kGet && keys + queue.front().keys.size() <= kMaxBatchKeys) {
      keys += queue.front().keys.size();
      w.batch.push_back(std::move(queue.front()));
      queue.pop_front();
    }
    return true;
  }

  void run(Worker& w) {
    while (take(w)) {
      if (!w.mc) {
        // The handle could not be created (out of memory): fail instead of hanging the caller.
        for (Op& op : w.batch) finish(op, McStatus::kError);
        continue;
      }
      Op& op = w.batch.front();
      switch (op.kind) {
        case Op::kGet: run_get(w); break;
        case Op::kGets: run_gets(w, op); break;
        case Op::kSet:
        case Op::kAdd:
        case Op::kAppend:
        case Op::kCas: run_store(w.mc, op); break;
        case Op::kRemove: run_remove(w.mc, op); break;
        case Op::kIncrement: run_increment(w.mc, op); break;
      }
    }
  }

  // Sends one multi-get for `n` keys and hands each value fetched to on_value(result); returns
  // the status of the whole multi-get.
  template <typename OnValue>
  McStatus fetch(Worker& w, const char* const* keys, const size_t* lengths, size_t n, OnValue&& on_value) {
    McStatus status = McStatus::kOk;
    memcached_return_t rc = memcached_mget(w.mc, keys, lengths, n);
    if (rc != MEMCACHED_SUCCESS) status = rc == MEMCACHED_SOME_ERRORS ? McStatus::kError : status_of(rc);
    // SOME_ERRORS: the keys of the servers that took the request are still answered.
    if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_SOME_ERRORS) return status;
    // Each server can end its part with an error at most once; the bound only guards against a
    // library that keeps reporting one.
    size_t errors_left = memcached_server_count(w.mc) + 1;
    for (;;) {
      memcached_return_t fetch_rc = MEMCACHED_SUCCESS;
      if (memcached_fetch_result(w.mc, &w.result, &fetch_rc)) {
        on_value(&w.result);
        continue;
      }
      if (fetch_rc == MEMCACHED_END || fetch_rc == MEMCACHED_NOTFOUND || fetch_rc == MEMCACHED_SUCCESS) break;
      if (status == McStatus::kOk || fetch_rc == MEMCACHED_TIMEOUT) status = status_of(fetch_rc);
      if (--errors_left == 0) {
        memcached_quit(w.mc);  // drop whatever is half read, so the next operation starts clean
        break;
      }
    }
    // A server's failure met in the same fetch call as another server's value is dropped by
    // libmemcached; the handle's last error, cleared by each mget, still has it.
    if (status == McStatus::kOk) {
      memcached_return_t last = memcached_last_error(w.mc);
      if (last != MEMCACHED_SUCCESS) status = last == MEMCACHED_TIMEOUT ? McStatus::kTimeout : McStatus::kError;
    }
    return status;
  }

  void run_get(Worker& w) {
    std::vector<Op>& batch = w.batch;
    // Sorted by key, so a fetched key finds its places by binary search, and the same key asked
    // twice (in one get or two) is sent once and answers every place.
    w.slots.clear();
    for (size_t o = 0; o < batch.size(); ++o)
      for (size_t i = 0; i < batch[o].keys.size(); ++i)
        w.slots.push_back(Slot{batch[o].keys[i], static_cast<uint32_t>(o), static_cast<uint32_t>(i)});
    std::sort(w.slots.begin(), w.slots.end(), [](const Slot& a, const Slot& b) { return a.key < b.key; });
    w.key_ptrs.clear();
    w.key_lengths.clear();
    for (size_t i = 0; i < w.slots.size(); ++i) {
      if (i > 0 && w.slots[i].key == w.slots[i - 1].key) continue;
      w.key_ptrs.push_back(w.slots[i].key.data());
      w.key_lengths.push_back(w.slots[i].key.size());
    }
    w.results.resize(batch.size());
    for (size_t o = 0; o < batch.size(); ++o) w.results[o].values.resize(batch[o].keys.size());

    auto by_key = [](const Slot& slot, std::string_view key) { return slot.key < key; };
    McStatus status = fetch(w, w.key_ptrs.data(), w.key_lengths.data(), w.key_ptrs.size(), [&](memcached_result_st* r) {
      std::string_view key(memcached_result_key_value(r), memcached_result_key_length(r));
      auto it = std::lower_bound(w.slots.begin(), w.slots.end(), key, by_key);
      if (it == w.slots.end() || it->key != key) return;
      // The value is copied out of the library's buffer once; every other place gets a copy of
      // that, and the last place takes it.
      std::string value(memcached_result_value(r), memcached_result_length(r));
      for (; it + 1 != w.slots.end() && (it + 1)->key == key; ++it) w.results[it->op].values[it->index] = value;
      w.results[it->op].values[it->index] = std::move(value);
    });
    batches.fetch_add(1, std::memory_order_relaxed);

    for (size_t o = 0; o < batch.size(); ++o) {
      McGetResult& result = w.results[o];
      uint64_t found = 0;
      for (const auto& v : result.values) found += v.has_value();
      gets.fetch_add(result.values.size(), std::memory_order_relaxed);
      hits.fetch_add(found, std::memory_order_relaxed);
      misses.fetch_add(result.values.size() - found, std::memory_order_relaxed);
      // With every key answered this get is whole, whichever server of the batch failed; with a
      // miss, that miss may be a failed server's, so it takes the batch's status.
      result.status = found == result.values.size() ? McStatus::kOk : status;
      count(result.status);
      post_get(batch[o], std::move(result));
    }
  }

  void run_gets(Worker& w, Op& op) {
    const char* key = op.key.data();
    size_t length = op.key.size();
    std::optional<std::string> value;
    uint64_t cas = 0;
    // Only this operation asks for CAS ids: plain gets stay "get", as other clients send them.
    memcached_behavior_set(w.mc, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
    McStatus status = fetch(w, &key, &length, 1, [&](memcached_result_st* r) {
      value.emplace(memcached_result_value(r), memcached_result_length(r));
      cas = memcached_result_cas(r);
    });
    memcached_behavior_set(w.mc, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 0);
    if (status != McStatus::kOk) {
      value.reset();
      cas = 0;
    }
    gets.fetch_add(1, std::memory_order_relaxed);
    (value ? hits : misses).fetch_add(1, std::memory_order_relaxed);
    count(status);
    post_gets(op, status, std::move(value), cas);
  }

  void run_store(memcached_st* mc, Op& op) {
    const std::string& key = op.key;
    if (key.size() + op.value.size() + kItemOverhead > config.item_limit) {
      finish(op, McStatus::kTooLarge);
      return;
    }
    const auto ttl = static_cast<time_t>(op.ttl);
    memcached_return_t rc = MEMCACHED_SUCCESS;
    switch (op.kind) {
      case Op::kSet: rc = memcached_set(mc, key.data(), key.size(), op.value.data(), op.value.size(), ttl, 0); break;
      case Op::kAdd: rc = memcached_add(mc, key.data(), key.size(), op.value.data(), op.value.size(), ttl, 0); break;
      // memcached ignores an append's flags and expiration: the item keeps its own.
      case Op::kAppend:
        rc = memcached_append(mc, key.data(), key.size(), op.value.data(), op.value.size(), 0, 0);
        break;
      case Op::kCas:
        rc = memcached_cas(mc, key.data(), key.size(), op.value.data(), op.value.size(), ttl, 0, op.number);
        break;
      default: rc = MEMCACHED_FAILURE; break;
    }
    McStatus status = status_of(rc);
    if (status == McStatus::kOk) sets.fetch_add(1, std::memory_order_relaxed);
    finish(op, status);
  }

  void run_remove(memcached_st* mc, Op& op) {
    McStatus status = status_of(memcached_delete(mc, op.key.data(), op.key.size(), 0));
    if (status == McStatus::kOk) removes.fetch_add(1, std::memory_order_relaxed);
    finish(op, status);
  }

  void run_increment(memcached_st* mc, Op& op) {
    uint64_t value = 0;
    // The _by_key form, with the key as its own group key (which is what memcached_increment
    // does), because only it takes a 64-bit delta.
    McStatus status = status_of(
        memcached_increment_by_key(mc, op.key.data(), op.key.size(), op.key.data(), op.key.size(), op.number, &value));
    if (status == McStatus::kOk) {
      increments.fetch_add(1, std::memory_order_relaxed);
    } else {
      value = 0;
    }
    count(status);
    op.post([done = std::get<CountCallback>(std::move(op.done)), status, value] { done(status, value); });
  }
};

MemcachedPool::MemcachedPool(MemcachedConfig config) : impl_(std::make_unique<Impl>()) {
  impl_->config = std::move(config);
  for (const std::string& text : impl_->config.servers)
    if (auto server = parse_server(text)) impl_->servers.push_back(std::move(*server));
  if (impl_->servers.empty()) return;
  const int threads = impl_->config.threads > 0 ? impl_->config.threads : 1;
  for (int i = 0; i < threads; ++i) {
    memcached_st* mc = make_handle(impl_->servers, impl_->config);
    impl_->threads.emplace_back([impl = impl_.get(), mc] {
      Impl::Worker worker;
      // The fetch result lives with the thread, so its value buffer is reused across fetches.
      if (mc && memcached_result_create(mc, &worker.result)) worker.mc = mc;
      impl->run(worker);
      if (worker.mc) memcached_result_free(&worker.result);
      if (mc) memcached_free(mc);
    });
  }
}

MemcachedPool::~MemcachedPool() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  for (std::thread& t : impl_->threads) t.join();
  for (Impl::Op& op : impl_->queue) Impl::post_status(op, McStatus::kCancelled);
}

bool MemcachedPool::valid_key(std::string_view key) {
  if (key.empty() || key.size() > 250) return false;
  for (char c : key) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return false;
  }
  return true;
}

bool MemcachedPool::get(std::vector<std::string> keys, Post post, GetCallback done) {
  bool ok = !keys.empty();
  for (const std::string& key : keys) ok = ok && valid_key(key);
  if (!ok) return impl_->refuse();
  return impl_->submit(
      Impl::Op{.kind = Impl::Op::kGet, .keys = std::move(keys), .post = std::move(post), .done = std::move(done)});
}

bool MemcachedPool::set(std::string key, std::string value, uint32_t ttl_seconds, Post post, DoneCallback done) {
  return impl_->submit_keyed(Impl::Op{.kind = Impl::Op::kSet,
                                      .key = std::move(key),
                                      .value = std::move(value),
                                      .ttl = ttl_seconds,
                                      .post = std::move(post),
                                      .done = std::move(done)});
}

bool MemcachedPool::remove(std::string key, Post post, DoneCallback done) {
  return impl_->submit_keyed(
      Impl::Op{.kind = Impl::Op::kRemove, .key = std::move(key), .post = std::move(post), .done = std::move(done)});
}

bool MemcachedPool::add(std::string key, std::string value, uint32_t ttl_seconds, Post post, DoneCallback done) {
  return impl_->submit_keyed(Impl::Op{.kind = Impl::Op::kAdd,
                                      .key = std::move(key),
                                      .value = std::move(value),
                                      .ttl = ttl_seconds,
                                      .post = std::move(post),
                                      .done = std::move(done)});
}

bool MemcachedPool::append(std::string key, std::string value, Post post, DoneCallback done) {
  return impl_->submit_keyed(Impl::Op{.kind = Impl::Op::kAppend,
                                      .key = std::move(key),
                                      .value = std::move(value),
                                      .post = std::move(post),
                                      .done = std::move(done)});
}

bool MemcachedPool::increment(std::string key, uint64_t delta, Post post, CountCallback done) {
  return impl_->submit_keyed(Impl::Op{.kind = Impl::Op::kIncrement,
                                      .key = std::move(key),
                                      .number = delta,
                                      .post = std::move(post),
                                      .done = std::move(done)});
}

bool MemcachedPool::gets(std::string key, Post post, CasGetCallback done) {
  return impl_->submit_keyed(
      Impl::Op{.kind = Impl::Op::kGets, .key = std::move(key), .post = std::move(post), .done = std::move(done)});
}

bool MemcachedPool::cas(std::string key, std::string value, uint32_t ttl_seconds, uint64_t cas_id, Post post,
                        DoneCallback done) {
  // Without an id libmemcached would send a cas line memcached cannot parse.
  if (cas_id == 0) return impl_->refuse();
  return impl_->submit_keyed(Impl::Op{.kind = Impl::Op::kCas,
                                      .key = std::move(key),
                                      .value = std::move(value),
                                      .ttl = ttl_seconds,
                                      .number = cas_id,
                                      .post = std::move(post),
                                      .done = std::move(done)});
}

McCounters MemcachedPool::counters() const {
  auto r = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
  McCounters c;
  c.gets = r(impl_->gets);
  c.hits = r(impl_->hits);
  c.misses = r(impl_->misses);
  c.sets = r(impl_->sets);
  c.removes = r(impl_->removes);
  c.errors = r(impl_->errors);
  c.timeouts = r(impl_->timeouts);
  c.refused = r(impl_->refused);
  c.not_stored = r(impl_->not_stored);
  c.increments = r(impl_->increments);
  c.batches = r(impl_->batches);
  return c;
}

size_t MemcachedPool::pending() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->queue.size();
}

}  // namespace edge::cache
