// A scripted backend and a worker over it, run by the test's own thread: for unit tests of what
// runs on a worker's loop (fills, fetches, requests). Every step of a test waits for the next
// event on the loop, never for a clock.
#pragma once

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <uv.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "cache/policy.h"
#include "conf/config.h"
#include "proxy/fill.h"
#include "proxy/worker.h"
#include "tests/unit/loopback_port.h"

namespace edge::test_rig {

using proxy::Fill;

// What the backend does with the next request: answers `first`, then `rest` at once or when the
// test says so (send_rest), or resets the connection without a word.
struct Reply {
  std::string first;
  std::string rest;
  bool hold_rest = false;
  bool reset = false;
};

class FakeBackend {
 public:
  // Binds 127.0.0.1 on a port the kernel chooses, before there is a loop to serve it on.
  FakeBackend() : port_(testing::LoopbackPort::Mode::kListening, SOCK_NONBLOCK) {}

  uint16_t port() const { return port_.port(); }

  void serve_on(uv_loop_t* loop) {
    listener_ = new uv_tcp_t;
    uv_tcp_init(loop, listener_);
    uv_tcp_open(listener_, port_.release());
    listener_->data = this;
    uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 16, &FakeBackend::on_connection);
  }

  // Closes every handle; the caller runs the loop until they are freed.
  void close() {
    if (listener_) uv_close(reinterpret_cast<uv_handle_t*>(listener_), free_handle<uv_tcp_t>);
    listener_ = nullptr;
    for (Conn* conn : conns_) close_conn(conn);
    conns_.clear();
  }

  void script(Reply reply) { replies_.push_back(std::move(reply)); }
  void send_rest() {
    REQUIRE(held_);
    write(held_, std::move(held_rest_));
    held_ = nullptr;
  }
  int requests() const { return static_cast<int>(requests_.size()); }
  const std::string& request(int i) const { return requests_[static_cast<size_t>(i)]; }

 private:
  struct Conn {
    uv_tcp_t tcp;
    FakeBackend* backend;
    std::string received;
  };
  struct Write {
    uv_write_t request;
    std::string bytes;
  };

  template <class Handle>
  static void free_handle(uv_handle_t* handle) noexcept {
    delete reinterpret_cast<Handle*>(handle);
  }
  static void free_conn(uv_handle_t* handle) noexcept { delete static_cast<Conn*>(handle->data); }

  void close_conn(Conn* conn) {
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&conn->tcp)))
      uv_close(reinterpret_cast<uv_handle_t*>(&conn->tcp), free_conn);
  }

  static void on_connection(uv_stream_t* listener, int status) noexcept {
    if (status < 0) return;
    auto* backend = static_cast<FakeBackend*>(listener->data);
    auto* conn = new Conn{{}, backend, {}};
    uv_tcp_init(listener->loop, &conn->tcp);
    conn->tcp.data = conn;
    if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&conn->tcp)) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(&conn->tcp), free_conn);
      return;
    }
    backend->conns_.push_back(conn);
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&conn->tcp),
        [](uv_handle_t*, size_t, uv_buf_t* buf) noexcept {
          static char buffer[4096];
          *buf = uv_buf_init(buffer, sizeof buffer);
        },
        &FakeBackend::on_read);
  }

  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) noexcept {
    auto* conn = static_cast<Conn*>(stream->data);
    FakeBackend& backend = *conn->backend;
    if (n < 0) {
      std::erase(backend.conns_, conn);
      if (backend.held_ == conn) backend.held_ = nullptr;
      return backend.close_conn(conn);
    }
    conn->received.append(buf->base, static_cast<size_t>(n));
    size_t end = 0;
    while ((end = conn->received.find("\r\n\r\n")) != std::string::npos) {
      backend.requests_.push_back(conn->received.substr(0, end + 4));
      conn->received.erase(0, end + 4);
      if (backend.replies_.empty()) continue;
      Reply reply = std::move(backend.replies_.front());
      backend.replies_.pop_front();
      if (reply.reset) {
        std::erase(backend.conns_, conn);
        uv_tcp_close_reset(&conn->tcp, free_conn);
        return;
      }
      backend.write(conn, std::move(reply.first));
      if (reply.hold_rest) {
        backend.held_ = conn;
        backend.held_rest_ = std::move(reply.rest);
      } else if (!reply.rest.empty()) {
        backend.write(conn, std::move(reply.rest));
      }
    }
  }

  void write(Conn* conn, std::string bytes) {
    auto* w = new Write{{}, std::move(bytes)};
    uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
    if (uv_write(&w->request, reinterpret_cast<uv_stream_t*>(&conn->tcp), &buf, 1,
                 [](uv_write_t* request, int) noexcept { delete reinterpret_cast<Write*>(request); }) != 0)
      delete w;
  }

  testing::LoopbackPort port_;  // until serve_on() hands the socket to the loop
  uv_tcp_t* listener_ = nullptr;
  std::vector<Conn*> conns_;
  std::deque<Reply> replies_;
  std::vector<std::string> requests_;
  Conn* held_ = nullptr;
  std::string held_rest_;
};

