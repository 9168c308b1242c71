// balancer: which server of a backend takes the next request, shared by every worker thread.
//
// A BackendState holds, per server, the live counters that all workers read and write
// (atomics: requests in flight, served, failed) and the server's availability (health checks,
// passive ejection, draining by an operator, slow start). pick() reserves a slot on the chosen
// server; the caller must give it back with release() exactly once, whatever happened.
//
// least_conn: the server with the fewest requests in flight per unit of weight, counting the one
// about to be sent ((in_flight + 1) / effective_weight), ties broken round robin. round_robin:
// the next server in turn. Both skip servers that are unavailable, at max_conns, or already tried
// by this request.
//
// Passive ejection never takes out a backend's only server, and when it has taken out every
// server, the choice is made as if none were ejected. Health checks and draining always count.
//
// When every available server is at its max_conns, the request waits in the backend's bounded
// FIFO queue. A released slot goes to the oldest waiter first: release() reserves the slot for
// it and calls Waiter::granted() on the releasing thread; the waiter's owner moves the news to its
// own loop. A waiter that gives up calls cancel(); if that returns false, a grant is already on
// its way and the owner must release() that slot when it arrives (or when it learns it is gone).
//
// Passive ejection and a server's return from it are written to the error log (warn, info), by
// whichever thread released the slot that decided it; the health checker logs its own changes.
//
// Time is passed in (monotonic milliseconds) so the rules can be tested without a clock.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "conf/config.h"

namespace edge::balancer {

// How an exchange with a server ended, as far as the server's health is concerned.
enum class Outcome {
  kSuccess,        // a response came (whatever its status)
  kConnectFailed,  // refused or timed out while connecting
  kBroken,         // reset, closed early, garbage
  kTimeout,        // no response in time
  kCancelled,      // we gave up for our own reasons (client left): says nothing about the server
};

enum class ServerMode {
  kUp,
  kSlowStart,  // up, taking a growing share
  kDraining,   // out of rotation by an operator; requests in flight finish
  kDown,       // failed its active health checks
  kEjected,    // failed passively, cooling down
};
const char* mode_name(ServerMode mode);

// A server's live state. It belongs to no one configuration: a reload that keeps the server
// (same backend name, same address) hands the same ServerState to the new Balancer, so its
// requests in flight, health, ejection and draining carry over (shared_ptr: every Balancer that
// names it). Its settings (weight, max_conns) are the BackendState's configuration's.
class ServerState {
 public:
  ServerState();
  // Unique in the process, never reused: what per-server resources elsewhere (a worker's
  // connection pools) are keyed by.
  uint64_t id() const { return id_; }

  int in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  uint64_t served() const { return served_.load(std::memory_order_relaxed); }
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  ServerMode mode(int64_t now_ms, conf::Duration slow_start) const;

  // Operators (admin port).
  void set_draining(bool draining) { draining_.store(draining, std::memory_order_relaxed); }

  // Active health checks report here (from the checker's thread).
  struct CheckResult {
    bool ok = false;
    int status = 0;       // HTTP status, 0 when there was none
    std::string detail;   // "200", "timeout", "connection refused", ...
    int64_t at_ms = 0;
  };
  // What a check changed: nothing, or the server went down or came back up.
  enum class Change { kNone, kWentDown, kCameUp };
  Change report_check(const CheckResult& result, int rise, int fall, int64_t now_ms);
  CheckResult last_check() const;  // copy, under a small lock
  bool checked() const { return checked_.load(std::memory_order_relaxed); }
  // How often the active checks took the server down and brought it back up, since it exists.
  uint64_t went_down() const { return went_down_.load(std::memory_order_relaxed); }
  uint64_t came_up() const { return came_up_.load(std::memory_order_relaxed); }

 private:
  friend class BackendState;
  bool available(int64_t now_ms) const;
  void became_up(int64_t now_ms) { up_since_ms_.store(now_ms, std::memory_order_relaxed); }

  // Called when a reload hands this state to a backend without health checks: a server they
  // had marked down would stay down for good.
  void forget_health();

