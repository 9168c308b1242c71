// The demo's PostgreSQL store (app/pg_store.h) against a real server started by the test: the
// store contract (sessions, reviews, views and their windows), bounds, stores that share a
// database (several writers at once included), a locked table waited for or answered kBusy, a
// restarted server, and URIs that cannot open. Each case has a database of its own on one shared
// server; the restart has a server of its own. A plain libpq connection stands for "another
// process" where the test needs to look at or hold the tables directly. Time limits here are
// fail-safes and coarse bounds, never measurements.
#include <doctest/doctest.h>

// libpq's header, found under the system include directory (the test does not get libpq's own).
#include <postgresql/libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "app/pg_store.h"
#include "tests/integration/testkit.h"

using namespace edge::app;
using namespace edge::testkit;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// An hour boundary (so also a 5-minute one), for windows with explicit times.
constexpr int64_t kT0 = 1'699'999'200;

PostgresServer& shared_server() {
  static PostgresServer server;
  return server;
}

// A plain connection, for what the store does not offer: looking at rows, writing many at once,
// holding a lock.
class Sql {
 public:
  explicit Sql(const std::string& uri) : connection_(PQconnectdb(uri.c_str())) {
    REQUIRE_MESSAGE(PQstatus(connection_) == CONNECTION_OK, PQerrorMessage(connection_));
  }
  ~Sql() { PQfinish(connection_); }
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;

  // The first column of the first row, or "" without rows.
  std::string run(const std::string& sql) {
    PGresult* result = PQexec(connection_, sql.c_str());
    const ExecStatusType status = PQresultStatus(result);
    const std::string message = PQresultErrorMessage(result);
    std::string value;
    if (status == PGRES_TUPLES_OK && PQntuples(result) > 0) value = PQgetvalue(result, 0, 0);
    PQclear(result);
    REQUIRE_MESSAGE((status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK), sql << ": " << message);
    return value;
  }
  long number(const std::string& sql) { return std::stol(run(sql)); }

 private:
  PGconn* connection_;
};

// A new, empty database on the shared server: its URI.
std::string fresh_database() {
  static int made = 0;
  const std::string name = "t" + std::to_string(++made);
  Sql(shared_server().uri()).run("CREATE DATABASE " + name);
  return shared_server().uri(name);
}

std::unique_ptr<Store> open(const std::string& uri, std::chrono::milliseconds busy_timeout = kDefaultBusyTimeout) {
  std::string error;
  std::unique_ptr<Store> store = open_pg_store(uri, busy_timeout, error);
  REQUIRE_MESSAGE(store, error);
  CHECK(error.empty());
  return store;
}

PostedReview review(uint32_t user, uint8_t rating, int64_t time, std::string text) {
  PostedReview r;
  r.user = user;
  r.rating = rating;
  r.time = time;
  r.text = std::move(text);
  return r;
}

std::vector<ViewCount> top(Store& store, int64_t now, ViewWindow window, size_t n = 10) {
  std::vector<ViewCount> out;
  REQUIRE(store.most_viewed(now, window, n, out) == StoreStatus::kOk);
  return out;
}

std::string show(const std::vector<ViewCount>& counts) {
  std::string out;
  for (const ViewCount& c : counts) out += std::to_string(c.book) + ":" + std::to_string(c.views) + " ";
  return out;
}

}  // namespace

TEST_CASE("sessions: opened, looked up, ended; an unknown token has no user") {
  auto store = open(fresh_database());
  std::optional<uint32_t> user = 99;
  CHECK(store->session_user("nobody", user) == StoreStatus::kOk);
  CHECK(!user);

  REQUIRE(store->open_session("tok-a", 7, kT0) == StoreStatus::kOk);
  REQUIRE(store->open_session("tok-b", 8, kT0 + 1) == StoreStatus::kOk);
  CHECK(store->session_user("tok-a", user) == StoreStatus::kOk);
  CHECK(user == 7u);
  CHECK(store->session_user("tok-b", user) == StoreStatus::kOk);
  CHECK(user == 8u);

  CHECK(store->end_session("tok-a") == StoreStatus::kOk);
  CHECK(store->session_user("tok-a", user) == StoreStatus::kOk);
  CHECK(!user);
  CHECK(store->session_user("tok-b", user) == StoreStatus::kOk);
  CHECK(user == 8u);
  CHECK(store->end_session("tok-a") == StoreStatus::kOk);  // already gone: nothing to do
  // A token is data, never SQL.
  REQUIRE(store->open_session("x'; DELETE FROM sessions; --", 9, kT0) == StoreStatus::kOk);
  CHECK(store->session_user("x'; DELETE FROM sessions; --", user) == StoreStatus::kOk);
  CHECK(user == 9u);
  CHECK(store->session_user("tok-b", user) == StoreStatus::kOk);
  CHECK(user == 8u);
}

