// top/windows: heavy hitters per time window (10 s, 1 min, 10 min, 1 h), in bounded memory.
//
// Three levels of time slots, each slot a SpaceSaving: 10-second slots (the current one and the
// 6 before it), 1-minute slots (current + 10) and 10-minute slots (current + 6). Adds go to the
// current 10-second slot only; when it closes it is folded into the current minute, and a
// closed minute into the current 10 minutes, so an add costs one SpaceSaving::add whatever the
// windows. A window is read as the slots that cover it: the last `window` seconds and up to
// one slot more (10 s: 10-20 s; 1 min: 60-70 s; 10 min: 10-11 min; 1 h: 60-70 min).
//
// Time is passed in (milliseconds, any monotonic origin) so the slots can be tested without a
// clock. One owner, as SpaceSaving.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "top/heavy_hitters.h"

namespace edge::top {

enum class Window { k10s, k1m, k10m, k1h };
// "10s", "1m", "10m", "1h"; false for anything else.
bool parse_window(std::string_view text, Window& out);

// What a ranking weighs: requests, bytes sent to clients, cache misses, or microseconds to the
// backend's first byte.
enum class By { kRequests, kBytes, kMisses, kBackendTime };
constexpr size_t kByCount = 4;
// "requests", "bytes", "misses", "backend_time"; false for anything else.
bool parse_by(std::string_view text, By& out);

// GET /top's question: the heaviest `n` keys (host, then target) of a window, by one weight,
// of one host when `host` is set.
struct Query {
  Window window = Window::k1m;
  By by = By::kRequests;
  std::string host;
  size_t n = 20;
};

class Windows {
 public:
  explicit Windows(size_t capacity);
  Windows(const Windows& other) : levels_(other.levels_) {}  // adds to its own slots
  Windows& operator=(const Windows&) = delete;

  void add(int64_t now_ms, const HashedKey& key, uint64_t weight = 1);
  void add(int64_t now_ms, std::string_view key, uint64_t weight = 1) { add(now_ms, HashedKey(key), weight); }
  // The summaries that together cover `window` at now_ms (borrowed until the next add()).
  std::vector<const SpaceSaving*> covering(int64_t now_ms, Window window);

 private:
  struct Level {
    int64_t slot_ms;
    std::vector<SpaceSaving> ring;
    int64_t current = -1;  // the current slot's number (time / slot_ms); -1 before any
    SpaceSaving& slot(int64_t number) { return ring[static_cast<size_t>(number % static_cast<int64_t>(ring.size()))]; }
  };
  // Moves `level`'s current slot to the one holding `time_ms`, folding each slot it closes into
  // the level above.
  void advance(size_t level, int64_t time_ms);

  std::array<Level, 3> levels_;
  // The current 10-second slot and where it ends: an add within it neither divides nor calls.
  SpaceSaving* adding_ = nullptr;
  int64_t adding_until_ms_ = 0;
};

}  // namespace edge::top
