// conf: the edge's configuration, as plain structs, and the YAML loader that fills them.
//
// Contract:
// - load_file()/load_string() never throw. They return either a Config or a non-empty list of
//   errors, each with the position of the offending node (`file:line:col: message`, 1-based).
// - Unknown keys, wrong types, bad durations/sizes/addresses, a host or route naming a backend
//   that does not exist, and a host name matched by two entries are errors; nothing is guessed.
// - No other module includes yaml-cpp: everything it needs is in these structs.
//
// Units: durations take ms, s, m, h (`500ms`, `10s`, `5m`); sizes take k, m, g (powers of 1024,
// `16k`, `512m`); a bare integer is bytes for a size and is refused for a duration, but for a
// bare `0` where a duration's zero means "none" (ttl, max_ttl, grace, hit_for_pass).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compress/coding.h"

namespace edge::conf {

using Duration = std::chrono::milliseconds;

// Where a value came from, for errors that are found after loading (bind failures and the like).
struct Mark {
  std::string file;
  int line = 0;  // 1-based; 0 when unknown
  int col = 0;   // 1-based
};

// A numeric IPv4 or IPv6 address with a port: `127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`
// (localhost is 127.0.0.1). `*:8080` and `:8080` mean 0.0.0.0. Port 0 is allowed only where
// edge listens (`listen`, `admin.address`): the kernel picks a free port, which edge reports at
// start (proxy/server.h); such a listener never conflicts with another.
struct Address {
  std::string host;  // numeric, without brackets
  uint16_t port = 0;
  bool ipv6 = false;
  std::string text() const;  // host:port, with brackets for IPv6
  // The socket address, ready for bind() or connect(); `length` gets its size.
  sockaddr_storage to_sockaddr(socklen_t* length = nullptr) const;
};

// A certificate a TLS listener presents (`certificates:` list entry): a PEM chain (leaf first)
// and its private key, both paths relative to the configuration file's folder. The files are
// read and checked when edge builds its TLS contexts (tls/context.h), not by the loader.
struct TlsCertificate {
  std::string cert_file;  // `cert`: resolved path
  std::string key_file;   // `key`: resolved path
  // `names`: the SNI names it is chosen for, exact (lower case) or `*.domain`; empty: the
  // certificate's own subjectAltName DNS names (its CN when it has none).
  std::vector<std::string> names;
  bool is_default = false;  // `default: on`: for clients without SNI or with an unknown name
  Mark mark;                // the entry
  Mark cert_mark;           // the `cert` value
  Mark key_mark;            // the `key` value
};

enum class TlsVersion { k1_2, k1_3 };

// HTTPS on a listen entry (`tls:` map).
struct ListenTls {
  bool enabled = false;                      // the `tls` key is present
  std::vector<TlsCertificate> certificates;  // `certificates`: required, never empty
  TlsVersion min_version = TlsVersion::k1_2;  // `min_version: "1.2" | "1.3"`
  // `ciphers`: the TLS 1.2 cipher list, OpenSSL's syntax; empty: edge's default (ECDHE with
  // AES-GCM or ChaCha20-Poly1305 only). TLS 1.3's suites are OpenSSL's defaults.
  std::string ciphers;
  Mark ciphers_mark;
  // `alpn`: protocols offered in preference order, `h2` and `http/1.1`; both by default, h2 first.
  std::vector<std::string> alpn = {"h2", "http/1.1"};
  // `session_tickets: on|off`: resumption by tickets whose keys all workers share.
  bool session_tickets = true;
  // `ticket_rotation`: how long a ticket key encrypts new tickets; tickets stay valid for one
  // more period (so a ticket lives at most twice this). > 0.
  Duration ticket_rotation{std::chrono::hours(1)};
  Mark mark;  // the `tls` key
};

struct Listen {
  Address address;
  ListenTls tls;
  // `h2c: on`: a cleartext listener also takes HTTP/2 from clients that start with its preface
  // (prior knowledge, RFC 9113 3.3); off by default. A TLS listener offers h2 through `alpn`.
  bool h2c = false;
  Mark mark;
};

// HTTP/2 towards clients (top-level `http2:` map): what every HTTP/2 connection may hold.
struct Http2 {
  uint32_t max_concurrent_streams = 100;
  uint64_t max_header_list_size = 16 * 1024;   // decoded: name + value + 32 per field, else 431
  uint64_t max_frame_size = 16 * 1024;         // 16k to 16m - 1
  uint64_t initial_window_size = 256 * 1024;   // a stream's upload window, at most 2g - 1
  uint64_t connection_window_size = 1024 * 1024;  // the connection's, at least 64k - 1
  Duration idle_timeout{std::chrono::seconds(60)};    // no stream open
  Duration header_timeout{std::chrono::seconds(10)};  // one header block, from its first frame
};

struct Limits {
  Duration header_timeout{std::chrono::seconds(10)};  // whole request head, from its first byte
  Duration idle_timeout{std::chrono::seconds(60)};    // keep-alive wait for the next request
  Duration body_timeout{std::chrono::seconds(60)};    // longest silence while a body uploads
  Duration send_timeout{std::chrono::seconds(60)};    // longest a client may leave us unable to write
  uint64_t max_header_bytes = 16 * 1024;              // request line + headers, else 431
  uint64_t max_request_line = 8 * 1024;               // request line alone, else 414
  uint64_t max_body_bytes = 10 * 1024 * 1024;         // else 413
  uint64_t max_connections = 10000;                   // client connections, whole process
  uint64_t max_header_fields = 100;                   // fields in a request head, else 431
  // A request body must average at least this many bytes a second (408 and close), counted from
  // its first byte once upload_rate_grace has passed; 0: no minimum (body_timeout still holds).
  uint64_t min_upload_rate = 1024;
  Duration upload_rate_grace{std::chrono::seconds(10)};
  uint64_t buffer_memory = 1024 * 1024;  // per message in RAM before spilling to temp_dir
  std::string temp_dir = "/tmp";
  // Bytes in temp_dir: per response (past it the backend is read only as fast as the client
  // takes the response) and for the whole process (request bodies that cannot spill then fail);
  // 0: nothing goes to disk.
  uint64_t max_temp_file_size = 1024ull * 1024 * 1024;
  uint64_t max_temp_total = 4096ull * 1024 * 1024;
  // Client connections open at once from one address (an IPv6 client by its /64), all workers
  // together; past it a new connection is closed at accept. 0: no cap.
  uint64_t max_conns_per_client = 0;
  // Client addresses the rate limits track, all zones together; when full the least recently
  // seen is forgotten (a bucket that is full first). Read at start.
  uint64_t rate_limit_clients = 100000;
  // An upgraded connection (a WebSocket) with no byte either way for this long is closed.
  Duration tunnel_idle_timeout{std::chrono::minutes(5)};
};

struct Server {
  Address address;
  uint32_t weight = 1;     // 1..256: share of requests relative to the other servers
  uint32_t max_conns = 0;  // requests in flight at once on this server, all workers; 0: no limit
  Mark mark;
};

enum class Balance { kLeastConn, kRoundRobin };

// Where requests wait when every server is at max_conns.
struct Queue {
  uint32_t max = 1024;                         // waiting requests per backend; 0: no queue (503)
  Duration timeout{std::chrono::seconds(5)};   // longest wait, then 503 with Retry-After
};

// Active health checks: GET `path` on every server every `interval`.
struct Health {
  bool enabled = false;  // true when the `health` key is present
  std::string path = "/health";
  Duration interval{std::chrono::seconds(2)};
  Duration timeout{std::chrono::seconds(1)};
  uint32_t rise = 2;  // consecutive good checks to come back up
  uint32_t fall = 3;  // consecutive bad checks to go down
};

// Passive ejection: this many consecutive connect failures, resets or timeouts take a server
// out of rotation for `cooldown`; then it is tried again.
struct Eject {
  uint32_t failures = 3;  // 0: never eject
  Duration cooldown{std::chrono::seconds(10)};
};

struct Pool {
  uint64_t max_idle = 256;                          // idle keep-alive conns per server and worker
  Duration idle_timeout{std::chrono::seconds(30)};  // an idle conn older than this is closed
};

// TLS towards a backend's servers (`tls:` map on a backend).
struct BackendTls {
  bool enabled = false;  // the `tls` key is present
  bool verify = true;    // `verify: on|off`: the server's certificate chain and name are checked
  // `ca_file`: PEM certificates to trust, relative to the configuration; empty: the system's.
  std::string ca_file;
  Mark ca_mark;
  // `server_name`: sent as SNI and checked against the certificate; empty: the server's own
  // address is checked (an IP address against the certificate's IP entries) and no SNI is sent.
  std::string server_name;
  Mark mark;  // the `tls` key
};

struct Backend {
  std::string name;
  std::vector<Server> servers;  // never empty
  Balance balance = Balance::kLeastConn;
  Queue queue;
  Health health;
  Eject eject;
  Duration slow_start{0};  // a server that comes back ramps up over this long; 0: at once
  Duration connect_timeout{std::chrono::seconds(1)};
  Duration response_timeout{std::chrono::seconds(30)};  // request sent -> response complete
  Pool pool;
  BackendTls tls;
  Mark mark;
};

// How a host or route uses the cache. YAML keys on a host entry or a route, all optional:
//   cache: on|off            (on) GET and HEAD are looked up and stored; off: every request passes
//                            (on, off, true and false are taken for every switch)
//   ttl: 10m                 freshness for a storable response that gives none (0: none)
//   max_ttl: 24h             cap on any freshness lifetime (0: no cap); less than a non-zero ttl
//                            is an error
//   grace: 30s               how long past stale an object may still be served while it is
//                            refreshed in the background, or when the backend fails (0: only as
//                            stale-while-revalidate / stale-if-error allow)
//   store_set_cookie: true   store responses carrying Set-Cookie (false)
//   bypass_on_cookie: [name] a request carrying any of these cookies passes
//   key_cookies: [name]      these cookies' values join the cache key
//                            (cookie names are tokens, case-sensitive, without duplicates; one
//                            name may be given without brackets; `[]` clears the host's list)
//   key_scheme: on|off       (off) on: http and https requests have their own objects; off: the
//                            scheme is not part of the key (one object serves both)
//   esi: on|off              (off) on: ESI include tags in the backend's responses are processed
//                            (top-level `esi:` map, struct Esi, for the limits)
//   ram: on|off              (on) off: the RAM tier does not store this host's or route's objects
//                            (the memcached tier, when configured, still does)
//   static: memcached        GET and HEAD are answered from memcached without a backend; a miss
//                            goes to the backend and is written back (read-through). Needs
//                            cache.memcached; `memcached` is the only value
//   key: "{host}{path}"      the memcached key of a static host or route: text kept as it is and
//                            the placeholders {host}, {path}, {query}; needs `static` on the same
//                            entry, its host, or (on a host) one of its routes
// A route takes every key it does not set from its host entry (resolved by the loader).
enum class StaticSource { kNone, kMemcached };

struct CachePolicy {
  bool enabled = true;
  Duration ttl{0};
  Duration max_ttl{0};
  Duration grace{0};
  bool store_set_cookie = false;
  std::vector<std::string> bypass_on_cookie;
  std::vector<std::string> key_cookies;
  bool key_scheme = false;
  // `forward_targeted: on|off`: whether cache.targeted_field and CDN-Cache-Control reach clients
  // (RFC 9213 lets a cache remove the fields it obeys); off by default.
  bool forward_targeted = false;
  bool esi = false;
  bool ram = true;
  // `range_fetch_from: <size>|off`: on a miss, a request for one byte range starting at or past
  // this offset is fetched from the backend with that range, and the 206 stored as part of the
  // object (cache/partial.h); below it (or off), the whole response is fetched and stored, and
  // the range answered from it. Once part of an object is stored, what a request lacks is always
  // fetched by range. Default 1 MiB: a seek into a video does not wait for what precedes it.
  uint64_t range_fetch_from = 1024 * 1024;
  // `compress: on|off` or a map: {types: [media types], min_length: <size>, encodings: [br, zstd,
  // gzip] (preference order), level: {br: 0..11, zstd: 1..19, gzip: 1..9} for stored objects,
  // stream_level: {...} for responses compressed as they stream}. On by default (compress/coding.h
  // has the defaults); a map's keys override the host's one by one.
  compress::Rules compress;
  StaticSource static_source = StaticSource::kNone;
  std::string static_key = "{host}{path}";
  // Request fields removed before anything reads the request (the cache's Vary and directives,
  // the upstream head): fields a backend might act on that the cache key does not describe.
  // Given, the list replaces the default.
  std::vector<std::string> drop_request_fields = {"X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override",
                                                  "X-HTTP-Method", "X-Method-Override"};
};

// An address prefix (`10.0.0.0/8`, `2001:db8::/32`; a bare address is all of its bits).
struct Cidr {
  std::array<uint8_t, 16> bytes{};  // network order, the bits past `bits` zero; IPv4 uses 4
  uint8_t bits = 0;
  bool v6 = false;
};
std::string cidr_text(const Cidr& cidr);

// `access: {allow: [prefixes], deny: [prefixes]}`: the longest prefix that names a client
// decides (a prefix in both lists is an error); a client no prefix names is allowed, unless
// `allow` is given, then it is denied (403). `all` stands for 0.0.0.0/0 and ::/0.
struct AccessList {
  bool enabled = false;
  std::vector<Cidr> allow;
  std::vector<Cidr> deny;
  Mark mark;
};

// A text with placeholders, compiled at load: `{host}` (canonical, no port), `{path}`,
// `{query}` (without its `?`), `{target}` (path and query), `{rest}` (the target past the
// route's prefix), `{scheme}`, `{method}`, `{client_ip}`, `{backend}` (the backend's name), and
// in response headers `{cache}` (the X-Cache value: HIT, MISS, PASS, ...) and `{status}`.
// `{{` is a literal `{`.
enum class Placeholder : uint8_t {
  kLiteral, kHost, kPath, kQuery, kTarget, kRest, kScheme, kMethod, kClientIp, kBackend, kCache, kStatus,
};
struct Template {
  struct Part {
    Placeholder kind = Placeholder::kLiteral;
    std::string literal;  // kLiteral
  };
  std::vector<Part> parts;
  std::string text;  // as written
};

// `request_headers:` / `response_headers:` maps: `remove: [names]`, `set: {name: value}`,
// `append: {name: value}`, applied in that order, a host's before its route's. Set replaces every
// field of its name (those an earlier rule added included), append adds a field line, remove
// drops every field of its name. Values are templates. Framing and hop-by-hop fields, and on
// requests Host and the X-Forwarded-Host/Proto fields edge writes itself, are refused.
struct HeaderRule {
  enum class Kind : uint8_t { kRemove, kSet, kAppend } kind = Kind::kSet;
  std::string name;
  Template value;  // kSet, kAppend
};
// The rules flattened for one host or route: the names of the fields whose incoming lines are
// dropped, and the lines added after, in order.
struct HeaderEdits {
  std::vector<std::string> dropped;
  std::vector<HeaderRule> added;  // kind kSet or kAppend
  bool empty() const { return dropped.empty() && added.empty(); }
};

// `redirect: {to: template, status: 301|302|303|307|308}` (302 by default): every request of the
// host or route is answered with it. An absolute `to` names its host literally (or `{host}`);
// a relative one that would start with `//` starts with one `/`.
struct Redirect {
  bool enabled = false;
  int status = 302;
  Template to;
  Mark mark;
};

// `rate_limit: {rate: 10/s, burst: 20}` (`N/s` or `N/m`; burst defaults to rate's N, at least 1):
// requests per client address (an IPv6 client by its /64), a token bucket shared by every worker;
// past it 429 with Retry-After. `off` on a route clears its host's. Every route that inherits a
// host's limit shares its buckets; `zone` names the entry that declared it.
struct RateLimit {
  bool enabled = false;
  double per_second = 0;
  double burst = 0;
  std::string zone;  // the declaring host's first match name, and its route's path
  uint64_t zone_id = 0;  // FNV-1a of `zone`, as rules::RateLimiter::zone_id() makes it
  Mark mark;
};

// An error page (`error_pages: {404: file, ...}`), read at load; at most 64k.
struct ErrorPage {
  std::string body;
  std::string content_type;  // from the file's extension
  std::string file;          // resolved path
};
// `error_pages:` at the top level, on a host, on a route: status (400..599) -> file; a route's
// pages override its host's, a host's the top level's, status by status. `backend_errors: on`
// also replaces a backend's 5xx that has a page (its body is not sent).
struct ErrorPages {
  std::vector<std::pair<int, std::shared_ptr<const ErrorPage>>> pages;
  bool backend_errors = false;
  const ErrorPage* find(int status) const {
    for (const auto& [code, page] : pages)
      if (code == status) return page.get();
    return nullptr;
  }
};

// `maintenance: on` or `{page: file, retry_after: 30s, allow: [prefixes]}`: every request of the
// host or route is answered 503 with the page (the 503 error page, else edge's own) and
// Retry-After, except from `allow`ed addresses, which are served.
struct Maintenance {
  bool enabled = false;
  std::shared_ptr<const ErrorPage> page;  // null: the 503 error page
  Duration retry_after{std::chrono::seconds(60)};
  std::vector<Cidr> allow;
  Mark mark;
};

// `purge: {allow: [prefixes]}`: PURGE requests to the host or route are edge's to answer, from
// the allowed addresses only (403 for others): every variant of the URL, or with
// `X-Purge-Method: prefix` or `regex` a ban on the host's paths that start with or match the
// request's path (proxy/request.h). Without it a PURGE passes to the backend like any method.
struct PurgeAccess {
  bool enabled = false;
  std::vector<Cidr> allow;
  Mark mark;
};

// What a host or route does with a request before the cache, and to its response; a route
// takes what it does not set from its host (header rules add to the host's).
struct Rules {
  AccessList access;
  RateLimit rate_limit;
  PurgeAccess purge;
  Maintenance maintenance;
  Redirect redirect;
  HeaderEdits request_headers;
  HeaderEdits response_headers;
  ErrorPages error_pages;
  // `upgrade: [protocols]`: the Upgrade protocols (lower case) a request may switch to through
  // a tunnel (proxy/tunnel.h); `[]` or `off`: none. A request asking for another is served as
  // plain HTTP (Upgrade is hop-by-hop: the backend never sees it), so `h2c` can never be
  // smuggled past the rules.
  std::vector<std::string> upgrade = {"websocket"};
};

struct Route {
  std::string path_prefix;  // starts with '/'
  int backend = -1;         // index into Config::backends; -1: the host's backend
  CachePolicy cache;        // the host's, overridden by the route's own keys
  Rules rules;              // likewise
  Mark mark;
};

struct Host {
  // Exact names (lower case, no port), `*.domain` wildcards (matching any subdomain depth of
  // domain, not domain itself), or `*` (everything no other entry matches).
  std::vector<std::string> match;
  int backend = -1;           // index into Config::backends; never -1 after loading
  std::vector<Route> routes;  // in file order; lookup takes the longest matching prefix
  CachePolicy cache;
  Rules rules;
  // `redirect_https: on|off`: a request that came over plain HTTP is answered 308 with the same
  // host and target on https (default port); requests over TLS are served.
  bool redirect_https = false;
  Mark mark;
};

// The memcached tier (`cache.memcached:` map): the second tier of the HTTP cache, and where
// static routes are answered from. Keys are spread over the servers by consistent hashing.
struct Memcached {
  bool enabled = false;          // true when the `memcached` key is present
  std::vector<Address> servers;  // `servers`: required, never empty, no duplicates
  Duration timeout{std::chrono::milliseconds(50)};  // `timeout`: per operation; > 0
  uint32_t threads = 2;                             // `threads`: blocking client threads, 1..64
  Duration retry{std::chrono::seconds(5)};  // `retry`: how long a failing server is skipped; > 0
  uint64_t max_item = 1024 * 1024;  // `max_item`: larger values are kept out of memcached; > 0
  Mark mark;                        // the `memcached` key; line 0 when the file has none
};

// The RAM cache, one for the whole process (top-level `cache:` map).
struct Cache {
  uint64_t memory = 256ull * 1024 * 1024;     // `memory`: heads, bodies and overhead; > 0
  uint64_t max_object = 16ull * 1024 * 1024;  // `max_object`: larger responses are passed;
                                              // > 0 and not above memory
  // `coalesce_timeout`: the longest a request waits for another request's fetch of its key;
  // then it goes to the backend itself. > 0.
  Duration coalesce_timeout{std::chrono::seconds(5)};
  // `hit_for_pass`: how long a key stays passed; 0: keys are never marked.
  Duration hit_for_pass{std::chrono::seconds(120)};
  // `route_pass_after`: after this many fills in a row on one route whose responses were not
  // storable for their own reasons (what marks a key hit-for-pass), with no storable one in
  // between, a new key on that route no longer makes concurrent requests wait for one fetch
  // (proxy/herd.h); 0..1000, 0: requests always wait.
  uint32_t route_pass_after = 4;
  // `heuristic_max`: cap on the Last-Modified heuristic's freshness; > 0.
  Duration heuristic_max{std::chrono::hours(24)};
  bool x_cache = true;  // `x_cache: on|off`: the X-Cache response header
  // `x_trace: on|off`: the X-Edge-Trace response header, the request's steps up to its head and
  // their times (proxy/trace.h): for debugging, it says how long each step took.
  bool x_trace = false;
  // `max_variants`: Vary variants kept per URL, 1..10000; a new one past it replaces the oldest
  // that was never read (else the oldest).
  uint32_t max_variants = 32;
  // `targeted_field`: the name of a response field whose directives are for edge alone (RFC
  // 9213, e.g. Edge-Cache-Control), obeyed before Surrogate-Control, CDN-Cache-Control and
  // Cache-Control (cache/targeted.h); "" none. A token, and none of those names.
  std::string targeted_field;
  Memcached memcached;  // `memcached`: optional; absent: no memcached tier
  Mark mark;            // the `cache` key; line 0 when the file has none
};

// What a failing include does when it has no alt and no onerror="continue".
enum class EsiOnError {
  kContinue,  // `continue`: it is replaced by nothing and counted
  kFail,      // `fail`: the whole page fails with 502
};

// ESI processing, one set of limits for the whole process (top-level `esi:` map); which hosts
// and routes use it is CachePolicy::esi.
struct Esi {
  uint32_t max_depth = 5;  // `max_depth`: nesting of includes, 1..20
  // `include_timeout`: the longest wait for one include's response; > 0.
  Duration include_timeout{std::chrono::seconds(5)};
  // `allow_hosts`: hosts other than the page's own that an absolute include src may name (the
  // page's own host is always allowed). Lower case, no port; exact names or `*.domain`
  // wildcards (stored with their `*.`, matching is the proxy's); `*` is refused. A name or a
  // list; empty by default.
  std::vector<std::string> allow_hosts;
  EsiOnError on_error = EsiOnError::kContinue;  // `on_error: continue|fail`
  uint32_t max_includes = 256;  // `max_includes`: per page, all levels together, 1..10000
  Mark mark;                    // the `esi` key; line 0 when the file has none
};

// The admin port: a separate listener, every request authenticated with a bearer token.
struct Admin {
  bool enabled = false;  // true when the `admin` key is present
  Address address;       // loopback (127.0.0.1:9090) unless configured
  std::string token_file;
  std::string token;  // the file's content without surrounding white space; never empty
  // Connections at once; at the cap a new one takes the place of the oldest that has not yet
  // made an authorised request (proxy/admin.h).
  uint64_t max_connections = 64;
  Duration header_timeout{std::chrono::seconds(5)};  // a request head, from accept or its first byte
  // How long a browser session signed in with the token lasts (proxy/admin_session.h), from
  // the sign-in on: more than zero, at most 30 days.
  Duration session_ttl{std::chrono::hours(8)};
  // `access`: which client addresses the admin port serves (403 for others), as a host's.
  AccessList access;
  Mark mark;
};

// Another edge node sharing the memcached tier: purges are sent to its admin port.
struct Peer {
  Address address;    // `address`: its admin address; not a wildcard, not this node's admin
  std::string token;  // read from `token_file` as admin's is: trimmed, never empty
  Mark mark;
};

// The other nodes (top-level `cluster:` map); no peers when the file has none.
struct Cluster {
  std::vector<Peer> peers;  // `peers`: required in the map, never empty, no duplicates
  Duration timeout{std::chrono::seconds(1)};  // `timeout`: per request to a peer; > 0
  Mark mark;  // the `cluster` key; line 0 when the file has none
};

// The access log (top-level `access_log:` map); no access log when the file has none.
enum class AccessLogFormat { kCombined, kJson };
struct AccessLog {
  bool enabled = false;  // true when the `access_log` key is present
  // `path`: required; a file, relative to the configuration file, or `stdout`.
  std::string path;
  bool to_stdout = false;  // `path: stdout`
  AccessLogFormat format = AccessLogFormat::kCombined;  // `format: combined|json`
  // `buffer`: the bytes of lines queued for the writer thread; past it lines are dropped and
  // counted. At least 4k.
  uint64_t buffer = 1024 * 1024;
  Mark mark;  // the `access_log` key; line 0 when the file has none
};

// What the workers record per request beyond the counters (top-level `metrics:` map), for
// /metrics and /top; switched off to measure what the recording costs.
struct Metrics {
  bool histograms = true;  // `histograms`: the duration histograms (the counters stay)
  bool top = true;         // `top`: the heaviest URLs for GET /top (empty without it)
  Mark mark;  // the `metrics` key; line 0 when the file has none
};

// `io`: how the workers move socket bytes. epoll: libuv's reads and writes, one system call each;
// uring: an io_uring per worker (uring/ring.h), falling back to epoll with a log line where the
// kernel refuses it. Applied at start only.
enum class Io { kEpoll, kUring };

struct Config {
  int workers = 0;  // 0 until resolved: `auto` resolves to the number of cores
  Io io = Io::kEpoll;
  std::vector<Listen> listen;  // never empty
  Limits limits;
  Http2 http2;
  std::vector<Backend> backends;
  std::vector<Host> hosts;
  // `trusted_proxies`: the peers whose X-Forwarded-For names the client (rules/address.h), for
  // access lists, rate limits, `{client_ip}` and the access log. Empty: the peer is the client.
  std::vector<Cidr> trusted_proxies;
  ErrorPages error_pages;  // `error_pages` at the top level: every host's unless it sets its own
  Cache cache;
  Esi esi;
  Admin admin;
  Cluster cluster;
  // `shutdown_timeout`: on SIGTERM or SIGINT, the longest edge waits for the requests in flight
  // to finish before it closes what is left; > 0.
  Duration shutdown_timeout{std::chrono::seconds(30)};
  AccessLog access_log;
  Metrics metrics;
  // `upgrade_socket`: the Unix socket (resolved path) where this process offers its listening
  // sockets to a new edge started with `--takeover` (proxy/handoff.h); empty: none.
  std::string upgrade_socket;
  Mark upgrade_socket_mark;
  std::string file;  // the path it was loaded from

  int backend_index(std::string_view name) const;  // -1 when absent
};

struct Error {
  Mark mark;
  std::string message;
  std::string text() const;  // "file:line:col: message"
};

struct LoadResult {
  std::optional<Config> config;  // set exactly when errors is empty
  std::vector<Error> errors;
};

// The environment's EDGE_IO (epoll or uring), when set, overrides the file's `io`.
LoadResult load_file(const std::string& path);
LoadResult load_string(std::string_view yaml, const std::string& name);

// The value parsers the loader uses, exposed for tests and for command-line flags.
std::optional<Duration> parse_duration(std::string_view text);
std::optional<uint64_t> parse_size(std::string_view text);
std::optional<Address> parse_address(std::string_view text);

}  // namespace edge::conf
