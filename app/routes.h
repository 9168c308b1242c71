// app/routes: what the app server answers to each request, as a plain description (Reply) that
// the server then carries out on the socket. Pure: no I/O, no clock, no loop, so every endpoint's
// decision is unit-testable.
//
// Endpoints (any method; bodies are read and, except by /echo, ignored):
//   /health                 200 "ok\n"
//   /echo                   200, the request head and body as JSON (see app/json.h)
//   /stats                  200, {"name","received","served","in_progress","peak_in_progress"},
//                           and "websockets","websockets_opened" once any was, and "demo":
//                           requests received by demo kind (below) once any was (app/json.h)
//   /bytes?n=N              N bytes of the pattern below (N <= 1 GiB)
//   /wait?ms=N              200 "waited N ms\n" after N ms, without blocking the loop (N <= 10 min);
//                           a client that leaves meanwhile is noticed only then (the request
//                           stays in progress, as with a worker busy with it)
//   /slowhead?ms=N          the same as /wait: nothing at all is sent for N ms
//   /cpu?ms=N               200 "burned N ms\n" after N ms of busy CPU on the loop (N <= 60 s)
//   /static/<name>.css|js|png   generated assets (app/assets.h); If-None-Match -> 304
//   /status?code=N          status N (200..599) with body "status N\n" (none for 204 and 304)
//   /headers?Name=value&... 200 "headers\n" with those response fields added (Connection,
//                           Keep-Alive, X-Foo, ...); Content-Length and Transfer-Encoding refused
//   /chunked?n=N[&chunk=K]  N pattern bytes with chunked coding, K bytes a chunk (default n/4
//                           rounded up, at most 64 KiB), so several chunks
//   /close                  closes the connection without answering
//   /garbage                writes "this is not http\r\n\r\n" and closes
//   /truncate               announces Content-Length: 1000, sends 10 bytes, closes
//   /cache/<anything>       a response whose caching headers the query chooses, answering
//                           conditional requests with 304 (app/cache_route.h has the parameters)
//   /count?url=T            200 "N\n": how many requests for target T (percent-encoded) the
//                           server has received (RequestCounts below)
//   /ws[?close_after=N&greeting=T]  a WebSocket echo: the opening handshake (101, or 400/426
//                           when it is not a valid one) and then the echo (app/websocket.h)
//   the demo site           /, /book/, /author/, /tag/, /fragments/, /login, /logout and the
//                           demo stylesheet under /static/, when the context lends a DemoSite
//                           (app/demo_site.h; it changes that site's state, and nothing else)
//   anything else           404
// A bad or missing parameter gives 400.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "app/assets.h"
#include "http/body.h"
#include "http/message.h"

