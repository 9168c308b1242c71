// cache/policy: the HTTP caching rules of RFC 9111 (and the conditional and range requests of
// RFC 9110 that a cache answers itself), as pure functions of message heads and times.
//
// Nothing here keeps state, allocates a cache entry or reads a clock: every time is passed in,
// in whole seconds since the Unix epoch, so each rule is tested alone. The cache store and the
// proxy call these functions; they own the objects.
//
// We are a shared cache: `private` responses are not stored, `s-maxage` and `proxy-revalidate`
// apply, and a request with Authorization is answered from the cache only when the response
// allows it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace edge::cache {

using Seconds = int64_t;
constexpr Seconds kForever = INT64_MAX / 4;  // "max-stale" without a value, and other "no bound"

// ---- dates ----

using http::parse_http_date;  // IMF-fixdate, RFC 850 and asctime (http/message.h)
std::string format_http_date(Seconds unix_time);

// ---- Cache-Control ----

// A number of seconds or none: std::optional<Seconds>'s use in half its size (no time is
// INT64_MIN), since every stored object keeps six of them.
class MaybeSeconds {
 public:
  constexpr MaybeSeconds() = default;
  constexpr MaybeSeconds(std::nullopt_t) {}
  constexpr MaybeSeconds(Seconds value) : value_(value) {}
  constexpr MaybeSeconds(std::optional<Seconds> value) : value_(value ? *value : kNone) {}
  constexpr bool has_value() const { return value_ != kNone; }
  constexpr explicit operator bool() const { return has_value(); }
  constexpr Seconds operator*() const { return value_; }
  constexpr Seconds value_or(Seconds otherwise) const { return has_value() ? value_ : otherwise; }
  constexpr void reset() { value_ = kNone; }
  constexpr operator std::optional<Seconds>() const { return has_value() ? std::optional(value_) : std::nullopt; }
  friend constexpr bool operator==(MaybeSeconds a, MaybeSeconds b) { return a.value_ == b.value_; }
  friend constexpr bool operator==(MaybeSeconds a, Seconds b) { return a.has_value() && a.value_ == b; }
  friend constexpr bool operator==(MaybeSeconds a, std::nullopt_t) { return !a.has_value(); }

 private:
  static constexpr Seconds kNone = INT64_MIN;
  Seconds value_ = kNone;
};

struct CacheControl {
  // Response and request directives we act on. A directive given twice with different values,
  // or with an invalid value, counts as the most restrictive reading (RFC 9111 4.2.1, 5.2).
  bool no_store = false;
  bool no_cache = false;  // also set by `Pragma: no-cache` on a request without Cache-Control
  bool is_private = false;
  bool is_public = false;
  bool must_revalidate = false;
  bool proxy_revalidate = false;
  bool only_if_cached = false;
  bool immutable = false;
  MaybeSeconds max_age;
  MaybeSeconds s_maxage;
  MaybeSeconds max_stale;  // kForever for a bare `max-stale`
  MaybeSeconds min_fresh;
  MaybeSeconds stale_while_revalidate;
  MaybeSeconds stale_if_error;
};

// All Cache-Control fields of a head, combined. `request` enables the Pragma fallback.
CacheControl parse_cache_control(const http::Headers& headers, bool request);

// A response's Cache-Control as a stored object keeps it: its flags and the four response
// directives with a value, in 20 bytes instead of CacheControl's 56, since a store holds many
// objects. A value of 2^32 - 2 seconds (136 years) or more is kept as that many, which is forever
// to any cache. The request directives (max-stale, min-fresh, only-if-cached) are not kept.
class StoredCacheControl {
 public:
  StoredCacheControl() = default;
  StoredCacheControl(const CacheControl& cc);  // implicit: a parsed one is assigned to an object
  CacheControl get() const;
  operator CacheControl() const { return get(); }  // implicit: read where a CacheControl is

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  static uint32_t pack(MaybeSeconds value);
  static MaybeSeconds unpack(uint32_t value) { return value == kNone ? MaybeSeconds() : MaybeSeconds(Seconds{value}); }
  uint32_t max_age_ = kNone;
  uint32_t s_maxage_ = kNone;
  uint32_t stale_while_revalidate_ = kNone;
  uint32_t stale_if_error_ = kNone;
  uint8_t flags_ = 0;
};

