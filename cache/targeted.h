// cache/targeted: targeted cache control (RFC 9213): response fields whose directives are for a
// class of caches only, and take the place of Cache-Control and Expires for them.
//
// edge reads, most specific first, the first of these that is present and valid:
//   1. the field the configuration names for edge itself (cache.targeted_field, e.g.
//      Edge-Cache-Control), a Structured Fields Dictionary (RFC 8941) as RFC 9213 defines;
//   2. Surrogate-Control, the Edge Architecture's field for surrogates, when it carries max-age
//      or no-store (its content="ESI/1.0" alone says nothing of caching);
//   3. CDN-Cache-Control (RFC 9213 3), a Dictionary.
// A Dictionary that does not parse is invalid and ignored as a whole (RFC 9213 2.1), as if
// absent. Its members: max-age, s-maxage, stale-while-revalidate and stale-if-error take an
// Integer >= 0; no-store, no-cache, private, public, must-revalidate, proxy-revalidate and
// immutable are present unless `=?0` (no-cache and private may carry a list: still present).
// A member of the wrong type is ignored, as are unknown members and parameters.
//
// Pure functions of message heads.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "cache/policy.h"
#include "http/message.h"

namespace edge::cache {

inline constexpr std::string_view kCdnCacheControl = "CDN-Cache-Control";

// Whether `value` (the field lines of one name joined with ", ") is a Structured Fields
// Dictionary.
bool is_sf_dictionary(std::string_view value);

// A targeted field's directives: nullopt when the field is absent or not a valid Dictionary.
std::optional<CacheControl> parse_targeted_field(const http::Headers& headers, std::string_view name);

// The directives of the targeted field that applies, or nullopt when none does.
// `edge_field`: cache.targeted_field ("" none).
std::optional<CacheControl> targeted_directives(const http::Headers& headers, std::string_view edge_field);

// The response as this cache must read it: when a targeted field applies, a copy whose
// Cache-Control is that field's directives and without Expires; nullopt when none applies (the
// response is read as it is). `edge_field`: cache.targeted_field ("" none).
std::optional<http::ResponseHead> targeted_view(const http::ResponseHead& response, std::string_view edge_field);

// Cache-Control text for `cc`'s response directives, in a fixed order.
std::string format_cache_control(const CacheControl& cc);

}  // namespace edge::cache
