// Feeds arbitrary bodies to the ESI/SSI parser, whole and cut into chunks at places the input
// picks. Beyond "no crash", it checks the contract of ssi/template.h: the Template never depends
// on where the body was cut, and its segments are ordered, disjoint, non-empty, within the body,
// with touching text merged and includes numbered in order.
//
// Input: one byte for the syntax and the chunking, one seed byte, then the body. With bit 2 of
// the first byte set, the body is repeated past 2 * kMaxConstruct bytes, so constructs that
// outgrow the limit are cut too.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ssi/template.h"

namespace {

using namespace edge::ssi;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

void check_shape(const Template& t, std::string_view body) {
  require(t.source_size == body.size());
  uint64_t end = 0;
  uint32_t next_include = 0;
  const Segment* previous = nullptr;
  for (const Segment& s : t.segments) {
    require(s.length > 0);
    require(s.offset >= end);
    require(s.offset <= t.source_size && s.length <= t.source_size - s.offset);
    if (s.kind == Segment::kInclude) {
      require(s.include == next_include++);
    } else {
      require(s.kind == Segment::kText && s.include == 0);
      // Text ranges that touch are one segment.
      if (previous != nullptr && previous->kind == Segment::kText)
        require(previous->offset + previous->length < s.offset);
    }
    end = s.offset + s.length;
    previous = &s;
  }
  require(next_include == t.includes.size());
  for (const Include& include : t.includes) {
    require(!include.src.empty());
    for (char c : include.src) require(static_cast<unsigned char>(c) >= 0x20 && c != 0x7F);
  }
  // Nothing is recognised without a '<', so such a body is its own output.
  if (body.find('<') == std::string_view::npos) require(t.is_verbatim() && t.segments.size() <= 1);
  require(t.memory() >= sizeof(Template));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  uint32_t state = 0x9E3779B9u ^ (uint32_t{data[1]} << 8) ^ static_cast<uint32_t>(size);
  const Syntax syntax = static_cast<Syntax>(flags % 3);
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);

  std::string repeated;
  if ((flags & 4) && !input.empty()) {
    while (repeated.size() <= 2 * kMaxConstruct) repeated.append(input);
    input = repeated;
  }

  const Template whole = compile(input, syntax);
  check_shape(whole, input);

  // Chunk sizes from a xorshift the input seeds: mostly small, sometimes large, some empty.
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
  };
  const uint32_t small_bound = (flags & 8) ? 4 : 64;
  Parser parser(syntax);
  std::string_view rest = input;
  while (!rest.empty()) {
    const uint32_t r = next();
    const size_t n = (r & 0x300) == 0x300 ? r % (2 * kMaxConstruct) : r % small_bound;
    parser.feed(rest.substr(0, n));
    rest.remove_prefix(std::min(n, rest.size()));
  }
  const Template chunked = parser.finish();
  require(chunked == whole);

  // The parser starts afresh after finish: the same body compiles the same again.
  parser.feed(input);
  require(parser.finish() == whole);
  return 0;
}
