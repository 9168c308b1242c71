#include "proxy/herd.h"

#include <doctest/doctest.h>

using edge::proxy::RouteStreak;

TEST_CASE("route streak: a route passes only after `threshold` not-storable fills in a row") {
  RouteStreak streak;
  CHECK_FALSE(streak.passes(4));
  for (int i = 0; i < 3; ++i) streak.not_storable(4);
  CHECK(streak.count() == 3u);
  CHECK_FALSE(streak.passes(4));
  streak.not_storable(4);
  CHECK(streak.passes(4));
  // Saturates at the threshold: one storable response is enough to bring coalescing back.
  for (int i = 0; i < 100; ++i) streak.not_storable(4);
  CHECK(streak.count() == 4u);
}

TEST_CASE("route streak: a storable response resets it; a new streak has to be whole again") {
  RouteStreak streak;
  for (int i = 0; i < 4; ++i) streak.not_storable(4);
  REQUIRE(streak.passes(4));
  streak.storable();
  CHECK(streak.count() == 0u);
  CHECK_FALSE(streak.passes(4));
  for (int i = 0; i < 2; ++i) streak.not_storable(4);
  streak.storable();
  for (int i = 0; i < 3; ++i) streak.not_storable(4);
  CHECK_FALSE(streak.passes(4));  // 2, reset, 3: never 4 in a row
  streak.not_storable(4);
  CHECK(streak.passes(4));
}

TEST_CASE("route streak: threshold 0 never passes; a lower threshold after a reload-like change") {
  RouteStreak streak;
  for (int i = 0; i < 10; ++i) streak.not_storable(0);
  CHECK(streak.count() == 0u);
  CHECK_FALSE(streak.passes(0));
  streak.not_storable(1);
  CHECK(streak.passes(1));
  CHECK_FALSE(streak.passes(2));
}

#include <set>

#include "conf/config.h"
#include "proxy/generation.h"

namespace {
edge::conf::Config herd_config() {
  edge::conf::LoadResult r = edge::conf::load_string(R"(
listen: [{address: 127.0.0.1:1}]
backends:
  a: {servers: [127.0.0.1:2]}
hosts:
  - match: [www.example.com]
    backend: a
    routes:
      - {path: /api/}
      - {path: /static/}
  - match: ["*"]
    backend: a
    routes:
      - {path: /api/}
)", "test.yaml");
  REQUIRE(r.errors.empty());
  return std::move(*r.config);
}
}  // namespace

TEST_CASE("route streaks: one per route and per host's own settings, fresh in each generation") {
  using edge::proxy::Generation;
  using edge::proxy::LabelSlots;
  using edge::proxy::RouteMatch;
  LabelSlots hosts(16), servers(16);
  Generation first(herd_config(), {}, nullptr, hosts, servers);
  CHECK(first.route_streak(RouteMatch{-1, -1, 0}) == nullptr);
  std::set<edge::proxy::RouteStreak*> distinct;
  for (RouteMatch m : {RouteMatch{0, -1, 0}, RouteMatch{0, 0, 0}, RouteMatch{0, 1, 0}, RouteMatch{1, -1, 0},
                       RouteMatch{1, 0, 0}}) {
    REQUIRE(first.route_streak(m) != nullptr);
    CHECK(first.route_streak(m)->count() == 0u);
    distinct.insert(first.route_streak(m));
  }
  CHECK(distinct.size() == 5u);
  // The same route in both hosts is two routes: learning one teaches the other nothing.
  for (int i = 0; i < 4; ++i) first.route_streak(RouteMatch{0, 0, 0})->not_storable(4);
  CHECK(first.route_streak(RouteMatch{0, 0, 0})->passes(4));
  CHECK_FALSE(first.route_streak(RouteMatch{1, 0, 0})->passes(4));
  CHECK_FALSE(first.route_streak(RouteMatch{0, -1, 0})->passes(4));
  // A reload's generation has learned nothing.
  Generation second(herd_config(), {}, &first, hosts, servers);
  CHECK(second.route_streak(RouteMatch{0, 0, 0})->count() == 0u);
}