TEST_CASE("sessions: at most kMaxSessions; opening one past that forgets the oldest") {
  const std::string uri = fresh_database();
  auto store = open(uri);
  // The rows written at once, as if opened one by one, in order (seq follows).
  Sql sql(uri);
  sql.run("INSERT INTO sessions (token, user_id, created) SELECT 'bulk' || g, g, 0 FROM generate_series(1, " +
          std::to_string(kMaxSessions) + ") g");
  REQUIRE(store->open_session("newest", 1, kT0) == StoreStatus::kOk);
  CHECK(sql.number("SELECT count(*) FROM sessions") == long(kMaxSessions));
  std::optional<uint32_t> user;
  CHECK(store->session_user("bulk1", user) == StoreStatus::kOk);
  CHECK(!user);
  CHECK(store->session_user("bulk2", user) == StoreStatus::kOk);
  CHECK(user == 2u);
  CHECK(store->session_user("newest", user) == StoreStatus::kOk);
  CHECK(user == 1u);
}

TEST_CASE("reviews: ids in the order stored, each book's oldest first, counted, text as posted") {
  auto store = open(fresh_database());
  uint64_t count = 99;
  CHECK(store->posted_review_count(count) == StoreStatus::kOk);
  CHECK(count == 0);

  const std::string tricky = "it's \"quoted\" '); DROP TABLE reviews; -- \\ \t\r\n \x01\x1f\x7f ünïcødé 📚 ☃ $1";
  uint32_t id = 0;
  REQUIRE(store->add_review(5, review(11, 4, kT0, "first"), id) == StoreStatus::kOk);
  CHECK(id == 1);
  REQUIRE(store->add_review(6, review(12, 0, kT0 + 1, tricky), id) == StoreStatus::kOk);
  CHECK(id == 2);
  REQUIRE(store->add_review(5, review(13, 5, kT0 + 2, ""), id) == StoreStatus::kOk);
  CHECK(id == 3);

  std::vector<PostedReview> posted;
  REQUIRE(store->posted_reviews(5, posted) == StoreStatus::kOk);
  REQUIRE(posted.size() == 2);
  CHECK(posted[0].id == 1);
  CHECK(posted[0].user == 11);
  CHECK(posted[0].rating == 4);
  CHECK(posted[0].time == kT0);
  CHECK(posted[0].text == "first");
  CHECK(posted[1].id == 3);
  CHECK(posted[1].user == 13);
  CHECK(posted[1].rating == 5);
  CHECK(posted[1].text.empty());
  REQUIRE(store->posted_reviews(6, posted) == StoreStatus::kOk);
  REQUIRE(posted.size() == 1);
  CHECK(posted[0].id == 2);
  CHECK(posted[0].rating == 0);
  CHECK(posted[0].text == tricky);
  REQUIRE(store->posted_reviews(99, posted) == StoreStatus::kOk);
  CHECK(posted.empty());
  CHECK(store->posted_review_count(count) == StoreStatus::kOk);
  CHECK(count == 3);

  SUBCASE("what PostgreSQL's text cannot hold (NUL, bytes that are not UTF-8) is stored as U+FFFD") {
    const std::string raw = std::string("a\0b", 3) + "\xff" + "c\xC0\xAF" + "d\xED\xA0\x80" + "e\xE2\x82";
    REQUIRE(store->add_review(7, review(1, 1, kT0, raw), id) == StoreStatus::kOk);
    REQUIRE(store->posted_reviews(7, posted) == StoreStatus::kOk);
    REQUIRE(posted.size() == 1);
    const std::string r = "\xEF\xBF\xBD";
    CHECK(posted[0].text == "a" + r + "b" + r + "c" + r + r + "d" + r + r + r + "e" + r + r);
  }
}

