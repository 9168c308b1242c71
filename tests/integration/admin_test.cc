// The admin port: a listener of its own with a bearer token, listing the backends and their
// servers, draining and enabling servers, purging and banning cached objects, cache statistics
// as JSON and Prometheus metrics; the client listeners never serve it. (Purges of objects
// actually cached are tested with the cache itself.)
#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {
constexpr char kToken[] = "s3cret-t0ken";

std::string server(const App& app) { return "127.0.0.1:" + std::to_string(app.port); }

// Two apps behind the `books` backend (round robin, so both certainly get traffic) and the
// first one alone behind `solo`.
// `admin_extra`: more keys for the admin section, each line indented by two spaces.
std::string config(const App& a, const App& b, const std::string& token_path,
                   const std::string& admin_extra = "") {
  return R"(
workers: 1
listen: [{address: "127.0.0.1:{{port}}"}]
admin:
  address: "127.0.0.1:0"
  token_file: ")" + token_path + R"("
)" + admin_extra + R"(
backends:
  books:
    balance: round_robin
    servers: [")" + server(a) + R"(", ")" + server(b) + R"("]
  solo:
    servers: [")" + server(a) + R"("]
hosts:
  - match: ["*"]
    backend: books
)";
}

struct Site {
  explicit Site(std::string extra = "") : admin_extra(std::move(extra)) { REQUIRE(wait_for_port(admin_port)); }
  std::string admin_extra;
  App a{"a"};
  App b{"b"};
  TempDir secrets;
  Edge edge{config(a, b, secrets.write("admin.token", std::string(kToken) + "\n"), admin_extra)};
  uint16_t admin_port = edge.admin_port;
};

std::string request(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& extra = "") {
  std::string out = method + " " + target + " HTTP/1.1\r\nHost: admin\r\n";
  if (!token.empty()) out += "Authorization: Bearer " + token + "\r\n";
  if (method == "POST") out += "Content-Length: 0\r\n";
  return out + extra + "\r\n";
}

Response admin(uint16_t port, const std::string& method, const std::string& target,
               const std::string& token = kToken) {
  return exchange(port, request(method, target, token, "Connection: close\r\n"), method);
}

// Which app answered each of n requests through the edge.
std::map<std::string, int> spread(uint16_t edge_port, int n) {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    Response r = get(edge_port, "books.test", "/echo");
    CHECK(r.status == 200);
    ++seen[std::string(r.header("X-Backend").value_or("none"))];
  }
  return seen;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("without the right token every admin request gets 401") {
  Site site;
  for (const std::string token : {"", "wrong", "s3cret-t0ke", "s3cret-t0kenX"}) {
    CAPTURE(token);
    Response r = admin(site.admin_port, "GET", "/backends", token);
    CHECK(r.status == 401);
    CHECK(r.header("WWW-Authenticate") == std::string_view("Bearer"));
    CHECK(r.header("Content-Type") == std::string_view("application/json"));
    CHECK(r.body == "{\"error\":\"unauthorized\"}\n");
  }
  // Also for paths that do not exist, and for the actions: nothing is revealed or changed.
  CHECK(admin(site.admin_port, "GET", "/nothing", "wrong").status == 401);
  CHECK(admin(site.admin_port, "POST", "/backends/books/" + server(site.a) + "/drain", "wrong").status == 401);
  CHECK(contains(admin(site.admin_port, "GET", "/backends.txt").body, " up "));
  // Another scheme with the right token is no bearer credential.
  Response basic = exchange(site.admin_port,
                            "GET /backends HTTP/1.1\r\nHost: admin\r\nAuthorization: Basic " + std::string(kToken) +
                                "\r\nConnection: close\r\n\r\n");
  CHECK(basic.status == 401);
}

