#include "top/windows.h"

namespace edge::top {

bool parse_window(std::string_view text, Window& out) {
  if (text == "10s") out = Window::k10s;
  else if (text == "1m") out = Window::k1m;
  else if (text == "10m") out = Window::k10m;
  else if (text == "1h") out = Window::k1h;
  else return false;
  return true;
}

bool parse_by(std::string_view text, By& out) {
  if (text == "requests") out = By::kRequests;
  else if (text == "bytes") out = By::kBytes;
  else if (text == "misses") out = By::kMisses;
  else if (text == "backend_time") out = By::kBackendTime;
  else return false;
  return true;
}

Windows::Windows(size_t capacity)
    : levels_{Level{10'000, std::vector<SpaceSaving>(7, SpaceSaving(capacity))},
              Level{60'000, std::vector<SpaceSaving>(11, SpaceSaving(capacity))},
              Level{600'000, std::vector<SpaceSaving>(7, SpaceSaving(capacity))}} {}

void Windows::advance(size_t index, int64_t time_ms) {
  Level& level = levels_[index];
  const int64_t target = time_ms / level.slot_ms;
  if (level.current < 0) {
    level.current = target;
    return;
  }
  const int64_t ring = static_cast<int64_t>(level.ring.size());
  while (level.current < target) {
    SpaceSaving& closing = level.slot(level.current);
    if (index + 1 < levels_.size() && closing.size() > 0) {
      advance(index + 1, level.current * level.slot_ms);
      SpaceSaving& into = levels_[index + 1].slot(levels_[index + 1].current);
      for (const Hitter& hitter : closing.hitters()) into.add(hitter.key, hitter.count);
    }
    if (target - level.current > ring) {
      // A silence longer than the ring: every slot of it is empty.
      for (SpaceSaving& slot : level.ring) slot.clear();
      level.current = target;
      return;
    }
    ++level.current;
    level.slot(level.current).clear();
  }
}

void Windows::add(int64_t now_ms, const HashedKey& key, uint64_t weight) {
  if (!adding_ || now_ms >= adding_until_ms_) {
    advance(0, now_ms);
    Level& level = levels_[0];
    adding_ = &level.slot(level.current);
    adding_until_ms_ = (level.current + 1) * level.slot_ms;
  }
  adding_->add(key, weight);
}

std::vector<const SpaceSaving*> Windows::covering(int64_t now_ms, Window window) {
  advance(0, now_ms);
  // The levels above are brought to the same time: a minute that ended in silence is closed.
  advance(1, now_ms);
  advance(2, now_ms);
  std::vector<const SpaceSaving*> out;
  auto take = [&](size_t index, int64_t closed) {
    Level& level = levels_[index];
    for (int64_t k = 0; k <= closed && k <= level.current; ++k) out.push_back(&level.slot(level.current - k));
  };
  switch (window) {
    case Window::k10s: take(0, 1); break;
    case Window::k1m: take(0, 6); break;
    case Window::k10m:
      take(0, 0);
      take(1, 10);
      break;
    case Window::k1h:
      take(0, 0);
      take(1, 0);
      take(2, 6);
      break;
  }
  return out;
}

}  // namespace edge::top
