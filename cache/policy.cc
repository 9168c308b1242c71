#include "cache/policy.h"

#include <algorithm>
#include <cstdio>

#include "http/uri.h"

namespace edge::cache {

namespace {

using http::iequals;
using http::trim;

bool is_ows(char c) { return c == ' ' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Times from headers and callers are clamped to +-kForever before any arithmetic, so sums of a
// few of them never overflow (kForever is INT64_MAX / 4).
Seconds clampv(Seconds v) { return std::clamp(v, -kForever, kForever); }
Seconds sat_add(Seconds a, Seconds b) { return clampv(clampv(a) + clampv(b)); }
Seconds sat_sub(Seconds a, Seconds b) { return clampv(clampv(a) - clampv(b)); }

// delta-seconds (RFC 9111 1.2.2): digits only. A value too large to represent saturates at
// kForever, as the RFC allows ("2^31 or the greatest positive integer it can represent").
std::optional<Seconds> parse_delta(std::string_view s) {
  if (s.empty()) return std::nullopt;
  Seconds v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    const Seconds d = c - '0';
    v = v > (kForever - d) / 10 ? kForever : v * 10 + d;
  }
  return v;
}

// All fields of a name, for a field whose value is not a list (Age, Expires, Range...).
template <typename Fn>
void for_each_field(const http::Headers& h, std::string_view name, Fn&& fn) {
  for (size_t i = 0; i < h.size(); ++i)
    if (iequals(h.name(i), name)) fn(h.value(i));
}

// ---- Cache-Control ----

// One directive of a Cache-Control list. `malformed`: it did not follow
// token [ "=" ( token / quoted-string ) ], e.g. white space around "=" or junk after a value.
struct Directive {
  std::string_view name;
  bool has_value = false;
  bool malformed = false;
  std::string value;  // unquoted
};

// Skips to the comma that ends the current list element, honouring quoted strings.
size_t skip_element(std::string_view v, size_t i) {
  bool quoted = false;
  for (; i < v.size(); ++i) {
    char c = v[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '"') quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      break;
    }
  }
  return std::min(i, v.size());
}

// Reads the quoted string that starts at v[i] (a '"'): appends its unescaped content to `out`
// (when given), sets `closed`, returns the index just past it.
size_t read_quoted(std::string_view v, size_t i, std::string* out, bool& closed) {
  closed = false;
  for (++i; i < v.size(); ++i) {
    char c = v[i];
    if (c == '"') {
      closed = true;
      return i + 1;
    }
    if (c == '\\' && i + 1 < v.size()) c = v[++i];
    if (out) out->push_back(c);
  }
  return v.size();
}

bool ends_token(char c) { return c == '=' || c == ',' || c == '"' || is_ows(c); }

// Calls fn(directive) for each directive of a Cache-Control value. A quoted string is data,
// never directives (`extension="max-age=100"` holds no max-age). A list element that does not
// parse cleanly (white space around "=", junk after a value, a missing comma) taints every
// directive found in it up to the next comma: restrictive ones still apply, permissive ones
// (public) do not, numeric ones are invalid.
template <typename Fn>
void for_each_directive(std::string_view v, Fn&& fn) {
  size_t i = 0;
  const size_t n = v.size();
  bool tainted = false;
  while (i < n) {
    const char c = v[i];
    if (c == ',') {
      tainted = false;
      ++i;
      continue;
    }
    if (is_ows(c)) {
      ++i;
      continue;
    }
    if (c == '"') {  // a stray quoted string
      bool closed;
      i = read_quoted(v, i, nullptr, closed);
      tainted = true;
      continue;
    }
    if (c == '=') {  // a stray "=" ("max-age =5")
      tainted = true;
      ++i;
      continue;
    }
    Directive d;
    size_t start = i;
    while (i < n && !ends_token(v[i])) ++i;
    d.name = v.substr(start, i - start);
    d.malformed = tainted;
    if (i < n && v[i] == '=') {
      ++i;
      d.has_value = true;
      if (i < n && v[i] == '"') {
        bool closed;
        i = read_quoted(v, i, &d.value, closed);
        if (!closed) d.malformed = true;
      } else {
        start = i;
        while (i < n && !ends_token(v[i])) ++i;
        d.value.assign(v.substr(start, i - start));
        if (d.value.empty()) d.malformed = true;  // "max-age=" or "max-age= 5"
      }
    }
    size_t j = i;
    while (j < n && is_ows(v[j])) ++j;
    if (j < n && v[j] != ',') {  // "max-age =5", "max-age=5 6", "no-cache no-store"
      d.malformed = true;
      tainted = true;
    }
    fn(d);
    i = j;
  }
}

// Combines numeric directives given more than once: `lower` keeps the smallest value (max-age,
// s-maxage, max-stale, stale-*: smaller is more restrictive), otherwise the largest (min-fresh).
void merge(MaybeSeconds& slot, Seconds v, bool lower) {
  if (!slot) slot = v;
  else slot = lower ? std::min(*slot, v) : std::max(*slot, v);
}

struct FullCacheControl {
  CacheControl cc;
  bool must_understand = false;
};

FullCacheControl parse_full(const http::Headers& headers, bool request) {
  FullCacheControl out;
  CacheControl& cc = out.cc;
  bool max_stale_poisoned = false, swr_poisoned = false, sie_poisoned = false;
  bool any = false;
  for (size_t f = 0; f < headers.size(); ++f) {
    if (!iequals(headers.name(f), "cache-control")) continue;
    any = true;
    for_each_directive(headers.value(f), [&](const Directive& d) {
      const std::string_view name = d.name;
      const bool clean = !d.malformed;
      // -1: no valid number (a sentinel rather than an optional, which GCC 12 misreads here).
      const Seconds num = clean && d.has_value ? parse_delta(d.value).value_or(-1) : -1;
      const bool has_num = num >= 0;
      // Directives that restrict caching apply even when garbled or qualified: `no-cache="Set-
      // Cookie"` and `private="X"` (field-qualified forms) count as the unqualified directive.
      if (iequals(name, "no-store")) cc.no_store = true;
      else if (iequals(name, "no-cache")) cc.no_cache = true;
      else if (iequals(name, "private")) cc.is_private = true;
      else if (iequals(name, "must-revalidate")) cc.must_revalidate = true;
      else if (iequals(name, "proxy-revalidate")) cc.proxy_revalidate = true;
      // Permissions count only in their exact, argument-free form.
      else if (iequals(name, "public")) cc.is_public = cc.is_public || (clean && !d.has_value);
      else if (iequals(name, "immutable")) cc.immutable = cc.immutable || (clean && !d.has_value);
      else if (iequals(name, "must-understand"))
        out.must_understand = out.must_understand || (clean && !d.has_value);
      else if (iequals(name, "only-if-cached")) cc.only_if_cached = true;
      // max-age and s-maxage: an invalid value ("a100", "-5", "3600.0", "max-age =5") reads as
      // 0, so the response is stale at once (RFC 9111 4.2.1: consider it stale). The request's
      // max-age is read the same way: revalidate.
      else if (iequals(name, "max-age")) merge(cc.max_age, has_num ? num : 0, true);
      else if (iequals(name, "s-maxage")) merge(cc.s_maxage, has_num ? num : 0, true);
      // min-fresh: an invalid value asks for more freshness than any response has.
      else if (iequals(name, "min-fresh")) merge(cc.min_fresh, has_num ? num : kForever, false);
      else if (iequals(name, "max-stale")) {
        if (clean && !d.has_value) merge(cc.max_stale, kForever, true);
        else if (has_num) merge(cc.max_stale, num, true);
        else max_stale_poisoned = true;
      } else if (iequals(name, "stale-while-revalidate")) {
        if (has_num) merge(cc.stale_while_revalidate, num, true);
        else swr_poisoned = true;
      } else if (iequals(name, "stale-if-error")) {
        if (has_num) merge(cc.stale_if_error, num, true);
        else sie_poisoned = true;
      }
    });
  }
  // An invalid max-stale or stale-* value withdraws that permission altogether: the restrictive
  // reading of a garbled permission is no permission.
  if (max_stale_poisoned) cc.max_stale.reset();
  if (swr_poisoned) cc.stale_while_revalidate.reset();
  if (sie_poisoned) cc.stale_if_error.reset();
  // RFC 9111 5.4: Pragma: no-cache counts only when the request has no Cache-Control at all.
  if (request && !any && headers.has_token("pragma", "no-cache")) cc.no_cache = true;
  return out;
}

// Status codes whose semantics we implement, for `must-understand` (RFC 9111 5.2.2.3).
bool status_understood(int status) {
  switch (status) {
    case 200: case 203: case 204: case 300: case 301: case 302: case 303: case 307: case 308:
    case 400: case 403: case 404: case 405: case 410: case 414: case 451:
    case 500: case 501: case 502: case 503: case 504:
      return true;
    default:
      return false;
  }
}

// ---- entity tags ----

// One element of an entity-tag list. A well-formed tag ([W/]"opaque") compares by its opaque
// part; anything else (unquoted, `w/"x"`) is kept raw and only ever equals the same raw text, so
// a malformed validator never matches a well-formed one.
struct Tag {
  bool valid = false;
  bool weak = false;
  std::string_view opaque;
  std::string_view raw;
};

// Reads one element at `i` (after separators), leaves `i` at the end of the element.
Tag read_tag(std::string_view v, size_t& i) {
  Tag t;
  const size_t start = i;
  size_t q = i;
  if (v.substr(i, 2) == "W/") {
    t.weak = true;
    q += 2;
  }
  if (q < v.size() && v[q] == '"') {
    size_t close = v.find('"', q + 1);
    if (close != std::string_view::npos) {
      size_t j = close + 1;
      while (j < v.size() && is_ows(v[j])) ++j;
      if (j == v.size() || v[j] == ',') {
        t.valid = true;
        t.opaque = v.substr(q + 1, close - q - 1);
        t.raw = v.substr(start, close + 1 - start);
        i = j;
        return t;
      }
    }
  }
  // Malformed: up to the next comma (commas inside a broken quote end it too).
  size_t comma = v.find(',', start);
  if (comma == std::string_view::npos) comma = v.size();
  t.weak = false;
  t.raw = trim(v.substr(start, comma - start));
  i = comma;
  return t;
}

Tag parse_single_tag(std::string_view v) {
  v = trim(v);
  size_t i = 0;
  Tag t = read_tag(v, i);
  if (i != v.size()) {  // a list, not one tag
    Tag bad;
    bad.raw = v;
    return bad;
  }
  return t;
}

bool tags_match(const Tag& a, const Tag& b, bool weak) {
  if (a.valid != b.valid) return false;
  if (!a.valid) return !a.raw.empty() && a.raw == b.raw;
  if (!weak && (a.weak || b.weak)) return false;
  return a.opaque == b.opaque;
}

// ---- URIs ----

std::string_view host_only(std::string_view authority) {
  authority = trim(authority);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) authority.remove_prefix(at + 1);
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    return close == std::string_view::npos ? authority : authority.substr(0, close + 1);
  }
  authority = authority.substr(0, authority.find(':'));
  if (!authority.empty() && authority.back() == '.') authority.remove_suffix(1);
  return authority;
}

