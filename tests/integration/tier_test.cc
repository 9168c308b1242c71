// The memcached tier with real memcached servers and several edge processes: objects shared
// between nodes, purges made on one node holding on the others, static routes answered from
// memcached, and memcached failing under load without a client noticing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "compress/codec.h"
#include "tests/integration/testkit.h"

using namespace edge::testkit;
using namespace std::chrono_literals;

namespace {
constexpr char kToken[] = "tier-t0ken";

// Writes a value the way another tool would (nginx's memcached module reads such values).
void memcached_set(uint16_t port, const std::string& key, const std::string& value) {
  const std::string answer = memcached_command(
      port, "set " + key + " 0 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\n", "\r\n");
  REQUIRE(answer == "STORED\r\n");
}

std::string memcached_get(uint16_t port, const std::string& key) {
  return memcached_command(port, "get " + key + "\r\n", "END\r\n");
}

std::string servers_yaml(const std::vector<const MemcachedServer*>& servers) {
  std::string out;
  for (const MemcachedServer* server : servers) out += (out.empty() ? "" : ", ") + yaml_address(server->port);
  return out;
}

// One edge node of a cluster: its admin port and token file are known before it starts, so its
// peers' configurations can name them.
struct Node {
  ReservedPort admin;
  uint16_t admin_port = admin.port();
  std::unique_ptr<Edge> edge;
  uint16_t port() const { return edge->port; }
};

std::string node_config(const App& app, const std::string& memcached, const Node& self,
                        const std::vector<const Node*>& peers, const std::string& token_file,
                        const std::string& host_extra = "", const std::string& routes = "",
                        const std::string& memcached_extra = "") {
  std::string yaml = R"(
workers: 2
listen: [{address: "127.0.0.1:{{port}}"}]
admin:
  address: "127.0.0.1:)" + std::to_string(self.admin_port) + R"("
  token_file: ")" + token_file + R"("
backends:
  app: {servers: [)" + yaml_address(app.port) + R"(]}
cache:
  memcached:
    servers: [)" + memcached + "]\n" + memcached_extra;
  // Far above the 50 ms default: under a loaded machine (sanitizers, tests side by side) a live
  // server can take that long, and a write given up would fail a test that is not about timeouts.
  if (memcached_extra.find("timeout:") == std::string::npos) yaml += "    timeout: 2s\n";
  if (!peers.empty()) {
    yaml += "cluster:\n  peers:\n";
    for (const Node* peer : peers)
      yaml += "    - {address: \"127.0.0.1:" + std::to_string(peer->admin_port) + "\", token_file: \"" + token_file +
              "\"}\n";
  }
  yaml += R"(hosts:
  - match: ["*"]
    backend: app
)" + host_extra;
  if (!routes.empty()) yaml += "    routes:\n" + routes;
  return yaml;
}

Response fetch(uint16_t port, const std::string& target, const std::string& headers = "") {
  return exchange(port, "GET " + target + " HTTP/1.1\r\nHost: shop.test\r\n" + headers + "Connection: close\r\n\r\n");
}

