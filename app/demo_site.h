// app/demo_site: the decision of what answers each of the demo site's requests, and the changes
// they make to its run-time state (sessions, posted reviews, view counts: app/store.h). No clock
// (the time comes in) and no loop: a request goes in, a Reply comes out, so everything is
// unit-testable (with a private SQLite store). The HTML itself is app/demo_pages.h; the data app/demo_data.h.
//
// Requests it answers (anything else: handle() returns nullopt and the caller routes on). GET
// and HEAD for the pages and fragments of app/demo_pages.h; a wrong method gets 405 with Allow.
//   GET  /login[?next=P]      the login form
//   POST /login               form user=<name or number>[&next=P]: opens a session and answers
//                             303 to P (a local path, else "/") with
//                             Set-Cookie: session=<token>; Path=/; HttpOnly; SameSite=Lax.
//                             An unknown user gets the form again with 403.
//   POST /logout              ends the session named by the cookie (if any), clears the cookie
//                             (Max-Age=0), 303 to /
//   POST /book/<id>/reviews   form text=<review>[&rating=1..5]. Without a valid session: 303 to
//                             /login?next=/book/<id>, nothing stored. With one: stores the review
//                             and answers 303 to /book/<id> with Reply::purge_tag = "book-<id>"
//                             (the server purges that tag at the edge before answering).
//                             Empty, too long (kMaxReviewBytes) or non-UTF-8 text, a bad rating or a form
//                             that is not application/x-www-form-urlencoded: 400 (413 over
//                             kMaxFormBytes, 415 for another type), nothing stored; 503 once
//                             kMaxPostedReviews are stored.
//   GET  /fragments/view/<id> counts one view of the book (HEAD does not), in the views of the
//                             last hour and the last day (app/store.h) that the
//                             mostviewed fragment lists.
// Every answer to a POST, and every login page, is Cache-Control: no-store.
//
// The state lives in a Store (app/store.h) that other servers may share, so a session opened
// here works on every server of the store, and a review posted here shows on pages they render.
// The session cookie is read from every Cookie field of the request. A store still busy after
// its busy_timeout, or broken, makes the request's answer 503 with Retry-After: 1 (no-store),
// never a 500; the store's message goes to stderr, not to the client.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "app/demo_data.h"
#include "app/demo_pages.h"
#include "app/routes.h"
#include "app/store.h"
#include "http/body.h"
#include "http/message.h"

namespace edge::app {

inline constexpr std::string_view kSessionCookie = "session";
inline constexpr size_t kMaxFormBytes = 16 * 1024;

// Makes a new session token: unguessable in production, anything unique in tests. Must return
// a cookie-safe string (letters, digits, '-', '_'), never empty.
using TokenSource = std::function<std::string()>;

// The value of cookie `name` in the request's Cookie fields (the first one, if several).
std::optional<std::string_view> cookie_value(const http::Headers& headers, std::string_view name);
// `path` when it is a local absolute path ("/book/1?x"), else "/": a login never redirects away
// from the site ("//host", "http://...", "/\\host" and control characters are refused).
std::string safe_local_path(std::string_view path);

struct ReviewForm {
  std::string text;    // trimmed; CR dropped, other control characters but LF and TAB made spaces
  uint8_t rating = 0;  // 0: none given
};
// A review form body (application/x-www-form-urlencoded). On failure, `error` says what is wrong
// for the person who posted it.
std::optional<ReviewForm> parse_review_form(std::string_view body, std::string& error);

class DemoSite {
 public:
  DemoSite(uint64_t seed, TokenSource tokens, std::unique_ptr<Store> store, DemoSizes sizes = {});
  DemoSite(const DemoSite&) = delete;
  DemoSite& operator=(const DemoSite&) = delete;

  // The answer for a request to one of the demo's paths, or nullopt for any other path. `now`
  // is the current Unix time (it dates posted reviews and counts views).
  std::optional<Reply> handle(const http::RequestHead& head, const http::Body& body, int64_t now);

  const DemoData& data() const { return data_; }
  Store& store() { return *store_; }

 private:
  // The user of the request's session cookie (nullopt: none or unknown).
  StoreStatus request_user(const http::RequestHead& head, std::optional<uint32_t>& user);
  Reply login(const http::RequestHead& head, const http::Body& body, int64_t now);
  Reply logout(const http::RequestHead& head);
  Reply post_review(const http::RequestHead& head, const http::Body& body, uint32_t book, int64_t now);
  Reply fragment(const http::RequestHead& head, std::string_view rest, int64_t now);
  // The 503 for a store that did not answer kOk.
  Reply store_unavailable(StoreStatus status) const;

  DemoData data_;
  TokenSource tokens_;
  std::unique_ptr<Store> store_;
};

}  // namespace edge::app
