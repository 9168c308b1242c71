#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "balancer/balancer.h"
#include "cache/policy.h"
#include "proxy/admin_render.h"

using namespace edge;
namespace admin = edge::proxy::admin;
using admin::Route;

namespace {
conf::Config make_config() {
  conf::LoadResult r = conf::load_string(R"(
listen: [{address: 127.0.0.1:1}]
backends:
  books_en:
    servers:
      - {address: 127.0.0.1:8210, weight: 3, max_conns: 2}
      - "[::1]:8211"
  "we\"ird":
    balance: round_robin
    servers: [127.0.0.1:8110]
hosts:
  - match: ["*"]
    backend: books_en
)", "test.yaml");
  REQUIRE(r.errors.empty());
  return std::move(*r.config);
}
}  // namespace

TEST_CASE("routes: the listing, its text form, and the per-server actions") {
  CHECK(admin::parse_route("/backends").kind == Route::kBackends);
  CHECK(admin::parse_route("/backends.txt").kind == Route::kBackendsText);

  Route drain = admin::parse_route("/backends/books_en/127.0.0.1:8210/drain");
  CHECK(drain.kind == Route::kDrain);
  CHECK(drain.backend == "books_en");
  CHECK(drain.server == "127.0.0.1:8210");
  Route enable = admin::parse_route("/backends/books_en/%5B%3A%3A1%5D%3a8211/enable");
  CHECK(enable.kind == Route::kEnable);
  CHECK(enable.server == "[::1]:8211");

  for (const char* path : {"", "/index.html", "/backends/", "/backends.json", "/backendsx", "/backends/books_en",
                           "/backends/books_en/127.0.0.1:8210", "/backends/books_en/127.0.0.1:8210/",
                           "/backends/books_en/127.0.0.1:8210/reboot", "/backends//127.0.0.1:8210/drain",
                           "/backends/books_en//drain", "/backends/a/b/c/drain", "/backends/a/b%zz/drain",
                           "/backends/a/b%2/drain", "/backends/a/b%00/drain", "/backends/a%2Fb/c/drain",
                           "/BACKENDS", "//backends"}) {
    CAPTURE(path);
    CHECK(admin::parse_route(path).kind == Route::kNotFound);
  }
}

TEST_CASE("methods: GET and HEAD read, POST acts") {
  CHECK(admin::method_allowed(Route::kBackends, "GET"));
  CHECK(admin::method_allowed(Route::kBackendsText, "HEAD"));
  CHECK_FALSE(admin::method_allowed(Route::kBackends, "POST"));
  CHECK(admin::method_allowed(Route::kDrain, "POST"));
  CHECK_FALSE(admin::method_allowed(Route::kEnable, "GET"));
  CHECK_FALSE(admin::method_allowed(Route::kNotFound, "GET"));
  CHECK(admin::allowed_methods(Route::kBackends) == "GET, HEAD");
  CHECK(admin::allowed_methods(Route::kDrain) == "POST");
}

TEST_CASE("percent-decoding") {
  CHECK(admin::percent_decode("abc") == std::string("abc"));
  CHECK(admin::percent_decode("a%20b%3A") == std::string("a b:"));
  CHECK(admin::percent_decode("%") == std::nullopt);
  CHECK(admin::percent_decode("%4") == std::nullopt);
  CHECK(admin::percent_decode("%g0") == std::nullopt);
  CHECK(admin::percent_decode("%00") == std::nullopt);
  CHECK(admin::percent_decode("%2f") == std::nullopt);
}

TEST_CASE("bearer tokens: parsed from Authorization, compared by digest") {
  CHECK(admin::bearer_token("Bearer abc") == std::string_view("abc"));
  CHECK(admin::bearer_token("bearer   abc  ") == std::string_view("abc"));
  CHECK(admin::bearer_token("BEARER\tabc") == std::string_view("abc"));
  CHECK(admin::bearer_token("Bearer") == std::nullopt);
  CHECK(admin::bearer_token("Bearer ") == std::nullopt);
  CHECK(admin::bearer_token("Bearerabc") == std::nullopt);
  CHECK(admin::bearer_token("Basic abc") == std::nullopt);
  CHECK(admin::bearer_token("Bearer a b") == std::nullopt);
  CHECK(admin::bearer_token("") == std::nullopt);

  admin::TokenDigest expected = admin::digest_token("s3cret");
  CHECK(admin::token_matches("s3cret", expected));
  CHECK_FALSE(admin::token_matches("s3cre", expected));
  CHECK_FALSE(admin::token_matches("s3cret!", expected));
  CHECK_FALSE(admin::token_matches("S3cret", expected));
  CHECK_FALSE(admin::token_matches("", expected));
  // The digest is SHA-256: fixed size whatever the token's length.
  admin::TokenDigest empty = admin::digest_token("");
  const unsigned char sha256_of_nothing[4] = {0xe3, 0xb0, 0xc4, 0x42};
  CHECK(std::equal(sha256_of_nothing, sha256_of_nothing + 4, empty.bytes));
}

