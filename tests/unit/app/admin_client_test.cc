#include "app/admin_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace edge::app;

namespace {

// A stand-in for the edge's admin port on the test's own loop: reads each request head, then
// answers with `answer` and closes ("" keeps the connection open without a word).
class FakeAdmin {
 public:
  FakeAdmin(uv_loop_t* loop, std::string answer) : loop_(loop), answer_(std::move(answer)) {
    uv_tcp_init(loop, &listener_);
    listener_.data = this;
    sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    REQUIRE(uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 16, &FakeAdmin::on_connection) == 0);
    int len = sizeof addr;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }

  // The handles live in this object: they must be closed and the loop run before it goes.
  ~FakeAdmin() {
    close();
    uv_run(loop_, UV_RUN_DEFAULT);
  }

  uint16_t port() const { return port_; }
  const std::vector<std::string>& requests() const { return requests_; }
  void close() {
    if (closed_) return;
    closed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    for (auto& c : connections_)
      if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->tcp))) uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), nullptr);
  }

 private:
  struct Conn {
    uv_tcp_t tcp;
    uv_write_t write;
    FakeAdmin* owner;
    std::string input;
    char buffer[4096];
  };

  static void on_connection(uv_stream_t* listener, int status) {
    auto* self = static_cast<FakeAdmin*>(listener->data);
    if (status < 0) return;
    auto conn = std::make_unique<Conn>();
    conn->owner = self;
    uv_tcp_init(listener->loop, &conn->tcp);
    conn->tcp.data = conn.get();
    conn->write.data = conn.get();
    if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&conn->tcp)) == 0)
      uv_read_start(reinterpret_cast<uv_stream_t*>(&conn->tcp), &FakeAdmin::on_alloc, &FakeAdmin::on_read);
    self->connections_.push_back(std::move(conn));
  }

  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(handle->data);
    *buf = uv_buf_init(c->buffer, sizeof c->buffer);
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(stream->data);
    if (nread < 0) {
      if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(stream))) uv_close(reinterpret_cast<uv_handle_t*>(stream), nullptr);
      return;
    }
    c->input.append(buf->base, static_cast<size_t>(nread));
    if (c->input.find("\r\n\r\n") == std::string::npos) return;
    uv_read_stop(stream);
    c->owner->requests_.push_back(c->input);
    if (c->owner->answer_.empty()) return;
    uv_buf_t out = uv_buf_init(c->owner->answer_.data(), static_cast<unsigned>(c->owner->answer_.size()));
    uv_write(&c->write, stream, &out, 1, [](uv_write_t* req, int) {
      auto* handle = reinterpret_cast<uv_handle_t*>(req->handle);
      if (!uv_is_closing(handle)) uv_close(handle, nullptr);
    });
  }

  uv_loop_t* loop_;
  uv_tcp_t listener_;
  bool closed_ = false;
  uint16_t port_ = 0;
  std::string answer_;
  std::vector<std::string> requests_;
  std::vector<std::unique_ptr<Conn>> connections_;
};

// A port on which nothing listens: connecting to it is refused.
uint16_t refused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct Loop {
  uv_loop_t loop;
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);  // every handle was closed and freed
  }
  // Runs until `done` is set (or nothing is left to run).
  void run_until(const std::optional<bool>& done) {
    while (!done && uv_run(&loop, UV_RUN_ONCE) != 0) {
    }
  }
};

constexpr char kOk[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"purged\":2}\n";
}  // namespace

TEST_CASE("purge_request: the documented request, the tag percent-encoded") {
  CHECK(purge_request("book-42", HostPort{"127.0.0.1", 9090}, "s3cret") ==
        "POST /purge?tag=book-42 HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nAuthorization: Bearer s3cret\r\n"
        "Content-Length: 0\r\nConnection: close\r\nUser-Agent: edge-app\r\n\r\n");
  CHECK(purge_request("a b&c/é", HostPort{"::1", 1}, "t").rfind("POST /purge?tag=a%20b%26c%2F%C3%A9 HTTP/1.1\r\nHost: [::1]:1\r\n", 0) == 0);
}

