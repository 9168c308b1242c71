#include "top/heavy_hitters.h"

#include <doctest/doctest.h>

#include <map>
#include <random>
#include <string>

#include "hash/keyed_hash.h"
#include "top/windows.h"

using namespace edge::top;

namespace {
uint64_t count_of(const std::vector<Hitter>& hitters, const std::string& key) {
  for (const Hitter& h : hitters)
    if (h.key == key) return h.count;
  return 0;
}
}  // namespace

TEST_CASE("space-saving: keys are hashed with the keyed hash, whose collisions cannot be computed offline") {
  // The keys are what clients ask for: std::hash would let them aim a flood at one bucket.
  for (std::string_view key : {"", "example.com/", "example.com/a?b=c"}) {
    CHECK(HashedKey(key).hash == static_cast<size_t>(edge::hash::keyed_hash(key)));
    CHECK(HashedKey(key).hash != std::hash<std::string_view>{}(key));
  }
}

TEST_CASE("space-saving: exact while every key fits") {
  SpaceSaving s(4);
  s.add("/a");
  s.add("/b", 5);
  s.add("/a");
  s.add("/c", 2);
  const std::vector<Hitter> top = merge({&s}, 10);
  REQUIRE(top.size() == 3);
  CHECK(top[0].key == "/b");
  CHECK(top[0].count == 5);
  CHECK(top[1].key == "/a");  // 2, tied with /c: by key
  CHECK(top[1].count == 2);
  CHECK(top[2].key == "/c");
  for (const Hitter& h : top) CHECK(h.error == 0);
  CHECK(s.total() == 9);
  CHECK(s.floor() == 0);
}

TEST_CASE("space-saving: a new key takes the smallest count's place, which becomes its error") {
  SpaceSaving s(2);
  s.add("/a", 10);
  s.add("/b", 3);
  s.add("/c");  // /b goes; /c starts at 3 + 1 with error 3
  const std::vector<Hitter> held = s.hitters();
  CHECK(count_of(held, "/b") == 0);
  CHECK(count_of(held, "/c") == 4);
  for (const Hitter& h : held)
    if (h.key == "/c") CHECK(h.error == 3);
  CHECK(s.floor() == 4);
}

TEST_CASE("space-saving: heavy hitters of a skewed stream are held, with bounds that hold") {
  // A Zipf-like stream over 5000 keys, as an attacker or a crawler would send: 20 hot keys take
  // most of it, and a long tail of keys is seen once or twice each.
  std::mt19937 rng(7);
  std::map<std::string, uint64_t> truth;
  SpaceSaving s(64);
  std::uniform_int_distribution<int> tail(0, 4999), hot(0, 19), pick(0, 9);
  for (int i = 0; i < 100000; ++i) {
    const std::string key = pick(rng) < 6 ? "/hot/" + std::to_string(hot(rng)) : "/tail/" + std::to_string(tail(rng));
    ++truth[key];
    s.add(key);
  }
  CHECK(s.size() == 64);
  for (const Hitter& h : s.hitters()) {
    CHECK(h.count >= truth[h.key]);
    CHECK(h.count - h.error <= truth[h.key]);
  }
  // Every key heavier than total / capacity is held.
  const std::vector<Hitter> top = merge({&s}, 20);
  for (int k = 0; k < 20; ++k) CHECK(count_of(top, "/hot/" + std::to_string(k)) >= truth["/hot/" + std::to_string(k)]);
}

TEST_CASE("space-saving: a copy holds the same keys and counts, and each goes on alone") {
  SpaceSaving s(3);
  s.add("/a", 4);
  s.add("/b", 2);
  s.add("/c", 1);
  s.add("/d");  // evicts /c: a reused slot
  SpaceSaving copy(s);
  s.add("/b", 10);
  copy.add("/a", 1);
  CHECK(count_of(copy.hitters(), "/b") == 2);
  CHECK(count_of(copy.hitters(), "/a") == 5);
  copy.add("/e");  // evicts the copy's smallest, never a slot of s
  CHECK(count_of(s.hitters(), "/b") == 12);
  CHECK(count_of(s.hitters(), "/d") == 2);
  CHECK(count_of(copy.hitters(), "/e") == 3);
  CHECK(copy.size() == 3);
  CHECK(s.total() == 18);
  CHECK(copy.total() == 10);
  // Every key is found where the heap says it is: adding to each again moves the right count.
  for (const Hitter& h : copy.hitters()) {
    copy.add(h.key, 100);
    CHECK(count_of(copy.hitters(), h.key) == h.count + 100);
  }
}

