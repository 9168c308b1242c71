// The hosts' and routes' rules (conf::Rules) over sockets: header rules, redirects, access lists
// and trusted proxies, rate limits, error pages, maintenance, the per-client connection cap and
// the admin port's access list, each written the way an attacker would probe it, and the order
// they run in (access list, rate limit, maintenance, redirect, then the cache).
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

constexpr char kToken[] = "rules-test-token";

std::string request(const std::string& host, const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "Connection: close\r\n\r\n";
}

Response ask(uint16_t port, const std::string& raw) { return edge::testkit::exchange(port, raw); }

// One request from `source` (a loopback address) on a fresh connection.
Response from(uint16_t port, const char* source, const std::string& host, const std::string& target,
              const std::string& extra = "") {
  Client client(port, std::chrono::seconds(10), source);
  REQUIRE(client.connected());
  client.send(request(host, target, extra));
  return client.read_response();
}

// A figure of a section of the admin port's /stats.
long stat(uint16_t admin_port, const std::string& section, const std::string& name) {
  Response r = admin_request(admin_port, kToken, "GET", "/stats");
  const size_t at_section = r.body.find("\"" + section + "\":{");
  const size_t at = r.body.find("\"" + name + "\":", at_section);
  REQUIRE(at_section != std::string::npos);
  REQUIRE(at != std::string::npos);
  return std::stol(r.body.substr(at + name.size() + 3));
}

// The value edge-app's /echo reports for a request field (its JSON's ["Name","value"] pairs).
std::vector<std::string> echoed(const std::string& body, const std::string& name) {
  std::vector<std::string> values;
  const std::string key = "[\"" + name + "\",\"";
  for (size_t at = body.find(key); at != std::string::npos; at = body.find(key, at + 1)) {
    const size_t start = at + key.size();
    values.push_back(body.substr(start, body.find('"', start) - start));
  }
  return values;
}

struct Site {
  explicit Site(const std::string& rules, const std::string& top = "")
      : app("rules-app"),
        edge("workers: 2\nlisten: [{address: \"127.0.0.1:{{port}}\"}]\n" + top +
             "admin:\n  address: \"127.0.0.1:0\"\n  token_file: \"" + files.write("admin.token", kToken) +
             "\"\nbackends:\n  app:\n    servers: [" + yaml_address(app.port) + "]\n" + rules) {}
  TempDir files;
  App app;
  Edge edge;
};

}  // namespace

TEST_CASE("header rules rewrite the request the backend gets and the response the client gets") {
  Site site(R"(hosts:
  - match: ["*"]
    backend: app
    request_headers:
      remove: [X-Debug, Cookie]
      set: {X-Real-IP: "{client_ip}", X-Seen: "{method} {host} {path} q={query} {scheme} {backend}"}
      append: {X-Tag: host}
    response_headers:
      remove: [X-Backend, Via]
      set: {X-Served: "{cache} {status}", Cache-Control: "public, max-age=5"}
      append: {X-Frame-Options: DENY}
    routes:
      - path: /cache/
        request_headers:
          set: {X-Seen: route}
          append: {X-Tag: route}
        response_headers:
          append: {X-Route: "{rest}"}
)");
  const uint16_t port = site.edge.port;

  Response r = ask(port, request("Example.COM", "/echo?a=1",
                                      "X-Debug: 1\r\nCookie: s=1\r\nX-Real-IP: 6.6.6.6\r\nX-Tag: client\r\n"));
  REQUIRE(r.status == 200);
  CHECK(echoed(r.body, "X-Debug").empty());
  CHECK(echoed(r.body, "Cookie").empty());
  CHECK(echoed(r.body, "X-Real-IP") == std::vector<std::string>{"127.0.0.1"});  // the client's value is gone
  CHECK(echoed(r.body, "X-Seen") == std::vector<std::string>{"GET example.com /echo q=a=1 http app"});
  CHECK(echoed(r.body, "X-Tag") == std::vector<std::string>{"client", "host"});
  CHECK_FALSE(r.header("X-Backend"));
  CHECK_FALSE(r.header("Via"));
  CHECK(r.header("X-Served") == std::string_view("PASS 200"));
  CHECK(r.header("Cache-Control") == std::string_view("public, max-age=5"));  // the backend's no-store is replaced
  CHECK(r.header("X-Frame-Options") == std::string_view("DENY"));

  // A route's rules run after its host's: its set replaces the host's, its append adds.
  const std::string cached = "/cache/r?size=10&cc=" + percent_encode("public, max-age=60");
  r = ask(port, request("example.com", cached));
  REQUIRE(r.status == 200);
  CHECK(r.header("X-Served") == std::string_view("MISS 200"));
  CHECK(r.header("X-Route") == std::string_view("r?size=10&cc=public%2C%20max-age%3D60"));
  r = ask(port, request("example.com", cached));
  CHECK(r.header("X-Served") == std::string_view("HIT 200"));  // on a hit too
  CHECK_FALSE(r.header("X-Backend"));
}

