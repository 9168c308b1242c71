#include "proxy/client.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "http/message.h"

namespace edge::proxy {

namespace {
using http::iequals;

constexpr size_t kMaxPending = 64 * 1024;
constexpr uint64_t kLingerMs = 2000;
constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr char kTooManyConnections[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n";

// A small Connection-tokens set: the fields a message's Connection header nominates as
// hop-by-hop for this hop, which a proxy must not forward either.
struct ConnectionTokens {
  std::string_view items[8];
  int count = 0;
  explicit ConnectionTokens(const http::Headers& headers) {
    for (size_t i = 0; i < headers.size(); ++i) {
      if (headers.id(i) != http::FieldId::kConnection) continue;
      http::for_each_token(headers.value(i), [&](std::string_view token) {
        if (count < 8) items[count++] = token;
      });
    }
  }
  bool contains(std::string_view name) const {
    // Nominating a field is rare; most heads have only "keep-alive" or "close" here.
    for (int i = 0; i < count; ++i)
      if (iequals(items[i], name)) return true;
    return false;
  }
};

void append_number(std::string& out, uint64_t n) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

bool response_has_body(int status, bool head_request) {
  return !(head_request || status == 204 || status == 304 || (status >= 100 && status < 200));
}
}  // namespace

ClientConn::ClientConn(Worker& worker)
    : worker_(worker),
      parser_({worker.limits().max_header_bytes, worker.limits().max_request_line, worker.limits().max_body_bytes}),
      writer_(this) {
  http::Body::Options options{worker.limits().buffer_memory, &worker.limits().temp_dir};
  request_body_.set_options(options);
}

void ClientConn::accept(Worker& worker, uv_stream_t* listener) {
  auto* conn = new ClientConn(worker);
  uv_tcp_init(worker.loop(), &conn->tcp_);
  conn->deadline_.init(worker.loop(), [](void* owner) { static_cast<ClientConn*>(owner)->on_timer(); }, conn);
  conn->tcp_.data = conn;
  conn->open_handles_ = 2;
  worker.add_client(conn);
  Shared& shared = worker.shared();
  shared.client_connections.fetch_add(1, std::memory_order_relaxed);
  conn->id_ = worker.next_connection_id();
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&conn->tcp_)) != 0) return conn->close_now(CloseReason::kClientClosed);
  if (shared.client_connections.load(std::memory_order_relaxed) > worker.limits().max_connections) {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(kTooManyConnections), sizeof kTooManyConnections - 1);
    uv_try_write(reinterpret_cast<uv_stream_t*>(&conn->tcp_), &buf, 1);
    return conn->close_now(CloseReason::kTooManyConnections);
  }
  uv_tcp_nodelay(&conn->tcp_, 1);
  conn->reading_ = true;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&conn->tcp_), &ClientConn::on_alloc, &ClientConn::on_read);
  // The first request's head must arrive within header_timeout of the connection.
  conn->arm_timer(worker.limits().header_timeout);
}

void ClientConn::shutdown() { close_now(CloseReason::kShutdown); }

// ---- input ----

void ClientConn::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  *buf = Worker::of(handle->loop).read_buffer();
}

void ClientConn::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<ClientConn*>(stream->data);
  if (nread > 0) return c->on_data(buf->base, static_cast<size_t>(nread));
  if (nread < 0) c->on_eof();
}

void ClientConn::on_data(const char* data, size_t len) {
  if (closed_) return;
  switch (phase_) {
    case Phase::kClosing:
      return;  // lingering: the client's leftovers are discarded
    case Phase::kForwarding:
      pending_.append(data, len);
      if (pending_.size() > kMaxPending && reading_) {
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
        reading_ = false;
      }
      return;
    default:
      parse({data, len});
  }
}

void ClientConn::on_eof() {
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  reading_ = false;
  client_eof_ = true;
  switch (phase_) {
    case Phase::kForwarding:
      // A client that leaves before the answer frees the backend; one that only half-closed
      // after its answer started still gets the rest of it.
      if (!response_started_) return close_now(CloseReason::kClientAbort);
      response_keep_alive_ = false;
      return;
    case Phase::kClosing:
      return close_now(CloseReason::kKeepAliveDone);
    default:
      return close_now(CloseReason::kClientClosed);
  }
}

void ClientConn::process_pending() {
  // Re-entered when a pipelined request is answered synchronously: the outer call loops.
  if (in_process_) {
    process_again_ = true;
    return;
  }
  in_process_ = true;
  do {
    process_again_ = false;
    if (pending_.empty() || phase_ != Phase::kWaiting || closed_) break;
    std::string input = std::move(pending_);
    pending_.clear();
    parse(input);
  } while (process_again_);
  in_process_ = false;
}

