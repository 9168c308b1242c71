#include "app/view_windows.h"

#include <algorithm>
#include <charconv>
#include <string>

namespace edge::app {

ViewWindows::Ring::Ring(int64_t seconds, size_t count, size_t capacity)
    : slot_seconds(seconds), slots(count, top::SpaceSaving(capacity)), numbers(count, -1) {}

top::SpaceSaving& ViewWindows::Ring::current(int64_t now) {
  const int64_t number = std::max<int64_t>(now, 0) / slot_seconds;
  const size_t index = static_cast<size_t>(number % static_cast<int64_t>(slots.size()));
  // A slot last used a whole ring ago (or earlier) starts over.
  if (numbers[index] != number) {
    slots[index].clear();
    numbers[index] = number;
  }
  return slots[index];
}

std::vector<const top::SpaceSaving*> ViewWindows::Ring::covering(int64_t now) const {
  const int64_t number = std::max<int64_t>(now, 0) / slot_seconds;
  const int64_t oldest = number - static_cast<int64_t>(slots.size()) + 1;
  std::vector<const top::SpaceSaving*> out;
  for (size_t i = 0; i < slots.size(); ++i)
    if (numbers[i] >= oldest && numbers[i] <= number) out.push_back(&slots[i]);
  return out;
}

ViewWindows::ViewWindows(size_t slot_capacity) : hour_(5 * 60, 12, slot_capacity), day_(60 * 60, 24, slot_capacity) {}

void ViewWindows::add(int64_t now, uint32_t book) {
  const std::string key = std::to_string(book);
  hour_.current(now).add(key);
  day_.current(now).add(key);
}

std::vector<ViewCount> ViewWindows::most_viewed(int64_t now, ViewWindow window, size_t n) const {
  const Ring& ring = window == ViewWindow::kHour ? hour_ : day_;
  const std::vector<top::Hitter> hitters = top::merge(ring.covering(now), n);
  std::vector<ViewCount> out;
  out.reserve(hitters.size());
  for (const top::Hitter& h : hitters) {
    uint32_t book = 0;
    std::from_chars(h.key.data(), h.key.data() + h.key.size(), book);
    out.push_back({book, h.count});
  }
  // merge() breaks ties by the key's text ("10" before "9"); the page lists by number.
  std::stable_sort(out.begin(), out.end(),
                   [](const ViewCount& a, const ViewCount& b) { return a.views != b.views ? a.views > b.views : a.book < b.book; });
  return out;
}

}  // namespace edge::app
