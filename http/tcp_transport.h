// http/tcp_transport: the Transport over a uv_tcp_t.
//
// TcpTransport owns its uv_tcp_t and the write request it queues with; it borrows the read
// buffer it was given (one per loop is enough: every delivery is consumed before the next
// read).
//
// A write holding bytes of the body arena (http/body_arena.h) goes out by send_now(), those bytes
// by sendfile(2), when libuv has nothing queued. What the socket did not take then is held here
// (`deferred_`, in order with later writes and before a shutdown); a small piece of it waits in
// libuv's queue, and when that is written the rest is sent the same way again. It is created, then accept()ed or connect()ed; after close() it must stay alive until
// its Closed completion.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "http/transport.h"

namespace edge::http {

class TcpTransport final : public Transport {
 public:
  // `read_buffer` is borrowed for the transport's life.
  TcpTransport(uv_loop_t* loop, uv_buf_t read_buffer);
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  // Takes the next connection from `listener` (TCP_NODELAY on); 0 or a negative libuv error
  // (then only close() remains).
  int accept(uv_stream_t* listener);

  int write(const uv_buf_t* bufs, unsigned count, WriteDone* done) override;
  size_t queued_bytes() const override {
    return uv_stream_get_write_queue_size(stream()) + (deferred_ ? deferred_->bytes : 0);
  }
  int read_start(Reader* reader) override;
  void read_stop() override;
  // TCP_NODELAY is on once connected.
  int connect(const sockaddr* address, Connected* done) override;
  int shutdown() override;
  void close(Closed* done) override;
  int peer_address(sockaddr_storage* out) const override;

 private:
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  const uv_stream_t* stream() const { return reinterpret_cast<const uv_stream_t*>(&tcp_); }
  int queue(const uv_buf_t* bufs, unsigned count, WriteDone* done);
  int wait_for_room();
  // 0 once every deferred byte is sent, 1 while waiting for room, or a negative libuv error.
  int send_deferred();
  void drop_deferred(size_t bytes);
  bool deferring() const { return deferred_ && !deferred_->bufs.empty(); }
  static void on_write(uv_write_t* req, int status) noexcept;
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_connect(uv_connect_t* req, int status) noexcept;
  static void on_shutdown(uv_shutdown_t* req, int status) noexcept;
  static void on_close(uv_handle_t* handle) noexcept;

  uv_tcp_t tcp_;
  // The one queued write with a completion, made for the first write that waits: most
  // connections (and every idle one) never need it.
  std::unique_ptr<uv_write_t> write_request_;
  WriteDone* write_done_ = nullptr;
  // Made at the first write that waits with arena bytes.
  struct Deferred {
    std::vector<uv_buf_t> bufs;
    size_t bytes = 0;
    bool shutdown = false;  // asked for while bytes were deferred
  };
  std::unique_ptr<Deferred> deferred_;
  uv_buf_t read_buffer_;
  // A connect ends before a shutdown can start (shutdown() refuses while connecting): one place
  // for both, made at the first of them (a client's connection that never ends cleanly, such as
  // one held open by a slow client, needs neither).
  union StreamRequest {
    uv_shutdown_t shutdown;
    uv_connect_t connect;
  };
  std::unique_ptr<StreamRequest> stream_request_;
  Reader* reader_ = nullptr;
  Closed* closed_ = nullptr;
  Connected* connected_ = nullptr;
  bool closing_ = false;
};

}  // namespace edge::http
