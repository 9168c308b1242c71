#include "proxy/tier.h"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <random>

#include <uv.h>

#include "cache/record.h"
#include "http/mime.h"
#include "proxy/clock.h"
#include "proxy/tier_config.h"

namespace edge::proxy {

namespace {
using cache::McStatus;
using cache::Seconds;

// memcached reads an expiry over 30 days as a Unix time.
constexpr Seconds kMaxExpiry = 30 * 24 * 3600 - 1;
// The log is rewritten without its oldest entries when an append would take it past this.
constexpr size_t kCompactAt = 256 * 1024;
constexpr size_t kKeepAfterCompaction = 128 * 1024;
constexpr int kRecordAttempts = 5;

// A pool callback that needs no loop: it runs on the pool thread that finished the operation.
void run_here(std::function<void()> task) { task(); }

std::string sha256_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

// How long a record stays of use in memcached: its remaining freshness, and past it as long as
// it may still be served stale.
Seconds usable_for(const cache::CachedObject& object, Seconds now) {
  const Seconds remaining = object.lifetime - object.age.current_age(now);
  Seconds stale = object.grace;
  const cache::CacheControl cc = object.cc;
  if (cc.stale_while_revalidate) stale = std::max(stale, *cc.stale_while_revalidate);
  if (cc.stale_if_error) stale = std::max(stale, *cc.stale_if_error);
  return std::min(remaining + stale, kMaxExpiry);
}
}  // namespace

struct Tier::Impl {
  explicit Impl(const conf::Config& config) : pool(pool_config(config.cache.memcached)) {
    std::random_device seed;
    token_prefix = std::to_string(seed()) + "-" + std::to_string(seed());
  }

  cache::MemcachedPool pool;
  std::string token_prefix;  // with a counter: a token no node has used before
  std::atomic<uint64_t> token_counter{0};

  std::mutex log_mutex;  // guards the two below
  std::optional<std::string> log_token;
  std::shared_ptr<const cache::InvalidationLog> log;

  std::atomic<uint64_t> lookups{0}, hits{0}, foreign{0}, misses{0}, purged{0}, unparsable{0}, stores{0},
      too_large{0}, invalidations{0}, invalidation_failures{0}, log_reads{0};
  Histogram get_latency, set_latency;  // written by the pool's threads

  std::string new_token() { return token_prefix + "-" + std::to_string(++token_counter); }

  void renew_token(std::function<void(bool)> then) {
    const bool queued = pool.set(std::string(kTokenKey), new_token(), 0, run_here,
                                 [then](McStatus status) { then(status == McStatus::kOk); });
    if (!queued) then(false);
  }

  // The log is gone or broken: a new one, created now, so that no record stored before can
  // escape a purge that was in the lost one.
  void reset_log(bool overwrite) {
    std::string text = cache::invalidation_log_header(wall_now());
    auto renew = [this](McStatus) { renew_token([](bool) {}); };
    if (overwrite)
      pool.set(std::string(kLogKey), std::move(text), 0, run_here, renew);
    else
      pool.add(std::string(kLogKey), std::move(text), 0, run_here, renew);
  }

  void found(Found::Kind kind, std::shared_ptr<cache::CachedObject> object, const Post& post,
             const FoundCallback& done, bool assemble = false) {
    (kind == Found::Kind::kRecord ? hits : kind == Found::Kind::kForeign ? foreign : misses)
        .fetch_add(1, std::memory_order_relaxed);
    post([done, kind, assemble, object = std::move(object)]() mutable {
      done(Found{kind, std::move(object), assemble});
    });
  }

  void judge(cache::DecodedRecord record, const cache::InvalidationLog& log, const Post& post,
             const FoundCallback& done) {
    switch (log.check(*record.object, record.stored_at)) {
      case cache::InvalidationLog::Verdict::kPurged:
        purged.fetch_add(1, std::memory_order_relaxed);
        return found(Found::Kind::kMiss, nullptr, post, done);
      case cache::InvalidationLog::Verdict::kStale:
        record.object->invalidated.store(true, std::memory_order_relaxed);
        break;
      case cache::InvalidationLog::Verdict::kValid:
        break;
    }
    found(Found::Kind::kRecord, std::move(record.object), post, done, record.assemble);
  }

