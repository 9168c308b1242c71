#include "rules/rate_limit.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <latch>
#include <thread>
#include <vector>

using namespace edge;
using namespace edge::rules;

namespace {

IpAddress v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress address;
  address.bytes = {a, b, c, d};
  return address;
}

// An IPv4 address numbered n (10.x.y.z), for tests needing many distinct clients.
IpAddress v4_numbered(uint32_t n) {
  return v4(10, static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n));
}

// An IPv6 address from its eight 16-bit groups.
IpAddress v6(std::initializer_list<uint16_t> groups) {
  IpAddress address;
  address.v6 = true;
  size_t i = 0;
  for (uint16_t g : groups) {
    address.bytes[i++] = static_cast<uint8_t>(g >> 8);
    address.bytes[i++] = static_cast<uint8_t>(g);
  }
  return address;
}

const uint64_t kLogin = RateLimiter::zone_id("login");
const uint64_t kWeb = RateLimiter::zone_id("web");

// Takes until refused (at most `limit` times); returns how many were allowed.
int drain(RateLimiter& limiter, uint64_t zone, const IpAddress& client, double per_second, double burst,
          uint64_t now_ms, int limit = 1000) {
  int allowed = 0;
  while (allowed < limit && limiter.take(zone, client, per_second, burst, now_ms).allowed) ++allowed;
  return allowed;
}

}  // namespace

TEST_CASE("rate limit: zone ids are FNV-1a of the name") {
  CHECK(RateLimiter::zone_id("") == 0xcbf29ce484222325u);
  CHECK(RateLimiter::zone_id("a") == 0xaf63dc4c8601ec8cu);
  CHECK(kLogin != kWeb);
}

TEST_CASE("rate limit: a new client gets its burst, then is refused with the time to the next token") {
  RateLimiter limiter(100);
  IpAddress client = v4(192, 0, 2, 1);
  CHECK(drain(limiter, kLogin, client, 2, 3, 1000) == 3);
  RateLimiter::Verdict v = limiter.take(kLogin, client, 2, 3, 1000);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after_ms == 500);
  v = limiter.take(kLogin, client, 2, 3, 1250);  // half a token there
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after_ms == 250);
  v = limiter.take(kLogin, client, 2, 3, 1499);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after_ms == 1);
  v = limiter.take(kLogin, client, 2, 3, 1500);
  CHECK(v.allowed);
  CHECK(v.retry_after_ms == 0);
}

TEST_CASE("rate limit: buckets refill with time, up to the burst") {
  RateLimiter limiter(100);
  IpAddress client = v4(192, 0, 2, 1);
  CHECK(drain(limiter, kWeb, client, 10, 5, 0) == 5);
  CHECK(drain(limiter, kWeb, client, 10, 5, 250) == 2);  // 2.5 tokens
  RateLimiter::Verdict v = limiter.take(kWeb, client, 10, 5, 250);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after_ms == 50);
  CHECK(drain(limiter, kWeb, client, 10, 5, 100000) == 5);  // long idle: the burst, no more
}

TEST_CASE("rate limit: a rate per minute") {
  RateLimiter limiter(100);
  IpAddress client = v4(192, 0, 2, 1);
  const double per_minute = 1 / 60.0;
  CHECK(drain(limiter, kLogin, client, per_minute, 2, 0) == 2);
  RateLimiter::Verdict v = limiter.take(kLogin, client, per_minute, 2, 0);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after_ms == 60000);
  v = limiter.take(kLogin, client, per_minute, 2, 59999);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after_ms == 1);
  CHECK(limiter.take(kLogin, client, per_minute, 2, 60000).allowed);
  v = limiter.take(kLogin, client, per_minute, 2, 60000);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after_ms == 60000);
  CHECK(drain(limiter, kLogin, client, per_minute, 2, 60000 + 30 * 60000) == 2);
}

