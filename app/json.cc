#include "app/json.h"

namespace edge::app {

namespace {
constexpr char kHex[] = "0123456789abcdef";

void append_u00(std::string& out, unsigned char c) {
  out += "\\u00";
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 15]);
}

// Length of the valid UTF-8 sequence at s[i], or 0. Rejects overlong forms, surrogates and
// code points above U+10FFFF, as JSON parsers do.
size_t utf8_sequence(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k) { return k < s.size() && (byte(k) & 0xC0) == 0x80; };
  unsigned char c = byte(i);
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    unsigned char c1 = byte(i + 1);
    if (c == 0xE0 && c1 < 0xA0) return 0;  // overlong
    if (c == 0xED && c1 >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    unsigned char c1 = byte(i + 1);
    if (c == 0xF0 && c1 < 0x90) return 0;  // overlong
    if (c == 0xF4 && c1 >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}
}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = utf8_sequence(s, i);
      if (n == 0) {
        append_u00(out, c);
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20)
          append_u00(out, c);
        else
          out.push_back(static_cast<char>(c));
    }
    ++i;
  }
  out.push_back('"');
}

std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

std::string echo_json(const http::RequestHead& head, const http::Body& body) {
  std::string out;
  out.reserve(256 + head.headers.arena_bytes() + (body.size() <= kEchoBodyLimit ? body.size() : 0));
  out += "{\"method\":";
  append_json_string(out, head.method);
  out += ",\"target\":";
  append_json_string(out, head.target);
  out += ",\"version\":\"";
  out += std::to_string(head.version_major);
  out += '.';
  out += std::to_string(head.version_minor);
  out += "\",\"headers\":[";
  for (size_t i = 0; i < head.headers.size(); ++i) {
    if (i) out.push_back(',');
    out.push_back('[');
    append_json_string(out, head.headers.name(i));
    out.push_back(',');
    append_json_string(out, head.headers.value(i));
    out.push_back(']');
  }
  out += "],\"body_bytes\":";
  out += std::to_string(body.size());
  if (body.size() <= kEchoBodyLimit) {
    out += ",\"body\":";
    append_json_string(out, body.to_string());
  }
  out += "}";
  return out;
}

std::string stats_json(std::string_view name, uint64_t received, uint64_t served, uint64_t in_progress,
                       uint64_t peak_in_progress, uint64_t websockets, uint64_t websockets_opened,
                       const NamedCounts& demo) {
  std::string out = "{\"name\":";
  append_json_string(out, name);
  out += ",\"received\":" + std::to_string(received);
  out += ",\"served\":" + std::to_string(served);
  out += ",\"in_progress\":" + std::to_string(in_progress);
  out += ",\"peak_in_progress\":" + std::to_string(peak_in_progress);
  if (websockets_opened > 0) {
    out += ",\"websockets\":" + std::to_string(websockets);
    out += ",\"websockets_opened\":" + std::to_string(websockets_opened);
  }
  if (!demo.empty()) {
    out += ",\"demo\":{";
    for (size_t i = 0; i < demo.size(); ++i) {
      if (i) out.push_back(',');
      append_json_string(out, demo[i].first);
      out.push_back(':');
      out += std::to_string(demo[i].second);
    }
    out += "}";
  }
  out += "}";
  return out;
}

}  // namespace edge::app
