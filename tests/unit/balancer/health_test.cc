#include "balancer/health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/loopback_port.h"

using namespace edge;
using namespace std::chrono_literals;
using balancer::ServerMode;
using edge::testing::LoopbackPort;

namespace {

// A tiny HTTP server on its own thread, one connection at a time, whose answer the test switches.
class Responder {
 public:
  enum class Mode {
    k200,
    k503,
    kClose,    // reads the request, closes without a word
    kSilent,   // reads the request, keeps the connection open, never answers
    kGarbage,  // answers with something that is not HTTP
  };

  Responder() {
    std::signal(SIGPIPE, SIG_IGN);
    thread_ = std::thread([this] { run(); });
  }
  ~Responder() {
    stop_ = true;
    thread_.join();
    for (int fd : held_) ::close(fd);
  }

  uint16_t port() const { return listener_.port(); }
  void set(Mode mode) { mode_ = mode; }
  int requests() const { return requests_; }
  int answered(int status) const { return status == 200 ? answered_200_ : answered_503_; }
  std::string last_request() {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_request_;
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{listener_.fd(), POLLIN, 0};
      if (::poll(&p, 1, 10) <= 0) continue;
      int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) serve(fd);
    }
  }

  void serve(int fd) {
    std::string request;
    char buf[1024];
    while (request.find("\r\n\r\n") == std::string::npos && !stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) break;
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last_request_ = request;
    }
    ++requests_;
    // Counted before the answer goes out: once the checker has read it, a test must find it
    // counted, however late this thread runs again.
    switch (mode_.load()) {
      case Mode::k200:
        ++answered_200_;
        send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        break;
      case Mode::k503:
        ++answered_503_;
        send(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        break;
      case Mode::kGarbage: send(fd, "SSH-2.0-OpenSSH_9.6\r\n\r\n"); break;
      case Mode::kClose: break;
      case Mode::kSilent: held_.push_back(fd); return;
    }
    ::close(fd);
  }

  static void send(int fd, std::string_view text) { ::send(fd, text.data(), text.size(), MSG_NOSIGNAL); }

  LoopbackPort listener_{LoopbackPort::Mode::kListening};
  std::atomic<Mode> mode_{Mode::k200};
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> answered_200_{0};
  std::atomic<int> answered_503_{0};
  std::mutex mutex_;
  std::string last_request_;
  std::vector<int> held_;  // silent connections, closed at the end
  std::thread thread_;
};

conf::Backend backend(const std::string& name, const std::vector<std::string>& hosts,
                      const std::vector<uint16_t>& ports, bool health, conf::Duration timeout = 200ms,
                      conf::Duration slow_start = 0ms) {
  conf::Backend b;
  b.name = name;
  for (size_t i = 0; i < ports.size(); ++i) {
    conf::Server s;
    s.address.host = hosts[i];
    s.address.port = ports[i];
    b.servers.push_back(s);
  }
  b.health.enabled = health;
  b.health.path = "/health";
  b.health.interval = 50ms;
  b.health.timeout = timeout;
  b.health.rise = 2;
  b.health.fall = 2;
  b.slow_start = slow_start;
  return b;
}

conf::Backend loopback(const std::string& name, uint16_t port, bool health = true, conf::Duration timeout = 200ms,
                       conf::Duration slow_start = 0ms) {
  return backend(name, {"127.0.0.1"}, {port}, health, timeout, slow_start);
}

template <typename Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = 5s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

ServerMode mode_of(const balancer::ServerState& s, conf::Duration slow_start = 0ms) {
  return s.mode(balancer::now_ms(), slow_start);
}

}  // namespace

TEST_CASE("health: a server answering 200 is up; the probe is the documented request") {
  Responder server;
  conf::Config config;
  config.backends.push_back(loopback("a", server.port(), true, 60s));  // the answer decides, not the clock
  balancer::Balancer balancer(config);
  balancer::ServerState& state = balancer.backend(0).server(0);

  int64_t started = balancer::now_ms();
  balancer::HealthChecker checker(config, balancer);
  checker.start();
  CHECK(checker.running());
  REQUIRE(eventually([&] { return state.checked(); }));
  auto result = state.last_check();
  CHECK(result.ok);
  CHECK(result.status == 200);
  CHECK(result.detail == "200");
  CHECK(result.at_ms >= started);
  CHECK(result.at_ms <= balancer::now_ms());
  CHECK(mode_of(state) == ServerMode::kUp);
  CHECK(server.last_request() == "GET /health HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) +
                                     "\r\nUser-Agent: edge-health\r\nConnection: close\r\n\r\n");
  checker.stop();
  CHECK_FALSE(checker.running());
}

