#include "app/cache_route.h"

#include <array>
#include <utility>

#include "compress/codec.h"

namespace edge::app {

namespace {

// The text parameters of /cache and the response fields they become, in the order written.
constexpr std::array<std::pair<std::string_view, std::string_view>, 14> kTextFields = {{
    {"type", "Content-Type"},
    {"cc", "Cache-Control"},
    {"etag", "ETag"},
    {"vary", "Vary"},
    {"tag", "Surrogate-Key"},
    {"xkey", "xkey"},
    {"cookie", "Set-Cookie"},
    {"location", "Location"},
    {"content_location", "Content-Location"},
    {"surrogate", "Surrogate-Control"},
    {"age", "Age"},
    {"cdn_cc", "CDN-Cache-Control"},
    {"edge_cc", "Edge-Cache-Control"},
    {"content_encoding", "Content-Encoding"},
}};

// The request fields /cache reports back, and how several fields of one name are joined.
struct EchoedField {
  std::string_view request_name;
  std::string_view response_name;
  std::string_view separator;
};
constexpr std::array<EchoedField, 6> kEchoedFields = {{
    {"If-None-Match", "X-Got-If-None-Match", ", "},
    {"If-Modified-Since", "X-Got-If-Modified-Since", ", "},
    {"Cookie", "X-Got-Cookie", "; "},
    {"Range", "X-Got-Range", ", "},
    {"If-Range", "X-Got-If-Range", ", "},
    {"Accept-Encoding", "X-Got-Accept-Encoding", ", "},
}};

// Every field named `name`, joined with `separator`; nullopt when there is none.
std::optional<std::string> joined_fields(const http::Headers& headers, std::string_view name,
                                         std::string_view separator) {
  std::optional<std::string> out;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!http::iequals(headers.name(i), name)) continue;
    if (out)
      out->append(separator);
    else
      out.emplace();
    out->append(headers.value(i));
  }
  return out;
}

std::string_view without_weak_prefix(std::string_view tag) {
  return tag.substr(0, 2) == "W/" ? tag.substr(2) : tag;
}

// Reads the first parameter `name` into `out` (left empty when absent). False when it is present
// but not a number within bounds.
bool read_uint(const QueryParams& q, std::string_view name, uint64_t max, std::optional<uint64_t>& out) {
  auto text = query_get(q, name);
  if (!text) return true;
  out = parse_uint(*text, max);
  return out.has_value();
}

bool read_int(const QueryParams& q, std::string_view name, int64_t max_magnitude, std::optional<int64_t>& out) {
  auto text = query_get(q, name);
  if (!text) return true;
  out = parse_int(*text, max_magnitude);
  return out.has_value();
}

}  // namespace

bool if_none_match_matches(std::string_view if_none_match, std::string_view etag) {
  bool matched = false;
  etag = without_weak_prefix(etag);
  http::for_each_token(if_none_match, [&](std::string_view tag) {
    if (tag == "*" || without_weak_prefix(tag) == etag) matched = true;
  });
  return matched;
}

std::string http_date(int64_t unix_seconds) {
  char buf[32];
  return std::string(buf, http::format_http_date(unix_seconds, buf));
}

