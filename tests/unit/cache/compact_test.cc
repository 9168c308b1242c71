#include "cache/compact.h"

#include <doctest/doctest.h>

namespace edge::cache {

TEST_CASE("compact: a packed string is one pointer, and nothing on the heap while empty") {
  static_assert(sizeof(PackedString) == sizeof(void*));
  PackedString s;
  CHECK(s.empty());
  CHECK(s.view().empty());
  CHECK(s.memory() == 0);
  s = "accept-encoding";
  CHECK(s == "accept-encoding");
  CHECK(s.size() == 15);
  CHECK(s.memory() == http::heap_bytes(4 + 15));
  s = "";
  CHECK(s.empty());
  CHECK(s.memory() == 0);
}

TEST_CASE("compact: a packed string copies deep and can be given a view of itself") {
  PackedString a(std::string(300, 'a'));
  PackedString b = a;
  a = "other";
  CHECK(b.view() == std::string(300, 'a'));
  b = b.view().substr(10, 5);  // the old block is freed only after the copy
  CHECK(b == "aaaaa");
  PackedString c = std::move(b);
  CHECK(c == "aaaaa");
  a = c;
  a = a;  // self-assignment keeps the text
  CHECK(a == "aaaaa");
  // Bytes of every value, a NUL among them, come back as they went in.
  const std::string binary("\0\x1f\xff", 3);
  a = binary;
  CHECK(a.view() == binary);
}

TEST_CASE("compact: a sparse vector holds nothing until it has an element") {
  static_assert(sizeof(SparseVector<std::string>) == sizeof(void*));
  SparseVector<std::string> v;
  CHECK(v.empty());
  CHECK(v.memory() == 0);
  CHECK(v.begin() == v.end());
  const std::vector<std::string>& read = v;
  CHECK(read.empty());
  v = std::vector<std::string>{};
  CHECK(v.memory() == 0);
  v = {"a", "b"};
  CHECK(v.size() == 2);
  CHECK(v.get()[1] == "b");
  CHECK(v.memory() == http::heap_bytes(sizeof(std::vector<std::string>)) + http::heap_bytes(2 * sizeof(std::string)));
  SparseVector<std::string> copy = v;
  v = {"a", "b", "c"};
  CHECK(copy.size() == 2);
  CHECK(v.size() == 3);
  CHECK(copy == std::vector<std::string>{"a", "b"});
  v = std::vector<std::string>{};
  CHECK(v.memory() == 0);
  CHECK(v.empty());
}

}  // namespace edge::cache
