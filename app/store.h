// app/store: where the demo site keeps what changes at run time (sessions, posted reviews, view
// counts), shared by every edge-app that opens the same store, so any server can answer any
// request, writes included (as the app servers of a ZEO storage did). The generated catalogue is
// not here: every server makes the same one from its seed (app/demo_data.h).
//
// Two kinds, one schema and one contract:
//   sqlite:PATH          a SQLite file in WAL mode (app/sqlite_store.h): several processes on one
//                        machine; created with its tables when missing. "sqlite::memory:" is a
//                        store private to the process (the default of a lone edge-app).
//   postgresql://...     a PostgreSQL database (app/pg_store.h; libpq's connection URI, also
//   postgres://...       "postgres://"): servers on several machines. The tables are created
//                        when missing.
// Tables (both kinds):
//   sessions(seq, token UNIQUE, user_id, created)       at most kMaxSessions rows: opening one
//                        past that forgets the oldest (lowest seq)
//   reviews(id, book, user_id, rating, created, text)    id 1, 2, ... in the order stored; at most
//                        kMaxPostedReviews rows (add_review answers kFull past that)
//   views(span, slot, book, count)                       one row per book per time slot: span 300
//                        (5-minute slots, the hour) and 3600 (1-hour slots, the day). A view adds
//                        one to the current slot of both; slots older than their window are
//                        deleted as time moves on.
//
// Every call is one short transaction, made synchronously on the caller's thread (the app server
// is single-threaded, as those app servers were: a request waits for its store). A store that is
// busy (another process holds the lock) is waited for and retried up to `busy_timeout`; only
// then does a call answer kBusy, which the site turns into 503 with Retry-After, never a 500. A
// lost PostgreSQL connection is reopened once per call. kFailed is anything else (a broken file,
// a refused query); last_error() says what.
//
// Ownership: the DemoSite owns its Store; a Store is used by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/demo_pages.h"

namespace edge::app {

inline constexpr size_t kMaxSessions = 100000;
inline constexpr size_t kMaxPostedReviews = 20000;
inline constexpr std::chrono::milliseconds kDefaultBusyTimeout{5000};

enum class StoreStatus {
  kOk,
  kFull,    // add_review: kMaxPostedReviews are stored
  kBusy,    // still locked by another writer after busy_timeout
  kFailed,  // see last_error()
};

enum class ViewWindow { kHour, kDay };

class Store {
 public:
  virtual ~Store() = default;

  // Opens a session: `token` (unique, cookie-safe) names `user` from now on.
  virtual StoreStatus open_session(std::string_view token, uint32_t user, int64_t now) = 0;
  // The session's user, or nullopt in `user` when there is no such session.
  virtual StoreStatus session_user(std::string_view token, std::optional<uint32_t>& user) = 0;
  virtual StoreStatus end_session(std::string_view token) = 0;

  // Stores a review (review.id is ignored); `id` gets the one it was given.
  virtual StoreStatus add_review(uint32_t book, const PostedReview& review, uint32_t& id) = 0;
  // The reviews posted to `book`, oldest first.
  virtual StoreStatus posted_reviews(uint32_t book, std::vector<PostedReview>& out) = 0;
  // How many reviews are stored, for every book.
  virtual StoreStatus posted_review_count(uint64_t& count) = 0;

  // One view of `book` at `now` (Unix seconds).
  virtual StoreStatus add_view(uint32_t book, int64_t now) = 0;
  // The n most viewed books of the window ending at `now`, most first (ties: lower id first);
  // books not viewed in it are left out. "The last hour" is the current 5-minute slot and the 11
  // before it; "the last day" the current hour and the 23 before it.
  virtual StoreStatus most_viewed(int64_t now, ViewWindow window, size_t n, std::vector<ViewCount>& out) = 0;

  // What went wrong in the last call that did not answer kOk.
  virtual const std::string& last_error() const = 0;
};

// "sqlite:PATH", "sqlite::memory:", "postgresql://..." or "postgres://...": the store opened and
// its tables made, or null with `error` set (what is wrong with the spec, or why it did not open).
std::unique_ptr<Store> open_store(std::string_view spec, std::chrono::milliseconds busy_timeout, std::string& error);

// The views' windows: slot = now / span, and a window is its current slot and the slots-1 before.
inline constexpr int64_t kHourSpan = 300, kHourSlots = 12, kDaySpan = 3600, kDaySlots = 24;

}  // namespace edge::app