namespace {
// ranges=1: one `bytes=first-[last]` or `bytes=-suffix` range of a generated body answered 206
// (416 past its end), unless an If-Range names another validator than etag or Last-Modified.
void answer_range(const http::RequestHead& head, const QueryParams& q, Reply& r) {
  const auto range = head.headers.get("Range");
  if (!range || head.headers.count("Range") != 1 || !range->starts_with("bytes=")) return;
  if (auto if_range = head.headers.get("If-Range")) {
    const auto etag = query_get(q, "etag");
    const auto lm = r.headers.get("Last-Modified");
    if (!(etag && *if_range == *etag) && !(lm && *if_range == *lm)) return;
  }
  const std::string_view spec = range->substr(6);
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos || spec.find(',') != std::string_view::npos) return;
  auto number = [](std::string_view text) -> std::optional<uint64_t> {
    uint64_t value = 0;
    if (text.empty() || text.size() > 18) return std::nullopt;
    for (char c : text) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    return value;
  };
  const uint64_t size = r.generated_bytes;
  uint64_t first = 0, last = size ? size - 1 : 0;
  if (dash == 0) {
    const auto suffix = number(spec.substr(1));
    if (!suffix || *suffix == 0) return;
    first = *suffix >= size ? 0 : size - *suffix;
  } else {
    const auto from = number(spec.substr(0, dash));
    if (!from) return;
    first = *from;
    if (dash + 1 < spec.size()) {
      const auto to = number(spec.substr(dash + 1));
      if (!to || *to < first) return;
      last = std::min(last, *to);
    }
  }
  if (first >= size) {
    r.status = 416;
    r.headers.add("Content-Range", "bytes */" + std::to_string(size));
    r.generated_bytes = 0;
    return;
  }
  r.status = 206;
  r.headers.add("Content-Range",
                "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(size));
  r.generated_offset = first;
  r.generated_bytes = last - first + 1;
}
// The reply before `coded` applies.
Reply uncoded_reply(const http::RequestHead& head, const QueryParams& q, const RouteContext& context) {
  constexpr auto kMaxOffset = static_cast<uint64_t>(kMaxCacheOffsetSeconds);
  std::optional<uint64_t> status, delay, size, lm, gather, gather_ms, chunk;
  std::optional<int64_t> date;
  if (!read_uint(q, "status", 599, status) || (status && *status < 200))
    return bad_request("status must be a number from 200 to 599");
  if (!read_uint(q, "delay", kMaxWaitMs, delay)) return bad_request("delay must be a number from 0 to 600000");
  if (!read_uint(q, "gather", kMaxGather, gather) || (gather && *gather < 1))
    return bad_request("gather must be a number from 1 to 1000");
  if (!read_uint(q, "gather_ms", kMaxWaitMs, gather_ms))
    return bad_request("gather_ms must be a number from 0 to 600000");
  if (!read_uint(q, "size", kMaxPatternBytes, size)) return bad_request("size must be a number from 0 to 1073741824");
  if (!read_uint(q, "chunk", kMaxChunkBytes, chunk) || (chunk && *chunk < 1))
    return bad_request("chunk must be a number from 1 to 65536");
  if (!read_uint(q, "lm", kMaxOffset, lm)) return bad_request("lm must be a number of seconds from 0 to 3153600000");
  if (!read_int(q, "date", kMaxCacheOffsetSeconds, date))
    return bad_request("date must be a number of seconds from -3153600000 to 3153600000");
  std::optional<std::string> expires;
  if (auto text = query_get(q, "expires")) {
    std::optional<int64_t> offset;
    if (*text == "bad")
      expires.emplace("0");  // an invalid Expires, which a cache must read as already expired
    else if (read_int(q, "expires", kMaxCacheOffsetSeconds, offset))
      expires = http_date(context.now + *offset);
    else
      return bad_request("expires must be bad or a number of seconds from -3153600000 to 3153600000");
  }

  Reply r;
  r.status = static_cast<int>(status.value_or(200));
  r.delay_ms = delay.value_or(0);
  r.gather = static_cast<uint32_t>(gather.value_or(0));
  if (gather) r.gather_ms = gather_ms.value_or(5000);
  if (!query_get(q, "type")) r.headers.add("Content-Type", "text/plain");
  for (const auto& [param, field] : kTextFields) {
    for (const auto& [name, value] : q) {
      if (name != param) continue;
      if (!valid_field_value(value)) return bad_request("a field value has CR, LF or NUL");
      r.headers.add(field, value);
    }
  }
  if (query_get(q, "content_location_self")) r.headers.add("Content-Location", head.target);
  // Whole hours: a Last-Modified that moved with every second would make a revalidation made in
  // the next second a 200, not a 304.
  int64_t last_modified = context.now - static_cast<int64_t>(lm.value_or(0));
  last_modified -= ((last_modified % 3600) + 3600) % 3600;
  if (lm) r.headers.add("Last-Modified", http_date(last_modified));
  if (expires) r.headers.add("Expires", *expires);
  if (date) r.headers.add("Date", http_date(context.now + *date));
  r.headers.add("X-Count", std::to_string(context.count));
  for (const EchoedField& echoed : kEchoedFields) {
    if (auto value = joined_fields(head.headers, echoed.request_name, echoed.separator))
      r.headers.add(echoed.response_name, *value);
  }

  // Only a plain 200 is validated: a test that sets another status wants that status back.
  if ((head.method == "GET" || head.is_head()) && r.status == 200) {
    const auto etag = query_get(q, "etag");
    bool not_modified = false;
    if (auto inm = joined_fields(head.headers, "If-None-Match", ", ")) {
      not_modified = etag && if_none_match_matches(*inm, *etag);
    } else if (auto ims = head.headers.get("If-Modified-Since"); ims && lm) {
      const auto since = http::parse_http_date(*ims);
      not_modified = since && *since >= last_modified;
    }
    if (not_modified) {
      r.status = 304;
      return r;
    }
  }

  if (!status_has_body(r.status)) return r;
  if (size) {
    r.generated = true;
    r.generated_bytes = *size;
    if (query_get(q, "ranges") && head.method == "GET" && r.status == 200) answer_range(head, q, r);
    r.chunked = chunk.has_value();
    r.chunk_size = chunk.value_or(0);
    return r;
  }
  if (auto body = query_get(q, "body")) {
    r.body.assign(*body);
    return r;
  }
  if (query_get(q, "include_self")) {
    // A template that includes itself: what an edge's loop detection must stop.
    r.body.append("self:<esi:include src=\"").append(head.target).append("\"/>");
    return r;
  }
  // A HEAD announces the length of the GET's body, so its text names GET.
  const std::string_view method = head.is_head() ? std::string_view("GET") : std::string_view(head.method);
  r.body.append(context.name).append(" ").append(method).append(" ").append(head.target);
  r.body.append(" ").append(std::to_string(context.count)).append("\n");
  return r;
}

}  // namespace

Reply cache_reply(const http::RequestHead& head, const QueryParams& q, const RouteContext& context) {
  std::optional<compress::Coding> coding;
  if (auto name = query_get(q, "coded")) {
    coding = compress::parse_coding(*name);
    if (!coding || coding == compress::Coding::kIdentity) return bad_request("coded must be br, zstd or gzip");
  }
  Reply r = uncoded_reply(head, q, context);
  if (!coding || r.kind != Reply::Kind::kRespond || r.status == 400) return r;
  if (r.generated) {
    if (r.generated_bytes > kMaxCodedBytes) return bad_request("coded takes a size of at most 16777216");
    r.body.clear();
    for (uint64_t i = 0; i < r.generated_bytes; ++i) r.body.push_back(pattern_byte(r.generated_offset + i));
    r.generated = false;
    r.chunked = false;
  }
  std::optional<std::string> encoded = compress::encode_all(*coding, 6, r.body);
  if (!encoded) return text_reply(500, "encoding failed\n");
  r.body = std::move(*encoded);
  r.headers.add("Content-Encoding", compress::coding_name(*coding));
  return r;
}

Reply count_reply(const QueryParams& q, const RouteContext& context) {
  const auto url = query_get(q, "url");
  if (!url) return bad_request("missing url");
  const uint64_t count = context.counts ? context.counts->get(*url) : 0;
  return text_reply(200, std::to_string(count) + "\n");
}

}  // namespace edge::app
