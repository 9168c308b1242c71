// Stopping edge on SIGTERM: the requests in progress are answered, idle connections close at
// once, nothing new is accepted; shutdown_timeout bounds the wait and a second signal ends it.
#include <doctest/doctest.h>

#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

// Polls (generous cap) until the app has received `n` requests for `target`.
bool wait_for_requests(uint16_t app_port, const std::string& target, long n) {
  for (int i = 0; i < 2000; ++i) {
    if (app_count(app_port, target) >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// Polls until a connection to `port` is refused.
bool wait_refused(uint16_t port) {
  for (int i = 0; i < 2000; ++i) {
    if (!Client(port, std::chrono::seconds(1)).connected()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

std::string request(const std::string& target) { return "GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n"; }

}  // namespace

TEST_CASE("SIGTERM lets the requests in progress finish, refuses new connections and exits 0") {
  App app("a");
  Edge edge(single_backend_config(yaml_address(app.port), "", "", 2));
  // Targets of their own: requests for one target would wait on one fetch (coalescing), and
  // reach the app only once the first response has begun.
  constexpr int kClients = 5;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(edge.port, std::chrono::seconds(30)));
    REQUIRE(clients.back()->connected());
    REQUIRE(clients.back()->send(request("/wait?ms=1500&n=" + std::to_string(i))));
  }
  for (int i = 0; i < kClients; ++i) REQUIRE(wait_for_requests(app.port, "/wait?ms=1500&n=" + std::to_string(i), 1));
  edge.process.kill(SIGTERM);
  CHECK(wait_refused(edge.port));
  for (auto& client : clients) {
    Response r = client->read_response();
    CHECK(r.complete);
    CHECK(r.status == 200);
    CHECK(r.body == "waited 1500 ms\n");
    CHECK(r.header("Connection") == std::string_view("close"));
    CHECK(client->wait_closed());
  }
  CHECK(edge.process.wait(std::chrono::seconds(20)) == 0);
  CHECK(edge.process.output().find("edge: stopping") != std::string::npos);
}

TEST_CASE("SIGTERM closes an idle keep-alive connection at once while one in progress completes") {
  App app("a");
  Edge edge(single_backend_config(yaml_address(app.port)));
  Client idle(edge.port, std::chrono::seconds(30));
  REQUIRE(idle.send(request("/wait?ms=1")));
  Response first = idle.read_response();
  REQUIRE(first.status == 200);
  CHECK(first.header("Connection") != std::string_view("close"));
  Client busy(edge.port, std::chrono::seconds(30));
  const std::string target = "/wait?ms=1500";
  REQUIRE(busy.send(request(target)));
  REQUIRE(wait_for_requests(app.port, target, 1));
  edge.process.kill(SIGTERM);
  CHECK(idle.wait_closed());
  Response r = busy.read_response();
  CHECK(r.complete);
  CHECK(r.status == 200);
  CHECK(r.header("Connection") == std::string_view("close"));
  CHECK(edge.process.wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("a response whose head is out when SIGTERM comes is finished, then the connection closes") {
  App app("a");
  Edge edge(single_backend_config(yaml_address(app.port)));
  Client client(edge.port, std::chrono::seconds(30));
  // Far more than the sockets hold (the client reads nothing more until the signal is taken):
  // the response is still being written when the drain starts.
  constexpr size_t kBody = 64 * 1024 * 1024;
  REQUIRE(client.send(request("/bytes?n=" + std::to_string(kBody))));
  std::string got;
  while (got.find("\r\n\r\n") == std::string::npos) {
    std::string more = client.read_some();
    REQUIRE_FALSE(more.empty());
    got += more;
  }
  const size_t head_end = got.find("\r\n\r\n") + 4;
  CHECK(got.substr(0, head_end).find("Connection: close") == std::string::npos);
  edge.process.kill(SIGTERM);
  wait_for_line(edge.process, "edge: stopping", "edge");
  for (;;) {
    std::string more = client.read_some();
    if (more.empty()) break;
    got += more;
  }
  CHECK(got.size() - head_end == kBody);
  CHECK(edge.process.wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("past shutdown_timeout the requests left are cut and edge exits 0") {
  App app("a");
  Edge edge("shutdown_timeout: 1s\n" + single_backend_config(yaml_address(app.port)));
  Client client(edge.port, std::chrono::seconds(30));
  const std::string target = "/wait?ms=10000";
  REQUIRE(client.send(request(target)));
  REQUIRE(wait_for_requests(app.port, target, 1));
  edge.process.kill(SIGTERM);
  CHECK(edge.process.wait(std::chrono::seconds(20)) == 0);
  Response r = client.read_response();
  CHECK_FALSE(r.complete);
  // The line says which worker held up the stop, and with what.
  CHECK(edge.process.output().find("edge: shutdown_timeout passed: closing the connections left (worker 0: connections 1)") !=
        std::string::npos);
}

TEST_CASE("a second SIGTERM stops at once") {
  App app("a");
  // The default shutdown_timeout (30 s) is longer than the test waits: only the second signal
  // can end it in time.
  Edge edge(single_backend_config(yaml_address(app.port)));
  Client client(edge.port, std::chrono::seconds(30));
  const std::string target = "/wait?ms=10000";
  REQUIRE(client.send(request(target)));
  REQUIRE(wait_for_requests(app.port, target, 1));
  edge.process.kill(SIGTERM);
  wait_for_line(edge.process, "edge: stopping", "edge");
  CHECK(edge.process.running());
  edge.process.kill(SIGTERM);
  CHECK(edge.process.wait(std::chrono::seconds(20)) == 0);
  Response r = client.read_response();
  CHECK_FALSE(r.complete);
}