TEST_CASE("the cache endpoints want the token too") {
  Site site;
  for (const std::string token : {"", "wrong"}) {
    CAPTURE(token);
    struct Call {
      const char* method;
      const char* target;
    };
    for (const Call& call : {Call{"POST", "/purge?url=http%3A%2F%2Fbooks.test%2Fecho"}, Call{"POST", "/purge?tag=t"},
                             Call{"POST", "/ban?prefix=%2F"}, Call{"GET", "/stats"}, Call{"GET", "/metrics"},
                             Call{"GET", "/purge?tag=t"}}) {
      CAPTURE(call.target);
      Response r = admin(site.admin_port, call.method, call.target, token);
      CHECK(r.status == 401);
      CHECK(r.header("WWW-Authenticate") == std::string_view("Bearer"));
      CHECK(r.body == "{\"error\":\"unauthorized\"}\n");
    }
  }
  // Nothing was banned by any of that.
  CHECK(contains(admin(site.admin_port, "GET", "/stats").body, "\"bans\":0,"));
}

TEST_CASE("GET /stats: cache events per host entry, totals and the store, as JSON") {
  Site site;
  Response r = admin(site.admin_port, "GET", "/stats");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == std::string_view("application/json"));
  CHECK(r.header("Content-Length") == std::string_view(std::to_string(r.body.size())));
  const std::string zero_events =
      "\"hits\":0,\"misses\":0,\"passes\":0,\"coalesced\":0,\"hit_for_pass\":0,\"stale\":0,\"revalidated\":0,\"esi_failed\":0,"
      "\"hit_ratio\":0";
  const size_t connections = r.body.find(",\"connections\":");
  REQUIRE(connections != std::string::npos);
  CHECK(r.body.substr(0, connections) ==
        "{\"hosts\":[{\"host\":\"*\"," + zero_events + "}],\"totals\":{" + zero_events +
            "},\"store\":{\"objects\":0,\"bytes\":0,\"memory\":268435456,\"inserts\":0,\"evictions\":0,"
            "\"refused_too_large\":0,\"purged\":0,\"bans\":0,\"hit_for_pass_marks\":0,"
            "\"admission_refusals\":0,\"head_bytes\":0,\"body_bytes\":0,\"overhead_bytes\":0,"
            "\"sketch_bytes\":2097152,\"per_object\":{\"head\":0,\"body\":0,\"overhead\":0}},"
            "\"limits\":{\"too_many_fields\":0,\"slow_uploads\":0,\"send_timeouts\":0,\"paused_at_file_cap\":0,"
            "\"paused_at_temp_total\":0,\"slots_held\":0,\"variants_replaced\":0,\"temp_bytes\":0,"
            "\"temp_bytes_peak\":0}");
  // The harness's one probe of the client port is a connection closed without a word, counted
  // once edge has seen it go.
  auto connections_with = [](int client_closed) {
    return "\"requests\":0,\"upstream_failures\":0,\"tls_handshakes\":0,\"tls_resumed\":0,"
           "\"access_log_dropped\":0,\"h2_connections\":0,\"h2_streams\":0,\"compression\":{\"br\":{\"responses\":0,\"bytes_before\":0,\"bytes_after\":0},"
           "\"zstd\":{\"responses\":0,\"bytes_before\":0,\"bytes_after\":0},"
           "\"gzip\":{\"responses\":0,\"bytes_before\":0,\"bytes_after\":0}},\"closes\":{\"client_closed\":" +
           std::to_string(client_closed) +
           ",\"keep_alive_done\":0,\"idle_timeout\":0,\"header_timeout\":0,\"body_timeout\":0,"
           "\"slow_upload\":0,\"send_timeout\":0,\"bad_request\":0,\"client_abort\":0,\"write_error\":0,"
           "\"upstream_broken\":0,\"too_many_connections\":0,\"client_conn_limit\":0,\"tls_handshake_failed\":0,"
           "\"plain_http_on_tls\":0,\"shutdown\":0,\"h2_protocol_error\":0,\"h2_flood\":0,\"tunnel_done\":0},"
           "\"rules\":{\"denied\":0,\"rate_limited\":0,\"maintenance\":0,\"redirected\":0,\"purged\":0}},\"workers\":[{\"connections\":";
  };
  // What is open and the bytes, then the counters, then each worker's connections.
  const std::string rest = r.body.substr(connections);
  CHECK(rest.starts_with(",\"connections\":{\"open\":"));
  CHECK(contains(rest, ",\"backend_open\":0,\"bytes_in\":0,\"bytes_out\":0,\"backend_bytes_in\":0,"
                       "\"backend_bytes_out\":0,"));
  const std::string counters = rest.substr(std::min(rest.size(), rest.find("\"requests\":")));
  CHECK_MESSAGE((counters.starts_with(connections_with(0)) || counters.starts_with(connections_with(1))), counters);
  CHECK(rest.ends_with("}]}\n"));
  Response head = admin(site.admin_port, "HEAD", "/stats");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.header("Content-Length") == std::string_view(std::to_string(r.body.size())));
}

