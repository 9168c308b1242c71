// http/deadline: a timeout that moves often and rarely fires, over one uv_timer_t.
//
// Connections re-arm their timeout on every request (header, body, idle, response). Moving a
// libuv timer is a heap operation; here moving the deadline later only writes a field, and the
// timer, when it fires early, re-arms itself for the remainder. Only an earlier deadline touches
// the timer.
//
// Time: a Deadline reads its loop's time (uv_now), unless a ManualClock was made for that loop
// before the Deadline's init(): then it reads that clock, and fires when a test advances the
// clock past it, never by itself. Tests of timeouts move the clock instead of sleeping.
//
// Ownership: the owner embeds the Deadline, calls init() once, and closes handle() with its
// other handles; the handle's data points at the Deadline, whose owner() gives the owner back.
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

class Deadline {
 public:
  using Callback = void (*)(void* owner);

  Deadline() = default;
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void init(uv_loop_t* loop, Callback callback, void* owner);
  void set(uint64_t ms_from_now);
  void clear() { deadline_ = 0; }
  bool armed() const { return deadline_ != 0; }
  // The time deadlines are measured in: the loop's, or its ManualClock's.
  uint64_t now() const { return clock_ ? clock_->now() : uv_now(timer_.loop); }

  uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(&timer_); }
  // The deferred-deletion rule for an owner whose only handle is this timer: the timer is
  // closed and the owner deleted from its close callback, so never under a call on the stack.
  template <class Owner>
  void close_and_delete() {
    uv_close(handle(), [](uv_handle_t* timer) noexcept {
      delete static_cast<Owner*>(static_cast<Deadline*>(timer->data)->owner());
    });
  }
  void* owner() const { return owner_; }

 private:
  static void on_timer(uv_timer_t* timer) noexcept;

  friend class ManualClock;

  uv_timer_t timer_;
  ManualClock* clock_ = nullptr;
  uint64_t deadline_ = 0;   // loop time in ms; 0: none
  uint64_t fires_at_ = 0;   // when the libuv timer is due; 0: not started
  Callback callback_ = nullptr;
  void* owner_ = nullptr;
};

}  // namespace edge::http
