// proxy/admin_session: signing in to the admin port from a browser, apart from its sockets so
// it can be tested without a loop. Defined in admin_session.cc.
//
// A person signs in once with the admin token (POST /login, a form); the port answers with a
// session cookie, and that cookie then stands for the token on every request, as the bearer
// token does for scripts:
//   - the session id is 256 random bits (OpenSSL's RAND_bytes), sent once in Set-Cookie
//     (HttpOnly, SameSite=Strict, Path=/, Max-Age); only its SHA-256 is kept, so the table
//     itself holds nothing a reader could present;
//   - a session ends at admin.session_ttl after the sign-in (no sliding), at POST /logout, or
//     when kMaxSessions newer ones push it out (the oldest goes first);
//   - a cookie rides along with every request the browser sends, whoever asks it to: a request
//     that changes something (every POST) and that a cookie authenticates must also carry the
//     session's CSRF token in X-Edge-CSRF (the status page has it in its HTML, and a page of
//     another site can read neither), and must not come from another origin (Origin and
//     Sec-Fetch-Site, when the browser sends them). A bearer token is never sent by a browser
//     on its own, so bearer requests need none of that.
//
// Ownership: a Sessions table is the admin server's, on its loop; nothing here is thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "http/message.h"

namespace edge::proxy::admin {

inline constexpr std::string_view kSessionCookie = "edge_admin_session";
inline constexpr std::string_view kCsrfHeader = "X-Edge-CSRF";
inline constexpr size_t kMaxSessions = 64;
// The largest sign-in form read; a longer body is refused unread (413).
inline constexpr size_t kMaxLoginBody = 4096;

// The value of cookie `name` among every Cookie field of the request; nullopt when it is absent,
// present more than once (which one the browser meant cannot be told: neither is taken), or
// empty.
std::optional<std::string_view> cookie_value(const http::Headers& headers, std::string_view name);

// The value of field `name` in an application/x-www-form-urlencoded body ('+' is a space, %XX
// a byte); nullopt when the field is absent, repeated, or badly encoded, or the value holds a
// NUL.
std::optional<std::string> form_value(std::string_view body, std::string_view name);

// Why a request must not act for a signed-in browser, or nullptr when it may: Origin, when
// present, must be this port's own (http:// and the Host the request was sent to), or "null"
// (what a page under a no-referrer policy sends) with Sec-Fetch-Site: same-origin; and
// Sec-Fetch-Site, when present, "same-origin" or "none" (typed or bookmarked): "cross-site" and
// "same-site" (another port of the same host is the same site) are refused.
const char* cross_origin_refusal(const http::Headers& headers);

// 2 * bytes lower-case hex digits from OpenSSL's RAND_bytes; empty if it fails.
std::string random_hex(size_t bytes);

// Equal, in a time that depends only on the lengths.
bool secret_equals(std::string_view a, std::string_view b);

class Sessions {
 public:
  Sessions(int64_t ttl_ms, size_t max_sessions = kMaxSessions) : ttl_ms_(ttl_ms), max_(max_sessions) {}

  struct Opened {
    std::string id;  // what the cookie carries; not kept
    std::string csrf;
    int64_t expires_ms = 0;
  };
  // A new session from now_ms; nullopt when no random bytes could be had.
  std::optional<Opened> open(int64_t now_ms);
  // The CSRF token of the live session `id` names; nullopt for an unknown or expired one
  // (which is forgotten).
  std::optional<std::string> csrf_of(std::string_view id, int64_t now_ms);
  // Ends the session `id` names; false when there was none.
  bool close(std::string_view id);
  size_t size() const { return by_digest_.size(); }
  int64_t ttl_ms() const { return ttl_ms_; }

 private:
  struct Session {
    std::string csrf;
    int64_t expires_ms;
    uint64_t order;  // of opening: the smallest is the oldest
  };
  void drop_expired(int64_t now_ms);

  int64_t ttl_ms_;
  size_t max_;
  uint64_t opened_ = 0;
  std::unordered_map<std::string, Session> by_digest_;  // by the SHA-256 of the id, raw bytes
};

}  // namespace edge::proxy::admin