TEST_CASE("a route's request rules reach the backend, and a value cannot smuggle a field") {
  Site site(R"(hosts:
  - match: ["*"]
    backend: app
    routes:
      - path: /echo
        request_headers:
          set: {X-Seen: route, X-Target: "{target}"}
          append: {X-Tag: route}
)");
  Response r = ask(site.edge.port, request("example.com", "/echo?a=%0D%0AX-Injected:%201"));
  REQUIRE(r.status == 200);
  CHECK(echoed(r.body, "X-Seen") == std::vector<std::string>{"route"});
  CHECK(echoed(r.body, "X-Tag") == std::vector<std::string>{"route"});
  CHECK(echoed(r.body, "X-Injected").empty());
  CHECK(echoed(r.body, "X-Target") == std::vector<std::string>{"/echo?a=%0D%0AX-Injected:%201"});  // still encoded
}

TEST_CASE("redirects: a host to another name, old paths to new ones, and never to another site") {
  Site site(R"(hosts:
  - match: [www.example.com]
    redirect: {to: "https://example.com{target}", status: 301}
  - match: [example.com]
    backend: app
    routes:
      - {path: /old/, redirect: {to: "/new/{rest}", status: 308}}
      - {path: /moved, redirect: {to: "{path}/here"}}
      - {path: /keep/, redirect: {to: "{scheme}://{host}/kept{path}?from={query}", status: 307}}
      - {path: /p/, redirect: {to: "/{rest}"}}
  - match: [short.example]
    redirect: {to: "{path}"}
)");
  const uint16_t port = site.edge.port;
  const long before = app_stat(site.app.port, "received");

  Response r = ask(port, request("www.example.com", "/a/b?x=1"));
  CHECK(r.status == 301);
  CHECK(r.reason == "Moved Permanently");
  CHECK(r.header("Location") == std::string_view("https://example.com/a/b?x=1"));

  r = ask(port, request("example.com", "/old/books/1?page=2"));
  CHECK(r.status == 308);
  CHECK(r.reason == "Permanent Redirect");
  CHECK(r.header("Location") == std::string_view("/new/books/1?page=2"));

  r = ask(port, request("example.com", "/moved"));
  CHECK(r.status == 302);  // the default
  CHECK(r.header("Location") == std::string_view("/moved/here"));

  r = ask(port, request("example.com", "/keep/x?y=1"));
  CHECK(r.status == 307);
  CHECK(r.header("Location") == std::string_view("http://example.com/kept/keep/x?from=y=1"));

  // An attacker's path that would make the Location name another host (a browser reads `//x`
  // and `/\x` as the host x): it stays a path on this site.
  const std::pair<const char*, const char*> evil[] = {
      {"example.com", "/p//evil.example/x"}, {"example.com", "/p/%2F%2Fevil.example/"},
      {"short.example", "//evil.example/x"}, {"short.example", "///evil.example"},
      {"example.com", "/p/%5Cevil.example"}};
  for (const auto& [host, target] : evil) {
    CAPTURE(target);
    r = ask(port, request(host, target));
    const std::string location(r.header("Location").value_or(""));
    if (r.status == 400) continue;  // refused as malformed: nowhere to go either
    CHECK(r.status == 302);
    CHECK(location.starts_with("/"));
    CHECK_FALSE(location.starts_with("//"));
    CHECK_FALSE(location.starts_with("/\\"));
  }
  r = ask(port, request("example.com", "/old//evil.example/"));
  CHECK(std::string(r.header("Location").value_or("")) == "/new//evil.example/");  // a path on this site

  CHECK(app_stat(site.app.port, "received") == before + 1);  // only its own /stats: nothing redirected reached it
  CHECK(stat(site.edge.admin_port, "rules", "redirected") >= 5);
}

