// cache/static_key: the memcached key of a request on a `static: memcached` route, from the
// route's `key` template. Shared by the proxy (which reads the key) and `edge assets` (which
// writes it), so both agree byte for byte.
#pragma once

#include <string>
#include <string_view>

namespace edge::cache {

// `key_template` with {host} replaced by `host` (lower case, no port), {path} by the target's
// path as the client sent it (before '?', still percent-encoded) and {query} by what follows the
// '?' ("" without one). The template is the configuration's, already checked (conf/).
std::string expand_static_key(std::string_view key_template, std::string_view host, std::string_view target);

}  // namespace edge::cache
