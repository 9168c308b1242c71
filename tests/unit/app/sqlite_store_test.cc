#include "app/sqlite_store.h"

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "app/store.h"

using namespace edge::app;

namespace {

// A store file in a directory of its own, removed afterwards (with its -wal and -shm files).
struct StoreFile {
  StoreFile() {
    char tmpl[] = "/tmp/edge-store-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = dir + "/store.db";
  }
  ~StoreFile() { std::filesystem::remove_all(dir); }
  std::unique_ptr<Store> open(std::chrono::milliseconds busy = kDefaultBusyTimeout) const {
    std::string error;
    auto store = open_sqlite_store(path, busy, error);
    REQUIRE_MESSAGE(store, error);
    return store;
  }
  std::string dir;
  std::string path;
};

PostedReview review(uint32_t user, std::string text, int64_t time = 1700000000, uint8_t rating = 0) {
  PostedReview r;
  r.user = user;
  r.text = std::move(text);
  r.time = time;
  r.rating = rating;
  return r;
}

std::vector<ViewCount> top(Store& store, int64_t now, ViewWindow window, size_t n = 10) {
  std::vector<ViewCount> out;
  REQUIRE(store.most_viewed(now, window, n, out) == StoreStatus::kOk);
  return out;
}

uint64_t review_count(Store& store) {
  uint64_t n = 0;
  REQUIRE(store.posted_review_count(n) == StoreStatus::kOk);
  return n;
}

// Another connection to the file that holds its write lock until released.
struct WriteLock {
  explicit WriteLock(const std::string& path) {
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  void release() {
    if (!db) return;
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    db = nullptr;
  }
  ~WriteLock() { release(); }
  sqlite3* db = nullptr;
};

constexpr int64_t kNow = 1700000000;  // a multiple of 100 s, 20 min into its hour

}  // namespace

TEST_CASE("sqlite store: sessions open, are found, end; unknown tokens have no user") {
  StoreFile file;
  auto store = file.open();
  CHECK(store->open_session("abc", 7, kNow) == StoreStatus::kOk);
  std::optional<uint32_t> user;
  CHECK(store->session_user("abc", user) == StoreStatus::kOk);
  CHECK(user == 7u);
  CHECK(store->session_user("abd", user) == StoreStatus::kOk);
  CHECK_FALSE(user);
  CHECK(store->session_user("' OR 1=1 --", user) == StoreStatus::kOk);
  CHECK_FALSE(user);
  CHECK(store->end_session("abc") == StoreStatus::kOk);
  CHECK(store->session_user("abc", user) == StoreStatus::kOk);
  CHECK_FALSE(user);
  CHECK(store->end_session("never-opened") == StoreStatus::kOk);
}

TEST_CASE("sqlite store: at most kMaxSessions sessions, the oldest forgotten first") {
  std::string error;
  auto store = open_sqlite_store(":memory:", kDefaultBusyTimeout, error);
  REQUIRE(store);
  for (size_t i = 0; i < kMaxSessions + 3; ++i)
    REQUIRE(store->open_session("t" + std::to_string(i), static_cast<uint32_t>(i % 1000 + 1), kNow) == StoreStatus::kOk);
  std::optional<uint32_t> user;
  for (int i : {0, 1, 2}) {
    CHECK(store->session_user("t" + std::to_string(i), user) == StoreStatus::kOk);
    CHECK_FALSE(user);
  }
  CHECK(store->session_user("t3", user) == StoreStatus::kOk);
  CHECK(user == 4u);
  CHECK(store->session_user("t" + std::to_string(kMaxSessions + 2), user) == StoreStatus::kOk);
  CHECK(user.has_value());
}

TEST_CASE("sqlite store: reviews are numbered in order, kept per book oldest first, bounded") {
  std::string error;
  auto store = open_sqlite_store(":memory:", kDefaultBusyTimeout, error);
  REQUIRE(store);
  uint32_t id = 0;
  CHECK(store->add_review(3, review(5, "first", kNow, 4), id) == StoreStatus::kOk);
  CHECK(id == 1);
  CHECK(store->add_review(4, review(6, "elsewhere"), id) == StoreStatus::kOk);
  CHECK(id == 2);
  const std::string awkward = "quotes ' \" ; -- DROP TABLE reviews; é ☃ \n\ttab";
  CHECK(store->add_review(3, review(7, awkward, kNow + 5), id) == StoreStatus::kOk);
  CHECK(id == 3);

  std::vector<PostedReview> reviews;
  REQUIRE(store->posted_reviews(3, reviews) == StoreStatus::kOk);
  REQUIRE(reviews.size() == 2);
  CHECK(reviews[0].id == 1);
  CHECK(reviews[0].user == 5);
  CHECK(reviews[0].rating == 4);
  CHECK(reviews[0].time == kNow);
  CHECK(reviews[0].text == "first");
  CHECK(reviews[1].id == 3);
  CHECK(reviews[1].text == awkward);
  CHECK(reviews[1].rating == 0);
  REQUIRE(store->posted_reviews(99, reviews) == StoreStatus::kOk);
  CHECK(reviews.empty());
  CHECK(review_count(*store) == 3);

  for (size_t i = 3; i < kMaxPostedReviews; ++i) REQUIRE(store->add_review(9, review(1, "x"), id) == StoreStatus::kOk);
  CHECK(id == kMaxPostedReviews);
  CHECK(store->add_review(9, review(1, "one too many"), id) == StoreStatus::kFull);
  CHECK(review_count(*store) == kMaxPostedReviews);
}

TEST_CASE("sqlite store: views ranked per window; old slots leave their window") {
  StoreFile file;
  auto store = file.open();
  for (int i = 0; i < 3; ++i) REQUIRE(store->add_view(7, kNow) == StoreStatus::kOk);
  REQUIRE(store->add_view(9, kNow) == StoreStatus::kOk);
  REQUIRE(store->add_view(5, kNow) == StoreStatus::kOk);
  for (ViewWindow window : {ViewWindow::kHour, ViewWindow::kDay}) {
    auto list = top(*store, kNow, window);
    REQUIRE(list.size() == 3);
    CHECK(list[0].book == 7);
    CHECK(list[0].views == 3);
    CHECK(list[1].book == 5);  // ties: lower id first
    CHECK(list[2].book == 9);
    CHECK(top(*store, kNow, window, 1).size() == 1);
  }
  // The hour is the current 5-minute slot and the 11 before it; the day the current hour and the
  // 23 before it.
  const int64_t slot_start = kNow - kNow % kHourSpan;
  CHECK(top(*store, slot_start + 12 * kHourSpan - 1, ViewWindow::kHour).size() == 3);
  CHECK(top(*store, slot_start + 12 * kHourSpan, ViewWindow::kHour).empty());
  const int64_t hour_start = kNow - kNow % kDaySpan;
  CHECK(top(*store, hour_start + 24 * kDaySpan - 1, ViewWindow::kDay).size() == 3);
  CHECK(top(*store, hour_start + 24 * kDaySpan, ViewWindow::kDay).empty());

  // Views later on count in their own slots, and the earlier ones are pruned as time moves on.
  const int64_t later = kNow + 2 * kDaySpan;  // two hours on
  for (int i = 0; i < 3; ++i) REQUIRE(store->add_view(9, later) == StoreStatus::kOk);
  auto day = top(*store, later, ViewWindow::kDay);
  REQUIRE(day.size() == 3);
  CHECK(day[0].book == 9);
  CHECK(day[0].views == 4);
  auto hour = top(*store, later, ViewWindow::kHour);
  REQUIRE(hour.size() == 1);
  CHECK(hour[0].views == 3);
  REQUIRE(store->add_view(1, kNow + 30 * kDaySpan) == StoreStatus::kOk);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(file.path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* rows = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM views", -1, &rows, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(rows) == SQLITE_ROW);
  CHECK(sqlite3_column_int64(rows, 0) == 2);  // book 1's two slots: everything older is gone
  sqlite3_finalize(rows);
  sqlite3_close(db);
}

TEST_CASE("sqlite store: two stores on one file see each other's writes") {
  StoreFile file;
  auto a = file.open();
  auto b = file.open();
  REQUIRE(a->open_session("tok", 3, kNow) == StoreStatus::kOk);
  std::optional<uint32_t> user;
  REQUIRE(b->session_user("tok", user) == StoreStatus::kOk);
  CHECK(user == 3u);
  uint32_t id = 0;
  REQUIRE(b->add_review(2, review(3, "from b"), id) == StoreStatus::kOk);
  std::vector<PostedReview> reviews;
  REQUIRE(a->posted_reviews(2, reviews) == StoreStatus::kOk);
  REQUIRE(reviews.size() == 1);
  CHECK(reviews[0].text == "from b");
  REQUIRE(a->add_view(2, kNow) == StoreStatus::kOk);
  REQUIRE(b->add_view(2, kNow) == StoreStatus::kOk);
  CHECK(top(*a, kNow, ViewWindow::kHour).at(0).views == 2);
  REQUIRE(b->end_session("tok") == StoreStatus::kOk);
  REQUIRE(a->session_user("tok", user) == StoreStatus::kOk);
  CHECK_FALSE(user);
}

TEST_CASE("sqlite store: concurrent writers lose no view and no review") {
  StoreFile file;
  file.open();  // the tables, before the writers race for the file
  constexpr int kWriters = 4, kViews = 300, kReviews = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([&, w] {
      std::string error;
      auto store = open_sqlite_store(file.path, std::chrono::seconds(30), error);
      if (!store) {
        ++failures;
        return;
      }
      uint32_t id = 0;
      for (int i = 0; i < kViews; ++i) {
        if (store->add_view(static_cast<uint32_t>(i % 3 + 1), kNow) != StoreStatus::kOk) ++failures;
        if (i < kReviews &&
            store->add_review(static_cast<uint32_t>(w + 1), review(static_cast<uint32_t>(w + 1), "r"), id) != StoreStatus::kOk)
          ++failures;
      }
    });
  for (auto& t : writers) t.join();
  CHECK(failures == 0);
  auto store = file.open();
  uint64_t total = 0;
  for (const ViewCount& v : top(*store, kNow, ViewWindow::kDay)) total += v.views;
  CHECK(total == kWriters * kViews);
  CHECK(top(*store, kNow, ViewWindow::kHour).at(0).views == kWriters * kViews / 3);
  CHECK(review_count(*store) == kWriters * kReviews);
  std::vector<PostedReview> reviews;
  REQUIRE(store->posted_reviews(2, reviews) == StoreStatus::kOk);
  CHECK(reviews.size() == kReviews);
}

TEST_CASE("sqlite store: a locked store is waited for, and answers kBusy only past busy_timeout") {
  StoreFile file;
  auto patient = file.open(std::chrono::seconds(30));
  auto hasty = file.open(std::chrono::milliseconds(50));
  uint32_t id = 0;
  {
    WriteLock lock(file.path);
    CHECK(hasty->add_review(1, review(1, "too soon"), id) == StoreStatus::kBusy);
    CHECK_FALSE(hasty->last_error().empty());
    CHECK(hasty->add_view(1, kNow) == StoreStatus::kBusy);
    CHECK(hasty->open_session("s", 1, kNow) == StoreStatus::kBusy);
    // Readers are not blocked by a writer in WAL mode.
    std::optional<uint32_t> user;
    CHECK(hasty->session_user("s", user) == StoreStatus::kOk);

    // The lock is let go while the patient writer waits; its write then goes through.
    std::atomic<bool> waiting{false};
    std::thread releaser([&] {
      while (!waiting) std::this_thread::yield();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      lock.release();
    });
    waiting = true;
    CHECK(patient->add_review(1, review(1, "waited"), id) == StoreStatus::kOk);
    releaser.join();
  }
  CHECK(id == 1);  // the busy attempts stored nothing
  CHECK(review_count(*patient) == 1);
  CHECK(hasty->add_view(1, kNow) == StoreStatus::kOk);  // and the store works again
}

TEST_CASE("sqlite store: a file that is not a database fails to open with a message") {
  StoreFile file;
  {
    FILE* f = std::fopen(file.path.c_str(), "w");
    REQUIRE(f);
    std::fputs("this is not a database, just text that is long enough to have a header\n", f);
    std::fclose(f);
  }
  std::string error;
  CHECK_FALSE(open_sqlite_store(file.path, kDefaultBusyTimeout, error));
  CHECK(error.find("not a database") != std::string::npos);
  CHECK_FALSE(open_sqlite_store(file.dir + "/missing-dir/store.db", kDefaultBusyTimeout, error));
  CHECK_FALSE(error.empty());
}

TEST_CASE("open_store: the spec picks the kind; anything else is refused") {
  std::string error;
  CHECK(open_store("sqlite::memory:", kDefaultBusyTimeout, error));
  CHECK_FALSE(open_store("sqlite:", kDefaultBusyTimeout, error));
  CHECK_FALSE(open_store("mysql://x", kDefaultBusyTimeout, error));
  CHECK(error == "a store is sqlite:PATH or postgresql://...");
  CHECK_FALSE(open_store("", kDefaultBusyTimeout, error));
}
