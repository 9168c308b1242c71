#include "cache/policy.h"

#include <doctest/doctest.h>

#include <vector>
#include <utility>

using namespace edge;
using namespace edge::cache;

namespace {

using Fields = std::vector<std::pair<std::string_view, std::string_view>>;

constexpr Seconds T0 = 1700000000;  // Tue, 14 Nov 2023 22:13:20 GMT

http::Headers headers(Fields fields) {
  http::Headers h;
  for (const auto& [name, value] : fields) h.add(name, value);
  return h;
}

http::RequestHead request(std::string method, std::string target, Fields fields = {}) {
  http::RequestHead r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.headers = headers(fields);
  return r;
}

http::RequestHead get(Fields fields = {}) { return request("GET", "/x", fields); }

http::ResponseHead response(int status, Fields fields = {}) {
  http::ResponseHead r;
  r.status = status;
  r.headers = headers(fields);
  return r;
}

std::string date(Seconds t) { return format_http_date(t); }

CacheControl cc(std::string_view value, bool is_request = false) {
  return parse_cache_control(headers({{"Cache-Control", value}}), is_request);
}

// What a shared cache does with `r`, received at T0 for a plain GET, when `req` asks for it
// `pause` seconds later: nullopt when it was not stored at all.
std::optional<Use> reuse_after(const http::ResponseHead& r, Seconds pause, Fields req = {},
                               const StoreOptions& options = {}) {
  if (can_store(get(), r, options) != StoreVerdict::kStore) return std::nullopt;
  CacheControl rcc = parse_cache_control(r.headers, false);
  AgeBasis basis = age_basis(r, T0, T0);
  Seconds lifetime = freshness_lifetime(r, rcc, basis, options);
  StoredView view{rcc, lifetime, basis.current_age(T0 + pause)};
  return decide(parse_cache_control(headers(req), true), view);
}

bool served(const std::optional<Use>& u) { return u == Use::kFresh; }

StoredView view(const CacheControl& rcc, Seconds lifetime, Seconds age, Seconds grace = 0) {
  return StoredView{rcc, lifetime, age, grace};
}

}  // namespace

// ---- dates ----