// A worker (two, for a subscriber on another loop) over one backend, run by the test's thread.
struct Rig {
  FakeBackend backend;
  std::unique_ptr<proxy::Shared> shared;
  std::unique_ptr<proxy::Worker> worker;
  std::unique_ptr<proxy::Worker> other;
  uint64_t last_id = 1000;

  // `hosts`: the configuration's hosts section, whose entries use the backend `app`.
  // `servers_before`: servers listed ahead of the fake backend in `app` ("127.0.0.1:9, ").
  explicit Rig(const std::string& hosts = "hosts:\n  - match: [\"*\"]\n    backend: app\n",
               const std::string& servers_before = "") {
    const std::string yaml = "listen: [{address: 127.0.0.1:1}]\n"
                             "backends:\n"
                             "  app: {servers: [" + servers_before + "127.0.0.1:" + std::to_string(backend.port()) +
                             "], balance: round_robin}\n" + hosts;
    conf::LoadResult loaded = conf::load_string(yaml, "test.yaml");
    REQUIRE(loaded.errors.empty());
    shared = std::make_unique<proxy::Shared>(std::move(*loaded.config), tls::Contexts{});
    worker = std::make_unique<proxy::Worker>(*shared, 0);
    other = std::make_unique<proxy::Worker>(*shared, 1);
    backend.serve_on(worker->loop());
  }

  ~Rig() {
    backend.close();
    uv_run(worker->loop(), UV_RUN_NOWAIT);
    other.reset();
    worker.reset();
  }

  // Runs the worker's loop until `done` (each turn waits for the next event: no clock).
  template <class Done>
  void run_until(Done done, proxy::Worker* on = nullptr) {
    uv_loop_t* loop = (on ? on : worker.get())->loop();
    for (int turns = 0; !done() && turns < 10000; ++turns) uv_run(loop, UV_RUN_ONCE);
    REQUIRE(done());
  }

  Fill::Params params(const std::string& path, cache::ObjectRef stale = nullptr) {
    Fill::Params p;
    p.host = "test.example";
    p.key = cache::cache_key(p.host, path);
    p.host_index = 0;
    p.generation = shared->generation;
    p.policy = &shared->generation->config.hosts[0].cache;
    p.request.method = "GET";
    p.request.target = path;
    p.request.headers.add("Host", "test.example");
    p.backend = 0;
    p.upstream_head = "GET " + path + " HTTP/1.1\r\nHost: test.example\r\n\r\n";
    p.stale = std::move(stale);
    return p;
  }

  cache::ObjectRef stored(const std::string& path) {
    http::Headers none;
    return shared->store.lookup(cache::cache_key("test.example", path), none).object;
  }
  bool hit_for_pass(const std::string& path) {
    http::Headers none;
    return shared->store.lookup(cache::cache_key("test.example", path), none).hit_for_pass;
  }
};

// A fetch's owner that keeps what arrives: the status (or the failure's), the body, the end.
struct PassOwner final : proxy::Fetch::Owner {
  int status = 0;
  bool complete = false;
  std::string body;

  void on_fetch_response(proxy::Fetch& fetch, const http::ResponseHead& head, bool is_complete) override {
    status = head.status;
    http::Body& source = fetch.response_body();
    std::string scratch;
    http::IoSlice slices[16];
    int n = 0;
    while ((n = source.peek(body.size(), slices, 16, SIZE_MAX, scratch)) > 0)
      for (int i = 0; i < n; ++i) body.append(slices[i].data, slices[i].len);
    source.release_before(body.size());
    complete = is_complete;
    if (complete) fetch.finish();
  }
  void on_fetch_failed(proxy::Fetch& fetch, int failed) override {
    status = failed;
    fetch.finish();
  }
};

}  // namespace edge::test_rig
