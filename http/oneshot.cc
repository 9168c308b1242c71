#include "http/oneshot.h"

#include <utility>

#include "http/tcp_transport.h"

namespace edge::http {

OneShot::OneShot(uv_loop_t* loop, std::string request, Options options, Done done)
    : request_(std::move(request)), options_(std::move(options)), done_(std::move(done)),
      parser_(options_.max_head_bytes) {
  const uv_buf_t read_buffer = uv_buf_init(buffer_, sizeof buffer_);
  transport_ = options_.transport ? options_.transport(loop, read_buffer)
                                  : std::make_unique<TcpTransport>(loop, read_buffer);
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  parser_.expect_response(options_.head_request);
  parser_.set_body_sink(&body_);
}

OneShot* OneShot::start(uv_loop_t* loop, const sockaddr* address, std::string request, Options options, Done done) {
  auto* shot = new OneShot(loop, std::move(request), std::move(options), std::move(done));
  uv_timer_start(&shot->timer_, &OneShot::on_timer, shot->options_.timeout_ms, 0);
  if (!shot->transport_) {
    shot->fail_later(Failure::kConnect, UV_ENOMEM);
  } else if (int rc = shot->transport_->connect(address, shot); rc < 0) {
    shot->fail_later(Failure::kConnect, rc);
  }
  return shot;
}

void OneShot::stop() {
  done_ = nullptr;
  close();
}

void OneShot::run(const sockaddr* address, std::string request, Options options, Done done) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  start(&loop, address, std::move(request), std::move(options), std::move(done));
  // Returns once the exchange has ended and its handles are closed: nothing else is on this loop.
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

void OneShot::on_connected(int status) {
  if (status < 0) return finish(Failure::kConnect, status);
  // Reading starts first, so an answer that comes before the request is fully written is seen.
  if (int rc = transport_->read_start(this); rc < 0) return finish(Failure::kRead, rc);
  uv_buf_t buf = uv_buf_init(request_.data(), static_cast<unsigned>(request_.size()));
  if (int rc = transport_->write(&buf, 1, this); rc < 0) return finish(Failure::kWrite, rc);
}

void OneShot::on_written(int status) {
  if (finished_ || status >= 0) return;
  write_status_ = status;
}

void OneShot::on_data(const char* data, size_t len) {
  if (finished_) return;
  std::string_view rest(data, len);
  bool again = false;
  while (!rest.empty() || again) {
    ParseResult r = parser_.feed(rest);
    rest.remove_prefix(r.consumed);
    again = r.event == ParseEvent::kHead;
    if (r.event == ParseEvent::kError) return finish(Failure::kBadResponse);
    if (parser_.body_bytes() > options_.max_body_bytes) return finish(Failure::kTooLarge);
    if (r.event == ParseEvent::kMessage) return finish(Failure::kNone);
    if (r.event == ParseEvent::kHead && options_.wait == Wait::kHead) return finish(Failure::kNone);
    if (r.event == ParseEvent::kNeedMore && r.consumed == 0) break;
  }
}

void OneShot::on_end(int status) {
  if (finished_) return;
  // Without any byte of an answer, a write that failed first is the better explanation.
  if (write_status_ < 0 && !parser_.started()) return finish(Failure::kWrite, write_status_);
  if (status != UV_EOF) return finish(Failure::kRead, status);
  if (parser_.finish() == ParseEvent::kMessage && options_.wait == Wait::kMessage) return finish(Failure::kNone);
  finish(parser_.started() ? Failure::kTruncated : Failure::kClosed);
}

void OneShot::on_timer(uv_timer_t* timer) noexcept {
  auto* shot = static_cast<OneShot*>(timer->data);
  if (shot->finished_) return;
  if (shot->pending_failure_ != Failure::kNone) return shot->finish(shot->pending_failure_, shot->pending_status_);
  shot->finish(Failure::kTimeout);
}

// done must come later than start(), so a failure found at once waits for the loop's next turn.
void OneShot::fail_later(Failure failure, int uv_status) {
  pending_failure_ = failure;
  pending_status_ = uv_status;
  uv_timer_start(&timer_, &OneShot::on_timer, 0, 0);
}

void OneShot::finish(Failure failure, int uv_status) {
  close();
  const bool libuv_error = failure == Failure::kConnect || failure == Failure::kWrite || failure == Failure::kRead;
  const bool parser_error =
      failure == Failure::kClosed || failure == Failure::kTruncated || failure == Failure::kBadResponse;
  const char* detail = libuv_error ? uv_strerror(uv_status) : parser_error ? parser_.error_reason() : "";
  // Moved out first: done may start another exchange, and this one is gone once the loop runs.
  Done done = std::move(done_);
  done_ = nullptr;
  if (done) done(Outcome{failure, libuv_error ? uv_status : 0, detail, parser_, body_, transport_.get()});
}

// A write still queued completes with UV_ECANCELED before the close does, and finds finished_
// set. The timer closes last, so the OneShot is freed from its callback, never under one of the
// transport's.
void OneShot::close() {
  if (finished_) return;
  finished_ = true;
  uv_timer_stop(&timer_);
  if (transport_) return transport_->close(this);
  on_closed();
}

void OneShot::on_closed() {
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
           [](uv_handle_t* timer) noexcept { delete static_cast<OneShot*>(timer->data); });
}

std::string simple_request(std::string_view method, std::string_view target, std::string_view host,
                           std::string_view extra_headers) {
  std::string out;
  out.reserve(method.size() + target.size() + host.size() + extra_headers.size() + 48);
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ").append(host).append("\r\n");
  out.append(extra_headers).append("Connection: close\r\n\r\n");
  return out;
}

}  // namespace edge::http
