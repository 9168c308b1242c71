#include "app/routes.h"

#include <doctest/doctest.h>

#include "app/assets.h"

using namespace edge::app;

namespace {
Reply call(std::string_view target, std::string_view method = "GET", Stats stats = {}) {
  edge::http::RequestHead head;
  head.method = method;
  head.target = target;
  edge::http::Body body;
  return route(head, body, RouteContext{"n1", stats, nullptr});
}

std::string field(const Reply& r, std::string_view name) {
  auto v = r.headers.get(name);
  return v ? std::string(*v) : "<absent>";
}
}  // namespace

TEST_CASE("pattern_view and pattern_byte") {
  CHECK(pattern_byte(0) == 'a');
  CHECK(pattern_byte(25) == 'z');
  CHECK(pattern_byte(26) == 'a');
  CHECK(pattern_byte(1000003) == static_cast<char>('a' + 1000003 % 26));
  CHECK(pattern_view(0, 5) == "abcde");
  CHECK(pattern_view(24, 4) == "yzab");
  CHECK(pattern_view(26 * 1000 + 2, 3) == "cde");
  std::string_view big = pattern_view(7, kMaxChunkBytes);
  REQUIRE(big.size() == kMaxChunkBytes);
  for (size_t i = 0; i < big.size(); ++i) REQUIRE(big[i] == pattern_byte(7 + i));
  CHECK(pattern_view(0, kMaxChunkBytes + 100).size() == kMaxChunkBytes);
}

TEST_CASE("health, 404 and text replies") {
  Reply h = call("/health");
  CHECK(h.kind == Reply::Kind::kRespond);
  CHECK(h.status == 200);
  CHECK(h.body == "ok\n");
  CHECK(field(h, "Content-Type") == "text/plain; charset=utf-8");
  Reply missing = call("/healthz");
  CHECK(missing.status == 404);
  CHECK(missing.body == "not found\n");
  CHECK(call("/").status == 404);
  CHECK(call("/health/").status == 404);
}

TEST_CASE("stats reports the counters it is given") {
  Reply s = call("/stats", "GET", Stats{9, 5, 2, 7});
  CHECK(s.body == R"({"name":"n1","received":9,"served":5,"in_progress":2,"peak_in_progress":7})");
  CHECK(field(s, "Content-Type") == "application/json");
}

TEST_CASE("bytes and chunked") {
  Reply b = call("/bytes?n=1234");
  CHECK(b.generated);
  CHECK(b.generated_bytes == 1234);
  CHECK(b.body_size() == 1234);
  CHECK_FALSE(b.chunked);
  CHECK(field(b, "Cache-Control") == "no-store");
  CHECK(call("/bytes?n=1073741824").generated_bytes == kMaxPatternBytes);
  CHECK(call("/bytes?n=1073741825").status == 400);
  CHECK(call("/bytes?n=1e3").status == 400);
  CHECK(call("/bytes").status == 400);

  Reply c = call("/chunked?n=1000");
  CHECK(c.chunked);
  CHECK(c.generated_bytes == 1000);
  CHECK(c.chunk_size == 250);
  CHECK(call("/chunked?n=10").chunk_size == 3);
  CHECK(call("/chunked?n=0").chunk_size == 1);
  CHECK(call("/chunked?n=10000000").chunk_size == kMaxChunkBytes);
  CHECK(call("/chunked?n=10&chunk=4").chunk_size == 4);
  CHECK(call("/chunked?n=10&chunk=0").status == 400);
  CHECK(call("/chunked?n=10&chunk=65537").status == 400);
}

TEST_CASE("wait, slowhead and cpu") {
  Reply w = call("/wait?ms=250");
  CHECK(w.delay_ms == 250);
  CHECK(w.cpu_ms == 0);
  CHECK(w.body == "waited 250 ms\n");
  Reply s = call("/slowhead?ms=10");
  CHECK(s.delay_ms == 10);
  CHECK(s.body == "waited 10 ms\n");
  Reply c = call("/cpu?ms=20");
  CHECK(c.cpu_ms == 20);
  CHECK(c.delay_ms == 0);
  CHECK(c.body == "burned 20 ms\n");
  CHECK(call("/wait").status == 400);
  CHECK(call("/wait?ms=600001").status == 400);
  CHECK(call("/cpu?ms=60001").status == 400);
  CHECK(call("/cpu?ms=-5").status == 400);
}

TEST_CASE("static assets and revalidation") {
  Reply css = call("/static/site.css");
  auto asset = make_asset("site.css");
  REQUIRE(asset);
  CHECK(css.status == 200);
  CHECK(css.body == asset->body);
  CHECK(field(css, "ETag") == asset->etag);
  CHECK(field(css, "Content-Type") == "text/css");
  CHECK(field(css, "Cache-Control") == "public, max-age=3600");
  CHECK(field(css, "Last-Modified") == "Mon, 01 Jan 2024 00:00:00 GMT");

  edge::http::RequestHead head;
  head.method = "GET";
  head.target = "/static/site.css";
  head.headers.add("If-None-Match", "\"nope\", W/" + asset->etag);
  edge::http::Body body;
  AssetCache cache;
  Reply not_modified = route(head, body, RouteContext{"n1", {}, &cache});
  CHECK(not_modified.status == 304);
  CHECK(not_modified.body.empty());
  CHECK(field(not_modified, "ETag") == asset->etag);

  CHECK(call("/static/x.gif").status == 404);

  // With a cache: the same reply, and the asset generated once.
  head.headers.clear();
  Reply cached1 = route(head, body, RouteContext{"n1", {}, &cache});
  Reply cached2 = route(head, body, RouteContext{"n1", {}, &cache});
  CHECK(cached1.body == css.body);
  CHECK(cached2.body == css.body);
  CHECK(field(cached2, "ETag") == asset->etag);
  CHECK(cache.size() == 1);
}

