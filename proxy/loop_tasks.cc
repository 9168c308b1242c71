#include "proxy/loop_tasks.h"

namespace edge::proxy {

LoopTasks::LoopTasks(uv_loop_t* loop, NoteHandler handler, void* receiver) : state_(std::make_shared<State>()) {
  auto* async = new uv_async_t;
  uv_async_init(loop, async, &LoopTasks::on_async);
  // The handle keeps the state alive until its close callback: mail posted while the loop runs
  // its last iteration still finds it.
  async->data = new std::shared_ptr<State>(state_);
  state_->async = async;
  state_->handler = handler;
  state_->receiver = receiver;
}

void LoopTasks::post_to(const std::shared_ptr<State>& state, Mail mail) {
  std::unique_lock lock(state->mutex);
  if (!state->async) {
    lock.unlock();
    return;  // closed: `mail` is destroyed here, a task unrun
  }
  state->queue.push_back(std::move(mail));
  // The send stays under the lock: once close() has taken the handle, nobody touches it.
  if (state->queue.size() == 1) uv_async_send(state->async);
}

void LoopTasks::on_async(uv_async_t* async) noexcept {
  State& state = **static_cast<std::shared_ptr<State>*>(async->data);
  {
    // Swapped, not moved out: each vector keeps its capacity, so posting allocates nothing once
    // the queue has grown to its usual length.
    std::lock_guard lock(state.mutex);
    state.delivering.swap(state.queue);
  }
  for (Mail& mail : state.delivering) {
    if (mail.task)
      mail.task();
    else if (state.handler)
      state.handler(state.receiver, mail.note);
  }
  state.delivering.clear();
}

void LoopTasks::close() {
  uv_async_t* async = nullptr;
  std::vector<Mail> dropped;
  {
    std::lock_guard lock(state_->mutex);
    async = state_->async;
    state_->async = nullptr;
    state_->handler = nullptr;
    dropped.swap(state_->queue);
  }
  if (!async) return;
  uv_close(reinterpret_cast<uv_handle_t*>(async), [](uv_handle_t* handle) noexcept {
    delete static_cast<std::shared_ptr<State>*>(handle->data);
    delete reinterpret_cast<uv_async_t*>(handle);
  });
}

}  // namespace edge::proxy
