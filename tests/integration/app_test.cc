// edge-app on its own, over real sockets, through the testkit: the app's endpoints and its
// HTTP/1.1 behaviour, and (by using them) the testkit's processes, clients and parsing.
#include <doctest/doctest.h>
#include <poll.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "tests/integration/testkit.h"

using namespace edge::testkit;
using namespace std::chrono_literals;

namespace {

std::string header(const Response& r, std::string_view name) {
  auto v = r.header(name);
  return v ? std::string(*v) : std::string("<absent>");
}

// "METHOD target HTTP/1.1" with a Host, the extra fields (each ending in \r\n) and the body.
std::string request(std::string_view method, std::string_view target, std::string_view extra = "",
                    std::string_view body = "") {
  std::string out;
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: app.test\r\n");
  out.append(extra).append("\r\n").append(body);
  return out;
}

std::string pattern(uint64_t offset, size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>('a' + (offset + i) % 26);
  return out;
}

// True when bytes (or EOF) are waiting on the socket right now.
bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// Everything the peer sends until it closes.
std::string read_until_closed(Client& c) {
  std::string all;
  for (std::string part = c.read_some(); !part.empty(); part = c.read_some()) all += part;
  return all;
}

}  // namespace

TEST_CASE("health: 200 ok with X-Backend, Date and Content-Length") {
  App app("alpha");
  Response r = get(app.port, "app.test", "/health");
  CHECK(r.complete);
  CHECK(r.status == 200);
  CHECK(r.reason == "OK");
  CHECK(r.version_minor == 1);
  CHECK(r.body == "ok\n");
  CHECK(header(r, "X-Backend") == "alpha");
  CHECK(header(r, "Content-Length") == "3");
  CHECK(header(r, "Content-Type") == "text/plain; charset=utf-8");
  CHECK(header(r, "Connection") == "close");
  std::string date = header(r, "Date");
  CHECK(date.size() == 29);
  CHECK(date.substr(25) == " GMT");
}

TEST_CASE("unknown paths are 404 and carry X-Backend too") {
  App app("beta");
  Response r = get(app.port, "app.test", "/nope");
  CHECK(r.complete);
  CHECK(r.status == 404);
  CHECK(r.body == "not found\n");
  CHECK(header(r, "X-Backend") == "beta");
  CHECK(header(r, "Content-Length") == "10");
}

TEST_CASE("echo reflects the request head, in order, as JSON") {
  App app("e");
  Response r = exchange(app.port,
                        "GET /echo?x=1&y=%22q%22 HTTP/1.1\r\nHost: h.test\r\nX-Test: hello \"world\"\r\n"
                        "X-Multi: 1\r\nX-Multi: 2\r\nConnection: close\r\n\r\n");
  CHECK(r.status == 200);
  CHECK(header(r, "Content-Type") == "application/json");
  CHECK(r.body ==
        R"({"method":"GET","target":"/echo?x=1&y=%22q%22","version":"1.1","headers":[["Host","h.test"],)"
        R"(["X-Test","hello \"world\""],["X-Multi","1"],["X-Multi","2"],["Connection","close"]],)"
        R"("body_bytes":0,"body":""})");
  CHECK(header(r, "Content-Length") == std::to_string(r.body.size()));
}

TEST_CASE("echo reports a POST body sent with Content-Length") {
  App app("e");
  std::string body = "line1\nline2\t\"q\"\\";
  REQUIRE(body.size() == 16);
  Response r = exchange(app.port, request("POST", "/echo", "Content-Length: 16\r\nConnection: close\r\n", body));
  CHECK(r.status == 200);
  CHECK(r.body ==
        R"({"method":"POST","target":"/echo","version":"1.1","headers":[["Host","app.test"],)"
        R"(["Content-Length","16"],["Connection","close"]],"body_bytes":16,"body":"line1\nline2\t\"q\"\\"})");
}

