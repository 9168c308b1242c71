#include "proxy/h2_client.h"
#include "proxy/tunnel.h"

#include <algorithm>

#include "proxy/client.h"
#include "proxy/clock.h"
#include "proxy/heads.h"
#include "proxy/request.h"
#include "proxy/worker.h"

namespace edge::proxy {

namespace {

// About one TLS record's worth of frames per write: more only delays the first bytes.
constexpr size_t kWriteChunk = 64 * 1024;
constexpr uint64_t kDrainNoticeMs = 1000;

h2::Limits limits_of(const conf::Config& config) {
  h2::Limits limits;
  limits.max_concurrent_streams = config.http2.max_concurrent_streams;
  limits.max_header_list_size = static_cast<uint32_t>(config.http2.max_header_list_size);
  limits.max_header_fields = static_cast<uint32_t>(config.limits.max_header_fields);
  limits.max_frame_size = static_cast<uint32_t>(config.http2.max_frame_size);
  limits.initial_window_size = static_cast<uint32_t>(config.http2.initial_window_size);
  limits.connection_window_size = static_cast<uint32_t>(config.http2.connection_window_size);
  // Enough resets for a browser that navigates away from a page of a hundred streams, twice.
  limits.resets_burst = std::max<uint32_t>(200, 2 * limits.max_concurrent_streams);
  return limits;
}

}  // namespace

class H2Client::Stream final : public h2::Stream, public Request::Client {
 public:
  Stream(H2Client& owner, int32_t id) : h2::Stream(id), owner_(owner), request_(owner.worker_, *this) {
    body_.set_options(owner.worker_.body_options(true));
  }
  ~Stream() override { request_.done(); }

  Request& request() { return request_; }
  http::Body& body() { return body_; }
  void reuse(int32_t id) {
    h2::Stream::reuse(id);
    body_.clear();
    answered = false;
    waiting_since = 0;
    head_at = 0;
  }
  bool answered = false;      // refused or answered at its head: its end starts nothing
  uint64_t waiting_since = 0;  // on another request's fill, for coalesce_timeout
  uint64_t head_at = 0;        // when its head was read, for min_upload_rate

  // Request::Client
  ClientFraming framing(bool) override {
    ClientFraming framing;
    framing.h2 = true;
    return framing;
  }
  void send(const Response& response) override {
    owner_.session_->respond(*this, *response.head, response.index, response.body, response.release);
    owner_.want_flush();
  }
  void send_interim(std::string head) override {
    owner_.session_->respond_interim(*this, head);
    owner_.want_flush();
  }
  void kick() override {
    owner_.session_->resume(*this);
    owner_.want_flush();
  }
  void broke_off(CloseReason) override {
    owner_.session_->reset(*this, h2::Error::kInternal);
    owner_.want_flush();
  }
  std::string_view client_ip() override { return owner_.conn_.client_ip(); }
  bool secure() override { return owner_.conn_.tls_ != nullptr; }
  uint64_t bytes_sent() override { return h2::Stream::bytes_sent(); }
  // HTTP/2 heads carry no Upgrade (RFC 9113 8.2.2), so no stream asks to switch.
  bool start_tunnel(Fetch::Upgraded upstream) override {
    abandon_upgraded(std::move(upstream));
    return false;
  }

