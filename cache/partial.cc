#include "cache/partial.h"

#include <algorithm>

namespace edge::cache {

namespace {

std::optional<uint64_t> digits_value(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;  // 19 digits cannot overflow
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

uint64_t end_of(const Part& part) { return part.first + part.length; }

// The first byte at or after `at` that no part holds.
uint64_t first_missing(const std::vector<Part>& parts, uint64_t at) {
  for (bool moved = true; moved;) {
    moved = false;
    for (const Part& part : parts) {
      if (part.first <= at && at < end_of(part)) {
        at = end_of(part);
        moved = true;
      }
    }
  }
  return at;
}

// The last byte at or before `at` that no part holds; `floor` is known to be missing.
uint64_t last_missing(const std::vector<Part>& parts, uint64_t at, uint64_t floor) {
  for (bool moved = true; moved && at > floor;) {
    moved = false;
    for (const Part& part : parts) {
      if (part.first <= at && at < end_of(part)) {
        at = part.first - 1;  // part.first > floor: floor is missing
        moved = true;
        break;
      }
    }
  }
  return at;
}

}  // namespace

std::optional<ContentRange> parse_content_range(std::string_view value) {
  value = http::trim(value);
  if (value.size() < 6 || !http::iequals(value.substr(0, 6), "bytes ")) return std::nullopt;
  value.remove_prefix(6);
  const size_t dash = value.find('-');
  const size_t slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) return std::nullopt;
  const auto first = digits_value(value.substr(0, dash));
  const auto last = digits_value(value.substr(dash + 1, slash - dash - 1));
  const auto complete = digits_value(value.substr(slash + 1));
  if (!first || !last || !complete || *first > *last || *last >= *complete) return std::nullopt;
  return ContentRange{*first, *last, *complete};
}

bool parts_cover(const std::vector<Part>& parts, uint64_t first, uint64_t last) {
  return first_missing(parts, first) > last;
}

std::optional<ByteRange> missing_span(const std::vector<Part>& parts, uint64_t first, uint64_t last) {
  const uint64_t from = first_missing(parts, first);
  if (from > last) return std::nullopt;
  return ByteRange{from, last_missing(parts, last, from)};
}

std::vector<Part> add_part(const std::vector<Part>& parts, Part added) {
  std::vector<Part> out;
  out.reserve(parts.size() + 1);
  for (const Part& part : parts)
    if (part.first < added.first || end_of(part) > end_of(added)) out.push_back(part);
  while (out.size() >= kMaxParts) {
    auto smallest = std::min_element(out.begin(), out.end(),
                                     [](const Part& a, const Part& b) { return a.length < b.length; });
    out.erase(smallest);
  }
  out.push_back(std::move(added));
  std::sort(out.begin(), out.end(), [](const Part& a, const Part& b) { return a.first < b.first; });
  return out;
}

uint64_t parts_bytes(const std::vector<Part>& parts) {
  uint64_t bytes = 0;
  for (const Part& part : parts) bytes += part.length;
  return bytes;
}

std::shared_ptr<http::SharedBody> join_parts(const std::vector<Part>& parts, uint64_t complete_length) {
  if (complete_length == 0 || !parts_cover(parts, 0, complete_length - 1)) return nullptr;
  for (const Part& part : parts)
    if (!part.body || !part.body->complete() || part.body->size() != part.length) return nullptr;
  auto joined = std::make_shared<http::SharedBody>(complete_length);
  PartsBody whole;
  whole.reset(&parts, 0, complete_length - 1);
  std::string scratch;
  http::IoSlice slices[16];
  for (uint64_t offset = 0; offset < complete_length;) {
    const int n = whole.peek(offset, slices, 16, SIZE_MAX, scratch);
    if (n <= 0) return nullptr;
    for (int i = 0; i < n; ++i) {
      joined->append({slices[i].data, slices[i].len});
      offset += slices[i].len;
    }
  }
  joined->finish();
  return joined;
}

http::Headers stored_part_headers(const http::Headers& response) {
  http::Headers out = stored_headers(response);
  out.remove_if([](std::string_view name, http::FieldId) { return http::iequals(name, "Content-Range"); });
  return out;
}

const Part* PartsBody::holder(uint64_t at, uint64_t* available) const {
  const Part* best = nullptr;
  *available = 0;
  for (const Part& part : *parts_) {
    if (at < part.first || at >= end_of(part)) continue;
    const uint64_t there = part.first + std::min(part.length, part.body->size());
    if (there > at && there - at > *available) {
      *available = there - at;
      best = &part;
    }
  }
  return best;
}

uint64_t PartsBody::size() const {
  const uint64_t end = first_ + length_;
  uint64_t at = first_;
  while (at < end) {
    uint64_t available = 0;
    if (!holder(at, &available)) break;
    at += available;
  }
  return std::min(at, end) - first_;
}

int PartsBody::peek(uint64_t offset, http::IoSlice* out, int max, size_t max_bytes, std::string& scratch) const {
  const uint64_t end = first_ + length_;
  uint64_t at = first_ + offset;
  int count = 0;
  while (count < max && max_bytes > 0 && at < end) {
    uint64_t available = 0;
    const Part* part = holder(at, &available);
    if (!part) break;
    const uint64_t want = std::min<uint64_t>({available, end - at, max_bytes});
    const int n = part->body->peek(at - part->first, out + count, max - count, static_cast<size_t>(want), scratch);
    if (n <= 0) break;
    for (int i = count; i < count + n; ++i) {
      at += out[i].len;
      max_bytes -= out[i].len;
    }
    count += n;
  }
  return count;
}

}  // namespace edge::cache
