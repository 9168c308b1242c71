#include "uring/ring.h"

#include <sys/mman.h>

#include <cstring>

#include "uring/transport.h"

namespace edge::uring {

Ring::Ring(uv_loop_t* loop) : loop_(loop) {}

Ring::~Ring() {
  if (buffer_ring_) {
    io_uring_unregister_buf_ring(&ring_, kBufferGroup);
    munmap(buffer_ring_, buffer_ring_bytes_);
  }
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

Ring* Ring::create(uv_loop_t* loop, std::string* error) {
  auto* ring = new Ring(loop);
  if (ring->init(error) != 0) {
    if (ring->open_handles_ == 0) {
      delete ring;
    } else {
      ring->close();
    }
    return nullptr;
  }
  return ring;
}

int Ring::init(std::string* error) {
  // Completions' kernel work (a receive's copy, a send's retry) runs when the loop enters the
  // kernel anyway, not in an interrupt of whatever the worker is doing: without this, every
  // packet's arrival interrupts the worker and takes the socket's lock while the sender's
  // side still holds it.
  io_uring_params params{};
  params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
  int rc = io_uring_queue_init_params(kEntries, &ring_, &params);
  if (rc == -EINVAL) {
    params = {};  // a kernel before 5.19: the interrupts stay
    rc = io_uring_queue_init_params(kEntries, &ring_, &params);
  }
  if (rc < 0) {
    *error = std::string("io_uring_setup: ") + strerror(-rc);
    return rc;
  }
  ring_ready_ = true;
  if (!(params.features & IORING_FEAT_NODROP) || !(params.features & IORING_FEAT_FAST_POLL)) {
    *error = "io_uring lacks completion overflow or fast poll (kernel before 5.7)";
    return -EINVAL;
  }
  buffer_ring_bytes_ = kBufferCount * sizeof(io_uring_buf);
  void* mapped = mmap(nullptr, buffer_ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mapped == MAP_FAILED) {
    *error = std::string("mmap for the buffer ring: ") + strerror(errno);
    return -errno;
  }
  buffer_ring_ = static_cast<io_uring_buf_ring*>(mapped);
  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<uint64_t>(buffer_ring_);
  registration.ring_entries = kBufferCount;
  registration.bgid = kBufferGroup;
  rc = io_uring_register_buf_ring(&ring_, &registration, 0);
  if (rc < 0) {
    munmap(buffer_ring_, buffer_ring_bytes_);
    buffer_ring_ = nullptr;
    *error = std::string("registering provided buffers (kernel before 5.19?): ") + strerror(-rc);
    return rc;
  }
  // Not value-initialised: a page costs memory only once a receive has used it.
  buffers_.reset(new char[static_cast<size_t>(kBufferCount) * kBufferSize]);
  io_uring_buf_ring_init(buffer_ring_);
  for (unsigned id = 0; id < kBufferCount; ++id)
    io_uring_buf_ring_add(buffer_ring_, buffers_.get() + static_cast<size_t>(id) * kBufferSize, kBufferSize,
                          static_cast<unsigned short>(id), io_uring_buf_ring_mask(kBufferCount), static_cast<int>(id));
  io_uring_buf_ring_advance(buffer_ring_, static_cast<int>(kBufferCount));

  uv_prepare_init(loop_, &prepare_);
  prepare_.data = this;
  ++open_handles_;
  uv_idle_init(loop_, &idle_);
  idle_.data = this;
  ++open_handles_;
  uv_prepare_start(&prepare_, &Ring::on_prepare);
  uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));
  rc = uv_poll_init(loop_, &poll_, ring_.ring_fd);
  if (rc < 0) {
    *error = std::string("watching the ring: ") + uv_strerror(rc);
    return rc;
  }
  poll_.data = this;
  ++open_handles_;
  uv_poll_start(&poll_, UV_READABLE, &Ring::on_poll);
  uv_unref(reinterpret_cast<uv_handle_t*>(&poll_));
  return 0;
}

void Ring::close() {
  closing_ = true;
  // Nothing is submitted or dispatched any more; the kernel cancels what is in flight when the
  // ring goes.
  deferred_.clear();
  // The handles are made in this order (init() may have stopped between).
  const int made = open_handles_;
  if (made >= 1) uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), &Ring::on_handle_closed);
  if (made >= 2) uv_close(reinterpret_cast<uv_handle_t*>(&idle_), &Ring::on_handle_closed);
  if (made >= 3) uv_close(reinterpret_cast<uv_handle_t*>(&poll_), &Ring::on_handle_closed);
}

