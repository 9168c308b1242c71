// proxy/heads: small helpers for building message heads, shared by the client side and the
// upstream side of the proxy. Header-only: each is a few lines on the hot path.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/message.h"

namespace edge::proxy {

inline void append_number(std::string& out, uint64_t n) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

inline void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

// "HTTP/1.1 <status> <reason>\r\n"; the canonical phrase when `reason` is empty.
inline void append_status_line(std::string& out, int status, std::string_view reason) {
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<uint64_t>(status));
  out.append(" ");
  out.append(reason.empty() ? http::reason_phrase(status) : reason);
  out.append("\r\n");
}

inline bool response_has_body(int status, bool head_request) {
  return !(head_request || status == 204 || status == 304 || (status >= 100 && status < 200));
}
}  // namespace edge::proxy
