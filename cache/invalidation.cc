// cache/invalidation: see invalidation.h.
#include "cache/invalidation.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace edge::cache {
namespace {

constexpr std::string_view kMagic = "edge-invalidations";
constexpr std::string_view kVersion = "1";
constexpr std::string_view kUrl = "url";
constexpr std::string_view kTag = "tag";
constexpr std::string_view kBan = "ban";
// A ban's host, prefix or regex that is empty ("every host", "any path", "none").
constexpr std::string_view kNone = "-";
constexpr size_t kMaxFields = 6;
constexpr char kHex[] = "0123456789ABCDEF";

void append_number(std::string& out, Seconds value) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

// Digits only: a sign, blanks or trailing bytes mean the line was not written by edge.
std::optional<Seconds> parse_number(std::string_view text) {
  if (text.empty() || text.front() < '0' || text.front() > '9') return std::nullopt;
  Seconds value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

bool must_escape(unsigned char c) { return c == '%' || c <= 0x20 || c >= 0x7f; }

void append_encoded(std::string& out, std::string_view field) {
  for (char c : field) {
    auto byte = static_cast<unsigned char>(c);
    if (must_escape(byte)) {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
}

// "-" stands for the empty field, so a field that really is "-" is escaped.
void append_ban_field(std::string& out, std::string_view field) {
  if (field.empty()) {
    out += kNone;
  } else if (field == kNone) {
    out += "%2D";
  } else {
    append_encoded(out, field);
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// A byte that format_invalidation() would have escaped but that stands bare is refused like a
// bad escape: the log is not trusted unless edge could have written it.
std::optional<std::string> decode_field(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    auto byte = static_cast<unsigned char>(field[i]);
    if (byte != '%') {
      if (must_escape(byte)) return std::nullopt;
      out += field[i];
      continue;
    }
    if (field.size() - i < 3) return std::nullopt;
    int high = hex_value(field[i + 1]);
    int low = hex_value(field[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

std::optional<std::string> decode_ban_field(std::string_view field) {
  if (field == kNone) return std::string();
  return decode_field(field);
}

std::optional<bool> parse_soft(std::string_view text) {
  if (text == "0") return false;
  if (text == "1") return true;
  return std::nullopt;
}

// The line's space-separated fields; the count is kMaxFields + 1 when there are more.
struct Fields {
  std::array<std::string_view, kMaxFields> field;
  size_t count = 0;
};

Fields split_fields(std::string_view line) {
  Fields fields;
  while (true) {
    if (fields.count == kMaxFields) {
      ++fields.count;
      return fields;
    }
    size_t space = line.find(' ');
    fields.field[fields.count++] = line.substr(0, space);
    if (space == std::string_view::npos) return fields;
    line.remove_prefix(space + 1);
  }
}

std::optional<Invalidation> parse_entry(std::string_view line) {
  Fields fields = split_fields(line);
  if (fields.count < 4) return std::nullopt;
  Invalidation entry;
  std::optional<Seconds> at = parse_number(fields.field[0]);
  std::optional<bool> soft = parse_soft(fields.field[2]);
  if (!at || !soft) return std::nullopt;
  entry.at = *at;
  entry.soft = *soft;
  std::string_view kind = fields.field[1];
  if (kind == kUrl || kind == kTag) {
    if (fields.count != 4) return std::nullopt;
    std::optional<std::string> key = decode_field(fields.field[3]);
    if (!key) return std::nullopt;
    entry.kind = kind == kUrl ? Invalidation::Kind::kUrl : Invalidation::Kind::kTag;
    entry.key = std::move(*key);
    return entry;
  }
  if (kind != kBan || fields.count != 6) return std::nullopt;
  std::optional<std::string> host = decode_ban_field(fields.field[3]);
  std::optional<std::string> prefix = decode_ban_field(fields.field[4]);
  std::optional<std::string> regex = decode_ban_field(fields.field[5]);
  if (!host || !prefix || !regex) return std::nullopt;
  entry.kind = Invalidation::Kind::kBan;
  entry.host = std::move(*host);
  entry.prefix = std::move(*prefix);
  entry.regex = std::move(*regex);
  return entry;
}

bool matches(const Invalidation& entry, const BanRegex* regex, bool bad_regex,
             const CachedObject& object) {
  switch (entry.kind) {
    case Invalidation::Kind::kUrl:
      return object.key() == entry.key;
    case Invalidation::Kind::kTag:
      return std::find(object.tags().begin(), object.tags().end(), entry.key) != object.tags().end();
    case Invalidation::Kind::kBan:
      if (!entry.host.empty() && object.host() != entry.host) return false;
      // A ban that cannot be judged whole is applied to the whole host, prefix or not: it is
      // not known what the operator meant to remove.
      if (bad_regex) return true;
      if (!object.path().starts_with(entry.prefix)) return false;
      return !regex || regex->matches(object.path());
  }
  return false;
}

}  // namespace

std::string invalidation_log_header(Seconds created) {
  std::string out(kMagic);
  out += ' ';
  out += kVersion;
  out += ' ';
  append_number(out, created);
  out += '\n';
  return out;
}

std::string format_invalidation(const Invalidation& entry) {
  std::string out;
  append_number(out, entry.at);
  out += ' ';
  switch (entry.kind) {
    case Invalidation::Kind::kUrl:
      out += kUrl;
      break;
    case Invalidation::Kind::kTag:
      out += kTag;
      break;
    case Invalidation::Kind::kBan:
      out += kBan;
      break;
  }
  out += entry.soft ? " 1 " : " 0 ";
  if (entry.kind == Invalidation::Kind::kBan) {
    append_ban_field(out, entry.host);
    out += ' ';
    append_ban_field(out, entry.prefix);
    out += ' ';
    append_ban_field(out, entry.regex);
  } else {
    append_encoded(out, entry.key);
  }
  out += '\n';
  return out;
}

std::optional<InvalidationLog> InvalidationLog::parse(std::string_view text) {
  size_t end = text.find('\n');
  Fields header = split_fields(text.substr(0, end));
  if (header.count != 3 || header.field[0] != kMagic || header.field[1] != kVersion) return std::nullopt;
  std::optional<Seconds> created = parse_number(header.field[2]);
  if (!created) return std::nullopt;

  InvalidationLog log;
  log.created_ = *created;
  text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  while (!text.empty()) {
    end = text.find('\n');
    std::optional<Invalidation> invalidation = parse_entry(text.substr(0, end));
    if (!invalidation) return std::nullopt;
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);

    Entry entry{std::move(*invalidation), nullptr, false};
    if (entry.invalidation.kind == Invalidation::Kind::kBan && !entry.invalidation.regex.empty()) {
      std::string error;
      entry.regex = BanRegex::compile(entry.invalidation.regex, error);
      entry.bad_regex = !entry.regex;
    }
    log.entries_.push_back(std::move(entry));
  }
  std::stable_sort(log.entries_.begin(), log.entries_.end(),
                   [](const Entry& a, const Entry& b) { return a.invalidation.at < b.invalidation.at; });
  return log;
}

InvalidationLog::Verdict InvalidationLog::check(const CachedObject& object, Seconds stored_at) const {
  // Same second counts as before, as for entries: compaction sets created to the time of an
  // entry it dropped, which purged the records stored in that second.
  if (stored_at <= created_) return Verdict::kPurged;
  auto first = std::lower_bound(entries_.begin(), entries_.end(), stored_at,
                                [](const Entry& entry, Seconds at) { return entry.invalidation.at < at; });
  bool stale = false;
  for (auto it = first; it != entries_.end(); ++it) {
    const Invalidation& invalidation = it->invalidation;
    // Once stale, only a hard entry can change the verdict: spare the soft ones' regexes.
    if (invalidation.soft && stale) continue;
    if (!matches(invalidation, it->regex.get(), it->bad_regex, object)) continue;
    if (!invalidation.soft) return Verdict::kPurged;
    stale = true;
  }
  return stale ? Verdict::kStale : Verdict::kValid;
}

std::string InvalidationLog::compacted(size_t max_bytes) const {
  // The kept entries must be the newest ones, without a gap: created moves past every dropped
  // one, and an older entry kept behind it would no longer mean anything.
  std::vector<std::string> kept;  // newest first
  size_t used = 0;
  size_t first_kept = entries_.size();
  while (first_kept > 0) {
    std::string line = format_invalidation(entries_[first_kept - 1].invalidation);
    if (line.size() > max_bytes - used) break;
    used += line.size();
    kept.push_back(std::move(line));
    --first_kept;
  }
  Seconds created = created_;
  // An entry older than created (appended late by a node whose clock lags) must not move it back.
  if (first_kept > 0) created = std::max(created, entries_[first_kept - 1].invalidation.at);

  std::string out = invalidation_log_header(created);
  out.reserve(out.size() + used);
  for (auto it = kept.rbegin(); it != kept.rend(); ++it) out += *it;
  return out;
}

}  // namespace edge::cache