TEST_CASE("GET /metrics: the cache and the backends in the Prometheus text format") {
  Site site;
  spread(site.edge.port, 4);
  Response r = admin(site.admin_port, "GET", "/metrics");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == std::string_view("text/plain; version=0.0.4; charset=utf-8"));
  CAPTURE(r.body);
  for (const std::string& line : std::vector<std::string>{
           "# TYPE edge_cache_events_total counter", "edge_cache_events_total{host=\"*\",event=\"hits\"} ",
        "edge_cache_events_total{host=\"*\",event=\"revalidated\"} ", "# TYPE edge_cache_hit_ratio gauge",
        "edge_cache_hit_ratio{host=\"*\"} ", "edge_cache_objects ", "edge_cache_bytes ",
        "edge_cache_memory_bytes 268435456\n", "edge_cache_evictions_total ", "edge_cache_purged_total ",
        "edge_backend_queued{backend=\"books\"} 0\n",
        "edge_backend_server_served_total{backend=\"books\",server=\"" + server(site.a) + "\"} 2\n",
        "edge_backend_server_in_flight{backend=\"books\",server=\"" + server(site.b) + "\"} 0\n",
        "edge_backend_server_state{backend=\"books\",server=\"" + server(site.a) + "\",state=\"up\"} 1\n",
        "edge_backend_server_state{backend=\"solo\",server=\"" + server(site.a) + "\",state=\"draining\"} 0\n"}) {
    CAPTURE(line);
    CHECK(contains(r.body, line));
  }
  // Every line a comment or a sample with a number.
  size_t start = 0;
  while (start < r.body.size()) {
    size_t end = r.body.find('\n', start);
    REQUIRE(end != std::string::npos);
    std::string line = r.body.substr(start, end - start);
    start = end + 1;
    CAPTURE(line);
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) continue;
    CHECK(line.starts_with("edge_"));
    CHECK(line.substr(line.rfind(' ') + 1).find_first_not_of("0123456789.e-") == std::string::npos);
  }
  CHECK(admin(site.admin_port, "POST", "/metrics").header("Allow") == std::string_view("GET, HEAD"));
}

