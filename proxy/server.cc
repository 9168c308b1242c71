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

#include "http/body_arena.h"
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

Server::Server(conf::Config config, tls::Contexts tls) : pending_config_(std::move(config)), pending_tls_(std::move(tls)) {}

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
  const conf::Config& config = shared_->generation->config;
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
  for (const auto& [address, fds] : listener_fds_)
    for (int fd : fds) offered.push_back({handoff::Kind::kListen, fd});
  if (admin_ && admin_->fd() >= 0) offered.push_back({handoff::Kind::kAdmin, admin_->fd()});
  return offered;
}

namespace {
// The sockets a reload or start opened for one address, one per worker; those nobody adopted
// are closed with the set (a task dropped by a stopping worker, a refused reload).
struct OpenedSockets {
  std::vector<int> fds;
  OpenedSockets() = default;
  OpenedSockets(const OpenedSockets&) = delete;
  OpenedSockets& operator=(const OpenedSockets&) = delete;
  ~OpenedSockets() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  int take(size_t worker) { return std::exchange(fds[worker], -1); }
};

// Binds `listen` once per worker, after the in-use probe; fills in the kernel's port for a port
// 0. False with `error` (the entry's position and why). `inherited`: sockets of the address
// taken over from the previous process (a binary upgrade), used first and all kept, even beyond
// one per worker: each has its own accept queue (SO_REUSEPORT), and closing one would drop the
// connections waiting in it.
bool open_sockets(conf::Listen& listen, size_t workers, const std::vector<int>& inherited, OpenedSockets& out,
                  std::string& error) {
  out.fds = inherited;
  // Inherited sockets are the previous process's own use of the port, which is why they skip
  // the check; a port 0 is the kernel's choice, never in use.
  if (inherited.empty() && listen.address.port != 0 && served_by_another_process(listen.address)) {
    error = conf::Error{listen.mark, "cannot listen on " + listen.address.text() +
                                         ": address already in use by another process"}
                .text();
    return false;
  }
  for (size_t w = inherited.size(); w < workers; ++w) {
    std::string why;
    int fd = open_listener(listen.address, why);
    if (fd < 0) {
      error = conf::Error{listen.mark, "cannot listen on " + listen.address.text() + ": " + why}.text();
      return false;
    }
    // For port 0 the first worker's socket takes the kernel's choice; the others must join it
    // on that port, or each worker would get a port of its own.
    if (listen.address.port == 0) listen.address.port = bound_port(fd);
    out.fds.push_back(fd);
  }
  return true;
}
}  // namespace

bool Server::open(std::string& error) {
  conf::Config& config = pending_config_;
  std::unique_ptr<log::AccessLog> access_log;
  if (const conf::AccessLog& log = config.access_log; log.enabled) {
    access_log = std::make_unique<log::AccessLog>(log.path, log.to_stdout, log.buffer);
    if (!access_log->open(error)) {
      error = conf::Error{log.mark, error}.text();
      return false;
    }
  }
  const size_t workers = static_cast<size_t>(config.workers);
  std::vector<OpenedSockets> sockets(config.listen.size());
  for (size_t i = 0; i < config.listen.size(); ++i) {
    const bool kernel_port = config.listen[i].address.port == 0;
    const std::vector<int> inherited = take_inherited(config.listen[i].address, handoff::Kind::kListen);
    if (!open_sockets(config.listen[i], workers, inherited, sockets[i], error)) return false;
    if (kernel_port) kernel_ports_.push_back(config.listen[i].address.text());
  }
  shared_ = std::make_unique<Shared>(std::move(config), std::move(pending_tls_));
  if (access_log) {
    access_log->start();
    shared_->access_log = std::move(access_log);
  }
  for (size_t w = 0; w < workers; ++w) workers_.push_back(std::make_unique<Worker>(*shared_, static_cast<int>(w)));
  const std::vector<conf::Listen>& listen = shared_->generation->config.listen;
  for (size_t i = 0; i < listen.size(); ++i) {
    const tls::ServerContext* tls = i < shared_->tls.by_listener.size() ? shared_->tls.by_listener[i].get() : nullptr;
    const std::string address = listen[i].address.text();
    // More sockets than workers when the previous process had more: a worker takes several.
    for (size_t k = 0; k < sockets[i].fds.size(); ++k) {
      listener_fds_[address].push_back(sockets[i].fds[k]);
      workers_[k % workers]->adopt_listener(address, sockets[i].take(k), tls);
    }
  }
  return open_upgrade(error);
}

