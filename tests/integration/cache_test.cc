// The RAM cache through the real binaries: every behaviour is proven by counting what reached
// the backend (edge-app's per-URL counters) and by the X-Cache and Age the client sees.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

std::string config_for(const App& app, const std::string& cache = "{memory: 64m, max_object: 1m}",
                       int workers = 2) {
  return "workers: " + std::to_string(workers) + R"(
listen: [{address: "127.0.0.1:{{port}}"}]
cache: )" + cache + R"(
backends:
  app: {servers: [)" + yaml_address(app.port) + R"(], connect_timeout: 500ms}
hosts:
  - match: ["*"]
    backend: app
    routes:
      - {path: /cache/ttl/, ttl: 60s}
      - {path: /cache/maxttl/, max_ttl: 2s}
      - {path: /cache/cookie/, store_set_cookie: true}
      - {path: /cache/bypass/, bypass_on_cookie: [session]}
      - {path: /cache/user/, key_cookies: [user]}
      - {path: /cache/off/, cache: off}
      - {path: /cache/grace/, grace: 60s}
      - {path: /cache/forward/, forward_targeted: on}
      - {path: /cache/ranges/, ttl: 60s, range_fetch_from: 100}
)";
}

struct Site {
  App app{"origin"};
  Edge edge{config_for(app)};
};

// What the backend received for exactly this target.
long backend_count(const App& app, const std::string& target) { return app_count(app.port, target); }

Response request(uint16_t port, const std::string& method, const std::string& target, const std::string& headers = "") {
  return exchange(port, method + " " + target + " HTTP/1.1\r\nHost: site.test\r\n" + headers + "Connection: close\r\n\r\n",
                  method);
}

Response get_with(uint16_t port, const std::string& target, const std::string& headers = "") {
  return request(port, "GET", target, headers);
}

std::string x_cache(const Response& r) { return std::string(r.header("X-Cache").value_or("")); }