void ClientConn::parse(std::string_view data) {
  // After a head the parser is fed again even with no bytes left: a body-less request is
  // complete right at its head.
  bool after_head = false;
  while ((!data.empty() || after_head) && !closed_) {
    after_head = false;
    if (phase_ == Phase::kForwarding || phase_ == Phase::kClosing) {
      if (phase_ == Phase::kForwarding) pending_.append(data);
      return;
    }
    http::ParseResult r = parser_.feed(data);
    data.remove_prefix(r.consumed);
    switch (r.event) {
      case http::ParseEvent::kError:
        return reject(parser_.error_status());
      case http::ParseEvent::kHead:
        if (!on_head()) return;
        after_head = true;
        break;
      case http::ParseEvent::kMessage:
        pending_.append(data);
        data = {};
        on_request_complete();
        return;
      case http::ParseEvent::kNeedMore:
        break;
    }
  }
  if (closed_) return;
  if (phase_ == Phase::kWaiting && parser_.in_message()) {
    phase_ = Phase::kHead;
    // A fresh connection's clock started at accept; a kept-alive one's starts now.
    if (requests_ > 0) arm_timer(worker_.limits().header_timeout);
  } else if (phase_ == Phase::kBody) {
    arm_timer(worker_.limits().body_timeout);
  }
}

bool ClientConn::on_head() {
  http::RequestHead& head = parser_.head();
  phase_ = Phase::kBody;
  early_status_ = 0;
  size_t hosts = head.headers.count(http::FieldId::kHost);
  if (hosts > 1 || (hosts == 0 && head.version_minor >= 1)) {
    reject(400);
    return false;
  }
  if (head.method == "CONNECT") {
    // A reverse proxy opens no tunnels.
    reject(405);
    return false;
  }
  const bool has_body = head.chunked || head.content_length.value_or(0) > 0;
  const std::optional<std::string_view> expect = head.headers.get(http::FieldId::kExpect);
  if (expect) {
    if (!iequals(*expect, "100-continue")) {
      reject(417);
      return false;
    }
  }
  // An absolute-form target (GET http://host/path) names the host itself, and RFC 9112 3.2.2
  // says it wins over the Host field; the backend gets the origin form and that host.
  absolute_authority_.clear();
  origin_target_.clear();
  const std::string_view target = head.target;
  const size_t scheme_end = target.find("://");
  if (scheme_end != std::string_view::npos &&
      (http::iequals(target.substr(0, scheme_end), "http") || http::iequals(target.substr(0, scheme_end), "https"))) {
    std::string_view rest = target.substr(scheme_end + 3);
    size_t end = rest.find_first_of("/?");
    absolute_authority_.assign(rest.substr(0, end));
    if (end == std::string_view::npos || rest[end] == '?') origin_target_.assign(1, '/');
    if (end != std::string_view::npos) origin_target_.append(rest.substr(end));
  }
  const std::string_view routed = origin_target_.empty() ? target : std::string_view(origin_target_);
  route_ = worker_.shared().router.match(absolute_authority_.empty() ? head.host() : std::string_view(absolute_authority_),
                                         routed.substr(0, routed.find('?')));
  if (route_.host < 0) early_status_ = 404;

  if (early_status_ && has_body && expect) {
    // The client waits for our word before sending its body: answer now, and close, since the
    // body may still come.
    send_error(early_status_, false);
    return false;
  }
  request_body_.clear();
  parser_.set_body_sink(early_status_ ? nullptr : &request_body_);
  if (has_body && head.version_minor >= 1 && expect) send_continue();
  arm_timer(worker_.limits().body_timeout);
  return true;
}

void ClientConn::send_continue() {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(kContinue), sizeof kContinue - 1);
  int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1);
  if (n == static_cast<int>(buf.len)) return;
  // Rare: the socket is full before we said anything. The rest goes through a write request
  // of its own; the string is static, so only the request needs freeing.
  size_t done = n > 0 ? static_cast<size_t>(n) : 0;
  buf.base += done;
  buf.len -= static_cast<unsigned>(done);
  auto* req = new uv_write_t;
  if (uv_write(req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1, [](uv_write_t* r, int) { delete r; }) != 0)
    delete req;
}

void ClientConn::reject(int status) {
  parser_.set_body_sink(nullptr);
  send_error(status, false);
}

// ---- the exchange ----

