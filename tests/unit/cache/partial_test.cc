// cache/partial: Content-Range, coverage, the missing span, adding and joining parts, and the
// body over parts, written as a hostile backend or client would send them.
#include "cache/partial.h"

#include <doctest/doctest.h>

#include <string>

using namespace edge;
using namespace edge::cache;

namespace {
Part part(uint64_t first, std::string bytes) {
  return Part{first, bytes.size(), http::SharedBody::from(bytes)};
}

std::string read_all(const http::BodySource& body) {
  std::string out, scratch;
  http::IoSlice slices[4];
  while (out.size() < body.size()) {
    const int n = body.peek(out.size(), slices, 4, 3, scratch);  // at most 3 bytes a call
    REQUIRE(n > 0);
    for (int i = 0; i < n; ++i) out.append(slices[i].data, slices[i].len);
  }
  return out;
}
}  // namespace

TEST_CASE("Content-Range of a single part (RFC 9110 14.4)") {
  auto range = parse_content_range("bytes 10-19/100");
  REQUIRE(range);
  CHECK(range->first == 10);
  CHECK(range->last == 19);
  CHECK(range->complete_length == 100);
  CHECK(parse_content_range("Bytes 0-0/1"));
  for (const char* bad : {"bytes 10-19/*", "bytes */100", "bytes 20-10/100", "bytes 0-100/100", "items 0-1/2",
                          "bytes 0 - 1/2", "bytes -1-2/3", "bytes 0-1/99999999999999999999", "bytes0-1/2", "",
                          "bytes 1-2/3, 4-5/6", "bytes 0x1-2/3"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_content_range(bad));
  }
}

TEST_CASE("the strong validator: a strong ETag, or a Last-Modified a minute before Date (RFC 9110 8.8.2.2)") {
  http::Headers etag;
  etag.add("ETag", "\"v1\"");
  CHECK(strong_validator(etag) == "\"v1\"");
  http::Headers weak;
  weak.add("ETag", "W/\"v1\"");
  CHECK(strong_validator(weak).empty());
  http::Headers dated;
  dated.add("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT");
  dated.add("Date", "Sun, 06 Nov 1994 08:50:37 GMT");
  CHECK(strong_validator(dated) == "Sun, 06 Nov 1994 08:49:37 GMT");
  http::Headers recent;
  recent.add("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT");
  recent.add("Date", "Sun, 06 Nov 1994 08:50:36 GMT");
  CHECK(strong_validator(recent).empty());
  http::Headers two;
  two.add("ETag", "\"a\"");
  two.add("ETag", "\"b\"");
  CHECK(strong_validator(two).empty());
}

TEST_CASE("coverage and the missing span") {
  const std::vector<Part> parts = {part(10, "abcdefghij"), part(15, "fghijklmno"), part(40, "0123456789")};
  CHECK(parts_cover(parts, 10, 24));  // two overlapping parts
  CHECK_FALSE(parts_cover(parts, 9, 12));
  CHECK_FALSE(parts_cover(parts, 20, 40));
  auto span = missing_span(parts, 0, 49);
  REQUIRE(span);
  CHECK(span->first == 0);
  CHECK(span->last == 39);
  span = missing_span(parts, 12, 45);
  REQUIRE(span);
  CHECK(span->first == 25);
  CHECK(span->last == 39);
  span = missing_span(parts, 45, 60);
  REQUIRE(span);
  CHECK(span->first == 50);
  CHECK(span->last == 60);
  CHECK_FALSE(missing_span(parts, 41, 49));
  CHECK(missing_span({}, 0, UINT64_MAX - 1));
}

TEST_CASE("adding parts: contained ones go, the count is bounded, order is kept") {
  std::vector<Part> parts = {part(0, "ab"), part(4, "ef"), part(10, "klm")};
  parts = add_part(parts, part(3, "defgh"));
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].first == 0);
  CHECK(parts[1].first == 3);
  CHECK(parts[2].first == 10);
  for (uint64_t i = 0; i < 2 * kMaxParts; ++i) parts = add_part(parts, part(100 + 10 * i, "x"));
  CHECK(parts.size() == kMaxParts);
  CHECK(parts.front().first == 0);
  CHECK(parts_bytes(parts) >= 2 + 5 + 3);
}

TEST_CASE("the body over parts reads across parts and stops at a gap; parts that meet are joined") {
  const std::vector<Part> parts = {part(0, "abcde"), part(3, "DEFGH"), part(8, "ij")};
  PartsBody body;
  body.reset(&parts, 1, 9);
  CHECK(body.complete());
  CHECK(read_all(body) == "bcdEFGHij");  // from the part holding the most bytes from there on
  auto joined = join_parts(parts, 10);
  REQUIRE(joined);
  CHECK(joined->complete());
  CHECK(joined->to_string() == "abcdeFGHij");
  CHECK_FALSE(join_parts(parts, 11));  // byte 10 is missing

  auto growing = std::make_shared<http::SharedBody>(4);
  growing->append("xy");
  const std::vector<Part> with_gap = {part(0, "ab"), Part{2, 4, growing}, part(6, "gh")};
  PartsBody partial;
  partial.reset(&with_gap, 0, 7);
  CHECK(partial.size() == 4);
  CHECK_FALSE(partial.complete());
  CHECK(read_all(partial) == "abxy");
  CHECK_FALSE(join_parts(with_gap, 8));  // a part still growing is not joined
  growing->append("zw");
  growing->finish();
  CHECK(partial.complete());
  CHECK(read_all(partial) == "abxyzwgh");
}