TEST_CASE("format_http_date: IMF-fixdate, round trip, clamped to four-digit years") {
  CHECK(format_http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(format_http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  for (Seconds t : {Seconds{0}, Seconds{1}, T0, Seconds{951782400}, Seconds{253402300799}, Seconds{-86400}})
    CHECK(parse_http_date(format_http_date(t)) == t);
  CHECK(format_http_date(kForever) == "Fri, 31 Dec 9999 23:59:59 GMT");
  CHECK(format_http_date(-kForever) == "Sat, 01 Jan 0000 00:00:00 GMT");
  CHECK(parse_http_date("Sat, 01 Jan 0000 00:00:00 GMT") == -62167219200);
}

// ---- Cache-Control ----

TEST_CASE("parse_cache_control: directives, case, combined fields") {
  CacheControl c = cc("max-age=3600, public, must-revalidate");
  CHECK(c.max_age == 3600);
  CHECK(c.is_public);
  CHECK(c.must_revalidate);
  CHECK_FALSE(c.no_store);
  CHECK_FALSE(c.s_maxage);

  CHECK(cc("MaX-aGe=3600").max_age == 3600);
  CHECK(cc("No-StOrE").no_store);
  CHECK(cc("No-CaChE").no_cache);
  CHECK(cc("PRIVATE").is_private);
  CHECK(cc("foobar, max-age=3600").max_age == 3600);  // unknown extensions are ignored
  CHECK(cc("foo=\"bar, baz\", max-age=3600").max_age == 3600);
  CHECK(cc("s-maxage=10, proxy-revalidate, immutable").proxy_revalidate);
  CHECK(cc("s-maxage=10, proxy-revalidate, immutable").immutable);
  CHECK(cc("only-if-cached", true).only_if_cached);
  CHECK(cc(",,  ,max-age=5,,").max_age == 5);
  CHECK(cc("max-age=5\t,\tno-cache").no_cache);

  http::Headers two = headers({{"Cache-Control", "max-age=60"}, {"X", "y"}, {"cache-control", "no-cache, s-maxage=30"}});
  CacheControl both = parse_cache_control(two, false);
  CHECK(both.max_age == 60);
  CHECK(both.s_maxage == 30);
  CHECK(both.no_cache);

  CacheControl none = parse_cache_control(headers({}), false);
  CHECK_FALSE(none.max_age);
  CHECK_FALSE(none.no_cache);
}

TEST_CASE("parse_cache_control: quoted values and quoted strings that only look like directives") {
  CHECK(cc("max-age=\"3600\"").max_age == 3600);       // recipients accept both forms
  CHECK(cc("max-age='3600'").max_age == 0);            // single quotes are not quotes: invalid
  CHECK(cc("extension=\"max-age=100\", max-age=1").max_age == 1);
  CHECK(cc("max-age=1, extension=\"max-age=100\"").max_age == 1);
  CHECK(cc("extension=\"max-age=100\", max-age=\"1\"").max_age == 1);
  CHECK(cc("max-age=\"1\", extension=\"max-age=100\"").max_age == 1);
  CHECK_FALSE(cc("extension=\"no-store\"").no_store);
  CHECK_FALSE(cc("extension=\"a, no-store, b\"").no_store);
  CHECK_FALSE(cc("x=\"a\\\"no-store\"").no_store);             // escaped quote stays inside
  CHECK(cc("x=\"a\\\"b\", no-store").no_store);
  CHECK(cc("max-age=\"3\\600\"").max_age == 3600);             // quoted-pair unescaped
  CHECK(cc("max-age=\"36").max_age == 0);                      // unterminated: invalid
  CHECK_FALSE(cc("\"max-age=100\"").max_age);                  // a stray quoted string is data
  CHECK_FALSE(cc("x=\"unterminated, no-store").no_store);      // all of it is inside the quote
}

TEST_CASE("parse_cache_control: invalid numbers read as stale; huge ones saturate") {
  SUBCASE("max-age (cache-tests cc-parse and cc-freshness)") {
    CHECK(cc("max-age=003600").max_age == 3600);  // leading zeros are digits
    CHECK(cc("max-age=0").max_age == 0);
    for (std::string_view bad : {"max-age=a100", "max-age=100a", "max-age=-100", "max-age=3600.0", "max-age=3600.5",
                                 "max-age =100", "max-age= 100", "max-age", "max-age=", "max-age=\"\"",
                                 "max-age=1 2", "max-age=+5", "max-age=0x10", "max-age=5=6"}) {
      CAPTURE(bad);
      CHECK(cc(bad).max_age == 0);
    }
  }
  SUBCASE("delta-seconds beyond 2^31 are kept, beyond int64 saturate at kForever") {
    CHECK(cc("max-age=2147483647").max_age == 2147483647);
    CHECK(cc("max-age=2147483648").max_age == 2147483648);
    CHECK(cc("max-age=99999999999").max_age == 99999999999);
    CHECK(cc("max-age=99999999999999999999999999999").max_age == kForever);
    CHECK(cc("s-maxage=9223372036854775807").s_maxage == kForever);
    CHECK(cc("max-stale=18446744073709551616", true).max_stale == kForever);
    CHECK(cc("stale-while-revalidate=1000000000000000000000").stale_while_revalidate == kForever);
  }
  SUBCASE("s-maxage and the request's max-age read an invalid value as 0 too") {
    CHECK(cc("s-maxage=abc").s_maxage == 0);
    CHECK(cc("max-age=x", true).max_age == 0);
  }
  SUBCASE("min-fresh: an invalid value asks for more than any response has") {
    CHECK(cc("min-fresh=100", true).min_fresh == 100);
    CHECK(cc("min-fresh=abc", true).min_fresh == kForever);
  }
  SUBCASE("an invalid permission to serve stale is no permission") {
    CHECK_FALSE(cc("max-stale=abc", true).max_stale);
    CHECK_FALSE(cc("max-stale=10, max-stale=abc", true).max_stale);
    CHECK_FALSE(cc("stale-while-revalidate=x, stale-while-revalidate=60").stale_while_revalidate);
    CHECK_FALSE(cc("stale-if-error").stale_if_error);
    CHECK_FALSE(cc("stale-if-error=-1").stale_if_error);
    CHECK(cc("stale-while-revalidate=60, stale-if-error=\"300\"").stale_while_revalidate == 60);
    CHECK(cc("stale-while-revalidate=60, stale-if-error=\"300\"").stale_if_error == 300);
  }
}

TEST_CASE("parse_cache_control: duplicated and conflicting directives take the most restrictive reading") {
  CHECK(cc("max-age=1800, max-age=1").max_age == 1);
  CHECK(cc("max-age=1, max-age=1800").max_age == 1);
  CHECK(parse_cache_control(headers({{"Cache-Control", "max-age=1800"}, {"Cache-Control", "max-age=1"}}), false)
            .max_age == 1);
  CHECK(parse_cache_control(headers({{"Cache-Control", "max-age=1"}, {"Cache-Control", "max-age=1800"}}), false)
            .max_age == 1);
  CHECK(cc("max-age=60, max-age=abc").max_age == 0);
  CHECK(cc("s-maxage=60, s-maxage=30").s_maxage == 30);
  CHECK(cc("min-fresh=10, min-fresh=100", true).min_fresh == 100);
  CHECK(cc("max-stale, max-stale=5", true).max_stale == 5);
  CHECK(cc("max-stale=50, max-stale=5", true).max_stale == 5);
  CHECK(cc("max-stale", true).max_stale == kForever);
  CHECK(cc("stale-if-error=600, stale-if-error=60").stale_if_error == 60);
  CHECK(cc("public, private").is_private);
  CHECK(cc("no-store, no-store").no_store);
}

TEST_CASE("parse_cache_control: qualified and garbled forms") {
  // Field-qualified no-cache and private count as the unqualified directive (conservative).
  CHECK(cc("no-cache=\"Set-Cookie\"").no_cache);
  CHECK(cc("no-cache=Set-Cookie").no_cache);
  CHECK(cc("private=\"X-User\", max-age=60").is_private);
  CHECK(cc("no-store=1").no_store);
  CHECK(cc("must-revalidate=\"x\"").must_revalidate);
  // Permissions count only in their exact form.
  CHECK_FALSE(cc("public=yes").is_public);
  CHECK_FALSE(cc("public max-age=60").is_public);
  CHECK(cc("public max-age=60").max_age == 0);
  // A missing comma: every directive in the garbled element is read, restrictive ones apply.
  CacheControl garbled = cc("no-cache no-store");
  CHECK(garbled.no_cache);
  CHECK(garbled.no_store);
  // Junk after a quoted value taints what follows it up to the next comma, not beyond.
  CacheControl tainted = cc("ext=\"a\" max-age=100, s-maxage=7");
  CHECK(tainted.max_age == 0);
  CHECK(tainted.s_maxage == 7);
  CHECK(cc("=5, max-age=9").max_age == 9);
  CHECK(cc("max-age=9, =").max_age == 9);
}

TEST_CASE("parse_cache_control: Pragma no-cache only on a request without Cache-Control") {
  CHECK(parse_cache_control(headers({{"Pragma", "no-cache"}}), true).no_cache);
  CHECK(parse_cache_control(headers({{"Pragma", "x, No-Cache"}}), true).no_cache);
  CHECK_FALSE(parse_cache_control(headers({{"Pragma", "no-cache"}}), false).no_cache);  // response
  CHECK_FALSE(parse_cache_control(headers({{"Pragma", "no-cache"}, {"Cache-Control", "max-age=5"}}), true).no_cache);
  CHECK_FALSE(parse_cache_control(headers({{"Pragma", "no-cache"}, {"Cache-Control", ""}}), true).no_cache);
  CHECK_FALSE(parse_cache_control(headers({{"Pragma", "unrecognised-extension"}}), true).no_cache);
  CHECK_FALSE(parse_cache_control(headers({{"Pragma", "no-cache=1"}}), true).no_cache);
}

// ---- storing ----

TEST_CASE("heuristically_cacheable: the statuses of RFC 9110 15.1") {
  for (int s : {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501}) CHECK(heuristically_cacheable(s));
  for (int s : {100, 201, 202, 205, 302, 303, 304, 307, 400, 401, 403, 500, 502, 503, 504, 599, 0, -1})
    CHECK_FALSE(heuristically_cacheable(s));
}

TEST_CASE("can_store: method and status") {
  http::ResponseHead fresh = response(200, {{"Cache-Control", "max-age=60"}});
  CHECK(can_store(get(), fresh, {}) == StoreVerdict::kStore);
  CHECK(can_store(request("HEAD", "/x"), fresh, {}) == StoreVerdict::kMethod);
  CHECK(can_store(request("POST", "/x"), fresh, {}) == StoreVerdict::kMethod);
  CHECK(can_store(request("get", "/x"), fresh, {}) == StoreVerdict::kMethod);  // methods are case-sensitive

  CHECK(can_store(get(), response(206, {{"Cache-Control", "max-age=60"}, {"Content-Range", "bytes 0-1/10"}}), {}) ==
        StoreVerdict::kPartial);
  for (int s : {100, 101, 103, 199, 304, 600, 999, 0, 42}) {
    CAPTURE(s);
    CHECK(can_store(get(), response(s, {{"Cache-Control", "max-age=60"}}), {}) == StoreVerdict::kStatus);
  }
  SUBCASE("any final status with explicit freshness (cache-tests status-*-fresh)") {
    for (int s : {200, 203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410, 499, 500, 502, 503, 504, 599}) {
      CAPTURE(s);
      CHECK(can_store(get(), response(s, {{"Cache-Control", "max-age=60"}}), {}) == StoreVerdict::kStore);
      CHECK(can_store(get(), response(s, {{"Cache-Control", "s-maxage=60"}}), {}) == StoreVerdict::kStore);
      CHECK(can_store(get(), response(s, {{"Expires", date(T0 + 60)}, {"Date", date(T0)}}), {}) ==
            StoreVerdict::kStore);
    }
  }
  SUBCASE("without explicit freshness only statuses cacheable by default (cache-tests heuristic-*)") {
    std::string lm = date(T0 - 86400);
    for (int s : {200, 203, 204, 404, 405, 410, 414, 501, 300, 301, 308}) {
      CAPTURE(s);
      CHECK(can_store(get(), response(s, {{"Last-Modified", lm}, {"Date", date(T0)}}), {}) == StoreVerdict::kStore);
    }
    for (int s : {201, 202, 403, 500, 502, 503, 504, 599, 302, 307}) {
      CAPTURE(s);
      CHECK(can_store(get(), response(s, {{"Last-Modified", lm}, {"Date", date(T0)}}), {}) == StoreVerdict::kStatus);
      // a route ttl does not make an error page cacheable
      CHECK(can_store(get(), response(s, {}), StoreOptions{.default_ttl = 60}) == StoreVerdict::kStatus);
    }
    // `public` marks any status explicitly cacheable
    CHECK(can_store(get(), response(599, {{"Last-Modified", lm}, {"Cache-Control", "public"}}), {}) ==
          StoreVerdict::kStore);
  }
  SUBCASE("must-understand: only statuses we implement, and then no-store is overridden") {
    CHECK(can_store(get(), response(200, {{"Cache-Control", "max-age=60, must-understand, no-store"}}), {}) ==
          StoreVerdict::kStore);
    CHECK(can_store(get(), response(299, {{"Cache-Control", "max-age=60, must-understand, no-store"}}), {}) ==
          StoreVerdict::kStatus);
    CHECK(can_store(get(), response(299, {{"Cache-Control", "max-age=60, must-understand"}}), {}) ==
          StoreVerdict::kStatus);
    CHECK(can_store(get(), response(200, {{"Cache-Control", "max-age=60, must-understand"}}), {}) ==
          StoreVerdict::kStore);
  }
}

TEST_CASE("can_store: what the request and response forbid") {
  SUBCASE("no-store") {
    CHECK(can_store(get(), response(200, {{"Cache-Control", "no-store"}}), {}) == StoreVerdict::kNoStore);
    CHECK(can_store(get(), response(200, {{"Cache-Control", "No-StOrE"}}), {}) == StoreVerdict::kNoStore);
    CHECK(can_store(get(), response(200, {{"Cache-Control", "max-age=10000, no-store"}, {"Expires", date(T0 + 10000)}}),
                    {}) == StoreVerdict::kNoStore);
    CHECK(can_store(get({{"Cache-Control", "no-store"}}), response(200, {{"Cache-Control", "max-age=60"}}), {}) ==
          StoreVerdict::kNoStore);
  }
  SUBCASE("private") {
    CHECK(can_store(get(), response(200, {{"Cache-Control", "private, max-age=3600"}}), {}) == StoreVerdict::kPrivate);
    CHECK(can_store(get(), response(200, {{"Cache-Control", "private=\"Set-Cookie\", max-age=3600"}}), {}) ==
          StoreVerdict::kPrivate);
  }
  SUBCASE("Authorization (cache-tests auth)") {
    auto auth = get({{"Authorization", "FOO"}});
    CHECK(can_store(auth, response(200, {{"Expires", date(T0 + 86400)}, {"Date", date(T0)}}), {}) ==
          StoreVerdict::kAuthorization);
    CHECK(can_store(auth, response(200, {{"Cache-Control", "max-age=3600"}}), {}) == StoreVerdict::kAuthorization);
    CHECK(can_store(auth, response(200, {{"Cache-Control", "max-age=3600, public"}}), {}) == StoreVerdict::kStore);
    CHECK(can_store(auth, response(200, {{"Cache-Control", "max-age=3600, must-revalidate"}}), {}) ==
          StoreVerdict::kStore);
    CHECK(can_store(auth, response(200, {{"Cache-Control", "s-maxage=3600"}}), {}) == StoreVerdict::kStore);
    CHECK(can_store(auth, response(200, {{"Cache-Control", "max-age=3600, proxy-revalidate"}}), {}) ==
          StoreVerdict::kAuthorization);
    CHECK(can_store(get({{"authorization", ""}}), response(200, {{"Cache-Control", "max-age=3600"}}), {}) ==
          StoreVerdict::kAuthorization);
  }
  SUBCASE("Set-Cookie unless configured") {
    auto r = response(200, {{"Cache-Control", "max-age=60"}, {"Set-Cookie", "a=b"}});
    CHECK(can_store(get(), r, {}) == StoreVerdict::kSetCookie);
    CHECK(can_store(get(), r, StoreOptions{.store_set_cookie = true}) == StoreVerdict::kStore);
    CHECK(can_store(get(), response(200, {{"Cache-Control", "max-age=60"}, {"set-cookie", "a=b"}}), {}) ==
          StoreVerdict::kSetCookie);
    // Set-Cookie2 (RFC 2965) is obsolete (RFC 6265): an ordinary field.
    CHECK(can_store(get(), response(200, {{"Cache-Control", "max-age=60"}, {"Set-Cookie2", "a=b"}}), {}) ==
          StoreVerdict::kStore);
  }
  SUBCASE("Vary: * (cache-tests vary-parse)") {
    for (Fields vary : {Fields{{"Vary", "*"}}, Fields{{"Vary", "*, *"}}, Fields{{"Vary", "*"}, {"Vary", "*"}},
                        Fields{{"Vary", ", *"}}, Fields{{"Vary", ""}, {"Vary", "*"}}, Fields{{"Vary", "*, Foo"}},
                        Fields{{"Vary", "Foo, *"}}, Fields{{"Vary", "Foo"}, {"vary", " * "}}}) {
      http::ResponseHead r = response(200, vary);
      r.headers.add("Cache-Control", "max-age=60");
      CHECK(can_store(get(), r, {}) == StoreVerdict::kVaryStar);
    }
    CHECK(can_store(get(), response(200, {{"Cache-Control", "max-age=60"}, {"Vary", "Foo, Accept"}}), {}) ==
          StoreVerdict::kStore);
  }
}

TEST_CASE("can_store: a response is kept only when it can be used") {
  CHECK(can_store(get(), response(200), {}) == StoreVerdict::kNoFreshness);  // cache-tests freshness-none
  CHECK(can_store(get(), response(200, {{"Date", date(T0)}}), {}) == StoreVerdict::kNoFreshness);
  CHECK(can_store(get(), response(200, {{"ETag", "\"a\""}}), {}) == StoreVerdict::kStore);
  CHECK(can_store(get(), response(200, {{"Last-Modified", date(T0 - 10)}}), {}) == StoreVerdict::kStore);
  CHECK(can_store(get(), response(200), StoreOptions{.default_ttl = 30}) == StoreVerdict::kStore);
  CHECK(can_store(get(), response(200, {{"Cache-Control", "public"}}), {}) == StoreVerdict::kNoFreshness);
  // no-cache responses are stored and revalidated on every use (cc-resp-no-cache-revalidate)
  CHECK(can_store(get(), response(200, {{"Cache-Control", "no-cache"}, {"ETag", "\"abcd\""}}), {}) ==
        StoreVerdict::kStore);
  CHECK(can_store(get(), response(200, {{"Cache-Control", "no-cache"}}), {}) == StoreVerdict::kNoFreshness);
  // explicit freshness, even zero or invalid, is freshness information
  CHECK(can_store(get(), response(200, {{"Cache-Control", "max-age=0, stale-while-revalidate=60"}}), {}) ==
        StoreVerdict::kStore);
  CHECK(can_store(get(), response(200, {{"Expires", "0"}}), {}) == StoreVerdict::kStore);
}

TEST_CASE("can_store: the verdict names the most fundamental reason") {
  auto everything = response(206, {{"Cache-Control", "no-store, private"}, {"Set-Cookie", "a=b"}, {"Vary", "*"}});
  CHECK(can_store(request("POST", "/x", {{"Authorization", "x"}}), everything, {}) == StoreVerdict::kMethod);
  CHECK(can_store(get({{"Authorization", "x"}}), everything, {}) == StoreVerdict::kPartial);
  everything.status = 200;
  CHECK(can_store(get({{"Authorization", "x"}}), everything, {}) == StoreVerdict::kNoStore);
  auto r = response(200, {{"Cache-Control", "private"}, {"Set-Cookie", "a=b"}, {"Vary", "*"}});
  CHECK(can_store(get({{"Authorization", "x"}}), r, {}) == StoreVerdict::kPrivate);
  r = response(200, {{"Set-Cookie", "a=b"}, {"Vary", "*"}});
  CHECK(can_store(get({{"Authorization", "x"}}), r, {}) == StoreVerdict::kAuthorization);
  CHECK(can_store(get(), r, {}) == StoreVerdict::kVaryStar);
  r = response(200, {{"Set-Cookie", "a=b"}});
  CHECK(can_store(get(), r, {}) == StoreVerdict::kSetCookie);
  CHECK(can_store(get(), r, StoreOptions{.store_set_cookie = true}) == StoreVerdict::kNoFreshness);
  // a status never storable beats forbidding directives
  CHECK(can_store(get(), response(304, {{"Cache-Control", "no-store"}}), {}) == StoreVerdict::kStatus);
}

TEST_CASE("verdict_name names every verdict") {
  CHECK(std::string_view(verdict_name(StoreVerdict::kStore)) == "store");
  CHECK(std::string_view(verdict_name(StoreVerdict::kMethod)) == "method");
  CHECK(std::string_view(verdict_name(StoreVerdict::kStatus)) == "status");
  CHECK(std::string_view(verdict_name(StoreVerdict::kNoStore)) == "no-store");
  CHECK(std::string_view(verdict_name(StoreVerdict::kPrivate)) == "private");
  CHECK(std::string_view(verdict_name(StoreVerdict::kAuthorization)) == "authorization");
  CHECK(std::string_view(verdict_name(StoreVerdict::kSetCookie)) == "set-cookie");
  CHECK(std::string_view(verdict_name(StoreVerdict::kVaryStar)) == "vary-star");
  CHECK(std::string_view(verdict_name(StoreVerdict::kNoFreshness)) == "no-freshness");
  CHECK(std::string_view(verdict_name(StoreVerdict::kPartial)) == "partial");
}

// ---- age and freshness ----

TEST_CASE("AgeBasis: RFC 9111 4.2.3 step by step") {
  http::ResponseHead r = response(200, {{"Date", date(995)}, {"Age", "10"}});
  AgeBasis b = age_basis(r, 1000, 1002);
  CHECK(b.request_time == 1000);
  CHECK(b.response_time == 1002);
  CHECK(b.date_value == 995);
  CHECK(b.age_value == 10);
  // apparent_age = max(0, 1002 - 995) = 7; response_delay = 2; corrected_age_value = 12
  CHECK(b.corrected_initial_age() == 12);
  CHECK(b.current_age(1002) == 12);
  CHECK(b.current_age(1102) == 112);  // + resident time

  SUBCASE("the apparent age wins when the Date is older than Age says") {
    AgeBasis a = age_basis(response(200, {{"Date", date(900)}, {"Age", "10"}}), 1000, 1002);
    CHECK(a.corrected_initial_age() == 102);
  }
  SUBCASE("a Date in the future gives no negative apparent age") {
    AgeBasis a = age_basis(response(200, {{"Date", date(5000)}}), 1000, 1000);
    CHECK(a.corrected_initial_age() == 0);
  }
  SUBCASE("no Date or an invalid one: the response time") {
    CHECK(age_basis(response(200), 1000, 1003).date_value == 1003);
    CHECK(age_basis(response(200, {{"Date", "foo"}}), 1000, 1003).date_value == 1003);
    CHECK(age_basis(response(200), 1000, 1003).corrected_initial_age() == 3);  // the response delay
  }
  SUBCASE("invalid Age values count as absent (cache-tests age-parse)") {
    for (Fields f : {Fields{{"Age", "abc"}}, Fields{{"Age", "-7200"}}, Fields{{"Age", "7200.0"}},
                     Fields{{"Age", ""}}, Fields{{"Age", "+5"}}, Fields{{"Age", ", 7200"}},
                     Fields{{"Age", "abc, 7200"}}}) {
      CHECK(age_basis(response(200, f), T0, T0).age_value == 0);
    }
    CHECK(age_basis(response(200, {{"age", "007"}}), T0, T0).age_value == 7);
  }
  SUBCASE("a list of Ages, on one line or several, counts as its first member (RFC 9111 5.1)") {
    CHECK(age_basis(response(200, {{"Age", "7200, 0"}}), T0, T0).age_value == 7200);
    CHECK(age_basis(response(200, {{"Age", "7200,0"}}), T0, T0).age_value == 7200);
    CHECK(age_basis(response(200, {{"Age", "7200 , 0"}}), T0, T0).age_value == 7200);
    CHECK(age_basis(response(200, {{"Age", "0,7200"}}), T0, T0).age_value == 0);
    CHECK(age_basis(response(200, {{"Age", "7200"}, {"Age", "0"}}), T0, T0).age_value == 7200);
    CHECK(age_basis(response(200, {{"Age", "0"}, {"Age", "7200"}}), T0, T0).age_value == 0);
    // Two hours old with an hour's max-age: stale, not fresh.
    http::ResponseHead r = response(200, {{"Date", date(T0)}, {"Cache-Control", "max-age=3600"}, {"Age", "7200, 0"}});
    AgeBasis basis = age_basis(r, T0, T0);
    CHECK(basis.current_age(T0) >= 7200);
  }
  SUBCASE("a huge Age saturates and keeps the response stale") {
    AgeBasis a = age_basis(response(200, {{"Age", "2147483648"}}), T0, T0);
    CHECK(a.age_value == 2147483648);
    AgeBasis h = age_basis(response(200, {{"Age", "999999999999999999999999"}}), T0, T0);
    CHECK(h.age_value == kForever);
    CHECK(h.current_age(T0 + 1000) == kForever);
  }
  SUBCASE("a clock that stepped back never makes the response younger") {
    AgeBasis a = age_basis(response(200, {{"Date", date(1000)}}), 1005, 1000);  // request after response
    CHECK(a.corrected_initial_age() == 0);
    CHECK(a.current_age(900) == 0);
    CHECK(a.current_age(1010) == 10);
  }
}

TEST_CASE("StoredAge: ages as the basis it was made from, in half the size") {
  static_assert(sizeof(StoredAge) * 2 == sizeof(AgeBasis));
  const AgeBasis bases[] = {
      age_basis(response(200, {{"Date", date(995)}, {"Age", "10"}}), 1000, 1002),
      age_basis(response(200, {{"Date", date(900)}}), 1000, 1002),
      age_basis(response(200, {{"Date", date(5000)}}), 1000, 1000),
      age_basis(response(200, {{"Date", date(1000)}}), 1005, 1000),  // a clock that stepped back
      age_basis(response(200, {{"Age", "999999999999999999999999"}}), T0, T0),
  };
  for (const AgeBasis& basis : bases) {
    const StoredAge stored = basis;
    CHECK(stored.response_time() == basis.response_time);
    CHECK(stored.corrected_initial_age() == basis.corrected_initial_age());
    for (Seconds now : {Seconds{0}, Seconds{900}, Seconds{1002}, Seconds{1500}, T0, T0 + 86400, kForever})
      CHECK(stored.current_age(now) == basis.current_age(now));
    // What a memcached record holds of it reads back the same.
    CHECK(StoredAge(stored.expanded()).corrected_initial_age() == stored.corrected_initial_age());
  }
}

TEST_CASE("StoredCacheControl: a response's directives kept in 20 bytes") {
  static_assert(sizeof(StoredCacheControl) == 20);
  SUBCASE("every flag and value comes back") {
    const CacheControl parsed =
        cc("no-cache, must-revalidate, proxy-revalidate, public, immutable, max-age=60, s-maxage=120, "
           "stale-while-revalidate=30, stale-if-error=86400");
    const CacheControl back = StoredCacheControl(parsed).get();
    CHECK(back.no_cache);
    CHECK(back.must_revalidate);
    CHECK(back.proxy_revalidate);
    CHECK(back.is_public);
    CHECK(back.immutable);
    CHECK_FALSE(back.no_store);
    CHECK_FALSE(back.is_private);
    CHECK(back.max_age == 60);
    CHECK(back.s_maxage == 120);
    CHECK(back.stale_while_revalidate == 30);
    CHECK(back.stale_if_error == 86400);
    const CacheControl other = StoredCacheControl(cc("no-store, private")).get();
    CHECK(other.no_store);
    CHECK(other.is_private);
    CHECK_FALSE(other.no_cache);
    CHECK_FALSE(other.is_public);
  }
  SUBCASE("absent values stay absent, and 0 stays 0") {
    const CacheControl back = StoredCacheControl(cc("max-age=0")).get();
    CHECK(back.max_age == 0);
    CHECK_FALSE(back.s_maxage);
    CHECK_FALSE(back.stale_while_revalidate);
    CHECK_FALSE(back.stale_if_error);
    CHECK_FALSE(StoredCacheControl().get().max_age);
  }
  SUBCASE("huge values saturate at 136 years, still present, never wrapping to small or none") {
    const CacheControl back =
        StoredCacheControl(cc("max-age=4294967295, s-maxage=999999999999999999999999, stale-if-error=4294967294")).get();
    CHECK(back.max_age == 4294967294);
    CHECK(back.s_maxage == 4294967294);
    CHECK(back.stale_if_error == 4294967294);
    CacheControl negative;
    negative.stale_while_revalidate = -5;  // never parsed, but a caller could set it
    CHECK(StoredCacheControl(negative).get().stale_while_revalidate == 0);
  }
  SUBCASE("request directives are not kept") {
    const CacheControl back = StoredCacheControl(cc("max-stale=5, min-fresh=3, only-if-cached", true)).get();
    CHECK_FALSE(back.max_stale);
    CHECK_FALSE(back.min_fresh);
    CHECK_FALSE(back.only_if_cached);
  }
}

TEST_CASE("freshness_lifetime: s-maxage, then max-age, then Expires - Date") {
  auto lifetime = [](Fields f, StoreOptions options = {}) {
    http::ResponseHead r = response(200, f);
    return freshness_lifetime(r, parse_cache_control(r.headers, false), age_basis(r, T0, T0), options);
  };
  CHECK(lifetime({{"Cache-Control", "max-age=3600"}}) == 3600);
  CHECK(lifetime({{"Cache-Control", "max-age=3600, s-maxage=1"}}) == 1);
  CHECK(lifetime({{"Cache-Control", "s-maxage=1, max-age=3600"}}) == 1);
  CHECK(lifetime({{"Cache-Control", "max-age=3600"}, {"Cache-Control", "s-maxage=1"}}) == 1);
  CHECK(lifetime({{"Cache-Control", "max-age=1, s-maxage=3600"}}) == 3600);
  CHECK(lifetime({{"Cache-Control", "max-age=3600"}, {"Expires", date(T0 - 10000)}, {"Date", date(T0)}}) == 3600);
  CHECK(lifetime({{"Cache-Control", "max-age=3600"}, {"Expires", "0"}, {"Date", date(T0)}}) == 3600);
  CHECK(lifetime({{"Cache-Control", "max-age=0"}, {"Expires", date(T0 + 10000)}, {"Date", date(T0)}}) == 0);
  CHECK(lifetime({{"Cache-Control", "max-age=abc"}, {"Expires", date(T0 + 10000)}, {"Date", date(T0)}}) == 0);

  SUBCASE("Expires (cache-tests expires-freshness)") {
    CHECK(lifetime({{"Expires", date(T0 + 30 * 86400)}, {"Date", date(T0)}}) == 30 * 86400);
    CHECK(lifetime({{"Expires", date(T0 - 30 * 86400)}, {"Date", date(T0)}}) == 0);
    CHECK(lifetime({{"Expires", date(T0)}, {"Date", date(T0)}}) == 0);
    CHECK(lifetime({{"Expires", date(T0 + 300)}, {"Date", date(T0 + 400)}}) == 0);
    CHECK(lifetime({{"Expires", "0"}, {"Date", date(T0)}}) == 0);
    CHECK(lifetime({{"Expires", "Thu, 18 Aug 2050 02:01:18 UTC"}, {"Date", date(T0)}}) == 0);
    CHECK(lifetime({{"Expires", "THU, 18 AUG 2050 02:01:18 gmt"}, {"Date", date(T0)}}) > 0);
    // Date invalid: the response time stands in for it
    CHECK(lifetime({{"Expires", date(T0 + 10)}, {"Date", "foo"}}) == 10);
    CHECK(lifetime({{"Expires", date(T0 + 10)}}) == 10);
    // Expires relative to Date, not to the receiving clock
    CHECK(lifetime({{"Expires", date(T0 + 10)}, {"Date", date(T0 - 10)}}) == 20);
    // several Expires: the earliest; one invalid: expired
    CHECK(lifetime({{"Expires", date(T0 + 100)}, {"Expires", date(T0 + 50)}, {"Date", date(T0)}}) == 50);
    CHECK(lifetime({{"Expires", date(T0 + 100)}, {"Expires", "never"}, {"Date", date(T0)}}) == 0);
  }
  SUBCASE("explicit freshness wins over the heuristic and the ttl") {
    CHECK(lifetime({{"Cache-Control", "max-age=5"}, {"Last-Modified", date(T0 - 86400)}},
                   StoreOptions{.default_ttl = 999}) == 5);
    CHECK(lifetime({{"Expires", date(T0)}, {"Last-Modified", date(T0 - 86400)}, {"Date", date(T0)}},
                   StoreOptions{.default_ttl = 999}) == 0);
  }
  SUBCASE("never negative, never more than max_ttl") {
    CHECK(lifetime({{"Cache-Control", "max-age=3600"}}, StoreOptions{.max_ttl = 60}) == 60);
    CHECK(lifetime({{"Cache-Control", "max-age=99999999999999999999"}}) == kForever);
    CHECK(lifetime({{"Cache-Control", "max-age=3600"}}, StoreOptions{.max_ttl = -5}) == 0);
    CHECK(lifetime({}, StoreOptions{.default_ttl = -5}) == 0);
  }
}

TEST_CASE("freshness_lifetime: the Last-Modified heuristic and the route ttl") {
  auto lifetime = [](int status, Fields f, StoreOptions options = {}) {
    http::ResponseHead r = response(status, f);
    return freshness_lifetime(r, parse_cache_control(r.headers, false), age_basis(r, T0, T0), options);
  };
  std::string now = date(T0);
  CHECK(lifetime(200, {{"Last-Modified", date(T0 - 86400)}, {"Date", now}}) == 8640);
  CHECK(lifetime(200, {{"Last-Modified", date(T0 - 10000)}, {"Date", now}}) == 1000);
  CHECK(lifetime(200, {{"Last-Modified", date(T0 - 3600)}, {"Date", now}}) == 360);
  CHECK(lifetime(404, {{"Last-Modified", date(T0 - 3600)}, {"Date", now}}) == 360);
  // 10% of the Date - Last-Modified gap, not of the receiving clock
  CHECK(lifetime(200, {{"Last-Modified", date(T0 - 2000)}, {"Date", date(T0 - 1000)}}) == 100);
  // capped
  CHECK(lifetime(200, {{"Last-Modified", date(T0 - 365 * 86400)}, {"Date", now}}) == 86400);
  CHECK(lifetime(200, {{"Last-Modified", date(T0 - 365 * 86400)}, {"Date", now}}, StoreOptions{.heuristic_cap = 600}) ==
        600);
  CHECK(lifetime(200, {{"Last-Modified", date(T0 - 86400)}}, StoreOptions{.heuristic_cap = 0}) == 0);
  // not for other statuses, unless public
  CHECK(lifetime(201, {{"Last-Modified", date(T0 - 86400)}, {"Date", now}}) == 0);
  CHECK(lifetime(500, {{"Last-Modified", date(T0 - 86400)}, {"Date", now}}, StoreOptions{.default_ttl = 60}) == 0);
  CHECK(lifetime(599, {{"Last-Modified", date(T0 - 86400)}, {"Date", now}, {"Cache-Control", "public"}}) == 8640);
  // no usable Last-Modified: the route ttl
  CHECK(lifetime(200, {}, StoreOptions{.default_ttl = 30}) == 30);
  CHECK(lifetime(200, {{"Last-Modified", "garbage"}}, StoreOptions{.default_ttl = 30}) == 30);
  CHECK(lifetime(200, {{"Last-Modified", date(T0 + 500)}, {"Date", now}}, StoreOptions{.default_ttl = 30}) == 30);
  CHECK(lifetime(200, {{"Last-Modified", now}, {"Date", now}}, StoreOptions{.default_ttl = 30}) == 30);
  CHECK(lifetime(200, {{"Last-Modified", date(T0 - 5)}, {"Date", now}}, StoreOptions{.default_ttl = 30}) == 30);
  CHECK(lifetime(200, {{"Last-Modified", date(T0 - 5)}, {"Date", now}}) == 0);
  CHECK(lifetime(200, {}) == 0);
  CHECK(lifetime(200, {{"Last-Modified", date(T0 - 86400)}}, StoreOptions{.max_ttl = 100}) == 100);
}

// ---- using a stored response ----

TEST_CASE("decide: fresh, stale, and what the request asks") {
  CacheControl plain;
  CacheControl none;
  CHECK(decide(none, view(plain, 100, 0)) == Use::kFresh);
  CHECK(decide(none, view(plain, 100, 99)) == Use::kFresh);
  CHECK(decide(none, view(plain, 100, 100)) == Use::kRevalidate);  // fresh only while lifetime > age
  CHECK(decide(none, view(plain, 0, 0)) == Use::kRevalidate);

  SUBCASE("no-cache on either side") {
    CHECK(decide(cc("no-cache", true), view(plain, 3600, 0)) == Use::kRevalidate);
    CHECK(decide(parse_cache_control(headers({{"Pragma", "no-cache"}}), true), view(plain, 3600, 0)) ==
          Use::kRevalidate);
    CacheControl no_cache = cc("max-age=10000, no-cache");
    CHECK(decide(none, view(no_cache, 10000, 0)) == Use::kRevalidate);
    CHECK(decide(cc("max-stale", true), view(no_cache, 10000, 20000)) == Use::kRevalidate);
  }
  SUBCASE("request max-age") {
    CHECK(decide(cc("max-age=600", true), view(plain, 3600, 1800)) == Use::kRevalidate);  // ccreq-magreaterage
    CHECK(decide(cc("max-age=600", true), view(plain, 3600, 600)) == Use::kFresh);
    CHECK(decide(cc("max-age=0", true), view(plain, 3600, 0)) == Use::kFresh);
    CHECK(decide(cc("max-age=0", true), view(plain, 3600, 1)) == Use::kRevalidate);
    CHECK(decide(cc("max-age=abc", true), view(plain, 3600, 3)) == Use::kRevalidate);
  }
  SUBCASE("request min-fresh") {
    CHECK(decide(cc("min-fresh=2000", true), view(plain, 1500, 0)) == Use::kRevalidate);     // ccreq-min-fresh
    CHECK(decide(cc("min-fresh=1000", true), view(plain, 1500, 1000)) == Use::kRevalidate);  // ccreq-min-fresh-age
    CHECK(decide(cc("min-fresh=500", true), view(plain, 1500, 1000)) == Use::kFresh);        // exactly enough
    CHECK(decide(cc("min-fresh=501", true), view(plain, 1500, 1000)) == Use::kRevalidate);
    CHECK(decide(cc("min-fresh=0", true), view(plain, 1500, 1000)) == Use::kFresh);
    CHECK(decide(cc("min-fresh=x", true), view(plain, 10 * 365 * 86400, 0)) == Use::kRevalidate);
  }
  SUBCASE("request max-stale") {
    CHECK(decide(cc("max-stale=1000", true), view(cc("max-age=1"), 1, 4)) == Use::kStaleAllowed);  // ccreq-max-stale
    CHECK(decide(cc("max-stale=1000", true), view(cc("max-age=1500"), 1500, 2000)) ==
          Use::kStaleAllowed);  // ccreq-max-stale-age
    CHECK(decide(cc("max-stale=500", true), view(plain, 1500, 2000)) == Use::kStaleAllowed);  // boundary
    CHECK(decide(cc("max-stale=499", true), view(plain, 1500, 2000)) == Use::kRevalidate);
    CHECK(decide(cc("max-stale", true), view(plain, 0, kForever)) == Use::kStaleAllowed);
    CHECK(decide(cc("max-stale=0", true), view(plain, 100, 100)) == Use::kStaleAllowed);
    CHECK(decide(cc("max-stale=0", true), view(plain, 100, 101)) == Use::kRevalidate);
    CHECK(decide(cc("max-stale=10", true), view(plain, 100, 50)) == Use::kFresh);
  }
  SUBCASE("never stale under must-revalidate, proxy-revalidate or s-maxage") {
    for (std::string_view d : {"max-age=2, must-revalidate", "max-age=2, proxy-revalidate", "s-maxage=2"}) {
      CAPTURE(d);
      CacheControl r = cc(std::string(d) + ", stale-while-revalidate=600");
      CHECK(decide(none, view(r, 2, 1)) == Use::kFresh);  // cc-resp-must-revalidate-fresh
      CHECK(decide(none, view(r, 2, 3)) == Use::kRevalidate);
      CHECK(decide(cc("max-stale", true), view(r, 2, 3)) == Use::kRevalidate);
      CHECK(decide(none, view(r, 2, 3, 600)) == Use::kRevalidate);
    }
  }
  SUBCASE("stale-while-revalidate and the route's grace") {
    CacheControl swr = cc("max-age=10, stale-while-revalidate=60");
    CHECK(decide(none, view(swr, 10, 5)) == Use::kFresh);
    CHECK(decide(none, view(swr, 10, 10)) == Use::kStaleWhileRevalidate);
    CHECK(decide(none, view(swr, 10, 70)) == Use::kStaleWhileRevalidate);
    CHECK(decide(none, view(swr, 10, 71)) == Use::kRevalidate);
    CHECK(decide(none, view(cc("max-age=10, stale-while-revalidate=0"), 10, 10)) == Use::kRevalidate);
    CHECK(decide(none, view(plain, 10, 40, 30)) == Use::kStaleWhileRevalidate);
    CHECK(decide(none, view(plain, 10, 41, 30)) == Use::kRevalidate);
    CHECK(decide(none, view(plain, 10, 10, 0)) == Use::kRevalidate);
    CHECK(decide(none, view(swr, 10, 100, 200)) == Use::kStaleWhileRevalidate);  // the longer of the two
    // the client's max-stale is checked first: it needs no refresh
    CHECK(decide(cc("max-stale=100", true), view(swr, 10, 20)) == Use::kStaleAllowed);
    // a request no-cache beats every stale permission
    CHECK(decide(cc("no-cache", true), view(swr, 10, 20, 100)) == Use::kRevalidate);
  }
  SUBCASE("immutable changes nothing for a shared cache") {
    CHECK(decide(none, view(cc("max-age=2, immutable"), 2, 3)) == Use::kRevalidate);
  }
  SUBCASE("extreme values") {
    CHECK(decide(none, view(plain, kForever, kForever - 1)) == Use::kFresh);
    CHECK(decide(cc("min-fresh=99999999999999999999", true), view(plain, kForever, 1)) == Use::kRevalidate);
    CHECK(decide(none, view(plain, -5, -5)) == Use::kRevalidate);
    CHECK(decide(none, view(plain, INT64_MAX, INT64_MIN)) == Use::kFresh);
  }
}

TEST_CASE("may_serve_stale_on_error: stale-if-error, grace, and what forbids it") {
  CacheControl none;
  CacheControl sie = cc("max-age=2, stale-if-error=60");
  CHECK(may_serve_stale_on_error(none, view(sie, 2, 10)));
  CHECK(may_serve_stale_on_error(none, view(sie, 2, 62)));
  CHECK_FALSE(may_serve_stale_on_error(none, view(sie, 2, 63)));
  CHECK_FALSE(may_serve_stale_on_error(none, view(cc("max-age=2"), 2, 3)));  // nothing allows it
  CHECK(may_serve_stale_on_error(cc("stale-if-error=100", true), view(cc("max-age=2"), 2, 50)));
  CHECK_FALSE(may_serve_stale_on_error(cc("stale-if-error=10", true), view(cc("max-age=2"), 2, 50)));
  CHECK(may_serve_stale_on_error(none, view(cc("max-age=2"), 2, 50, 100)));
  CHECK_FALSE(may_serve_stale_on_error(none, view(cc("max-age=2"), 2, 150, 100)));
  CHECK(may_serve_stale_on_error(none, view(cc("max-age=100"), 100, 50)));  // not even stale
  CHECK_FALSE(may_serve_stale_on_error(none, view(cc("max-age=2, stale-if-error=0"), 2, 2)));

  // cache-tests stale-close-*: prohibited by the response
  for (std::string_view d : {"must-revalidate", "proxy-revalidate", "no-cache", "s-maxage=2"}) {
    CAPTURE(d);
    CacheControl r = cc("max-age=2, stale-if-error=600, " + std::string(d));
    CHECK_FALSE(may_serve_stale_on_error(cc("stale-if-error=600", true), view(r, 2, 5, 600)));
  }
  CHECK_FALSE(may_serve_stale_on_error(cc("no-cache", true), view(sie, 2, 5, 600)));
  CHECK_FALSE(may_serve_stale_on_error(cc("no-cache", true), view(cc("max-age=100"), 100, 5)));
  CHECK(may_serve_stale_on_error(none, view(cc("max-age=100, must-revalidate"), 100, 5)));  // fresh
}

// ---- conditional requests ----

TEST_CASE("etag_matches_any: strong and weak comparison, lists, malformed tags") {
  // RFC 9110 8.8.3.2 table
  CHECK_FALSE(etag_matches_any("W/\"1\"", "W/\"1\"", false));
  CHECK(etag_matches_any("W/\"1\"", "W/\"1\"", true));
  CHECK_FALSE(etag_matches_any("W/\"1\"", "W/\"2\"", false));
  CHECK_FALSE(etag_matches_any("W/\"1\"", "W/\"2\"", true));
  CHECK_FALSE(etag_matches_any("W/\"1\"", "\"1\"", false));
  CHECK(etag_matches_any("W/\"1\"", "\"1\"", true));
  CHECK(etag_matches_any("\"1\"", "\"1\"", false));
  CHECK(etag_matches_any("\"1\"", "\"1\"", true));
  CHECK(etag_matches_any("\"1\"", "W/\"1\"", true));
  CHECK_FALSE(etag_matches_any("\"1\"", "W/\"1\"", false));

  SUBCASE("lists (cache-tests conditional-etag-strong-respond-multiple-*)") {
    CHECK(etag_matches_any("\"abcdef\", \"1234\", \"5678\"", "\"abcdef\"", true));
    CHECK(etag_matches_any("\"1234\", \"abcdef\", \"5678\"", "\"abcdef\"", true));
    CHECK(etag_matches_any("\"1234\",\"5678\",\"abcdef\"", "\"abcdef\"", false));
    CHECK(etag_matches_any(" , \"1234\" ,, W/\"abcdef\" ", "\"abcdef\"", true));
    CHECK_FALSE(etag_matches_any("\"1234\", \"5678\"", "\"abcdef\"", true));
    CHECK(etag_matches_any("\"a,b\", \"c\"", "\"a,b\"", false));  // a comma inside a tag
    CHECK_FALSE(etag_matches_any("\"a,b\"", "\"a\"", true));
  }
  SUBCASE("*") {
    CHECK(etag_matches_any("*", "\"x\"", false));
    CHECK(etag_matches_any(" * ", "W/\"x\"", false));
    CHECK_FALSE(etag_matches_any("*, \"y\"", "\"x\"", true));  // "*" only alone
  }
  SUBCASE("obs-text, empty and malformed") {
    CHECK(etag_matches_any("\"abcdef\xc3\xbc\"", "\"abcdef\xc3\xbc\"", false));
    CHECK(etag_matches_any("\"\"", "\"\"", false));
    CHECK_FALSE(etag_matches_any("", "\"x\"", true));
    CHECK_FALSE(etag_matches_any("\"x\"", "", true));
    CHECK_FALSE(etag_matches_any("", "", true));
    // malformed tags only equal the same text: never a well-formed tag
    CHECK(etag_matches_any("abcdef", "abcdef", true));
    CHECK_FALSE(etag_matches_any("abcdef", "\"abcdef\"", true));
    CHECK_FALSE(etag_matches_any("\"abcdef\"", "abcdef", true));
    CHECK(etag_matches_any("w/\"abcdef\"", "w/\"abcdef\"", true));
    CHECK_FALSE(etag_matches_any("w/\"abcdef\"", "W/\"abcdef\"", true));
    CHECK_FALSE(etag_matches_any("\"abc", "\"abc\"", true));
    CHECK_FALSE(etag_matches_any("\"a\"b", "\"a\"", true));
  }
}

TEST_CASE("evaluate_preconditions: RFC 9110 13.2.2 order") {
  http::Headers stored = headers({{"ETag", "\"v1\""}, {"Last-Modified", date(T0 - 3000)}, {"Date", date(T0)}});
  auto eval = [&](std::string method, Fields f) { return evaluate_preconditions(request(method, "/x", f), stored); };

  CHECK(eval("GET", {}) == Precondition::kProceed);
  SUBCASE("If-Match: strong comparison") {
    CHECK(eval("GET", {{"If-Match", "\"v1\""}}) == Precondition::kProceed);
    CHECK(eval("GET", {{"If-Match", "\"v0\", \"v1\""}}) == Precondition::kProceed);
    CHECK(eval("GET", {{"If-Match", "\"v2\""}}) == Precondition::kFailed);
    CHECK(eval("GET", {{"If-Match", "W/\"v1\""}}) == Precondition::kFailed);
    CHECK(eval("PUT", {{"If-Match", "*"}}) == Precondition::kProceed);
    CHECK(eval("GET", {{"If-Match", "\"v2\""}, {"If-Match", "\"v1\""}}) == Precondition::kProceed);
    http::Headers no_etag = headers({{"Last-Modified", date(T0 - 3000)}});
    CHECK(evaluate_preconditions(get({{"If-Match", "\"v1\""}}), no_etag) == Precondition::kFailed);
    CHECK(evaluate_preconditions(get({{"If-Match", "*"}}), no_etag) == Precondition::kProceed);
    http::Headers weak = headers({{"ETag", "W/\"v1\""}});
    CHECK(evaluate_preconditions(get({{"If-Match", "W/\"v1\""}}), weak) == Precondition::kFailed);
  }
  SUBCASE("If-Unmodified-Since, only without If-Match") {
    CHECK(eval("GET", {{"If-Unmodified-Since", date(T0 - 4000)}}) == Precondition::kFailed);
    CHECK(eval("GET", {{"If-Unmodified-Since", date(T0 - 3000)}}) == Precondition::kProceed);
    CHECK(eval("GET", {{"If-Unmodified-Since", date(T0)}}) == Precondition::kProceed);
    CHECK(eval("GET", {{"If-Unmodified-Since", "yesterday"}}) == Precondition::kProceed);
    CHECK(eval("GET", {{"If-Unmodified-Since", date(T0 - 4000)}, {"If-Unmodified-Since", date(T0 - 4000)}}) ==
          Precondition::kProceed);  // a list of dates is ignored
    CHECK(eval("GET", {{"If-Match", "\"v1\""}, {"If-Unmodified-Since", date(T0 - 4000)}}) == Precondition::kProceed);
    CHECK(evaluate_preconditions(get({{"If-Unmodified-Since", date(T0 - 4000)}}), headers({{"ETag", "\"v1\""}})) ==
          Precondition::kProceed);
  }
  SUBCASE("If-None-Match: weak comparison; 304 for GET and HEAD, 412 otherwise") {
    CHECK(eval("GET", {{"If-None-Match", "\"v1\""}}) == Precondition::kNotModified);
    CHECK(eval("HEAD", {{"If-None-Match", "W/\"v1\""}}) == Precondition::kNotModified);
    CHECK(eval("GET", {{"If-None-Match", "\"v0\", \"v1\""}}) == Precondition::kNotModified);
    CHECK(eval("GET", {{"If-None-Match", "\"v0\""}, {"If-None-Match", "\"v1\""}}) == Precondition::kNotModified);
    CHECK(eval("GET", {{"If-None-Match", "*"}}) == Precondition::kNotModified);
    CHECK(eval("GET", {{"If-None-Match", "\"v2\""}}) == Precondition::kProceed);
    CHECK(eval("PUT", {{"If-None-Match", "\"v1\""}}) == Precondition::kFailed);
    CHECK(eval("DELETE", {{"If-None-Match", "*"}}) == Precondition::kFailed);
    CHECK(evaluate_preconditions(get({{"If-None-Match", "\"v1\""}}), headers({})) == Precondition::kProceed);
    // If-Match failing comes first
    CHECK(eval("GET", {{"If-Match", "\"v2\""}, {"If-None-Match", "\"v1\""}}) == Precondition::kFailed);
  }
  SUBCASE("If-None-Match takes precedence over If-Modified-Since (conditional-etag-precedence)") {
    CHECK(eval("GET", {{"If-None-Match", "\"v1\""}, {"If-Modified-Since", date(T0 - 5000)}}) ==
          Precondition::kNotModified);
    CHECK(eval("GET", {{"If-None-Match", "\"v2\""}, {"If-Modified-Since", date(T0)}}) == Precondition::kProceed);
  }
  SUBCASE("If-Modified-Since (cache-tests conditional-lm)") {
    CHECK(eval("GET", {{"If-Modified-Since", date(T0 - 3000)}}) == Precondition::kNotModified);
    CHECK(eval("GET", {{"If-Modified-Since", date(T0 - 2000)}}) == Precondition::kNotModified);
    CHECK(eval("GET", {{"If-Modified-Since", date(T0 - 3001)}}) == Precondition::kProceed);
    CHECK(eval("HEAD", {{"If-Modified-Since", date(T0 - 2000)}}) == Precondition::kNotModified);
    CHECK(eval("POST", {{"If-Modified-Since", date(T0 - 2000)}}) == Precondition::kProceed);
    CHECK(eval("GET", {{"If-Modified-Since", "Tuesday, 14-Nov-23 21:23:20 GMT"}}) == Precondition::kNotModified);
    CHECK(eval("GET", {{"If-Modified-Since", "garbage"}}) == Precondition::kProceed);
    CHECK(eval("GET", {{"If-Modified-Since", date(T0)}, {"If-Modified-Since", date(T0)}}) == Precondition::kProceed);
    // no Last-Modified: the stored Date stands in (RFC 9111 4.3.2, conditional-lm-fresh-no-lm)
    http::Headers dated = headers({{"Date", date(T0)}});
    CHECK(evaluate_preconditions(get({{"If-Modified-Since", date(T0 + 10)}}), dated) == Precondition::kNotModified);
    CHECK(evaluate_preconditions(get({{"If-Modified-Since", date(T0 - 3000)}}), dated) == Precondition::kProceed);
    CHECK(evaluate_preconditions(get({{"If-Modified-Since", date(T0)}}), headers({})) == Precondition::kProceed);
    // an invalid Last-Modified falls back to Date too
    http::Headers bad_lm = headers({{"Last-Modified", "x"}, {"Date", date(T0)}});
    CHECK(evaluate_preconditions(get({{"If-Modified-Since", date(T0)}}), bad_lm) == Precondition::kNotModified);
  }
}

// ---- ranges ----

TEST_CASE("decide_range: a single byte range") {
  http::Headers stored = headers({{"ETag", "\"v1\""}});
  auto range = [&](std::string_view spec, uint64_t size = 11) {
    return decide_range(get({{"Range", spec}}), stored, size);
  };
  auto is_partial = [](RangeDecision d, uint64_t first, uint64_t last) {
    return d.kind == RangeDecision::kPartial && d.range.first == first && d.range.last == last;
  };
  CHECK(is_partial(range("bytes=0-1"), 0, 1));
  CHECK(is_partial(range("bytes=1-"), 1, 10));
  CHECK(is_partial(range("bytes=-1"), 10, 10));
  CHECK(is_partial(range("bytes=-5", 10), 5, 9));
  CHECK(is_partial(range("bytes=0-0"), 0, 0));
  CHECK(is_partial(range("bytes=10-10"), 10, 10));
  CHECK(is_partial(range("bytes=5-100"), 5, 10));             // last clamped
  CHECK(is_partial(range("bytes=-11"), 0, 10));               // the whole of it
  CHECK(is_partial(range("bytes=-100"), 0, 10));              // suffix longer than the body: whole
  CHECK(is_partial(range("Bytes=2-3"), 2, 3));                // the unit is case-insensitive
  CHECK(is_partial(range("bytes=2-3,"), 2, 3));               // empty list elements are ignored
  CHECK(is_partial(range("bytes= 2-3 "), 2, 3));
  CHECK(is_partial(range("bytes=0-99999999999999999999999"), 0, 10));
  CHECK(is_partial(range("bytes=-99999999999999999999999"), 0, 10));

  SUBCASE("unsatisfiable") {
    CHECK(range("bytes=11-").kind == RangeDecision::kUnsatisfiable);
    CHECK(range("bytes=11-20").kind == RangeDecision::kUnsatisfiable);
    CHECK(range("bytes=99999999999999999999999-").kind == RangeDecision::kUnsatisfiable);
    CHECK(range("bytes=-0").kind == RangeDecision::kUnsatisfiable);
    CHECK(range("bytes=0-", 0).kind == RangeDecision::kUnsatisfiable);
    CHECK(range("bytes=-5", 0).kind == RangeDecision::kFull);  // nothing to cut from
  }
  SUBCASE("several ranges or bad syntax: the full response") {
    for (std::string_view bad : {"bytes=0-1,3-4", "bytes=0-1, -1", "bytes=5-2", "bytes=a-b", "bytes=1-a", "bytes=-",
                                 "bytes=", "bytes", "bytes 0-1", "items=0-1", "bytes=0--1", "bytes=--1", "bytes=1",
                                 "bytes=0x1-2", "=0-1", "bytes=-1-2", "bytes=+1-2", "bytes=1 -2", ""}) {
      CAPTURE(bad);
      CHECK(range(bad).kind == RangeDecision::kFull);
    }
    CHECK(decide_range(get({{"Range", "bytes=0-1"}, {"Range", "bytes=2-3"}}), stored, 11).kind == RangeDecision::kFull);
    CHECK(decide_range(get(), stored, 11).kind == RangeDecision::kFull);
  }
  SUBCASE("only for GET") {
    CHECK(decide_range(request("HEAD", "/x", {{"Range", "bytes=0-1"}}), stored, 11).kind == RangeDecision::kFull);
    CHECK(decide_range(request("POST", "/x", {{"Range", "bytes=0-1"}}), stored, 11).kind == RangeDecision::kFull);
  }
}

TEST_CASE("decide_range: If-Range") {
  http::Headers stored = headers({{"ETag", "\"v1\""}, {"Last-Modified", date(T0 - 3600)}, {"Date", date(T0)}});
  auto with = [&](std::string_view if_range, std::string_view spec = "bytes=0-1") {
    return decide_range(get({{"Range", spec}, {"If-Range", if_range}}), stored, 11).kind;
  };
  CHECK(with("\"v1\"") == RangeDecision::kPartial);
  CHECK(with(" \"v1\" ") == RangeDecision::kPartial);
  CHECK(with("\"v2\"") == RangeDecision::kFull);
  CHECK(with("W/\"v1\"") == RangeDecision::kFull);  // weak tags never match
  CHECK(with("\"v1\", \"v2\"") == RangeDecision::kFull);
  CHECK(with(date(T0 - 3600)) == RangeDecision::kPartial);
  CHECK(with(date(T0 - 3599)) == RangeDecision::kFull);  // exact match only
  CHECK(with(date(T0 - 3601)) == RangeDecision::kFull);
  CHECK(with("not a validator") == RangeDecision::kFull);
  CHECK(with("") == RangeDecision::kFull);
  // If-Range failing sends the full response even for a range past the end
  CHECK(with("\"v2\"", "bytes=50-") == RangeDecision::kFull);
  CHECK(with("\"v1\"", "bytes=50-") == RangeDecision::kUnsatisfiable);
  CHECK(decide_range(get({{"Range", "bytes=0-1"}, {"If-Range", "\"v1\""}, {"If-Range", "\"v1\""}}), stored, 11).kind ==
        RangeDecision::kFull);

  SUBCASE("a weak stored validator never satisfies If-Range") {
    http::Headers weak = headers({{"ETag", "W/\"v1\""}});
    CHECK(decide_range(get({{"Range", "bytes=0-1"}, {"If-Range", "W/\"v1\""}}), weak, 11).kind == RangeDecision::kFull);
    CHECK(decide_range(get({{"Range", "bytes=0-1"}, {"If-Range", "\"v1\""}}), weak, 11).kind == RangeDecision::kFull);
    CHECK(decide_range(get({{"Range", "bytes=0-1"}, {"If-Range", "\"v1\""}}), headers({}), 11).kind ==
          RangeDecision::kFull);
  }
  SUBCASE("a date is a strong validator only 60 s or more before the stored Date (RFC 9110 8.8.2.2)") {
    std::string lm = date(T0 - 30);
    http::Headers recent = headers({{"Last-Modified", lm}, {"Date", date(T0)}});
    CHECK(decide_range(get({{"Range", "bytes=0-1"}, {"If-Range", lm}}), recent, 11).kind == RangeDecision::kFull);
    http::Headers old = headers({{"Last-Modified", date(T0 - 60)}, {"Date", date(T0)}});
    CHECK(decide_range(get({{"Range", "bytes=0-1"}, {"If-Range", date(T0 - 60)}}), old, 11).kind ==
          RangeDecision::kPartial);
    http::Headers undated = headers({{"Last-Modified", date(T0 - 3600)}});
    CHECK(decide_range(get({{"Range", "bytes=0-1"}, {"If-Range", date(T0 - 3600)}}), undated, 11).kind ==
          RangeDecision::kFull);
  }
}

// ---- revalidation and invalidation ----

TEST_CASE("merge_not_modified: the 304's fields replace the stored ones by name") {
  http::Headers stored = headers({{"Content-Type", "text/plain"},
                                  {"Cache-Control", "max-age=1"},
                                  {"Set-Cookie", "a=1"},
                                  {"ETag", "\"e1\""},
                                  {"set-cookie", "b=1"},
                                  {"Content-Length", "11"},
                                  {"X-Keep", "stored"}});
  http::Headers nm = headers({{"cache-control", "max-age=3600"},
                              {"Set-Cookie", "a=2"},
                              {"Set-Cookie", "b=2"},
                              {"Content-Length", "0"},
                              {"Transfer-Encoding", "chunked"},
                              {"Connection", "close, X-Hop"},
                              {"Keep-Alive", "timeout=5"},
                              {"X-Hop", "1"},
                              {"Content-Type", "text/plain;charset=utf-8"},
                              {"X-New", "n"},
                              {"Date", date(T0)}});
  http::Headers m = merge_not_modified(stored, nm);
  std::vector<std::pair<std::string, std::string>> got;
  for (size_t i = 0; i < m.size(); ++i) got.emplace_back(m.name(i), m.value(i));
  std::vector<std::pair<std::string, std::string>> want = {
      {"Content-Type", "text/plain;charset=utf-8"},  // replaced in place
      {"cache-control", "max-age=3600"},
      {"Set-Cookie", "a=2"},  // both stored Set-Cookie fields replaced by the 304's two
      {"Set-Cookie", "b=2"},
      {"ETag", "\"e1\""},
      {"Content-Length", "11"},  // never taken from the 304
      {"X-Keep", "stored"},
      {"X-New", "n"},  // new names appended in the 304's order
      {"Date", date(T0)},
  };
  CHECK(got == want);

  SUBCASE("an empty 304 changes nothing; an empty store takes the 304's end-to-end fields") {
    http::Headers same = merge_not_modified(stored, headers({}));
    REQUIRE(same.size() == stored.size());
    for (size_t i = 0; i < same.size(); ++i) CHECK(same.value(i) == stored.value(i));
    http::Headers fresh = merge_not_modified(headers({}), nm);
    CHECK(fresh.count("content-length") == 0);
    CHECK(fresh.count("x-hop") == 0);
    CHECK(fresh.count("connection") == 0);
    CHECK(fresh.get("x-new") == std::string_view("n"));
  }
}

TEST_CASE("invalidated_targets: unsafe methods with 2xx/3xx, Location and Content-Location on the same host") {
  auto targets = [](std::string method, std::string target, int status, Fields f = {},
                    std::string_view host = "www.example.com") {
    return invalidated_targets(request(method, target), response(status, f), host);
  };
  using V = std::vector<std::string>;
  for (std::string m : {"POST", "PUT", "DELETE", "PATCH", "M-SEARCH"}) {
    CAPTURE(m);
    CHECK(targets(m, "/a/b?x=1", 200) == V{"/a/b?x=1"});
    CHECK(targets(m, "/a/b", 500) == V{});  // invalidate-*-failed
  }
  for (std::string m : {"GET", "HEAD", "OPTIONS", "TRACE"}) CHECK(targets(m, "/a", 200, {{"Location", "/b"}}) == V{});
  CHECK(targets("POST", "/a", 303, {{"Location", "/b"}}) == V{"/a", "/b"});
  CHECK(targets("POST", "/a", 399) == V{"/a"});
  CHECK(targets("POST", "/a", 199) == V{});
  CHECK(targets("POST", "/a", 400) == V{});

  SUBCASE("Location and Content-Location forms") {
    CHECK(targets("POST", "/a/b", 201, {{"Location", "/c?q=1"}}) == V{"/a/b", "/c?q=1"});
    CHECK(targets("POST", "/a/b", 201, {{"Content-Location", "/c"}}) == V{"/a/b", "/c"});
    CHECK(targets("POST", "/a/b", 201, {{"Location", "/c"}, {"Content-Location", "/d"}}) == V{"/a/b", "/c", "/d"});
    CHECK(targets("POST", "/a/b?x", 201, {{"Location", "c"}}) == V{"/a/b?x", "/a/c"});
    CHECK(targets("POST", "/a/b/", 201, {{"Location", "c"}}) == V{"/a/b/", "/a/b/c"});
    CHECK(targets("POST", "/a/b", 201, {{"Location", "../c"}}) == V{"/a/b", "/c"});
    CHECK(targets("POST", "/a/b", 201, {{"Location", "./c/./d/../e"}}) == V{"/a/b", "/a/c/e"});
    CHECK(targets("POST", "/a/b", 201, {{"Location", "?page=2"}}) == V{"/a/b", "/a/b?page=2"});
    CHECK(targets("POST", "/a/b", 201, {{"Location", "/c#frag"}}) == V{"/a/b", "/c"});
    CHECK(targets("POST", "/a/b", 201, {{"Location", "/a/b"}}) == V{"/a/b"});  // no duplicates
    CHECK(targets("POST", "/a/b", 201, {{"Location", ""}}) == V{"/a/b"});
  }
  SUBCASE("absolute URIs: same host only, case-insensitive, port ignored") {
    CHECK(targets("POST", "/a", 201, {{"Location", "http://www.example.com/c"}}) == V{"/a", "/c"});
    CHECK(targets("POST", "/a", 201, {{"Location", "https://WWW.Example.COM:8443/c?d"}}) == V{"/a", "/c?d"});
    CHECK(targets("POST", "/a", 201, {{"Location", "HTTP://www.example.com"}}) == V{"/a", "/"});
    CHECK(targets("POST", "/a", 201, {{"Location", "//www.example.com/c"}}) == V{"/a", "/c"});
    CHECK(targets("POST", "/a", 201, {{"Location", "http://user@www.example.com:80/c"}}) == V{"/a", "/c"});
    CHECK(targets("POST", "/a", 201, {{"Location", "http://other.example.com/c"}}) == V{"/a"});
    CHECK(targets("POST", "/a", 201, {{"Location", "http://www.example.com.evil/c"}}) == V{"/a"});
    CHECK(targets("POST", "/a", 201, {{"Location", "//other/c"}}) == V{"/a"});
    CHECK(targets("POST", "/a", 201, {{"Location", "mailto:a@www.example.com"}}) == V{"/a"});
    CHECK(targets("POST", "/a", 201, {{"Location", "ftp://www.example.com/c"}}) == V{"/a"});
    CHECK(targets("POST", "/a", 201, {{"Location", "http://www.example.com/c"}}, "WWW.EXAMPLE.COM:8080") ==
          V{"/a", "/c"});
    CHECK(targets("POST", "/a", 201, {{"Location", "http://[::1]:8080/c"}}, "[::1]") == V{"/a", "/c"});
  }
  SUBCASE("an absolute-form request target invalidates its own path") {
    CHECK(targets("POST", "http://www.example.com/a/b?x", 200, {{"Location", "c"}}) == V{"/a/b?x", "/a/c"});
    CHECK(targets("POST", "http://www.example.com", 200) == V{"/"});
    CHECK(targets("OPTIONS", "*", 200) == V{});
    CHECK(targets("POST", "//a/b", 200, {{"Location", "c"}}) == V{"//a/b", "//a/c"});  // origin-form
    CHECK(targets("POST", "*", 200, {{"Location", "c"}}) == V{});
  }
}

TEST_CASE("post_answers_get: RFC 9110 9.3.3, a POST's response naming its own target answers a later GET") {
  const std::string fresh_until = date(T0 + 60);
  auto answers = [](Fields response_fields, int status = 200, Fields request_fields = {},
                    std::string_view method = "POST", std::string_view target = "/a/b?x=1",
                    std::string_view host = "www.example.com") {
    return post_answers_get(request(std::string(method), std::string(target), request_fields), target,
                            response(status, response_fields), host, {});
  };
  SUBCASE("Content-Location equal to the target, relative or absolute, with explicit freshness") {
    CHECK(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "/a/b?x=1"}}));
    CHECK(answers({{"Cache-Control", "s-maxage=60"}, {"Content-Location", "b?x=1"}}));
    CHECK(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "./c/../b?x=1"}}));
    CHECK(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "http://WWW.example.com:8080/a/b?x=1"}}));
    CHECK(answers({{"Date", date(T0)}, {"Expires", fresh_until}, {"Content-Location", "/a/b?x=1"}}));
    CHECK(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "/a/b?x=1"}}, 203));
  }
  SUBCASE("Content-Location naming anything else: another path, query, host or several") {
    CHECK_FALSE(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "/a/b"}}));
    CHECK_FALSE(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "/a/b?x=2"}}));
    CHECK_FALSE(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "/a/c?x=1"}}));
    CHECK_FALSE(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "http://evil.example/a/b?x=1"}}));
    CHECK_FALSE(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "//evil.example/a/b?x=1"}}));
    CHECK_FALSE(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", ""}}));
    CHECK_FALSE(answers({{"Cache-Control", "max-age=60"}}));
    CHECK_FALSE(answers({{"Cache-Control", "max-age=60"},
                         {"Content-Location", "/a/b?x=1"},
                         {"Content-Location", "/a/b?x=1"}}));
  }
  SUBCASE("explicit freshness only: no heuristic for a POST's response") {
    CHECK_FALSE(answers({{"Content-Location", "/a/b?x=1"}, {"Last-Modified", date(T0 - 3600)}}));
    CHECK_FALSE(answers({{"Cache-Control", "public"}, {"Content-Location", "/a/b?x=1"}}));
  }
  SUBCASE("RFC 9110 8.7: only a 200 or 203 is a representation of the target") {
    for (int status : {201, 204, 206, 301, 303, 404, 500}) {
      CAPTURE(status);
      CHECK_FALSE(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "/a/b?x=1"}}, status));
    }
  }
  SUBCASE("what keeps a GET's response out of the cache keeps this one out too") {
    const Fields named = {{"Content-Location", "/a/b?x=1"}};
    auto with = [&](std::string_view cc_value) {
      Fields f = named;
      f.push_back({"Cache-Control", cc_value});
      return f;
    };
    CHECK_FALSE(answers(with("max-age=60, no-store")));
    CHECK_FALSE(answers(with("max-age=60, private")));
    CHECK_FALSE(answers(with("max-age=60"), 200, {{"Authorization", "Basic dTpw"}}));
    CHECK_FALSE(answers(with("max-age=60"), 200, {{"Cache-Control", "no-store"}}));
    Fields cookie = with("max-age=60");
    cookie.push_back({"Set-Cookie", "s=1"});
    CHECK_FALSE(answers(cookie));
  }
  SUBCASE("only a POST, only an origin-form target") {
    for (std::string_view method : {"GET", "PUT", "PATCH", "DELETE"}) {
      CAPTURE(method);
      CHECK_FALSE(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "/a/b?x=1"}}, 200, {}, method));
    }
    CHECK_FALSE(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "*"}}, 200, {}, "POST", "*"));
    CHECK_FALSE(answers({{"Cache-Control", "max-age=60"}, {"Content-Location", "/"}}, 200, {}, "POST", ""));
  }
}

