#include "proxy/router.h"

#include <doctest/doctest.h>

using namespace edge;

namespace {
conf::Config make_config() {
  conf::LoadResult r = conf::load_string(R"(
listen: [{address: 127.0.0.1:1}]
backends:
  a: {servers: [127.0.0.1:2]}
  b: {servers: [127.0.0.1:3]}
  c: {servers: [127.0.0.1:4]}
hosts:
  - match: [www.example.com, example.com]
    backend: a
    routes:
      - {path: /api/, backend: b}
      - {path: /api/v2/, backend: c}
      - {path: /static/}
  - match: ["*.example.com"]
    backend: b
  - match: ["*.deep.example.com"]
    backend: c
  - match: ["*"]
    backend: c
)", "test.yaml");
  REQUIRE(r.errors.empty());
  return std::move(*r.config);
}
}  // namespace

TEST_CASE("hosts (canonical): exact, wildcard (longest first), catch-all") {
  conf::Config config = make_config();
  proxy::Router router(config);
  CHECK(router.match("www.example.com", "/").host == 0);
  CHECK(router.match("img.example.com", "/").host == 1);
  CHECK(router.match("a.b.example.com", "/").host == 1);
  CHECK(router.match("x.deep.example.com", "/").host == 2);
  CHECK(router.match("other.org", "/").host == 3);
  CHECK(router.match("", "/").host == 3);
}

TEST_CASE("routes: the longest path prefix wins; a route without backend keeps the host's") {
  conf::Config config = make_config();
  proxy::Router router(config);
  CHECK(router.match("example.com", "/").backend == 0);
  CHECK(router.match("example.com", "/").route == -1);
  CHECK(router.match("example.com", "/api/x").backend == 1);
  CHECK(router.match("example.com", "/api/v2/x").backend == 2);
  CHECK(router.match("example.com", "/apix").backend == 0);
  auto stat = router.match("example.com", "/static/a.css");
  CHECK(stat.route == 2);
  CHECK(stat.backend == 0);
}

TEST_CASE("without a catch-all an unknown host matches nothing") {
  conf::LoadResult r = conf::load_string(R"(
listen: [{address: 127.0.0.1:1}]
backends: {a: {servers: [127.0.0.1:2]}}
hosts: [{match: a.test, backend: a}]
)", "t.yaml");
  REQUIRE(r.errors.empty());
  proxy::Router router(*r.config);
  CHECK(router.match("b.test", "/").host == -1);
  CHECK(router.match("a.test", "/").host == 0);
}