  // On a pool thread: the record, and the token read with it.
  void check_record(cache::DecodedRecord record, std::optional<std::string> token, const Post& post,
                    const FoundCallback& done) {
    std::shared_ptr<const cache::InvalidationLog> known;
    if (token) {
      std::lock_guard lock(log_mutex);
      if (log && log_token == token) known = log;
    }
    if (known) return judge(std::move(record), *known, post, done);
    log_reads.fetch_add(1, std::memory_order_relaxed);
    auto shared_record = std::make_shared<cache::DecodedRecord>(std::move(record));
    auto answer = [this, shared_record, token, post, done](cache::McGetResult result) {
      on_log(std::move(result), std::move(*shared_record), token, post, done);
    };
    if (!pool.get({std::string(kLogKey)}, run_here, std::move(answer))) found(Found::Kind::kMiss, nullptr, post, done);
  }

  void on_log(cache::McGetResult result, cache::DecodedRecord record, const std::optional<std::string>& token,
              const Post& post, const FoundCallback& done) {
    if (result.values.empty() || !result.values[0]) {
      if (result.status == McStatus::kOk) reset_log(false);
      return found(Found::Kind::kMiss, nullptr, post, done);
    }
    std::optional<cache::InvalidationLog> parsed = cache::InvalidationLog::parse(*result.values[0]);
    if (!parsed) {
      reset_log(true);
      return found(Found::Kind::kMiss, nullptr, post, done);
    }
    auto shared_log = std::make_shared<const cache::InvalidationLog>(std::move(*parsed));
    if (token) {
      std::lock_guard lock(log_mutex);
      log_token = token;
      log = shared_log;
    } else {
      renew_token([](bool) {});  // a lost token: the next lookups can cache the log again
    }
    judge(std::move(record), *shared_log, post, done);
  }

