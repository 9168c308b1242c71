// proxy/herd: what a route has learned about its fills, so that a route whose responses are never
// storable stops making concurrent requests for a new key wait for one fetch (the "herd").
//
// Coalescing bets that a miss's response will be storable: the requests that arrive while it is
// fetched wait for it, and are answered from it. When it is not (no-store, private, Set-Cookie,
// too large...), the key is marked hit-for-pass and every waiter then goes to the backend itself,
// so each of them took about twice the backend's time. A key's mark helps the key's later
// requests only; a route whose keys are new each time (per-user query strings on an API route)
// loses the bet on every first herd. A RouteStreak counts, per route, the fills in a row whose
// response was not storable for the response's own reasons (cache::marks_hit_for_pass, or too
// large); once it reaches the configured threshold (cache.route_pass_after), a new fill on the
// route is private: each request fetches at once, as a pass would, and a storable response is
// still stored, which resets the streak. Failures, 5xx and refusals about the request
// (Authorization, its method) say nothing about the route and leave the streak as it was.
//
// Threads: one per route and generation (proxy/generation.h), shared by every worker. Relaxed
// atomics: the streak is a hint, and a few requests more or less coalesced around the moment it
// changes cost nothing but a wait. Writes are skipped when they would change nothing (a streak at
// the threshold, or at zero), so a busy route's cache line is only read.
#pragma once

#include <atomic>
#include <cstdint>

namespace edge::proxy {

class RouteStreak {
 public:
  // A fill's response was not storable for its own reasons.
  void not_storable(uint32_t threshold) {
    const uint32_t now = count_.load(std::memory_order_relaxed);
    if (now < threshold) count_.fetch_add(1, std::memory_order_relaxed);
  }
  // A fill's response was storable (stored, or a 304 that refreshed a stored object).
  void storable() {
    if (count_.load(std::memory_order_relaxed) != 0) count_.store(0, std::memory_order_relaxed);
  }
  // Whether a new fill on the route should not make others wait for it. Never with threshold 0.
  bool passes(uint32_t threshold) const {
    return threshold > 0 && count_.load(std::memory_order_relaxed) >= threshold;
  }
  uint32_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint32_t> count_{0};
};

}  // namespace edge::proxy