// Polls the backend's count until it reaches `want` (a background refresh is asynchronous);
// gives up after a generous bound so a broken refresh fails instead of hanging.
long wait_for_count(const App& app, const std::string& target, long want) {
  long n = 0;
  for (int i = 0; i < 500; ++i) {
    n = backend_count(app, target);
    if (n >= want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return n;
}

}  // namespace

TEST_CASE("cache: a fresh response is stored once and served from RAM with Age") {
  Site s;
  const std::string t = "/cache/fresh?cc=max-age%3D60";
  Response first = get_with(s.edge.port, t);
  CHECK(first.status == 200);
  CHECK(x_cache(first) == "MISS");
  Response second = get_with(s.edge.port, t);
  CHECK(second.status == 200);
  CHECK(x_cache(second) == "HIT");
  CHECK(second.body == first.body);
  CHECK(second.header("Age"));
  CHECK(backend_count(s.app, t) == 1);
}

// The step names of an X-Edge-Trace value ("recv:0 lookup:3 hit:4 deliver:9" -> "recv lookup hit
// deliver"), after checking that each time is a number no smaller than the one before.
std::string trace_steps(const Response& r) {
  const std::string trace(r.header("X-Edge-Trace").value_or(""));
  std::string steps;
  long previous = 0;
  size_t pos = 0;
  while (pos < trace.size()) {
    size_t end = trace.find(' ', pos);
    if (end == std::string::npos) end = trace.size();
    const std::string entry = trace.substr(pos, end - pos);
    const size_t colon = entry.find(':');
    REQUIRE(colon != std::string::npos);
    const long at = std::stol(entry.substr(colon + 1));
    CHECK(at >= previous);
    previous = at;
    if (!steps.empty()) steps += ' ';
    steps += entry.substr(0, colon);
    pos = end + 1;
  }
  return steps;
}

TEST_CASE("cache: x_trace shows each request's steps in X-Edge-Trace; off by default") {
  App app{"origin"};
  Edge edge{config_for(app, "{memory: 64m, x_trace: on}")};
  const std::string t = "/cache/trace?cc=max-age%3D60";
  CHECK(trace_steps(get_with(edge.port, t)) == "recv lookup miss deliver");
  CHECK(trace_steps(get_with(edge.port, t)) == "recv lookup hit deliver");
  CHECK(trace_steps(get_with(edge.port, t, "If-None-Match: *\r\n")) == "recv lookup hit deliver");
  CHECK(trace_steps(get_with(edge.port, "/cache/off/x")) == "recv pass relay");
  CHECK(trace_steps(get_with(edge.port, "/cache/trace-nostore?cc=no-store")) == "recv lookup miss pass relay");
  CHECK(trace_steps(get_with(edge.port, "/%zz")) == "recv synth");

  Site plain;
  CHECK_FALSE(get_with(plain.edge.port, t).header("X-Edge-Trace"));
}

TEST_CASE("cache: the Age received from upstream counts") {
  Site s;
  const std::string t = "/cache/aged?cc=max-age%3D600&age=100";
  get_with(s.edge.port, t);
  Response r = get_with(s.edge.port, t);
  CHECK(x_cache(r) == "HIT");
  REQUIRE(r.header("Age"));
  CHECK(std::stol(std::string(*r.header("Age"))) >= 100);
  CHECK(backend_count(s.app, t) == 1);
}

TEST_CASE("cache: a listed Age counts as its first member, on one line or several (RFC 9111 5.1)") {
  Site s;
  // Two hours old by the upstream cache's count, with an hour's freshness: never served as fresh.
  for (const std::string t : {"/cache/aged-list?cc=max-age%3D3600&age=7200%2C%200",
                              "/cache/aged-lines?cc=max-age%3D3600&age=7200&age=0"}) {
    CAPTURE(t);
    get_with(s.edge.port, t);
    Response r = get_with(s.edge.port, t);
    CHECK(x_cache(r) != "HIT");
    CHECK(backend_count(s.app, t) == 2);
  }
  const std::string young = "/cache/aged-young?cc=max-age%3D3600&age=60%2C%207200";
  get_with(s.edge.port, young);
  CHECK(x_cache(get_with(s.edge.port, young)) == "HIT");
}

TEST_CASE("cache: equivalent Accept-Language values share a variant; different ones do not") {
  Site s;
  const std::string t = "/cache/lang?cc=max-age%3D600&vary=Accept-Language";
  CHECK(x_cache(get_with(s.edge.port, t, "Accept-Language: en-US, fr;q=0.5\r\n")) == "MISS");
  CHECK(x_cache(get_with(s.edge.port, t, "Accept-Language: fr;q=0.50, EN-us\r\n")) == "HIT");
  CHECK(x_cache(get_with(s.edge.port, t, "Accept-Language: en-us;q=1.0,fr; q=0.5\r\n")) == "HIT");
  CHECK(x_cache(get_with(s.edge.port, t, "Accept-Language: fr, en-US;q=0.5\r\n")) == "MISS");
  CHECK(x_cache(get_with(s.edge.port, t, "Accept-Language: en-US, fr;q=abc\r\n")) == "MISS");
  CHECK(backend_count(s.app, t) == 3);
}

TEST_CASE("cache: If-Modified-Since against a stored response without Last-Modified uses its Date (RFC 9111 4.3.2)") {
  Site s;
  // Dated a minute ago, without Last-Modified.
  const std::string t = "/cache/ims-date?cc=max-age%3D600&date=-60";
  Response stored = get_with(s.edge.port, t);
  REQUIRE(stored.header("Date"));
  CHECK_FALSE(stored.header("Last-Modified"));
  const std::string date(*stored.header("Date"));
  Response same = get_with(s.edge.port, t, "If-Modified-Since: " + date + "\r\n");
  CHECK(same.status == 304);
  CHECK(x_cache(same) == "HIT");
  Response older = get_with(s.edge.port, t, "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n");
  CHECK(older.status == 200);
  CHECK(backend_count(s.app, t) == 1);
}

TEST_CASE("cache: a revalidation answered 5xx, with no stale-if-error or grace, gives the backend's answer") {
  RecordingBackend backend;
  Edge edge("workers: 1\n"
            "listen: [{address: 127.0.0.1:{{port}}}]\n"
            "backends: {app: {servers: [" + yaml_address(backend.port()) + "]}}\n"
            "hosts: [{match: [\"*\"], backend: app}]\n");
  // Stored, and stale at once (no-cache): every later request revalidates it.
  backend.answer_once("/cached/busy", "HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nETag: \"v1\"\r\n"
                                      "Content-Length: 6\r\n\r\nstored");
  CHECK(get_with(edge.port, "/cached/busy").body == "stored");
  backend.answer_once("/cached/busy", "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                                      "Content-Type: text/plain\r\nContent-Length: 17\r\n\r\nbackend says busy");
  Response busy = get_with(edge.port, "/cached/busy");
  CHECK(busy.status == 503);
  CHECK(busy.body == "backend says busy");
  CHECK(busy.header("Retry-After") == std::string_view("7"));
  // Nothing was stored or marked: the next request revalidates the stored object again.
  backend.answer_once("/cached/busy", "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
  Response again = get_with(edge.port, "/cached/busy");
  CHECK(again.status == 200);
  CHECK(again.body == "stored");
  CHECK(x_cache(again) == "REVALIDATED");
}

TEST_CASE("cache: targeted fields rule this cache over Cache-Control, most specific first (RFC 9213)") {
  App app{"origin"};
  Edge edge{config_for(app, "{memory: 64m, max_object: 1m, targeted_field: Edge-Cache-Control}")};
  auto twice = [&](const std::string& t) {
    get_with(edge.port, t);
    return get_with(edge.port, t);
  };
  // Browsers are told not to keep it; the CDN field says edge may, for ten minutes.
  const std::string cdn = "/cache/t-cdn?cc=no-store&cdn_cc=max-age%3D600";
  Response hit = twice(cdn);
  CHECK(x_cache(hit) == "HIT");
  CHECK(hit.header("Cache-Control") == std::string_view("no-store"));  // clients still get theirs
  CHECK_FALSE(hit.header("CDN-Cache-Control"));                        // the field edge obeyed is not
  CHECK(backend_count(app, cdn) == 1);
  // edge's own field outranks the CDN one.
  const std::string own = "/cache/t-own?cc=max-age%3D600&cdn_cc=max-age%3D600&edge_cc=no-store";
  CHECK(x_cache(twice(own)) != "HIT");
  CHECK(backend_count(app, own) == 2);
  // An invalid targeted field is ignored: Cache-Control decides.
  const std::string invalid = "/cache/t-bad?cc=no-store&cdn_cc=max-age%3D600%2C";
  CHECK(x_cache(twice(invalid)) != "HIT");
  // Expires is ignored too when a targeted field applies.
  const std::string expires = "/cache/t-exp?expires=3600&cdn_cc=no-cache";
  CHECK(x_cache(twice(expires)) != "HIT");
  // Surrogate-Control's max-age is a targeted field, and never reaches clients.
  const std::string surrogate = "/cache/t-sc?cc=private&surrogate=max-age%3D60";
  Response sc = twice(surrogate);
  CHECK(x_cache(sc) == "HIT");
  CHECK_FALSE(sc.header("Surrogate-Control"));
  // A route may forward the targeted fields.
  Response forwarded = twice("/cache/forward/t?cc=no-store&cdn_cc=max-age%3D600&edge_cc=max-age%3D60");
  CHECK(x_cache(forwarded) == "HIT");
  CHECK(forwarded.header("CDN-Cache-Control") == std::string_view("max-age=600"));
  CHECK(forwarded.header("Edge-Cache-Control") == std::string_view("max-age=60"));
}

TEST_CASE("cache: a backend's 103 Early Hints reach the HTTP/1.1 client that asked, never a hit or HTTP/1.0") {
  RecordingBackend backend;
  Edge edge("workers: 1\n"
            "listen: [{address: 127.0.0.1:{{port}}}]\n"
            "backends: {app: {servers: [" + yaml_address(backend.port()) + "]}}\n"
            "hosts: [{match: [\"*\"], backend: app}]\n");
  const std::string hints = "HTTP/1.1 103 Early Hints\r\nLink: </site.css>; rel=preload; as=style\r\n\r\n"
                            "HTTP/1.1 100 Continue\r\n\r\n";
  auto ask = [&](const std::string& target, std::string_view version = "HTTP/1.1") {
    Client client(edge.port);
    client.send("GET " + target + " " + std::string(version) + "\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    return client.read_response();
  };
  // A pass: the hint, then the answer (the 100 stays between edge and the backend).
  backend.answer_once("/page", hints + "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 4\r\n\r\npage");
  Response passed = ask("/page");
  CHECK(passed.status == 200);
  CHECK(passed.body == "page");
  REQUIRE(passed.interims.size() == 1);
  CHECK(passed.interims[0].status == 103);
  CHECK(passed.interims[0].headers.get("Link") == std::string_view("</site.css>; rel=preload; as=style"));
  // A miss: the client whose request reached the backend gets the hint; the hit after it does not.
  backend.answer_once("/cached/page", hints + "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 6\r\n\r\ncached");
  Response miss = ask("/cached/page");
  CHECK(miss.body == "cached");
  REQUIRE(miss.interims.size() == 1);
  CHECK(miss.interims[0].status == 103);
  Response hit = ask("/cached/page");
  CHECK(hit.status == 200);
  CHECK(x_cache(hit) == "HIT");
  CHECK(hit.interims.empty());
  CHECK_FALSE(hit.header("Link"));
  // Never to an HTTP/1.0 client (RFC 9110 15.2).
  backend.answer_once("/old", hints + "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 3\r\n\r\nold");
  Response old = ask("/old", "HTTP/1.0");
  CHECK(old.status == 200);
  CHECK(old.body == "old");
  CHECK(old.interims.empty());
}

TEST_CASE("cache: no-store, private, Set-Cookie and Vary: * are never stored; the key is then passed") {
  Site s;
  for (const std::string t : {"/cache/ns?cc=no-store", "/cache/priv?cc=private%2C%20max-age%3D60",
                              "/cache/sc?cc=max-age%3D60&cookie=a%3D1", "/cache/vs?cc=max-age%3D60&vary=*"}) {
    CAPTURE(t);
    Response a = get_with(s.edge.port, t);
    Response b = get_with(s.edge.port, t);
    CHECK(a.status == 200);
    CHECK(x_cache(a) == "PASS");
    CHECK(x_cache(b) == "PASS");
    CHECK(backend_count(s.app, t) == 2);
  }
}

TEST_CASE("cache: Set-Cookie responses are stored where the route allows it") {
  Site s;
  const std::string t = "/cache/cookie/x?cc=max-age%3D60&cookie=a%3D1";
  get_with(s.edge.port, t);
  Response r = get_with(s.edge.port, t);
  CHECK(x_cache(r) == "HIT");
  CHECK(backend_count(s.app, t) == 1);
}

TEST_CASE("cache: Expires and the Last-Modified heuristic give freshness; an invalid Expires does not") {
  Site s;
  const std::string expires = "/cache/exp?expires=60";
  get_with(s.edge.port, expires);
  CHECK(x_cache(get_with(s.edge.port, expires)) == "HIT");
  CHECK(backend_count(s.app, expires) == 1);

  const std::string heuristic = "/cache/heur?lm=100000";
  get_with(s.edge.port, heuristic);
  CHECK(x_cache(get_with(s.edge.port, heuristic)) == "HIT");
  CHECK(backend_count(s.app, heuristic) == 1);

  const std::string invalid = "/cache/badexp?expires=bad";
  get_with(s.edge.port, invalid);
  CHECK(x_cache(get_with(s.edge.port, invalid)) != "HIT");
  CHECK(backend_count(s.app, invalid) == 2);
}

TEST_CASE("cache: s-maxage wins over max-age for a shared cache") {
  Site s;
  const std::string t = "/cache/smax?cc=max-age%3D600%2C%20s-maxage%3D0&etag=%22v1%22";
  get_with(s.edge.port, t);
  Response r = get_with(s.edge.port, t);
  CHECK(x_cache(r) == "REVALIDATED");
  CHECK(backend_count(s.app, t) == 2);
}

TEST_CASE("cache: no-cache responses are stored and revalidated with their validators on every use") {
  Site s;
  const std::string t = "/cache/nc?cc=no-cache&etag=%22v1%22";
  Response first = get_with(s.edge.port, t);
  CHECK(first.status == 200);
  Response second = get_with(s.edge.port, t);
  CHECK(second.status == 200);
  CHECK(x_cache(second) == "REVALIDATED");
  CHECK(second.header("X-Got-If-None-Match").value_or("") == "\"v1\"");  // the 304's fields were merged
  CHECK(second.body == first.body);  // the stored body, not a new one
  CHECK(backend_count(s.app, t) == 2);
}

TEST_CASE("cache: a stale response is revalidated with If-Modified-Since when it has only a date") {
  Site s;
  const std::string t = "/cache/ims?cc=max-age%3D10&age=20&lm=5000";
  get_with(s.edge.port, t);
  Response r = get_with(s.edge.port, t);
  CHECK(x_cache(r) == "REVALIDATED");
  CHECK(r.header("X-Got-If-Modified-Since"));
  CHECK(backend_count(s.app, t) == 2);
}

TEST_CASE("cache: must-revalidate forbids serving stale even on request") {
  Site s;
  const std::string t = "/cache/mr?cc=max-age%3D1%2C%20must-revalidate&age=30&etag=%22m%22";
  get_with(s.edge.port, t);
  Response r = get_with(s.edge.port, t, "Cache-Control: max-stale=600\r\n");
  CHECK(x_cache(r) == "REVALIDATED");
  CHECK(backend_count(s.app, t) == 2);
}

TEST_CASE("cache: Vary stores a variant per normalised request value") {
  Site s;
  const std::string t = "/cache/vary?cc=max-age%3D60&vary=Accept-Language";
  Response en = get_with(s.edge.port, t, "Accept-Language: en\r\n");
  Response de = get_with(s.edge.port, t, "Accept-Language: de\r\n");
  CHECK(backend_count(s.app, t) == 2);
  Response en_again = get_with(s.edge.port, t, "Accept-Language:   en  \r\n");
  CHECK(x_cache(en_again) == "HIT");
  CHECK(en_again.body == en.body);
  Response de_again = get_with(s.edge.port, t, "Accept-Language: de\r\n");
  CHECK(de_again.body == de.body);
  CHECK(backend_count(s.app, t) == 2);
}

TEST_CASE("cache: requests with Authorization are answered from cache only when the response allows it") {
  Site s;
  const std::string plain = "/cache/auth?cc=max-age%3D60";
  get_with(s.edge.port, plain, "Authorization: Bearer a\r\n");
  get_with(s.edge.port, plain, "Authorization: Bearer a\r\n");
  CHECK(backend_count(s.app, plain) == 2);
  get_with(s.edge.port, plain);                                       // anonymous: stored
  Response r = get_with(s.edge.port, plain, "Authorization: Bearer b\r\n");
  CHECK(x_cache(r) != "HIT");                                         // not shared with credentials
  CHECK(backend_count(s.app, plain) == 4);

  const std::string shared = "/cache/authpub?cc=public%2C%20max-age%3D60";
  get_with(s.edge.port, shared, "Authorization: Bearer a\r\n");
  CHECK(x_cache(get_with(s.edge.port, shared, "Authorization: Bearer b\r\n")) == "HIT");
  CHECK(backend_count(s.app, shared) == 1);
}

TEST_CASE("cache: conditional requests, HEAD and ranges are answered from the stored response") {
  Site s;
  const std::string t = "/cache/cond?cc=max-age%3D60&etag=%22e1%22&size=1000";
  get_with(s.edge.port, t);

  Response not_modified = get_with(s.edge.port, t, "If-None-Match: \"e1\"\r\n");
  CHECK(not_modified.status == 304);
  CHECK(not_modified.header("ETag").value_or("") == "\"e1\"");
  CHECK(not_modified.body.empty());

  Response head = request(s.edge.port, "HEAD", t);
  CHECK(head.status == 200);
  CHECK(head.header("Content-Length").value_or("") == "1000");
  CHECK(head.body.empty());

  Response range = get_with(s.edge.port, t, "Range: bytes=10-19\r\n");
  CHECK(range.status == 206);
  CHECK(range.header("Content-Range").value_or("") == "bytes 10-19/1000");
  CHECK(range.body == "klmnopqrst");

  Response beyond = get_with(s.edge.port, t, "Range: bytes=5000-\r\n");
  CHECK(beyond.status == 416);
  CHECK(beyond.header("Content-Range").value_or("") == "bytes */1000");

  Response failed = get_with(s.edge.port, t, "If-Match: \"other\"\r\n");
  CHECK(failed.status == 412);
  CHECK(backend_count(s.app, t) == 1);
}

TEST_CASE("cache: a HEAD miss fetches the full response for later GETs") {
  Site s;
  const std::string t = "/cache/headfirst?cc=max-age%3D60&size=300";
  Response head = request(s.edge.port, "HEAD", t);
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  Response body = get_with(s.edge.port, t);
  CHECK(x_cache(body) == "HIT");
  CHECK(body.body.size() == 300);
  CHECK(backend_count(s.app, t) == 1);
}

TEST_CASE("cache: a successful unsafe request invalidates the URL and its Location on the same host") {
  Site s;
  const std::string page = "/cache/inv?cc=max-age%3D60";
  const std::string other = "/cache/inv2?cc=max-age%3D60";
  get_with(s.edge.port, page);
  get_with(s.edge.port, other);
  Response post = request(s.edge.port, "POST", "/cache/inv?cc=max-age%3D60&location=" + percent_encode(other),
                          "Content-Length: 0\r\n");
  CHECK(post.status == 200);
  // The POST's own target differs (the location parameter); invalidate by sending to `page` itself.
  Response put = request(s.edge.port, "PUT", page, "Content-Length: 0\r\n");
  CHECK(put.status == 200);
  CHECK(x_cache(get_with(s.edge.port, page)) == "MISS");
  CHECK(x_cache(get_with(s.edge.port, other)) == "MISS");

  // A failed unsafe request changes nothing.
  const std::string kept = "/cache/inv3?cc=max-age%3D60";
  get_with(s.edge.port, kept);
  request(s.edge.port, "DELETE", "/cache/inv3?cc=max-age%3D60&status=500");
  CHECK(x_cache(get_with(s.edge.port, kept)) == "HIT");
}

TEST_CASE("cache: request directives no-cache, Pragma, max-age, min-fresh, max-stale and only-if-cached") {
  Site s;
  const std::string t = "/cache/req?cc=max-age%3D60&etag=%22r%22";
  get_with(s.edge.port, t);
  CHECK(x_cache(get_with(s.edge.port, t, "Cache-Control: no-cache\r\n")) == "REVALIDATED");
  CHECK(x_cache(get_with(s.edge.port, t, "Pragma: no-cache\r\n")) == "REVALIDATED");
  CHECK(x_cache(get_with(s.edge.port, t, "Cache-Control: min-fresh=120\r\n")) == "REVALIDATED");
  CHECK(x_cache(get_with(s.edge.port, t, "Cache-Control: max-age=600\r\n")) == "HIT");
  CHECK(backend_count(s.app, t) == 4);

  const std::string stale = "/cache/req-stale?cc=max-age%3D10&age=20";
  get_with(s.edge.port, stale);
  CHECK(x_cache(get_with(s.edge.port, stale, "Cache-Control: max-stale=60\r\n")) == "STALE");
  CHECK(backend_count(s.app, stale) == 1);

  Response uncached = get_with(s.edge.port, "/cache/never-seen", "Cache-Control: only-if-cached\r\n");
  CHECK(uncached.status == 504);
  CHECK(backend_count(s.app, "/cache/never-seen") == 0);
}

TEST_CASE("cache: stale-while-revalidate serves stale at once and refreshes once in the background") {
  Site s;
  const std::string t = "/cache/swr?cc=max-age%3D1%2C%20stale-while-revalidate%3D600&age=5";
  get_with(s.edge.port, t);
  Response r = get_with(s.edge.port, t);
  CHECK(x_cache(r) == "STALE");
  CHECK(wait_for_count(s.app, t, 2) == 2);
}

TEST_CASE("cache: stale-if-error and grace serve stale when the backend is gone") {
  auto app = std::make_unique<App>("dying");
  Edge edge(config_for(*app));
  const std::string sie = "/cache/sie?cc=max-age%3D1%2C%20stale-if-error%3D600&age=5";
  const std::string grace = "/cache/grace/g?cc=max-age%3D1&age=5";
  const std::string none = "/cache/plain?cc=max-age%3D1&age=5";
  get_with(edge.port, sie);
  get_with(edge.port, grace);
  get_with(edge.port, none);
  app.reset();  // the backend goes away
  Response a = get_with(edge.port, sie);
  CHECK(a.status == 200);
  CHECK(x_cache(a) == "STALE");
  Response b = get_with(edge.port, grace);
  CHECK(b.status == 200);
  CHECK(x_cache(b) == "STALE");
  Response c = get_with(edge.port, none);
  CHECK(c.status >= 500);
}

TEST_CASE("cache: route options ttl, max_ttl, bypass_on_cookie, key_cookies and cache: off") {
  Site s;
  const std::string ttl = "/cache/ttl/a";
  get_with(s.edge.port, ttl);
  CHECK(x_cache(get_with(s.edge.port, ttl)) == "HIT");
  CHECK(backend_count(s.app, ttl) == 1);

  const std::string capped = "/cache/maxttl/a?cc=max-age%3D3600&age=10&etag=%22c%22";
  get_with(s.edge.port, capped);
  CHECK(x_cache(get_with(s.edge.port, capped)) == "REVALIDATED");

  const std::string bypass = "/cache/bypass/a?cc=max-age%3D60";
  get_with(s.edge.port, bypass);
  CHECK(x_cache(get_with(s.edge.port, bypass)) == "HIT");
  CHECK(x_cache(get_with(s.edge.port, bypass, "Cookie: theme=dark; session=42\r\n")) == "PASS");
  CHECK(backend_count(s.app, bypass) == 2);

  const std::string user = "/cache/user/a?cc=max-age%3D60";
  Response ann = get_with(s.edge.port, user, "Cookie: user=ann\r\n");
  Response bob = get_with(s.edge.port, user, "Cookie: user=bob\r\n");
  CHECK(backend_count(s.app, user) == 2);
  Response ann_again = get_with(s.edge.port, user, "Cookie: user=ann\r\n");
  CHECK(x_cache(ann_again) == "HIT");
  CHECK(ann_again.header("X-Got-Cookie").value_or("") == "user=ann");
  CHECK(backend_count(s.app, user) == 2);

  const std::string off = "/cache/off/a?cc=max-age%3D60";
  get_with(s.edge.port, off);
  CHECK(x_cache(get_with(s.edge.port, off)) == "PASS");
  CHECK(backend_count(s.app, off) == 2);
}

TEST_CASE("cache: objects over max_object are passed; a small cache.memory evicts") {
  App app("origin");
  Edge edge(config_for(app, "{memory: 64k, max_object: 16k}"));
  const std::string big = "/cache/big?cc=max-age%3D60&size=40000";
  CHECK(get_with(edge.port, big).body.size() == 40000);
  CHECK(x_cache(get_with(edge.port, big)) == "PASS");
  CHECK(backend_count(app, big) == 2);

  // Forty 8 KB objects through a 64 KB cache: the first ones cannot all still be there.
  for (int i = 0; i < 40; ++i) get_with(edge.port, "/cache/fill" + std::to_string(i) + "?cc=max-age%3D60&size=8000");
  int misses = 0;
  for (int i = 0; i < 40; ++i)
    if (x_cache(get_with(edge.port, "/cache/fill" + std::to_string(i) + "?cc=max-age%3D60&size=8000")) == "MISS") ++misses;
  CHECK(misses >= 30);
}

TEST_CASE("cache: concurrent misses for one key make one backend request, streamed to every waiter") {
  Site s;
  const std::string t = "/cache/cold?cc=max-age%3D60&delay=500&size=20000";
  constexpr int kClients = 200;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&] {
      Response r = get_with(s.edge.port, t);
      if (r.status == 200 && r.body.size() == 20000) good.fetch_add(1);
    });
  }
  for (std::thread& th : threads) th.join();
  CHECK(good.load() == kClients);
  CHECK(backend_count(s.app, t) == 1);
}

TEST_CASE("cache: concurrent misses for an uncacheable key go to the backend in parallel") {
  Site s;
  // Each answer takes 2 s, far longer than starting every client takes even on a loaded machine.
  const std::string t = "/cache/uncacheable?cc=no-store&delay=2000";
  constexpr int kClients = 200;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&] {
      Response r = get_with(s.edge.port, t);
      if (r.status == 200) good.fetch_add(1);
    });
  }
  for (std::thread& th : threads) th.join();
  CHECK(good.load() == kClients);
  CHECK(backend_count(s.app, t) == kClients);
  // Not one after another: most of them were at the backend at the same time.
  CHECK(app_stat(s.app.port, "peak_in_progress") >= kClients / 2);
}

