// The rule keys of hosts and routes (conf::Rules), the top-level trusted_proxies and
// error_pages, and what the loader refuses of them, each error at its line and column.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "conf/config.h"
#include "rules/rate_limit.h"
#include "tests/unit/temp_dir.h"

using namespace edge::conf;

namespace {

// A host entry's lines are appended at line 8, column 5.
const std::string head =
    "listen: [{address: 127.0.0.1:8080}]\n"
    "backends:\n"
    "  app:\n"
    "    servers: [127.0.0.1:9000]\n"
    "hosts:\n"
    "  - match: \"*\"\n"
    "    backend: app\n";

LoadResult load(const std::string& yaml) { return load_string(yaml, "test.yaml"); }

std::string only_error(const std::string& yaml) {
  LoadResult result = load(yaml);
  CHECK_FALSE(result.config.has_value());
  std::string all;
  for (const Error& error : result.errors) all += error.text() + "\n";
  REQUIRE_MESSAGE(result.errors.size() == 1, all);
  return result.errors.front().text();
}

const Host& only_host(const LoadResult& result) {
  const std::string first = result.errors.empty() ? std::string() : result.errors.front().text();
  REQUIRE_MESSAGE(result.config, first);
  return result.config->hosts.front();
}

std::string cidrs(const std::vector<Cidr>& list) {
  std::string out;
  for (const Cidr& cidr : list) out += (out.empty() ? "" : " ") + cidr_text(cidr);
  return out;
}

std::string parts(const Template& text) {
  std::string out;
  for (const Template::Part& part : text.parts)
    out += part.kind == Placeholder::kLiteral ? "'" + part.literal + "'" : "{" + std::to_string(static_cast<int>(part.kind)) + "}";
  return out;
}

}  // namespace

TEST_CASE("access lists: prefixes of both families, `all`, and what is refused") {
  const LoadResult result = load(head + "    access: {allow: [10.0.0.0/8, \"2001:db8::/32\", 192.0.2.1], deny: 10.1.0.0/16}\n");
  const Host& host = only_host(result);
  CHECK(host.rules.access.enabled);
  CHECK(cidrs(host.rules.access.allow) == "10.0.0.0/8 2001:db8::/32 192.0.2.1/32");
  CHECK(cidrs(host.rules.access.deny) == "10.1.0.0/16");
  const LoadResult all = load(head + "    access: {deny: all}\n");
  CHECK(cidrs(only_host(all).rules.access.deny) == "0.0.0.0/0 ::/0");

  CHECK(only_error(head + "    access: {allow: [10.0.0.1/8]}\n") ==
        "test.yaml:8:22: bad address prefix '10.0.0.1/8': bits are set past the prefix length");
  CHECK(only_error(head + "    access: {allow: [10.0.0.0/33]}\n") ==
        "test.yaml:8:22: bad address prefix '10.0.0.0/33': the prefix length must be 0 to 32");
  CHECK(only_error(head + "    access: {allow: [example.com]}\n") ==
        "test.yaml:8:22: bad address prefix 'example.com': expected an IPv4 or IPv6 address, with /bits or without");
  CHECK(only_error(head + "    access: {allow: [\"10.0.0.0/\"]}\n") ==
        "test.yaml:8:22: bad address prefix '10.0.0.0/': the prefix length must be 0 to 32");
  CHECK(only_error(head + "    access: {allow: [\"10.0.0.0/+8\"]}\n") ==
        "test.yaml:8:22: bad address prefix '10.0.0.0/+8': the prefix length must be 0 to 32");
  CHECK(only_error(head + "    access: {allow: 10.0.0.0/8, deny: 10.0.0.0/8}\n") ==
        "test.yaml:8:39: '10.0.0.0/8' is both allowed and denied");
  CHECK(only_error(head + "    access: {}\n") == "test.yaml:8:13: 'access' needs 'allow', 'deny' or both");
  CHECK(only_error(head + "    access: {alow: all}\n") == "test.yaml:8:14: unknown key 'alow'");
}