// ---- keys ----

TEST_CASE("cache_key: host, normalised path, query as received") {
  CHECK(cache_key("www.example.com", "/a/b?x=1") == "www.example.com/a/b?x=1");
  CHECK(cache_key("WWW.Example.COM:8080", "/") == "www.example.com/");
  CHECK(cache_key("www.example.com.", "/") == "www.example.com/");
  CHECK(cache_key("[::1]:8080", "/") == "[::1]/");
  CHECK(cache_key("", "/a") == "/a");

  SUBCASE("percent-encoding: unreserved decoded, the rest upper-cased (RFC 3986 6.2.2.2)") {
    CHECK(cache_key("h", "/%7Euser/%41%62%2d%2E%5f") == "h/~user/Ab-._");
    CHECK(cache_key("h", "/a%2fb") == "h/a%2Fb");
    CHECK(cache_key("h", "/a%3ab%3Ac") == "h/a%3Ab%3Ac");
    CHECK(cache_key("h", "/%e2%82%ac") == "h/%E2%82%AC");
    CHECK(cache_key("h", "/100%") == "h/100%25");  // a stray '%' is encoded
    CHECK(cache_key("h", "/100%") == cache_key("h", "/100%25"));
    CHECK(cache_key("h", "/%zz%4") == "h/%25zz%254");
    CHECK(cache_key("h", "/%%341") == "h/%2541");     // never assembles a new triplet
    CHECK(cache_key("h", "/%%341") != cache_key("h", "/A"));
    CHECK(cache_key("h", "/a%20b") == "h/a%20b");
    CHECK(cache_key("h", "/%7e") == cache_key("h", "/~"));
  }
  SUBCASE("dot segments (RFC 3986 5.2.4), after decoding") {
    CHECK(cache_key("h", "/a/./b/../c") == "h/a/c");
    CHECK(cache_key("h", "/a/b/..") == "h/a/");
    CHECK(cache_key("h", "/a/b/.") == "h/a/b/");
    CHECK(cache_key("h", "/../../a") == "h/a");
    CHECK(cache_key("h", "/..") == "h/");
    CHECK(cache_key("h", "/a/%2E%2E/b") == "h/b");
    CHECK(cache_key("h", "/a/%2e/b") == "h/a/b");
    CHECK(cache_key("h", "/a/..b/c") == "h/a/..b/c");
    CHECK(cache_key("h", "/a//b") == "h/a//b");  // empty segments are kept
    CHECK(cache_key("h", "//b/c") == "h//b/c");  // origin-form: an empty first segment, no authority
    CHECK(cache_key("h", "/a/..//b") == "h//b");
    CHECK(cache_key("h", "/a%2F..%2Fb") == "h/a%2F..%2Fb");  // an encoded slash is not a separator
  }
  SUBCASE("the query is kept as is, its \"?\" too") {
    CHECK(cache_key("h", "/p?b=2&a=1") == "h/p?b=2&a=1");
    CHECK(cache_key("h", "/p?a=%7e/../x") == "h/p?a=%7e/../x");
    CHECK(cache_key("h", "/p?") == "h/p?");
    CHECK(cache_key("h", "/p?") != cache_key("h", "/p"));
    CHECK(cache_key("h", "/./p?x/../y") == "h/p?x/../y");
    CHECK(cache_key("h", "/p?a?b") == "h/p?a?b");
  }
  SUBCASE("absolute-form targets use their own path; fragments are dropped") {
    CHECK(cache_key("www.example.com", "http://www.example.com/a/./b?q") == "www.example.com/a/b?q");
    CHECK(cache_key("www.example.com", "http://www.example.com") == "www.example.com/");
    CHECK(cache_key("www.example.com", "https://www.example.com?q") == "www.example.com/?q");
    CHECK(cache_key("h", "/a#frag") == "h/a");
    CHECK(cache_key("h", "/a?x#frag") == "h/a?x");
    CHECK(cache_key("h", "") == "h/");
  }
}

