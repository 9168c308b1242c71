// Feeds arbitrary bytes to the memcached record decoder: it must never crash, overrun or
// allocate beyond its input, and a value it accepts must encode back to the very same bytes.
// Input: the candidate record itself; half the runs get the magic and version prepended, so the
// fuzzer spends its time past the first check.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cache/record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edge::cache;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string value;
  if (!input.empty() && (input[0] & 1)) {
    value.assign(kRecordMagic);
    value.push_back(static_cast<char>(kRecordVersion));
    value.append(input.substr(1));
  } else {
    value.assign(input);
  }
  auto decoded = decode(value);
  if (decoded) {
    if (!is_record(value)) std::abort();
    if (encode(*decoded->object, decoded->stored_at) != value) std::abort();
  }
  return 0;
}
