#include "cache/record.h"

#include <doctest/doctest.h>

#include <string>

using namespace edge;
using namespace edge::cache;

namespace {

CachedObject& sample(CachedObject& o) {
  o.set_key("www.example.com/books/1?lang=en", "www.example.com", "/books/1?lang=en");
  o.variant = "gzip";
  o.vary_names = {"accept-encoding"};
  o.status = 203;
  o.set_reason("Non-Authoritative");
  o.headers.add("Content-Type", "text/html");
  o.headers.add("Cache-Control", "max-age=60, s-maxage=120");
  o.headers.add("X-Empty", "");
  o.body = http::SharedBody::from(std::string("<p>hello\0world</p>", 18));
  o.age = AgeBasis{1000, 1002, 999, 5};
  o.lifetime = 120;
  o.grace = 30;
  o.set_tags({"book-1", "author-7"});
  return o;
}

}  // namespace

TEST_CASE("record: a round trip keeps every stored field") {
  CachedObject original;
  std::string bytes = encode(sample(original), 1003);
  CHECK(is_record(bytes));

  auto decoded = decode(bytes);
  REQUIRE(decoded);
  CHECK(decoded->stored_at == 1003);
  const CachedObject& o = *decoded->object;
  CHECK(o.key() == original.key());
  CHECK(o.host() == original.host());
  CHECK(o.path() == original.path());
  CHECK(o.variant == "gzip");
  CHECK(o.vary_names == original.vary_names);
  CHECK(o.status == 203);
  CHECK(o.reason() == "Non-Authoritative");
  REQUIRE(o.headers.size() == 3);
  CHECK(o.headers.name(1) == "Cache-Control");
  CHECK(o.headers.value(0) == "text/html");
  CHECK(o.headers.value(2) == "");
  CHECK(o.body->complete());
  CHECK(o.body->to_string() == original.body->to_string());
  // Kept as the store keeps it: received at 1002, then 7 s old (5 s of Age, 2 s on the way).
  CHECK(o.age.response_time() == 1002);
  CHECK(o.age.corrected_initial_age() == 7);
  CHECK(o.age.current_age(1012) == 17);
  CHECK(o.lifetime == 120);
  CHECK(o.grace == 30);
  CHECK(o.tags() == original.tags());
  // Derived again from the stored headers.
  CHECK(o.cc.get().max_age == 60);
  CHECK(o.cc.get().s_maxage == 120);
  CHECK(encode(o, 1003) == bytes);
}

TEST_CASE("record: an empty object and a null body round trip") {
  CachedObject empty;
  empty.status = 404;
  std::string bytes = encode(empty, -7);
  auto decoded = decode(bytes);
  REQUIRE(decoded);
  CHECK(decoded->stored_at == -7);
  CHECK(decoded->object->body->size() == 0);
  CHECK(encode(*decoded->object, -7) == bytes);
}

TEST_CASE("record: every truncation and any trailing byte is refused") {
  CachedObject original;
  std::string bytes = encode(sample(original), 1003);
  for (size_t n = 0; n < bytes.size(); ++n) CHECK_MESSAGE(!decode(std::string_view(bytes).substr(0, n)), n);
  CHECK(!decode(bytes + "x"));
}

TEST_CASE("record: another version is not decoded, but is still a record") {
  CachedObject original;
  std::string bytes = encode(sample(original), 1);
  bytes[kRecordMagic.size()] = static_cast<char>(kRecordVersion + 1);
  CHECK(is_record(bytes));
  CHECK(!decode(bytes));
}

TEST_CASE("record: foreign values are told apart") {
  for (std::string_view foreign : {"", "EDG", "body { color: red }", "\x89PNG\r\n", "edge\x01"}) {
    CHECK(!is_record(foreign));
    CHECK(!decode(foreign));
  }
}