TEST_CASE("vary_key: the request's values of the fields the response's Vary names") {
  auto key = [](Fields response_fields, Fields request_fields) {
    return vary_key(headers(response_fields), headers(request_fields));
  };
  CHECK(key({}, {{"Foo", "1"}}) == std::string(""));
  CHECK(key({{"Vary", "Foo"}}, {{"Foo", "1"}}) == std::string("foo:1\n"));
  CHECK(key({{"Vary", "Foo"}}, {{"Foo", "1"}}) != key({{"Vary", "Foo"}}, {{"Foo", "2"}}));  // vary-no-match
  CHECK(key({{"Vary", "Foo"}}, {{"Foo", "1"}, {"Other", "2"}}) ==
        key({{"Vary", "Foo"}}, {{"Foo", "1"}, {"Other", "3"}}));  // vary-cache-key
  CHECK(key({{"Vary", "Foo"}}, {{"foo", "1"}}) == key({{"Vary", "Foo"}}, {{"FOO", "1"}}));

  SUBCASE("Vary: * has no key") {
    CHECK_FALSE(key({{"Vary", "*"}}, {}));
    CHECK_FALSE(key({{"Vary", "Foo, *"}}, {}));
    CHECK_FALSE(key({{"Vary", "Foo"}, {"Vary", "*"}}, {}));
  }
  SUBCASE("names: case-insensitive, sorted, without duplicates, from every Vary field") {
    std::optional<std::string> k = key({{"Vary", "Foo, Bar"}}, {{"Foo", "1"}, {"Bar", "abc"}});
    CHECK(k == std::string("bar:abc\nfoo:1\n"));
    CHECK(key({{"Vary", "bar,FOO"}}, {{"Foo", "1"}, {"Bar", "abc"}}) == k);
    CHECK(key({{"Vary", "Foo"}, {"Vary", "Bar"}}, {{"Foo", "1"}, {"Bar", "abc"}}) == k);
    CHECK(key({{"Vary", "Foo, Bar, foo, , BAR"}}, {{"Foo", "1"}, {"Bar", "abc"}}) == k);
    // vary-3-order: a change in any one of them is a different variant
    CHECK(key({{"Vary", "Foo, Bar, Baz"}}, {{"Foo", "1"}, {"Bar", "abc4"}, {"Baz", "789"}}) !=
          key({{"Vary", "Foo, Bar, Baz"}}, {{"Foo", "1"}, {"Bar", "abc"}, {"Baz", "789"}}));
  }
  SUBCASE("absent is not empty, and no value can pose as absent") {
    std::optional<std::string> absent = key({{"Vary", "Foo"}}, {});
    CHECK(absent == std::string("foo:<absent>\n"));
    CHECK(key({{"Vary", "Foo"}}, {{"Foo", ""}}) == std::string("foo:\n"));
    CHECK(key({{"Vary", "Foo"}}, {{"Foo", "<absent>"}}) != absent);
    CHECK(key({{"Vary", "Foo"}}, {{"Foo", "\\<absent>"}}) != key({{"Vary", "Foo"}}, {{"Foo", "<absent>"}}));
    // vary-3-omit: both omitted the same header
    CHECK(key({{"Vary", "Foo, Bar, Baz"}}, {{"Foo", "1"}, {"Baz", "789"}}) ==
          key({{"Vary", "Foo, Bar, Baz"}}, {{"Baz", "789"}, {"Foo", "1"}}));
    CHECK(key({{"Vary", "Foo, Bar"}}, {{"Foo", "1"}}) != key({{"Vary", "Foo, Bar"}}, {{"Foo", "1"}, {"Bar", ""}}));
    // a newline in a value cannot forge another name's entry
    CHECK(key({{"Vary", "a, b"}}, {{"a", "x\nb:y"}}) != key({{"Vary", "a, b"}}, {{"a", "x"}, {"b", "y\nb:<absent>"}}));
  }
  SUBCASE("Accept-Language and Accept-Encoding: case, order, white space and weights normalised") {
    auto lang = [&](Fields request) { return key({{"Vary", "Accept-Language"}}, request); };
    std::optional<std::string> k = lang({{"Accept-Language", "en-US, fr;q=0.5"}});
    CHECK(k == std::string("accept-language:en-us,fr;q=0.5\n"));
    CHECK(lang({{"Accept-Language", "fr;q=0.5, en-US"}}) == k);
    CHECK(lang({{"Accept-Language", "EN-us , FR; q=0.50"}}) == k);
    CHECK(lang({{"Accept-Language", "en-US;q=1.000,fr;Q=0.500"}}) == k);
    CHECK(lang({{"Accept-Language", "fr;q=0.5"}, {"Accept-Language", "en-US"}}) == k);
    CHECK(lang({{"Accept-Language", "de, fr, en"}}) == lang({{"Accept-Language", "en, fr, de"}}));  // equal weights
    CHECK(lang({{"Accept-Language", "en, fr;q=0.9"}}) != lang({{"Accept-Language", "fr, en;q=0.9"}}));
    CHECK(lang({{"Accept-Language", "en, fr;q=0"}}) == std::string("accept-language:en,fr;q=0\n"));
    CHECK(lang({{"Accept-Language", "en, fr;q=0"}}) != lang({{"Accept-Language", "en, fr"}}));
    CHECK(lang({{"Accept-Language", ""}}) == std::string("accept-language:\n"));
    CHECK(lang({{"Accept-Language", ""}}) != lang({}));
    // Weights that are not qvalues, or other parameters, are never taken for a valid item.
    for (std::string_view odd : {"de;q=abc", "de;q=2", "de;q=0.5000", "de;q=.5", "de;q=", "de;level=1", "de;q=1;x=y"}) {
      CAPTURE(odd);
      CHECK(lang({{"Accept-Language", std::string(odd)}}) != lang({{"Accept-Language", "de"}}));
      CHECK(lang({{"Accept-Language", std::string(odd)}}) != lang({{"Accept-Language", "de;q=0.5"}}));
    }
    CHECK(lang({{"Accept-Language", "de;x=\"a b\""}}) != lang({{"Accept-Language", "de;x=\"ab\""}}));
    auto enc = [&](Fields request) { return key({{"Vary", "Accept-Encoding"}}, request); };
    CHECK(enc({{"Accept-Encoding", "gzip, br"}}) == enc({{"Accept-Encoding", "BR,gzip"}}));
    CHECK(enc({{"Accept-Encoding", "gzip;q=1.0, identity; q=0"}}) == enc({{"Accept-Encoding", "identity;q=0, gzip"}}));
    CHECK(enc({{"Accept-Encoding", "gzip"}}) != enc({{"Accept-Encoding", "gzip, br"}}));
  }
  SUBCASE("values: list white space normalised, fields combined (vary-normalise-*)") {
    std::optional<std::string> k = key({{"Vary", "Foo"}}, {{"Foo", "1,2"}});
    CHECK(k == std::string("foo:1,2\n"));
    CHECK(key({{"Vary", "Foo"}}, {{"Foo", " 1, 2 "}}) == k);
    CHECK(key({{"Vary", "Foo"}}, {{"Foo", "1 ,\t2"}}) == k);
    CHECK(key({{"Vary", "Foo"}}, {{"Foo", "1"}, {"Foo", "2"}}) == k);
    CHECK(key({{"Vary", "Foo"}}, {{"Foo", "1, , 2,"}}) == k);
    CHECK(key({{"Vary", "Foo"}}, {{"Foo", "2, 1"}}) != k);  // order is meaningful
    CHECK(key({{"Vary", "Accept"}}, {{"Accept", "text/html;  q=0.9"}}) ==
          key({{"Vary", "Accept"}}, {{"Accept", "text/html; q=0.9"}}));
    CHECK(key({{"Vary", "Accept"}}, {{"Accept", "text/html;q=0.9"}}) !=
          key({{"Vary", "Accept"}}, {{"Accept", "text/html; q=0.9"}}));
    // quoted strings are data
    CHECK(key({{"Vary", "X"}}, {{"X", "\"a,  b\""}}) != key({{"Vary", "X"}}, {{"X", "\"a, b\""}}));
    CHECK(key({{"Vary", "X"}}, {{"X", "\"a,  b\""}}) == std::string("x:\"a,  b\"\n"));
  }
}

