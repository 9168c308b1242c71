#include "proxy/client.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "http/message.h"
#include "http/uri.h"
#include "proxy/assembly.h"
#include "proxy/heads.h"

namespace edge::proxy {

namespace {
using http::iequals;

constexpr size_t kMaxPending = 64 * 1024;
constexpr uint64_t kLingerMs = 2000;
constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr char kTooManyConnections[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n";

cache::Seconds wall_now() { return static_cast<cache::Seconds>(std::time(nullptr)); }
}  // namespace

ClientConn::ClientConn(Worker& worker)
    : worker_(worker),
      parser_({worker.limits().max_header_bytes, worker.limits().max_request_line, worker.limits().max_body_bytes,
               worker.limits().max_header_fields}),
      writer_(this),
      exchange_(worker, this) {
  request_body_.set_options(worker.body_options(true));
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
        if (parser_.error_status() == 431 && parser_.head().headers.size() >= worker_.limits().max_header_fields)
          worker_.bounds().count(worker_.bounds().too_many_fields);
        return reject(parser_.error_status(), CloseReason::kBadRequest);
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
    if (upload_too_slow()) {
      worker_.bounds().count(worker_.bounds().slow_uploads);
      return reject(408, CloseReason::kSlowUpload);
    }
    arm_timer(worker_.limits().body_timeout);
  }
}

bool ClientConn::upload_too_slow() {
  // body_timeout alone lets a body arrive a byte per timeout for ever: past the grace, the body
  // must have averaged min_upload_rate since its head ended.
  const conf::Limits& limits = worker_.limits();
  if (limits.min_upload_rate == 0) return false;
  const uint64_t elapsed_ms = uv_now(worker_.loop()) - body_started_at_;
  if (elapsed_ms <= static_cast<uint64_t>(limits.upload_rate_grace.count())) return false;
  return parser_.body_bytes() * 1000 < limits.min_upload_rate * elapsed_ms;
}

bool ClientConn::on_head() {
  http::RequestHead& head = parser_.head();
  phase_ = Phase::kBody;
  early_status_ = 0;
  if (head.method == "CONNECT") {
    // A reverse proxy opens no tunnels.
    reject(405, CloseReason::kBadRequest);
    return false;
  }
  // One reading of the request's identity (http/uri): the host it names and its target, both
  // canonical, for routing, the cache key, the upstream head and the log alike.
  if (!http::read_request_identity(head, host_, target_)) {
    reject(400, CloseReason::kBadRequest);
    return false;
  }
  const bool has_body = head.chunked || head.content_length.value_or(0) > 0;
  const std::optional<std::string_view> expect = head.headers.get(http::FieldId::kExpect);
  if (expect) {
    if (!iequals(*expect, "100-continue")) {
      reject(417, CloseReason::kBadRequest);
      return false;
    }
  }
  route_ = worker_.shared().router.match(host_, std::string_view(target_).substr(0, target_.find('?')));
  if (route_.host < 0)
    early_status_ = 404;
  else
    remove_unkeyed_fields(head.headers);

  if (early_status_ && has_body && expect) {
    // The client waits for our word before sending its body: answer now, and close, since the
    // body may still come.
    send_error(early_status_, false);
    return false;
  }
  request_body_.clear();
  parser_.set_body_sink(early_status_ ? nullptr : &request_body_);
  if (has_body && head.version_minor >= 1 && expect) send_continue();
  body_started_at_ = uv_now(worker_.loop());
  arm_timer(worker_.limits().body_timeout);
  return true;
}

void ClientConn::remove_unkeyed_fields(http::Headers& headers) {
  // Fields a backend may act on that the cache key does not describe: the route's list, and
  // X-Forwarded-Host, which edge sets itself from the host it routed by.
  const conf::Host& host = worker_.shared().config.hosts[static_cast<size_t>(route_.host)];
  const conf::CachePolicy& policy =
      route_.route >= 0 ? host.routes[static_cast<size_t>(route_.route)].cache : host.cache;
  headers.remove_if([&](std::string_view name, http::FieldId id) {
    if (id == http::FieldId::kXForwardedHost) return true;
    for (const std::string& dropped : policy.drop_request_fields)
      if (iequals(dropped, name)) return true;
    return false;
  });
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

void ClientConn::reject(int status, CloseReason reason) {
  parser_.set_body_sink(nullptr);
  close_reason_ = reason;
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

  Exchange::Request request;
  request.head = &head;
  request.body = &request_body_;
  request.route = route_;
  request.authority = host_;
  request.origin_target = target_;
  request.client_ip = client_ip();
  exchange_.start(request);
  // Waiting on another request's fetch is bounded: past coalesce_timeout it goes alone.
  if (exchange_.waiting_for_fill()) arm_timer(worker_.shared().config.cache.coalesce_timeout);
}

void ClientConn::on_exchange_object(const cache::ObjectRef& object, const char* x_cache) {
  if (!response_started_) return deliver(object, x_cache);
}

void ClientConn::on_exchange_progress() {
  if (object_ && object_->body->failed()) return close_now(CloseReason::kUpstreamBroken);
  writer_.kick();
}

void ClientConn::on_exchange_failed(int status) {
  if (response_started_) return close_now(CloseReason::kUpstreamBroken);
  send_error(status, true);
}

void ClientConn::on_exchange_response(Fetch& fetch, const http::ResponseHead& head, bool complete) {
  if (response_started_) return writer_.kick();
  if ((exchange_.policy()->esi || wants_esi(head.headers)) && response_has_body(head.status, false)) {
    fetch.response_body().keep_whole();  // compiled only once complete
    return assemble_passed(fetch, head, complete);
  }
  response_started_ = true;
  x_cache_ = exchange_.x_cache();
  build_response_head(head, complete, fetch.response_body().size());
  const bool body = response_has_body(head.status, parser_.head().is_head());
  start_send_clock();
  writer_.start(reinterpret_cast<uv_stream_t*>(&tcp_), &response_head_, body ? &fetch.response_body() : nullptr,
                body && chunked_response_);
}

void ClientConn::deliver(const cache::ObjectRef& object, const char* x_cache) {
  const http::RequestHead& request = parser_.head();
  object_ = object;
  x_cache_ = x_cache;
  response_started_ = true;
  if (compiled_page(*object)) return assemble();
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
      start_send_clock();
      return writer_.start(reinterpret_cast<uv_stream_t*>(&tcp_), &response_head_,
                           has_body ? const_cast<http::BodySource*>(source) : nullptr, false, false);
    }
  }
  start_cached_head(object->status, object->reason, *object);
  end_head(has_body, length, request.is_head());
  start_send_clock();
  writer_.start(reinterpret_cast<uv_stream_t*>(&tcp_), &response_head_,
                has_body ? const_cast<http::BodySource*>(source) : nullptr, has_body && chunked_response_, false);
}

