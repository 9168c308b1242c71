#include "hash/keyed_hash.h"

#include <sys/random.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace edge::hash {

namespace {

uint64_t load_le64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

struct State {
  uint64_t v0, v1, v2, v3;

  void round() {
    v0 += v1;
    v1 = std::rotl(v1, 13);
    v1 ^= v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = std::rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = std::rotl(v1, 17);
    v1 ^= v2;
    v2 = std::rotl(v2, 32);
  }
  void absorb(uint64_t m) {
    v3 ^= m;
    round();
    v0 ^= m;
  }
};

uint64_t siphash13(uint64_t k0, uint64_t k1, std::string_view text) {
  State s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
          k1 ^ 0x7465646279746573ULL};
  const char* p = text.data();
  const size_t whole = text.size() / 8 * 8;
  for (size_t i = 0; i < whole; i += 8) s.absorb(load_le64(p + i));
  uint64_t last = static_cast<uint64_t>(text.size() & 0xff) << 56;
  for (size_t i = whole; i < text.size(); ++i) last |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * (i - whole));
  s.absorb(last);
  s.v2 ^= 0xff;
  s.round();
  s.round();
  s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

struct ProcessKey {
  uint64_t k0 = 0, k1 = 0;
  ProcessKey() {
    uint8_t bytes[16];
    size_t got = 0;
    while (got < sizeof bytes) {
      const ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
      if (n > 0) {
        got += static_cast<size_t>(n);
      } else if (errno != EINTR) {
        // Without a secret the tables could be flooded; better not to run at all.
        std::perror("edge: getrandom for the hash key");
        std::abort();
      }
    }
    std::memcpy(&k0, bytes, 8);
    std::memcpy(&k1, bytes + 8, 8);
  }
};

}  // namespace

uint64_t siphash13(const uint8_t (&key)[16], std::string_view text) {
  return siphash13(load_le64(reinterpret_cast<const char*>(key)), load_le64(reinterpret_cast<const char*>(key) + 8),
                   text);
}

uint64_t keyed_hash(std::string_view text) {
  static const ProcessKey key;
  return siphash13(key.k0, key.k1, text);
}

}  // namespace edge::hash