  const uint64_t id_;
  std::atomic<int> in_flight_{0};
  std::atomic<uint64_t> served_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<bool> draining_{false};
  std::atomic<bool> health_down_{false};
  std::atomic<int64_t> ejected_until_ms_{0};
  std::atomic<int> consecutive_failures_{0};
  std::atomic<int64_t> up_since_ms_{INT64_MIN / 2};  // long ago: no slow start at boot
  std::atomic<bool> checked_{false};
  std::atomic<uint64_t> went_down_{0};
  std::atomic<uint64_t> came_up_{0};
  // Owned by the health checker's thread: consecutive results in the current direction.
  int check_streak_ = 0;
  mutable std::mutex check_mutex_;
  CheckResult last_check_;
};

class Waiter {
 public:
  // A slot on `server` is reserved for this waiter. Called on the releasing thread, with the
  // queue lock held: post the news to the waiter's own loop and return; never call back into
  // the BackendState from here.
  virtual void granted(int server) = 0;

 protected:
  ~Waiter() = default;
};

class BackendState {
 public:
  // `previous`: the same-named backend of the configuration being replaced, whose servers with
  // an address this one keeps lend their ServerState; null at start.
  explicit BackendState(const conf::Backend& config, const BackendState* previous = nullptr);
  BackendState(const BackendState&) = delete;
  BackendState& operator=(const BackendState&) = delete;

  const conf::Backend& config() const { return config_; }
  size_t size() const { return servers_.size(); }
  ServerState& server(size_t i) { return *servers_[i]; }
  const ServerState& server(size_t i) const { return *servers_[i]; }
  const conf::Server& server_config(size_t i) const { return config_.servers[i]; }

  struct Pick {
    enum Kind {
      kServer,  // `server` has a slot reserved for this request
      kQueue,   // every available untried server is at max_conns: wait (enqueue)
      kNone,    // no server can take it (all down, ejected, draining, or tried)
    } kind;
    int server = -1;
  };
  // `tried` has bit i set for server i (mod 64) when this request already went there.
  Pick pick(uint64_t tried, int64_t now_ms);

  // Gives back the slot that pick() or a grant reserved, and records how it went.
  void release(int server, Outcome outcome, int64_t now_ms);

  // Queueing. enqueue() returns false when the queue is full (answer 503).
  bool enqueue(Waiter* waiter);
  // True: the waiter was still queued and is now removed. False: it was already granted.
  bool cancel(Waiter* waiter);
  size_t queued() const { return queued_.load(std::memory_order_relaxed); }

 private:
  // The choice itself, ignoring the queue: picks and reserves, or says why not.
  Pick choose(uint64_t tried, int64_t now_ms);
  Pick choose_among(uint64_t tried, int64_t now_ms, bool ignore_ejection);
  // Tries to reserve a slot on server i, honouring max_conns.
  bool reserve(size_t i);
  double effective_weight(size_t i, int64_t now_ms) const;
  // With the queue lock held: hands free slots to waiters while both exist.
  void grant_waiters(int64_t now_ms);

  const conf::Backend& config_;
  std::vector<std::shared_ptr<ServerState>> servers_;
  std::atomic<uint64_t> rotation_{0};
  std::mutex queue_mutex_;
  std::deque<Waiter*> queue_;
  std::atomic<size_t> queued_{0};
};

// Every backend's state, in Config::backends order. Built anew for each configuration a reload
// brings, from `previous` (the Balancer it replaces; null at start): see ServerState. Waiters
// queued in a previous Balancer are granted by its own releases (the requests in flight it
// started), not by the new one's.
class Balancer {
 public:
  explicit Balancer(const conf::Config& config, const Balancer* previous = nullptr);
  BackendState& backend(size_t i) { return *backends_[i]; }
  const BackendState& backend(size_t i) const { return *backends_[i]; }
  size_t size() const { return backends_.size(); }

 private:
  std::vector<std::unique_ptr<BackendState>> backends_;
};

// Monotonic milliseconds, the clock every caller passes in.
int64_t now_ms();

}  // namespace edge::balancer
