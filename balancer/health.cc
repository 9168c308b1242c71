#include "balancer/health.h"

#include <string>
#include <string_view>
#include <utility>

#include "http/parser.h"

namespace edge::balancer {

namespace {

constexpr size_t kReadBufferSize = 16 * 1024;
constexpr uint64_t kMaxHeadBytes = 16 * 1024;

std::string describe(int uv_status) {
  switch (uv_status) {
    case UV_ECONNREFUSED: return "connection refused";
    case UV_ECONNRESET:
    case UV_EPIPE: return "connection reset";
    case UV_EOF: return "closed without response";
    case UV_ETIMEDOUT: return "timeout";
    default: return uv_strerror(uv_status);
  }
}

}  // namespace

struct HealthChecker::Check {
  explicit Check(Probe& owner) : probe(owner), parser(kMaxHeadBytes) {}

  // Marks the check over, so callbacks still to come (libuv cancels pending requests with
  // UV_ECANCELED) change nothing; the Check frees itself when the socket is closed.
  void close() {
    over = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), &Check::on_closed);
  }

  static void on_connect(uv_connect_t* req, int status);
  static void on_write(uv_write_t* req, int status);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_closed(uv_handle_t* handle) { delete static_cast<Check*>(handle->data); }

  Probe& probe;
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  http::ResponseParser parser;
  bool over = false;
};

struct HealthChecker::Probe {
  Probe(HealthChecker& owner, ServerState& server_state, const conf::Health& settings, const conf::Server& server)
      : checker(owner),
        state(server_state),
        health(settings),
        address(server.address.to_sockaddr()),
        request("GET " + settings.path + " HTTP/1.1\r\nHost: " + server.address.text() +
                "\r\nUser-Agent: edge-health\r\nConnection: close\r\n\r\n") {}

  void schedule(conf::Duration delay) {
    uv_timer_start(&timer, &Probe::on_timer, static_cast<uint64_t>(delay.count()), 0);
  }

  static void on_timer(uv_timer_t* handle) {
    auto* probe = static_cast<Probe*>(handle->data);
    if (probe->check) return probe->finish(false, 0, "timeout");
    probe->begin_check();
  }

  void begin_check() {
    check = new Check(*this);
    uv_tcp_init(&checker.loop_, &check->tcp);
    check->tcp.data = check;
    check->connect_req.data = check;
    check->write_req.data = check;
    check->parser.expect_response(false);
    int rc = uv_tcp_connect(&check->connect_req, &check->tcp, reinterpret_cast<const sockaddr*>(&address),
                            &Check::on_connect);
    // An error here means no connect callback will ever come.
    if (rc < 0) return finish(false, 0, describe(rc));
    schedule(health.timeout);
  }

  // Judges the check in progress, closes its connection and schedules the next one.
  void finish(bool ok, int status, std::string detail) {
    check->close();
    check = nullptr;
    ServerState::CheckResult result;
    result.ok = ok;
    result.status = status;
    result.detail = std::move(detail);
    result.at_ms = now_ms();
    state.report_check(result, static_cast<int>(health.rise), static_cast<int>(health.fall), result.at_ms);
    schedule(health.interval);
  }

  // Stop: the check in progress is abandoned, not judged; the server did nothing wrong.
  void shutdown() {
    if (check) {
      check->close();
      check = nullptr;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  }

  HealthChecker& checker;
  ServerState& state;
  const conf::Health& health;
  const sockaddr_storage address;
  const std::string request;  // stays put while a write of it is in flight
  uv_timer_t timer;           // the next check while idle; the timeout while a check runs
  Check* check = nullptr;     // the check in progress
};

void HealthChecker::Check::on_connect(uv_connect_t* req, int status) {
  auto* c = static_cast<Check*>(req->data);
  if (c->over) return;
  if (status < 0) return c->probe.finish(false, 0, describe(status));
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
  int rc = uv_read_start(stream, &Check::on_alloc, &Check::on_read);
  if (rc < 0) return c->probe.finish(false, 0, describe(rc));
  const std::string& request = c->probe.request;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(request.data()), static_cast<unsigned>(request.size()));
  rc = uv_write(&c->write_req, stream, &buf, 1, &Check::on_write);
  if (rc < 0) return c->probe.finish(false, 0, describe(rc));
}

