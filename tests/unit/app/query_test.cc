#include "app/query.h"

#include <doctest/doctest.h>

using namespace edge::app;

TEST_CASE("percent_decode") {
  CHECK(percent_decode("a%41b", false) == std::optional<std::string>("aAb"));
  CHECK(percent_decode("%e2%82%AC", false) == std::optional<std::string>("\xe2\x82\xac"));
  CHECK(percent_decode("a+b", true) == std::optional<std::string>("a b"));
  CHECK(percent_decode("a+b", false) == std::optional<std::string>("a+b"));
  CHECK(percent_decode("%2B", true) == std::optional<std::string>("+"));
  CHECK(percent_decode("%00", false) == std::optional<std::string>(std::string(1, '\0')));
  CHECK(percent_decode("", false) == std::optional<std::string>(""));
  CHECK_FALSE(percent_decode("%", false));
  CHECK_FALSE(percent_decode("%4", false));
  CHECK_FALSE(percent_decode("ab%", false));
  CHECK_FALSE(percent_decode("%zz", false));
  CHECK_FALSE(percent_decode("%4g", false));
}

TEST_CASE("query_of") {
  CHECK(query_of("/a?b=1") == "b=1");
  CHECK(query_of("/a") == "");
  CHECK(query_of("/a?") == "");
  CHECK(query_of("/a?x=1?y=2") == "x=1?y=2");
  CHECK(query_of("/a?x=1#frag") == "x=1");
}

TEST_CASE("parse_query keeps order and duplicates, decodes, skips empty items") {
  auto q = parse_query("a=1&b=x%20y&&flag&a=2&c=d+e&=v&e=");
  REQUIRE(q);
  QueryParams expected = {{"a", "1"}, {"b", "x y"}, {"flag", ""}, {"a", "2"}, {"c", "d e"}, {"", "v"}, {"e", ""}};
  CHECK(*q == expected);
  CHECK(query_get(*q, "a") == std::optional<std::string_view>("1"));
  CHECK(query_get(*q, "flag") == std::optional<std::string_view>(""));
  CHECK_FALSE(query_get(*q, "A"));
  CHECK_FALSE(query_get(*q, "missing"));

  auto keys = parse_query("X%2DFoo=a%3Db");
  REQUIRE(keys);
  CHECK(keys->size() == 1);
  CHECK((*keys)[0].first == "X-Foo");
  CHECK((*keys)[0].second == "a=b");  // only the first '=' splits

  CHECK(parse_query("")->empty());
  CHECK_FALSE(parse_query("a=%zz"));
  CHECK_FALSE(parse_query("%=1"));
}

TEST_CASE("parse_uint is strict") {
  CHECK(parse_uint("0") == std::optional<uint64_t>(0));
  CHECK(parse_uint("42") == std::optional<uint64_t>(42));
  CHECK(parse_uint("007") == std::optional<uint64_t>(7));
  CHECK(parse_uint("18446744073709551615") == std::optional<uint64_t>(UINT64_MAX));
  CHECK_FALSE(parse_uint("18446744073709551616"));
  CHECK_FALSE(parse_uint("99999999999999999999999"));
  CHECK_FALSE(parse_uint(""));
  CHECK_FALSE(parse_uint("-1"));
  CHECK_FALSE(parse_uint("+1"));
  CHECK_FALSE(parse_uint(" 1"));
  CHECK_FALSE(parse_uint("1 "));
  CHECK_FALSE(parse_uint("12a"));
  CHECK_FALSE(parse_uint("0x10"));
  CHECK(parse_uint("100", 100) == std::optional<uint64_t>(100));
  CHECK_FALSE(parse_uint("101", 100));
}

TEST_CASE("parse_int takes an optional minus and bounds the magnitude") {
  CHECK(parse_int("0") == std::optional<int64_t>(0));
  CHECK(parse_int("-0") == std::optional<int64_t>(0));
  CHECK(parse_int("42", 42) == std::optional<int64_t>(42));
  CHECK(parse_int("-42", 42) == std::optional<int64_t>(-42));
  CHECK(parse_int("9223372036854775807") == std::optional<int64_t>(INT64_MAX));
  CHECK(parse_int("-9223372036854775807") == std::optional<int64_t>(-INT64_MAX));
  CHECK_FALSE(parse_int("43", 42));
  CHECK_FALSE(parse_int("-43", 42));
  CHECK_FALSE(parse_int("9223372036854775808"));
  CHECK_FALSE(parse_int(""));
  CHECK_FALSE(parse_int("-"));
  CHECK_FALSE(parse_int("--1"));
  CHECK_FALSE(parse_int("+1"));
  CHECK_FALSE(parse_int("1-"));
}
