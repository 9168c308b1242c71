// Reloading the configuration (SIGHUP, POST /reload): applied without closing a connection or
// emptying the cache, requests in progress finishing on theirs; a wrong file changes nothing.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

constexpr const char* kToken = "reload-test-token";

// One configuration of the series: `extra_host` routed to the `solo` backend (none when
// empty), `servers` the `site` backend's, `memory` the cache's, `listen_extra` more listen
// entries (each a line of its own).
struct Shape {
  std::string extra_host;
  std::vector<uint16_t> servers;
  std::string memory = "64m";
  std::string listen_extra;
  std::string extra_route;  // a route path of site.test with `cache: off`
};

std::string render(const Shape& shape, uint16_t solo, const std::string& token_path) {
  std::string servers;
  for (uint16_t port : shape.servers) servers += (servers.empty() ? "" : ", ") + yaml_address(port);
  std::string yaml = R"(workers: 2
listen:
  - {address: "127.0.0.1:{{port}}"}
)" + shape.listen_extra + R"(admin:
  address: "127.0.0.1:0"
  token_file: ")" + token_path + R"("
cache: {memory: )" + shape.memory + R"(, max_object: 1m}
backends:
  site: {servers: [)" + servers + R"(]}
  solo: {servers: [)" + yaml_address(solo) + R"(]}
hosts:
  - match: [site.test]
    backend: site
)";
  if (!shape.extra_route.empty()) yaml += "    routes: [{path: " + shape.extra_route + ", cache: off}]\n";
  if (!shape.extra_host.empty()) yaml += "  - {match: [" + shape.extra_host + "], backend: solo}\n";
  return yaml;
}

// Edge's configuration file as the Edge wrote it: port 0 for its listener.
void rewrite(const Edge& edge, std::string yaml) {
  const std::string marker = "{{port}}";
  for (size_t at; (at = yaml.find(marker)) != std::string::npos;) yaml.replace(at, marker.size(), "0");
  std::ofstream(edge.config_path, std::ios::trunc) << yaml;
}

Response admin(uint16_t port, const std::string& method, const std::string& target) {
  return admin_request(port, kToken, method, target);
}

Response get_on(uint16_t port, const std::string& host, const std::string& target) {
  return exchange(port, "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n");
}

std::string x_cache(const Response& r) { return std::string(r.header("X-Cache").value_or("")); }

// A figure of the store in the admin port's /stats ("objects", "bytes", "memory").
long store_figure(uint16_t admin_port, const std::string& name) {
  const std::string body = admin(admin_port, "GET", "/stats").body;
  const std::string key = "\"" + name + "\":";
  const size_t store = body.find("\"store\":");
  const size_t at = body.find(key, store == std::string::npos ? 0 : store);
  if (at == std::string::npos) throw std::runtime_error("no " + name + " in /stats: " + body);
  return std::stol(body.substr(at + key.size()));
}

struct Site {
  App a{"a"};
  App b{"b"};
  App solo{"solo"};
  TempDir secrets;
  std::string token_path = secrets.write("admin.token", std::string(kToken) + "\n");
  Shape shape{"", {a.port}};
  Edge edge{render(shape, solo.port, token_path)};

  Response reload(const Shape& next) {
    shape = next;
    rewrite(edge, render(shape, solo.port, token_path));
    return admin(edge.admin_port, "POST", "/reload");
  }
};

}  // namespace