// ---- end to end, as the public cache-tests suite sees a shared cache ----

TEST_CASE("scenarios from the cache-tests suite (response at T0, request a few seconds later)") {
  CHECK_FALSE(reuse_after(response(200), 3));                                          // freshness-none
  CHECK(served(reuse_after(response(200, {{"Cache-Control", "max-age=3600"}}), 3)));  // freshness-max-age
  CHECK(served(reuse_after(response(200, {{"Cache-Control", "max-age=\"3600\""}}), 3)));
  CHECK_FALSE(served(reuse_after(response(200, {{"Cache-Control", "max-age='3600'"}}), 3)));
  CHECK_FALSE(served(reuse_after(response(200, {{"Cache-Control", "extension=\"max-age=100\", max-age=1"}}), 3)));
  CHECK_FALSE(served(reuse_after(response(200, {{"Cache-Control", "max-age=1, extension=\"max-age=100\""}}), 3)));
  CHECK_FALSE(served(reuse_after(response(200, {{"Cache-Control", "max-age =100"}}), 3)));
  CHECK_FALSE(served(reuse_after(response(200, {{"Cache-Control", "max-age= 100"}}), 3)));
  CHECK(served(reuse_after(response(200, {{"Cache-Control", "max-age=003600"}}), 3)));
  CHECK_FALSE(served(reuse_after(response(200, {{"Cache-Control", "max-age=0"}}), 0)));
  CHECK_FALSE(served(reuse_after(response(200, {{"Cache-Control", "max-age=a100"}}), 3)));
  CHECK_FALSE(served(reuse_after(response(200, {{"Cache-Control", "max-age=100a"}}), 3)));
  CHECK_FALSE(served(reuse_after(response(200, {{"Cache-Control", "max-age=-100"}}), 3)));
  CHECK(served(reuse_after(response(200, {{"Cache-Control", "max-age=2147483648"}}), 3)));
  CHECK(served(reuse_after(response(200, {{"Cache-Control", "max-age=99999999999"}}), 3)));
  CHECK_FALSE(served(reuse_after(
      response(200, {{"Date", date(T0)}, {"Cache-Control", "max-age=10"}, {"Age", "15"}}), 0)));  // max-age-age
  CHECK(served(reuse_after(
      response(200, {{"Cache-Control", "max-age=3600"}, {"Expires", date(T0 - 10000)}, {"Date", date(T0)}}), 3)));
  CHECK(served(reuse_after(response(200, {{"Cache-Control", "max-age=3600"}, {"Expires", "0"}, {"Date", date(T0)}}),
                           3)));
  CHECK_FALSE(served(reuse_after(
      response(200, {{"Expires", date(T0 + 10000)}, {"Cache-Control", "max-age=0"}, {"Date", date(T0)}}), 0)));
  CHECK(served(reuse_after(response(200, {{"Cache-Control", "foobar, max-age=3600"}}), 3)));
  CHECK(served(reuse_after(response(200, {{"Cache-Control", "s-maxage=3600"}}), 3)));
  CHECK_FALSE(served(reuse_after(response(200, {{"Cache-Control", "max-age=3600, s-maxage=1"}}), 3)));
  CHECK_FALSE(served(reuse_after(response(200, {{"Cache-Control", "s-maxage=1, max-age=3600"}}), 3)));
  CHECK(served(reuse_after(response(200, {{"Cache-Control", "max-age=1, s-maxage=3600"}}), 3)));

  SUBCASE("Expires and Age") {
    CHECK(served(reuse_after(response(200, {{"Expires", date(T0 + 30 * 86400)}, {"Date", date(T0)}}), 3)));
    CHECK_FALSE(served(reuse_after(response(200, {{"Expires", date(T0 - 30 * 86400)}, {"Date", date(T0)}}), 3)));
    CHECK_FALSE(served(reuse_after(response(200, {{"Expires", date(T0)}, {"Date", date(T0)}}), 0)));
    CHECK_FALSE(served(reuse_after(response(200, {{"Expires", date(T0 + 300)}, {"Date", date(T0 + 400)}}), 0)));
    CHECK_FALSE(served(reuse_after(response(200, {{"Expires", "0"}, {"Date", date(T0)}}), 0)));
    CHECK(served(reuse_after(response(200, {{"Date", "foo"}, {"Expires", date(T0 + 10)}}), 3)));
    // expires-age-slow-date: Date -10, Expires +10, Age 25
    CHECK_FALSE(served(reuse_after(
        response(200, {{"Date", date(T0 - 10)}, {"Expires", date(T0 + 10)}, {"Age", "25"}}), 0)));
    // expires-age-fast-date: Date +10, Expires +20, Age 15
    CHECK_FALSE(served(reuse_after(
        response(200, {{"Date", date(T0 + 10)}, {"Expires", date(T0 + 20)}, {"Age", "15"}}), 0)));
  }
  SUBCASE("heuristic freshness") {
    for (int s : {200, 203, 204, 404, 405, 410, 414, 501}) {
      CAPTURE(s);
      CHECK(served(reuse_after(response(s, {{"Last-Modified", date(T0 - 86400)}, {"Date", date(T0)}}), 3)));
    }
    for (int s : {201, 202, 403, 502, 503, 504, 599}) {
      CAPTURE(s);
      CHECK_FALSE(served(reuse_after(response(s, {{"Last-Modified", date(T0 - 86400)}, {"Date", date(T0)}}), 3)));
    }
    CHECK(served(reuse_after(
        response(599, {{"Last-Modified", date(T0 - 86400)}, {"Date", date(T0)}, {"Cache-Control", "public"}}), 3)));
    for (Seconds delta : {60, 300, 600, 1200, 1800, 3600, 43200, 86400}) {
      CAPTURE(delta);
      CHECK(served(reuse_after(response(200, {{"Last-Modified", date(T0 - delta)}, {"Date", date(T0)}}), 3)));
    }
  }
  SUBCASE("response directives") {
    CHECK_FALSE(reuse_after(response(200, {{"Cache-Control", "private, max-age=3600"}}), 1));
    CHECK_FALSE(reuse_after(response(200, {{"Cache-Control", "no-store"}}), 1));
    CHECK(reuse_after(response(200, {{"Cache-Control", "no-cache"}, {"ETag", "\"abcd\""}}), 1) == Use::kRevalidate);
    CHECK(reuse_after(response(200, {{"Cache-Control", "max-age=10000, no-cache"}, {"ETag", "\"abcd\""}}), 1) ==
          Use::kRevalidate);
    CHECK(served(reuse_after(response(200, {{"Cache-Control", "max-age=10000, must-revalidate"}}), 1)));
    CHECK(reuse_after(response(200, {{"Cache-Control", "max-age=2, must-revalidate"}}), 3) == Use::kRevalidate);
    CHECK(served(reuse_after(response(200, {{"Cache-Control", "max-age=3600"}, {"Pragma", "no-cache"}}), 3)));
  }
  SUBCASE("request directives") {
    Fields fresh = {{"Cache-Control", "max-age=100000"}};
    CHECK(reuse_after(response(200, fresh), 3, {{"Cache-Control", "max-age=1"}}) == Use::kRevalidate);
    CHECK(reuse_after(response(200, {{"Cache-Control", "max-age=1"}}), 3, {{"Cache-Control", "max-stale=1000"}}) ==
          Use::kStaleAllowed);
    CHECK(reuse_after(response(200, fresh), 3, {{"Cache-Control", "no-cache"}}) == Use::kRevalidate);
    CHECK(reuse_after(response(200, fresh), 3, {{"Pragma", "no-cache"}}) == Use::kRevalidate);
    CHECK(reuse_after(response(200, fresh), 3, {{"Pragma", "no-cache"}, {"Cache-Control", "max-stale"}}) ==
          Use::kFresh);
  }
  SUBCASE("stale-while-revalidate and the route ttl") {
    CHECK(reuse_after(response(200, {{"Cache-Control", "max-age=1, stale-while-revalidate=60"}}), 30) ==
          Use::kStaleWhileRevalidate);
    CHECK(served(reuse_after(response(200), 10, {}, StoreOptions{.default_ttl = 60})));
    CHECK(reuse_after(response(200), 61, {}, StoreOptions{.default_ttl = 60}) == Use::kRevalidate);
    CHECK(reuse_after(response(200, {{"Cache-Control", "max-age=3600"}}), 61, {}, StoreOptions{.max_ttl = 60}) ==
          Use::kRevalidate);
  }
}

