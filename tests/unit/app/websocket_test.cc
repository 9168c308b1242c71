#include "app/websocket.h"

#include <doctest/doctest.h>

#include "app/json.h"
#include "http/parser.h"

using namespace edge::app;
using namespace edge::app::ws;

namespace {
constexpr uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};
constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";

// A frame as a client sends it: masked unless told otherwise.
std::string client_frame(uint8_t opcode, std::string_view payload, bool fin = true, bool masked = true) {
  std::string out;
  append_frame_header(out, opcode, fin, payload.size(), masked ? kMask : nullptr);
  const size_t at = out.size();
  out.append(payload);
  if (masked) apply_mask(out.data() + at, payload.size(), kMask);
  return out;
}

std::string server_frame(uint8_t opcode, std::string_view payload) {
  std::string out;
  append_frame(out, opcode, payload);
  return out;
}

std::string close_frame(uint16_t code) {
  std::string out;
  append_close(out, code);
  return out;
}

std::string close_payload(uint16_t code, std::string_view reason = "") {
  std::string out{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
  return out.append(reason);
}

// Feeds everything in `input` to the session as a caller would: frame by frame from the front.
struct Fed {
  std::string out;
  size_t taken = 0;
};
Fed feed(EchoSession& session, std::string_view input) {
  Fed fed;
  for (size_t n; (n = session.consume(input.substr(fed.taken), fed.out)) > 0;) fed.taken += n;
  return fed;
}

// The head a real request's bytes parse into (the parser sets `upgrade` and drops the field).
edge::http::RequestHead parse_head(std::string_view raw) {
  edge::http::RequestParser parser(edge::http::RequestParser::Limits{});
  edge::http::ParseResult r = parser.feed(raw);
  REQUIRE(r.event == edge::http::ParseEvent::kHead);
  return parser.head();
}

std::string handshake(std::string_view target = "/ws", std::string_view fields = "", std::string_view method = "GET",
                      std::string_view version = "1.1") {
  std::string out;
  out.append(method).append(" ").append(target).append(" HTTP/").append(version).append("\r\nHost: a\r\n");
  out.append(fields);
  return out.append("\r\n");
}

constexpr std::string_view kGood =
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

Reply reply_to(const std::string& raw) {
  edge::http::RequestHead head = parse_head(raw);
  edge::http::Body body;
  return route(head, body, RouteContext{"n1", {}, nullptr});
}

std::string field(const Reply& r, std::string_view name) {
  auto v = r.headers.get(name);
  return v ? std::string(*v) : "<absent>";
}
}  // namespace

