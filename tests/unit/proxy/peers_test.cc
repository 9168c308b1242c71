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

#include "tests/unit/loopback_port.h"
#include "tests/unit/scripted_server.h"

using namespace edge;
using proxy::PeerNotifier;
using edge::testing::LoopbackPort;
using edge::testing::ScriptedServer;
using Loop = edge::testing::TestLoop;

namespace {

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
  ScriptedServer server(&l.loop, kOk);
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
    ScriptedServer server(&l.loop, kUnauthorized);
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": status 401: {\"error\":\"unauthorized\"}");
  }
  SUBCASE("a long error body is cut at 200 bytes") {
    const std::string body(300, 'x');
    ScriptedServer server(&l.loop, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 300\r\n\r\n" + body);
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": status 503: " + std::string(200, 'x'));
  }
  SUBCASE("a non-2xx status without a body") {
    ScriptedServer server(&l.loop, "HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n");
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": status 302");
  }
  SUBCASE("garbage") {
    ScriptedServer server(&l.loop, "SSH-2.0-nope\r\n\r\n");
    CHECK(single_failure(l, server.port()).rfind(at(server.port()) + ": bad answer: ", 0) == 0);
  }
  SUBCASE("an answer over 64 KiB") {
    ScriptedServer server(&l.loop, "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + std::string(70000, 'x'));
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": the answer is over 64 KiB");
  }
  SUBCASE("a close without an answer") {
    ScriptedServer server(&l.loop, "");
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": the connection closed without an answer");
    CHECK(server.requests().size() == 1);
  }
  SUBCASE("a close in the middle of the answer") {
    ScriptedServer server(&l.loop, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    CHECK(single_failure(l, server.port())
              .rfind(at(server.port()) + ": the connection closed before the answer was complete", 0) == 0);
  }
  SUBCASE("no answer within cluster.timeout") {
    ScriptedServer server(&l.loop, "", ScriptedServer::After::kHold);
    CHECK(single_failure(l, server.port()) == at(server.port()) + ": no answer within 200 ms");
    CHECK(server.requests().size() == 1);
  }
  SUBCASE("connection refused") {
    LoopbackPort refused(LoopbackPort::Mode::kRefusing);
    CHECK(single_failure(l, refused.port()) == at(refused.port()) + ": connect: connection refused");
  }
}

TEST_CASE("peers: several peers at once give one done with every outcome, failures in peer order") {
  Loop l;
  ScriptedServer good(&l.loop, kOk);
  ScriptedServer wrong_token(&l.loop, kUnauthorized);
  ScriptedServer silent(&l.loop, "", ScriptedServer::After::kHold);
  LoopbackPort refused(LoopbackPort::Mode::kRefusing);
  conf::Cluster cluster =
      cluster_of({peer(silent.port()), peer(good.port()), peer(refused.port()), peer(wrong_token.port())});
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
  CHECK(outcome.result.failures[1] == at(refused.port()) + ": connect: connection refused");
  CHECK(outcome.result.failures[2].rfind(at(wrong_token.port()) + ": status 401", 0) == 0);
  for (const ScriptedServer* server : {&good, &wrong_token, &silent}) {
    REQUIRE(server->requests().size() == 1);
    CHECK(server->requests()[0].rfind("POST /ban?prefix=/books/ HTTP/1.1\r\n", 0) == 0);
  }
}

TEST_CASE("peers: two notifications in flight at once each get their own done") {
  Loop l;
  ScriptedServer good(&l.loop, kOk);
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
  ScriptedServer silent(&l.loop, "", ScriptedServer::After::kHold);
  LoopbackPort refused(LoopbackPort::Mode::kRefusing);
  conf::Cluster cluster = cluster_of({peer(silent.port()), peer(refused.port())});
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
  ScriptedServer good(&l.loop, kOk);
  ScriptedServer silent(&l.loop, "", ScriptedServer::After::kHold);
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
