// cache/partial: partial content in the cache (RFC 9111 3.3 and 3.4): 206 responses stored as
// parts of one representation, ranges answered from them, the bytes still missing named for a
// fetch of their own, and parts that meet joined into the complete response.
//
// A partial object is a CachedObject whose `parts` is not empty: byte ranges of a representation
// of `complete_length` bytes, all from responses with the same strong validator. Its fields are
// those of the latest response, with the 206's framing (Content-Range) taken out; its status is
// 200, the status of the complete representation.
//
// Pure functions, and PartsBody, a body source over parts; no locks, any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/policy.h"
#include "http/message.h"
#include "http/shared_body.h"

namespace edge::cache {

// The Content-Range of a single-part 206 (RFC 9110 14.4): "bytes first-last/complete", the
// complete length known. Nullopt for anything else (a "*" length, another unit, last < first,
// last past the length, white space inside a number).
struct ContentRange {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t complete_length = 0;
};
std::optional<ContentRange> parse_content_range(std::string_view value);

// One part: the bytes [first, first + length) of the representation. `body` may still be growing
// (a part being fetched); a stored part's is complete.
struct Part {
  uint64_t first = 0;
  uint64_t length = 0;
  std::shared_ptr<const http::SharedBody> body;
};

// At most this many parts per object; a new part past it pushes out the smallest ones.
inline constexpr size_t kMaxParts = 32;

// Whether the parts hold every byte of [first, last].
bool parts_cover(const std::vector<Part>& parts, uint64_t first, uint64_t last);
// The bytes of [first, last] no part holds, as one span from the first missing byte to the last:
// what one fetch asks for (bytes between that the parts hold are fetched again). Nullopt when the
// parts cover it all.
std::optional<ByteRange> missing_span(const std::vector<Part>& parts, uint64_t first, uint64_t last);
// `parts` with `added` among them, sorted by first: parts that `added` contains entirely go, and
// past kMaxParts the smallest others go. Parts that overlap stay (they hold the same bytes);
// readers read on from the part that holds the most bytes from where they are.
std::vector<Part> add_part(const std::vector<Part>& parts, Part added);
// The bytes the parts hold (overlaps counted once per part).
uint64_t parts_bytes(const std::vector<Part>& parts);
// The complete representation, when the (complete) parts cover [0, complete_length): one body,
// complete. Null otherwise.
std::shared_ptr<http::SharedBody> join_parts(const std::vector<Part>& parts, uint64_t complete_length);

// The fields stored for a 206 part: stored_headers() without Content-Range.
http::Headers stored_part_headers(const http::Headers& response);

// The bytes [first, last] of a partial object, seen from offset 0, while the part being fetched
// grows: size() is how far the bytes are there without a gap. Borrows the parts, which must
// outlive its use (the delivery holds the object).
class PartsBody final : public http::BodySource {
 public:
  void reset(const std::vector<Part>* parts, uint64_t first, uint64_t last) {
    parts_ = parts;
    first_ = first;
    length_ = last - first + 1;
  }
  int peek(uint64_t offset, http::IoSlice* out, int max, size_t max_bytes, std::string& scratch) const override;
  uint64_t size() const override;
  bool complete() const override { return size() == length_; }

 private:
  // The part holding byte `at` (absolute) and how many of its bytes from `at` on are there now.
  const Part* holder(uint64_t at, uint64_t* available) const;

  const std::vector<Part>* parts_ = nullptr;
  uint64_t first_ = 0;
  uint64_t length_ = 0;
};

}  // namespace edge::cache
