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

// One per loop with open Deadlines; touched only on the loop's thread, found through a registry
// that only making and retiring a queue lock.
class DeadlineQueue {
 public:
  static DeadlineQueue* of(uv_loop_t* loop, bool make);

  uv_loop_t* loop() const { return timer_.loop; }
  void opened() { ++open_; }
  void closed(Deadline* d, Deadline::Callback completion);
  void place(Deadline* d, uint64_t at);
  bool stopped() const { return stopped_; }
  void stop_all();
  void release();
  bool owns(const uv_handle_t* handle) const { return handle == reinterpret_cast<const uv_handle_t*>(&timer_); }

 private:
  explicit DeadlineQueue(uv_loop_t* loop);
  struct Completion {
    Deadline::Callback callback;
    void* owner;
  };

  static void on_timer(uv_timer_t* timer) noexcept;
  void run();
  void schedule();
  void retire_if_unused();
  void unregister();
  void remove(Deadline* d);
  void sift_up(uint32_t i);
  void sift_down(uint32_t i);
  void put(uint32_t i, Deadline* d) {
    heap_[i] = d;
    d->heap_index_ = i;
  }

  uv_timer_t timer_;
  std::vector<Deadline*> heap_;  // a binary min-heap on fires_at_
  std::vector<Completion> completions_;
  size_t open_ = 0;         // Deadlines initialised here and not closed
  uint64_t timer_due_ = 0;  // what the timer is started for; 0: stopped
  bool running_ = false;
  bool stopped_ = false;
  bool timer_closed_ = false;  // uv_close() called on the timer
  bool timer_gone_ = false;    // and its callback ran
};

namespace {
std::mutex queues_mutex;
std::vector<DeadlineQueue*> queues;
// Bumped whenever a queue leaves the registry, so a thread's cached (loop, queue) pair is never
// trusted after its queue may have gone (a new loop can have the old one's address).
std::atomic<uint64_t> queues_generation{0};
thread_local uv_loop_t* cached_loop = nullptr;
thread_local DeadlineQueue* cached_queue = nullptr;
thread_local uint64_t cached_generation = 0;
}  // namespace

DeadlineQueue::DeadlineQueue(uv_loop_t* loop) {
  uv_timer_init(loop, &timer_);
  timer_.data = this;
}

DeadlineQueue* DeadlineQueue::of(uv_loop_t* loop, bool make) {
  uint64_t generation = queues_generation.load(std::memory_order_acquire);
  if (cached_loop == loop && cached_generation == generation) return cached_queue;
  std::lock_guard lock(queues_mutex);
  DeadlineQueue* found = nullptr;
  for (DeadlineQueue* queue : queues)
    if (queue->loop() == loop) found = queue;
  if (!found) {
    if (!make) return nullptr;
    found = new DeadlineQueue(loop);
    queues.push_back(found);
  }
  cached_loop = loop;
  cached_queue = found;
  cached_generation = queues_generation.load(std::memory_order_relaxed);
  return found;
}

void DeadlineQueue::unregister() {
  std::lock_guard lock(queues_mutex);
  std::erase(queues, this);
  queues_generation.fetch_add(1, std::memory_order_release);
}

void DeadlineQueue::closed(Deadline* d, Deadline::Callback completion) {
  if (d->fires_at_ != 0) remove(d);
  --open_;
  if (completion && !timer_closed_) completions_.push_back({completion, d->owner_});
  schedule();  // a timer left due for a closed Deadline would hold the loop open
  retire_if_unused();
}

void DeadlineQueue::place(Deadline* d, uint64_t at) {
  if (d->fires_at_ == 0) {
    d->fires_at_ = at;
    heap_.push_back(d);
    put(static_cast<uint32_t>(heap_.size() - 1), d);
  } else {
    d->fires_at_ = at;  // only ever earlier
  }
  sift_up(d->heap_index_);
  if (d->heap_index_ == 0) schedule();
}

void DeadlineQueue::remove(Deadline* d) {
  uint32_t i = d->heap_index_;
  d->fires_at_ = 0;
  Deadline* last = heap_.back();
  heap_.pop_back();
  if (last == d) return;
  put(i, last);
  sift_up(i);
  sift_down(last->heap_index_);
}

void DeadlineQueue::sift_up(uint32_t i) {
  Deadline* d = heap_[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (heap_[parent]->fires_at_ <= d->fires_at_) break;
    put(i, heap_[parent]);
    i = parent;
  }
  put(i, d);
}

