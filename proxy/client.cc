#include "proxy/client.h"

#include <algorithm>
#include <cstring>

#include "proxy/clock.h"
#include "proxy/heads.h"

namespace edge::proxy {

namespace {

constexpr size_t kMaxPending = 64 * 1024;

http::ServerConn::Settings settings_for(Worker& worker) {
  const conf::Limits& limits = worker.limits();
  http::ServerConn::Settings settings;
  settings.limits = {limits.max_header_bytes, limits.max_request_line, limits.max_body_bytes, limits.max_header_fields};
  settings.header_timeout_ms = to_ms(limits.header_timeout);
  settings.body_timeout_ms = to_ms(limits.body_timeout);
  settings.idle_timeout_ms = to_ms(limits.idle_timeout);
  settings.send_timeout_ms = to_ms(limits.send_timeout);
  settings.linger_ms = kClientLingerMs;
  settings.max_pending = kMaxPending;
  return settings;
}

CloseReason reason_of(http::ServerConn::Close why) {
  using Close = http::ServerConn::Close;
  switch (why) {
    case Close::kPeerClosed: return CloseReason::kClientClosed;
    case Close::kKeepAliveDone: return CloseReason::kKeepAliveDone;
    case Close::kIdleTimeout: return CloseReason::kIdleTimeout;
    case Close::kHeaderTimeout: return CloseReason::kHeaderTimeout;
    case Close::kBodyTimeout: return CloseReason::kBodyTimeout;
    case Close::kSendTimeout: return CloseReason::kSendTimeout;
    case Close::kBadRequest: return CloseReason::kBadRequest;
    case Close::kPeerAbort: return CloseReason::kClientAbort;
    case Close::kWriteError: return CloseReason::kWriteError;
    case Close::kHandler: break;
  }
  return CloseReason::kClientClosed;  // a handler's close always names its reason first
}

}  // namespace

namespace {
// A connection over max_conns_per_client, written before any request is read.
constexpr std::string_view kTooManyFromClient =
    "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n";
}  // namespace

ClientConn::ClientConn(Worker& worker)
    : ServerConn(worker.loop(), settings_for(worker)), worker_(worker) {}

ClientConn::~ClientConn() = default;

void ClientConn::accept(Worker& worker, uv_stream_t* listener, const tls::ServerContext* tls, bool h2c) {
  auto* conn = new ClientConn(worker);
  conn->h2c_ = h2c;
  worker.add_client(conn);
  bump(worker.stats().client_connections);
  Shared& shared = worker.shared();
  shared.client_connections.fetch_add(1, std::memory_order_relaxed);
  int accepted = 0;
  std::unique_ptr<http::Transport> transport = worker.accept_transport(listener, &accepted);
  if (tls && accepted == 0) {
    SSL* ssl = tls->new_ssl();
    if (!ssl) accepted = UV_ENOMEM;
    // Without an SSL the socket is still closed through the transport it came in.
    if (ssl) {
      auto secure = std::make_unique<tls::TlsTransport>(std::move(transport), ssl, worker.loop(), worker.tls_buffer(),
                                                         tls::TlsTransport::Role::kServer);
      conn->tls_ = secure.get();
      transport = std::move(secure);
    }
  }
  conn->start(std::move(transport));
  if (conn->closed()) return;
  if (accepted != 0) return conn->close(Close::kPeerClosed);
  if (const uint64_t per_client = worker.limits().max_conns_per_client) {
    sockaddr_storage peer{};
    std::optional<rules::IpAddress> address;
    if (conn->transport()->peer_address(&peer) == 0) address = rules::from_sockaddr(peer);
    if (address) {
      if (!shared.client_conns.try_open(*address, static_cast<uint32_t>(per_client))) {
        if (conn->tls_) return conn->close_for(CloseReason::kClientConnLimit);
        uv_buf_t buf = uv_buf_init(const_cast<char*>(kTooManyFromClient.data()), static_cast<unsigned>(kTooManyFromClient.size()));
        conn->transport()->write(&buf, 1, nullptr);
        return conn->close_for(CloseReason::kClientConnLimit);
      }
      conn->counted_client_ = address;
    }
  }
  if (shared.client_connections.load(std::memory_order_relaxed) > worker.limits().max_connections) {
    // A TLS client cannot read a plain answer before its handshake: it is only closed.
    if (conn->tls_) return conn->close_for(CloseReason::kTooManyConnections);
    uv_buf_t buf = uv_buf_init(const_cast<char*>(kOverloadedAnswer.data()), static_cast<unsigned>(kOverloadedAnswer.size()));
    conn->transport()->write(&buf, 1, nullptr);
    return conn->close_for(CloseReason::kTooManyConnections);
  }
}

void ClientConn::drain() {
  if (h2_) return h2_->drain();
  // A tunnel has no request boundary to wait for: it ends now, both sides closed in order.
  if (tunnel_) return close_for(CloseReason::kShutdown);
  // A connection that has carried no request yet was accepted a moment ago and its client is
  // sending one (during a binary upgrade, it is one the new process did not take first): cutting
  // it would fail that request, so it is read and answered, with Connection: close, within
  // header_timeout. Between two requests a connection is idle and closes now.
  if (phase() == Phase::kWaiting && requests() > 0) return close_for(CloseReason::kShutdown);
  // A response not yet begun says Connection: close (framing() sees the worker stopping); one
  // already under way ends the connection after it. A lingering one is left to end its linger.
  close_after_response();
}

void ClientConn::shutdown() { close_for(CloseReason::kShutdown); }

Request& ClientConn::request() {
  if (!request_) {
    request_body_ = std::make_unique<http::Body>();
    request_body_->set_options(worker_.body_options(true));
    request_ = std::make_unique<Request>(worker_, static_cast<Request::Client&>(*this));
  }
  return *request_;
}

void ClientConn::close_for(CloseReason reason) {
  if (!close_reason_) close_reason_ = reason;
  close(Close::kHandler);
}

void ClientConn::reject(int status, CloseReason reason) {
  close_reason_ = reason;
  request().refuse(parser().head(), status);
}

void ClientConn::on_close(Close why) {
  // A rejected request's connection ends for the rejection, however its last write goes.
  CloseReason reason = close_reason_.value_or(reason_of(why));
  if (h2_) {
    reason = h2_->close_reason(reason);
    h2_->release_streams();
  }
  if (tunnel_) std::exchange(tunnel_, nullptr)->detach();
  if (tls_) {
    if (!close_reason_ && tls_->failure() == tls::TlsTransport::Failure::kPlainHttp) reason = CloseReason::kPlainHttpOnTls;
    if (!close_reason_ && tls_->failure() == tls::TlsTransport::Failure::kHandshake) reason = CloseReason::kTlsHandshakeFailed;
    count_handshake();
  }
  if (reason == CloseReason::kSendTimeout) worker_.bounds().count(worker_.bounds().send_timeouts);
  worker_.stats().count_close(reason);
  count_bytes_read();
  drop(worker_.stats().client_connections);
  if (request_) request_->done();
  worker_.remove_client(this);
  worker_.shared().client_connections.fetch_sub(1, std::memory_order_relaxed);
  if (counted_client_) worker_.shared().client_conns.close(*counted_client_);
}

// ---- a request arrives ----

void ClientConn::count_bytes_read() {
  // Counted per request and at the close, not per read: a read costs nothing more.
  bump(worker_.stats().client_bytes_received, bytes_read() - bytes_counted_);
  bytes_counted_ = bytes_read();
}

void ClientConn::count_handshake() {
  if (handshake_counted_ || !tls_ || !tls_->handshake_done()) return;
  handshake_counted_ = true;
  bump(worker_.stats().tls_handshakes);
  if (tls_->resumed()) bump(worker_.stats().tls_resumed);
}

http::Body* ClientConn::on_head(http::RequestHead& head) {
  // At the first request, before its answer: a client that saw the answer sees the count.
  count_handshake();
  if (const int refused = request().recv(head)) {
    reject(refused, CloseReason::kBadRequest);
    return nullptr;
  }
  const bool has_body = head.chunked || head.content_length.value_or(0) > 0;
  const bool expect = head.headers.get(http::FieldId::kExpect).has_value();
  const int early_status = request_->early_status();
  if (early_status && has_body && expect) {
    // The client waits for our word before sending its body: answer now, and close, since the
    // body may still come.
    request_->synth(early_status, false);
    return nullptr;
  }
  request_body_->clear();
  if (has_body && head.version_minor >= 1 && expect) send_continue();
  return early_status ? nullptr : request_body_.get();
}

void ClientConn::on_body_read() {
  if (!upload_too_slow()) return;
  worker_.bounds().count(worker_.bounds().slow_uploads);
  reject(408, CloseReason::kSlowUpload);
}

bool ClientConn::upload_too_slow() {
  // body_timeout alone lets a body arrive a byte per timeout for ever: past the grace, the body
  // must have averaged min_upload_rate since its head ended.
  const conf::Limits& limits = worker_.limits();
  if (limits.min_upload_rate == 0) return false;
  const uint64_t elapsed_ms = now() - head_ended_at();
  if (elapsed_ms <= static_cast<uint64_t>(limits.upload_rate_grace.count())) return false;
  return parser().body_bytes() * 1000 < limits.min_upload_rate * elapsed_ms;
}

void ClientConn::on_refuse(int status, Close) {
  // The core keeps the reason as the close's.
  if (status == 431 && parser().head().headers.size() >= worker_.limits().max_header_fields)
    worker_.bounds().count(worker_.bounds().too_many_fields);
  request().refuse(parser().head(), status);
}

void ClientConn::on_request(http::RequestHead& head) {
  bump(worker_.stats().requests);
  count_bytes_read();
  request().start(head, *request_body_);
  // Waiting on another request's fetch is bounded: past coalesce_timeout it goes alone.
  if (!closed() && request_->waiting_for_fill()) set_timer(to_ms(worker_.generation()->config.cache.coalesce_timeout));
}

http::ServerConn::Sniff ClientConn::sniff(std::string_view data) {
  if (tls_) return tls_->alpn() == "h2" ? Sniff::kTake : Sniff::kHttp1;
  if (!h2c_) return Sniff::kHttp1;
  const size_t n = std::min(data.size(), h2::kPreface.size());
  if (data.substr(0, n) != h2::kPreface.substr(0, n)) return Sniff::kHttp1;
  return n < h2::kPreface.size() ? Sniff::kMore : Sniff::kTake;
}

void ClientConn::on_taken_data(std::string_view data) {
  if (tunnel_) return tunnel_->from_client(data);
  if (!h2_) {
    count_handshake();
    h2_ = std::make_unique<H2Client>(worker_, *this);
  }
  h2_->on_data(data);
  // Accepted before a drain and taken after it: its streams are answered, then it goes.
  if (!closed() && worker_.stopping()) h2_->drain();
}

void ClientConn::on_taken_end(int status) {
  if (tunnel_) return status == UV_EOF ? tunnel_->client_ended() : close_for(CloseReason::kClientClosed);
  if (h2_) h2_->on_end(status);
}

bool ClientConn::start_tunnel(Fetch::Upgraded upstream) {
  tunnel_ = new Tunnel(worker_, *this, std::move(upstream));
  take_after_response();
  return true;
}

void ClientConn::on_taken() {
  if (!tunnel_) return;
  if (worker_.stopping()) return close_for(CloseReason::kShutdown);  // opened as the drain began
  tunnel_->start();
  if (tunnel_) set_timer(static_cast<uint64_t>(worker_.limits().tunnel_idle_timeout.count()));
}

void ClientConn::tunnel_over(bool clean) {
  Tunnel* tunnel = std::exchange(tunnel_, nullptr);
  tunnel->detach();
  if (!clean) return close_for(CloseReason::kUpstreamBroken);
  if (!close_reason_) close_reason_ = CloseReason::kTunnelDone;
  finish_taken();
}

void ClientConn::on_timer() {
  if (tunnel_) {
    const uint64_t idle = static_cast<uint64_t>(worker_.limits().tunnel_idle_timeout.count());
    const uint64_t quiet = now() - tunnel_->last_activity_ms();
    if (quiet < idle) return set_timer(idle - quiet);
    return close_for(CloseReason::kIdleTimeout);
  }
  if (h2_) return h2_->on_timer();
  // Waited coalesce_timeout for another request's fetch: go to the backend alone.
  if (request_ && request_->waiting_for_fill() && !request_->responding()) request_->stop_waiting();
}

void ClientConn::on_peer_end(int) {
  // A client that leaves before the answer frees the backend; one that only half-closed after
  // its answer started still gets the rest of it.
  if (!request_ || !request_->responding()) close(Close::kPeerAbort);
}

// ---- the response ----

ClientFraming ClientConn::framing(bool may_keep_alive) {
  ClientFraming framing;
  framing.http10 = parser().head().version_minor == 0;
  framing.keep_alive = may_keep_alive && parser().head().keep_alive && phase() == Phase::kHandling && !peer_ended() &&
                       !worker_.stopping();
  return framing;
}

void ClientConn::send(const Response& response) {
  respond(response.head, response.body, response.chunked, response.release, response.keep_alive);
}

void ClientConn::on_response_written() {
  if (request_) request_->done();
  if (request_body_) request_body_->clear();
  if (worker_.stopping()) close_after_response();
}

std::string_view ClientConn::client_ip() {
  if (client_ip_[0]) return client_ip_;
  sockaddr_storage peer{};
  if (transport() && transport()->peer_address(&peer) == 0) {
    if (peer.ss_family == AF_INET6)
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&peer), client_ip_, sizeof client_ip_);
    else
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&peer), client_ip_, sizeof client_ip_);
  }
  if (!client_ip_[0]) std::strcpy(client_ip_, "unknown");
  return client_ip_;
}

}  // namespace edge::proxy
