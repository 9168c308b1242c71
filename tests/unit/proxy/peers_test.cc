#include "proxy/peers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace edge;
using proxy::PeerNotifier;

namespace {

// A stand-in for a peer's admin port on the test's own loop. Each connection reads a request
// head, then does as `behaviour` says.
class FakePeer {
 public:
  enum class Behaviour { kAnswer, kClose, kSilent };

  FakePeer(uv_loop_t* loop, Behaviour behaviour, std::string answer = {})
      : loop_(loop), behaviour_(behaviour), answer_(std::move(answer)) {
    uv_tcp_init(loop, &listener_);
    listener_.data = this;
    open_handles_ = 1;
    sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    REQUIRE(uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 16, &FakePeer::on_connection) == 0);
    int len = sizeof addr;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }

  // The handles live in this object: they are closed before it goes. Other servers may still be
  // listening on the loop, so it runs only until this one's handles are closed.
  ~FakePeer() {
    close();
    while (open_handles_ > 0) uv_run(loop_, UV_RUN_NOWAIT);
  }

  uint16_t port() const { return port_; }
  const std::vector<std::string>& requests() const { return requests_; }

  void close() {
    if (closed_) return;
    closed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), [](uv_handle_t* handle) {
      --static_cast<FakePeer*>(handle->data)->open_handles_;
    });
    for (auto& c : connections_) close_stream(reinterpret_cast<uv_stream_t*>(&c->tcp));
  }

 private:
  struct Conn {
    uv_tcp_t tcp;
    uv_write_t write;
    FakePeer* owner;
    std::string input;
    char buffer[4096];
  };

  static void close_stream(uv_stream_t* stream) {
    auto* handle = reinterpret_cast<uv_handle_t*>(stream);
    if (uv_is_closing(handle)) return;
    uv_close(handle, [](uv_handle_t* closed) { --static_cast<Conn*>(closed->data)->owner->open_handles_; });
  }

  static void on_connection(uv_stream_t* listener, int status) {
    auto* self = static_cast<FakePeer*>(listener->data);
    if (status < 0) return;
    auto conn = std::make_unique<Conn>();
    conn->owner = self;
    uv_tcp_init(listener->loop, &conn->tcp);
    ++self->open_handles_;
    conn->tcp.data = conn.get();
    conn->write.data = conn.get();
    if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&conn->tcp)) == 0)
      uv_read_start(reinterpret_cast<uv_stream_t*>(&conn->tcp), &FakePeer::on_alloc, &FakePeer::on_read);
    self->connections_.push_back(std::move(conn));
  }

  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(handle->data);
    *buf = uv_buf_init(c->buffer, sizeof c->buffer);
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(stream->data);
    if (nread < 0) return close_stream(stream);
    c->input.append(buf->base, static_cast<size_t>(nread));
    if (c->input.find("\r\n\r\n") == std::string::npos) return;
    uv_read_stop(stream);
    FakePeer* self = c->owner;
    self->requests_.push_back(c->input);
    if (self->behaviour_ == Behaviour::kSilent) return;
    if (self->behaviour_ == Behaviour::kClose) return close_stream(stream);
    uv_buf_t out = uv_buf_init(self->answer_.data(), static_cast<unsigned>(self->answer_.size()));
    uv_write(&c->write, stream, &out, 1, [](uv_write_t* req, int) { close_stream(req->handle); });
  }

  uv_loop_t* loop_;
  Behaviour behaviour_;
  std::string answer_;
  uv_tcp_t listener_;
  bool closed_ = false;
  int open_handles_ = 0;
  uint16_t port_ = 0;
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
    CHECK(uv_loop_close(&loop) == 0);  // every handle was closed
  }
};

conf::Peer peer(uint16_t port, std::string token = "tok") {
  conf::Peer p;
  p.address.host = "127.0.0.1";
  p.address.port = port;
  p.token = std::move(token);
  return p;
}

conf::Cluster cluster_of(std::vector<conf::Peer> peers) {
  conf::Cluster cluster;
  cluster.peers = std::move(peers);
  cluster.timeout = std::chrono::milliseconds(200);
  return cluster;
}

