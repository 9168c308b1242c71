#include "proxy/server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <utility>

#include "balancer/health.h"
#include "log/error_log.h"
#include "proxy/version.h"

namespace edge::proxy {

namespace {
int open_listener(const conf::Address& address, std::string& error) {
  socklen_t len = 0;
  sockaddr_storage storage = address.to_sockaddr(&len);
  int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (address.ipv6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), len) != 0 || ::listen(fd, 4096) != 0) {
    error = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

// Whether another process serves `address` already. SO_REUSEPORT, which gives every worker a
// socket of its own, would also let this process share a port with another edge, or with any
// program that asked for it, each then taking a part of the connections. A socket bound without
// it is refused by any listener on the port, so a probe tells before the real sockets are bound.
bool served_by_another_process(const conf::Address& address) {
  socklen_t len = 0;
  sockaddr_storage storage = address.to_sockaddr(&len);
  int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;  // the real socket will say what is wrong
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (address.ipv6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  const bool in_use = ::bind(fd, reinterpret_cast<sockaddr*>(&storage), len) != 0 && errno == EADDRINUSE;
  ::close(fd);
  return in_use;
}

bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
  }
  const auto& x = reinterpret_cast<const sockaddr_in&>(a);
  const auto& y = reinterpret_cast<const sockaddr_in&>(b);
  return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
}

uint16_t bound_port(int fd) {
  sockaddr_storage storage{};
  socklen_t len = sizeof storage;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &len);
  if (storage.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
}

// The ban sweep shares this loop with the admin port: it runs in steps of kSweepStep, a step
// every kSweepStepGapMs while a sweep is under way, and looks for new bans every second.
constexpr auto kSweepStep = std::chrono::milliseconds(5);
constexpr uint64_t kSweepStepGapMs = 5;
constexpr uint64_t kSweepIntervalMs = 1000;

void sweep_step(uv_timer_t* timer) noexcept {
  cache::Store& store = static_cast<Shared*>(timer->data)->store;
  store.sweep_bans(kSweepStep);
  uv_timer_start(timer, sweep_step, store.sweeping() ? kSweepStepGapMs : kSweepIntervalMs, 0);
}
}  // namespace

Server::Server(conf::Config config, tls::Contexts tls)
    : shared_(std::make_unique<Shared>(std::move(config))) {
  shared_->tls = std::move(tls);
  for (int i = 0; i < shared_->config.workers; ++i) workers_.push_back(std::make_unique<Worker>(*shared_, i));
}

Server::~Server() {
  workers_.clear();
  if (inherited_admin_ >= 0) ::close(inherited_admin_);
}

void Server::take_over(handoff::Takeover takeover) { takeover_ = std::move(takeover); }

std::vector<int> Server::take_inherited(const conf::Address& address, handoff::Kind kind) {
  std::vector<int> fds;
  if (address.port == 0) return fds;
  const sockaddr_storage wanted = address.to_sockaddr();
  auto& sockets = takeover_.sockets();
  for (auto it = sockets.begin(); it != sockets.end();) {
    if (it->kind == kind && same_address(it->storage, wanted)) {
      fds.push_back(it->fd);
      it = sockets.erase(it);
    } else {
      ++it;
    }
  }
  return fds;
}

bool Server::open_upgrade(std::string& error) {
  const conf::Config& config = shared_->config;
  if (config.admin.enabled) {
    std::vector<int> admin = take_inherited(config.admin.address, handoff::Kind::kAdmin);
    for (size_t i = 0; i < admin.size(); ++i) {
      if (i == 0) {
        inherited_admin_ = admin[i];
      } else {
        ::close(admin[i]);
      }
    }
  }
  // Connections already queued in these are lost: the operator removed their addresses.
  std::map<std::string, size_t> closed;  // "ADDR" or "admin ADDR": sockets
  for (handoff::Inherited& socket : takeover_.sockets()) {
    ++closed[(socket.kind == handoff::Kind::kAdmin ? "admin " : "") + socket.address];
    ::close(socket.fd);
  }
  takeover_.sockets().clear();
  for (const auto& [what, count] : closed)
    edge::log::warn("edge: upgrade: %s is not in the configuration any more: its %zu socket%s closed", what.c_str(),
                    count, count == 1 ? " is" : "s are");
  if (config.upgrade_socket.empty()) return true;
  auto offered = [this] { return offered_sockets(); };
  auto on_ready = [this] {
    if (!draining_) begin_drain("upgrade");
  };
  offer_ = std::make_unique<handoff::Offer>(offered, on_ready);
  std::string why;
  if (!offer_->bind(config.upgrade_socket, takeover_.active(), why)) {
    error = conf::Error{config.upgrade_socket_mark, "upgrade_socket: " + why}.text();
    return false;
  }
  return true;
}

