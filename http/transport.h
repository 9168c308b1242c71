// http/transport: the byte stream under an HTTP connection, as an interface, so the same
// connection code runs over plain TCP today and over TLS (or an HTTP/2 stream) later.
//
// Two halves:
// - Output: writing. The StreamWriter (http/writer.h) needs only this half (an HTTP/2 stream
//   can be one without being a whole transport).
// - Transport: the whole stream: reading into a Reader, connecting (the client side),
//   half-close, close with one completion, the peer's address.
//
// Contract (every implementation; all calls on the loop's thread):
// - write(bufs, count, done) tries to write at once. It returns a negative libuv error (nothing
//   written, `done` never called), or how many bytes went out at once. When that is the total,
//   `done` is never called. Otherwise the rest is queued behind earlier writes and
//   `done->on_written(status)` follows exactly once, never from inside write(): 0 once the
//   rest is written, a negative libuv error else (UV_ECANCELED when the transport is closed
//   first, still before its close completion). The bytes (not the uv_buf_t array) stay valid
//   and unchanged until then. At most one write with a `done` is queued at a time; writes
//   without one (`done` null) may be queued any time and are for bytes that outlive the
//   transport (static strings: "100 Continue", a refusal).
// - queued_bytes(): what was accepted by write() and is not yet handed to the kernel (or, for
//   TLS, not yet encrypted and handed): the measure of a client's progress in reading.
// - read_start(reader) delivers bytes to reader->on_data(), each delivery valid only during the
//   call, until read_stop(). The end of the peer's stream (UV_EOF) or a failure (a negative
//   libuv error) is told once through reader->on_end(status), and reading has stopped then.
//   The reader may call read_stop(), close() or write() from inside either.
// - shutdown(): the peer gets end-of-stream after the queued writes (TCP FIN; TLS sends
//   close_notify first). Reading goes on. Returns 0 or a negative libuv error.
// - connect(address, done), client side only: opens the stream to `address`. Returns 0 or a
//   negative libuv error (then `done` is never called). done->on_connected(status) follows
//   exactly once, never from inside connect() and never after close(): 0 once the stream is
//   ready for HTTP bytes (for TLS: after the handshake), a negative libuv error else.
// - close(done): stops everything; queued writes complete with UV_ECANCELED; then, exactly once
//   and never from inside close(), done->on_closed(): only from then may the owner free the
//   Transport. Called at most once. Until then the Transport must stay where it is.
//
// How TLS fits: a TlsTransport owns a TcpTransport (or its uv_tcp_t) and an SSL object with
// memory BIOs. Its reads take the socket's ciphertext into the read BIO and deliver what
// SSL_read yields to the Reader (the handshake happens on the first reads, before any
// on_data); its write() runs SSL_write over the buffers into the write BIO and hands the
// ciphertext to the socket, so the caller's bytes are consumed at once (write() then returns
// the total and its queued_bytes() is the ciphertext still queued); shutdown() sends
// close_notify; close() closes the socket. A client-side TlsTransport connects its socket and
// runs the handshake before it reports on_connected. Nothing above the Transport changes.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstddef>

namespace edge::http {

class Output {
 public:
  class WriteDone {
   public:
    virtual void on_written(int status) = 0;

   protected:
    ~WriteDone() = default;
  };

  virtual int write(const uv_buf_t* bufs, unsigned count, WriteDone* done) = 0;
  virtual size_t queued_bytes() const = 0;

 protected:
  ~Output() = default;
};

class Transport : public Output {
 public:
  class Reader {
   public:
    virtual void on_data(const char* data, size_t len) = 0;
    virtual void on_end(int status) = 0;  // UV_EOF or a negative libuv error

   protected:
    ~Reader() = default;
  };
  class Closed {
   public:
    virtual void on_closed() = 0;

   protected:
    ~Closed() = default;
  };
  class Connected {
   public:
    virtual void on_connected(int status) = 0;

   protected:
    ~Connected() = default;
  };

  virtual ~Transport() = default;

  // 0, or a negative libuv error (then nothing will be delivered).
  virtual int read_start(Reader* reader) = 0;
  virtual void read_stop() = 0;
  virtual int connect(const sockaddr* address, Connected* done) = 0;
  virtual int shutdown() = 0;
  virtual void close(Closed* done) = 0;
  // The peer's address; 0 or a negative libuv error.
  virtual int peer_address(sockaddr_storage* out) const = 0;
};

}  // namespace edge::http
