// proxy/compression: the content codings of stored objects, made once when they are stored.
//
// A stored object keeps its identity body and, for a response its route compresses, the same
// body in each of the route's codings (CachedObject::encodings, counted in its charge).
// Request::deliver sends the one the client's Accept-Encoding chooses; responses without stored
// encodings are compressed as they stream (compress/stream.h, in proxy/request.cc).
#pragma once

#include <cstdint>
#include <memory>

#include "cache/store.h"
#include "compress/coding.h"

namespace edge::proxy {

// Bodies up to this size are compressed on the loop that stores them (a few milliseconds at
// most at the stored levels); larger ones are compressed per delivery as they stream.
inline constexpr uint64_t kCompressWhenStoredMax = 256 * 1024;

// A copy of `object` with its body in every coding of `rules` (at rules.level), or null when
// there is nothing to add: not compressible (compress::compressible), a page to assemble, a
// partial or incomplete body, one over kCompressWhenStoredMax, or one that does not get smaller.
std::shared_ptr<cache::CachedObject> with_encodings(const cache::CachedObject& object, const compress::Rules& rules);

}  // namespace edge::proxy