TEST_CASE("purge and ban on an empty cache: answers, errors, methods") {
  Site site;
  Response by_url = admin(site.admin_port, "POST", "/purge?url=http%3A%2F%2Fbooks.test%2Fecho%3Fa%3D1");
  CHECK(by_url.status == 200);
  CHECK(by_url.header("Content-Type") == std::string_view("application/json"));
  CHECK(by_url.body == "{\"purged\":0}\n");
  CHECK(admin(site.admin_port, "POST", "/purge?url=https://books.test:8443/echo&soft=1").body == "{\"purged\":0}\n");
  CHECK(admin(site.admin_port, "POST", "/purge?tag=product-42").body == "{\"purged\":0}\n");
  CHECK(admin(site.admin_port, "POST", "/purge?tag=product-42&soft=1").body == "{\"purged\":0}\n");

  Response no_url = admin(site.admin_port, "POST", "/purge");
  CHECK(no_url.status == 400);
  CHECK(no_url.header("Content-Type") == std::string_view("application/json"));
  CHECK(no_url.body == "{\"error\":\"give either url or tag\"}\n");
  Response bad_url = admin(site.admin_port, "POST", "/purge?url=%2Fecho");
  CHECK(bad_url.status == 400);
  CHECK(bad_url.body == "{\"error\":\"url must be an absolute http or https URL\"}\n");
  CHECK(admin(site.admin_port, "POST", "/purge?url=http://books.test/%zz").status == 400);
  CHECK(admin(site.admin_port, "POST", "/purge?tag=t&soft=maybe").status == 400);

  Response ban = admin(site.admin_port, "POST", "/ban?host=books.test&prefix=%2Fimg%2F");
  CHECK(ban.status == 200);
  CHECK(ban.header("Content-Type") == std::string_view("application/json"));
  CAPTURE(ban.body);
  CHECK(ban.body.starts_with("{\"ban\":1,\"active_bans\":"));  // the sweep may already have dropped some
  CHECK(ban.body.ends_with("}\n"));
  Response regex = admin(site.admin_port, "POST", "/ban?regex=%5C.jpe%3Fg%24&soft=1");
  CHECK(regex.status == 200);
  CHECK(regex.body.starts_with("{\"ban\":2,\"active_bans\":"));
  Response bad_regex = admin(site.admin_port, "POST", "/ban?regex=(unclosed");
  CHECK(bad_regex.status == 400);
  CHECK(bad_regex.body.starts_with("{\"error\":\"invalid regex: "));
  Response no_prefix = admin(site.admin_port, "POST", "/ban?host=books.test");
  CHECK(no_prefix.status == 400);
  CHECK(no_prefix.body == "{\"error\":\"give a prefix, a regex or both\"}\n");

  Response get_purge = admin(site.admin_port, "GET", "/purge?tag=t");
  CHECK(get_purge.status == 405);
  CHECK(get_purge.header("Allow") == std::string_view("POST"));
  Response get_ban = admin(site.admin_port, "GET", "/ban?prefix=/");
  CHECK(get_ban.status == 405);
  CHECK(get_ban.header("Allow") == std::string_view("POST"));
  Response post_stats = admin(site.admin_port, "POST", "/stats");
  CHECK(post_stats.status == 405);
  CHECK(post_stats.header("Allow") == std::string_view("GET, HEAD"));

  // Requests still pass through the edge as before.
  CHECK(spread(site.edge.port, 2).size() == 2);
}