TEST_CASE("read_token_file: the content without surrounding white space") {
  const std::string path = "/tmp/edge-app-token-test-" + std::to_string(::getpid());
  std::string error;
  {
    std::ofstream(path) << "  demo-token\n";
  }
  CHECK(read_token_file(path, error) == "demo-token");
  {
    std::ofstream(path) << " \n\t";
  }
  CHECK_FALSE(read_token_file(path, error));
  CHECK(error.find("holds no token") != std::string::npos);
  std::remove(path.c_str());
  CHECK_FALSE(read_token_file(path, error));
  CHECK(error.find("cannot read") != std::string::npos);
}

TEST_CASE("admin client: a 2xx answer is a purge; the request is the documented one") {
  Loop l;
  FakeAdmin admin(&l.loop, kOk);
  AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "tok");
  std::optional<bool> done;
  const uint64_t ticket = client.purge_tag("book-7", [&](bool ok) { done = ok; });
  CHECK(ticket != 0);
  CHECK_FALSE(done);  // never from inside purge_tag()
  CHECK(client.in_flight() == 1);
  l.run_until(done);
  CHECK(done == true);
  CHECK(client.in_flight() == 0);
  REQUIRE(admin.requests().size() == 1);
  CHECK(admin.requests()[0] == purge_request("book-7", HostPort{"127.0.0.1", admin.port()}, "tok"));
  client.stop();
  admin.close();
}

TEST_CASE("admin client: a refusal, a wrong token, garbage and silence all end in done(false)") {
  Loop l;
  SUBCASE("connection refused") {
    AdminClient client(&l.loop, HostPort{"127.0.0.1", refused_port()}, "tok");
    std::optional<bool> done;
    client.purge_tag("book-1", [&](bool ok) { done = ok; });
    CHECK_FALSE(done);
    l.run_until(done);
    CHECK(done == false);
    client.stop();
  }
  SUBCASE("401") {
    FakeAdmin admin(&l.loop, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 25\r\n\r\n{\"error\":\"unauthorized\"}\n");
    AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "wrong");
    std::optional<bool> done;
    client.purge_tag("book-1", [&](bool ok) { done = ok; });
    l.run_until(done);
    CHECK(done == false);
    client.stop();
    admin.close();
  }
  SUBCASE("not HTTP") {
    FakeAdmin admin(&l.loop, "SSH-2.0-nope\r\n\r\n");
    AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "tok");
    std::optional<bool> done;
    client.purge_tag("book-1", [&](bool ok) { done = ok; });
    l.run_until(done);
    CHECK(done == false);
    client.stop();
    admin.close();
  }
  SUBCASE("no answer within the time-out") {
    FakeAdmin admin(&l.loop, "");
    AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "tok", 50);
    std::optional<bool> done;
    client.purge_tag("book-1", [&](bool ok) { done = ok; });
    l.run_until(done);
    CHECK(done == false);
    CHECK(admin.requests().size() == 1);
    client.stop();
    admin.close();
  }
}

TEST_CASE("admin client: a cancelled purge still reaches the admin port, but done is not called") {
  Loop l;
  FakeAdmin admin(&l.loop, kOk);
  AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "tok");
  bool called = false;
  std::optional<bool> other;
  const uint64_t ticket = client.purge_tag("book-1", [&](bool) { called = true; });
  client.purge_tag("book-2", [&](bool ok) { other = ok; });
  client.cancel(ticket);
  client.cancel(12345);  // unknown: ignored
  while (client.in_flight() > 0 && uv_run(&l.loop, UV_RUN_ONCE) != 0) {
  }
  CHECK_FALSE(called);
  CHECK(other == true);
  CHECK(admin.requests().size() == 2);
  client.stop();
  admin.close();
}

TEST_CASE("admin client: stop() ends the purges in flight without calling done, and refuses new ones") {
  Loop l;
  FakeAdmin admin(&l.loop, "");
  AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "tok");
  bool called = false;
  client.purge_tag("book-1", [&](bool) { called = true; });
  uv_run(&l.loop, UV_RUN_NOWAIT);
  client.stop();
  client.stop();
  CHECK(client.in_flight() == 0);
  CHECK(client.purge_tag("book-2", [&](bool) { called = true; }) == 0);
  admin.close();
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK_FALSE(called);
}
