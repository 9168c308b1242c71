#include "tls/transport.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>

namespace edge::tls {

namespace {

// OpenSSL's error queue must be empty before a call whose errors are read; emptying it walks every
// slot, looking at it does not.
void clear_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}
// One TLS record's worth of plaintext per SSL_write: the bound on what is encrypted ahead is
// checked between records.
constexpr size_t kRecordPlaintext = 16 * 1024;
constexpr unsigned char kHandshakeRecord = 0x16;
// Ciphertext buffers grown past this by a large answer are given back once they are empty.
constexpr size_t kKeptCiphertextCapacity = 32 * 1024;
// Static: it may outlive the transport in the socket's queue.
constexpr char kPlainHttpAnswer[] =
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 73\r\n"
    "Connection: close\r\n"
    "\r\n"
    "This port speaks HTTPS only: a plain HTTP request cannot be served here.\n";
}  // namespace

TlsTransport::TlsTransport(std::unique_ptr<http::Transport> inner, SSL* ssl, uv_loop_t* loop,
                           uv_buf_t plaintext_buffer, Role role)
    : inner_(std::move(inner)),
      ssl_(ssl),
      plaintext_buffer_(plaintext_buffer),
      role_(role) {
  // One BIO for both directions, reading from and writing to this transport's buffers.
  BIO* bio = BIO_new(bio_method());
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);
  if (role_ == Role::kServer) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
  uv_idle_init(loop, &idle_);
  idle_.data = this;
}

TlsTransport::~TlsTransport() { SSL_free(ssl_); }

// The BIO OpenSSL reads ciphertext from and writes it to. Reads take the bytes the inner
// transport is delivering (borrowed for the call), then what an earlier delivery left; an empty
// source means "more to come", not end of stream: the inner transport says when it ends. Writes
// append to the ciphertext not yet handed to the socket. Compared with a pair of memory BIOs, a
// record is copied once less each way and no buffer is zeroed as it grows.
BIO_METHOD* TlsTransport::bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "edge transport");
    BIO_meth_set_read(m, [](BIO* bio, char* out, int size) noexcept {
      BIO_clear_retry_flags(bio);
      const int n = static_cast<TlsTransport*>(BIO_get_data(bio))->take_ciphertext(out, static_cast<size_t>(size));
      if (n == 0) BIO_set_retry_read(bio);
      return n > 0 ? n : -1;
    });
    BIO_meth_set_write(m, [](BIO* bio, const char* in, int length) noexcept {
      BIO_clear_retry_flags(bio);
      static_cast<TlsTransport*>(BIO_get_data(bio))->ciphertext_out_.append(in, static_cast<size_t>(length));
      return length;
    });
    BIO_meth_set_ctrl(m, [](BIO* bio, int command, long, void*) noexcept -> long {
      const auto* self = static_cast<const TlsTransport*>(BIO_get_data(bio));
      switch (command) {
        case BIO_CTRL_FLUSH:
          return 1;
        case BIO_CTRL_PENDING:
          return static_cast<long>(self->saved_in_.size() - self->saved_at_ + self->delivering_length_);
        case BIO_CTRL_WPENDING:
          return static_cast<long>(self->ciphertext_out_.size());
        default:
          return 0;
      }
    });
    return m;
  }();
  return method;
}

int TlsTransport::take_ciphertext(char* out, size_t size) {
  size_t n = 0;
  if (saved_at_ < saved_in_.size()) {
    n = std::min(size, saved_in_.size() - saved_at_);
    std::copy_n(saved_in_.data() + saved_at_, n, out);
    saved_at_ += n;
    if (saved_at_ == saved_in_.size()) {
      saved_in_.clear();
      saved_at_ = 0;
    }
  } else if (delivering_length_ > 0) {
    n = std::min(size, delivering_length_);
    std::copy_n(delivering_, n, out);
    delivering_ += n;
    delivering_length_ -= n;
  }
  return static_cast<int>(n);
}

