#include "http/message.h"

#include <doctest/doctest.h>

using namespace edge::http;

TEST_CASE("header lookup is case-insensitive and keeps order") {
  Headers h;
  h.add("Content-Type", "text/plain");
  h.add("X-A", "1");
  h.add("x-a", "2");
  CHECK(h.get("content-type") == std::string_view("text/plain"));
  CHECK(h.get("X-A") == std::string_view("1"));
  CHECK(h.count("X-a") == 2);
  CHECK_FALSE(h.get("missing"));
  CHECK(h.name(2) == "x-a");
}

TEST_CASE("has_token reads comma-separated lists across fields") {
  Headers h;
  h.add("Connection", "keep-alive, X-Secret");
  h.add("Connection", " Upgrade ");
  CHECK(h.has_token("connection", "x-secret"));
  CHECK(h.has_token("connection", "upgrade"));
  CHECK_FALSE(h.has_token("connection", "close"));
}

TEST_CASE("hop-by-hop names") {
  CHECK(is_hop_by_hop("Connection"));
  CHECK(is_hop_by_hop("transfer-encoding"));
  CHECK(is_hop_by_hop("Keep-Alive"));
  CHECK_FALSE(is_hop_by_hop("Content-Length"));
  CHECK_FALSE(is_hop_by_hop("Host"));
}

TEST_CASE("HTTP dates") {
  char buf[32];
  size_t n = format_http_date(784111777, buf);
  CHECK(std::string_view(buf, n) == "Sun, 06 Nov 1994 08:49:37 GMT");
}

TEST_CASE("parse_http_date: the three formats of RFC 9110 5.6.7 name the same instant") {
  CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
  CHECK(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777);
  CHECK(parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777);
  CHECK(parse_http_date("Sun Nov 06 08:49:37 1994") == 784111777);
  CHECK(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT") == 0);
  CHECK(parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT\t") == 784111777);  // OWS around

  SUBCASE("names are compared case-insensitively (cache-tests: wrong case)") {
    CHECK(parse_http_date("THU, 18 Aug 2050 02:01:18 GMT") == parse_http_date("Thu, 18 Aug 2050 02:01:18 GMT"));
    CHECK(parse_http_date("Thu, 18 AUG 2050 02:01:18 GMT").has_value());
    CHECK(parse_http_date("Thu, 18 Aug 2050 02:01:18 gMT").has_value());
    CHECK(parse_http_date("SUNDAY, 06-nov-94 08:49:37 gmt") == 784111777);
  }
  SUBCASE("calendar edges") {
    CHECK(parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT").has_value());
    CHECK_FALSE(parse_http_date("Wed, 29 Feb 2023 00:00:00 GMT"));
    CHECK_FALSE(parse_http_date("Thu, 30 Feb 2024 00:00:00 GMT"));
    CHECK_FALSE(parse_http_date("Thu, 31 Apr 2024 00:00:00 GMT"));
    CHECK_FALSE(parse_http_date("Thu, 00 Apr 2024 00:00:00 GMT"));
    CHECK(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT").has_value());   // 400-year leap
    CHECK_FALSE(parse_http_date("Thu, 29 Feb 2100 00:00:00 GMT"));         // 100-year non-leap
    CHECK(parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT") == 253402300799);
    CHECK(parse_http_date("Sat, 30 Jun 2012 23:59:60 GMT").has_value());  // leap second
    CHECK_FALSE(parse_http_date("Sat, 30 Jun 2012 24:00:00 GMT"));
    CHECK_FALSE(parse_http_date("Sat, 30 Jun 2012 23:60:00 GMT"));
    CHECK_FALSE(parse_http_date("Sat, 30 Jun 2012 23:59:61 GMT"));
    CHECK(parse_http_date("Wed, 31 Dec 1969 23:59:59 GMT") == -1);
  }
  SUBCASE("two-digit years of RFC 850: 70-99 are 19xx, 00-69 are 20xx") {
    CHECK(parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT") == 0);
    CHECK(parse_http_date("Saturday, 01-Jan-00 00:00:00 GMT") == parse_http_date("Sat, 01 Jan 2000 00:00:00 GMT"));
    CHECK(parse_http_date("Friday, 31-Dec-69 00:00:00 GMT") == parse_http_date("Sun, 31 Dec 2069 00:00:00 GMT"));
  }
  SUBCASE("invalid forms (cache-tests expires-parse)") {
    for (std::string_view bad : {
             "0", "", " ", "-1", "now", "Thu, 18 Aug 2050 02:01:18 UTC", "Thu, 18 Aug 50 02:01:18 GMT",
             "Thu 18 Aug 2050 02:01:18 GMT", "Thu, 18  Aug  2050 02:01:18 GMT", "Thu, 18-Aug-2050 02:01:18 GMT",
             "Thu, 18 Aug 2050 02.01.18 GMT", "Thu, 18 Aug 2050 2:01:18 GMT", "Thu, 18 Aug 2050 02:01:18",
             "Thu, 18 Aug 2050 02:01:18 GMT+1", "Xyz, 18 Aug 2050 02:01:18 GMT", "Thu, 18 Foo 2050 02:01:18 GMT",
             "Thu, 1a Aug 2050 02:01:18 GMT", "Thu, 18 Aug 20x0 02:01:18 GMT", "Thu, 18 Aug 2050 0a:01:18 GMT",
             "Sun, 06-Nov-94 08:49:37 GMT", "Sunday, 06-Nov-1994 08:49:37 GMT", "Sunday, 06 Nov 94 08:49:37 GMT",
             "Funday, 06-Nov-94 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 UTC", "Sun Nov 6 08:49:37 1994",
             "Sun Nov  6 08:49:37 94", "Sun Nov  x 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 GMT, extra",
             "1700000000"}) {
      CAPTURE(bad);
      CHECK_FALSE(parse_http_date(bad));
    }
  }
}

TEST_CASE("parse_http_date: IMF-fixdate edges, and a round trip through format_http_date") {
  constexpr int64_t kNow = 1700000000;
  CHECK(parse_http_date("Tue, 14 Nov 2023 22:13:20 GMT") == std::optional<int64_t>(kNow));
  CHECK(parse_http_date("  tue, 14 NOV 2023 22:13:20 gmt ") == std::optional<int64_t>(kNow));
  CHECK(parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT") == std::optional<int64_t>(1709164800));
  char buf[32];
  for (int64_t t : {int64_t{0}, int64_t{951782400}, kNow, int64_t{4102444799}})
    CHECK(parse_http_date(std::string_view(buf, format_http_date(t, buf))) == std::optional<int64_t>(t));

  CHECK_FALSE(parse_http_date(""));
  CHECK_FALSE(parse_http_date("0"));
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"));
  CHECK_FALSE(parse_http_date("Xyz, 06 Nov 1994 08:49:37 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"));
  CHECK_FALSE(parse_http_date("Fri, 29 Feb 2023 00:00:00 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 00 Nov 1994 08:49:37 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 24:00:00 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:60:00 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08-49-37 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 6 Nov 1994 08:49:37 GMT "));
}
