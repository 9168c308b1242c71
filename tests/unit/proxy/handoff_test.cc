#include "proxy/handoff.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

using namespace edge::proxy::handoff;

TEST_CASE("handoff: a frame is a 4-byte big-endian length and the payload") {
  CHECK(frame("") == std::string(4, '\0'));
  CHECK(frame("ready") == std::string("\0\0\0\5ready", 9));
  const std::string big(300, 'x');
  CHECK(frame(big).substr(0, 4) == std::string("\0\0\1\x2c", 4));
}

TEST_CASE("handoff: the decoder cuts frames out of pieces of any size") {
  const std::vector<std::string> messages = {"takeover 1", "", "listen 127.0.0.1:8080", "end 1"};
  std::string stream;
  for (const std::string& m : messages) stream += frame(m);
  for (size_t piece = 1; piece <= stream.size(); ++piece) {
    Decoder decoder;
    std::vector<std::string> got;
    for (size_t at = 0; at < stream.size(); at += piece) {
      decoder.feed(std::string_view(stream).substr(at, piece));
      std::string message;
      while (decoder.next(message) == Decoder::Status::kMessage) got.push_back(message);
    }
    CHECK(got == messages);
    std::string rest;
    CHECK(decoder.next(rest) == Decoder::Status::kNeedMore);
  }
}

TEST_CASE("handoff: a length over the limit is refused") {
  Decoder decoder;
  const uint32_t n = kMaxMessage + 1;
  const char head[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                        static_cast<char>(n)};
  decoder.feed(std::string_view(head, 4));
  std::string message;
  CHECK(decoder.next(message) == Decoder::Status::kBad);
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  std::string error;
  CHECK_FALSE(send_message(fds[0], std::string(kMaxMessage + 1, 'x'), -1, error));
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("handoff: messages cross a socket pair, each with the descriptor it carries") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  std::string error;
  REQUIRE(send_message(pair[0], "listen 127.0.0.1:1", pipe_fds[1], error));
  REQUIRE(send_message(pair[0], "end 1", -1, error));
  std::string message;
  int fd = -1;
  REQUIRE(receive_message(pair[1], message, fd, error));
  CHECK(message == "listen 127.0.0.1:1");
  REQUIRE(fd >= 0);
  CHECK(fd != pipe_fds[1]);
  // The same pipe: what is written through the received descriptor comes out of the original.
  REQUIRE(::write(fd, "x", 1) == 1);
  char c = 0;
  REQUIRE(::read(pipe_fds[0], &c, 1) == 1);
  CHECK(c == 'x');
  CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  ::close(fd);
  REQUIRE(receive_message(pair[1], message, fd, error));
  CHECK(message == "end 1");
  CHECK(fd == -1);
  ::close(pair[0]);
  CHECK_FALSE(receive_message(pair[1], message, fd, error));
  CHECK(error == "the connection was closed");
  ::close(pair[1]);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}
