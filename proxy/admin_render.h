// proxy/admin_render: the admin port's pure parts (paths, tokens, bodies), apart from its
// sockets so they can be tested without a loop. Defined in admin.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "balancer/balancer.h"

namespace edge::proxy::admin {

// What a request path (without its query) names.
struct Route {
  enum Kind {
    kNotFound,
    kBackends,      // /backends
    kBackendsText,  // /backends.txt
    kDrain,         // /backends/<backend>/<server>/drain
    kEnable,        // /backends/<backend>/<server>/enable
  } kind = kNotFound;
  std::string backend;  // percent-decoded; for kDrain and kEnable
  std::string server;
};
Route parse_route(std::string_view path);

// The methods a route answers (for 405 and Allow): "GET, HEAD" or "POST"; "" for kNotFound.
std::string_view allowed_methods(Route::Kind kind);
bool method_allowed(Route::Kind kind, std::string_view method);

// Percent-decoding of one path segment; nullopt for a bad escape or an encoded NUL or '/'.
std::optional<std::string> percent_decode(std::string_view segment);

// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive); nullopt when
// the value is not a bearer credential.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// SHA-256 of a token: what is kept of the configured token and compared, so the comparison
// (CRYPTO_memcmp) takes the same time whatever the lengths and contents.
struct TokenDigest {
  unsigned char bytes[32];
};
TokenDigest digest_token(std::string_view token);
bool token_matches(std::string_view presented, const TokenDigest& expected);

// A JSON string literal, quotes included.
std::string json_string(std::string_view text);

// GET /backends and /backends.txt, read from the live counters at `now_ms`.
std::string render_backends_json(const balancer::Balancer& balancer, int64_t now_ms);
std::string render_backends_text(const balancer::Balancer& balancer, int64_t now_ms);

}  // namespace edge::proxy::admin