  void append_entry(std::string line, int attempt, Post post, RecordCallback done) {
    auto fail = [this, post, done](std::string why) {
      invalidation_failures.fetch_add(1, std::memory_order_relaxed);
      post([done, why = std::move(why)] { done(false, "memcached: " + why); });
    };
    if (attempt >= kRecordAttempts) return fail("the invalidation log kept changing");
    auto then = [this, line, attempt, post, done, fail](McStatus status) {
      if (status == McStatus::kNotStored || status == McStatus::kNotFound)
        return append_entry(line, attempt + 1, post, done);  // changed meanwhile: again
      if (status != McStatus::kOk) return fail(cache::mc_status_name(status));
      renew_token([this, post, done, fail](bool ok) {
        if (!ok) return fail("the invalidation token could not be renewed");
        invalidations.fetch_add(1, std::memory_order_relaxed);
        post([done] { done(true, {}); });
      });
    };
    const bool queued = pool.gets(
        std::string(kLogKey), run_here,
        [this, line, then, fail](McStatus status, std::optional<std::string> value, uint64_t cas) {
          if (status != McStatus::kOk) return fail(cache::mc_status_name(status));
          const std::string key(kLogKey);
          bool queued_next = false;
          if (!value) {
            queued_next = pool.add(key, cache::invalidation_log_header(wall_now()) + line, 0, run_here, then);
          } else if (std::optional<cache::InvalidationLog> log = cache::InvalidationLog::parse(*value); !log) {
            queued_next = pool.cas(key, cache::invalidation_log_header(wall_now()) + line, 0, cas, run_here, then);
          } else if (value->size() + line.size() > kCompactAt) {
            queued_next = pool.cas(key, log->compacted(kKeepAfterCompaction) + line, 0, cas, run_here, then);
          } else {
            queued_next = pool.append(key, line, run_here, then);
          }
          if (!queued_next) fail("refused");
        });
    if (!queued) fail("refused");
  }
};

Tier::Tier(const conf::Config& config) : impl_(std::make_unique<Impl>(config)) {
  // Made before this node stores anything, so that no record of ours predates the log (records
  // stored in the second a log was created count as older than it). Someone else's log stays.
  impl_->pool.add(std::string(kLogKey), cache::invalidation_log_header(wall_now() - 1), 0, run_here,
                  [](McStatus) {});
}

Tier::~Tier() = default;

std::string Tier::http_key(std::string_view cache_key, std::string_view key_extra) {
  std::string key = "edge:";
  key.append(cache_key);
  if (!key_extra.empty()) key.append("|").append(key_extra);
  if (cache::MemcachedPool::valid_key(key)) return key;
  return "edge:#" + sha256_hex(key);
}

bool Tier::lookup(Lookup lookup, Post post, FoundCallback done) {
  Impl& impl = *impl_;
  if (!cache::MemcachedPool::valid_key(lookup.key)) return false;
  impl.lookups.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::string> keys{lookup.key, std::string(kTokenKey)};
  const uint64_t asked_ns = uv_hrtime();
  auto answer = [&impl, lookup = std::move(lookup), post, done, asked_ns](cache::McGetResult result) mutable {
    impl.get_latency.record_shared(uv_hrtime() - asked_ns);
    if (result.values.size() < 2 || !result.values[0]) return impl.found(Found::Kind::kMiss, nullptr, post, done);
    std::string& value = *result.values[0];
    if (!cache::is_record(value)) {
      if (!lookup.foreign_ok) {
        impl.unparsable.fetch_add(1, std::memory_order_relaxed);
        return impl.found(Found::Kind::kMiss, nullptr, post, done);
      }
      auto object = std::make_shared<cache::CachedObject>();
      const Seconds now = wall_now();
      object->set_key(lookup.key, "", lookup.path);
      object->status = 200;
      object->headers.add("Content-Type", http::content_type_for_path(lookup.path));
      auto body = std::make_shared<http::SharedBody>(value.size());
      body->append(value);
      body->finish();
      object->body = std::move(body);
      object->age = cache::AgeBasis{now, now, now, 0};
      object->lifetime = lookup.foreign_lifetime;
      return impl.found(Found::Kind::kForeign, std::move(object), post, done);
    }
    std::optional<cache::DecodedRecord> record = cache::decode(value);
    if (!record) {
      impl.unparsable.fetch_add(1, std::memory_order_relaxed);
      return impl.found(Found::Kind::kMiss, nullptr, post, done);
    }
    impl.check_record(std::move(*record), std::move(result.values[1]), post, done);
  };
  if (impl.pool.get(std::move(keys), run_here, std::move(answer))) return true;
  impl.misses.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void Tier::store(const cache::CachedObject& object, std::string key) {
  Impl& impl = *impl_;
  const Seconds now = wall_now();
  const Seconds ttl = usable_for(object, now);
  if (ttl <= 0 || !cache::MemcachedPool::valid_key(key)) return;
  std::string record = cache::encode(object, now);
  const uint64_t asked_ns = uv_hrtime();
  impl.pool.set(std::move(key), std::move(record), static_cast<uint32_t>(ttl), run_here, [&impl, asked_ns](McStatus status) {
    impl.set_latency.record_shared(uv_hrtime() - asked_ns);
    if (status == McStatus::kOk) impl.stores.fetch_add(1, std::memory_order_relaxed);
    if (status == McStatus::kTooLarge) impl.too_large.fetch_add(1, std::memory_order_relaxed);
  });
}

void Tier::record(cache::Invalidation entry, std::vector<std::string> remove_keys, Post post, RecordCallback done) {
  Impl& impl = *impl_;
  for (std::string& key : remove_keys)
    if (cache::MemcachedPool::valid_key(key)) impl.pool.remove(std::move(key), run_here, [](McStatus) {});
  entry.at = wall_now();
  impl.append_entry(cache::format_invalidation(entry), 0, std::move(post), std::move(done));
}

TierCounters Tier::counters() const {
  const Impl& impl = *impl_;
  TierCounters c;
  c.lookups = impl.lookups.load(std::memory_order_relaxed);
  c.hits = impl.hits.load(std::memory_order_relaxed);
  c.foreign = impl.foreign.load(std::memory_order_relaxed);
  c.misses = impl.misses.load(std::memory_order_relaxed);
  c.purged = impl.purged.load(std::memory_order_relaxed);
  c.unparsable = impl.unparsable.load(std::memory_order_relaxed);
  c.stores = impl.stores.load(std::memory_order_relaxed);
  c.too_large = impl.too_large.load(std::memory_order_relaxed);
  c.invalidations = impl.invalidations.load(std::memory_order_relaxed);
  c.invalidation_failures = impl.invalidation_failures.load(std::memory_order_relaxed);
  c.log_reads = impl.log_reads.load(std::memory_order_relaxed);
  c.pool = impl.pool.counters();
  impl.get_latency.read_into(c.get_latency);
  impl.set_latency.read_into(c.set_latency);
  return c;
}

}  // namespace edge::proxy
