// app/websocket: the WebSocket protocol (RFC 6455, server side) as edge-app's /ws speaks it,
// without I/O: the opening handshake (a request in, a Reply out), frame headers, and the echo
// session that turns the client's frames into the server's. app/server.h carries it out on a
// connection (the 101, then the bytes both ways, back-pressure and the TCP close).
//
// /ws (GET, HTTP/1.1): the opening handshake. It needs `Upgrade: websocket` (a token, any case),
// `Connection` listing `upgrade`, one `Sec-WebSocket-Version: 13` and one `Sec-WebSocket-Key`
// that is the base64 of 16 bytes (24 characters), and no body. Anything missing or wrong is a
// plain 400 (the connection stays HTTP); a version other than 13 is 426 with
// `Sec-WebSocket-Version: 13`. Accepted: 101 with `Upgrade: websocket`, `Connection: Upgrade`
// and `Sec-WebSocket-Accept` (accept_value()). No subprotocol or extension is ever chosen.
// Query parameters (a bad value is 400):
//   close_after=N   after echoing N messages, the server closes (1000); 0 or absent: never
//   greeting=TEXT   a text message (valid UTF-8, at most kMaxGreetingBytes) sent right after
//                   the 101, before anything is read
//
// The echo (EchoSession), frame by frame:
//   text, binary    echoed as one unmasked frame of the same opcode; a fragmented message
//                   (first frame, continuations up to FIN) is reassembled and echoed whole.
//                   A message over max_message bytes: close 1009; a text message that is not
//                   UTF-8: close 1007.
//   ping            a pong with the same payload, at once (also between the fragments of a
//                   message); a pong is ignored
//   close           a close frame back with the same status code (none if it had none), and
//                   the session is over: the server closes the TCP connection once it is written
//   anything wrong  close 1002: an unmasked frame, RSV bits set, an unknown opcode, a control
//                   frame over 125 bytes or fragmented, a continuation with no message begun, a
//                   new message before the last one's FIN, a 64-bit length with its top bit set,
//                   a close frame of 1 byte or with a code a peer may not send; a close's reason
//                   that is not UTF-8: 1007
// After the server's close frame the session sends nothing more (RFC 6455 5.5.1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "app/query.h"
#include "app/routes.h"
#include "http/body.h"
#include "http/message.h"

namespace edge::app::ws {

// The GUID RFC 6455 appends to a Sec-WebSocket-Key before hashing it.
inline constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
inline constexpr uint64_t kMaxMessageBytes = 1024 * 1024;
inline constexpr size_t kMaxControlPayload = 125;
inline constexpr size_t kMaxGreetingBytes = 64 * 1024;
// The most bytes a frame header takes: 2, 8 of extended length, 4 of mask.
inline constexpr size_t kMaxHeaderBytes = 14;

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close codes the server sends.
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseInvalidData = 1007;
inline constexpr uint16_t kCloseTooBig = 1009;

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + kAcceptGuid)).
std::string accept_value(std::string_view key);
// Whether `key` is base64 of 16 bytes: 22 base64 characters and "==".
bool valid_key(std::string_view key);
// The /ws reply to `head` (whose decoded query is `query`): Reply::Kind::kWebSocket with the
// 101's fields and the session's parameters, or a 400/426 refusal.
Reply handshake_reply(const http::RequestHead& head, const QueryParams& query, const http::Body& body);

// Whether a close frame from a peer may carry `code` (RFC 6455 7.4): 1000-1003, 1007-1014,
// 3000-4999.
bool valid_close_code(uint16_t code);
bool valid_utf8(std::string_view text);

struct FrameHeader {
  bool fin = false;
  uint8_t rsv = 0;  // the three RSV bits, as bits 0-2
  uint8_t opcode = 0;
  bool masked = false;
  uint8_t mask[4] = {};
  uint64_t length = 0;  // of the payload
  size_t size = 0;      // of the header itself, 2 to 14 bytes
};

enum class HeaderParse {
  kNeedMore,  // `data` holds only part of a header
  kDone,
  kBad,  // a 64-bit length with its top bit set
};
// Reads the frame header at the start of `data` into `out` (size says where the payload
// starts). Any length form is taken (a longer form than needed too).
HeaderParse parse_frame_header(std::string_view data, FrameHeader& out);

// Appends a frame header, in the shortest length form; with `mask` (4 bytes), masked.
void append_frame_header(std::string& out, uint8_t opcode, bool fin, uint64_t length, const uint8_t* mask = nullptr);
// Appends a whole unmasked frame with FIN set: what the server sends.
void append_frame(std::string& out, uint8_t opcode, std::string_view payload);
// Appends the server's close frame: with `code` as its payload, or empty without one.
void append_close(std::string& out, std::optional<uint16_t> code);
// XORs `len` bytes with the masking key, as if they started at payload offset `offset`
// (masking and unmasking are the same).
void apply_mask(char* data, size_t len, const uint8_t mask[4], uint64_t offset = 0);

// The echo of one connection, over bytes. The caller owns both buffers: it keeps what it read
// in one and hands its unconsumed front to consume(); consume() appends what the server sends
// to the other.
class EchoSession {
 public:
  struct Settings {
    uint64_t max_message = kMaxMessageBytes;
    uint64_t close_after = 0;  // messages echoed before the server closes (1000); 0: never
  };

  EchoSession() = default;
  explicit EchoSession(Settings settings) : settings_(settings) {}

  // Takes at most one frame from the front of `input` and appends the answer to it, if any, to
  // `out`. Returns the bytes taken: 0 while `input` holds no whole frame (a payload is taken
  // only once all of it is there, so a caller never buffers more than max_message plus
  // kMaxHeaderBytes for it: a longer frame is refused at its header), and 0 once closed(). A
  // frame that ends the session may be taken before its payload has arrived.
  size_t consume(std::string_view input, std::string& out);
  // Ends the session from the server's side: appends a close frame with `code`. Nothing if it
  // has ended already.
  void close(uint16_t code, std::string& out);

  // The server's close frame has been appended: nothing more will be, and the caller closes
  // the connection once it is written.
  bool closed() const { return closed_; }
  // The code of that close frame (nullopt: an empty close, the echo of one).
  std::optional<uint16_t> close_code() const { return close_code_; }
  uint64_t messages() const { return messages_; }  // echoed
  bool in_message() const { return in_message_; }  // a fragmented message is being reassembled

 private:
  void fail(uint16_t code, std::string& out);
  void echoed(std::string& out);

  Settings settings_;
  std::string message_;  // the fragments of the message being reassembled, unmasked
  uint8_t message_opcode_ = 0;
  bool in_message_ = false;
  bool closed_ = false;
  std::optional<uint16_t> close_code_;
  uint64_t messages_ = 0;
};

}  // namespace edge::app::ws
