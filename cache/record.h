// cache/record: the bytes a cached response is kept as in memcached, so that every edge node (and
// every version of edge that knows the format) reads back what another one stored.
//
// Format (version 2). All integers little-endian, fixed width; every string is a u32 length and
// its bytes; every list is a u32 count and its items:
//
//   "EDGE" 0x02                      magic and version
//   key host path variant            the object's identity (the tier checks key after a get)
//   u16 status, reason
//   u32 count, (name, value)*        the stored headers, in order
//   i64 request_time response_time date_value age_value   the age basis
//                                    (written as a store keeps it, cache::StoredAge::expanded:
//                                    the three times equal and age_value the age on arrival)
//   i64 lifetime grace stored_at
//   u8 flags                         bit 0: a page to assemble (it had ESI/SSI includes);
//                                    bit 1: the body was decoded from the backend's coding
//   u32 count, tag*                  Surrogate-Key / xkey values
//   u32 count, vary name*
//   u32 count, (u8 coding, u64 length, bytes)*   the body's stored encodings (compress::Coding:
//                                    1 br, 2 zstd, 3 gzip), each coding at most once
//   u64 length, body bytes           last, so a reader can find the head without the body
//
// Version 1 is version 2 without the encodings and with flags 0 or 1; both are read, version 2 is
// written (a node of an older version treats a version-2 record as a miss and writes its own).
// The record ends exactly where the body ends: trailing bytes make it invalid.
//
// What is not in a record: the Cache-Control directives (derived again from the stored headers on
// decode), the ban epoch (given by the store that takes the object in), the attachment (an ESI
// template is compiled again from the body when flags say so) and the soft-purge flag (purges that reach memcached
// are recorded beside the records, not in them).
//
// Safety: decode() reads only inside the view, checks every length against what is left before
// allocating, and returns nullopt for anything that is not a complete, canonical record; it
// never throws. A version-2 value that decodes re-encodes to the same bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cache/policy.h"
#include "cache/store.h"

namespace edge::cache {

inline constexpr std::string_view kRecordMagic = "EDGE";
inline constexpr uint8_t kRecordVersion = 2;

// True when `value` starts with the record magic (whatever its version or its validity). A value
// that does not was written by another tool (a "foreign" value): the tier serves it as a plain
// body instead of treating it as a broken record.
bool is_record(std::string_view value);

// The record of `object` as stored at `stored_at` (Unix seconds). Reads the body's bytes as they
// are now: the caller passes an object whose body is complete. A null body is stored as empty.
// Strings must be shorter than 4 GiB and the status in 100..999 (true of anything the store
// holds).
std::string encode(const CachedObject& object, Seconds stored_at);

struct DecodedRecord {
  // Owned by the caller from here: a new object, ready for Store::insert (ban_epoch 0, no
  // attachment, not invalidated), its body complete.
  std::shared_ptr<CachedObject> object;
  Seconds stored_at = 0;
  bool assemble = false;  // compile the body as an ESI/SSI page again (flags bit 0)
};

// The object `value` holds, or nullopt if it is not a valid version-1 or version-2 record.
// Never throws.
std::optional<DecodedRecord> decode(std::string_view value);

}  // namespace edge::cache