TEST_CASE("GET /backends lists every backend and server as JSON; /backends.txt as lines") {
  Site site;
  spread(site.edge.port, 4);  // some traffic, so the counters are not all zero

  Response r = admin(site.admin_port, "GET", "/backends");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == std::string_view("application/json"));
  CHECK(r.header("Content-Length") == std::string_view(std::to_string(r.body.size())));
  CHECK(contains(r.body, "{\"backends\":[{\"name\":\"books\",\"balance\":\"round_robin\",\"queued\":0,\"servers\":["));
  CHECK(contains(r.body, "{\"address\":\"" + server(site.a) + "\",\"state\":\"up\",\"in_flight\":0,\"served\":"));
  CHECK(contains(r.body, "{\"address\":\"" + server(site.b) + "\",\"state\":\"up\""));
  CHECK(contains(r.body, "{\"name\":\"solo\",\"balance\":\"least_conn\""));
  // solo's server had no request: no percentiles; books' servers have theirs.
  CHECK(contains(r.body, "\"weight\":1,\"max_conns\":0,\"response_ms\":{\"p50\":null,\"p90\":null,\"p99\":null},"
                         "\"last_check\":null"));
  CHECK_FALSE(contains(r.body, "\"served\":2,\"failed\":0,\"weight\":1,\"max_conns\":0,\"response_ms\":{\"p50\":null"));
  CHECK(contains(r.body, "\"served\":2,"));  // round robin: two each

  Response text = admin(site.admin_port, "GET", "/backends.txt");
  REQUIRE(text.status == 200);
  CHECK(text.header("Content-Type").value_or("").starts_with("text/plain"));
  CHECK(contains(text.body, "books " + server(site.a) + " up in_flight=0 queued=0 served=2 failed=0 check=-\n"));
  CHECK(contains(text.body, "books " + server(site.b) + " up in_flight=0 queued=0 served=2 failed=0 check=-\n"));
  CHECK(contains(text.body, "solo " + server(site.a) + " up in_flight=0 queued=0 served=0 failed=0 check=-\n"));

  // HEAD: the same head, no body.
  Response head = admin(site.admin_port, "HEAD", "/backends");
  CHECK(head.status == 200);
  CHECK(head.complete);
  CHECK(head.body.empty());
  CHECK(head.header("Content-Length") == std::string_view(std::to_string(r.body.size())));
}

TEST_CASE("a drained server gets no new requests; enabled again, it does") {
  Site site;
  std::map<std::string, int> before = spread(site.edge.port, 10);
  CHECK(before["a"] == 5);
  CHECK(before["b"] == 5);

  Response drain = admin(site.admin_port, "POST", "/backends/books/" + server(site.a) + "/drain");
  REQUIRE(drain.status == 200);
  CHECK(drain.header("Content-Type") == std::string_view("application/json"));
  CHECK(drain.body == "{\"backend\":\"books\",\"server\":\"" + server(site.a) + "\",\"state\":\"draining\"}\n");
  CHECK(contains(admin(site.admin_port, "GET", "/backends").body,
                 "{\"address\":\"" + server(site.a) + "\",\"state\":\"draining\""));
  CHECK(contains(admin(site.admin_port, "GET", "/backends.txt").body, "books " + server(site.a) + " draining "));
  // Draining is per backend: `solo` still lists the same address as up.
  CHECK(contains(admin(site.admin_port, "GET", "/backends.txt").body, "solo " + server(site.a) + " up "));

  std::map<std::string, int> drained = spread(site.edge.port, 10);
  CHECK(drained["a"] == 0);
  CHECK(drained["b"] == 10);

  Response enable = admin(site.admin_port, "POST", "/backends/books/" + server(site.a) + "/enable");
  REQUIRE(enable.status == 200);
  CHECK(enable.body == "{\"backend\":\"books\",\"server\":\"" + server(site.a) + "\",\"state\":\"up\"}\n");
  std::map<std::string, int> after = spread(site.edge.port, 10);
  CHECK(after["a"] == 5);
  CHECK(after["b"] == 5);
}

TEST_CASE("unknown backends and servers get 404, wrong methods 405 with Allow") {
  Site site;
  Response no_backend = admin(site.admin_port, "POST", "/backends/nope/" + server(site.a) + "/drain");
  CHECK(no_backend.status == 404);
  CHECK(no_backend.header("Content-Type") == std::string_view("application/json"));
  CHECK(no_backend.body == "{\"error\":\"unknown backend\"}\n");
  Response no_server = admin(site.admin_port, "POST", "/backends/books/127.0.0.1:1/drain");
  CHECK(no_server.status == 404);
  CHECK(no_server.body == "{\"error\":\"unknown server\"}\n");
  CHECK(admin(site.admin_port, "GET", "/nowhere").status == 404);
  CHECK(admin(site.admin_port, "GET", "/backends/books").status == 404);
  CHECK(admin(site.admin_port, "POST", "/backends/books/" + server(site.a) + "/reboot").status == 404);

  Response get_drain = admin(site.admin_port, "GET", "/backends/books/" + server(site.a) + "/drain");
  CHECK(get_drain.status == 405);
  CHECK(get_drain.header("Allow") == std::string_view("POST"));
  Response post_list = admin(site.admin_port, "POST", "/backends");
  CHECK(post_list.status == 405);
  CHECK(post_list.header("Allow") == std::string_view("GET, HEAD"));
  // Nothing was drained by any of that.
  CHECK(spread(site.edge.port, 4)["a"] == 2);

  // The address may come percent-encoded.
  std::string encoded = server(site.a);
  encoded.replace(encoded.find(':'), 1, "%3A");
  CHECK(admin(site.admin_port, "POST", "/backends/books/" + encoded + "/drain").status == 200);
  CHECK(spread(site.edge.port, 4)["a"] == 0);
}