TEST_CASE("accept_value: the RFC 6455 example") {
  CHECK(accept_value(kKey) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(accept_value("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST_CASE("valid_key: base64 of 16 bytes") {
  CHECK(valid_key(kKey));
  CHECK(valid_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  CHECK(valid_key("+/+/+/+/+/+/+/+/+/+/+w=="));
  CHECK_FALSE(valid_key(""));
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZQ="));     // 23
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZQ==="));   // 25
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZQAA"));    // 18 bytes
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZ!=="));
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZ =="));
}

TEST_CASE("handshake: a valid one is a 101 with the accept value") {
  Reply r = reply_to(handshake("/ws", kGood));
  CHECK(r.kind == Reply::Kind::kWebSocket);
  CHECK(r.status == 101);
  CHECK(field(r, "Upgrade") == "websocket");
  CHECK(field(r, "Connection") == "Upgrade");
  CHECK(field(r, "Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(field(r, "Sec-WebSocket-Protocol") == "<absent>");
  CHECK(r.body.empty());
  CHECK(r.ws_close_after == 0);
  CHECK_FALSE(r.ws_greeting);

  Framing framing;
  framing.date = "Tue, 14 Nov 2023 22:13:20 GMT";
  framing.backend = "n1";
  CHECK(format_head(r, framing) ==
        "HTTP/1.1 101 Switching Protocols\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nX-Backend: n1\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");

  // Tokens in any case, among others.
  Reply mixed = reply_to(handshake("/ws",
                                   "Upgrade: WebSocket\r\nConnection: keep-alive, UPGRADE\r\n"
                                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
  CHECK(mixed.kind == Reply::Kind::kWebSocket);
}

TEST_CASE("handshake: the query's close_after and greeting") {
  Reply r = reply_to(handshake("/ws?close_after=3&greeting=hello%20there", kGood));
  CHECK(r.kind == Reply::Kind::kWebSocket);
  CHECK(r.ws_close_after == 3);
  CHECK(r.ws_greeting == std::optional<std::string>("hello there"));
  CHECK(reply_to(handshake("/ws?greeting=", kGood)).ws_greeting == std::optional<std::string>(""));
  CHECK(reply_to(handshake("/ws?close_after=x", kGood)).status == 400);
  CHECK(reply_to(handshake("/ws?close_after=-1", kGood)).status == 400);
  CHECK(reply_to(handshake("/ws?greeting=%FF", kGood)).status == 400);  // not UTF-8
  CHECK(reply_to(handshake("/ws?greeting=%zz", kGood)).status == 400);
}

TEST_CASE("handshake: anything missing or wrong is a plain 400, a wrong version 426") {
  auto refused = [](const std::string& raw) {
    Reply r = reply_to(raw);
    CHECK(r.kind == Reply::Kind::kRespond);
    CHECK(field(r, "Sec-WebSocket-Accept") == "<absent>");
    return r.status;
  };
  const std::string version = "Sec-WebSocket-Version: 13\r\n";
  const std::string key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
  const std::string upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
  CHECK(refused(handshake("/ws", kGood, "POST")) == 400);
  CHECK(refused(handshake("/ws", kGood, "HEAD")) == 400);
  CHECK(refused(handshake("/ws", kGood, "GET", "1.0")) == 400);
  CHECK(refused(handshake("/ws", upgrade + version)) == 400);  // no key
  CHECK(refused(handshake("/ws", upgrade + version + key + key)) == 400);
  CHECK(refused(handshake("/ws", upgrade + version + "Sec-WebSocket-Key: c2hvcnQ=\r\n")) == 400);
  CHECK(refused(handshake("/ws", upgrade + key)) == 400);  // no version
  CHECK(refused(handshake("/ws", upgrade + version + version + key)) == 400);
  CHECK(refused(handshake("/ws", "Connection: Upgrade\r\n" + version + key)) == 400);
  CHECK(refused(handshake("/ws", "Upgrade: websocket\r\n" + version + key)) == 400);
  CHECK(refused(handshake("/ws", "Upgrade: websocket\r\nConnection: keep-alive\r\n" + version + key)) == 400);
  CHECK(refused(handshake("/ws", "Upgrade: h2c\r\nConnection: Upgrade\r\n" + version + key)) == 400);

  Reply old = reply_to(handshake("/ws", upgrade + "Sec-WebSocket-Version: 8\r\n" + key));
  CHECK(old.kind == Reply::Kind::kRespond);
  CHECK(old.status == 426);
  CHECK(field(old, "Sec-WebSocket-Version") == "13");

  // A body is not part of a handshake.
  edge::http::RequestHead head = parse_head(handshake("/ws", kGood));
  edge::http::Body body;
  body.append("x");
  CHECK(route(head, body, RouteContext{"n1", {}, nullptr}).status == 400);
}

TEST_CASE("stats_json adds the WebSocket gauges once any was opened") {
  CHECK(stats_json("a1", 5, 3, 1, 2) == R"({"name":"a1","received":5,"served":3,"in_progress":1,"peak_in_progress":2})");
  CHECK(stats_json("a1", 5, 3, 1, 2, 0, 0) ==
        R"({"name":"a1","received":5,"served":3,"in_progress":1,"peak_in_progress":2})");
  CHECK(stats_json("a1", 5, 3, 1, 2, 1, 4) ==
        R"({"name":"a1","received":5,"served":3,"in_progress":1,"peak_in_progress":2,"websockets":1,"websockets_opened":4})");
  CHECK(stats_json("a1", 5, 3, 1, 2, 0, 4) ==
        R"({"name":"a1","received":5,"served":3,"in_progress":1,"peak_in_progress":2,"websockets":0,"websockets_opened":4})");
  Stats stats{9, 5, 2, 7, 3, 8};
  edge::http::RequestHead head;
  head.method = "GET";
  head.target = "/stats";
  edge::http::Body body;
  CHECK(route(head, body, RouteContext{"n1", stats, nullptr}).body ==
        R"({"name":"n1","received":9,"served":5,"in_progress":2,"peak_in_progress":7,"websockets":3,"websockets_opened":8})");
}

TEST_CASE("valid_utf8") {
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("plain"));
  CHECK(valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));  // é € 😀
  CHECK(valid_utf8("\xf4\x8f\xbf\xbf"));                      // U+10FFFF
  CHECK_FALSE(valid_utf8("\xff"));
  CHECK_FALSE(valid_utf8("\xc3"));            // cut short
  CHECK_FALSE(valid_utf8("\xe2\x82"));        // cut short
  CHECK_FALSE(valid_utf8("\xc0\xaf"));        // overlong
  CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));    // overlong
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));    // a surrogate
  CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  CHECK_FALSE(valid_utf8("\x80"));
  CHECK_FALSE(valid_utf8("a\xc3(b"));
}

TEST_CASE("valid_close_code") {
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999})
    CHECK(valid_close_code(code));
  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) CHECK_FALSE(valid_close_code(code));
}