TEST_CASE("echo reports a chunked POST body, and omits a body over 64 KiB") {
  App app("e");
  Response r = exchange(app.port, request("POST", "/echo", "Transfer-Encoding: chunked\r\nConnection: close\r\n",
                                          "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  CHECK(r.status == 200);
  CHECK(r.body ==
        R"({"method":"POST","target":"/echo","version":"1.1","headers":[["Host","app.test"],)"
        R"(["Transfer-Encoding","chunked"],["Connection","close"]],"body_bytes":11,"body":"hello world"})");

  std::string big(70000, 'z');
  Response r2 = exchange(app.port, request("PUT", "/echo", "Content-Length: 70000\r\nConnection: close\r\n", big));
  CHECK(r2.status == 200);
  CHECK(r2.body.find(R"("body_bytes":70000})") != std::string::npos);
  CHECK(r2.body.find(R"("body":)") == std::string::npos);
}

TEST_CASE("requests arriving in pieces: a head byte by byte, a 1 MiB chunked upload") {
  App app("e");
  Client c(app.port);
  for (char ch : request("GET", "/echo?slow")) REQUIRE(c.send(std::string_view(&ch, 1)));
  Response r = c.read_response();
  CHECK(r.status == 200);
  CHECK(r.body.find(R"("target":"/echo?slow")") != std::string::npos);

  std::string upload;
  for (int i = 0; i < 16; ++i) upload += "10000\r\n" + pattern(0, 65536) + "\r\n";
  upload += "0\r\n\r\n";
  REQUIRE(c.send(request("POST", "/echo", "Transfer-Encoding: chunked\r\n", upload)));
  Response big = c.read_response();
  CHECK(big.status == 200);
  CHECK(big.body.find(R"("body_bytes":1048576})") != std::string::npos);
}

TEST_CASE("Expect: 100-continue gets an interim 100 before the body is sent") {
  App app("e");
  Client c(app.port);
  REQUIRE(c.send(request("POST", "/echo", "Content-Length: 5\r\nExpect: 100-continue\r\n")));
  std::string interim;
  while (interim.size() < 25) {
    std::string part = c.read_some(25 - interim.size());
    if (part.empty()) break;
    interim += part;
  }
  CHECK(interim == "HTTP/1.1 100 Continue\r\n\r\n");
  REQUIRE(c.send("abcde"));
  Response r = c.read_response();
  CHECK(r.status == 200);
  CHECK(r.body.find(R"("body_bytes":5,"body":"abcde"})") != std::string::npos);
}

TEST_CASE("keep-alive: several requests on one connection") {
  App app("ka");
  Client c(app.port);
  REQUIRE(c.send(request("GET", "/health")));
  Response r1 = c.read_response();
  CHECK(r1.status == 200);
  CHECK(r1.body == "ok\n");
  CHECK(header(r1, "Connection") == "<absent>");
  REQUIRE(c.send(request("GET", "/echo?second")));
  Response r2 = c.read_response();
  CHECK(r2.status == 200);
  CHECK(r2.body.find(R"("target":"/echo?second")") != std::string::npos);
  REQUIRE(c.send(request("GET", "/stats")));
  Response r3 = c.read_response();
  CHECK(r3.body == R"({"name":"ka","received":3,"served":2,"in_progress":1,"peak_in_progress":1})");
}

TEST_CASE("pipelining: requests sent together are answered in order") {
  App app("p");
  Client c(app.port);
  REQUIRE(c.send(request("GET", "/echo?n=1") + request("POST", "/echo?n=2", "Content-Length: 3\r\n", "xyz") +
                 request("GET", "/bytes?n=7") + request("GET", "/echo?n=4", "Connection: close\r\n")));
  Response r1 = c.read_response();
  Response r2 = c.read_response();
  Response r3 = c.read_response();
  Response r4 = c.read_response();
  CHECK(r1.body.find(R"("target":"/echo?n=1")") != std::string::npos);
  CHECK(r2.body.find(R"("target":"/echo?n=2")") != std::string::npos);
  CHECK(r2.body.find(R"("body_bytes":3,"body":"xyz")") != std::string::npos);
  CHECK(r3.body == "abcdefg");
  CHECK(r4.body.find(R"("target":"/echo?n=4")") != std::string::npos);
  CHECK(header(r4, "Connection") == "close");
  CHECK(c.wait_closed());
}

TEST_CASE("pipelining: a long burst is answered completely and in order") {
  App app("burst");
  Client c(app.port);
  std::string burst;
  for (int i = 1; i <= 300; ++i) burst += request("GET", "/bytes?n=" + std::to_string(i));
  REQUIRE(c.send(burst));
  for (int i = 1; i <= 300; ++i) {
    Response r = c.read_response();
    REQUIRE(r.complete);
    REQUIRE(r.body == pattern(0, static_cast<size_t>(i)));
  }
}

TEST_CASE("HEAD gets the GET head and no body") {
  App app("h");
  Client c(app.port);
  REQUIRE(c.send(request("HEAD", "/bytes?n=100")));
  Response head = c.read_response("HEAD");
  CHECK(head.complete);
  CHECK(head.status == 200);
  CHECK(header(head, "Content-Length") == "100");
  CHECK(head.body.empty());
  // Were any body bytes sent, they would be read as the start of this response.
  REQUIRE(c.send(request("GET", "/health")));
  Response next = c.read_response();
  CHECK(next.status == 200);
  CHECK(next.body == "ok\n");

  REQUIRE(c.send(request("HEAD", "/static/site.css")));
  Response css_head = c.read_response("HEAD");
  REQUIRE(c.send(request("GET", "/static/site.css")));
  Response css = c.read_response();
  CHECK(css_head.body.empty());
  CHECK(header(css_head, "Content-Length") == std::to_string(css.body.size()));
  CHECK(header(css_head, "ETag") == header(css, "ETag"));
}

TEST_CASE("bytes: exact sizes of the a..z pattern") {
  App app("b");
  Response zero = get(app.port, "app.test", "/bytes?n=0");
  CHECK(zero.status == 200);
  CHECK(header(zero, "Content-Length") == "0");
  CHECK(zero.body.empty());

  Response one = get(app.port, "app.test", "/bytes?n=1");
  CHECK(one.body == "a");

  Response some = get(app.port, "app.test", "/bytes?n=100000");
  CHECK(some.status == 200);
  CHECK(header(some, "Content-Type") == "application/octet-stream");
  CHECK(header(some, "Cache-Control") == "no-store");
  CHECK(header(some, "Content-Length") == "100000");
  CHECK(some.body.size() == 100000);
  CHECK(some.body == pattern(0, 100000));
  CHECK(some.body.substr(26, 3) == "abc");

  // Larger than one piece of the generator: pieces join without a gap or a repeat.
  Response big = get(app.port, "app.test", "/bytes?n=8388613");
  CHECK(big.complete);
  CHECK(big.body.size() == 8388613);
  CHECK(big.body == pattern(0, 8388613));
}

TEST_CASE("bytes: bad n is 400") {
  App app("b");
  for (const char* target : {"/bytes", "/bytes?n=", "/bytes?n=abc", "/bytes?n=-1", "/bytes?n=1073741825",
                             "/bytes?n=99999999999999999999999", "/bytes?n=%zz"}) {
    CAPTURE(target);
    Response r = get(app.port, "app.test", target);
    CHECK(r.status == 400);
    CHECK(r.body.substr(0, 13) == "bad request: ");
  }
}

TEST_CASE("static: css and js with caching headers, stable ETag, content from the name") {
  App app("s");
  Response css1 = get(app.port, "app.test", "/static/site.css");
  Response css2 = get(app.port, "app.test", "/static/site.css");
  Response other = get(app.port, "app.test", "/static/other.css");
  Response js = get(app.port, "app.test", "/static/app/main.js");
  CHECK(css1.status == 200);
  CHECK(header(css1, "Content-Type") == "text/css");
  CHECK(header(css1, "Cache-Control") == "public, max-age=3600");
  CHECK(header(css1, "Last-Modified") == "Mon, 01 Jan 2024 00:00:00 GMT");
  CHECK(css1.body.substr(0, 13) == "/* site.css: ");
  CHECK(css1.body.size() >= 2048);
  CHECK(css1.body.size() < 8192);
  CHECK(css1.body == css2.body);
  CHECK(header(css1, "ETag") == header(css2, "ETag"));
  CHECK(header(css1, "ETag").size() == 18);  // a quoted 16-digit hash
  CHECK(header(css1, "ETag").front() == '"');
  CHECK(other.body != css1.body);
  CHECK(header(other, "ETag") != header(css1, "ETag"));

  CHECK(js.status == 200);
  CHECK(header(js, "Content-Type") == "application/javascript");
  CHECK(js.body.substr(0, 17) == "// app/main.js: g");
  CHECK(js.body.size() >= 2048);
}

TEST_CASE("static: png is a real PNG") {
  App app("s");
  Response a = get(app.port, "app.test", "/static/img/logo.png");
  Response b = get(app.port, "app.test", "/static/img/logo.png");
  REQUIRE(a.status == 200);
  CHECK(header(a, "Content-Type") == "image/png");
  CHECK(header(a, "Cache-Control") == "public, max-age=3600");
  REQUIRE(a.body.size() > 33);
  CHECK(a.body.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(a.body.substr(12, 4) == "IHDR");
  CHECK(a.body.substr(16, 8) == std::string("\0\0\0\x20\0\0\0\x20", 8));  // 32 x 32
  CHECK(a.body.substr(a.body.size() - 8, 4) == "IEND");
  CHECK(a.body.size() > 1000);
  CHECK(a.body.size() < 16384);
  CHECK(a.body == b.body);
  CHECK(header(a, "ETag") == header(b, "ETag"));
}

TEST_CASE("static: If-None-Match gives 304; unknown extensions and bad names are 404") {
  App app("s");
  Response full = get(app.port, "app.test", "/static/site.css");
  std::string etag = header(full, "ETag");
  Response revalidated =
      exchange(app.port, request("GET", "/static/site.css", "If-None-Match: \"x\", " + etag + "\r\n"));
  CHECK(revalidated.status == 304);
  CHECK(revalidated.body.empty());
  CHECK(header(revalidated, "ETag") == etag);
  CHECK(header(revalidated, "Content-Length") == "<absent>");
  Response changed = exchange(app.port, request("GET", "/static/site.css", "If-None-Match: \"other\"\r\n"));
  CHECK(changed.status == 200);

  for (const char* target : {"/static/readme.txt", "/static/", "/static/.css", "/static/../site.css",
                             "/static/a//b.css", "/static/noext"}) {
    CAPTURE(target);
    CHECK(get(app.port, "app.test", target).status == 404);
  }
}

TEST_CASE("wait: a pending /wait does not block other connections") {
  App app("w");
  Client waiting(app.port);
  // Pipelined behind /health: once its answer is read, the server has parsed /wait and armed it.
  const auto sent = std::chrono::steady_clock::now();
  REQUIRE(waiting.send(request("GET", "/health") + request("GET", "/wait?ms=1500")));
  Response first = waiting.read_response();
  REQUIRE(first.body == "ok\n");

  Response health = get(app.port, "app.test", "/health");
  CHECK(health.status == 200);
  Response stats = get(app.port, "app.test", "/stats");
  // in_progress: the pending /wait and this /stats itself.
  CHECK(stats.body == R"({"name":"w","received":4,"served":2,"in_progress":2,"peak_in_progress":2})");
  CHECK_FALSE(readable_now(waiting.fd()));  // the other connection has been answered first

  Response waited = waiting.read_response();
  CHECK(waited.status == 200);
  CHECK(waited.body == "waited 1500 ms\n");
  // The loop counts whole milliseconds, truncated: its timer may end a fraction of one early.
  CHECK(std::chrono::steady_clock::now() - sent >= 1499ms);
}

TEST_CASE("slowhead: nothing is sent before the delay") {
  App app("w");
  Client c(app.port);
  // Long enough that a test thread starved by a loaded machine still looks before it ends.
  REQUIRE(c.send(request("GET", "/health") + request("GET", "/slowhead?ms=1500")));
  REQUIRE(c.read_response().body == "ok\n");
  CHECK_FALSE(readable_now(c.fd()));
  Response r = c.read_response();
  CHECK(r.status == 200);
  CHECK(r.body == "waited 1500 ms\n");
  CHECK(get(app.port, "app.test", "/wait?ms=x").status == 400);
  CHECK(get(app.port, "app.test", "/wait?ms=600001").status == 400);
}

TEST_CASE("cpu: a /cpu request holds the whole loop") {
  App app("c");
  Client busy(app.port);
  // Pipelined behind /health: the server starts burning right after writing the /health answer.
  REQUIRE(busy.send(request("GET", "/health") + request("GET", "/cpu?ms=400")));
  REQUIRE(busy.read_response().body == "ok\n");

  Response other = get(app.port, "app.test", "/health");
  CHECK(other.status == 200);
  // The other connection could only be served after the burn, so its answer is already here.
  CHECK(readable_now(busy.fd()));
  Response burned = busy.read_response();
  CHECK(burned.status == 200);
  CHECK(burned.body == "burned 400 ms\n");
  CHECK(get(app.port, "app.test", "/cpu?ms=60001").status == 400);
}

TEST_CASE("stats: served, in progress and peak") {
  App app("st");
  for (int i = 0; i < 3; ++i) CHECK(get(app.port, "app.test", "/health").status == 200);
  Response stats = get(app.port, "app.test", "/stats");
  CHECK(stats.status == 200);
  CHECK(header(stats, "Content-Type") == "application/json");
  CHECK(stats.body == R"({"name":"st","received":4,"served":3,"in_progress":1,"peak_in_progress":1})");

  // Two waits at once raise the peak to 3 (with the /stats that reads it).
  Client w1(app.port), w2(app.port);
  REQUIRE(w1.send(request("GET", "/health") + request("GET", "/wait?ms=1000")));
  REQUIRE(w2.send(request("GET", "/health") + request("GET", "/wait?ms=1000")));
  REQUIRE(w1.read_response().status == 200);
  REQUIRE(w2.read_response().status == 200);
  Response during = get(app.port, "app.test", "/stats");
  CHECK(during.body == R"({"name":"st","received":9,"served":6,"in_progress":3,"peak_in_progress":3})");
  CHECK(w1.read_response().body == "waited 1000 ms\n");
  CHECK(w2.read_response().body == "waited 1000 ms\n");
  Response after = get(app.port, "app.test", "/stats");
  CHECK(after.body == R"({"name":"st","received":10,"served":9,"in_progress":1,"peak_in_progress":3})");
}

TEST_CASE("malformed requests get 400 and the connection is closed") {
  App app("m");
  {
    Client c(app.port);
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"));
    Response r = c.read_response();
    CHECK(r.complete);
    CHECK(r.status == 400);
    CHECK(header(r, "Connection") == "close");
    CHECK(header(r, "X-Backend") == "m");
    CHECK(r.body.substr(0, 13) == "Bad Request: ");
    CHECK(c.wait_closed());
  }
  {
    Client c(app.port);
    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"));
    Response r = c.read_response();
    CHECK(r.status == 400);
    CHECK(c.wait_closed());
  }
  {
    // A good request, then garbage: the first is answered, then 400 and close.
    Client c(app.port);
    REQUIRE(c.send(request("GET", "/health") + "GET / HTTP/1.1\r\n\x01" "bad\r\n\r\n"));
    CHECK(c.read_response().body == "ok\n");
    CHECK(c.read_response().status == 400);
    CHECK(c.wait_closed());
  }
  {
    Client c(app.port);
    REQUIRE(c.send(request("POST", "/echo", "Content-Length: 20000000\r\n")));
    Response r = c.read_response();
    CHECK(r.status == 413);
    CHECK(r.body == "Content Too Large: body larger than max_body_bytes\n");
    CHECK(c.wait_closed());
  }
  // The server is still fine.
  CHECK(get(app.port, "app.test", "/health").status == 200);
}

TEST_CASE("HTTP/1.0: closes by default, keeps alive when asked") {
  App app("old");
  {
    Client c(app.port);
    REQUIRE(c.send("GET /health HTTP/1.0\r\n\r\n"));
    Response r = c.read_response();
    CHECK(r.status == 200);
    CHECK(r.body == "ok\n");
    CHECK(header(r, "Connection") == "close");
    CHECK(c.wait_closed());
  }
  {
    Client c(app.port);
    REQUIRE(c.send("GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    Response r = c.read_response();
    CHECK(header(r, "Connection") == "keep-alive");
    CHECK(r.body.find(R"("version":"1.0")") != std::string::npos);
    REQUIRE(c.send("GET /chunked?n=30 HTTP/1.0\r\n\r\n"));
    Response chunked = c.read_response();
    CHECK(header(chunked, "Transfer-Encoding") == "<absent>");  // 1.0 has no chunked coding
    CHECK(header(chunked, "Content-Length") == "30");
    CHECK(chunked.body == pattern(0, 30));
    CHECK(c.wait_closed());
  }
}

TEST_CASE("status: any final status with a short body") {
  App app("st");
  Response r = get(app.port, "app.test", "/status?code=503");
  CHECK(r.status == 503);
  CHECK(r.reason == "Service Unavailable");
  CHECK(r.body == "status 503\n");
  CHECK(header(r, "Content-Length") == "11");

  Client c(app.port);
  REQUIRE(c.send(request("GET", "/status?code=204")));
  Response empty = c.read_response();
  CHECK(empty.status == 204);
  CHECK(empty.body.empty());
  CHECK(header(empty, "Content-Length") == "<absent>");
  REQUIRE(c.send(request("GET", "/health")));  // 204 left nothing behind on the connection
  CHECK(c.read_response().body == "ok\n");

  CHECK(get(app.port, "app.test", "/status?code=418").status == 418);
  CHECK(get(app.port, "app.test", "/status?code=199").status == 400);
  CHECK(get(app.port, "app.test", "/status?code=600").status == 400);
  CHECK(get(app.port, "app.test", "/status").status == 400);
}

TEST_CASE("close: the connection is closed without a response") {
  App app("x");
  Client c(app.port);
  REQUIRE(c.send(request("GET", "/close")));
  Response r = c.read_response();
  CHECK_FALSE(r.complete);
  CHECK(r.status == 0);
  CHECK(c.wait_closed());
  // The /close request was received but never served.
  CHECK(get(app.port, "app.test", "/stats").body == R"({"name":"x","received":2,"served":0,"in_progress":1,"peak_in_progress":1})");
}

TEST_CASE("garbage: bytes that are not HTTP, then close") {
  App app("x");
  {
    Client c(app.port);
    REQUIRE(c.send(request("GET", "/garbage")));
    CHECK(read_until_closed(c) == "this is not http\r\n\r\n");
  }
  Response r = get(app.port, "app.test", "/garbage");
  CHECK_FALSE(r.complete);
  CHECK(r.status == 0);
}

TEST_CASE("truncate: Content-Length 1000 but 10 bytes, then close") {
  App app("x");
  Response r = get(app.port, "app.test", "/truncate");
  CHECK_FALSE(r.complete);
  CHECK(r.status == 200);
  CHECK(header(r, "Content-Length") == "1000");
  CHECK(r.body == "abcdefghij");
}

TEST_CASE("chunked: the pattern in several chunks") {
  App app("ch");
  Client c(app.port);
  REQUIRE(c.send(request("GET", "/chunked?n=1000", "Connection: close\r\n")));
  std::string raw = read_until_closed(c);
  size_t end = raw.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  std::string head = raw.substr(0, end + 4);
  CHECK(head.find("\r\nTransfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(head.find("Content-Length") == std::string::npos);
  std::string expected;
  for (int i = 0; i < 4; ++i) expected += "fa\r\n" + pattern(250 * i, 250) + "\r\n";
  expected += "0\r\n\r\n";
  CHECK(raw.substr(end + 4) == expected);

  Response r = get(app.port, "app.test", "/chunked?n=100&chunk=7");
  CHECK(r.complete);
  CHECK(header(r, "Transfer-Encoding") == "chunked");
  CHECK(r.body == pattern(0, 100));

  Response big = get(app.port, "app.test", "/chunked?n=3000000");
  CHECK(big.complete);
  CHECK(big.body == pattern(0, 3000000));

  Response none = get(app.port, "app.test", "/chunked?n=0");
  CHECK(none.complete);
  CHECK(none.body.empty());
  CHECK(get(app.port, "app.test", "/chunked?n=10&chunk=0").status == 400);
}

TEST_CASE("headers: the query's fields are added to the response") {
  App app("hd");
  Client c(app.port);
  REQUIRE(c.send(request("GET", "/headers?X-Foo=bar&Keep-Alive=timeout%3D5&X-Two=a+b")));
  Response r = c.read_response();
  CHECK(r.status == 200);
  CHECK(r.body == "headers\n");
  CHECK(header(r, "X-Foo") == "bar");
  CHECK(header(r, "Keep-Alive") == "timeout=5");
  CHECK(header(r, "X-Two") == "a b");
  CHECK(header(r, "Connection") == "<absent>");

  // A Connection field from the query replaces the server's, and "close" is honoured.
  REQUIRE(c.send(request("GET", "/headers?Connection=close")));
  Response closing = c.read_response();
  CHECK(header(closing, "Connection") == "close");
  CHECK(closing.headers.count("Connection") == 1);
  CHECK(c.wait_closed());

  CHECK(get(app.port, "app.test", "/headers?Content-Length=5").status == 400);
  CHECK(get(app.port, "app.test", "/headers?X-Bad=a%0D%0Ab").status == 400);
  CHECK(get(app.port, "app.test", "/headers?Bad%20Name=1").status == 400);
}

TEST_CASE("cache: the query's caching fields, a per-target X-Count, and /count") {
  App app("ca");
  const std::string target = "/cache/page?cc=max-age%3D60&etag=W/%22v1%22&vary=Accept&tag=k1";
  Client c(app.port);
  REQUIRE(c.send(request("GET", target) + request("POST", target, "Content-Length: 5\r\n", "hello")));
  Response first = c.read_response();
  Response second = c.read_response();
  CHECK(first.status == 200);
  CHECK(header(first, "Cache-Control") == "max-age=60");
  CHECK(header(first, "ETag") == "W/\"v1\"");
  CHECK(header(first, "Vary") == "Accept");
  CHECK(header(first, "Surrogate-Key") == "k1");
  CHECK(header(first, "Content-Type") == "text/plain");
  CHECK(header(first, "X-Count") == "1");
  CHECK(first.body == "ca GET " + target + " 1\n");
  CHECK(header(second, "X-Count") == "2");
  CHECK(second.body == "ca POST " + target + " 2\n");

  const std::string count_target = "/count?url=%2Fcache%2Fpage%3Fcc%3Dmax-age%253D60%26etag%3DW%2F%2522v1%2522%26vary%3DAccept%26tag%3Dk1";
  Response count = get(app.port, "app.test", count_target);
  CHECK(count.status == 200);
  CHECK(count.body == "2\n");
  CHECK(get(app.port, "app.test", "/count?url=%2Fcache%2Fpage").body == "0\n");
  CHECK(get(app.port, "app.test", "/count?url=" + count_target).body == "0\n");  // /count is not counted
  CHECK(get(app.port, "app.test", "/health").status == 200);
  CHECK(get(app.port, "app.test", "/count?url=%2Fhealth").body == "1\n");  // every endpoint is
  CHECK(get(app.port, "app.test", "/count").status == 400);
}

TEST_CASE("cache: 304 to a matching If-None-Match, the request's fields echoed, HEAD's length") {
  App app("cb");
  const std::string target = "/cache/v?etag=%22v1%22&cc=max-age%3D0&lm=3600";
  Response fresh = get(app.port, "app.test", target);
  CHECK(fresh.status == 200);
  REQUIRE(!header(fresh, "Last-Modified").empty());

  Response revalidated =
      exchange(app.port, request("GET", target, "If-None-Match: \"v0\", W/\"v1\"\r\nCookie: a=1\r\n"));
  CHECK(revalidated.complete);
  CHECK(revalidated.status == 304);
  CHECK(revalidated.body.empty());
  CHECK(header(revalidated, "ETag") == "\"v1\"");
  CHECK(header(revalidated, "X-Count") == "2");
  CHECK(header(revalidated, "X-Got-If-None-Match") == "\"v0\", W/\"v1\"");
  CHECK(header(revalidated, "X-Got-Cookie") == "a=1");

  const std::string since = "If-Modified-Since: " + header(fresh, "Last-Modified") + "\r\n";
  Response by_date = exchange(app.port, request("GET", target, since));
  CHECK(by_date.status == 304);
  CHECK(header(by_date, "X-Got-If-Modified-Since") == header(fresh, "Last-Modified"));
  CHECK(exchange(app.port, request("GET", target, "If-None-Match: \"v2\"\r\n")).status == 200);
  CHECK(exchange(app.port, request("GET", target + "&status=203", since)).status == 203);

  Client c(app.port);
  REQUIRE(c.send(request("HEAD", "/cache/h?cc=public") + request("GET", "/cache/h?cc=public")));
  Response head = c.read_response("HEAD");
  Response get_response = c.read_response();
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(header(head, "Content-Length") == std::to_string(get_response.body.size()));
  CHECK(get_response.body == "cb GET /cache/h?cc=public 2\n");
}

TEST_CASE("cache: date replaces the server's Date; expires, size, status and delay") {
  App app("cc");
  Response r = get(app.port, "app.test", "/cache/d?date=-86400&expires=bad&age=7&size=1000&delay=20");
  CHECK(r.status == 200);
  CHECK(r.headers.count("Date") == 1);
  CHECK(header(r, "Date") != header(get(app.port, "app.test", "/health"), "Date"));  // a day apart
  CHECK(header(r, "Expires") == "0");
  CHECK(header(r, "Age") == "7");
  CHECK(r.body == pattern(0, 1000));
  Response gone = get(app.port, "app.test", "/cache/d?status=410&cookie=s%3D1%3B+Path%3D%2F");
  CHECK(gone.status == 410);
  CHECK(header(gone, "Set-Cookie") == "s=1; Path=/");
  CHECK(get(app.port, "app.test", "/cache/d?lm=-5").status == 400);
  CHECK(get(app.port, "app.test", "/cache/d?cc=a%0D%0Ab").status == 400);
}

TEST_CASE("idle keep-alive connections are closed after --idle-timeout-ms") {
  App app("idle", {"--idle-timeout-ms", "200"});
  Client used(app.port);
  REQUIRE(used.send(request("GET", "/health")));
  CHECK(used.read_response().status == 200);
  Client unused(app.port);
  CHECK(used.wait_closed());
  CHECK(unused.wait_closed());
}

TEST_CASE("SIGTERM stops the server cleanly, even with connections open") {
  App app("term");
  Client idle(app.port);
  REQUIRE(idle.send(request("GET", "/health")));
  REQUIRE(idle.read_response().status == 200);
  Client waiting(app.port);
  REQUIRE(waiting.send(request("GET", "/health") + request("GET", "/wait?ms=60000")));
  REQUIRE(waiting.read_response().status == 200);

  app.process.kill(SIGTERM);
  CHECK(app.process.wait(10s) == std::optional<int>(0));
  CHECK(idle.wait_closed());
  CHECK(waiting.wait_closed());
  CHECK(app.process.output().find("edge-app term listening on 127.0.0.1:" + std::to_string(app.port)) !=
        std::string::npos);
}

TEST_CASE("command line: bad flags exit 2 with a message, --help exits 0") {
  {
    Process p(edge_app_bin(), {"--bogus"});
    CHECK(p.wait() == std::optional<int>(2));
    CHECK(p.output().find("unknown flag: --bogus") != std::string::npos);
  }
  {
    Process p(edge_app_bin(), {"--port", "70000"});
    CHECK(p.wait() == std::optional<int>(2));
    CHECK(p.output().find("--port") != std::string::npos);
  }
  {
    Process p(edge_app_bin(), {"--name"});
    CHECK(p.wait() == std::optional<int>(2));
    CHECK(p.output().find("missing value for --name") != std::string::npos);
  }
  {
    Process p(edge_app_bin(), {"--help"});
    CHECK(p.wait() == std::optional<int>(0));
    CHECK(p.output().find("usage: edge-app") != std::string::npos);
  }
}

TEST_CASE("a port in use: exit 1 with a message") {
  App app("first");
  Process second(edge_app_bin(), {"--port", std::to_string(app.port), "--name", "second"});
  CHECK(second.wait() == std::optional<int>(1));
  CHECK(second.output().find("cannot listen on 127.0.0.1:" + std::to_string(app.port)) != std::string::npos);
  CHECK(get(app.port, "app.test", "/health").status == 200);
}

TEST_CASE("testkit: processes, temp dirs and ports") {
  TempDir dir;
  std::string path = dir.write("sub/file.txt", "hello");
  CHECK(path == dir.path() + "/sub/file.txt");
  {
    Process cat("/bin/cat", {path});
    CHECK(cat.wait() == std::optional<int>(0));
    CHECK(cat.output() == "hello");
  }
  {
    Process sleeper("/bin/sleep", {"30"});
    CHECK(sleeper.running());
    sleeper.kill(SIGKILL);
    CHECK(sleeper.wait() == std::optional<int>(-SIGKILL));
    CHECK_FALSE(sleeper.running());
  }
  CHECK_THROWS(Process("/nonexistent/binary", {}));
  uint16_t port = free_port();
  CHECK(port > 0);
  CHECK_FALSE(wait_for_port(port, 50ms));
  Client nobody(port);
  CHECK_FALSE(nobody.connected());
}

TEST_CASE("cache: gather holds answers until that many requests for the target are held together") {
  App app("g");
  const std::string target = "/cache/g?gather=3";
  // Two held, on connections of their own: neither is answered while the third is missing.
  Client a(app.port), b(app.port);
  REQUIRE(a.send(request("GET", target)));
  REQUIRE(b.send(request("GET", target)));
  // Another target's group is its own: this one goes alone, at its time limit.
  Response alone = get(app.port, "app.test", "/cache/other?gather=3&gather_ms=1");
  CHECK(alone.status == 200);
  CHECK(header(alone, "X-Gathered") == "1");
  CHECK(app_count(app.port, target) == 2);
  CHECK_FALSE(readable_now(a.fd()));
  CHECK_FALSE(readable_now(b.fd()));
  // The third lets all three go, each told how many were held together.
  Response c = get(app.port, "app.test", target);
  CHECK(header(c, "X-Gathered") == "3");
  CHECK(header(a.read_response(), "X-Gathered") == "3");
  CHECK(header(b.read_response(), "X-Gathered") == "3");
}

// ---- /ws: the WebSocket echo ----

namespace {

constexpr uint8_t kText = 0x1;
constexpr uint8_t kBinary = 0x2;
constexpr uint8_t kContinuation = 0x0;
constexpr uint8_t kClose = 0x8;
constexpr uint8_t kPing = 0x9;
constexpr uint8_t kPong = 0xA;

// Sends the handshake for `target` and reads the answer.
Response open_ws(Client& c, const std::string& target = "/ws") {
  if (!c.send(ws_handshake("app.test", target))) return {};
  return c.read_response();
}

std::string close_payload(uint16_t code) { return {static_cast<char>(code >> 8), static_cast<char>(code & 0xff)}; }

int close_code(const std::optional<WsFrame>& frame) {
  if (!frame || frame->opcode != kClose || frame->payload.size() < 2) return -1;
  return (static_cast<unsigned char>(frame->payload[0]) << 8) | static_cast<unsigned char>(frame->payload[1]);
}

// The next frame's opcode and payload, or "<none>" when none came.
std::string next_message(Client& c) {
  std::optional<WsFrame> f = read_ws_frame(c);
  if (!f) return "<none>";
  return std::to_string(f->opcode) + (f->fin ? "" : " not fin") + (f->masked ? " masked" : "") + ": " + f->payload;
}

}  // namespace

TEST_CASE("ws: the handshake is a 101 with the exact Sec-WebSocket-Accept") {
  App app("wsa");
  Client c(app.port);
  Response r = open_ws(c);
  CHECK(r.complete);
  CHECK(r.status == 101);
  CHECK(r.reason == "Switching Protocols");
  CHECK(r.upgrade == "websocket");
  CHECK(header(r, "Connection") == "Upgrade");
  CHECK(header(r, "Sec-WebSocket-Accept") == std::string(kWsAccept));
  CHECK(header(r, "X-Backend") == "wsa");
  CHECK(header(r, "Content-Length") == "<absent>");
  CHECK(r.body.empty());
  // Nothing follows the 101 until the client speaks.
  CHECK_FALSE(readable_now(c.fd()));
  REQUIRE(c.send(ws_frame(kText, "hi")));
  CHECK(next_message(c) == "1: hi");
}

TEST_CASE("ws: text and binary echoes in every length form; a fragmented message is echoed whole") {
  App app("wse");
  Client c(app.port);
  REQUIRE(open_ws(c).status == 101);

  REQUIRE(c.send(ws_frame(kText, "hello")));
  CHECK(next_message(c) == "1: hello");

  // 200 bytes: the 16-bit length form, both ways.
  const std::string text200 = pattern(3, 200);
  REQUIRE(c.send(ws_frame(kText, text200)));
  CHECK(c.read_exact(4) == std::string("\x81\x7e\x00\xc8", 4));
  CHECK(c.read_exact(200) == text200);

  // 70000 bytes: the 64-bit form.
  std::string binary(70000, '\0');
  for (size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 7 % 256);
  REQUIRE(c.send(ws_frame(kBinary, binary)));
  CHECK(c.read_exact(10) == std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x11\x70", 10));
  CHECK(c.read_exact(binary.size()) == binary);

  // Two frames, one message, one echo.
  REQUIRE(c.send(ws_frame(kText, "frag", false) + ws_frame(kContinuation, "mented")));
  CHECK(next_message(c) == "1: fragmented");
  REQUIRE(c.send(ws_frame(kBinary, "ab", false)));
  REQUIRE(c.send(ws_frame(kPing, "in between")));
  CHECK(next_message(c) == "10: in between");
  REQUIRE(c.send(ws_frame(kContinuation, "c")));
  CHECK(next_message(c) == "2: abc");

  // Empty messages are messages too.
  REQUIRE(c.send(ws_frame(kBinary, "")));
  CHECK(next_message(c) == "2: ");
}

TEST_CASE("ws: frames split across reads anywhere, and several in one read") {
  App app("wss");
  Client c(app.port);
  REQUIRE(open_ws(c).status == 101);
  const std::string frame = ws_frame(kText, "one byte at a time");
  for (char byte : frame) {
    REQUIRE(c.send(std::string(1, byte)));
    std::this_thread::sleep_for(5ms);
  }
  CHECK(next_message(c) == "1: one byte at a time");

  std::string big(5000, 'q');
  const std::string both = ws_frame(kBinary, big) + ws_frame(kText, "tail");
  REQUIRE(c.send(both.substr(0, 1)));
  std::this_thread::sleep_for(20ms);
  REQUIRE(c.send(both.substr(1, 2000)));
  std::this_thread::sleep_for(20ms);
  REQUIRE(c.send(both.substr(2001)));
  CHECK(next_message(c) == "2: " + big);
  CHECK(next_message(c) == "1: tail");

  std::string burst;
  for (int i = 0; i < 50; ++i) burst += ws_frame(kText, "m" + std::to_string(i));
  REQUIRE(c.send(burst));
  for (int i = 0; i < 50; ++i) REQUIRE(next_message(c) == "1: m" + std::to_string(i));
}

TEST_CASE("ws: ping gets its pong; a close gets the same close back, then the TCP close") {
  App app("wsp");
  Client c(app.port);
  REQUIRE(open_ws(c).status == 101);
  REQUIRE(c.send(ws_frame(kPing, "are you there")));
  CHECK(next_message(c) == "10: are you there");
  REQUIRE(c.send(ws_frame(kPong, "unsolicited")));  // ignored
  REQUIRE(c.send(ws_frame(kClose, close_payload(4001) + "bye")));
  std::optional<WsFrame> close = read_ws_frame(c);
  REQUIRE(close);
  CHECK(close->fin);
  CHECK_FALSE(close->masked);
  CHECK(close->payload == close_payload(4001));
  CHECK(c.wait_closed());

  // A close without a code gets one without a code.
  Client bare(app.port);
  REQUIRE(open_ws(bare).status == 101);
  REQUIRE(bare.send(ws_frame(kClose, "")));
  CHECK(next_message(bare) == "8: ");
  CHECK(bare.wait_closed());
}

TEST_CASE("ws: protocol errors close with 1002, an oversized message with 1009") {
  App app("wsx");
  {
    Client c(app.port);
    REQUIRE(open_ws(c).status == 101);
    REQUIRE(c.send(ws_frame(kText, "not masked", true, false)));
    CHECK(close_code(read_ws_frame(c)) == 1002);
    CHECK(c.wait_closed());
  }
  {
    Client c(app.port);
    REQUIRE(open_ws(c).status == 101);
    REQUIRE(c.send(ws_frame(kPing, std::string(126, 'p'))));  // a control frame over 125 bytes
    CHECK(close_code(read_ws_frame(c)) == 1002);
    CHECK(c.wait_closed());
  }
  {
    Client c(app.port);
    REQUIRE(open_ws(c).status == 101);
    REQUIRE(c.send(ws_frame(kPing, "x", false)));  // a fragmented control frame
    CHECK(close_code(read_ws_frame(c)) == 1002);
    CHECK(c.wait_closed());
  }
  {
    // Refused at its header: the megabyte it announces is never sent.
    Client c(app.port);
    REQUIRE(open_ws(c).status == 101);
    const std::string frame = ws_frame(kBinary, std::string(1024 * 1024 + 1, 'z'));
    REQUIRE(c.send(frame.substr(0, 14)));
    CHECK(close_code(read_ws_frame(c)) == 1009);
    CHECK(c.wait_closed());
  }
  {
    // Exactly 1 MiB, in two fragments, is fine.
    Client c(app.port);
    REQUIRE(open_ws(c).status == 101);
    const std::string half(512 * 1024, 'h');
    REQUIRE(c.send(ws_frame(kBinary, half, false) + ws_frame(kContinuation, half)));
    std::optional<WsFrame> echo = read_ws_frame(c);
    REQUIRE(echo);
    CHECK(echo->payload.size() == 1024 * 1024);
    REQUIRE(c.send(ws_frame(kBinary, half, false) + ws_frame(kContinuation, half + "!")));
    CHECK(close_code(read_ws_frame(c)) == 1009);
  }
}

TEST_CASE("ws: bad handshakes are answered over HTTP, not upgraded") {
  App app("wsb");
  auto without = [](std::string raw, std::string_view field) {
    const size_t at = raw.find(field);
    raw.erase(at, raw.find("\r\n", at) + 2 - at);
    return raw;
  };
  const std::string good = ws_handshake("app.test", "/ws");

  Client c(app.port);
  REQUIRE(c.send(without(good, "Sec-WebSocket-Key:")));
  Response no_key = c.read_response();
  CHECK(no_key.status == 400);
  CHECK(header(no_key, "Sec-WebSocket-Accept") == "<absent>");
  CHECK(no_key.body.find("Sec-WebSocket-Key") != std::string::npos);

  // The connection is still HTTP.
  std::string v8 = good;
  v8.replace(v8.find("Version: 13"), 11, "Version: 8");
  REQUIRE(c.send(v8));
  Response old = c.read_response();
  CHECK(old.status == 426);
  CHECK(header(old, "Sec-WebSocket-Version") == "13");
  CHECK(header(old, "Sec-WebSocket-Accept") == "<absent>");

  std::string post = good;
  post.replace(0, 3, "POST");
  REQUIRE(c.send(post));
  Response posted = c.read_response();
  CHECK(posted.status == 400);
  CHECK(posted.upgrade.empty());

  CHECK(exchange(app.port, without(good, "Upgrade:")).status == 400);
  CHECK(exchange(app.port, without(good, "Connection:")).status == 400);
  CHECK(exchange(app.port, without(good, "Sec-WebSocket-Version:")).status == 400);
  std::string short_key = good;
  short_key.replace(short_key.find(kWsKey), kWsKey.size(), "c2hvcnQ=");
  CHECK(exchange(app.port, short_key).status == 400);
  CHECK(get(app.port, "app.test", "/ws").status == 400);

  // And after all that, on the same keep-alive connection, a good handshake upgrades it.
  REQUIRE(c.send(request("GET", "/health")));
  CHECK(c.read_response().status == 200);
  Response r = open_ws(c);
  CHECK(r.status == 101);
  CHECK(header(r, "Sec-WebSocket-Accept") == std::string(kWsAccept));
  REQUIRE(c.send(ws_frame(kText, "upgraded late")));
  CHECK(next_message(c) == "1: upgraded late");
}

TEST_CASE("ws: close_after=2 closes with 1000 after two echoes") {
  App app("wsc");
  Client c(app.port);
  REQUIRE(open_ws(c, "/ws?close_after=2").status == 101);
  REQUIRE(c.send(ws_frame(kText, "one")));
  CHECK(next_message(c) == "1: one");
  REQUIRE(c.send(ws_frame(kPing, "")));  // not a message
  CHECK(next_message(c) == "10: ");
  REQUIRE(c.send(ws_frame(kBinary, "two")));
  c.send(ws_frame(kText, "three"));  // the server may have closed already
  CHECK(next_message(c) == "2: two");
  CHECK(close_code(read_ws_frame(c)) == 1000);
  CHECK(c.wait_closed());
}

TEST_CASE("ws: greeting=hi is sent right after the 101") {
  App app("wsg");
  Client c(app.port);
  Response r = open_ws(c, "/ws?greeting=hi");
  REQUIRE(r.status == 101);
  CHECK(next_message(c) == "1: hi");
  REQUIRE(c.send(ws_frame(kText, "and back")));
  CHECK(next_message(c) == "1: and back");

  Client words(app.port);
  REQUIRE(open_ws(words, "/ws?greeting=hello%20there&close_after=1").status == 101);
  CHECK(next_message(words) == "1: hello there");
  REQUIRE(words.send(ws_frame(kText, "x")));
  CHECK(next_message(words) == "1: x");
  CHECK(close_code(read_ws_frame(words)) == 1000);
}

TEST_CASE("ws: /stats counts the handshake as served and open WebSockets in a gauge") {
  App app("wsst");
  // A server that never upgraded reports what it always did.
  CHECK(get(app.port, "app.test", "/stats").body ==
        R"({"name":"wsst","received":1,"served":0,"in_progress":1,"peak_in_progress":1})");
  {
    Client a(app.port), b(app.port);
    REQUIRE(open_ws(a).status == 101);
    REQUIRE(open_ws(b, "/ws?greeting=x").status == 101);
    CHECK(next_message(b) == "1: x");
    // The two 101s are served; in progress is this /stats alone.
    CHECK(get(app.port, "app.test", "/stats").body ==
          R"({"name":"wsst","received":4,"served":3,"in_progress":1,"peak_in_progress":1,"websockets":2,"websockets_opened":2})");
    REQUIRE(a.send(ws_frame(kClose, close_payload(1000))));
    CHECK(close_code(read_ws_frame(a)) == 1000);
    CHECK(a.wait_closed());
    for (int i = 0; i < 200 && app_stat(app.port, "websockets") != 1; ++i) std::this_thread::sleep_for(10ms);
    CHECK(app_stat(app.port, "websockets") == 1);
  }
  // b went away without a close frame.
  for (int i = 0; i < 200 && app_stat(app.port, "websockets") != 0; ++i) std::this_thread::sleep_for(10ms);
  CHECK(app_stat(app.port, "websockets") == 0);
  CHECK(app_stat(app.port, "websockets_opened") == 2);
  CHECK(app_stat(app.port, "in_progress") == 1);
}

TEST_CASE("ws: a client that does not read holds the echo back; nothing is lost once it reads") {
  App app("wsslow");
  Client c(app.port, 30s);
  c.set_receive_buffer(64 * 1024);
  REQUIRE(open_ws(c).status == 101);
  constexpr int kMessages = 1024;
  std::string payload(64 * 1024, 'w');
  std::atomic<int> sent{0};
  std::thread writer([&] {
    std::string p = payload;
    for (int i = 0; i < kMessages; ++i) {
      const std::string tag = std::to_string(i);
      p.replace(0, tag.size() + 1, tag + ":");
      if (!c.send(ws_frame(kBinary, p))) return;
      sent.store(i + 1);
    }
  });
  // 64 MiB is more than every buffer between here and the server's queue: the writer stalls.
  std::this_thread::sleep_for(1500ms);
  const int stalled_at = sent.load();
  CHECK(stalled_at < kMessages);
  // The server still answers others meanwhile.
  CHECK(get(app.port, "app.test", "/health").status == 200);

  int wrong = -1;  // the first echo that is not the message sent
  for (int i = 0; i < kMessages && wrong < 0; ++i) {
    std::optional<WsFrame> echo = read_ws_frame(c);
    const std::string tag = std::to_string(i) + ":";
    if (!echo || echo->opcode != kBinary || echo->payload.size() != payload.size() ||
        echo->payload.compare(0, tag.size(), tag) != 0)
      wrong = i;
  }
  writer.join();
  CHECK(wrong == -1);
  CHECK(sent.load() == kMessages);
}

TEST_CASE("ws: SIGTERM with WebSockets open still stops cleanly") {
  App app("wsterm");
  Client c(app.port);
  REQUIRE(open_ws(c).status == 101);
  REQUIRE(c.send(ws_frame(kText, std::string(100, 'a'), false)));  // a message half sent
  app.process.kill(SIGTERM);
  CHECK(app.process.wait(10s) == std::optional<int>(0));
  CHECK(c.wait_closed());
}
