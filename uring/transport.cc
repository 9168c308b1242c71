#include "uring/transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "http/body_arena.h"

namespace edge::uring {

namespace {
void set_nodelay(int fd) {
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}
}  // namespace

UringTransport::~UringTransport() {
  if (fd_ >= 0) ::close(fd_);  // only a transport that never reached close()'s end
}

void UringTransport::submit(io_uring_sqe* sqe, Op op) {
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uintptr_t>(this) | op);
  ++ops_;
  ring_.op_started();
}

int UringTransport::accept(uv_stream_t* listener) {
  // libuv accepted the socket before its connection callback and keeps it there for
  // uv_accept(); taking it leaves the listener as uv_accept() would.
  int fd = listener->accepted_fd;
  if (fd < 0) return UV_EAGAIN;
  listener->accepted_fd = -1;
  fd_ = fd;
  set_nodelay(fd_);
  return 0;
}

int UringTransport::write(const uv_buf_t* bufs, unsigned count, WriteDone* done) {
  if (closing_) return UV_EINVAL;
  if (write_status_ < 0) return write_status_;
  if (shutdown_wanted_ || fd_ < 0) return UV_EPIPE;
  // Bytes of the body arena go out by sendfile(2) at once when nothing of ours is on the way, as
  // on epoll; what the socket does not take then is sent (copied) by the ring as any other.
  size_t sent_at_once = 0;
  if (!sending_now_ && queued_.empty() && sending_front_ == sending_.size() && http::any_in_arena(bufs, count)) {
    const ssize_t sent = http::send_now(fd_, bufs, count);
    if (sent < 0) return static_cast<int>(sent);
    sent_at_once = static_cast<size_t>(sent);
  }
  size_t total = 0;
  size_t skip = sent_at_once;
  for (unsigned i = 0; i < count; ++i) {
    if (skip >= bufs[i].len) {
      skip -= bufs[i].len;
      continue;
    }
    queued_.push_back({bufs[i].base + skip, bufs[i].len - skip});
    total += bufs[i].len - skip;
    skip = 0;
  }
  if (total == 0) return static_cast<int>(sent_at_once);
  accepted_ += total;
  if (done) {
    done_ = done;
    done_end_ = accepted_;
  }
  if (!sending_now_) send_next();
  return static_cast<int>(sent_at_once);
}

void UringTransport::send_next() {
  if (sending_front_ == sending_.size()) {
    sending_.clear();
    sending_front_ = 0;
    if (queued_.empty()) return maybe_shut_down();
    sending_.swap(queued_);
  }
  message_ = {};
  message_.msg_iov = sending_.data() + sending_front_;
  message_.msg_iovlen = std::min<size_t>(sending_.size() - sending_front_, IOV_MAX);
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_sendmsg(sqe, fd_, &message_, MSG_NOSIGNAL);
  submit(sqe, kSend);
  sending_now_ = true;
}

void UringTransport::on_send(int result) {
  sending_now_ = false;
  if (closing_) return;
  if (result <= 0) {
    // A stream socket that took nothing of a non-empty send is gone.
    write_status_ = result < 0 ? result : UV_EPIPE;
    sending_.clear();
    sending_front_ = 0;
    queued_.clear();
    sent_ = accepted_;  // nothing is queued any more
    return finish_write(write_status_);
  }
  sent_ += static_cast<uint64_t>(result);
  auto left = static_cast<size_t>(result);
  while (left > 0) {
    iovec& front = sending_[sending_front_];
    if (left < front.iov_len) {
      front.iov_base = static_cast<char*>(front.iov_base) + left;
      front.iov_len -= left;
      break;
    }
    left -= front.iov_len;
    ++sending_front_;
  }
  send_next();
  if (done_ && sent_ >= done_end_) finish_write(0);
}

void UringTransport::finish_write(int status) {
  WriteDone* done = done_;
  done_ = nullptr;
  if (done) done->on_written(status);
}

void UringTransport::maybe_shut_down() {
  if (!shutdown_wanted_ || shutdown_sent_ || closing_ || sending_now_ || !queued_.empty()) return;
  shutdown_sent_ = true;
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_shutdown(sqe, fd_, SHUT_WR);
  submit(sqe, kShutdown);
}

int UringTransport::shutdown() {
  if (closing_ || connected_ || fd_ < 0) return UV_EINVAL;
  if (shutdown_wanted_) return 0;
  shutdown_wanted_ = true;
  maybe_shut_down();
  return 0;
}

