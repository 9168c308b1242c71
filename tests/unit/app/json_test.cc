#include "app/json.h"

#include <doctest/doctest.h>

#include "http/parser.h"

using namespace edge::app;

TEST_CASE("json_string escapes quotes, backslashes and control characters") {
  CHECK(json_string("") == R"("")");
  CHECK(json_string("plain text") == R"("plain text")");
  CHECK(json_string("a\"b\\c") == R"("a\"b\\c")");
  CHECK(json_string("\n\r\t\b\f") == R"("\n\r\t\b\f")");
  CHECK(json_string(std::string("\x01\x1f\x00", 3)) == R"("\u0001\u001f\u0000")");
  CHECK(json_string("/ and \x7f") == "\"/ and \x7f\"");
}

TEST_CASE("json_string passes valid UTF-8 and escapes stray bytes as \\u00XX") {
  CHECK(json_string("caf\xc3\xa9") == "\"caf\xc3\xa9\"");               // 2 bytes
  CHECK(json_string("\xe2\x82\xac") == "\"\xe2\x82\xac\"");             // 3 bytes
  CHECK(json_string("\xf0\x9f\x98\x80") == "\"\xf0\x9f\x98\x80\"");     // 4 bytes
  CHECK(json_string("\xff") == R"("\u00ff")");                          // never valid
  CHECK(json_string("\xc3") == R"("\u00c3")");                          // truncated sequence
  CHECK(json_string("\xc3(") == R"("\u00c3(")");                        // bad continuation
  CHECK(json_string("\xc0\xaf") == R"("\u00c0\u00af")");                // overlong
  CHECK(json_string("\xe0\x80\xaf") == R"("\u00e0\u0080\u00af")");      // overlong, 3 bytes
  CHECK(json_string("\xed\xa0\x80") == R"("\u00ed\u00a0\u0080")");      // surrogate
  CHECK(json_string("\xf4\x90\x80\x80") == R"("\u00f4\u0090\u0080\u0080")");  // above U+10FFFF
}

namespace {
// Parses a request with the real parser, as the server does.
struct Parsed {
  edge::http::RequestParser parser{edge::http::RequestParser::Limits{}};
  edge::http::Body body;
  explicit Parsed(std::string_view raw) {
    while (!raw.empty()) {
      auto r = parser.feed(raw);
      raw.remove_prefix(r.consumed);
      if (r.event == edge::http::ParseEvent::kHead) parser.set_body_sink(&body);
      REQUIRE(r.event != edge::http::ParseEvent::kError);
      if (r.event == edge::http::ParseEvent::kMessage) return;
    }
    auto r = parser.feed({});  // a message without a body completes on an empty feed
    REQUIRE(r.event == edge::http::ParseEvent::kMessage);
  }
};
}  // namespace

TEST_CASE("echo_json describes the request") {
  Parsed p("POST /echo?a=%22 HTTP/1.0\r\nHost: h\r\nX-Q: say \"hi\"\r\nContent-Length: 5\r\n\r\nab\ncd");
  CHECK(echo_json(p.parser.head(), p.body) ==
        R"({"method":"POST","target":"/echo?a=%22","version":"1.0","headers":[["Host","h"],["X-Q","say \"hi\""],)"
        R"(["Content-Length","5"]],"body_bytes":5,"body":"ab\ncd"})");

  Parsed empty("GET / HTTP/1.1\r\n\r\n");
  CHECK(echo_json(empty.parser.head(), empty.body) ==
        R"({"method":"GET","target":"/","version":"1.1","headers":[],"body_bytes":0,"body":""})");
}

TEST_CASE("echo_json includes the body up to 64 KiB only") {
  edge::http::RequestHead head;
  head.method = "PUT";
  head.target = "/echo";
  edge::http::Body at_limit;
  at_limit.append(std::string(kEchoBodyLimit, 'x'));
  std::string json = echo_json(head, at_limit);
  CHECK(json.find(R"("body_bytes":65536,"body":"xxx)") != std::string::npos);
  CHECK(json.size() > kEchoBodyLimit);

  edge::http::Body over;
  over.append(std::string(kEchoBodyLimit + 1, 'x'));
  CHECK(echo_json(head, over) ==
        R"({"method":"PUT","target":"/echo","version":"1.1","headers":[],"body_bytes":65537})");
}

TEST_CASE("stats_json") {
  CHECK(stats_json("a1", 5, 3, 1, 2) ==
        R"({"name":"a1","received":5,"served":3,"in_progress":1,"peak_in_progress":2})");
  CHECK(stats_json("q\"", 0, 0, 0, 0) ==
        R"({"name":"q\"","received":0,"served":0,"in_progress":0,"peak_in_progress":0})");
  CHECK(stats_json("a", 1, 1, 0, 1, 0, 0, {{"book", 3}, {"fragment/view", 1}}) ==
        R"({"name":"a","received":1,"served":1,"in_progress":0,"peak_in_progress":1,"demo":{"book":3,"fragment/view":1}})");
}
