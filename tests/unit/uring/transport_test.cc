// The io_uring transport against itself over loopback sockets: bytes both ways and in order
// through partial sends and stopped reads, the peer's end, a refused connect, and a close that
// cancels a send the peer never takes.
#include "uring/transport.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>

#include "uring/ring.h"

using edge::http::Transport;
using edge::uring::Ring;
using edge::uring::UringTransport;

namespace {

struct Peer final : Transport::Reader, Transport::Connected, Transport::Closed, edge::http::Output::WriteDone {
  std::unique_ptr<UringTransport> transport;
  std::string received;
  int connected = 1;  // 1: not yet
  int ended = 1;      // 1: not yet
  int written = 1;    // 1: not yet
  int written_calls = 0;
  bool closed = false;
  bool inside_call = false;  // a completion must never come from inside our own call
  bool completion_inside_call = false;
  std::function<void()> on_each;

  void on_data(const char* data, size_t len) override {
    if (inside_call) completion_inside_call = true;
    received.append(data, len);
    if (on_each) on_each();
  }
  void on_end(int status) override { ended = status; }
  void on_connected(int status) override {
    if (inside_call) completion_inside_call = true;
    connected = status;
  }
  void on_closed() override {
    if (inside_call) completion_inside_call = true;
    closed = true;
  }
  void on_written(int status) override {
    if (inside_call) completion_inside_call = true;
    written = status;
    ++written_calls;
  }
  void close() {
    inside_call = true;
    transport->close(this);
    inside_call = false;
  }
};

// A loop with a ring, a libuv listener whose connections become UringTransports, and a guard
// timer that ends a run that would hang (a failure, never a measure).
struct Fixture {
  uv_loop_t loop;
  Ring* ring = nullptr;
  uv_tcp_t listener;
  uv_timer_t guard;
  int port = 0;
  Peer server;
  bool timed_out = false;

  Fixture() {
    uv_loop_init(&loop);
    std::string error;
    ring = Ring::create(&loop, &error);
    REQUIRE_MESSAGE(ring, error);
    uv_tcp_init(&loop, &listener);
    listener.data = this;
    sockaddr_in address{};
    uv_ip4_addr("127.0.0.1", 0, &address);
    REQUIRE(uv_tcp_bind(&listener, reinterpret_cast<sockaddr*>(&address), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 8, [](uv_stream_t* stream, int status) noexcept {
              auto* self = static_cast<Fixture*>(stream->data);
              if (status < 0 || self->server.transport) return;
              self->server.transport = std::make_unique<UringTransport>(*self->ring);
              if (self->server.transport->accept(stream) == 0) self->server.transport->read_start(&self->server);
            }) == 0);
    sockaddr_storage bound{};
    int length = sizeof bound;
    uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&bound), &length);
    port = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    uv_timer_init(&loop, &guard);
    guard.data = this;
  }

  ~Fixture() {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
    ring->close();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }

  void run_until(const char* what, const std::function<bool()>& done) {
    uv_timer_start(&guard, [](uv_timer_t* timer) noexcept { static_cast<Fixture*>(timer->data)->timed_out = true; },
                   20'000, 0);
    // Not UV_RUN_ONCE: the ring's completions are often handled before the loop would block, and
    // nothing would wake it to look at `done` again.
    while (!done() && !timed_out) uv_run(&loop, UV_RUN_NOWAIT);
    uv_timer_stop(&guard);
    const std::string message = std::string("the loop never got to: ") + what;
    REQUIRE_MESSAGE(!timed_out, message);
  }

  sockaddr_in address() const {
    sockaddr_in to{};
    uv_ip4_addr("127.0.0.1", port, &to);
    return to;
  }

  void connect(Peer& client) {
    client.transport = std::make_unique<UringTransport>(*ring);
    sockaddr_in to = address();
    client.inside_call = true;
    REQUIRE(client.transport->connect(reinterpret_cast<sockaddr*>(&to), &client) == 0);
    client.inside_call = false;
    run_until("connected and accepted", [&] { return client.connected != 1 && server.transport != nullptr; });
    REQUIRE(client.connected == 0);
  }
};

uv_buf_t buf(const std::string& text) { return uv_buf_init(const_cast<char*>(text.data()), static_cast<unsigned>(text.size())); }

}  // namespace