int UringTransport::read_start(Reader* reader) {
  if (closing_ || fd_ < 0) return UV_EINVAL;
  reader_ = reader;
  reading_ = true;
  if (!stash_.empty() || stash_end_ != 0) {
    defer();  // delivered from the loop, never from inside read_start()
  } else if (!recv_armed_ && !ended_) {
    arm_recv();
  }
  return 0;
}

void UringTransport::read_stop() {
  reading_ = false;
  if (!recv_armed_ || recv_cancelled_ || closing_) return;
  recv_cancelled_ = true;
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_cancel64(sqe, reinterpret_cast<uintptr_t>(this) | kRecv, 0);
  io_uring_sqe_set_data64(sqe, 0);
}

void UringTransport::arm_recv() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = Ring::kBufferGroup;
  submit(sqe, kRecv);
  recv_armed_ = true;
  recv_cancelled_ = false;
}

void UringTransport::on_recv(int result, uint32_t flags) {
  const bool more = (flags & IORING_CQE_F_MORE) != 0;
  if (!more) recv_armed_ = false;
  if (flags & IORING_CQE_F_BUFFER) {
    const unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
    if (result > 0 && !closing_) {
      const char* data = ring_.buffer(id);
      if (reading_ && stash_.empty()) {
        reader_->on_data(data, static_cast<size_t>(result));
      } else {
        stash_.append(data, static_cast<size_t>(result));
      }
    }
    ring_.recycle(id);
  }
  if (closing_ || ended_) return;
  if (result == 0) return end_reading(UV_EOF);
  if (result < 0 && result != -ENOBUFS && result != -ECANCELED) return end_reading(result);
  // The receive ended without the stream ending (no buffer was free, a read_stop()'s cancel, or
  // the kernel's own reasons): armed again if reading still goes on.
  if (!more && !recv_armed_ && reading_) arm_recv();
}

void UringTransport::end_reading(int status) {
  ended_ = true;
  if (reading_ && stash_.empty()) {
    reading_ = false;
    reader_->on_end(status);
  } else {
    stash_end_ = status;
  }
}

int UringTransport::connect(const sockaddr* address, Connected* done) {
  if (closing_ || fd_ >= 0) return UV_EINVAL;
  int fd = socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  fd_ = fd;
  set_nodelay(fd_);
  connect_address_ = std::make_unique<sockaddr_storage>();
  const socklen_t length = address->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  std::memcpy(connect_address_.get(), address, length);
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_connect(sqe, fd_, reinterpret_cast<const sockaddr*>(connect_address_.get()), length);
  submit(sqe, kConnect);
  connected_ = done;
  return 0;
}

void UringTransport::close(Closed* done) {
  closing_ = true;
  closed_ = done;
  reading_ = false;
  if (ops_ > 0) {
    // Bytes the kernel took stay sent; what waits (a receive, a send for room) ends now.
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_cancel_fd(sqe, fd_, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, 0);
  } else {
    defer();
  }
}

void UringTransport::defer() {
  if (deferred_) return;
  deferred_ = true;
  ring_.defer(this);
}

void UringTransport::completed(Op op, int result, uint32_t flags) {
  const bool last = op != kRecv || (flags & IORING_CQE_F_MORE) == 0;
  switch (op) {
    case kRecv: on_recv(result, flags); break;
    case kSend: on_send(result); break;
    case kConnect:
      connect_address_.reset();
      if (!closing_) {
        Connected* done = connected_;
        connected_ = nullptr;
        done->on_connected(result);
      }
      break;
    case kShutdown: break;
  }
  if (last) {
    --ops_;
    ring_.op_ended();
  }
  if (closing_ && ops_ == 0) defer();
}

void UringTransport::run_deferred() {
  if (closing_) {
    if (ops_ > 0) return;  // the last completion defers it again
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    finish_write(UV_ECANCELED);
    if (closed_) closed_->on_closed();  // may free this
    return;
  }
  if (!reading_) return;
  if (!stash_.empty()) {
    std::string data;
    data.swap(stash_);
    reader_->on_data(data.data(), data.size());
    if (closing_ || !reading_) {
      // Stopped inside: whatever follows waits for the next read_start().
      return;
    }
  }
  if (stash_end_ != 0) {
    const int status = stash_end_;
    stash_end_ = 0;
    reading_ = false;
    return reader_->on_end(status);
  }
  if (!recv_armed_ && !ended_) arm_recv();
}

int UringTransport::peer_address(sockaddr_storage* out) const {
  if (fd_ < 0) return UV_ENOTCONN;
  socklen_t length = sizeof *out;
  return getpeername(fd_, reinterpret_cast<sockaddr*>(out), &length) == 0 ? 0 : -errno;
}

}  // namespace edge::uring
