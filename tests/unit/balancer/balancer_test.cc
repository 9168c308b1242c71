#include "balancer/balancer.h"

#include <doctest/doctest.h>

#include <map>
#include <vector>

using namespace edge;
using balancer::BackendState;
using balancer::Outcome;

namespace {
conf::Backend make_backend(std::vector<std::pair<uint32_t, uint32_t>> weight_and_max, conf::Balance balance = conf::Balance::kLeastConn) {
  conf::Backend b;
  b.name = std::string(1, 'b');  // not = "b": GCC 12 warns falsely (-Wrestrict) on that assignment
  b.balance = balance;
  uint16_t port = 9000;
  for (auto [weight, max] : weight_and_max) {
    conf::Server s;
    s.address.host = "127.0.0.1";
    s.address.port = port++;
    s.weight = weight;
    s.max_conns = max;
    b.servers.push_back(s);
  }
  return b;
}

struct RecordingWaiter : balancer::Waiter {
  std::vector<int> grants;
  void granted(int server) override { grants.push_back(server); }
};

int pick_server(BackendState& state, int64_t now = 1000, uint64_t tried = 0) {
  auto p = state.pick(tried, now);
  REQUIRE(p.kind == BackendState::Pick::kServer);
  return p.server;
}
}  // namespace

TEST_CASE("least_conn sends each request to the server with the fewest in flight") {
  conf::Backend config = make_backend({{1, 0}, {1, 0}, {1, 0}});
  BackendState state(config);
  int a = pick_server(state), b = pick_server(state), c = pick_server(state);
  CHECK(a != b);
  CHECK(b != c);
  CHECK(a != c);
  // Server a finishes; the next request must go to it, the only one with nothing in flight.
  state.release(a, Outcome::kSuccess, 1000);
  CHECK(pick_server(state) == a);
  CHECK(state.server(static_cast<size_t>(a)).served() == 1);
}

TEST_CASE("least_conn ties rotate, so idle servers share the load evenly") {
  conf::Backend config = make_backend({{1, 0}, {1, 0}, {1, 0}});
  BackendState state(config);
  std::map<int, int> count;
  for (int i = 0; i < 300; ++i) {
    int s = pick_server(state);
    ++count[s];
    state.release(s, Outcome::kSuccess, 1000);
  }
  CHECK(count.size() == 3);
  for (auto& [server, n] : count) CHECK(n == 100);
}

TEST_CASE("weights: in flight is counted per unit of weight") {
  conf::Backend config = make_backend({{3, 0}, {1, 0}});
  BackendState state(config);
  std::map<int, int> count;
  for (int i = 0; i < 8; ++i) ++count[pick_server(state)];  // nothing released: load builds up
  CHECK(count[0] == 6);
  CHECK(count[1] == 2);
}

TEST_CASE("round_robin ignores load") {
  conf::Backend config = make_backend({{1, 0}, {1, 0}}, conf::Balance::kRoundRobin);
  BackendState state(config);
  int first = pick_server(state);
  int second = pick_server(state);
  int third = pick_server(state);
  CHECK(first != second);
  CHECK(third == first);
}

TEST_CASE("max_conns: full servers queue requests, a release grants the oldest waiter first") {
  conf::Backend config = make_backend({{1, 1}, {1, 1}});
  config.queue.max = 2;
  BackendState state(config);
  int a = pick_server(state);
  int b = pick_server(state);
  CHECK(a != b);
  CHECK(state.pick(0, 1000).kind == BackendState::Pick::kQueue);
  RecordingWaiter first, second, third;
  CHECK(state.enqueue(&first));
  CHECK(state.enqueue(&second));
  CHECK_FALSE(state.enqueue(&third));  // the queue is full: 503
  CHECK(state.queued() == 2);
  // While waiters exist, a new request joins the queue rather than overtaking it.
  state.release(b, Outcome::kSuccess, 1000);
  REQUIRE(first.grants.size() == 1);
  CHECK(first.grants[0] == b);
  CHECK(second.grants.empty());
  CHECK(state.server(static_cast<size_t>(b)).in_flight() == 1);  // reserved for the waiter
  CHECK(state.pick(0, 1000).kind == BackendState::Pick::kQueue);
  // A waiter that gives up is removed; a granted one cannot be cancelled any more.
  CHECK(state.cancel(&second));
  CHECK_FALSE(state.cancel(&first));
  CHECK(state.queued() == 0);
}