// If `uri` starts with a scheme ("http:"), its length including the colon; else 0.
size_t scheme_length(std::string_view uri) {
  if (uri.empty() || !((uri[0] >= 'a' && uri[0] <= 'z') || (uri[0] >= 'A' && uri[0] <= 'Z'))) return 0;
  for (size_t i = 1; i < uri.size(); ++i) {
    char c = uri[i];
    if (c == ':') return i + 1;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '+' || c == '-' || c == '.';
    if (!ok) return 0;
  }
  return 0;
}

struct SplitUri {
  std::string_view authority;
  bool has_authority = false;
  std::string_view path_query;
};

// "h:1/p?q" (what follows "//") -> authority "h:1", path_query "/p?q".
SplitUri split_authority(std::string_view rest) {
  SplitUri out;
  size_t end = rest.find_first_of("/?");
  if (end == std::string_view::npos) end = rest.size();
  out.authority = rest.substr(0, end);
  out.has_authority = true;
  out.path_query = rest.substr(end);
  return out;
}

// A request-target: origin-form "/p?q" as is (even "//p", an empty first segment), absolute-form
// "http://h/p?q" split at its authority, anything else ("*", authority-form) as is. The fragment
// is dropped: it never belongs to a request-target or a cache key.
SplitUri split_target(std::string_view target) {
  target = target.substr(0, target.find('#'));
  if (!target.empty() && target.front() == '/') return SplitUri{{}, false, target};
  size_t s = scheme_length(target);
  if (s > 0 && target.substr(s).starts_with("//")) return split_authority(target.substr(s + 2));
  return SplitUri{{}, false, target};
}

