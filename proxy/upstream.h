// proxy/upstream: connections to backend servers and the per-worker keep-alive pool.
//
// An UpstreamConn lives on one worker loop. It is either idle in its Pool (reading, so a close by
// the server is noticed at once), or carrying exactly one exchange for one Owner: it connects if
// needed, writes the request head and buffered body, and reads the response at full speed into
// the Owner's Body, whatever the client's pace, until that Body is full() (its temp file at its
// bound): then it stops reading the server until the Body says it was drained. While stopped,
// response_timeout does not run: the server is not silent, we are not listening.
//
// Bytes go through an http::Transport (TCP today; TLS to backends sits on the same seam).
//
// Ownership: the Pool owns idle connections; a busy connection is owned by itself (it closes its
// transport, then its deadline, and is deleted from the deadline's close completion) and borrows its Owner, which must call abandon()
// before going away. Callbacks to the Owner stop after on_upstream_failed(), after
// on_upstream_response(complete=true), and after abandon().
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"
#include "proxy/generation.h"
#include "proxy/metrics.h"
#include "proxy/stats.h"
#include "http/body.h"
#include "http/deadline.h"
#include "http/parser.h"
#include "http/transport.h"
#include "tls/context.h"
#include "http/writer.h"

namespace edge::proxy {

class Pool;

enum class UpstreamFailure {
  kConnectRefused,   // nothing reached the server: another server may be tried
  kConnectTimeout,   // likewise
  kTlsHandshake,     // connected, but no TLS session (certificate, name, protocol): likewise
  kResetBeforeResponse,  // the request was sent; the server closed or reset before any byte
  kBadResponse,      // garbage, a truncated response, or an error reading it
  kResponseTimeout,  // no response (or no progress) within response_timeout
  kLocal,            // our own resources (temp file) failed, or we stopped waiting
};
const char* failure_name(UpstreamFailure failure);

// A backend connection that switched protocols (its 101 read): the transport, no longer read,
// and the bytes that came after the 101's head, for a tunnel (proxy/tunnel.h).
struct UpgradedConn {
  std::unique_ptr<http::Transport> transport;
  std::string leftover;
};

class UpstreamConn final : http::StreamWriter::Owner,
                           http::BodyProducer,
                           http::Transport::Reader,
                           http::Transport::Connected,
                           http::Transport::Closed {
 public:
  class Owner {
   public:
    // The response head is complete and the Body holds what has arrived so far. Called once per
    // read that made progress; `complete` the last time (the connection is already released).
    virtual void on_upstream_response(const http::ResponseHead& head, bool complete) = 0;
    // `reused`: the failure happened on a connection taken from the pool.
    virtual void on_upstream_failed(UpstreamFailure failure, bool reused) = 0;
    // An interim response (103 Early Hints, 102) arrived ahead of the final one; not 100.
    virtual void on_upstream_interim(const http::ResponseHead& interim) = 0;
    // The request asked to upgrade and the server answered 101: the connection, told just
    // before on_upstream_response(complete=true); it is never pooled.
    virtual void on_upstream_upgraded(UpgradedConn conn) = 0;

   protected:
    ~Owner() = default;
  };

  // Starts one exchange. `head` and `request_body` (may be null) are borrowed until the request
  // is written or the exchange ends; `response_body` until the exchange ends. `upgrade`: the
  // request asks to switch protocols, so a 101 is its answer (else a 101 is a bad response).
  void start(Owner* owner, const std::string* head, http::Body* request_body,
             http::Body* response_body, bool head_request, bool upgrade = false);
  // The owner is gone or no longer wants the response: the connection closes.
  void abandon();
  // The exchange must end within `limit` from now, whatever the server's pace: then it fails
  // with kLocal.
  void finish_within(conf::Duration limit);

  bool reused() const { return reused_; }
  bool request_written() const { return request_written_; }

 private:
  friend class Pool;
  friend class http::Deadline;  // frees it once transport and deadline have closed
  enum class State { kConnecting, kIdle, kBusy, kClosing };

  UpstreamConn(Pool& pool, std::unique_ptr<http::Transport> transport);
  ~UpstreamConn();
  void connect(const sockaddr* address);
  void close();
  void fail(UpstreamFailure failure);
  void send_request();
  void on_write_done(int status) override;
  void on_connected(int status) override;
  void on_data(const char* data, size_t len) override;
  void on_end(int status) override;
  void on_closed() override;
  void on_body_drained() override;
  void start_reading();
  void let_go_of_body();
  void arm_timer(conf::Duration timeout);
  void on_timeout();

  Pool& pool_;
  State state_ = State::kConnecting;
  std::unique_ptr<http::Transport> transport_;
  http::Deadline deadline_;
  http::StreamWriter writer_;
  http::ResponseParser parser_;
  std::vector<http::ResponseHead> interims_;  // the parser's, taken after each read
  Owner* owner_ = nullptr;
  const std::string* request_head_ = nullptr;
  http::Body* request_body_ = nullptr;
  http::Body* response_body_ = nullptr;
  bool reading_ = false;
  uint64_t ends_at_ = 0;  // loop time (ms) set by finish_within; 0: none
  uint64_t connect_started_ns_ = 0;
  uint64_t sent_ns_ = 0;  // uv_hrtime() when the request went out; 0 once its head is read
  bool reused_ = false;
  bool connect_failed_ = false;
  bool request_written_ = false;
};

// One server's keep-alive pool on one worker loop. It reads the server's settings from the
// generation it is bound to, which it keeps alive; a reload that keeps the server rebinds it.
class Pool {
 public:
  Pool(uv_loop_t* loop, GenerationRef generation, size_t backend, size_t server);
  ~Pool();  // closes idle connections; busy ones close themselves
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // An idle connection (most recently used first), or a new one that is connecting. Never null.
  UpstreamConn* acquire(bool fresh_only);
  // Called by a connection that finished an exchange and may be reused.
  void release(UpstreamConn* conn);
  void forget(UpstreamConn* conn);  // a connection closing itself leaves the idle list

  // The same server in another generation (a reload kept it). Idle connections stay, unless
  // the server is reached over TLS: they were made with the old generation's context.
  void rebind(GenerationRef generation, size_t backend, size_t server);
  const GenerationRef& generation() const { return generation_; }
  const conf::Backend& backend() const { return *backend_; }
  const conf::Server& server() const { return *server_; }
  uv_loop_t* loop() const { return loop_; }
  size_t open_connections() const { return open_; }  // idle, busy or closing
  // The worker's Stats (bytes, open connections), and the server's histograms on this worker
  // (null when the configuration records none, or the server has no slot).
  Stats& stats() const { return *stats_; }
  ServerMetrics* metrics() const { return metrics_; }

  // Closes every idle connection and stops the pool keeping any (worker shutdown, or a server
  // a reload removed); acquire() still connects.
  void shutdown();

 private:
  friend class UpstreamConn;
  uv_loop_t* loop_;
  GenerationRef generation_;
  const conf::Backend* backend_ = nullptr;
  const conf::Server* server_ = nullptr;
  sockaddr_storage address_{};
  const tls::ClientContext* tls_ = nullptr;
  // The last TLS session this server gave this worker, offered by the next connection; the
  // pool outlives its connections, whose SSL objects point at it.
  tls::ClientContext::SessionSlot session_slot_;
  Stats* stats_ = nullptr;
  ServerMetrics* metrics_ = nullptr;
  std::vector<UpstreamConn*> idle_;
  size_t open_ = 0;
  bool shut_down_ = false;
};

}  // namespace edge::proxy