TEST_CASE("rate limit: zones and clients are independent") {
  RateLimiter limiter(100);
  IpAddress a = v4(192, 0, 2, 1), b = v4(192, 0, 2, 2);
  CHECK(drain(limiter, kLogin, a, 1, 3, 0) == 3);
  CHECK(drain(limiter, kWeb, a, 1, 3, 0) == 3);
  CHECK(drain(limiter, kLogin, b, 1, 3, 0) == 3);
  CHECK(limiter.size() == 3);
}

TEST_CASE("rate limit: IPv6 clients are keyed by their /64") {
  RateLimiter limiter(100);
  IpAddress host = v6({0x2001, 0xdb8, 1, 2, 0, 0, 0, 1});
  IpAddress same64 = v6({0x2001, 0xdb8, 1, 2, 0xdead, 0xbeef, 0x1234, 0x5678});
  IpAddress next64 = v6({0x2001, 0xdb8, 1, 3, 0, 0, 0, 1});
  CHECK(drain(limiter, kLogin, host, 1, 4, 0) == 4);
  CHECK_FALSE(limiter.take(kLogin, same64, 1, 4, 0).allowed);
  CHECK(drain(limiter, kLogin, next64, 1, 4, 0) == 4);
  CHECK(limiter.size() == 2);
}

TEST_CASE("rate limit: IPv4 and IPv6 keys never collide") {
  RateLimiter limiter(100);
  // Each IPv6 /64 here has the same 64-bit value as the IPv4 address beside it.
  IpAddress ipv4 = v4(1, 2, 3, 4);
  IpAddress compatible = v6({0, 0, 0x0102, 0x0304, 0, 0, 0, 0});
  IpAddress zero = v4(0, 0, 0, 0);
  IpAddress mapped = v6({0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304});  // ::ffff:1.2.3.4 as bytes: in ::/64
  CHECK(drain(limiter, kLogin, ipv4, 1, 2, 0) == 2);
  CHECK(drain(limiter, kLogin, compatible, 1, 2, 0) == 2);
  CHECK(drain(limiter, kLogin, zero, 1, 2, 0) == 2);
  CHECK(drain(limiter, kLogin, mapped, 1, 2, 0) == 2);
  CHECK(limiter.size() == 4);
}

TEST_CASE("rate limit: time going backwards adds no tokens") {
  RateLimiter limiter(100);
  IpAddress client = v4(192, 0, 2, 1);
  CHECK(drain(limiter, kWeb, client, 1, 2, 10000) == 2);
  RateLimiter::Verdict v = limiter.take(kWeb, client, 1, 2, 5000);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after_ms == 6000);  // the token is due at 11000 on the bucket's clock
  CHECK_FALSE(limiter.take(kWeb, client, 1, 2, 0).allowed);
  v = limiter.take(kWeb, client, 1, 2, 10999);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after_ms == 1);
  CHECK(limiter.take(kWeb, client, 1, 2, 11000).allowed);
  CHECK_FALSE(limiter.take(kWeb, client, 1, 2, 11000).allowed);
}

TEST_CASE("rate limit: memory stays within the capacity") {
  SUBCASE("many shards") {
    RateLimiter limiter(1000);
    for (uint32_t n = 0; n < 10000; ++n) CHECK(limiter.take(kWeb, v4_numbered(n), 1, 1, 0).allowed);
    CHECK(limiter.size() == 1000);
    // Every bucket was empty when evicted (one token taken, no time passed).
    CHECK(limiter.forgotten() == 9000);
  }
  SUBCASE("full buckets are forgotten silently") {
    RateLimiter limiter(1000);
    for (uint32_t n = 0; n < 10000; ++n) CHECK(limiter.take(kWeb, v4_numbered(n), 1, 1, 1000 * uint64_t{n}).allowed);
    CHECK(limiter.size() <= 1000);
    CHECK(limiter.forgotten() == 0);
  }
  SUBCASE("a small capacity is one shard") {
    RateLimiter limiter(5);
    for (uint32_t n = 0; n < 50; ++n) limiter.take(kWeb, v4_numbered(n), 1, 1, 0);
    CHECK(limiter.size() == 5);
    CHECK(limiter.forgotten() == 45);
  }
  SUBCASE("no capacity: every client is new") {
    RateLimiter limiter(0);
    IpAddress client = v4(192, 0, 2, 1);
    CHECK(drain(limiter, kWeb, client, 1, 1, 0, 10) == 10);
    CHECK(limiter.size() == 0);
  }
}