TEST_CASE("reviews: kFull once kMaxPostedReviews are stored") {
  const std::string uri = fresh_database();
  auto store = open(uri);
  Sql sql(uri);
  sql.run("INSERT INTO reviews (book, user_id, rating, created, text) SELECT g % 50, 1, 3, 0, 'bulk review ' || g "
          "FROM generate_series(1, " + std::to_string(kMaxPostedReviews - 1) + ") g");
  uint32_t id = 0;
  const auto start = Clock::now();
  REQUIRE(store->add_review(1, review(2, 5, kT0, "the last one"), id) == StoreStatus::kOk);
  const auto took = Clock::now() - start;
  MESSAGE("add_review with ", kMaxPostedReviews - 1, " reviews stored: ",
          std::chrono::duration_cast<std::chrono::microseconds>(took).count(), " us");
  CHECK(id == kMaxPostedReviews);
  id = 0;
  CHECK(store->add_review(1, review(2, 5, kT0, "one too many"), id) == StoreStatus::kFull);
  CHECK(id == 0);
  const auto full_start = Clock::now();
  CHECK(store->add_review(2, review(2, 5, kT0, "still too many"), id) == StoreStatus::kFull);
  MESSAGE("add_review when full: ",
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - full_start).count(), " us");
  uint64_t count = 0;
  CHECK(store->posted_review_count(count) == StoreStatus::kOk);
  CHECK(count == kMaxPostedReviews);
  // A review deleted (by hand) makes room again, and the store goes on after kFull.
  sql.run("DELETE FROM reviews WHERE id = 1");
  CHECK(store->add_review(3, review(2, 5, kT0, "room again"), id) == StoreStatus::kOk);
  CHECK(id > kMaxPostedReviews);
}

TEST_CASE("views: the hour and the day, ties, n, slots leaving their windows, pruning") {
  const std::string uri = fresh_database();
  auto store = open(uri);
  Sql sql(uri);
  for (uint32_t book : {3, 1, 3, 2, 1, 7}) REQUIRE(store->add_view(book, kT0) == StoreStatus::kOk);

  // Ties: lower id first.
  CHECK(show(top(*store, kT0, ViewWindow::kHour)) == "1:2 3:2 2:1 7:1 ");
  CHECK(show(top(*store, kT0 + 299, ViewWindow::kDay)) == "1:2 3:2 2:1 7:1 ");
  CHECK(show(top(*store, kT0, ViewWindow::kHour, 2)) == "1:2 3:2 ");
  CHECK(top(*store, kT0, ViewWindow::kHour, 0).empty());
  // A window ends at `now`: views of a later slot are not in it.
  CHECK(top(*store, kT0 - 1, ViewWindow::kHour).empty());
  CHECK(top(*store, kT0 - 1, ViewWindow::kDay).empty());

  // Half an hour later: the same hour and day slots' windows hold both.
  for (int i = 0; i < 3; ++i) REQUIRE(store->add_view(2, kT0 + 1800) == StoreStatus::kOk);
  CHECK(show(top(*store, kT0 + 1800, ViewWindow::kHour)) == "2:4 1:2 3:2 7:1 ");
  CHECK(show(top(*store, kT0 + 1800, ViewWindow::kDay)) == "2:4 1:2 3:2 7:1 ");

  // The hour is the current 5-minute slot and the 11 before it: kT0's slot leaves it at kT0 + 3600.
  CHECK(show(top(*store, kT0 + 3599, ViewWindow::kHour)) == "2:4 1:2 3:2 7:1 ");
  CHECK(show(top(*store, kT0 + 3600, ViewWindow::kHour)) == "2:3 ");
  CHECK(show(top(*store, kT0 + 3600, ViewWindow::kDay)) == "2:4 1:2 3:2 7:1 ");
  CHECK(top(*store, kT0 + 1800 + 3600, ViewWindow::kHour).empty());
  // The day is the current hour and the 23 before it.
  CHECK(show(top(*store, kT0 + 24 * 3600 - 1, ViewWindow::kDay)) == "2:4 1:2 3:2 7:1 ");
  CHECK(top(*store, kT0 + 24 * 3600, ViewWindow::kDay).empty());

  // Pruning: a view in a new 5-minute slot deletes the hour's slots that left its window.
  CHECK(sql.number("SELECT count(*) FROM views WHERE span = 300") == 5);
  REQUIRE(store->add_view(9, kT0 + 3600) == StoreStatus::kOk);
  CHECK(sql.number("SELECT count(*) FROM views WHERE span = 300 AND slot = " + std::to_string(kT0 / 300)) == 0);
  CHECK(sql.number("SELECT count(*) FROM views WHERE span = 300") == 2);
  CHECK(sql.number("SELECT count(*) FROM views WHERE span = 3600") == 5);
  CHECK(show(top(*store, kT0 + 3600, ViewWindow::kDay)) == "2:4 1:2 3:2 7:1 9:1 ");
  // A day later, the day's slots that left its window go too.
  REQUIRE(store->add_view(9, kT0 + 25 * 3600) == StoreStatus::kOk);
  CHECK(sql.number("SELECT count(*) FROM views") == 2);
  CHECK(show(top(*store, kT0 + 25 * 3600, ViewWindow::kDay)) == "9:1 ");
  CHECK(show(top(*store, kT0 + 25 * 3600, ViewWindow::kHour)) == "9:1 ");
}