TEST_CASE("marks_hit_for_pass: a refusal about the key marks it; one about the request or a 5xx does not") {
  CHECK_FALSE(marks_hit_for_pass(StoreVerdict::kMethod, 200));
  CHECK_FALSE(marks_hit_for_pass(StoreVerdict::kAuthorization, 200));
  CHECK(marks_hit_for_pass(StoreVerdict::kStatus, 404));
  CHECK(marks_hit_for_pass(StoreVerdict::kStatus, 499));
  CHECK_FALSE(marks_hit_for_pass(StoreVerdict::kStatus, 500));
  CHECK_FALSE(marks_hit_for_pass(StoreVerdict::kStatus, 503));
  for (StoreVerdict verdict : {StoreVerdict::kNoStore, StoreVerdict::kPrivate, StoreVerdict::kSetCookie,
                               StoreVerdict::kVaryStar, StoreVerdict::kNoFreshness, StoreVerdict::kPartial})
    CHECK(marks_hit_for_pass(verdict, 200));
}

TEST_CASE("stored_headers: no hop-by-hop, framing, Age or surrogate fields; the rest in order") {
  http::Headers response;
  response.add("Content-Type", "text/html");
  response.add("Connection", "close");
  response.add("Keep-Alive", "timeout=5");
  response.add("Transfer-Encoding", "chunked");
  response.add("Content-Length", "10");
  response.add("age", "30");
  response.add("Surrogate-Key", "a b");
  response.add("XKey", "c");
  response.add("Surrogate-Control", "max-age=60");
  response.add("ETag", "\"v1\"");
  response.add("Set-Cookie", "a=1");
  response.add("Set-Cookie", "b=2");
  const http::Headers stored = stored_headers(response);
  REQUIRE(stored.size() == 4);
  CHECK(stored.name(0) == "Content-Type");
  CHECK(stored.name(1) == "ETag");
  CHECK(stored.name(2) == "Set-Cookie");
  CHECK(stored.value(2) == "a=1");
  CHECK(stored.value(3) == "b=2");
}
