#include "http/oneshot.h"

#include <utility>

namespace edge::http {

OneShot::OneShot(uv_loop_t* loop, std::string request, Options options, Done done)
    : request_(std::move(request)), options_(options), done_(std::move(done)), parser_(options.max_head_bytes) {
  uv_tcp_init(loop, &tcp_);
  uv_timer_init(loop, &timer_);
  tcp_.data = timer_.data = connect_req_.data = write_req_.data = this;
  parser_.expect_response(options_.head_request);
  parser_.set_body_sink(&body_);
}

OneShot* OneShot::start(uv_loop_t* loop, const sockaddr* address, std::string request, Options options, Done done) {
  auto* shot = new OneShot(loop, std::move(request), options, std::move(done));
  uv_timer_start(&shot->timer_, &OneShot::on_timer, options.timeout_ms, 0);
  if (int rc = uv_tcp_connect(&shot->connect_req_, &shot->tcp_, address, &OneShot::on_connect); rc < 0)
    shot->fail_later(Failure::kConnect, rc);
  return shot;
}

void OneShot::stop() {
  done_ = nullptr;
  close();
}

void OneShot::run(const sockaddr* address, std::string request, Options options, Done done) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  start(&loop, address, std::move(request), options, std::move(done));
  // Returns once the exchange has ended and its handles are closed: nothing else is on this loop.
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

void OneShot::on_connect(uv_connect_t* req, int status) noexcept {
  auto* shot = static_cast<OneShot*>(req->data);
  if (shot->finished_) return;
  if (status < 0) return shot->finish(Failure::kConnect, status);
  auto* stream = reinterpret_cast<uv_stream_t*>(&shot->tcp_);
  // Reading starts first, so an answer that comes before the request is fully written is seen.
  if (int rc = uv_read_start(stream, &OneShot::on_alloc, &OneShot::on_read); rc < 0)
    return shot->finish(Failure::kRead, rc);
  uv_buf_t buf = uv_buf_init(shot->request_.data(), static_cast<unsigned>(shot->request_.size()));
  if (int rc = uv_write(&shot->write_req_, stream, &buf, 1, &OneShot::on_write); rc < 0)
    return shot->finish(Failure::kWrite, rc);
}

void OneShot::on_write(uv_write_t* req, int status) noexcept {
  auto* shot = static_cast<OneShot*>(req->data);
  if (shot->finished_ || status >= 0) return;
  shot->write_status_ = status;
}

void OneShot::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* shot = static_cast<OneShot*>(handle->data);
  *buf = uv_buf_init(shot->buffer_, sizeof shot->buffer_);
}

void OneShot::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* shot = static_cast<OneShot*>(stream->data);
  if (shot->finished_ || nread == 0) return;
  if (nread < 0) return shot->read_ended(static_cast<int>(nread));
  shot->read(std::string_view(buf->base, static_cast<size_t>(nread)));
}

void OneShot::read(std::string_view data) {
  bool again = false;
  while (!data.empty() || again) {
    ParseResult r = parser_.feed(data);
    data.remove_prefix(r.consumed);
    again = r.event == ParseEvent::kHead;
    if (r.event == ParseEvent::kError) return finish(Failure::kBadResponse);
    if (parser_.body_bytes() > options_.max_body_bytes) return finish(Failure::kTooLarge);
    if (r.event == ParseEvent::kMessage) return finish(Failure::kNone);
    if (r.event == ParseEvent::kHead && options_.wait == Wait::kHead) return finish(Failure::kNone);
    if (r.event == ParseEvent::kNeedMore && r.consumed == 0) break;
  }
}

void OneShot::read_ended(int status) {
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
  if (done) done(Outcome{failure, libuv_error ? uv_status : 0, detail, parser_, body_});
}

// Callbacks still to come (a connect or write cancelled by the close reports UV_ECANCELED
// before the close callback) find finished_ set and do nothing.
void OneShot::close() {
  finished_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &OneShot::on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &OneShot::on_closed);
}

void OneShot::on_closed(uv_handle_t* handle) noexcept {
  auto* shot = static_cast<OneShot*>(handle->data);
  if (--shot->open_handles_ == 0) delete shot;
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
