// The herd on a route whose responses are not storable (proxy/herd.h), through the real binaries.
// No timings: edge-app's `gather` holds each answer until as many requests for its target are at
// the backend together (or a time limit passes), and says how many were (X-Gathered). A herd of
// kClients that edge sends on at once is let go as one group, every answer saying kClients; a
// herd that waits for one fill is not (the first request is alone at the backend until its time
// limit), so at least one answer says fewer.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

constexpr int kClients = 8;

std::string config_for(const App& app, const std::string& cache_extra = "") {
  return R"(workers: 2
listen: [{address: "127.0.0.1:{{port}}"}]
cache: {memory: 64m)" + cache_extra + R"(}
backends:
  app: {servers: [)" + yaml_address(app.port) + R"(], connect_timeout: 500ms}
hosts:
  - match: ["*"]
    backend: app
    routes:
      - {path: /cache/api/}
      - {path: /cache/other/}
)";
}

Response get_with(uint16_t port, const std::string& target) {
  return exchange(port, "GET " + target + " HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
}

struct Herd {
  int ok = 0;                 // 200s
  int all_together = 0;       // answers that say all kClients were at the backend together
  long backend_requests = 0;  // what reached the backend for the target
};

// kClients requests at once for `target`, which edge-app holds until all kClients are at the
// backend, or for `limit_ms`.
Herd herd(const Edge& edge, const App& app, const std::string& target, int limit_ms) {
  const std::string held = target + "&gather=" + std::to_string(kClients) + "&gather_ms=" + std::to_string(limit_ms);
  std::vector<Response> answers(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) threads.emplace_back([&, i] { answers[static_cast<size_t>(i)] = get_with(edge.port, held); });
  for (std::thread& t : threads) t.join();
  Herd h;
  for (const Response& r : answers) {
    if (r.status == 200) ++h.ok;
    if (r.header("X-Gathered").value_or("") == std::to_string(kClients)) ++h.all_together;
  }
  h.backend_requests = app_count(app.port, held);
  return h;
}

// One request for each of `n` new keys under `prefix`, each a fill of its own, in turn.
void fills(const Edge& edge, const std::string& prefix, const std::string& query, int n) {
  for (int i = 0; i < n; ++i) REQUIRE(get_with(edge.port, prefix + std::to_string(i) + "?" + query).status >= 200);
}

}  // namespace

TEST_CASE("herd: after route_pass_after not-storable fills, a new key's herd goes to the backend at once") {
  App app("origin");
  Edge edge(config_for(app));
  // A fresh route coalesces: the herd waits for the first request's fetch (the control: the
  // measure below can tell the two apart).
  Herd first = herd(edge, app, "/cache/api/k0?cc=no-store", 1000);
  CHECK(first.ok == kClients);
  CHECK(first.backend_requests == kClients);
  CHECK(first.all_together == 0);
  // That was one not-storable fill; three more make four in a row.
  fills(edge, "/cache/api/one", "cc=no-store", 3);
  Herd learned = herd(edge, app, "/cache/api/k1?cc=no-store", 3000);
  CHECK(learned.ok == kClients);
  CHECK(learned.backend_requests == kClients);
  CHECK(learned.all_together == kClients);
  // Another reason of the response's own (private, Set-Cookie) keeps it so.
  Herd private_herd = herd(edge, app, "/cache/api/k2?cc=private%2C%20max-age%3D60", 3000);
  CHECK(private_herd.all_together == kClients);
}

TEST_CASE("herd: a storable response after the streak is stored and brings coalescing back") {
  App app("origin");
  Edge edge(config_for(app));
  fills(edge, "/cache/api/one", "cc=no-store", 4);
  REQUIRE(herd(edge, app, "/cache/api/k1?cc=no-store", 3000).all_together == kClients);

  const std::string stored = "/cache/api/s?cc=max-age%3D60";
  CHECK(get_with(edge.port, stored).header("X-Cache").value_or("") == "MISS");
  CHECK(get_with(edge.port, stored).header("X-Cache").value_or("") == "HIT");
  CHECK(app_count(app.port, stored) == 1);

  Herd again = herd(edge, app, "/cache/api/k2?cc=no-store", 1000);
  CHECK(again.ok == kClients);
  CHECK(again.backend_requests == kClients);
  CHECK(again.all_together == 0);
  // And a storable herd on the route is one backend request again.
  Herd cached = herd(edge, app, "/cache/api/k3?cc=max-age%3D60", 1000);
  CHECK(cached.ok == kClients);
  CHECK(cached.backend_requests == 1);
}

TEST_CASE("herd: the streak is per route; 5xx do not count; route_pass_after 0 always coalesces") {
  App app("origin");
  Edge edge(config_for(app));
  fills(edge, "/cache/api/one", "cc=no-store", 4);
  REQUIRE(herd(edge, app, "/cache/api/k1?cc=no-store", 3000).all_together == kClients);
  // Another route has learned nothing.
  CHECK(herd(edge, app, "/cache/other/k1?cc=no-store", 1000).all_together == 0);
  // Backend trouble says nothing about the route's responses.
  fills(edge, "/cache/trouble", "status=503", 4);
  fills(edge, "/cache/trouble-no-store", "cc=no-store&status=503", 4);
  CHECK(herd(edge, app, "/cache/k1?cc=no-store", 1000).all_together == 0);

  App app_off("origin");
  Edge off(config_for(app_off, ", route_pass_after: 0"));
  fills(off, "/cache/api/one", "cc=no-store", 6);
  Herd coalesced = herd(off, app_off, "/cache/api/k1?cc=no-store", 1000);
  CHECK(coalesced.ok == kClients);
  CHECK(coalesced.all_together == 0);
}

TEST_CASE("herd: a chunked response that outgrows max_object at its end counts as not storable") {
  App app("origin");
  // Storable by their fields, but chunked and larger than max_object, which only their end shows.
  Edge edge(config_for(app, ", max_object: 1k"));
  for (int i = 0; i < 4; ++i) {
    Response r = get_with(edge.port, "/cache/api/big" + std::to_string(i) + "?cc=max-age%3D60&size=5000&chunk=1000");
    REQUIRE(r.status == 200);
    REQUIRE(r.body.size() == 5000);
    CHECK(r.header("X-Cache").value_or("") == "MISS");
  }
  Herd learned = herd(edge, app, "/cache/api/k1?cc=no-store", 3000);
  CHECK(learned.ok == kClients);
  CHECK(learned.all_together == kClients);
}