TEST_CASE("reload: 20 reloads under GETs and POSTs lose no request, and cached objects stay HITs") {
  Site site;
  const std::string cached = "/cache/hot?cc=max-age%3D600&body=hot";
  REQUIRE(x_cache(get_on(site.edge.port, "site.test", cached)) == "MISS");

  std::atomic<bool> stop{false};
  std::atomic<int> requests{0}, failures{0};
  std::vector<std::string> failed;  // the first few, for the report
  std::mutex failed_mutex;
  auto fail = [&](const std::string& what) {
    failures.fetch_add(1);
    std::lock_guard lock(failed_mutex);
    if (failed.size() < 5) failed.push_back(what);
  };
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t) {
    clients.emplace_back([&, t] {
      // Keep-alive connections, replaced now and then, and a POST with a body every third turn.
      for (int n = 0; !stop.load(); ++n) {
        Client client(site.edge.port);
        for (int k = 0; k < 20 && !stop.load(); ++k, ++n) {
          std::string raw;
          std::string want;
          if (n % 3 == 0) {
            const std::string body = "form=" + std::to_string(t) + "-" + std::to_string(n);
            raw = "POST /echo HTTP/1.1\r\nHost: site.test\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\n\r\n" + body;
            want = body;
          } else if (n % 3 == 1) {
            raw = "GET " + cached + " HTTP/1.1\r\nHost: site.test\r\n\r\n";
            want = "hot";
          } else {
            raw = "GET /echo?n=" + std::to_string(n) + " HTTP/1.1\r\nHost: site.test\r\n\r\n";
            want = "/echo?n=" + std::to_string(n);
          }
          requests.fetch_add(1);
          if (!client.send(raw)) {
            fail("send failed");
            break;
          }
          Response r = client.read_response();
          if (!r.complete || r.status != 200 || r.body.find(want) == std::string::npos) {
            fail(std::to_string(r.status) + " " + (r.complete ? "complete" : "incomplete") + " for " +
                 raw.substr(0, raw.find('\r')));
            break;
          }
        }
      }
    });
  }

  for (int i = 1; i <= 20; ++i) {
    Shape next;
    next.extra_host = "h" + std::to_string(i) + ".test";
    next.servers = i % 2 ? std::vector<uint16_t>{site.a.port, site.b.port} : std::vector<uint16_t>{site.b.port};
    next.memory = i % 3 ? "64m" : "32m";
    if (i % 4 == 0) next.extra_route = "/off" + std::to_string(i) + "/";
    Response r = site.reload(next);
    CHECK_MESSAGE(r.status == 200, r.body);
    CHECK(r.body.find("\"reloaded\":true") != std::string::npos);
    CHECK(r.body.find("\"generation\":" + std::to_string(i + 1)) != std::string::npos);
    // Answered once every worker runs it: the new host is served and the previous one is gone.
    CHECK(get_on(site.edge.port, next.extra_host, "/echo").status == 200);
    if (i > 1) CHECK(get_on(site.edge.port, "h" + std::to_string(i - 1) + ".test", "/echo").status == 404);
  }
  stop.store(true);
  for (std::thread& client : clients) client.join();

  CHECK(requests.load() > 60);
  CHECK_MESSAGE(failures.load() == 0, (failed.empty() ? std::string() : failed.front()));
  // Stored once, before the reloads, and still served from the cache.
  CHECK(x_cache(get_on(site.edge.port, "site.test", cached)) == "HIT");
  CHECK(app_count(site.a.port, cached) == 1);
  CHECK(store_figure(site.edge.admin_port, "memory") == 64l * 1024 * 1024);
  // The last configuration's servers took the last requests: b alone.
  for (int i = 0; i < 4; ++i) {
    const std::string target = "/echo?last=" + std::to_string(i);
    CHECK(get_on(site.edge.port, "site.test", target).status == 200);
    CHECK(app_count(site.a.port, target) == 0);
  }
}

TEST_CASE("reload: a wrong configuration is refused with its line, and the running one stays") {
  Site site;
  std::string good = render(site.shape, site.solo.port, site.token_path);
  // Line 9 of the file: a key edge does not know.
  std::string bad = good;
  bad.insert(bad.find("backends:"), "cache_size: 3\n");
  rewrite(site.edge, bad);
  const int line = 1 + static_cast<int>(std::count(bad.begin(), bad.begin() + bad.find("cache_size"), '\n'));
  Response r = admin(site.edge.admin_port, "POST", "/reload");
  CHECK(r.status == 422);
  CHECK(r.body.find("\"reloaded\":false") != std::string::npos);
  CHECK_MESSAGE(r.body.find(site.edge.config_path + ":" + std::to_string(line) + ":1:") != std::string::npos, r.body);
  CHECK(get_on(site.edge.port, "site.test", "/echo").status == 200);

  // A certificate that cannot be read: refused too, with the place that names it.
  std::string tls = good;
  tls.insert(tls.find("admin:"), "  - address: \"127.0.0.1:0\"\n    tls: {certificates: [{cert: missing.pem, key: missing.key}]}\n");
  rewrite(site.edge, tls);
  r = admin(site.edge.admin_port, "POST", "/reload");
  CHECK(r.status == 422);
  CHECK_MESSAGE(r.body.find("missing.pem") != std::string::npos, r.body);

  // SIGHUP says the same in the log.
  rewrite(site.edge, bad);
  site.edge.process.kill(SIGHUP);
  const std::string output = wait_for_line(site.edge.process, "edge: reload refused (SIGHUP)", "edge");
  CHECK(output.find(site.edge.config_path + ":" + std::to_string(line) + ":1:") != std::string::npos);
  CHECK(get_on(site.edge.port, "site.test", "/echo").status == 200);

  // And a good file afterwards applies.
  rewrite(site.edge, good);
  site.edge.process.kill(SIGHUP);
  wait_for_line(site.edge.process, "edge: reloaded (SIGHUP)", "edge");
  CHECK(get_on(site.edge.port, "site.test", "/echo").status == 200);
}

