// http/transport: the byte stream under an HTTP connection, as an interface, so the same
// connection code runs over plain TCP and over TLS.
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
// - queued_bytes(): what was accepted by write() and is not yet handed to the kernel (for TLS:
//   the plaintext not yet encrypted plus the ciphertext not yet handed): the measure of a
//   client's progress in reading.
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
// How TLS fits (tls/transport.h): a TlsTransport owns another Transport (a TcpTransport in
// practice) and an SSL object whose BIO reads and writes the transport's buffers, so every socket
// byte still goes through the inner transport on libuv. Its reads hand the inner transport's
// ciphertext to OpenSSL and deliver what SSL_read yields to the Reader (a server's handshake runs
// on the first reads, before any on_data; bytes buffered when the reader stops wait, in order, for
// the next read_start(), and reach the reader from the loop). Its write() runs SSL_write over the
// caller's buffers at most a bounded amount ahead of what the socket accepted, and hands the
// ciphertext from buffers of its own to the inner transport: it returns the plaintext bytes whose
// ciphertext the socket took at once, keeps the caller's remaining buffers (valid until `done`, as
// above) and encrypts them as the socket drains; `done` follows once every byte is encrypted and
// taken (inside a delivery it only encrypts, and the whole delivery's ciphertext leaves in one
// write when the reader returns). Writes made before the handshake completed are held until it did.
// queued_bytes() is the plaintext not yet encrypted plus the ciphertext the socket has not taken.
// shutdown() sends close_notify after the queued writes, then half-closes the socket; close()
// closes the socket and the transport's own idle handle. A client-side TlsTransport connects its
// socket and runs the handshake before it reports on_connected. Nothing above the Transport
// changes.
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
