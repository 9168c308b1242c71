#include "balancer/balancer.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "http/log_text.h"
#include "log/error_log.h"

namespace edge::balancer {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const char* mode_name(ServerMode mode) {
  switch (mode) {
    case ServerMode::kUp: return "up";
    case ServerMode::kSlowStart: return "slow_start";
    case ServerMode::kDraining: return "draining";
    case ServerMode::kDown: return "down";
    case ServerMode::kEjected: return "ejected";
  }
  return "?";
}

// ---- one server ----

namespace {
std::atomic<uint64_t> last_server_id{0};
}

ServerState::ServerState() : id_(last_server_id.fetch_add(1, std::memory_order_relaxed) + 1) {}

void ServerState::forget_health() {
  health_down_.store(false, std::memory_order_relaxed);
  checked_.store(false, std::memory_order_relaxed);
}

ServerMode ServerState::mode(int64_t now, conf::Duration slow_start) const {
  if (draining_.load(std::memory_order_relaxed)) return ServerMode::kDraining;
  if (health_down_.load(std::memory_order_relaxed)) return ServerMode::kDown;
  if (ejected_until_ms_.load(std::memory_order_relaxed) > now) return ServerMode::kEjected;
  if (now - up_since_ms_.load(std::memory_order_relaxed) < slow_start.count()) return ServerMode::kSlowStart;
  return ServerMode::kUp;
}

bool ServerState::available(int64_t now) const {
  return !draining_.load(std::memory_order_relaxed) && !health_down_.load(std::memory_order_relaxed) &&
         ejected_until_ms_.load(std::memory_order_relaxed) <= now;
}

ServerState::Change ServerState::report_check(const CheckResult& result, int rise, int fall, int64_t now) {
  {
    std::lock_guard<std::mutex> lock(check_mutex_);
    last_check_ = result;
  }
  checked_.store(true, std::memory_order_relaxed);
  // check_streak_ counts consecutive results that argue for a change of state: good ones while
  // down, bad ones while up.
  const bool down = health_down_.load(std::memory_order_relaxed);
  if (result.ok == down) {
    if (++check_streak_ >= (down ? rise : fall)) {
      check_streak_ = 0;
      health_down_.store(!down, std::memory_order_relaxed);
      if (down) {
        // Back: forget passive failures and ramp up from now.
        consecutive_failures_.store(0, std::memory_order_relaxed);
        ejected_until_ms_.store(0, std::memory_order_relaxed);
        became_up(now);
        came_up_.fetch_add(1, std::memory_order_relaxed);
        return Change::kCameUp;
      }
      went_down_.fetch_add(1, std::memory_order_relaxed);
      return Change::kWentDown;
    }
  } else {
    check_streak_ = 0;
  }
  return Change::kNone;
}

ServerState::CheckResult ServerState::last_check() const {
  std::lock_guard<std::mutex> lock(check_mutex_);
  return last_check_;
}

// ---- a backend ----

BackendState::BackendState(const conf::Backend& config, const BackendState* previous) : config_(config) {
  // An address listed twice is two entries, each with a state of its own: each previous
  // state goes to one new entry at most.
  std::vector<bool> taken(previous ? previous->size() : 0, false);
  for (const conf::Server& server : config.servers) {
    std::shared_ptr<ServerState> state;
    for (size_t i = 0; i < taken.size() && !state; ++i) {
      if (taken[i] || previous->server_config(i).address.text() != server.address.text()) continue;
      taken[i] = true;
      state = previous->servers_[i];
    }
    if (!state) state = std::make_shared<ServerState>();
    else if (!config.health.enabled) state->forget_health();
    servers_.push_back(std::move(state));
  }
}

bool BackendState::reserve(size_t i) {
  ServerState& s = *servers_[i];
  const int limit = static_cast<int>(config_.servers[i].max_conns);
  int current = s.in_flight_.load(std::memory_order_relaxed);
  do {
    if (limit > 0 && current >= limit) return false;
  } while (!s.in_flight_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel));
  return true;
}

double BackendState::effective_weight(size_t i, int64_t now) const {
  const ServerState& s = *servers_[i];
  double weight = config_.servers[i].weight;
  const int64_t ramp = config_.slow_start.count();
  const int64_t up_for = now - s.up_since_ms_.load(std::memory_order_relaxed);
  // A server back from failure starts at a tenth of its share and grows linearly to all of it.
  if (ramp > 0 && up_for < ramp) weight *= std::max(0.1, static_cast<double>(up_for) / static_cast<double>(ramp));
  return weight;
}

BackendState::Pick BackendState::pick(uint64_t tried, int64_t now) {
  const size_t n = servers_.size();
  // Waiters come first: a new request does not overtake the queue.
  if (queued_.load(std::memory_order_relaxed) > 0) {
    bool any = false;
    for (size_t i = 0; i < n; ++i)
      if (!(tried & (uint64_t{1} << (i % 64))) && servers_[i]->available(now)) any = true;
    return {any ? Pick::kQueue : Pick::kNone, -1};
  }
  return choose(tried, now);
}

