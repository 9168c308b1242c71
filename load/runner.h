// load/runner: edge-demo-load's client, on one libuv loop: first the users sign in, then the
// timed run, a closed loop of keep-alive connections each with one request in flight at a time.
//
// Contract:
// - sign_in() posts /login for each user (a connection each, Connection: close, a few at once)
//   and returns the session tokens in the users' order, or the first failure (a connection that
//   fails, an answer other than 303, no session cookie) as a message for people. It returns once
//   every exchange is done; their handles finish closing on the loop's next turns.
// - run_load() opens `connections` connections to the target and, on each, sends the Mix's
//   next request (from an Rng of that connection's, seeded by RunConfig::seed and its index, so
//   each connection's sequence is reproducible) as soon as the previous answer has ended, until
//   `seconds` have passed or SIGINT comes. Requests in flight then are waited for and counted.
//   It returns once every connection is closed and every handle it made on the loop is too
//   (other handles may share the loop).
// - Answers are read with http::ResponseParser (Content-Length, chunked, or delimited by the
//   close). Errors, each counted once in Results::errors: a connection that cannot be made
//   within the request timeout (retried after kConnectBackoffMs), no complete answer within the
//   request timeout (RunConfig::request_timeout_ms, kRequestTimeoutMs by default), the server
//   closing or resetting with a request in flight, an answer that does not parse, one whose body
//   passes kMaxResponseBodyBytes. After an error the connection is closed and made again. A
//   connection the server closes between requests is made again without an error.
// - Memory is bounded whatever the server sends: a response body is counted, never kept; a head
//   is at most the parser's limit.
// - Progress (when asked) goes to stderr once a second: a line rewritten in place on a terminal
//   (ended with a newline when the run is over), else a line each time.
// - The process must ignore SIGPIPE. Never throws on the request path.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "load/mix.h"

namespace edge::load {

inline constexpr uint64_t kRequestTimeoutMs = 10000;
inline constexpr uint64_t kConnectBackoffMs = 100;
inline constexpr uint64_t kMaxResponseBodyBytes = 8 * 1024 * 1024;

struct SignIn {
  std::vector<std::string> tokens;  // one per user, in order, when error is empty
  std::string error;
};
SignIn sign_in(uv_loop_t* loop, const sockaddr* target, std::string_view host_header, std::span<const uint32_t> users);

enum class ProgressStyle : uint8_t { kNone, kRewritten, kLines };

struct RunConfig {
  sockaddr_storage target;
  std::string host_header = "localhost";
  uint32_t connections = 32;
  double seconds = 10;
  uint64_t seed = 1;
  ProgressStyle progress = ProgressStyle::kNone;
  uint64_t request_timeout_ms = kRequestTimeoutMs;  // also bounds a connect
};

// Runs the load; `tokens` are the signed-in users' sessions (see Mix::next). Results::logins is
// left for the caller.
Results run_load(uv_loop_t* loop, const RunConfig& config, const Mix& mix, std::span<const std::string> tokens);

// The progress line: "  3/10 s   12345 req/s   p99 4.21 ms   errors 0".
std::string progress_line(double elapsed_s, double total_s, double requests_per_second, uint64_t p99_ns,
                          uint64_t errors);

}  // namespace edge::load