void ClientConn::on_request_complete() {
  deadline_.clear();
  phase_ = Phase::kForwarding;
  ++requests_;
  worker_.stats().requests.fetch_add(1, std::memory_order_relaxed);
  const http::RequestHead& head = parser_.head();
  request_keep_alive_ = head.keep_alive;
  response_started_ = false;
  if (early_status_) return send_error(early_status_, true);

  const conf::Host& host = worker_.shared().config.hosts[static_cast<size_t>(route_.host)];
  policy_ = route_.route >= 0 ? &host.routes[static_cast<size_t>(route_.route)].cache : &host.cache;
  build_upstream_head(upstream_head_, false, nullptr);
  if (policy_->enabled && (head.method == "GET" || head.is_head())) return serve_from_cache();
  start_pass();
}

namespace {
// The value of cookie `name` in the request's Cookie fields, or nullopt.
std::optional<std::string_view> cookie_value(const http::Headers& headers, std::string_view name) {
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!iequals(headers.name(i), "Cookie")) continue;
    std::string_view list = headers.value(i);
    while (!list.empty()) {
      size_t semi = list.find(';');
      std::string_view pair = http::trim(list.substr(0, semi));
      size_t eq = pair.find('=');
      if (eq != std::string_view::npos && http::trim(pair.substr(0, eq)) == name) return http::trim(pair.substr(eq + 1));
      if (semi == std::string_view::npos) break;
      list.remove_prefix(semi + 1);
    }
  }
  return std::nullopt;
}

cache::Seconds wall_now() { return static_cast<cache::Seconds>(std::time(nullptr)); }

// A shared cache answers a request carrying Authorization from a stored response only when
// that response said it may be shared (RFC 9111 3.5).
bool shareable_with_authorization(const cache::CacheControl& cc) {
  return cc.is_public || cc.s_maxage || cc.must_revalidate;
}
}  // namespace

void ClientConn::serve_from_cache() {
  const http::RequestHead& head = parser_.head();
  cache::Counters& counters = worker_.cache_counters();
  for (const std::string& name : policy_->bypass_on_cookie) {
    if (cookie_value(head.headers, name)) {
      counters.count(route_.host, cache::Event::kPass);
      return start_pass();
    }
  }
  normalize_host(absolute_authority_.empty() ? head.host() : std::string_view(absolute_authority_), cache_host_);
  const std::string_view target = origin_target_.empty() ? std::string_view(head.target) : origin_target_;
  cache_key_ = cache::cache_key(cache_host_, target);
  key_extra_.clear();
  for (const std::string& name : policy_->key_cookies) {
    key_extra_.append(name).append("=");
    if (auto value = cookie_value(head.headers, name)) key_extra_.append(*value);
    key_extra_.append(";");
  }
  request_cc_ = cache::parse_cache_control(head.headers, true);
  const bool authorized = head.headers.get("Authorization").has_value();

  cache::Store::Lookup found = worker_.shared().store.lookup(cache_key_, head.headers, key_extra_);
  if (found.object && (!authorized || shareable_with_authorization(found.object->cc))) {
    const cache::ObjectRef& object = found.object;
    switch (cache::decide(request_cc_, stored_view(*object))) {
      case cache::Use::kFresh:
        counters.count(route_.host, cache::Event::kHit);
        return deliver(object, "HIT");
      case cache::Use::kStaleAllowed:
        counters.count(route_.host, cache::Event::kStale);
        return deliver(object, "STALE");
      case cache::Use::kStaleWhileRevalidate:
        counters.count(route_.host, cache::Event::kStale);
        refresh_in_background(object);
        return deliver(object, "STALE");
      case cache::Use::kRevalidate:
        if (request_cc_.only_if_cached) return send_error(504, true);
        return start_fill(object);
    }
  }
  // RFC 9111 5.2.1.7: nothing stored will do, and the client wants nothing else.
  if (request_cc_.only_if_cached) return send_error(504, true);
  if (found.hit_for_pass) {
    counters.count(route_.host, cache::Event::kHitForPass);
    return start_pass();
  }
  // A request that may not be stored (no-store) still passes; one with credentials fetches
  // alone, since what it gets may be for it only.
  if (request_cc_.no_store) {
    counters.count(route_.host, cache::Event::kPass);
    return start_pass();
  }
  if (authorized) {
    bool started = false;
    worker_.add_subscriber(this);
    fill_initiator_ = true;
    fill_ = Fill::start(worker_, fill_params(nullptr, false), id_, &started);
    return;
  }
  start_fill(nullptr);
}