BackendState::Pick BackendState::choose(uint64_t tried, int64_t now) {
  Pick pick = choose_among(tried, now, false);
  // Passive ejection is a guess from a few failures; when it has taken out every server, a
  // guess is worth less than a try (the way a single server is never ejected at all).
  if (pick.kind == Pick::kNone) pick = choose_among(tried, now, true);
  return pick;
}

BackendState::Pick BackendState::choose_among(uint64_t tried, int64_t now, bool ignore_ejection) {
  const size_t n = servers_.size();
  for (int attempt = 0; attempt < 4; ++attempt) {
    const uint64_t start = rotation_.fetch_add(1, std::memory_order_relaxed);
    int best = -1;
    double best_load = std::numeric_limits<double>::infinity();
    bool any_available = false;
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (start + k) % n;
      if (tried & (uint64_t{1} << (i % 64))) continue;
      const ServerState& s = *servers_[i];
      if (!s.available(ignore_ejection ? INT64_MAX : now)) continue;
      any_available = true;
      const int in_flight = s.in_flight();
      const uint32_t max_conns = config_.servers[i].max_conns;
      if (max_conns > 0 && in_flight >= static_cast<int>(max_conns)) continue;
      if (config_.balance == conf::Balance::kRoundRobin) {
        best = static_cast<int>(i);
        break;
      }
      // Strictly less: among equals the first in this turn's rotation wins, so ties rotate.
      const double load = (in_flight + 1) / effective_weight(i, now);
      if (load < best_load) {
        best_load = load;
        best = static_cast<int>(i);
      }
    }
    if (best < 0) return {any_available ? Pick::kQueue : Pick::kNone, -1};
    if (reserve(static_cast<size_t>(best))) return {Pick::kServer, best};
    // Another thread took the last slot between our look and our reservation: look again.
  }
  return {Pick::kQueue, -1};
}

void BackendState::release(int server, Outcome outcome, int64_t now) {
  ServerState& s = *servers_[static_cast<size_t>(server)];
  const std::string& address = config_.servers[static_cast<size_t>(server)].address.text();
  s.in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  switch (outcome) {
    case Outcome::kSuccess:
      s.served_.fetch_add(1, std::memory_order_relaxed);
      if (s.consecutive_failures_.exchange(0, std::memory_order_relaxed) >= static_cast<int>(config_.eject.failures) &&
          config_.eject.failures > 0) {
        s.became_up(now);  // it was ejected and has just proved itself again
        if (servers_.size() > 1)
          edge::log::info("edge: backend %s server %s returned after passive ejection",
                          http::escape_for_log(config_.name).c_str(),
                          http::escape_for_log(address).c_str());
      }
      break;
    case Outcome::kConnectFailed:
    case Outcome::kBroken:
    case Outcome::kTimeout: {
      s.failed_.fetch_add(1, std::memory_order_relaxed);
      const int failures = s.consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
      if (config_.eject.failures > 0 && servers_.size() > 1 && failures >= static_cast<int>(config_.eject.failures)) {
        // Only the release that starts an ejection says so; later failures merely extend it.
        const int64_t until = now + config_.eject.cooldown.count();
        if (s.ejected_until_ms_.exchange(until, std::memory_order_relaxed) <= now)
          edge::log::warn("edge: backend %s server %s ejected for %lld ms after %d failures in a row",
                          http::escape_for_log(config_.name).c_str(),
                          http::escape_for_log(address).c_str(),
                          static_cast<long long>(config_.eject.cooldown.count()), failures);
      }
      break;
    }
    case Outcome::kCancelled:
      break;
  }
  if (queued_.load(std::memory_order_relaxed) > 0) {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    grant_waiters(now);
  }
}

bool BackendState::enqueue(Waiter* waiter) {
  std::lock_guard<std::mutex> lock(queue_mutex_);
  if (queue_.size() >= config_.queue.max) return false;
  queue_.push_back(waiter);
  queued_.store(queue_.size(), std::memory_order_relaxed);
  // A slot may have freed between the caller's pick() and now; nobody would grant it otherwise.
  grant_waiters(now_ms());
  return true;
}

bool BackendState::cancel(Waiter* waiter) {
  std::lock_guard<std::mutex> lock(queue_mutex_);
  auto it = std::find(queue_.begin(), queue_.end(), waiter);
  if (it == queue_.end()) return false;
  queue_.erase(it);
  queued_.store(queue_.size(), std::memory_order_relaxed);
  return true;
}

void BackendState::grant_waiters(int64_t now) {
  while (!queue_.empty()) {
    // The queue holds requests that have tried nothing yet: any server will do.
    Pick p = choose(0, now);
    if (p.kind != Pick::kServer) return;
    Waiter* waiter = queue_.front();
    queue_.pop_front();
    queued_.store(queue_.size(), std::memory_order_relaxed);
    waiter->granted(p.server);
  }
}

// ---- all backends ----

Balancer::Balancer(const conf::Config& config, const Balancer* previous) {
  for (const conf::Backend& backend : config.backends) {
    const BackendState* same = nullptr;
    for (size_t i = 0; previous && i < previous->size() && !same; ++i)
      if (previous->backend(i).config().name == backend.name) same = &previous->backend(i);
    backends_.push_back(std::make_unique<BackendState>(backend, same));
  }
}

}  // namespace edge::balancer
