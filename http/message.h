// http/message: message heads (request and response) and the header helpers every module uses.
//
// A head owns its bytes: names, values and the table of fields live in one heap block per head,
// so parsing a head costs an allocation or two that are kept (clear() keeps capacity) for the
// connection's next message, and a stored head costs one. Views returned by the accessors borrow
// from the head until it is cleared or changed.
#pragma once

#include <cstddef>
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
  Headers() = default;
  Headers(const Headers& other);
  Headers& operator=(const Headers& other);
  Headers(Headers&& other) noexcept : block_(other.block_) { other.block_ = nullptr; }
  Headers& operator=(Headers&& other) noexcept;
  ~Headers() { release(block_); }

  void clear() {
    if (block_) block_->text_len = block_->count = 0;
  }
  void add(std::string_view name, std::string_view value);

  size_t size() const { return block_ ? block_->count : 0; }
  std::string_view name(size_t i) const { return name_of(field(i), text()); }
  std::string_view value(size_t i) const {
    const Field& f = field(i);
    return {text() + f.name_off + f.name_len, f.value_len};
  }
  FieldId id(size_t i) const { return field(i).id; }

  // The first field with this name (case-insensitive).
  std::optional<std::string_view> get(std::string_view name) const;
  size_t count(std::string_view name) const;
  // The same for a known field, without comparing strings.
  std::optional<std::string_view> get(FieldId id) const;
  size_t count(FieldId id) const;
  // True when a field with this name lists `token` (comma-separated, case-insensitive).
  bool has_token(std::string_view name, std::string_view token) const;

  // Removes every field for which pred(name, id) is true (the text keeps their bytes).
  template <typename Pred>
  void remove_if(Pred&& pred) {
    size_t kept = 0;
    for (size_t i = 0; i < size(); ++i)
      if (!pred(name(i), id(i))) field(kept++) = field(i);
    if (block_) block_->count = static_cast<uint32_t>(kept);
  }

  // Incremental building, for the parser: a field's name and value may arrive in pieces, the
  // name's before the value's.
  void begin_field();
  void append_name(std::string_view piece);
  void append_value(std::string_view piece);
  void end_field();  // trims the value's surrounding white space
  size_t arena_bytes() const { return block_ ? block_->text_len : 0; }
  // The heap the fields hold (http/heap.h): their text and their table.
  uint64_t memory() const;
  // Gives back what growing left unused, and removed fields' text: for heads that are kept (a
  // stored object's). A name spelt byte for byte as one of the common names a shared table holds
  // (Date, Content-Type, Cache-Control, ETag, ...) is not kept in the text: name() gives the
  // table's, the same bytes.
  void shrink_to_fit();

 private:
  // One heap block per head, so a kept head costs one allocation and one pointer: the text from
  // the block's start (each field's name, then its value), the field table from its end down.
  // Field i is the i-th slot below the end.
  struct Field {
    uint32_t name_off, name_len, value_len;  // the value follows the name
    FieldId id;
    // 0, or 1 + the name's index in kSharedNames (the text then holds no name: name_len is 0).
    uint8_t shared_name;
  };
  static const std::string_view kSharedNames[];
  static uint8_t shared_name_index(std::string_view name);  // 0: not in the table
  static std::string_view name_of(const Field& f, const char* text) {
    return f.shared_name ? kSharedNames[f.shared_name - 1] : std::string_view(text + f.name_off, f.name_len);
  }
  static bool may_match(const Field& f, std::string_view name) { return f.name_len == name.size() || f.shared_name; }
  struct Block {
    uint32_t capacity;  // bytes after the block's own fields, a multiple of alignof(Field)
    uint32_t text_len;
    uint32_t count;
    uint32_t unused;
  };
  static_assert(sizeof(Field) == 16 && sizeof(Block) % alignof(Field) == 0);
  const char* text() const { return reinterpret_cast<const char*>(block_ + 1); }
  char* text() { return reinterpret_cast<char*>(block_ + 1); }
  Field* table_end() const { return reinterpret_cast<Field*>(reinterpret_cast<char*>(block_ + 1) + block_->capacity); }
  Field& field(size_t i) const { return table_end()[-1 - static_cast<ptrdiff_t>(i)]; }
  bool has_room(size_t text_bytes, size_t fields) const {
    return block_ && block_->text_len + text_bytes + (block_->count + fields) * sizeof(Field) <= block_->capacity;
  }
  // A larger block for `text` more bytes and `fields` more fields. Returns the block it left,
  // which the caller frees (release) once done with what it was copying: a piece may be this
  // head's own text.
  Block* grow(size_t text_bytes, size_t fields);
  // A block of `capacity` holding this head's text and fields.
  Block* copy_into(size_t capacity) const;
  size_t used_capacity() const;
  static void release(Block* block);

  Block* block_ = nullptr;
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
