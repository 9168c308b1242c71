// uring/ring: one io_uring per loop, for the sockets of UringTransports (uring/transport.h).
//
// libuv stays the owner of the loop (timers, listeners, other handles); the ring meets it at two
// handles:
// - a uv_prepare_t, which runs right before the loop would block: it runs the transports'
//   deferred work, submits every SQE the iteration queued in one io_uring_enter, and reaps the
//   completions that submission produced at once (a send that fit in the socket buffer), again
//   until nothing is left (past a cap of rounds, an idle handle keeps the loop from blocking
//   and the rest goes on in the next iteration);
// - a uv_poll_t on the ring's descriptor, readable while completions wait (data received by a
//   multishot receive, a send that waited for room): the loop wakes and reaps them.
// So a loop iteration costs one epoll_wait and one io_uring_enter however many sockets it
// served, where the epoll path pays one read or write per socket and direction.
//
// Receives take their buffers from a ring of provided buffers (one group, registered with the
// kernel): a delivery borrows one buffer for the Reader's call, and it goes back at once.
//
// Ownership: made by create() (null when the kernel refuses io_uring, with the reason), owned
// by the loop's owner until close(), which closes the two handles; the Ring frees itself once
// both closed. Transports must not be used after their Ring's close(). All calls on the loop's
// thread.
#pragma once

#include <liburing.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace edge::uring {

class UringTransport;

class Ring {
 public:
  static constexpr unsigned kEntries = 1024;
  static constexpr unsigned kBufferCount = 256;  // a power of two, as the kernel requires
  static constexpr unsigned kBufferSize = 16 * 1024;

  static Ring* create(uv_loop_t* loop, std::string* error);
  void close();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  uv_loop_t* loop() const { return loop_; }
  // For the loop's teardown: the ring still works, but no longer holds the loop open, so that
  // the sockets of owners the teardown leaked (an idle connection's receive) cannot keep it
  // running; the closes under way still finish in the turns the rest of the loop runs.
  void stop_holding_loop() {
    holding_loop_ = false;
    update_ref();
  }
  bool owns(const uv_handle_t* handle) const {
    return handle == reinterpret_cast<const uv_handle_t*>(&prepare_) ||
           handle == reinterpret_cast<const uv_handle_t*>(&idle_) ||
           handle == reinterpret_cast<const uv_handle_t*>(&poll_);
  }

  // For transports: an SQE to fill (never null: a full submission queue is submitted first);
  // its user_data is the transport and an operation's tag.
  io_uring_sqe* sqe();
  static constexpr uint16_t kBufferGroup = 0;
  // Runs transport->run_deferred() before the loop next blocks (once per call).
  void defer(UringTransport* transport);
  // An operation whose completion will come started, or its last completion came: the loop
  // stays alive while any is in flight.
  void op_started();
  void op_ended();

 private:
  friend class UringTransport;
  explicit Ring(uv_loop_t* loop);
  ~Ring();
  int init(std::string* error);

  const char* buffer(unsigned id) const { return buffers_.get() + static_cast<size_t>(id) * kBufferSize; }
  void recycle(unsigned id);
  void flush();
  bool reap();
  void update_ref();
  static constexpr int kMaxRounds = 64;
  static void on_prepare(uv_prepare_t* prepare) noexcept;
  static void on_idle(uv_idle_t* idle) noexcept;
  static void on_poll(uv_poll_t* poll, int status, int events) noexcept;
  static void on_handle_closed(uv_handle_t* handle) noexcept;

  uv_loop_t* loop_;
  io_uring ring_{};
  bool ring_ready_ = false;
  uv_prepare_t prepare_;
  uv_idle_t idle_;  // started only when a flush stopped at its round cap
  uv_poll_t poll_;
  int open_handles_ = 0;
  io_uring_buf_ring* buffer_ring_ = nullptr;
  size_t buffer_ring_bytes_ = 0;
  std::unique_ptr<char[]> buffers_;
  std::vector<UringTransport*> deferred_;
  std::vector<UringTransport*> running_;  // the deferred work of the round running (reused)
  size_t ops_in_flight_ = 0;
  bool flushing_ = false;
  bool holding_loop_ = true;
  bool closing_ = false;
};

}  // namespace edge::uring
