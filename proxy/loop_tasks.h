// proxy/loop_tasks: a loop's one inbox from other threads. It carries two kinds of mail, in one
// queue, in order of posting:
//   - notes: a few words of typed news (a queued fetch's grant, a fill's event), handed to the
//     receiver's handler. They are the hot path, so they cost no allocation: a note is a plain
//     value, and the queue keeps its capacity from one wake-up to the next;
//   - tasks: functions to run on the loop (the memcached pool's answers, the admin's).
//
// Contract: post() may be called from any thread, at any time, even after close() or after the
// LoopTasks is destroyed (through poster()); the mail is delivered on the loop, in order of
// posting, unless the LoopTasks was closed first, in which case it is dropped on the posting
// thread (a task is destroyed unrun). The handler is called on the loop only, never after
// close(). close() is called on the loop's thread before the loop ends; the handle is freed by
// its close callback.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace edge::proxy {

class LoopTasks {
 public:
  using Task = std::function<void()>;
  using Poster = std::function<void(Task)>;

  // Typed news; what the fields mean is the receiver's business.
  struct Note {
    int kind = 0;
    int a = 0;
    int b = 0;
    uint64_t target = 0;
  };
  using NoteHandler = void (*)(void* receiver, const Note& note);

  // Notes go to `handler` (with `receiver`); without one, only tasks may be posted.
  explicit LoopTasks(uv_loop_t* loop, NoteHandler handler = nullptr, void* receiver = nullptr);
  ~LoopTasks() { close(); }
  LoopTasks(const LoopTasks&) = delete;
  LoopTasks& operator=(const LoopTasks&) = delete;

  void post(Task task) { post_to(state_, Mail{Note{}, std::move(task)}); }
  void post(const Note& note) { post_to(state_, Mail{note, nullptr}); }
  // A function that posts tasks here and stays safe to call after this object is gone.
  Poster poster() const {
    return [state = state_](Task task) { post_to(state, Mail{Note{}, std::move(task)}); };
  }
  void close();

 private:
  struct Mail {
    Note note;
    Task task;  // empty: a note
  };
  struct State {
    std::mutex mutex;
    uv_async_t* async = nullptr;  // null once closed
    std::vector<Mail> queue;
    std::vector<Mail> delivering;  // the loop's: what it is working through, kept for its capacity
    NoteHandler handler = nullptr;
    void* receiver = nullptr;
  };
  static void post_to(const std::shared_ptr<State>& state, Mail mail);
  static void on_async(uv_async_t* async) noexcept;

  std::shared_ptr<State> state_;
};

}  // namespace edge::proxy
