#include <doctest/doctest.h>

#include <algorithm>

#include "balancer/balancer.h"
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

  for (const char* path : {"/", "", "/backends/", "/backends.json", "/backendsx", "/backends/books_en",
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
        "\"max_conns\":2,\"last_check\":null},"
        "{\"address\":\"[::1]:8211\",\"state\":\"up\",\"in_flight\":0,\"served\":0,\"failed\":0,\"weight\":1,"
        "\"max_conns\":0,\"last_check\":null}]},"
        "{\"name\":\"we\\\"ird\",\"balance\":\"round_robin\",\"queued\":0,\"servers\":["
        "{\"address\":\"127.0.0.1:8110\",\"state\":\"up\",\"in_flight\":0,\"served\":0,\"failed\":0,\"weight\":1,"
        "\"max_conns\":0,\"last_check\":null}]}]}\n");
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
                  "\"weight\":3,\"max_conns\":2,\"last_check\":{\"ok\":true,\"status\":200,\"detail\":\"200\","
                  "\"age_ms\":120}}") != std::string::npos);
  CHECK(json.find("{\"address\":\"[::1]:8211\",\"state\":\"draining\",\"in_flight\":0,\"served\":0,\"failed\":0,"
                  "\"weight\":1,\"max_conns\":0,\"last_check\":{\"ok\":false,\"status\":0,"
                  "\"detail\":\"connection refused\",\"age_ms\":50}}") != std::string::npos);
  std::string text = admin::render_backends_text(balancer, now);
  CHECK(text.find("books_en 127.0.0.1:8210 up in_flight=1 queued=0 served=1 failed=0 check=200\n") !=
        std::string::npos);
  CHECK(text.find("books_en [::1]:8211 draining in_flight=0 queued=0 served=0 failed=0 check=connection_refused\n") !=
        std::string::npos);
}
