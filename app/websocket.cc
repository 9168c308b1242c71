#include "app/websocket.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace edge::app::ws {

namespace {
bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

Reply upgrade_required() {
  Reply r = text_reply(426, "upgrade required: Sec-WebSocket-Version 13\n");
  r.headers.add("Sec-WebSocket-Version", "13");
  r.headers.add("Upgrade", "websocket");
  return r;
}

uint64_t read_be(std::string_view bytes) {
  uint64_t v = 0;
  for (char c : bytes) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}
}  // namespace

std::string accept_value(std::string_view key) {
  std::string input(key);
  input += kAcceptGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<size_t>(n));
}

bool valid_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (char c : key.substr(0, 22))
    if (!is_base64_char(c)) return false;
  return true;
}

Reply handshake_reply(const http::RequestHead& head, const QueryParams& query, const http::Body& body) {
  if (head.method != "GET") return bad_request("a WebSocket handshake is a GET");
  if (head.version_minor < 1) return bad_request("a WebSocket handshake needs HTTP/1.1");
  // The parser has taken Upgrade out of the fields (Connection nominates it) and kept its value.
  bool websocket = false;
  http::for_each_token(head.upgrade, [&](std::string_view token) { websocket = websocket || http::iequals(token, "websocket"); });
  if (!websocket || !head.headers.has_token("Connection", "upgrade"))
    return bad_request("not a WebSocket handshake: needs Upgrade: websocket and Connection: upgrade");
  const size_t versions = head.headers.count("Sec-WebSocket-Version");
  if (versions == 0) return bad_request("missing Sec-WebSocket-Version");
  if (versions > 1) return bad_request("more than one Sec-WebSocket-Version");
  if (*head.headers.get("Sec-WebSocket-Version") != "13") return upgrade_required();
  if (head.headers.count("Sec-WebSocket-Key") != 1) return bad_request("needs one Sec-WebSocket-Key");
  const std::string_view key = *head.headers.get("Sec-WebSocket-Key");
  if (!valid_key(key)) return bad_request("Sec-WebSocket-Key is not the base64 of 16 bytes");
  if (body.size() > 0) return bad_request("a WebSocket handshake has no body");

  Reply r;
  r.kind = Reply::Kind::kWebSocket;
  r.status = 101;
  if (auto text = query_get(query, "close_after")) {
    auto n = parse_uint(*text, UINT32_MAX);
    if (!n) return bad_request("close_after must be a number of messages");
    r.ws_close_after = *n;
  }
  if (auto text = query_get(query, "greeting")) {
    if (text->size() > kMaxGreetingBytes || !valid_utf8(*text))
      return bad_request("greeting must be UTF-8 text of at most 65536 bytes");
    r.ws_greeting = std::string(*text);
  }
  r.headers.add("Upgrade", "websocket");
  r.headers.add("Connection", "Upgrade");
  r.headers.add("Sec-WebSocket-Accept", accept_value(key));
  return r;
}

bool valid_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

bool valid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) <= n) return false;
    for (size_t i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    p += n + 1;
  }
  return true;
}

HeaderParse parse_frame_header(std::string_view data, FrameHeader& out) {
  if (data.size() < 2) return HeaderParse::kNeedMore;
  const auto b0 = static_cast<unsigned char>(data[0]);
  const auto b1 = static_cast<unsigned char>(data[1]);
  const unsigned len7 = b1 & 0x7F;
  size_t size = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
  const bool masked = (b1 & 0x80) != 0;
  if (masked) size += 4;
  if (data.size() < size) return HeaderParse::kNeedMore;
  uint64_t length = len7;
  if (len7 == 126) length = read_be(data.substr(2, 2));
  if (len7 == 127) {
    length = read_be(data.substr(2, 8));
    if (length >> 63) return HeaderParse::kBad;
  }
  out.fin = (b0 & 0x80) != 0;
  out.rsv = static_cast<uint8_t>((b0 >> 4) & 0x7);
  out.opcode = static_cast<uint8_t>(b0 & 0x0F);
  out.masked = masked;
  for (int i = 0; i < 4; ++i) out.mask[i] = masked ? static_cast<uint8_t>(data[size - 4 + i]) : 0;
  out.length = length;
  out.size = size;
  return HeaderParse::kDone;
}

void append_frame_header(std::string& out, uint8_t opcode, bool fin, uint64_t length, const uint8_t* mask) {
  out.push_back(static_cast<char>((fin ? 0x80 : 0) | (opcode & 0x0F)));
  const char mask_bit = mask ? static_cast<char>(0x80) : 0;
  if (length <= 125) {
    out.push_back(static_cast<char>(mask_bit | static_cast<char>(length)));
  } else if (length <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(length >> 8));
    out.push_back(static_cast<char>(length & 0xFF));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((length >> shift) & 0xFF));
  }
  if (mask) out.append(reinterpret_cast<const char*>(mask), 4);
}