cache::StoredView ClientConn::stored_view(const cache::CachedObject& object) const {
  cache::StoredView view;
  view.response_cc = object.cc;
  // A soft purge leaves the object, stale from then on.
  view.lifetime = object.invalidated.load(std::memory_order_relaxed) ? 0 : object.lifetime;
  view.current_age = object.age.current_age(wall_now());
  if (object.invalidated.load(std::memory_order_relaxed)) view.current_age = std::max<cache::Seconds>(view.current_age, 1);
  view.grace = object.grace;
  return view;
}

Fill::Params ClientConn::fill_params(cache::ObjectRef stale, bool coalesced) {
  Fill::Params params;
  params.key = cache_key_;
  params.host = cache_host_;
  params.variant_extra = key_extra_;
  params.host_index = route_.host;
  params.policy = policy_;
  params.request = parser_.head();
  params.backend = route_.backend;
  build_upstream_head(params.upstream_head, true, stale.get());
  params.stale = std::move(stale);
  params.coalesced = coalesced;
  return params;
}

void ClientConn::start_fill(cache::ObjectRef stale) {
  if (std::shared_ptr<Fill> running = worker_.shared().coalescer.find(cache_key_)) return join_fill(std::move(running));
  bool started = false;
  worker_.add_subscriber(this);
  std::shared_ptr<Fill> fill = Fill::start(worker_, fill_params(std::move(stale), true), id_, &started);
  if (!started) {
    worker_.remove_subscriber(this);
    return join_fill(std::move(fill));
  }
  fill_initiator_ = true;
  fill_ = std::move(fill);
}

void ClientConn::join_fill(std::shared_ptr<Fill> fill) {
  worker_.cache_counters().count(route_.host, cache::Event::kCoalesced);
  fill_ = std::move(fill);
  fill_initiator_ = false;
  worker_.add_subscriber(this);
  // Waiting is bounded: past coalesce_timeout the request goes to the backend itself.
  arm_timer(worker_.shared().config.cache.coalesce_timeout);
  fill_->subscribe(worker_, id_);
  on_fill_event();  // it may be well under way, or over
}

void ClientConn::leave_fill() {
  if (!fill_) return;
  fill_->unsubscribe(worker_, id_);
  worker_.remove_subscriber(this);
  fill_.reset();
  fill_initiator_ = false;
}

void ClientConn::refresh_in_background(const cache::ObjectRef& stale) {
  if (worker_.shared().coalescer.find(cache_key_)) return;  // already being refreshed
  bool started = false;
  Fill::start(worker_, fill_params(stale, true), 0, &started);
}

void ClientConn::on_fill_event() {
  if (!fill_ || closed_) return;
  const Fill::Snapshot snap = fill_->snapshot();
  switch (snap.state) {
    case Fill::State::kFetching:
      return;
    case Fill::State::kStreaming: {
      if (response_started_) {
        if (snap.object->body->failed()) return close_now(CloseReason::kUpstreamBroken);
        if (snap.object->body->complete()) leave_fill();
        return writer_.kick();
      }
      const http::RequestHead& head = parser_.head();
      if (!fill_initiator_) {
        if (!cache::Store::variant_matches(*snap.object, head.headers, key_extra_)) {
          // Another variant was fetched: this request needs its own.
          leave_fill();
          bool started = false;
          worker_.add_subscriber(this);
          fill_initiator_ = true;
          fill_ = Fill::start(worker_, fill_params(nullptr, false), id_, &started);
          return;
        }
      }
      // A miss counts once its response proves storable; one that is not counts as a pass.
      if (snap.revalidated)
        worker_.cache_counters().count(route_.host, cache::Event::kRevalidated);
      else if (fill_initiator_)
        worker_.cache_counters().count(route_.host, cache::Event::kMiss);
      const char* label = snap.revalidated ? "REVALIDATED" : fill_initiator_ ? "MISS" : "HIT";
      const cache::ObjectRef object = snap.object;
      if (object->body->complete()) leave_fill();
      return deliver(object, label);
    }
    case Fill::State::kPass:
      // Not storable, and not ours (the initiator took the response): to the backend, in parallel.
      leave_fill();
      worker_.cache_counters().count(route_.host, cache::Event::kHitForPass);
      return start_pass();
    case Fill::State::kFailed:
      leave_fill();
      if (response_started_) return close_now(CloseReason::kUpstreamBroken);
      return serve_stale_or_error(snap.stale, snap.status ? snap.status : 502);
  }
}

