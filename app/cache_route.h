// app/cache_route: the endpoints the HTTP-cache tests drive. /cache answers with the caching
// headers its query chooses (and 304 to a matching conditional request); /count tells how many
// requests for a target reached this server, so a test can tell a backend answer from a cached
// one. Pure, like app/routes.h: the clock and the counts come in the RouteContext.
//
// /cache/<anything>, any method. Query parameters, all optional, percent-decoded; unknown ones
// are ignored (a test may add its own to vary the target); a bad value gives 400:
//   cc=T                 Cache-Control: T
//   cdn_cc=T             CDN-Cache-Control: T
//   edge_cc=T            Edge-Cache-Control: T
//   etag=T               ETag: T, exactly as given ("v1" or W/"v1", quotes included)
//   lm=N                 Last-Modified: N seconds before now, down to the whole hour (0 <= N <=
//                        kMaxCacheOffsetSeconds), so requests a moment apart get the same one
//   expires=N            Expires: now + N seconds (N may be negative); expires=bad gives the
//                        literal (invalid) Expires: 0
//   date=N               Date: now + N seconds, instead of the server's own Date
//   age=T                Age: T (a test of bad or listed Ages sends them as it likes)
//   vary=T               Vary: T
//   tag=T                Surrogate-Key: T
//   xkey=T               xkey: T
//   cookie=T             Set-Cookie: T
//   location=T           Location: T
//   content_location=T   Content-Location: T
//   content_location_self=1  Content-Location: the request's target, as received
//   surrogate=T          Surrogate-Control: T (content="ESI/1.0" asks the edge to assemble it)
//   type=T               Content-Type: T (default text/plain)
//   content_encoding=T   Content-Encoding: T (the body is not encoded: a label to be relayed)
//   coded=C              the body (text, or size=N pattern bytes, at most kMaxCodedBytes, sent
//                        with a Content-Length) encoded in C (br, zstd or gzip), with
//                        Content-Encoding: C
//   status=N             status N (200..599; default 200)
//   delay=MS             nothing is sent for MS ms (<= kMaxWaitMs), as /wait
//   gather=M             held until M requests for this same target (as received) are held
//                        together (1 <= M <= kMaxGather), or until gather_ms (default 5000,
//                        <= kMaxWaitMs) have passed; then answered with X-Gathered: N, how many
//                        were held together when this one was let go (M, or fewer at the time
//                        limit), so a test sees whether its requests reached the server at
//                        once. A delay starts when it is let go.
//   size=N               a body of N pattern bytes (<= kMaxPatternBytes), with chunk=K (1 to
//                        kMaxChunkBytes) in chunks of K bytes, no Content-Length; with
//                        ranges=1, a GET's single Range is answered 206 with Content-Range
//                        (416 past the end) unless its If-Range matches neither etag nor lm; else
//   body=T               the body T (any bytes, percent-decoded: an ESI template, say); else
//   include_self=1       the body `self:<esi:include src="<this target>"/>`, a template that
//                        includes itself; else
//                        "<name> <method> <target> <count>\n" (target as received)
// A text parameter T (no CR, LF or NUL) given more than once gives one field line per
// occurrence, in order; the first one counts for the 304 decision. A numeric one uses its first.
//
// Every /cache response also carries X-Count: <this request's count>, and X-Got-If-None-Match,
// X-Got-If-Modified-Since, X-Got-Cookie, X-Got-Range, X-Got-If-Range and X-Got-Accept-Encoding
// with the request's fields (several of one name joined
// with ", ", or "; " for Cookie) when it had them, so a test sees what a proxy sent upstream.
//
// A GET or HEAD gets 304 with the same fields and no body when status is 200 (given or by
// default) and either the request has If-None-Match, the query sets etag and they match by weak
// comparison ("*" matches), or the request has no If-None-Match, the query sets lm and
// If-Modified-Since is an IMF-fixdate not earlier than that Last-Modified. A HEAD is answered as
// the GET would be: its Content-Length is the GET body's (method "GET" in the text body).
//
// /count?url=T: 200 "N\n" with N = RequestCounts::get(T) (0 for a target never seen).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "app/query.h"
#include "app/routes.h"
#include "http/message.h"

namespace edge::app {

// The most requests a gather parameter may ask to hold together.
inline constexpr uint64_t kMaxGather = 1000;

// lm, expires and date offsets: a hundred years either way.
inline constexpr int64_t kMaxCacheOffsetSeconds = 100ll * 365 * 24 * 3600;

// The /cache reply for `head` and its decoded query.
// A coded body is built whole: `coded` with `size` takes at most this many bytes.
inline constexpr uint64_t kMaxCodedBytes = 16ull << 20;

Reply cache_reply(const http::RequestHead& head, const QueryParams& query, const RouteContext& context);
// The /count reply for its decoded query.
Reply count_reply(const QueryParams& query, const RouteContext& context);

// Whether an If-None-Match field value lists `etag` by weak comparison (RFC 9110 8.8.3.2: a W/
// prefix is ignored on both sides), or is "*".
bool if_none_match_matches(std::string_view if_none_match, std::string_view etag);

// The IMF-fixdate of a Unix time.
std::string http_date(int64_t unix_seconds);

}  // namespace edge::app