// path+query with dot segments removed from the path ("" path -> "/").
std::string clean_path_query(std::string_view path_query) {
  size_t q = path_query.find('?');
  std::string_view path = path_query.substr(0, q);
  std::string out = http::remove_dot_segments(path);
  if (out.empty()) out.assign(1, '/');
  if (q != std::string_view::npos) out.append(path_query.substr(q));
  return out;
}

// Resolves a Location / Content-Location value against the request's path (RFC 3986 5.2),
// returning path+query when it names a resource on `host`.
std::optional<std::string> resolve_same_host(std::string_view ref, std::string_view base_path, std::string_view host) {
  ref = trim(ref);
  ref = ref.substr(0, ref.find('#'));
  if (ref.empty()) return std::nullopt;
  size_t s = scheme_length(ref);
  if (s > 0) {
    std::string_view scheme = ref.substr(0, s - 1);
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) return std::nullopt;
    if (!ref.substr(s).starts_with("//")) return std::nullopt;
  }
  if (ref.substr(s).starts_with("//")) {  // a network-path reference, or after http(s):
    SplitUri u = split_authority(ref.substr(s + 2));
    if (!iequals(host_only(u.authority), host_only(host))) return std::nullopt;
    return clean_path_query(u.path_query);
  }
  if (ref.front() == '/') return clean_path_query(ref);
  if (base_path.empty() || base_path.front() != '/') return std::nullopt;
  if (ref.front() == '?') return clean_path_query(std::string(base_path) + std::string(ref));
  std::string merged(base_path.substr(0, base_path.rfind('/') + 1));
  merged.append(ref);
  return clean_path_query(merged);
}

// Vary: a value's list items trimmed, white-space runs inside an item collapsed to one space,
// empty items dropped, joined by ","; quoted strings are copied untouched.
void append_normalised(std::string& out, std::string_view v, bool& first_item) {
  size_t i = 0;
  while (i <= v.size()) {
    size_t end = skip_element(v, i);
    std::string_view item = trim(v.substr(i, end - i));
    if (!item.empty()) {
      if (!first_item) out.push_back(',');
      first_item = false;
      bool quoted = false, space = false;
      for (size_t k = 0; k < item.size(); ++k) {
        char c = item[k];
        if (quoted) {
          out.push_back(c);
          if (c == '\\' && k + 1 < item.size()) out.push_back(item[++k]);
          else if (c == '"') quoted = false;
          continue;
        }
        if (is_ows(c)) {
          space = true;
          continue;
        }
        if (space) out.push_back(' ');
        space = false;
        if (c == '"') quoted = true;
        out.push_back(c);
      }
    }
    if (end >= v.size()) break;
    i = end + 1;
  }
}

// A weight's qvalue (RFC 9110 12.4.2: "0" to "1" with up to three decimals) in thousandths.
std::optional<int> parse_qvalue(std::string_view q) {
  if (q.empty() || q.size() > 5 || (q[0] != '0' && q[0] != '1')) return std::nullopt;
  int thousandths = (q[0] - '0') * 1000;
  if (q.size() > 1) {
    if (q[1] != '.') return std::nullopt;
    int scale = 100;
    for (char c : q.substr(2)) {
      if (!is_digit(c)) return std::nullopt;
      thousandths += (c - '0') * scale;
      scale /= 10;
    }
  }
  return thousandths <= 1000 ? std::optional<int>(thousandths) : std::nullopt;
}

