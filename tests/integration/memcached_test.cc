// MemcachedPool against two real memcached servers on loopback: keys spread over both, multi-gets,
// removes, add, append, increment, gets and cas, the item limit, the queue bound, gets batched
// into one multi-get, and a server killed in the middle. Time limits here are fail-safes against
// a hang, never measurements.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <thread>
#include <vector>

#include "cache/memcached.h"
#include "tests/integration/testkit.h"

using namespace edge::cache;
using namespace edge::testkit;
using namespace std::chrono_literals;

namespace {

constexpr auto kFailSafe = 20s;

// Callbacks run on the pool's thread; the test thread waits for them with a fail-safe.
const MemcachedPool::Post kInline = [](std::function<void()> task) { task(); };

McGetResult get_now(MemcachedPool& pool, std::vector<std::string> keys) {
  auto promise = std::make_shared<std::promise<McGetResult>>();
  auto future = promise->get_future();
  REQUIRE(pool.get(std::move(keys), kInline, [promise](McGetResult r) { promise->set_value(std::move(r)); }));
  REQUIRE(future.wait_for(kFailSafe) == std::future_status::ready);
  return future.get();
}

McStatus set_now(MemcachedPool& pool, std::string key, std::string value, uint32_t ttl = 0) {
  auto promise = std::make_shared<std::promise<McStatus>>();
  auto future = promise->get_future();
  REQUIRE(pool.set(std::move(key), std::move(value), ttl, kInline, [promise](McStatus s) { promise->set_value(s); }));
  REQUIRE(future.wait_for(kFailSafe) == std::future_status::ready);
  return future.get();
}

McStatus remove_now(MemcachedPool& pool, std::string key) {
  auto promise = std::make_shared<std::promise<McStatus>>();
  auto future = promise->get_future();
  REQUIRE(pool.remove(std::move(key), kInline, [promise](McStatus s) { promise->set_value(s); }));
  REQUIRE(future.wait_for(kFailSafe) == std::future_status::ready);
  return future.get();
}

McStatus add_now(MemcachedPool& pool, std::string key, std::string value, uint32_t ttl = 0) {
  auto promise = std::make_shared<std::promise<McStatus>>();
  auto future = promise->get_future();
  REQUIRE(pool.add(std::move(key), std::move(value), ttl, kInline, [promise](McStatus s) { promise->set_value(s); }));
  REQUIRE(future.wait_for(kFailSafe) == std::future_status::ready);
  return future.get();
}

McStatus append_now(MemcachedPool& pool, std::string key, std::string value) {
  auto promise = std::make_shared<std::promise<McStatus>>();
  auto future = promise->get_future();
  REQUIRE(pool.append(std::move(key), std::move(value), kInline, [promise](McStatus s) { promise->set_value(s); }));
  REQUIRE(future.wait_for(kFailSafe) == std::future_status::ready);
  return future.get();
}

std::pair<McStatus, uint64_t> increment_now(MemcachedPool& pool, std::string key, uint64_t delta) {
  auto promise = std::make_shared<std::promise<std::pair<McStatus, uint64_t>>>();
  auto future = promise->get_future();
  REQUIRE(pool.increment(std::move(key), delta, kInline,
                         [promise](McStatus s, uint64_t value) { promise->set_value({s, value}); }));
  REQUIRE(future.wait_for(kFailSafe) == std::future_status::ready);
  return future.get();
}

struct CasValue {
  McStatus status;
  std::optional<std::string> value;
  uint64_t cas;
};

CasValue gets_now(MemcachedPool& pool, std::string key) {
  auto promise = std::make_shared<std::promise<CasValue>>();
  auto future = promise->get_future();
  REQUIRE(pool.gets(std::move(key), kInline, [promise](McStatus s, std::optional<std::string> value, uint64_t cas) {
    promise->set_value(CasValue{s, std::move(value), cas});
  }));
  REQUIRE(future.wait_for(kFailSafe) == std::future_status::ready);
  return future.get();
}

McStatus cas_now(MemcachedPool& pool, std::string key, std::string value, uint64_t cas) {
  auto promise = std::make_shared<std::promise<McStatus>>();
  auto future = promise->get_future();
  REQUIRE(pool.cas(std::move(key), std::move(value), 0, cas, kInline,
                   [promise](McStatus s) { promise->set_value(s); }));
  REQUIRE(future.wait_for(kFailSafe) == std::future_status::ready);
  return future.get();
}

// Holds a pool's thread inside a callback's post until opened, so that operations queue up
// behind it.
struct Gate {
  MemcachedPool::Post post() {
    return [this](std::function<void()> task) {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return open; });
      task();
    };
  }
  void release() {
    {
      std::lock_guard lock(mutex);
      open = true;
    }
    cv.notify_all();
  }
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
};