TEST_CASE("a server never carries more than max_conns") {
  conf::Backend config = make_backend({{1, 1}});
  BackendState state(config);
  CHECK(pick_server(state) == 0);
  CHECK(state.pick(0, 1000).kind == BackendState::Pick::kQueue);
  state.release(0, Outcome::kSuccess, 1000);
  CHECK(pick_server(state) == 0);
}

TEST_CASE("tried servers are skipped; with none left the answer is kNone") {
  conf::Backend config = make_backend({{1, 0}, {1, 0}});
  BackendState state(config);
  CHECK(pick_server(state, 1000, 0b01) == 1);
  CHECK(pick_server(state, 1000, 0b10) == 0);
  CHECK(state.pick(0b11, 1000).kind == BackendState::Pick::kNone);
}

TEST_CASE("passive ejection: consecutive failures take a server out for the cooldown") {
  conf::Backend config = make_backend({{1, 0}, {1, 0}});
  config.eject = {3, std::chrono::seconds(10)};
  BackendState state(config);
  for (int i = 0; i < 3; ++i) {
    state.pick(0b10, 1000);  // reserve server 0
    state.release(0, Outcome::kConnectFailed, 1000);
  }
  CHECK(state.server(0).mode(1000, config.slow_start) == balancer::ServerMode::kEjected);
  CHECK(state.server(0).failed() == 3);
  for (int i = 0; i < 5; ++i) {
    int s = pick_server(state, 2000);
    CHECK(s == 1);
    state.release(s, Outcome::kSuccess, 2000);
  }
  // After the cooldown it is tried again, and one success clears the record.
  CHECK(state.server(0).mode(11001, config.slow_start) == balancer::ServerMode::kUp);
  state.pick(0b10, 11001);
  state.release(0, Outcome::kSuccess, 11001);
  CHECK(state.server(0).mode(11002, config.slow_start) == balancer::ServerMode::kUp);
}

TEST_CASE("a success between failures resets the count; cancellations say nothing") {
  conf::Backend config = make_backend({{1, 0}, {1, 0}});
  config.eject = {2, std::chrono::seconds(10)};
  BackendState state(config);
  state.pick(0b10, 0);
  state.release(0, Outcome::kTimeout, 0);
  state.pick(0b10, 0);
  state.release(0, Outcome::kSuccess, 0);
  state.pick(0b10, 0);
  state.release(0, Outcome::kBroken, 0);
  state.pick(0b10, 0);
  state.release(0, Outcome::kCancelled, 0);
  CHECK(state.server(0).mode(1, config.slow_start) == balancer::ServerMode::kUp);
}

TEST_CASE("a single server is never ejected, and when all are ejected they are tried anyway") {
  conf::Backend one = make_backend({{1, 0}});
  one.eject = {1, std::chrono::seconds(10)};
  BackendState single(one);
  for (int i = 0; i < 5; ++i) {
    pick_server(single);
    single.release(0, Outcome::kConnectFailed, 1000);
  }
  CHECK(single.server(0).mode(1000, one.slow_start) == balancer::ServerMode::kUp);

  conf::Backend two = make_backend({{1, 0}, {1, 0}});
  two.eject = {1, std::chrono::seconds(10)};
  BackendState pair(two);
  for (int s = 0; s < 2; ++s) {
    pair.pick(s == 0 ? 0b10 : 0b01, 1000);
    pair.release(s, Outcome::kConnectFailed, 1000);
  }
  CHECK(pair.server(0).mode(1000, two.slow_start) == balancer::ServerMode::kEjected);
  CHECK(pair.server(1).mode(1000, two.slow_start) == balancer::ServerMode::kEjected);
  CHECK(pair.pick(0, 1000).kind == BackendState::Pick::kServer);
}

