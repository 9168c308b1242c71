// balancer/health: active health checks, on a thread and loop of their own.
//
// Every server of every backend whose `health` is configured is probed in turn: a fresh TCP
// connection to the server's address (TLS over it for a backend with `tls`: verified as proxied
// traffic is, offering the last session that server gave the checker), one `GET <path> HTTP/1.1`
// (Host: the address, User-Agent:
// edge-health, Connection: close), and a verdict once the response head is complete: a 2xx or 3xx
// status is good; any other status, a refused, reset or closed connection, garbage, or no
// complete head within `timeout` is bad. The body is never read; the connection is closed after
// every check. Each verdict goes to ServerState::report_check() with the backend's rise and fall,
// which decides when the server goes down or comes back; the checker writes each such change to
// the error log (down: warn, up: info), naming the backend, the server and the last result. The result's detail is the status code
// ("200", "503"), or "connection refused", "connection reset", "closed without response",
// "bad response", "timeout", "TLS handshake failed: <OpenSSL's reason>" (a certificate that did
// not verify, say), "TLS error: <reason>", or libuv's message for any other socket error.
//
// Timing, per server: the first check starts at start(); each next one starts `interval` after
// the previous one ended, so a server never has two checks at once and a slow server is probed
// less often, not more.
//
// Threads: start() and the destructor are called by the owner's thread; stop() by any thread
// except the checker's own (it joins). The ServerStates are written only from the checker's
// thread, through report_check(); anyone may read them.
//
// Ownership: the checker borrows the Config, the Balancer and the backends' TLS contexts; all
// must outlive it. It owns its thread, its loop, every handle on it and its TLS sessions. As everywhere in edge, the process is expected to
// ignore SIGPIPE.
#pragma once

#include <uv.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "balancer/balancer.h"
#include "conf/config.h"
#include "tls/context.h"

namespace edge::balancer {

class HealthChecker {
 public:
  // `backend_tls`: the backends' client contexts, in Config::backends order, null without tls
  // (tls::Contexts::by_backend); every backend with tls and health needs its own.
  HealthChecker(const conf::Config& config, Balancer& balancer,
                std::span<const std::unique_ptr<tls::ClientContext>> backend_tls = {});
  ~HealthChecker();  // stop()
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts the checker's thread, unless no backend has health checks (then nothing starts).
  // At most once.
  void start();
  // Abandons the checks in progress without reporting them, closes every handle, ends the loop
  // and joins the thread. Idempotent; does nothing if start() started nothing.
  void stop();

  // True from a start() that started the thread until stop() has joined it.
  bool running() const { return running_.load(std::memory_order_relaxed); }

 private:
  struct Probe;  // one server's cycle of checks, one http::OneShot at a time

  void run();
  static void on_stop(uv_async_t* async) noexcept;

  const conf::Config& config_;
  Balancer& balancer_;
  std::span<const std::unique_ptr<tls::ClientContext>> backend_tls_;
  std::mutex lifecycle_mutex_;  // start() against stop() from another thread
  bool started_ = false;
  uv_loop_t loop_;
  uv_async_t stop_async_;
  std::vector<std::unique_ptr<Probe>> probes_;  // freed after the loop has closed their handles
  std::thread thread_;
  std::atomic<bool> running_{false};
  char ciphertext_buffer_[16 * 1024];  // every TLS check's socket reads (one delivery at a time)
};

}  // namespace edge::balancer
