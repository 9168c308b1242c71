// The TCP transport's writes of body-arena bytes (sendfile, then a piece queued in libuv while
// the socket is full, then sendfile again): whole and in order through a reader that stops,
// with a write without a completion and a half-close behind them; and a close that cancels them.
#include "http/tcp_transport.h"

#include <doctest/doctest.h>

#include <csignal>
#include <functional>
#include <memory>
#include <string>

#include "http/body_arena.h"
#include "http/shared_body.h"

using edge::http::TcpTransport;
using edge::http::Transport;

namespace {

struct Peer final : Transport::Reader, Transport::Connected, Transport::Closed, edge::http::Output::WriteDone {
  std::unique_ptr<TcpTransport> transport;
  std::string received;
  int connected = 1;  // 1: not yet
  int ended = 1;
  int written = 1;
  int written_calls = 0;
  bool closed = false;
  std::function<void()> on_each;

  void on_data(const char* data, size_t len) override {
    received.append(data, len);
    if (on_each) on_each();
  }
  void on_end(int status) override { ended = status; }
  void on_connected(int status) override { connected = status; }
  void on_closed() override { closed = true; }
  void on_written(int status) override {
    written = status;
    ++written_calls;
  }
};

struct Fixture {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_timer_t guard;
  char read_space[65536];
  Peer server;
  Peer client;
  bool timed_out = false;

  Fixture() {
    std::signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &listener);
    listener.data = this;
    sockaddr_in address{};
    uv_ip4_addr("127.0.0.1", 0, &address);
    REQUIRE(uv_tcp_bind(&listener, reinterpret_cast<sockaddr*>(&address), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 8, [](uv_stream_t* stream, int status) noexcept {
              auto* self = static_cast<Fixture*>(stream->data);
              if (status < 0 || self->server.transport) return;
              self->server.transport = std::make_unique<TcpTransport>(stream->loop, self->buffer());
              if (self->server.transport->accept(stream) == 0) self->server.transport->read_start(&self->server);
            }) == 0);
    sockaddr_storage bound{};
    int length = sizeof bound;
    uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&bound), &length);
    uv_timer_init(&loop, &guard);
    guard.data = this;
    client.transport = std::make_unique<TcpTransport>(&loop, buffer());
    REQUIRE(client.transport->connect(reinterpret_cast<sockaddr*>(&bound), &client) == 0);
    run_until("connected and accepted", [&] { return client.connected != 1 && server.transport != nullptr; });
    REQUIRE(client.connected == 0);
  }

  ~Fixture() {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }

  uv_buf_t buffer() { return uv_buf_init(read_space, sizeof read_space); }

  void run_until(const char* what, const std::function<bool()>& done) {
    uv_timer_start(&guard, [](uv_timer_t* timer) noexcept { static_cast<Fixture*>(timer->data)->timed_out = true; },
                   20'000, 0);
    while (!done() && !timed_out) uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    const std::string message = std::string("the loop never got to: ") + what;
    REQUIRE_MESSAGE(!timed_out, message);
  }

  void close_both() {
    client.transport->close(&client);
    server.transport->close(&server);
    run_until("both closed", [&] { return client.closed && server.closed; });
  }
};

std::string pattern(size_t n) {
  std::string text(n, '\0');
  for (size_t i = 0; i < n; ++i) text[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return text;
}

uv_buf_t buf(const char* data, size_t len) { return uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len)); }

}  // namespace

TEST_CASE("tcp transport: arena bytes arrive whole and in order through a reader that stops, then the end") {
  Fixture f;
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n";
  const std::string text = pattern(8 << 20);
  auto body = edge::http::SharedBody::from(text);
  edge::http::IoSlice slice;
  std::string scratch;
  REQUIRE(body->peek(0, &slice, 1, SIZE_MAX, scratch) == 1);
  REQUIRE(edge::http::BodyArena::shared().contains(slice.data, slice.len));

  // The client stops reading after every second delivery and starts again from an idle handle.
  int deliveries = 0;
  uv_idle_t restart;
  uv_idle_init(&f.loop, &restart);
  restart.data = &f.client;
  f.client.on_each = [&] {
    if (++deliveries % 2 != 0) return;
    f.client.transport->read_stop();
    uv_idle_start(&restart, [](uv_idle_t* idle) noexcept {
      uv_idle_stop(idle);
      auto* peer = static_cast<Peer*>(idle->data);
      peer->transport->read_start(peer);
    });
  };
  REQUIRE(f.client.transport->read_start(&f.client) == 0);

  uv_buf_t out[] = {buf(head.data(), head.size()), buf(slice.data, slice.len)};
  const int at_once = f.server.transport->write(out, 2, &f.server);
  REQUIRE(at_once >= 0);
  CHECK(static_cast<size_t>(at_once) < head.size() + text.size());  // 8 MB never fit at once
  CHECK(f.server.transport->queued_bytes() == head.size() + text.size() - static_cast<size_t>(at_once));
  // Behind it: a write without a completion (a second one with a completion must wait), and the
  // half-close.
  static const char kTrailer[] = "trailer";
  uv_buf_t trailer = buf(kTrailer, sizeof kTrailer - 1);
  CHECK(f.server.transport->write(&trailer, 1, &f.server) == UV_EBUSY);
  CHECK(f.server.transport->write(&trailer, 1, nullptr) == 0);
  CHECK(f.server.transport->shutdown() == 0);

  f.run_until("the whole body and the end", [&] { return f.client.ended != 1 && f.server.written != 1; });
  CHECK(f.client.received.size() == head.size() + text.size() + trailer.len);
  CHECK((f.client.received == head + text + kTrailer));  // not printed: megabytes
  CHECK(f.client.ended == UV_EOF);
  CHECK(f.server.written == 0);
  CHECK(f.server.written_calls == 1);
  CHECK(f.server.transport->queued_bytes() == 0);
  CHECK(deliveries > 2);
  uv_close(reinterpret_cast<uv_handle_t*>(&restart), nullptr);
  f.close_both();
}

TEST_CASE("tcp transport: arena bytes that fit go at once with no completion; a close cancels those that wait") {
  Fixture f;
  auto small = edge::http::SharedBody::from(pattern(100 * 1024));
  edge::http::IoSlice slice;
  std::string scratch;
  REQUIRE(small->peek(0, &slice, 1, SIZE_MAX, scratch) == 1);
  REQUIRE(f.client.transport->read_start(&f.client) == 0);
  uv_buf_t out = buf(slice.data, slice.len);
  CHECK(f.server.transport->write(&out, 1, &f.server) == static_cast<int>(slice.len));
  f.run_until("the small body", [&] { return f.client.received.size() == slice.len; });
  CHECK((f.client.received == pattern(100 * 1024)));
  CHECK(f.server.written_calls == 0);

  // The client reads no more: 32 MB wait, and the close cancels them.
  f.client.transport->read_stop();
  auto large = edge::http::SharedBody::from(pattern(32 << 20));
  REQUIRE(large->peek(0, &slice, 1, SIZE_MAX, scratch) == 1);
  out = buf(slice.data, slice.len);
  const int at_once = f.server.transport->write(&out, 1, &f.server);
  REQUIRE(at_once >= 0);
  CHECK(static_cast<size_t>(at_once) < slice.len);
  f.server.transport->close(&f.server);
  f.run_until("the server closed", [&] { return f.server.closed; });
  CHECK(f.server.written == UV_ECANCELED);
  CHECK(f.server.written_calls == 1);
  f.client.transport->close(&f.client);
  f.run_until("the client closed", [&] { return f.client.closed; });
}
