// proxy/client: one client connection and the requests it carries, one at a time, in order.
//
// Phases of a connection:
//   waiting   -> no byte of the next request yet (idle_timeout; header_timeout for the first)
//   head      -> request head arriving (header_timeout for the whole head: the slowloris defence)
//   body      -> request body arriving into a Body (body_timeout between reads)
//   forwarding-> the request is complete: a backend is chosen, the response is read at full
//                speed into a Body and written to the client at the client's pace
//   closing   -> the last response is written; lingering until the client closes
// Pipelined bytes that arrive while a request is in progress wait in `pending_` (bounded: past
// it the connection stops reading) and are parsed once the response is written.
//
// Ownership: a ClientConn owns itself: it is created by accept() and deleted in its handles'
// close callbacks. It borrows its Worker and, during an exchange, its UpstreamConn, which it
// abandons before closing.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

#include "balancer/balancer.h"
#include "http/body.h"
#include "http/deadline.h"
#include "http/parser.h"
#include "http/writer.h"
#include "proxy/router.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"

namespace edge::proxy {

class ClientConn final : http::StreamWriter::Owner, UpstreamConn::Owner, balancer::Waiter {
 public:
  static void accept(Worker& worker, uv_stream_t* listener);
  void shutdown();  // the worker is stopping: close now
  // A queued request's slot arrived (on this connection's loop, through the worker).
  void on_granted(int server);
  uint64_t id() const { return id_; }

 private:
  friend class Worker;
  enum class Phase { kWaiting, kHead, kBody, kForwarding, kClosing };

  explicit ClientConn(Worker& worker);
  ~ClientConn() = default;

  void on_data(const char* data, size_t len);
  void on_eof();
  void process_pending();
  void parse(std::string_view data);
  bool on_head();
  void on_request_complete();
  void dispatch();
  void forward_to(int server, bool fresh);
  void release_slot(balancer::Outcome outcome);
  balancer::BackendState& backend_state();
  void granted(int server) override;
  void build_upstream_head();
  void build_response_head(const http::ResponseHead& head, bool complete);
  void send_error(int status, bool may_keep_alive);
  void reject(int status);
  void send_continue();
  void finish_exchange();
  void linger();
  void close_now(CloseReason reason);
  void arm_timer(conf::Duration timeout);
  void on_timer();
  const char* client_ip();

  void on_write_done(int status) override;
  void on_upstream_response(const http::ResponseHead& head, bool complete) override;
  void on_upstream_failed(UpstreamFailure failure, bool reused) override;

  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_shutdown_cb(uv_shutdown_t* req, int status);
  static void on_closed(uv_handle_t* handle);

  Worker& worker_;
  uv_tcp_t tcp_;
  http::Deadline deadline_;
  uv_shutdown_t shutdown_req_;
  int open_handles_ = 0;
  size_t registry_index_ = 0;
  Phase phase_ = Phase::kWaiting;
  bool closed_ = false;
  bool reading_ = false;
  bool client_eof_ = false;
  bool in_process_ = false;
  bool process_again_ = false;

  http::RequestParser parser_;
  http::Body request_body_;
  http::Body response_body_;
  http::StreamWriter writer_;
  std::string pending_;        // received, not yet parsed
  std::string upstream_head_;  // the request head as sent to the backend
  std::string response_head_;  // the response head as sent to the client

  // The exchange in progress.
  RouteMatch route_;
  UpstreamConn* upstream_ = nullptr;
  uint64_t tried_servers_ = 0;  // bit per server index (mod 64)
  int slot_server_ = -1;        // the server whose balancer slot this exchange holds
  bool queued_ = false;         // waiting in the backend's queue
  int last_failure_status_ = 0;
  std::string absolute_authority_;  // the host of an absolute-form target, else empty
  std::string origin_target_;       // that target in origin form, else empty  // the answer if no server is left to try (0: 503)
  uint64_t id_ = 0;             // unique on this worker: grants find the connection by it
  int early_status_ = 0;  // an answer decided at the head (404, 417) once the body is read
  bool request_keep_alive_ = true;
  bool response_keep_alive_ = true;
  bool response_started_ = false;
  bool chunked_response_ = false;
  bool retried_fresh_ = false;
  uint64_t requests_ = 0;
  uint64_t progress_mark_ = 0;  // bytes written at the last send-timeout check
  char client_ip_[48] = {};
};

}  // namespace edge::proxy