void ClientConn::serve_stale_or_error(const cache::ObjectRef& stale, int status) {
  if (stale && cache::may_serve_stale_on_error(request_cc_, stored_view(*stale))) {
    worker_.cache_counters().count(route_.host, cache::Event::kStale);
    return deliver(stale, "STALE");
  }
  send_error(status, true);
}

void ClientConn::adopt_pass(Fetch& fetch, const http::ResponseHead& head, bool complete) {
  leave_fill();
  worker_.cache_counters().count(route_.host, cache::Event::kPass);
  fetch_ = &fetch;
  fetch.set_owner(this);
  on_fetch_response(fetch, head, complete);
}

void ClientConn::start_pass() {
  const http::RequestHead& head = parser_.head();
  x_cache_ = "PASS";
  Fetch::Request request;
  request.backend = route_.backend;
  request.head = upstream_head_;
  request.body = &request_body_;
  request.head_request = head.is_head();
  request.idempotent = head.idempotent();
  fetch_ = Fetch::start(worker_, this, std::move(request));
}

void ClientConn::on_fetch_failed(Fetch& fetch, int status) {
  if (fetch_ == &fetch) fetch_ = nullptr;
  fetch.finish();
  if (response_started_) return close_now(CloseReason::kUpstreamBroken);
  send_error(status, true);
}

void ClientConn::on_fetch_response(Fetch& fetch, const http::ResponseHead& head, bool complete) {
  if (response_started_) return writer_.kick();
  response_started_ = true;
  invalidate_after(head);
  build_response_head(head, complete);
  const bool body = response_has_body(head.status, parser_.head().is_head());
  progress_mark_ = 0;
  arm_timer(worker_.limits().send_timeout);
  writer_.start(reinterpret_cast<uv_stream_t*>(&tcp_), &response_head_, body ? &fetch.response_body() : nullptr,
                body && chunked_response_);
}

void ClientConn::invalidate_after(const http::ResponseHead& head) {
  // RFC 9111 4.4: an unsafe method that succeeded changes what the cache holds for the target
  // and for Location / Content-Location on the same host.
  const http::RequestHead& request = parser_.head();
  if (request.method == "GET" || request.is_head() || request.method == "OPTIONS" || request.method == "TRACE") return;
  if (head.status < 200 || head.status >= 400) return;
  std::string host;
  normalize_host(absolute_authority_.empty() ? request.host() : std::string_view(absolute_authority_), host);
  http::RequestHead origin_form;
  const http::RequestHead* effective = &request;
  if (!origin_target_.empty()) {
    origin_form = request;
    origin_form.target = origin_target_;
    effective = &origin_form;
  }
  for (const std::string& target : cache::invalidated_targets(*effective, head, host))
    worker_.shared().store.purge(cache::cache_key(host, target), false);
}

// ---- delivering from the cache ----

void ClientConn::deliver(const cache::ObjectRef& object, const char* x_cache) {
  const http::RequestHead& request = parser_.head();
  object_ = object;
  x_cache_ = x_cache;
  response_started_ = true;
  const http::SharedBody& body = *object->body;
  switch (cache::evaluate_preconditions(request, object->headers)) {
    case cache::Precondition::kNotModified:
      start_cached_head(304, "", *object);
      end_head(false, std::nullopt, request.is_head());
      object_.reset();
      return writer_.start(reinterpret_cast<uv_stream_t*>(&tcp_), &response_head_, nullptr, false);
    case cache::Precondition::kFailed:
      response_started_ = false;
      object_.reset();
      return send_error(412, true);
    case cache::Precondition::kProceed:
      break;
  }
  const bool has_body = response_has_body(object->status, request.is_head());
  const http::BodySource* source = &body;
  std::optional<uint64_t> length;
  if (body.complete()) length = body.size();
  if (object->status == 200 && body.complete() && request.headers.get("Range")) {
    const cache::RangeDecision range = cache::decide_range(request, object->headers, body.size());
    if (range.kind == cache::RangeDecision::kUnsatisfiable) {
      start_cached_head(416, "", *object);
      response_head_.append("Content-Range: bytes */");
      append_number(response_head_, body.size());
      response_head_.append("\r\n");
      end_head(false, 0, true);
      object_.reset();
      return writer_.start(reinterpret_cast<uv_stream_t*>(&tcp_), &response_head_, nullptr, false);
    }
    if (range.kind == cache::RangeDecision::kPartial) {
      const uint64_t count = range.range.last - range.range.first + 1;
      window_.reset(&body, range.range.first, count);
      source = &window_;
      length = count;
      start_cached_head(206, "", *object);
      response_head_.append("Content-Range: bytes ");
      append_number(response_head_, range.range.first);
      response_head_.append("-");
      append_number(response_head_, range.range.last);
      response_head_.append("/");
      append_number(response_head_, body.size());
      response_head_.append("\r\n");
      end_head(has_body, length, request.is_head());
      progress_mark_ = 0;
      arm_timer(worker_.limits().send_timeout);
      return writer_.start(reinterpret_cast<uv_stream_t*>(&tcp_), &response_head_,
                           has_body ? const_cast<http::BodySource*>(source) : nullptr, false, false);
    }
  }
  start_cached_head(object->status, object->reason, *object);
  end_head(has_body, length, request.is_head());
  progress_mark_ = 0;
  arm_timer(worker_.limits().send_timeout);
  writer_.start(reinterpret_cast<uv_stream_t*>(&tcp_), &response_head_,
                has_body ? const_cast<http::BodySource*>(source) : nullptr, has_body && chunked_response_, false);
}

