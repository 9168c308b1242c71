// The body arena: blocks of the shared memfd, given back with their pages, and send_now() over a
// loopback TCP connection (the arena's bytes by sendfile, the others by sendmsg, in order).
#include "http/body_arena.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <string>

#include "http/shared_body.h"

using edge::http::BodyArena;

namespace {

// A connected loopback pair: `out` non-blocking (as libuv's sockets are), `in` blocking.
struct SocketPair {
  int out = -1;
  int in = -1;
  SocketPair() {
    std::signal(SIGPIPE, SIG_IGN);  // as edge does: sendfile(2) cannot be told MSG_NOSIGNAL
    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    // Small buffers both ways (the accepted socket inherits the listener's), so a body fills them.
    const int small = 64 * 1024;
    ::setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    REQUIRE(::listen(listener, 1) == 0);
    out = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ::setsockopt(out, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    REQUIRE(::connect(out, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    in = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(in >= 0);
    ::close(listener);
    ::fcntl(out, F_SETFL, ::fcntl(out, F_GETFL) | O_NONBLOCK);
  }
  ~SocketPair() {
    if (out >= 0) ::close(out);
    if (in >= 0) ::close(in);
  }
  std::string read_exactly(size_t n) const {
    std::string got(n, '\0');
    size_t at = 0;
    while (at < n) {
      ssize_t r = ::read(in, got.data() + at, n - at);
      if (r <= 0) break;
      at += static_cast<size_t>(r);
    }
    got.resize(at);
    return got;
  }
};

std::string pattern(size_t n, int salt) {
  std::string text(n, '\0');
  for (size_t i = 0; i < n; ++i) text[i] = static_cast<char>('a' + (i * 7 + i / 4096 + salt) % 26);
  return text;
}

uv_buf_t buf(const char* data, size_t len) { return uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len)); }

}  // namespace

TEST_CASE("body arena: blocks in power-of-two classes, given back with their pages, reused") {
  BodyArena arena(uint64_t{1} << 30);
  REQUIRE(arena.usable());
  char* a = arena.allocate(100 * 1024);  // a 128 KB block
  char* b = arena.allocate(1);           // the smallest, 64 KB
  REQUIRE(a);
  REQUIRE(b);
  CHECK(arena.bytes_allocated() == 192 * 1024);
  CHECK(arena.offset_of(a) % 4096 == 0);
  CHECK(arena.offset_of(b) % 4096 == 0);
  CHECK(arena.contains(a, 100 * 1024));
  CHECK(arena.contains(b + 64 * 1024 - 1, 1));
  CHECK_FALSE(arena.contains(a, 0));
  std::string outside = "x";
  CHECK_FALSE(arena.contains(outside.data(), 1));
  CHECK_FALSE(arena.contains(a, (uint64_t{1} << 30) + 1));  // runs past the end

  std::memset(a, 'z', 100 * 1024);
  arena.release(a, 100 * 1024);
  CHECK(arena.bytes_allocated() == 64 * 1024);
  char* again = arena.allocate(128 * 1024);  // the same class: the same block, on fresh pages
  CHECK(again == a);
  CHECK(again[0] == 0);
  CHECK(again[100 * 1024 - 1] == 0);

  CHECK(arena.allocate(0) == nullptr);
  CHECK(arena.allocate(size_t{2} << 30) == nullptr);  // more than the whole reserve
  // The reserve runs out: null, for the heap to take over.
  char* half = arena.allocate(size_t{1} << 29);
  CHECK(half != nullptr);
  CHECK(arena.allocate(size_t{1} << 29) == nullptr);
  arena.release(half, size_t{1} << 29);
  arena.release(again, 128 * 1024);
  arena.release(b, 1);
  CHECK(arena.bytes_allocated() == 0);
}

TEST_CASE("body arena: a large shared body lies in it, a small one does not") {
  auto large = edge::http::SharedBody::from(pattern(1 << 20, 1));
  auto small = edge::http::SharedBody::from(pattern(1000, 2));
  edge::http::IoSlice slice;
  std::string scratch;
  REQUIRE(large->peek(0, &slice, 1, SIZE_MAX, scratch) == 1);
  CHECK(slice.len == size_t{1} << 20);
  CHECK(BodyArena::shared().contains(slice.data, slice.len));
  CHECK((large->to_string() == pattern(1 << 20, 1)));
  REQUIRE(small->peek(0, &slice, 1, SIZE_MAX, scratch) == 1);
  CHECK_FALSE(BodyArena::shared().contains(slice.data, slice.len));

  // A body of unknown length grows in blocks: the large ones come from the arena too.
  edge::http::SharedBody growing;
  const std::string text = pattern(3 << 20, 3);
  for (size_t at = 0; at < text.size(); at += 10000) growing.append(std::string_view(text).substr(at, 10000));
  growing.finish();
  CHECK((growing.to_string() == text));  // not printed: megabytes
}

TEST_CASE("body arena: send_now writes heap and arena bytes in order, and stops where the socket is full") {
  SocketPair pair;
  const std::string head = "HTTP/1.1 200 OK\r\ncontent-length: 2097152\r\n\r\n";
  auto body = edge::http::SharedBody::from(pattern(2 << 20, 4));
  edge::http::IoSlice slice;
  std::string scratch;
  REQUIRE(body->peek(0, &slice, 1, SIZE_MAX, scratch) == 1);
  REQUIRE(BodyArena::shared().contains(slice.data, slice.len));
  const std::string tail = "\r\n";
  uv_buf_t bufs[] = {buf(head.data(), head.size()), buf(slice.data, 1 << 20), buf(slice.data + (1 << 20), 1 << 20),
                     buf(tail.data(), tail.size())};
  CHECK(edge::http::any_in_arena(bufs, 4));
  CHECK_FALSE(edge::http::any_in_arena(bufs, 1));
  const size_t total = head.size() + (2 << 20) + tail.size();

  // Nobody reads: the socket takes a part and send_now stops there.
  size_t sent = 0;
  ssize_t n = edge::http::send_now(pair.out, bufs, 4);
  REQUIRE(n > 0);
  sent = static_cast<size_t>(n);
  CHECK(sent < total);
  // Full now: nothing more at once, and that is not an error.
  uv_buf_t rest[4];
  auto trimmed = [&](size_t skip, uv_buf_t* into) {
    unsigned count = 0;
    for (const uv_buf_t& b : bufs) {
      if (skip >= b.len) {
        skip -= b.len;
        continue;
      }
      into[count++] = buf(b.base + skip, b.len - skip);
      skip = 0;
    }
    return count;
  };
  unsigned left = trimmed(sent, rest);
  CHECK(edge::http::send_now(pair.out, rest, left) == 0);

  // The reader takes everything while the rest goes out.
  std::string received = pair.read_exactly(sent);
  while (sent < total) {
    left = trimmed(sent, rest);
    n = edge::http::send_now(pair.out, rest, left);
    REQUIRE(n >= 0);
    sent += static_cast<size_t>(n);
    if (n == 0) received += pair.read_exactly(1);  // make room
    char chunk[65536];
    ssize_t r;
    while ((r = ::recv(pair.in, chunk, sizeof chunk, MSG_DONTWAIT)) > 0) received.append(chunk, static_cast<size_t>(r));
  }
  received += pair.read_exactly(total - received.size());
  CHECK(received.size() == total);
  CHECK((received == head + pattern(2 << 20, 4) + tail));

  // A peer that is gone: an error, not a signal.
  ::close(pair.in);
  pair.in = -1;
  ssize_t failed = 0;
  for (int i = 0; i < 100 && failed >= 0; ++i) failed = edge::http::send_now(pair.out, bufs, 4);
  CHECK(failed < 0);
}
