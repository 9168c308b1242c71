#include "cache/store.h"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace edge;
using namespace edge::cache;

namespace {

http::Headers request_with(std::string_view name = {}, std::string_view value = {}) {
  http::Headers h;
  if (!name.empty()) h.add(name, value);
  return h;
}

const http::Headers kNoHeaders;

// An object without Vary, of a fixed charge for keys of equal length.
ObjectRef make(std::string key, size_t body_size = 100, std::vector<std::string> tags = {}) {
  auto o = std::make_shared<CachedObject>();
  o->key = std::move(key);
  o->reason = "OK";
  o->headers.add("Content-Type", "text/plain");
  o->body.assign(body_size, 'x');
  o->tags = std::move(tags);
  return o;
}

// An object varying on Accept-Encoding, fetched by a request with this Accept-Encoding.
ObjectRef make_ae(std::string key, std::string_view encoding, std::string body) {
  auto o = std::make_shared<CachedObject>();
  o->key = std::move(key);
  o->vary_names = {"accept-encoding"};
  http::Headers response;
  response.add("Vary", "Accept-Encoding");
  o->variant = *vary_key(response, request_with("Accept-Encoding", encoding));
  o->headers.add("Vary", "Accept-Encoding");
  o->body = std::move(body);
  return o;
}

std::string numbered(const char* prefix, int i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s-%06d", prefix, i);
  return buf;
}

// Sum of charges and count of the objects the store holds, via a predicate that removes nothing.
std::pair<uint64_t, uint64_t> held(Store& store) {
  uint64_t bytes = 0, objects = 0;
  store.purge_if(
      [&](const CachedObject& o) {
        bytes += o.charge();
        ++objects;
        return false;
      },
      false);
  return {bytes, objects};
}

}  // namespace

TEST_CASE("store: insert then lookup") {
  Store store(1 << 20, 1 << 16);
  ObjectRef a = make("example.com/a");
  CHECK(store.insert(a));
  ObjectRef got = store.lookup("example.com/a", kNoHeaders);
  CHECK(got == a);
  CHECK(store.lookup("example.com/b", kNoHeaders) == nullptr);
  StoreStats st = store.stats();
  CHECK(st.objects == 1);
  CHECK(st.bytes == a->charge());
  CHECK(st.inserts == 1);
  CHECK(st.evictions == 0);
}

TEST_CASE("store: charge counts key, head, body, tags and overhead") {
  auto o = std::make_shared<CachedObject>();
  uint64_t empty = o->charge();
  CHECK(empty >= 256);
  o->key = "k123";
  o->reason = "OK";
  o->headers.add("Etag", "\"x\"");
  o->body = std::string(1000, 'b');
  o->tags = {"t1", "t22"};
  CHECK(o->charge() == empty + 4 + 2 + 4 + 3 + 1000 + 5);
}

TEST_CASE("store: variants by Vary") {
  Store store(1 << 20, 1 << 16);
  ObjectRef gz = make_ae("h/x", "gzip", "gzipped");
  ObjectRef id = make_ae("h/x", "identity", "plain");
  CHECK(store.insert(gz));
  CHECK(store.insert(id));
  CHECK(store.stats().objects == 2);

  CHECK(store.lookup("h/x", request_with("Accept-Encoding", "gzip")) == gz);
  CHECK(store.lookup("h/x", request_with("accept-encoding", "gzip")) == gz);
  CHECK(store.lookup("h/x", request_with("Accept-Encoding", "identity")) == id);
  CHECK(store.lookup("h/x", request_with("Accept-Encoding", "br")) == nullptr);
  CHECK(store.lookup("h/x", kNoHeaders) == nullptr);

  // A store holding only the gzip variant misses the identity request.
  Store only_gz(1 << 20, 1 << 16);
  only_gz.insert(gz);
  CHECK(only_gz.lookup("h/x", request_with("Accept-Encoding", "identity")) == nullptr);
  CHECK(only_gz.lookup("h/x", request_with("Accept-Encoding", "gzip")) == gz);
}

TEST_CASE("store: same key and variant replaces") {
  Store store(1 << 20, 1 << 16);
  ObjectRef v1 = make_ae("h/r", "gzip", "one");
  ObjectRef v2 = make_ae("h/r", "gzip", "second version, longer");
  ObjectRef other = make_ae("h/r", "identity", "plain");
  store.insert(v1);
  store.insert(other);
  store.insert(v2);
  StoreStats st = store.stats();
  CHECK(st.objects == 2);
  CHECK(st.bytes == v2->charge() + other->charge());
  CHECK(st.inserts == 3);
  CHECK(store.lookup("h/r", request_with("Accept-Encoding", "gzip")) == v2);
  CHECK(v1->body == "one");  // the replaced object is untouched for whoever still holds it
  auto [bytes, objects] = held(store);
  CHECK(bytes == st.bytes);
  CHECK(objects == 2);
}

