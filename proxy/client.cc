#include "proxy/client.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "http/message.h"
#include "proxy/heads.h"

namespace edge::proxy {

namespace {
using http::iequals;

constexpr size_t kMaxPending = 64 * 1024;
constexpr uint64_t kLingerMs = 2000;

}  // namespace

ClientConn::ClientConn(Worker& worker)
    : worker_(worker),
      parser_({worker.limits().max_header_bytes, worker.limits().max_request_line, worker.limits().max_body_bytes,
               worker.limits().max_header_fields}),
      writer_(this),
      output_(reinterpret_cast<uv_stream_t*>(&tcp_)),
      request_(worker, *this) {
  request_body_.set_options(worker.body_options(true));
}

void ClientConn::accept(Worker& worker, uv_stream_t* listener) {
  auto* conn = new ClientConn(worker);
  uv_tcp_init(worker.loop(), &conn->tcp_);
  conn->deadline_.init(worker.loop(), [](void* owner) { static_cast<ClientConn*>(owner)->on_timer(); }, conn);
  conn->tcp_.data = conn;
  conn->open_handles_ = 2;
  worker.add_client(conn);
  Shared& shared = worker.shared();
  shared.client_connections.fetch_add(1, std::memory_order_relaxed);
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&conn->tcp_)) != 0) return conn->close_now(CloseReason::kClientClosed);
  if (shared.client_connections.load(std::memory_order_relaxed) > worker.limits().max_connections) {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(kOverloadedAnswer.data()), kOverloadedAnswer.size());
    uv_try_write(reinterpret_cast<uv_stream_t*>(&conn->tcp_), &buf, 1);
    return conn->close_now(CloseReason::kTooManyConnections);
  }
  uv_tcp_nodelay(&conn->tcp_, 1);
  conn->reading_ = true;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&conn->tcp_), &ClientConn::on_alloc, &ClientConn::on_read);
  // The first request's head must arrive within header_timeout of the connection.
  conn->arm_timer(worker.limits().header_timeout);
}

void ClientConn::shutdown() { close_now(CloseReason::kShutdown); }

// ---- input ----

void ClientConn::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  *buf = Worker::of(handle->loop).read_buffer();
}

void ClientConn::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<ClientConn*>(stream->data);
  if (nread > 0) return c->on_data(buf->base, static_cast<size_t>(nread));
  if (nread < 0) c->on_eof();
}

void ClientConn::on_data(const char* data, size_t len) {
  if (closed_) return;
  switch (phase_) {
    case Phase::kClosing:
      return;  // lingering: the client's leftovers are discarded
    case Phase::kForwarding:
      pending_.append(data, len);
      if (pending_.size() > kMaxPending && reading_) {
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
        reading_ = false;
      }
      return;
    default:
      parse({data, len});
  }
}

void ClientConn::on_eof() {
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  reading_ = false;
  client_eof_ = true;
  switch (phase_) {
    case Phase::kForwarding:
      // A client that leaves before the answer frees the backend; one that only half-closed
      // after its answer started still gets the rest of it.
      if (!request_.responding()) return close_now(CloseReason::kClientAbort);
      response_keep_alive_ = false;
      return;
    case Phase::kClosing:
      return close_now(CloseReason::kKeepAliveDone);
    default:
      return close_now(CloseReason::kClientClosed);
  }
}

void ClientConn::process_pending() {
  // Re-entered when a pipelined request is answered synchronously: the outer call loops.
  if (in_process_) {
    process_again_ = true;
    return;
  }
  in_process_ = true;
  do {
    process_again_ = false;
    if (pending_.empty() || phase_ != Phase::kWaiting || closed_) break;
    std::string input = std::move(pending_);
    pending_.clear();
    parse(input);
  } while (process_again_);
  in_process_ = false;
}

void ClientConn::parse(std::string_view data) {
  // After a head the parser is fed again even with no bytes left: a body-less request is
  // complete right at its head.
  bool after_head = false;
  while ((!data.empty() || after_head) && !closed_) {
    after_head = false;
    if (phase_ == Phase::kForwarding || phase_ == Phase::kClosing) {
      if (phase_ == Phase::kForwarding) pending_.append(data);
      return;
    }
    http::ParseResult r = parser_.feed(data);
    data.remove_prefix(r.consumed);
    switch (r.event) {
      case http::ParseEvent::kError:
        if (parser_.error_status() == 431 && parser_.head().headers.size() >= worker_.limits().max_header_fields)
          worker_.bounds().count(worker_.bounds().too_many_fields);
        return reject(parser_.error_status(), CloseReason::kBadRequest);
      case http::ParseEvent::kHead:
        if (!on_head()) return;
        after_head = true;
        break;
      case http::ParseEvent::kMessage:
        pending_.append(data);
        data = {};
        on_request_complete();
        return;
      case http::ParseEvent::kNeedMore:
        break;
    }
  }
  if (closed_) return;
  if (phase_ == Phase::kWaiting && parser_.in_message()) {
    phase_ = Phase::kHead;
    // A fresh connection's clock started at accept; a kept-alive one's starts now.
    if (requests_ > 0) arm_timer(worker_.limits().header_timeout);
  } else if (phase_ == Phase::kBody) {
    if (upload_too_slow()) {
      worker_.bounds().count(worker_.bounds().slow_uploads);
      return reject(408, CloseReason::kSlowUpload);
    }
    arm_timer(worker_.limits().body_timeout);
  }
}

