#include "app/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace edge::app {

namespace {

constexpr const char* kSqliteSchema = R"sql(
CREATE TABLE IF NOT EXISTS sessions (
  seq INTEGER PRIMARY KEY,
  token TEXT NOT NULL UNIQUE,
  user_id INTEGER NOT NULL,
  created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reviews (
  id INTEGER PRIMARY KEY,
  book INTEGER NOT NULL,
  user_id INTEGER NOT NULL,
  rating INTEGER NOT NULL,
  created INTEGER NOT NULL,
  text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS reviews_by_book ON reviews (book, id);
CREATE TABLE IF NOT EXISTS views (
  span INTEGER NOT NULL,
  slot INTEGER NOT NULL,
  book INTEGER NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (span, slot, book)) WITHOUT ROWID;
)sql";

struct StatementDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

struct Window {
  int64_t span;
  int64_t slots;
};
Window window_of(ViewWindow w) { return w == ViewWindow::kHour ? Window{kHourSpan, kHourSlots} : Window{kDaySpan, kDaySlots}; }

// A statement's parameters bound and its bindings cleared again when the call is over, so the
// next call starts from a clean statement whatever this one did.
class Use {
 public:
  explicit Use(sqlite3_stmt* s) : s_(s) {}
  ~Use() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  Use& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Use& bind(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  int step() { return sqlite3_step(s_); }
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, std::chrono::milliseconds busy_timeout) : db_(db), busy_timeout_(busy_timeout) {
    sqlite3_busy_handler(db_, &SqliteStore::on_busy, this);
  }
  ~SqliteStore() override {
    statements_ = {};
    sqlite3_close(db_);
  }

  bool prepare(std::string& error) {
    const char* const sql[] = {
        "BEGIN IMMEDIATE",
        "COMMIT",
        "ROLLBACK",
        "INSERT OR REPLACE INTO sessions (token, user_id, created) VALUES (?1, ?2, ?3)",
        "DELETE FROM sessions WHERE seq <= (SELECT max(seq) FROM sessions) - ?1",
        "SELECT user_id FROM sessions WHERE token = ?1",
        "DELETE FROM sessions WHERE token = ?1",
        "SELECT coalesce(max(id), 0) FROM reviews",
        "INSERT INTO reviews (book, user_id, rating, created, text) VALUES (?1, ?2, ?3, ?4, ?5)",
        "SELECT id, user_id, rating, created, text FROM reviews WHERE book = ?1 ORDER BY id",
        "SELECT count(*) FROM reviews",
        "INSERT INTO views (span, slot, book, count) VALUES (?1, ?2, ?3, 1) "
        "ON CONFLICT (span, slot, book) DO UPDATE SET count = count + 1",
        "DELETE FROM views WHERE span = ?1 AND slot <= ?2",
        "SELECT book, sum(count) AS total FROM views WHERE span = ?1 AND slot > ?2 AND slot <= ?3 "
        "GROUP BY book ORDER BY total DESC, book LIMIT ?4",
    };
    static_assert(std::size(sql) == kStatementCount);
    for (size_t i = 0; i < kStatementCount; ++i) {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v3(db_, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
        error = sqlite3_errmsg(db_);
        return false;
      }
      statements_[i].reset(s);
    }
    return true;
  }

  StoreStatus open_session(std::string_view token, uint32_t user, int64_t now) override {
    if (StoreStatus s = begin(); s != StoreStatus::kOk) return s;
    if (Use(get(kInsertSession)).bind(1, token).bind(2, user).bind(3, now).step() != SQLITE_DONE ||
        Use(get(kTrimSessions)).bind(1, static_cast<int64_t>(kMaxSessions)).step() != SQLITE_DONE)
      return rollback();
    return commit();
  }

  StoreStatus session_user(std::string_view token, std::optional<uint32_t>& user) override {
    user.reset();
    Use q(get(kFindSession));
    q.bind(1, token);
    const int rc = q.step();
    if (rc == SQLITE_ROW) user = static_cast<uint32_t>(sqlite3_column_int64(q.get(), 0));
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? StoreStatus::kOk : fail();
  }

  StoreStatus end_session(std::string_view token) override {
    return Use(get(kEndSession)).bind(1, token).step() == SQLITE_DONE ? StoreStatus::kOk : fail();
  }

  StoreStatus add_review(uint32_t book, const PostedReview& review, uint32_t& id) override {
    if (StoreStatus s = begin(); s != StoreStatus::kOk) return s;
    {
      // Reviews are never deleted, so the highest id is how many there are.
      Use last(get(kLastReview));
      if (last.step() != SQLITE_ROW) return rollback();
      if (sqlite3_column_int64(last.get(), 0) >= static_cast<int64_t>(kMaxPostedReviews)) {
        rollback();
        return StoreStatus::kFull;
      }
    }
    if (Use(get(kInsertReview))
            .bind(1, book)
            .bind(2, review.user)
            .bind(3, review.rating)
            .bind(4, review.time)
            .bind(5, review.text)
            .step() != SQLITE_DONE)
      return rollback();
    id = static_cast<uint32_t>(sqlite3_last_insert_rowid(db_));
    return commit();
  }

  StoreStatus posted_reviews(uint32_t book, std::vector<PostedReview>& out) override {
    out.clear();
    Use q(get(kBookReviews));
    q.bind(1, book);
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) {
      PostedReview r;
      r.id = static_cast<uint32_t>(sqlite3_column_int64(q.get(), 0));
      r.user = static_cast<uint32_t>(sqlite3_column_int64(q.get(), 1));
      r.rating = static_cast<uint8_t>(sqlite3_column_int64(q.get(), 2));
      r.time = sqlite3_column_int64(q.get(), 3);
      r.text.assign(reinterpret_cast<const char*>(sqlite3_column_text(q.get(), 4)),
                    static_cast<size_t>(sqlite3_column_bytes(q.get(), 4)));
      out.push_back(std::move(r));
    }
    return rc == SQLITE_DONE ? StoreStatus::kOk : fail();
  }

  StoreStatus posted_review_count(uint64_t& count) override {
    Use q(get(kCountReviews));
    if (q.step() != SQLITE_ROW) return fail();
    count = static_cast<uint64_t>(sqlite3_column_int64(q.get(), 0));
    return StoreStatus::kOk;
  }

  StoreStatus add_view(uint32_t book, int64_t now) override {
    if (StoreStatus s = begin(); s != StoreStatus::kOk) return s;
    for (ViewWindow w : {ViewWindow::kHour, ViewWindow::kDay}) {
      const Window window = window_of(w);
      const int64_t slot = now / window.span;
      if (Use(get(kAddView)).bind(1, window.span).bind(2, slot).bind(3, book).step() != SQLITE_DONE) return rollback();
      int64_t& pruned = w == ViewWindow::kHour ? pruned_hour_slot_ : pruned_day_slot_;
      if (slot > pruned) {
        if (Use(get(kPruneViews)).bind(1, window.span).bind(2, slot - window.slots).step() != SQLITE_DONE)
          return rollback();
        pruned = slot;
      }
    }
    return commit();
  }

  StoreStatus most_viewed(int64_t now, ViewWindow w, size_t n, std::vector<ViewCount>& out) override {
    out.clear();
    const Window window = window_of(w);
    const int64_t slot = now / window.span;
    Use q(get(kMostViewed));
    q.bind(1, window.span).bind(2, slot - window.slots).bind(3, slot).bind(4, static_cast<int64_t>(n));
    int rc;
    while ((rc = q.step()) == SQLITE_ROW)
      out.push_back({static_cast<uint32_t>(sqlite3_column_int64(q.get(), 0)),
                     static_cast<uint64_t>(sqlite3_column_int64(q.get(), 1))});
    return rc == SQLITE_DONE ? StoreStatus::kOk : fail();
  }

  const std::string& last_error() const override { return last_error_; }

 private:
  enum Id {
    kBegin,
    kCommit,
    kRollback,
    kInsertSession,
    kTrimSessions,
    kFindSession,
    kEndSession,
    kLastReview,
    kInsertReview,
    kBookReviews,
    kCountReviews,
    kAddView,
    kPruneViews,
    kMostViewed,
    kStatementCount
  };

  sqlite3_stmt* get(Id id) const { return statements_[id].get(); }

  // SQLite's own handler (sqlite3_busy_timeout) sleeps 1, 2, 5, 10 ms and more between tries,
  // while the transaction it waits for, another server's, takes tens of microseconds: under
  // contention every wait would cost milliseconds. This one starts at 20 us and doubles up to
  // 2 ms, until busy_timeout has passed since the first try.
  static int on_busy(void* self, int tries) {
    auto* store = static_cast<SqliteStore*>(self);
    const auto now = std::chrono::steady_clock::now();
    if (tries == 0) store->busy_since_ = now;
    if (now - store->busy_since_ >= store->busy_timeout_) return 0;
    const auto pause = std::chrono::microseconds(20 << std::min(tries, 7));
    std::this_thread::sleep_for(std::min<std::chrono::microseconds>(pause, std::chrono::milliseconds(2)));
    return 1;
  }

  // The error of the call that just failed; a lock still held after the busy handler's wait is
  // kBusy.
  StoreStatus fail() {
    last_error_ = sqlite3_errmsg(db_);
    const int code = sqlite3_errcode(db_) & 0xff;
    return code == SQLITE_BUSY || code == SQLITE_LOCKED ? StoreStatus::kBusy : StoreStatus::kFailed;
  }
  StoreStatus begin() { return Use(get(kBegin)).step() == SQLITE_DONE ? StoreStatus::kOk : fail(); }
  StoreStatus commit() {
    if (Use(get(kCommit)).step() == SQLITE_DONE) return StoreStatus::kOk;
    return rollback();
  }
  // Ends a failed transaction, keeping the failure's status and message.
  StoreStatus rollback() {
    const StoreStatus status = fail();
    const std::string error = last_error_;
    if (sqlite3_get_autocommit(db_) == 0) Use(get(kRollback)).step();
    last_error_ = error;
    return status;
  }

  sqlite3* db_;
  std::chrono::milliseconds busy_timeout_;
  std::chrono::steady_clock::time_point busy_since_;
  std::array<Statement, kStatementCount> statements_;
  int64_t pruned_hour_slot_ = -1;
  int64_t pruned_day_slot_ = -1;
  std::string last_error_;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path, std::chrono::milliseconds busy_timeout,
                                         std::string& error) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    error = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return nullptr;
  }
  auto store = std::make_unique<SqliteStore>(db, busy_timeout);
  char* message = nullptr;
  // WAL before the schema: the journal mode is the file's, and the first process to open it sets
  // it for all. The schema in one IMMEDIATE transaction, so servers starting together take turns.
  const std::string setup = std::string("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE;") +
                            kSqliteSchema + "COMMIT;";
  if (sqlite3_exec(db, setup.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    error = message ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    return nullptr;
  }
  if (!store->prepare(error)) return nullptr;
  return store;
}

}  // namespace edge::app
