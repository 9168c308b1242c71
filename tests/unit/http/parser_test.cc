#include "http/parser.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace edge::http;

using namespace std::string_literals;

namespace {
RequestParser::Limits limits(uint64_t header = 1024, uint64_t line = 256, uint64_t body = 4096) {
  return {header, line, body};
}

// Feeds `input` in pieces of `step` bytes, following the parser's stops the way a connection
// does. Returns the last event and the number of complete messages seen.
struct Outcome {
  ParseEvent last = ParseEvent::kNeedMore;
  int heads = 0;
  int messages = 0;
  size_t consumed = 0;
};

Outcome run(RequestParser& p, Body* body, std::string_view input, size_t step) {
  Outcome out;
  size_t pos = 0;
  bool again = false;
  while (pos < input.size() || again) {
    again = false;
    std::string_view piece = input.substr(pos, step);
    ParseResult r = p.feed(piece);
    pos += r.consumed;
    out.consumed = pos;
    out.last = r.event;
    if (r.event == ParseEvent::kError) return out;
    if (r.event == ParseEvent::kHead) {
      ++out.heads;
      p.set_body_sink(body);
      again = true;
    }
    if (r.event == ParseEvent::kMessage) ++out.messages;
  }
  return out;
}
}  // namespace

TEST_CASE("a simple GET stops at its head, then completes without more bytes") {
  RequestParser p(limits());
  std::string req = "GET /a?b=1 HTTP/1.1\r\nHost: Example.com\r\nX-Empty:\r\nX-Pad:   v  \r\n\r\n";
  ParseResult r = p.feed(req);
  CHECK(r.event == ParseEvent::kHead);
  CHECK(r.consumed == req.size());
  CHECK(p.head().method == "GET");
  CHECK(p.head().target == "/a?b=1");
  CHECK(p.head().path() == "/a");
  CHECK(p.head().host() == "Example.com");
  CHECK(p.head().headers.get("x-empty") == std::string_view(""));
  CHECK(p.head().headers.get("X-PAD") == std::string_view("v"));
  CHECK(p.head().keep_alive);
  r = p.feed({});
  CHECK(r.event == ParseEvent::kMessage);
  CHECK(r.consumed == 0);
}

TEST_CASE("every split of a request with a chunked body gives the same head and body") {
  std::string req =
      "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  for (size_t step = 1; step <= req.size(); ++step) {
    RequestParser p(limits());
    Body body;
    Outcome o = run(p, &body, req, step);
    CAPTURE(step);
    REQUIRE(o.messages == 1);
    CHECK(o.heads == 1);
    CHECK(p.head().chunked);
    CHECK(body.to_string() == "hello world");
    CHECK(body.complete());
  }
}

TEST_CASE("pipelined requests are parsed one at a time") {
  RequestParser p(limits());
  std::string two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string_view rest = two;
  ParseResult r = p.feed(rest);
  REQUIRE(r.event == ParseEvent::kHead);
  rest.remove_prefix(r.consumed);
  r = p.feed(rest);
  REQUIRE(r.event == ParseEvent::kMessage);
  CHECK(p.head().target == "/1");
  rest.remove_prefix(r.consumed);
  CHECK(rest.size() == two.size() / 2);
  r = p.feed(rest);
  REQUIRE(r.event == ParseEvent::kHead);
  CHECK(p.head().target == "/2");
}