TEST_CASE("store: memory bound holds after every insert") {
  const uint64_t memory = 50000;
  Store store(memory, 20000);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> size(0, 6000);
  std::uniform_int_distribution<int> key(0, 300);
  std::uniform_int_distribution<int> read(0, 3);
  for (int i = 0; i < 3000; ++i) {
    std::string k = numbered("mem", key(rng));
    store.insert(make(k, static_cast<size_t>(size(rng))));
    if (read(rng) == 0) store.lookup(numbered("mem", key(rng)), kNoHeaders);
    REQUIRE(store.stats().bytes <= memory);
  }
  StoreStats st = store.stats();
  CHECK(st.evictions > 0);
  auto [bytes, objects] = held(store);
  CHECK(bytes == st.bytes);
  CHECK(objects == st.objects);
}

TEST_CASE("store: objects too large are refused") {
  Store store(10000, 2000);
  CHECK_FALSE(store.insert(make("big", 3000)));
  Store small_memory(1000, 1 << 20);
  CHECK_FALSE(small_memory.insert(make("big", 2000)));
  CHECK(store.stats().refused_too_large == 1);
  CHECK(store.stats().objects == 0);
  CHECK(store.stats().bytes == 0);
  CHECK(store.stats().inserts == 0);
  CHECK(small_memory.stats().refused_too_large == 1);
  CHECK(store.lookup("big", kNoHeaders) == nullptr);
  CHECK(store.insert(make("fits", 1000)));
}

TEST_CASE("store: S3-FIFO keeps popular objects through a scan") {
  const uint64_t one = make(numbered("pop", 0))->charge();
  const uint64_t memory = 100 * one;
  Store store(memory, memory);
  for (int i = 0; i < 20; ++i) store.insert(make(numbered("pop", i)));
  for (int r = 0; r < 2; ++r)
    for (int i = 0; i < 20; ++i) REQUIRE(store.lookup(numbered("pop", i), kNoHeaders));
  for (int i = 0; i < 1000; ++i) {
    store.insert(make(numbered("one", i)));
    REQUIRE(store.stats().bytes <= memory);
  }
  for (int i = 0; i < 20; ++i) CHECK_MESSAGE(store.lookup(numbered("pop", i), kNoHeaders), numbered("pop", i));
  // The early one-hit objects are gone; the latest ones are still there.
  int early_left = 0;
  for (int i = 0; i < 800; ++i) early_left += store.lookup(numbered("one", i), kNoHeaders) ? 1 : 0;
  CHECK(early_left == 0);
  CHECK(store.lookup(numbered("one", 999), kNoHeaders));
  CHECK(store.stats().evictions >= 900);
}

TEST_CASE("store: a key in the ghost FIFO goes to main") {
  const uint64_t one = make(numbered("key", 0))->charge();
  const uint64_t memory = 100 * one;
  Store store(memory, memory);
  store.insert(make(numbered("key", 0)));  // the ghost candidate, never read
  for (int i = 0; i < 110; ++i) store.insert(make(numbered("one", i)));
  REQUIRE(store.lookup(numbered("key", 0), kNoHeaders) == nullptr);  // evicted from small

  // Re-inserted, it enters main and survives a scan; a newcomer inserted alongside does not.
  store.insert(make(numbered("key", 0)));
  store.insert(make(numbered("new", 0)));
  for (int i = 0; i < 1000; ++i) store.insert(make(numbered("two", i)));
  CHECK(store.lookup(numbered("key", 0), kNoHeaders) != nullptr);
  CHECK(store.lookup(numbered("new", 0), kNoHeaders) == nullptr);
}

TEST_CASE("store: an ObjectRef outlives eviction") {
  const uint64_t one = make(numbered("ref", 0), 1000)->charge();
  Store store(10 * one, 10 * one);
  // (Held as a reader holds it; not looked up, since a read would keep it in the cache.)
  ObjectRef ref = make(numbered("ref", 0), 1000);
  REQUIRE(store.insert(ref));
  CHECK(ref.use_count() > 1);
  for (int i = 0; i < 100; ++i) store.insert(make(numbered("fil", i), 1000));
  CHECK(store.lookup(numbered("ref", 0), kNoHeaders) == nullptr);
  CHECK(ref.use_count() == 1);  // the store let go of it
  CHECK(ref->body == std::string(1000, 'x'));
  CHECK(ref->key == numbered("ref", 0));
}

TEST_CASE("store: purge removes every variant and frees bytes") {
  Store store(1 << 20, 1 << 16);
  ObjectRef gz = make_ae("h/p", "gzip", "g");
  ObjectRef id = make_ae("h/p", "identity", "i");
  ObjectRef keep = make("h/q");
  store.insert(gz);
  store.insert(id);
  store.insert(keep);
  CHECK(store.purge("h/p", false) == 2);
  CHECK(store.lookup("h/p", request_with("Accept-Encoding", "gzip")) == nullptr);
  CHECK(store.lookup("h/p", request_with("Accept-Encoding", "identity")) == nullptr);
  CHECK(store.lookup("h/q", kNoHeaders) == keep);
  CHECK(store.stats().objects == 1);
  CHECK(store.stats().bytes == keep->charge());
  CHECK(store.purge("h/p", false) == 0);
  CHECK(store.purge("nothing", false) == 0);

  // The purged keys' FIFO shells do not disturb later inserts and evictions.
  store.insert(make_ae("h/p", "gzip", "again"));
  CHECK(store.stats().objects == 2);
  auto [bytes, objects] = held(store);
  CHECK(bytes == store.stats().bytes);
  CHECK(objects == 2);
}

