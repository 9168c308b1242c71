#include "cache/targeted.h"

#include <doctest/doctest.h>

#include <utility>
#include <vector>

using namespace edge;
using namespace edge::cache;

namespace {
using Fields = std::vector<std::pair<std::string_view, std::string_view>>;

http::ResponseHead response(Fields fields) {
  http::ResponseHead r;
  r.status = 200;
  for (const auto& [name, value] : fields) r.headers.add(name, value);
  return r;
}

std::string view_cc(Fields fields, std::string_view edge_field = "Edge-Cache-Control") {
  std::optional<http::ResponseHead> view = targeted_view(response(fields), edge_field);
  if (!view) return "<none>";
  return std::string(view->headers.get("Cache-Control").value_or("<absent>"));
}
}  // namespace

TEST_CASE("structured field dictionaries (RFC 8941 3.2) as targeted fields read them") {
  for (std::string_view valid : {"", "max-age=60", "max-age=60, no-store", "no-cache=?0", "private=(\"set-cookie\" \"x\")",
                                 "a;p=1;q=\"s\", b=:AAEC:, c=1.5, d=tok/en:x, *e=?1", "max-age=60 ,  public",
                                 "x=-12", "key=\"quoted \\\"and\\\\ escaped\\\"\""}) {
    CAPTURE(valid);
    CHECK(is_sf_dictionary(valid));
  }
  for (std::string_view invalid : {"Max-Age=60", "max-age=", "max-age=60,", ",max-age=60", "max-age=60;", "max-age 60",
                                   "max-age=1234567890123456", "a=1.2345", "a=\"unterminated", "a=\"bad\\n\"", "a=?2",
                                   "a=(1 2", "a=:not base64!:", "9a=1", "a=1 b=2", "a=\"\x01\""}) {
    CAPTURE(invalid);
    CHECK_FALSE(is_sf_dictionary(invalid));
  }
}

TEST_CASE("a targeted field's directives (RFC 9213 2.1)") {
  auto parse = [](std::string_view value) {
    http::Headers h;
    h.add("CDN-Cache-Control", value);
    return parse_targeted_field(h, kCdnCacheControl);
  };
  std::optional<CacheControl> cc = parse("max-age=600, stale-while-revalidate=30, must-revalidate");
  REQUIRE(cc);
  CHECK(cc->max_age == 600);
  CHECK(cc->stale_while_revalidate == 30);
  CHECK(cc->must_revalidate);
  CHECK_FALSE(cc->no_store);
  CHECK(parse("no-store")->no_store);
  CHECK_FALSE(parse("no-store=?0")->no_store);
  CHECK(parse("private=(\"set-cookie\")")->is_private);
  CHECK(parse("s-maxage=5")->s_maxage == 5);
  // Wrong types are ignored, not the field.
  CHECK_FALSE(parse("max-age=\"60\"")->max_age);
  CHECK_FALSE(parse("max-age=60.5")->max_age);
  CHECK_FALSE(parse("max-age=-1")->max_age);
  CHECK_FALSE(parse("no-store=1")->no_store);
  // An invalid dictionary is no field at all; so is an absent one.
  CHECK_FALSE(parse("max-age=60,"));
  CHECK_FALSE(parse("Max-Age=60"));
  CHECK_FALSE(parse_targeted_field(http::Headers{}, kCdnCacheControl));
  // Several lines make one dictionary.
  http::Headers two;
  two.add("CDN-Cache-Control", "max-age=60");
  two.add("cdn-cache-control", "public");
  std::optional<CacheControl> joined = parse_targeted_field(two, kCdnCacheControl);
  REQUIRE(joined);
  CHECK(joined->max_age == 60);
  CHECK(joined->is_public);
}

TEST_CASE("the most specific valid targeted field replaces Cache-Control and Expires for the cache") {
  CHECK(view_cc({{"Cache-Control", "max-age=60"}}) == "<none>");
  CHECK(view_cc({{"Cache-Control", "private"}, {"CDN-Cache-Control", "max-age=600"}}) == "max-age=600");
  CHECK(view_cc({{"CDN-Cache-Control", "max-age=600"}, {"Edge-Cache-Control", "no-store"}}) == "no-store");
  // Only when valid: an invalid edge field leaves CDN-Cache-Control in charge.
  CHECK(view_cc({{"CDN-Cache-Control", "max-age=600"}, {"Edge-Cache-Control", "max-age=5,"}}) == "max-age=600");
  // Not configured: the edge field is an ordinary field.
  CHECK(view_cc({{"Edge-Cache-Control", "no-store"}}, "") == "<none>");
  // Surrogate-Control's max-age (ESI's targeted field) outranks CDN-Cache-Control.
  CHECK(view_cc({{"Surrogate-Control", "content=\"ESI/1.0\", max-age=300"}, {"CDN-Cache-Control", "max-age=5"}}) ==
        "max-age=300");
  CHECK(view_cc({{"Surrogate-Control", "content=\"ESI/1.0\""}, {"Cache-Control", "max-age=5"}}) == "<none>");
  CHECK(view_cc({{"Surrogate-Control", "no-store"}}) == "no-store");
  // An empty dictionary is a valid field with no directives: Cache-Control no longer counts.
  CHECK(view_cc({{"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", ""}}) == "<absent>");

  std::optional<http::ResponseHead> view = targeted_view(
      response({{"Cache-Control", "no-cache"}, {"Expires", "Thu, 01 Jan 1970 00:00:00 GMT"}, {"CDN-Cache-Control", "max-age=60"},
                {"X-Other", "kept"}}),
      "");
  REQUIRE(view);
  CHECK_FALSE(view->headers.get("Expires"));
  CHECK(view->headers.count("cache-control") == 1);
  CHECK(view->headers.get("X-Other") == std::string_view("kept"));
  CHECK(view->headers.get("CDN-Cache-Control") == std::string_view("max-age=60"));
}

TEST_CASE("format_cache_control writes the directives back") {
  CacheControl cc;
  CHECK(format_cache_control(cc).empty());
  cc.is_public = true;
  cc.max_age = 10;
  cc.stale_if_error = 60;
  CHECK(format_cache_control(cc) == "public, max-age=10, stale-if-error=60");
}
