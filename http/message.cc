#include "http/message.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "http/ascii.h"
#include "http/heap.h"

namespace edge::http {

namespace {
struct Known {
  std::string_view name;
  FieldId id;
};
constexpr Known kKnown[] = {
    {"host", FieldId::kHost},
    {"content-length", FieldId::kContentLength},
    {"transfer-encoding", FieldId::kTransferEncoding},
    {"connection", FieldId::kConnection},
    {"keep-alive", FieldId::kKeepAlive},
    {"proxy-connection", FieldId::kProxyConnection},
    {"te", FieldId::kTe},
    {"trailer", FieldId::kTrailer},
    {"upgrade", FieldId::kUpgrade},
    {"proxy-authorization", FieldId::kProxyAuthorization},
    {"proxy-authenticate", FieldId::kProxyAuthenticate},
    {"expect", FieldId::kExpect},
    {"x-forwarded-for", FieldId::kXForwardedFor},
    {"x-forwarded-proto", FieldId::kXForwardedProto},
    {"x-forwarded-host", FieldId::kXForwardedHost},
    {"via", FieldId::kVia},
    {"date", FieldId::kDate},
};
bool is_space(char c) { return c == ' ' || c == '\t'; }

int month_index(std::string_view m) {
  static constexpr std::string_view kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                                 "jul", "aug", "sep", "oct", "nov", "dec"};
  for (int i = 0; i < 12; ++i)
    if (iequals(m, kMonths[i])) return i + 1;
  return 0;
}

bool is_day_name(std::string_view d) {
  static constexpr std::string_view kDays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  for (auto k : kDays)
    if (iequals(d, k)) return true;
  return false;
}

bool is_long_day_name(std::string_view d) {
  static constexpr std::string_view kDays[] = {"monday", "tuesday", "wednesday", "thursday",
                                               "friday", "saturday", "sunday"};
  for (auto k : kDays)
    if (iequals(d, k)) return true;
  return false;
}

std::optional<int> digits(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (!is_ascii_digit(c)) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

std::optional<int64_t> make_time(int year, int month, int day, std::string_view hms) {
  // time-of-day = hour ":" minute ":" second, two digits each.
  if (hms.size() != 8 || hms[2] != ':' || hms[5] != ':') return std::nullopt;
  auto h = digits(hms.substr(0, 2)), mi = digits(hms.substr(3, 2)), s = digits(hms.substr(6, 2));
  if (!h || !mi || !s || *h > 23 || *mi > 59 || *s > 60) return std::nullopt;  // 60: leap second
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1) return std::nullopt;
  if (day > kDays[month - 1] + (month == 2 && leap(year) ? 1 : 0)) return std::nullopt;
  int64_t t = days_from_civil(year, month, day) * 86400 + *h * 3600 + *mi * 60 + *s;
  if (t > 253402300799) return std::nullopt;  // a leap second past 9999-12-31: not a 4-digit year
  return t;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

FieldId field_id(std::string_view name) {
  // Most fields are not known ones: a length no known name has rejects them at once.
  static constexpr auto kByLength = [] {
    std::array<uint32_t, 24> mask{};  // bit i: kKnown[i] has this length
    for (size_t i = 0; i < std::size(kKnown); ++i) mask[kKnown[i].name.size()] |= 1u << i;
    return mask;
  }();
  if (name.size() >= kByLength.size()) return FieldId::kOther;
  for (uint32_t m = kByLength[name.size()]; m != 0; m &= m - 1) {
    const Known& k = kKnown[static_cast<size_t>(__builtin_ctz(m))];
    if (iequals(k.name, name)) return k.id;
  }
  return FieldId::kOther;
}

bool is_hop_by_hop(FieldId id) {
  switch (id) {
    case FieldId::kConnection:
    case FieldId::kKeepAlive:
    case FieldId::kProxyConnection:
    case FieldId::kTe:
    case FieldId::kTrailer:
    case FieldId::kTransferEncoding:
    case FieldId::kUpgrade:
    case FieldId::kProxyAuthorization:
    case FieldId::kProxyAuthenticate:
      return true;
    default:
      return false;
  }
}

namespace {
constexpr size_t kFieldAlign = alignof(uint32_t);  // the table's, below the text
constexpr size_t kFirstCapacity = 240;  // with the block's own fields, a 256-byte request

size_t round_to_field(size_t n) { return (n + kFieldAlign - 1) & ~(kFieldAlign - 1); }
}  // namespace

void Headers::release(Block* block) { ::operator delete(block); }

size_t Headers::used_capacity() const {
  return block_ ? round_to_field(block_->text_len) + block_->count * sizeof(Field) : 0;
}

Headers::Block* Headers::copy_into(size_t capacity) const {
  auto* to = static_cast<Block*>(::operator new(sizeof(Block) + capacity));
  to->capacity = static_cast<uint32_t>(capacity);
  to->text_len = block_->text_len;
  to->count = block_->count;
  to->unused = 0;
  std::memcpy(to + 1, text(), block_->text_len);
  const size_t table = block_->count * sizeof(Field);
  std::memcpy(reinterpret_cast<char*>(to + 1) + capacity - table, reinterpret_cast<const char*>(table_end()) - table,
              table);
  return to;
}

Headers::Headers(const Headers& other) {
  if (other.used_capacity() > 0) block_ = other.copy_into(other.used_capacity());
}

Headers& Headers::operator=(const Headers& other) {
  if (this == &other) return *this;
  if (other.used_capacity() == 0) {
    clear();
  } else if (block_ && block_->capacity >= other.used_capacity()) {
    // Kept capacity is reused, as a std::string's would be: a connection's heads are refilled.
    block_->text_len = other.block_->text_len;
    block_->count = other.block_->count;
    std::memcpy(text(), other.text(), other.block_->text_len);
    const size_t table = other.block_->count * sizeof(Field);
    std::memcpy(reinterpret_cast<char*>(table_end()) - table, reinterpret_cast<const char*>(other.table_end()) - table,
                table);
  } else {
    Block* copy = other.copy_into(other.used_capacity());
    release(block_);
    block_ = copy;
  }
  return *this;
}

Headers& Headers::operator=(Headers&& other) noexcept {
  if (this != &other) {
    release(block_);
    block_ = other.block_;
    other.block_ = nullptr;
  }
  return *this;
}

uint64_t Headers::memory() const { return block_ ? heap_bytes(sizeof(Block) + block_->capacity) : 0; }

// Response field names common enough that a stored head points here instead of holding them, as
// servers spell them (byte for byte, so that a head sent from the cache is the one received).
const std::string_view Headers::kSharedNames[] = {
    "Date", "Content-Type", "Content-Length", "Cache-Control", "ETag", "Last-Modified", "Expires", "Vary",
    "Server", "Content-Encoding", "Content-Language", "Content-Disposition", "Accept-Ranges", "Age", "Link",
    "Location", "Pragma", "Via", "Alt-Svc", "Access-Control-Allow-Origin", "Strict-Transport-Security",
    "Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "X-XSS-Protection",
    "Referrer-Policy", "X-Powered-By", "Surrogate-Key", "Surrogate-Control", "CDN-Cache-Control",
    "Timing-Allow-Origin",
    // HTTP/2 and some HTTP/1 servers send them in lower case.
    "date", "content-type", "content-length", "cache-control", "etag", "last-modified", "expires", "vary",
    "server", "content-encoding", "accept-ranges", "age", "link", "access-control-allow-origin",
    "strict-transport-security", "content-security-policy", "x-content-type-options", "x-frame-options",
    "referrer-policy"};

uint8_t Headers::shared_name_index(std::string_view name) {
  static_assert(std::size(kSharedNames) < 256);
  for (size_t i = 0; i < std::size(kSharedNames); ++i)
    if (kSharedNames[i] == name) return static_cast<uint8_t>(i + 1);
  return 0;
}

void Headers::shrink_to_fit() {
  if (!block_) return;
  // The text of removed fields goes too: the fields' text is copied one after another. A name
  // found in the shared table is marked first (name() then gives the same bytes from there).
  size_t live_text = 0;
  for (size_t i = 0; i < size(); ++i) {
    Field& f = field(i);
    if (!f.shared_name) f.shared_name = shared_name_index({text() + f.name_off, f.name_len});
    live_text += (f.shared_name ? 0 : f.name_len) + f.value_len;
  }
  const size_t fitted = round_to_field(live_text) + size() * sizeof(Field);
  if (fitted == block_->capacity) return;
  Block* to = nullptr;
  if (fitted > 0) {
    to = static_cast<Block*>(::operator new(sizeof(Block) + fitted));
    *to = Block{static_cast<uint32_t>(fitted), static_cast<uint32_t>(live_text), block_->count, 0};
    char* out = reinterpret_cast<char*>(to + 1);
    Field* table_end = reinterpret_cast<Field*>(out + fitted);
    uint32_t at = 0;
    for (size_t i = 0; i < size(); ++i) {
      Field f = field(i);
      if (f.shared_name) {
        f.name_off += f.name_len;
        f.name_len = 0;
      }
      std::memcpy(out + at, text() + f.name_off, f.name_len + f.value_len);
      f.name_off = at;
      at += f.name_len + f.value_len;
      table_end[-1 - static_cast<ptrdiff_t>(i)] = f;
    }
  }
  release(block_);
  block_ = to;
}

Headers::Block* Headers::grow(size_t text_bytes, size_t fields) {
  // Heads are bounded far below 4 GB (the parsers' limits), so the 32-bit offsets hold.
  const size_t capacity = block_ ? block_->capacity : 0;
  const size_t needed = round_to_field((block_ ? block_->text_len : 0) + text_bytes) +
                        ((block_ ? block_->count : 0) + fields) * sizeof(Field);
  const size_t grown = round_to_field(std::max({needed, 2 * capacity + sizeof(Block), kFirstCapacity}));
  Block* old = block_;
  if (old) {
    block_ = copy_into(grown);
  } else {
    block_ = static_cast<Block*>(::operator new(sizeof(Block) + grown));
    *block_ = Block{static_cast<uint32_t>(grown), 0, 0, 0};
  }
  return old;
}

void Headers::add(std::string_view name, std::string_view value) {
  Block* old = has_room(name.size() + value.size(), 1) ? nullptr : grow(name.size() + value.size(), 1);
  begin_field();
  append_name(name);
  append_value(value);
  end_field();
  if (old) release(old);
}

void Headers::begin_field() {
  if (!has_room(0, 1)) {
    if (Block* old = grow(0, 1)) release(old);  // nothing is being copied from it
  }
  field(block_->count) = Field{block_->text_len, 0, 0, FieldId::kOther, 0};
  ++block_->count;
}

void Headers::append_name(std::string_view piece) {
  Block* old = has_room(piece.size(), 0) ? nullptr : grow(piece.size(), 0);
  std::memcpy(text() + block_->text_len, piece.data(), piece.size());
  block_->text_len += static_cast<uint32_t>(piece.size());
  field(block_->count - 1).name_len += static_cast<uint32_t>(piece.size());
  if (old) release(old);
}

void Headers::append_value(std::string_view piece) {
  Block* old = has_room(piece.size(), 0) ? nullptr : grow(piece.size(), 0);
  std::memcpy(text() + block_->text_len, piece.data(), piece.size());
  block_->text_len += static_cast<uint32_t>(piece.size());
  field(block_->count - 1).value_len += static_cast<uint32_t>(piece.size());
  if (old) release(old);
}

void Headers::end_field() {
  // The open field's value is the last text, so trimming it gives its bytes back.
  Field& f = field(block_->count - 1);
  const char* name = text() + f.name_off;
  char* value = text() + f.name_off + f.name_len;
  uint32_t length = f.value_len;
  uint32_t lead = 0;
  while (lead < length && is_space(value[lead])) ++lead;
  if (lead > 0) {
    length -= lead;
    std::memmove(value, value + lead, length);
  }
  while (length > 0 && is_space(value[length - 1])) --length;
  f.value_len = length;
  block_->text_len = f.name_off + f.name_len + length;
  if (f.name_len > 0) f.id = field_id({name, f.name_len});
}

// The lookups walk the table down from its end with the block's addresses in locals: iequals
// is a call, after which members would be loaded again, so a field whose length differs is
// passed over before it (a shared name's text is not counted in name_len: such a field is
// always compared).
std::optional<std::string_view> Headers::get(std::string_view name) const {
  if (!block_) return std::nullopt;
  const char* t = text();
  for (const Field *f = table_end() - 1, *last = table_end() - block_->count; f >= last; --f)
    if (may_match(*f, name) && iequals(name_of(*f, t), name))
      return std::string_view(t + f->name_off + f->name_len, f->value_len);
  return std::nullopt;
}

std::optional<std::string_view> Headers::get(FieldId id) const {
  if (!block_) return std::nullopt;
  const char* t = text();
  for (const Field *f = table_end() - 1, *last = table_end() - block_->count; f >= last; --f)
    if (f->id == id) return std::string_view(t + f->name_off + f->name_len, f->value_len);
  return std::nullopt;
}

size_t Headers::count(FieldId id) const {
  if (!block_) return 0;
  size_t n = 0;
  for (const Field *f = table_end() - 1, *last = table_end() - block_->count; f >= last; --f)
    if (f->id == id) ++n;
  return n;
}

size_t Headers::count(std::string_view name) const {
  if (!block_) return 0;
  const char* t = text();
  size_t n = 0;
  for (const Field *f = table_end() - 1, *last = table_end() - block_->count; f >= last; --f)
    if (may_match(*f, name) && iequals(name_of(*f, t), name)) ++n;
  return n;
}

bool Headers::has_token(std::string_view name, std::string_view token) const {
  if (!block_) return false;
  const char* t = text();
  bool found = false;
  for (const Field *f = table_end() - 1, *last = table_end() - block_->count; f >= last; --f) {
    if (!may_match(*f, name) || !iequals(name_of(*f, t), name)) continue;
    for_each_token(std::string_view(t + f->name_off + f->name_len, f->value_len), [&](std::string_view item) {
      if (iequals(item, token)) found = true;
    });
    if (found) return true;
  }
  return false;
}

void RequestHead::clear() {
  method.clear();
  target.clear();
  version_major = version_minor = 1;
  headers.clear();
  keep_alive = true;
  chunked = false;
  content_length.reset();
  upgrade.clear();
}

bool RequestHead::idempotent() const {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS" || method == "TRACE";
}

std::string_view RequestHead::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view RequestHead::host() const { return headers.get(FieldId::kHost).value_or(std::string_view{}); }

void ResponseHead::clear() {
  status = 0;
  reason.clear();
  version_major = version_minor = 1;
  headers.clear();
  keep_alive = true;
  chunked = false;
  content_length.reset();
  upgrade.clear();
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

bool is_hop_by_hop(std::string_view name) { return !name.empty() && is_hop_by_hop(field_id(name)); }

std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      int hi = hex(in[i + 1]);
      int lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

size_t format_http_date(int64_t unix_seconds, char* out) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  int n = std::snprintf(out, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday,
                        kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

std::optional<int64_t> parse_http_date(std::string_view text) {
  std::string_view t = trim(text);
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (names compared case-insensitively).
  if (t.size() == 29 && t[3] == ',' && t[4] == ' ' && t[7] == ' ' && t[11] == ' ' && t[16] == ' ' &&
      t[25] == ' ') {
    if (!is_day_name(t.substr(0, 3)) || !iequals(t.substr(26, 3), "GMT")) return std::nullopt;
    auto day = digits(t.substr(5, 2));
    int month = month_index(t.substr(8, 3));
    auto year = digits(t.substr(12, 4));
    if (!day || !month || !year) return std::nullopt;
    return make_time(*year, month, *day, t.substr(17, 8));
  }
  // asctime: "Sun Nov  6 08:49:37 1994".
  if (t.size() == 24 && t[3] == ' ' && t[7] == ' ' && t[10] == ' ' && t[19] == ' ') {
    if (!is_day_name(t.substr(0, 3))) return std::nullopt;
    int month = month_index(t.substr(4, 3));
    std::string_view d = t.substr(8, 2);
    auto day = d[0] == ' ' ? digits(d.substr(1)) : digits(d);
    auto year = digits(t.substr(20, 4));
    if (!day || !month || !year) return std::nullopt;
    return make_time(*year, month, *day, t.substr(11, 8));
  }
  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT".
  size_t comma = t.find(',');
  if (comma != std::string_view::npos && is_long_day_name(t.substr(0, comma))) {
    std::string_view r = t.substr(comma + 1);
    if (r.size() != 23 || r[0] != ' ' || r[3] != '-' || r[7] != '-' || r[10] != ' ' || r[19] != ' ')
      return std::nullopt;
    if (!iequals(r.substr(20, 3), "GMT")) return std::nullopt;
    auto day = digits(r.substr(1, 2));
    int month = month_index(r.substr(4, 3));
    auto yy = digits(r.substr(8, 2));
    if (!day || !month || !yy) return std::nullopt;
    // Two-digit years (RFC 9110 5.6.7 wants "not more than 50 years ahead" of now, and we have
    // no clock): 70-99 are 19xx, 00-69 are 20xx.
    int year = *yy >= 70 ? 1900 + *yy : 2000 + *yy;
    return make_time(year, month, *day, r.substr(11, 8));
  }
  return std::nullopt;
}

}  // namespace edge::http