std::vector<handoff::Offered> Server::offered_sockets() const {
  std::vector<handoff::Offered> offered;
  if (draining_) return offered;
  for (int fd : listener_fds_) offered.push_back({handoff::Kind::kListen, fd});
  if (admin_ && admin_->fd() >= 0) offered.push_back({handoff::Kind::kAdmin, admin_->fd()});
  return offered;
}

bool Server::open(std::string& error) {
  if (const conf::AccessLog& log = shared_->config.access_log; log.enabled) {
    auto access_log = std::make_unique<log::AccessLog>(log.path, log.to_stdout, log.buffer);
    if (!access_log->open(error)) {
      error = conf::Error{log.mark, error}.text();
      return false;
    }
    access_log->start();
    shared_->access_log = std::move(access_log);
  }
  for (size_t i = 0; i < shared_->config.listen.size(); ++i) {
    conf::Listen& listen = shared_->config.listen[i];
    const tls::ServerContext* tls = i < shared_->tls.by_listener.size() ? shared_->tls.by_listener[i].get() : nullptr;
    // Sockets taken over from the previous process are that process's own use of the port,
    // which is why they skip the check; a port 0 is the kernel's choice, never in use.
    std::vector<int> inherited = take_inherited(listen.address, handoff::Kind::kListen);
    if (inherited.empty() && listen.address.port != 0 && served_by_another_process(listen.address)) {
      error = conf::Error{listen.mark, "cannot listen on " + listen.address.text() +
                                           ": address already in use by another process"}
                  .text();
      return false;
    }
    // Every inherited socket is kept, even beyond one per worker: each has its own accept queue
    // (SO_REUSEPORT), and closing one would drop the connections waiting in it.
    const size_t count = std::max(workers_.size(), inherited.size());
    for (size_t w = 0; w < count; ++w) {
      int fd = w < inherited.size() ? inherited[w] : -1;
      if (fd < 0) {
        std::string why;
        fd = open_listener(listen.address, why);
        if (fd < 0) {
          error = conf::Error{listen.mark, "cannot listen on " + listen.address.text() + ": " + why}.text();
          return false;
        }
      }
      // For port 0 the first worker's socket takes the kernel's choice; the others must join it
      // on that port, or each worker would get a port of its own.
      if (listen.address.port == 0) listen.address.port = bound_port(fd);
      workers_[w % workers_.size()]->adopt_listener(fd, tls, i);
      listener_fds_.push_back(fd);
    }
  }
  return open_upgrade(error);
}

