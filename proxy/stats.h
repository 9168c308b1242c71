// proxy/stats: a worker's connection counters and gauges, and every reason a client connection
// ends.
//
// Each Worker owns one Stats and is its only writer; anyone may read it (relaxed atomics). The
// one writer changes a value with a load and a store (bump, drop), never a locked instruction.
// The admin port sums them over the workers for GET /stats and /metrics.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "compress/coding.h"

namespace edge::proxy {

// Every reason a client connection ends, declared once: its enumerator, its key in /stats and
// /metrics, and what it means. A connection is counted once, under the first reason decided.
#define EDGE_CLOSE_REASONS(X)                                                       \
  X(kClientClosed, "client_closed", "client closed")                                \
  X(kKeepAliveDone, "keep_alive_done", "keep-alive ended by request or response")   \
  X(kIdleTimeout, "idle_timeout", "idle keep-alive timeout")                        \
  X(kHeaderTimeout, "header_timeout", "request head timeout")                       \
  X(kBodyTimeout, "body_timeout", "request body timeout")                           \
  X(kSlowUpload, "slow_upload", "request body under min_upload_rate")               \
  X(kSendTimeout, "send_timeout", "client stopped reading")                         \
  X(kBadRequest, "bad_request", "malformed or refused request")                     \
  X(kClientAbort, "client_abort", "client left before the response")                \
  X(kWriteError, "write_error", "write to client failed")                           \
  X(kUpstreamBroken, "upstream_broken", "backend failed mid-response")              \
  X(kTooManyConnections, "too_many_connections", "over max_connections")            \
  X(kClientConnLimit, "client_conn_limit", "over max_conns_per_client")             \
  X(kTlsHandshakeFailed, "tls_handshake_failed", "TLS handshake failed")            \
  X(kPlainHttpOnTls, "plain_http_on_tls", "plain HTTP sent to a TLS port")          \
  X(kShutdown, "shutdown", "edge shutting down")                                    \
  X(kH2ProtocolError, "h2_protocol_error", "HTTP/2 connection error")               \
  X(kH2Flood, "h2_flood", "HTTP/2 frames or resets past their bounds")             \
  X(kTunnelDone, "tunnel_done", "an upgraded connection (WebSocket) ended")

enum class CloseReason {
#define EDGE_ENUM(name, key, text) name,
  EDGE_CLOSE_REASONS(EDGE_ENUM)
#undef EDGE_ENUM
      kCount
};
constexpr size_t kCloseReasonCount = static_cast<size_t>(CloseReason::kCount);
// The reason's key ("header_timeout"), as /stats and /metrics name it.
const char* close_reason_key(CloseReason reason);

// What the hosts' and routes' rules (conf::Rules) did to requests, declared once: its
// enumerator, its key in /stats and /metrics, and what it means.
#define EDGE_RULE_ACTIONS(X)                                              \
  X(kDenied, "denied", "refused by an access list (403)")                 \
  X(kRateLimited, "rate_limited", "over a rate limit (429)")              \
  X(kMaintenance, "maintenance", "answered by a host in maintenance (503)") \
  X(kRedirected, "redirected", "answered by a redirect rule")             \
  X(kPurged, "purged", "PURGE requests carried out")

enum class RuleAction {
#define EDGE_ENUM(name, key, text) name,
  EDGE_RULE_ACTIONS(EDGE_ENUM)
#undef EDGE_ENUM
      kCount
};
constexpr size_t kRuleActionCount = static_cast<size_t>(RuleAction::kCount);
const char* rule_action_key(RuleAction action);

// The single writer's increment and decrement of a Stats field.
inline void bump(std::atomic<uint64_t>& n, uint64_t by = 1) {
  n.store(n.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}
inline void drop(std::atomic<uint64_t>& n) { n.store(n.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed); }

struct Stats {
  // Gauges: what is open now on this worker.
  std::atomic<uint64_t> client_connections{0};    // accepted and not yet closed
  std::atomic<uint64_t> requests_in_progress{0};  // head read, response not yet written
  std::atomic<uint64_t> backend_connections{0};   // to backends: connecting, busy or idle
  // Bytes of HTTP (after TLS's decryption, before its encryption), heads included.
  std::atomic<uint64_t> client_bytes_received{0};
  std::atomic<uint64_t> client_bytes_sent{0};
  std::atomic<uint64_t> backend_bytes_received{0};
  std::atomic<uint64_t> backend_bytes_sent{0};
  std::atomic<uint64_t> requests{0};           // complete requests read from clients
  std::atomic<uint64_t> upstream_failures{0};  // backend exchanges that failed
  std::atomic<uint64_t> tls_handshakes{0};     // completed: at the first request, else at the close
  std::atomic<uint64_t> tls_resumed{0};        // of which resumed a session
  std::atomic<uint64_t> access_log_dropped{0};  // access log lines dropped: its queue was full
  std::atomic<uint64_t> h2_connections{0};  // client connections that spoke HTTP/2
  std::atomic<uint64_t> h2_streams{0};      // streams they opened
  std::array<std::atomic<uint64_t>, kCloseReasonCount> closes{};
  void count_close(CloseReason r) { bump(closes[static_cast<size_t>(r)]); }
  std::array<std::atomic<uint64_t>, kRuleActionCount> rule_actions{};
  void count_rule(RuleAction a) { bump(rule_actions[static_cast<size_t>(a)]); }
  // Responses edge sent in a content coding (compress/), by coding (kIdentity unused): how many,
  // and their body bytes before and after the coding (a stored encoding's, or what the stream
  // compressed of a body that broke off).
  std::array<std::atomic<uint64_t>, compress::kCodings> coded_responses{};
  std::array<std::atomic<uint64_t>, compress::kCodings> coded_bytes_before{};
  std::array<std::atomic<uint64_t>, compress::kCodings> coded_bytes_after{};
};

}  // namespace edge::proxy
