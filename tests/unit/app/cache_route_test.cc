#include "app/cache_route.h"

#include <doctest/doctest.h>

#include <initializer_list>
#include <utility>

using namespace edge::app;

namespace {
// 2023-11-14 22:13:20 UTC, a Tuesday.
constexpr int64_t kNow = 1700000000;
// lm=100's Last-Modified: 100 seconds before kNow, down to the whole hour.
constexpr int64_t kLastModified100 = (kNow - 100) / 3600 * 3600;

using Fields = std::initializer_list<std::pair<std::string_view, std::string_view>>;

Reply call(std::string_view target, std::string_view method = "GET", Fields fields = {}, uint64_t count = 1,
           const RequestCounts* counts = nullptr) {
  edge::http::RequestHead head;
  head.method = method;
  head.target = target;
  for (const auto& [name, value] : fields) head.headers.add(name, value);
  edge::http::Body body;
  return route(head, body, RouteContext{"n1", {}, nullptr, counts, count, kNow});
}

std::string field(const Reply& r, std::string_view name) {
  auto v = r.headers.get(name);
  return v ? std::string(*v) : "<absent>";
}
}  // namespace

TEST_CASE("cache route: http_date") {
  CHECK(http_date(kNow) == "Tue, 14 Nov 2023 22:13:20 GMT");
  CHECK(http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST_CASE("cache route: if_none_match_matches compares weakly") {
  CHECK(if_none_match_matches("\"v1\"", "\"v1\""));
  CHECK(if_none_match_matches("W/\"v1\"", "\"v1\""));
  CHECK(if_none_match_matches("\"v1\"", "W/\"v1\""));
  CHECK(if_none_match_matches("\"a\", W/\"v1\"", "W/\"v1\""));
  CHECK(if_none_match_matches("*", "\"anything\""));
  CHECK_FALSE(if_none_match_matches("\"v2\"", "\"v1\""));
  CHECK_FALSE(if_none_match_matches("v1", "\"v1\""));
  CHECK_FALSE(if_none_match_matches("", "\"v1\""));
}

TEST_CASE("cache route: a bare /cache reply") {
  Reply r = call("/cache/a/b?x=1", "GET", {}, 3);
  CHECK(r.kind == Reply::Kind::kRespond);
  CHECK(r.status == 200);
  CHECK(r.body == "n1 GET /cache/a/b?x=1 3\n");
  CHECK(r.delay_ms == 0);
  CHECK_FALSE(r.generated);
  REQUIRE(r.headers.size() == 2);
  CHECK(field(r, "Content-Type") == "text/plain");
  CHECK(field(r, "X-Count") == "3");
  CHECK(field(r, "Cache-Control") == "<absent>");
  CHECK(call("/cache").status == 200);
  CHECK(call("/cachex").status == 404);
  CHECK(call("/cache/x", "DELETE").body == "n1 DELETE /cache/x 1\n");
  CHECK(call("/cache/x", "PATCH").body == "n1 PATCH /cache/x 1\n");
}

TEST_CASE("cache route: the query chooses the caching fields") {
  Reply r = call(
      "/cache/x?cc=public%2C+max-age%3D60&etag=W/%22v1%22&lm=100&expires=30&date=-10&age=5&vary=Accept"
      "&tag=k1+k2&xkey=k3&cookie=a%3Db&location=/l&content_location=/cl&type=text/html&unknown=1");
  CHECK(r.status == 200);
  CHECK(field(r, "Cache-Control") == "public, max-age=60");
  CHECK(field(r, "ETag") == "W/\"v1\"");
  CHECK(field(r, "Last-Modified") == http_date(kLastModified100));
  CHECK(field(r, "Expires") == http_date(kNow + 30));
  CHECK(field(r, "Date") == http_date(kNow - 10));
  CHECK(field(r, "Age") == "5");
  CHECK(field(r, "Vary") == "Accept");
  CHECK(field(r, "Surrogate-Key") == "k1 k2");
  CHECK(field(r, "xkey") == "k3");
  CHECK(field(r, "Set-Cookie") == "a=b");
  CHECK(field(r, "Location") == "/l");
  CHECK(field(r, "Content-Location") == "/cl");
  CHECK(field(r, "Content-Type") == "text/html");
  CHECK(r.headers.count("Content-Type") == 1);
  CHECK(field(r, "unknown") == "<absent>");

  CHECK(field(call("/cache/x?expires=bad"), "Expires") == "0");
  CHECK(field(call("/cache/x?expires=-3600"), "Expires") == http_date(kNow - 3600));
  CHECK(field(call("/cache/x?date=0"), "Date") == http_date(kNow));
  CHECK(field(call("/cache/x?cc="), "Cache-Control") == "");

  Reply repeated = call("/cache/x?cc=max-age%3D1&vary=A&cc=public");
  CHECK(repeated.headers.count("Cache-Control") == 2);
  CHECK(field(repeated, "Cache-Control") == "max-age=1");
}

TEST_CASE("cache route: status, size and delay") {
  Reply s = call("/cache/x?status=404");
  CHECK(s.status == 404);
  CHECK(s.body == "n1 GET /cache/x?status=404 1\n");
  Reply none = call("/cache/x?status=204");
  CHECK(none.status == 204);
  CHECK(none.body.empty());
  CHECK(none.body_size() == 0);

  Reply big = call("/cache/x?size=5000");
  CHECK(big.generated);
  CHECK(big.generated_bytes == 5000);
  CHECK(big.body.empty());
  CHECK(call("/cache/x?size=0").body_size() == 0);
  CHECK_FALSE(big.chunked);
  Reply chunked = call("/cache/x?size=5000&chunk=1000");
  CHECK(chunked.chunked);
  CHECK(chunked.chunk_size == 1000u);
  CHECK(chunked.generated_bytes == 5000u);
  CHECK(call("/cache/x?size=1&chunk=0").status == 400);
  CHECK(call("/cache/x?size=1&chunk=65537").status == 400);

  CHECK(call("/cache/x?delay=250").delay_ms == 250);
  CHECK(call("/cache/x?delay=600000").delay_ms == kMaxWaitMs);
}

TEST_CASE("cache route: gather holds a reply for others to its target, 5 s at most unless told") {
  CHECK(call("/cache/x").gather == 0u);
  Reply held = call("/cache/x?gather=8");
  CHECK(held.gather == 8u);
  CHECK(held.gather_ms == 5000u);
  Reply both = call("/cache/x?gather=1000&gather_ms=250&delay=10");
  CHECK(both.gather == kMaxGather);
  CHECK(both.gather_ms == 250u);
  CHECK(both.delay_ms == 10u);
  for (std::string_view target : {"/cache/x?gather=0", "/cache/x?gather=1001", "/cache/x?gather=",
                                  "/cache/x?gather=2&gather_ms=600001", "/cache/x?gather=2&gather_ms=x"}) {
    CAPTURE(target);
    CHECK(call(target).status == 400);
  }
}

TEST_CASE("cache route: bad values are 400") {
  for (std::string_view target :
       {"/cache/x?status=199", "/cache/x?status=600", "/cache/x?status=abc", "/cache/x?delay=600001",
        "/cache/x?delay=-1", "/cache/x?size=1073741825", "/cache/x?size=", "/cache/x?age=1%0A",
        "/cache/x?lm=-1", "/cache/x?lm=3153600001", "/cache/x?expires=soon", "/cache/x?expires=",
        "/cache/x?expires=3153600001", "/cache/x?date=--1", "/cache/x?date=+1", "/cache/x?cc=a%0Db",
        "/cache/x?cookie=a%0Ab", "/cache/x?etag=%00", "/cache/x?type=a%0A", "/cache/x?cc=%zz"}) {
    CAPTURE(target);
    CHECK(call(target).status == 400);
  }
  CHECK(call("/cache/x?date=-3153600000").status == 200);
}

TEST_CASE("cache route: the request's conditional and cookie fields are echoed") {
  Reply r = call("/cache/x", "GET",
                 {{"If-None-Match", "\"a\""}, {"If-None-Match", "\"b\""}, {"If-Modified-Since", "whenever"},
                  {"Cookie", "a=1"}, {"cookie", "b=2"}});
  CHECK(field(r, "X-Got-If-None-Match") == "\"a\", \"b\"");
  CHECK(field(r, "X-Got-If-Modified-Since") == "whenever");
  CHECK(field(r, "X-Got-Cookie") == "a=1; b=2");
  Reply plain = call("/cache/x");
  CHECK(field(plain, "X-Got-If-None-Match") == "<absent>");
  CHECK(field(plain, "X-Got-If-Modified-Since") == "<absent>");
  CHECK(field(plain, "X-Got-Cookie") == "<absent>");
}

TEST_CASE("cache route: If-None-Match gives 304 with the same fields and no body") {
  const std::string_view target = "/cache/x?etag=%22v1%22&cc=max-age%3D60";
  Reply fresh = call(target);
  Reply match = call(target, "GET", {{"If-None-Match", "\"v0\", W/\"v1\""}});
  CHECK(match.status == 304);
  CHECK(match.body.empty());
  CHECK(match.body_size() == 0);
  CHECK(field(match, "ETag") == "\"v1\"");
  CHECK(field(match, "Cache-Control") == "max-age=60");
  CHECK(field(match, "X-Count") == "1");
  CHECK(match.headers.size() == fresh.headers.size() + 1);  // and X-Got-If-None-Match

  CHECK(call(target, "HEAD", {{"If-None-Match", "\"v1\""}}).status == 304);
  CHECK(call(target, "GET", {{"If-None-Match", "*"}}).status == 304);
  CHECK(call("/cache/x?etag=W/%22v1%22", "GET", {{"If-None-Match", "\"v1\""}}).status == 304);
  CHECK(call(target, "GET", {{"If-None-Match", "\"v2\""}}).status == 200);
  // Only GET and HEAD, only a plain 200, and only when the query sets etag.
  CHECK(call(target, "POST", {{"If-None-Match", "\"v1\""}}).status == 200);
  CHECK(call("/cache/x?etag=%22v1%22&status=404", "GET", {{"If-None-Match", "\"v1\""}}).status == 404);
  CHECK(call("/cache/x?etag=%22v1%22&status=200", "GET", {{"If-None-Match", "\"v1\""}}).status == 304);
  CHECK(call("/cache/x", "GET", {{"If-None-Match", "*"}}).status == 200);
}

TEST_CASE("cache route: If-Modified-Since gives 304 when not earlier than Last-Modified") {
  const std::string last_modified = http_date(kLastModified100);
  const std::string_view target = "/cache/x?lm=100";
  CHECK(call(target, "GET", {{"If-Modified-Since", last_modified}}).status == 304);
  CHECK(call(target, "HEAD", {{"If-Modified-Since", http_date(kNow)}}).status == 304);
  CHECK(call(target, "GET", {{"If-Modified-Since", http_date(kLastModified100 - 1)}}).status == 200);
  CHECK(call(target, "GET", {{"If-Modified-Since", "yesterday"}}).status == 200);
  CHECK(call("/cache/x", "GET", {{"If-Modified-Since", last_modified}}).status == 200);
  // If-None-Match, when present, decides alone.
  CHECK(call("/cache/x?lm=100&etag=%22v1%22", "GET", {{"If-None-Match", "\"v2\""}, {"If-Modified-Since", last_modified}})
            .status == 200);
  CHECK(call("/cache/x?lm=100", "GET", {{"If-None-Match", "\"v1\""}, {"If-Modified-Since", last_modified}}).status ==
        200);
  CHECK(call("/cache/x?lm=100&status=203", "GET", {{"If-Modified-Since", last_modified}}).status == 203);
}

TEST_CASE("cache route: HEAD announces the GET's body") {
  Reply get = call("/cache/x?cc=max-age%3D5", "GET", {}, 7);
  Reply head = call("/cache/x?cc=max-age%3D5", "HEAD", {}, 7);
  CHECK(head.status == 200);
  CHECK(head.body_size() == get.body_size());
  CHECK(head.body == get.body);
  CHECK(call("/cache/x?size=300", "HEAD").body_size() == 300);
}

TEST_CASE("count route: the count of the target in url") {
  RequestCounts counts;
  counts.add("/cache/x?a=1");
  counts.add("/cache/x?a=1");
  Reply r = call("/count?url=%2Fcache%2Fx%3Fa%3D1", "GET", {}, 0, &counts);
  CHECK(r.status == 200);
  CHECK(r.body == "2\n");
  CHECK(field(r, "Cache-Control") == "no-store");
  CHECK(call("/count?url=/cache/x?a=2", "GET", {}, 0, &counts).body == "0\n");
  CHECK(call("/count?url=/cache/x", "GET", {}, 0, nullptr).body == "0\n");
  CHECK(call("/count", "GET", {}, 0, &counts).status == 400);
}

TEST_CASE("RequestCounts counts per exact target, up to its bound") {
  RequestCounts counts(2);
  CHECK(counts.add("/a") == 1);
  CHECK(counts.add("/a") == 2);
  CHECK(counts.add("/a?") == 1);
  CHECK(counts.add("/b") == 0);  // full: a new target is not added
  CHECK(counts.add("/a") == 3);  // ones already held go on counting
  CHECK(counts.get("/a") == 3);
  CHECK(counts.get("/a?") == 1);
  CHECK(counts.get("/b") == 0);
  CHECK(counts.size() == 2);
  CHECK(RequestCounts().get("/never") == 0);

  CHECK(counts_request("/cache/x"));
  CHECK(counts_request("/count2"));
  CHECK(counts_request("/counts?url=/a"));
  CHECK_FALSE(counts_request("/count"));
  CHECK_FALSE(counts_request("/count?url=/a"));
}