// ---- storing ----

struct StoreOptions {
  bool store_set_cookie = false;  // responses with Set-Cookie are stored only when configured
  Seconds default_ttl = 0;        // freshness when the backend gives none (route `ttl`)
  Seconds max_ttl = kForever;     // cap on any freshness lifetime (route `max_ttl`)
  Seconds heuristic_cap = 86400;  // cap on the 10%-of-Last-Modified heuristic
};

enum class StoreVerdict {
  kStore,
  kMethod,         // not a GET
  kStatus,         // status not storable (or not understood)
  kNoStore,        // no-store in the request or the response
  kPrivate,
  kAuthorization,  // the request had Authorization and the response does not allow sharing
  kSetCookie,
  kVaryStar,
  kNoFreshness,    // no explicit freshness, no validator, not heuristically cacheable, no ttl
  kPartial,        // 206 and other partial content: we store full responses only
};
const char* verdict_name(StoreVerdict verdict);
// Whether a response refused for `verdict` marks its key hit-for-pass: not when the refusal is
// about this request (its method, its Authorization), nor for a status that says the backend is
// in trouble (5xx), which is never a reason to stop trying to cache the key.
bool marks_hit_for_pass(StoreVerdict verdict, int status);

// What is kept of a response's fields with a stored object: not the hop-by-hop ones, not the
// framing, not Age (recomputed at every delivery) and not the surrogate fields (Surrogate-Key,
// xkey, Surrogate-Control), which are for the cache, not for clients.
http::Headers stored_headers(const http::Headers& response);

StoreVerdict can_store(const http::RequestHead& request, const http::ResponseHead& response,
                       const StoreOptions& options);

// RFC 9110 9.3.3 and 8.7: a 200 or 203 to a POST, with explicit freshness and one
// Content-Location naming the POST's own target (on `host`), is a representation of that target:
// true when it may be stored as the answer to a GET of it (can_store judging it as a GET's).
// `target` is the POST's target as the cache key reads it.
bool post_answers_get(const http::RequestHead& post, std::string_view target, const http::ResponseHead& response,
                      std::string_view host, const StoreOptions& options);

// Status codes whose responses are cacheable by default (RFC 9110 15.1): heuristic freshness may
// apply to them.
bool heuristically_cacheable(int status);

// ---- age and freshness (RFC 9111 4.2) ----

// What the cache notes when it receives a response, to compute its age later.
struct AgeBasis {
  Seconds request_time = 0;   // when the request was sent
  Seconds response_time = 0;  // when the response was received
  Seconds date_value = 0;     // the response's Date (response_time when absent or invalid)
  Seconds age_value = 0;      // the response's Age: its first member (0 when absent or invalid)
  Seconds corrected_initial_age() const;
  Seconds current_age(Seconds now) const;
};
AgeBasis age_basis(const http::ResponseHead& response, Seconds request_time, Seconds response_time);

// An age basis as a stored object keeps it: what current_age() needs, in half the size. Built
// from an AgeBasis; expanded() gives one that ages the same way.
class StoredAge {
 public:
  StoredAge() = default;
  StoredAge(const AgeBasis& basis)  // implicit: a computed basis is assigned to an object
      : response_time_(basis.response_time), corrected_initial_age_(basis.corrected_initial_age()) {}
  Seconds response_time() const { return response_time_; }
  Seconds corrected_initial_age() const { return corrected_initial_age_; }
  Seconds current_age(Seconds now) const;
  // Received at response_time, sent at once, dated then, and as old as it was on arrival.
  AgeBasis expanded() const { return AgeBasis{response_time_, response_time_, response_time_, corrected_initial_age_}; }

 private:
  Seconds response_time_ = 0;
  Seconds corrected_initial_age_ = 0;
};

// The freshness lifetime: s-maxage, max-age, Expires - Date, the Last-Modified heuristic (for
// heuristically cacheable statuses), the default ttl; then capped by max_ttl.
Seconds freshness_lifetime(const http::ResponseHead& response, const CacheControl& response_cc,
                           const AgeBasis& basis, const StoreOptions& options);

// ---- using a stored response ----