TEST_CASE("uring transport: bytes both ways, the peer's end after a shutdown, closes from the loop") {
  Fixture f;
  Peer client;
  f.connect(client);
  REQUIRE(client.transport->read_start(&client) == 0);

  const std::string request = "GET / HTTP/1.1\r\n\r\n";
  uv_buf_t out = buf(request);
  client.inside_call = true;
  CHECK(client.transport->write(&out, 1, &client) == 0);  // never at once: queued for the ring
  client.inside_call = false;
  CHECK(client.transport->queued_bytes() == request.size());
  f.run_until("the request and its completion", [&] { return f.server.received.size() == request.size() && client.written != 1; });
  CHECK(f.server.received == request);
  CHECK(client.written == 0);
  CHECK(client.transport->queued_bytes() == 0);

  sockaddr_storage peer{};
  REQUIRE(f.server.transport->peer_address(&peer) == 0);
  char text[64];
  uv_ip4_name(reinterpret_cast<sockaddr_in*>(&peer), text, sizeof text);
  CHECK(std::string(text) == "127.0.0.1");

  // Two writes, the second without a completion, then the half-close: all in order, then the end.
  const std::string head = "HTTP/1.1 200 OK\r\n";
  static const char kRest[] = "content-length: 0\r\n\r\n";
  uv_buf_t first = buf(head);
  uv_buf_t second = uv_buf_init(const_cast<char*>(kRest), sizeof kRest - 1);
  CHECK(f.server.transport->write(&first, 1, &f.server) == 0);
  CHECK(f.server.transport->write(&second, 1, nullptr) == 0);
  CHECK(f.server.transport->shutdown() == 0);
  CHECK(f.server.transport->write(&first, 1, nullptr) < 0);  // nothing after the end
  f.run_until("the answer and the end", [&] { return client.ended != 1; });
  CHECK(client.received == head + kRest);
  CHECK(client.ended == UV_EOF);
  CHECK(f.server.written == 0);

  client.close();
  f.server.close();
  CHECK_FALSE(client.closed);
  f.run_until("both closed", [&] { return client.closed && f.server.closed; });
  CHECK_FALSE(client.completion_inside_call);
  CHECK_FALSE(f.server.completion_inside_call);
}

TEST_CASE("uring transport: a body larger than the socket takes arrives whole and in order through stopped reads") {
  Fixture f;
  Peer client;
  f.connect(client);
  std::string body(8 * 1024 * 1024, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  // The reader stops after every third delivery and starts again from the loop: bytes that came
  // meanwhile must come next, and never from inside read_start().
  int deliveries = 0;
  uv_idle_t restart;
  uv_idle_init(&f.loop, &restart);
  restart.data = &client;
  client.on_each = [&] {
    if (++deliveries % 3 != 0) return;
    client.transport->read_stop();
    uv_idle_start(&restart, [](uv_idle_t* idle) noexcept {
      uv_idle_stop(idle);
      auto* peer = static_cast<Peer*>(idle->data);
      peer->inside_call = true;
      peer->transport->read_start(peer);
      peer->inside_call = false;
    });
  };
  REQUIRE(client.transport->read_start(&client) == 0);
  uv_buf_t out = buf(body);
  CHECK(f.server.transport->write(&out, 1, &f.server) == 0);
  f.run_until("the whole body", [&] { return client.received.size() >= body.size() && f.server.written != 1; });
  CHECK(client.received.size() == body.size());
  CHECK(client.received == body);
  CHECK(f.server.written == 0);
  CHECK(f.server.written_calls == 1);
  CHECK(deliveries > 3);
  CHECK_FALSE(client.completion_inside_call);
  uv_close(reinterpret_cast<uv_handle_t*>(&restart), nullptr);
  client.close();
  f.server.close();
  f.run_until("both closed", [&] { return client.closed && f.server.closed; });
}

TEST_CASE("uring transport: a close cancels a send the peer never takes, and a refused connect says so") {
  Fixture f;
  Peer client;
  f.connect(client);
  f.server.transport->read_stop();  // the server reads no more: 32 MB cannot all go out
  std::string body(32 * 1024 * 1024, 'x');
  uv_buf_t out = buf(body);
  CHECK(client.transport->write(&out, 1, &client) == 0);
  f.run_until("some bytes out", [&] { return client.transport->queued_bytes() < body.size(); });
  CHECK(client.transport->queued_bytes() > 0);
  client.close();
  f.run_until("the close", [&] { return client.closed; });
  CHECK(client.written == UV_ECANCELED);
  CHECK(client.written_calls == 1);
  CHECK_FALSE(client.completion_inside_call);
  REQUIRE(f.server.transport->read_start(&f.server) == 0);
  f.run_until("the server's end", [&] { return f.server.ended != 1; });
  CHECK(f.server.received.size() < body.size());
  f.server.close();
  f.run_until("the server closed", [&] { return f.server.closed; });

  // A socket bound and not listening: the connect is refused.
  int bound = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  uv_ip4_addr("127.0.0.1", 0, &to);
  REQUIRE(::bind(bound, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
  socklen_t length = sizeof to;
  REQUIRE(::getsockname(bound, reinterpret_cast<sockaddr*>(&to), &length) == 0);
  Peer refused;
  refused.transport = std::make_unique<UringTransport>(*f.ring);
  REQUIRE(refused.transport->connect(reinterpret_cast<sockaddr*>(&to), &refused) == 0);
  f.run_until("the refusal", [&] { return refused.connected != 1; });
  CHECK(refused.connected == UV_ECONNREFUSED);
  refused.close();
  f.run_until("the refused one closed", [&] { return refused.closed; });
  ::close(bound);
}
