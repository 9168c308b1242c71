#include "proxy/heads.h"

#include <doctest/doctest.h>

#include "h2/session.h"

using namespace edge;
using proxy::ClientFraming;
using proxy::ResponseOrigin;
using proxy::ResponseSpec;

namespace {

constexpr std::string_view kDate = "Thu, 03 Dec 2026 10:00:00 GMT";

// The head written for an HTTP/2 stream, with its index checked against a reading of the text:
// the same fields, in the same order, each where the index says.
std::string h2_head(const ResponseSpec& spec) {
  ClientFraming h2;
  h2.h2 = true;
  std::string head;
  http::HeadIndex index;
  proxy::build_response_head(head, spec, h2, kDate, &index);
  h2::ResponseFields read;
  REQUIRE(h2::response_fields(head, read));
  REQUIRE(index.size == head.size());
  REQUIRE(head.ends_with("\r\n\r\n"));
  REQUIRE(index.fields.size() == read.fields.size());
  for (size_t i = 0; i < index.fields.size(); ++i) {
    const http::HeadIndex::Field& at = index.fields[i];
    const std::string_view name(head.data() + at.name, at.name_len);
    const std::string_view value(head.data() + at.value, at.value_len);
    CHECK(name == read.name(i));  // read lower-cases: the index's names already are
    CHECK(value == read.value(i));
  }
  return head;
}

}  // namespace

TEST_CASE("a stored object's head for HTTP/2 comes with the index of its fields") {
  http::Headers fields;
  fields.add("Content-Type", "text/html");
  fields.add("ETag", "\"v1\"");
  fields.add("Cache-Control", "public, max-age=60");
  fields.add("Vary", "Cookie");
  ResponseSpec spec;
  spec.origin = ResponseOrigin::kStored;
  spec.fields = &fields;
  spec.age = 7;
  spec.x_cache = "HIT";
  spec.weak_etag = true;
  spec.vary_accept_encoding = true;
  spec.content_coding = "br";
  spec.has_body = true;
  spec.length = 1234;
  spec.extra_fields = "Content-Range: bytes 0-1233/5000\r\nConnection: close\r\nX-Extra:  padded \r\n";
  const std::string head = h2_head(spec);
  CHECK(head.find("etag: W/\"v1\"\r\n") != std::string::npos);
  CHECK(head.find("age: 7\r\n") != std::string::npos);
  CHECK(head.find("via: 2 edge\r\n") != std::string::npos);
  CHECK(head.find("vary: Accept-Encoding\r\n") != std::string::npos);
  CHECK(head.find("content-length: 1234\r\n") != std::string::npos);
  CHECK(head.find("x-extra: padded\r\n") != std::string::npos);
  CHECK(head.find("onnection") == std::string::npos);  // no place in HTTP/2
}

TEST_CASE("connection-specific fields never reach an HTTP/2 head, whatever their origin") {
  http::Headers fields;
  fields.add("Keep-Alive", "timeout=5");
  fields.add("Upgrade", "websocket");
  fields.add("X-Kept", "1");
  ResponseSpec spec;
  spec.status = 404;
  spec.fields = &fields;  // an answer edge makes: every field relayed for HTTP/1.1
  spec.content_type = "text/plain";
  spec.no_store = true;
  const std::string head = h2_head(spec);
  CHECK(head.starts_with("HTTP/1.1 404 "));
  CHECK(head.find("x-kept: 1\r\n") != std::string::npos);
  CHECK(head.find("cache-control: no-store\r\n") != std::string::npos);
  CHECK(head.find("eep-") == std::string::npos);
  CHECK(head.find("pgrade") == std::string::npos);
}

TEST_CASE("a head for HTTP/1.1 keeps its names and has no index") {
  http::Headers fields;
  fields.add("Content-Type", "text/html");
  ResponseSpec spec;
  spec.origin = ResponseOrigin::kStored;
  spec.fields = &fields;
  spec.age = 0;
  spec.has_body = true;
  spec.length = 3;
  http::HeadIndex index;
  index.size = 99;
  index.fields.push_back({});
  std::string head;
  proxy::build_response_head(head, spec, ClientFraming{}, kDate, &index);
  CHECK(head ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nDate: Thu, 03 Dec 2026 10:00:00 GMT\r\nAge: 0\r\nVia: 1.1 "
        "edge\r\nContent-Length: 3\r\n\r\n");
  CHECK(index.size == 0);
  CHECK(index.fields.empty());
}
