// Balancing across several single-threaded edge-app servers: least-open-connections, max_conns
// with the edge's queue, failures and retries.
#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {
// Two workers: the balancer's counters and queue must hold across threads.
std::string config(const std::string& servers, const std::string& backend_extra) {
  return single_backend_config(servers, backend_extra, "", 2);
}



// `clients` threads, each sending `per_client` requests for `target` on its own keep-alive
// connection. Returns the count of responses per X-Backend and of failures.
struct LoadResult {
  std::map<std::string, int> by_backend;
  int failures = 0;
  std::map<int, int> statuses;
};

LoadResult run_load(uint16_t port, int clients, int per_client, const std::string& target) {
  std::vector<std::thread> threads;
  std::vector<LoadResult> results(static_cast<size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      LoadResult& mine = results[static_cast<size_t>(c)];
      auto client = std::make_unique<Client>(port, std::chrono::seconds(30));
      for (int i = 0; i < per_client; ++i) {
        Response r;
        if (client->send("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n")) r = client->read_response();
        ++mine.statuses[r.status];
        if (r.status != 200) {
          ++mine.failures;
          client = std::make_unique<Client>(port, std::chrono::seconds(30));
          continue;
        }
        ++mine.by_backend[std::string(r.header("X-Backend").value_or("?"))];
      }
    });
  }
  for (auto& t : threads) t.join();
  LoadResult total;
  for (auto& r : results) {
    total.failures += r.failures;
    for (auto& [k, v] : r.by_backend) total.by_backend[k] += v;
    for (auto& [k, v] : r.statuses) total.statuses[k] += v;
  }
  return total;
}
}  // namespace

