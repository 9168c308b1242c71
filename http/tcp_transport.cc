#include "http/tcp_transport.h"

#include "http/body_arena.h"

namespace edge::http {

namespace {
// While bytes wait for a full socket, this much of them waits in libuv's queue (copied by the
// kernel when the socket takes it): its completion says the socket has room again, and the rest
// follows by send_now(). So a slow reader costs a bounded copy per wait, not the whole body.
constexpr size_t kWaitPiece = 32 * 1024;
}  // namespace

int TcpTransport::write(const uv_buf_t* bufs, unsigned count, WriteDone* done) {
  size_t total = 0;
  for (unsigned i = 0; i < count; ++i) total += bufs[i].len;
  if (deferring()) {
    // Only a write without a completion can come now (one with a completion is in flight): it
    // goes after the deferred bytes.
    if (done) return UV_EBUSY;
    deferred_->bufs.insert(deferred_->bufs.end(), bufs, bufs + count);
    deferred_->bytes += total;
    return 0;
  }
  uv_os_fd_t fd;
  if (done && any_in_arena(bufs, count) && uv_stream_get_write_queue_size(stream()) == 0 &&
      uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd) == 0) {
    const ssize_t sent = send_now(fd, bufs, count);
    if (sent < 0) return static_cast<int>(sent);
    if (static_cast<size_t>(sent) == total) return static_cast<int>(sent);
    if (!deferred_) deferred_ = std::make_unique<Deferred>();
    deferred_->bufs.assign(bufs, bufs + count);
    deferred_->bytes = total;
    drop_deferred(static_cast<size_t>(sent));
    write_done_ = done;
    const int rc = wait_for_room();
    if (rc < 0) {
      deferred_->bufs.clear();
      deferred_->bytes = 0;
      write_done_ = nullptr;
      return rc;
    }
    return static_cast<int>(sent);
  }

  int written = uv_try_write(stream(), bufs, count);
  if (written < 0 && written != UV_EAGAIN) return written;
  size_t sent = written > 0 ? static_cast<size_t>(written) : 0;
  if (sent == total) return static_cast<int>(sent);

  // libuv copies the array, not the bytes: a local copy trimmed by what went out will do.
  uv_buf_t rest[256];
  unsigned first = 0;
  while (sent >= bufs[first].len) sent -= bufs[first++].len;
  const unsigned left = count - first;
  if (left > sizeof rest / sizeof rest[0]) return UV_EINVAL;
  for (unsigned i = 0; i < left; ++i) rest[i] = bufs[first + i];
  rest[0].base += sent;
  rest[0].len -= static_cast<unsigned>(sent);

  const int rc = queue(rest, left, done);
  return rc < 0 ? rc : (written > 0 ? written : 0);
}

int TcpTransport::queue(const uv_buf_t* bufs, unsigned count, WriteDone* done) {
  if (done && !write_request_) {
    write_request_ = std::make_unique<uv_write_t>();
    write_request_->data = this;
  }
  uv_write_t* request = write_request_.get();
  if (!done) {
    // Rare (a full socket before anything else was said): a request of its own, freed when done.
    request = new uv_write_t;
    request->data = nullptr;
  } else {
    write_done_ = done;
  }
  int rc = uv_write(request, stream(), bufs, count, &TcpTransport::on_write);
  if (rc < 0) {
    if (!done) delete request;
    write_done_ = nullptr;
  }
  return rc;
}

void TcpTransport::drop_deferred(size_t bytes) {
  std::vector<uv_buf_t>& bufs = deferred_->bufs;
  deferred_->bytes -= bytes;
  size_t whole = 0;
  while (whole < bufs.size() && bytes >= bufs[whole].len) bytes -= bufs[whole++].len;
  bufs.erase(bufs.begin(), bufs.begin() + static_cast<ptrdiff_t>(whole));
  if (bytes > 0) {
    bufs.front().base += bytes;
    bufs.front().len -= bytes;
  }
}

int TcpTransport::wait_for_room() {
  uv_buf_t piece[64];
  unsigned count = 0;
  size_t bytes = 0;
  while (count < 64 && count < deferred_->bufs.size() && bytes < kWaitPiece) {
    piece[count] = deferred_->bufs[count];
    if (bytes + piece[count].len > kWaitPiece) piece[count].len = kWaitPiece - bytes;
    bytes += piece[count++].len;
  }
  drop_deferred(bytes);
  if (!write_request_) {
    write_request_ = std::make_unique<uv_write_t>();
    write_request_->data = this;
  }
  return uv_write(write_request_.get(), stream(), piece, count, &TcpTransport::on_write);
}