TEST_CASE("access lists: the longest prefix decides, per host and route, before anything reaches the backend") {
  Site site(R"(hosts:
  - match: ["*"]
    backend: app
    access: {deny: [127.0.0.3]}
    routes:
      - path: /private/
        access: {allow: [127.0.0.0/30], deny: [127.0.0.2]}
      - path: /open/
        access: {allow: all}
)");
  const uint16_t port = site.edge.port;
  CHECK(from(port, "127.0.0.1", "a", "/health").status == 200);
  CHECK(from(port, "127.0.0.3", "a", "/health").status == 403);
  CHECK(from(port, "127.0.0.1", "a", "/private/x").status == 404);  // allowed: the backend's answer
  CHECK(from(port, "127.0.0.2", "a", "/private/x").status == 403);  // the /32 deny beats the /30 allow
  CHECK(from(port, "127.0.0.3", "a", "/private/x").status == 404);  // the route's list replaces its host's
  CHECK(from(port, "127.0.0.5", "a", "/private/x").status == 403);  // not in the allow list
  CHECK(from(port, "127.0.0.3", "a", "/open/x").status == 404);
  CHECK(app_count(site.app.port, "/private/x") == 2);
  CHECK(stat(site.edge.admin_port, "rules", "denied") == 3);
}

TEST_CASE("trusted proxies: their X-Forwarded-For names the client, anyone else's is ignored") {
  Site site(R"(hosts:
  - match: ["*"]
    backend: app
    access: {deny: [10.9.9.9, 127.0.0.4]}
    request_headers:
      set: {X-Real-IP: "{client_ip}"}
)",
            "trusted_proxies: [127.0.0.2, 10.0.0.0/8]\n");
  const uint16_t port = site.edge.port;
  auto real_ip = [&](const char* source, const std::string& forwarded) {
    Response r = from(port, source, "a", "/echo", forwarded.empty() ? "" : "X-Forwarded-For: " + forwarded + "\r\n");
    auto values = echoed(r.body, "X-Real-IP");
    return r.status == 200 && values.size() == 1 ? values[0] : "status " + std::to_string(r.status);
  };
  CHECK(real_ip("127.0.0.2", "192.0.2.7") == "192.0.2.7");
  CHECK(real_ip("127.0.0.2", "192.0.2.7, 10.1.1.1, 10.2.2.2") == "192.0.2.7");  // trusted hops skipped
  CHECK(real_ip("127.0.0.2", "1.1.1.1, 192.0.2.7") == "192.0.2.7");  // the left is the client's own claim
  CHECK(real_ip("127.0.0.2", "") == "127.0.0.2");
  CHECK(real_ip("127.0.0.2", "not-an-address") == "127.0.0.2");  // garbage from the proxy: the proxy
  CHECK(real_ip("127.0.0.2", "192.0.2.7:8080") == "127.0.0.2");
  CHECK(real_ip("127.0.0.1", "192.0.2.7") == "127.0.0.1");  // an untrusted peer cannot name a client
  // The access list sees the client the trusted proxy names, and a spoof from elsewhere fails.
  CHECK(real_ip("127.0.0.2", "10.9.9.9") == "status 403");
  CHECK(real_ip("127.0.0.4", "192.0.2.7") == "status 403");
}