TEST_CASE("status") {
  Reply r = call("/status?code=502");
  CHECK(r.status == 502);
  CHECK(r.body == "status 502\n");
  Reply none = call("/status?code=304");
  CHECK(none.status == 304);
  CHECK(none.body.empty());
  CHECK(call("/status?code=200").status == 200);
  CHECK(call("/status?code=599").status == 599);
  CHECK(call("/status?code=100").status == 400);
  CHECK(call("/status?code=abc").status == 400);
}

TEST_CASE("headers adds the query's fields, in order, and refuses framing fields") {
  Reply r = call("/headers?X-Foo=1&Connection=keep-alive%2C+X-Foo&Keep-Alive=timeout%3D5");
  CHECK(r.status == 200);
  REQUIRE(r.headers.size() == 5);  // Content-Type, Cache-Control, then the three
  CHECK(r.headers.name(2) == "X-Foo");
  CHECK(r.headers.value(2) == "1");
  CHECK(r.headers.name(3) == "Connection");
  CHECK(r.headers.value(3) == "keep-alive, X-Foo");
  CHECK(r.headers.value(4) == "timeout=5");
  CHECK(call("/headers?content-length=1").status == 400);
  CHECK(call("/headers?Transfer-Encoding=chunked").status == 400);
  CHECK(call("/headers?X=a%0Ab").status == 400);
  CHECK(call("/headers?X%3A=1").status == 400);
  CHECK(call("/headers?=1").status == 400);
}

TEST_CASE("connection helpers") {
  CHECK(call("/close").kind == Reply::Kind::kDrop);
  Reply g = call("/garbage");
  CHECK(g.kind == Reply::Kind::kRaw);
  CHECK(g.body == "this is not http\r\n\r\n");
  Reply t = call("/truncate");
  CHECK(t.declared_length == std::optional<uint64_t>(1000));
  CHECK(t.generated_bytes == 10);
  CHECK(t.close);
}

TEST_CASE("a malformed query is 400") {
  CHECK(call("/health?a=%zz").status == 400);
}

TEST_CASE("status_has_body") {
  CHECK(status_has_body(200));
  CHECK(status_has_body(404));
  CHECK_FALSE(status_has_body(204));
  CHECK_FALSE(status_has_body(304));
  CHECK_FALSE(status_has_body(101));
}

TEST_CASE("format_head writes the server's fields around the reply's") {
  Reply r = text_reply(200, "ok\n");
  Framing f;
  f.date = "Mon, 01 Jan 2024 00:00:00 GMT";
  f.backend = "b1";
  f.content_length = 3;
  CHECK(format_head(r, f) ==
        "HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nX-Backend: b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: 3\r\n\r\n");

  f.close = true;
  f.content_length.reset();
  f.chunked = true;
  Reply e;
  e.status = 503;
  CHECK(format_head(e, f) ==
        "HTTP/1.1 503 Service Unavailable\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nX-Backend: b1\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");

  Framing old;
  old.date = f.date;
  old.backend = "b1";
  old.keep_alive = true;
  old.content_length = 0;
  Reply own;
  own.headers.add("Connection", "X-Foo");
  CHECK(format_head(own, old) ==
        "HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nX-Backend: b1\r\nConnection: X-Foo\r\n"
        "Content-Length: 0\r\n\r\n");

  Reply dated;
  dated.headers.add("Date", "Sun, 31 Dec 2023 00:00:00 GMT");
  CHECK(format_head(dated, old) ==
        "HTTP/1.1 200 OK\r\nX-Backend: b1\r\nDate: Sun, 31 Dec 2023 00:00:00 GMT\r\n"
        "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n");
}

TEST_CASE("demo_kind names the demo's requests by path, and nothing else") {
  auto kind = [](std::string_view path) {
    const size_t i = demo_kind(path);
    return i < kDemoKinds.size() ? std::string(kDemoKinds[i]) : std::string("-");
  };
  CHECK(kind("/") == "home");
  CHECK(kind("/book/7") == "book");
  CHECK(kind("/book/7/reviews") == "review_post");
  CHECK(kind("/author/3") == "author");
  CHECK(kind("/tag/9") == "tag");
  CHECK(kind("/search") == "search");
  CHECK(kind("/login") == "login");
  CHECK(kind("/logout") == "logout");
  CHECK(kind("/fragments/userbar") == "fragment/userbar");
  CHECK(kind("/fragments/reviews/7") == "fragment/reviews");
  CHECK(kind("/fragments/search") == "fragment/search");
  CHECK(kind("/fragments/nonsense/1") == "-");
  CHECK(kind("/fragments/") == "-");
  CHECK(kind("/fragments/fragment/book") == "-");
  CHECK(kind("/health") == "-");
  CHECK(kind("/stats") == "-");
  CHECK(kind("") == "-");
}