 private:
  H2Client& owner_;
  http::Body body_;
  Request request_;
};

H2Client::H2Client(Worker& worker, ClientConn& conn) : worker_(worker), conn_(conn) {
  const conf::Config& config = worker.generation()->config;
  session_ = std::make_unique<h2::Session>(static_cast<h2::Session::Handler&>(*this), limits_of(config), config.limits.max_body_bytes);
  const conf::Limits& limits = config.limits;
  uint64_t shortest = to_ms(config.http2.header_timeout);
  for (conf::Duration d : {limits.body_timeout, limits.send_timeout, config.cache.coalesce_timeout})
    if (d.count() > 0) shortest = std::min(shortest, to_ms(d));
  tick_ms_ = std::clamp<uint64_t>(shortest / 4, 1, 1000);
  idle_since_ = now();
  bump(worker.stats().h2_connections);
}

H2Client::~H2Client() {
  release_streams();
  for (Stream* stream : spare_) delete stream;
  if (flush_deferred_) worker_.cancel_flush(this);
}

void H2Client::release_streams() {
  session_->for_each_stream([](h2::Stream& stream) { delete &static_cast<Stream&>(stream); });
  session_->forget_streams();
}

uint64_t H2Client::now() const { return conn_.now(); }

CloseReason H2Client::close_reason(CloseReason otherwise) const {
  if (reason_) return *reason_;
  const uint32_t error = session_->end_error();
  if (session_->end_error_sent() && error == static_cast<uint32_t>(h2::Error::kEnhanceYourCalm))
    return CloseReason::kH2Flood;
  if (session_->end_error_sent() && error != 0) return CloseReason::kH2ProtocolError;
  return otherwise;
}

// ---- input ----

void H2Client::on_data(std::string_view data) {
  if (finishing_) return;  // lingering: the peer's leftovers are discarded
  session_->set_now(now());
  in_session_ = true;
  const bool ok = session_->receive(data.data(), data.size());
  in_session_ = false;
  flush();
  if (conn_.closed() || finishing_) return;
  if (!ok && !writing_) return finish(close_reason(CloseReason::kH2ProtocolError));
  arm_timer();
}

void H2Client::on_end(int) {
  // The client left: whatever it asked for is abandoned, as an HTTP/1.1 client's would be.
  conn_.close_for(reason_.value_or(finishing_ ? close_reason(CloseReason::kKeepAliveDone) : CloseReason::kClientClosed));
}

// ---- streams ----

h2::Stream* H2Client::open_stream(int32_t id) {
  bump(worker_.stats().h2_streams);
  if (spare_.empty()) return new Stream(*this, id);
  Stream* stream = spare_.back();
  spare_.pop_back();
  stream->reuse(id);
  return stream;
}

void H2Client::on_stream_head(h2::Stream& base) {
  auto& stream = static_cast<Stream&>(base);
  stream.head_at = now();
  conn_.count_handshake();
  if (const int refused = stream.request().recv(stream.head())) {
    stream.answered = true;
    stream.request().refuse(stream.head(), refused);
    return;
  }
  stream.body().clear();
  const http::RequestHead& head = stream.head();
  const bool has_body = head.chunked || head.content_length.value_or(0) > 0;
  const bool expect = has_body && head.headers.get(http::FieldId::kExpect).has_value();
  if (stream.request().early_status()) {
    // An answer decided at the head (404) is given once the request ends, its body discarded;
    // at once to a client that waits for our word before sending it.
    stream.set_body_sink(nullptr);
    if (expect) {
      stream.answered = true;
      stream.request().start(head, stream.body());
    }
    return;
  }
  stream.set_body_sink(&stream.body());
  if (expect) session_->respond_interim(stream, "HTTP/1.1 100 Continue\r\n\r\n");
}

void H2Client::on_stream_refused(h2::Stream& base, int status) {
  auto& stream = static_cast<Stream&>(base);
  if (stream.answered || stream.responding()) return;
  stream.answered = true;
  if (status == 431) worker_.bounds().count(worker_.bounds().too_many_fields);
  stream.request().refuse(stream.head(), status);
}

void H2Client::on_stream_request(h2::Stream& base) {
  auto& stream = static_cast<Stream&>(base);
  if (stream.answered) return;
  bump(worker_.stats().requests);
  conn_.count_bytes_read();
  stream.request().start(stream.head(), stream.body());
  if (stream.request().waiting_for_fill()) stream.waiting_since = now();
}

void H2Client::on_stream_written(h2::Stream& base) {
  auto& stream = static_cast<Stream&>(base);
  stream.request().done();
  stream.body().clear();
}

void H2Client::on_stream_close(h2::Stream& base, uint32_t) {
  auto& stream = static_cast<Stream&>(base);
  stream.request().done();
  stream.body().clear();
  if (spare_.size() < kMaxSpare)
    spare_.push_back(&stream);
  else
    delete &stream;
  if (session_->open_streams() == 0) idle_since_ = now();
}

// ---- output ----

void H2Client::want_flush() {
  if (in_session_) {
    flush_wanted_ = true;
    return;
  }
  // From a Request's call: the stream may be on the stack, so the write (and whatever closes it
  // can bring) waits for the loop.
  if (flush_deferred_ || conn_.closed()) return;
  flush_deferred_ = true;
  worker_.defer_flush(this);
}

void H2Client::run_deferred_flush() {
  flush_deferred_ = false;
  flush();
  if (!conn_.closed() && !finishing_) arm_timer();
}

void H2Client::flush() {
  while (!writing_ && !conn_.closed() && !finishing_) {
    flush_wanted_ = false;
    out_.clear();
    session_->set_now(now());
    in_session_ = true;
    const bool ok = session_->produce(out_, kWriteChunk);
    in_session_ = false;
    if (!out_.empty()) {
      uv_buf_t buf = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
      const int n = conn_.transport()->write(&buf, 1, this);
      if (n < 0) return conn_.close_for(CloseReason::kWriteError);
      if (static_cast<size_t>(n) < out_.size()) {
        writing_ = true;
        write_started_at_ = now();
      }
    }
    if (!ok || session_->finished()) {
      if (!writing_) finish(close_reason(CloseReason::kKeepAliveDone));
      return;
    }
    if (out_.empty() && !flush_wanted_) return;
  }
}

void H2Client::on_written(int status) {
  writing_ = false;
  if (conn_.closed()) return;
  if (status < 0) return conn_.close_for(CloseReason::kWriteError);
  if (finishing_) {
    if (conn_.transport()->shutdown() != 0) conn_.close_for(close_reason(CloseReason::kKeepAliveDone));
    return;
  }
  flush();
  if (!conn_.closed() && !finishing_ && session_->finished()) finish(close_reason(CloseReason::kKeepAliveDone));
}

void H2Client::finish(CloseReason reason) {
  if (finishing_ || conn_.closed()) return;
  finishing_ = true;
  if (!reason_) reason_ = reason;
  // Closing at once could reset the connection under the last frames (a GOAWAY) while the
  // client still sends: half-close, drain its leftovers for a moment, then close.
  if (!writing_ && conn_.transport()->shutdown() != 0) return conn_.close_for(*reason_);
  conn_.set_timer(kClientLingerMs);
}

// ---- time ----

void H2Client::arm_timer() {
  if (session_->open_streams() == 0 && !spare_.empty()) {
    conn_.set_timer(tick_ms_);  // the spares go at the next tick if nothing takes them
    return;
  }
  if (session_->open_streams() == 0 && !draining_) {
    const uint64_t idle = to_ms(worker_.generation()->config.http2.idle_timeout);
    const uint64_t elapsed = now() - idle_since_;
    conn_.set_timer(elapsed >= idle ? 1 : idle - elapsed);
    return;
  }
  conn_.set_timer(draining_ && drain_goaway_at_ ? std::min(tick_ms_, drain_goaway_at_ - std::min(drain_goaway_at_, now()) + 1)
                                                : tick_ms_);
}

void H2Client::on_timer() {
  if (conn_.closed()) return;
  if (finishing_) return conn_.close_for(reason_.value_or(CloseReason::kKeepAliveDone));
  const uint64_t t = now();
  const conf::Config& config = worker_.generation()->config;
  const uint64_t send_timeout = to_ms(config.limits.send_timeout);
  if (writing_ && send_timeout && t - write_started_at_ >= send_timeout) {
    worker_.bounds().count(worker_.bounds().send_timeouts);
    reason_ = CloseReason::kSendTimeout;
    return conn_.close_for(CloseReason::kSendTimeout);
  }
  session_->set_now(t);
  if (draining_ && drain_goaway_at_ && t >= drain_goaway_at_) {
    drain_goaway_at_ = 0;
    session_->goaway();
  }
  if (session_->open_streams() == 0) {
    // Idle: what the streams and the writes grew is given back.
    for (Stream* stream : spare_) delete stream;
    spare_.clear();
    if (!writing_) std::string().swap(out_);
    if (!draining_ && t - idle_since_ >= to_ms(config.http2.idle_timeout)) {
      reason_ = CloseReason::kIdleTimeout;
      session_->goaway();
    }
  } else {
    const uint64_t header_timeout = to_ms(config.http2.header_timeout);
    const uint64_t body_timeout = to_ms(config.limits.body_timeout);
    const uint64_t coalesce_timeout = to_ms(config.cache.coalesce_timeout);
    const uint64_t min_rate = config.limits.min_upload_rate;
    const uint64_t grace = to_ms(config.limits.upload_rate_grace);
    bool header_expired = false;
    in_session_ = true;
    session_->for_each_stream([&](h2::Stream& base) {
      auto& stream = static_cast<Stream&>(base);
      const uint64_t quiet = t - stream.progress_at();
      if (!stream.head_done()) {
        header_expired = header_expired || quiet >= header_timeout;
        return;
      }
      if (!stream.request_complete() && !stream.answered && !stream.responding()) {
        if (body_timeout && quiet >= body_timeout) return on_stream_refused(stream, 408);
        // As for HTTP/1.1: past the grace, the upload must have averaged min_upload_rate.
        const uint64_t elapsed = t - stream.head_at;
        if (min_rate && elapsed > grace && stream.body_bytes_received() * 1000 < min_rate * elapsed) {
          worker_.bounds().count(worker_.bounds().slow_uploads);
          return on_stream_refused(stream, 408);
        }
      }
      if (stream.waiting_since && stream.request().waiting_for_fill() && !stream.request().responding() &&
          t - stream.waiting_since >= coalesce_timeout) {
        stream.waiting_since = 0;
        stream.request().stop_waiting();
        return;
      }
      if (send_timeout && session_->waits_on_window(stream) && quiet >= send_timeout) {
        worker_.bounds().count(worker_.bounds().send_timeouts);
        session_->reset(stream, h2::Error::kCancel);
      }
    });
    in_session_ = false;
    if (header_expired) {
      // A header block holds the whole connection until it ends (RFC 9113 6.10).
      reason_ = CloseReason::kHeaderTimeout;
      session_->terminate(h2::Error::kProtocol);
    }
  }
  flush();
  if (conn_.closed() || finishing_) return;
  arm_timer();
}

void H2Client::drain() {
  if (draining_ || finishing_ || conn_.closed()) return;
  draining_ = true;
  if (!reason_) reason_ = CloseReason::kShutdown;
  if (session_->open_streams() == 0) {
    session_->goaway();
  } else {
    // RFC 9113 6.8: say it is coming, give requests in flight a moment to arrive, then say
    // which was the last.
    session_->shutdown_notice();
    drain_goaway_at_ = now() + kDrainNoticeMs;
  }
  flush();
  if (!conn_.closed() && !finishing_) arm_timer();
}

}  // namespace edge::proxy