// Blocks the only thread of `pool` in a set's callback and returns once it is there.
void hold(MemcachedPool& pool, Gate& gate) {
  REQUIRE(pool.set("edge:hold", "v", 0, gate.post(), [](McStatus) {}));
  auto deadline = std::chrono::steady_clock::now() + kFailSafe;
  while (pool.pending() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  REQUIRE(pool.pending() == 0);
}

// Collects the answers of many gets issued at once: answers[i] is get i's, calls[i] how many
// times its callback ran.
struct Answers {
  explicit Answers(size_t n) : answers(n), calls(n, 0) {}
  MemcachedPool::GetCallback callback(size_t i) {
    return [this, i](McGetResult r) {
      std::lock_guard lock(mutex);
      answers[i] = std::move(r);
      ++calls[i];
      ++done;
      cv.notify_all();
    };
  }
  bool wait_all() {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, kFailSafe, [&] { return done >= answers.size(); });
  }
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<McGetResult> answers;
  std::vector<int> calls;
  size_t done = 0;
};

std::vector<std::string> numbered_keys(const std::string& prefix, int n) {
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) keys.push_back(prefix + std::to_string(i));
  return keys;
}

MemcachedConfig config_for(const std::vector<const MemcachedServer*>& servers) {
  MemcachedConfig config;
  for (const auto* s : servers) config.servers.push_back(s->address());
  // Long enough that a busy machine never times out a live server (a killed one fails at once).
  config.timeout = 2000ms;
  config.threads = 2;
  return config;
}

}  // namespace

TEST_CASE("memcached: set, multi-get and remove over two servers") {
  MemcachedServer a, b;
  MemcachedPool pool(config_for({&a, &b}));

  auto keys = numbered_keys("edge:test/", 200);
  for (const auto& key : keys) REQUIRE(set_now(pool, key, "value of " + key) == McStatus::kOk);

  // Ketama spreads the keys: each server holds some, together all of them.
  long on_a = memcached_stat(a.port, "curr_items");
  long on_b = memcached_stat(b.port, "curr_items");
  CHECK(on_a > 0);
  CHECK(on_b > 0);
  CHECK(on_a + on_b == 200);

  McGetResult all = get_now(pool, keys);
  CHECK(all.status == McStatus::kOk);
  REQUIRE(all.values.size() == keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    REQUIRE(all.values[i]);
    CHECK(*all.values[i] == "value of " + keys[i]);
  }

  for (size_t i = 0; i < keys.size(); i += 2) CHECK(remove_now(pool, keys[i]) == McStatus::kOk);
  CHECK(remove_now(pool, keys[0]) == McStatus::kNotFound);

  // Misses, a duplicate and an unknown key in one multi-get.
  McGetResult some = get_now(pool, {keys[0], keys[1], keys[1], "edge:never-set"});
  CHECK(some.status == McStatus::kOk);
  REQUIRE(some.values.size() == 4);
  CHECK(!some.values[0]);
  CHECK(some.values[1] == "value of " + keys[1]);
  CHECK(some.values[2] == "value of " + keys[1]);
  CHECK(!some.values[3]);

  McCounters c = pool.counters();
  CHECK(c.sets == 200);
  CHECK(c.gets == 204);
  CHECK(c.hits == 202);
  CHECK(c.misses == 2);
  CHECK(c.removes == 100);
  CHECK(c.errors == 0);
  CHECK(c.timeouts == 0);
}

