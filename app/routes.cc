#include "app/routes.h"

#include <algorithm>
#include <array>

#include "app/assets.h"
#include "app/cache_route.h"
#include "app/demo_site.h"
#include "app/json.h"
#include "app/query.h"
#include "app/websocket.h"

namespace edge::app {

namespace {
// 64 KiB plus one period, so any offset's view of up to 64 KiB is contiguous.
const std::array<char, kMaxChunkBytes + 26> kPattern = [] {
  std::array<char, kMaxChunkBytes + 26> p{};
  for (size_t i = 0; i < p.size(); ++i) p[i] = pattern_byte(i);
  return p;
}();

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool valid_field_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!is_token_char(c)) return false;
  return true;
}

Reply json_reply(std::string body) {
  Reply r;
  r.headers.add("Content-Type", "application/json");
  r.headers.add("Cache-Control", "no-store");
  r.body = std::move(body);
  return r;
}

// The ms=N parameter of /wait, /slowhead and /cpu.
std::optional<uint64_t> ms_param(const QueryParams& q, uint64_t max) {
  auto text = query_get(q, "ms");
  if (!text) return std::nullopt;
  return parse_uint(*text, max);
}

Reply static_reply(const http::RequestHead& head, std::string_view name, AssetCache* cache) {
  std::optional<Asset> fresh;
  const Asset* asset = nullptr;
  if (cache) {
    asset = cache->get(name);
  } else if ((fresh = make_asset(name))) {
    asset = &*fresh;
  }
  if (!asset) return text_reply(404, "not found\n");
  Reply r;
  auto inm = head.headers.get("If-None-Match");
  const bool not_modified = inm && if_none_match_matches(*inm, asset->etag);
  r.status = not_modified ? 304 : 200;
  r.headers.add("Content-Type", asset->content_type);
  r.headers.add("Cache-Control", kAssetCacheControl);
  r.headers.add("ETag", asset->etag);
  r.headers.add("Last-Modified", kAssetLastModified);
  if (!not_modified) r.body = asset->body;
  return r;
}

Reply headers_reply(const QueryParams& q) {
  Reply r = text_reply(200, "headers\n");
  for (const auto& [name, value] : q) {
    if (!valid_field_name(name)) return bad_request("header name is not a token");
    if (!valid_field_value(value)) return bad_request("header value has CR, LF or NUL");
    if (http::iequals(name, "Content-Length") || http::iequals(name, "Transfer-Encoding"))
      return bad_request("the server frames the body itself");
    r.headers.add(name, value);
  }
  return r;
}
}  // namespace

std::string_view pattern_view(uint64_t offset, size_t len) {
  if (len > kMaxChunkBytes) len = kMaxChunkBytes;
  return {kPattern.data() + offset % 26, len};
}

bool status_has_body(int status) { return status >= 200 && status != 204 && status != 304; }

Reply text_reply(int status, std::string body) {
  Reply r;
  r.status = status;
  r.headers.add("Content-Type", "text/plain; charset=utf-8");
  r.headers.add("Cache-Control", "no-store");
  if (status_has_body(status)) r.body = std::move(body);
  return r;
}

Reply bad_request(std::string_view why) {
  std::string body = "bad request: ";
  body.append(why);
  body.push_back('\n');
  return text_reply(400, std::move(body));
}