void ClientConn::start_cached_head(int status, std::string_view reason, const cache::CachedObject& object) {
  std::string& out = response_head_;
  out.clear();
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<uint64_t>(status));
  out.append(" ");
  out.append(reason.empty() || status != object.status ? http::reason_phrase(status) : reason);
  out.append("\r\n");
  bool has_date = false;
  for (size_t i = 0; i < object.headers.size(); ++i) {
    const http::FieldId id = object.headers.id(i);
    if (id == http::FieldId::kDate) has_date = true;
    append_field(out, object.headers.name(i), object.headers.value(i));
  }
  if (!has_date) append_field(out, "Date", worker_.date());
  out.append("Age: ");
  append_number(out, static_cast<uint64_t>(std::max<cache::Seconds>(0, object.age.current_age(wall_now()))));
  out.append("\r\nVia: 1.1 edge\r\n");
  if (worker_.shared().config.cache.x_cache) append_field(out, "X-Cache", x_cache_);
}

void ClientConn::end_head(bool has_body, std::optional<uint64_t> length, bool head_request) {
  std::string& out = response_head_;
  const bool client_1_0 = parser_.head().version_minor == 0;
  response_keep_alive_ = request_keep_alive_ && !client_eof_ && !worker_.stopping();
  chunked_response_ = false;
  if (length && (has_body || head_request)) {
    out.append("Content-Length: ");
    append_number(out, *length);
    out.append("\r\n");
  } else if (has_body && !length) {
    if (!client_1_0) {
      out.append("Transfer-Encoding: chunked\r\n");
      chunked_response_ = true;
    } else {
      response_keep_alive_ = false;
    }
  }
  if (!response_keep_alive_)
    out.append("Connection: close\r\n");
  else if (client_1_0)
    out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
}

void ClientConn::on_write_done(int status) {
  if (status < 0) return close_now(CloseReason::kWriteError);
  if (phase_ == Phase::kClosing) return linger();
  finish_exchange();
}

void ClientConn::end_exchange() {
  if (fetch_) {
    fetch_->finish();
    fetch_ = nullptr;
  }
  leave_fill();
  object_.reset();
}

void ClientConn::finish_exchange() {
  end_exchange();
  if (!response_keep_alive_ || worker_.stopping()) {
    phase_ = Phase::kClosing;
    return linger();
  }
  phase_ = Phase::kWaiting;
  response_started_ = false;
  request_body_.clear();
  arm_timer(worker_.limits().idle_timeout);
  if (!reading_ && !client_eof_) {
    reading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &ClientConn::on_alloc, &ClientConn::on_read);
  }
  process_pending();
}

// ---- heads ----

const char* ClientConn::client_ip() {
  if (client_ip_[0]) return client_ip_;
  sockaddr_storage peer{};
  int len = sizeof peer;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    if (peer.ss_family == AF_INET6)
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&peer), client_ip_, sizeof client_ip_);
    else
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&peer), client_ip_, sizeof client_ip_);
  }
  if (!client_ip_[0]) std::strcpy(client_ip_, "unknown");
  return client_ip_;
}

namespace {
// The client's own conditions and ranges, which a fetch for the cache leaves out: the cache wants
// the whole response, and answers the conditions and ranges itself.
bool conditional_field(std::string_view name) {
  return iequals(name, "If-None-Match") || iequals(name, "If-Modified-Since") || iequals(name, "If-Match") ||
         iequals(name, "If-Unmodified-Since") || iequals(name, "If-Range") || iequals(name, "Range");
}
}  // namespace

