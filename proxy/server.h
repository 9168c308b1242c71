// proxy/server: the edge process: opens the listeners, runs the workers, stops on a signal.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"
#include "balancer/health.h"
#include "proxy/admin.h"
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
  // configuration.
  bool open(std::string& error);
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
  // workers, admin, cluster, cache.memcached, access_log's file, limits.max_temp_total.
  // Refused while stopping. `done` (may be null) hears the outcome on the main loop, never from
  // inside this call: a success once every worker has taken the new generation (when the log
  // says "reloaded").
  void reload(const char* cause, std::function<void(const Reloaded&)> done);
  // The first SIGINT/SIGTERM: every worker drains and the shutdown_timeout clock starts.
  void begin_drain(const char* signal_name);
  // Stops every worker not yet stopped (all of them with `all`, else the drained ones); once
  // all are, run()'s loop ends.
  void stop_workers(bool all);

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
};

}  // namespace edge::proxy
