#include "proxy/fetch.h"

#include "http/log_text.h"
#include "log/error_log.h"
#include "proxy/tunnel.h"
#include "proxy/worker.h"

namespace edge::proxy {

Fetch::Fetch(Worker& worker, Owner* owner, Request request)
    : worker_(worker), owner_(owner), request_(std::move(request)) {
  response_body_.set_options(worker.body_options(false));
  facts_.backend = request_.backend;
  deadline_.init(worker.loop(), [](void* self) noexcept { static_cast<Fetch*>(self)->on_queue_timeout(); }, this);
}

void FinishFetch::operator()(Fetch* fetch) const { fetch->finish(); }

Fetch* Fetch::start(Worker& worker, Owner* owner, Request request) {
  auto* fetch = new Fetch(worker, owner, std::move(request));
  fetch->id_ = worker.next_connection_id();
  worker.add_fetch(fetch);
  fetch->dispatch();
  // Failed at once (no server to try) and finished by its owner from the callback: there is
  // nothing left to hold on to.
  return fetch->finished_ ? nullptr : fetch;
}

void Fetch::finish() {
  if (finished_) return;
  finished_ = true;
  owner_ = nullptr;
  if (holds_busy_server()) {
    // The server is working on our request whatever became of whoever asked: its max_conns slot
    // stays taken until it has answered, or the next request would find it still busy. The
    // response is read and dropped, the connection pooled if it can be, and the slot released
    // with what really happened.
    draining_ = true;
    worker_.bounds().count(worker_.bounds().slots_held);
    upstream_->finish_within(backend_state().config().response_timeout);
    response_body_.release_before(response_body_.size());  // reading goes on if it had stopped
    return;
  }
  if (upstream_) {
    upstream_->abandon();
    upstream_ = nullptr;
  }
  if (upgraded_.transport) {
    close_transport(std::move(upgraded_.transport));
    release_slot(balancer::Outcome::kSuccess);
  }
  release_slot(balancer::Outcome::kCancelled);
  let_go();
}

Fetch::Upgraded Fetch::take_upgraded() {
  Upgraded out;
  out.conn = std::move(upgraded_);
  upgraded_ = {};
  out.generation = request_.generation;
  out.backend = request_.backend;
  out.server = out.conn.transport ? slot_server_ : -1;
  if (out.conn.transport) slot_server_ = -1;  // the tunnel's to release
  return out;
}

void Fetch::on_upstream_upgraded(UpgradedConn conn) { upgraded_ = std::move(conn); }

bool Fetch::holds_busy_server() {
  if (!upstream_ || slot_server_ < 0 || !upstream_->request_written()) return false;
  return backend_state().config().servers[static_cast<size_t>(slot_server_)].max_conns > 0;
}

void Fetch::let_go() {
  if (queued_) {
    // If a grant is already on its way, the worker releases it when it finds us gone.
    if (!backend_state().cancel(this)) worker_.expect_orphan_grant(id_, request_.generation);
    queued_ = false;
  }
  worker_.remove_fetch(this);
  deadline_.close_and_delete<Fetch>();
}

void Fetch::shutdown() {
  if (draining_) {
    upstream_->abandon();
    upstream_ = nullptr;
    release_slot(balancer::Outcome::kCancelled);
    return let_go();
  }
  if (!ended_) fail(503);
  finish();
}

balancer::BackendState& Fetch::backend_state() {
  return request_.generation->balancer.backend(static_cast<size_t>(request_.backend));
}

void Fetch::fail(int status) {
  ended_ = true;
  if (owner_) owner_->on_fetch_failed(*this, status);
}

void Fetch::dispatch() {
  balancer::BackendState& backend = backend_state();
  const balancer::BackendState::Pick pick = backend.pick(tried_servers_, balancer::now_ms());
  switch (pick.kind) {
    case balancer::BackendState::Pick::kServer:
      return forward_to(pick.server, false);
    case balancer::BackendState::Pick::kQueue:
      // Every server is at max_conns: wait at the edge rather than pile onto a busy server.
      queued_ = true;
      if (!backend.enqueue(this)) {
        queued_ = false;
        return fail(503);
      }
      deadline_.set(static_cast<uint64_t>(backend.config().queue.timeout.count()));
      return;
    case balancer::BackendState::Pick::kNone:
      // Nobody left to try: say what went wrong with the last one, or that nobody was there.
      return fail(last_failure_status_ ? last_failure_status_ : 503);
  }
}

void Fetch::granted(int server) {
  // On the releasing thread, under the queue's lock: only hand the news to our own loop.
  worker_.post_grant(id_, request_.backend, server);
}

void Fetch::on_granted(int server) {
  queued_ = false;
  deadline_.clear();
  forward_to(server, false);
}

void Fetch::on_queue_timeout() {
  if (!queued_ || finished_) return;
  // Still queued: 503. Already granted (the news is on its way): go with it.
  if (!backend_state().cancel(this)) return;
  queued_ = false;
  fail(503);
}

void Fetch::forward_to(int server, bool fresh) {
  // A fresh connection to the same server is a repeat, not another server.
  if (!fresh && facts_.server >= 0) ++facts_.retries;
  facts_.server = server;
  slot_server_ = server;
  tried_servers_ |= uint64_t{1} << (static_cast<unsigned>(server) % 64);
  response_body_.clear();
  upstream_ = worker_.pool(request_.generation, request_.backend, server).acquire(fresh);
  http::Body* body = request_.body && request_.body->size() > 0 ? const_cast<http::Body*>(request_.body) : nullptr;
  upstream_->start(this, &request_.head, body, &response_body_, request_.head_request, request_.upgrade);
}

void Fetch::release_slot(balancer::Outcome outcome) {
  if (slot_server_ < 0) return;
  backend_state().release(slot_server_, outcome, balancer::now_ms());
  slot_server_ = -1;
}

balancer::Outcome Fetch::outcome_of(UpstreamFailure failure) {
  switch (failure) {
    case UpstreamFailure::kConnectRefused:
    case UpstreamFailure::kConnectTimeout:
    case UpstreamFailure::kTlsHandshake:
      return balancer::Outcome::kConnectFailed;
    case UpstreamFailure::kResetBeforeResponse:
    case UpstreamFailure::kBadResponse:
      return balancer::Outcome::kBroken;
    case UpstreamFailure::kResponseTimeout:
      return balancer::Outcome::kTimeout;
    case UpstreamFailure::kLocal:
      break;
  }
  return balancer::Outcome::kCancelled;
}

void Fetch::on_upstream_failed(UpstreamFailure failure, bool reused) {
  upstream_ = nullptr;
  if (draining_) {
    release_slot(outcome_of(failure));
    return let_go();
  }
  bump(worker_.stats().upstream_failures);
  const int server = slot_server_;
  const conf::Backend& backend = backend_state().config();
  // Names from the configuration, escaped all the same: a log line is one event, whoever wrote it.
  edge::log::warn("edge: backend %s server %s: %s", http::escape_for_log(backend.name).c_str(),
                  http::escape_for_log(backend.servers[static_cast<size_t>(server)].address.text()).c_str(),
                  failure_name(failure));

  if (failure == UpstreamFailure::kResetBeforeResponse && reused && !retried_fresh_ && request_.idempotent) {
    // A kept-alive connection the server had just closed, most likely before reading us: once
    // more on a new connection to the same server, keeping its slot, if repeating is harmless.
    retried_fresh_ = true;
    slot_server_ = -1;
    return forward_to(server, true);
  }
  release_slot(outcome_of(failure));
  if (response_started_) return fail(502);

  switch (failure) {
    case UpstreamFailure::kConnectRefused:
    case UpstreamFailure::kConnectTimeout:
      // Nothing reached that server: any request may go to another one.
      return dispatch();
    case UpstreamFailure::kTlsHandshake:
      // Likewise, but the server is there and is not the one asked for: a bad gateway, as nginx
      // says, unless another server answers.
      last_failure_status_ = 502;
      return dispatch();
    case UpstreamFailure::kResetBeforeResponse:
      // The request reached the server. Only what is harmless to repeat goes elsewhere.
      last_failure_status_ = 502;
      if (request_.idempotent) return dispatch();
      return fail(502);
    case UpstreamFailure::kBadResponse:
      return fail(502);
    case UpstreamFailure::kResponseTimeout:
      return fail(504);
    case UpstreamFailure::kLocal:
      return fail(500);
  }
}

void Fetch::on_upstream_interim(const http::ResponseHead& interim) {
  if (owner_ && !draining_) owner_->on_fetch_interim(*this, interim);
}

void Fetch::on_upstream_response(const http::ResponseHead& head, bool complete) {
  if (draining_) {
    if (!complete) return response_body_.release_before(response_body_.size());
    upstream_ = nullptr;
    if (upgraded_.transport) close_transport(std::move(upgraded_.transport));  // nobody to tunnel for
    release_slot(balancer::Outcome::kSuccess);
    return let_go();
  }
  if (complete) {
    upstream_ = nullptr;
    // A 101's slot stays taken while its tunnel is open (take_upgraded()).
    if (!upgraded_.transport) release_slot(balancer::Outcome::kSuccess);
    ended_ = true;
  }
  response_started_ = true;
  if (!facts_.first_byte_ns) facts_.first_byte_ns = uv_hrtime();
  if (owner_) owner_->on_fetch_response(*this, head, complete);
}

}  // namespace edge::proxy
