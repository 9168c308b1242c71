#include "http/message.h"

#include <doctest/doctest.h>

#include <string>

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

namespace {
std::string listed(const Headers& h) {
  std::string out;
  for (size_t i = 0; i < h.size(); ++i) out.append(h.name(i)).append("=").append(h.value(i)).append(";");
  return out;
}
}  // namespace

TEST_CASE("headers: growth keeps every field, even one added from the head's own text") {
  Headers h;
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    const std::string name = "X-Field-" + std::to_string(i);
    const std::string value = std::string(static_cast<size_t>(i % 37), 'v') + std::to_string(i);
    h.add(name, value);
    expected += name + "=" + value + ";";
  }
  CHECK(h.size() == 200);
  CHECK(listed(h) == expected);
  CHECK(h.get("x-field-199") == std::string_view(std::string(199 % 37, 'v') + "199"));
  // Views of the head's own text, through as many growths as it takes.
  for (int i = 0; i < 200; ++i) {
    h.add(h.name(static_cast<size_t>(i)), h.value(static_cast<size_t>(i)));
    expected += std::string(h.name(static_cast<size_t>(i))) + "=" + std::string(h.value(static_cast<size_t>(i))) + ";";
  }
  CHECK(listed(h) == expected);
}

TEST_CASE("headers: pieces make one field; its value's white space is trimmed and given back") {
  Headers h;
  h.begin_field();
  h.append_name("Cont");
  h.append_name("ent-Length");
  h.append_value(" \t ");
  h.append_value("42 ");
  h.append_value(" ");
  h.end_field();
  h.begin_field();
  h.append_name("Empty");
  h.end_field();
  h.begin_field();
  h.append_name("Spaces");
  h.append_value("   ");
  h.end_field();
  h.add("Next", "  a b  ");
  CHECK(listed(h) == "Content-Length=42;Empty=;Spaces=;Next=a b;");
  CHECK(h.id(0) == FieldId::kContentLength);
  CHECK(h.id(3) == FieldId::kOther);
  CHECK(h.arena_bytes() == std::string_view("Content-Length42EmptySpacesNexta b").size());
}

TEST_CASE("headers: remove_if keeps the rest in order, and later fields land after them") {
  Headers h;
  for (int i = 0; i < 10; ++i) h.add(i % 3 == 0 ? "Drop" : "Keep", std::to_string(i));
  h.remove_if([](std::string_view name, FieldId) { return name == "Drop"; });
  CHECK(listed(h) == "Keep=1;Keep=2;Keep=4;Keep=5;Keep=7;Keep=8;");
  h.add("Last", "x");
  CHECK(listed(h) == "Keep=1;Keep=2;Keep=4;Keep=5;Keep=7;Keep=8;Last=x;");
  const uint64_t before = h.memory();
  h.shrink_to_fit();  // the dropped fields' text goes too
  CHECK(listed(h) == "Keep=1;Keep=2;Keep=4;Keep=5;Keep=7;Keep=8;Last=x;");
  CHECK(h.arena_bytes() == 6 * 5 + 5);
  CHECK(h.memory() < before);
  h.add("After", "y");
  CHECK(listed(h) == "Keep=1;Keep=2;Keep=4;Keep=5;Keep=7;Keep=8;Last=x;After=y;");
  h.remove_if([](std::string_view, FieldId) { return true; });
  CHECK(h.size() == 0);
  CHECK_FALSE(h.get("Last"));
  h.shrink_to_fit();
  CHECK(h.memory() == 0);
}

TEST_CASE("headers: copies, moves, clear and shrink_to_fit") {
  Headers h;
  for (int i = 0; i < 20; ++i) h.add("Name-" + std::to_string(i), "value " + std::to_string(i));
  const std::string all = listed(h);

  Headers copy = h;
  CHECK(listed(copy) == all);
  CHECK(copy.memory() <= h.memory());  // a copy is made to fit
  copy.add("More", "1");
  CHECK(listed(h) == all);  // the two own their bytes

  Headers big;
  for (int i = 0; i < 100; ++i) big.add("Filler", "0123456789");
  const uint64_t big_memory = big.memory();
  big = h;  // kept capacity takes the copy
  CHECK(listed(big) == all);
  CHECK(big.memory() == big_memory);
  big = static_cast<const Headers&>(big);
  CHECK(listed(big) == all);

  Headers moved = std::move(copy);
  CHECK(listed(moved) == all + "More=1;");
  CHECK(copy.size() == 0);  // a moved-from head is empty
  copy.add("Again", "2");
  CHECK(listed(copy) == "Again=2;");

  const uint64_t before = h.memory();
  h.clear();
  CHECK(h.size() == 0);
  CHECK(h.memory() == before);  // clear keeps the block for the next head
  h.add("Only", "one");
  h.shrink_to_fit();
  CHECK(listed(h) == "Only=one;");
  CHECK(h.memory() < before);
  h.clear();
  h.shrink_to_fit();
  CHECK(h.memory() == 0);

  Headers empty;
  CHECK(empty.memory() == 0);
  Headers empty_copy = empty;
  CHECK(empty_copy.size() == 0);
  CHECK(empty_copy.memory() == 0);
}

TEST_CASE("headers: a kept head holds no text for common names, and gives back the same bytes") {
  Headers h;
  h.add("Content-Type", "text/html");
  h.add("X-Own", "1");
  h.add("etag", "\"v1\"");
  h.add("CONTENT-TYPE", "text/plain");  // not spelt as the table has it: kept as it came
  h.add("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
  h.add("Cache-Controls", "x");  // a longer name that starts like a shared one
  h.remove_if([](std::string_view name, FieldId) { return name == "X-Own"; });
  h.add("Vary", "Accept-Encoding");
  const std::string all = listed(h);
  const uint64_t before = h.memory();

  h.shrink_to_fit();
  CHECK(listed(h) == all);
  CHECK(h.memory() < before);
  // The text holds the values and the two names not in the table, nothing else.
  size_t values = 0;
  for (size_t i = 0; i < h.size(); ++i) values += h.value(i).size();
  const size_t kept_names = std::string_view("CONTENT-TYPE").size() + std::string_view("Cache-Controls").size();
  CHECK(h.arena_bytes() == values + kept_names);
  CHECK(h.get("content-type") == std::string_view("text/html"));
  CHECK(h.count("Content-Type") == 2);
  CHECK(h.get(FieldId::kDate) == std::string_view("Sun, 06 Nov 1994 08:49:37 GMT"));
  CHECK(h.id(h.size() - 1) == FieldId::kOther);
  CHECK(h.has_token("vary", "accept-encoding"));

  // A second shrink, copies, growth and removal keep the names.
  h.shrink_to_fit();
  CHECK(listed(h) == all);
  Headers copy = h;
  CHECK(listed(copy) == all);
  for (int i = 0; i < 50; ++i) copy.add("Filler-" + std::to_string(i), "0123456789");
  copy.remove_if([](std::string_view name, FieldId) { return name.starts_with("Filler-"); });
  CHECK(listed(copy) == all);
  Headers assigned;
  for (int i = 0; i < 100; ++i) assigned.add("Filler", "0123456789");
  assigned = h;  // into kept capacity
  CHECK(listed(assigned) == all);
  copy.shrink_to_fit();
  CHECK(listed(copy) == all);
  CHECK(copy.memory() == h.memory());
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
