// http/tcp_transport: the Transport over a uv_tcp_t, and the Output half alone over a stream
// someone else owns.
//
// TcpTransport owns its uv_tcp_t and the write request it queues with; it borrows the read
// buffer it was given (one per loop is enough: every delivery is consumed before the next
// read). It is created, then accept()ed or adopted; after close() it must stay alive until its
// Closed completion.
//
// StreamOutput writes to a uv_stream_t its owner keeps (the owner reads, shuts down and closes
// it): for connections that drive their own socket. It must outlive its writes, as the stream
// must.
#pragma once

#include <uv.h>

#include "http/transport.h"

namespace edge::http {

class StreamOutput final : public Output {
 public:
  explicit StreamOutput(uv_stream_t* stream) : stream_(stream) { request_.data = this; }
  StreamOutput(const StreamOutput&) = delete;
  StreamOutput& operator=(const StreamOutput&) = delete;

  int write(const uv_buf_t* bufs, unsigned count, WriteDone* done) override;
  size_t queued_bytes() const override { return uv_stream_get_write_queue_size(stream_); }

 private:
  static void on_write(uv_write_t* req, int status) noexcept;

  uv_stream_t* stream_;
  uv_write_t request_;  // the one queued write with a completion
  WriteDone* done_ = nullptr;
};

class TcpTransport final : public Transport {
 public:
  // `read_buffer` is borrowed for the transport's life.
  TcpTransport(uv_loop_t* loop, uv_buf_t read_buffer);
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  // Takes the next connection from `listener` (TCP_NODELAY on); 0 or a negative libuv error
  // (then only close() remains).
  int accept(uv_stream_t* listener);

  int write(const uv_buf_t* bufs, unsigned count, WriteDone* done) override { return output_.write(bufs, count, done); }
  size_t queued_bytes() const override { return output_.queued_bytes(); }
  int read_start(Reader* reader) override;
  void read_stop() override;
  int shutdown() override;
  void close(Closed* done) override;
  int peer_address(sockaddr_storage* out) const override;

 private:
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_shutdown(uv_shutdown_t* req, int status) noexcept;
  static void on_close(uv_handle_t* handle) noexcept;

  uv_tcp_t tcp_;
  StreamOutput output_;
  uv_buf_t read_buffer_;
  uv_shutdown_t shutdown_request_;
  Reader* reader_ = nullptr;
  Closed* closed_ = nullptr;
  bool closing_ = false;
};

}  // namespace edge::http