TEST_CASE("two stores on one database see each other's writes") {
  const std::string uri = fresh_database();
  auto a = open(uri);
  auto b = open(uri);
  REQUIRE(a->open_session("shared", 42, kT0) == StoreStatus::kOk);
  std::optional<uint32_t> user;
  CHECK(b->session_user("shared", user) == StoreStatus::kOk);
  CHECK(user == 42u);
  CHECK(b->end_session("shared") == StoreStatus::kOk);
  CHECK(a->session_user("shared", user) == StoreStatus::kOk);
  CHECK(!user);

  uint32_t id = 0;
  REQUIRE(a->add_review(4, review(1, 3, kT0, "from a"), id) == StoreStatus::kOk);
  CHECK(id == 1);
  REQUIRE(b->add_review(4, review(2, 4, kT0, "from b"), id) == StoreStatus::kOk);
  CHECK(id == 2);
  std::vector<PostedReview> posted;
  REQUIRE(a->posted_reviews(4, posted) == StoreStatus::kOk);
  REQUIRE(posted.size() == 2);
  CHECK(posted[0].text == "from a");
  CHECK(posted[1].text == "from b");

  REQUIRE(a->add_view(8, kT0) == StoreStatus::kOk);
  REQUIRE(b->add_view(8, kT0 + 10) == StoreStatus::kOk);
  REQUIRE(b->add_view(5, kT0 + 20) == StoreStatus::kOk);
  CHECK(show(top(*a, kT0 + 30, ViewWindow::kHour)) == "8:2 5:1 ");
  CHECK(show(top(*b, kT0 + 30, ViewWindow::kDay)) == "8:2 5:1 ");
}

