// Purges, bans and cache statistics through the admin port, on objects actually cached: every
// purge kind is proven by what reaches the backend afterwards.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <string>
#include <thread>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {
constexpr char kToken[] = "purge-t0ken";

struct Site {
  App app{"origin"};
  TempDir secrets;
  Edge edge{R"(
workers: 2
listen: [{address: "127.0.0.1:{{port}}"}]
admin:
  address: "127.0.0.1:0"
  token_file: ")" + secrets.write("admin.token", kToken) + R"("
backends:
  app: {servers: [)" + yaml_address(app.port) + R"(]}
hosts:
  - match: [books.test]
    backend: app
  - match: [authors.test]
    backend: app
    routes:
      - {path: /cache/grace/, grace: 60s}
)"};
  uint16_t admin_port = edge.admin_port;
  Site() { REQUIRE(wait_for_port(admin_port)); }
};

Response admin(const Site& s, const std::string& method, const std::string& target) {
  return exchange(s.admin_port, method + " " + target + " HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " +
                                    kToken + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

Response fetch(const Site& s, const std::string& host, const std::string& target, const std::string& headers = "") {
  return exchange(s.edge.port,
                  "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + headers + "Connection: close\r\n\r\n");
}

// The JSON answer without its final newline.
std::string json(const Response& r) {
  std::string body = r.body;
  while (!body.empty() && body.back() == '\n') body.pop_back();
  return body;
}

std::string x_cache(const Response& r) { return std::string(r.header("X-Cache").value_or("")); }

long backend_count(const App& app, const std::string& target) { return app_count(app.port, target); }

// Warms `target` on `host` and checks it is now a hit.
void warm(const Site& s, const std::string& host, const std::string& target, const std::string& headers = "") {
  fetch(s, host, target, headers);
  REQUIRE(x_cache(fetch(s, host, target, headers)) == "HIT");
}
}  // namespace

TEST_CASE("purge by URL removes every variant of that URL and nothing else") {
  Site s;
  const std::string page = "/cache/p?cc=max-age%3D600&vary=Accept-Language";
  const std::string other = "/cache/q?cc=max-age%3D600";
  warm(s, "books.test", page, "Accept-Language: en\r\n");
  warm(s, "books.test", page, "Accept-Language: de\r\n");
  warm(s, "books.test", other);
  Response r = admin(s, "POST", "/purge?url=" + percent_encode("http://Books.Test:8080" + page));
  CHECK(r.status == 200);
  CHECK(json(r) == "{\"purged\":2}");
  CHECK(x_cache(fetch(s, "books.test", page, "Accept-Language: en\r\n")) == "MISS");
  CHECK(x_cache(fetch(s, "books.test", page, "Accept-Language: de\r\n")) == "MISS");
  CHECK(x_cache(fetch(s, "books.test", other)) == "HIT");
  CHECK(backend_count(s.app, page) == 4);
}

TEST_CASE("purge of every query variant of a path, and of nothing else") {
  Site s;
  const std::string a = "/cache/list?cc=max-age%3D600&page=1";
  const std::string b = "/cache/list?cc=max-age%3D600&page=2";
  const std::string other = "/cache/listing?cc=max-age%3D600";
  warm(s, "books.test", a);
  warm(s, "books.test", b);
  warm(s, "books.test", other);
  warm(s, "authors.test", a);
  Response r = admin(s, "POST", "/purge?every_query=1&url=" + percent_encode("http://books.test/cache/list"));
  CHECK(r.status == 200);
  CHECK(json(r).starts_with("{\"ban\":"));
  CHECK(x_cache(fetch(s, "books.test", a)) == "MISS");
  CHECK(x_cache(fetch(s, "books.test", b)) == "MISS");
  CHECK(x_cache(fetch(s, "books.test", other)) == "HIT");
  CHECK(x_cache(fetch(s, "authors.test", a)) == "HIT");
}

TEST_CASE("purge by tag removes the objects carrying it in Surrogate-Key or xkey") {
  Site s;
  const std::string a = "/cache/a?cc=max-age%3D600&tag=book-1%20author-7";
  const std::string b = "/cache/b?cc=max-age%3D600&xkey=book-1";
  const std::string c = "/cache/c?cc=max-age%3D600&tag=book-2";
  warm(s, "books.test", a);
  warm(s, "books.test", b);
  warm(s, "books.test", c);
  CHECK(!fetch(s, "books.test", a).header("Surrogate-Key"));  // for the cache, not for clients
  Response r = admin(s, "POST", "/purge?tag=book-1");
  CHECK(json(r) == "{\"purged\":2}");
  CHECK(x_cache(fetch(s, "books.test", a)) == "MISS");
  CHECK(x_cache(fetch(s, "books.test", b)) == "MISS");
  CHECK(x_cache(fetch(s, "books.test", c)) == "HIT");
  // The refetched objects are in the tag index again.
  CHECK(json(admin(s, "POST", "/purge?tag=author-7")) == "{\"purged\":1}");
}

TEST_CASE("bans by host and prefix, and by regex, hold at the next lookup") {
  Site s;
  warm(s, "books.test", "/cache/shelf/1?cc=max-age%3D600");
  warm(s, "books.test", "/cache/shelf/2?cc=max-age%3D600");
  warm(s, "books.test", "/cache/desk/1?cc=max-age%3D600");
  warm(s, "authors.test", "/cache/shelf/1?cc=max-age%3D600");
  Response ban = admin(s, "POST", "/ban?host=books.test&prefix=/cache/shelf/");
  CHECK(ban.status == 200);
  CHECK(ban.body.find("\"ban\":") != std::string::npos);
  CHECK(x_cache(fetch(s, "books.test", "/cache/shelf/1?cc=max-age%3D600")) == "MISS");
  CHECK(x_cache(fetch(s, "books.test", "/cache/shelf/2?cc=max-age%3D600")) == "MISS");
  CHECK(x_cache(fetch(s, "books.test", "/cache/desk/1?cc=max-age%3D600")) == "HIT");
  CHECK(x_cache(fetch(s, "authors.test", "/cache/shelf/1?cc=max-age%3D600")) == "HIT");
  // Objects stored after the ban are not touched by it.
  CHECK(x_cache(fetch(s, "books.test", "/cache/shelf/1?cc=max-age%3D600")) == "HIT");

  Response regex = admin(s, "POST", "/ban?regex=" + percent_encode("^/cache/(desk|shelf)/1"));
  CHECK(regex.status == 200);
  CHECK(x_cache(fetch(s, "books.test", "/cache/desk/1?cc=max-age%3D600")) == "MISS");
  CHECK(x_cache(fetch(s, "authors.test", "/cache/shelf/1?cc=max-age%3D600")) == "MISS");
  CHECK(x_cache(fetch(s, "books.test", "/cache/shelf/2?cc=max-age%3D600")) == "HIT");

  CHECK(admin(s, "POST", "/ban?regex=" + percent_encode("(unclosed")).status == 400);
  CHECK(admin(s, "POST", "/ban?host=books.test").status == 400);
}

TEST_CASE("a soft purge keeps the object, stale: grace serves it while a fresh copy is fetched") {
  Site s;
  const std::string t = "/cache/grace/x?cc=max-age%3D600";
  warm(s, "authors.test", t);
  CHECK(json(admin(s, "POST", "/purge?url=" + percent_encode("http://authors.test" + t) + "&soft=1")) == "{\"purged\":1}");
  Response stale = fetch(s, "authors.test", t);
  CHECK(stale.status == 200);
  CHECK(x_cache(stale) == "STALE");
  // The background refresh replaces it.
  long n = 0;
  for (int i = 0; i < 500 && (n = backend_count(s.app, t)) < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(n == 2);
  Response fresh;
  for (int i = 0; i < 500; ++i) {
    fresh = fetch(s, "authors.test", t);
    if (x_cache(fresh) == "HIT") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(x_cache(fresh) == "HIT");

  // Without grace a soft-purged object is revalidated before use.
  const std::string plain = "/cache/soft?cc=max-age%3D600&etag=%22s%22";
  warm(s, "books.test", plain);
  CHECK(json(admin(s, "POST", "/purge?tag=nothing&soft=1")) == "{\"purged\":0}");
  CHECK(admin(s, "POST", "/ban?host=books.test&prefix=/cache/soft&soft=1").status == 200);
  CHECK(x_cache(fetch(s, "books.test", plain)) == "REVALIDATED");
  CHECK(backend_count(s.app, plain) == 2);
}

TEST_CASE("stats and metrics count what the cache did, per host") {
  Site s;
  const std::string t = "/cache/stat?cc=max-age%3D600";
  fetch(s, "books.test", t);                     // miss
  fetch(s, "books.test", t);                     // hit
  fetch(s, "books.test", t);                     // hit
  fetch(s, "books.test", "/cache/x?cc=no-store");  // pass
  Response stats = admin(s, "GET", "/stats");
  CHECK(stats.status == 200);
  CHECK(stats.body.find("{\"host\":\"books.test\",\"hits\":2,\"misses\":1,\"passes\":1") != std::string::npos);
  CHECK(stats.body.find("\"hit_ratio\":0.5") != std::string::npos);
  CHECK(stats.body.find("\"objects\":1") != std::string::npos);
  Response metrics = admin(s, "GET", "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.body.find("edge_cache_events_total{host=\"books.test\",event=\"hits\"} 2") != std::string::npos);
  CHECK(metrics.body.find("edge_cache_objects 1") != std::string::npos);
}

TEST_CASE("a catastrophic ban regex is matched in linear time while requests keep being served") {
  Site s;
  // (a+)+$ backtracks exponentially on a run of 'a' that does not end the path: with a
  // backtracking engine this ban stalled the admin port for seconds and every lookup behind it.
  const std::string run(3000, 'a');
  const std::string spared = "/cache/" + run + "!?cc=max-age%3D600";
  const std::string banned = "/cache/x?cc=max-age%3D600&pad=" + run;
  warm(s, "books.test", spared);
  warm(s, "books.test", banned);
  Response ban = admin(s, "POST", "/ban?regex=" + percent_encode("(a+)+$"));
  CHECK(ban.status == 200);
  for (int i = 0; i < 20; ++i) CHECK(fetch(s, "books.test", "/cache/other?cc=max-age%3D600").status == 200);
  // The regex still means what it says: a search in the path, anchored at its end.
  CHECK(x_cache(fetch(s, "books.test", spared)) == "HIT");
  CHECK(x_cache(fetch(s, "books.test", banned)) == "MISS");
  CHECK(backend_count(s.app, banned) == 2);
}

TEST_CASE("a ban regex RE2 refuses gets 400 naming why, and bans nothing") {
  Site s;
  const std::string page = "/cache/x?cc=max-age%3D600";
  warm(s, "books.test", page);
  // A count RE2 would read as literal text: refused, not taken as x{0} (which bans everything).
  Response huge = admin(s, "POST", "/ban?regex=" + percent_encode("x{4294967296}"));
  CHECK(huge.status == 400);
  CHECK(huge.header("Content-Type") == std::string_view("application/json"));
  CHECK(json(huge) == "{\"error\":\"invalid regex: repetition count over 1000: {4294967296}\"}");
  Response over = admin(s, "POST", "/ban?regex=" + percent_encode("x{1001}"));
  CHECK(over.status == 400);
  CHECK(json(over) == "{\"error\":\"invalid regex: repetition count over 1000: {1001}\"}");
  Response nested = admin(s, "POST", "/ban?regex=" + percent_encode("(x{100}){100}"));
  CHECK(nested.status == 400);
  CHECK(json(nested) == "{\"error\":\"invalid regex: invalid repetition size: {100}\"}");
  std::string big;
  for (int i = 0; i < 10; ++i) big += "a{1000}";
  Response too_big = admin(s, "POST", "/ban?regex=" + percent_encode(big));
  CHECK(too_big.status == 400);
  CHECK(json(too_big) == "{\"error\":\"invalid regex: pattern too large - compile failed\"}");
  Response lookahead = admin(s, "POST", "/ban?regex=" + percent_encode("(?=x)"));
  CHECK(lookahead.status == 400);
  CHECK(json(lookahead) == "{\"error\":\"invalid regex: invalid perl operator: (?=\"}");
  Response too_long = admin(s, "POST", "/ban?regex=" + std::string(4097, 'a'));
  CHECK(too_long.status == 400);
  CHECK(json(too_long) == "{\"error\":\"regex longer than 4096 bytes\"}");
  CHECK(x_cache(fetch(s, "books.test", page)) == "HIT");
  CHECK(json(admin(s, "GET", "/stats")).find("\"bans\":0,") != std::string::npos);
}

TEST_CASE("a purge tag or ban regex holding line breaks cannot forge a log line") {
  Site s;
  const std::string forged = "edge: admin: purge tag everything: 9999 objects";
  Response purge = admin(s, "POST", "/purge?tag=" + percent_encode("book-1\n" + forged + "\r\n\x1b[2J"));
  CHECK(purge.status == 200);
  Response ban = admin(s, "POST", "/ban?regex=" + percent_encode("a\n" + forged + "\\\\"));
  CHECK(ban.status == 200);
  // Written before the answers were sent; read once the edge has stopped.
  s.edge.process.kill(SIGTERM);
  REQUIRE(s.edge.process.wait(std::chrono::seconds(20)).has_value());
  const std::string log = s.edge.process.output();
  CAPTURE(log);
  // No line of the log, past its time and level, is the forged one.
  for (size_t at = 0, end; (end = log.find('\n', at)) != std::string::npos; at = end + 1)
    CHECK_FALSE(log_message(std::string_view(log).substr(at, end - at)).starts_with(forged));
  CHECK(log.find('\r') == std::string::npos);
  CHECK(log.find('\x1b') == std::string::npos);
  CHECK(log.find("edge: admin: purge tag book-1\\n" + forged + "\\r\\n\\x1b[2J: 0 objects\n") != std::string::npos);
  CHECK(log.find(" regex=a\\n" + forged + "\\\\\\\\\n") != std::string::npos);
}
