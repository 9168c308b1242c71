#include "cache/targeted.h"

#include <charconv>

namespace edge::cache {

namespace {

bool is_lcalpha(char c) { return c >= 'a' && c <= 'z'; }
bool is_digit_char(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return is_lcalpha(c) || (c >= 'A' && c <= 'Z'); }
bool is_tchar(char c) {
  return is_alpha(c) || is_digit_char(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool is_base64(char c) { return is_alpha(c) || is_digit_char(c) || c == '+' || c == '/' || c == '='; }

// One member's value, as far as directives care.
struct Item {
  enum Kind { kInteger, kDecimal, kString, kToken, kBytes, kBoolean, kInnerList } kind = kBoolean;
  long long integer = 0;
  bool boolean = true;
};

// A strict RFC 8941 reader over one Dictionary: each read_* advances `at` or returns false.
class DictionaryReader {
 public:
  explicit DictionaryReader(std::string_view text) : s_(text) {}

  template <typename OnMember>
  bool dictionary(OnMember&& on_member) {
    skip_sp();
    if (at_ == s_.size()) return true;  // an empty Dictionary
    for (;;) {
      std::string_view key;
      if (!read_key(key)) return false;
      Item item;  // a bare key is Boolean true
      if (at_ < s_.size() && s_[at_] == '=') {
        ++at_;
        if (at_ < s_.size() && s_[at_] == '(') {
          if (!read_inner_list()) return false;
          item.kind = Item::kInnerList;
        } else if (!read_bare_item(item)) {
          return false;
        }
      }
      if (!read_parameters()) return false;
      on_member(key, item);
      skip_ows();
      if (at_ == s_.size()) return true;
      if (s_[at_] != ',') return false;
      ++at_;
      skip_ows();
      if (at_ == s_.size()) return false;  // a trailing comma
    }
  }

 private:
  void skip_sp() {
    while (at_ < s_.size() && s_[at_] == ' ') ++at_;
  }
  void skip_ows() {
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t')) ++at_;
  }
  bool read_key(std::string_view& key) {
    const size_t start = at_;
    if (at_ == s_.size() || !(is_lcalpha(s_[at_]) || s_[at_] == '*')) return false;
    ++at_;
    while (at_ < s_.size()) {
      const char c = s_[at_];
      if (!(is_lcalpha(c) || is_digit_char(c) || c == '_' || c == '-' || c == '.' || c == '*')) break;
      ++at_;
    }
    key = s_.substr(start, at_ - start);
    return true;
  }
  bool read_parameters() {
    while (at_ < s_.size() && s_[at_] == ';') {
      ++at_;
      skip_sp();
      std::string_view key;
      if (!read_key(key)) return false;
      if (at_ < s_.size() && s_[at_] == '=') {
        ++at_;
        Item ignored;
        if (!read_bare_item(ignored)) return false;
      }
    }
    return true;
  }
  bool read_inner_list() {
    ++at_;  // '('
    for (;;) {
      skip_sp();
      if (at_ == s_.size()) return false;
      if (s_[at_] == ')') {
        ++at_;
        return true;
      }
      Item ignored;
      if (!read_bare_item(ignored) || !read_parameters()) return false;
      if (at_ == s_.size() || (s_[at_] != ' ' && s_[at_] != ')')) return false;
    }
  }
  bool read_bare_item(Item& item) {
    if (at_ == s_.size()) return false;
    const char c = s_[at_];
    if (c == '-' || is_digit_char(c)) return read_number(item);
    if (c == '"') return read_string(item);
    if (c == ':') return read_bytes(item);
    if (c == '?') {
      if (at_ + 1 >= s_.size() || (s_[at_ + 1] != '0' && s_[at_ + 1] != '1')) return false;
      item.kind = Item::kBoolean;
      item.boolean = s_[at_ + 1] == '1';
      at_ += 2;
      return true;
    }
    if (is_alpha(c) || c == '*') {
      ++at_;
      while (at_ < s_.size() && (is_tchar(s_[at_]) || s_[at_] == ':' || s_[at_] == '/')) ++at_;
      item.kind = Item::kToken;
      return true;
    }
    return false;
  }
  bool read_number(Item& item) {
    const size_t start = at_;
    if (s_[at_] == '-') ++at_;
    const size_t digits_start = at_;
    while (at_ < s_.size() && is_digit_char(s_[at_])) ++at_;
    const size_t int_digits = at_ - digits_start;
    if (int_digits == 0) return false;
    if (at_ < s_.size() && s_[at_] == '.') {
      if (int_digits > 12) return false;
      ++at_;
      const size_t frac_start = at_;
      while (at_ < s_.size() && is_digit_char(s_[at_])) ++at_;
      const size_t frac = at_ - frac_start;
      if (frac == 0 || frac > 3) return false;
      item.kind = Item::kDecimal;
      return true;
    }
    if (int_digits > 15) return false;
    item.kind = Item::kInteger;
    std::from_chars(s_.data() + start, s_.data() + at_, item.integer);
    return true;
  }
  bool read_string(Item& item) {
    ++at_;  // '"'
    while (at_ < s_.size()) {
      const char c = s_[at_++];
      if (c == '\\') {
        if (at_ == s_.size() || (s_[at_] != '"' && s_[at_] != '\\')) return false;
        ++at_;
      } else if (c == '"') {
        item.kind = Item::kString;
        return true;
      } else if (c < 0x20 || c > 0x7e) {
        return false;
      }
    }
    return false;
  }
  bool read_bytes(Item& item) {
    ++at_;  // ':'
    while (at_ < s_.size() && is_base64(s_[at_])) ++at_;
    if (at_ == s_.size() || s_[at_] != ':') return false;
    ++at_;
    item.kind = Item::kBytes;
    return true;
  }

  std::string_view s_;
  size_t at_ = 0;
};

std::optional<std::string> joined_field(const http::Headers& headers, std::string_view name) {
  std::optional<std::string> out;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!http::iequals(headers.name(i), name)) continue;
    if (out) out->append(", ");
    else out.emplace();
    out->append(headers.value(i));
  }
  return out;
}

// Surrogate-Control's directives for caching: max-age (without the "+stale" extension) and
// no-store; nullopt when it has neither.
std::optional<CacheControl> surrogate_directives(const http::Headers& headers) {
  std::optional<CacheControl> out;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!http::iequals(headers.name(i), "Surrogate-Control")) continue;
    http::for_each_token(headers.value(i), [&](std::string_view item) {
      // A directive may be targeted at one surrogate ("max-age=60;edge1"): for any, we take it.
      item = item.substr(0, item.find(';'));
      const size_t eq = item.find('=');
      const std::string_view name = http::trim(item.substr(0, eq));
      if (http::iequals(name, "no-store")) {
        if (!out) out.emplace();
        out->no_store = true;
      } else if (http::iequals(name, "max-age") && eq != std::string_view::npos) {
        const std::string_view value = http::trim(item.substr(eq + 1));
        Seconds seconds = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
        if (ec == std::errc() && end == value.data() + value.size() && seconds >= 0) {
          if (!out) out.emplace();
          out->max_age = seconds;
        }
      }
    });
  }
  return out;
}

