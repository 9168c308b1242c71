#include "app/pg_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <thread>
#include <utility>

namespace edge::app {

namespace {

using Clock = std::chrono::steady_clock;

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// Advisory lock keys: one space ("edge" in ASCII), one key per purpose, so nothing else that
// takes advisory locks in the same database is likely to collide.
constexpr const char* kSchemaLock = "SELECT pg_advisory_xact_lock(1701078885, 1)";
constexpr const char* kReviewsLock = "SELECT pg_advisory_xact_lock(1701078885, 2)";

// Tables and indexes are looked for first: CREATE INDEX IF NOT EXISTS locks its table against
// writers even when the index exists, which a server joining a busy cluster should not do.
constexpr const char* kSchemaPresent =
    "SELECT to_regclass('sessions_by_seq') IS NOT NULL AND to_regclass('reviews_by_book') IS NOT NULL"
    " AND to_regclass('views') IS NOT NULL";
constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, user_id INTEGER NOT NULL,"
    " created BIGINT NOT NULL, seq BIGSERIAL NOT NULL);"
    "CREATE INDEX IF NOT EXISTS sessions_by_seq ON sessions (seq);"
    "CREATE TABLE IF NOT EXISTS reviews (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " book INTEGER NOT NULL, user_id INTEGER NOT NULL, rating SMALLINT NOT NULL, created BIGINT NOT NULL,"
    " text TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS reviews_by_book ON reviews (book, id);"
    "CREATE TABLE IF NOT EXISTS views (span INTEGER NOT NULL, slot BIGINT NOT NULL, book INTEGER NOT NULL,"
    " count BIGINT NOT NULL, PRIMARY KEY (span, slot, book));";

struct StatementText {
  const char* name;
  const char* sql;
};

// The parameters are typed in the text: an INSERT ... SELECT does not take them from its columns.
constexpr StatementText kStatements[] = {
    // The new session's seq, not a max() over the table: the same bound without another scan.
    {"open_session",
     "WITH opened AS (INSERT INTO sessions (token, user_id, created) VALUES ($1::text, $2::integer, $3::bigint)"
     " ON CONFLICT (token) DO UPDATE SET user_id = excluded.user_id, created = excluded.created RETURNING seq)"
     " DELETE FROM sessions WHERE seq <= (SELECT seq FROM opened) - $4::bigint"},
    {"session_user", "SELECT user_id FROM sessions WHERE token = $1::text"},
    {"end_session", "DELETE FROM sessions WHERE token = $1::text"},
    {"lock_reviews", kReviewsLock},
    // Checked inside the transaction that holds the reviews lock: no other writer can pass the
    // bound between the check and the insert. Ids are distinct and positive, so there are at most
    // max(id) rows: a look at the primary key's end spares counting them until the bound is near
    // (or rows were deleted).
    {"add_review",
     "INSERT INTO reviews (book, user_id, rating, created, text)"
     " SELECT $1::integer, $2::integer, $3::smallint, $4::bigint, $5::text"
     " WHERE CASE WHEN coalesce((SELECT max(id) FROM reviews), 0) < $6::bigint THEN true"
     " ELSE (SELECT count(*) FROM reviews) < $6::bigint END RETURNING id"},
    {"posted_reviews",
     "SELECT id, user_id, rating, created, text FROM reviews WHERE book = $1::integer ORDER BY id"},
    {"posted_review_count", "SELECT count(*) FROM reviews"},
    // Both rows in one statement, always in the same order, so two writers never deadlock on them.
    {"add_view",
     "INSERT INTO views (span, slot, book, count) VALUES ($1::integer, $2::bigint, $5::integer, 1),"
     " ($3::integer, $4::bigint, $5::integer, 1)"
     " ON CONFLICT (span, slot, book) DO UPDATE SET count = views.count + 1"},
    {"prune_views",
     "DELETE FROM views WHERE (span = $1::integer AND slot <= $2::bigint)"
     " OR (span = $3::integer AND slot <= $4::bigint)"},
    // Slots after the current one are left out too: a window ends at `now`.
    {"most_viewed",
     "SELECT book, sum(count)::bigint AS total FROM views WHERE span = $1::integer AND slot > $2::bigint"
     " AND slot <= $3::bigint GROUP BY book ORDER BY total DESC, book LIMIT $4::bigint"},
};

// libpq's messages end with a newline and may span lines ("...failed: Connection refused\n\tIs
// the server running..."): one line, for a log.
std::string one_line(const char* message) {
  std::string out;
  bool space = false;
  for (const char* p = message ? message : ""; *p; ++p) {
    const bool blank = *p == '\n' || *p == '\t' || *p == '\r' || *p == ' ';
    if (blank) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += *p;
  }
  return out.empty() ? "unknown error" : out;
}

int64_t integer_at(const PGresult* result, int row, int column) {
  const char* text = PQgetvalue(result, row, column);
  int64_t value = 0;
  std::from_chars(text, text + PQgetlength(result, row, column), value);
  return value;
}

// Length of the well-formed UTF-8 sequence at the start of `s` (Unicode's table 3-7), 0 when
// there is none or it is a NUL.
size_t utf8_sequence(std::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto in = [&](size_t i, unsigned lo, unsigned hi) { return i < s.size() && byte(i) >= lo && byte(i) <= hi; };
  const unsigned lead = byte(0);
  if (lead == 0) return 0;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return in(1, 0x80, 0xBF) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    const unsigned lo = lead == 0xE0 ? 0xA0 : 0x80, hi = lead == 0xED ? 0x9F : 0xBF;
    return in(1, lo, hi) && in(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    const unsigned lo = lead == 0xF0 ? 0x90 : 0x80, hi = lead == 0xF4 ? 0x8F : 0xBF;
    return in(1, lo, hi) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

// A review's text as PostgreSQL's text can hold it: each NUL and each byte that starts no
// well-formed sequence becomes U+FFFD. Text that is fine (nearly all) is copied as it is.
std::string storable_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t length = utf8_sequence(text);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      text.remove_prefix(1);
    } else {
      out.append(text.substr(0, length));
      text.remove_prefix(length);
    }
  }
  return out;
}

// Which failures are worth another try: the three that mean "someone else holds what we need".
bool busy_state(std::string_view state) { return state == "55P03" || state == "40001" || state == "40P01"; }

// Connection exceptions, and the server shutting down or restarting under us.
bool lost_state(std::string_view state) {
  return state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03";
}

}  // namespace