TEST_CASE("record: lengths and counts past the end are refused, not allocated") {
  std::string bytes(kRecordMagic);
  bytes += static_cast<char>(kRecordVersion);
  bytes += std::string("\xff\xff\xff\xff", 4);  // a key of 4 GiB
  CHECK(!decode(bytes));

  CachedObject o;
  o.status = 200;
  std::string good = encode(o, 0);
  // The header count sits after magic, version, four empty strings, the status and the reason.
  size_t count_at = kRecordMagic.size() + 1 + 4 * 4 + 2 + 4;
  std::string huge = good;
  huge.replace(count_at, 4, "\xff\xff\xff\x7f");
  CHECK(!decode(huge));
}

TEST_CASE("record: fields encode() could not have written are refused") {
  CachedObject o;
  o.status = 200;
  std::string bytes = encode(o, 0);
  size_t status_at = kRecordMagic.size() + 1 + 4 * 4;
  std::string bad_status = bytes;
  bad_status.replace(status_at, 2, std::string("\x05\x00", 2));
  CHECK(!decode(bad_status));

  // A header whose value has outer blanks would come back trimmed.
  CachedObject with_header;
  with_header.status = 200;
  with_header.headers.add("A", "b");
  std::string one = encode(with_header, 0);
  size_t value_at = one.find('b');
  REQUIRE(value_at != std::string::npos);
  one[value_at] = ' ';
  CHECK(!decode(one));
}

TEST_CASE("record: version 2 keeps the encodings and the decoded flag; version 1 is still read") {
  CachedObject original;
  sample(original);
  original.decoded = true;
  original.set_encodings({{compress::Coding::kBr, http::SharedBody::from("br bytes")},
                          {compress::Coding::kGzip, http::SharedBody::from(std::string("gz\0ip", 5))}});
  const std::string bytes = encode(original, 5);
  auto decoded = decode(bytes);
  REQUIRE(decoded);
  const CachedObject& o = *decoded->object;
  CHECK(o.decoded);
  REQUIRE(o.encodings().size() == 2);
  CHECK(o.encoded(compress::Coding::kBr)->to_string() == "br bytes");
  CHECK(o.encoded(compress::Coding::kGzip)->to_string() == std::string("gz\0ip", 5));
  CHECK(o.encoded(compress::Coding::kZstd) == nullptr);
  CHECK(o.body->to_string() == original.body->to_string());
  CHECK(encode(o, 5) == bytes);
  for (size_t n = 0; n < bytes.size(); ++n) CHECK_MESSAGE(!decode(std::string_view(bytes).substr(0, n)), n);

  // Version 1, as an older node wrote it: no encodings list, flags 0 or 1.
  CachedObject plain;
  sample(plain);
  std::string v2 = encode(plain, 9);
  const std::string empty_list("\0\0\0\0", 4);
  const size_t body_at = v2.size() - plain.body->size() - 8;
  REQUIRE(v2.substr(body_at - 4, 4) == empty_list);
  std::string v1 = v2.substr(0, body_at - 4) + v2.substr(body_at);
  v1[kRecordMagic.size()] = 1;
  auto old = decode(v1);
  REQUIRE(old);
  CHECK(old->object->encodings().empty());
  CHECK(old->object->body->to_string() == plain.body->to_string());
  CHECK(encode(*old->object, 9) == v2);
}

TEST_CASE("record: an encoding of an unknown coding, identity, or a coding twice is refused") {
  CachedObject original;
  sample(original);
  original.set_encodings({{compress::Coding::kZstd, http::SharedBody::from("z")}});
  const std::string bytes = encode(original, 5);
  // The coding byte sits after the list's count, before the 8-byte length and the byte "z".
  const size_t coding_at = bytes.size() - original.body->size() - 8 - 1 - 8 - 1;
  REQUIRE(bytes[coding_at] == static_cast<char>(compress::Coding::kZstd));
  for (char coding : {'\0', '\4', '\xff'}) {
    std::string bad = bytes;
    bad[coding_at] = coding;
    CHECK(!decode(bad));
  }
  original.set_encodings({{compress::Coding::kZstd, http::SharedBody::from("z")},
                          {compress::Coding::kZstd, http::SharedBody::from("z")}});
  CHECK(!decode(encode(original, 5)));
}
