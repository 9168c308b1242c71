#include "proxy/heads.h"

#include <algorithm>
#include <cstring>

#include "cache/targeted.h"

namespace edge::proxy {

namespace {
using http::iequals;

bool relayed(const ResponseSpec& spec, const http::Headers& fields, size_t i) {
  if (spec.drop_targeted && spec.origin != ResponseOrigin::kSynthetic) {
    const std::string_view name = fields.name(i);
    if (iequals(name, cache::kCdnCacheControl) || (!spec.targeted_field.empty() && iequals(name, spec.targeted_field)))
      return false;
  }
  switch (spec.origin) {
    case ResponseOrigin::kBackend: {
      const http::FieldId id = fields.id(i);
      if (http::is_hop_by_hop(id) || id == http::FieldId::kContentLength) return false;
      return !iequals(fields.name(i), "Surrogate-Control");  // addressed to us, not to the client
    }
    case ResponseOrigin::kAssembled: {
      // The template's validators are not the assembled page's.
      const std::string_view name = fields.name(i);
      return !(iequals(name, "ETag") || iequals(name, "Last-Modified") || iequals(name, "Content-MD5"));
    }
    case ResponseOrigin::kStored:
    case ResponseOrigin::kSynthetic:
      return true;
  }
  return true;
}

// The client's own conditions and ranges, which a fetch for the cache leaves out: the cache wants
// the whole response, and answers the conditions and ranges itself.
bool conditional_field(std::string_view name) {
  return iequals(name, "If-None-Match") || iequals(name, "If-Modified-Since") || iequals(name, "If-Match") ||
         iequals(name, "If-Unmodified-Since") || iequals(name, "If-Range") || iequals(name, "Range");
}
}  // namespace

std::string build_interim_head(const http::ResponseHead& interim) {
  std::string out = "HTTP/1.1 ";
  append_number(out, static_cast<uint64_t>(interim.status));
  out.append(" ");
  out.append(interim.reason.empty() ? http::reason_phrase(interim.status) : std::string_view(interim.reason));
  out.append("\r\n");
  for (size_t i = 0; i < interim.headers.size(); ++i) {
    const http::FieldId id = interim.headers.id(i);
    if (http::is_hop_by_hop(id) || id == http::FieldId::kContentLength) continue;
    append_field(out, interim.headers.name(i), interim.headers.value(i));
  }
  out.append("\r\n");
  return out;
}

namespace {

// The fields HTTP/2 has no place for (RFC 9113 8.2.2).
bool connection_specific(http::FieldId id) {
  return id == http::FieldId::kConnection || id == http::FieldId::kKeepAlive ||
         id == http::FieldId::kProxyConnection || id == http::FieldId::kTransferEncoding ||
         id == http::FieldId::kUpgrade;
}

// Appends field lines to a head; for an HTTP/2 stream with an index, names lower-case and each
// field's place recorded.
struct HeadWriter {
  std::string& out;
  http::HeadIndex* index;

  // One resize and plain copies: a head is a dozen of these per response.
  void field(std::string_view name, std::string_view value, std::string_view value_prefix = {}) {
    const size_t at = out.size();
    const size_t value_at = at + name.size() + 2;
    const size_t value_len = value_prefix.size() + value.size();
    out.resize(value_at + value_len + 2);
    char* p = out.data();
    std::memcpy(p + at, name.data(), name.size());
    p[value_at - 2] = ':';
    p[value_at - 1] = ' ';
    if (!value_prefix.empty()) std::memcpy(p + value_at, value_prefix.data(), value_prefix.size());
    if (!value.empty()) std::memcpy(p + value_at + value_prefix.size(), value.data(), value.size());
    p[value_at + value_len] = '\r';
    p[value_at + value_len + 1] = '\n';
    if (!index) return;
    for (size_t i = at; i < at + name.size(); ++i)
      p[i] = static_cast<char>(p[i] | (static_cast<unsigned char>(p[i] - 'A') < 26) << 5);
    index->fields.push_back({static_cast<uint32_t>(at), static_cast<uint32_t>(name.size()),
                             static_cast<uint32_t>(value_at), static_cast<uint32_t>(value_len)});
  }
  void number(std::string_view name, uint64_t n) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
    field(name, std::string_view(digits, static_cast<size_t>(end - digits)));
  }
  // Whole field lines ("Name: value\r\n"...), as a spec's extra_fields carries them.
  void lines(std::string_view text) {
    if (!index) {
      out.append(text);
      return;
    }
    while (!text.empty()) {
      const size_t end = text.find("\r\n");
      const std::string_view line = text.substr(0, end);
      text.remove_prefix(end == std::string_view::npos ? text.size() : end + 2);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) continue;
      if (!connection_specific(http::field_id(line.substr(0, colon))))
        field(line.substr(0, colon), http::trim(line.substr(colon + 1)));
    }
  }
};

}  // namespace