TEST_CASE("the access log names the client a trusted proxy names, and the peer otherwise") {
  TempDir logs;
  const std::string log = logs.path() + "/access.log";
  Site site("hosts:\n  - match: [\"*\"]\n    backend: app\n",
            "trusted_proxies: [127.0.0.2]\naccess_log: {path: " + log + ", format: json}\n");
  CHECK(from(site.edge.port, "127.0.0.2", "a", "/health", "X-Forwarded-For: 192.0.2.9\r\n").status == 200);
  CHECK(from(site.edge.port, "127.0.0.3", "a", "/health", "X-Forwarded-For: 192.0.2.9\r\n").status == 200);
  std::vector<std::string> lines;
  for (int i = 0; i < 1000 && lines.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(log);
    lines.clear();
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  REQUIRE(lines.size() == 2);
  // Two connections, maybe on two workers: the lines may come in either order.
  const bool in_order = lines[0].find("\"client\":\"192.0.2.9\"") != std::string::npos;
  const std::string& named = in_order ? lines[0] : lines[1];
  const std::string& peer = in_order ? lines[1] : lines[0];
  CHECK(named.find("\"client\":\"192.0.2.9\"") != std::string::npos);
  CHECK(peer.find("\"client\":\"127.0.0.3\"") != std::string::npos);
}

TEST_CASE("rate limits: a burst, then 429 with Retry-After, shared by every worker, per client and per zone") {
  Site site(R"(hosts:
  - match: ["*"]
    backend: app
    rate_limit: {rate: 1/m, burst: 3}
    routes:
      - {path: /own/, rate_limit: {rate: 1/m, burst: 1}}
      - {path: /free/, rate_limit: off}
)");
  const uint16_t port = site.edge.port;
  // Each request on its own connection: the two workers take them in turn.
  int ok = 0;
  for (int i = 0; i < 8; ++i) {
    Response r = from(port, "127.0.0.1", "a", "/health");
    if (r.status == 200) {
      ++ok;
      continue;
    }
    CHECK(r.status == 429);
    CHECK(r.reason == "Too Many Requests");
    const long retry = std::stol(std::string(r.header("Retry-After").value_or("0")));
    CHECK(retry >= 1);
    CHECK(retry <= 60);
  }
  CHECK(ok == 3);
  // Routes that inherit the host's limit share its buckets.
  CHECK(from(port, "127.0.0.1", "a", "/other").status == 429);
  // Another client has its own bucket; another zone its own.
  CHECK(from(port, "127.0.0.2", "a", "/health").status == 200);
  CHECK(from(port, "127.0.0.1", "a", "/own/x").status == 404);
  CHECK(from(port, "127.0.0.1", "a", "/own/x").status == 429);
  for (int i = 0; i < 5; ++i) CHECK(from(port, "127.0.0.1", "a", "/free/x").status == 404);
  CHECK(stat(site.edge.admin_port, "rules", "rate_limited") == 7);
}

TEST_CASE("error pages: edge's own errors, and a backend's 5xx where asked, per host and route") {
  TempDir pages;
  const std::string not_found = pages.write("404.html", "<h1>no such page here</h1>\n");
  const std::string bad_gateway = pages.write("502.json", "{\"error\":\"bad gateway\"}\n");
  const std::string route_page = pages.write("500.txt", "route's own 500\n");
  Site site(R"(hosts:
  - match: [example.com]
    backend: app
    error_pages: {500: )" + route_page + R"(}
    routes:
      - path: /status
        error_pages: {backend_errors: on}
  - match: [other.example]
    backend: app
    error_pages: {502: )" + bad_gateway + R"(, backend_errors: on}
)",
            "error_pages: {404: " + not_found + ", 502: " + bad_gateway + "}\n");
  const uint16_t port = site.edge.port;

  Response r = ask(port, request("unknown.example", "/"));  // no host matches: edge's 404
  CHECK(r.status == 404);
  CHECK(r.header("Content-Type") == std::string_view("text/html; charset=utf-8"));
  CHECK(r.body == "<h1>no such page here</h1>\n");

  r = ask(port, request("example.com", "/status?code=500"));  // backend_errors on the route
  CHECK(r.status == 500);
  CHECK(r.header("Content-Type") == std::string_view("text/plain; charset=utf-8"));
  CHECK(r.body == "route's own 500\n");

  r = ask(port, request("example.com", "/status?code=503"));  // no page for 503: the backend's
  CHECK(r.status == 503);
  CHECK(r.body == "status 503\n");

  r = ask(port, request("other.example", "/status?code=502"));
  CHECK(r.status == 502);
  CHECK(r.body == "{\"error\":\"bad gateway\"}\n");
  CHECK(r.header("Content-Type") == std::string_view("application/json"));
  r = ask(port, request("other.example", "/status?code=500"));  // no page: the backend's own body
  CHECK(r.body == "status 500\n");

  // A HEAD gets the page's length and no body.
  Client head(port);
  head.send("HEAD /nothing HTTP/1.1\r\nHost: unknown.example\r\nConnection: close\r\n\r\n");
  r = head.read_response("HEAD");
  CHECK(r.status == 404);
  CHECK(r.header("Content-Length") == std::string_view("27"));
  CHECK(r.body.empty());
}

