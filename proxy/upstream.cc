#include "proxy/upstream.h"

#include <algorithm>
#include <cstring>

#include "proxy/worker.h"
#include "tls/transport.h"

namespace edge::proxy {

const char* failure_name(UpstreamFailure failure) {
  switch (failure) {
    case UpstreamFailure::kConnectRefused: return "connect refused";
    case UpstreamFailure::kConnectTimeout: return "connect timeout";
    case UpstreamFailure::kTlsHandshake: return "TLS handshake failed";
    case UpstreamFailure::kResetBeforeResponse: return "closed before responding";
    case UpstreamFailure::kBadResponse: return "bad response";
    case UpstreamFailure::kResponseTimeout: return "response timeout";
    case UpstreamFailure::kLocal: return "local error";
  }
  return "?";
}

UpstreamConn::UpstreamConn(Pool& pool, std::unique_ptr<http::Transport> transport)
    : pool_(pool), transport_(std::move(transport)), writer_(this) {
  parser_.set_interim_sink(&interims_);
  deadline_.init(pool.loop(), [](void* owner) noexcept { static_cast<UpstreamConn*>(owner)->on_timeout(); }, this);
  ++pool_.open_;
  bump(pool_.stats().backend_connections);
}

void UpstreamConn::connect(const sockaddr* address) {
  state_ = State::kConnecting;
  connect_started_ns_ = uv_hrtime();
  if (transport_->connect(address, this) < 0) {
    // No callback will come; start() reports it once there is an owner to tell.
    connect_failed_ = true;
    return;
  }
  arm_timer(pool_.backend().connect_timeout);
}

void UpstreamConn::start(Owner* owner, const std::string* head, http::Body* request_body,
                         http::Body* response_body, bool head_request, bool upgrade) {
  owner_ = owner;
  request_head_ = head;
  request_body_ = request_body;
  request_written_ = false;
  ends_at_ = 0;
  response_body_ = response_body;
  response_body->set_producer(this);
  parser_.expect_response(head_request, upgrade);
  parser_.set_body_sink(response_body);
  interims_.clear();
  if (connect_failed_) return fail(UpstreamFailure::kConnectRefused);
  if (state_ == State::kIdle) {
    state_ = State::kBusy;
    send_request();
  }
  // kConnecting: the request goes out from on_connect.
}

void UpstreamConn::send_request() {
  arm_timer(pool_.backend().response_timeout);
  sent_ns_ = uv_hrtime();
  bump(pool_.stats().backend_bytes_sent, request_head_->size() + (request_body_ ? request_body_->size() : 0));
  // The request body is kept whole: a retry on another connection sends it again.
  writer_.start(transport_.get(), request_head_, request_body_, false, /*release=*/false);
}

void UpstreamConn::on_write_done(int status) {
  if (status < 0) {
    if (state_ == State::kBusy) fail(parser_.started() ? UpstreamFailure::kBadResponse : UpstreamFailure::kResetBeforeResponse);
    return;
  }
  request_written_ = true;
}

void UpstreamConn::on_connected(int status) {
  if (state_ == State::kClosing) return;
  deadline_.clear();
  // The TLS transport reports a failed handshake as a protocol error; the socket's own errors
  // are the connect's.
  if (status == UV_EPROTO) return fail(UpstreamFailure::kTlsHandshake);
  if (status < 0) return fail(UpstreamFailure::kConnectRefused);
  if (ServerMetrics* metrics = pool_.metrics()) metrics->connect.record(uv_hrtime() - connect_started_ns_);
  state_ = State::kBusy;
  start_reading();
  if (state_ == State::kBusy) send_request();
}

void UpstreamConn::on_timeout() {
  switch (state_) {
    case State::kConnecting: return fail(UpstreamFailure::kConnectTimeout);
    case State::kBusy:
      if (ends_at_ && uv_now(pool_.loop()) >= ends_at_) return fail(UpstreamFailure::kLocal);
      return fail(UpstreamFailure::kResponseTimeout);
    case State::kIdle:
      pool_.forget(this);
      return close();
    case State::kClosing: return;
  }
}

void UpstreamConn::arm_timer(conf::Duration timeout) {
  uint64_t ms = static_cast<uint64_t>(timeout.count());
  if (ends_at_) {
    const uint64_t now = uv_now(pool_.loop());
    ms = std::min(ms, ends_at_ > now ? ends_at_ - now : 0);
  }
  deadline_.set(std::max<uint64_t>(ms, 1));
}

void UpstreamConn::finish_within(conf::Duration limit) {
  ends_at_ = uv_now(pool_.loop()) + static_cast<uint64_t>(limit.count());
  arm_timer(limit);
}

void UpstreamConn::start_reading() {
  if (reading_) return;
  if (transport_->read_start(this) < 0) return fail(UpstreamFailure::kBadResponse);
  reading_ = true;
}

void UpstreamConn::on_body_drained() {
  if (state_ != State::kBusy || reading_) return;
  arm_timer(pool_.backend().response_timeout);
  start_reading();
}

void UpstreamConn::let_go_of_body() {
  if (response_body_) response_body_->set_producer(nullptr);
  response_body_ = nullptr;
  ends_at_ = 0;  // the exchange is over: an idle connection's clock is the pool's
}

void UpstreamConn::on_data(const char* data, size_t len) {
  bump(pool_.stats().backend_bytes_received, len);
  if (state_ != State::kBusy) {
    // An idle connection has nothing to say; bytes here are a broken server.
    pool_.forget(this);
    return close();
  }
  std::string_view rest(data, len);
  bool complete = false;
  while (!rest.empty()) {
    http::ParseResult r = parser_.feed(rest);
    rest.remove_prefix(r.consumed);
    if (r.event == http::ParseEvent::kError) return fail(UpstreamFailure::kBadResponse);
    if (r.event == http::ParseEvent::kMessage) {
      complete = true;
      break;
    }
  }
  if (!interims_.empty()) {
    // Told before the final head they precede; the owner stays ours (it only passes them on).
    for (const http::ResponseHead& interim : interims_)
      if (owner_) owner_->on_upstream_interim(interim);
    interims_.clear();
  }
  // Progress resets the clock: response_timeout bounds silence, not a long download.
  if (!complete) arm_timer(pool_.backend().response_timeout);
  if (!parser_.head_complete() && !complete) return;
  if (sent_ns_) {
    if (ServerMetrics* metrics = pool_.metrics()) metrics->first_byte.record(uv_hrtime() - sent_ns_);
    sent_ns_ = 0;  // once per exchange
  }

  Owner* owner = owner_;
  const http::ResponseHead& head = parser_.head();
  if (!complete) {
    owner->on_upstream_response(head, false);
    // The owner may have let go of us meanwhile; if not, and its reader lags, wait for it.
    if (state_ == State::kBusy && response_body_ && response_body_->full()) {
      reading_ = false;
      transport_->read_stop();
      deadline_.clear();
      Bounds& bounds = Worker::of(pool_.loop()).bounds();
      bounds.count(response_body_->at_file_limit() ? bounds.paused_at_file_cap : bounds.paused_at_temp_total);
    }
    return;
  }

  owner_ = nullptr;
  let_go_of_body();
  deadline_.clear();
  if (parser_.switched()) {
    // The connection is the tunnel's now, with whatever came after the 101; this object goes
    // (after the owner's calls below: the head stays ours until then).
    reading_ = false;
    transport_->read_stop();
    writer_.abort();
    state_ = State::kClosing;
    owner->on_upstream_upgraded(UpgradedConn{std::move(transport_), std::string(rest)});
    deadline_.close_and_delete<UpstreamConn>();
    owner->on_upstream_response(head, true);
    return;
  }
  // Reusable only if both sides meant to keep the connection and nothing trails the response.
  bool reusable = head.keep_alive && rest.empty() && request_written_;
  if (reusable) {
    pool_.release(this);
  } else {
    close();
  }
  owner->on_upstream_response(head, true);
}

void UpstreamConn::on_end(int status) {
  reading_ = false;
  if (state_ != State::kBusy) {
    pool_.forget(this);
    return close();
  }
  if (status == UV_EOF && parser_.started()) {
    http::ParseEvent e = parser_.finish();
    if (e == http::ParseEvent::kMessage) {
      Owner* owner = owner_;
      owner_ = nullptr;
      let_go_of_body();
      close();
      owner->on_upstream_response(parser_.head(), true);
      return;
    }
  }
  fail(parser_.started() ? UpstreamFailure::kBadResponse : UpstreamFailure::kResetBeforeResponse);
}

void UpstreamConn::fail(UpstreamFailure failure) {
  Owner* owner = owner_;
  owner_ = nullptr;
  let_go_of_body();
  close();
  if (owner) owner->on_upstream_failed(failure, reused_);
}

void UpstreamConn::abandon() {
  owner_ = nullptr;
  let_go_of_body();
  writer_.abort();
  close();
}

void UpstreamConn::close() {
  if (state_ == State::kClosing) return;
  state_ = State::kClosing;
  writer_.abort();
  deadline_.clear();
  transport_->close(this);
}

void UpstreamConn::on_closed() { deadline_.close_and_delete<UpstreamConn>(); }

// ---- pool ----

UpstreamConn::~UpstreamConn() {
  --pool_.open_;
  drop(pool_.stats().backend_connections);
}

Pool::Pool(uv_loop_t* loop, GenerationRef generation, size_t backend, size_t server) : loop_(loop) {
  rebind(std::move(generation), backend, server);
}

void Pool::rebind(GenerationRef generation, size_t backend, size_t server) {
  const tls::ClientContext* tls = generation->backend_tls(backend);
  if (tls_ && tls != tls_) {
    std::vector<UpstreamConn*> idle;
    idle.swap(idle_);
    for (UpstreamConn* conn : idle) conn->close();
  }
  backend_ = &generation->config.backends[backend];
  server_ = &backend_->servers[server];
  address_ = generation->server_addresses[backend][server];
  Worker& worker = Worker::of(loop_);
  stats_ = &worker.stats();
  const int slot = generation->server_slot(static_cast<int>(backend), static_cast<int>(server));
  metrics_ = generation->config.metrics.histograms ? worker.metrics().server(slot) : nullptr;
  tls_ = tls;
  generation_ = std::move(generation);
}

Pool::~Pool() { shutdown(); }

UpstreamConn* Pool::acquire(bool fresh_only) {
  if (!fresh_only && !idle_.empty()) {
    UpstreamConn* conn = idle_.back();
    idle_.pop_back();
    conn->deadline_.clear();
    conn->reused_ = true;
    return conn;
  }
  std::unique_ptr<http::Transport> transport = Worker::of(loop_).new_transport();
  SSL* ssl = tls_ ? tls_->new_ssl(server_->address.host, &session_slot_) : nullptr;
  if (ssl) {
    transport = std::make_unique<tls::TlsTransport>(std::move(transport), ssl, loop_, Worker::of(loop_).tls_buffer(),
                                                    tls::TlsTransport::Role::kClient);
  }
  auto* conn = new UpstreamConn(*this, std::move(transport));
  conn->reused_ = false;
  if (tls_ && !ssl) {
    // Never in plain text to a TLS backend: the connection fails as one that was refused.
    conn->connect_failed_ = true;
    return conn;
  }
  conn->connect(reinterpret_cast<const sockaddr*>(&address_));
  return conn;
}

void Pool::release(UpstreamConn* conn) {
  if (shut_down_ || idle_.size() >= backend_->pool.max_idle) return conn->close();
  conn->state_ = UpstreamConn::State::kIdle;
  conn->arm_timer(backend_->pool.idle_timeout);
  idle_.push_back(conn);
}

void Pool::forget(UpstreamConn* conn) {
  auto it = std::find(idle_.begin(), idle_.end(), conn);
  if (it != idle_.end()) idle_.erase(it);
}

void Pool::shutdown() {
  shut_down_ = true;
  std::vector<UpstreamConn*> idle;
  idle.swap(idle_);
  for (UpstreamConn* conn : idle) conn->close();
}

}  // namespace edge::proxy