TEST_CASE("memcached: binary values, ttl and the item limit") {
  MemcachedServer a;
  MemcachedPool pool(config_for({&a}));

  std::string binary("\0\r\nEND\r\n\xff", 10);
  CHECK(set_now(pool, "bin", binary, 3600) == McStatus::kOk);
  CHECK(get_now(pool, {"bin"}).values.at(0) == binary);

  std::string big(200 * 1024, 'x');
  CHECK(set_now(pool, "big", big) == McStatus::kOk);
  CHECK(get_now(pool, {"big"}).values.at(0) == big);

  CHECK(set_now(pool, "huge", std::string(2 * 1024 * 1024, 'y')) == McStatus::kTooLarge);
  CHECK(set_now(pool, "edge", std::string(1024 * 1024, 'y')) == McStatus::kTooLarge);
  CHECK(!get_now(pool, {"huge"}).values.at(0));
  CHECK(pool.counters().errors == 2);
}

TEST_CASE("memcached: refused operations never call back") {
  MemcachedServer a;
  MemcachedPool pool(config_for({&a}));
  bool called = false;
  auto mark = [&](McStatus) { called = true; };
  CHECK(!pool.set("with space", "v", 0, kInline, mark));
  CHECK(!pool.set(std::string(251, 'k'), "v", 0, kInline, mark));
  CHECK(!pool.remove("", kInline, mark));
  CHECK(!pool.get({}, kInline, [&](McGetResult) { called = true; }));
  CHECK(!pool.get({"ok", "not\nok"}, kInline, [&](McGetResult) { called = true; }));
  CHECK(!called);
  CHECK(pool.counters().refused == 5);

  MemcachedPool no_servers(MemcachedConfig{{"not-an-address"}});
  CHECK(!no_servers.set("k", "v", 0, kInline, mark));
  CHECK(!called);
}