TEST_CASE("draining and health-down servers get no new requests; all of them down is kNone") {
  conf::Backend config = make_backend({{1, 0}, {1, 0}});
  BackendState state(config);
  state.server(0).set_draining(true);
  for (int i = 0; i < 4; ++i) {
    CHECK(pick_server(state) == 1);
    state.release(1, Outcome::kSuccess, 1000);
  }
  CHECK(state.server(0).mode(1000, config.slow_start) == balancer::ServerMode::kDraining);
  balancer::ServerState::CheckResult bad{false, 503, "503", 1000};
  for (int i = 0; i < 3; ++i) state.server(1).report_check(bad, 2, 3, 1000);
  CHECK(state.server(1).mode(1000, config.slow_start) == balancer::ServerMode::kDown);
  CHECK(state.pick(0, 1000).kind == BackendState::Pick::kNone);
  state.server(0).set_draining(false);
  CHECK(pick_server(state) == 0);
}

TEST_CASE("health checks: fall bad results take a server down, rise good ones bring it back in slow start") {
  conf::Backend config = make_backend({{1, 0}, {1, 0}});
  config.slow_start = std::chrono::seconds(10);
  BackendState state(config);
  balancer::ServerState& s = state.server(0);
  balancer::ServerState::CheckResult bad{false, 0, "timeout", 0}, good{true, 200, "200", 0};
  s.report_check(bad, 2, 3, 0);
  s.report_check(bad, 2, 3, 0);
  CHECK(s.mode(0, config.slow_start) == balancer::ServerMode::kUp);
  s.report_check(good, 2, 3, 0);  // a good one in between resets the count
  s.report_check(bad, 2, 3, 0);
  s.report_check(bad, 2, 3, 0);
  s.report_check(bad, 2, 3, 0);
  CHECK(s.mode(0, config.slow_start) == balancer::ServerMode::kDown);
  CHECK(s.last_check().detail == "timeout");
  s.report_check(good, 2, 3, 100000);
  CHECK(s.mode(100000, config.slow_start) == balancer::ServerMode::kDown);
  s.report_check(good, 2, 3, 100000);
  CHECK(s.mode(100000, config.slow_start) == balancer::ServerMode::kSlowStart);
  CHECK(s.mode(110001, config.slow_start) == balancer::ServerMode::kUp);
}

TEST_CASE("slow start: a server back from down takes a small, growing share") {
  conf::Backend config = make_backend({{1, 0}, {1, 0}});
  config.slow_start = std::chrono::seconds(10);
  BackendState state(config);
  balancer::ServerState::CheckResult bad{false, 0, "x", 0}, good{true, 200, "200", 0};
  for (int i = 0; i < 3; ++i) state.server(0).report_check(bad, 1, 3, 0);
  state.server(0).report_check(good, 1, 3, 50000);  // back up at t=50 s
  // One second in, its weight is a tenth: with load held, server 1 takes about ten to its one.
  std::map<int, int> count;
  for (int i = 0; i < 22; ++i) ++count[pick_server(state, 51000)];
  CHECK(count[0] == 2);
  CHECK(count[1] == 20);
}

TEST_CASE("a reload's BackendState keeps the state of servers that keep their address") {
  conf::Backend before = make_backend({{1, 0}, {1, 0}});
  BackendState old_state(before);
  const int first = pick_server(old_state);
  old_state.server(1).set_draining(true);
  old_state.release(first, Outcome::kSuccess, 1000);
  const int in_flight = pick_server(old_state);  // still running when the reload comes
  // The new configuration: the second server first, a new one, and the first gone.
  conf::Backend after = make_backend({{1, 0}, {1, 0}, {1, 0}});
  after.servers[0].address = before.servers[1].address;
  after.servers[1].address.port = 9100;
  after.servers[2].address.port = 9101;
  BackendState state(after, &old_state);
  CHECK(&state.server(0) == &old_state.server(1));
  CHECK(state.server(0).mode(1000, conf::Duration(0)) == balancer::ServerMode::kDraining);
  CHECK(state.server(1).id() != old_state.server(0).id());
  CHECK(state.server(1).served() == 0);
  // The old configuration's request releases its slot through its own BackendState.
  old_state.release(in_flight, Outcome::kSuccess, 1000);
  CHECK(old_state.server(static_cast<size_t>(in_flight)).in_flight() == 0);
  // An address listed twice gets a state per entry.
  conf::Backend twice = make_backend({{1, 0}, {1, 0}});
  twice.servers[1].address = twice.servers[0].address;
  BackendState doubled(twice);
  BackendState again(twice, &doubled);
  CHECK(&again.server(0) == &doubled.server(0));
  CHECK(&again.server(1) == &doubled.server(1));
}