std::string_view TlsTransport::alpn() const {
  const unsigned char* protocol = nullptr;
  unsigned length = 0;
  SSL_get0_alpn_selected(ssl_, &protocol, &length);
  return protocol ? std::string_view(reinterpret_cast<const char*>(protocol), length) : std::string_view();
}

std::string_view TlsTransport::server_name() const {
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name ? std::string_view(name) : std::string_view();
}

size_t TlsTransport::ciphertext_queued() const {
  return ciphertext_out_.size() + inner_->queued_bytes();
}

size_t TlsTransport::queued_bytes() const {
  return static_cast<size_t>(plaintext_queued_ - plaintext_encrypted_) + ciphertext_queued();
}

int TlsTransport::write(const uv_buf_t* bufs, unsigned count, WriteDone* done) {
  if (closing_) return UV_EINVAL;
  if (write_status_ < 0) return write_status_;
  if (shutdown_requested_) return UV_EPIPE;
  if (failure_ == Failure::kHandshake || failure_ == Failure::kPlainHttp) return UV_EPROTO;

  const uint64_t start = plaintext_queued_;
  for (unsigned i = 0; i < count; ++i) {
    if (bufs[i].len == 0) continue;
    plaintext_.push_back(bufs[i]);
    plaintext_queued_ += bufs[i].len;
  }
  if (done) {
    done_ = done;
    done_end_ = plaintext_queued_;
  }
  in_write_ = true;
  pump();
  in_write_ = false;

  const uint64_t total = plaintext_queued_ - start;
  // Corked, the ciphertext waits in our own buffer for the flush at the end of the delivery.
  const uint64_t taken = corked_ ? plaintext_encrypted_ : plaintext_sent_;
  const uint64_t sent = taken > start ? taken - start : 0;
  if (write_status_ < 0 && sent == 0) {
    // Nothing of this write went out: the caller hears of it here, not through `done`; an
    // earlier write still waiting hears of it from the loop.
    if (done) done_ = nullptr;
    if (done_) defer();
    return write_status_;
  }
  if (sent >= total && done) done_ = nullptr;
  // An earlier write this one's pump completed, or a failure after part of this one went out:
  // its `done` is called from the loop.
  if (done_ && (write_status_ < 0 || plaintext_sent_ >= done_end_)) defer();
  return static_cast<int>(sent >= total ? total : sent);
}

bool TlsTransport::encrypt_ahead() {
  while (plaintext_front_ < plaintext_.size() && ciphertext_out_.size() < kEncryptAhead) {
    uv_buf_t& front = plaintext_[plaintext_front_];
    if (front.len == 0) {  // SSL_write takes no empty record
      ++plaintext_front_;
      continue;
    }
    const char* record = front.base;
    size_t length = std::min<size_t>(front.len, kRecordPlaintext);
    if (length < kRecordPlaintext && plaintext_front_ + 1 < plaintext_.size()) {
      // A head, a chunk-size line, a small body: one record for them all, not one each (each
      // record costs its header, its tag and a pass of the cipher's setup).
      if (!gathered_) gathered_ = std::make_unique<char[]>(kRecordPlaintext);
      length = 0;
      for (size_t i = plaintext_front_; i < plaintext_.size() && length < kRecordPlaintext; ++i) {
        const size_t take = std::min<size_t>(plaintext_[i].len, kRecordPlaintext - length);
        std::copy_n(plaintext_[i].base, take, gathered_.get() + length);
        length += take;
      }
      record = gathered_.get();
    }
    clear_errors();
    // Our BIO always takes the whole record, so a positive result is the whole length.
    const int written = SSL_write(ssl_, record, static_cast<int>(length));
    if (written <= 0) {
      record_error("encryption failed");
      drop_plaintext(UV_EPROTO);
      return false;
    }
    plaintext_encrypted_ += static_cast<uint64_t>(written);
    tickets_held_ = false;
    for (size_t consumed = static_cast<size_t>(written); consumed > 0;) {
      uv_buf_t& buffer = plaintext_[plaintext_front_];
      const size_t take = std::min<size_t>(buffer.len, consumed);
      buffer.base += take;
      buffer.len -= static_cast<unsigned>(take);
      consumed -= take;
      if (buffer.len == 0) ++plaintext_front_;
    }
  }
  if (plaintext_front_ == plaintext_.size()) {
    // clear() keeps the capacity: the steady state allocates nothing.
    plaintext_.clear();
    plaintext_front_ = 0;
  }
  return true;
}