TEST_CASE("header rules flatten in order: remove, set, append; a host's before its route's") {
  const LoadResult result = load(head +
                                 "    request_headers:\n"
                                 "      append: {X-A: one}\n"
                                 "      set: {X-B: \"{client_ip} {{literal}\", x-a: two}\n"
                                 "      remove: [X-C]\n"
                                 "    response_headers:\n"
                                 "      set: {X-Cache-Said: \"{cache} {status}\"}\n"
                                 "    routes:\n"
                                 "      - path: /r\n"
                                 "        request_headers: {set: {X-B: route}, remove: X-A}\n");
  const Host& host = only_host(result);
  const HeaderEdits& edits = host.rules.request_headers;
  CHECK(edits.dropped == std::vector<std::string>{"X-C", "X-B", "x-a"});
  REQUIRE(edits.added.size() == 3);
  CHECK(edits.added[0].name == "X-B");
  CHECK(parts(edits.added[0].value) == "{8}' {literal}'");
  CHECK(edits.added[1].name == "x-a");
  CHECK(edits.added[2].name == "X-A");
  CHECK(edits.added[2].kind == HeaderRule::Kind::kAppend);
  const HeaderEdits& route = host.routes.at(0).rules.request_headers;
  REQUIRE(route.added.size() == 1);  // the route's remove took both X-A lines, its set the host's X-B
  CHECK(route.added[0].name == "X-B");
  CHECK(route.added[0].value.text == "route");
  CHECK(route.dropped == std::vector<std::string>{"X-C", "X-B", "x-a"});
  CHECK(host.rules.response_headers.added.at(0).value.parts.size() == 3);
}

TEST_CASE("header rules refuse framing fields, bad names, bad placeholders and empty values") {
  CHECK(only_error(head + "    request_headers: {set: {Host: x}}\n") ==
        "test.yaml:8:29: 'Host' may not be changed by a rule: edge writes it, or it frames the message");
  CHECK(only_error(head + "    response_headers: {remove: [Content-Length]}\n") ==
        "test.yaml:8:32: 'Content-Length' may not be changed by a rule: it frames the message");
  CHECK(only_error(head + "    response_headers: {append: {transfer-encoding: chunked}}\n") ==
        "test.yaml:8:33: 'transfer-encoding' may not be changed by a rule: it frames the message");
  CHECK(only_error(head + "    request_headers: {set: {\"X Y\": x}}\n") ==
        "test.yaml:8:29: bad field name 'X Y': expected a token (letters, digits and !#$%&'*+-.^_`|~)");
  CHECK(only_error(head + "    request_headers: {set: {X-A: \"{cache}\"}}\n") ==
        "test.yaml:8:34: bad field value '{cache}': unknown placeholder '{cache}' at character 1 (expected {host}, "
        "{path}, {query}, {target}, {rest}, {scheme}, {method}, {client_ip}, {backend}; '{{' is a '{')");
  CHECK(only_error(head + "    response_headers: {set: {X-A: \"a {host\"}}\n").find("'{' without '}' at character 3") !=
        std::string::npos);
  CHECK(only_error(head + "    response_headers: {set: {X-A: \"\"}}\n") ==
        "test.yaml:8:35: the value of 'X-A' is empty: to remove a field, name it in 'remove'");
  CHECK(only_error(head + "    response_headers: {set: {X-A: a, x-a: b}}\n") ==
        "test.yaml:8:38: duplicate field name 'x-a' (first at line 8)");
  CHECK(only_error(head + "    response_headers: {set: {X-A: \"a\\nb\"}}\n") ==
        "test.yaml:8:35: bad field value 'a\nb': a control character at character 2");
}