namespace {
// What a reload would change that only a restart applies, as lines for the answer and the log.
std::vector<std::string> restart_only_changes(const conf::Config& running, const conf::Config& fresh) {
  std::vector<std::string> out;
  auto note = [&out](bool changed, const char* what) {
    if (changed) out.push_back(std::string(what) + " changed: applied at the next restart");
  };
  note(running.workers != fresh.workers, "workers");
  note(running.io != fresh.io, "io");
  auto access = [](const conf::AccessList& list) {
    std::string text = list.enabled ? "on" : "off";
    for (const conf::Cidr& cidr : list.allow) text.append(" +").append(conf::cidr_text(cidr));
    for (const conf::Cidr& cidr : list.deny) text.append(" -").append(conf::cidr_text(cidr));
    return text;
  };
  note(running.limits.rate_limit_clients != fresh.limits.rate_limit_clients, "limits.rate_limit_clients");
  note(access(running.admin.access) != access(fresh.admin.access) ||
           running.admin.enabled != fresh.admin.enabled || running.admin.address.text() != fresh.admin.address.text() ||
           running.admin.token != fresh.admin.token || running.admin.max_connections != fresh.admin.max_connections ||
           running.admin.header_timeout != fresh.admin.header_timeout,
       "admin");
  auto peers = [](const conf::Cluster& cluster) {
    std::string text;
    for (const conf::Peer& peer : cluster.peers) text.append(peer.address.text()).push_back(' ');
    return text;
  };
  note(peers(running.cluster) != peers(fresh.cluster) || running.cluster.timeout != fresh.cluster.timeout, "cluster");
  auto memcached = [](const conf::Memcached& m) {
    std::string text = m.enabled ? "on " : "off ";
    for (const conf::Address& server : m.servers) text.append(server.text()).push_back(' ');
    return text + std::to_string(m.timeout.count()) + " " + std::to_string(m.threads) + " " +
           std::to_string(m.retry.count()) + " " + std::to_string(m.max_item);
  };
  note(memcached(running.cache.memcached) != memcached(fresh.cache.memcached), "cache.memcached");
  note(running.access_log.enabled != fresh.access_log.enabled || running.access_log.path != fresh.access_log.path ||
           running.access_log.to_stdout != fresh.access_log.to_stdout ||
           running.access_log.buffer != fresh.access_log.buffer,
       "access_log (file or buffer)");
  note(running.limits.max_temp_total != fresh.limits.max_temp_total, "limits.max_temp_total");
  note(running.upgrade_socket != fresh.upgrade_socket, "upgrade_socket");
  return out;
}

// Names of host entries (their first match), backends and servers, for the list of changes.
std::vector<std::string> host_labels(const conf::Config& config) {
  std::vector<std::string> out;
  for (const conf::Host& host : config.hosts) out.push_back(LabelSlots::label(host));
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

void describe_changes(const conf::Config& running, const conf::Config& fresh, std::vector<std::string>& out) {
  const std::vector<std::string> old_hosts = host_labels(running), new_hosts = host_labels(fresh);
  for (const std::string& host : new_hosts)
    if (!contains(old_hosts, host)) out.push_back("host added: " + host);
  for (const std::string& host : old_hosts)
    if (!contains(new_hosts, host)) out.push_back("host removed: " + host);
  for (const conf::Backend& backend : fresh.backends) {
    const int old_index = running.backend_index(backend.name);
    if (old_index < 0) {
      out.push_back("backend added: " + backend.name);
      continue;
    }
    const conf::Backend& old = running.backends[static_cast<size_t>(old_index)];
    std::vector<std::string> old_servers, new_servers;
    for (const conf::Server& server : old.servers) old_servers.push_back(server.address.text());
    for (const conf::Server& server : backend.servers) new_servers.push_back(server.address.text());
    for (const std::string& server : new_servers)
      if (!contains(old_servers, server)) out.push_back("backend " + backend.name + ": server added: " + server);
    for (const std::string& server : old_servers)
      if (!contains(new_servers, server)) out.push_back("backend " + backend.name + ": server removed: " + server);
  }
  for (const conf::Backend& backend : running.backends)
    if (fresh.backend_index(backend.name) < 0) out.push_back("backend removed: " + backend.name);
  if (running.cache.memory != fresh.cache.memory)
    out.push_back("cache.memory: " + std::to_string(running.cache.memory) + " -> " + std::to_string(fresh.cache.memory));
}
}  // namespace

void Server::reload(const char* cause, std::function<void(const Reloaded&)> done) {
  Reloaded outcome;
  auto refuse = [&](const char* why) {
    for (const std::string& error : outcome.errors) edge::log::error("edge: reload: %s", error.c_str());
    edge::log::error("edge: reload refused (%s): %s; the running configuration stays", cause, why);
    if (done) main_tasks_->post([done = std::move(done), outcome] { done(outcome); });
  };
  if (draining_) {
    outcome.errors.push_back("edge is stopping");
    return refuse("edge is stopping");
  }
  const Generation& current = *shared_->generation;
  conf::LoadResult loaded = conf::load_file(current.config.file);
  if (!loaded.config) {
    for (const conf::Error& error : loaded.errors) outcome.errors.push_back(error.text());
    return refuse("the configuration has errors");
  }
  conf::Config& fresh = *loaded.config;
  // A port 0 in the file means the port the kernel gave that host's listener at start.
  std::vector<bool> matched(kernel_ports_.size(), false);
  for (conf::Listen& listen : fresh.listen) {
    if (listen.address.port != 0) continue;
    for (size_t k = 0; k < kernel_ports_.size(); ++k) {
      const conf::Listen* old = nullptr;
      for (const conf::Listen& candidate : current.config.listen)
        if (candidate.address.text() == kernel_ports_[k]) old = &candidate;
      if (matched[k] || !old || old->address.host != listen.address.host) continue;
      matched[k] = true;
      listen.address.port = old->address.port;
      break;
    }
  }
  tls::Contexts& tls = shared_->tls;
  std::vector<conf::Error> errors, warnings;
  std::vector<std::unique_ptr<tls::ServerContext>> listener_tls;
  for (const conf::Listen& listen : fresh.listen) {
    if (listen.tls.enabled && listen.tls.session_tickets && !tls.ticket_keys)
      tls.ticket_keys = std::make_unique<tls::TicketKeys>(listen.tls.ticket_rotation);
    listener_tls.push_back(listen.tls.enabled ? tls::ServerContext::build(listen.tls, tls.ticket_keys.get(), errors, warnings)
                                              : nullptr);
  }
  std::vector<std::unique_ptr<tls::ClientContext>> backend_tls;
  for (const conf::Backend& backend : fresh.backends)
    backend_tls.push_back(backend.tls.enabled ? tls::ClientContext::build(backend.tls, errors) : nullptr);
  for (const conf::Error& warning : warnings)
    edge::log::warn("edge: reload: %s:%d:%d: warning: %s", warning.mark.file.c_str(), warning.mark.line,
                    warning.mark.col, warning.message.c_str());
  for (const conf::Error& error : errors) outcome.errors.push_back(error.text());
  if (!outcome.errors.empty()) return refuse("certificates or keys could not be used");
  // The process's settings stay as they are; the fields that follow them are kept too, so the
  // new generation never disagrees with what runs.
  std::vector<std::string> restart_only = restart_only_changes(current.config, fresh);
  fresh.workers = current.config.workers;
  fresh.io = current.config.io;
  fresh.admin = current.config.admin;
  fresh.cluster = current.config.cluster;
  fresh.cache.memcached = current.config.cache.memcached;
  fresh.access_log.enabled = current.config.access_log.enabled;
  fresh.access_log.path = current.config.access_log.path;
  fresh.access_log.to_stdout = current.config.access_log.to_stdout;
  fresh.access_log.buffer = current.config.access_log.buffer;
  fresh.limits.max_temp_total = current.config.limits.max_temp_total;
  fresh.upgrade_socket = current.config.upgrade_socket;

  // New addresses are bound before anything changes, so a busy port refuses the whole reload.
  std::vector<std::string> old_addresses, new_addresses;
  for (const conf::Listen& listen : current.config.listen) old_addresses.push_back(listen.address.text());
  const size_t workers = workers_.size();
  std::vector<std::shared_ptr<OpenedSockets>> sockets(fresh.listen.size());
  for (size_t i = 0; i < fresh.listen.size(); ++i) {
    conf::Listen& listen = fresh.listen[i];
    if (contains(old_addresses, listen.address.text())) {
      new_addresses.push_back(listen.address.text());
      continue;
    }
    sockets[i] = std::make_shared<OpenedSockets>();
    std::string error;
    const bool kernel_port = listen.address.port == 0;
    if (!open_sockets(listen, workers, {}, *sockets[i], error)) {
      outcome.errors.push_back(error);
      return refuse("a new listen address could not be bound");
    }
    if (kernel_port) kernel_ports_.push_back(listen.address.text());
    new_addresses.push_back(listen.address.text());
  }

  describe_changes(current.config, fresh, outcome.changes);
  for (size_t i = 0; i < new_addresses.size(); ++i)
    if (!contains(old_addresses, new_addresses[i])) outcome.changes.push_back("listener added: " + new_addresses[i]);
  std::vector<std::string> removed;
  for (const std::string& address : old_addresses)
    if (!contains(new_addresses, address)) {
      removed.push_back(address);
      outcome.changes.push_back("listener removed: " + address);
    }
  std::erase_if(kernel_ports_, [&](const std::string& address) { return contains(removed, address); });
  outcome.changes.insert(outcome.changes.end(), restart_only.begin(), restart_only.end());

  const conf::Cache& cache = fresh.cache;
  if (cache.memory != current.config.cache.memory || cache.max_object != current.config.cache.max_object ||
      cache.max_variants != current.config.cache.max_variants)
    shared_->store.resize(cache.memory, cache.max_object, cache.max_variants);
  auto generation = std::make_shared<const Generation>(std::move(fresh), std::move(backend_tls),
                                                       shared_->generation.get(), shared_->host_slots,
                                                       shared_->server_slots);
  // The listeners' contexts: a handshake begun with an old one may still call into it, so those
  // live on (tls::Contexts::retired).
  for (auto& context : tls.by_listener)
    if (context) tls.retired.push_back(std::move(context));
  tls.by_listener = std::move(listener_tls);
  struct ListenerChange {
    std::string address;
    const tls::ServerContext* tls;
    std::shared_ptr<OpenedSockets> sockets;  // null: the address was listened on already
  };
  std::vector<ListenerChange> listeners;
  for (size_t i = 0; i < new_addresses.size(); ++i) {
    listeners.push_back({new_addresses[i], tls.by_listener[i].get(), sockets[i]});
    if (sockets[i]) listener_fds_[new_addresses[i]] = sockets[i]->fds;
  }
  for (const std::string& address : removed) listener_fds_.erase(address);
  shared_->generation = generation;
  restart_health_checks();
  outcome.ok = true;
  outcome.generation = generation->number;
  // Said, and answered, once every worker runs it: a request that starts afterwards sees it.
  auto told = [outcome, done = std::move(done), cause = std::string(cause), file = generation->config.file] {
    edge::log::info("edge: reloaded (%s): configuration %s, generation %llu%s", cause.c_str(), file.c_str(),
                    static_cast<unsigned long long>(outcome.generation),
                    outcome.changes.empty() ? "; no listener, host, backend or server added or removed" : "");
    for (const std::string& change : outcome.changes) edge::log::info("edge: reload: %s", change.c_str());
    if (done) done(outcome);
  };
  auto workers_left = std::make_shared<std::atomic<size_t>>(workers);
  auto last = std::make_shared<decltype(told)>(std::move(told));
  const LoopTasks::Poster main = main_tasks_->poster();
  for (size_t w = 0; w < workers; ++w) {
    workers_[w]->poster()([worker = workers_[w].get(), w, generation, listeners, removed, workers_left, last, main] {
      worker->use_generation(generation);
      for (const std::string& address : removed) worker->close_listener(address);
      for (const ListenerChange& change : listeners) {
        if (change.sockets)
          worker->adopt_listener(change.address, change.sockets->take(w), change.tls);
        else
          worker->use_tls(change.address, change.tls);
      }
      if (workers_left->fetch_sub(1) == 1) main([last] { (*last)(); });
    });
  }
}

void Server::gather_top(const top::Query& query, std::function<void(std::optional<top::Ranking>)> done) {
  // A stopping worker drops what is posted to it: nobody would answer.
  if (draining_) return main_tasks_->post([done = std::move(done)] { done(std::nullopt); });
  struct Gathering {
    std::vector<top::Ranking> rankings;
    std::atomic<size_t> left;
    std::function<void(std::optional<top::Ranking>)> done;
  };
  auto gathering = std::make_shared<Gathering>();
  gathering->rankings.resize(workers_.size());
  gathering->left.store(workers_.size());
  gathering->done = std::move(done);
  const LoopTasks::Poster main = main_tasks_->poster();
  for (size_t w = 0; w < workers_.size(); ++w) {
    workers_[w]->poster()([worker = workers_[w].get(), w, query, gathering, main] {
      gathering->rankings[w] = worker->top_ranking(query);
      if (gathering->left.fetch_sub(1) != 1) return;
      main([gathering, n = query.n] { gathering->done(top::merge_rankings(gathering->rankings, n)); });
    });
  }
}

void Server::restart_health_checks() {
  if (health_) health_->stop();
  health_generation_ = shared_->generation;
  health_ = std::make_unique<balancer::HealthChecker>(health_generation_->config, health_generation_->balancer,
                                                      health_generation_->backend_contexts);
  health_->start();
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
                  signal_name, static_cast<long long>(shared_->generation->config.shutdown_timeout.count()));
  for (size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->request_drain([this, i] {
      drained_[i].store(true, std::memory_order_release);
      // uv_async_send() skips the wake-up when it reads the handle as pending, and that read is
      // not fenced: without this fence the flag could still sit in this core's store buffer
      // while the main loop's callback, already under way for another worker, reads it. The
      // worker would then never be stopped (seen: a stop that waited for shutdown_timeout).
      std::atomic_thread_fence(std::memory_order_seq_cst);
      uv_async_send(&drained_async_);
    });
  }
  uv_timer_start(
      &shutdown_timer_,
      [](uv_timer_t* timer) noexcept {
        auto* server = static_cast<Server*>(timer->data);
        // Which workers held up the stop, and with how many client connections: a worker with
        // none left that was never stopped is a lost message, not a slow client.
        std::string left;
        for (size_t i = 0; i < server->workers_.size(); ++i) {
          if (server->stop_sent_[i]) continue;
          if (!left.empty()) left += ", ";
          left += "worker " + std::to_string(i) + ": connections " +
                  std::to_string(server->workers_[i]->stats().client_connections.load(std::memory_order_relaxed)) +
                  (server->drained_[i].load(std::memory_order_acquire) ? ", drained" : "");
        }
        edge::log::warn("edge: shutdown_timeout passed: closing the connections left (%s)", left.c_str());
        server->stop_workers(true);
      },
      static_cast<uint64_t>(shared_->generation->config.shutdown_timeout.count()), 0);
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
  main_tasks_ = std::make_unique<LoopTasks>(&loop);
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
      &hangup,
      [](uv_signal_t* handle, int) noexcept {
        auto* server = static_cast<Server*>(handle->data);
        server->reload("SIGHUP", [server](const Reloaded& outcome) {
          if (server->admin_) server->admin_->note_reload("SIGHUP", outcome);
        });
      },
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
  const conf::Config& config = shared_->generation->config;
  if (config.admin.enabled) {
    std::vector<const cache::Counters*> counters;
    std::vector<const Stats*> worker_stats;
    std::vector<const WorkerMetrics*> worker_metrics;
    for (auto& worker : workers_) {
      counters.push_back(&worker->cache_counters());
      worker_stats.push_back(&worker->stats());
      worker_metrics.push_back(&worker->metrics());
    }
    admin_ = std::make_unique<AdminServer>(&loop, shared_->generation, shared_->store, counters, shared_->tier.get(),
                                           &shared_->bounds, worker_stats, [this](std::function<void(const Reloaded&)> done) { reload("admin", std::move(done)); },
        [this](const top::Query& query, std::function<void(std::optional<top::Ranking>)> done) {
          gather_top(query, std::move(done));
        },
        worker_metrics);
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
    // io_uring is named when the workers run on it (a kernel that refused it left them on epoll,
    // and said so when each worker started).
    const auto on_uring = std::count_if(workers_.begin(), workers_.end(), [](const auto& w) { return w->uses_uring(); });
    edge::log::info("edge: starting edge %s (config %s, %zu workers%s)", version(), config.file.c_str(),
                    workers_.size(), on_uring > 0 ? ", io_uring" : "");
    restart_health_checks();
    // The body arena is made here, before any worker runs, not by the first large body a worker
    // meets: its file and mapping then come from the thread that owns the process's set-up.
    http::BodyArena::shared();
    for (auto& worker : workers_) worker->start();
    for (const conf::Listen& listen : config.listen)
      edge::log::info("edge: listening on %s%s", listen.address.text().c_str(), listen.tls.enabled ? " (tls)" : "");
    if (admin_) edge::log::info("edge: admin listening on %s", admin_->address().text().c_str());
    edge::log::info("edge: serving (config %s, %zu workers)", config.file.c_str(), workers_.size());
    if (offer_) offer_->start(&loop);
    if (takeover_.active()) finish_takeover();
    uv_run(&loop, UV_RUN_DEFAULT);
    for (auto& worker : workers_) worker->join();
    health_->stop();
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
  main_tasks_->close();
  uv_run(&loop, UV_RUN_DEFAULT);
  loop_ = nullptr;
  admin_.reset();
  main_tasks_.reset();
  uv_loop_close(&loop);
  return code;
}

}  // namespace edge::proxy
