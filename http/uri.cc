#include "http/uri.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>

#include "http/ascii.h"
#include "http/message.h"

namespace edge::http {

namespace {
constexpr size_t kMaxHost = 255;

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool is_unreserved(unsigned char c) {
  return is_alpha(static_cast<char>(c)) || is_ascii_digit(static_cast<char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  for (char c : port) {
    if (!is_ascii_digit(c)) return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= 65535;
}

bool valid_reg_name(std::string_view host) {
  if (host.empty() || host.size() > kMaxHost) return false;
  char previous = '.';
  for (char c : host) {
    if (!is_unreserved(static_cast<unsigned char>(c))) return false;
    // An empty label (".a", "a..b") names nothing a resolver would find: two readers could
    // disagree on it.
    if (c == '.' && previous == '.') return false;
    previous = c;
  }
  return true;
}

// What a byte of a target is to check_target_part: nearly all are plain and cost one look-up.
enum TargetByte : uint8_t { kPlain, kForbidden, kPercent, kBackslash, kDot };
constexpr std::array<uint8_t, 256> kTargetBytes = [] {
  std::array<uint8_t, 256> kinds{};
  for (size_t c = 0; c < kinds.size(); ++c) kinds[c] = (c <= 0x20 || c >= 0x7f || c == '#') ? kForbidden : kPlain;
  kinds['%'] = kPercent;
  kinds['\\'] = kBackslash;
  kinds['.'] = kDot;
  return kinds;
}();

// One pass over a target's path or query: false for a byte a target may not hold (controls,
// space, non-ASCII, '#', a backslash in the path) or a '%' not starting a triplet. Sets
// `*normalise` when the path holds a triplet or a dot right after a slash.
bool check_target_part(std::string_view text, bool path, bool* normalise) {
  for (size_t i = 0; i < text.size(); ++i) {
    switch (kTargetBytes[static_cast<unsigned char>(text[i])]) {
      case kPlain:
        break;
      case kForbidden:
        return false;
      case kPercent:
        if (i + 2 >= text.size() || hex_value(text[i + 1]) < 0 || hex_value(text[i + 2]) < 0) return false;
        *normalise = true;
        i += 2;
        break;
      case kBackslash:
        if (path) return false;  // a separator to some servers and not to others
        break;
      case kDot:
        if (path && i > 0 && text[i - 1] == '/') *normalise = true;
        break;
    }
  }
  return true;
}
}  // namespace

bool canonical_host(std::string_view authority, std::string& out) {
  out.clear();
  std::string_view host;
  std::string_view rest;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view literal = authority.substr(1, close - 1);
    char address[sizeof(in6_addr)];
    if (literal.empty() || literal.size() > 45) return false;
    std::string text(literal);
    if (inet_pton(AF_INET6, text.c_str(), address) != 1) return false;
    host = authority.substr(0, close + 1);
    rest = authority.substr(close + 1);
  } else {
    const size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : authority.substr(colon);
    if (!valid_reg_name(host)) return false;
    if (host.back() == '.') host.remove_suffix(1);  // "example.com." is the same name
    if (host.empty()) return false;
  }
  if (!rest.empty() && (rest.front() != ':' || !valid_port(rest.substr(1)))) return false;
  out.reserve(host.size());
  for (char c : host) out.push_back(ascii_lower(c));
  return true;
}

std::optional<RequestTarget> split_request_target(std::string_view method, std::string_view target,
                                                  bool https_allowed) {
  if (target.empty() || target.find('#') != std::string_view::npos) return std::nullopt;
  RequestTarget out;
  if (target == "*") {
    if (method != "OPTIONS") return std::nullopt;
    out.form = TargetForm::kAsterisk;
    out.path_query = target;
    return out;
  }
  if (target.front() == '/') {
    out.path_query = target;
    return out;
  }
  const size_t scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  const std::string_view scheme = target.substr(0, scheme_end);
  if (!iequals(scheme, "http") && !(https_allowed && iequals(scheme, "https"))) return std::nullopt;
  std::string_view rest = target.substr(scheme_end + 3);
  const size_t end = rest.find_first_of("/?");
  out.form = TargetForm::kAbsolute;
  out.authority = rest.substr(0, end);
  out.path_query = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (out.authority.find('@') != std::string_view::npos) return std::nullopt;  // userinfo
  return out;
}

bool canonical_target(std::string_view path_query, std::string& out) {
  out.clear();
  if (path_query == "*") {
    out.assign(path_query);
    return true;
  }
  const size_t q = path_query.find('?');
  std::string_view path = path_query.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view() : path_query.substr(q);
  if (!path.empty() && path.front() != '/') return false;
  bool normalise = false, ignored = false;
  if (!check_target_part(path, true, &normalise) || !check_target_part(query, false, &ignored)) return false;
  if (path.empty()) {
    out.assign(1, '/');
  } else if (!normalise) {
    out.assign(path);  // already canonical: the common case, at the cost of one scan
  } else {
    out = remove_dot_segments(normalise_percent(path));
    if (out.empty()) out.assign(1, '/');
  }
  out.append(query);
  return true;
}

bool read_request_identity(const RequestHead& head, std::string& host, std::string& target) {
  host.clear();
  const size_t hosts = head.headers.count(FieldId::kHost);
  if (hosts > 1 || (hosts == 0 && !head.http10())) return false;
  const std::optional<RequestTarget> split = split_request_target(head.method, head.target, false);
  if (!split) return false;
  // Both must be sound, even where the target's authority wins.
  if (hosts == 1 && !canonical_host(head.host(), host)) return false;
  if (split->form == TargetForm::kAbsolute && !canonical_host(split->authority, host)) return false;
  return canonical_target(split->path_query, target);
}

std::string normalise_percent(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        auto c = static_cast<unsigned char>(hi * 16 + lo);
        if (is_unreserved(c)) {
          out.push_back(static_cast<char>(c));
        } else {
          out.push_back('%');
          out.push_back(kHex[hi]);
          out.push_back(kHex[lo]);
        }
        i += 2;
        continue;
      }
    }
    if (in[i] == '%') {
      out += "%25";
      continue;
    }
    out.push_back(in[i]);
  }
  return out;
}

std::string remove_dot_segments(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  auto drop_last_segment = [&out] {
    size_t slash = out.rfind('/');
    out.erase(slash == std::string::npos ? 0 : slash);
  };
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.remove_prefix(3);
    } else if (in.starts_with("./")) {
      in.remove_prefix(2);
    } else if (in.starts_with("/./")) {
      in.remove_prefix(2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../")) {
      in.remove_prefix(3);
      drop_last_segment();
    } else if (in == "/..") {
      in = "/";
      drop_last_segment();
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      size_t next = in.find('/', in.front() == '/' ? 1 : 0);
      if (next == std::string_view::npos) next = in.size();
      out.append(in.substr(0, next));
      in.remove_prefix(next);
    }
  }
  return out;
}

}  // namespace edge::http