// Accept-Language and Accept-Encoding name a set of weighted choices: their order among equal
// weights, the case of a language range or coding, the white space and the spelling of a weight
// (1, 1.0, q=0.50) change nothing a server may do with them, so such requests share a variant.
// The items become "range" (weight 1) or "range;q=0.5", sorted by weight, heaviest first, then
// by name. An item with another parameter or a weight that is not a qvalue is kept as received
// (lower case, without white space;
// as received exactly when it quotes a string): it is never taken for a valid item, since a server may read
// it differently, and a variant under the valid item's key would then hold another answer.
std::string normalised_preferences(const http::Headers& request, std::string_view name) {
  struct Item {
    int weight;
    std::string text;
  };
  std::vector<Item> items;
  for_each_field(request, name, [&](std::string_view v) {
    size_t i = 0;
    while (i <= v.size()) {
      const size_t end = skip_element(v, i);
      const std::string_view raw = trim(v.substr(i, end - i));
      std::string compact;
      for (char c : raw)
        if (!is_ows(c)) compact.push_back(lower(c));
      if (raw.find('"') != std::string_view::npos) {
        items.push_back({-1, std::string(raw)});  // quoted strings are data, spaces and case included
      } else if (!compact.empty()) {
        const size_t semi = compact.find(';');
        std::optional<int> weight = 1000;
        if (semi != std::string::npos)
          weight = compact.compare(semi, 3, ";q=") == 0 ? parse_qvalue(std::string_view(compact).substr(semi + 3)) : std::nullopt;
        if (!weight) {
          items.push_back({-1, std::move(compact)});
        } else {
          std::string text = compact.substr(0, semi);
          if (*weight < 1000) {
            char digits[8];
            const int n = std::snprintf(digits, sizeof digits, "%d.%03d", *weight / 1000, *weight % 1000);
            std::string_view q(digits, static_cast<size_t>(n));
            while (q.back() == '0') q.remove_suffix(1);
            if (q.back() == '.') q.remove_suffix(1);
            text.append(";q=").append(q);
          }
          items.push_back({*weight, std::move(text)});
        }
      }
      if (end >= v.size()) break;
      i = end + 1;
    }
  });
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return a.weight != b.weight ? a.weight > b.weight : a.text < b.text; });
  std::string out;
  for (const Item& item : items) {
    if (!out.empty()) out.push_back(',');
    out.append(item.text);
  }
  return out;
}

// Makes a present value unambiguous against the "<absent>" marker and the "\n" separator.
void append_escaped(std::string& out, std::string_view v) {
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '<' && i == 0) out += "\\<";
    else out.push_back(c);
  }
}

bool is_list_star(std::string_view v) { return trim(v) == "*"; }

// True when a field of `name` lists a tag matching `etag` (or is "*", which any stored
// representation matches).
bool field_list_matches(const http::Headers& h, std::string_view name, std::optional<std::string_view> etag,
                        bool weak) {
  bool found = false;
  for_each_field(h, name, [&](std::string_view v) {
    if (found) return;
    if (is_list_star(v)) found = true;
    else if (etag && etag_matches_any(v, *etag, weak)) found = true;
  });
  return found;
}

// A date field that must be a single valid HTTP-date; several fields or a list are ignored
// (RFC 9110 13.1.3, 13.1.4).
std::optional<Seconds> single_date(const http::Headers& h, std::string_view name) {
  if (h.count(name) != 1) return std::nullopt;
  return parse_http_date(*h.get(name));
}

}  // namespace

// ---- dates ----

std::string format_http_date(Seconds unix_time) {
  // Years 0000..9999 only, as parse_http_date reads them: the format holds four digits.
  unix_time = std::clamp<Seconds>(unix_time, -62167219200, 253402300799);
  char buf[32];
  size_t n = http::format_http_date(unix_time, buf);
  return std::string(buf, n);
}

// ---- Cache-Control ----

CacheControl parse_cache_control(const http::Headers& headers, bool request) {
  return parse_full(headers, request).cc;
}

namespace {

// StoredCacheControl's flags, one bit each.
enum StoredFlag : uint8_t {
  kNoStore = 1 << 0,
  kNoCache = 1 << 1,
  kPrivate = 1 << 2,
  kPublic = 1 << 3,
  kMustRevalidate = 1 << 4,
  kProxyRevalidate = 1 << 5,
  kImmutable = 1 << 6,
};

}  // namespace

StoredCacheControl::StoredCacheControl(const CacheControl& cc)
    : max_age_(pack(cc.max_age)),
      s_maxage_(pack(cc.s_maxage)),
      stale_while_revalidate_(pack(cc.stale_while_revalidate)),
      stale_if_error_(pack(cc.stale_if_error)),
      flags_(static_cast<uint8_t>((cc.no_store ? kNoStore : 0) | (cc.no_cache ? kNoCache : 0) |
                                  (cc.is_private ? kPrivate : 0) | (cc.is_public ? kPublic : 0) |
                                  (cc.must_revalidate ? kMustRevalidate : 0) |
                                  (cc.proxy_revalidate ? kProxyRevalidate : 0) | (cc.immutable ? kImmutable : 0))) {}

uint32_t StoredCacheControl::pack(MaybeSeconds value) {
  if (!value) return kNone;
  // Parsed values are never negative; one set by hand is kept as 0.
  return static_cast<uint32_t>(std::clamp<Seconds>(*value, 0, kNone - 1));
}

CacheControl StoredCacheControl::get() const {
  CacheControl cc;
  cc.no_store = flags_ & kNoStore;
  cc.no_cache = flags_ & kNoCache;
  cc.is_private = flags_ & kPrivate;
  cc.is_public = flags_ & kPublic;
  cc.must_revalidate = flags_ & kMustRevalidate;
  cc.proxy_revalidate = flags_ & kProxyRevalidate;
  cc.immutable = flags_ & kImmutable;
  cc.max_age = unpack(max_age_);
  cc.s_maxage = unpack(s_maxage_);
  cc.stale_while_revalidate = unpack(stale_while_revalidate_);
  cc.stale_if_error = unpack(stale_if_error_);
  return cc;
}

// ---- storing ----