TEST_CASE("maintenance: 503 with the page and Retry-After, except for the allowed addresses") {
  TempDir pages;
  const std::string page = pages.write("maintenance.html", "<p>back soon</p>\n");
  Site site(R"(hosts:
  - match: [shop.example]
    backend: app
    maintenance: {page: )" + page + R"(, retry_after: 5m, allow: [127.0.0.2]}
  - match: [blog.example]
    backend: app
    maintenance: on
    routes:
      - {path: /health, maintenance: off}
)");
  const uint16_t port = site.edge.port;
  Response r = from(port, "127.0.0.1", "shop.example", "/health");
  CHECK(r.status == 503);
  CHECK(r.header("Retry-After") == std::string_view("300"));
  CHECK(r.body == "<p>back soon</p>\n");
  CHECK(from(port, "127.0.0.2", "shop.example", "/health").status == 200);
  r = from(port, "127.0.0.1", "blog.example", "/");
  CHECK(r.status == 503);
  CHECK(r.header("Retry-After") == std::string_view("60"));
  CHECK(from(port, "127.0.0.1", "blog.example", "/health").status == 200);
  CHECK(app_count(site.app.port, "/") == 0);
  CHECK(stat(site.edge.admin_port, "rules", "maintenance") == 2);
}

TEST_CASE("the rules run in order: access list, rate limit, maintenance, redirect, then the cache") {
  Site site(R"(hosts:
  - match: ["*"]
    backend: app
    access: {deny: [127.0.0.3]}
    rate_limit: {rate: 1/m, burst: 2}
    routes:
      - {path: /go, redirect: {to: /went}}
      - {path: /closed, maintenance: on, redirect: {to: /went}}
)");
  const uint16_t port = site.edge.port;
  CHECK(from(port, "127.0.0.3", "a", "/go").status == 403);  // denied before the redirect or a token
  CHECK(from(port, "127.0.0.1", "a", "/closed").status == 503);  // maintenance before the redirect
  CHECK(from(port, "127.0.0.1", "a", "/go").status == 302);
  CHECK(from(port, "127.0.0.1", "a", "/go").status == 429);  // the limit before the redirect
  CHECK(from(port, "127.0.0.3", "a", "/go").status == 403);  // a denied client spends no token
}