TEST_CASE("reload: a server that keeps its address keeps its state; a new one starts fresh") {
  Site site;
  Shape both{"", {site.a.port, site.b.port}};
  REQUIRE(site.reload(both).status == 200);
  const std::string a = "127.0.0.1:" + std::to_string(site.a.port);
  REQUIRE(admin(site.edge.admin_port, "POST", "/backends/site/" + a + "/drain").status == 200);
  for (int i = 0; i < 4; ++i) REQUIRE(get_on(site.edge.port, "site.test", "/echo?i=" + std::to_string(i)).status == 200);
  // A third server joins; a and b are kept.
  App c{"c"};
  Shape three{"", {site.a.port, site.b.port, c.port}};
  Response r = site.reload(three);
  REQUIRE(r.status == 200);
  CHECK(r.body.find("server added: 127.0.0.1:" + std::to_string(c.port)) != std::string::npos);
  const std::string text = admin(site.edge.admin_port, "GET", "/backends.txt").body;
  CHECK_MESSAGE(text.find("site " + a + " draining") != std::string::npos, text);
  // b served the four requests, and still says so.
  CHECK_MESSAGE(text.find("site 127.0.0.1:" + std::to_string(site.b.port) + " up in_flight=0 queued=0 served=4") !=
                    std::string::npos,
                text);
  CHECK(text.find("site 127.0.0.1:" + std::to_string(c.port) + " up in_flight=0 queued=0 served=0") !=
        std::string::npos);
  // The drained server takes nothing after the reload either.
  for (int i = 0; i < 6; ++i) {
    const std::string target = "/echo?j=" + std::to_string(i);
    CHECK(get_on(site.edge.port, "site.test", target).status == 200);
    CHECK(app_count(site.a.port, target) == 0);
  }
}

