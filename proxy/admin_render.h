// proxy/admin_render: the admin port's pure parts (paths, tokens, bodies), apart from its
// sockets so they can be tested without a loop. Defined in admin.cc.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "balancer/balancer.h"
#include "cache/counters.h"
#include "cache/store.h"
#include "proxy/metrics.h"
#include "proxy/stats.h"
#include "proxy/tier.h"
#include "conf/config.h"
#include "top/heavy_hitters.h"
#include "top/windows.h"

namespace edge::proxy::admin {

// What a request path (without its query) names.
struct Route {
  enum Kind {
    kNotFound,
    kBackends,      // /backends
    kBackendsText,  // /backends.txt
    kDrain,         // /backends/<backend>/<server>/drain
    kEnable,        // /backends/<backend>/<server>/enable
    kPurge,         // /purge
    kBan,           // /ban
    kStats,         // /stats
    kMetrics,       // /metrics
    kReload,        // /reload
    kTop,           // /top
    kPage,          // /: the status page, or the sign-in page (proxy/status_page.h)
    kLogin,         // /login
    kLogout,        // /logout
    kEvents,        // /events
  } kind = kNotFound;
  std::string backend;  // percent-decoded; for kDrain and kEnable
  std::string server;
};
Route parse_route(std::string_view path);

// The methods a route answers (for 405 and Allow): "GET, HEAD" or "POST"; "" for kNotFound.
std::string_view allowed_methods(Route::Kind kind);
bool method_allowed(Route::Kind kind, std::string_view method);

// GET /top's query (window, by, host, n: 1 to 1000); nullopt with `error` for an unknown, repeated
// or bad parameter.
std::optional<top::Query> parse_top(std::string_view query, std::string& error);
// Its answer.
std::string render_top_json(const top::Query& query, const top::Ranking& ranking);

// Percent-decoding of one path segment; nullopt for a bad escape or an encoded NUL or '/'.
std::optional<std::string> percent_decode(std::string_view segment);

// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive); nullopt when
// the value is not a bearer credential.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// SHA-256 of a token: what is kept of the configured token and compared, so the comparison
// (CRYPTO_memcmp) takes the same time whatever the lengths and contents.
struct TokenDigest {
  unsigned char bytes[32];
};
TokenDigest digest_token(std::string_view token);
bool token_matches(std::string_view presented, const TokenDigest& expected);

// A JSON string literal, quotes included.
std::string json_string(std::string_view text);

// Every backend server's histograms, summed over the workers: [backend][server] in the
// generation's order (an address listed twice shares its figures).
struct ServerHistograms {
  HistogramCounts first_byte;  // request sent to the response head
  HistogramCounts connect;
};
using ServerLatencies = std::vector<std::vector<ServerHistograms>>;
ServerLatencies gather_server_latencies(const std::vector<std::vector<int>>& server_slots,
                                        const std::vector<const WorkerMetrics*>& workers);

// GET /backends and /backends.txt, read from the live counters at `now_ms`. The JSON gives each
// server "response_ms":{"p50","p90","p99"} from `latencies` (its first-byte histogram,
// estimated from the buckets), each null without a sample or without `latencies`.
std::string render_backends_json(const balancer::Balancer& balancer, int64_t now_ms,
                                 const ServerLatencies* latencies = nullptr);
std::string render_backends_text(const balancer::Balancer& balancer, int64_t now_ms);

// ---- purge and ban ----

// A query string (without its '?') as name/value pairs in order, percent-decoded. '+' stays '+'
// (URLs and regular expressions use it; a space is %20). nullopt for a bad escape or a NUL.
using QueryParams = std::vector<std::pair<std::string, std::string>>;
std::optional<QueryParams> parse_query(std::string_view query);

// The cache key (cache::cache_key) of an absolute http or https URL: host from its authority,
// target its path and query (fragment dropped). nullopt when it is not such a URL.
std::optional<std::string> url_cache_key(std::string_view url);

// POST /purge?url=<URL>[&soft=1][&every_query=1] or ?tag=<tag>[&soft=1]. Exactly one of url and
// tag; soft is 0
// or 1 (also true/false); any other or repeated parameter is refused, so a typo never turns a
// soft purge into a hard one. nullopt with `error` (the 400's message) when refused.
// local=1 (purges and bans): this node's RAM tier only; what a node sends its cluster peers.
struct PurgeRequest {
  std::string key;  // url_cache_key of the URL; empty for a tag
  std::string tag;  // empty for a URL
  std::string host;    // a URL's host as in cache keys (lower case, no port)
  std::string target;  // a URL's path and query as given ("/" when none)
  bool soft = false;
  bool local = false;
  bool every_query = false;  // every_query=1 (a URL only): the path with any query, or none
};
std::optional<PurgeRequest> parse_purge(std::string_view query, std::string& error);
// The ban that purges every query variant of a URL's path (what every_query=1 asks): on the
// URL's host, objects whose path is exactly the URL's normalised path, with or without a query.
// nullopt with `error` if the regex is refused (a path over the regex's limits).
std::optional<cache::Store::Ban> every_query_ban(const PurgeRequest& request, std::string& error);

// POST /ban?[host=<host>&][prefix=<path prefix>&][regex=<RE2>&][soft=1]: at least one of
// prefix and regex. The host is lower-cased and loses its port, as in cache keys ("" every
// host); the prefix must start with '/' and is normalised as cache key paths are. nullopt with
// `error` (the 400's message, with the regex's own error for a bad one) when refused.
std::optional<cache::Store::Ban> parse_ban(std::string_view query, std::string& error, bool* local = nullptr);

// ---- cache figures: GET /stats and /metrics ----

using EventCounts = std::array<uint64_t, cache::kEventCount>;  // by cache::Event
struct HostFigures {
  std::string host;  // the host entry's first match name
  EventCounts events{};
};
// The bounds on hostile input (proxy/bounds.h): Bounds::events() then the store's
// variants_replaced, and the temp-file space in use and at its peak.
struct LimitFigures {
  std::vector<std::pair<const char*, uint64_t>> events;
  uint64_t temp_bytes = 0;
  uint64_t temp_bytes_peak = 0;
};
// One worker's open connections (proxy/stats.h); `waiting`: those without a request in
// progress (idle between requests, or reading a head).
struct WorkerFigures {
  uint64_t connections = 0;
  uint64_t requests_in_progress = 0;
  uint64_t waiting = 0;
};
// The client connections (proxy/stats.h), summed over the workers.
struct ConnectionFigures {
  uint64_t open = 0;          // client connections open now
  uint64_t backend_open = 0;  // backend connections open now (connecting, busy, idle)
  uint64_t bytes_in = 0;      // received from clients
  uint64_t bytes_out = 0;     // sent to clients
  uint64_t backend_bytes_in = 0;   // received from backends
  uint64_t backend_bytes_out = 0;  // sent to backends
  std::vector<WorkerFigures> workers;  // one per worker, in order
  uint64_t requests = 0;
  uint64_t upstream_failures = 0;
  uint64_t tls_handshakes = 0;
  uint64_t tls_resumed = 0;
  uint64_t access_log_dropped = 0;
  uint64_t h2_connections = 0;
  uint64_t h2_streams = 0;
  std::array<uint64_t, kCloseReasonCount> closes{};  // by CloseReason
  std::array<uint64_t, kRuleActionCount> rules{};    // by RuleAction
  struct Coded {
    uint64_t responses = 0;
    uint64_t bytes_before = 0;
    uint64_t bytes_after = 0;
  };
  std::array<Coded, compress::kCodings> coded{};  // by compress::Coding (identity unused)
};
ConnectionFigures gather_connection_figures(const std::vector<const Stats*>& workers);
// Responses and their durations for one host label, summed over the workers (proxy/metrics.h).
struct HostTraffic {
  std::string host;  // "" for requests that matched no host entry
  std::array<uint64_t, kStatusClassCount> responses{};  // by status class
  HistogramCounts duration;
  HistogramCounts first_byte;
};
// The configured hosts in Config::hosts order (a label listed twice is shown once), then "".
std::vector<HostTraffic> gather_host_traffic(const conf::Config& config, const std::vector<int>& host_slots,
                                             const std::vector<const WorkerMetrics*>& workers);

struct CacheFigures {
  std::vector<HostFigures> hosts;  // in Config::hosts order
  cache::StoreStats store;
  uint64_t memory = 0;  // the store's bound (cache.memory)
  std::optional<TierCounters> memcached;  // with cache.memcached
  std::optional<LimitFigures> limits;     // set by the admin port; absent in tests without one
  std::optional<ConnectionFigures> connections;  // set by the admin port given the workers' Stats
  std::vector<HostTraffic> traffic;  // set by the admin port given the workers' metrics
  ServerLatencies latencies;         // likewise
};
// The memcached tier's figures by name, in the order /stats and /metrics show them.
std::vector<std::pair<const char*, uint64_t>> memcached_figures(const TierCounters& tier);
// Every worker's counters summed per configured host, with the store's figures. `host_slots`:
// where each host's counters are (Generation::host_slots).
CacheFigures gather_cache_figures(const conf::Config& config, const std::vector<int>& host_slots,
                                  const std::vector<const cache::Counters*>& counters, const cache::StoreStats& store);

// (hits + stale) / (hits + stale + misses + passes + hit_for_pass); 0 when that is 0.
double hit_ratio(const EventCounts& events);

// GET /stats:
//   {"hosts":[{"host":..., <every event key>: n, "hit_ratio": r}, ...],
//    "totals":{<every event key>: n, "hit_ratio": r},
//    "store":{"objects","bytes","memory","inserts","evictions","refused_too_large","purged",
//             "bans","hit_for_pass_marks","admission_refusals","head_bytes","body_bytes",
//             "overhead_bytes","sketch_bytes","per_object":{"head","body","overhead"}},
//    "limits":{<LimitFigures events>, "temp_bytes", "temp_bytes_peak"},   (when set)
//    "connections":{"open","backend_open","bytes_in","bytes_out","backend_bytes_in",
//                   "backend_bytes_out","requests","upstream_failures","tls_handshakes",
//                   "tls_resumed","access_log_dropped","h2_connections","h2_streams","closes":{<every close reason key>: n},
//                   "rules":{<every rule action key>: n}},
//    "workers":[{"connections","requests_in_progress","waiting"}, ...]   (both when set)
//    "memcached":{<memcached_figures>}}   (only with cache.memcached)
std::string render_stats_json(const CacheFigures& figures);

// GET /metrics: Prometheus text exposition (version 0.0.4) of the cache figures and of what
// render_backends_json shows; the connections as edge_requests_total,
// edge_upstream_failures_total, edge_tls_handshakes_total, edge_tls_resumed_total and
// edge_connection_closes_total{reason=<close reason key>}; the traffic as
// edge_responses_total{host,code="2xx"}, the histograms edge_request_duration_seconds{host},
// edge_request_first_byte_seconds{host}, edge_backend_first_byte_seconds{backend,server},
// edge_backend_connect_seconds{backend,server}, edge_memcached_operation_seconds{op}; the open
// connections and bytes (README lists every family).
std::string render_metrics(const CacheFigures& figures, const balancer::Balancer& balancer, int64_t now_ms);
// A label value escaped for the exposition format (backslash, double quote, line feed), without
// its quotes.
std::string prometheus_label(std::string_view value);

}  // namespace edge::proxy::admin
