// app/view_windows: the demo's most viewed books in the last hour and the last day, counted
// "pro rata temporis" (views within a moving window, not since the start) in bounded memory.
//
// Two rings of time slots, each slot a top::SpaceSaving of book ids: 5-minute slots for the hour
// (the current one and the 11 before it) and 1-hour slots for the day (the current one and the
// 23 before it). A view goes to the current slot of both rings; a window is read as its ring's
// slots merged, so "the last hour" is the last 55 to 60 minutes of views and "the last day" the
// last 23 to 24 hours. A slot holds at most `slot_capacity` books: memory stays bounded however
// many books are viewed, and a book is counted exactly while it stays among a slot's
// `slot_capacity` most viewed (top/heavy_hitters.h says what the other counts bound).
//
// Time is passed in (Unix seconds) so the windows can be tested without a clock. One owner (the
// DemoSite of one app server's loop); not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "app/demo_pages.h"
#include "top/heavy_hitters.h"

namespace edge::app {

enum class ViewWindow { kHour, kDay };

class ViewWindows {
 public:
  static constexpr size_t kDefaultSlotCapacity = 2048;
  explicit ViewWindows(size_t slot_capacity = kDefaultSlotCapacity);

  void add(int64_t now, uint32_t book);
  // The n most viewed books of the window ending at `now`, most first (ties: lower id first);
  // books not viewed in it are left out.
  std::vector<ViewCount> most_viewed(int64_t now, ViewWindow window, size_t n) const;

 private:
  struct Ring {
    Ring(int64_t slot_seconds, size_t slots, size_t capacity);
    top::SpaceSaving& current(int64_t now);
    std::vector<const top::SpaceSaving*> covering(int64_t now) const;

    int64_t slot_seconds;
    std::vector<top::SpaceSaving> slots;
    std::vector<int64_t> numbers;  // the time slot (now / slot_seconds) each holds; -1: none yet
  };

  Ring hour_;
  Ring day_;
};

}  // namespace edge::app
