// http/message: message heads (request and response) and the header helpers every module uses.
//
// A head owns its bytes: names and values live in one arena string per head, so parsing a head
// costs a couple of allocations that are kept (clear() keeps capacity) for the connection's next
// message. Views returned by the accessors borrow from the head until it is cleared or changed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edge::http {

bool iequals(std::string_view a, std::string_view b);
std::string_view trim(std::string_view s);

// Calls fn(token) for each comma-separated, trimmed, non-empty element of a list header value.
template <typename Fn>
void for_each_token(std::string_view list, Fn&& fn) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    if (!item.empty()) fn(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

// The fields the proxy acts on, recognised once when a field is parsed, so forwarding a head
// is a switch per field rather than a string comparison per field and rule.
enum class FieldId : uint8_t {
  kOther,
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kKeepAlive,
  kProxyConnection,
  kTe,
  kTrailer,
  kUpgrade,
  kProxyAuthorization,
  kProxyAuthenticate,
  kExpect,
  kXForwardedFor,
  kXForwardedProto,
  kXForwardedHost,
  kVia,
  kDate,
};
FieldId field_id(std::string_view name);
// Hop-by-hop fields (RFC 9110 7.6.1) that a proxy never forwards, whatever Connection says.
bool is_hop_by_hop(FieldId id);

class Headers {
 public:
  void clear() {
    arena_.clear();
    fields_.clear();
  }
  void add(std::string_view name, std::string_view value);

  size_t size() const { return fields_.size(); }
  std::string_view name(size_t i) const { return view(fields_[i].name_off, fields_[i].name_len); }
  std::string_view value(size_t i) const { return view(fields_[i].value_off, fields_[i].value_len); }
  FieldId id(size_t i) const { return fields_[i].id; }

  // The first field with this name (case-insensitive).
  std::optional<std::string_view> get(std::string_view name) const;
  size_t count(std::string_view name) const;
  // The same for a known field, without comparing strings.
  std::optional<std::string_view> get(FieldId id) const;
  size_t count(FieldId id) const;
  // True when a field with this name lists `token` (comma-separated, case-insensitive).
  bool has_token(std::string_view name, std::string_view token) const;

  // Removes every field for which pred(name, id) is true (the arena keeps their bytes).
  template <typename Pred>
  void remove_if(Pred&& pred) {
    std::erase_if(fields_, [&](const Field& f) { return pred(view(f.name_off, f.name_len), f.id); });
  }

  // Incremental building, for the parser: a field's name and value may arrive in pieces.
  void begin_field();
  void append_name(std::string_view piece);
  void append_value(std::string_view piece);
  void end_field();  // trims the value's surrounding white space
  size_t arena_bytes() const { return arena_.size(); }
  // The heap the fields hold (http/heap.h): their text and their table.
  uint64_t memory() const;
  // Gives back what growing left unused: for heads that are kept (a stored object's).
  void shrink_to_fit() {
    arena_.shrink_to_fit();
    fields_.shrink_to_fit();
  }

 private:
  struct Field {
    uint32_t name_off, name_len, value_off, value_len;
    FieldId id;
  };
  std::string_view view(uint32_t off, uint32_t len) const { return {arena_.data() + off, len}; }

  std::string arena_;
  std::vector<Field> fields_;
};

struct RequestHead {
  std::string method;  // as received, e.g. "GET"
  std::string target;  // the request-target, as received
  int version_major = 1;
  int version_minor = 1;
  Headers headers;
  bool keep_alive = true;  // what the client asked for, by version and Connection
  bool chunked = false;
  std::optional<uint64_t> content_length;
  // The protocols an HTTP/1.1 request asks to switch to: its one Upgrade field, when Connection
  // names `upgrade` (the field itself is hop-by-hop and gone from `headers`); "" otherwise.
  std::string upgrade;

  void clear();
  bool is_head() const { return method == "HEAD"; }
  bool http10() const { return version_major == 1 && version_minor == 0; }
  bool http2() const { return version_major == 2; }
  bool idempotent() const;  // GET, HEAD, PUT, DELETE, OPTIONS, TRACE
  std::string_view path() const;   // target up to '?'
  std::string_view host() const;   // Host, lower-cased comparison is the caller's; "" if absent
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  int version_major = 1;
  int version_minor = 1;
  Headers headers;
  bool keep_alive = true;  // the server will keep the connection open after this message
  bool chunked = false;
  std::optional<uint64_t> content_length;
  std::string upgrade;  // a 101's Upgrade field (the protocol switched to), as for a request

  void clear();
};

// The canonical reason phrase for a status ("Unknown" for codes we do not name).
std::string_view reason_phrase(int status);

bool is_hop_by_hop(std::string_view name);

// Where a response head's fields lie in its text, for a head written for an HTTP/2 stream (names
// lower-case, no connection-specific field): HEADERS are made from it without reading the text
// again. Offsets are into the head's text; `size` is the head's length, its empty line included
// (bytes past it are a body written inline).
struct HeadIndex {
  struct Field {
    uint32_t name, name_len, value, value_len;
  };
  std::vector<Field> fields;
  uint32_t size = 0;  // 0: no index (the head must be read)
  void clear() {
    fields.clear();
    size = 0;
  }
};

// Percent-decodes `in` ("%41" -> "A"; with `plus_is_space`, "+" -> " "). Returns nullopt for a
// '%' not followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space);

// "Sun, 06 Nov 1994 08:49:37 GMT" for the given Unix time; the buffer must hold 30 bytes.
size_t format_http_date(int64_t unix_seconds, char* out);
// An HTTP-date as Unix time: IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient
// must also accept (RFC 9110 5.6.7); names case-insensitive, white space around ignored.
// nullopt for anything else, impossible dates included.
std::optional<int64_t> parse_http_date(std::string_view text);

}  // namespace edge::http