TEST_CASE("frame headers: the three length forms, masks, and every partial header") {
  for (uint64_t length : {0ull, 1ull, 125ull, 126ull, 200ull, 65535ull, 65536ull, 70000ull, 1ull << 40}) {
    CAPTURE(length);
    for (bool masked : {false, true}) {
      std::string bytes;
      append_frame_header(bytes, kBinary, masked, length, masked ? kMask : nullptr);
      const size_t want = 2 + (length <= 125 ? 0 : length <= 65535 ? 2 : 8) + (masked ? 4 : 0);
      CHECK(bytes.size() == want);
      FrameHeader h;
      for (size_t cut = 0; cut < bytes.size(); ++cut) CHECK(parse_frame_header(bytes.substr(0, cut), h) == HeaderParse::kNeedMore);
      bytes += "payload";
      REQUIRE(parse_frame_header(bytes, h) == HeaderParse::kDone);
      CHECK(h.size == want);
      CHECK(h.length == length);
      CHECK(h.masked == masked);
      CHECK(h.fin == masked);  // both follow `masked` above
      CHECK(h.opcode == kBinary);
      CHECK(h.rsv == 0);
      if (masked) CHECK(std::equal(h.mask, h.mask + 4, kMask));
    }
  }
  // A longer form than needed is still read; a 64-bit length with its top bit set is not.
  FrameHeader h;
  CHECK(parse_frame_header(std::string("\x81\x7e\x00\x05", 4), h) == HeaderParse::kDone);
  CHECK(h.length == 5);
  CHECK(parse_frame_header(std::string("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x01", 10), h) == HeaderParse::kBad);
  CHECK(parse_frame_header(std::string("\xf1\x00", 2), h) == HeaderParse::kDone);
  CHECK(h.rsv == 7);
}

TEST_CASE("echo: text and binary, one unmasked frame each, in all three length forms") {
  for (size_t size : {0, 5, 125, 126, 200, 65535, 65536, 70000}) {
    CAPTURE(size);
    std::string payload(size, '\0');
    for (size_t i = 0; i < size; ++i) payload[i] = static_cast<char>('a' + i % 26);
    for (uint8_t opcode : {kText, kBinary}) {
      EchoSession session;
      const std::string frame = client_frame(opcode, payload);
      Fed fed = feed(session, frame);
      CHECK(fed.taken == frame.size());
      CHECK(fed.out == server_frame(opcode, payload));
      CHECK(session.messages() == 1);
      CHECK_FALSE(session.closed());
    }
  }
  // Binary is not checked as text.
  EchoSession session;
  const std::string bytes("\xff\x00", 2);
  CHECK(feed(session, client_frame(kBinary, bytes)).out == server_frame(kBinary, bytes));
}

