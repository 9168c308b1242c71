#include "http/body.h"

#include <doctest/doctest.h>

#include <string>

using namespace edge::http;

namespace {
std::string pattern(size_t n, size_t seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i + seed) % 26);
  return s;
}

// Reads everything from `offset` the way a writer does, releasing as it goes.
std::string drain(Body& body, uint64_t& offset) {
  std::string out, scratch;
  IoSlice slices[4];
  for (;;) {
    int n = body.peek(offset, slices, 4, 10000, scratch);
    REQUIRE(n >= 0);
    if (n == 0) break;
    for (int i = 0; i < n; ++i) {
      out.append(slices[i].data, slices[i].len);
      offset += slices[i].len;
    }
    body.release_before(offset);
  }
  return out;
}
}  // namespace

TEST_CASE("a small body stays in RAM and reads back whole") {
  Body body;
  body.append("hello ");
  body.append("world");
  CHECK(body.size() == 11);
  CHECK_FALSE(body.spilled());
  CHECK(body.to_string() == "hello world");
}

TEST_CASE("past the memory limit the body spills to a temporary file, in order") {
  const std::string dir = "/tmp";
  Body body(Body::Options{4096, &dir});
  std::string expected;
  for (int i = 0; i < 50; ++i) {
    std::string piece = pattern(1000 + static_cast<size_t>(i), static_cast<size_t>(i));
    REQUIRE(body.append(piece) == 0);
    expected += piece;
  }
  CHECK(body.spilled());
  CHECK(body.memory_bytes() <= 4096);
  CHECK(body.to_string() == expected);
}

TEST_CASE("a consumer that releases as it reads keeps RAM bounded while the producer goes on") {
  const std::string dir = "/tmp";
  Body body(Body::Options{8192, &dir});
  std::string expected, got;
  uint64_t offset = 0;
  for (int round = 0; round < 40; ++round) {
    std::string piece = pattern(3000, static_cast<size_t>(round));
    REQUIRE(body.append(piece) == 0);
    expected += piece;
    if (round % 3 == 0) got += drain(body, offset);
    CHECK(body.memory_bytes() <= 8192);
  }
  body.set_complete();
  got += drain(body, offset);
  CHECK(got == expected);
}

TEST_CASE("clear makes a body reusable") {
  const std::string dir = "/tmp";
  Body body(Body::Options{16, &dir});
  body.append(pattern(100));
  body.set_complete();
  body.clear();
  CHECK(body.size() == 0);
  CHECK_FALSE(body.complete());
  CHECK_FALSE(body.spilled());
  body.append("again");
  CHECK(body.to_string() == "again");
}