std::string at(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// Counts done's calls and keeps the last result.
struct Outcome {
  int calls = 0;
  PeerNotifier::Result result;
  PeerNotifier::Done done() {
    return [this](PeerNotifier::Result r) {
      ++calls;
      result = std::move(r);
    };
  }
};

// Runs the loop until done has been called (or nothing is left to run).
void run_until(Loop& l, const Outcome& outcome) {
  while (outcome.calls == 0 && uv_run(&l.loop, UV_RUN_ONCE) != 0) {
  }
}

// Notifies a cluster with a single peer and returns its one failure ("" when it succeeded).
std::string single_failure(Loop& l, uint16_t port) {
  conf::Cluster cluster = cluster_of({peer(port)});
  PeerNotifier notifier(&l.loop, cluster);
  Outcome outcome;
  notifier.notify("/purge?tag=book-7&local=1", outcome.done());
  CHECK(outcome.calls == 0);  // never from inside notify()
  run_until(l, outcome);
  CHECK(outcome.calls == 1);
  if (outcome.result.failures.empty()) return "";
  CHECK(outcome.result.ok == 0);
  CHECK(outcome.result.failures.size() == 1);
  return outcome.result.failures[0];
}

constexpr char kOk[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"purged\":2}\n";
constexpr char kUnauthorized[] =
    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 25\r\n\r\n{\"error\":\"unauthorized\"}\n";

}  // namespace

TEST_CASE("peers: a 2xx answer is a success; the request is the documented one") {
  Loop l;
  FakePeer server(&l.loop, FakePeer::Behaviour::kAnswer, kOk);
  conf::Cluster cluster = cluster_of({peer(server.port(), "s3cret")});
  PeerNotifier notifier(&l.loop, cluster);
  CHECK(notifier.peers() == 1);
  Outcome outcome;
  notifier.notify("/purge?tag=book-7&local=1", outcome.done());
  CHECK(outcome.calls == 0);
  run_until(l, outcome);
  CHECK(outcome.calls == 1);
  CHECK(outcome.result.ok == 1);
  CHECK(outcome.result.failures.empty());
  REQUIRE(server.requests().size() == 1);
  const std::string& request = server.requests()[0];
  CHECK(request.rfind("POST /purge?tag=book-7&local=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(request.find("\r\nHost: " + at(server.port()) + "\r\n") != std::string::npos);
  CHECK(request.find("\r\nAuthorization: Bearer s3cret\r\n") != std::string::npos);
  CHECK(request.find("\r\nContent-Length: 0\r\n") != std::string::npos);
  CHECK(request.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(request.size() == request.find("\r\n\r\n") + 4);  // nothing after the head
  server.close();
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(outcome.calls == 1);
}

TEST_CASE("peers: every way a peer can fail is a failure naming it and saying why") {
  Loop l;
  SUBCASE("401, with the start of its body") {
    FakePeer server(&l.loop, FakePeer::Behaviour::kAnswer, kUnauthorized);
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": status 401: {\"error\":\"unauthorized\"}");
  }
  SUBCASE("a long error body is cut at 200 bytes") {
    const std::string body(300, 'x');
    FakePeer server(&l.loop, FakePeer::Behaviour::kAnswer,
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 300\r\n\r\n" + body);
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": status 503: " + std::string(200, 'x'));
  }
  SUBCASE("a non-2xx status without a body") {
    FakePeer server(&l.loop, FakePeer::Behaviour::kAnswer, "HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n");
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": status 302");
  }
  SUBCASE("garbage") {
    FakePeer server(&l.loop, FakePeer::Behaviour::kAnswer, "SSH-2.0-nope\r\n\r\n");
    CHECK(single_failure(l, server.port()).rfind(at(server.port()) + ": bad answer: ", 0) == 0);
  }
  SUBCASE("an answer over 64 KiB") {
    FakePeer server(&l.loop, FakePeer::Behaviour::kAnswer,
                    "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + std::string(70000, 'x'));
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": the answer is over 64 KiB");
  }
  SUBCASE("a close without an answer") {
    FakePeer server(&l.loop, FakePeer::Behaviour::kClose);
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": the connection closed without an answer");
    CHECK(server.requests().size() == 1);
  }
  SUBCASE("a close in the middle of the answer") {
    FakePeer server(&l.loop, FakePeer::Behaviour::kAnswer, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    CHECK(single_failure(l, server.port())
              .rfind(at(server.port()) + ": the connection closed before the answer was complete", 0) == 0);
  }
  SUBCASE("no answer within cluster.timeout") {
    FakePeer server(&l.loop, FakePeer::Behaviour::kSilent);
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": no answer within 200 ms");
    CHECK(server.requests().size() == 1);
  }
  SUBCASE("connection refused") {
    const uint16_t port = refused_port();
    CHECK(single_failure(l, port) == at(port) + ": connect: connection refused");
  }
}

TEST_CASE("peers: several peers at once give one done with every outcome, failures in peer order") {
  Loop l;
  FakePeer good(&l.loop, FakePeer::Behaviour::kAnswer, kOk);
  FakePeer wrong_token(&l.loop, FakePeer::Behaviour::kAnswer, kUnauthorized);
  FakePeer silent(&l.loop, FakePeer::Behaviour::kSilent);
  const uint16_t refused = refused_port();
  conf::Cluster cluster =
      cluster_of({peer(silent.port()), peer(good.port()), peer(refused), peer(wrong_token.port())});
  PeerNotifier notifier(&l.loop, cluster);
  CHECK(notifier.peers() == 4);
  Outcome outcome;
  notifier.notify("/ban?prefix=/books/", outcome.done());
  CHECK(outcome.calls == 0);
  run_until(l, outcome);
  CHECK(outcome.calls == 1);
  CHECK(outcome.result.ok == 1);
  REQUIRE(outcome.result.failures.size() == 3);
  CHECK(outcome.result.failures[0] == at(silent.port()) + ": no answer within 200 ms");
  CHECK(outcome.result.failures[1] == at(refused) + ": connect: connection refused");
  CHECK(outcome.result.failures[2].rfind(at(wrong_token.port()) + ": status 401", 0) == 0);
  for (const FakePeer* server : {&good, &wrong_token, &silent}) {
    REQUIRE(server->requests().size() == 1);
    CHECK(server->requests()[0].rfind("POST /ban?prefix=/books/ HTTP/1.1\r\n", 0) == 0);
  }
}

TEST_CASE("peers: two notifications in flight at once each get their own done") {
  Loop l;
  FakePeer good(&l.loop, FakePeer::Behaviour::kAnswer, kOk);
  conf::Cluster cluster = cluster_of({peer(good.port())});
  PeerNotifier notifier(&l.loop, cluster);
  Outcome first, second;
  notifier.notify("/purge?tag=a&local=1", first.done());
  notifier.notify("/purge?tag=b&local=1", second.done());
  while ((first.calls == 0 || second.calls == 0) && uv_run(&l.loop, UV_RUN_ONCE) != 0) {
  }
  CHECK(first.calls == 1);
  CHECK(second.calls == 1);
  CHECK(first.result.ok == 1);
  CHECK(second.result.ok == 1);
  CHECK(good.requests().size() == 2);
}

TEST_CASE("peers: with no peers, done is still called once, from the loop") {
  Loop l;
  conf::Cluster cluster;
  PeerNotifier notifier(&l.loop, cluster);
  CHECK(notifier.peers() == 0);
  Outcome outcome;
  notifier.notify("/purge?tag=a&local=1", outcome.done());
  CHECK(outcome.calls == 0);
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(outcome.calls == 1);
  CHECK(outcome.result.ok == 0);
  CHECK(outcome.result.failures.empty());
}

TEST_CASE("peers: stop() ends what is in flight without calling done, and ignores later notifications") {
  Loop l;
  FakePeer silent(&l.loop, FakePeer::Behaviour::kSilent);
  conf::Cluster cluster = cluster_of({peer(silent.port()), peer(refused_port())});
  cluster.timeout = std::chrono::seconds(30);  // the loop ending proves stop() closed the timers
  PeerNotifier connecting(&l.loop, cluster);
  PeerNotifier on_the_wire(&l.loop, cluster);
  Outcome before_connect, after_request, after_stop;
  connecting.notify("/purge?tag=a&local=1", before_connect.done());
  connecting.stop();  // before the connects have even completed
  on_the_wire.notify("/purge?tag=b&local=1", after_request.done());
  while (silent.requests().empty() && uv_run(&l.loop, UV_RUN_ONCE) != 0) {
  }
  REQUIRE(silent.requests().size() == 1);
  on_the_wire.stop();
  on_the_wire.stop();
  on_the_wire.notify("/purge?tag=c&local=1", after_stop.done());
  connecting.notify("/purge?tag=d&local=1", after_stop.done());
  silent.close();
  uv_run(&l.loop, UV_RUN_DEFAULT);  // returns: nothing of the notifiers' is left open
  CHECK(before_connect.calls == 0);
  CHECK(after_request.calls == 0);
  CHECK(after_stop.calls == 0);
  CHECK(silent.requests().size() == 1);
}

TEST_CASE("peers: done may notify again, or destroy the notifier") {
  Loop l;
  FakePeer good(&l.loop, FakePeer::Behaviour::kAnswer, kOk);
  FakePeer silent(&l.loop, FakePeer::Behaviour::kSilent);
  conf::Cluster cluster = cluster_of({peer(good.port()), peer(silent.port())});
  SUBCASE("notify from done") {
    PeerNotifier notifier(&l.loop, cluster);
    int calls = 0;
    std::function<void(PeerNotifier::Result)> again = [&](PeerNotifier::Result r) {
      CHECK(r.ok == 1);
      if (++calls < 2) notifier.notify("/purge?tag=again&local=1", again);
    };
    notifier.notify("/purge?tag=first&local=1", again);
    while (calls < 2 && uv_run(&l.loop, UV_RUN_ONCE) != 0) {
    }
    CHECK(calls == 2);
    CHECK(good.requests().size() == 2);
  }
  SUBCASE("destroy from done, with another notification in flight") {
    auto notifier = std::make_unique<PeerNotifier>(&l.loop, cluster);
    int calls = 0;
    notifier->notify("/purge?tag=first&local=1", [&](PeerNotifier::Result) {
      ++calls;
      notifier.reset();
    });
    // The second starts later than the first, so its deadline comes after the first's done.
    uv_run(&l.loop, UV_RUN_NOWAIT);
    notifier->notify("/purge?tag=second&local=1", [&](PeerNotifier::Result) { ++calls; });
    while (notifier && uv_run(&l.loop, UV_RUN_ONCE) != 0) {
    }
    good.close();
    silent.close();
    uv_run(&l.loop, UV_RUN_DEFAULT);  // returns: the second notification was closed with the notifier
    CHECK(calls == 1);
    CHECK_FALSE(notifier);
  }
}