void ClientConn::build_upstream_head(std::string& out, bool for_cache, const cache::CachedObject* validators) {
  const http::RequestHead& head = parser_.head();
  const ConnectionTokens nominated(head.headers);
  out.clear();
  out.append(for_cache ? std::string_view("GET") : std::string_view(head.method)).append(" ");
  out.append(origin_target_.empty() ? head.target : origin_target_);
  out.append(" HTTP/1.1\r\n");
  std::string_view forwarded_for;
  bool has_host = false;
  for (size_t i = 0; i < head.headers.size(); ++i) {
    const http::FieldId id = head.headers.id(i);
    std::string_view name = head.headers.name(i);
    if (http::is_hop_by_hop(id) || id == http::FieldId::kContentLength || id == http::FieldId::kExpect ||
        id == http::FieldId::kXForwardedProto || (nominated.count && nominated.contains(name)) ||
        (for_cache && conditional_field(name)))
      continue;
    if (id == http::FieldId::kXForwardedFor && forwarded_for.empty()) {
      // Several fields would confuse backends that read one: fold the first into ours.
      forwarded_for = head.headers.value(i);
      continue;
    }
    if (id == http::FieldId::kHost) {
      has_host = true;
      if (!absolute_authority_.empty()) {
        append_field(out, name, absolute_authority_);
        continue;
      }
    }
    append_field(out, name, head.headers.value(i));
  }
  if (!has_host) {
    const conf::Backend& backend = worker_.shared().config.backends[static_cast<size_t>(route_.backend)];
    append_field(out, "Host", absolute_authority_.empty() ? backend.servers.front().address.text() : absolute_authority_);
  }
  out.append("X-Forwarded-For: ");
  if (!forwarded_for.empty()) out.append(forwarded_for).append(", ");
  out.append(client_ip()).append("\r\n");
  out.append("X-Forwarded-Proto: http\r\n");
  out.append(head.version_minor == 0 ? "Via: 1.0 edge\r\n" : "Via: 1.1 edge\r\n");
  if (validators) {
    // Revalidation (RFC 9111 4.3.1): the stored response's validators.
    if (auto etag = validators->headers.get("ETag")) append_field(out, "If-None-Match", *etag);
    if (auto modified = validators->headers.get("Last-Modified")) append_field(out, "If-Modified-Since", *modified);
  }
  uint64_t body = request_body_.size();
  if (for_cache) {
    out.append("\r\n");
    return;
  }
  if (body > 0 || head.chunked || head.content_length || head.method == "POST" || head.method == "PUT" ||
      head.method == "PATCH") {
    out.append("Content-Length: ");
    append_number(out, body);
    out.append("\r\n");
  }
  out.append("\r\n");
}

void ClientConn::build_response_head(const http::ResponseHead& head, bool complete) {
  const http::RequestHead& request = parser_.head();
  const bool head_request = request.is_head();
  const bool client_1_0 = request.version_minor == 0;
  const ConnectionTokens nominated(head.headers);
  std::string& out = response_head_;
  out.clear();
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<uint64_t>(head.status));
  out.append(" ");
  out.append(head.reason.empty() ? http::reason_phrase(head.status) : std::string_view(head.reason));
  out.append("\r\n");
  bool has_date = false;
  for (size_t i = 0; i < head.headers.size(); ++i) {
    const http::FieldId id = head.headers.id(i);
    std::string_view name = head.headers.name(i);
    if (http::is_hop_by_hop(id) || id == http::FieldId::kContentLength || (nominated.count && nominated.contains(name)))
      continue;
    if (id == http::FieldId::kDate) has_date = true;
    append_field(out, name, head.headers.value(i));
  }
  out.append("Via: 1.1 edge\r\n");
  if (!has_date) append_field(out, "Date", worker_.date());
  if (worker_.shared().config.cache.x_cache) append_field(out, "X-Cache", x_cache_);

  response_keep_alive_ = request_keep_alive_ && !client_eof_ && !worker_.stopping();
  chunked_response_ = false;
  if (!response_has_body(head.status, head_request)) {
    if (head.content_length && (head_request || head.status == 304)) {
      out.append("Content-Length: ");
      append_number(out, *head.content_length);
      out.append("\r\n");
    }
  } else if (head.content_length || complete) {
    out.append("Content-Length: ");
    append_number(out, head.content_length ? *head.content_length : fetch_->response_body().size());
    out.append("\r\n");
  } else if (!client_1_0) {
    out.append("Transfer-Encoding: chunked\r\n");
    chunked_response_ = true;
  } else {
    response_keep_alive_ = false;  // the end of the body is the end of the connection
  }
  if (!response_keep_alive_)
    out.append("Connection: close\r\n");
  else if (client_1_0)
    out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
}