TEST_CASE("merge: counts add up across summaries, and a full summary's floor bounds what it dropped") {
  SpaceSaving one(2), two(2);
  one.add("/a", 10);
  one.add("/b", 4);
  two.add("/a", 1);
  two.add("/c", 6);
  two.add("/d", 2);  // two is full: /a (1) goes, /d holds 3 with error 1
  uint64_t total = 0;
  const std::vector<Hitter> top = merge({&one, &two}, 10, &total);
  CHECK(total == 23);
  // /a: 10 from one, absent from full two (floor 3): at most 13, error 3.
  REQUIRE(top[0].key == "/a");
  CHECK(top[0].count == 13);
  CHECK(top[0].error == 3);
  // /b was only in one (which is full, floor 4): present there, absent from two: + two's floor.
  CHECK(count_of(top, "/b") == 4 + 3);
  CHECK(count_of(top, "/c") == 6 + 4);
  CHECK(merge({&one, &two}, 2).size() == 2);
}

TEST_CASE("windows: each window reads the slots that cover it, and slots expire") {
  Windows w(16);
  const int64_t t0 = 1'000'000'000;  // on a 10-minute boundary
  w.add(t0, "/old", 5);
  w.add(t0 + 65'000, "/minute", 3);
  w.add(t0 + 69'000, "/now", 1);
  auto top = [&](int64_t now, Window window) { return merge(w.covering(now, window), 10); };
  // 10 s at 69 s: the slots 60-70 s: /minute and /now.
  CHECK(count_of(top(t0 + 69'000, Window::k10s), "/now") == 1);
  CHECK(count_of(top(t0 + 69'000, Window::k10s), "/minute") == 3);
  CHECK(count_of(top(t0 + 69'000, Window::k10s), "/old") == 0);
  // 1 min at 69 s reaches back to 0 s... (60-70 s plus the six slots before): /old too.
  CHECK(count_of(top(t0 + 69'000, Window::k1m), "/old") == 5);
  // 10 s later /minute and /now are in the previous slot; 20 s later, gone from 10 s.
  CHECK(count_of(top(t0 + 79'000, Window::k10s), "/now") == 1);
  CHECK(count_of(top(t0 + 95'000, Window::k10s), "/now") == 0);
  // 10 min and 1 h still hold all three, folded into their minutes.
  for (Window window : {Window::k10m, Window::k1h}) {
    const std::vector<Hitter> all = top(t0 + 95'000, window);
    CHECK(count_of(all, "/old") == 5);
    CHECK(count_of(all, "/minute") == 3);
    CHECK(count_of(all, "/now") == 1);
  }
  // 12 minutes on, 10 min has let them go and 1 h has not.
  CHECK(top(t0 + 12 * 60'000, Window::k10m).empty());
  CHECK(count_of(top(t0 + 12 * 60'000, Window::k1h), "/old") == 5);
  // After two hours of silence, nothing is left anywhere.
  w.add(t0 + 2 * 3'600'000, "/back");
  const std::vector<Hitter> later = top(t0 + 2 * 3'600'000, Window::k1h);
  REQUIRE(later.size() == 1);
  CHECK(later[0].key == "/back");
}

TEST_CASE("windows: window names") {
  Window w{};
  CHECK(parse_window("10s", w));
  CHECK(w == Window::k10s);
  CHECK(parse_window("1h", w));
  CHECK(w == Window::k1h);
  CHECK_FALSE(parse_window("1d", w));
  CHECK_FALSE(parse_window("", w));
  CHECK_FALSE(parse_window("10S", w));
}