enum class Use {
  kFresh,                 // serve it
  kStaleAllowed,          // stale, but the request's max-stale accepts it: serve it
  kStaleWhileRevalidate,  // serve it, and refresh it in the background (once)
  kRevalidate,            // ask the backend (conditionally, with the stored validators)
};

struct StoredView {
  CacheControl response_cc;  // a copy: a view must not outlive what it was built from
  Seconds lifetime;     // freshness_lifetime at storage
  Seconds current_age;  // AgeBasis::current_age(now)
  Seconds grace = 0;    // route option: how long past stale it may still be served while revalidating
};

// What to do with a stored response for this request. A request whose Authorization is not
// allowed by the response never reaches here (can_store decided at storage).
Use decide(const CacheControl& request_cc, const StoredView& stored);

// Whether a stored response may answer a request carrying Authorization: only when it said it
// may be shared (public, s-maxage or must-revalidate; RFC 9111 3.5).
bool shareable_with_authorization(const CacheControl& response_cc);

// When the backend fails or answers 5xx: whether the stale response may be served instead
// (stale-if-error from the response or the request, or the route's grace), RFC 5861.
bool may_serve_stale_on_error(const CacheControl& request_cc, const StoredView& stored);

// ---- answering conditional requests from the cache (RFC 9110 13) ----

enum class Precondition { kProceed, kNotModified, kFailed };
// Evaluates If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since of `request`
// against the stored response's ETag and Last-Modified, in the order RFC 9110 13.2.2 gives.
Precondition evaluate_preconditions(const http::RequestHead& request, const http::Headers& stored);

// Weak and strong entity-tag comparison (RFC 9110 8.8.3.2); `list` may be "*".
bool etag_matches_any(std::string_view list, std::string_view etag, bool weak);

// ---- ranges (RFC 9110 14) ----

struct ByteRange {
  uint64_t first;
  uint64_t last;  // inclusive
};
struct RangeDecision {
  enum Kind { kFull, kPartial, kUnsatisfiable } kind = kFull;
  ByteRange range{};  // for kPartial
};
// A single bytes range is answered 206; several ranges, a syntax error or an If-Range that does
// not match the stored validator give the full response; a range past the end gives 416.
RangeDecision decide_range(const http::RequestHead& request, const http::Headers& stored, uint64_t size);

// The range a GET asks for before anything is known of the representation: one `first-last` or
// `first-` range (last UINT64_MAX: to the end) without If-Range. Nullopt otherwise: no Range, one
// decide_range() answers with the whole, several ranges, or a suffix range (it needs the length).
std::optional<ByteRange> requested_range(const http::RequestHead& request);

// The strong validator of a response, for combining its parts with others (RFC 9111 3.4) and for
// an If-Range of edge's own (RFC 9110 13.1.5): a strong entity tag, else a Last-Modified at least
// 60 seconds before the response's Date (RFC 9110 8.8.2.2), as the field has it. "" when the
// response has neither.
std::string strong_validator(const http::Headers& response);

// ---- revalidation and invalidation ----

// The stored headers updated by a 304 (RFC 9111 3.2): every field of the 304 replaces the stored
// ones of the same name, except Content-Length and the hop-by-hop ones.
http::Headers merge_not_modified(const http::Headers& stored, const http::Headers& not_modified);

// The URIs an unsafe request invalidates when its response is 2xx or 3xx (RFC 9111 4.4): the
// target, and Location / Content-Location when on the same host. Each as a path+query on `host`.
std::vector<std::string> invalidated_targets(const http::RequestHead& request, const http::ResponseHead& response,
                                             std::string_view host);

// ---- keys ----

// host (lower case, no port) + normalised path (percent-encoding of unreserved characters
// decoded, hex digits upper-cased, dot segments removed) + "?" + query as received.
std::string cache_key(std::string_view host, std::string_view target);

// The request-header values named by the stored response's Vary, normalised (names lower case,
// white space around and between list items collapsed; Accept-Language and Accept-Encoding as
// weighted sets: case, order among equal weights and the spelling of q normalised), as one
// string; two requests with the same string share a variant. nullopt for `Vary: *`.
std::optional<std::string> vary_key(const http::Headers& response, const http::Headers& request);

}  // namespace edge::cache
