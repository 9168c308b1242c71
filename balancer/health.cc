#include "balancer/health.h"

#include <string>

#include "http/log_text.h"
#include "http/oneshot.h"
#include "http/tcp_transport.h"
#include "log/error_log.h"
#include "tls/transport.h"

namespace edge::balancer {

namespace {

constexpr uint64_t kMaxHeadBytes = 16 * 1024;

std::string describe(int uv_status) {
  switch (uv_status) {
    case UV_ECONNREFUSED: return "connection refused";
    case UV_ECONNRESET:
    case UV_EPIPE: return "connection reset";
    case UV_ETIMEDOUT: return "timeout";
    default: return uv_strerror(uv_status);
  }
}

// `tls`: the check's transport is a TlsTransport, whose own reason beats the socket's status.
std::string describe(const http::OneShot::Outcome& outcome, bool tls) {
  using Failure = http::OneShot::Failure;
  switch (outcome.failure) {
    case Failure::kNone: return std::to_string(outcome.parser.head().status);
    case Failure::kConnect:
    case Failure::kWrite:
    case Failure::kRead:
      if (tls && outcome.transport) {
        const auto& transport = static_cast<const tls::TlsTransport&>(*outcome.transport);
        if (transport.failure() == tls::TlsTransport::Failure::kHandshake)
          return "TLS handshake failed: " + transport.error_text();
        if (transport.failure() != tls::TlsTransport::Failure::kNone) return "TLS error: " + transport.error_text();
      }
      return describe(outcome.uv_status);
    case Failure::kClosed: return "closed without response";
    case Failure::kTimeout: return "timeout";
    case Failure::kTruncated:
    case Failure::kBadResponse:
    case Failure::kTooLarge: break;
  }
  return "bad response";
}

}  // namespace

struct HealthChecker::Probe {
  Probe(HealthChecker& owner, ServerState& server_state, const std::string& backend_name, const conf::Health& settings,
        const conf::Server& server, const tls::ClientContext* client_tls)
      : checker(owner),
        state(server_state),
        names("backend " + http::escape_for_log(backend_name) + " server " + http::escape_for_log(server.address.text())),
        health(settings),
        tls(client_tls),
        host(server.address.host),
        address(server.address.to_sockaddr()),
        request(http::simple_request("GET", settings.path, server.address.text(), "User-Agent: edge-health\r\n")) {}

  void schedule(conf::Duration delay) {
    uv_timer_start(&timer, &Probe::on_timer, static_cast<uint64_t>(delay.count()), 0);
  }

  static void on_timer(uv_timer_t* handle) noexcept { static_cast<Probe*>(handle->data)->begin_check(); }

  void begin_check() {
    http::OneShot::Options options;
    options.wait = http::OneShot::Wait::kHead;
    options.timeout_ms = static_cast<uint64_t>(health.timeout.count());
    options.max_head_bytes = kMaxHeadBytes;
    if (tls) options.transport = [this](uv_loop_t* loop, uv_buf_t plaintext) { return tls_transport(loop, plaintext); };
    check = http::OneShot::start(&checker.loop_, reinterpret_cast<const sockaddr*>(&address), request, options,
                                 [this](const http::OneShot::Outcome& outcome) { finish(outcome); });
  }

  // Null when OpenSSL cannot allocate: the check fails, never goes in plain text.
  std::unique_ptr<http::Transport> tls_transport(uv_loop_t* loop, uv_buf_t plaintext) {
    SSL* ssl = tls->new_ssl(host, &session);
    if (!ssl) return nullptr;
    auto socket = std::make_unique<http::TcpTransport>(
        loop, uv_buf_init(checker.ciphertext_buffer_, sizeof checker.ciphertext_buffer_));
    return std::make_unique<tls::TlsTransport>(std::move(socket), ssl, loop, plaintext,
                                               tls::TlsTransport::Role::kClient);
  }

  // Judges the check that ended and schedules the next one.
  void finish(const http::OneShot::Outcome& outcome) {
    check = nullptr;
    ServerState::CheckResult result;
    result.status = outcome.failure == http::OneShot::Failure::kNone ? outcome.parser.head().status : 0;
    result.ok = result.status >= 200 && result.status < 400;
    result.detail = describe(outcome, tls != nullptr);
    result.at_ms = now_ms();
    switch (state.report_check(result, static_cast<int>(health.rise), static_cast<int>(health.fall), result.at_ms)) {
      case ServerState::Change::kWentDown:
        edge::log::warn("edge: %s is down after %u failed health check%s (last: %s)", names.c_str(), health.fall,
                        health.fall == 1 ? "" : "s", http::escape_for_log(result.detail).c_str());
        break;
      case ServerState::Change::kCameUp:
        edge::log::info("edge: %s is up after %u passed health check%s (last: %s)", names.c_str(), health.rise,
                        health.rise == 1 ? "" : "s", http::escape_for_log(result.detail).c_str());
        break;
      case ServerState::Change::kNone:
        break;
    }
    schedule(health.interval);
  }

  // Stop: the check in progress is abandoned, not judged; the server did nothing wrong.
  void shutdown() {
    if (check) {
      check->stop();
      check = nullptr;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  }

  HealthChecker& checker;
  ServerState& state;
  const std::string names;  // "backend NAME server ADDRESS", escaped for the log
  const conf::Health& health;
  const tls::ClientContext* tls;  // null: plain TCP
  const std::string host;         // the server's numeric host, what its certificate may name
  const sockaddr_storage address;
  const std::string request;
  uv_timer_t timer;                 // the next check, while none is in progress
  http::OneShot* check = nullptr;  // the check in progress
  // The last session the server gave; its checks' SSLs are freed (with their OneShots) before
  // the loop ends, so before the Probe.
  tls::ClientContext::SessionSlot session;
};

// ---- the checker ----

HealthChecker::HealthChecker(const conf::Config& config, Balancer& balancer,
                             std::span<const std::unique_ptr<tls::ClientContext>> backend_tls)
    : config_(config), balancer_(balancer), backend_tls_(backend_tls) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  std::lock_guard<std::mutex> lock(lifecycle_mutex_);
  if (started_) return;
  started_ = true;
  for (size_t b = 0; b < config_.backends.size() && b < balancer_.size(); ++b) {
    const conf::Backend& backend = config_.backends[b];
    if (!backend.health.enabled) continue;
    BackendState& state = balancer_.backend(b);
    const tls::ClientContext* tls = b < backend_tls_.size() ? backend_tls_[b].get() : nullptr;
    for (size_t s = 0; s < backend.servers.size() && s < state.size(); ++s)
      probes_.push_back(
          std::make_unique<Probe>(*this, state.server(s), backend.name, backend.health, backend.servers[s], tls));
  }
  if (probes_.empty()) return;

  uv_loop_init(&loop_);
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

void HealthChecker::on_stop(uv_async_t* async) noexcept {
  auto* checker = static_cast<HealthChecker*>(async->data);
  for (auto& probe : checker->probes_) probe->shutdown();
  uv_close(reinterpret_cast<uv_handle_t*>(&checker->stop_async_), nullptr);
}

}  // namespace edge::balancer