// Capacity 16 is a single shard, so the eviction order below is exact. The attacker's bucket is
// drained at a rate of one a minute; the other clients are in a fast zone, full again 1 ms after
// their one request.
TEST_CASE("rate limit: full buckets are evicted before a drained one") {
  RateLimiter limiter(16);
  IpAddress attacker = v4(203, 0, 113, 7);
  auto login = [&](uint64_t now) { return limiter.take(kLogin, attacker, 1 / 60.0, 3, now); };
  auto web = [&](uint32_t n, uint64_t now) { return limiter.take(kWeb, v4_numbered(n), 1000, 2, now); };
  CHECK(drain(limiter, kLogin, attacker, 1 / 60.0, 3, 0) == 3);

  SUBCASE("the attacker idle and least recently used: full buckets go first") {
    for (uint32_t n = 0; n < 15; ++n) CHECK(web(n, 0).allowed);  // full again at 1 ms
    // New clients at 1 s, not full after their request: each evicts one of the idle full buckets.
    for (uint32_t n = 100; n < 115; ++n) CHECK(web(n, 1000).allowed);
    CHECK(limiter.size() == 16);
    CHECK(limiter.forgotten() == 0);
    // No full bucket is left among the oldest: the next new client evicts the least recently used
    // one, the attacker's, which is counted, and the attacker starts again with a full bucket.
    CHECK(web(115, 1000).allowed);
    CHECK(limiter.forgotten() == 1);
    CHECK(login(1000).allowed);
  }

  SUBCASE("a flood whose buckets fill again never pushes out the idle attacker") {
    for (uint32_t n = 0; n < 160; ++n) CHECK(web(n, 10 * uint64_t{n + 1}).allowed);
    CHECK(limiter.size() == 16);
    CHECK(limiter.forgotten() == 0);
    RateLimiter::Verdict v = login(1610);
    CHECK_FALSE(v.allowed);
    CHECK(v.retry_after_ms == 60000 - 1610);
  }

  SUBCASE("an attacker still asking stays recently used: the flood forgets itself") {
    for (uint32_t n = 0; n < 160; ++n) {
      CHECK(web(n, 0).allowed);  // never full again at 0
      if (n % 4 == 0) CHECK_FALSE(login(0).allowed);
    }
    CHECK(limiter.size() == 16);
    CHECK(limiter.forgotten() == 160 + 1 - 16);  // all of them flood buckets
    CHECK_FALSE(login(0).allowed);
  }
}

// Buckets of one token taken at one instant are never full again, so eviction is plain LRU here:
// a model of the 16 most recent clients predicts every answer, through much index churn.
TEST_CASE("rate limit: eviction keeps exactly the most recently used when none is full") {
  RateLimiter limiter(16);
  std::vector<uint32_t> recent;  // most recent last
  uint32_t state = 12345;
  for (int i = 0; i < 5000; ++i) {
    state = state * 1103515245 + 12345;
    uint32_t n = (state >> 16) % 40;
    auto it = std::find(recent.begin(), recent.end(), n);
    bool remembered = it != recent.end();
    if (remembered) recent.erase(it);
    else if (recent.size() == 16) recent.erase(recent.begin());
    recent.push_back(n);
    CHECK(limiter.take(kWeb, v4_numbered(n), 1, 1, 0).allowed == !remembered);
  }
  CHECK(limiter.size() == 16);
}

TEST_CASE("rate limit: concurrent takes on one key allow exactly the burst") {
  RateLimiter limiter(64);
  IpAddress client = v4(192, 0, 2, 1);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i)
        if (limiter.take(kLogin, client, 5, 100, 42).allowed) allowed.fetch_add(1);
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(allowed.load() == 100);
}