const char* verdict_name(StoreVerdict verdict) {
  switch (verdict) {
    case StoreVerdict::kStore: return "store";
    case StoreVerdict::kMethod: return "method";
    case StoreVerdict::kStatus: return "status";
    case StoreVerdict::kNoStore: return "no-store";
    case StoreVerdict::kPrivate: return "private";
    case StoreVerdict::kAuthorization: return "authorization";
    case StoreVerdict::kSetCookie: return "set-cookie";
    case StoreVerdict::kVaryStar: return "vary-star";
    case StoreVerdict::kNoFreshness: return "no-freshness";
    case StoreVerdict::kPartial: return "partial";
  }
  return "unknown";
}

bool heuristically_cacheable(int status) {
  switch (status) {
    case 200: case 203: case 204: case 206: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
      return true;
    default:
      return false;
  }
}

StoreVerdict can_store(const http::RequestHead& request, const http::ResponseHead& response,
                       const StoreOptions& options) {
  // From the most fundamental reason to the most circumstantial: what was asked, what came back,
  // what the parties forbid, what the configuration forbids, and last whether keeping it is of any use.
  if (request.method != "GET") return StoreVerdict::kMethod;
  const int status = response.status;
  if (status == 206) return StoreVerdict::kPartial;
  // Any final status may be stored with explicit freshness (RFC 9111 3: a cache understands a
  // status by its class, RFC 9110 15); 304 updates a stored response, it is never one.
  if (status < 200 || status > 599 || status == 304) return StoreVerdict::kStatus;

  const FullCacheControl full = parse_full(response.headers, false);
  const CacheControl& rcc = full.cc;
  const bool understood = status_understood(status);
  if (full.must_understand && !understood) return StoreVerdict::kStatus;
  const CacheControl qcc = parse_cache_control(request.headers, true);
  // must-understand with a status we understand overrides no-store (RFC 9111 5.2.2.3).
  if (qcc.no_store || (rcc.no_store && !(full.must_understand && understood))) return StoreVerdict::kNoStore;
  if (rcc.is_private) return StoreVerdict::kPrivate;
  if (request.headers.count("authorization") > 0 && !rcc.is_public && !rcc.must_revalidate && !rcc.s_maxage)
    return StoreVerdict::kAuthorization;
  bool vary_star = false;
  for_each_field(response.headers, "vary", [&](std::string_view v) {
    http::for_each_token(v, [&](std::string_view item) {
      if (item == "*") vary_star = true;
    });
  });
  if (vary_star) return StoreVerdict::kVaryStar;
  // Only Set-Cookie: Set-Cookie2 (RFC 2965, obsoleted by RFC 6265) is an ordinary field now.
  if (!options.store_set_cookie && response.headers.count("set-cookie") > 0)
    return StoreVerdict::kSetCookie;

  const bool explicit_freshness = rcc.s_maxage || rcc.max_age || response.headers.count("expires") > 0;
  if (!explicit_freshness) {
    // Without explicit freshness only statuses cacheable by default, or marked `public`, are
    // stored (RFC 9111 4.2.2); and then only when there is a way to use them: a validator, the
    // Last-Modified heuristic, or the route's ttl.
    if (!heuristically_cacheable(status) && !rcc.is_public) return StoreVerdict::kStatus;
    const bool validator = response.headers.count("etag") > 0 || response.headers.count("last-modified") > 0;
    if (!validator && options.default_ttl <= 0) return StoreVerdict::kNoFreshness;
  }
  return StoreVerdict::kStore;
}

bool post_answers_get(const http::RequestHead& post, std::string_view target, const http::ResponseHead& response,
                      std::string_view host, const StoreOptions& options) {
  if (post.method != "POST" || (response.status != 200 && response.status != 203)) return false;
  if (response.headers.count("content-location") != 1) return false;
  const CacheControl rcc = parse_cache_control(response.headers, false);
  if (!rcc.s_maxage && !rcc.max_age && response.headers.count("expires") == 0) return false;
  if (target.empty() || target.front() != '/') return false;
  const std::string own = clean_path_query(target);
  const std::string_view base_path = target.substr(0, target.find('?'));
  const std::optional<std::string> named =
      resolve_same_host(*response.headers.get("content-location"), base_path, host);
  if (named != own) return false;
  http::RequestHead get = post;
  get.method = "GET";
  return can_store(get, response, options) == StoreVerdict::kStore;
}

// ---- age and freshness ----

Seconds AgeBasis::corrected_initial_age() const {
  // RFC 9111 4.2.3. response_delay and (below) resident_time are floored at 0: with times from
  // a clock that stepped back they would otherwise make a response younger than it was received.
  const Seconds apparent_age = std::max<Seconds>(0, sat_sub(response_time, date_value));
  const Seconds response_delay = std::max<Seconds>(0, sat_sub(response_time, request_time));
  const Seconds corrected_age_value = sat_add(std::max<Seconds>(0, age_value), response_delay);
  return std::max(apparent_age, corrected_age_value);
}

Seconds AgeBasis::current_age(Seconds now) const { return StoredAge(*this).current_age(now); }

Seconds StoredAge::current_age(Seconds now) const {
  const Seconds resident_time = std::max<Seconds>(0, sat_sub(now, response_time_));
  return sat_add(corrected_initial_age_, resident_time);
}