void DeadlineQueue::sift_down(uint32_t i) {
  Deadline* d = heap_[i];
  const auto size = static_cast<uint32_t>(heap_.size());
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= size) break;
    if (child + 1 < size && heap_[child + 1]->fires_at_ < heap_[child]->fires_at_) ++child;
    if (heap_[child]->fires_at_ >= d->fires_at_) break;
    put(i, heap_[child]);
    i = child;
  }
  put(i, d);
}

void DeadlineQueue::schedule() {
  if (running_ || timer_closed_) return;
  uint64_t now = uv_now(timer_.loop);
  uint64_t due = !completions_.empty() ? now : heap_.empty() ? 0 : heap_[0]->fires_at_;
  if (due == timer_due_) return;
  timer_due_ = due;
  if (due == 0) {
    uv_timer_stop(&timer_);
    return;
  }
  uv_timer_start(&timer_, &DeadlineQueue::on_timer, due > now ? due - now : 0, 0);
}

void DeadlineQueue::on_timer(uv_timer_t* timer) noexcept { static_cast<DeadlineQueue*>(timer->data)->run(); }

void DeadlineQueue::run() {
  timer_due_ = 0;
  running_ = true;
  // Completions first: each may free an owner, and so close more Deadlines (added at the end).
  for (size_t i = 0; i < completions_.size(); ++i) {
    Completion completion = completions_[i];
    completion.callback(completion.owner);
  }
  completions_.clear();
  uint64_t now = uv_now(timer_.loop);
  while (!heap_.empty() && heap_[0]->fires_at_ <= now) {
    Deadline* d = heap_[0];
    remove(d);
    if (d->deadline_ == 0) continue;
    if (now < d->deadline_) {
      place(d, d->deadline_);  // moved later since it was placed
      continue;
    }
    d->deadline_ = 0;
    d->callback_(d->owner_);  // may set, close or free any Deadline here, this one too
  }
  running_ = false;
  schedule();
  retire_if_unused();
}

void DeadlineQueue::retire_if_unused() {
  if (open_ != 0 || !completions_.empty() || running_) return;
  if (!timer_closed_) {
    unregister();
    timer_closed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
             [](uv_handle_t* timer) noexcept { delete static_cast<DeadlineQueue*>(timer->data); });
  } else if (timer_gone_) {
    delete this;  // the last Deadline of a released queue
  }
}

void DeadlineQueue::stop_all() {
  stopped_ = true;
  for (Deadline* d : heap_) d->fires_at_ = 0;
  heap_.clear();
  schedule();
}

void DeadlineQueue::release() {
  unregister();
  timer_closed_ = true;
  completions_.clear();  // none: the loop ran to its end first
  // The queue stays while Deadlines point at it: the last one to close frees it.
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* timer) noexcept {
    auto* queue = static_cast<DeadlineQueue*>(timer->data);
    queue->timer_gone_ = true;
    if (queue->open_ == 0) delete queue;
  });
}

Deadline::~Deadline() { close(); }

void Deadline::init(uv_loop_t* loop, Callback callback, void* owner) {
  callback_ = callback;
  owner_ = owner;
  queue_ = DeadlineQueue::of(loop, true);
  queue_->opened();
  clock_ = ManualClock::of(loop);
  if (clock_) clock_->deadlines_.push_back(this);
}

uint64_t Deadline::now() const { return clock_ ? clock_->now() : uv_now(queue_->loop()); }

void Deadline::set(uint64_t ms_from_now) {
  if (!queue_) return;
  if (clock_) {
    deadline_ = std::max<uint64_t>(1, clock_->now() + ms_from_now);
    return;
  }
  deadline_ = uv_now(queue_->loop()) + ms_from_now;
  if (deadline_ == 0) deadline_ = 1;
  if ((fires_at_ == 0 || fires_at_ > deadline_) && !queue_->stopped()) queue_->place(this, deadline_);
}

void Deadline::close(Callback closed) {
  if (!queue_) return;
  if (clock_) std::erase(clock_->deadlines_, this);
  clock_ = nullptr;
  deadline_ = 0;
  DeadlineQueue* queue = queue_;
  queue_ = nullptr;
  queue->closed(this, closed);
}

bool Deadline::is_shared_timer(const uv_handle_t* handle) {
  DeadlineQueue* queue = DeadlineQueue::of(handle->loop, false);
  return queue && queue->owns(handle);
}

void Deadline::stop_all(uv_loop_t* loop) {
  if (DeadlineQueue* queue = DeadlineQueue::of(loop, false)) queue->stop_all();
}

void Deadline::release_loop(uv_loop_t* loop) {
  if (DeadlineQueue* queue = DeadlineQueue::of(loop, false)) queue->release();
}

}  // namespace edge::http
