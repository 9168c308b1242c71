// http/heap: what the heap gives up for an allocation, for accounting that matches the process's
// memory rather than the bytes asked for. The figures are glibc malloc's on 64-bit systems: a
// chunk is the request plus an 8-byte header, rounded up to 16, and at least 32.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

namespace edge::http {

constexpr uint64_t heap_bytes(uint64_t requested) {
  return requested == 0 ? 0 : std::max<uint64_t>(32, (requested + 8 + 15) & ~uint64_t{15});
}

// What a string holds on the heap (nothing while its text fits in the string itself).
inline uint64_t heap_bytes_of(const std::string& s) {
  return s.capacity() > std::string().capacity() ? heap_bytes(s.capacity() + 1) : 0;
}

// An object made by std::make_shared: one chunk holds it and its two reference counts and
// control block's table pointer.
template <typename T>
constexpr uint64_t shared_object_bytes() {
  return heap_bytes(sizeof(T) + 16);
}

}  // namespace edge::http