TEST_CASE("echo: nothing is taken until a frame is whole, whatever the split") {
  const std::string input = client_frame(kText, "hello") + client_frame(kPing, "p") +
                            client_frame(kBinary, std::string(300, 'b')) + client_frame(kText, "bye");
  const std::string expected = server_frame(kText, "hello") + server_frame(kPong, "p") +
                               server_frame(kBinary, std::string(300, 'b')) + server_frame(kText, "bye");
  // Byte by byte: the caller's buffer grows one byte at a time.
  EchoSession session;
  std::string buffer, out;
  for (char c : input) {
    buffer.push_back(c);
    for (size_t n; (n = session.consume(buffer, out)) > 0;) buffer.erase(0, n);
  }
  CHECK(buffer.empty());
  CHECK(out == expected);
  CHECK(session.messages() == 3);
}

TEST_CASE("echo: a fragmented message is echoed whole; pings between its fragments are answered at once") {
  EchoSession session;
  const std::string input = client_frame(kText, "hel", false) + client_frame(kPing, "mid") +
                            client_frame(kContinuation, "lo ", false) + client_frame(kPong, "ignored") +
                            client_frame(kContinuation, "world");
  Fed fed = feed(session, input);
  CHECK(fed.taken == input.size());
  CHECK(fed.out == server_frame(kPong, "mid") + server_frame(kText, "hello world"));
  CHECK(session.messages() == 1);
  CHECK_FALSE(session.in_message());

  // Binary fragments, one of them empty.
  EchoSession binary;
  CHECK(feed(binary, client_frame(kBinary, "ab", false) + client_frame(kContinuation, "", false) +
                         client_frame(kContinuation, "c"))
            .out == server_frame(kBinary, "abc"));
}

TEST_CASE("echo: ping gets pong, pong gets nothing") {
  EchoSession session;
  CHECK(feed(session, client_frame(kPing, "are you there")).out == server_frame(kPong, "are you there"));
  CHECK(feed(session, client_frame(kPing, "")).out == server_frame(kPong, ""));
  CHECK(feed(session, client_frame(kPing, std::string(125, 'x'))).out == server_frame(kPong, std::string(125, 'x')));
  CHECK(feed(session, client_frame(kPong, "x")).out.empty());
  CHECK(session.messages() == 0);
}

TEST_CASE("echo: a close is echoed with its code, and the session ends") {
  EchoSession session;
  const std::string input = client_frame(kClose, close_payload(4321, "bye")) + client_frame(kText, "after");
  Fed fed = feed(session, input);
  CHECK(fed.out == close_frame(4321));
  CHECK(session.closed());
  CHECK(session.close_code() == std::optional<uint16_t>(4321));
  std::string more;
  CHECK(session.consume(client_frame(kText, "after"), more) == 0);
  CHECK(more.empty());

  EchoSession empty;
  CHECK(feed(empty, client_frame(kClose, "")).out == server_frame(kClose, ""));
  CHECK(empty.closed());
  CHECK_FALSE(empty.close_code());

  EchoSession normal;
  CHECK(feed(normal, client_frame(kClose, close_payload(1000))).out == close_frame(1000));
}

TEST_CASE("echo: protocol errors close with 1002") {
  auto error = [](const std::string& input) {
    EchoSession session;
    Fed fed = feed(session, input);
    CHECK(session.closed());
    return session.closed() ? std::optional<std::string>(fed.out) : std::nullopt;
  };
  const auto protocol_error = std::optional<std::string>(close_frame(kCloseProtocolError));
  CHECK(error(client_frame(kText, "hi", true, false)) == protocol_error);  // unmasked
  std::string rsv = client_frame(kText, "hi");
  rsv[0] = static_cast<char>(rsv[0] | 0x40);
  CHECK(error(rsv) == protocol_error);
  CHECK(error(client_frame(0x3, "x")) == protocol_error);
  CHECK(error(client_frame(0xB, "x")) == protocol_error);
  CHECK(error(client_frame(kPing, std::string(126, 'x'))) == protocol_error);
  CHECK(error(client_frame(kPing, "x", false)) == protocol_error);
  CHECK(error(client_frame(kClose, close_payload(1000), false)) == protocol_error);
  CHECK(error(client_frame(kContinuation, "x")) == protocol_error);
  CHECK(error(client_frame(kText, "a", false) + client_frame(kText, "b")) == protocol_error);
  CHECK(error(client_frame(kClose, "\x03")) == protocol_error);  // one byte
  CHECK(error(client_frame(kClose, close_payload(1005))) == protocol_error);
  CHECK(error(client_frame(kClose, close_payload(999))) == protocol_error);
  CHECK(error(std::string("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01", 10) + "mask") == protocol_error);
  // A frame refused at its header is refused before its payload arrives.
  EchoSession early;
  std::string out;
  CHECK(early.consume(client_frame(kPing, std::string(200, 'x')).substr(0, 8), out) > 0);
  CHECK(out == close_frame(kCloseProtocolError));
}

