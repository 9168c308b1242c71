// A TCP socket on 127.0.0.1 bound to a port the kernel chose, held as long as the object lives:
// listening (a server for the test to accept on), or not (connections to it are refused, and
// since the port stays bound no other test can take it meanwhile: a refusal that cannot race).
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <utility>

namespace edge::testing {

class LoopbackPort {
 public:
  enum class Mode { kListening, kRefusing };

  explicit LoopbackPort(Mode mode, int flags = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
    REQUIRE(fd_ >= 0);
    address_.sin_family = AF_INET;
    address_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address_), sizeof address_) == 0);
    if (mode == Mode::kListening) REQUIRE(::listen(fd_, 64) == 0);
    socklen_t length = sizeof address_;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address_), &length) == 0);
  }
  ~LoopbackPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  LoopbackPort(const LoopbackPort&) = delete;
  LoopbackPort& operator=(const LoopbackPort&) = delete;

  int fd() const { return fd_; }
  uint16_t port() const { return ntohs(address_.sin_port); }
  const sockaddr* address() const { return reinterpret_cast<const sockaddr*>(&address_); }
  // The socket is the caller's from now on (libuv's uv_tcp_open, a thread that closes it).
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
  sockaddr_in address_{};
};

}  // namespace edge::testing
