#include "http/deadline.h"

namespace edge::http {

void Deadline::init(uv_loop_t* loop, Callback callback, void* owner) {
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  callback_ = callback;
  owner_ = owner;
}

void Deadline::set(uint64_t ms_from_now) {
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
