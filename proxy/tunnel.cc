#include "proxy/tunnel.h"

#include "proxy/worker.h"

namespace edge::proxy {

namespace {
struct TransportCloser final : http::Transport::Closed {
  std::unique_ptr<http::Transport> transport;
  void on_closed() override { delete this; }
};
}  // namespace

void close_transport(std::unique_ptr<http::Transport> transport) {
  if (!transport) return;
  auto* closer = new TransportCloser;
  closer->transport = std::move(transport);
  closer->transport->close(closer);
}

void abandon_upgraded(Fetch::Upgraded upstream) {
  close_transport(std::move(upstream.conn.transport));
  if (upstream.server >= 0)
    upstream.generation->balancer.backend(static_cast<size_t>(upstream.backend))
        .release(upstream.server, balancer::Outcome::kSuccess, balancer::now_ms());
}

Tunnel::Tunnel(Worker& worker, Client& client, Fetch::Upgraded upstream)
    : worker_(worker), client_(&client), upstream_(std::move(upstream)) {
  to_client_.tunnel = this;
  to_client_.toward_client = true;
  to_backend_.tunnel = this;
  last_activity_ms_ = uv_now(worker_.loop());
  bump(worker_.stats().backend_connections);
  // Read at once, so a backend that closes is seen; what it sends waits for start().
  if (!upstream_.conn.leftover.empty()) push(to_client_, upstream_.conn.leftover);
  upstream_.conn.leftover.clear();
  upstream_reading_ = upstream_.conn.transport->read_start(this) == 0;
  if (!upstream_reading_) to_client_.source_ended = true;
}

Tunnel::~Tunnel() {
  drop(worker_.stats().backend_connections);
  if (upstream_.server >= 0)
    upstream_.generation->balancer.backend(static_cast<size_t>(upstream_.backend))
        .release(upstream_.server, balancer::Outcome::kSuccess, balancer::now_ms());
}

void Tunnel::start() {
  started_ = true;
  write_next(to_client_);
  check_end();
}

void Tunnel::from_client(std::string_view data) {
  last_activity_ms_ = uv_now(worker_.loop());
  push(to_backend_, data);
}

void Tunnel::client_ended() {
  to_backend_.source_ended = true;
  check_end();
}

void Tunnel::detach() {
  client_ = nullptr;
  over_ = true;
  if (closing_) return;
  closing_ = true;
  upstream_.conn.transport->read_stop();
  upstream_.conn.transport->close(this);
}

http::Output* Tunnel::target(const Direction& d) {
  return d.toward_client ? static_cast<http::Output*>(&client_->client_transport())
                         : static_cast<http::Output*>(upstream_.conn.transport.get());
}

void Tunnel::push(Direction& d, std::string_view data) {
  if (over_) return;
  d.backlog.append(data);
  write_next(d);
  throttle(d);
}

void Tunnel::write_next(Direction& d) {
  while (!over_ && !d.writing && !d.backlog.empty() && (started_ || !d.toward_client)) {
    d.flight.swap(d.backlog);
    d.backlog.clear();
    uv_buf_t buf = uv_buf_init(d.flight.data(), static_cast<unsigned>(d.flight.size()));
    const int written = target(d)->write(&buf, 1, &d);
    if (written < 0) return fail();
    if (static_cast<size_t>(written) < d.flight.size()) {
      d.writing = true;  // the rest is queued: on_written follows
      return;
    }
    d.flight.clear();
  }
}

void Tunnel::Direction::on_written(int status) {
  writing = false;
  flight.clear();
  Tunnel* self = tunnel;
  if (self->closing_) {
    // Only the last cancelled writes arrive now; the backend's close may already have come.
    if (!self->upstream_.conn.transport) delete self;
    return;
  }
  if (status < 0) return self->fail();
  self->write_next(*this);
  self->throttle(*this);
  self->check_end();
}

void Tunnel::throttle(const Direction& d) {
  if (over_) return;
  // Read the side that feeds `d` only while its backlog is small.
  const bool full = d.backlog.size() > kMaxBacklog;
  if (d.toward_client) {
    if (full && upstream_reading_) {
      upstream_.conn.transport->read_stop();
      upstream_reading_ = false;
    } else if (!full && !upstream_reading_ && !d.source_ended) {
      upstream_reading_ = upstream_.conn.transport->read_start(this) == 0;
      if (!upstream_reading_) return fail();
    }
  } else if (full != client_paused_) {
    client_paused_ = full;
    client_->pause_client(full);
  }
}

void Tunnel::check_end() {
  if (over_) return;
  const bool backend_done = to_client_.source_ended && to_client_.idle() && started_;
  const bool client_done = to_backend_.source_ended && to_backend_.idle();
  if (!backend_done && !client_done) return;
  over_ = true;
  client_->tunnel_over(true);  // the client detaches us from its close
}

void Tunnel::fail() {
  if (over_) return;
  over_ = true;
  client_->tunnel_over(false);
}

void Tunnel::on_data(const char* data, size_t len) {
  last_activity_ms_ = uv_now(worker_.loop());
  push(to_client_, {data, len});
}

void Tunnel::on_end(int status) {
  upstream_reading_ = false;
  to_client_.source_ended = true;
  if (status != UV_EOF) return fail();
  check_end();
}

void Tunnel::on_closed() {
  upstream_.conn.transport.reset();
  // A write still in flight to either side completes (cancelled, for the backend's) first.
  if (!to_client_.writing && !to_backend_.writing) delete this;
}

}  // namespace edge::proxy
