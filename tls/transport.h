// tls/transport: the Transport (http/transport.h) over TLS, on top of another Transport.
//
// TlsTransport owns the inner Transport (a TcpTransport in practice), the SSL object it is given
// (freed with it) and that object's BIO, which reads and writes the transport's own ciphertext
// buffers: every socket byte still goes through the inner transport on libuv; OpenSSL only
// turns ciphertext into plaintext and back. It borrows the
// plaintext buffer it delivers in (one per loop is enough: every delivery is consumed before the
// next). It also owns one idle handle, for the work that must not run inside the caller's call
// (bytes still buffered when reading resumes, a write's completion). Both handles are closed by
// close(), and only after both closed may the owner free it.
//
// The SSL object comes configured by its SSL_CTX (certificates, verification, SNI and ALPN
// callbacks; for a client: the host name to send and to verify). The role decides who speaks
// first:
// - kServer: the handshake runs on the first reads after read_start(), before any on_data.
//   Before it, a first byte that is not a TLS handshake record (0x16) is plain HTTP sent to the
//   TLS port: the peer gets a plain-text 400 and its end of stream, reading ends with
//   on_end(UV_EPROTO), failure() is kPlainHttp.
// - kClient: connect() connects the inner transport, then runs the handshake; on_connected(0)
//   comes once it completed, a negative libuv error else (UV_EPROTO when the handshake failed,
//   e.g. the certificate did not verify).
//
// The Transport contract holds as written there; in particular:
// - write() encrypts at most kEncryptAhead bytes of plaintext ahead of what the socket accepted;
//   the rest of the caller's buffers is kept (by pointer, the contract keeps the bytes valid) and
//   encrypted as the socket takes the ciphertext. It returns how many plaintext bytes had their
//   ciphertext accepted by the socket at once; `done` follows once every byte of the write is
//   encrypted and accepted. The ciphertext lives in the transport's own buffers, so writes
//   without `done` are fine too.
// - Corking: inside on_data() and a client's on_connected(), write() and shutdown() only
//   encrypt (up to kEncryptAhead) and count those bytes as taken; the ciphertext goes to the
//   socket in one write when the call returns (or at close()). So an answer, the answers to
//   pipelined requests, close_notify after them and a TLS 1.3 server's session tickets (held
//   from the end of the handshake until its first write) share one segment, and a client's
//   Finished goes with its first request.
// - Writes made before the handshake completed (a server's early answer, say) are held, not
//   refused, and go out right after it; writes after a failed handshake, after plain HTTP or
//   after shutdown() are refused (UV_EPROTO, UV_EPIPE).
// - queued_bytes() is the plaintext not yet encrypted plus the ciphertext not yet accepted by
//   the socket; ciphertext_queued() is the second part alone, bounded by about kEncryptAhead
//   plus one record's overhead whatever the size of the writes.
// - After read_stop(), bytes already received (decrypted or not) stay buffered, and are
//   delivered after the next read_start() from the loop, never from inside read_start().
// - Reading ends once: on_end(UV_EOF) after the peer's close_notify; on_end(UV_EPROTO) after a
//   protocol error or a stream that ended without close_notify (truncation), or the socket's
//   own error.
// - shutdown() sends close_notify once the queued writes are out, then half-closes the socket.
#pragma once

#include <openssl/ssl.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/transport.h"