Response admin(const Node& node, const std::string& target) {
  return exchange(node.admin_port, "POST " + target + " HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " +
                                       std::string(kToken) + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

std::string x_cache(const Response& r) { return std::string(r.header("X-Cache").value_or("")); }

// A figure of the node's memcached tier, from /stats.
long tier_stat(const Node& node, const std::string& name) {
  const Response r = exchange(node.admin_port, "GET /stats HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " +
                                                   std::string(kToken) + "\r\nConnection: close\r\n\r\n");
  const size_t section = r.body.find("\"memcached\":{");
  REQUIRE(section != std::string::npos);
  const size_t at = r.body.find("\"" + name + "\":", section);
  REQUIRE(at != std::string::npos);
  return std::stol(r.body.substr(at + name.size() + 3));
}

// Writes to memcached are not waited for by the response: wait for the node to count them.
void wait_for_stores(const Node& node, long stores) {
  for (int i = 0; i < 3000 && tier_stat(node, "stores") < stores; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(tier_stat(node, "stores") >= stores);
}

struct Cluster {
  App app{"origin"};
  MemcachedServer m1, m2;
  TempDir dir;
  std::string token_file = dir.write("token", kToken);
  Node a, b, c;  // a and b are peers; c shares memcached only and keeps nothing in RAM
  explicit Cluster(const std::string& routes = "") {
    const std::string memcached = servers_yaml({&m1, &m2});
    a.edge = std::make_unique<Edge>(node_config(app, memcached, a, {&b}, token_file, "", routes));
    b.edge = std::make_unique<Edge>(node_config(app, memcached, b, {&a}, token_file, "", routes));
    c.edge = std::make_unique<Edge>(node_config(app, memcached, c, {}, token_file, "    ram: off\n", routes));
    for (const Node* node : {&a, &b, &c}) REQUIRE(wait_for_port(node->admin_port));
  }
  long count(const std::string& target) const { return app_count(app.port, target); }
};
}  // namespace

TEST_CASE("tier: what one node fetched is a hit on the others, from memcached then from RAM") {
  Cluster cl;
  const std::string page = "/cache/shared?cc=max-age%3D600";
  Response first = fetch(cl.a.port(), page);
  CHECK(first.status == 200);
  CHECK(x_cache(first) == "MISS");
  wait_for_stores(cl.a, 1);

  Response on_b = fetch(cl.b.port(), page);
  CHECK(on_b.status == 200);
  CHECK(x_cache(on_b) == "HIT");
  CHECK(on_b.body == first.body);
  CHECK(x_cache(fetch(cl.b.port(), page)) == "HIT");
  CHECK(x_cache(fetch(cl.c.port(), page)) == "HIT");
  CHECK(cl.count(page) == 1);
  CHECK(tier_stat(cl.b, "hits") == 1);  // the second request on b was answered from its RAM
  CHECK(tier_stat(cl.c, "hits") == 1);
}

TEST_CASE("tier: purges made on one node hold on every node") {
  Cluster cl;
  struct Kind {
    const char* name;
    std::string target;
    std::string purge;
  };
  const std::vector<Kind> kinds = {
      {"url", "/cache/u?cc=max-age%3D600", "/purge?url=" + percent_encode("http://shop.test/cache/u?cc=max-age%3D600")},
      {"tag", "/cache/t?cc=max-age%3D600&tag=shelf", "/purge?tag=shelf"},
      {"ban by prefix", "/cache/banned/p?cc=max-age%3D600", "/ban?prefix=/cache/banned/"},
      {"ban by regex", "/cache/r-42?cc=max-age%3D600",
       "/ban?host=shop.test&regex=" + percent_encode("^/cache/r-[0-9]+")},
      {"soft tag", "/cache/s?cc=max-age%3D600&tag=soft", "/purge?tag=soft&soft=1"},
      {"soft ban", "/cache/sb/x?cc=max-age%3D600", "/ban?prefix=/cache/sb/&soft=1"},
  };
  long stores = 0;
  for (const Kind& kind : kinds) {
    CAPTURE(kind.name);
    REQUIRE(x_cache(fetch(cl.a.port(), kind.target)) == "MISS");
    wait_for_stores(cl.a, ++stores);
    REQUIRE(x_cache(fetch(cl.b.port(), kind.target)) == "HIT");  // now in b's RAM too
    REQUIRE(x_cache(fetch(cl.c.port(), kind.target)) == "HIT");  // from memcached
    REQUIRE(cl.count(kind.target) == 1);

    Response purged = admin(cl.a, kind.purge);
    CHECK(purged.status == 200);
    CHECK(purged.body.find("\"memcached\":\"ok\"") != std::string::npos);
    CHECK(purged.body.find("\"peers\":{\"ok\":1,\"failed\":0}") != std::string::npos);

    // b forgot it (told as a peer), c finds it purged in memcached: each asks the backend.
    Response on_b = fetch(cl.b.port(), kind.target);
    CHECK(on_b.status == 200);
    CHECK(x_cache(on_b) != "HIT");
    CHECK(cl.count(kind.target) == 2);
    Response on_c = fetch(cl.c.port(), kind.target);
    CHECK(on_c.status == 200);
    CHECK(cl.count(kind.target) >= 2);
    if (cl.count(kind.target) == 2) {
      // b's refetch was stored again before c asked: c may have it from memcached, stored
      // after the purge. It must be the new one.
      CHECK(x_cache(on_c) == "HIT");
    }
    stores = tier_stat(cl.a, "stores");
  }
  CHECK(tier_stat(cl.c, "purged") + tier_stat(cl.c, "misses") >= 1);
}

TEST_CASE("tier: a purge that cannot reach a peer says so") {
  App app{"origin"};
  MemcachedServer m;
  TempDir dir;
  const std::string token_file = dir.write("token", kToken);
  Node a, gone;  // nobody listens on gone's admin port
  a.edge = std::make_unique<Edge>(node_config(app, servers_yaml({&m}), a, {&gone}, token_file));
  REQUIRE(wait_for_port(a.admin_port));
  Response r = admin(a, "/purge?tag=anything");
  CHECK(r.status == 502);
  CHECK(r.body.find("\"memcached\":\"ok\"") != std::string::npos);
  CHECK(r.body.find("\"failed\":1") != std::string::npos);
  CHECK(r.body.find("peer 127.0.0.1:" + std::to_string(gone.admin_port)) != std::string::npos);
}

TEST_CASE("tier: a static route serves a value another tool wrote as the body, typed by its extension") {
  Cluster cl("      - {path: /static/, static: memcached, key: \"{path}\"}\n");
  const std::string css = "body { color: #333 }\n";
  memcached_set(cl.m1.port, "/static/site.css", css);
  memcached_set(cl.m2.port, "/static/site.css", css);  // whichever server the key hashes to
  Response r = fetch(cl.a.port(), "/static/site.css");
  CHECK(r.status == 200);
  CHECK(r.body == css);
  CHECK(r.header("Content-Type") == "text/css; charset=utf-8");
  CHECK(x_cache(r) == "HIT");
  CHECK(cl.count("/static/site.css") == 0);
  Response head =
      exchange(cl.c.port(), "HEAD /static/site.css HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n", "HEAD");
  CHECK(head.status == 200);
  CHECK(head.header("Content-Length") == std::to_string(css.size()));
  CHECK(tier_stat(cl.a, "foreign") >= 1);
}

TEST_CASE("tier: read-through on a static route stores the backend's response with its validators") {
  // The static route's prefix is where edge-app's /cache/ endpoint lives, so its responses say
  // what to store.
  const std::string routes = R"(      - {path: /cache/static/, static: memcached, key: "{host}{path}?{query}"}
      - {path: /cache/bare/, static: memcached, key: "{path}", ram: off}
)";
  Cluster cl(routes);
  const std::string target = "/cache/static/logo.png?cc=max-age%3D600&etag=%22v1%22&type=image/png";
  Response miss = fetch(cl.a.port(), target);
  CHECK(miss.status == 200);
  CHECK(x_cache(miss) == "MISS");
  wait_for_stores(cl.a, 1);
  // The key is the route's template: readable by other tools, exactly as configured.
  const std::string key = "shop.test" + target;
  const bool in_memcached = memcached_get(cl.m1.port, key).find("VALUE") != std::string::npos ||
                            memcached_get(cl.m2.port, key).find("VALUE") != std::string::npos;
  CHECK(in_memcached);

  Response hit = fetch(cl.c.port(), target);
  CHECK(hit.status == 200);
  CHECK(x_cache(hit) == "HIT");
  CHECK(hit.header("ETag") == "\"v1\"");
  CHECK(hit.header("Content-Type") == "image/png");
  CHECK(hit.body == miss.body);
  Response not_modified = fetch(cl.c.port(), target, "If-None-Match: \"v1\"\r\n");
  CHECK(not_modified.status == 304);
  CHECK(not_modified.body.empty());
  CHECK(cl.count(target) == 1);

  SUBCASE("a value that starts like a record but does not parse is a miss, never a crash") {
    const std::string bare = "/cache/bare/broken?cc=max-age%3D600";
    const std::string garbage = std::string("EDGE\x01", 5) + "this is not a record";
    memcached_set(cl.m1.port, "/cache/bare/broken", garbage);
    memcached_set(cl.m2.port, "/cache/bare/broken", garbage);
    Response r = fetch(cl.c.port(), bare);
    CHECK(r.status == 200);
    CHECK(r.body.find("EDGE") == std::string::npos);
    CHECK(cl.count(bare) == 1);
    CHECK(tier_stat(cl.c, "unparsable") >= 1);
  }
}

TEST_CASE("tier: HTTP cache records that do not parse are misses") {
  Cluster cl;
  const std::string page = "/cache/garbled?cc=max-age%3D600";
  const std::string key = "edge:shop.test/cache/garbled?cc=max-age%3D600";
  long stores = 0;
  const std::string broken[] = {std::string("EDGE\x01\xff\xff\xff\xff", 9), "EDGE\x07 a future version", "plain text"};
  for (const std::string& garbage : broken) {
    memcached_set(cl.m1.port, key, garbage);
    memcached_set(cl.m2.port, key, garbage);
    Response r = fetch(cl.c.port(), page);
    CHECK(r.status == 200);
    CHECK(x_cache(r) == "MISS");
    // The refetched response is written back: let that land before the next garbage does.
    wait_for_stores(cl.c, ++stores);
  }
  CHECK(cl.count(page) == 3);
  CHECK(tier_stat(cl.c, "unparsable") == 3);
}

TEST_CASE("tier: bodies over memcached's item limit stay in RAM only") {
  App app{"origin"};
  MemcachedServer m;
  TempDir dir;
  const std::string token_file = dir.write("token", kToken);
  Node a, b;
  const std::string memcached = servers_yaml({&m});
  a.edge = std::make_unique<Edge>(node_config(app, memcached, a, {}, token_file, "", "", "    max_item: 256k\n"));
  b.edge = std::make_unique<Edge>(node_config(app, memcached, b, {}, token_file, "", "", "    max_item: 256k\n"));
  REQUIRE(wait_for_port(a.admin_port));
  REQUIRE(wait_for_port(b.admin_port));
  const std::string big = "/cache/big?cc=max-age%3D600&size=1000000";
  const std::string small = "/cache/small?cc=max-age%3D600&size=100000";
  Response first = fetch(a.port(), big);
  CHECK(first.status == 200);
  CHECK(first.body.size() == 1000000);
  REQUIRE(fetch(a.port(), small).body.size() == 100000);
  wait_for_stores(a, 1);  // the small one
  for (int i = 0; i < 500 && tier_stat(a, "too_large") < 1; ++i) std::this_thread::sleep_for(10ms);
  CHECK(tier_stat(a, "too_large") == 1);
  Response again = fetch(a.port(), big);
  CHECK(x_cache(again) == "HIT");  // a's RAM
  CHECK(again.body == first.body);
  Response on_b = fetch(b.port(), big);
  CHECK(on_b.body == first.body);
  CHECK(x_cache(on_b) == "MISS");  // not in memcached: b fetched it itself
  CHECK(x_cache(fetch(b.port(), small)) == "HIT");
  CHECK(app_count(app.port, big) == 2);
  CHECK(app_count(app.port, small) == 1);
}

TEST_CASE("tier: a memcached server killed under load costs no client request") {
  App app{"origin"};
  auto m1 = std::make_unique<MemcachedServer>();
  MemcachedServer m2;
  TempDir dir;
  const std::string token_file = dir.write("token", kToken);
  Node a;
  a.edge = std::make_unique<Edge>(node_config(app, servers_yaml({m1.get(), &m2}), a, {}, token_file,
                                              "    ram: off\n"));
  REQUIRE(wait_for_port(a.admin_port));
  int failures = 0;
  int served = 0;
  for (int i = 0; i < 300; ++i) {
    if (i == 100) {
      m1->process.kill(SIGKILL);
      m1->process.wait();
    }
    const std::string target = "/cache/k" + std::to_string(i % 40) + "?cc=max-age%3D600";
    Response r = fetch(a.port(), target);
    if (r.status == 200 && r.complete)
      ++served;
    else
      ++failures;
  }
  CHECK(failures == 0);
  CHECK(served == 300);
  CHECK(tier_stat(a, "hits") > 0);
  // The dead server's keys fell to the other one or to the backend, and the failures show.
  CHECK(tier_stat(a, "errors") + tier_stat(a, "timeouts") > 0);
}

TEST_CASE("tier: edge assets bakes a directory that the static route then serves") {
  App app{"origin"};
  MemcachedServer m;
  TempDir dir;
  const std::string token_file = dir.write("token", kToken);
  Node a;
  const std::string config = node_config(app, servers_yaml({&m}), a, {}, token_file, "",
                                         "      - {path: /static/, static: memcached, key: \"{path}\"}\n");
  a.edge = std::make_unique<Edge>(config);
  REQUIRE(wait_for_port(a.admin_port));
  TempDir site;
  std::filesystem::create_directories(site.path() + "/css");
  site.write("css/site.css", "h1 { font-weight: bold }\n");
  site.write("app.js", "console.log('hi');\n");
  std::string script;
  for (int i = 0; i < 200; ++i) script += "function f" + std::to_string(i) + "() { return " + std::to_string(i) + "; }\n";
  site.write("big.js", script);
  Process assets(edge_bin(), {"assets", "--config", a.edge->config_path, "--route", "/static/", site.path()});
  REQUIRE(assets.wait(30s) == 0);
  CHECK(assets.output().find("3 files stored") != std::string::npos);
  // Compressed once, when baked: the record carries the route's encodings.
  const std::string raw = memcached_get(m.port, "/static/big.js");
  CHECK(raw.find("EDGE\x02") != std::string::npos);
  CHECK(raw.size() > script.size() + 200);
  Response coded = fetch(a.port(), "/static/big.js", "Accept-Encoding: zstd\r\n");
  CHECK(coded.header("Content-Encoding").value_or("") == "zstd");
  CHECK(coded.header("Content-Length").value_or("") == std::to_string(coded.body.size()));
  CHECK(edge::compress::decode_all(edge::compress::Coding::kZstd, coded.body, script.size()) == script);
  CHECK(fetch(a.port(), "/static/big.js").body == script);

  Response css = fetch(a.port(), "/static/css/site.css");
  CHECK(css.status == 200);
  CHECK(css.body == "h1 { font-weight: bold }\n");
  CHECK(css.header("Content-Type") == "text/css; charset=utf-8");
  CHECK(x_cache(css) == "HIT");
  const std::string etag(css.header("ETag").value_or(""));
  REQUIRE(etag.size() > 2);
  Response not_modified = fetch(a.port(), "/static/app.js", "If-None-Match: " +
                                                                  std::string(fetch(a.port(), "/static/app.js")
                                                                                  .header("ETag")
                                                                                  .value_or("none")) +
                                                                  "\r\n");
  CHECK(not_modified.status == 304);
  CHECK(app_count(app.port, "/static/css/site.css") == 0);
}

TEST_CASE("tier: a page stored for assembly is assembled on the node that reads it from memcached") {
  Cluster cl;
  const std::string fragment = "/cache/frag?cc=max-age%3D600&body=" + percent_encode("PIECE");
  const std::string page = "/cache/page?cc=max-age%3D600&surrogate=" + percent_encode("content=\"ESI/1.0\"") +
                           "&body=" + percent_encode("<p><esi:include src=\"" + fragment + "\"/></p>");
  Response on_a = fetch(cl.a.port(), page);
  CHECK(on_a.body == "<p>PIECE</p>");
  wait_for_stores(cl.a, 2);  // the page and its fragment
  Response on_c = fetch(cl.c.port(), page);
  CHECK(on_c.status == 200);
  CHECK(on_c.body == "<p>PIECE</p>");
  CHECK(cl.count(page) == 1);
  CHECK(cl.count(fragment) == 1);
  CHECK(tier_stat(cl.c, "hits") == 2);
}

TEST_CASE("tier: a soft purge elsewhere serves the record stale within grace while it is refreshed") {
  App app{"origin"};
  MemcachedServer m;
  TempDir dir;
  const std::string token_file = dir.write("token", kToken);
  Node a, d;  // not peers: d learns of the purge from memcached only
  const std::string memcached = servers_yaml({&m});
  const std::string routes = "      - {path: /cache/grace/, grace: 60s}\n";
  a.edge = std::make_unique<Edge>(node_config(app, memcached, a, {}, token_file, "", routes));
  d.edge = std::make_unique<Edge>(node_config(app, memcached, d, {}, token_file, "", routes));
  REQUIRE(wait_for_port(a.admin_port));
  REQUIRE(wait_for_port(d.admin_port));
  const std::string page = "/cache/grace/p?cc=max-age%3D600&tag=g&etag=%22e1%22";
  REQUIRE(x_cache(fetch(a.port(), page)) == "MISS");
  wait_for_stores(a, 1);
  REQUIRE(admin(a, "/purge?tag=g&soft=1").status == 200);

  Response stale = fetch(d.port(), page);
  CHECK(stale.status == 200);
  CHECK(x_cache(stale) == "STALE");
  // The refresh runs in the background: wait for the backend to see it, then d has it fresh.
  for (int i = 0; i < 500 && app_count(app.port, page) < 2; ++i) std::this_thread::sleep_for(10ms);
  CHECK(app_count(app.port, page) == 2);
  std::string label;
  for (int i = 0; i < 500 && label != "HIT"; ++i) {
    label = x_cache(fetch(d.port(), page));
    if (label != "HIT") std::this_thread::sleep_for(10ms);
  }
  CHECK(label == "HIT");
  CHECK(app_count(app.port, page) == 2);
}

TEST_CASE("tier: every Vary variant is shared, not only the last one stored") {
  Cluster cl;
  const std::string page = "/cache/lang?cc=max-age%3D600&vary=Accept-Language";
  const std::string english = "Accept-Language: en\r\n";
  const std::string french = "Accept-Language: fr\r\n";
  REQUIRE(x_cache(fetch(cl.a.port(), page, english)) == "MISS");
  wait_for_stores(cl.a, 2);  // under the URL's key and under the variant's
  REQUIRE(x_cache(fetch(cl.a.port(), page, french)) == "MISS");
  wait_for_stores(cl.a, 4);
  // The URL's key now holds the French one; the English one is still found, under its own key.
  Response en = fetch(cl.c.port(), page, english);
  CHECK(x_cache(en) == "HIT");
  CHECK(en.body.find("GET /cache/lang") != std::string::npos);
  CHECK(x_cache(fetch(cl.c.port(), page, french)) == "HIT");
  CHECK(x_cache(fetch(cl.b.port(), page, english)) == "HIT");
  CHECK(cl.count(page) == 2);
  // A purge of the URL reaches every variant.
  REQUIRE(admin(cl.a, "/purge?url=" + percent_encode("http://shop.test" + page)).status == 200);
  CHECK(x_cache(fetch(cl.c.port(), page, english)) == "MISS");
  CHECK(cl.count(page) == 3);
}

TEST_CASE("tier: assets baked into a fresh memcached before any edge started are served") {
  App app{"origin"};
  MemcachedServer m;
  TempDir dir;
  const std::string token_file = dir.write("token", kToken);
  const std::string routes = "      - {path: /static/, static: memcached, key: \"{path}\"}\n";
  Node a;
  // The same configuration, with a listen address of its own: edge is not running yet.
  std::string baking = node_config(app, servers_yaml({&m}), a, {}, token_file, "", routes);
  baking.replace(baking.find("{{port}}"), 8, "1");
  const std::string baking_config = dir.write("baking.yaml", baking);
  TempDir site;
  site.write("first.css", "p { margin: 0 }\n");
  Process assets(edge_bin(), {"assets", "--config", baking_config, "--route", "/static/", site.path()});
  REQUIRE(assets.wait(30s) == 0);
  CHECK(assets.output().find("1 files stored") != std::string::npos);

  a.edge = std::make_unique<Edge>(node_config(app, servers_yaml({&m}), a, {}, token_file, "", routes));
  REQUIRE(wait_for_port(a.admin_port));
  Response css = fetch(a.port(), "/static/first.css");
  CHECK(css.status == 200);
  CHECK(css.body == "p { margin: 0 }\n");
  CHECK(app_count(app.port, "/static/first.css") == 0);
  CHECK(tier_stat(a, "purged") == 0);
}

TEST_CASE("tier: an asset asked for before it was baked is served from memcached once it is") {
  App app{"origin"};
  MemcachedServer m;
  TempDir dir;
  const std::string token_file = dir.write("token", kToken);
  Node a;
  a.edge = std::make_unique<Edge>(node_config(app, servers_yaml({&m}), a, {}, token_file, "",
                                              "      - {path: /static/, static: memcached, key: \"{path}\"}\n"));
  REQUIRE(wait_for_port(a.admin_port));
  // Not baked yet: the backend answers (its 404 is not stored), and nothing of it may keep the
  // route from memcached once the file is there.
  Response early = fetch(a.port(), "/static/late.txt");
  CHECK(early.status == 404);
  TempDir site;
  site.write("late.txt", "not yet, then baked\n");
  Process assets(edge_bin(), {"assets", "--config", a.edge->config_path, "--route", "/static/", site.path()});
  REQUIRE(assets.wait(30s) == 0);
  Response css = fetch(a.port(), "/static/late.txt");
  CHECK(css.status == 200);
  CHECK(css.body == "not yet, then baked\n");
  CHECK(app_count(app.port, "/static/late.txt") == 1);
}

TEST_CASE("tier: a record carries the body's encodings, which the node that reads it serves") {
  Cluster cl;
  const std::string page = "/cache/coded-shared?cc=max-age%3D600&size=30000&type=text%2Fhtml";
  std::string identity;
  for (int i = 0; i < 30000; ++i) identity.push_back(static_cast<char>('a' + i % 26));
  Response first = fetch(cl.a.port(), page, "Accept-Encoding: br\r\n");
  CHECK(first.header("Content-Encoding").value_or("") == "br");
  wait_for_stores(cl.a, 1);
  const std::string key = "edge:shop.test" + page;
  const std::string raw = memcached_get(cl.m1.port, key) + memcached_get(cl.m2.port, key);
  CHECK(raw.find("EDGE\x02") != std::string::npos);
  for (const char* coding : {"br", "zstd", "gzip"}) {
    CAPTURE(coding);
    Response on_c = fetch(cl.c.port(), page, std::string("Accept-Encoding: ") + coding + "\r\n");
    CHECK(x_cache(on_c) == "HIT");
    CHECK(on_c.header("Content-Encoding").value_or("") == coding);
    CHECK(on_c.header("Content-Length").value_or("") == std::to_string(on_c.body.size()));
    const auto decoded =
        edge::compress::decode_all(*edge::compress::parse_coding(coding), on_c.body, identity.size());
    CHECK(decoded == identity);
  }
  CHECK(cl.count(page) == 1);
}
