// MemcachedPool against two real memcached servers on loopback: keys spread over both, multi-gets,
// removes, the item limit, the queue bound, and a server killed in the middle. Time limits here
// are fail-safes against a hang, never measurements.
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
#include <string>
#include <thread>
#include <vector>

#include "cache/memcached.h"
#include "tests/integration/testkit.h"

using namespace edge::cache;
using namespace edge::testkit;
using namespace std::chrono_literals;

namespace {

constexpr auto kFailSafe = 20s;

struct MemcachedServer {
  MemcachedServer()
      : port(free_port()),
        process("/usr/bin/memcached",
                {"-l", "127.0.0.1", "-p", std::to_string(port), "-U", "0", "-u", "nobody", "-m", "64"}) {
    REQUIRE(wait_for_port(port));
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
  uint16_t port;
  Process process;
};

// One "STAT <name> <value>" of a server's `stats`, asked over a plain TCP connection.
long server_stat(uint16_t port, const std::string& name) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  const std::string request = "stats\r\n";
  REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  std::string answer;
  char buffer[4096];
  while (answer.find("END\r\n") == std::string::npos) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    answer.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  std::string prefix = "STAT " + name + " ";
  size_t at = answer.find(prefix);
  REQUIRE(at != std::string::npos);
  return std::stol(answer.substr(at + prefix.size()));
}

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

std::vector<std::string> numbered_keys(const std::string& prefix, int n) {
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) keys.push_back(prefix + std::to_string(i));
  return keys;
}

MemcachedConfig config_for(const std::vector<const MemcachedServer*>& servers) {
  MemcachedConfig config;
  for (const auto* s : servers) config.servers.push_back(s->address());
  config.timeout = 100ms;
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
  long on_a = server_stat(a.port, "curr_items");
  long on_b = server_stat(b.port, "curr_items");
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
  long on_a = server_stat(a.port, "curr_items");
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
