#include "http/oneshot.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http/tcp_transport.h"
#include "tests/unit/loopback_port.h"
#include "tests/unit/scripted_server.h"

using namespace edge;
using http::OneShot;
using testing::LoopbackPort;
using testing::ScriptedServer;

using Loop = edge::testing::TestLoop;

namespace {

// What done saw, copied out of the borrowed Outcome.
struct Seen {
  int calls = 0;
  OneShot::Failure failure = OneShot::Failure::kNone;
  int uv_status = 0;
  std::string detail;
  bool started = false;
  int status = 0;
  std::string content_type;
  std::string body;

  OneShot::Done done() {
    return [this](const OneShot::Outcome& outcome) {
      ++calls;
      failure = outcome.failure;
      uv_status = outcome.uv_status;
      detail = outcome.detail;
      started = outcome.parser.started();
      status = outcome.parser.head().status;
      content_type = std::string(outcome.parser.head().headers.get("Content-Type").value_or(""));
      body = outcome.body.to_string();
    };
  }
};

// Starts one exchange, checks done did not come from inside start(), and runs the loop until it did.
Seen exchange(Loop& l, const sockaddr* address, OneShot::Options options = {},
              std::string request = http::simple_request("GET", "/x", "test")) {
  Seen seen;
  OneShot::start(&l.loop, address, std::move(request), options, seen.done());
  CHECK(seen.calls == 0);
  while (seen.calls == 0 && uv_run(&l.loop, UV_RUN_ONCE) != 0) {
  }
  CHECK(seen.calls == 1);
  return seen;
}

constexpr char kOk[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

}  // namespace

TEST_CASE("simple_request: the request line, Host, the extra lines and Connection: close") {
  CHECK(http::simple_request("GET", "/health", "a:1", "User-Agent: t\r\n") ==
        "GET /health HTTP/1.1\r\nHost: a:1\r\nUser-Agent: t\r\nConnection: close\r\n\r\n");
  CHECK(http::simple_request("POST", "/p", "h") == "POST /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
}

TEST_CASE("oneshot: a good answer, the request sent as it was given") {
  Loop l;
  ScriptedServer server(&l.loop, kOk);
  Seen seen = exchange(l, server.address(), {}, "GET /a HTTP/1.1\r\nHost: h\r\nX-Odd:  x \r\n\r\n");
  CHECK(seen.failure == OneShot::Failure::kNone);
  CHECK(seen.status == 200);
  CHECK(seen.content_type == "text/plain");
  CHECK(seen.body == "hello");
  REQUIRE(server.requests().size() == 1);
  CHECK(server.requests()[0] == "GET /a HTTP/1.1\r\nHost: h\r\nX-Odd:  x \r\n\r\n");
}

TEST_CASE("oneshot: a body delimited by the close is whole") {
  Loop l;
  ScriptedServer server(&l.loop, "HTTP/1.1 200 OK\r\n\r\nuntil the end");
  Seen seen = exchange(l, server.address());
  CHECK(seen.failure == OneShot::Failure::kNone);
  CHECK(seen.body == "until the end");
}

TEST_CASE("oneshot: waiting for the head only ends before the body") {
  Loop l;
  ScriptedServer server(&l.loop, "HTTP/1.1 503 Busy\r\nContent-Length: 100\r\n\r\n", ScriptedServer::After::kHold);
  OneShot::Options options;
  options.wait = OneShot::Wait::kHead;
  Seen seen = exchange(l, server.address(), options);
  CHECK(seen.failure == OneShot::Failure::kNone);
  CHECK(seen.status == 503);
}

TEST_CASE("oneshot: a HEAD request's answer has no body") {
  Loop l;
  ScriptedServer server(&l.loop, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", ScriptedServer::After::kHold);
  OneShot::Options options;
  options.head_request = true;
  Seen seen = exchange(l, server.address(), options, http::simple_request("HEAD", "/", "h"));
  CHECK(seen.failure == OneShot::Failure::kNone);
  CHECK(seen.body.empty());
}

TEST_CASE("oneshot: an answer that comes before the request is fully written is read") {
  Loop l;
  // The server answers after the head and closes with the body unread (a reset): the answer
  // counts, not the body the client could not finish writing.
  ScriptedServer server(&l.loop, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n");
  const std::string body(8 * 1024 * 1024, 'b');
  Seen seen = exchange(l, server.address(), {},
                       "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(body.size()) +
                           "\r\n\r\n" + body);
  CHECK(seen.failure == OneShot::Failure::kNone);
  CHECK(seen.status == 413);
}

TEST_CASE("oneshot: an answer sent before the server read anything is read") {
  Loop l;
  // The server answers and closes at once: the rest of the long request cannot be written, and
  // the answer that came first is what counts.
  ScriptedServer server(&l.loop, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", ScriptedServer::After::kClose, ScriptedServer::When::kOnAccept);
  Seen seen = exchange(l, server.address(), {}, "GET / HTTP/1.1\r\nX: " + std::string(8 * 1024 * 1024, 'x'));
  CHECK(seen.failure == OneShot::Failure::kNone);
  CHECK(seen.status == 400);
}

TEST_CASE("oneshot: a refused connection") {
  Loop l;
  LoopbackPort refused(LoopbackPort::Mode::kRefusing);
  Seen seen = exchange(l, refused.address());
  CHECK(seen.failure == OneShot::Failure::kConnect);
  CHECK(seen.uv_status == UV_ECONNREFUSED);
  CHECK(seen.detail == uv_strerror(UV_ECONNREFUSED));
  CHECK_FALSE(seen.started);
}

TEST_CASE("oneshot: an address that cannot be connected to fails later, not inside start()") {
  Loop l;
  sockaddr_storage nowhere{};  // AF_UNSPEC
  Seen seen = exchange(l, reinterpret_cast<const sockaddr*>(&nowhere));
  CHECK(seen.failure == OneShot::Failure::kConnect);
  CHECK(seen.uv_status == UV_EINVAL);
}

TEST_CASE("oneshot: a server that closes without answering") {
  Loop l;
  ScriptedServer server(&l.loop, "");
  Seen seen = exchange(l, server.address());
  CHECK(seen.failure == OneShot::Failure::kClosed);
  CHECK(seen.detail == std::string("closed before any response"));
  CHECK(server.requests().size() == 1);
}

TEST_CASE("oneshot: a server that closes in the middle of the body") {
  Loop l;
  ScriptedServer server(&l.loop, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  Seen seen = exchange(l, server.address());
  CHECK(seen.failure == OneShot::Failure::kTruncated);
  CHECK_FALSE(seen.detail.empty());
  CHECK(seen.status == 200);  // what came is there to see
  CHECK(seen.body == "abc");
}

TEST_CASE("oneshot: a server that sends garbage") {
  Loop l;
  ScriptedServer server(&l.loop, "SSH-2.0-nope\r\n\r\n");
  Seen seen = exchange(l, server.address());
  CHECK(seen.failure == OneShot::Failure::kBadResponse);
  CHECK_FALSE(seen.detail.empty());
}

TEST_CASE("oneshot: a server that never answers") {
  Loop l;
  ScriptedServer server(&l.loop, "", ScriptedServer::After::kHold);
  OneShot::Options options;
  options.timeout_ms = 30;
  Seen seen = exchange(l, server.address(), options);
  CHECK(seen.failure == OneShot::Failure::kTimeout);
  CHECK(server.requests().size() == 1);
}

TEST_CASE("oneshot: a body over the limit") {
  Loop l;
  ScriptedServer server(&l.loop, "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + std::string(70000, 'x'));
  OneShot::Options options;
  options.max_body_bytes = 1000;
  Seen seen = exchange(l, server.address(), options);
  CHECK(seen.failure == OneShot::Failure::kTooLarge);
  CHECK(seen.status == 200);
}

TEST_CASE("oneshot: a head over the limit is a bad response") {
  Loop l;
  ScriptedServer server(&l.loop, "HTTP/1.1 200 OK\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
  OneShot::Options options;
  options.max_head_bytes = 1000;
  Seen seen = exchange(l, server.address(), options);
  CHECK(seen.failure == OneShot::Failure::kBadResponse);
}

TEST_CASE("oneshot: the transport is the factory's when one is given; none made fails as a connect") {
  Loop l;
  ScriptedServer server(&l.loop, kOk);
  OneShot::Options options;
  int made = 0;
  const http::Transport* transport = nullptr;
  options.transport = [&](uv_loop_t* loop, uv_buf_t read_buffer) -> std::unique_ptr<http::Transport> {
    ++made;
    auto tcp = std::make_unique<http::TcpTransport>(loop, read_buffer);
    transport = tcp.get();
    return tcp;
  };
  Seen seen = exchange(l, server.address(), options);
  CHECK(made == 1);
  CHECK(seen.failure == OneShot::Failure::kNone);
  CHECK(seen.body == "hello");

  // The outcome lends the transport the factory made.
  const http::Transport* lent = nullptr;
  OneShot::start(&l.loop, server.address(), http::simple_request("GET", "/", "h"), options,
                 [&](const OneShot::Outcome& outcome) { lent = outcome.transport; });
  while (!lent && uv_run(&l.loop, UV_RUN_ONCE) != 0) {
  }
  CHECK(made == 2);
  CHECK(lent == transport);

  options.transport = [](uv_loop_t*, uv_buf_t) { return std::unique_ptr<http::Transport>(); };
  Seen none = exchange(l, server.address(), options);
  CHECK(none.failure == OneShot::Failure::kConnect);
  CHECK(none.uv_status == UV_ENOMEM);
}

TEST_CASE("oneshot: stop() abandons the exchange without calling done") {
  Loop l;
  ScriptedServer server(&l.loop, "", ScriptedServer::After::kHold);
  Seen seen;
  SUBCASE("at once") {
    OneShot::start(&l.loop, server.address(), http::simple_request("GET", "/", "h"), {}, seen.done())->stop();
  }
  SUBCASE("once the request has arrived") {
    OneShot* shot = OneShot::start(&l.loop, server.address(), http::simple_request("GET", "/", "h"), {}, seen.done());
    while (server.requests().empty() && uv_run(&l.loop, UV_RUN_ONCE) != 0) {
    }
    REQUIRE(server.requests().size() == 1);
    shot->stop();
  }
  SUBCASE("before a failure found inside start() is reported") {
    sockaddr_storage nowhere{};
    OneShot::start(&l.loop, reinterpret_cast<const sockaddr*>(&nowhere), "x", {}, seen.done())->stop();
  }
  server.close();
  uv_run(&l.loop, UV_RUN_DEFAULT);  // the loop ends: the exchange's handles are closed
  CHECK(seen.calls == 0);
}

TEST_CASE("oneshot: run() does one exchange on a loop of its own") {
  // A blocking server on a thread: accepts one connection, reads the head, answers, closes.
  LoopbackPort listener(LoopbackPort::Mode::kListening);
  std::thread server([&listener] {
    int fd = ::accept(listener.fd(), nullptr, nullptr);
    std::string input;
    char buffer[1024];
    while (input.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n <= 0) break;
      input.append(buffer, static_cast<size_t>(n));
    }
    ssize_t written = ::write(fd, kOk, sizeof kOk - 1);
    (void)written;
    ::close(fd);
  });
  Seen seen;
  OneShot::run(listener.address(), http::simple_request("GET", "/", "h"), {}, seen.done());
  server.join();
  CHECK(seen.calls == 1);
  CHECK(seen.failure == OneShot::Failure::kNone);
  CHECK(seen.body == "hello");
}