void TlsTransport::drop_plaintext(int status) {
  if (write_status_ == 0) write_status_ = status;
  plaintext_.clear();
  plaintext_front_ = 0;
  plaintext_encrypted_ = plaintext_queued_;
}

void TlsTransport::pump() {
  if (closing_) return;
  while (!inner_busy_ && write_status_ == 0) {
    // Application data only once the handshake is done: SSL_write would start one otherwise.
    if (handshake_done_ && !close_notify_sent_ && !encrypt_ahead()) break;
    if (shutdown_requested_ && handshake_done_ && !close_notify_sent_ && plaintext_.empty()) {
      SSL_shutdown(ssl_);
      close_notify_sent_ = true;
      tickets_held_ = false;
    }
    if (corked_ || !hand_ciphertext()) break;
  }

  // After a failed handshake or a failed write there is no close_notify to send.
  const bool tls_over =
      close_notify_sent_ || failure_ == Failure::kHandshake || failure_ == Failure::kPlainHttp || write_status_ < 0;
  if (shutdown_requested_ && tls_over && !inner_shut_down_ && !inner_busy_ && ciphertext_out_.empty()) {
    inner_shut_down_ = true;
    inner_->shutdown();
  }

  // Never from inside write(): the caller learns of this write from its return value.
  if (!in_write_ && done_ && (write_status_ < 0 || plaintext_sent_ >= done_end_)) {
    WriteDone* done = done_;
    done_ = nullptr;
    done->on_written(write_status_ < 0 ? write_status_ : 0);
  }
}

bool TlsTransport::hand_ciphertext() {
  if (ciphertext_out_.empty()) return false;
  // The handed buffer is free (no inner write in flight): the two swap, nothing is copied.
  ciphertext_handed_.swap(ciphertext_out_);
  ciphertext_out_.clear();
  ciphertext_plaintext_end_ = plaintext_encrypted_;
  const int taken = static_cast<int>(ciphertext_handed_.size());
  uv_buf_t buf = uv_buf_init(ciphertext_handed_.data(), static_cast<unsigned>(taken));
  const int written = inner_->write(&buf, 1, this);
  if (written < 0) {
    drop_plaintext(written);
    return false;
  }
  if (written == taken) {
    handed_taken();
  } else {
    inner_busy_ = true;
  }
  return true;
}

void TlsTransport::handed_taken() {
  plaintext_sent_ = ciphertext_plaintext_end_;
  ciphertext_handed_.clear();
  if (ciphertext_handed_.capacity() > kKeptCiphertextCapacity) std::string().swap(ciphertext_handed_);
  if (ciphertext_out_.empty() && ciphertext_out_.capacity() > kKeptCiphertextCapacity) {
    std::string().swap(ciphertext_out_);
  }
}

void TlsTransport::on_written(int status) {
  inner_busy_ = false;
  if (status < 0) {
    drop_plaintext(status);
  } else {
    handed_taken();
  }
  if (closing_) {
    // The inner transport cancels its write before its close completes: so do we.
    if (done_) {
      WriteDone* done = done_;
      done_ = nullptr;
      done->on_written(UV_ECANCELED);
    }
    return;
  }
  pump();
}

int TlsTransport::shutdown() {
  if (closing_) return UV_EINVAL;
  shutdown_requested_ = true;
  pump();
  return 0;
}

int TlsTransport::read_start(Reader* reader) {
  if (closing_) return UV_EINVAL;
  reader_ = reader;
  reading_ = true;
  if (role_ == Role::kServer) handshake_started_ = true;
  // What is already buffered (or an end already decided) reaches the reader from the loop.
  if (ciphertext_left() || end_status_ != 0 || inner_end_status_ != 0) {
    defer();
  }
  update_inner_reading();
  return 0;
}