bool ClientConn::upload_too_slow() {
  // body_timeout alone lets a body arrive a byte per timeout for ever: past the grace, the body
  // must have averaged min_upload_rate since its head ended.
  const conf::Limits& limits = worker_.limits();
  if (limits.min_upload_rate == 0) return false;
  const uint64_t elapsed_ms = uv_now(worker_.loop()) - body_started_at_;
  if (elapsed_ms <= static_cast<uint64_t>(limits.upload_rate_grace.count())) return false;
  return parser_.body_bytes() * 1000 < limits.min_upload_rate * elapsed_ms;
}

bool ClientConn::on_head() {
  http::RequestHead& head = parser_.head();
  phase_ = Phase::kBody;
  if (const int refused = request_.recv(head)) {
    reject(refused, CloseReason::kBadRequest);
    return false;
  }
  const bool has_body = head.chunked || head.content_length.value_or(0) > 0;
  const bool expect = head.headers.get(http::FieldId::kExpect).has_value();
  const int early_status = request_.early_status();
  if (early_status && has_body && expect) {
    // The client waits for our word before sending its body: answer now, and close, since the
    // body may still come.
    request_.synth(early_status, false);
    return false;
  }
  request_body_.clear();
  parser_.set_body_sink(early_status ? nullptr : &request_body_);
  if (has_body && head.version_minor >= 1 && expect) send_continue();
  body_started_at_ = uv_now(worker_.loop());
  arm_timer(worker_.limits().body_timeout);
  return true;
}

void ClientConn::send_continue() {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(kContinueHead.data()), kContinueHead.size());
  int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1);
  if (n == static_cast<int>(buf.len)) return;
  // Rare: the socket is full before we said anything. The rest goes through a write request
  // of its own; the string is static, so only the request needs freeing.
  size_t done = n > 0 ? static_cast<size_t>(n) : 0;
  buf.base += done;
  buf.len -= static_cast<unsigned>(done);
  auto* req = new uv_write_t;
  if (uv_write(req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1, [](uv_write_t* r, int) { delete r; }) != 0)
    delete req;
}

void ClientConn::reject(int status, CloseReason reason) {
  parser_.set_body_sink(nullptr);
  close_reason_ = reason;
  request_.refuse(parser_.head(), status);
}

// ---- the request ----

void ClientConn::on_request_complete() {
  deadline_.clear();
  phase_ = Phase::kForwarding;
  ++requests_;
  worker_.stats().requests.fetch_add(1, std::memory_order_relaxed);
  const http::RequestHead& head = parser_.head();
  request_keep_alive_ = head.keep_alive;
  request_.start(head, request_body_);
  // Waiting on another request's fetch is bounded: past coalesce_timeout it goes alone.
  if (request_.waiting_for_fill()) arm_timer(worker_.shared().config.cache.coalesce_timeout);
}

ClientFraming ClientConn::framing(bool may_keep_alive) {
  ClientFraming framing;
  framing.http10 = parser_.head().version_minor == 0;
  framing.keep_alive = may_keep_alive && request_keep_alive_ && phase_ == Phase::kForwarding && !client_eof_ &&
                       !worker_.stopping();
  return framing;
}

void ClientConn::send(const Response& response) {
  response_keep_alive_ = response.keep_alive;
  // A refusal reads nothing more: what follows it cannot be trusted.
  if (response.synthetic && !response.keep_alive) phase_ = Phase::kClosing;
  start_send_clock();
  writer_.start(&output_, response.head, response.body, response.chunked, response.release);
}

void ClientConn::on_write_done(int status) {
  if (status < 0) return close_now(CloseReason::kWriteError);
  if (phase_ == Phase::kClosing) return linger();
  finish_exchange();
}