TEST_CASE("store: soft purge marks and keeps") {
  Store store(1 << 20, 1 << 16);
  ObjectRef gz = make_ae("h/s", "gzip", "g");
  ObjectRef id = make_ae("h/s", "identity", "i");
  store.insert(gz);
  store.insert(id);
  uint64_t bytes = store.stats().bytes;
  CHECK(store.purge("h/s", true) == 2);
  CHECK(gz->invalidated.load());
  CHECK(id->invalidated.load());
  CHECK(store.stats().objects == 2);
  CHECK(store.stats().bytes == bytes);
  ObjectRef got = store.lookup("h/s", request_with("Accept-Encoding", "gzip"));
  REQUIRE(got == gz);
  CHECK(got->invalidated.load());
}

TEST_CASE("store: purge_tag hits exactly the tagged objects") {
  Store store(1 << 20, 1 << 16);
  ObjectRef ab = make("h/ab", 10, {"a", "b"});
  ObjectRef b = make("h/b", 10, {"b"});
  ObjectRef c = make("h/c", 10, {"c", "bb"});
  ObjectRef none = make("h/none", 10);
  for (const ObjectRef& o : {ab, b, c, none}) store.insert(o);

  CHECK(store.purge_tag("b", true) == 2);
  CHECK(ab->invalidated.load());
  CHECK(b->invalidated.load());
  CHECK_FALSE(c->invalidated.load());
  CHECK_FALSE(none->invalidated.load());
  CHECK(store.stats().objects == 4);

  CHECK(store.purge_tag("b", false) == 2);
  CHECK(store.lookup("h/ab", kNoHeaders) == nullptr);
  CHECK(store.lookup("h/b", kNoHeaders) == nullptr);
  CHECK(store.lookup("h/c", kNoHeaders) == c);
  CHECK(store.lookup("h/none", kNoHeaders) == none);
  CHECK(store.stats().bytes == c->charge() + none->charge());
  CHECK(store.purge_tag("b", false) == 0);
  CHECK(store.purge_tag("zzz", false) == 0);
}

TEST_CASE("store: purge_if with a prefix") {
  Store store(1 << 20, 1 << 16);
  for (const char* k : {"h/a/1", "h/a/2", "h/ab", "h/b/1"}) store.insert(make(k));
  store.insert(make_ae("h/a/3", "gzip", "g"));
  auto prefix = [](const CachedObject& o) { return o.key.starts_with("h/a/"); };
  CHECK(store.purge_if(prefix, true) == 3);
  CHECK(store.stats().objects == 5);
  CHECK(store.purge_if(prefix, false) == 3);
  CHECK(store.stats().objects == 2);
  CHECK(store.lookup("h/a/1", kNoHeaders) == nullptr);
  CHECK(store.lookup("h/ab", kNoHeaders) != nullptr);
  CHECK(store.lookup("h/b/1", kNoHeaders) != nullptr);
  auto [bytes, objects] = held(store);
  CHECK(bytes == store.stats().bytes);
  CHECK(objects == 2);
}

TEST_CASE("store: concurrent insert, lookup and purge keep the invariants") {
  const uint64_t memory = 200000;
  Store store(memory, 20000);
  constexpr int kThreads = 4;
  constexpr int kIterations = 20000;
  std::atomic<int> over_memory{0};
  std::atomic<int> bad_bodies{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      std::uniform_int_distribution<int> op(0, 99);
      std::uniform_int_distribution<int> key(0, 199);
      std::uniform_int_distribution<int> size(0, 8000);
      for (int i = 0; i < kIterations; ++i) {
        std::string k = numbered("mt", key(rng));
        const char* enc = (rng() & 1) ? "gzip" : "identity";
        int o = op(rng);
        if (o < 50) {
          ObjectRef got = store.lookup(k, request_with("Accept-Encoding", enc));
          if (got && (got->key != k || got->body.find_first_not_of('z') != std::string::npos)) ++bad_bodies;
        } else if (o < 88) {
          store.insert(make_ae(k, enc, std::string(static_cast<size_t>(size(rng)), 'z')));
          if (store.stats().bytes > memory) ++over_memory;
        } else if (o < 96) {
          store.purge(k, (rng() & 1) != 0);
        } else if (o < 98) {
          store.purge_tag("none", false);
        } else {
          std::string prefix = numbered("mt", key(rng)).substr(0, 8);
          store.purge_if([&](const CachedObject& obj) { return obj.key.starts_with(prefix); }, (rng() & 1) != 0);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  CHECK(over_memory.load() == 0);
  CHECK(bad_bodies.load() == 0);
  StoreStats st = store.stats();
  CHECK(st.bytes <= memory);
  CHECK(st.evictions > 0);
  auto [bytes, objects] = held(store);
  CHECK(bytes == st.bytes);
  CHECK(objects == st.objects);
}