TEST_CASE("reload: a request in progress finishes on the configuration it started with") {
  Site site;
  Shape with_host{"slow.test", {site.a.port}};
  REQUIRE(site.reload(with_host).status == 200);
  Client slow(site.edge.port, std::chrono::seconds(30));
  REQUIRE(slow.send("GET /wait?ms=1500 HTTP/1.1\r\nHost: slow.test\r\n\r\n"));
  for (int i = 0; i < 2000 && app_count(site.solo.port, "/wait?ms=1500") < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(app_count(site.solo.port, "/wait?ms=1500") == 1);
  // The host and its backend's only route go away while the request waits for its answer.
  REQUIRE(site.reload(Shape{"", {site.a.port}}).status == 200);
  CHECK(get_on(site.edge.port, "slow.test", "/echo").status == 404);
  Response r = slow.read_response();
  CHECK(r.status == 200);
  CHECK(r.body == "waited 1500 ms\n");
  // The connection stays open, and its next request runs on the new configuration.
  REQUIRE(slow.send("GET /echo HTTP/1.1\r\nHost: slow.test\r\n\r\n"));
  CHECK(slow.read_response().status == 404);
}

TEST_CASE("reload: listeners are added and removed; connections already open stay") {
  Site site;
  Client kept(site.edge.port);
  REQUIRE(kept.send("GET /echo?k=1 HTTP/1.1\r\nHost: site.test\r\n\r\n"));
  REQUIRE(kept.read_response().status == 200);

  const uint16_t extra = free_port();
  Shape more{"", {site.a.port}};
  more.listen_extra = "  - {address: \"127.0.0.1:" + std::to_string(extra) + "\"}\n";
  Response r = site.reload(more);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(r.body.find("listener added: 127.0.0.1:" + std::to_string(extra)) != std::string::npos);
  CHECK(get_on(extra, "site.test", "/echo").status == 200);
  Client on_extra(extra);
  REQUIRE(on_extra.send("GET /echo?e=1 HTTP/1.1\r\nHost: site.test\r\n\r\n"));
  REQUIRE(on_extra.read_response().status == 200);

  r = site.reload(Shape{"", {site.a.port}});
  REQUIRE(r.status == 200);
  CHECK(r.body.find("listener removed: 127.0.0.1:" + std::to_string(extra)) != std::string::npos);
  CHECK_FALSE(Client(extra, std::chrono::seconds(2)).connected());
  // The connection the removed listener accepted is still served, and so is the first one.
  REQUIRE(on_extra.send("GET /echo?e=2 HTTP/1.1\r\nHost: site.test\r\n\r\n"));
  CHECK(on_extra.read_response().status == 200);
  REQUIRE(kept.send("GET /echo?k=2 HTTP/1.1\r\nHost: site.test\r\n\r\n"));
  CHECK(kept.read_response().status == 200);

  // A new address another process serves refuses the whole reload.
  // (SO_REUSEADDR: the connection the old listener accepted still holds the port.)
  const int blocker = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(blocker, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(extra);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(blocker, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(blocker, 4) == 0);
  r = site.reload(more);
  CHECK(r.status == 422);
  CHECK_MESSAGE(r.body.find("address already in use by another process") != std::string::npos, r.body);
  ::close(blocker);
  CHECK(get_on(site.edge.port, "site.test", "/echo").status == 200);
}

TEST_CASE("reload: a smaller cache.memory evicts in place down to it; the most wanted stays, a HIT") {
  // The bodies are not text: no background compression replaces an object while the store shrinks.
  Site site;
  Shape big{"", {site.a.port}};
  big.memory = "8m";
  REQUIRE(site.reload(big).status == 200);
  for (int i = 0; i < 8; ++i) {
    const std::string target = "/cache/big?cc=max-age%3D600&type=application%2Foctet-stream&size=400000&i=" + std::to_string(i);
    REQUIRE(x_cache(get_on(site.edge.port, "site.test", target)) == "MISS");
  }
  REQUIRE(store_figure(site.edge.admin_port, "objects") == 8);
  // The last one is asked for twice more: the most wanted.
  const std::string wanted = "/cache/big?cc=max-age%3D600&type=application%2Foctet-stream&size=400000&i=7";
  for (int i = 0; i < 2; ++i) REQUIRE(x_cache(get_on(site.edge.port, "site.test", wanted)) == "HIT");
  Shape small = big;
  small.memory = "1m";
  Response r = site.reload(small);
  REQUIRE(r.status == 200);
  CHECK(r.body.find("cache.memory: 8388608 -> 1048576") != std::string::npos);
  CHECK(store_figure(site.edge.admin_port, "memory") == 1048576);
  CHECK(store_figure(site.edge.admin_port, "bytes") <= 1048576);
  const long left = store_figure(site.edge.admin_port, "objects");
  CHECK(left >= 1);
  CHECK(left <= 2);
  // What was asked for most stays (the others tie, and those that took their place first keep it).
  CHECK(x_cache(get_on(site.edge.port, "site.test", wanted)) == "HIT");
}

TEST_CASE("reload: refused while edge stops; the admin port says so and the stop goes on") {
  Site site;
  Client slow(site.edge.port, std::chrono::seconds(30));
  REQUIRE(slow.send("GET /wait?ms=1500 HTTP/1.1\r\nHost: site.test\r\n\r\n"));
  for (int i = 0; i < 2000 && app_count(site.a.port, "/wait?ms=1500") < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(app_count(site.a.port, "/wait?ms=1500") == 1);
  site.edge.process.kill(SIGTERM);
  wait_for_line(site.edge.process, "edge: stopping (SIGTERM)", "edge");
  Response r = admin(site.edge.admin_port, "POST", "/reload");
  CHECK(r.status == 422);
  CHECK_MESSAGE(r.body.find("edge is stopping") != std::string::npos, r.body);
  // /top asks the workers, which no longer take news: it says why instead of waiting.
  r = admin(site.edge.admin_port, "GET", "/top");
  CHECK(r.status == 503);
  CHECK(slow.read_response().status == 200);
  CHECK(site.edge.process.wait(std::chrono::seconds(20)) == 0);
}