void Ring::on_handle_closed(uv_handle_t* handle) noexcept {
  auto* ring = static_cast<Ring*>(handle->data);
  if (--ring->open_handles_ == 0) delete ring;
}

io_uring_sqe* Ring::sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (!sqe) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void Ring::defer(UringTransport* transport) {
  deferred_.push_back(transport);
  update_ref();
}

void Ring::op_started() {
  if (ops_in_flight_++ == 0) update_ref();
}

void Ring::op_ended() {
  if (--ops_in_flight_ == 0) update_ref();
}

void Ring::update_ref() {
  if (closing_) return;
  // The poll handle holds the loop open while completions are to come, the prepare handle while
  // deferred work waits for it.
  auto* poll = reinterpret_cast<uv_handle_t*>(&poll_);
  auto* prepare = reinterpret_cast<uv_handle_t*>(&prepare_);
  if (ops_in_flight_ > 0 && holding_loop_) {
    uv_ref(poll);
  } else {
    uv_unref(poll);
  }
  if (!deferred_.empty() && holding_loop_) {
    uv_ref(prepare);
  } else {
    uv_unref(prepare);
  }
}

void Ring::recycle(unsigned id) {
  // Given back at once: a buffer kept for a batch could starve a receive in the same batch.
  io_uring_buf_ring_add(buffer_ring_, buffers_.get() + static_cast<size_t>(id) * kBufferSize, kBufferSize,
                        static_cast<unsigned short>(id), io_uring_buf_ring_mask(kBufferCount), 0);
  io_uring_buf_ring_advance(buffer_ring_, 1);
}

void Ring::on_prepare(uv_prepare_t* prepare) noexcept { static_cast<Ring*>(prepare->data)->flush(); }

void Ring::on_poll(uv_poll_t* poll, int, int) noexcept {
  auto* ring = static_cast<Ring*>(poll->data);
  ring->reap();
  // What the completions queued goes out now, not after the next wait.
  ring->flush();
}

void Ring::flush() {
  if (flushing_ || closing_) return;
  flushing_ = true;
  // Deferred work and completions can each make more of the other: rounds until neither has
  // any. The loop must not block with an SQE unsubmitted or deferred work waiting, so a round
  // cap (against a chain that would starve the loop's other handles) submits what is queued and
  // leaves the rest to the idle handle, which keeps the loop from blocking.
  for (int round = 0; !closing_; ++round) {
    running_.swap(deferred_);
    for (UringTransport* transport : running_) {
      transport->deferred_ = false;
      transport->run_deferred();  // may free it: it is not touched again
      if (closing_) break;
    }
    running_.clear();
    if (closing_) break;
    io_uring_submit(&ring_);  // no system call when nothing is queued and no kernel work waits
    const bool reaped = reap();
    if (!reaped && deferred_.empty()) break;
    if (round == kMaxRounds) {
      if (io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
      if (!deferred_.empty()) uv_idle_start(&idle_, &Ring::on_idle);
      break;
    }
  }
  flushing_ = false;
  update_ref();
}

void Ring::on_idle(uv_idle_t* idle) noexcept {
  uv_idle_stop(idle);
  static_cast<Ring*>(idle->data)->flush();
}

bool Ring::reap() {
  bool any = false;
  // A few at a time, copied out first: a completion's handler may submit, and the kernel work
  // that runs then can add completions behind these.
  struct Completion {
    uint64_t user_data;
    int result;
    uint32_t flags;
  };
  Completion batch[64];
  for (;;) {
    unsigned count = 0;
    io_uring_cqe* cqe;
    unsigned head;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      batch[count++] = {cqe->user_data, cqe->res, cqe->flags};
      if (count == sizeof batch / sizeof batch[0]) break;
    }
    if (count == 0) return any;
    io_uring_cq_advance(&ring_, count);
    any = true;
    for (unsigned i = 0; i < count && !closing_; ++i) {
      const Completion& c = batch[i];
      if (c.user_data == 0) continue;  // a cancel's own completion
      auto* transport = reinterpret_cast<UringTransport*>(c.user_data & ~UringTransport::kOpMask);
      transport->completed(static_cast<UringTransport::Op>(c.user_data & UringTransport::kOpMask), c.result, c.flags);
    }
    if (closing_) return any;
  }
}

}  // namespace edge::uring
