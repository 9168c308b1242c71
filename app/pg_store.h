// app/pg_store: the demo's store (app/store.h) in a PostgreSQL database, shared by edge-app
// processes on any number of machines.
//
// One synchronous libpq connection per store, opened from libpq's connection URI. On every
// connection (the first and each one reopened) the store sets lock_timeout to busy_timeout,
// makes the tables and indexes when missing (under an advisory lock, so processes starting
// together do not race: CREATE ... IF NOT EXISTS alone is not safe against that), and prepares
// its statements once. A call is one statement, its own transaction, except where it needs
// several: add_review (serialized by a transaction-level advisory lock, so the kMaxPostedReviews
// bound is exact however many processes post at once) and an add_view that also deletes the
// slots that left their windows (once per 5-minute slot per store).
//
// Waiting: a lock wait longer than busy_timeout, a deadlock or a serialization failure is retried
// while busy_timeout lasts (a lock wait of busy_timeout uses it all), then the call answers
// kBusy. A busy_timeout of 0 waits 1 ms (PostgreSQL reads a lock_timeout of 0 as "forever").
// Connecting waits at most busy_timeout too (rounded up to whole seconds, at least 2: libpq's
// connect_timeout) unless the URI sets connect_timeout. A server that stops answering in the
// middle of a call without closing the connection is waited for as TCP waits (the URI may set
// keepalives or tcp_user_timeout); no statement_timeout is set, since a slow query is not busy.
//
// A lost connection (the server restarted, the network broke) is reopened once per call and the
// call made again: after a restart the next call succeeds. While the server is down each call
// tries once and answers kFailed. A write whose commit was done but whose answer was lost with
// the connection is made again: one view counted twice or a review stored twice, in that
// moment only.
//
// Text: PostgreSQL's text holds neither a NUL byte nor bytes that are not UTF-8 (the connection
// is UTF8); in a review's text those are stored as U+FFFD, as a browser would show them.
// Review ids come from an identity column: 1, 2, ... in the order stored, a number skipped only
// by an insert that failed after taking it.
//
// Ownership: the store owns its connection (closed with it); one thread uses it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "app/store.h"

namespace edge::app {

class PgStore final : public Store {
 public:
  ~PgStore() override;
  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;

  StoreStatus open_session(std::string_view token, uint32_t user, int64_t now) override;
  StoreStatus session_user(std::string_view token, std::optional<uint32_t>& user) override;
  StoreStatus end_session(std::string_view token) override;
  StoreStatus add_review(uint32_t book, const PostedReview& review, uint32_t& id) override;
  StoreStatus posted_reviews(uint32_t book, std::vector<PostedReview>& out) override;
  StoreStatus posted_review_count(uint64_t& count) override;
  StoreStatus add_view(uint32_t book, int64_t now) override;
  StoreStatus most_viewed(int64_t now, ViewWindow window, size_t n, std::vector<ViewCount>& out) override;
  const std::string& last_error() const override { return error_; }

 private:
  friend std::unique_ptr<Store> open_pg_store(std::string_view uri, std::chrono::milliseconds busy_timeout,
                                              std::string& error);
  // How one try of a call ended: run() decides whether to try again.
  enum class Outcome { kOk, kFull, kBusy, kLost, kFailed };
  class Connection;  // the libpq connection and its prepared statements

  PgStore(std::unique_ptr<Connection> connection, std::chrono::milliseconds busy_timeout);
  // One call: `attempt` made, made again while it answers kBusy within busy_timeout, and once
  // more on a reopened connection when it answers kLost. A transaction it leaves open is rolled
  // back.
  StoreStatus run(const char* what, const std::function<Outcome()>& attempt);

  std::unique_ptr<Connection> connection_;
  std::chrono::milliseconds busy_timeout_;
  int64_t pruned_hour_slot_ = INT64_MIN;  // views of older slots were deleted when this one began
  std::string error_;
};

// `uri` is "postgresql://..." or "postgres://..." (libpq's URI, any of its parameters). The store
// connected and its tables made, or null with `error` saying why (a malformed URI, a server that
// cannot be reached or refuses the user, tables that cannot be made).
std::unique_ptr<Store> open_pg_store(std::string_view uri, std::chrono::milliseconds busy_timeout, std::string& error);

}  // namespace edge::app
