// proxy/loop_tasks: functions that other threads hand to a loop to run there (the memcached
// pool's answers come back this way).
//
// Contract: post() may be called from any thread, at any time, even after close() or after the
// LoopTasks is destroyed (through poster()); the task runs on the loop, in order of posting,
// unless the LoopTasks was closed first, in which case it is destroyed unrun on the posting
// thread. close() is called on the loop's thread before the loop ends; the handle is freed by its
// close callback.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace edge::proxy {

class LoopTasks {
 public:
  using Task = std::function<void()>;
  using Poster = std::function<void(Task)>;

  explicit LoopTasks(uv_loop_t* loop);
  ~LoopTasks() { close(); }
  LoopTasks(const LoopTasks&) = delete;
  LoopTasks& operator=(const LoopTasks&) = delete;

  void post(Task task) { post_to(state_, std::move(task)); }
  // A function that posts here and stays safe to call after this object is gone.
  Poster poster() const {
    return [state = state_](Task task) { post_to(state, std::move(task)); };
  }
  void close();

 private:
  struct State {
    std::mutex mutex;
    uv_async_t* async = nullptr;  // null once closed
    std::vector<Task> tasks;
  };
  static void post_to(const std::shared_ptr<State>& state, Task task);
  static void on_async(uv_async_t* async);

  std::shared_ptr<State> state_;
};

}  // namespace edge::proxy