TEST_CASE("echo: text that is not UTF-8 closes with 1007") {
  const auto invalid = std::optional<std::string>(close_frame(kCloseInvalidData));
  for (const std::string& input : {client_frame(kText, "ab\xff"),
                                   client_frame(kText, "\xe2\x82", false) + client_frame(kContinuation, "x"),
                                   client_frame(kClose, close_payload(1000, "\xff"))}) {
    EchoSession session;
    Fed fed = feed(session, input);
    CHECK(session.closed());
    CHECK(fed.out == *invalid);
  }
  // A character split between fragments is fine.
  EchoSession split;
  CHECK(feed(split, client_frame(kText, "\xe2\x82", false) + client_frame(kContinuation, "\xac")).out ==
        server_frame(kText, "\xe2\x82\xac"));
}

TEST_CASE("echo: messages up to max_message, past it 1009 at the header") {
  EchoSession::Settings settings;
  settings.max_message = 1000;
  EchoSession session(settings);
  CHECK(feed(session, client_frame(kBinary, std::string(1000, 'x'))).out == server_frame(kBinary, std::string(1000, 'x')));
  CHECK(feed(session, client_frame(kBinary, std::string(600, 'x'), false) + client_frame(kContinuation, std::string(400, 'y')))
            .out == server_frame(kBinary, std::string(600, 'x') + std::string(400, 'y')));

  EchoSession single(settings);
  std::string out;
  const std::string big = client_frame(kBinary, std::string(1001, 'x'));
  CHECK(single.consume(big.substr(0, 8), out) > 0);  // the header alone decides
  CHECK(out == close_frame(kCloseTooBig));

  EchoSession fragmented(settings);
  Fed fed = feed(fragmented, client_frame(kText, std::string(600, 'x'), false) +
                                 client_frame(kContinuation, std::string(401, 'y')));
  CHECK(fed.out == close_frame(kCloseTooBig));
  CHECK(fragmented.close_code() == std::optional<uint16_t>(kCloseTooBig));

  // The default cap is 1 MiB.
  EchoSession mib;
  const std::string exact = client_frame(kBinary, std::string(kMaxMessageBytes, 'z'));
  CHECK(feed(mib, exact).out.size() == kMaxMessageBytes + 10);
  std::string past;
  CHECK(mib.consume(client_frame(kBinary, std::string(kMaxMessageBytes + 1, 'z')).substr(0, 14), past) > 0);
  CHECK(past == close_frame(kCloseTooBig));
}

TEST_CASE("echo: close_after closes with 1000 after that many messages") {
  EchoSession session(EchoSession::Settings{kMaxMessageBytes, 2});
  Fed fed = feed(session, client_frame(kText, "one") + client_frame(kPing, "") + client_frame(kBinary, "two") +
                              client_frame(kText, "three"));
  CHECK(fed.out == server_frame(kText, "one") + server_frame(kPong, "") + server_frame(kBinary, "two") + close_frame(1000));
  CHECK(session.closed());
  CHECK(session.messages() == 2);
}

TEST_CASE("echo: the server's own close, once") {
  EchoSession session;
  std::string out;
  session.close(kCloseGoingAway, out);
  session.close(kCloseNormal, out);
  CHECK(out == close_frame(kCloseGoingAway));
  CHECK(session.closed());
  CHECK(session.consume(client_frame(kText, "x"), out) == 0);
}