AgeBasis age_basis(const http::ResponseHead& response, Seconds request_time, Seconds response_time) {
  AgeBasis b;
  b.request_time = clampv(request_time);
  b.response_time = clampv(response_time);
  auto date = response.headers.get(http::FieldId::kDate);
  std::optional<Seconds> parsed = date ? parse_http_date(*date) : std::nullopt;
  b.date_value = parsed.value_or(b.response_time);
  // Age is a single delta-seconds. A list (`Age: 7200, 0`, or one field per line) is not valid,
  // but taking it as absent would serve a two-hour-old response as fresh: its first member is the
  // one the cache nearest the origin wrote, so it counts. A first member with a sign, a fraction
  // or anything but digits counts as absent (0).
  if (auto age = response.headers.get("age")) {
    std::string_view first = age->substr(0, age->find(','));
    while (!first.empty() && (first.back() == ' ' || first.back() == '\t')) first.remove_suffix(1);
    b.age_value = parse_delta(first).value_or(0);
  }
  return b;
}

Seconds freshness_lifetime(const http::ResponseHead& response, const CacheControl& response_cc,
                           const AgeBasis& basis, const StoreOptions& options) {
  Seconds lifetime = 0;
  if (response_cc.s_maxage) {
    lifetime = *response_cc.s_maxage;
  } else if (response_cc.max_age) {
    lifetime = *response_cc.max_age;
  } else if (response.headers.count("expires") > 0) {
    // An invalid Expires means "already expired" (RFC 9111 5.3); several fields: the earliest.
    std::optional<Seconds> expires;
    bool invalid = false;
    for_each_field(response.headers, "expires", [&](std::string_view v) {
      auto t = parse_http_date(v);
      if (!t) invalid = true;
      else expires = expires ? std::min(*expires, *t) : *t;
    });
    lifetime = invalid ? 0 : sat_sub(*expires, basis.date_value);
  } else if (heuristically_cacheable(response.status) || response_cc.is_public) {
    Seconds heuristic = 0;
    auto lm = response.headers.get("last-modified");
    std::optional<Seconds> modified = lm ? parse_http_date(*lm) : std::nullopt;
    if (modified && *modified < basis.date_value)
      heuristic = std::min(sat_sub(basis.date_value, *modified) / 10, std::max<Seconds>(0, options.heuristic_cap));
    lifetime = heuristic > 0 ? heuristic : options.default_ttl;
  }
  return std::clamp<Seconds>(lifetime, 0, std::max<Seconds>(0, std::min(options.max_ttl, kForever)));
}

// ---- using a stored response ----

namespace {
// A stale-serving window of N seconds covers staleness 0..N; N = 0 is no window.
bool within(MaybeSeconds window, Seconds staleness) {
  return window && *window > 0 && staleness <= *window;
}
}  // namespace

Use decide(const CacheControl& request_cc, const StoredView& stored) {
  const CacheControl& rcc = stored.response_cc;
  const Seconds age = std::max<Seconds>(0, clampv(stored.current_age));
  const Seconds lifetime = std::max<Seconds>(0, clampv(stored.lifetime));
  if (request_cc.no_cache || rcc.no_cache) return Use::kRevalidate;
  if (request_cc.max_age && age > *request_cc.max_age) return Use::kRevalidate;
  // min-fresh: the response must stay fresh for that long (lifetime - age >= min-fresh).
  if (request_cc.min_fresh && lifetime - age < *request_cc.min_fresh) return Use::kRevalidate;
  if (lifetime > age) return Use::kFresh;
  // Stale from here on (RFC 9111 4.2: fresh only while lifetime > age).
  if (rcc.must_revalidate || rcc.proxy_revalidate || rcc.s_maxage) return Use::kRevalidate;
  const Seconds staleness = age - lifetime;
  if (request_cc.max_stale && staleness <= *request_cc.max_stale) return Use::kStaleAllowed;
  if (within(rcc.stale_while_revalidate, staleness) || (stored.grace > 0 && staleness <= stored.grace))
    return Use::kStaleWhileRevalidate;
  return Use::kRevalidate;
}

bool shareable_with_authorization(const CacheControl& response_cc) {
  return response_cc.is_public || response_cc.s_maxage || response_cc.must_revalidate;
}

bool may_serve_stale_on_error(const CacheControl& request_cc, const StoredView& stored) {
  const CacheControl& rcc = stored.response_cc;
  // no-cache (either side) forbids any use without a successful validation.
  if (request_cc.no_cache || rcc.no_cache) return false;
  const Seconds age = std::max<Seconds>(0, clampv(stored.current_age));
  const Seconds lifetime = std::max<Seconds>(0, clampv(stored.lifetime));
  if (lifetime > age) return true;  // still fresh (revalidated only because the client asked)
  if (rcc.must_revalidate || rcc.proxy_revalidate || rcc.s_maxage) return false;
  const Seconds staleness = age - lifetime;
  return within(rcc.stale_if_error, staleness) || within(request_cc.stale_if_error, staleness) ||
         (stored.grace > 0 && staleness <= stored.grace);
}

// ---- conditional requests ----

bool etag_matches_any(std::string_view list, std::string_view etag, bool weak) {
  if (is_list_star(list)) return true;
  const Tag stored = parse_single_tag(etag);
  if (stored.raw.empty()) return false;
  size_t i = 0;
  while (i < list.size()) {
    while (i < list.size() && (is_ows(list[i]) || list[i] == ',')) ++i;
    if (i >= list.size()) break;
    Tag t = read_tag(list, i);
    if (tags_match(t, stored, weak)) return true;
  }
  return false;
}

