// proxy/client: one client connection and the requests it carries, one at a time, in order.
//
// The connection is an http::ServerConn (http/server_conn.h): the core reads the requests from
// its Transport, keeps pipelined bytes until the response before them is written, times each
// phase (header_timeout for the first head and every head after, body_timeout between body
// reads, idle_timeout between requests, send_timeout without progress while writing), keeps
// connections alive and closes by lingering. This class adds what is edge's:
//   - the connection cap (max_connections: a canned 503 and close),
//   - what a request becomes once its head is read, which is proxy/request's: the connection is
//     the Request's Client, and sends the heads and bodies the Request hands it,
//   - min_upload_rate past upload_rate_grace, the bounded wait on another request's fill
//     (coalesce_timeout), and the counting of every close under one reason (proxy/stats.h).
//
// Ownership: a ClientConn owns itself: made by accept(), freed by the core's deletion rule once
// closed. It borrows its Worker. It owns its Request, made at the first head and reused for the
// next ones (done before the next request or when the connection closes).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "http/body.h"
#include "http/server_conn.h"
#include "proxy/h2_client.h"
#include "proxy/request.h"
#include "proxy/stats.h"
#include "proxy/tunnel.h"
#include "proxy/worker.h"
#include "tls/transport.h"

namespace edge::proxy {

// How long a closing client connection, HTTP/1 or HTTP/2, goes on reading after its half-close
// before it closes: closing at once could reset the connection under the last response.
inline constexpr uint64_t kClientLingerMs = 2000;

class ClientConn final : public http::ServerConn, Request::Client, Tunnel::Client {
 public:
  // `tls`: the listener's TLS contexts, null for plain HTTP.
  // `h2c`: the listener also takes HTTP/2 by prior knowledge.
  static void accept(Worker& worker, uv_stream_t* listener, const tls::ServerContext* tls, bool h2c);
  // The worker drains: an idle connection (no byte of a next request) closes now; one with a
  // request in progress, or a fresh one that has not sent its first request yet (within
  // header_timeout), closes once its response is written.
  void drain();
  void shutdown();  // the worker is stopping: close now

 private:
  friend class Worker;
  friend class H2Client;

  explicit ClientConn(Worker& worker);
  ~ClientConn() override;

  // http::ServerConn
  http::Body* on_head(http::RequestHead& head) override;
  void on_request(http::RequestHead& head) override;
  void on_refuse(int status, Close why) override;
  void on_body_read() override;
  void on_peer_end(int status) override;
  void on_timer() override;
  void on_response_written() override;
  void on_close(Close why) override;
  // HTTP/2: by ALPN on TLS, by its preface on an h2c listener.
  Sniff sniff(std::string_view data) override;
  void on_taken_data(std::string_view data) override;
  void on_taken_end(int status) override;

  // Request::Client
  ClientFraming framing(bool may_keep_alive) override;
  void send(const Response& response) override;
  void send_interim(std::string head) override { ServerConn::send_interim(std::move(head)); }
  void kick() override { ServerConn::kick(); }
  void broke_off(CloseReason reason) override { close_for(reason); }
  std::string_view client_ip() override;
  bool secure() override { return tls_ != nullptr; }
  uint64_t bytes_sent() override { return bytes_written(); }
  bool start_tunnel(Fetch::Upgraded upstream) override;
  // Tunnel::Client
  http::Transport& client_transport() override { return *transport(); }
  void pause_client(bool paused) override { pause_reading(paused); }
  void tunnel_over(bool clean) override;
  void on_taken() override;

  // Answers `status` and closes the connection, counted under `reason`.
  void reject(int status, CloseReason reason);
  // Closes now, counted under `reason`.
  void close_for(CloseReason reason);
  bool upload_too_slow();
  // Counts the TLS handshake once: at the first request, else when the connection closes.
  void count_handshake();
  // Adds the bytes read since the last call to the worker's Stats.
  void count_bytes_read();

  Worker& worker_;
  size_t registry_index_ = 0;
  // The request in progress and its body, made at the first head: a connection that has sent
  // none (a slow or idle one, or HTTP/2's) holds neither.
  std::unique_ptr<http::Body> request_body_;  // outlives request_, which reads it
  std::unique_ptr<Request> request_;
  Request& request();
  std::optional<CloseReason> close_reason_;  // decided by edge; wins over how the close happens
  char client_ip_[48] = {};
  // The address counted in Shared::client_conns (max_conns_per_client), let go at the close.
  std::optional<rules::IpAddress> counted_client_;
  tls::TlsTransport* tls_ = nullptr;  // the transport, when the connection is TLS
  bool h2c_ = false;
  std::unique_ptr<H2Client> h2_;  // the connection speaks HTTP/2
  Tunnel* tunnel_ = nullptr;      // the connection is a tunnel (it detaches it at the close)
  bool handshake_counted_ = false;
  uint64_t bytes_counted_ = 0;  // of bytes_read(), in the worker's Stats already
};

}  // namespace edge::proxy