TEST_CASE("memcached: beyond max_pending, operations are refused at once") {
  MemcachedServer a;
  MemcachedConfig config = config_for({&a});
  config.threads = 1;
  config.max_pending = 5;
  MemcachedPool pool(config);

  // The only thread is held inside the first callback's post until the test lets it go.
  std::mutex mutex;
  std::condition_variable cv;
  bool released = false;
  MemcachedPool::Post holding = [&](std::function<void()> task) {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return released; });
    task();
  };
  std::atomic<int> done{0};
  auto count = [&](McStatus) { done.fetch_add(1); };

  REQUIRE(pool.set("first", "v", 0, holding, count));
  auto deadline = std::chrono::steady_clock::now() + kFailSafe;
  while (pool.pending() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  REQUIRE(pool.pending() == 0);

  for (int i = 0; i < 5; ++i) CHECK(pool.set("k" + std::to_string(i), "v", 0, holding, count));
  CHECK(!pool.set("one-too-many", "v", 0, holding, count));
  CHECK(pool.counters().refused == 1);

  {
    std::lock_guard lock(mutex);
    released = true;
  }
  cv.notify_all();
  while (done.load() < 6 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  CHECK(done.load() == 6);
}

TEST_CASE("memcached: a server killed mid-test costs its keys only, and nothing hangs") {
  MemcachedServer a, b;
  MemcachedPool pool(config_for({&a, &b}));

  auto keys = numbered_keys("edge:kill/", 200);
  for (const auto& key : keys) REQUIRE(set_now(pool, key, key) == McStatus::kOk);
  long on_a = memcached_stat(a.port, "curr_items");
  REQUIRE(on_a > 0);
  REQUIRE(on_a < 200);

  b.process.kill(SIGKILL);
  REQUIRE(b.process.wait());

  // One key at a time, so each get meets the dead server or not on its own. The keys of `a`
  // stay on `a` (consistent hashing) and still hit; those of `b` fail or miss.
  long hits = 0;
  for (const auto& key : keys) {
    McGetResult r = get_now(pool, {key});
    if (r.values.at(0)) {
      CHECK(*r.values[0] == key);
      ++hits;
    }
  }
  CHECK(hits == on_a);

  // A multi-get over both servers still answers the live one's keys.
  McGetResult all = get_now(pool, keys);
  long multi_hits = 0;
  for (const auto& v : all.values) multi_hits += v.has_value();
  CHECK(multi_hits == on_a);

  // Writes go on: once `b` is out of the ring its keys land on `a`; before, they fail.
  int stored = 0;
  for (const auto& key : numbered_keys("edge:after/", 50)) stored += set_now(pool, key, "v") == McStatus::kOk;
  CHECK(stored > 0);
  McCounters c = pool.counters();
  CHECK(c.errors + c.timeouts > 0);
}

TEST_CASE("memcached: add, append and increment") {
  MemcachedServer a, b;
  MemcachedPool pool(config_for({&a, &b}));

  CHECK(add_now(pool, "edge:add", "first") == McStatus::kOk);
  CHECK(add_now(pool, "edge:add", "second") == McStatus::kNotStored);
  CHECK(get_now(pool, {"edge:add"}).values.at(0) == "first");

  CHECK(append_now(pool, "edge:append", "tail") == McStatus::kNotStored);
  CHECK(!get_now(pool, {"edge:append"}).values.at(0));
  CHECK(set_now(pool, "edge:append", "head") == McStatus::kOk);
  CHECK(append_now(pool, "edge:append", "+tail") == McStatus::kOk);
  CHECK(append_now(pool, "edge:append", std::string("\0\r\n", 3)) == McStatus::kOk);
  CHECK(get_now(pool, {"edge:append"}).values.at(0) == std::string("head+tail\0\r\n", 12));
  CHECK(append_now(pool, "edge:append", std::string(1024 * 1024, 'x')) == McStatus::kTooLarge);
  // A result over the server's limit: memcached answers as for a missing key, and keeps the item.
  CHECK(set_now(pool, "edge:append-big", std::string(1000 * 1000, 'x')) == McStatus::kOk);
  CHECK(append_now(pool, "edge:append-big", std::string(100 * 1000, 'y')) == McStatus::kNotStored);
  CHECK(get_now(pool, {"edge:append-big"}).values.at(0) == std::string(1000 * 1000, 'x'));

  CHECK(increment_now(pool, "edge:counter", 1) == std::pair{McStatus::kNotFound, uint64_t{0}});
  CHECK(add_now(pool, "edge:counter", "41") == McStatus::kOk);
  CHECK(increment_now(pool, "edge:counter", 1) == std::pair{McStatus::kOk, uint64_t{42}});
  // Deltas beyond 32 bits, and the wrap at 2^64.
  CHECK(increment_now(pool, "edge:counter", uint64_t{1} << 40) == std::pair{McStatus::kOk, (uint64_t{1} << 40) + 42});
  CHECK(increment_now(pool, "edge:counter", UINT64_MAX) == std::pair{McStatus::kOk, (uint64_t{1} << 40) + 41});
  CHECK(get_now(pool, {"edge:counter"}).values.at(0) == std::to_string((uint64_t{1} << 40) + 41));
  CHECK(increment_now(pool, "edge:add", 1).first == McStatus::kError);  // not a number

  bool called = false;
  CHECK(!pool.add("bad key", "v", 0, kInline, [&](McStatus) { called = true; }));
  CHECK(!pool.append("", "v", kInline, [&](McStatus) { called = true; }));
  CHECK(!pool.increment("bad\nkey", 1, kInline, [&](McStatus, uint64_t) { called = true; }));
  CHECK(!called);

  McCounters c = pool.counters();
  CHECK(c.sets == 6);  // 2 adds, 2 sets, 2 appends
  CHECK(c.not_stored == 3);
  CHECK(c.increments == 3);
  CHECK(c.errors == 2);  // the append over item_limit, the increment of a word
  CHECK(c.timeouts == 0);
  CHECK(c.refused == 3);
}

TEST_CASE("memcached: gets and cas") {
  MemcachedServer a, b;
  MemcachedPool pool(config_for({&a, &b}));

  CasValue missing = gets_now(pool, "edge:cas");
  CHECK(missing.status == McStatus::kOk);
  CHECK(!missing.value);
  CHECK(missing.cas == 0);

  REQUIRE(set_now(pool, "edge:cas", "v1") == McStatus::kOk);
  CasValue first = gets_now(pool, "edge:cas");
  CHECK(first.status == McStatus::kOk);
  CHECK(first.value == "v1");
  REQUIRE(first.cas != 0);
  CHECK(cas_now(pool, "edge:cas", "v2", first.cas) == McStatus::kOk);
  CHECK(get_now(pool, {"edge:cas"}).values.at(0) == "v2");
  // The id of v1 is spent: v2 has its own.
  CHECK(cas_now(pool, "edge:cas", "v2bis", first.cas) == McStatus::kNotStored);

  // Someone else writes between our gets and our cas: the cas loses.
  CasValue second = gets_now(pool, "edge:cas");
  CHECK(second.value == "v2");
  CHECK(second.cas != first.cas);
  CHECK(set_now(pool, "edge:cas", "theirs") == McStatus::kOk);
  CHECK(cas_now(pool, "edge:cas", "ours", second.cas) == McStatus::kNotStored);
  CHECK(get_now(pool, {"edge:cas"}).values.at(0) == "theirs");

  CasValue third = gets_now(pool, "edge:cas");
  CHECK(remove_now(pool, "edge:cas") == McStatus::kOk);
  CHECK(cas_now(pool, "edge:cas", "late", third.cas) == McStatus::kNotFound);

  CHECK(!pool.cas("edge:cas", "v", 0, 0, kInline, [](McStatus) {}));  // no CAS id
  CHECK(!pool.gets("bad key", kInline, [](McStatus, std::optional<std::string>, uint64_t) {}));

  // Plain gets still work after gets turned CAS ids on and off on the same handles.
  CHECK(set_now(pool, "edge:plain", "p") == McStatus::kOk);
  CHECK(get_now(pool, {"edge:plain", "edge:cas"}).values == std::vector<std::optional<std::string>>{"p", std::nullopt});

  McCounters c = pool.counters();
  CHECK(c.not_stored == 2);
  CHECK(c.sets == 4);  // 3 sets, 1 cas
  CHECK(c.errors == 0);
  CHECK(c.refused == 2);
  CHECK(c.gets == 8);
}

TEST_CASE("memcached: gets queued together go out as one multi-get, each answered on its own") {
  MemcachedServer a, b;
  MemcachedConfig config = config_for({&a, &b});
  config.threads = 1;
  MemcachedPool pool(config);

  auto keys = numbered_keys("edge:batch/", 500);
  for (const auto& key : keys) REQUIRE(set_now(pool, key, "value of " + key) == McStatus::kOk);
  const uint64_t batches_before = pool.counters().batches;

  // 500 gets queued before the thread may take any: 64 keys a batch, so 8 multi-gets.
  Gate gate;
  hold(pool, gate);
  Answers answers(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) REQUIRE(pool.get({keys[i]}, kInline, answers.callback(i)));
  CHECK(pool.pending() == keys.size());
  gate.release();
  REQUIRE(answers.wait_all());
  for (size_t i = 0; i < keys.size(); ++i) {
    CHECK(answers.calls[i] == 1);
    CHECK(answers.answers[i].status == McStatus::kOk);
    REQUIRE(answers.answers[i].values.size() == 1);
    CHECK(answers.answers[i].values[0] == "value of " + keys[i]);
  }
  CHECK(pool.counters().batches - batches_before == 8);

  // Gets of several keys, shared keys, misses, and a set between gets, all in one queue: each get
  // has its keys in its own order, and the get queued after the set sees the new value.
  Gate gate2;
  hold(pool, gate2);
  std::vector<std::vector<std::string>> asked = {
      {keys[1], keys[0], "edge:batch/missing"},
      {keys[0]},
      {keys[2], keys[2]},
      {"edge:batch/missing"},
  };
  Answers mixed(asked.size() + 2);
  for (size_t i = 0; i < asked.size(); ++i) REQUIRE(pool.get(asked[i], kInline, mixed.callback(i)));
  REQUIRE(pool.get({keys[3]}, kInline, mixed.callback(asked.size())));
  std::promise<McStatus> set_done;
  REQUIRE(pool.set(keys[3], "new", 0, kInline, [&](McStatus s) { set_done.set_value(s); }));
  REQUIRE(pool.get({keys[3]}, kInline, mixed.callback(asked.size() + 1)));
  gate2.release();
  REQUIRE(mixed.wait_all());
  CHECK(set_done.get_future().get() == McStatus::kOk);
  using Values = std::vector<std::optional<std::string>>;
  CHECK(mixed.answers[0].values == Values{"value of " + keys[1], "value of " + keys[0], std::nullopt});
  CHECK(mixed.answers[1].values == Values{"value of " + keys[0]});
  CHECK(mixed.answers[2].values == Values{"value of " + keys[2], "value of " + keys[2]});
  CHECK(mixed.answers[3].values == Values{std::nullopt});
  CHECK(mixed.answers[4].values == Values{"value of " + keys[3]});
  CHECK(mixed.answers[5].values == Values{"new"});
  for (size_t i = 0; i < mixed.answers.size(); ++i) {
    CHECK(mixed.calls[i] == 1);
    CHECK(mixed.answers[i].status == McStatus::kOk);
  }

  McCounters c = pool.counters();
  CHECK(c.errors == 0);
  CHECK(c.gets == 500 + 9);
  CHECK(c.misses == 2);
}

TEST_CASE("memcached: a server killed under a queue of gets: every get answered once") {
  MemcachedServer a, b;
  MemcachedConfig config = config_for({&a, &b});
  config.threads = 1;
  MemcachedPool pool(config);

  auto keys = numbered_keys("edge:kill-batch/", 500);
  for (const auto& key : keys) REQUIRE(set_now(pool, key, "value of " + key) == McStatus::kOk);
  long on_a = memcached_stat(a.port, "curr_items");
  REQUIRE(on_a > 0);
  REQUIRE(on_a < 500);

  Gate gate;
  hold(pool, gate);
  Answers answers(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) REQUIRE(pool.get({keys[i]}, kInline, answers.callback(i)));
  b.process.kill(SIGKILL);
  REQUIRE(b.process.wait());
  gate.release();
  REQUIRE(answers.wait_all());

  // The keys of `a` are answered, and their gets are whole even in a batch where `b` failed; the
  // keys of `b` miss, with an error while `b` is in the ring.
  long hits = 0, failed = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    CHECK(answers.calls[i] == 1);
    const McGetResult& r = answers.answers[i];
    REQUIRE(r.values.size() == 1);
    if (r.values[0]) {
      CHECK(*r.values[0] == "value of " + keys[i]);
      CHECK(r.status == McStatus::kOk);
      ++hits;
    } else {
      CHECK(r.status != McStatus::kCancelled);
      failed += r.status == McStatus::kError || r.status == McStatus::kTimeout;
    }
  }
  CHECK(hits == on_a);
  CHECK(failed > 0);
  McCounters c = pool.counters();
  CHECK(c.errors + c.timeouts > 0);
}