TEST_CASE("the client listener never serves the admin paths") {
  Site site;
  for (const std::string target : {"/backends", "/backends.txt", "/stats", "/metrics"}) {
    CAPTURE(target);
    Response r = exchange(site.edge.port, request("GET", target, kToken, "Connection: close\r\n"));
    CHECK(r.header("X-Backend"));  // answered by an app (its 404, or its own /stats), not by the admin port
    CHECK_FALSE(contains(r.body, "\"backends\""));
    CHECK_FALSE(contains(r.body, "in_flight"));
    CHECK_FALSE(contains(r.body, "hit_ratio"));
    CHECK_FALSE(contains(r.body, "edge_cache"));
  }
  Response purge = exchange(site.edge.port, request("POST", "/purge?tag=t", kToken, "Connection: close\r\n"));
  CHECK(purge.header("X-Backend"));
  CHECK_FALSE(contains(purge.body, "\"purged\""));
  Response post = exchange(site.edge.port, request("POST", "/backends/books/" + server(site.a) + "/drain", kToken,
                                                   "Connection: close\r\n"));
  CHECK(post.header("X-Backend"));
  CHECK_FALSE(contains(post.body, "draining"));
  std::map<std::string, int> seen = spread(site.edge.port, 4);
  CHECK(seen["a"] == 2);  // still in rotation
}

