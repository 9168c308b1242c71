// proxy/server: the edge process: opens the listeners, runs the workers, stops on a signal.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"
#include "balancer/health.h"
#include "proxy/admin.h"
#include "proxy/handoff.h"
#include "proxy/worker.h"

namespace edge::proxy {

class Server {
 public:
  // `tls`: the listeners' TLS contexts, built from `config` (tls/context.h).
  Server(conf::Config config, tls::Contexts tls);
  ~Server();

  // Opens the access log and binds every listen address once per worker (SO_REUSEPORT); a port
  // 0 is the kernel's choice for the first worker and the same port for the others; then makes
  // the workers. On failure, `error` says which address and why, with its position in the
  // configuration. With `upgrade_socket`, it also binds that Unix socket, where run() offers
  // the listening sockets to a new process (proxy/handoff.h).
  bool open(std::string& error);
  // Before open(), for a binary upgrade: the sockets taken over from the running process
  // (connected). open() uses those bound to an address its configuration still has (listen
  // entries and the admin port) in place of new ones, without the in-use check, spread over
  // the workers (a worker may get several sockets of one address), and closes the others with
  // a warning. Once the workers run, run() tells the old process, which then drains.
  void take_over(handoff::Takeover takeover);
  // Runs the workers until SIGINT or SIGTERM; returns the process exit code. The first signal
  // drains (Worker::request_drain): no new connection, idle ones closed, the requests in
  // progress answered; each worker stops once its connections are gone, and every one still
  // running when `shutdown_timeout` passes, or at a second signal, stops at once. The admin
  // port answers until the workers are done. Once every socket
  // listens, it writes to stderr one line per listen address and one for the admin port, with
  // the ports actually bound (what an operator or a test that asked for port 0 reads):
  //   edge: listening on 127.0.0.1:43817
  //   edge: admin listening on 127.0.0.1:43818
  int run();

 private:
  // SIGUSR1: the access log reopens its file (log/access_log.h).
  //
  // SIGHUP and the admin port's POST /reload: the configuration file is read again, checked
  // (certificates and keys read, new listen addresses bound) and, if all is well, becomes the
  // current Generation (proxy/generation.h): each worker takes it through its inbox, so requests
  // that start afterwards run on it while those in progress finish on theirs. No connection is
  // closed and the RAM cache stays (resized in place when cache.memory, max_object or
  // max_variants changed). Servers that keep their backend and address keep their state;
  // listeners are added, closed (connections they accepted stay), or given new certificates;
  // health checks restart on the new backends. Anything wrong, and the running configuration
  // stays: every reason, `file:line:col: message`, goes to the log and to the answer.
  // Some settings are the process's and wait for a restart, which the answer and the log say:
  // workers, admin, cluster, cache.memcached, access_log's file, limits.max_temp_total,
  // upgrade_socket.
  // Refused while stopping. `done` (may be null) hears the outcome on the main loop, never from
  // inside this call: a success once every worker has taken the new generation (when the log
  // says "reloaded").
  void reload(const char* cause, std::function<void(const Reloaded&)> done);
  // The first SIGINT/SIGTERM, or a new process that took over: every worker drains and the
  // shutdown_timeout clock starts; the sockets are no longer offered.
  void begin_drain(const char* signal_name);
  // Removes from takeover_ the inherited sockets of `kind` bound to `address` and returns them
  // (owned by the caller); none for a port 0.
  std::vector<int> take_inherited(const conf::Address& address, handoff::Kind kind);
  // The end of open() for a binary upgrade: the inherited sockets left are closed, and the
  // upgrade socket is bound.
  bool open_upgrade(std::string& error);
  // Once the workers run after a takeover: the previous process is told to drain.
  void finish_takeover();
  // What the upgrade socket offers: every listening socket, none once draining.
  std::vector<handoff::Offered> offered_sockets() const;
  // Stops every worker not yet stopped (all of them with `all`, else the drained ones); once
  // all are, run()'s loop ends.
  void stop_workers(bool all);

  // GET /top: each worker's ranking, gathered through the inboxes and merged; `done` hears it on
  // the main loop (nullopt while stopping).
  void gather_top(const top::Query& query, std::function<void(std::optional<top::Ranking>)> done);
  // Starts the health checks of the current generation (stopping those of the previous one).
  void restart_health_checks();

  conf::Config pending_config_;  // from construction to open()
  tls::Contexts pending_tls_;
  // Listen addresses (Address::text()) whose port the kernel chose: a reload's port 0 on the
  // same host means them.
  std::vector<std::string> kernel_ports_;
  std::unique_ptr<balancer::HealthChecker> health_;
  GenerationRef health_generation_;  // what health_ borrows

  uv_loop_t* loop_ = nullptr;  // run()'s, while it runs
  std::unique_ptr<LoopTasks> main_tasks_;  // on loop_, while it runs: news from the workers
  uv_async_t drained_async_{};  // a worker drained (any thread)
  uv_timer_t shutdown_timer_{};
  bool draining_ = false;
  std::unique_ptr<std::atomic<bool>[]> drained_;  // [worker], set by the worker's thread
  std::vector<bool> stop_sent_;                   // [worker]

  std::unique_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<AdminServer> admin_;  // on run()'s loop, while it runs

  handoff::Takeover takeover_;              // the sockets inherited, until open() uses them
  int inherited_admin_ = -1;                // owned until run() gives it to the admin port
  // Every worker's listening sockets by address (the workers own them), what the upgrade socket
  // offers; reloads add and remove addresses.
  std::map<std::string, std::vector<int>> listener_fds_;
  std::unique_ptr<handoff::Offer> offer_;  // with upgrade_socket
};

}  // namespace edge::proxy
