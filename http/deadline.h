// http/deadline: a timeout that moves often and rarely fires, in one queue per loop.
//
// Connections re-arm their timeout on every request (header, body, idle, response), and a held
// connection must cost little. So a Deadline is not a libuv handle: the Deadlines of a loop share
// one uv_timer_t, due at the earliest of them, through a heap keyed by when each is due. Moving a
// deadline later only writes a field; when its turn comes early it goes back in at the new time.
// Only an earlier deadline touches the heap at once.
//
// Time: a Deadline reads its loop's time (uv_now), unless a ManualClock was made for that loop
// before the Deadline's init(): then it reads that clock, and fires when a test advances the
// clock past it, never by itself. Tests of timeouts move the clock instead of sleeping.
//
// Ownership: the owner embeds the Deadline, calls init() once and close() once (before freeing
// it). close() takes an optional completion, called from the loop, never from inside close():
// the deferred-deletion rule for owners (close_and_delete) and a handle count for those with
// other handles. The loop's shared timer is made by the first init() on it and closed once no
// Deadline there is open and no completion is pending, so a loop whose owners all closed runs to
// its end and closes as before.
//
// A loop's owner that closes every handle it finds (uv_walk) first calls stop_all(), so that no
// Deadline of an owner whose handles it closes fires, leaves the shared timer alone
// (is_shared_timer) so that the completions of owners closing still come, and once the loop ran
// out calls release_loop(): Deadlines still open there (owners it leaked) no longer hold the
// timer, which closes on the next run.
#pragma once

#include <uv.h>

#include <cstdint>
#include <vector>

namespace edge::http {

class Deadline;

// A clock for tests, on one loop and its thread. Deadlines initialised on that loop while the
// clock lives read it; advance() fires those that come due, earliest first.
class ManualClock {
 public:
  explicit ManualClock(uv_loop_t* loop, uint64_t start_ms = 1000);
  ~ManualClock();
  ManualClock(const ManualClock&) = delete;
  ManualClock& operator=(const ManualClock&) = delete;

  uint64_t now() const { return now_; }
  void advance(uint64_t ms);

 private:
  friend class Deadline;
  static ManualClock* of(uv_loop_t* loop);  // null: the loop runs on its own time

  uv_loop_t* loop_;
  uint64_t now_;
  std::vector<Deadline*> deadlines_;
};

class DeadlineQueue;

class Deadline {
 public:
  using Callback = void (*)(void* owner);

  Deadline() = default;
  ~Deadline();  // closes it if the owner did not (without a completion)
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void init(uv_loop_t* loop, Callback callback, void* owner);
  void set(uint64_t ms_from_now);
  void clear() { deadline_ = 0; }
  bool armed() const { return deadline_ != 0; }
  // The time deadlines are measured in: the loop's, or its ManualClock's.
  uint64_t now() const;

  // Never fires again; `closed(owner())`, if given, follows once from the loop. The Deadline
  // itself may be freed as soon as close() returns.
  void close(Callback closed = nullptr);
  // The deferred-deletion rule for an owner with no other handle: freed from the loop, never
  // under a call on the stack.
  template <class Owner>
  void close_and_delete() {
    close([](void* owner) noexcept { delete static_cast<Owner*>(owner); });
  }
  void* owner() const { return owner_; }

  // For a loop's teardown (see above).
  static void stop_all(uv_loop_t* loop);
  static bool is_shared_timer(const uv_handle_t* handle);
  static void release_loop(uv_loop_t* loop);

 private:
  friend class ManualClock;
  friend class DeadlineQueue;

  DeadlineQueue* queue_ = nullptr;  // null until init() and after close()
  ManualClock* clock_ = nullptr;
  uint64_t deadline_ = 0;   // loop time in ms; 0: none
  uint64_t fires_at_ = 0;   // its key in the queue's heap; 0: not in the heap
  Callback callback_ = nullptr;
  void* owner_ = nullptr;
  uint32_t heap_index_ = 0;
};

}  // namespace edge::http
