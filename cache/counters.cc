// cache/counters: see counters.h.
#include "cache/counters.h"

namespace edge::cache {

namespace {

constexpr const char* kKeys[] = {
#define EDGE_KEY(name, key, help) key,
    EDGE_CACHE_EVENTS(EDGE_KEY)
#undef EDGE_KEY
};
constexpr const char* kHelp[] = {
#define EDGE_HELP(name, key, help) help,
    EDGE_CACHE_EVENTS(EDGE_HELP)
#undef EDGE_HELP
};
static_assert(sizeof kKeys / sizeof kKeys[0] == kEventCount);

}  // namespace

const char* event_key(Event event) {
  const size_t i = static_cast<size_t>(event);
  return i < kEventCount ? kKeys[i] : "unknown";
}

const char* event_help(Event event) {
  const size_t i = static_cast<size_t>(event);
  return i < kEventCount ? kHelp[i] : "";
}

}  // namespace edge::cache