TEST_CASE("least_conn sends a slow server far fewer requests than round_robin does") {
  // One server is made slow by a CPU hog on a connection of its own.
  App fast1("fast1"), fast2("fast2"), slow("slow");
  auto share_of_slow = [&](const std::string& balance) {
    Edge edge(config(yaml_address(fast1.port) + ", " + yaml_address(fast2.port) + ", " + yaml_address(slow.port), "balance: " + balance));
    long before = app_stat(slow.port, "served");
    std::thread hog([&] {
      for (int i = 0; i < 4; ++i) get(slow.port, "x", "/cpu?ms=250");  // keeps `slow` busy ~1 s
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    LoadResult r = run_load(edge.port, 6, 20, "/wait?ms=5");
    hog.join();
    CHECK(r.failures == 0);
    return app_stat(slow.port, "served") - before - 4 - 1;  // minus the hog's and one /stats
  };
  long least_conn = share_of_slow("least_conn");
  long round_robin = share_of_slow("round_robin");
  CAPTURE(least_conn);
  CAPTURE(round_robin);
  CHECK(round_robin >= 35);           // a third of 120
  CHECK(least_conn * 3 <= round_robin);
}

std::string limited(uint16_t port, int max_conns) {
  return "{address: \"127.0.0.1:" + std::to_string(port) + "\", max_conns: " + std::to_string(max_conns) + "}";
}

TEST_CASE("max_conns 1: no server ever sees two requests at once, and no client fails") {
  App a("a"), b("b"), c("c");
  Edge edge(config(limited(a.port, 1) + ", " + limited(b.port, 1) + ", " + limited(c.port, 1),
                   "queue: {max: 100, timeout: 20s}"));
  LoadResult r = run_load(edge.port, 50, 4, "/wait?ms=10");
  CHECK(r.failures == 0);
  CHECK(r.by_backend["a"] + r.by_backend["b"] + r.by_backend["c"] == 200);
  for (const App* app : {&a, &b, &c}) CHECK(app_stat(app->port, "peak_in_progress") == 1);
}

TEST_CASE("a full queue gives 503 with Retry-After at once; a queue timeout gives 503 too") {
  App app("only");
  Edge edge(config(limited(app.port, 1), "queue: {max: 1, timeout: 800ms}"));
  Client busy(edge.port), waiting(edge.port), rejected(edge.port);
  busy.send("GET /wait?ms=1500 HTTP/1.1\r\nHost: a\r\n\r\n");
  // Make sure the first request holds the server before the others arrive.
  for (int i = 0; i < 100 && app_stat(app.port, "in_progress") < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  waiting.send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  rejected.send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
  Response full = rejected.read_response();
  CHECK(full.status == 503);
  CHECK(full.header("Retry-After"));
  // The queued one waited 800 ms for a server busy for 1.5 s: 503 as well.
  Response timed_out = waiting.read_response();
  CHECK(timed_out.status == 503);
  CHECK(busy.read_response().status == 200);
  CHECK(get(edge.port, "a", "/health").status == 200);
}

TEST_CASE("a queued request goes to the first server that frees up") {
  App app("only");
  Edge edge(config(limited(app.port, 1), "queue: {max: 10, timeout: 10s}"));
  Client busy(edge.port), waiting(edge.port);
  busy.send("GET /wait?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n");
  for (int i = 0; i < 100 && app_stat(app.port, "in_progress") < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  waiting.send("GET /echo?queued HTTP/1.1\r\nHost: a\r\n\r\n");
  Response r = waiting.read_response();
  CHECK(r.status == 200);
  CHECK(r.body.find("queued") != std::string::npos);
  CHECK(busy.read_response().status == 200);
  CHECK(app_stat(app.port, "peak_in_progress") <= 2);  // the request and a /stats call at most
}

TEST_CASE("a server stopped under GET load costs no client request") {
  App a("a"), c("c");
  auto b = std::make_unique<App>("b");
  Edge edge(config(yaml_address(a.port) + ", " + yaml_address(b->port) + ", " + yaml_address(c.port), ""));
  std::atomic<bool> stopped{false};
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    b.reset();  // SIGTERM: its connections close, whatever they were doing
    stopped = true;
  });
  LoadResult r = run_load(edge.port, 8, 60, "/wait?ms=10");
  killer.join();
  CHECK(stopped);
  CHECK(r.failures == 0);
  CAPTURE(r.statuses.size());
  CHECK(r.by_backend["a"] > 0);
  CHECK(r.by_backend["c"] > 0);
}

TEST_CASE("every server down: 503 at once, not a hang") {
  uint16_t dead1 = free_port(), dead2 = free_port();
  Edge edge(config(yaml_address(dead1) + ", " + yaml_address(dead2), "connect_timeout: 5s"));
  for (int i = 0; i < 5; ++i) {
    Response r = get(edge.port, "a", "/health");
    CHECK(r.status == 503);
    CHECK(r.header("Retry-After"));
  }
}

TEST_CASE("a request reset after it reached a server: a GET goes on to the next server, a POST is never sent twice") {
  App a("a"), b("b");
  Edge edge(config(yaml_address(a.port) + ", " + yaml_address(b.port), "eject: {failures: 0}"));
  auto received = [&] { return app_stat(a.port, "received") + app_stat(b.port, "received") - 2; };
  long before = received();
  // /close answers by closing: both servers see the GET, then 502.
  CHECK(get(edge.port, "a", "/close").status == 502);
  CHECK(received() - before == 2 + 2);  // two /close, and the two /stats calls of the last look
  before = received();
  Client client(edge.port);
  client.send("POST /close HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\ndata");
  CHECK(client.read_response().status == 502);
  CHECK(received() - before == 1 + 2);
}

TEST_CASE("health checks: a dead server goes down, and comes back after `rise` good checks") {
  TempDir secrets;
  const std::string token = "health-test-token";
  App a("a");
  auto b = std::make_unique<App>("b");
  const uint16_t b_port = b->port;
  std::string yaml = config(yaml_address(a.port) + ", " + yaml_address(b_port),
                            "balance: round_robin\n    health: {path: /health, interval: 100ms, timeout: 500ms, rise: 2, fall: 1}");
  yaml += "admin:\n  address: \"127.0.0.1:0\"\n  token_file: \"" + secrets.write("token", token) + "\"\n";
  Edge edge(yaml);
  const uint16_t admin_port = edge.admin_port;
  REQUIRE(wait_for_port(admin_port));
  auto b_state = [&] {
    Response r = exchange(admin_port, "GET /backends.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                                          "\r\nConnection: close\r\n\r\n");
    size_t line = r.body.find("127.0.0.1:" + std::to_string(b_port) + " ");
    if (line == std::string::npos) return std::string("?");
    size_t start = r.body.find(' ', line) + 1;
    return r.body.substr(start, r.body.find(' ', start) - start);
  };
  auto eventually = [](auto condition) {
    for (int i = 0; i < 200; ++i) {
      if (condition()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  };
  CHECK(eventually([&] { return b_state() == "up"; }));
  b.reset();
  CHECK(eventually([&] { return b_state() == "down"; }));
  // Down: every request is answered by a.
  for (int i = 0; i < 6; ++i) CHECK(get(edge.port, "x", "/health").header("X-Backend") == std::string_view("a"));
  b = std::make_unique<App>("b", std::vector<std::string>{"--port", std::to_string(b_port)});
  CHECK(eventually([&] { return b_state() == "up"; }));
  std::map<std::string, int> seen;
  for (int i = 0; i < 6; ++i) ++seen[std::string(get(edge.port, "x", "/health").header("X-Backend").value_or("?"))];
  CHECK(seen["b"] == 3);
  CHECK(seen["a"] == 3);
}

TEST_CASE("a request refused at once (queue off, server full) leaves its connection good for the next") {
  App app("full");
  Edge edge(single_backend_config(limited(app.port, 1), "queue: {max: 0}"));
  Client busy(edge.port);
  busy.send("GET /wait?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n");
  // Wait until the slow request holds the server's only slot.
  for (int i = 0; i < 500 && app_stat(app.port, "in_progress") < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Client client(edge.port);
  for (int i = 0; i < 3; ++i) {
    client.send("GET /cache/refused?cc=no-store HTTP/1.1\r\nHost: x\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.status == 503);
  }
  CHECK(busy.read_response().status == 200);
  client.send("GET /cache/refused?cc=no-store HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(client.read_response().status == 200);
}