void HealthChecker::Check::on_write(uv_write_t* req, int status) {
  auto* c = static_cast<Check*>(req->data);
  if (c->over || status >= 0) return;
  c->probe.finish(false, 0, describe(status));
}

void HealthChecker::Check::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* checker = static_cast<HealthChecker*>(handle->loop->data);
  *buf = uv_buf_init(checker->read_buffer_.get(), static_cast<unsigned>(kReadBufferSize));
}

void HealthChecker::Check::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Check*>(stream->data);
  if (c->over || nread == 0) return;
  Probe& probe = c->probe;
  if (nread < 0) {
    // The head was not complete, or the check would be over: a started response was cut short.
    if (nread == UV_EOF && c->parser.started()) return probe.finish(false, 0, "bad response");
    return probe.finish(false, 0, describe(static_cast<int>(nread)));
  }
  std::string_view rest(buf->base, static_cast<size_t>(nread));
  while (!rest.empty()) {
    http::ParseResult r = c->parser.feed(rest);
    rest.remove_prefix(r.consumed);
    if (r.event == http::ParseEvent::kError) return probe.finish(false, 0, "bad response");
    if (c->parser.head_complete()) {
      int status = c->parser.head().status;
      return probe.finish(status >= 200 && status < 400, status, std::to_string(status));
    }
    if (r.consumed == 0) return;
  }
}

// ---- the checker ----

HealthChecker::HealthChecker(const conf::Config& config, Balancer& balancer) : config_(config), balancer_(balancer) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  std::lock_guard<std::mutex> lock(lifecycle_mutex_);
  if (started_) return;
  started_ = true;
  for (size_t b = 0; b < config_.backends.size() && b < balancer_.size(); ++b) {
    const conf::Backend& backend = config_.backends[b];
    if (!backend.health.enabled) continue;
    BackendState& state = balancer_.backend(b);
    for (size_t s = 0; s < backend.servers.size() && s < state.size(); ++s)
      probes_.push_back(std::make_unique<Probe>(*this, state.server(s), backend.health, backend.servers[s]));
  }
  if (probes_.empty()) return;

  read_buffer_ = std::make_unique<char[]>(kReadBufferSize);
  uv_loop_init(&loop_);
  loop_.data = this;
  uv_async_init(&loop_, &stop_async_, &HealthChecker::on_stop);
  stop_async_.data = this;
  for (auto& probe : probes_) {
    uv_timer_init(&loop_, &probe->timer);
    probe->timer.data = probe.get();
  }
  running_.store(true, std::memory_order_relaxed);
  thread_ = std::thread([this] { run(); });
}

void HealthChecker::run() {
  for (auto& probe : probes_) probe->schedule(conf::Duration(0));
  // Returns once on_stop has closed every handle and their close callbacks have run.
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

void HealthChecker::stop() {
  std::lock_guard<std::mutex> lock(lifecycle_mutex_);
  if (!thread_.joinable()) return;
  uv_async_send(&stop_async_);
  thread_.join();
  running_.store(false, std::memory_order_relaxed);
  // The timers were closed by the loop before it ended; only now may their memory go.
  probes_.clear();
}

void HealthChecker::on_stop(uv_async_t* async) {
  auto* checker = static_cast<HealthChecker*>(async->data);
  for (auto& probe : checker->probes_) probe->shutdown();
  uv_close(reinterpret_cast<uv_handle_t*>(&checker->stop_async_), nullptr);
}

}  // namespace edge::balancer
