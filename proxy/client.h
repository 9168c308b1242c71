// proxy/client: one client connection and the requests it carries, one at a time, in order.
//
// Phases of a connection:
//   waiting   -> no byte of the next request yet (idle_timeout; header_timeout for the first)
//   head      -> request head arriving (header_timeout for the whole head: the slowloris defence)
//   body      -> request body arriving into a Body (body_timeout between reads, and past
//                upload_rate_grace at least min_upload_rate on average)
//   forwarding-> the request is complete: it is answered from the cache, waits on (or starts) a
//                cache fill of its key, or passes through a Fetch whose response is read at full
//                speed into a Body and written to the client at the client's pace
//   closing   -> the last response is written; lingering until the client closes
// Pipelined bytes that arrive while a request is in progress wait in `pending_` (bounded: past
// it the connection stops reading) and are parsed once the response is written.
//
// What a request becomes once its head is read (route, cache, backend, the response's head) is
// proxy/request's: the connection owns bytes, timers and linger only, and is the Request's
// Client.
//
// Ownership: a ClientConn owns itself: it is created by accept() and deleted in its handles'
// close callbacks. It borrows its Worker. It embeds its Request (done before the next request
// or closing).
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

#include <memory>
#include <optional>

#include "http/body.h"
#include "http/shared_body.h"
#include "http/deadline.h"
#include "http/parser.h"
#include "http/tcp_transport.h"
#include "http/writer.h"
#include "proxy/request.h"
#include "proxy/worker.h"

namespace edge::proxy {

class ClientConn final : http::StreamWriter::Owner, Request::Client {
 public:
  static void accept(Worker& worker, uv_stream_t* listener);
  void shutdown();  // the worker is stopping: close now

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
  bool upload_too_slow();
  void on_request_complete();
  // Answers `status` and closes the connection, counted under `reason`.
  void reject(int status, CloseReason reason);
  void send_continue();
  void finish_exchange();
  void linger();
  void close_now(CloseReason reason);
  void arm_timer(conf::Duration timeout);
  conf::Duration send_check_interval() const;
  void start_send_clock();  // a response starts: send_timeout runs from now
  void on_timer();

  // Request::Client
  ClientFraming framing(bool may_keep_alive) override;
  void send(const Response& response) override;
  void kick() override { writer_.kick(); }
  void broke_off(CloseReason reason) override { close_now(reason); }
  std::string_view client_ip() override;

  void on_write_done(int status) override;

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
  http::StreamWriter writer_;
  http::StreamOutput output_;  // the writer's way to tcp_
  std::string pending_;  // received, not yet parsed

  Request request_;  // the request in progress
  std::optional<CloseReason> close_reason_;  // decided by reject(); wins over how the close happens
  bool request_keep_alive_ = true;
  bool response_keep_alive_ = true;
  uint64_t requests_ = 0;
  uint64_t progress_mark_ = 0;  // bytes written at the last send-timeout check
  size_t queued_mark_ = 0;      // bytes libuv still had to write then
  uint64_t progress_at_ = 0;    // loop time (ms) of the last check that saw progress
  uint64_t body_started_at_ = 0;  // loop time (ms) the request's head ended
  char client_ip_[48] = {};
};

}  // namespace edge::proxy