namespace edge::tls {

class TlsTransport final : public http::Transport,
                           http::Transport::Reader,
                           http::Transport::Connected,
                           http::Transport::Closed,
                           http::Output::WriteDone {
 public:
  // The Transport's own names: a base of the same name would make them ambiguous here.
  using Reader = http::Transport::Reader;
  using Connected = http::Transport::Connected;
  using Closed = http::Transport::Closed;
  using WriteDone = http::Output::WriteDone;

  enum class Role { kServer, kClient };
  // Why the stream failed, as far as TLS is concerned (socket errors are only their status).
  enum class Failure {
    kNone,
    kPlainHttp,   // the client spoke plain HTTP to the TLS port
    kHandshake,   // the handshake failed (or the stream ended during it)
    kProtocol,    // a TLS error after the handshake, or the stream ended without close_notify
  };

  static constexpr size_t kEncryptAhead = 64 * 1024;

  // Takes ownership of `inner` and `ssl`; `plaintext_buffer` is borrowed for the transport's
  // life. `inner` is not yet reading (a server's is accepted, a client's not yet connected).
  TlsTransport(std::unique_ptr<http::Transport> inner, SSL* ssl, uv_loop_t* loop, uv_buf_t plaintext_buffer,
               Role role);
  ~TlsTransport() override;
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  int write(const uv_buf_t* bufs, unsigned count, WriteDone* done) override;
  size_t queued_bytes() const override;
  int read_start(Reader* reader) override;
  void read_stop() override;
  int connect(const sockaddr* address, Connected* done) override;
  int shutdown() override;
  void close(Closed* done) override;
  int peer_address(sockaddr_storage* out) const override { return inner_->peer_address(out); }

  // The ciphertext part of queued_bytes(), bounded whatever the writes' size (see above).
  size_t ciphertext_queued() const;
  Failure failure() const { return failure_; }
  // OpenSSL's reason for the failure (or ours when OpenSSL had none), for logs; empty if none.
  std::string error_text() const { return error_text_; }
  bool handshake_done() const { return handshake_done_; }
  std::string_view alpn() const;         // the negotiated protocol, empty if none
  std::string_view server_name() const;  // the SNI name the client sent (server side)
  bool resumed() const { return SSL_session_reused(ssl_) == 1; }
  SSL* ssl() { return ssl_; }

 private:
  // The inner transport's Reader, Connected, Closed and WriteDone.
  void on_data(const char* data, size_t len) override;
  void on_end(int status) override;
  void on_connected(int status) override;
  void on_closed() override;
  void on_written(int status) override;

  static BIO_METHOD* bio_method();
  int take_ciphertext(char* out, size_t size);
  void handed_taken();
  void advance();
  void step_handshake();
  void fail_handshake();
  void deliver();
  void pump();
  bool encrypt_ahead();
  bool hand_ciphertext();
  void drop_plaintext(int status);
  void refuse_plain_http();
  void update_inner_reading();
  // Ciphertext not yet decrypted: in OpenSSL's buffer, left by an earlier delivery, or being
  // delivered.
  bool ciphertext_left() const {
    return SSL_has_pending(ssl_) || saved_at_ < saved_in_.size() || delivering_length_ > 0;
  }
  void defer();
  void record_error(const char* fallback);
  void handle_closed();
  static void on_idle(uv_idle_t* idle) noexcept;
  static void on_idle_closed(uv_handle_t* handle) noexcept;

  std::unique_ptr<http::Transport> inner_;
  SSL* ssl_;
  uv_idle_t idle_;
  uv_buf_t plaintext_buffer_;
  Role role_;

  Reader* reader_ = nullptr;
  Connected* connected_ = nullptr;
  Closed* closed_ = nullptr;
  WriteDone* done_ = nullptr;

  // The caller's plaintext not yet encrypted, front first (a vector reused from write to write).
  std::vector<uv_buf_t> plaintext_;
  size_t plaintext_front_ = 0;
  // Counts of plaintext bytes since the start: accepted by write(), encrypted, and whose
  // ciphertext the socket accepted. done_ waits for sent to reach done_end_.
  uint64_t plaintext_queued_ = 0;
  uint64_t plaintext_encrypted_ = 0;
  uint64_t plaintext_sent_ = 0;
  uint64_t done_end_ = 0;
  std::unique_ptr<char[]> gathered_;  // small buffers copied into one record (kRecordPlaintext)
  // Ciphertext: written by OpenSSL and not yet handed to the inner transport; handed and not yet
  // accepted (unchanged until then).
  std::string ciphertext_out_;
  std::string ciphertext_handed_;
  // Ciphertext from the socket: the inner transport's delivery in progress (borrowed for its
  // call), and what earlier deliveries left unread, from saved_at_ on.
  const char* delivering_ = nullptr;
  size_t delivering_length_ = 0;
  std::string saved_in_;
  size_t saved_at_ = 0;
  uint64_t ciphertext_plaintext_end_ = 0;  // plaintext_encrypted_ when it was taken
  int write_status_ = 0;                   // the first write failure; every later write fails

  Failure failure_ = Failure::kNone;
  std::string error_text_;
  int end_status_ = 0;        // how reading ends, once decided; 0 until then
  int inner_end_status_ = 0;  // the inner transport's end, 0 until it came
  int open_handles_ = 0;
  bool handshake_started_ = false;
  bool handshake_done_ = false;
  bool first_byte_seen_ = false;
  bool reading_ = false;
  bool ended_ = false;
  bool inner_reading_ = false;
  bool inner_busy_ = false;  // an inner write with our completion is queued
  bool in_write_ = false;
  bool corked_ = false;  // inside a delivery or on_connected(): ciphertext waits for its end
  bool tickets_held_ = false;  // ciphertext_out_ holds a TLS 1.3 server's session tickets alone
  bool shutdown_requested_ = false;
  bool close_notify_sent_ = false;
  bool inner_shut_down_ = false;
  bool closing_ = false;
};

}  // namespace edge::tls
