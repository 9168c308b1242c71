// Backends that die, hang, lie or are slow, and clients that are slow: the edge answers 502/504
// where it must, never hangs, and never lets a slow client hold a backend.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {



// A listening socket that never accepts, with its backlog filled: connects to it hang.
struct BlackHole {
  int listener = -1;
  std::vector<int> fillers;
  uint16_t port = 0;
  BlackHole() {
    listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listener, 0) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    for (int i = 0; i < 4; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
      fillers.push_back(fd);
    }
  }
  ~BlackHole() {
    for (int fd : fillers) ::close(fd);
    ::close(listener);
  }
};
}  // namespace

TEST_CASE("a dead backend gives 503 at once; with a live one beside it nobody notices") {
  uint16_t dead = free_port();
  {
    Edge edge(single_backend_config(yaml_address(dead)));
    Response r = get(edge.port, "a", "/health");
    CHECK(r.status == 503);
    CHECK(r.header("Retry-After"));
    CHECK(r.body.find("503") != std::string::npos);
  }
  App app("live");
  Edge edge(single_backend_config(yaml_address(dead) + ", " + yaml_address(app.port)));
  for (int i = 0; i < 10; ++i) {
    Response r = get(edge.port, "a", "/health");
    CHECK(r.status == 200);
    CHECK(r.header("X-Backend") == std::string_view("live"));
  }
}

TEST_CASE("connect_timeout: a server that never accepts gives 503, or the next server") {
  BlackHole hole;
  {
    Edge edge(single_backend_config(yaml_address(hole.port), "connect_timeout: 300ms"));
    CHECK(get(edge.port, "a", "/health").status == 503);
  }
  App app("live");
  Edge edge(single_backend_config(yaml_address(hole.port) + ", " + yaml_address(app.port), "connect_timeout: 300ms"));
  for (int i = 0; i < 4; ++i) CHECK(get(edge.port, "a", "/health").status == 200);
}

TEST_CASE("response_timeout gives 504; a backend that closes early or sends garbage gives 502") {
  App app("app");
  Edge edge(single_backend_config(yaml_address(app.port), "response_timeout: 500ms"));
  CHECK(get(edge.port, "a", "/wait?ms=3000").status == 504);
  CHECK(get(edge.port, "a", "/close").status == 502);
  CHECK(get(edge.port, "a", "/garbage").status == 502);
  // A body cut short after its head was relayed: the client sees the connection end early.
  Client client(edge.port);
  client.send("GET /truncate HTTP/1.1\r\nHost: a\r\n\r\n");
  Response cut = client.read_response();
  CHECK_FALSE(cut.complete);
  // And the edge is fine afterwards.
  CHECK(get(edge.port, "a", "/health").status == 200);
}

TEST_CASE("a slow client reading a 2 MB response does not hold the backend") {
  App app("app");
  Edge edge(single_backend_config(yaml_address(app.port), "", "buffer_memory: 256k"));
  const size_t size = 2 * 1024 * 1024;
  Client client(edge.port);
  client.set_receive_buffer(16 * 1024);
  long served_before = app_stat(app.port, "served");
  client.send("GET /bytes?n=" + std::to_string(size) + " HTTP/1.1\r\nHost: a\r\n\r\n");
  std::string received = client.read_some(64 * 1024);
  REQUIRE_FALSE(received.empty());

  // The client has read almost nothing; the backend must be done already.
  bool backend_free = false;
  for (int i = 0; i < 50 && !backend_free; ++i) {
    // in_progress counts the /stats request asking it.
    backend_free = app_stat(app.port, "in_progress") == 1 && app_stat(app.port, "served") >= served_before + 2;
    if (!backend_free) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(backend_free);

  // Now read the rest at 64 KB per step, and check every byte.
  for (int step = 0; step < 3; ++step) {
    received += client.read_some(64 * 1024);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  size_t head_end = received.find("\r\n\r\n");
  REQUIRE(head_end != std::string::npos);
  std::string body = received.substr(head_end + 4);
  while (body.size() < size) {
    std::string more = client.read_some();
    REQUIRE_FALSE(more.empty());
    body += more;
  }
  REQUIRE(body.size() == size);
  bool pattern_ok = true;
  for (size_t i = 0; i < size; ++i)
    if (body[i] != static_cast<char>('a' + i % 26)) pattern_ok = false;
  CHECK(pattern_ok);
}

TEST_CASE("a slow upload is buffered at the edge and holds no backend while it dribbles in") {
  App app("app");
  Edge edge(single_backend_config(yaml_address(app.port), "", "buffer_memory: 16k"));
  long served_before = app_stat(app.port, "served");
  const size_t size = 100000;
  Client client(edge.port);
  client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n");
  std::string part(size / 10, 'u');
  for (int i = 0; i < 9; ++i) {
    client.send(part);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  // Nine tenths are in; the backend has seen nothing of it (only our /stats calls).
  CHECK(app_stat(app.port, "in_progress") == 1);  // the /stats request itself
  CHECK(app_stat(app.port, "served") == served_before + 2);
  client.send(part);
  Response r = client.read_response();
  CHECK(r.status == 200);
  CHECK(r.body.find("\"body_bytes\":" + std::to_string(size)) != std::string::npos);
}

TEST_CASE("kept-alive backend connections are reused, and a backend restart costs no request") {
  auto app = std::make_unique<App>("first");
  const uint16_t port = app->port;  // the second app binds it again
  Edge edge(single_backend_config(yaml_address(port)));
  Client client(edge.port);
  for (int i = 0; i < 5; ++i) {
    client.send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(client.read_response().status == 200);
  }
  app.reset();
  app = std::make_unique<App>("second", std::vector<std::string>{"--port", std::to_string(port)});
  // The pooled connections to the old process are dead; GETs are retried on a fresh one.
  for (int i = 0; i < 5; ++i) {
    client.send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.status == 200);
    CHECK(r.header("X-Backend") == std::string_view("second"));
  }
}

TEST_CASE("a pooled connection the backend drops is retried fresh for idempotent requests, body and all") {
  // The backend closes each connection when a second request arrives on it, unanswered.
  App app("dropper", {"--drop-after", "1"});
  Edge edge(single_backend_config(yaml_address(app.port), "", "buffer_memory: 16k"));
  Client client(edge.port);
  client.send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(client.read_response().status == 200);  // leaves one connection in the pool

  const std::string body(100000, 'p');
  client.send("PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + body);
  Response put = client.read_response();
  CHECK(put.status == 200);
  CHECK(put.body.find("\"body_bytes\":100000") != std::string::npos);

  // A POST may have reached the server: it is never sent twice. 502, and the client is told.
  client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
  CHECK(client.read_response().status == 502);
  client.send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(client.read_response().status == 200);
}
