// hash/keyed_hash: the hash for tables that clients fill with text of their choosing (cache keys,
// the fills in flight, the heavy hitters of /top). std::hash is the same function in every
// process, and keys that collide under it can be computed offline: enough of them in one table
// make every lookup there a walk through all of them (hash flooding). This is SipHash-1-3 under a
// 128-bit key drawn from the kernel's random source when the process first hashes, so collisions
// cannot be found without seeing the hashes.
//
// Thread safety: any thread; the key is set once, before the first hash returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace edge::hash {

uint64_t keyed_hash(std::string_view text);

// SipHash-1-3 of `text` under `key` (16 bytes): keyed_hash's function, for tests.
uint64_t siphash13(const uint8_t (&key)[16], std::string_view text);

// For unordered containers keyed by strings: keyed_hash, with lookups by string_view.
struct KeyedHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return static_cast<size_t>(keyed_hash(text)); }
};

}  // namespace edge::hash
