// Feeds arbitrary bytes to the invalidation log parser: it must never crash or throw, and a log
// it accepts, written again by compacted() with room for everything, must parse to as many
// entries and the same created, and be written the same way again (a fixed point).
// Input: the candidate log itself; half the runs get a valid header prepended, so the fuzzer
// spends its time on the entries.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cache/invalidation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edge::cache;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string text;
  if (!input.empty() && (input[0] & 1)) {
    text = invalidation_log_header(1000);
    text.append(input.substr(1));
  } else {
    text.assign(input);
  }
  auto log = InvalidationLog::parse(text);
  if (!log) return 0;

  std::string written = log->compacted(SIZE_MAX);
  auto again = InvalidationLog::parse(written);
  if (!again) std::abort();
  if (again->entries() != log->entries() || again->created() != log->created()) std::abort();
  if (again->compacted(SIZE_MAX) != written) std::abort();

  // Matching (prefixes, regexes that did not compile, RE2 searches) must not throw either.
  static CachedObject* object = [] {
    auto* o = new CachedObject;
    o->set_key("www.example.com/img/a-1.png?v=2", "www.example.com", "/img/a-1.png?v=2");
    o->tags = {"t", "-", "a b"};
    return o;
  }();
  log->check(*object, 0);
  log->check(*object, 1001);

  // Compaction to any size parses, and never moves created back.
  auto small = InvalidationLog::parse(log->compacted(size % 256));
  if (!small || small->entries() > log->entries() || small->created() < log->created()) std::abort();
  return 0;
}