Precondition evaluate_preconditions(const http::RequestHead& request, const http::Headers& stored) {
  const http::Headers& h = request.headers;
  const bool get_or_head = request.method == "GET" || request.method == "HEAD";
  const std::optional<std::string_view> etag = stored.get("etag");
  auto last_modified = [&]() -> std::optional<Seconds> {
    auto lm = stored.get("last-modified");
    return lm ? parse_http_date(*lm) : std::nullopt;
  };
  // RFC 9110 13.2.2, steps 1 to 4.
  if (h.count("if-match") > 0) {
    if (!field_list_matches(h, "if-match", etag, false)) return Precondition::kFailed;
  } else if (auto ius = single_date(h, "if-unmodified-since")) {
    auto lm = last_modified();
    if (lm && *lm > *ius) return Precondition::kFailed;
  }
  if (h.count("if-none-match") > 0) {
    if (field_list_matches(h, "if-none-match", etag, true))
      return get_or_head ? Precondition::kNotModified : Precondition::kFailed;
  } else if (get_or_head) {
    if (auto ims = single_date(h, "if-modified-since")) {
      // Without Last-Modified, a cache uses the stored response's Date (RFC 9111 4.3.2).
      std::optional<Seconds> validator = last_modified();
      if (!validator) {
        auto date = stored.get(http::FieldId::kDate);
        if (date) validator = parse_http_date(*date);
      }
      if (validator && *validator <= *ims) return Precondition::kNotModified;
    }
  }
  return Precondition::kProceed;
}

// ---- ranges ----

namespace {
std::optional<uint64_t> parse_u64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    auto d = static_cast<uint64_t>(c - '0');
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;  // saturate: past any size anyway
  }
  return v;
}

// If-Range (RFC 9110 13.1.5): a strong entity tag equal to the stored one, or a date equal to the
// stored Last-Modified that is itself strong: at least 60 s before the stored Date (8.8.2.2).
bool if_range_holds(const http::Headers& request, const http::Headers& stored) {
  if (request.count("if-range") != 1) return false;
  std::string_view v = trim(*request.get("if-range"));
  if (v.starts_with("\"") || v.starts_with("W/")) {
    Tag t = parse_single_tag(v);
    auto etag = stored.get("etag");
    if (!t.valid || t.weak || !etag) return false;
    Tag s = parse_single_tag(*etag);
    return s.valid && tags_match(t, s, false);
  }
  auto date = parse_http_date(v);
  auto lm_field = stored.get("last-modified");
  auto date_field = stored.get(http::FieldId::kDate);
  if (!date || !lm_field || !date_field) return false;
  auto lm = parse_http_date(*lm_field);
  auto served = parse_http_date(*date_field);
  return lm && served && *lm == *date && *lm <= *served - 60;
}
}  // namespace

namespace {
struct RangeSpec {
  bool suffix = false;
  std::optional<uint64_t> first;
  std::optional<uint64_t> last;  // the suffix length, for a suffix range
};

// The one range of a GET's Range field (RFC 9110 14.1.1): nullopt for none, another unit,
// several ranges or bad syntax, which are all answered with the whole representation.
std::optional<RangeSpec> single_range_spec(const http::RequestHead& request) {
  if (request.method != "GET") return std::nullopt;
  const http::Headers& h = request.headers;
  if (h.count("range") != 1) return std::nullopt;
  std::string_view spec = trim(*h.get("range"));
  size_t eq = spec.find('=');
  if (eq == std::string_view::npos || !iequals(spec.substr(0, eq), "bytes")) return std::nullopt;
  std::string_view only;
  int count = 0;
  http::for_each_token(spec.substr(eq + 1), [&](std::string_view item) {
    ++count;
    only = item;
  });
  if (count != 1) return std::nullopt;  // none, or several ranges: we answer one range only

  size_t dash = only.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  RangeSpec range;
  range.suffix = dash == 0;
  if (range.suffix) {
    range.last = parse_u64(only.substr(1));  // the suffix length
    if (!range.last) return std::nullopt;
  } else {
    range.first = parse_u64(only.substr(0, dash));
    if (!range.first) return std::nullopt;
    if (dash + 1 < only.size()) {
      range.last = parse_u64(only.substr(dash + 1));
      if (!range.last || *range.last < *range.first) return std::nullopt;
    }
  }
  return range;
}
}  // namespace

std::optional<ByteRange> requested_range(const http::RequestHead& request) {
  const std::optional<RangeSpec> spec = single_range_spec(request);
  if (!spec || spec->suffix || request.headers.count("if-range") > 0) return std::nullopt;
  return ByteRange{*spec->first, spec->last.value_or(UINT64_MAX)};
}

RangeDecision decide_range(const http::RequestHead& request, const http::Headers& stored, uint64_t size) {
  RangeDecision full;
  const std::optional<RangeSpec> spec = single_range_spec(request);
  if (!spec) return full;
  const bool suffix = spec->suffix;
  const std::optional<uint64_t> first = spec->first;
  const std::optional<uint64_t> last = spec->last;
  const http::Headers& h = request.headers;
  if (h.count("if-range") > 0 && !if_range_holds(h, stored)) return full;

  RangeDecision d;
  if (suffix) {
    if (*last == 0) {
      d.kind = RangeDecision::kUnsatisfiable;
      return d;
    }
    if (size == 0) return full;  // nothing to cut a part from: the (empty) whole
    d.kind = RangeDecision::kPartial;
    d.range = {*last >= size ? 0 : size - *last, size - 1};
    return d;
  }
  if (*first >= size) {
    d.kind = RangeDecision::kUnsatisfiable;
    return d;
  }
  d.kind = RangeDecision::kPartial;
  d.range = {*first, last ? std::min(*last, size - 1) : size - 1};
  return d;
}

std::string strong_validator(const http::Headers& response) {
  if (response.count("etag") == 1) {
    const std::string_view etag = trim(*response.get("etag"));
    const Tag tag = parse_single_tag(etag);
    if (tag.valid && !tag.weak) return std::string(etag);
  }
  if (response.count("last-modified") != 1 || response.count("date") != 1) return {};
  const std::string_view lm_field = trim(*response.get("last-modified"));
  const auto lm = parse_http_date(lm_field);
  const auto served = parse_http_date(*response.get(http::FieldId::kDate));
  if (!lm || !served || *lm > *served - 60) return {};
  return std::string(lm_field);
}

