// app/admin_client: purges at the edge's admin port, from the app server's own loop, so that a
// change to the data (a posted review) reaches the cache before the poster sees the next page.
//
// Contract:
// - purge_tag() sends `POST /purge?tag=<tag> HTTP/1.1` with `Authorization: Bearer <token>` and
//   `Connection: close` on a fresh connection, reads the answer and closes. Purges are rare (one
//   per posted review), so there is no pool.
// - It never blocks the loop and never throws. Whatever happens (refused, reset, garbage, a body
//   over kMaxAnswerBytes, no complete answer within the time-out, a status other than 2xx), the
//   purge ends with done(false) and one line on stderr: "edge-app: purge of tag <tag> at
//   <host:port> failed: <why>". A 2xx answer gives done(true), silently.
// - done is called exactly once, later, from the loop (never from inside purge_tag()), unless
//   the purge is cancelled or the client stopped first: then never. Cancelling only stops the
//   waiting: the request still reaches the edge.
//
// Ownership: the AdminClient owns its purges in flight, each freed as it ends; its connection is
// an http::OneShot, which frees itself once its handles are closed. stop() stops them all; the
// owner runs the loop until it has no handles left before destroying the AdminClient.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "app/options.h"

namespace edge::app {

inline constexpr uint64_t kAdminTimeoutMs = 5000;
inline constexpr uint64_t kMaxAnswerBytes = 64 * 1024;

// The request purge_tag() sends, for tests: the tag is percent-encoded in the query (all but
// letters, digits and "-._~"), Host is `admin` as host:port ([v6]:port).
std::string purge_request(std::string_view tag, const HostPort& admin, std::string_view token);

// The bearer token in `path`: the file's content without surrounding white space. nullopt, with
// `error` saying why, when the file cannot be read or holds no token.
std::optional<std::string> read_token_file(const std::string& path, std::string& error);

class AdminClient {
 public:
  using Done = std::function<void(bool purged)>;

  AdminClient(uv_loop_t* loop, HostPort admin, std::string token, uint64_t timeout_ms = kAdminTimeoutMs);
  ~AdminClient();
  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;

  // Starts purging `tag`. Returns a ticket for cancel() (never 0), or 0 after stop(), when
  // nothing is started and done is never called.
  uint64_t purge_tag(std::string_view tag, Done done);
  // done will not be called for this ticket; unknown or finished tickets are ignored.
  void cancel(uint64_t ticket);
  // Ends every purge in flight (their done is not called) and refuses new ones. Idempotent.
  void stop();

  size_t in_flight() const { return in_flight_; }

 private:
  class Exchange;
  void unlink(Exchange* exchange);

  uv_loop_t* loop_;
  HostPort admin_;
  std::string token_;
  uint64_t timeout_ms_;
  sockaddr_storage address_{};  // no family when admin_ is not an IP address
  bool stopped_ = false;
  uint64_t next_ticket_ = 0;
  size_t in_flight_ = 0;
  Exchange* exchanges_ = nullptr;  // intrusive list of exchanges not yet closing
};

}  // namespace edge::app