ResponseFraming build_response_head(std::string& out, const ResponseSpec& spec, ClientFraming client,
                                    std::string_view date, http::HeadIndex* index) {
  out.clear();
  if (index) index->clear();
  if (!client.h2) index = nullptr;
  HeadWriter head{out, index};
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<uint64_t>(spec.status));
  out.append(" ");
  out.append(spec.reason.empty() ? http::reason_phrase(spec.status) : spec.reason);
  out.append("\r\n");

  bool has_date = false;
  bool varies_by_encoding = false;
  if (spec.fields) {
    const http::Headers& fields = *spec.fields;
    for (size_t i = 0; i < fields.size(); ++i) {
      if (!relayed(spec, fields, i)) continue;
      const std::string_view name = fields.name(i);
      const std::string_view value = fields.value(i);
      const http::FieldId id = fields.id(i);
      if (id == http::FieldId::kDate) has_date = true;
      if (index && connection_specific(id)) continue;
      if (!spec.content_coding.empty() && iequals(name, "Content-Encoding")) continue;
      if (spec.weak_etag && iequals(name, "ETag") && value.starts_with('"')) {
        head.field(name, value, "W/");
        continue;
      }
      if (spec.vary_accept_encoding && iequals(name, "Vary")) {
        http::for_each_token(value, [&](std::string_view member) {
          if (iequals(member, "Accept-Encoding") || member == "*") varies_by_encoding = true;
        });
      }
      head.field(name, value);
    }
  }
  if (!has_date) head.field("Date", date);
  if (spec.vary_accept_encoding && !varies_by_encoding) head.field("Vary", "Accept-Encoding");
  if (!spec.content_coding.empty()) head.field("Content-Encoding", spec.content_coding);
  if (spec.origin == ResponseOrigin::kSynthetic) {
    if (!spec.content_type.empty()) head.field("Content-Type", spec.content_type);
    if (spec.no_store) head.field("Cache-Control", "no-store");
  } else {
    if (spec.age) head.number("Age", static_cast<uint64_t>(std::max<cache::Seconds>(0, *spec.age)));
    head.field("Via", client.h2 ? "2 edge" : "1.1 edge");
  }
  if (!spec.x_cache.empty()) head.field("X-Cache", spec.x_cache);
  if (!spec.trace.empty()) head.field("X-Edge-Trace", spec.trace);
  head.lines(spec.extra_fields);

  ResponseFraming framing;
  framing.keep_alive = client.keep_alive;
  if (spec.length && (spec.has_body || spec.length_without_body)) {
    head.number("Content-Length", *spec.length);
  } else if (spec.has_body && !spec.length && !client.h2) {
    if (client.http10)
      framing.keep_alive = false;  // the end of the body is the end of the connection
    else {
      out.append("Transfer-Encoding: chunked\r\n");
      framing.chunked = true;
    }
  }
  if (client.h2)
    ;  // HTTP/2 frames its messages itself and has no Connection field
  else if (!framing.keep_alive)
    out.append("Connection: close\r\n");
  else if (client.http10)
    out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
  if (index) index->size = static_cast<uint32_t>(out.size());
  return framing;
}

void append_validators(std::string& out, const cache::CachedObject& stored) {
  if (auto etag = stored.headers.get("ETag")) append_field(out, "If-None-Match", *etag);
  if (auto modified = stored.headers.get("Last-Modified")) append_field(out, "If-Modified-Since", *modified);
}

void build_upstream_head(std::string& out, const http::RequestHead& head, std::string_view authority,
                         std::string_view origin_target, std::string_view client_ip, bool https, uint64_t body_size,
                         const conf::Config& config, int backend_index, bool for_cache,
                         const cache::CachedObject* validators, bool no_accept_encoding, std::string_view upgrade) {
  out.clear();
  out.append(for_cache ? std::string_view("GET") : std::string_view(head.method)).append(" ");
  out.append(origin_target.empty() ? head.target : origin_target);
  out.append(" HTTP/1.1\r\n");
  std::string_view forwarded_for;
  bool has_host = false;
  for (size_t i = 0; i < head.headers.size(); ++i) {
    const http::FieldId id = head.headers.id(i);
    std::string_view name = head.headers.name(i);
    if (http::is_hop_by_hop(id) || id == http::FieldId::kContentLength || id == http::FieldId::kExpect ||
        id == http::FieldId::kXForwardedProto || id == http::FieldId::kXForwardedHost ||
        (for_cache && conditional_field(name)) || (no_accept_encoding && iequals(name, "Accept-Encoding")))
      continue;
    if (id == http::FieldId::kXForwardedFor && forwarded_for.empty()) {
      // Several fields would confuse backends that read one: fold the first into ours.
      forwarded_for = head.headers.value(i);
      continue;
    }
    if (id == http::FieldId::kHost) {
      has_host = true;
      if (!authority.empty()) {
        append_field(out, name, authority);
        continue;
      }
    }
    append_field(out, name, head.headers.value(i));
  }
  if (!has_host) {
    const conf::Backend& backend = config.backends[static_cast<size_t>(backend_index)];
    append_field(out, "Host", authority.empty() ? backend.servers.front().address.text() : authority);
  }
  out.append("X-Forwarded-For: ");
  if (!forwarded_for.empty()) out.append(forwarded_for).append(", ");
  out.append(client_ip).append("\r\n");
  out.append(https ? std::string_view("X-Forwarded-Proto: https\r\n") : std::string_view("X-Forwarded-Proto: http\r\n"));
  // The host edge routed and keyed by, never one the client sent: what the backend reads here is
  // what the cache key describes.
  if (!authority.empty()) append_field(out, "X-Forwarded-Host", authority);
  out.append(head.http2() ? "Via: 2 edge\r\n" : head.http10() ? "Via: 1.0 edge\r\n" : "Via: 1.1 edge\r\n");
  if (validators) append_validators(out, *validators);
  if (!upgrade.empty()) {
    append_field(out, "Upgrade", upgrade);
    out.append("Connection: upgrade\r\n");
  }
  uint64_t body = body_size;
  if (for_cache) {
    out.append("\r\n");
    return;
  }
  if (body > 0 || head.chunked || head.content_length || head.method == "POST" || head.method == "PUT" ||
      head.method == "PATCH") {
    out.append("Content-Length: ");
    append_number(out, body);
    out.append("\r\n");
  }
  out.append("\r\n");
}

}  // namespace edge::proxy