TEST_CASE("cache: a waiter gives up waiting after coalesce_timeout and fetches alone") {
  App app("origin");
  Edge edge(config_for(app, "{coalesce_timeout: 100ms}", 1));
  const std::string t = "/cache/slowfill?cc=max-age%3D60&delay=1500";
  std::thread first([&] { get_with(edge.port, t); });
  for (int i = 0; i < 500 && backend_count(app, t) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Response second = get_with(edge.port, t);
  first.join();
  CHECK(second.status == 200);
  CHECK(x_cache(second) == "PASS");
  CHECK(backend_count(app, t) == 2);
}

TEST_CASE("cache: X-Cache can be turned off") {
  App app("origin");
  Edge edge(config_for(app, "{x_cache: off}"));
  Response r = get_with(edge.port, "/cache/quiet?cc=max-age%3D60");
  CHECK(r.status == 200);
  CHECK(!r.header("X-Cache"));
}

TEST_CASE("cache: a HEAD that misses judges storability as the GET it fetches") {
  Site s;
  const std::string t = "/cache/headns?cc=no-store";
  CHECK(request(s.edge.port, "HEAD", t).status == 200);
  CHECK(x_cache(get_with(s.edge.port, t)) == "PASS");
  CHECK(backend_count(s.app, t) == 2);
}

namespace {
// edge-app's pattern bytes [first, last].
std::string pattern(uint64_t first, uint64_t last) {
  std::string out;
  for (uint64_t i = first; i <= last; ++i) out.push_back(static_cast<char>('a' + i % 26));
  return out;
}
}  // namespace

// RFC 9111 3.3 and 3.4: 206 responses stored as parts of one representation, answered from, the
// missing bytes fetched with a range of their own (and If-Range), parts joined once they meet.
TEST_CASE("cache: partial content is stored, answered from its parts, completed by range and joined") {
  Site s;
  const std::string t = "/cache/ranges/video?etag=%22r1%22&size=1000&ranges=1";
  Response first = get_with(s.edge.port, t, "Range: bytes=500-599\r\n");
  CHECK(first.status == 206);
  CHECK(first.header("Content-Range").value_or("") == "bytes 500-599/1000");
  CHECK(first.body == pattern(500, 599));
  CHECK(first.header("X-Got-Range").value_or("") == "bytes=500-599");  // the range, not the whole
  CHECK(x_cache(first) == "MISS");

  Response again = get_with(s.edge.port, t, "Range: bytes=510-520\r\n");
  CHECK(again.status == 206);
  CHECK(again.header("Content-Range").value_or("") == "bytes 510-520/1000");
  CHECK(again.body == pattern(510, 520));
  CHECK(x_cache(again) == "HIT");
  CHECK(backend_count(s.app, t) == 1);

  // Half stored, half not: only the missing half is asked for, on the stored validator.
  Response overlap = get_with(s.edge.port, t, "Range: bytes=550-649\r\n");
  CHECK(overlap.status == 206);
  CHECK(overlap.header("Content-Range").value_or("") == "bytes 550-649/1000");
  CHECK(overlap.body == pattern(550, 649));
  CHECK(overlap.header("X-Got-Range").value_or("") == "bytes=600-649");
  CHECK(overlap.header("X-Got-If-Range").value_or("") == "\"r1\"");
  CHECK(backend_count(s.app, t) == 2);

  Response across = get_with(s.edge.port, t, "Range: bytes=520-640\r\n");
  CHECK(across.body == pattern(520, 640));
  CHECK(x_cache(across) == "HIT");
  CHECK(backend_count(s.app, t) == 2);

  Response head = request(s.edge.port, "HEAD", t);
  CHECK(head.status == 200);
  CHECK(head.header("Content-Length").value_or("") == "1000");
  CHECK(backend_count(s.app, t) == 2);

  Response past = get_with(s.edge.port, t, "Range: bytes=1000-\r\n");
  CHECK(past.status == 416);
  CHECK(past.header("Content-Range").value_or("") == "bytes */1000");

  // The whole: what is missing around the parts comes in one range, and the parts join.
  Response whole = get_with(s.edge.port, t);
  CHECK(whole.status == 200);
  CHECK(whole.header("Content-Length").value_or("") == "1000");
  CHECK(whole.body == pattern(0, 999));
  CHECK(backend_count(s.app, t) == 3);
  Response joined = get_with(s.edge.port, t);
  CHECK(joined.status == 200);
  CHECK(x_cache(joined) == "HIT");
  CHECK(joined.body == pattern(0, 999));
  CHECK(joined.header("Content-Range") == std::nullopt);
  Response early = get_with(s.edge.port, t, "Range: bytes=0-9\r\n");
  CHECK(early.body == pattern(0, 9));
  CHECK(x_cache(early) == "HIT");
  CHECK(backend_count(s.app, t) == 3);
}

TEST_CASE("cache: a range below range_fetch_from fetches the whole response, one past it only the range") {
  Site s;
  const std::string low = "/cache/ranges/low?etag=%22r1%22&size=1000&ranges=1";
  Response near = get_with(s.edge.port, low, "Range: bytes=10-19\r\n");
  CHECK(near.status == 206);
  CHECK(near.body == pattern(10, 19));
  CHECK(near.header("X-Got-Range") == std::nullopt);
  CHECK(x_cache(get_with(s.edge.port, low, "Range: bytes=900-\r\n")) == "HIT");
  CHECK(backend_count(s.app, low) == 1);

  // Open to the end, past the offset: the part runs to the end and is stored as such.
  const std::string tail = "/cache/ranges/tail?etag=%22r1%22&size=1000&ranges=1";
  Response end = get_with(s.edge.port, tail, "Range: bytes=900-\r\n");
  CHECK(end.status == 206);
  CHECK(end.header("Content-Range").value_or("") == "bytes 900-999/1000");
  CHECK(end.header("X-Got-Range").value_or("") == "bytes=900-");
  CHECK(end.body == pattern(900, 999));
  Response suffix = get_with(s.edge.port, tail, "Range: bytes=-50\r\n");
  CHECK(suffix.body == pattern(950, 999));
  CHECK(x_cache(suffix) == "HIT");
  CHECK(backend_count(s.app, tail) == 1);
}

TEST_CASE("cache: a 206 without a strong validator, or a backend that ignores ranges, is never stored as a part") {
  Site s;
  // No ETag, no Last-Modified: parts could never be told to belong together (RFC 9111 3.4).
  const std::string weak = "/cache/ranges/weak?etag=W%2F%22w%22&size=1000&ranges=1";
  Response one = get_with(s.edge.port, weak, "Range: bytes=500-599\r\n");
  CHECK(one.status == 206);
  CHECK(one.body == pattern(500, 599));
  Response two = get_with(s.edge.port, weak, "Range: bytes=500-599\r\n");
  CHECK(two.body == pattern(500, 599));
  CHECK(backend_count(s.app, weak) == 2);

  // A 200 to a range fetch is the whole response: stored, and later ranges are hits.
  const std::string whole = "/cache/ranges/whole?etag=%22r1%22&size=1000";
  Response full = get_with(s.edge.port, whole, "Range: bytes=500-599\r\n");
  CHECK(full.body.size() >= 100);
  Response hit = get_with(s.edge.port, whole, "Range: bytes=500-599\r\n");
  CHECK(hit.status == 206);
  CHECK(hit.body == pattern(500, 599));
  CHECK(x_cache(hit) == "HIT");
  CHECK(backend_count(s.app, whole) == 1);
}

TEST_CASE("cache: RFC 9110 9.3.3, a POST's fresh response naming its own target answers the next GET") {
  Site s;
  const std::string t = "/cache/post?cc=max-age%3D60&content_location_self=1";
  Response post = request(s.edge.port, "POST", t, "Content-Length: 0\r\n");
  CHECK(post.status == 200);
  CHECK(x_cache(post) == "PASS");
  Response get = get_with(s.edge.port, t);
  CHECK(get.status == 200);
  CHECK(x_cache(get) == "HIT");
  CHECK(get.body.find("origin POST " + t + " 1\n") != std::string::npos);
  CHECK(get.body == post.body);
  CHECK(backend_count(s.app, t) == 1);

  // The next POST invalidates what the first stored (RFC 9111 4.4) and stores its own answer.
  Response again = request(s.edge.port, "POST", t, "Content-Length: 0\r\n");
  Response replaced = get_with(s.edge.port, t);
  CHECK(x_cache(replaced) == "HIT");
  CHECK(replaced.body == again.body);
  CHECK(replaced.body.find("origin POST " + t + " 2\n") != std::string::npos);
  CHECK(backend_count(s.app, t) == 2);
}

TEST_CASE("cache: a POST's response is not stored for GETs unless it names its target, is fresh, 200 and allowed") {
  Site s;
  // True when the GET after the POST was answered by the backend.
  auto get_reaches_backend = [&](const std::string& target, const std::string& headers = "") {
    request(s.edge.port, "POST", target, "Content-Length: 0\r\n" + headers);
    Response get = get_with(s.edge.port, target);
    return x_cache(get) != "HIT" && backend_count(s.app, target) == 2;
  };
  // Content-Location names another resource: the response is that one's, not the target's.
  const std::string elsewhere = "/cache/post-elsewhere?cc=max-age%3D60&content_location=%2Fcache%2Fother";
  CHECK(get_reaches_backend(elsewhere));
  CHECK(x_cache(get_with(s.edge.port, "/cache/other")) != "HIT");
  // No Content-Location at all.
  CHECK(get_reaches_backend("/cache/post-plain?cc=max-age%3D60"));
  // Only heuristic freshness (Last-Modified): a POST's response needs explicit freshness.
  CHECK(get_reaches_backend("/cache/post-lm?lm=3600&content_location_self=1"));
  // RFC 9110 8.7: a 201's Content-Location is not a representation of the target.
  CHECK(get_reaches_backend("/cache/post-created?cc=max-age%3D60&content_location_self=1&status=201"));
  CHECK(get_reaches_backend("/cache/post-private?cc=private%2C%20max-age%3D60&content_location_self=1"));
  CHECK(get_reaches_backend("/cache/post-auth?cc=max-age%3D60&content_location_self=1",
                            "Authorization: Basic dTpw\r\n"));
  // A session's POST is bypassed like its GET would be: another client must not get its answer.
  CHECK(get_reaches_backend("/cache/bypass/post?cc=max-age%3D60&content_location_self=1",
                            "Cookie: session=abc\r\n"));
  // A route with the cache off stores nothing.
  CHECK(get_reaches_backend("/cache/off/post?cc=max-age%3D60&content_location_self=1"));
}