void TcpTransport::on_write(uv_write_t* req, int status) noexcept {
  auto* self = static_cast<TcpTransport*>(req->data);
  if (!self) {
    delete req;
    return;
  }
  if (self->deferring()) {
    if (status == 0 && !self->closing_) {
      status = self->send_deferred();
      if (status > 0) return;  // waiting for room again
    }
    self->deferred_->bufs.clear();
    self->deferred_->bytes = 0;
    if (self->deferred_->shutdown && !self->closing_)
      uv_shutdown(&self->stream_request_->shutdown, self->stream(), &TcpTransport::on_shutdown);
    self->deferred_->shutdown = false;
  }
  WriteDone* done = self->write_done_;
  self->write_done_ = nullptr;
  if (done) done->on_written(status);
}

int TcpTransport::send_deferred() {
  uv_os_fd_t fd;
  int rc = uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd);
  if (rc < 0) return rc;
  std::vector<uv_buf_t>& bufs = deferred_->bufs;
  const ssize_t sent = send_now(fd, bufs.data(), static_cast<unsigned>(bufs.size()));
  if (sent < 0) return static_cast<int>(sent);
  drop_deferred(static_cast<size_t>(sent));
  if (bufs.empty()) return 0;
  rc = wait_for_room();
  return rc < 0 ? rc : 1;
}

TcpTransport::TcpTransport(uv_loop_t* loop, uv_buf_t read_buffer)
    : read_buffer_(read_buffer) {
  uv_tcp_init(loop, &tcp_);
  tcp_.data = this;
}

int TcpTransport::accept(uv_stream_t* listener) {
  int rc = uv_accept(listener, stream());
  if (rc == 0) uv_tcp_nodelay(&tcp_, 1);
  return rc;
}

int TcpTransport::read_start(Reader* reader) {
  if (closing_) return UV_EINVAL;
  reader_ = reader;
  int rc = uv_read_start(stream(), &TcpTransport::on_alloc, &TcpTransport::on_read);
  // Already reading is not a failure: the reader is the new one.
  return rc == UV_EALREADY ? 0 : rc;
}

void TcpTransport::read_stop() {
  if (!closing_) uv_read_stop(stream());
}

int TcpTransport::connect(const sockaddr* address, Connected* done) {
  if (closing_) return UV_EINVAL;
  if (!stream_request_) stream_request_ = std::make_unique<StreamRequest>();
  stream_request_->connect.data = this;
  int rc = uv_tcp_connect(&stream_request_->connect, &tcp_, address, &TcpTransport::on_connect);
  if (rc == 0) connected_ = done;
  return rc;
}

void TcpTransport::on_connect(uv_connect_t* req, int status) noexcept {
  auto* self = static_cast<TcpTransport*>(req->data);
  // A close while connecting cancels the request; the owner asked for silence by closing.
  if (self->closing_) return;
  if (status == 0) uv_tcp_nodelay(&self->tcp_, 1);
  Connected* done = self->connected_;
  self->connected_ = nullptr;
  done->on_connected(status);
}

int TcpTransport::shutdown() {
  if (closing_ || connected_) return UV_EINVAL;
  if (!stream_request_) stream_request_ = std::make_unique<StreamRequest>();
  stream_request_->shutdown.data = this;
  if (deferring()) {
    if (deferred_->shutdown) return UV_EINVAL;
    deferred_->shutdown = true;  // after the deferred bytes, in on_write
    return 0;
  }
  return uv_shutdown(&stream_request_->shutdown, stream(), &TcpTransport::on_shutdown);
}

void TcpTransport::close(Closed* done) {
  closing_ = true;
  closed_ = done;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &TcpTransport::on_close);
}

int TcpTransport::peer_address(sockaddr_storage* out) const {
  int len = sizeof *out;
  return uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(out), &len);
}

void TcpTransport::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  *buf = static_cast<TcpTransport*>(handle->data)->read_buffer_;
}

void TcpTransport::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<TcpTransport*>(stream->data);
  if (nread > 0) return self->reader_->on_data(buf->base, static_cast<size_t>(nread));
  if (nread == 0) return;
  uv_read_stop(stream);
  self->reader_->on_end(static_cast<int>(nread));
}

void TcpTransport::on_shutdown(uv_shutdown_t*, int) noexcept {}

void TcpTransport::on_close(uv_handle_t* handle) noexcept {
  auto* self = static_cast<TcpTransport*>(handle->data);
  if (self->closed_) self->closed_->on_closed();
}

}  // namespace edge::http