void append_frame(std::string& out, uint8_t opcode, std::string_view payload) {
  append_frame_header(out, opcode, true, payload.size());
  out.append(payload);
}

void append_close(std::string& out, std::optional<uint16_t> code) {
  if (!code) return append_frame(out, kClose, {});
  const char payload[2] = {static_cast<char>(*code >> 8), static_cast<char>(*code & 0xFF)};
  append_frame(out, kClose, {payload, 2});
}

void apply_mask(char* data, size_t len, const uint8_t mask[4], uint64_t offset) {
  for (size_t i = 0; i < len; ++i) data[i] = static_cast<char>(data[i] ^ mask[(offset + i) & 3]);
}

// ---- EchoSession ----

void EchoSession::close(uint16_t code, std::string& out) {
  if (closed_) return;
  append_close(out, code);
  closed_ = true;
  close_code_ = code;
}

void EchoSession::fail(uint16_t code, std::string& out) {
  close(code, out);
  std::string().swap(message_);
  in_message_ = false;
}

void EchoSession::echoed(std::string& out) {
  ++messages_;
  if (settings_.close_after > 0 && messages_ >= settings_.close_after) close(kCloseNormal, out);
}

size_t EchoSession::consume(std::string_view input, std::string& out) {
  if (closed_) return 0;
  FrameHeader h;
  switch (parse_frame_header(input, h)) {
    case HeaderParse::kNeedMore:
      return 0;
    case HeaderParse::kBad:
      fail(kCloseProtocolError, out);
      return input.size();
    case HeaderParse::kDone:
      break;
  }
  // Everything that can be judged at the header is, so a frame refused is never buffered.
  const bool control = (h.opcode & 0x8) != 0;
  bool bad = !h.masked || h.rsv != 0;
  if (control) {
    bad = bad || (h.opcode != kClose && h.opcode != kPing && h.opcode != kPong) || !h.fin ||
          h.length > kMaxControlPayload;
  } else {
    bad = bad || (h.opcode != kContinuation && h.opcode != kText && h.opcode != kBinary) ||
          (h.opcode == kContinuation) != in_message_;
  }
  if (bad) {
    fail(kCloseProtocolError, out);
    return input.size();
  }
  if (!control) {
    const uint64_t so_far = h.opcode == kContinuation ? message_.size() : 0;
    if (h.length > settings_.max_message - so_far) {
      fail(kCloseTooBig, out);
      return input.size();
    }
  }
  if (input.size() - h.size < h.length) return 0;
  const std::string_view masked = input.substr(h.size, static_cast<size_t>(h.length));
  const size_t taken = h.size + masked.size();

  if (control) {
    std::string payload(masked);
    apply_mask(payload.data(), payload.size(), h.mask);
    if (h.opcode == kPing) append_frame(out, kPong, payload);
    if (h.opcode != kClose) return taken;
    if (payload.empty()) {
      closed_ = true;
      append_close(out, std::nullopt);
      return taken;
    }
    const auto code = static_cast<uint16_t>(read_be(std::string_view(payload).substr(0, 2)));
    if (payload.size() < 2 || !valid_close_code(code)) {
      fail(kCloseProtocolError, out);
    } else if (!valid_utf8(std::string_view(payload).substr(2))) {
      fail(kCloseInvalidData, out);
    } else {
      close(code, out);
    }
    return taken;
  }

  if (h.fin && h.opcode != kContinuation) {
    // A whole message in one frame: unmasked straight into its echo.
    const size_t frame_at = out.size();
    append_frame_header(out, h.opcode, true, masked.size());
    const size_t payload_at = out.size();
    out.append(masked);
    apply_mask(out.data() + payload_at, masked.size(), h.mask);
    if (h.opcode == kText && !valid_utf8(std::string_view(out).substr(payload_at))) {
      out.resize(frame_at);
      fail(kCloseInvalidData, out);
      return taken;
    }
    echoed(out);
    return taken;
  }

  if (h.opcode != kContinuation) {
    in_message_ = true;
    message_opcode_ = h.opcode;
    message_.clear();
  }
  const size_t at = message_.size();
  message_.append(masked);
  apply_mask(message_.data() + at, masked.size(), h.mask);
  if (!h.fin) return taken;
  in_message_ = false;
  if (message_opcode_ == kText && !valid_utf8(message_)) {
    fail(kCloseInvalidData, out);
    return taken;
  }
  append_frame(out, message_opcode_, message_);
  // A message may have been up to max_message: its buffer is not kept for the next one.
  std::string().swap(message_);
  echoed(out);
  return taken;
}

}  // namespace edge::app::ws