void TlsTransport::read_stop() {
  reading_ = false;
  update_inner_reading();
}

void TlsTransport::update_inner_reading() {
  if (closing_) return;
  const bool wanted = handshake_started_ && !ended_ && end_status_ == 0 && inner_end_status_ == 0 &&
                      (!handshake_done_ || reading_);
  if (wanted == inner_reading_) return;
  inner_reading_ = wanted;
  if (!wanted) return inner_->read_stop();
  const int rc = inner_->read_start(this);
  if (rc < 0) {
    inner_reading_ = false;
    inner_end_status_ = rc;
    defer();
  }
}

void TlsTransport::on_data(const char* data, size_t len) {
  if (role_ == Role::kServer && !first_byte_seen_) {
    first_byte_seen_ = true;
    if (static_cast<unsigned char>(data[0]) != kHandshakeRecord) return refuse_plain_http();
  }
  // Read in place; what the handshake or the reader leaves unread is kept, behind anything kept
  // before, for later.
  if (saved_at_ < saved_in_.size()) {
    saved_in_.append(data, len);
    return advance();
  }
  delivering_ = data;
  delivering_length_ = len;
  advance();
  if (delivering_length_ > 0) saved_in_.append(delivering_, delivering_length_);
  delivering_ = nullptr;
  delivering_length_ = 0;
}

void TlsTransport::on_end(int status) {
  inner_reading_ = false;
  inner_end_status_ = status;
  advance();
}

void TlsTransport::refuse_plain_http() {
  failure_ = Failure::kPlainHttp;
  error_text_ = "plain HTTP sent to the TLS port";
  uv_buf_t answer = uv_buf_init(const_cast<char*>(kPlainHttpAnswer), sizeof kPlainHttpAnswer - 1);
  inner_->write(&answer, 1, nullptr);
  inner_shut_down_ = true;
  inner_->shutdown();
  end_status_ = UV_EPROTO;
  update_inner_reading();
  deliver();
}

void TlsTransport::advance() {
  if (closing_) return;
  if (handshake_started_ && !handshake_done_ && failure_ == Failure::kNone) {
    step_handshake();
    if (closing_) return;
  }
  deliver();
  if (!closing_) update_inner_reading();
}

void TlsTransport::step_handshake() {
  clear_errors();
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    handshake_done_ = true;
    // The handshake's last flight leaves with the first answer or request, in one segment: a
    // TLS 1.3 server's session tickets wait for its first write (or close), a client's Finished
    // goes with what on_connected() writes. A TLS 1.2 server's last flight is its Finished,
    // which the client waits for before it sends a request: that one leaves at once.
    if (role_ == Role::kServer) {
      tickets_held_ = SSL_version(ssl_) == TLS1_3_VERSION;
      // Writes held during the handshake (an early answer, a shutdown) go now, tickets first.
      if (!tickets_held_ || !plaintext_.empty() || shutdown_requested_) pump();
      return;
    }
    if (!connected_) return;
    Connected* connected = connected_;
    connected_ = nullptr;
    corked_ = true;
    connected->on_connected(0);
    corked_ = false;
    if (!closing_) pump();
    return;
  }
  const int error = SSL_get_error(ssl_, rc);
  if (error == SSL_ERROR_WANT_READ && inner_end_status_ == 0) return pump();
  fail_handshake();
}

void TlsTransport::fail_handshake() {
  failure_ = Failure::kHandshake;
  record_error("the connection ended during the handshake");
  const int status = inner_end_status_ < 0 && inner_end_status_ != UV_EOF ? inner_end_status_ : UV_EPROTO;
  end_status_ = status;
  // The alert OpenSSL wrote, if any, still goes to the peer.
  pump();
  if (closing_ || !connected_) return;
  Connected* connected = connected_;
  connected_ = nullptr;
  connected->on_connected(status);
}

