#include "proxy/loop_tasks.h"

namespace edge::proxy {

LoopTasks::LoopTasks(uv_loop_t* loop) : state_(std::make_shared<State>()) {
  auto* async = new uv_async_t;
  uv_async_init(loop, async, &LoopTasks::on_async);
  // The handle keeps the state alive until its close callback: a task posted while the loop
  // runs its last iteration still finds it.
  async->data = new std::shared_ptr<State>(state_);
  state_->async = async;
}

void LoopTasks::post_to(const std::shared_ptr<State>& state, Task task) {
  std::unique_lock lock(state->mutex);
  if (!state->async) {
    lock.unlock();
    return;  // closed: `task` is destroyed here, unrun
  }
  state->tasks.push_back(std::move(task));
  if (state->tasks.size() == 1) uv_async_send(state->async);
}

void LoopTasks::on_async(uv_async_t* async) {
  auto& state = *static_cast<std::shared_ptr<State>*>(async->data);
  std::vector<Task> tasks;
  {
    std::lock_guard lock(state->mutex);
    tasks.swap(state->tasks);
  }
  for (Task& task : tasks) task();
}

void LoopTasks::close() {
  uv_async_t* async = nullptr;
  std::vector<Task> dropped;
  {
    std::lock_guard lock(state_->mutex);
    async = state_->async;
    state_->async = nullptr;
    dropped.swap(state_->tasks);
  }
  if (!async) return;
  uv_close(reinterpret_cast<uv_handle_t*>(async), [](uv_handle_t* handle) {
    delete static_cast<std::shared_ptr<State>*>(handle->data);
    delete reinterpret_cast<uv_async_t*>(handle);
  });
}

}  // namespace edge::proxy