void ClientConn::send_error(int status, bool may_keep_alive) {
  deadline_.clear();
  const bool head_request = parser_.head().is_head();
  response_keep_alive_ = may_keep_alive && request_keep_alive_ && phase_ == Phase::kForwarding && !client_eof_ &&
                         !worker_.stopping();
  std::string_view reason = http::reason_phrase(status);
  char body[256];
  int body_len = std::snprintf(body, sizeof body,
                               "<html><head><title>%d %.*s</title></head><body><h1>%d %.*s</h1><hr>edge</body></html>\n",
                               status, static_cast<int>(reason.size()), reason.data(), status,
                               static_cast<int>(reason.size()), reason.data());
  std::string& out = response_head_;
  out.clear();
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<uint64_t>(status));
  out.append(" ").append(reason).append("\r\n");
  append_field(out, "Date", worker_.date());
  out.append("Content-Type: text/html\r\nContent-Length: ");
  append_number(out, static_cast<uint64_t>(body_len));
  out.append("\r\n");
  if (status == 503) out.append("Retry-After: 1\r\n");
  if (!response_keep_alive_) out.append("Connection: close\r\n");
  else if (parser_.head().version_minor == 0) out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
  if (!head_request) out.append(body, static_cast<size_t>(body_len));
  response_started_ = true;
  if (!response_keep_alive_) phase_ = Phase::kClosing;
  arm_timer(worker_.limits().send_timeout);
  writer_.start(reinterpret_cast<uv_stream_t*>(&tcp_), &response_head_, nullptr, false);
}

// ---- timers and closing ----

void ClientConn::arm_timer(conf::Duration timeout) {
  deadline_.set(static_cast<uint64_t>(timeout.count()));
}

void ClientConn::on_timer() {
  switch (phase_) {
    case Phase::kWaiting:
      // Nothing of a request has arrived: there is nobody to answer.
      return close_now(requests_ == 0 ? CloseReason::kHeaderTimeout : CloseReason::kIdleTimeout);
    case Phase::kHead:
      worker_.stats().count_close(CloseReason::kHeaderTimeout);
      return reject(408);
    case Phase::kBody:
      worker_.stats().count_close(CloseReason::kBodyTimeout);
      return reject(408);
    case Phase::kForwarding:
    case Phase::kClosing:
      if (fill_ && !fill_initiator_ && !response_started_) {
        // Waited coalesce_timeout for another request's fetch: go to the backend alone.
        leave_fill();
        return start_pass();
      }
      if (writer_.active()) {
        // send_timeout bounds how long a client may leave us unable to write, not the whole
        // download: progress since the last check resets the clock.
        if (writer_.bytes_written() == progress_mark_ && writer_.write_in_flight())
          return close_now(CloseReason::kSendTimeout);
        progress_mark_ = writer_.bytes_written();
        return arm_timer(worker_.limits().send_timeout);
      }
      if (phase_ == Phase::kClosing) return close_now(CloseReason::kKeepAliveDone);
      return;
  }
}

void ClientConn::linger() {
  // Closing at once could reset the connection under the response we just wrote if the client
  // is still sending; half-close, drain its leftovers for a moment, then close.
  phase_ = Phase::kClosing;
  if (closed_) return;
  if (client_eof_) return close_now(CloseReason::kKeepAliveDone);
  deadline_.set(kLingerMs);
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), &ClientConn::on_shutdown_cb) != 0)
    return close_now(CloseReason::kKeepAliveDone);
  if (!reading_) {
    reading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &ClientConn::on_alloc, &ClientConn::on_read);
  }
}

void ClientConn::on_shutdown_cb(uv_shutdown_t*, int) {}

void ClientConn::close_now(CloseReason reason) {
  if (closed_) return;
  closed_ = true;
  worker_.stats().count_close(reason);
  end_exchange();
  writer_.abort();
  worker_.remove_client(this);
  worker_.shared().client_connections.fetch_sub(1, std::memory_order_relaxed);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &ClientConn::on_closed);
  uv_close(deadline_.handle(), &ClientConn::on_closed);
}

void ClientConn::on_closed(uv_handle_t* handle) {
  void* data = handle->data;
  auto* c = handle->type == UV_TIMER ? static_cast<ClientConn*>(static_cast<http::Deadline*>(data)->owner())
                                     : static_cast<ClientConn*>(data);
  if (--c->open_handles_ == 0) delete c;
}

}  // namespace edge::proxy
