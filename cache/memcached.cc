#include "cache/memcached.h"

#include <libmemcached/memcached.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

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
    case McStatus::kError: return "error";
    case McStatus::kTimeout: return "timeout";
    case McStatus::kTooLarge: return "too large";
    case McStatus::kCancelled: return "cancelled";
  }
  return "?";
}

struct MemcachedPool::Impl {
  struct Op {
    enum Kind { kGet, kSet, kRemove } kind;
    std::vector<std::string> keys;  // a set or remove has one
    std::string value;
    uint32_t ttl = 0;
    Post post;
    GetCallback get_done;
    DoneCallback done;
  };

  MemcachedConfig config;
  std::vector<Server> servers;

  mutable std::mutex mutex;
  std::condition_variable wake;
  std::deque<Op> queue;  // guarded by mutex
  bool stopping = false;  // guarded by mutex
  std::vector<std::thread> threads;

  std::atomic<uint64_t> gets{0}, hits{0}, misses{0}, sets{0}, removes{0}, errors{0}, timeouts{0}, refused{0};

  bool submit(Op op) {
    {
      std::lock_guard lock(mutex);
      if (!stopping && !servers.empty() && queue.size() < config.max_pending) {
        queue.push_back(std::move(op));
        wake.notify_one();
        return true;
      }
    }
    refused.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  void count(McStatus status) {
    if (status == McStatus::kTimeout) timeouts.fetch_add(1, std::memory_order_relaxed);
    if (status == McStatus::kError || status == McStatus::kTooLarge) errors.fetch_add(1, std::memory_order_relaxed);
  }

  void finish(Op& op, McStatus status) {
    count(status);
    op.post([done = std::move(op.done), status] { done(status); });
  }

  void finish_get(Op& op, McGetResult result) {
    count(result.status);
    op.post([done = std::move(op.get_done), result = std::move(result)]() mutable { done(std::move(result)); });
  }

  void run(memcached_st* mc) {
    for (;;) {
      Op op;
      {
        std::unique_lock lock(mutex);
        wake.wait(lock, [&] { return stopping || !queue.empty(); });
        if (stopping) return;
        op = std::move(queue.front());
        queue.pop_front();
      }
      if (!mc) {
        // The handle could not be created (out of memory): fail instead of hanging the caller.
        if (op.kind == Op::kGet) {
          finish_get(op, McGetResult{McStatus::kError, std::vector<std::optional<std::string>>(op.keys.size())});
        } else {
          finish(op, McStatus::kError);
        }
        continue;
      }
      switch (op.kind) {
        case Op::kGet: run_get(mc, op); break;
        case Op::kSet: run_set(mc, op); break;
        case Op::kRemove: run_remove(mc, op); break;
      }
    }
  }

  void run_get(memcached_st* mc, Op& op) {
    McGetResult result;
    result.values.resize(op.keys.size());
    // The same key asked twice is sent once and answers both places.
    std::unordered_map<std::string_view, std::vector<size_t>> where;
    std::vector<const char*> key_ptrs;
    std::vector<size_t> key_lengths;
    for (size_t i = 0; i < op.keys.size(); ++i) {
      auto [it, fresh] = where.try_emplace(op.keys[i]);
      it->second.push_back(i);
      if (fresh) {
        key_ptrs.push_back(op.keys[i].data());
        key_lengths.push_back(op.keys[i].size());
      }
    }

    memcached_return_t rc = memcached_mget(mc, key_ptrs.data(), key_lengths.data(), key_ptrs.size());
    if (rc != MEMCACHED_SUCCESS) result.status = rc == MEMCACHED_SOME_ERRORS ? McStatus::kError : status_of(rc);
    // SOME_ERRORS: the keys of the servers that took the request are still answered.
    if (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_SOME_ERRORS) {
      // On the stack: a result the library allocated is freed by the library itself at the end of
      // the fetch, and freeing it again here would be a double free.
      memcached_result_st storage;
      memcached_result_st* fetched = memcached_result_create(mc, &storage);
      // Each server can end its part with an error at most once; the bound only guards against
      // a library that keeps reporting one.
      size_t errors_left = memcached_server_count(mc) + 1;
      while (fetched) {
        memcached_return_t fetch_rc = MEMCACHED_SUCCESS;
        if (memcached_fetch_result(mc, fetched, &fetch_rc)) {
          auto it = where.find(std::string_view(memcached_result_key_value(fetched), memcached_result_key_length(fetched)));
          if (it != where.end()) {
            std::string value(memcached_result_value(fetched), memcached_result_length(fetched));
            for (size_t i : it->second) result.values[i] = value;
          }
          continue;
        }
        if (fetch_rc == MEMCACHED_END || fetch_rc == MEMCACHED_NOTFOUND || fetch_rc == MEMCACHED_SUCCESS) break;
        if (result.status == McStatus::kOk || fetch_rc == MEMCACHED_TIMEOUT) result.status = status_of(fetch_rc);
        if (--errors_left == 0) {
          memcached_quit(mc);  // drop whatever is half read, so the next operation starts clean
          break;
        }
      }
      memcached_result_free(fetched);
    }

    uint64_t found = 0;
    for (const auto& v : result.values) found += v.has_value();
    gets.fetch_add(op.keys.size(), std::memory_order_relaxed);
    hits.fetch_add(found, std::memory_order_relaxed);
    misses.fetch_add(op.keys.size() - found, std::memory_order_relaxed);
    finish_get(op, std::move(result));
  }

  void run_set(memcached_st* mc, Op& op) {
    const std::string& key = op.keys.front();
    if (key.size() + op.value.size() + kItemOverhead > config.item_limit) {
      finish(op, McStatus::kTooLarge);
      return;
    }
    McStatus status = status_of(memcached_set(mc, key.data(), key.size(), op.value.data(), op.value.size(),
                                              static_cast<time_t>(op.ttl), 0));
    if (status == McStatus::kOk) sets.fetch_add(1, std::memory_order_relaxed);
    finish(op, status);
  }

  void run_remove(memcached_st* mc, Op& op) {
    const std::string& key = op.keys.front();
    McStatus status = status_of(memcached_delete(mc, key.data(), key.size(), 0));
    if (status == McStatus::kOk) removes.fetch_add(1, std::memory_order_relaxed);
    finish(op, status);
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
      impl->run(mc);
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
  for (Impl::Op& op : impl_->queue) {
    if (op.kind == Impl::Op::kGet) {
      McGetResult result{McStatus::kCancelled, std::vector<std::optional<std::string>>(op.keys.size())};
      op.post([done = std::move(op.get_done), result = std::move(result)]() mutable { done(std::move(result)); });
    } else {
      op.post([done = std::move(op.done)] { done(McStatus::kCancelled); });
    }
  }
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
  if (!ok) {
    impl_->refused.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  Impl::Op op{Impl::Op::kGet, std::move(keys), {}, 0, std::move(post), std::move(done), {}};
  return impl_->submit(std::move(op));
}

bool MemcachedPool::set(std::string key, std::string value, uint32_t ttl_seconds, Post post, DoneCallback done) {
  if (!valid_key(key)) {
    impl_->refused.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  Impl::Op op{Impl::Op::kSet, {std::move(key)}, std::move(value), ttl_seconds, std::move(post), {}, std::move(done)};
  return impl_->submit(std::move(op));
}

bool MemcachedPool::remove(std::string key, Post post, DoneCallback done) {
  if (!valid_key(key)) {
    impl_->refused.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  Impl::Op op{Impl::Op::kRemove, {std::move(key)}, {}, 0, std::move(post), {}, std::move(done)};
  return impl_->submit(std::move(op));
}

McCounters MemcachedPool::counters() const {
  auto r = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
  return McCounters{r(impl_->gets),    r(impl_->hits),   r(impl_->misses),   r(impl_->sets),
                    r(impl_->removes), r(impl_->errors), r(impl_->timeouts), r(impl_->refused)};
}

size_t MemcachedPool::pending() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->queue.size();
}

}  // namespace edge::cache