TEST_CASE("HTTP/1.0 keep-alive follows the Connection header") {
  RequestParser a(limits());
  a.feed("GET / HTTP/1.0\r\n\r\n");
  CHECK_FALSE(a.head().keep_alive);
  CHECK(a.head().version_minor == 0);
  RequestParser b(limits());
  b.feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(b.head().keep_alive);
  RequestParser c(limits());
  c.feed("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  CHECK_FALSE(c.head().keep_alive);
}

TEST_CASE("smuggling shapes and malformed requests are errors with the right status") {
  struct Case {
    const char* name;
    std::string input;
    int status;
  };
  const Case cases[] = {
      {"content-length with transfer-encoding",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"two different content-lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
       400},
      {"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"space in header name", "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nName : x\r\n\r\n", 400},
      {"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400},
      {"control byte in header value", std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"), 400},
      {"transfer-encoding not ending in chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"bad version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400},
      {"negative content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
  };
  for (const Case& c : cases) {
    std::string name = c.name;
    CAPTURE(name);
    RequestParser p(limits());
    Body body;
    Outcome o = run(p, &body, c.input, c.input.size());
    CHECK(o.last == ParseEvent::kError);
    CHECK(p.error_status() == c.status);
  }
}

TEST_CASE("limits: request line 414, head 431, body 413") {
  {
    RequestParser p(limits(1024, 64));
    std::string req = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK(run(p, nullptr, req, 7).last == ParseEvent::kError);
    CHECK(p.error_status() == 414);
  }
  {
    RequestParser p(limits(128, 64));
    std::string req = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(200, 'b') + "\r\n\r\n";
    CHECK(run(p, nullptr, req, 13).last == ParseEvent::kError);
    CHECK(p.error_status() == 431);
  }
  {
    // A head of exactly the limit passes.
    std::string req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    RequestParser p(limits(req.size(), 64));
    CHECK(run(p, nullptr, req, req.size()).messages == 1);
  }
  {
    RequestParser p(limits(1024, 64, 10));
    CHECK(run(p, nullptr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", 64).last == ParseEvent::kError);
    CHECK(p.error_status() == 413);
  }
  {
    RequestParser p(limits(1024, 64, 10));
    std::string req = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n";
    CHECK(run(p, nullptr, req, 5).last == ParseEvent::kError);
    CHECK(p.error_status() == 413);
  }
}

TEST_CASE("limits: more header fields than max_header_fields is 431, the limit itself passes") {
  auto head_with = [](int fields) {
    std::string req = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 1; i < fields; ++i) req += "X-F" + std::to_string(i) + ": v\r\n";
    return req + "\r\n";
  };
  RequestParser::Limits cap = limits(64 * 1024);
  cap.max_header_fields = 10;
  for (size_t step : {size_t{1}, size_t{7}, size_t{4096}}) {
    CAPTURE(step);
    {
      RequestParser p(cap);
      CHECK(run(p, nullptr, head_with(10), step).messages == 1);
    }
    {
      RequestParser p(cap);
      CHECK(run(p, nullptr, head_with(11), step).last == ParseEvent::kError);
      CHECK(p.error_status() == 431);
    }
  }
  // The count starts again with each message on a kept-alive connection.
  RequestParser p(cap);
  CHECK(run(p, nullptr, head_with(10) + head_with(10) + head_with(10), 4096).messages == 3);
}

TEST_CASE("a response is parsed with its body, skipping interim 1xx responses") {
  std::string resp =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
  for (size_t step = 1; step <= resp.size(); ++step) {
    ResponseParser p;
    Body body;
    p.expect_response(false);
    p.set_body_sink(&body);
    std::string_view rest = resp;
    ParseEvent last = ParseEvent::kNeedMore;
    size_t pos = 0;
    while (pos < resp.size()) {
      ParseResult r = p.feed(rest.substr(pos, step));
      pos += r.consumed;
      last = r.event;
      if (last == ParseEvent::kError || last == ParseEvent::kMessage) break;
    }
    CAPTURE(step);
    REQUIRE(last == ParseEvent::kMessage);
    CHECK(p.head().status == 200);
    CHECK(p.head().content_length == 5u);
    CHECK(body.to_string() == "hello");
  }
}

TEST_CASE("a response to HEAD has no body whatever its Content-Length says") {
  ResponseParser p;
  p.expect_response(true);
  ParseResult r = p.feed("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n");
  CHECK(r.event == ParseEvent::kMessage);
  CHECK(p.head().content_length == 500u);
}

TEST_CASE("a close-delimited response completes at EOF; a truncated one is an error") {
  ResponseParser a;
  Body body;
  a.expect_response(false);
  a.set_body_sink(&body);
  CHECK(a.feed("HTTP/1.1 200 OK\r\n\r\npartial").event == ParseEvent::kHead);
  CHECK(a.finish() == ParseEvent::kMessage);
  CHECK(body.to_string() == "partial");

  ResponseParser b;
  b.expect_response(false);
  CHECK(b.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").event == ParseEvent::kHead);
  CHECK(b.finish() == ParseEvent::kError);

  ResponseParser c;
  c.expect_response(false);
  CHECK(c.finish() == ParseEvent::kError);
  CHECK_FALSE(c.started());
}

TEST_CASE("garbage from a backend is an error") {
  ResponseParser p;
  p.expect_response(false);
  CHECK(p.feed("this is not http\r\n\r\n").event == ParseEvent::kError);
}

TEST_CASE("a keep-alive response connection parses consecutive responses") {
  ResponseParser p;
  for (int i = 0; i < 3; ++i) {
    Body body;
    p.expect_response(false);
    p.set_body_sink(&body);
    ParseResult r = p.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    CHECK(r.event == ParseEvent::kMessage);
    CHECK(body.to_string() == "abc");
    CHECK(p.head().keep_alive);
  }
}

TEST_CASE("hostile framing is refused whole and split at every byte") {
  struct Case {
    const char* name;
    std::string input;
    int status;
  };
  const Case cases[] = {
      {"bare CR after a line end", "GET / HTTP/1.1\r\nHost: a\r\n\rX: y\r\n\r\n", 400},
      {"bare CR after a line end, then a request",
       "GET / HTTP/1.1\r\nHost: a\r\n\rGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bare CR inside a value hides a field", "POST / HTTP/1.1\r\nHost: a\r\nX-A:\rZContent-Length: 5\r\n\r\nhello",
       400},
      {"bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bare LF ends a field", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400},
      {"bare LF ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400},
      {"obs-fold with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400},
      {"obs-fold inside Host", "GET / HTTP/1.1\r\nHost: a\r\n .evil\r\n\r\n", 400},
      {"obs-fold inside Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
       400},
      {"white space before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
      {"bare CR ends the trailer section",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\rGET /smuggled HTTP/1.1\r\n\r\n", 400},
      {"chunk size followed by junk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n",
       400},
      {"chunk size with a bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
       400},
      {"chunk data not followed by CRLF",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400},
      {"chunk size overflow",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n", 400},
      {"transfer coding before chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
       501},
      {"transfer coding before chunked, in two fields",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
      {"chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
      {"chunked then another coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"empty transfer-encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400},
      {"transfer-encoding in HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"Connection nominates Host", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Host\r\n\r\n", 400},
      {"Connection nominates Content-Length",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: keep-alive, content-length\r\n\r\nhello", 400},
      {"Connection nominates Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n0\r\n\r\n", 400},
      {"tab in the target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"a tab after the method", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"two spaces after a long target", "GET /" + std::string(100, 'a') + "  HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"a space and a tab before the version", "GET /a?b=c \tHTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bare LF after a long target", "GET /" + std::string(100, 'a') + "\nHost: a\r\n\r\n", 400},
      {"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s, 400},
  };
  for (const Case& c : cases) {
    for (size_t step : {c.input.size(), size_t{1}, size_t{2}, size_t{7}}) {
      std::string name = c.name;
      CAPTURE(name);
      CAPTURE(step);
      RequestParser p(limits());
      Body body;
      Outcome o = run(p, &body, c.input, step);
      CHECK(o.last == ParseEvent::kError);
      CHECK(p.error_status() == c.status);
      CHECK(o.messages == 0);
    }
  }
}

TEST_CASE("sound framing still parses, at every split") {
  const std::string chunked =
      "\r\nPOST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n0\r\nX-Trailer: t\r\nHost: evil\r\n\r\n";
  for (size_t step : {chunked.size(), size_t{1}, size_t{3}}) {
    CAPTURE(step);
    RequestParser p(limits());
    Body body;
    Outcome o = run(p, &body, chunked, step);
    CHECK(o.messages == 1);
    CHECK(body.to_string() == "hello");
    // Trailer fields are dropped, never merged into the head that was routed.
    CHECK(p.head().headers.count("Host") == 1);
    CHECK(p.head().host() == "a");
    CHECK_FALSE(p.head().headers.get("X-Trailer"));
  }
}

TEST_CASE("a trailer section is bounded by max_header_bytes") {
  std::string input = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 100; ++i) input += "X-Trailer-" + std::to_string(i) + ": " + std::string(20, 'v') + "\r\n";
  input += "\r\n";
  RequestParser p(limits(1024));
  Body body;
  Outcome o = run(p, &body, input, input.size());
  CHECK(o.last == ParseEvent::kError);
  CHECK(p.error_status() == 431);
}

TEST_CASE("fields Connection nominates are removed before anyone reads the head") {
  const std::string input =
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret, Cache-Control\r\n"
      "X-Secret: 1\r\nCache-Control: no-cache\r\nX-Kept: 2\r\nConnection: accept-language\r\n"
      "Accept-Language: fr\r\n\r\n";
  RequestParser p(limits());
  Outcome o = run(p, nullptr, input, input.size());
  CHECK(o.messages == 1);
  const Headers& h = p.head().headers;
  CHECK_FALSE(h.get("X-Secret"));
  CHECK_FALSE(h.get("Cache-Control"));
  CHECK_FALSE(h.get("Accept-Language"));
  CHECK(h.get("X-Kept") == std::string_view("2"));
  CHECK(h.count("Connection") == 2);
  CHECK(p.head().keep_alive);

  // No cap on how many: every nominated field goes.
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\nConnection: ";
  for (int i = 0; i < 40; ++i) many += (i ? ", " : "") + std::string("X-") + std::to_string(i);
  many += "\r\n";
  for (int i = 0; i < 40; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  many += "\r\n";
  RequestParser q(limits(4096));
  Outcome m = run(q, nullptr, many, many.size());
  CHECK(m.messages == 1);
  CHECK(q.head().headers.size() == 2);  // Host and Connection
}

TEST_CASE("hostile responses are errors, whole and split at every byte") {
  struct Case {
    const char* name;
    std::string input;
  };
  const Case cases[] = {
      {"bare CR after a line end", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\rX: y\r\n\r\nok"},
      {"bare CR inside a value", "HTTP/1.1 200 OK\r\nX-A:\rContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"},
      {"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
      {"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok"},
      {"obs-fold in the final head after a 100", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok"},
      {"status 000", "HTTP/1.1 000 OK\r\nContent-Length: 2\r\n\r\nok"},
      {"status 099", "HTTP/1.1 099 OK\r\nContent-Length: 2\r\n\r\nok"},
      {"status 600", "HTTP/1.1 600 OK\r\nContent-Length: 2\r\n\r\nok"},
      {"status 999", "HTTP/1.1 999 OK\r\nContent-Length: 2\r\n\r\nok"},
      {"transfer-encoding gzip alone", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nokok"},
      {"transfer-encoding gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
      {"transfer-encoding chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"transfer-encoding with content-length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
      {"transfer-encoding in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
      {"chunk data not followed by CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n"},
      {"chunk size followed by junk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 junk\r\nok\r\n0\r\n\r\n"},
      {"Connection nominates Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: Content-Length\r\n\r\nok"},
      {"Connection nominates Transfer-Encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n0\r\n\r\n"},
      {"two different content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"},
      {"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"},
  };
  for (const Case& c : cases) {
    for (size_t step : {c.input.size(), size_t{1}, size_t{5}}) {
      std::string name = c.name;
      CAPTURE(name);
      CAPTURE(step);
      ResponseParser p;
      Body body;
      p.expect_response(false);
      p.set_body_sink(&body);
      ParseEvent last = ParseEvent::kNeedMore;
      std::string_view rest = c.input;
      while (!rest.empty()) {
        ParseResult r = p.feed(rest.substr(0, step));
        rest.remove_prefix(r.consumed);
        last = r.event;
        if (r.event == ParseEvent::kError || r.event == ParseEvent::kMessage) break;
      }
      if (last != ParseEvent::kError && last != ParseEvent::kMessage) last = p.finish();
      CHECK(last == ParseEvent::kError);
    }
  }
}

namespace {
// Feeds `input` `step` bytes at a time until a message ends or an error; the last event.
ParseEvent feed_in_steps(ResponseParser& p, std::string_view input, size_t step) {
  ParseEvent last = ParseEvent::kNeedMore;
  while (!input.empty() && last != ParseEvent::kMessage && last != ParseEvent::kError) {
    ParseResult r = p.feed(input.substr(0, step));
    input.remove_prefix(r.consumed);
    last = r.event;
  }
  return last;
}
}  // namespace

TEST_CASE("a response's Connection-nominated fields are removed; a 100 then a sound head parses at every split") {
  const std::string input =
      "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
      "HTTP/1.1 200 OK\r\nConnection: X-Private\r\nX-Private: p\r\nContent-Length: 2\r\n\r\nok";
  for (size_t step : {input.size(), size_t{1}, size_t{4}}) {
    CAPTURE(step);
    ResponseParser p;
    Body body;
    p.expect_response(false);
    p.set_body_sink(&body);
    const ParseEvent last = feed_in_steps(p, input, step);
    CHECK(last == ParseEvent::kMessage);
    CHECK(p.head().status == 200);
    CHECK(body.to_string() == "ok");
    CHECK_FALSE(p.head().headers.get("X-Private"));
  }
}

TEST_CASE("interim responses but 100 reach the sink in order, bounded, at every split") {
  std::string input =
      "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n"
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 102 Processing\r\n\r\n";
  for (int i = 0; i < 10; ++i) input += "HTTP/1.1 103 Early Hints\r\nLink: </" + std::to_string(i) + ">\r\n\r\n";
  input += "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  for (size_t step : {input.size(), size_t{1}, size_t{7}}) {
    CAPTURE(step);
    ResponseParser p;
    Body body;
    std::vector<ResponseHead> interims;
    p.set_interim_sink(&interims);
    p.expect_response(false);
    p.set_body_sink(&body);
    const ParseEvent last = feed_in_steps(p, input, step);
    CHECK(last == ParseEvent::kMessage);
    CHECK(p.head().status == 200);
    CHECK(body.to_string() == "ok");
    REQUIRE(interims.size() == ResponseParser::kMaxInterims);
    CHECK(interims[0].status == 103);
    CHECK(interims[0].headers.get("Link") == std::string_view("</a.css>; rel=preload"));
    CHECK_FALSE(interims[0].headers.get("X-Hop"));
    CHECK(interims[1].status == 102);
    CHECK(interims[2].headers.get("Link") == std::string_view("</0>"));
    CHECK_FALSE(p.head().headers.get("Link"));
  }
}

TEST_CASE("a response's trailer fields never change its head, and are bounded") {
  ResponseParser p(256);
  Body body;
  p.expect_response(false);
  p.set_body_sink(&body);
  ParseResult r = p.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nSet-Cookie: evil=1\r\n"
                         "Cache-Control: max-age=999\r\n\r\n");
  CHECK(r.event == ParseEvent::kMessage);
  CHECK_FALSE(p.head().headers.get("Set-Cookie"));
  CHECK_FALSE(p.head().headers.get("Cache-Control"));
  CHECK(body.to_string() == "ok");

  ResponseParser q(256);
  q.expect_response(false);
  std::string big = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 20; ++i) big += "X-T" + std::to_string(i) + ": " + std::string(20, 'v') + "\r\n";
  big += "\r\n";
  std::string_view rest = big;
  ParseEvent last = ParseEvent::kNeedMore;
  while (!rest.empty() && last != ParseEvent::kError && last != ParseEvent::kMessage) {
    ParseResult step = q.feed(rest);
    rest.remove_prefix(step.consumed);
    last = step.event;
  }
  CHECK(last == ParseEvent::kError);
}

TEST_CASE("an upgrade request keeps the protocol it asks for; the field itself goes with Connection") {
  RequestParser p(limits());
  Body body;
  // (The bytes after it are never fed to the parser: the connection keeps them for the tunnel.)
  const std::string req = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
  Outcome out = run(p, &body, req, req.size());
  CHECK(out.messages == 1);
  CHECK(p.head().upgrade == "websocket");
  CHECK_FALSE(p.head().headers.get("Upgrade"));

  RequestParser q(limits());
  for (const char* shape : {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",  // Connection does not name it
                            "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: a\r\nUpgrade: b\r\n\r\n"}) {
    CAPTURE(shape);
    RequestParser r(limits());
    run(r, &body, shape, 1000);
    CHECK(r.head().upgrade.empty());
  }
}

TEST_CASE("a 101 is the final answer only to a request that asked to upgrade, and ends the HTTP bytes") {
  const std::string switched =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02h\n";
  ResponseParser asked;
  asked.expect_response(false, true);
  ParseResult r = asked.feed(switched);
  CHECK(r.event == ParseEvent::kMessage);
  CHECK(r.consumed == switched.size() - 4);
  CHECK(asked.switched());
  CHECK(asked.head().status == 101);
  CHECK(asked.head().upgrade == "websocket");
  CHECK_FALSE(asked.head().keep_alive);

  ResponseParser not_asked;
  not_asked.expect_response(false, false);
  CHECK(not_asked.feed(switched).event == ParseEvent::kError);

  ResponseParser no_upgrade_field;
  no_upgrade_field.expect_response(false, true);
  CHECK(no_upgrade_field.feed("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n").event == ParseEvent::kError);

  // Asked, but answered otherwise: an ordinary response.
  ResponseParser refused;
  refused.expect_response(false, true);
  CHECK(refused.feed("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").event == ParseEvent::kMessage);
  CHECK_FALSE(refused.switched());
}