TEST_CASE("max_conns_per_client: one address cannot hold every connection") {
  Site site(R"(limits: {max_conns_per_client: 2}
hosts:
  - match: ["*"]
    backend: app
)");
  const uint16_t port = site.edge.port;
  auto first = std::make_unique<Client>(port);
  Client second(port);
  REQUIRE(first->send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n"));
  CHECK(first->read_response().status == 200);
  REQUIRE(second.send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n"));
  CHECK(second.read_response().status == 200);
  {
    Client third(port);
    Response r = third.read_response();
    CHECK(r.status == 429);
    CHECK(third.wait_closed());
  }
  CHECK(from(port, "127.0.0.2", "a", "/health").status == 200);  // another client is served
  first.reset();
  // The closed connection's place comes free once edge has seen the close.
  bool served = false;
  for (int i = 0; i < 200 && !served; ++i) {
    Client again(port);
    again.send("GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    served = again.read_response().status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(served);
  CHECK(stat(site.edge.admin_port, "closes", "client_conn_limit") >= 1);
}

TEST_CASE("the admin port serves only the addresses its access list allows") {
  TempDir files;
  App app("rules-app");
  Edge edge("listen: [{address: \"127.0.0.1:{{port}}\"}]\nadmin:\n  address: \"127.0.0.1:0\"\n  token_file: \"" +
            files.write("admin.token", kToken) + "\"\n  access: {allow: [127.0.0.2]}\nbackends:\n  app:\n    servers: [" +
            yaml_address(app.port) + "]\nhosts:\n  - match: [\"*\"]\n    backend: app\n");
  const std::string stats = "GET /stats HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " + std::string(kToken) +
                            "\r\nConnection: close\r\n\r\n";
  Client denied(edge.admin_port);
  denied.send(stats);
  Response r = denied.read_response();
  CHECK(r.status == 403);
  CHECK(r.body.empty());  // not a word about the port, even with the token
  Client allowed(edge.admin_port, std::chrono::seconds(10), "127.0.0.2");
  allowed.send(stats);
  r = allowed.read_response();
  CHECK(r.status == 200);
  CHECK(r.body.find("\"rules\":{\"denied\":0") != std::string::npos);
}

TEST_CASE("PURGE on the main port, of a URL or as a ban by prefix or regex, from the allowed addresses only") {
  Site site(R"(hosts:
  - match: [shop.example]
    backend: app
    purge: {allow: [127.0.0.2]}
  - match: ["*"]
    backend: app
)");
  const uint16_t port = site.edge.port;
  const std::string cc = "&cc=" + percent_encode("public, max-age=600");
  const std::string a = "/cache/x/a?size=5" + cc, b = "/cache/x/b?size=5" + cc, other = "/cache/y/c?size=5" + cc;
  auto x_cache = [&](const std::string& host, const std::string& target) {
    return std::string(from(port, "127.0.0.1", host, target).header("X-Cache").value_or("none"));
  };
  auto purge = [&](const char* source, const std::string& host, const std::string& target, const std::string& how = "") {
    Client client(port, std::chrono::seconds(10), source);
    client.send("PURGE " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" +
                (how.empty() ? "" : "X-Purge-Method: " + how + "\r\n") + "Connection: close\r\n\r\n");
    return client.read_response();
  };
  auto fill = [&] {
    for (const std::string& target : {a, b, other}) {
      x_cache("shop.example", target);
      CHECK(x_cache("shop.example", target) == "HIT");
    }
  };
  fill();
  Response r = purge("127.0.0.1", "shop.example", a);
  CHECK(r.status == 403);
  CHECK(x_cache("shop.example", a) == "HIT");

  r = purge("127.0.0.2", "shop.example", a);
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type") == std::string_view("application/json"));
  CHECK(r.body == "{\"purged\":1}\n");
  CHECK(x_cache("shop.example", a) == "MISS");
  CHECK(x_cache("shop.example", b) == "HIT");

  fill();
  r = purge("127.0.0.2", "shop.example", "/cache/x/", "prefix");
  CHECK(r.status == 200);
  CHECK(r.body.starts_with("{\"ban\":"));
  CHECK(x_cache("shop.example", a) == "MISS");
  CHECK(x_cache("shop.example", b) == "MISS");
  CHECK(x_cache("shop.example", other) == "HIT");  // outside the banned path

  fill();
  r = purge("127.0.0.2", "shop.example", "/cache/.*/c", "regex");  // as WordPress's Varnish plugin sends it
  CHECK(r.status == 200);
  CHECK(x_cache("shop.example", other) == "MISS");
  CHECK(x_cache("shop.example", a) == "HIT");

  CHECK(purge("127.0.0.2", "shop.example", "/cache/(", "regex").status == 400);
  CHECK(purge("127.0.0.2", "shop.example", "/cache/", "everything").status == 400);

  // A host without `purge` passes PURGE to its backend, like any other method (which, being
  // unsafe, also invalidates the URL it names: RFC 9111 4.4).
  x_cache("www.example", a);
  const long before = app_count(site.app.port, a);
  purge("127.0.0.2", "www.example", a);
  CHECK(app_count(site.app.port, a) == before + 1);
  CHECK(stat(site.edge.admin_port, "rules", "purged") == 3);
  CHECK(stat(site.edge.admin_port, "rules", "denied") == 1);
}

TEST_CASE("a PURGE on the main port reaches the memcached tier before it is answered") {
  MemcachedServer memcached;
  Site site(R"(hosts:
  - match: ["*"]
    backend: app
    purge: {allow: [127.0.0.1]}
)",
            "cache:\n  memcached: {servers: [\"" + memcached.address() + "\"]}\n");
  const uint16_t port = site.edge.port;
  const std::string target = "/cache/m?size=5&cc=" + percent_encode("public, max-age=600");
  CHECK(from(port, "127.0.0.1", "a", target).header("X-Cache") == std::string_view("MISS"));
  Client client(port);
  client.send("PURGE " + target + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  Response r = client.read_response();
  CHECK(r.status == 200);
  CHECK(r.body == "{\"purged\":1,\"memcached\":\"ok\"}\n");
  // Neither tier answers it any more: the backend does.
  const long before = app_count(site.app.port, target);
  CHECK(from(port, "127.0.0.1", "a", target).header("X-Cache") == std::string_view("MISS"));
  CHECK(app_count(site.app.port, target) == before + 1);
}

TEST_CASE("the rules run for HTTP/2 streams as for HTTP/1.1 requests") {
  App app("rules-app");
  Edge edge("workers: 1\nlisten: [{address: \"127.0.0.1:{{port}}\", h2c: on}]\nbackends:\n  app:\n    servers: [" +
            yaml_address(app.port) + "]\nhosts:\n  - match: [\"*\"]\n    backend: app\n"
            "    response_headers: {set: {X-Served: \"{cache} {status}\"}, remove: [X-Backend]}\n"
            "    routes:\n      - {path: /old/, redirect: {to: \"/new/{rest}\", status: 301}}\n"
            "      - {path: /private/, access: {deny: all}}\n");
  auto curl = [&](const std::string& target, const char* body_to = "/dev/null") {
    const std::string command = "curl -s --http2-prior-knowledge -D - -o " + std::string(body_to) +
                                " 'http://127.0.0.1:" + std::to_string(edge.port) + target + "'";
    return run_command(command);
  };
  std::string head = curl("/health");
  CHECK(head.starts_with("HTTP/2 200"));
  CHECK(head.find("x-served: PASS 200") != std::string::npos);
  CHECK(head.find("x-backend") == std::string::npos);
  head = curl("/old/a?b=1");
  CHECK(head.starts_with("HTTP/2 301"));
  CHECK(head.find("location: /new/a?b=1") != std::string::npos);
  CHECK(curl("/private/x").starts_with("HTTP/2 403"));
  // edge's own answer carries its body in DATA frames, as its Content-Length says.
  const std::string page = curl("/private/x", "-");
  CHECK(page.find("<h1>403 Forbidden</h1>") != std::string::npos);
}