// ---- revalidation and invalidation ----

http::Headers merge_not_modified(const http::Headers& stored, const http::Headers& not_modified) {
  const http::Headers& nm = not_modified;
  auto excluded = [&](size_t j) {
    http::FieldId id = nm.id(j);
    if (id == http::FieldId::kContentLength || id == http::FieldId::kTransferEncoding || http::is_hop_by_hop(id))
      return true;
    return nm.has_token("connection", nm.name(j));  // named hop-by-hop by the 304 itself
  };
  auto updates = [&](std::string_view name) {
    for (size_t j = 0; j < nm.size(); ++j)
      if (iequals(nm.name(j), name) && !excluded(j)) return true;
    return false;
  };
  std::vector<bool> used(nm.size(), false);
  auto add_from_304 = [&](std::string_view name, http::Headers& out) {
    for (size_t j = 0; j < nm.size(); ++j) {
      if (used[j] || !iequals(nm.name(j), name)) continue;
      used[j] = true;
      if (!excluded(j)) out.add(nm.name(j), nm.value(j));
    }
  };

  http::Headers out;
  for (size_t i = 0; i < stored.size(); ++i) {
    std::string_view name = stored.name(i);
    if (!updates(name)) {
      out.add(name, stored.value(i));
      continue;
    }
    // The 304's fields take the place of the first stored field of that name.
    add_from_304(name, out);
  }
  for (size_t j = 0; j < nm.size(); ++j)
    if (!used[j]) add_from_304(nm.name(j), out);
  return out;
}

std::vector<std::string> invalidated_targets(const http::RequestHead& request, const http::ResponseHead& response,
                                             std::string_view host) {
  std::vector<std::string> out;
  const std::string& m = request.method;
  if (m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE") return out;
  if (response.status < 200 || response.status > 399) return out;

  auto add = [&out](std::string s) {
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(std::move(s));
  };
  SplitUri target = split_target(request.target);
  std::string_view base_path;
  if (!target.path_query.empty() && target.path_query.front() == '/') {
    base_path = target.path_query.substr(0, target.path_query.find('?'));
    add(clean_path_query(target.path_query));
  } else if (target.has_authority && (target.path_query.empty() || target.path_query.front() == '?')) {
    base_path = "/";
    add(clean_path_query(target.path_query));
  }
  for (std::string_view name : {std::string_view("location"), std::string_view("content-location")}) {
    for_each_field(response.headers, name, [&](std::string_view v) {
      if (auto r = resolve_same_host(v, base_path, host)) add(std::move(*r));
    });
  }
  return out;
}

// ---- keys ----

std::string cache_key(std::string_view host, std::string_view target) {
  std::string key;
  std::string_view h = host_only(host);
  key.reserve(h.size() + target.size() + 1);
  for (char c : h) key.push_back(lower(c));

  SplitUri u = split_target(target);
  std::string_view pq = u.path_query;
  size_t q = pq.find('?');
  std::string_view path = pq.substr(0, q);
  if (!path.empty() && path.front() == '/' && path.find('%') == std::string_view::npos &&
      path.find("/.") == std::string_view::npos) {
    key += path;  // already normal: nothing to decode, no dot segment (the common case, at no cost)
  } else {
    std::string normal = http::remove_dot_segments(http::normalise_percent(path));
    if (normal.empty() && (u.has_authority || path.empty() || path.front() == '/')) normal.assign(1, '/');
    key += normal;
  }
  // The query as received, its "?" kept even when empty: "/p?" and "/p" need not be the same
  // resource (RFC 3986 6.2.3).
  if (q != std::string_view::npos) key.append(pq.substr(q));
  return key;
}

std::optional<std::string> vary_key(const http::Headers& response, const http::Headers& request) {
  std::vector<std::string> names;
  bool star = false;
  for_each_field(response, "vary", [&](std::string_view v) {
    http::for_each_token(v, [&](std::string_view item) {
      if (item == "*") star = true;
      std::string n;
      n.reserve(item.size());
      for (char c : item) n.push_back(lower(c));
      names.push_back(std::move(n));
    });
  });
  if (star) return std::nullopt;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());

  std::string key;
  for (const std::string& name : names) {
    key += name;
    key.push_back(':');
    if (request.count(name) == 0) {
      key += "<absent>";
    } else {
      std::string value;
      bool first_item = true;
      if (name == "accept-language" || name == "accept-encoding")
        value = normalised_preferences(request, name);
      else
        for_each_field(request, name, [&](std::string_view v) { append_normalised(value, v, first_item); });
      append_escaped(key, value);
    }
    key.push_back('\n');
  }
  return key;
}

bool marks_hit_for_pass(StoreVerdict verdict, int status) {
  switch (verdict) {
    case StoreVerdict::kMethod:
    case StoreVerdict::kAuthorization:
      return false;
    case StoreVerdict::kStatus:
      return status < 500;
    default:
      return true;
  }
}

http::Headers stored_headers(const http::Headers& response) {
  http::Headers out;
  for (size_t i = 0; i < response.size(); ++i) {
    const http::FieldId id = response.id(i);
    const std::string_view name = response.name(i);
    if (http::is_hop_by_hop(id) || id == http::FieldId::kContentLength) continue;
    if (iequals(name, "Age") || iequals(name, "Surrogate-Key") || iequals(name, "xkey") ||
        iequals(name, "Surrogate-Control"))
      continue;
    out.add(name, response.value(i));
  }
  return out;
}

}  // namespace edge::cache
