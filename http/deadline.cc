#include "http/deadline.h"

#include <algorithm>
#include <atomic>
#include <mutex>

namespace edge::http {

namespace {
// The clocks alive; a loop without one (every loop outside tests) costs a relaxed load at init.
std::atomic<int> clocks_alive{0};
std::mutex clocks_mutex;
std::vector<ManualClock*> clocks;
}  // namespace

ManualClock::ManualClock(uv_loop_t* loop, uint64_t start_ms) : loop_(loop), now_(start_ms) {
  std::lock_guard lock(clocks_mutex);
  clocks.push_back(this);
  clocks_alive.fetch_add(1, std::memory_order_relaxed);
}

ManualClock::~ManualClock() {
  std::lock_guard lock(clocks_mutex);
  std::erase(clocks, this);
  clocks_alive.fetch_sub(1, std::memory_order_relaxed);
  for (Deadline* d : deadlines_) d->clock_ = nullptr;
}

ManualClock* ManualClock::of(uv_loop_t* loop) {
  if (clocks_alive.load(std::memory_order_relaxed) == 0) return nullptr;
  std::lock_guard lock(clocks_mutex);
  for (ManualClock* clock : clocks)
    if (clock->loop_ == loop) return clock;
  return nullptr;
}

void ManualClock::advance(uint64_t ms) {
  now_ += ms;
  // A callback may arm, clear or add deadlines: look again after each one fires.
  for (;;) {
    Deadline* due = nullptr;
    for (Deadline* d : deadlines_)
      if (d->deadline_ != 0 && d->deadline_ <= now_ && (!due || d->deadline_ < due->deadline_)) due = d;
    if (!due) return;
    due->deadline_ = 0;
    due->callback_(due->owner_);
  }
}

Deadline::~Deadline() {
  if (clock_) std::erase(clock_->deadlines_, this);
}

void Deadline::init(uv_loop_t* loop, Callback callback, void* owner) {
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  callback_ = callback;
  owner_ = owner;
  clock_ = ManualClock::of(loop);
  if (clock_) clock_->deadlines_.push_back(this);
}

void Deadline::set(uint64_t ms_from_now) {
  if (clock_) {
    deadline_ = std::max<uint64_t>(1, clock_->now() + ms_from_now);
    return;
  }
  deadline_ = uv_now(timer_.loop) + ms_from_now;
  if (deadline_ == 0) deadline_ = 1;
  if (fires_at_ == 0 || fires_at_ > deadline_) {
    uv_timer_start(&timer_, &Deadline::on_timer, ms_from_now, 0);
    fires_at_ = deadline_;
  }
}

void Deadline::on_timer(uv_timer_t* timer) noexcept {
  auto* d = static_cast<Deadline*>(timer->data);
  d->fires_at_ = 0;
  if (d->deadline_ == 0) return;
  uint64_t now = uv_now(timer->loop);
  if (now < d->deadline_) {
    uv_timer_start(timer, &Deadline::on_timer, d->deadline_ - now, 0);
    d->fires_at_ = d->deadline_;
    return;
  }
  d->deadline_ = 0;
  d->callback_(d->owner_);
}

}  // namespace edge::http
