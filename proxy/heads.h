// proxy/heads: every message head edge writes, in both directions, built here and nowhere else.
//
// Towards clients, build_response_head() writes the head of every delivery (and
// build_interim_head() a backend's 1xx relayed ahead of it): a response passed
// through from a backend, a stored object (whole, 304, 206 or 416), an assembled page, and an
// answer edge makes itself (errors, the admin port's replies). What each kind keeps of its
// fields, and what edge adds (Date when absent, Age, Via, X-Cache, the framing and Connection),
// is decided in one function, so a rule about response fields has one place to live.
//
// Towards backends, build_upstream_head() writes the request head of a pass-through and of a
// cache fill: hop-by-hop fields dropped, the canonical identity in the request line and Host,
// X-Forwarded-For/Proto/Host and Via added, a fill's validators, the body's Content-Length.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cache/store.h"
#include "conf/config.h"
#include "http/message.h"

namespace edge::proxy {

inline void append_number(std::string& out, uint64_t n) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

inline void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

inline bool response_has_body(int status, bool head_request) {
  return !(head_request || status == 204 || status == 304 || (status >= 100 && status < 200));
}

// The answer to a connection over max_connections, written before any request is read. (The
// interim 100 Continue is the connection core's: http/server_conn.)
inline constexpr std::string_view kOverloadedAnswer =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n";

// Where a response's fields come from, which decides what of them is relayed and what is added.
enum class ResponseOrigin {
  kBackend,    // passed through: hop-by-hop fields, Content-Length and Surrogate-Control dropped
  kStored,     // a stored object's fields, as stored; Age added
  kAssembled,  // a page assembled from a stored template: the template's validators dropped
  kSynthetic,  // an answer edge makes itself: Content-Type and Cache-Control from the spec only
};

struct ResponseSpec {
  int status = 200;
  std::string_view reason;  // "" : the canonical phrase
  ResponseOrigin origin = ResponseOrigin::kSynthetic;
  const http::Headers* fields = nullptr;  // kBackend, kStored, kAssembled
  std::optional<cache::Seconds> age;      // kStored: the Age field
  std::string_view x_cache;               // "" : no X-Cache field
  std::string_view trace;                 // "" : no X-Edge-Trace field
  std::string_view content_type;          // kSynthetic
  bool no_store = false;                  // kSynthetic: Cache-Control: no-store
  std::string_view extra_fields;          // whole field lines (Content-Range, Retry-After, ...)
  // kBackend, kStored, kAssembled: the targeted fields edge obeys (cache/targeted.h) are left
  // out: CDN-Cache-Control and `targeted_field` (cache.targeted_field; "" none).
  bool drop_targeted = false;
  std::string_view targeted_field;
  // A content coding edge applied (compress/): Content-Encoding names it (a backend's own
  // Content-Encoding field is left out). With weak_etag a strong ETag is sent weak, since the
  // bytes are not the origin's (RFC 9110 8.8.3): set with a coding, and alone on a 304 for a
  // representation edge would send coded (a 304 names no Content-Encoding, which a client's
  // cache would copy onto what it holds).
  std::string_view content_coding;
  bool weak_etag = false;
  // The response is one edge compresses for clients that accept it: Vary names Accept-Encoding
  // (added unless the fields' Vary already names it or is `*`).
  bool vary_accept_encoding = false;
  // Framing: whether a body follows the head, and its length when known. A body of unknown
  // length is chunked (HTTP/1.1) or ends with the connection (HTTP/1.0). With
  // `length_without_body`, a head without a body still declares `length` (HEAD, 304, 416).
  bool has_body = false;
  std::optional<uint64_t> length;
  bool length_without_body = false;
};

// The client's side of the framing: its HTTP version and whether the connection may stay open.
struct ClientFraming {
  bool http10 = false;
  bool keep_alive = true;
  bool h2 = false;  // an HTTP/2 stream: no chunked coding, no Connection field
};

// How the response goes out once its head is written.
struct ResponseFraming {
  bool chunked = false;
  bool keep_alive = true;  // false: the connection closes after this response
};

// Writes the whole head (status line to the empty line) into `out`, replacing what it held.
// `date` is the current HTTP date, used when the fields carry none. For an HTTP/2 stream with
// `index`, names are written lower-case, connection-specific fields left out, and `index` says
// where each field lies (cleared otherwise).
ResponseFraming build_response_head(std::string& out, const ResponseSpec& spec, ClientFraming client,
                                    std::string_view date, http::HeadIndex* index = nullptr);

// An interim response's head (103 Early Hints, 102) as relayed to an HTTP/1.1 client: its
// status line and fields, without the hop-by-hop ones and framing.
std::string build_interim_head(const http::ResponseHead& interim);

// The upstream head for a request (pass-through, or a GET for the cache with the client's
// conditions and ranges left out and `validators`' added). With `no_accept_encoding` the client's
// Accept-Encoding is left out: a fill for a route whose codings edge makes itself. `upgrade`:
// the protocol the request switches to (a tunnel), sent as Upgrade with Connection: upgrade.
void build_upstream_head(std::string& out, const http::RequestHead& head, std::string_view authority,
                         std::string_view origin_target, std::string_view client_ip, bool https, uint64_t body_size,
                         const conf::Config& config, int backend, bool for_cache, const cache::CachedObject* validators,
                         bool no_accept_encoding = false, std::string_view upgrade = {});
// If-None-Match / If-Modified-Since from a stored response's validators (RFC 9111 4.3.1).
void append_validators(std::string& out, const cache::CachedObject& stored);

}  // namespace edge::proxy