TEST_CASE("redirects: defaults, placeholders, and a Location that could name another site is refused") {
  const LoadResult result = load(head + "    redirect: {to: \"https://example.com{target}\"}\n");
  const Host& host = only_host(result);
  CHECK(host.rules.redirect.enabled);
  CHECK(host.rules.redirect.status == 302);
  const LoadResult without_backend = load(
      "listen: [{address: 127.0.0.1:8080}]\nbackends: {app: {servers: [127.0.0.1:9000]}}\n"
      "hosts:\n  - match: www.example.com\n    redirect: {to: \"https://example.com{target}\", status: 301}\n");
  CHECK(only_host(without_backend).rules.redirect.status == 301);
  for (const char* good : {"/new/{rest}", "{path}/x", "{target}", "https://{host}{target}", "{scheme}://{host}/a{rest}",
                           "http://example.com:8080/{rest}", "https://example.com?from={path}", "/?q={query}"}) {
    CAPTURE(good);
    CHECK(load(head + "    redirect: {to: \"" + good + "\"}\n").config);
  }
  const std::pair<const char*, const char*> bad[] = {
      {"//evil.example/", "a relative target must not start with '//'"},
      {"https://{rest}", "it names no host"},
      {"https://example.com{rest}", "only {host} may be part of its host, and {rest} must come after a '/'"},
      {"https://example.{query}/", "only {host} may be part of its host, and {query} must come after a '/'"},
      {"https://user@example.com/", "user information ('@') in its host"},
      {"https://", "it names no host"},
      {"{rest}", "expected a path starting with '/', or an absolute http:// or https:// URL"},
      {"javascript:alert(1)", "expected a path starting with '/', or an absolute http:// or https:// URL"},
      {"/a b", "a space or '\\' (write it percent-encoded)"},
      {"/\\\\evil.example", "a space or '\\' (write it percent-encoded)"},
      {"{scheme}:{host}/", "{scheme} must be followed by '://'"},
  };
  for (const auto& [to, why] : bad) {
    CAPTURE(to);
    CHECK(only_error(head + "    redirect: {to: \"" + to + "\"}\n") ==
          "test.yaml:8:20: bad redirect 'to' '" + std::string(to == std::string("/\\\\evil.example") ? "/\\evil.example" : to) +
              "': " + why);
  }
  CHECK(only_error(head + "    redirect: {to: /x, status: 304}\n") ==
        "test.yaml:8:32: bad status '304': expected 301, 302, 303, 307 or 308");
  CHECK(only_error(head + "    redirect: {to: /x, status: 200}\n") ==
        "test.yaml:8:32: bad status '200': expected an integer from 301 to 308");
  CHECK(only_error(head + "    redirect: {status: 301}\n") == "test.yaml:8:15: missing required key 'to'");
}

TEST_CASE("rate limits: per second or minute, burst, off, and the zone each route shares") {
  const LoadResult result = load(head +
                                 "    rate_limit: {rate: 30/m}\n"
                                 "    routes:\n"
                                 "      - {path: /a}\n"
                                 "      - {path: /b, rate_limit: {rate: 5/s, burst: 20}}\n"
                                 "      - {path: /c, rate_limit: off}\n");
  const Host& host = only_host(result);
  CHECK(host.rules.rate_limit.enabled);
  CHECK(host.rules.rate_limit.per_second == doctest::Approx(0.5));
  CHECK(host.rules.rate_limit.burst == 30);
  CHECK(host.rules.rate_limit.zone == "*");
  CHECK(host.routes[0].rules.rate_limit.zone == "*");  // inherited: the host's buckets
  CHECK(host.routes[1].rules.rate_limit.zone == "* /b");
  CHECK(host.routes[1].rules.rate_limit.zone_id == edge::rules::RateLimiter::zone_id("* /b"));
  CHECK(host.routes[1].rules.rate_limit.burst == 20);
  CHECK(host.routes[1].rules.rate_limit.per_second == 5);
  CHECK_FALSE(host.routes[2].rules.rate_limit.enabled);
  for (const char* rate : {"0/s", "10", "10/h", "ten/s", "-1/s", "1000001/s", "10/s/s"}) {
    CAPTURE(rate);
    CHECK(only_error(head + "    rate_limit: {rate: \"" + rate + "\"}\n") ==
          "test.yaml:8:24: bad rate '" + std::string(rate) +
              "': expected requests per second or minute, 1 to 1000000 ('10/s', '30/m')");
  }
  CHECK(only_error(head + "    rate_limit: {rate: 1/s, burst: 0}\n") ==
        "test.yaml:8:36: bad burst '0': expected an integer from 1 to 1000000");
  CHECK(only_error(head + "    limits_typo: 1\n") == "test.yaml:8:5: unknown key 'limits_typo'");
}