class PgStore::Connection {
 public:
  Connection(PGconn* connection, std::chrono::milliseconds busy_timeout)
      : connection_(connection), busy_timeout_(busy_timeout) {}
  ~Connection() { PQfinish(connection_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool open() const { return PQstatus(connection_) == CONNECTION_OK; }
  const std::string& error() const { return error_; }

  // Settings, tables and statements: done on every new connection, since a reset one has none of
  // them.
  Outcome set_up() {
    // A lock_timeout of 0 would mean waiting forever.
    const long long lock_ms = std::max<long long>(1, busy_timeout_.count());
    const std::string settings =
        "SET lock_timeout = " + std::to_string(lock_ms) + "; SET client_min_messages = warning";
    if (Outcome o = command(settings.c_str()); o != Outcome::kOk) return o;
    if (Outcome o = make_tables(); o != Outcome::kOk) return o;
    for (const StatementText& statement : kStatements) {
      Result result(PQprepare(connection_, statement.name, statement.sql, 0, nullptr));
      if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) return failure(result.get());
    }
    return Outcome::kOk;
  }

  Outcome reopen() {
    PQreset(connection_);
    if (!open()) {
      error_ = "cannot reconnect: " + one_line(PQerrorMessage(connection_));
      return Outcome::kLost;
    }
    return set_up();
  }

  // A prepared statement; `rows` gets what it returned.
  Outcome execute(const char* name, std::initializer_list<std::string> params, Result* rows = nullptr) {
    const char* values[8] = {};  // the most any statement here takes is 6
    int count = 0;
    for (const std::string& param : params) values[count++] = param.c_str();
    Result result(PQexecPrepared(connection_, name, count, values, nullptr, nullptr, 0));
    const ExecStatusType status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure(result.get());
    if (rows) *rows = std::move(result);
    return Outcome::kOk;
  }

  // A fixed text without parameters (BEGIN, COMMIT, settings).
  Outcome command(const char* sql) {
    Result result(PQexec(connection_, sql));
    const ExecStatusType status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure(result.get());
    return Outcome::kOk;
  }

  // Ends a transaction that a failed try left open, so the next one starts clean.
  void roll_back() {
    const PGTransactionStatusType status = PQtransactionStatus(connection_);
    if (status == PQTRANS_INTRANS || status == PQTRANS_INERROR) PQclear(PQexec(connection_, "ROLLBACK"));
  }

 private:
  // Under the schema lock, and looked for again under it: another process may have made the
  // tables while this one waited.
  Outcome make_tables() {
    Result present(PQexec(connection_, kSchemaPresent));
    if (PQresultStatus(present.get()) != PGRES_TUPLES_OK) return failure(present.get());
    if (PQntuples(present.get()) == 1 && *PQgetvalue(present.get(), 0, 0) == 't') return Outcome::kOk;
    Outcome o = command("BEGIN");
    if (o == Outcome::kOk) o = command(kSchemaLock);
    if (o == Outcome::kOk) o = command(kSchema);
    if (o == Outcome::kOk) o = command("COMMIT");
    if (o != Outcome::kOk) roll_back();
    return o;
  }

  Outcome failure(const PGresult* result) {
    const char* message = result ? PQresultErrorMessage(result) : nullptr;
    error_ = one_line(message && *message ? message : PQerrorMessage(connection_));
    if (!open()) return Outcome::kLost;
    const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    if (!state) return Outcome::kFailed;
    if (busy_state(state)) return Outcome::kBusy;
    if (lost_state(state)) return Outcome::kLost;
    return Outcome::kFailed;
  }

  PGconn* connection_;
  std::chrono::milliseconds busy_timeout_;
  std::string error_;
};

PgStore::PgStore(std::unique_ptr<Connection> connection, std::chrono::milliseconds busy_timeout)
    : connection_(std::move(connection)), busy_timeout_(busy_timeout) {}

PgStore::~PgStore() = default;

StoreStatus PgStore::run(const char* what, const std::function<Outcome()>& attempt) {
  constexpr int kMaxTries = 5;
  const auto deadline = Clock::now() + busy_timeout_;
  bool reopened = false;
  const auto give_up = [&](StoreStatus status) {
    error_ = std::string(what) + ": " + connection_->error();
    return status;
  };
  // A connection a previous call lost and could not reopen: this call's one reopening.
  if (!connection_->open()) {
    reopened = true;
    if (Outcome o = connection_->reopen(); o != Outcome::kOk)
      return give_up(o == Outcome::kBusy ? StoreStatus::kBusy : StoreStatus::kFailed);
  }
  for (int tries = 1;; ++tries) {
    const Outcome outcome = attempt();
    if (outcome != Outcome::kOk) connection_->roll_back();
    switch (outcome) {
      case Outcome::kOk:
        return StoreStatus::kOk;
      case Outcome::kFull:
        return StoreStatus::kFull;
      case Outcome::kLost:
        if (reopened) return give_up(StoreStatus::kFailed);
        reopened = true;
        if (Outcome o = connection_->reopen(); o != Outcome::kOk)
          return give_up(o == Outcome::kBusy ? StoreStatus::kBusy : StoreStatus::kFailed);
        continue;
      case Outcome::kBusy: {
        // A lock wait already took up to busy_timeout (lock_timeout); a deadlock or a
        // serialization failure is usually over at once, and worth a pause and another try.
        const auto pause = std::chrono::milliseconds(10 * tries);
        if (tries >= kMaxTries || Clock::now() + pause >= deadline) return give_up(StoreStatus::kBusy);
        std::this_thread::sleep_for(pause);
        continue;
      }
      case Outcome::kFailed:
        return give_up(StoreStatus::kFailed);
    }
  }
}

StoreStatus PgStore::open_session(std::string_view token, uint32_t user, int64_t now) {
  return run("open_session", [&] {
    return connection_->execute("open_session", {std::string(token), std::to_string(user), std::to_string(now),
                                                 std::to_string(kMaxSessions)});
  });
}

StoreStatus PgStore::session_user(std::string_view token, std::optional<uint32_t>& user) {
  return run("session_user", [&] {
    Result rows;
    const Outcome o = connection_->execute("session_user", {std::string(token)}, &rows);
    if (o != Outcome::kOk) return o;
    user.reset();
    if (PQntuples(rows.get()) == 1) user = static_cast<uint32_t>(integer_at(rows.get(), 0, 0));
    return Outcome::kOk;
  });
}

StoreStatus PgStore::end_session(std::string_view token) {
  return run("end_session", [&] { return connection_->execute("end_session", {std::string(token)}); });
}

StoreStatus PgStore::add_review(uint32_t book, const PostedReview& review, uint32_t& id) {
  const std::string text = storable_text(review.text);
  return run("add_review", [&] {
    Result rows;
    Outcome o = connection_->command("BEGIN");
    if (o == Outcome::kOk) o = connection_->execute("lock_reviews", {});
    if (o == Outcome::kOk)
      o = connection_->execute("add_review",
                               {std::to_string(book), std::to_string(review.user), std::to_string(review.rating),
                                std::to_string(review.time), text, std::to_string(kMaxPostedReviews)},
                               &rows);
    if (o != Outcome::kOk) return o;
    if (PQntuples(rows.get()) != 1) return Outcome::kFull;  // run() rolls the transaction back
    o = connection_->command("COMMIT");
    if (o == Outcome::kOk) id = static_cast<uint32_t>(integer_at(rows.get(), 0, 0));
    return o;
  });
}

StoreStatus PgStore::posted_reviews(uint32_t book, std::vector<PostedReview>& out) {
  return run("posted_reviews", [&] {
    Result rows;
    const Outcome o = connection_->execute("posted_reviews", {std::to_string(book)}, &rows);
    if (o != Outcome::kOk) return o;
    const int count = PQntuples(rows.get());
    out.clear();
    out.reserve(static_cast<size_t>(count));
    for (int row = 0; row < count; ++row) {
      PostedReview& review = out.emplace_back();
      review.id = static_cast<uint32_t>(integer_at(rows.get(), row, 0));
      review.user = static_cast<uint32_t>(integer_at(rows.get(), row, 1));
      review.rating = static_cast<uint8_t>(integer_at(rows.get(), row, 2));
      review.time = integer_at(rows.get(), row, 3);
      review.text.assign(PQgetvalue(rows.get(), row, 4), static_cast<size_t>(PQgetlength(rows.get(), row, 4)));
    }
    return Outcome::kOk;
  });
}

StoreStatus PgStore::posted_review_count(uint64_t& count) {
  return run("posted_review_count", [&] {
    Result rows;
    const Outcome o = connection_->execute("posted_review_count", {}, &rows);
    if (o == Outcome::kOk) count = static_cast<uint64_t>(integer_at(rows.get(), 0, 0));
    return o;
  });
}

StoreStatus PgStore::add_view(uint32_t book, int64_t now) {
  const int64_t hour_slot = now / kHourSpan, day_slot = now / kDaySpan;
  // A day slot begins only when an hour slot does, so one check serves both windows.
  const bool prune = hour_slot > pruned_hour_slot_;
  return run("add_view", [&] {
    Outcome o = prune ? connection_->command("BEGIN") : Outcome::kOk;
    if (o == Outcome::kOk)
      o = connection_->execute("add_view", {std::to_string(kHourSpan), std::to_string(hour_slot),
                                            std::to_string(kDaySpan), std::to_string(day_slot), std::to_string(book)});
    if (!prune || o != Outcome::kOk) return o;
    o = connection_->execute("prune_views", {std::to_string(kHourSpan), std::to_string(hour_slot - kHourSlots),
                                             std::to_string(kDaySpan), std::to_string(day_slot - kDaySlots)});
    if (o == Outcome::kOk) o = connection_->command("COMMIT");
    if (o == Outcome::kOk) pruned_hour_slot_ = hour_slot;
    return o;
  });
}

StoreStatus PgStore::most_viewed(int64_t now, ViewWindow window, size_t n, std::vector<ViewCount>& out) {
  const int64_t span = window == ViewWindow::kHour ? kHourSpan : kDaySpan;
  const int64_t slots = window == ViewWindow::kHour ? kHourSlots : kDaySlots;
  const int64_t current = now / span;
  const uint64_t limit = std::min<uint64_t>(n, INT64_MAX);
  return run("most_viewed", [&] {
    Result rows;
    const Outcome o = connection_->execute("most_viewed", {std::to_string(span), std::to_string(current - slots),
                                                           std::to_string(current), std::to_string(limit)},
                                           &rows);
    if (o != Outcome::kOk) return o;
    const int count = PQntuples(rows.get());
    out.clear();
    out.reserve(static_cast<size_t>(count));
    for (int row = 0; row < count; ++row)
      out.push_back(ViewCount{static_cast<uint32_t>(integer_at(rows.get(), row, 0)),
                              static_cast<uint64_t>(integer_at(rows.get(), row, 1))});
    return Outcome::kOk;
  });
}

std::unique_ptr<Store> open_pg_store(std::string_view uri, std::chrono::milliseconds busy_timeout, std::string& error) {
  if (!uri.starts_with("postgresql://") && !uri.starts_with("postgres://")) {
    error = "not a PostgreSQL URI (postgresql://... or postgres://...)";
    return nullptr;
  }
  // Errors never quote the URI: it may hold a password. libpq's own messages name the host.
  // The URI is expanded where "dbname" stands: what it sets overrides the connect_timeout before
  // it, and the client_encoding after it overrides the URI (text is sent and read as UTF-8).
  const long long timeout_s = std::max<long long>(2, (busy_timeout.count() + 999) / 1000);
  const std::string timeout = std::to_string(timeout_s), spec(uri);
  const char* keys[] = {"connect_timeout", "fallback_application_name", "dbname", "client_encoding", nullptr};
  const char* values[] = {timeout.c_str(), "edge-app", spec.c_str(), "UTF8", nullptr};
  PGconn* connection = PQconnectdbParams(keys, values, 1);
  if (!connection) {
    error = "cannot connect: out of memory";
    return nullptr;
  }
  auto owned = std::make_unique<PgStore::Connection>(connection, busy_timeout);
  if (!owned->open()) {
    error = "cannot connect: " + one_line(PQerrorMessage(connection));
    return nullptr;
  }
  if (owned->set_up() != PgStore::Outcome::kOk) {
    error = "cannot set up the store: " + owned->error();
    return nullptr;
  }
  return std::unique_ptr<Store>(new PgStore(std::move(owned), busy_timeout));
}

}  // namespace edge::app