namespace edge::app {

class DemoSite;

inline constexpr uint64_t kMaxPatternBytes = 1ull << 30;  // /bytes and /chunked
inline constexpr uint64_t kMaxChunkBytes = 64 * 1024;
inline constexpr uint64_t kMaxWaitMs = 10 * 60 * 1000;
inline constexpr uint64_t kMaxCpuMs = 60 * 1000;

// The generated body of /bytes, /chunked and /truncate: byte i is 'a' + i % 26.
inline char pattern_byte(uint64_t i) { return static_cast<char>('a' + i % 26); }
// `len` (at most kMaxChunkBytes) pattern bytes starting at absolute offset `offset`, as a view of
// static storage.
std::string_view pattern_view(uint64_t offset, size_t len);

// The server's counters, as /stats reports them. A request is in progress from the moment its
// head is parsed until its response has been fully written (or its connection closed); served
// counts responses fully written (/garbage and /truncate count; /close, which answers nothing,
// does not). /stats reports the counters as they are while it runs, so it counts itself in
// in_progress (and in the peak) and not yet in served. received counts every request head,
// including those answered by closing: what reached the server, whatever came of it.
// A WebSocket's opening handshake is a request like any other: in progress until its 101 is
// written, then served. From then on the connection is counted in `websockets` (open now) until
// it closes, never in in_progress; websockets_opened counts every 101 written on a connection
// that went on to speak WebSocket.
// The demo site's kinds of request, by path (whatever the method and the answer): pages, the
// review form's post, login and logout, and each fragment. /stats counts them, so a load run
// (load/) can divide what reached the app servers by what its pages used at the edge.
inline constexpr std::array<std::string_view, 18> kDemoKinds = {
    "home", "book", "author", "tag", "search", "review_post", "login", "logout", "fragment/userbar", "fragment/book",
    "fragment/reviews", "fragment/view", "fragment/author", "fragment/tag", "fragment/tagcloud", "fragment/picks",
    "fragment/mostviewed", "fragment/search"};
// The index in kDemoKinds of a request for `path`, or kDemoKinds.size() when it is not one.
size_t demo_kind(std::string_view path);

struct Stats {
  uint64_t received = 0;  // request heads parsed, answered or not
  uint64_t served = 0;
  uint64_t in_progress = 0;
  uint64_t peak_in_progress = 0;
  uint64_t websockets = 0;
  uint64_t websockets_opened = 0;
  std::array<uint64_t, kDemoKinds.size()> demo{};  // received, by demo_kind()
};

// Requests received per target, keyed by the target exactly as received (path and query), so a
// test can tell whether a request reached the backend or was answered by a cache. Bounded: once
// it holds max_targets distinct targets, a new target is not added (and reads as 0), while those
// already held go on counting.
inline constexpr size_t kMaxCountedTargets = 100000;

class RequestCounts {
 public:
  explicit RequestCounts(size_t max_targets = kMaxCountedTargets) : max_targets_(max_targets) {}
  // Counts one request for `target`; returns its count including this one, or 0 when the target
  // is new and the table is full.
  uint64_t add(std::string_view target);
  uint64_t get(std::string_view target) const;  // 0 for a target never counted
  size_t size() const { return counts_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  size_t max_targets_;
  std::unordered_map<std::string, uint64_t, Hash, std::equal_to<>> counts_;
};

// Whether a request for `target` is counted in RequestCounts: every one but those for /count.
bool counts_request(std::string_view target);

struct Reply {
  enum class Kind {
    kRespond,  // a response as described below
    kDrop,     // close the connection at once, answering nothing
    kRaw,      // write `body` as raw bytes (no head at all), then close
    // write the head of `status` (101) with `headers` and no body; once it is written the
    // connection speaks WebSocket (app/websocket.h), with the ws_ parameters below
    kWebSocket,
  };
  Kind kind = Kind::kRespond;
  int status = 200;
  // Fields beyond the ones the server always writes itself (Date, X-Backend, Content-Length or
  // Transfer-Encoding, and Connection unless this has one).
  http::Headers headers;
  std::string body;
  // Instead of `body`: this many pattern bytes, produced as they are written.
  bool generated = false;
  uint64_t generated_bytes = 0;
  uint64_t generated_offset = 0;  // the pattern offset of the first byte (a range of it)
  // Chunked transfer coding in chunks of chunk_size bytes (HTTP/1.1 clients only; an HTTP/1.0
  // client gets the same bytes with a Content-Length).
  bool chunked = false;
  uint64_t chunk_size = 0;
  // Content-Length to announce instead of the real size (/truncate); implies close.
  std::optional<uint64_t> declared_length;
  uint64_t delay_ms = 0;  // answer after this long, on a timer
  // Non-zero: held first until this many requests for the same target are held together, or
  // gather_ms have passed; the answer then says how many were (X-Gathered). app/cache_route.h.
  uint32_t gather = 0;
  uint64_t gather_ms = 0;
  uint64_t cpu_ms = 0;    // busy-loop this long before answering
  bool close = false;     // close the connection after this response
  // Non-empty: purge this Surrogate-Key tag at the edge's admin port (app/admin_client.h) and
  // answer once the purge has answered or failed. A server without an admin port answers at once.
  std::string purge_tag;
  // kWebSocket: the session's close_after (0: never) and the greeting sent after the 101.
  uint64_t ws_close_after = 0;
  std::optional<std::string> ws_greeting;

  uint64_t body_size() const { return generated ? generated_bytes : body.size(); }
};

// What route() needs besides the request.
struct RouteContext {
  std::string_view name;                  // the server's --name (for /stats and /cache)
  Stats stats;                            // the counters as they are now (for /stats)
  AssetCache* assets = nullptr;           // null: every /static request generates its asset afresh
  const RequestCounts* counts = nullptr;  // for /count; null: every target reads 0
  uint64_t count = 0;                     // this request's own count in RequestCounts (for /cache)
  int64_t now = 0;                        // the current Unix time (for /cache's dates)
  DemoSite* demo = nullptr;               // null: the demo's paths are 404 like any other
};

Reply route(const http::RequestHead& head, const http::Body& body, const RouteContext& context);

// A plain-text response with the given status and body (error answers too).
Reply text_reply(int status, std::string body);
// 400 with the body "bad request: <why>\n".
Reply bad_request(std::string_view why);
// Whether a response field value can be written as it is: no CR, LF or NUL.
bool valid_field_value(std::string_view value);

// Statuses whose responses never have a body: 1xx, 204, 304.
bool status_has_body(int status);

// How the server frames a response: these decide the fields the server writes itself.
struct Framing {
  std::string_view date;     // an HTTP date (http::format_http_date)
  std::string_view backend;  // the X-Backend value
  bool close = false;        // "Connection: close"
  bool keep_alive = false;   // "Connection: keep-alive" (an HTTP/1.0 client that asked for it)
  bool chunked = false;      // "Transfer-Encoding: chunked"
  std::optional<uint64_t> content_length;
};

// "HTTP/1.1 <status> <reason>\r\n" + Date + X-Backend + reply.headers in order + framing fields
// + "\r\n". A Date or Connection field in reply.headers replaces the server's own.
std::string format_head(const Reply& reply, const Framing& framing);

}  // namespace edge::app