TEST_CASE("four writers at once, each its own store (tables made by whichever comes first): nothing lost") {
  const std::string uri = fresh_database();
  constexpr int kWriters = 4, kViews = 500, kReviews = 50, kBooks = 5;
  std::atomic<int> failures{0};
  std::vector<std::string> errors(kWriters);
  std::vector<std::vector<uint32_t>> ids(kWriters);
  std::atomic<int> ready{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      std::string error;
      ++ready;
      while (ready < kWriters) std::this_thread::yield();  // open together: the tables race
      auto store = open_pg_store(uri, kDefaultBusyTimeout, error);
      if (!store) {
        errors[w] = error;
        ++failures;
        return;
      }
      for (int i = 0; i < kViews; ++i) {
        if (store->add_view(1 + i % kBooks, kT0 + i) != StoreStatus::kOk) {
          errors[w] = store->last_error();
          ++failures;
        }
        if (i % (kViews / kReviews) != 0) continue;
        uint32_t id = 0;
        if (store->add_review(1 + i % kBooks, review(w, 3, kT0 + i, "writer " + std::to_string(w)), id) ==
            StoreStatus::kOk) {
          ids[w].push_back(id);
        } else {
          errors[w] = store->last_error();
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : writers) t.join();
  for (const std::string& e : errors) CHECK_MESSAGE(e.empty(), e);
  REQUIRE(failures == 0);

  auto store = open(uri);
  const std::string each = std::to_string(kWriters * kViews / kBooks);
  const std::string expected = "1:" + each + " 2:" + each + " 3:" + each + " 4:" + each + " 5:" + each + " ";
  CHECK(show(top(*store, kT0 + kViews, ViewWindow::kHour)) == expected);
  CHECK(show(top(*store, kT0 + kViews, ViewWindow::kDay)) == expected);
  uint64_t count = 0;
  CHECK(store->posted_review_count(count) == StoreStatus::kOk);
  CHECK(count == kWriters * kReviews);
  std::set<uint32_t> all;
  for (const auto& list : ids) {
    for (size_t i = 1; i < list.size(); ++i) CHECK(list[i] > list[i - 1]);
    all.insert(list.begin(), list.end());
  }
  CHECK(all.size() == size_t(kWriters * kReviews));
  CHECK(*all.begin() == 1);
  CHECK(*all.rbegin() == uint32_t(kWriters * kReviews));
}

TEST_CASE("a locked table is waited for; past busy_timeout the answer is kBusy, not kFailed") {
  const std::string uri = fresh_database();
  auto patient = open(uri);
  auto hasty = open(uri, 100ms);
  Sql other(uri);
  other.run("BEGIN");
  other.run("LOCK TABLE reviews IN ACCESS EXCLUSIVE MODE");
  const auto locked = Clock::now();
  std::thread releaser([&] {
    std::this_thread::sleep_for(1s);
    other.run("COMMIT");
  });

  uint32_t id = 0;
  auto start = Clock::now();
  CHECK(hasty->add_review(1, review(1, 1, kT0, "hasty"), id) == StoreStatus::kBusy);
  CHECK(Clock::now() - start >= 90ms);
  CHECK(Clock::now() - start < 900ms);
  CHECK(hasty->last_error().find("lock timeout") != std::string::npos);
  // Other tables are not locked.
  CHECK(hasty->add_view(1, kT0) == StoreStatus::kOk);

  start = Clock::now();
  CHECK(patient->add_review(1, review(1, 2, kT0, "patient"), id) == StoreStatus::kOk);
  CHECK(Clock::now() - locked >= 900ms);
  CHECK(Clock::now() - start < 4s);
  CHECK(id == 1);
  releaser.join();
  // The store that gave up goes on as before.
  CHECK(hasty->add_review(1, review(1, 3, kT0, "hasty again"), id) == StoreStatus::kOk);
  CHECK(id == 2);
}

TEST_CASE("a restarted server: the next call reconnects; while it is down a call answers kFailed") {
  PostgresServer server;
  auto store = open(server.uri());
  REQUIRE(store->add_view(1, kT0) == StoreStatus::kOk);

  server.stop();
  server.start();
  // The connection the server closed is found lost, reopened, and the call made again.
  CHECK(store->add_view(1, kT0) == StoreStatus::kOk);
  CHECK(show(top(*store, kT0, ViewWindow::kHour)) == "1:2 ");

  server.stop();
  CHECK(store->add_view(1, kT0) == StoreStatus::kFailed);
  CHECK(!store->last_error().empty());
  MESSAGE("while down: ", store->last_error());
  std::optional<uint32_t> user;
  CHECK(store->session_user("any", user) == StoreStatus::kFailed);
  server.start();
  CHECK(store->session_user("any", user) == StoreStatus::kOk);
  CHECK(show(top(*store, kT0, ViewWindow::kHour)) == "1:2 ");
}

TEST_CASE("a URI that cannot open: null and a clear error") {
  std::string error;
  CHECK(!open_pg_store("mysql://edge@127.0.0.1/db", 1s, error));
  CHECK(error.find("not a PostgreSQL URI") != std::string::npos);

  error.clear();
  CHECK(!open_pg_store("postgresql://edge@127.0.0.1:notaport/postgres", 1s, error));
  CHECK(error.find("notaport") != std::string::npos);
  MESSAGE(error);

  error.clear();
  const uint16_t nobody = free_port();
  const auto start = Clock::now();
  CHECK(!open_pg_store("postgresql://edge@127.0.0.1:" + std::to_string(nobody) + "/postgres", 1s, error));
  CHECK(Clock::now() - start < 5s);
  CHECK(error.find(std::to_string(nobody)) != std::string::npos);
  MESSAGE(error);

  error.clear();
  CHECK(!open_pg_store(shared_server().uri("no_such_database"), 1s, error));
  CHECK(error.find("no_such_database") != std::string::npos);

  error.clear();
  CHECK(!open_pg_store("postgres://stranger@127.0.0.1:" + std::to_string(shared_server().port) + "/postgres", 1s,
                       error));
  CHECK(error.find("stranger") != std::string::npos);
}

TEST_CASE("edge-app servers on one PostgreSQL database: sessions and reviews work across them") {
  const std::string uri = fresh_database();
  App a("pg-a", {"--store", uri, "--seed", "5"});
  App b("pg-b", {"--store", uri, "--seed", "5"});
  CHECK(a.process.output().find("store postgresql://edge@127.0.0.1") != std::string::npos);

  const std::string cookie = demo_login(a.port, "9");
  auto send = [&](uint16_t port, std::string_view method, const std::string& target, const std::string& form = "") {
    return demo_request(port, method, target, "Cookie: " + cookie + "\r\n", form);
  };
  CHECK(send(b.port, "GET", "/fragments/userbar").body.find("Signed in as") != std::string::npos);
  CHECK(send(b.port, "POST", "/book/17/reviews", "text=Stored+in+PostgreSQL&rating=3").status == 303);
  CHECK(send(a.port, "GET", "/fragments/reviews/17").body.find("Stored in PostgreSQL") != std::string::npos);
  for (int i = 0; i < 3; ++i) CHECK(send(i % 2 ? a.port : b.port, "GET", "/fragments/view/18").status == 200);
  CHECK(send(a.port, "GET", "/fragments/mostviewed").body.find("3 views") != std::string::npos);
  CHECK(Sql(uri).number("SELECT count(*) FROM reviews") == 1);
}
