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