void append_directive(std::string& out, std::string_view text) {
  if (!out.empty()) out.append(", ");
  out.append(text);
}

void append_seconds(std::string& out, std::string_view name, MaybeSeconds value) {
  if (!value) return;
  append_directive(out, name);
  out.push_back('=');
  out.append(std::to_string(*value));
}

}  // namespace

bool is_sf_dictionary(std::string_view value) {
  return DictionaryReader(value).dictionary([](std::string_view, const Item&) {});
}

std::optional<CacheControl> parse_targeted_field(const http::Headers& headers, std::string_view name) {
  const std::optional<std::string> value = joined_field(headers, name);
  if (!value) return std::nullopt;
  CacheControl cc;
  auto seconds = [](const Item& item, MaybeSeconds& out) {
    if (item.kind == Item::kInteger && item.integer >= 0) out = item.integer;
  };
  auto flag = [](const Item& item, bool& out) {
    if (item.kind == Item::kBoolean) out = item.boolean;
    else if (item.kind == Item::kInnerList) out = true;  // no-cache=("Set-Cookie"): still there
  };
  const bool valid = DictionaryReader(*value).dictionary([&](std::string_view key, const Item& item) {
    if (key == "max-age") seconds(item, cc.max_age);
    else if (key == "s-maxage") seconds(item, cc.s_maxage);
    else if (key == "stale-while-revalidate") seconds(item, cc.stale_while_revalidate);
    else if (key == "stale-if-error") seconds(item, cc.stale_if_error);
    else if (key == "no-store") flag(item, cc.no_store);
    else if (key == "no-cache") flag(item, cc.no_cache);
    else if (key == "private") flag(item, cc.is_private);
    else if (key == "public") flag(item, cc.is_public);
    else if (key == "must-revalidate") flag(item, cc.must_revalidate);
    else if (key == "proxy-revalidate") flag(item, cc.proxy_revalidate);
    else if (key == "immutable") flag(item, cc.immutable);
  });
  if (!valid) return std::nullopt;
  return cc;
}

std::string format_cache_control(const CacheControl& cc) {
  std::string out;
  if (cc.no_store) append_directive(out, "no-store");
  if (cc.no_cache) append_directive(out, "no-cache");
  if (cc.is_private) append_directive(out, "private");
  if (cc.is_public) append_directive(out, "public");
  if (cc.must_revalidate) append_directive(out, "must-revalidate");
  if (cc.proxy_revalidate) append_directive(out, "proxy-revalidate");
  if (cc.immutable) append_directive(out, "immutable");
  append_seconds(out, "max-age", cc.max_age);
  append_seconds(out, "s-maxage", cc.s_maxage);
  append_seconds(out, "stale-while-revalidate", cc.stale_while_revalidate);
  append_seconds(out, "stale-if-error", cc.stale_if_error);
  return out;
}

std::optional<CacheControl> targeted_directives(const http::Headers& headers, std::string_view edge_field) {
  std::optional<CacheControl> targeted;
  if (!edge_field.empty()) targeted = parse_targeted_field(headers, edge_field);
  if (!targeted) targeted = surrogate_directives(headers);
  if (!targeted) targeted = parse_targeted_field(headers, kCdnCacheControl);
  return targeted;
}

std::optional<http::ResponseHead> targeted_view(const http::ResponseHead& response, std::string_view edge_field) {
  const std::optional<CacheControl> targeted = targeted_directives(response.headers, edge_field);
  if (!targeted) return std::nullopt;
  http::ResponseHead view = response;
  view.headers.remove_if([](std::string_view name, http::FieldId) {
    return http::iequals(name, "Expires") || http::iequals(name, "Cache-Control");
  });
  const std::string directives = format_cache_control(*targeted);
  if (!directives.empty()) view.headers.add("Cache-Control", directives);
  return view;
}

}  // namespace edge::cache
