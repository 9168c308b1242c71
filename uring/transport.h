// uring/transport: the Transport (http/transport.h) over a socket driven by a Ring
// (uring/ring.h) instead of libuv's epoll.
//
// The contract of http/transport.h holds; what differs is when bytes move:
// - write() never writes at once: it queues the caller's buffers (by pointer: the contract
//   keeps them valid) and returns 0. One send (sendmsg over every queued buffer) is in flight at
//   a time, so bytes never pass each other; the writes made while it flies go in the next one.
//   The SQE is submitted with every other the loop iteration made, before the loop blocks.
// - Reading is one multishot receive into the Ring's provided buffers, armed by read_start()
//   and kept until the stream ends. read_stop() cancels it; bytes that arrived meanwhile are
//   kept (copied) and delivered, in order, from the loop after the next read_start().
// - connect() makes a non-blocking socket (TCP_NODELAY) and connects it through the ring;
//   shutdown() half-closes once the queued bytes are sent.
// - close() cancels what is in flight (bytes already handed to the kernel stay sent), closes the
//   socket once the last completion came, then reports on_closed() from the loop.
//
// Ownership: owns its socket; borrows its Ring, which must outlive it. After close(), it must
// stay alive until on_closed().
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "http/transport.h"
#include "uring/ring.h"

namespace edge::uring {

class UringTransport final : public http::Transport {
 public:
  explicit UringTransport(Ring& ring) : ring_(ring) {}
  ~UringTransport() override;
  UringTransport(const UringTransport&) = delete;
  UringTransport& operator=(const UringTransport&) = delete;

  // Takes the connection libuv accepted for `listener` (inside its connection callback, where
  // uv_accept() would be called); TCP_NODELAY on. 0 or a negative libuv error (then only close()
  // remains).
  int accept(uv_stream_t* listener);

  int write(const uv_buf_t* bufs, unsigned count, WriteDone* done) override;
  size_t queued_bytes() const override { return static_cast<size_t>(accepted_ - sent_); }
  int read_start(Reader* reader) override;
  void read_stop() override;
  int connect(const sockaddr* address, Connected* done) override;
  int shutdown() override;
  void close(Closed* done) override;
  int peer_address(sockaddr_storage* out) const override;

 private:
  friend class Ring;
  enum Op : uintptr_t { kRecv = 1, kSend = 2, kConnect = 3, kShutdown = 4 };
  static constexpr uintptr_t kOpMask = 7;

  void completed(Op op, int result, uint32_t flags);
  void run_deferred();
  void on_recv(int result, uint32_t flags);
  void on_send(int result);
  void arm_recv();
  void send_next();
  void maybe_shut_down();
  void finish_write(int status);
  void end_reading(int status);
  void defer();
  void submit(io_uring_sqe* sqe, Op op);

  Ring& ring_;
  int fd_ = -1;
  Reader* reader_ = nullptr;
  Connected* connected_ = nullptr;
  Closed* closed_ = nullptr;
  WriteDone* done_ = nullptr;

  // Writing: the buffers of the send in flight (from sending_front_ on), and those written
  // since. Counts of bytes since the start: accepted by write(), sent; done_ waits for done_end_.
  std::vector<iovec> sending_;
  size_t sending_front_ = 0;
  std::vector<iovec> queued_;
  msghdr message_{};
  uint64_t accepted_ = 0;
  uint64_t sent_ = 0;
  uint64_t done_end_ = 0;
  int write_status_ = 0;  // the first send failure: every later write fails with it

  // Reading: bytes and the end that came while not reading, delivered after read_start().
  std::string stash_;
  int stash_end_ = 0;
  std::unique_ptr<sockaddr_storage> connect_address_;  // the connect's, valid while in flight
  unsigned ops_ = 0;  // operations whose last completion has not come
  bool reading_ = false;
  bool recv_armed_ = false;
  bool recv_cancelled_ = false;
  bool ended_ = false;  // the stream's end (or a failure) came: no receive is armed again
  bool sending_now_ = false;
  bool shutdown_wanted_ = false;
  bool shutdown_sent_ = false;
  bool closing_ = false;
  bool deferred_ = false;  // in the Ring's deferred list
};

}  // namespace edge::uring