TEST_CASE("health: fall bad checks take a server down, rise good ones bring it back") {
  Responder server;
  conf::Config config;
  // A check's timeout far beyond any scheduling delay: every verdict here is the responder's
  // answer, never a time-out of a starved thread.
  config.backends.push_back(loopback("a", server.port(), true, 60s));
  balancer::Balancer balancer(config);
  balancer::ServerState& state = balancer.backend(0).server(0);
  balancer::HealthChecker checker(config, balancer);
  checker.start();
  REQUIRE(eventually([&] { return state.checked() && state.last_check().ok; }));

  server.set(Responder::Mode::k503);
  REQUIRE(eventually([&] { return mode_of(state) == ServerMode::kDown; }));
  CHECK(server.answered(503) >= 2);  // fall
  auto result = state.last_check();
  CHECK_FALSE(result.ok);
  CHECK(result.status == 503);
  CHECK(result.detail == "503");

  int good_before = server.answered(200);
  server.set(Responder::Mode::k200);
  REQUIRE(eventually([&] { return mode_of(state) != ServerMode::kDown; }));
  CHECK(server.answered(200) - good_before >= 2);  // rise
  CHECK(mode_of(state) == ServerMode::kUp);
  CHECK(state.last_check().detail == "200");
}

TEST_CASE("health: a server coming back ramps up when the backend has slow_start") {
  Responder server;
  server.set(Responder::Mode::k503);
  conf::Config config;
  config.backends.push_back(loopback("a", server.port(), true, 200ms, 60s));
  balancer::Balancer balancer(config);
  balancer::ServerState& state = balancer.backend(0).server(0);
  balancer::HealthChecker checker(config, balancer);
  checker.start();
  REQUIRE(eventually([&] { return mode_of(state, 60s) == ServerMode::kDown; }));
  server.set(Responder::Mode::k200);
  REQUIRE(eventually([&] { return mode_of(state, 60s) != ServerMode::kDown; }));
  CHECK(mode_of(state, 60s) == ServerMode::kSlowStart);
}

TEST_CASE("health: a 3xx is good, a 4xx is bad") {
  // The responder speaks only 200 and 503, so here a raw one-shot socket answers.
  for (auto [status, ok] : {std::pair{302, true}, std::pair{404, false}}) {
    CAPTURE(status);
    LoopbackPort listener(LoopbackPort::Mode::kListening);
    conf::Config config;
    config.backends.push_back(loopback("a", listener.port()));
    config.backends[0].health.interval = 10s;  // no second check to overwrite the first
    balancer::Balancer balancer(config);
    balancer::ServerState& state = balancer.backend(0).server(0);
    balancer::HealthChecker checker(config, balancer);
    checker.start();
    int fd = ::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(fd >= 0);
    std::string answer = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 0\r\n\r\n";
    ::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
    REQUIRE(eventually([&] { return state.checked(); }));
    CHECK(state.last_check().ok == ok);
    CHECK(state.last_check().status == status);
    checker.stop();
    ::close(fd);
  }
}

TEST_CASE("health: refused, closed, garbage and silent servers go down, each with its reason") {
  LoopbackPort refused(LoopbackPort::Mode::kRefusing);
  Responder closing, garbage, silent;
  closing.set(Responder::Mode::kClose);
  garbage.set(Responder::Mode::kGarbage);
  silent.set(Responder::Mode::kSilent);

  conf::Config config;
  // Only the silent one may time out; the others' reasons must not depend on the clock.
  config.backends.push_back(loopback("refused", refused.port(), true, 60s));
  config.backends.push_back(loopback("closing", closing.port(), true, 60s));
  config.backends.push_back(loopback("garbage", garbage.port(), true, 60s));
  config.backends.push_back(loopback("silent", silent.port()));
  balancer::Balancer balancer(config);
  balancer::HealthChecker checker(config, balancer);
  int64_t started = balancer::now_ms();
  checker.start();

  auto down = [&](size_t b) { return mode_of(balancer.backend(b).server(0)) == ServerMode::kDown; };
  REQUIRE(eventually([&] { return down(0) && down(1) && down(2) && down(3); }));
  for (size_t b = 0; b < 4; ++b) {
    CHECK_FALSE(balancer.backend(b).server(0).last_check().ok);
    CHECK(balancer.backend(b).server(0).last_check().status == 0);
  }
  CHECK(balancer.backend(0).server(0).last_check().detail == "connection refused");
  std::string closed = balancer.backend(1).server(0).last_check().detail;
  CHECK((closed == "closed without response" || closed == "connection reset"));
  CHECK(balancer.backend(2).server(0).last_check().detail == "bad response");
  CHECK(balancer.backend(3).server(0).last_check().detail == "timeout");
  CHECK(balancer.backend(3).server(0).last_check().at_ms >= started);
  checker.stop();
}