TEST_CASE("error pages and maintenance read their files at load, and override status by status") {
  edge::testing::TempDir dir;
  const std::string page = dir.write("404.html", "<p>gone</p>");
  const std::string json = dir.write("5xx.json", "{}");
  const LoadResult result = load("error_pages: {404: " + page + ", 502: " + json + "}\n" + head +
                                 "    error_pages: {502: " + page + ", backend_errors: on}\n"
                                 "    maintenance: {page: " + json + ", retry_after: 10m, allow: [127.0.0.1]}\n"
                                 "    routes:\n"
                                 "      - {path: /a, maintenance: off}\n");
  const Host& host = only_host(result);
  CHECK(result.config->error_pages.find(502)->content_type == "application/json");
  REQUIRE(host.rules.error_pages.find(404));
  CHECK(host.rules.error_pages.find(404)->body == "<p>gone</p>");
  CHECK(host.rules.error_pages.find(502)->content_type == "text/html; charset=utf-8");
  CHECK_FALSE(host.rules.error_pages.find(500));
  CHECK(host.rules.error_pages.backend_errors);
  CHECK(host.rules.maintenance.enabled);
  CHECK(host.rules.maintenance.retry_after == std::chrono::minutes(10));
  CHECK(host.rules.maintenance.page->body == "{}");
  CHECK_FALSE(host.routes[0].rules.maintenance.enabled);

  CHECK(only_error(head + "    error_pages: {200: " + page + "}\n") ==
        "test.yaml:8:19: bad error_pages key '200': expected a status from 400 to 599, or 'backend_errors'");
  CHECK(only_error(head + "    error_pages: {404: " + dir.path + "/missing.html}\n").find("cannot read page") !=
        std::string::npos);
  CHECK(only_error(head + "    error_pages: {404: " + dir.write("big.html", std::string(65 * 1024, 'x')) + "}\n")
            .ends_with("is larger than 64k"));
  CHECK(only_error(head + "    maintenance: maybe\n") ==
        "test.yaml:8:18: bad maintenance 'maybe': expected on, off, true or false");
}

TEST_CASE("trusted_proxies, max_conns_per_client and the admin port's access list") {
  const LoadResult result = load("trusted_proxies: [10.0.0.0/8, \"::1\"]\nlimits: {max_conns_per_client: 20}\n" + head);
  REQUIRE(result.config);
  CHECK(cidrs(result.config->trusted_proxies) == "10.0.0.0/8 ::1/128");
  CHECK(result.config->limits.max_conns_per_client == 20);
  CHECK(only_error("trusted_proxies: [10.0.0.0/8, nope]\n" + head) ==
        "test.yaml:1:31: bad address prefix 'nope': expected an IPv4 or IPv6 address, with /bits or without");
  CHECK(only_error("trusted_proxies: {a: b}\n" + head) ==
        "test.yaml:1:18: 'trusted_proxies' must be an address prefix or a list of them, not a map");
}

TEST_CASE("upgrade: the protocols a route tunnels, websocket by default, never h2c") {
  const LoadResult result = load("limits: {tunnel_idle_timeout: 30s}\n" + head +
                                 "    routes:\n"
                                 "      - {path: /a, upgrade: off}\n"
                                 "      - {path: /b, upgrade: [WebSocket, my-proto]}\n");
  const Host& host = only_host(result);
  CHECK(result.config->limits.tunnel_idle_timeout == std::chrono::seconds(30));
  CHECK(host.rules.upgrade == std::vector<std::string>{"websocket"});
  CHECK(host.routes[0].rules.upgrade.empty());
  CHECK(host.routes[1].rules.upgrade == std::vector<std::string>{"websocket", "my-proto"});
  CHECK(only_error(head + "    upgrade: [websocket, h2c]\n") ==
        "test.yaml:8:14: 'h2c' cannot be tunnelled: HTTP/2 is edge's own (listen: h2c)");
  CHECK(only_error(head + "    upgrade: [\"web socket\"]\n") ==
        "test.yaml:8:15: bad protocol 'web socket': expected a token (letters, digits and !#$%&'*+-.^_`|~)");
  CHECK(only_error("limits: {tunnel_idle_timeout: 0s}\n" + head) ==
        "test.yaml:1:31: 'tunnel_idle_timeout' must be greater than zero");
}
