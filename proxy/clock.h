// proxy/clock: the time the proxy's modules read alike: the wall clock in the cache's seconds
// (what stored objects and the invalidation log are stamped with), and a configured duration as
// the milliseconds the loop's timers take.
#pragma once

#include <cstdint>
#include <ctime>

#include "cache/policy.h"
#include "conf/config.h"

namespace edge::proxy {

inline cache::Seconds wall_now() { return static_cast<cache::Seconds>(std::time(nullptr)); }

inline uint64_t to_ms(conf::Duration d) { return static_cast<uint64_t>(d.count()); }

}  // namespace edge::proxy