TEST_CASE("health: checks go on, each on a new connection, also after a timed-out one") {
  // How often they run is for the benchmark's clock, not a test's: here, that they keep coming.
  Responder server;
  conf::Config config;
  config.backends.push_back(loopback("a", server.port()));
  balancer::Balancer balancer(config);
  balancer::HealthChecker checker(config, balancer);
  checker.start();
  CHECK(eventually([&] { return server.requests() >= 3; }));
  checker.stop();

  Responder silent;
  silent.set(Responder::Mode::kSilent);
  conf::Config slow_config;
  slow_config.backends.push_back(loopback("s", silent.port()));
  balancer::Balancer slow_balancer(slow_config);
  balancer::HealthChecker slow_checker(slow_config, slow_balancer);
  slow_checker.start();
  CHECK(eventually([&] { return silent.requests() >= 2; }));
  slow_checker.stop();
  CHECK(slow_balancer.backend(0).server(0).last_check().detail == "timeout");
}

TEST_CASE("health: only backends with health enabled are checked; none enabled starts nothing") {
  Responder checked_server, unchecked_server;
  conf::Config config;
  config.backends.push_back(loopback("off", unchecked_server.port(), false));
  config.backends.push_back(backend("on", {"127.0.0.1", "127.0.0.1"}, {checked_server.port(), checked_server.port()}, true));
  balancer::Balancer balancer(config);
  balancer::HealthChecker checker(config, balancer);
  checker.start();
  REQUIRE(eventually([&] { return balancer.backend(1).server(0).checked() && balancer.backend(1).server(1).checked(); }));
  checker.stop();
  CHECK_FALSE(balancer.backend(0).server(0).checked());
  CHECK(unchecked_server.requests() == 0);

  conf::Config quiet;
  quiet.backends.push_back(loopback("off", unchecked_server.port(), false));
  balancer::Balancer quiet_balancer(quiet);
  balancer::HealthChecker idle(quiet, quiet_balancer);
  idle.start();
  CHECK_FALSE(idle.running());
  idle.stop();
}

TEST_CASE("health: stop() in the middle of checks returns promptly and reports nothing") {
  Responder silent;
  silent.set(Responder::Mode::kSilent);
  conf::Config config;
  // A check waiting for a response that will not come for 10 s.
  config.backends.push_back(loopback("silent", silent.port(), true, 10s));
  balancer::Balancer balancer(config);
  balancer::HealthChecker checker(config, balancer);
  checker.start();
  REQUIRE(eventually([&] { return silent.requests() >= 1; }));
  checker.stop();  // must not wait for the 10 s check (a hang fails the suite's time limit)
  CHECK_FALSE(checker.running());
  CHECK_FALSE(balancer.backend(0).server(0).checked());
  checker.stop();  // again: nothing to do
}

TEST_CASE("health: the destructor stops a running checker") {
  Responder silent;
  silent.set(Responder::Mode::kSilent);
  conf::Config config;
  config.backends.push_back(loopback("silent", silent.port(), true, 10s));
  balancer::Balancer balancer(config);
  {
    balancer::HealthChecker checker(config, balancer);
    checker.start();
    REQUIRE(eventually([&] { return silent.requests() >= 1; }));
  }
  CHECK_FALSE(balancer.backend(0).server(0).checked());
}

TEST_CASE("health: stop() from another thread") {
  Responder server;
  conf::Config config;
  config.backends.push_back(loopback("a", server.port()));
  balancer::Balancer balancer(config);
  balancer::HealthChecker checker(config, balancer);
  checker.start();
  REQUIRE(eventually([&] { return server.requests() >= 1; }));
  std::thread other([&] { checker.stop(); });
  other.join();
  CHECK_FALSE(checker.running());
}
