#include "http/body.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <string>

using namespace edge::http;

namespace {
std::string pattern(size_t n, size_t seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i + seed) % 26);
  return s;
}

// Reads at most `max` bytes from `offset`, releasing them, as one slow write would.
std::string read_some(Body& body, uint64_t& offset, size_t max) {
  std::string out, scratch;
  IoSlice slices[4];
  while (out.size() < max) {
    int n = body.peek(offset, slices, 4, max - out.size(), scratch);
    REQUIRE(n >= 0);
    if (n == 0) break;
    for (int i = 0; i < n; ++i) {
      out.append(slices[i].data, slices[i].len);
      offset += slices[i].len;
    }
  }
  body.release_before(offset);
  return out;
}

// Reads everything from `offset` the way a writer does, releasing as it goes.
std::string drain(Body& body, uint64_t& offset) {
  std::string out;
  for (std::string part; !(part = read_some(body, offset, 40000)).empty();) out += part;
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

namespace {
struct Producer final : BodyProducer {
  int drained = 0;
  void on_body_drained() override { ++drained; }
};

}  // namespace

TEST_CASE("a streamed body past its file limit is full until its reader drains it, and loses nothing") {
  const std::string dir = "/tmp";
  TempSpace space(1 << 30);
  Producer producer;
  Body body(Body::Options{4096, &dir, 10000, &space});
  body.set_producer(&producer);
  std::string expected, got;
  uint64_t offset = 0, produced = 0;
  uint64_t peak_file = 0;
  int rounds_full = 0;
  // A producer that stops whenever the body is full, and a reader slower than it.
  while (produced < 400000) {
    if (!body.full()) {
      std::string piece = pattern(1500, static_cast<size_t>(produced));
      REQUIRE(body.append(piece) == 0);
      expected += piece;
      produced += piece.size();
    } else {
      ++rounds_full;
      got += read_some(body, offset, 3000);
    }
    peak_file = std::max(peak_file, space.in_use());
    CHECK(space.in_use() <= 10000);
    CHECK(body.memory_bytes() <= 4096 + 1500);
  }
  body.set_complete();
  got += drain(body, offset);
  CHECK(got == expected);
  CHECK(rounds_full > 0);
  CHECK(producer.drained > 0);
  CHECK(peak_file > 0);              // it did spill
  CHECK(space.in_use() == 0);        // and gave every byte back once read
  CHECK(space.peak() <= 10000);
}

TEST_CASE("file_limit 0: nothing goes to disk, the producer is held at memory_limit") {
  const std::string dir = "/tmp";
  Body body(Body::Options{4096, &dir, 0});
  REQUIRE(body.append(pattern(3000)) == 0);
  CHECK_FALSE(body.full());
  REQUIRE(body.append(pattern(3000, 3000)) == 0);
  CHECK_FALSE(body.spilled());
  CHECK(body.full());
  uint64_t offset = 0;
  Producer producer;
  body.set_producer(&producer);
  CHECK(read_some(body, offset, 4000) == pattern(4000));
  // The first 3000-byte chunk is released whole; the second is still partly unread.
  CHECK_FALSE(body.full());
  CHECK(producer.drained == 1);
}

TEST_CASE("the process's TempSpace bounds every body together") {
  const std::string dir = "/tmp";
  TempSpace space(8000);
  Body a(Body::Options{1000, &dir, 1 << 20, &space});
  Body b(Body::Options{1000, &dir, 1 << 20, &space});
  REQUIRE(a.append(pattern(7000)) == 0);
  CHECK(space.in_use() == 7000);
  REQUIRE(b.append(pattern(3000)) == 0);  // the file takes what is left, RAM the rest: b is full
  CHECK(space.in_use() == 8000);
  CHECK(b.spilled());
  CHECK(b.full());
  CHECK_FALSE(b.at_file_limit());
  a.clear();
  CHECK(space.in_use() == 1000);
  CHECK_FALSE(b.full());
  REQUIRE(b.append(pattern(2000, 3000)) == 0);
  CHECK(b.spilled());
  CHECK(b.to_string() == pattern(5000));
}

TEST_CASE("a body kept whole fails past its bounds instead of holding anyone back") {
  const std::string dir = "/tmp";
  TempSpace space(5000);
  Body capped(Body::Options{1000, &dir, 3000, &space, true});
  CHECK(capped.append(pattern(3500)) == -EFBIG);
  Body shared(Body::Options{1000, &dir, 1 << 20, &space, true});
  REQUIRE(shared.append(pattern(4000)) == 0);
  CHECK(shared.append(pattern(2000)) == -ENOSPC);
  CHECK_FALSE(shared.full());
}