TEST_CASE("JSON strings are escaped") {
  CHECK(admin::json_string("plain") == "\"plain\"");
  CHECK(admin::json_string("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(admin::json_string("\n\t\x01") == "\"\\n\\t\\u0001\"");
  CHECK(admin::json_string("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
}

TEST_CASE("the listing, as JSON and as text, follows the live state") {
  conf::Config config = make_config();
  balancer::Balancer balancer(config);
  const int64_t now = 100000;

  std::string json = admin::render_backends_json(balancer, now);
  CHECK(json ==
        "{\"backends\":["
        "{\"name\":\"books_en\",\"balance\":\"least_conn\",\"queued\":0,\"servers\":["
        "{\"address\":\"127.0.0.1:8210\",\"state\":\"up\",\"in_flight\":0,\"served\":0,\"failed\":0,\"weight\":3,"
        "\"max_conns\":2,\"response_ms\":{\"p50\":null,\"p90\":null,\"p99\":null},\"last_check\":null},"
        "{\"address\":\"[::1]:8211\",\"state\":\"up\",\"in_flight\":0,\"served\":0,\"failed\":0,\"weight\":1,"
        "\"max_conns\":0,\"response_ms\":{\"p50\":null,\"p90\":null,\"p99\":null},\"last_check\":null}]},"
        "{\"name\":\"we\\\"ird\",\"balance\":\"round_robin\",\"queued\":0,\"servers\":["
        "{\"address\":\"127.0.0.1:8110\",\"state\":\"up\",\"in_flight\":0,\"served\":0,\"failed\":0,\"weight\":1,"
        "\"max_conns\":0,\"response_ms\":{\"p50\":null,\"p90\":null,\"p99\":null},\"last_check\":null}]}]}\n");
  CHECK(admin::render_backends_text(balancer, now) ==
        "books_en 127.0.0.1:8210 up in_flight=0 queued=0 served=0 failed=0 check=-\n"
        "books_en [::1]:8211 up in_flight=0 queued=0 served=0 failed=0 check=-\n"
        "we\"ird 127.0.0.1:8110 up in_flight=0 queued=0 served=0 failed=0 check=-\n");

  balancer::BackendState& books = balancer.backend(0);
  books.server(1).set_draining(true);
  balancer::BackendState::Pick pick = books.pick(0, now);
  REQUIRE(pick.kind == balancer::BackendState::Pick::kServer);
  CHECK(pick.server == 0);  // the drained one is skipped
  pick = books.pick(0, now);
  REQUIRE(pick.kind == balancer::BackendState::Pick::kServer);
  books.release(pick.server, balancer::Outcome::kSuccess, now);
  books.server(0).report_check({true, 200, "200", now - 120}, 2, 3, now - 120);
  books.server(1).report_check({false, 0, "connection refused", now - 50}, 2, 3, now - 50);

  json = admin::render_backends_json(balancer, now);
  CHECK(json.find("{\"address\":\"127.0.0.1:8210\",\"state\":\"up\",\"in_flight\":1,\"served\":1,\"failed\":0,"
                  "\"weight\":3,\"max_conns\":2,\"response_ms\":{\"p50\":null,\"p90\":null,\"p99\":null},"
                  "\"last_check\":{\"ok\":true,\"status\":200,\"detail\":\"200\","
                  "\"age_ms\":120}}") != std::string::npos);
  CHECK(json.find("{\"address\":\"[::1]:8211\",\"state\":\"draining\",\"in_flight\":0,\"served\":0,\"failed\":0,"
                  "\"weight\":1,\"max_conns\":0,\"response_ms\":{\"p50\":null,\"p90\":null,\"p99\":null},"
                  "\"last_check\":{\"ok\":false,\"status\":0,"
                  "\"detail\":\"connection refused\",\"age_ms\":50}}") != std::string::npos);
  std::string text = admin::render_backends_text(balancer, now);
  CHECK(text.find("books_en 127.0.0.1:8210 up in_flight=1 queued=0 served=1 failed=0 check=200\n") !=
        std::string::npos);
  CHECK(text.find("books_en [::1]:8211 draining in_flight=0 queued=0 served=0 failed=0 check=connection_refused\n") !=
        std::string::npos);
}

// ---- purge, ban, stats, metrics ----

TEST_CASE("routes and methods: purge and ban are POST, stats and metrics GET") {
  CHECK(admin::parse_route("/purge").kind == Route::kPurge);
  CHECK(admin::parse_route("/ban").kind == Route::kBan);
  CHECK(admin::parse_route("/stats").kind == Route::kStats);
  CHECK(admin::parse_route("/metrics").kind == Route::kMetrics);
  for (const char* path : {"/purge/", "/purges", "/ban/x", "/stats.json", "/Metrics", "/metrics/"}) {
    CAPTURE(path);
    CHECK(admin::parse_route(path).kind == Route::kNotFound);
  }
  CHECK(admin::method_allowed(Route::kPurge, "POST"));
  CHECK_FALSE(admin::method_allowed(Route::kPurge, "GET"));
  CHECK_FALSE(admin::method_allowed(Route::kBan, "PURGE"));
  CHECK(admin::method_allowed(Route::kStats, "GET"));
  CHECK(admin::method_allowed(Route::kMetrics, "HEAD"));
  CHECK_FALSE(admin::method_allowed(Route::kMetrics, "POST"));
  CHECK(admin::allowed_methods(Route::kBan) == "POST");
  CHECK(admin::allowed_methods(Route::kStats) == "GET, HEAD");
}

TEST_CASE("query strings are split and percent-decoded; '+' stays '+'") {
  auto q = admin::parse_query("url=http%3A%2F%2Fa.com%2Fx%3Fy%3D1&soft=1&&flag&regex=a+b");
  REQUIRE(q);
  REQUIRE(q->size() == 4);
  CHECK((*q)[0] == std::pair<std::string, std::string>{"url", "http://a.com/x?y=1"});
  CHECK((*q)[1] == std::pair<std::string, std::string>{"soft", "1"});
  CHECK((*q)[2] == std::pair<std::string, std::string>{"flag", ""});
  CHECK((*q)[3] == std::pair<std::string, std::string>{"regex", "a+b"});
  CHECK(admin::parse_query("")->empty());
  CHECK(admin::parse_query("a=%zz") == std::nullopt);
  CHECK(admin::parse_query("a=%00") == std::nullopt);
}

TEST_CASE("purge URLs give the cache key the proxy uses") {
  CHECK(admin::url_cache_key("http://Example.COM:8080/a/../b%7e?q=1#frag") == cache::cache_key("example.com", "/b~?q=1"));
  CHECK(admin::url_cache_key("https://example.com") == std::string("example.com/"));
  CHECK(admin::url_cache_key("HTTP://example.com?x") == std::string("example.com/?x"));
  CHECK(admin::url_cache_key("http://[::1]:81/p") == cache::cache_key("[::1]:81", "/p"));
  for (const char* bad : {"", "/just/a/path", "example.com/x", "ftp://example.com/x", "http://", "http:///x",
                          "http://:80/x", "http://a.com/x y", "http://a.com/\x01"}) {
    CAPTURE(bad);
    CHECK(admin::url_cache_key(bad) == std::nullopt);
  }
}

TEST_CASE("purge parameters: url or tag, soft, nothing else") {
  std::string error;
  auto by_url = admin::parse_purge("url=http%3A%2F%2Fa.com%2Fimg%2F1.jpg", error);
  REQUIRE(by_url);
  CHECK(by_url->key == "a.com/img/1.jpg");
  CHECK(by_url->tag.empty());
  CHECK_FALSE(by_url->soft);
  CHECK(by_url->host == "a.com");
  CHECK(by_url->target == "/img/1.jpg");
  CHECK_FALSE(by_url->local);
  CHECK(admin::parse_purge("tag=x&local=1", error)->local);
  auto by_tag = admin::parse_purge("tag=product-42&soft=1", error);
  REQUIRE(by_tag);
  CHECK(by_tag->tag == "product-42");
  CHECK(by_tag->key.empty());
  CHECK(by_tag->soft);
  CHECK(admin::parse_purge("soft=true&tag=x", error)->soft);
  CHECK_FALSE(admin::parse_purge("soft=0&tag=x", error)->soft);

  struct Bad {
    const char* query;
    const char* error;
  };
  for (const Bad& bad : {Bad{"", "give either url or tag"}, Bad{"soft=1", "give either url or tag"},
                         Bad{"url=http://a.com/&tag=t", "give either url or tag"},
                         Bad{"url=/relative", "url must be an absolute http or https URL"},
                         Bad{"url=", "url must be an absolute http or https URL"}, Bad{"tag=", "empty tag"},
                         Bad{"tag=t&soft=yes", "soft must be 0 or 1"}, Bad{"tag=t&sotf=1", "unknown parameter: sotf"},
                         Bad{"tag=a&tag=b", "repeated parameter: tag"},
                         Bad{"tag=t&every_query=1", "every_query goes with a url, not a tag"},
                         Bad{"url=http://a.com/&every_query=all", "every_query must be 0 or 1"},
                         Bad{"tag=%zz", "bad percent-encoding in the query"}}) {
    CAPTURE(bad.query);
    error.clear();
    CHECK(admin::parse_purge(bad.query, error) == std::nullopt);
    CHECK(error == bad.error);
  }
}

TEST_CASE("purge of every query variant: a ban on the URL's exact path, with any query or none") {
  std::string error;
  auto request = admin::parse_purge("url=http%3A%2F%2FShop.Test%2Fa%2Fb.c%3Fignored%3D1&every_query=1&soft=1", error);
  REQUIRE(request);
  CHECK(request->every_query);
  std::optional<cache::Store::Ban> ban = admin::every_query_ban(*request, error);
  REQUIRE(ban);
  CHECK(ban->host == "shop.test");
  CHECK(ban->prefix == "/a/b.c");
  CHECK(ban->soft);
  REQUIRE(ban->regex);
  for (std::string_view path : {"/a/b.c", "/a/b.c?", "/a/b.c?x=1", "/a/b.c?x=1&y=%2F"}) {
    CAPTURE(path);
    CHECK(ban->regex->matches(path));
  }
  // Not another path that starts the same, and the '.' is no wildcard.
  for (std::string_view path : {"/a/b.cc", "/a/b.c/d", "/a/bxc", "/a/b.c#x", "/z/a/b.c"}) {
    CAPTURE(path);
    CHECK_FALSE(ban->regex->matches(path));
  }
  // The path is normalised as cache keys are; regex characters in it are literal.
  auto odd = admin::parse_purge("url=http%3A%2F%2Fa.com%2F%2541%2F(x%2B)%2F.%2F*&every_query=1", error);
  REQUIRE(odd);
  std::optional<cache::Store::Ban> odd_ban = admin::every_query_ban(*odd, error);
  REQUIRE(odd_ban);
  CHECK(odd_ban->prefix == "/A/(x+)/*");
  CHECK(odd_ban->regex->matches("/A/(x+)/*?q"));
  CHECK_FALSE(odd_ban->regex->matches("/A/xx/*"));
}

TEST_CASE("ban parameters: host, prefix, regex, soft") {
  std::string error;
  auto ban = admin::parse_ban("host=Shop.Example:8443&prefix=%2Fimg%2F&soft=1", error);
  REQUIRE(ban);
  CHECK(ban->host == "shop.example");
  CHECK(ban->prefix == "/img/");
  CHECK_FALSE(ban->regex);
  CHECK(ban->soft);

  ban = admin::parse_ban("regex=%5C.jpe%3Fg%24", error);  // \.jpe?g$
  REQUIRE(ban);
  CHECK(ban->host.empty());
  CHECK(ban->prefix.empty());
  REQUIRE(ban->regex);
  CHECK(ban->regex->text() == "\\.jpe?g$");
  CHECK(ban->regex->matches("/a/b.jpeg"));
  CHECK_FALSE(ban->regex->matches("/a/b.png"));
  CHECK_FALSE(ban->soft);

  ban = admin::parse_ban("prefix=/a/./b/%7euser&regex=^/a/b/.%2B", error);
  REQUIRE(ban);
  CHECK(ban->prefix == "/a/b/~user");  // normalised as cache keys are
  CHECK(ban->regex->matches("/a/b/~user"));

  error.clear();
  CHECK(admin::parse_ban("host=a.com", error) == std::nullopt);
  CHECK(error == "give a prefix, a regex or both");
  CHECK(admin::parse_ban("prefix=img/", error) == std::nullopt);
  CHECK(error == "prefix must start with /");
  CHECK(admin::parse_ban("regex=(unclosed", error) == std::nullopt);
  CHECK(error.starts_with("invalid regex: "));
  CHECK(error.size() > std::string("invalid regex: ").size());
  CHECK(admin::parse_ban("prefix=/&soft=2", error) == std::nullopt);
  CHECK(error == "soft must be 0 or 1");
  CHECK(admin::parse_ban("prefix=/&url=x", error) == std::nullopt);
  CHECK(error == "unknown parameter: url");
  CHECK(admin::parse_ban("regex=" + std::string(4097, 'a'), error) == std::nullopt);
  CHECK(error == "regex longer than 4096 bytes");
  CHECK(admin::parse_ban("regex=" + std::string(4096, 'a'), error));
  CHECK(admin::parse_ban("prefix=/&local=2", error) == std::nullopt);
  CHECK(error == "local must be 0 or 1");
  bool local = false;
  CHECK(admin::parse_ban("prefix=/&local=1", error, &local));
  CHECK(local);
}

namespace {

admin::CacheFigures sample_figures() {
  admin::CacheFigures figures;
  figures.hosts.resize(2);
  figures.hosts[0].host = "shop.example";
  figures.hosts[0].events = {6, 2, 1, 4, 1, 2, 3};  // hits misses passes coalesced hfp stale revalidated
  figures.hosts[1].host = "we\"ird\\host";
  figures.store.objects = 10;
  figures.store.bytes = 12345;
  figures.store.inserts = 12;
  figures.store.evictions = 1;
  figures.store.refused_too_large = 2;
  figures.store.purged = 3;
  figures.store.bans = 1;
  figures.store.hit_for_pass_marks = 4;
  figures.store.admission_refusals = 5;
  figures.store.head_bytes = 1005;
  figures.store.body_bytes = 8340;
  figures.store.overhead_bytes = 3000;
  figures.store.sketch_bytes = 16384;
  figures.memory = 1 << 20;
  return figures;
}

}  // namespace

TEST_CASE("event keys and help texts") {
  CHECK(std::string(cache::event_key(cache::Event::kHit)) == "hits");
  CHECK(std::string(cache::event_key(cache::Event::kHitForPass)) == "hit_for_pass");
  CHECK(std::string(cache::event_key(cache::Event::kRevalidated)) == "revalidated");
  for (size_t e = 0; e < cache::kEventCount; ++e) CHECK(std::string(cache::event_help(cache::Event(e))).size() > 10);
}

TEST_CASE("hit ratio: hits and stale over everything but coalesced and revalidated") {
  CHECK(admin::hit_ratio({}) == 0.0);
  CHECK(admin::hit_ratio({6, 2, 1, 4, 1, 2, 3}) == doctest::Approx(8.0 / 12.0));
  CHECK(admin::hit_ratio({0, 0, 0, 5, 0, 0, 5}) == 0.0);
  CHECK(admin::hit_ratio({1, 0, 0, 0, 0, 0, 0}) == 1.0);
}

TEST_CASE("cache figures: the workers' counters summed per host entry, from its slot") {
  conf::Config config = make_config();
  cache::Counters one(4);
  cache::Counters two(4);
  // The host's counters are in slot 2 (a reload put it there); slot 0 is another's.
  one.count(2, cache::Event::kHit);
  one.count(2, cache::Event::kMiss);
  two.count(2, cache::Event::kHit);
  two.count(2, cache::Event::kStale);
  two.count(0, cache::Event::kHit);
  two.count(5, cache::Event::kHit);  // no such slot: ignored
  cache::StoreStats store;
  store.objects = 7;
  admin::CacheFigures figures = admin::gather_cache_figures(config, {2}, {&one, &two}, store);
  REQUIRE(figures.hosts.size() == 1);
  CHECK(figures.hosts[0].host == "*");
  CHECK(figures.hosts[0].events[static_cast<size_t>(cache::Event::kHit)] == 2);
  CHECK(figures.hosts[0].events[static_cast<size_t>(cache::Event::kMiss)] == 1);
  CHECK(figures.hosts[0].events[static_cast<size_t>(cache::Event::kStale)] == 1);
  CHECK(figures.hosts[0].events[static_cast<size_t>(cache::Event::kPass)] == 0);
  CHECK(figures.store.objects == 7);
  CHECK(figures.memory == config.cache.memory);
}

TEST_CASE("GET /stats renders hosts, totals and the store") {
  CHECK(admin::render_stats_json(sample_figures()) ==
        "{\"hosts\":["
        "{\"host\":\"shop.example\",\"hits\":6,\"misses\":2,\"passes\":1,\"coalesced\":4,\"hit_for_pass\":1,"
        "\"stale\":2,\"revalidated\":3,\"esi_failed\":0,\"hit_ratio\":0.6666666666666666},"
        "{\"host\":\"we\\\"ird\\\\host\",\"hits\":0,\"misses\":0,\"passes\":0,\"coalesced\":0,\"hit_for_pass\":0,"
        "\"stale\":0,\"revalidated\":0,\"esi_failed\":0,\"hit_ratio\":0}],"
        "\"totals\":{\"hits\":6,\"misses\":2,\"passes\":1,\"coalesced\":4,\"hit_for_pass\":1,\"stale\":2,"
        "\"revalidated\":3,\"esi_failed\":0,\"hit_ratio\":0.6666666666666666},"
        "\"store\":{\"objects\":10,\"bytes\":12345,\"memory\":1048576,\"inserts\":12,\"evictions\":1,"
        "\"refused_too_large\":2,\"purged\":3,\"bans\":1,\"hit_for_pass_marks\":4,\"admission_refusals\":5,"
        "\"head_bytes\":1005,\"body_bytes\":8340,\"overhead_bytes\":3000,\"sketch_bytes\":16384,"
        "\"per_object\":{\"head\":101,\"body\":834,\"overhead\":300}}}\n");
  CHECK(admin::render_stats_json({}) ==
        "{\"hosts\":[],\"totals\":{\"hits\":0,\"misses\":0,\"passes\":0,\"coalesced\":0,\"hit_for_pass\":0,"
        "\"stale\":0,\"revalidated\":0,\"esi_failed\":0,\"hit_ratio\":0},\"store\":{\"objects\":0,\"bytes\":0,\"memory\":0,"
        "\"inserts\":0,\"evictions\":0,\"refused_too_large\":0,\"purged\":0,\"bans\":0,\"hit_for_pass_marks\":0,"
        "\"admission_refusals\":0,\"head_bytes\":0,\"body_bytes\":0,\"overhead_bytes\":0,\"sketch_bytes\":0,"
        "\"per_object\":{\"head\":0,\"body\":0,\"overhead\":0}}}\n");
}

TEST_CASE("GET /stats and /metrics show the bounds on hostile input when the admin port has them") {
  admin::CacheFigures figures;
  admin::LimitFigures& limits = figures.limits.emplace();
  limits.events = {{"too_many_fields", 3}, {"slots_held", 1}};
  limits.temp_bytes = 4096;
  limits.temp_bytes_peak = 65536;
  const std::string json = admin::render_stats_json(figures);
  CHECK(json.find(",\"limits\":{\"too_many_fields\":3,\"slots_held\":1,\"temp_bytes\":4096,"
                  "\"temp_bytes_peak\":65536}") != std::string::npos);
  conf::Config config = make_config();
  balancer::Balancer balancer(config);
  const std::string text = admin::render_metrics(figures, balancer, 0);
  CHECK(text.find("# TYPE edge_limit_events_total counter\n") != std::string::npos);
  CHECK(text.find("edge_limit_events_total{event=\"too_many_fields\"} 3\n") != std::string::npos);
  CHECK(text.find("edge_temp_bytes 4096\n") != std::string::npos);
  CHECK(text.find("edge_temp_bytes_peak 65536\n") != std::string::npos);
}

TEST_CASE("connection figures: the workers' Stats summed") {
  proxy::Stats one;
  proxy::Stats two;
  one.requests = 3;
  two.requests = 4;
  two.upstream_failures = 2;
  one.count_close(proxy::CloseReason::kHeaderTimeout);
  two.count_close(proxy::CloseReason::kHeaderTimeout);
  two.count_close(proxy::CloseReason::kShutdown);
  const admin::ConnectionFigures figures = admin::gather_connection_figures({&one, &two});
  CHECK(figures.requests == 7);
  CHECK(figures.upstream_failures == 2);
  CHECK(figures.closes[static_cast<size_t>(proxy::CloseReason::kHeaderTimeout)] == 2);
  CHECK(figures.closes[static_cast<size_t>(proxy::CloseReason::kShutdown)] == 1);
  CHECK(figures.closes[static_cast<size_t>(proxy::CloseReason::kClientClosed)] == 0);
}

TEST_CASE("GET /stats and /metrics show the connections when the admin port has the workers' Stats") {
  admin::CacheFigures figures;
  admin::ConnectionFigures& connections = figures.connections.emplace();
  connections.requests = 12;
  connections.upstream_failures = 1;
  connections.tls_handshakes = 7;
  connections.tls_resumed = 4;
  connections.access_log_dropped = 6;
  connections.closes[static_cast<size_t>(proxy::CloseReason::kHeaderTimeout)] = 3;
  connections.closes[static_cast<size_t>(proxy::CloseReason::kShutdown)] = 5;
  connections.open = 3;
  connections.backend_open = 2;
  connections.bytes_in = 100;
  connections.bytes_out = 200;
  connections.backend_bytes_in = 150;
  connections.backend_bytes_out = 90;
  connections.workers = {{2, 1, 1}, {1, 0, 1}};
  connections.coded[static_cast<size_t>(edge::compress::Coding::kBr)] = {2, 1000, 100};
  const std::string json = admin::render_stats_json(figures);
  CAPTURE(json);
  CHECK(json.find(",\"connections\":{\"open\":3,\"backend_open\":2,\"bytes_in\":100,\"bytes_out\":200,"
                  "\"backend_bytes_in\":150,\"backend_bytes_out\":90,\"requests\":12,\"upstream_failures\":1,\"tls_handshakes\":7,"
                  "\"tls_resumed\":4,\"access_log_dropped\":6,\"h2_connections\":0,\"h2_streams\":0,\"compression\":{\"br\":{\"responses\":2,"
                  "\"bytes_before\":1000,\"bytes_after\":100},\"zstd\":{\"responses\":0,\"bytes_before\":0,"
                  "\"bytes_after\":0},\"gzip\":{\"responses\":0,\"bytes_before\":0,\"bytes_after\":0}},"
                  "\"closes\":{\"client_closed\":0,"
                  "\"keep_alive_done\":0,\"idle_timeout\":0,\"header_timeout\":3,\"body_timeout\":0,"
                  "\"slow_upload\":0,\"send_timeout\":0,\"bad_request\":0,\"client_abort\":0,\"write_error\":0,"
                  "\"upstream_broken\":0,\"too_many_connections\":0,\"client_conn_limit\":0,\"tls_handshake_failed\":0,"
                  "\"plain_http_on_tls\":0,\"shutdown\":5,\"h2_protocol_error\":0,\"h2_flood\":0,\"tunnel_done\":0},"
                    "\"rules\":{\"denied\":0,\"rate_limited\":0,\"maintenance\":0,\"redirected\":0,\"purged\":0}},"
                    "\"workers\":[{\"connections\":2,"
                  "\"requests_in_progress\":1,\"waiting\":1},{\"connections\":1,\"requests_in_progress\":0,"
                  "\"waiting\":1}]}\n") != std::string::npos);
  CHECK(admin::render_stats_json({}).find("connections") == std::string::npos);

  conf::Config config = make_config();
  balancer::Balancer balancer(config);
  const std::string text = admin::render_metrics(figures, balancer, 0);
  CAPTURE(text);
  CHECK(text.find("# TYPE edge_requests_total counter\nedge_requests_total 12\n") != std::string::npos);
  CHECK(text.find("# TYPE edge_upstream_failures_total counter\nedge_upstream_failures_total 1\n") != std::string::npos);
  CHECK(text.find("# TYPE edge_tls_handshakes_total counter\nedge_tls_handshakes_total 7\n") != std::string::npos);
  CHECK(text.find("# TYPE edge_tls_resumed_total counter\nedge_tls_resumed_total 4\n") != std::string::npos);
  CHECK(text.find("# TYPE edge_access_log_dropped_total counter\nedge_access_log_dropped_total 6\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE edge_connection_closes_total counter\n") != std::string::npos);
  CHECK(text.find("edge_connection_closes_total{reason=\"header_timeout\"} 3\n") != std::string::npos);
  CHECK(text.find("edge_connection_closes_total{reason=\"shutdown\"} 5\n") != std::string::npos);
  CHECK(text.find("edge_connection_closes_total{reason=\"client_closed\"} 0\n") != std::string::npos);
  CHECK(text.find("# TYPE edge_client_connections gauge\nedge_client_connections 3\n") != std::string::npos);
  CHECK(text.find("# TYPE edge_backend_connections gauge\nedge_backend_connections 2\n") != std::string::npos);
  CHECK(text.find("edge_worker_requests_in_progress{worker=\"0\"} 1\nedge_worker_requests_in_progress{worker=\"1\"} 0\n") !=
        std::string::npos);
  CHECK(text.find("edge_worker_waiting_connections{worker=\"1\"} 1\n") != std::string::npos);
  CHECK(text.find("# TYPE edge_client_received_bytes_total counter\nedge_client_received_bytes_total 100\n") !=
        std::string::npos);
  CHECK(text.find("edge_backend_sent_bytes_total 90\n") != std::string::npos);
  CHECK(admin::render_metrics({}, balancer, 0).find("edge_requests_total") == std::string::npos);
}

TEST_CASE("GET /metrics: responses by class and host, and histograms with cumulative buckets in seconds") {
  admin::CacheFigures figures;
  admin::HostTraffic& host = figures.traffic.emplace_back();
  host.host = "shop.example";
  host.responses = {0, 7, 0, 3, 1};
  for (int i = 0; i < 4; ++i) host.duration.buckets[proxy::bucket_of(3'000'000)]++;  // 3 ms
  host.duration.buckets[proxy::kBucketCount - 1]++;                                   // past 30 s
  host.duration.sum_ns = 4 * 3'000'000 + 40'000'000'000;
  figures.traffic.emplace_back();  // "": no host entry
  conf::Config config = make_config();
  balancer::Balancer balancer(config);
  figures.latencies = {{{}, {}}, {{}}};
  figures.latencies[0][0].first_byte.buckets[0] = 2;
  figures.latencies[0][0].first_byte.sum_ns = 600'000;
  const std::string text = admin::render_metrics(figures, balancer, 0);
  CAPTURE(text);
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  CHECK(has("# TYPE edge_responses_total counter"));
  CHECK(has("edge_responses_total{host=\"shop.example\",code=\"2xx\"} 7"));
  CHECK(has("edge_responses_total{host=\"shop.example\",code=\"4xx\"} 3"));
  CHECK(has("edge_responses_total{host=\"shop.example\",code=\"5xx\"} 1"));
  CHECK(has("edge_responses_total{host=\"\",code=\"1xx\"} 0"));
  CHECK(has("# TYPE edge_request_duration_seconds histogram"));
  CHECK(has("edge_request_duration_seconds_bucket{host=\"shop.example\",le=\"0.0005\"} 0"));
  CHECK(has("edge_request_duration_seconds_bucket{host=\"shop.example\",le=\"0.002\"} 0"));
  CHECK(has("edge_request_duration_seconds_bucket{host=\"shop.example\",le=\"0.005\"} 4"));
  CHECK(has("edge_request_duration_seconds_bucket{host=\"shop.example\",le=\"30\"} 4"));
  CHECK(has("edge_request_duration_seconds_bucket{host=\"shop.example\",le=\"+Inf\"} 5"));
  CHECK(has("edge_request_duration_seconds_sum{host=\"shop.example\"} 40.012"));
  CHECK(has("edge_request_duration_seconds_count{host=\"shop.example\"} 5"));
  CHECK(has("edge_request_first_byte_seconds_count{host=\"\"} 0"));
  CHECK(has("# TYPE edge_backend_first_byte_seconds histogram"));
  CHECK(has("edge_backend_first_byte_seconds_bucket{backend=\"books_en\",server=\"127.0.0.1:8210\",le=\"0.0005\"} 2"));
  CHECK(has("edge_backend_first_byte_seconds_sum{backend=\"books_en\",server=\"127.0.0.1:8210\"} 6e-04"));
  CHECK(has("edge_backend_connect_seconds_count{backend=\"we\\\"ird\",server=\"127.0.0.1:8110\"} 0"));
  CHECK(has("edge_backend_server_health_transitions_total{backend=\"books_en\",server=\"127.0.0.1:8210\",to=\"down\"} 0"));

  // /backends: the server's percentiles from the same histogram, in milliseconds.
  const std::string json = admin::render_backends_json(balancer, 0, &figures.latencies);
  CHECK(json.find("\"response_ms\":{\"p50\":0.250,\"p90\":0.450,\"p99\":0.495}") != std::string::npos);
}

TEST_CASE("Prometheus label values are escaped") {
  CHECK(admin::prometheus_label("plain.example") == "plain.example");
  CHECK(admin::prometheus_label("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
}

TEST_CASE("GET /metrics: the cache and the backends in the text exposition format") {
  conf::Config config = make_config();
  balancer::Balancer balancer(config);
  const int64_t now = 100000;
  balancer::BackendState& books = balancer.backend(0);
  books.server(1).set_draining(true);
  books.server(0).report_check({true, 200, "200", now - 1500}, 2, 3, now - 1500);
  std::string text = admin::render_metrics(sample_figures(), balancer, now);
  CAPTURE(text);
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };

  CHECK(has("# TYPE edge_cache_events_total counter"));
  CHECK(text.find("# HELP edge_cache_events_total ") != std::string::npos);
  CHECK(text.find("hits: served from the cache, fresh") != std::string::npos);
  CHECK(has("edge_cache_events_total{host=\"shop.example\",event=\"hits\"} 6"));
  CHECK(has("edge_cache_events_total{host=\"shop.example\",event=\"revalidated\"} 3"));
  CHECK(has("edge_cache_events_total{host=\"we\\\"ird\\\\host\",event=\"misses\"} 0"));
  CHECK(has("# TYPE edge_cache_hit_ratio gauge"));
  CHECK(has("edge_cache_hit_ratio{host=\"shop.example\"} 0.6666666666666666"));
  CHECK(has("edge_cache_objects 10"));
  CHECK(has("edge_cache_bytes 12345"));
  CHECK(has("edge_cache_memory_bytes 1048576"));
  CHECK(has("edge_cache_evictions_total 1"));
  CHECK(has("edge_cache_purged_total 3"));
  CHECK(has("edge_cache_bans 1"));
  CHECK(has("edge_cache_hit_for_pass_marks 4"));
  CHECK(has("edge_cache_admission_refusals_total 5"));
  CHECK(has("edge_cache_part_bytes{part=\"head\"} 1005"));
  CHECK(has("edge_cache_part_bytes{part=\"body\"} 8340"));
  CHECK(has("edge_cache_part_bytes{part=\"overhead\"} 3000"));
  CHECK(has("edge_cache_sketch_bytes 16384"));

  CHECK(has("edge_backend_queued{backend=\"books_en\"} 0"));
  CHECK(has("edge_backend_queued{backend=\"we\\\"ird\"} 0"));
  CHECK(has("# TYPE edge_backend_server_in_flight gauge"));
  CHECK(has("edge_backend_server_in_flight{backend=\"books_en\",server=\"127.0.0.1:8210\"} 0"));
  CHECK(has("# TYPE edge_backend_server_served_total counter"));
  CHECK(has("edge_backend_server_weight{backend=\"books_en\",server=\"127.0.0.1:8210\"} 3"));
  CHECK(has("edge_backend_server_max_conns{backend=\"books_en\",server=\"127.0.0.1:8210\"} 2"));
  CHECK(has("edge_backend_server_state{backend=\"books_en\",server=\"127.0.0.1:8210\",state=\"up\"} 1"));
  CHECK(has("edge_backend_server_state{backend=\"books_en\",server=\"127.0.0.1:8210\",state=\"draining\"} 0"));
  CHECK(has("edge_backend_server_state{backend=\"books_en\",server=\"[::1]:8211\",state=\"draining\"} 1"));
  CHECK(has("edge_backend_server_state{backend=\"books_en\",server=\"[::1]:8211\",state=\"up\"} 0"));
  CHECK(has("edge_backend_server_check_ok{backend=\"books_en\",server=\"127.0.0.1:8210\"} 1"));
  CHECK(has("edge_backend_server_check_age_seconds{backend=\"books_en\",server=\"127.0.0.1:8210\"} 1.5"));
  CHECK(text.find("edge_backend_server_check_ok{backend=\"books_en\",server=\"[::1]:8211\"}") == std::string::npos);

  // Well formed: every line is a comment or `name{labels} value`, each family's samples follow
  // its own HELP and TYPE, and no two samples share a name and labels.
  std::set<std::string> series;
  std::string family;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    REQUIRE(end != std::string::npos);
    std::string line = text.substr(start, end - start);
    start = end + 1;
    CAPTURE(line);
    if (line.starts_with("# HELP ")) {
      family = line.substr(7, line.find(' ', 7) - 7);
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      CHECK(line.substr(7, family.size() + 1) == family + " ");
      continue;
    }
    CHECK(line.starts_with(family));
    size_t space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    CHECK(series.insert(line.substr(0, space)).second);
    std::string value = line.substr(space + 1);
    CHECK(value.find_first_not_of("0123456789.e-") == std::string::npos);
  }
}