void ClientConn::start_cached_head(int status, std::string_view reason, const cache::CachedObject& object) {
  std::string& out = response_head_;
  out.clear();
  append_status_line(out, status, status == object.status ? reason : std::string_view());
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
  if (assembly_) {
    assembly_->finish();
    assembly_ = nullptr;
  }
  exchange_.end();
  object_.reset();
}

// ---- pages assembled from fragments ----

void ClientConn::assemble_passed(Fetch& fetch, const http::ResponseHead& head, bool complete) {
  // A page that is not stored is compiled once whole, then assembled like a stored one.
  if (!complete) return;
  const http::Body& body = fetch.response_body();
  auto page = std::make_shared<cache::CachedObject>();
  page->status = head.status;
  page->reason = head.reason;
  page->headers = cache::stored_headers(head.headers);
  ssi::Parser parser(ssi::Syntax::kBoth);
  auto shared_body = std::make_shared<http::SharedBody>(body.size());
  std::string scratch;
  http::IoSlice slices[16];
  for (uint64_t offset = 0; offset < body.size();) {
    const int n = body.peek(offset, slices, 16, SIZE_MAX, scratch);
    if (n <= 0) return send_error(500, false);
    for (int i = 0; i < n; ++i) {
      shared_body->append({slices[i].data, slices[i].len});
      parser.feed({slices[i].data, slices[i].len});
      offset += slices[i].len;
    }
  }
  shared_body->finish();
  page->body = shared_body;
  page->attachment = std::make_shared<CompiledPage>(parser.finish());
  exchange_.end();  // the fetch's body is copied: its connection may go
  deliver(page, "PASS");
}

void ClientConn::assemble() {
  const http::RequestHead& request = parser_.head();
  auto page = std::make_shared<Assembly::Page>();
  page->client = &request;
  page->client_ip = client_ip();
  page->includes_left = worker_.shared().config.esi.max_includes;
  page->host_index = route_.host;
  std::string host = host_;
  std::string path = target_;
  // Includes found in the cache resolve while the assembly starts: their news is taken in once
  // it has started.
  assembly_starting_ = true;
  assembly_failed_ = false;
  holding_head_ = false;
  Assembly* assembly = Assembly::start(worker_, this, object_, std::move(page), std::move(host), std::move(path), 0, {});
  assembly_ = assembly;
  assembly_starting_ = false;
  if (assembly_failed_) return on_assembly_failed();
  // With on_error: fail, nothing is said until every include has answered, so a failure can
  // still be a 502; otherwise the page streams from the first byte.
  holding_head_ = worker_.shared().config.esi.on_error == conf::EsiOnError::kFail && !assembly->resolved();
  if (!holding_head_) start_assembled_write();
}

