#include "app/view_windows.h"

#include <doctest/doctest.h>

using namespace edge::app;

namespace {
constexpr int64_t kStart = 1700000100;  // 100 s into a 5-minute slot, 1,300 s into an hour

uint64_t views_of(const std::vector<ViewCount>& top, uint32_t book) {
  for (const ViewCount& v : top)
    if (v.book == book) return v.views;
  return 0;
}
}  // namespace

TEST_CASE("view windows: a view counts in the last hour and the last day until it leaves them") {
  ViewWindows w;
  for (int i = 0; i < 4; ++i) w.add(kStart, 12);
  w.add(kStart, 3);
  CHECK(w.most_viewed(kStart, ViewWindow::kHour, 10).size() == 2);
  CHECK(views_of(w.most_viewed(kStart, ViewWindow::kHour, 10), 12) == 4);

  // 55 minutes on the views are still in the hour; an hour and five minutes on they are not.
  CHECK(views_of(w.most_viewed(kStart + 55 * 60, ViewWindow::kHour, 10), 12) == 4);
  CHECK(w.most_viewed(kStart + 65 * 60, ViewWindow::kHour, 10).empty());
  CHECK(views_of(w.most_viewed(kStart + 65 * 60, ViewWindow::kDay, 10), 12) == 4);
  CHECK(views_of(w.most_viewed(kStart + 23 * 3600 - 1300, ViewWindow::kDay, 10), 12) == 4);
  CHECK(w.most_viewed(kStart + 25 * 3600, ViewWindow::kDay, 10).empty());
}

TEST_CASE("view windows: views in different slots add up, ranked most first, ties by lower id") {
  ViewWindows w;
  for (int minute = 0; minute < 50; minute += 10) {
    w.add(kStart + minute * 60, 7);
    w.add(kStart + minute * 60, 10);
  }
  w.add(kStart + 30 * 60, 9);
  std::vector<ViewCount> top = w.most_viewed(kStart + 50 * 60, ViewWindow::kHour, 10);
  REQUIRE(top.size() == 3);
  CHECK(top[0].book == 7);  // 7 and 10 tie at 5: the lower id first (not "10" before "7" as text)
  CHECK(top[0].views == 5);
  CHECK(top[1].book == 10);
  CHECK(top[2].book == 9);
  CHECK(w.most_viewed(kStart + 50 * 60, ViewWindow::kHour, 1).size() == 1);
}

TEST_CASE("view windows: a slot reused a whole ring later starts empty") {
  ViewWindows w;
  w.add(kStart, 1);
  // 12 five-minute slots later the same slot index comes back for the hour ring.
  w.add(kStart + 12 * 5 * 60, 2);
  std::vector<ViewCount> hour = w.most_viewed(kStart + 12 * 5 * 60, ViewWindow::kHour, 10);
  REQUIRE(hour.size() == 1);
  CHECK(hour[0].book == 2);
  CHECK(views_of(w.most_viewed(kStart + 12 * 5 * 60, ViewWindow::kDay, 10), 1) == 1);
}

TEST_CASE("view windows: memory is bounded; a book viewed far more than the rest stays exact") {
  ViewWindows w(16);
  for (uint32_t book = 100; book < 10100; ++book) w.add(kStart, book);  // a scan of 10,000 books
  for (int i = 0; i < 5000; ++i) w.add(kStart, 42);
  std::vector<ViewCount> top = w.most_viewed(kStart, ViewWindow::kHour, 3);
  REQUIRE(top.size() == 3);
  CHECK(top[0].book == 42);
  CHECK(top[0].views >= 5000);
  CHECK(top[0].views <= 5000 + 10000 / 16 + 1);
}