TEST_CASE("rate limit: concurrent takes on many keys keep the bound") {
  RateLimiter limiter(128);
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 8; ++t) {
    threads.emplace_back([&limiter, t] {
      for (uint32_t i = 0; i < 4000; ++i) limiter.take(kWeb, v4_numbered(t * 100000 + i % 500), 10, 5, i);
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(limiter.size() <= 128);
}

TEST_CASE("connection counter: up to the limit, then refused until one closes") {
  ClientConnCounter counter;
  IpAddress a = v4(192, 0, 2, 1), b = v4(192, 0, 2, 2);
  for (int i = 0; i < 3; ++i) CHECK(counter.try_open(a, 3));
  CHECK_FALSE(counter.try_open(a, 3));
  CHECK(counter.estimate(a) == 3);
  CHECK(counter.try_open(b, 3));  // another client
  CHECK(counter.estimate(b) == 1);
  counter.close(a);
  CHECK(counter.estimate(a) == 2);
  CHECK(counter.try_open(a, 3));
  CHECK_FALSE(counter.try_open(a, 3));
  CHECK_FALSE(counter.try_open(v4(192, 0, 2, 3), 0));
  CHECK(counter.estimate(v4(192, 0, 2, 3)) == 0);
}

TEST_CASE("connection counter: IPv6 clients are counted by their /64") {
  ClientConnCounter counter;
  CHECK(counter.try_open(v6({0x2001, 0xdb8, 0, 1, 0, 0, 0, 1}), 2));
  CHECK(counter.try_open(v6({0x2001, 0xdb8, 0, 1, 0, 0, 0, 2}), 2));
  CHECK_FALSE(counter.try_open(v6({0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 3}), 2));
  CHECK(counter.try_open(v6({0x2001, 0xdb8, 0, 2, 0, 0, 0, 1}), 2));
}

TEST_CASE("connection counter: never below the true count in a crowded table") {
  ClientConnCounter counter(1024);
  const uint32_t clients = 5000;
  for (uint32_t n = 0; n < clients; ++n)
    for (uint32_t i = 0; i < n % 4 + 1; ++i) CHECK(counter.try_open(v4_numbered(n), UINT32_MAX));
  for (uint32_t n = 0; n < clients; ++n) CHECK(counter.estimate(v4_numbered(n)) >= n % 4 + 1);
  for (uint32_t n = 0; n < clients; ++n)
    for (uint32_t i = 0; i < n % 4 + 1; ++i) counter.close(v4_numbered(n));
  for (uint32_t n = 0; n < clients; ++n) CHECK(counter.estimate(v4_numbered(n)) == 0);
}

TEST_CASE("connection counter: concurrent opens and closes leave nothing behind") {
  ClientConnCounter counter(4096);
  const uint32_t max = 10;
  const int thread_count = 8;
  const IpAddress shared = v4(198, 51, 100, 1);
  std::atomic<int> shared_held{0};
  std::latch all_tried(thread_count);
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; ++t) {
    threads.emplace_back([&] {
      std::vector<IpAddress> opened;
      for (uint32_t i = 0; i < 2000; ++i) {
        IpAddress client = v4_numbered(i % 64);
        if (counter.try_open(client, max)) opened.push_back(client);
        if (i % 3 == 0 && !opened.empty()) {
          counter.close(opened.back());
          opened.pop_back();
        }
      }
      // Every thread tries the same client, and holds what it got until all have tried.
      int mine = 0;
      for (int i = 0; i < 20; ++i)
        if (counter.try_open(shared, max)) ++mine;
      shared_held.fetch_add(mine);
      all_tried.arrive_and_wait();
      for (int i = 0; i < mine; ++i) counter.close(shared);
      for (const IpAddress& client : opened) counter.close(client);
    });
  }
  for (std::thread& thread : threads) thread.join();
  // A race lets at most one extra connection in per other thread.
  CHECK(shared_held.load() >= static_cast<int>(max));
  CHECK(shared_held.load() <= static_cast<int>(max) + thread_count - 1);
  for (uint32_t i = 0; i < 64; ++i) CHECK(counter.estimate(v4_numbered(i)) == 0);
  CHECK(counter.estimate(shared) == 0);
}