void ClientConn::start_assembled_write() {
  const http::RequestHead& request = parser_.head();
  const cache::CachedObject& page = *object_;
  std::string& out = response_head_;
  out.clear();
  append_status_line(out, page.status, page.reason);
  bool has_date = false;
  for (size_t i = 0; i < page.headers.size(); ++i) {
    const std::string_view name = page.headers.name(i);
    // The template's validators and age are not the assembled page's.
    if (iequals(name, "ETag") || iequals(name, "Last-Modified") || iequals(name, "Content-MD5")) continue;
    if (page.headers.id(i) == http::FieldId::kDate) has_date = true;
    append_field(out, name, page.headers.value(i));
  }
  if (!has_date) append_field(out, "Date", worker_.date());
  out.append("Via: 1.1 edge\r\n");
  if (worker_.shared().config.cache.x_cache) append_field(out, "X-Cache", x_cache_);
  const http::BodySource& body = assembly_->output();
  const bool has_body = response_has_body(page.status, request.is_head());
  std::optional<uint64_t> length;
  if (body.complete()) length = body.size();
  end_head(has_body, length, request.is_head());
  start_send_clock();
  writer_.start(reinterpret_cast<uv_stream_t*>(&tcp_), &response_head_,
                has_body ? const_cast<http::BodySource*>(&body) : nullptr, has_body && chunked_response_, false);
}

void ClientConn::on_assembly_progress() {
  if (assembly_starting_) return;
  if (holding_head_) {
    if (!assembly_->resolved()) return;
    holding_head_ = false;
    return start_assembled_write();
  }
  writer_.kick();
}

void ClientConn::on_assembly_failed() {
  if (assembly_starting_) {
    assembly_failed_ = true;
    return;
  }
  if (holding_head_ || !writer_.active()) {
    holding_head_ = false;
    response_started_ = false;
    return send_error(502, true);
  }
  close_now(CloseReason::kUpstreamBroken);
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

void ClientConn::build_response_head(const http::ResponseHead& head, bool complete, uint64_t body_size) {
  const http::RequestHead& request = parser_.head();
  const bool head_request = request.is_head();
  const bool client_1_0 = request.version_minor == 0;
  std::string& out = response_head_;
  out.clear();
  append_status_line(out, head.status, head.reason);
  bool has_date = false;
  for (size_t i = 0; i < head.headers.size(); ++i) {
    const http::FieldId id = head.headers.id(i);
    std::string_view name = head.headers.name(i);
    if (http::is_hop_by_hop(id) || id == http::FieldId::kContentLength) continue;
    if (iequals(name, "Surrogate-Control")) continue;  // addressed to us, not to the client
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
    append_number(out, head.content_length ? *head.content_length : body_size);
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
  append_status_line(out, status, reason);
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
  start_send_clock();
  writer_.start(reinterpret_cast<uv_stream_t*>(&tcp_), &response_head_, nullptr, false);
}

// ---- timers and closing ----

void ClientConn::arm_timer(conf::Duration timeout) {
  deadline_.set(static_cast<uint64_t>(timeout.count()));
}

// send_timeout is checked every quarter of itself, so a client is closed between send_timeout and
// 1.25 times it after the last progress we saw, not up to twice it after.
conf::Duration ClientConn::send_check_interval() const {
  return std::max(conf::Duration(1), worker_.limits().send_timeout / 4);
}

void ClientConn::start_send_clock() {
  progress_mark_ = 0;
  queued_mark_ = 0;
  progress_at_ = uv_now(worker_.loop());
  arm_timer(send_check_interval());
}

void ClientConn::on_timer() {
  switch (phase_) {
    case Phase::kWaiting:
      // Nothing of a request has arrived: there is nobody to answer.
      return close_now(requests_ == 0 ? CloseReason::kHeaderTimeout : CloseReason::kIdleTimeout);
    case Phase::kHead:
      return reject(408, CloseReason::kHeaderTimeout);
    case Phase::kBody:
      return reject(408, CloseReason::kBodyTimeout);
    case Phase::kForwarding:
    case Phase::kClosing:
      if (exchange_.waiting_for_fill() && !response_started_) {
        // Waited coalesce_timeout for another request's fetch: go to the backend alone.
        return exchange_.stop_waiting();
      }
      if (writer_.active()) {
        // send_timeout bounds how long a client may leave us unable to write, not the whole
        // download: progress (a write completed, or the kernel took part of one) resets the
        // clock, and waiting for the backend is not the client's doing.
        const uint64_t now = uv_now(worker_.loop());
        const size_t queued = uv_stream_get_write_queue_size(reinterpret_cast<uv_stream_t*>(&tcp_));
        if (!writer_.write_in_flight() || writer_.bytes_written() != progress_mark_ || queued != queued_mark_) {
          progress_mark_ = writer_.bytes_written();
          queued_mark_ = queued;
          progress_at_ = now;
        } else if (now - progress_at_ >= static_cast<uint64_t>(worker_.limits().send_timeout.count())) {
          worker_.bounds().count(worker_.bounds().send_timeouts);
          return close_now(CloseReason::kSendTimeout);
        }
        return arm_timer(send_check_interval());
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
  // A rejected request's connection ends for the rejection, however its last write goes.
  worker_.stats().count_close(close_reason_.value_or(reason));
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