bool valid_field_value(std::string_view value) {
  for (char c : value)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

uint64_t RequestCounts::add(std::string_view target) {
  if (auto it = counts_.find(target); it != counts_.end()) return ++it->second;
  if (counts_.size() >= max_targets_) return 0;
  counts_.emplace(std::string(target), 1);
  return 1;
}

uint64_t RequestCounts::get(std::string_view target) const {
  auto it = counts_.find(target);
  return it == counts_.end() ? 0 : it->second;
}

size_t demo_kind(std::string_view path) {
  // Compared in place, without building a name: this runs for every request the server reads.
  auto index = [](std::string_view prefix, std::string_view name) {
    for (size_t i = 0; i < kDemoKinds.size(); ++i)
      if (kDemoKinds[i].size() == prefix.size() + name.size() && kDemoKinds[i].starts_with(prefix) &&
          kDemoKinds[i].ends_with(name))
        return i;
    return kDemoKinds.size();
  };
  if (path == "/") return index("", "home");
  if (path == "/login") return index("", "login");
  if (path == "/logout") return index("", "logout");
  if (path.starts_with("/book/")) return index("", path.ends_with("/reviews") ? "review_post" : "book");
  if (path.starts_with("/author/")) return index("", "author");
  if (path.starts_with("/tag/")) return index("", "tag");
  if (path == "/search") return index("", "search");
  if (path.starts_with("/fragments/")) {
    const std::string_view rest = path.substr(11);
    return index("fragment/", rest.substr(0, rest.find('/')));
  }
  return kDemoKinds.size();
}

bool counts_request(std::string_view target) { return target.substr(0, target.find('?')) != "/count"; }

Reply route(const http::RequestHead& head, const http::Body& body, const RouteContext& context) {
  const Stats& stats = context.stats;
  const std::string_view path = head.path();
  std::optional<QueryParams> parsed = parse_query(query_of(head.target));
  if (!parsed) return bad_request("malformed query string");
  const QueryParams& q = *parsed;

  if (context.demo) {
    if (std::optional<Reply> page = context.demo->handle(head, body, context.now)) return std::move(*page);
  }

  if (path == "/health") return text_reply(200, "ok\n");
  if (path == "/echo") return json_reply(echo_json(head, body));
  if (path == "/stats") {
    NamedCounts demo;
    for (size_t i = 0; i < kDemoKinds.size(); ++i)
      if (stats.demo[i] > 0) demo.emplace_back(kDemoKinds[i], stats.demo[i]);
    return json_reply(stats_json(context.name, stats.received, stats.served, stats.in_progress, stats.peak_in_progress,
                                 stats.websockets, stats.websockets_opened, demo));
  }
  if (path == "/ws") return ws::handshake_reply(head, q, body);

  if (path == "/bytes" || path == "/chunked") {
    auto text = query_get(q, "n");
    if (!text) return bad_request("missing n");
    auto n = parse_uint(*text, kMaxPatternBytes);
    if (!n) return bad_request("n must be a number from 0 to 1073741824");
    Reply r;
    r.headers.add("Content-Type", "application/octet-stream");
    r.headers.add("Cache-Control", "no-store");
    r.generated = true;
    r.generated_bytes = *n;
    if (path == "/chunked") {
      r.chunked = true;
      r.chunk_size = *n == 0 ? 1 : std::min<uint64_t>((*n + 3) / 4, kMaxChunkBytes);
      if (auto chunk = query_get(q, "chunk")) {
        auto k = parse_uint(*chunk, kMaxChunkBytes);
        if (!k || *k == 0) return bad_request("chunk must be a number from 1 to 65536");
        r.chunk_size = *k;
      }
    }
    return r;
  }

  if (path == "/wait" || path == "/slowhead") {
    auto ms = ms_param(q, kMaxWaitMs);
    if (!ms) return bad_request("ms must be a number from 0 to 600000");
    Reply r = text_reply(200, "waited " + std::to_string(*ms) + " ms\n");
    r.delay_ms = *ms;
    return r;
  }

  if (path == "/cpu") {
    auto ms = ms_param(q, kMaxCpuMs);
    if (!ms) return bad_request("ms must be a number from 0 to 60000");
    Reply r = text_reply(200, "burned " + std::to_string(*ms) + " ms\n");
    r.cpu_ms = *ms;
    return r;
  }

  if (path.substr(0, 8) == "/static/") return static_reply(head, path.substr(8), context.assets);

  if (path == "/status") {
    auto text = query_get(q, "code");
    auto code = text ? parse_uint(*text, 599) : std::nullopt;
    if (!code || *code < 200) return bad_request("code must be a number from 200 to 599");
    return text_reply(static_cast<int>(*code), "status " + std::to_string(*code) + "\n");
  }

  if (path == "/headers") return headers_reply(q);

  if (path == "/cache" || path.substr(0, 7) == "/cache/") return cache_reply(head, q, context);
  if (path == "/count") return count_reply(q, context);

  if (path == "/close") {
    Reply r;
    r.kind = Reply::Kind::kDrop;
    return r;
  }
  if (path == "/garbage") {
    Reply r;
    r.kind = Reply::Kind::kRaw;
    r.body = "this is not http\r\n\r\n";
    return r;
  }
  if (path == "/truncate") {
    Reply r;
    r.headers.add("Content-Type", "application/octet-stream");
    r.generated = true;
    r.generated_bytes = 10;
    r.declared_length = 1000;
    r.close = true;
    return r;
  }

  return text_reply(404, "not found\n");
}

std::string format_head(const Reply& reply, const Framing& framing) {
  std::string out;
  out.reserve(160 + reply.headers.arena_bytes() + 4 * reply.headers.size());
  out += "HTTP/1.1 ";
  out += std::to_string(reply.status);
  out.push_back(' ');
  // The shared table has only the statuses a proxy answers with; /ws answers 101 too.
  out += reply.status == 101 ? std::string_view("Switching Protocols") : http::reason_phrase(reply.status);
  out += "\r\n";
  if (!reply.headers.get("Date")) {
    out += "Date: ";
    out += framing.date;
    out += "\r\n";
  }
  out += "X-Backend: ";
  out += framing.backend;
  out += "\r\n";
  bool own_connection = false;
  for (size_t i = 0; i < reply.headers.size(); ++i) {
    if (http::iequals(reply.headers.name(i), "Connection")) own_connection = true;
    out += reply.headers.name(i);
    out += ": ";
    out += reply.headers.value(i);
    out += "\r\n";
  }
  if (framing.chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (framing.content_length) {
    out += "Content-Length: ";
    out += std::to_string(*framing.content_length);
    out += "\r\n";
  }
  if (!own_connection) {
    if (framing.close)
      out += "Connection: close\r\n";
    else if (framing.keep_alive)
      out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  return out;
}

}  // namespace edge::app