void Server::reload_certificates() {
  const conf::LoadResult loaded = conf::load_file(shared_->config.file);
  if (!loaded.config) {
    for (const conf::Error& error : loaded.errors) edge::log::error("edge: reload: %s", error.text().c_str());
    edge::log::error("edge: reload refused: the configuration has errors; the certificates in use stay");
    return;
  }
  const std::vector<conf::Listen>& fresh = loaded.config->listen;
  const std::vector<conf::Listen>& current = shared_->config.listen;
  if (fresh.size() != current.size()) {
    edge::log::error("edge: reload refused: listen entries were added or removed; only certificates are reloaded");
    return;
  }
  tls::Contexts& tls = shared_->tls;
  std::vector<conf::Error> errors;
  std::vector<conf::Error> warnings;
  std::vector<std::unique_ptr<tls::ServerContext>> built(current.size());
  for (size_t i = 0; i < current.size(); ++i) {
    if (!current[i].tls.enabled) continue;
    if (!fresh[i].tls.enabled) {
      errors.push_back({fresh[i].mark, "a listener cannot stop speaking TLS on reload"});
      continue;
    }
    if (fresh[i].tls.session_tickets && !tls.ticket_keys)
      tls.ticket_keys = std::make_unique<tls::TicketKeys>(fresh[i].tls.ticket_rotation);
    built[i] = tls::ServerContext::build(fresh[i].tls, tls.ticket_keys.get(), errors, warnings);
  }
  for (const conf::Error& warning : warnings)
    edge::log::warn("edge: reload: %s:%d:%d: warning: %s", warning.mark.file.c_str(), warning.mark.line,
                    warning.mark.col, warning.message.c_str());
  if (!errors.empty()) {
    for (const conf::Error& error : errors) edge::log::error("edge: reload: %s", error.text().c_str());
    edge::log::error("edge: reload refused: the certificates in use stay");
    return;
  }
  std::vector<std::pair<size_t, const tls::ServerContext*>> swaps;
  for (size_t i = 0; i < built.size(); ++i) {
    if (!built[i]) continue;
    swaps.emplace_back(i, built[i].get());
    tls.retired.push_back(std::move(tls.by_listener[i]));
    tls.by_listener[i] = std::move(built[i]);
  }
  // Said once every worker has taken them: from then on every new connection gets them.
  auto workers_left = std::make_shared<std::atomic<size_t>>(workers_.size());
  for (auto& worker : workers_) {
    worker->poster()([worker = worker.get(), swaps, workers_left] {
      for (const auto& [index, context] : swaps) worker->use_tls(index, context);
      if (workers_left->fetch_sub(1) == 1)
        edge::log::info("edge: certificates reloaded for %zu listener%s", swaps.size(), swaps.size() == 1 ? "" : "s");
    });
  }
}

void Server::finish_takeover() {
  // Published before "ready", so the next upgrade finds this process at the path.
  if (offer_) offer_->publish();
  std::string why;
  if (takeover_.ready(why)) {
    edge::log::info("edge: upgrade: serving in place of the previous process, which drains now");
  } else {
    edge::log::warn("edge: upgrade: the previous process could not be told to drain (%s); stop it with SIGTERM",
                    why.c_str());
  }
}

void Server::begin_drain(const char* signal_name) {
  draining_ = true;
  if (offer_) offer_->close();
  edge::log::info("edge: stopping (%s): waiting up to %lld ms for the requests in progress (a second signal stops now)",
                  signal_name, static_cast<long long>(shared_->config.shutdown_timeout.count()));
  for (size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->request_drain([this, i] {
      drained_[i].store(true, std::memory_order_release);
      uv_async_send(&drained_async_);
    });
  }
  uv_timer_start(
      &shutdown_timer_,
      [](uv_timer_t* timer) noexcept {
        edge::log::warn("edge: shutdown_timeout passed: closing the connections left");
        static_cast<Server*>(timer->data)->stop_workers(true);
      },
      static_cast<uint64_t>(shared_->config.shutdown_timeout.count()), 0);
}

void Server::stop_workers(bool all) {
  // A worker is sent its stop once: after it, its inbox is closed.
  bool every = true;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (!stop_sent_[i] && (all || drained_[i].load(std::memory_order_acquire))) {
      stop_sent_[i] = true;
      workers_[i]->request_stop();
    }
    every = every && stop_sent_[i];
  }
  if (every) uv_stop(loop_);
}

