#include "cache/record.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace edge::cache {
namespace {

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { fixed(v, 2); }
  void u32(uint32_t v) { fixed(v, 4); }
  void u64(uint64_t v) { fixed(v, 8); }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void raw(std::string_view s) { out_.append(s); }

 private:
  void fixed(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string& out_;
};

// Every read checks what is left first; after one failed read, `ok` stays false and the others
// return zeros, so decode() checks once per group instead of after every field.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool ok() const { return ok_; }
  size_t left() const { return in_.size(); }

  uint8_t u8() { return static_cast<uint8_t>(fixed(1)); }
  uint16_t u16() { return static_cast<uint16_t>(fixed(2)); }
  uint32_t u32() { return static_cast<uint32_t>(fixed(4)); }
  uint64_t u64() { return fixed(8); }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  std::string_view bytes(uint64_t n) {
    if (!ok_ || n > in_.size()) {
      ok_ = false;
      return {};
    }
    std::string_view out = in_.substr(0, n);
    in_.remove_prefix(n);
    return out;
  }
  std::string_view str() { return bytes(u32()); }
  // A count of items that each take at least `min_item` bytes: a count that could not fit in
  // what is left fails here, before anything is reserved for it.
  uint32_t count(size_t min_item) {
    uint32_t n = u32();
    if (ok_ && static_cast<uint64_t>(n) * min_item > in_.size()) ok_ = false;
    return ok_ ? n : 0;
  }

 private:
  uint64_t fixed(int n) {
    if (!ok_ || in_.size() < static_cast<size_t>(n)) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(in_[i])) << (8 * i);
    in_.remove_prefix(n);
    return v;
  }
  std::string_view in_;
  bool ok_ = true;
};

// Headers::add trims a value's outer blanks, so a value that has them could not come back as the
// same bytes: such a record was not written by encode(), and is refused.
bool has_outer_blank(std::string_view value) {
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  return !value.empty() && (blank(value.front()) || blank(value.back()));
}

void write_list(Writer& w, const std::vector<std::string>& items) {
  w.u32(static_cast<uint32_t>(items.size()));
  for (const std::string& item : items) w.str(item);
}

template <typename List>  // std::vector<std::string> or SparseVector<std::string>
bool read_list(Reader& r, List& out) {
  uint32_t n = r.count(4);
  std::vector<std::string> list;
  list.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i) list.emplace_back(r.str());
  out = std::move(list);
  return r.ok();
}

}  // namespace

bool is_record(std::string_view value) { return value.starts_with(kRecordMagic); }

std::string encode(const CachedObject& object, Seconds stored_at) {
  std::string body = object.body ? object.body->to_string() : std::string();
  std::string out;
  out.reserve(256 + object.headers.arena_bytes() + body.size());
  Writer w(out);
  w.raw(kRecordMagic);
  w.u8(kRecordVersion);
  w.str(object.key());
  w.str(object.host());
  w.str(object.path());
  w.str(object.variant);
  w.u16(static_cast<uint16_t>(object.status));
  w.str(object.reason());
  w.u32(static_cast<uint32_t>(object.headers.size()));
  for (size_t i = 0; i < object.headers.size(); ++i) {
    w.str(object.headers.name(i));
    w.str(object.headers.value(i));
  }
  const AgeBasis age = object.age.expanded();
  w.i64(age.request_time);
  w.i64(age.response_time);
  w.i64(age.date_value);
  w.i64(age.age_value);
  w.i64(object.lifetime);
  w.i64(object.grace);
  w.i64(stored_at);
  w.u8((object.attachment() ? 1 : 0) | (object.decoded ? 2 : 0));
  write_list(w, object.tags());
  write_list(w, object.vary_names);
  w.u32(static_cast<uint32_t>(object.encodings().size()));
  for (const CachedObject::Encoded& encoded : object.encodings()) {
    const std::string bytes = encoded.body->to_string();
    w.u8(static_cast<uint8_t>(encoded.coding));
    w.u64(bytes.size());
    w.raw(bytes);
  }
  w.u64(body.size());
  w.raw(body);
  return out;
}

std::optional<DecodedRecord> decode(std::string_view value) {
  if (!is_record(value)) return std::nullopt;
  Reader r(value.substr(kRecordMagic.size()));
  const uint8_t version = r.u8();
  if (version != 1 && version != kRecordVersion) return std::nullopt;

  auto object = std::make_shared<CachedObject>();
  const std::string_view key = r.str();
  const std::string_view host = r.str();
  const std::string_view path = r.str();
  object->set_key(key, host, path);
  object->variant = r.str();
  object->status = r.u16();
  object->set_reason(r.str());
  if (!r.ok() || object->status < 100 || object->status > 999) return std::nullopt;

  uint32_t fields = r.count(8);
  for (uint32_t i = 0; i < fields && r.ok(); ++i) {
    std::string_view name = r.str();
    std::string_view field_value = r.str();
    if (has_outer_blank(field_value)) return std::nullopt;
    if (r.ok()) object->headers.add(name, field_value);
  }

  AgeBasis age;
  age.request_time = r.i64();
  age.response_time = r.i64();
  age.date_value = r.i64();
  age.age_value = r.i64();
  object->age = age;
  object->lifetime = r.i64();
  object->grace = r.i64();
  Seconds stored_at = r.i64();
  const uint8_t flags = r.u8();
  if (flags > (version == 1 ? 1 : 3)) return std::nullopt;
  std::vector<std::string> tags;
  if (!read_list(r, tags) || !read_list(r, object->vary_names)) return std::nullopt;
  object->set_tags(std::move(tags));
  object->decoded = (flags & 2) != 0;
  const uint32_t count = version == 1 ? 0 : r.count(9);
  std::vector<CachedObject::Encoded> encodings;
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    const uint8_t coding = r.u8();
    const std::string_view bytes = r.bytes(r.u64());
    const auto same = [coding](const CachedObject::Encoded& e) { return e.coding == static_cast<compress::Coding>(coding); };
    if (coding == 0 || coding >= compress::kCodings || std::any_of(encodings.begin(), encodings.end(), same))
      return std::nullopt;
    if (r.ok()) encodings.push_back({static_cast<compress::Coding>(coding), http::SharedBody::from(bytes)});
  }
  object->set_encodings(std::move(encodings));

  uint64_t body_size = r.u64();
  if (!r.ok() || body_size != r.left()) return std::nullopt;
  object->body = http::SharedBody::from(r.bytes(body_size));
  object->cc = parse_cache_control(object->headers, false);
  return DecodedRecord{std::move(object), stored_at, (flags & 1) != 0};
}

}  // namespace edge::cache