TEST_CASE("admin connections: keep-alive, pipelining, HTTP/1.0, malformed requests") {
  Site site;
  {
    Client client(site.admin_port);
    REQUIRE(client.connected());
    client.send(request("GET", "/backends.txt", kToken));
    Response first = client.read_response();
    CHECK(first.status == 200);
    CHECK_FALSE(first.header("Connection"));
    client.send(request("GET", "/backends.txt", kToken));
    CHECK(client.read_response().status == 200);
    // Two at once: answered in order.
    client.send(request("GET", "/backends", kToken) + request("HEAD", "/backends.txt", kToken, "Connection: close\r\n"));
    Response third = client.read_response();
    CHECK(third.status == 200);
    CHECK(contains(third.body, "\"backends\""));
    Response fourth = client.read_response("HEAD");
    CHECK(fourth.status == 200);
    CHECK(fourth.body.empty());
    CHECK(fourth.header("Connection") == std::string_view("close"));
    CHECK(client.wait_closed());
  }
  {
    // A refusal closes the connection, even one that showed the token before: a request
    // without it is nobody's to keep a connection for.
    Client client(site.admin_port);
    client.send(request("GET", "/backends.txt", kToken));
    CHECK(client.read_response().status == 200);
    client.send(request("GET", "/backends.txt", "wrong") + request("GET", "/backends.txt", kToken));
    Response refused = client.read_response();
    CHECK(refused.status == 401);
    CHECK(refused.header("Connection") == std::string_view("close"));
    CHECK(client.wait_closed());
  }
  {
    Client client(site.admin_port);
    client.send("GET /backends.txt HTTP/1.0\r\nAuthorization: Bearer " + std::string(kToken) +
                "\r\nConnection: keep-alive\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.status == 200);
    CHECK(r.header("Connection") == std::string_view("keep-alive"));
    client.send("GET /backends.txt HTTP/1.0\r\nAuthorization: Bearer " + std::string(kToken) + "\r\n\r\n");
    CHECK(client.read_response().status == 200);
    CHECK(client.wait_closed());
  }
  {
    Client client(site.admin_port);
    client.send("GET /backends HTTP/1.1\r\nBad Header: x\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.status == 400);
    CHECK(r.header("Content-Type") == std::string_view("application/json"));
    CHECK(r.header("Connection") == std::string_view("close"));
    CHECK(client.wait_closed());
  }
  {
    // A head larger than the admin port's limit.
    Client client(site.admin_port);
    client.send("GET /backends HTTP/1.1\r\nX-Big: " + std::string(10000, 'x') + "\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.status >= 400);
    CHECK(r.status < 500);
    CHECK(client.wait_closed());
  }
  // Still serving.
  CHECK(admin(site.admin_port, "GET", "/backends").status == 200);
}

TEST_CASE("an admin address that cannot be bound stops the edge with exit code 1") {
  TempDir dir;
  std::string token = dir.write("token", kToken);
  App a("a");
  // A port something already listens on: the app's.
  std::string yaml = "workers: 1\nlisten: [{address: \"127.0.0.1:0"
                     "\"}]\nadmin:\n  address: \"127.0.0.1:" + std::to_string(a.port) + "\"\n  token_file: \"" + token +
                     "\"\nbackends:\n  books: {servers: [\"" + server(a) + "\"]}\nhosts:\n  - match: [\"*\"]\n    backend: books\n";
  std::string path = dir.write("edge.yaml", yaml);
  Process edge(edge_bin(), {"--config", path});
  std::optional<int> code = edge.wait(std::chrono::seconds(20));
  REQUIRE(code.has_value());
  CHECK(*code == 1);
  std::string output = edge.output();
  CAPTURE(output);
  CHECK(contains(output, path + ":3:1: cannot listen on 127.0.0.1:" + std::to_string(a.port) + ": "));
}

TEST_CASE("the edge stops cleanly with admin connections open in every phase") {
  Site site;
  Client idle(site.admin_port);
  idle.send(request("GET", "/backends", kToken));
  CHECK(idle.read_response().status == 200);
  Client partial(site.admin_port);
  partial.send("GET /backends HTTP/1.1\r\nAuthori");
  Client silent(site.admin_port);
  Client unread(site.admin_port);
  std::string many;
  for (int i = 0; i < 2000; ++i) many += request("GET", "/backends", kToken);
  unread.send(many);  // answers pile up unread
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  site.edge.process.kill(SIGTERM);
  CHECK(site.edge.process.wait(std::chrono::seconds(20)) == 0);
  CHECK(idle.wait_closed());
}

TEST_CASE("a request without the token is refused at its head: a body it announces is never waited for") {
  Site site;
  Client client(site.admin_port);
  REQUIRE(client.connected());
  // Ten megabytes announced, not one byte of them sent.
  client.send("POST /purge?tag=x HTTP/1.1\r\nHost: admin\r\nContent-Length: 10000000\r\n\r\n");
  Response r = client.read_response();
  CHECK(r.status == 401);
  CHECK(r.header("WWW-Authenticate") == std::string_view("Bearer"));
  CHECK(r.header("Connection") == std::string_view("close"));
  CHECK(client.wait_closed());
  // A body the port would take (under its 64 KiB), announced without the token.
  Client small(site.admin_port);
  small.send("POST /purge?tag=x HTTP/1.1\r\nHost: admin\r\nContent-Length: 60000\r\n\r\n");
  CHECK(small.read_response().status == 401);
  CHECK(small.wait_closed());
  // The same with a wrong token and a chunked body.
  Client chunked(site.admin_port);
  chunked.send("POST /ban?prefix=%2F HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer wrong\r\n"
               "Transfer-Encoding: chunked\r\n\r\n");
  CHECK(chunked.read_response().status == 401);
  CHECK(chunked.wait_closed());
  CHECK(contains(admin(site.admin_port, "GET", "/stats").body, "\"bans\":0,"));
}

TEST_CASE("idle and unauthorised connections cannot lock an operator out of the admin port") {
  Site site;  // max_connections: 64
  // An operator's connection made before the flood, kept alive.
  Client operator_conn(site.admin_port);
  operator_conn.send(request("GET", "/backends.txt", kToken));
  REQUIRE(operator_conn.read_response().status == 200);

  // 200 connections that never authenticate: silent, half a head, or a head without the token
  // whose answer they never read.
  std::vector<std::unique_ptr<Client>> flood;
  for (int i = 0; i < 200; ++i) {
    auto c = std::make_unique<Client>(site.admin_port);
    REQUIRE(c->connected());
    if (i % 3 == 1) c->send("GET /stats HTTP/1.1\r\nHost: admin\r\n");
    if (i % 3 == 2) c->send("GET /stats HTTP/1.1\r\nHost: admin\r\nContent-Length: 100000\r\n\r\n");
    flood.push_back(std::move(c));
  }
  // A new operator gets in, and can purge and read the figures.
  Response purge = admin(site.admin_port, "POST", "/purge?tag=book-1");
  CHECK(purge.status == 200);
  CHECK(purge.body == "{\"purged\":0}\n");
  Response stats = admin(site.admin_port, "GET", "/stats");
  CHECK(stats.status == 200);
  CHECK(contains(stats.body, "\"store\":"));
  // The connection that had shown the token was kept.
  operator_conn.send(request("GET", "/backends.txt", kToken));
  CHECK(operator_conn.read_response().status == 200);
  // The oldest of the flood were let go to make room.
  CHECK(flood.front()->wait_closed());
  // A new flood, with the operator connected meanwhile: it keeps working throughout.
  for (int i = 0; i < 100; ++i) flood[static_cast<size_t>(i)] = std::make_unique<Client>(site.admin_port);
  operator_conn.send(request("GET", "/stats", kToken));
  CHECK(operator_conn.read_response().status == 200);
  CHECK(admin(site.admin_port, "GET", "/backends").status == 200);
}

TEST_CASE("a connection that does not complete a head within admin.header_timeout is closed") {
  Site site("  header_timeout: 300ms\n");
  Client silent(site.admin_port);
  Client dribbling(site.admin_port);
  dribbling.send("GET /stats HTTP/1.1\r\nHost: admin\r\n");
  // Silent: closed without a word. Part of a head: 408, then closed.
  CHECK(silent.wait_closed());
  Response late = dribbling.read_response();
  CHECK(late.status == 408);
  CHECK(dribbling.wait_closed());
  CHECK(admin(site.admin_port, "GET", "/stats").status == 200);
}

TEST_CASE("admin.max_connections: at the cap, connections that showed the token are kept") {
  Site site("  max_connections: 4\n");
  std::vector<std::unique_ptr<Client>> operators;
  for (int i = 0; i < 4; ++i) {
    operators.push_back(std::make_unique<Client>(site.admin_port));
    operators.back()->send(request("GET", "/backends.txt", kToken));
    REQUIRE(operators.back()->read_response().status == 200);
  }
  // Every place is held by a trusted connection: the newcomer is the one closed.
  Client late(site.admin_port);
  CHECK(late.wait_closed());
  for (auto& c : operators) {
    c->send(request("GET", "/backends.txt", kToken));
    CHECK(c->read_response().status == 200);
  }
  // One leaves: its place is free again.
  operators.pop_back();
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; ++attempt) {
    served = admin(site.admin_port, "GET", "/stats").status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(served);
}