int Server::run() {
  uv_loop_t loop;
  uv_loop_init(&loop);
  loop.data = this;
  uv_signal_t signals[2];
  for (uv_signal_t& s : signals) {
    uv_signal_init(&loop, &s);
    s.data = this;
  }
  loop_ = &loop;
  drained_ = std::make_unique<std::atomic<bool>[]>(workers_.size());
  stop_sent_.assign(workers_.size(), false);
  uv_async_init(&loop, &drained_async_, [](uv_async_t* async) noexcept {
    static_cast<Server*>(async->data)->stop_workers(false);
  });
  drained_async_.data = this;
  uv_timer_init(&loop, &shutdown_timer_);
  shutdown_timer_.data = this;
  auto on_signal = [](uv_signal_t* handle, int signum) noexcept {
    auto* server = static_cast<Server*>(handle->data);
    if (server->draining_) {
      edge::log::info("edge: second signal: stopping now");
      return server->stop_workers(true);
    }
    server->begin_drain(signum == SIGINT ? "SIGINT" : "SIGTERM");
  };
  uv_signal_start(&signals[0], on_signal, SIGINT);
  uv_signal_start(&signals[1], on_signal, SIGTERM);
  uv_signal_t hangup;
  uv_signal_init(&loop, &hangup);
  hangup.data = this;
  uv_signal_start(
      &hangup, [](uv_signal_t* handle, int) noexcept { static_cast<Server*>(handle->data)->reload_certificates(); },
      SIGHUP);
  // SIGUSR1: the access log's file is reopened (after logrotate moved it). Without an access
  // log the signal is ignored rather than fatal.
  uv_signal_t usr1;
  uv_signal_init(&loop, &usr1);
  usr1.data = this;
  uv_signal_start(
      &usr1,
      [](uv_signal_t* handle, int) noexcept {
        if (auto& log = static_cast<Server*>(handle->data)->shared_->access_log) log->reopen();
      },
      SIGUSR1);
  int code = 0;
  if (shared_->config.admin.enabled) {
    std::vector<const cache::Counters*> counters;
    std::vector<const Stats*> worker_stats;
    for (auto& worker : workers_) {
      counters.push_back(&worker->cache_counters());
      worker_stats.push_back(&worker->stats());
    }
    admin_ = std::make_unique<AdminServer>(&loop, shared_->config, shared_->balancer, shared_->store, counters,
                                           shared_->tier.get(), shared_->router, &shared_->bounds, worker_stats);
    std::string error;
    if (!admin_->open(error, std::exchange(inherited_admin_, -1))) {
      std::fprintf(stderr, "%s\n", error.c_str());
      code = 1;
    }
  }
  // Bans are applied lazily at lookup; this sweep applies them to everything else and forgets
  // those that no longer concern any object, so the list stays short.
  uv_timer_t ban_sweep;
  uv_timer_init(&loop, &ban_sweep);
  ban_sweep.data = shared_.get();
  uv_timer_start(
      &ban_sweep, sweep_step, kSweepIntervalMs, 0);
  // Folded repeats are told once their second has passed, even when nothing else is logged.
  uv_timer_t log_flush;
  uv_timer_init(&loop, &log_flush);
  uv_timer_start(
      &log_flush, [](uv_timer_t*) noexcept { edge::log::flush(); }, 1000, 1000);
  if (code == 0) {
    edge::log::info("edge: starting edge %s (config %s, %zu workers)", version(), shared_->config.file.c_str(),
                     workers_.size());
    balancer::HealthChecker health(shared_->config, shared_->balancer, shared_->tls.by_backend);
    health.start();
    for (auto& worker : workers_) worker->start();
    for (const conf::Listen& listen : shared_->config.listen)
      edge::log::info("edge: listening on %s%s", listen.address.text().c_str(), listen.tls.enabled ? " (tls)" : "");
    if (admin_) edge::log::info("edge: admin listening on %s", admin_->address().text().c_str());
    edge::log::info("edge: serving (config %s, %zu workers)", shared_->config.file.c_str(), workers_.size());
    if (offer_) offer_->start(&loop);
    if (takeover_.active()) finish_takeover();
    uv_run(&loop, UV_RUN_DEFAULT);
    for (auto& worker : workers_) worker->join();
    health.stop();
  }
  if (admin_) admin_->close();
  if (offer_) offer_->close();
  for (uv_signal_t& s : signals) uv_close(reinterpret_cast<uv_handle_t*>(&s), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&hangup), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&usr1), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&ban_sweep), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&log_flush), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&drained_async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_timer_), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  loop_ = nullptr;
  admin_.reset();
  uv_loop_close(&loop);
  return code;
}

}  // namespace edge::proxy