void ClientConn::finish_exchange() {
  request_.done();
  if (!response_keep_alive_ || worker_.stopping()) {
    phase_ = Phase::kClosing;
    return linger();
  }
  phase_ = Phase::kWaiting;
  request_body_.clear();
  arm_timer(worker_.limits().idle_timeout);
  if (!reading_ && !client_eof_) {
    reading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &ClientConn::on_alloc, &ClientConn::on_read);
  }
  process_pending();
}

std::string_view ClientConn::client_ip() {
  if (client_ip_[0]) return client_ip_;
  sockaddr_storage peer{};
  int len = sizeof peer;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    if (peer.ss_family == AF_INET6)
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&peer), client_ip_, sizeof client_ip_);
    else
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&peer), client_ip_, sizeof client_ip_);
  }
  if (!client_ip_[0]) std::strcpy(client_ip_, "unknown");
  return client_ip_;
}

// ---- timers and closing ----

void ClientConn::arm_timer(conf::Duration timeout) {
  deadline_.set(static_cast<uint64_t>(timeout.count()));
}

// send_timeout is checked every quarter of itself, so a client is closed between send_timeout and
// 1.25 times it after the last progress we saw, not up to twice it after.
conf::Duration ClientConn::send_check_interval() const {
  return std::max(conf::Duration(1), worker_.limits().send_timeout / 4);
}

void ClientConn::start_send_clock() {
  progress_mark_ = 0;
  queued_mark_ = 0;
  progress_at_ = uv_now(worker_.loop());
  arm_timer(send_check_interval());
}

void ClientConn::on_timer() {
  switch (phase_) {
    case Phase::kWaiting:
      // Nothing of a request has arrived: there is nobody to answer.
      return close_now(requests_ == 0 ? CloseReason::kHeaderTimeout : CloseReason::kIdleTimeout);
    case Phase::kHead:
      return reject(408, CloseReason::kHeaderTimeout);
    case Phase::kBody:
      return reject(408, CloseReason::kBodyTimeout);
    case Phase::kForwarding:
    case Phase::kClosing:
      if (request_.waiting_for_fill() && !request_.responding()) {
        // Waited coalesce_timeout for another request's fetch: go to the backend alone.
        return request_.stop_waiting();
      }
      if (writer_.active()) {
        // send_timeout bounds how long a client may leave us unable to write, not the whole
        // download: progress (a write completed, or the kernel took part of one) resets the
        // clock, and waiting for the backend is not the client's doing.
        const uint64_t now = uv_now(worker_.loop());
        const size_t queued = uv_stream_get_write_queue_size(reinterpret_cast<uv_stream_t*>(&tcp_));
        if (!writer_.write_in_flight() || writer_.bytes_written() != progress_mark_ || queued != queued_mark_) {
          progress_mark_ = writer_.bytes_written();
          queued_mark_ = queued;
          progress_at_ = now;
        } else if (now - progress_at_ >= static_cast<uint64_t>(worker_.limits().send_timeout.count())) {
          worker_.bounds().count(worker_.bounds().send_timeouts);
          return close_now(CloseReason::kSendTimeout);
        }
        return arm_timer(send_check_interval());
      }
      if (phase_ == Phase::kClosing) return close_now(CloseReason::kKeepAliveDone);
      return;
  }
}

void ClientConn::linger() {
  // Closing at once could reset the connection under the response we just wrote if the client
  // is still sending; half-close, drain its leftovers for a moment, then close.
  phase_ = Phase::kClosing;
  if (closed_) return;
  if (client_eof_) return close_now(CloseReason::kKeepAliveDone);
  deadline_.set(kLingerMs);
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), &ClientConn::on_shutdown_cb) != 0)
    return close_now(CloseReason::kKeepAliveDone);
  if (!reading_) {
    reading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &ClientConn::on_alloc, &ClientConn::on_read);
  }
}

void ClientConn::on_shutdown_cb(uv_shutdown_t*, int) {}

void ClientConn::close_now(CloseReason reason) {
  if (closed_) return;
  closed_ = true;
  // A rejected request's connection ends for the rejection, however its last write goes.
  worker_.stats().count_close(close_reason_.value_or(reason));
  request_.done();
  writer_.abort();
  worker_.remove_client(this);
  worker_.shared().client_connections.fetch_sub(1, std::memory_order_relaxed);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &ClientConn::on_closed);
  uv_close(deadline_.handle(), &ClientConn::on_closed);
}

void ClientConn::on_closed(uv_handle_t* handle) {
  void* data = handle->data;
  auto* c = handle->type == UV_TIMER ? static_cast<ClientConn*>(static_cast<http::Deadline*>(data)->owner())
                                     : static_cast<ClientConn*>(data);
  if (--c->open_handles_ == 0) delete c;
}

}  // namespace edge::proxy