void TlsTransport::deliver() {
  while (reading_ && !ended_ && !closing_) {
    if (end_status_ != 0) {
      ended_ = true;
      reading_ = false;
      update_inner_reading();
      if (!ciphertext_out_.empty()) pump();
      if (closing_) return;
      return reader_->on_end(end_status_);
    }
    if (!handshake_done_) return;
    // Nothing left to decrypt: a read would only say so, at the cost of a call into OpenSSL for
    // every delivery.
    if (inner_end_status_ == 0 && !ciphertext_left()) break;
    clear_errors();
    const int n = SSL_read(ssl_, plaintext_buffer_.base, static_cast<int>(plaintext_buffer_.len));
    if (n > 0) {
      // The reader may stop, write or close from inside: the loop condition checks. What it
      // writes is encrypted but kept (corked) until this delivery ends, so an answer, the
      // answers to pipelined requests and a close_notify after them leave in one segment.
      corked_ = true;
      reader_->on_data(plaintext_buffer_.base, static_cast<size_t>(n));
      corked_ = false;
      continue;
    }
    const int error = SSL_get_error(ssl_, n);
    if (error == SSL_ERROR_WANT_READ) {
      if (inner_end_status_ == 0) break;
      failure_ = Failure::kProtocol;
      error_text_ = inner_end_status_ == UV_EOF ? "the stream ended without close_notify (truncated)"
                                                : uv_strerror(inner_end_status_);
      end_status_ = inner_end_status_ == UV_EOF ? UV_EPROTO : inner_end_status_;
    } else if (error == SSL_ERROR_ZERO_RETURN) {
      end_status_ = UV_EOF;
    } else {
      failure_ = Failure::kProtocol;
      record_error("TLS protocol error");
      end_status_ = UV_EPROTO;
    }
  }
  // Reading may have produced something to send (an alert, a key update's answer), and a
  // corked delivery its answers.
  if (!closing_ && !tickets_held_ && !ciphertext_out_.empty()) pump();
}

void TlsTransport::record_error(const char* fallback) {
  const unsigned long code = ERR_peek_last_error();
  if (code != 0) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    error_text_ = text;
    // "certificate verify failed" alone does not say what was wrong with it.
    if (ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      error_text_ += ": ";
      error_text_ += X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
    }
  } else {
    error_text_ = fallback;
  }
  clear_errors();
}

int TlsTransport::connect(const sockaddr* address, Connected* done) {
  if (closing_ || role_ != Role::kClient) return UV_EINVAL;
  const int rc = inner_->connect(address, this);
  if (rc == 0) connected_ = done;
  return rc;
}

void TlsTransport::on_connected(int status) {
  if (closing_) return;
  if (status < 0) {
    Connected* connected = connected_;
    connected_ = nullptr;
    return connected->on_connected(status);
  }
  handshake_started_ = true;
  advance();
}

void TlsTransport::defer() {
  if (!closing_) uv_idle_start(&idle_, &TlsTransport::on_idle);
}

void TlsTransport::on_idle(uv_idle_t* idle) noexcept {
  auto* self = static_cast<TlsTransport*>(idle->data);
  uv_idle_stop(idle);
  self->pump();
  self->advance();
}

void TlsTransport::close(Closed* done) {
  if (closing_) return;
  // What a corked delivery kept goes to the socket as it would have without the cork; what
  // the socket does not take at once is cancelled with the rest.
  if (!inner_busy_ && write_status_ == 0) hand_ciphertext();
  closing_ = true;
  corked_ = false;
  closed_ = done;
  connected_ = nullptr;
  open_handles_ = 2;
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), &TlsTransport::on_idle_closed);
  inner_->close(this);
}

void TlsTransport::on_idle_closed(uv_handle_t* handle) noexcept {
  static_cast<TlsTransport*>(handle->data)->handle_closed();
}

void TlsTransport::on_closed() { handle_closed(); }

void TlsTransport::handle_closed() {
  if (--open_handles_ > 0) return;
  // A write held (never handed to the socket) has no inner completion to cancel it.
  if (done_) {
    WriteDone* done = done_;
    done_ = nullptr;
    done->on_written(UV_ECANCELED);
  }
  if (closed_) closed_->on_closed();
}

}  // namespace edge::tls
