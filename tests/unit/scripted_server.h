// A scripted HTTP server on the test's own loop, on a loopback port the kernel chose: each
// connection reads a request head (recorded), then writes `answer` if there is one, then closes
// or holds the connection open. With When::kOnAccept it answers as soon as it accepts, reading
// nothing. It stands in for a peer's or edge's admin port and for any server a client under test
// talks to.
//
// The handles live in the object: its destructor closes them and runs the loop until they are
// (other servers may still listen on the same loop).
#pragma once

#include <doctest/doctest.h>
#include <uv.h>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

namespace edge::testing {

// A test's own loop. It ignores SIGPIPE (a peer that closes must give EPIPE, not end the test),
// and at the end runs what is left and checks every handle was closed.
struct TestLoop {
  uv_loop_t loop;
  TestLoop() {
    std::signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
  }
  ~TestLoop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }
  TestLoop(const TestLoop&) = delete;
  TestLoop& operator=(const TestLoop&) = delete;
  // Runs until `done` is set (or nothing is left to run).
  template <class Flag>
  void run_until(const Flag& done) {
    while (!done && uv_run(&loop, UV_RUN_ONCE) != 0) {
    }
  }
};

class ScriptedServer {
 public:
  enum class After { kClose, kHold };
  enum class When { kAfterRequest, kOnAccept };

  ScriptedServer(uv_loop_t* loop, std::string answer, After after = After::kClose,
                 When when = When::kAfterRequest)
      : loop_(loop), answer_(std::move(answer)), after_(after), when_(when) {
    uv_tcp_init(loop, &listener_);
    listener_.data = this;
    open_handles_ = 1;
    sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    REQUIRE(uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&any), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 16, &ScriptedServer::on_connection) == 0);
    int length = sizeof address_;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&address_), &length);
  }
  ~ScriptedServer() {
    close();
    while (open_handles_ > 0) uv_run(loop_, UV_RUN_NOWAIT);
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  const sockaddr* address() const { return reinterpret_cast<const sockaddr*>(&address_); }
  uint16_t port() const { return ntohs(address_.sin_port); }
  const std::vector<std::string>& requests() const { return requests_; }

  // Stops listening and closes every connection.
  void close() {
    if (closed_) return;
    closed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_),
             [](uv_handle_t* handle) noexcept { --static_cast<ScriptedServer*>(handle->data)->open_handles_; });
    for (auto& c : connections_) close_stream(reinterpret_cast<uv_stream_t*>(&c->tcp));
  }

 private:
  struct Conn {
    uv_tcp_t tcp;
    uv_write_t write;
    ScriptedServer* owner;
    std::string input;
    char buffer[4096];
  };

  static void close_stream(uv_stream_t* stream) {
    auto* handle = reinterpret_cast<uv_handle_t*>(stream);
    if (uv_is_closing(handle)) return;
    uv_close(handle, [](uv_handle_t* closed) noexcept { --static_cast<Conn*>(closed->data)->owner->open_handles_; });
  }

  static void on_connection(uv_stream_t* listener, int status) noexcept {
    auto* self = static_cast<ScriptedServer*>(listener->data);
    if (status < 0) return;
    auto conn = std::make_unique<Conn>();
    conn->owner = self;
    uv_tcp_init(listener->loop, &conn->tcp);
    ++self->open_handles_;
    conn->tcp.data = conn->write.data = conn.get();
    auto* stream = reinterpret_cast<uv_stream_t*>(&conn->tcp);
    Conn* accepted = conn.get();
    self->connections_.push_back(std::move(conn));
    if (uv_accept(listener, stream) != 0) return close_stream(stream);
    if (self->when_ == When::kOnAccept) return answer(accepted);
    uv_read_start(stream, &ScriptedServer::on_alloc, &ScriptedServer::on_read);
  }

  static void answer(Conn* c) {
    ScriptedServer* self = c->owner;
    auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
    if (self->answer_.empty()) {
      if (self->after_ == After::kClose) close_stream(stream);
      return;
    }
    uv_buf_t out = uv_buf_init(self->answer_.data(), static_cast<unsigned>(self->answer_.size()));
    uv_write(&c->write, stream, &out, 1, [](uv_write_t* req, int) noexcept {
      if (static_cast<Conn*>(req->data)->owner->after_ == After::kClose) close_stream(req->handle);
    });
  }

  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
    auto* c = static_cast<Conn*>(handle->data);
    *buf = uv_buf_init(c->buffer, sizeof c->buffer);
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
    auto* c = static_cast<Conn*>(stream->data);
    if (nread < 0) return close_stream(stream);
    c->input.append(buf->base, static_cast<size_t>(nread));
    if (c->input.find("\r\n\r\n") == std::string::npos) return;
    uv_read_stop(stream);
    c->owner->requests_.push_back(c->input);
    answer(c);
  }

  uv_loop_t* loop_;
  std::string answer_;
  After after_;
  When when_;
  uv_tcp_t listener_;
  sockaddr_in address_{};
  bool closed_ = false;
  int open_handles_ = 0;
  std::vector<std::string> requests_;
  std::vector<std::unique_ptr<Conn>> connections_;
};

}  // namespace edge::testing
