#include "hash/keyed_hash.h"

#include <doctest/doctest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <cstring>
#include <random>
#include <string>
#include <unordered_map>

namespace edge::hash {

namespace {

// OpenSSL's SipHash with one compression and three finalisation rounds: the reference.
uint64_t openssl_siphash13(const uint8_t (&key)[16], std::string_view text) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "SIPHASH", nullptr);
  REQUIRE(mac != nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  unsigned int c_rounds = 1, d_rounds = 3;
  size_t size = 8;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                         OSSL_PARAM_construct_uint(OSSL_MAC_PARAM_C_ROUNDS, &c_rounds),
                         OSSL_PARAM_construct_uint(OSSL_MAC_PARAM_D_ROUNDS, &d_rounds), OSSL_PARAM_construct_end()};
  REQUIRE(EVP_MAC_init(ctx, key, sizeof key, params) == 1);
  REQUIRE(EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(text.data()), text.size()) == 1);
  unsigned char out[8];
  size_t out_size = 0;
  REQUIRE(EVP_MAC_final(ctx, out, &out_size, sizeof out) == 1);
  REQUIRE(out_size == 8);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = value << 8 | out[i];  // little-endian
  return value;
}

}  // namespace

TEST_CASE("keyed hash: SipHash-1-3 as OpenSSL computes it, for every tail length and any byte") {
  std::mt19937_64 random(20261205);
  for (int trial = 0; trial < 200; ++trial) {
    uint8_t key[16];
    for (uint8_t& b : key) b = static_cast<uint8_t>(random());
    std::string text(static_cast<size_t>(trial % 70), '\0');
    for (char& c : text) c = static_cast<char>(random());
    CAPTURE(trial);
    CHECK(siphash13(key, text) == openssl_siphash13(key, text));
  }
}

TEST_CASE("keyed hash: the process's key is secret, the hash stable within the process") {
  const uint8_t zero[16] = {};
  CHECK(keyed_hash("example.com/") == keyed_hash("example.com/"));
  CHECK(keyed_hash("example.com/") != siphash13(zero, "example.com/"));
  CHECK(keyed_hash("example.com/") != std::hash<std::string_view>{}("example.com/"));
  CHECK(keyed_hash("") != keyed_hash(std::string_view("\0", 1)));

  // As a container's hash, found by a view as by a string.
  std::unordered_map<std::string, int, KeyedHash, std::equal_to<>> map;
  map["a.test/x"] = 1;
  CHECK(map.find(std::string_view("a.test/x")) != map.end());
  CHECK(map.find(std::string_view("a.test/y")) == map.end());
}

}  // namespace edge::hash
