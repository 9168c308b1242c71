#include "cache/store.h"

#include "http/heap.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <malloc.h>
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

std::shared_ptr<const http::SharedBody> body_of(std::string_view bytes) { return http::SharedBody::from(bytes); }

// Host and path from a test key "host/path".
void set_key(CachedObject& o, std::string key) {
  size_t slash = key.find('/');
  o.set_key(key, key.substr(0, slash), slash == std::string::npos ? "/" : key.substr(slash));
}

// An object without Vary, of a fixed charge for keys of equal length.
std::shared_ptr<CachedObject> make(std::string key, size_t body_size = 100, std::vector<std::string> tags = {}) {
  auto o = std::make_shared<CachedObject>();
  set_key(*o, std::move(key));
  o->headers.add("Content-Type", "text/plain");
  o->headers.shrink_to_fit();  // as insert() keeps it, so that charge() is what the store counts
  o->body = body_of(std::string(body_size, 'x'));
  o->set_tags(std::move(tags));
  return o;
}

// An object varying on Accept-Encoding, fetched by a request with this Accept-Encoding.
std::shared_ptr<CachedObject> make_ae(std::string key, std::string_view encoding, std::string body) {
  auto o = std::make_shared<CachedObject>();
  set_key(*o, std::move(key));
  o->vary_names = {"accept-encoding"};
  http::Headers response;
  response.add("Vary", "Accept-Encoding");
  o->variant = *vary_key(response, request_with("Accept-Encoding", encoding));
  o->headers.add("Vary", "Accept-Encoding");
  o->body = body_of(body);
  return o;
}

ObjectRef find(Store& store, std::string_view key, const http::Headers& request = kNoHeaders) {
  return store.lookup(key, request).object;
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
  auto a = make("example.com/a");
  CHECK(store.insert(a));
  ObjectRef got = find(store, "example.com/a", kNoHeaders);
  CHECK(got == a);
  CHECK(find(store, "example.com/b", kNoHeaders) == nullptr);
  StoreStats st = store.stats();
  CHECK(st.objects == 1);
  CHECK(st.bytes == a->charge());
  CHECK(st.inserts == 1);
  CHECK(st.evictions == 0);
}

TEST_CASE("store: the charge grows with what the key, head, body and tags hold on the heap") {
  auto o = std::make_shared<CachedObject>();
  const uint64_t empty = o->charge();
  CHECK(empty >= sizeof(CachedObject));
  // The key costs its heap chunk (its length and its text). Host and path cost nothing more
  // when the key is the two together, and a copy of both when it is not.
  const std::string host = "www.example.com", path = "/a/rather/long/path?with=a&query=string";
  o->set_key(host + path, host, path);
  const uint64_t keyed = o->charge();
  CHECK(keyed == empty + http::heap_bytes(4 + host.size() + path.size()));
  CHECK(o->host() == host);
  CHECK(o->path() == path);
  o->set_key("static:" + host + path, host, path);
  CHECK(o->charge() > keyed + host.size() + path.size());
  CHECK(o->host() == host);
  CHECK(o->path() == path);
  o->set_key("h/p", "h", "/p");  // the long key's chunk is given back
  CHECK(o->charge() == empty + http::heap_bytes(4 + 3));
  o->set_key("", "", "");
  CHECK(o->charge() == empty);

  o->headers.add("Etag", "\"x\"");
  CHECK(o->charge_parts().head == o->headers.memory());
  CHECK(o->headers.memory() >= 4 + 3);
  o->body = body_of(std::string(1000, 'b'));
  CHECK(o->charge_parts().body == http::heap_bytes(1000));
  const uint64_t with_body = o->charge();
  o->set_tags({"t1", "a tag long enough to be on the heap"});
  CHECK(o->charge() > with_body + 32);
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
TEST_CASE("store: what stored objects take from the heap is their charge") {
  // The heap as glibc's malloc counts it; a sanitizer's allocator keeps its own books, so this
  // runs in plain builds only.
  Store store(uint64_t{1} << 32, 1 << 20);
  const auto in_use = [] {
    const struct mallinfo2 info = mallinfo2();
    return static_cast<int64_t>(info.uordblks + info.hblkhd);
  };
  for (const size_t body_size : {100, 1000, 4000}) {
    const int64_t before = in_use();
    const StoreStats stats_before = store.stats();
    for (int i = 0; i < 5000; ++i) {
      auto o = std::make_shared<CachedObject>();
      const std::string host = "127.0.0.1";
      const std::string path = "/objects/" + std::to_string(body_size) + "/" + std::to_string(i) +
                               "?size=" + std::to_string(body_size) + "&cc=max-age%3D86400";
      o->set_key(host + path, host, path);
      o->set_reason("OK");
      o->headers.add("Content-Type", "application/octet-stream");
      o->headers.add("Cache-Control", "max-age=86400");
      o->headers.add("X-Count", std::to_string(i));
      o->body = body_of(std::string(body_size, 'x'));
      REQUIRE(store.insert(std::move(o)));
    }
    const int64_t taken = in_use() - before;
    const int64_t charged = static_cast<int64_t>(store.stats().bytes - stats_before.bytes);
    INFO("body " << body_size << ": heap " << taken << ", charged " << charged);
    CHECK(charged >= taken - taken / 50);
    CHECK(charged <= taken + taken / 50);
  }
}
#endif

TEST_CASE("store: variants by Vary") {
  Store store(1 << 20, 1 << 16);
  auto gz = make_ae("h/x", "gzip", "gzipped");
  auto id = make_ae("h/x", "identity", "plain");
  CHECK(store.insert(gz));
  CHECK(store.insert(id));
  CHECK(store.stats().objects == 2);

  CHECK(find(store, "h/x", request_with("Accept-Encoding", "gzip")) == gz);
  CHECK(find(store, "h/x", request_with("accept-encoding", "gzip")) == gz);
  CHECK(find(store, "h/x", request_with("Accept-Encoding", "identity")) == id);
  CHECK(find(store, "h/x", request_with("Accept-Encoding", "br")) == nullptr);
  CHECK(find(store, "h/x", kNoHeaders) == nullptr);

  // A store holding only the gzip variant misses the identity request.
  Store only_gz(1 << 20, 1 << 16);
  auto gz_again = copy_of(*gz);  // an object is stored once: another store takes a copy
  CHECK(only_gz.insert(gz_again));
  CHECK(find(only_gz, "h/x", request_with("Accept-Encoding", "identity")) == nullptr);
  CHECK(find(only_gz, "h/x", request_with("Accept-Encoding", "gzip")) == gz_again);
}

TEST_CASE("store: an object is stored once, in one store") {
  Store store(1 << 20, 1 << 16);
  Store other(1 << 20, 1 << 16);
  auto object = make("h/once");
  CHECK(store.insert(object));
  CHECK_FALSE(store.insert(object));  // again, in the same store
  CHECK_FALSE(other.insert(object));  // or in another one
  CHECK_FALSE(store.replace(*object, object));
  CHECK(store.stats().objects == 1);
  CHECK(store.stats().inserts == 1);
  CHECK(other.stats().objects == 0);
  CHECK(find(store, "h/once", kNoHeaders) == object);
  // Purged, it stays out: a purge lets it go for good.
  CHECK(store.purge("h/once", false) == 1);
  CHECK_FALSE(store.insert(object));
  CHECK(find(store, "h/once", kNoHeaders) == nullptr);
  // A copy is a new object.
  CHECK(store.insert(copy_of(*object)));
  CHECK(find(store, "h/once", kNoHeaders) != nullptr);
}

TEST_CASE("store: same key and variant replaces") {
  Store store(1 << 20, 1 << 16);
  auto v1 = make_ae("h/r", "gzip", "one");
  auto v2 = make_ae("h/r", "gzip", "second version, longer");
  auto other = make_ae("h/r", "identity", "plain");
  store.insert(v1);
  store.insert(other);
  store.insert(v2);
  StoreStats st = store.stats();
  CHECK(st.objects == 2);
  CHECK(st.bytes == v2->charge() + other->charge());
  CHECK(st.inserts == 3);
  CHECK(find(store, "h/r", request_with("Accept-Encoding", "gzip")) == v2);
  CHECK(v1->body->to_string() == "one");  // the replaced object is untouched for whoever still holds it
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
    if (read(rng) == 0) find(store, numbered("mem", key(rng)), kNoHeaders);
    REQUIRE(store.stats().bytes <= memory);
  }
  StoreStats st = store.stats();
  CHECK(st.evictions > 0);
  CHECK(st.head_bytes + st.body_bytes + st.overhead_bytes == st.bytes);
  auto [bytes, objects] = held(store);
  CHECK(bytes == st.bytes);
  CHECK(objects == st.objects);
}

TEST_CASE("store: resize shrinks in place, read objects last, and a larger bound lets more in") {
  Store store(100000, 20000);
  for (int i = 0; i < 20; ++i) REQUIRE(store.insert(make(numbered("rs", i), 4000)));
  const uint64_t charge = store.stats().bytes / 20;
  // Read the first five: on the way out, those are kept (counted more often than the others).
  for (int i = 0; i < 5; ++i) REQUIRE(find(store, numbered("rs", i), kNoHeaders));
  store.resize(6 * charge, 20000, 32);
  StoreStats st = store.stats();
  CHECK(st.bytes <= 6 * charge);
  CHECK(st.evictions >= 14);
  for (int i = 0; i < 5; ++i) CHECK(find(store, numbered("rs", i), kNoHeaders));
  auto [bytes, objects] = held(store);
  CHECK(bytes == st.bytes);
  CHECK(objects == st.objects);
  // Larger again: nothing is evicted to make room for ten more.
  store.resize(100000, 20000, 32);
  const uint64_t evictions = store.stats().evictions;
  for (int i = 100; i < 110; ++i) REQUIRE(store.insert(make(numbered("rs", i), 4000)));
  CHECK(store.stats().evictions == evictions);
  // A smaller max_object refuses what it no longer allows.
  store.resize(100000, 1000, 32);
  CHECK_FALSE(store.insert(make("rs-big", 4000)));
}

TEST_CASE("store: the charge by part, in and out of the figures") {
  auto object = make("example.com/parts", 1000);  // Content-Type: text/plain, reason OK
  Store store(1 << 20, 1 << 20);
  REQUIRE(store.insert(object));  // which gives back the slack of the head's growth
  const CachedObject::Charge charge = object->charge_parts();
  CHECK(charge.head == object->headers.memory());  // no reason: "OK" is the default
  CHECK(charge.body == http::heap_bytes(1000));
  CHECK(charge.overhead > sizeof(CachedObject));
  CHECK(object->charge() == charge.total());
  REQUIRE(store.insert(make("example.com/other", 10)));
  StoreStats st = store.stats();
  CHECK(st.head_bytes == 2 * charge.head);
  CHECK(st.body_bytes == http::heap_bytes(1000) + http::heap_bytes(10));
  CHECK(st.head_bytes + st.body_bytes + st.overhead_bytes == st.bytes);
  CHECK(st.sketch_bytes == 16 * 1024);  // 16 bytes per key, sized for 512 objects but at least 1024
  CHECK(store.purge("example.com/parts", false) == 1);
  st = store.stats();
  CHECK(st.body_bytes == http::heap_bytes(10));
  CHECK(st.head_bytes == charge.head);
  CHECK(st.head_bytes + st.body_bytes + st.overhead_bytes == st.bytes);

  // A reload to 16 MB sizes the sketch for 8192 objects; the first table stays, for lookups
  // that were reading it.
  store.resize(16 << 20, 1 << 20, 32);
  CHECK(store.stats().sketch_bytes == 16 * 1024 + 16 * 8192);
  CHECK(store.lookup("example.com/other", {}).object != nullptr);
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
  CHECK(find(store, "big", kNoHeaders) == nullptr);
  CHECK(store.insert(make("fits", 1000)));
}

// Requests as the proxy makes them: a lookup, then an insert when it missed.
void request(Store& store, const std::string& key, size_t body_size = 100) {
  if (!find(store, key, kNoHeaders)) store.insert(make(key, body_size));
}

TEST_CASE("store: popular objects survive a scan of new keys; the scan's objects are refused") {
  const uint64_t one = make(numbered("pop", 0))->charge();
  const uint64_t memory = 200 * one;  // a window of two objects, main of 198
  Store store(memory, memory);
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 100; ++i) request(store, numbered("pop", i));
  for (int i = 0; i < 100; ++i) REQUIRE(find(store, numbered("pop", i), kNoHeaders));
  const uint64_t refused_before = store.stats().admission_refusals;
  for (int i = 0; i < 5000; ++i) {
    request(store, numbered("one", i));
    REQUIRE(store.stats().bytes <= memory);
  }
  for (int i = 0; i < 100; ++i) CHECK_MESSAGE(find(store, numbered("pop", i), kNoHeaders), numbered("pop", i));
  StoreStats st = store.stats();
  CHECK(st.admission_refusals - refused_before > 4000);
  CHECK(st.evictions >= 4800);
  auto [bytes, objects] = held(store);
  CHECK(bytes == st.bytes);
  CHECK(objects == st.objects);
}

TEST_CASE("store: a key asked for more often takes a less popular object's place") {
  const uint64_t one = make(numbered("old", 0))->charge();
  const uint64_t memory = 200 * one;
  Store store(memory, memory);
  // Main fills with objects asked for once each.
  for (int i = 0; i < 300; ++i) request(store, numbered("old", i));
  // A newcomer asked for three times before it is stored wins its place against them, and
  // stays through another scan of objects asked for once.
  for (int r = 0; r < 2; ++r) CHECK(find(store, "example.com/new", kNoHeaders) == nullptr);
  request(store, "example.com/new");
  for (int i = 0; i < 400; ++i) request(store, numbered("two", i));
  CHECK(find(store, "example.com/new", kNoHeaders) != nullptr);
  // One asked for once is not let in past the objects main holds.
  request(store, "example.com/once");
  for (int i = 0; i < 10; ++i) request(store, numbered("three", i));
  CHECK(find(store, "example.com/once", kNoHeaders) == nullptr);
}

TEST_CASE("store: a large object must be wanted more than the small ones it would push out together") {
  const uint64_t small = make(numbered("small", 0), 1000)->charge();
  const uint64_t memory = 200 * small;
  Store store(memory, memory);
  // Main fills with small objects, each asked for twice.
  for (int r = 0; r < 2; ++r)
    for (int i = 0; i < 200; ++i) request(store, numbered("small", i), 1000);
  const uint64_t held_before = store.stats().objects;
  REQUIRE(held_before > 150);
  // A large one, ten small ones' worth, asked for three times: 3 is not more than ten times 2.
  for (int r = 0; r < 3; ++r) request(store, "example.com/large", 10 * 1000);
  for (int i = 0; i < 5; ++i) request(store, numbered("next", i), 100);  // push it out of the window
  CHECK(find(store, "example.com/large", kNoHeaders) == nullptr);
  CHECK(store.stats().admission_refusals > 0);
  // Asked for 25 times more, it wins its place, and the small ones it displaced are gone.
  for (int r = 0; r < 25; ++r) (void)find(store, "example.com/huge", kNoHeaders);
  request(store, "example.com/huge", 10 * 1000);
  for (int i = 0; i < 5; ++i) request(store, numbered("then", i), 100);
  CHECK(find(store, "example.com/huge", kNoHeaders) != nullptr);
  CHECK(store.stats().bytes <= memory);
  auto [bytes, objects] = held(store);
  CHECK(bytes == store.stats().bytes);
  CHECK(objects == store.stats().objects);
}

TEST_CASE("store: a small object asked for again takes the place of a large one asked for a little more") {
  const uint64_t large = make(numbered("large", 0), 10 * 1000)->charge();
  const uint64_t memory = 40 * large;  // a window of 0.4 of a large object
  Store store(memory, memory);
  // Main fills with large objects, each asked for three times.
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 40; ++i) request(store, numbered("large", i), 10 * 1000);
  // Tiny objects fill the window (main's victims go meanwhile, as the window grows to its share).
  for (int i = 0; i < 30; ++i) request(store, numbered("tiny", i), 10);
  auto large_ones = [&] {
    size_t n = 0;
    store.purge_if([&](const CachedObject& o) { return o.key().starts_with("large-") && ++n == 0; }, false);
    return n;
  };
  const size_t large_held = large_ones();
  REQUIRE(large_held >= 37);
  // A small one asked for once is refused: a key counted once wins by count alone.
  request(store, "example.com/once", 1000);
  for (int i = 0; i < 30; ++i) request(store, numbered("next", i), 10);  // push it out of the window
  CHECK(find(store, "example.com/once", kNoHeaders) == nullptr);
  CHECK(large_ones() == large_held);
  // One asked for twice is counted less than a large one, but much more per byte: it takes a
  // large one's place, and the room left over waits for more like it.
  (void)find(store, "example.com/twice", kNoHeaders);
  request(store, "example.com/twice", 1000);
  for (int i = 0; i < 30; ++i) request(store, numbered("then", i), 10);
  CHECK(find(store, "example.com/twice", kNoHeaders) != nullptr);
  CHECK(large_ones() == large_held - 1);
  CHECK(store.stats().bytes <= memory);
  auto [bytes, objects] = held(store);
  CHECK(bytes == store.stats().bytes);
  CHECK(objects == store.stats().objects);
}

TEST_CASE("store: an ObjectRef outlives eviction") {
  const uint64_t one = make(numbered("ref", 0), 1000)->charge();
  Store store(10 * one, 10 * one);
  // (Held as a reader holds it; not looked up, since a read would keep it in the cache.)
  auto ref = make(numbered("ref", 0), 1000);
  REQUIRE(store.insert(ref));
  CHECK(ref.use_count() > 1);
  // Fillers that are asked for, as a miss is before its fill: each counts more than `ref`.
  for (int i = 0; i < 100; ++i) request(store, numbered("fil", i), 1000);
  CHECK(find(store, numbered("ref", 0), kNoHeaders) == nullptr);
  CHECK(ref.use_count() == 1);  // the store let go of it
  CHECK(ref->body->to_string() == std::string(1000, 'x'));
  CHECK(ref->key() == numbered("ref", 0));
}

TEST_CASE("store: purge removes every variant and frees bytes") {
  Store store(1 << 20, 1 << 16);
  auto gz = make_ae("h/p", "gzip", "g");
  auto id = make_ae("h/p", "identity", "i");
  auto keep = make("h/q");
  store.insert(gz);
  store.insert(id);
  store.insert(keep);
  CHECK(store.purge("h/p", false) == 2);
  CHECK(find(store, "h/p", request_with("Accept-Encoding", "gzip")) == nullptr);
  CHECK(find(store, "h/p", request_with("Accept-Encoding", "identity")) == nullptr);
  CHECK(find(store, "h/q", kNoHeaders) == keep);
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
  auto gz = make_ae("h/s", "gzip", "g");
  auto id = make_ae("h/s", "identity", "i");
  store.insert(gz);
  store.insert(id);
  uint64_t bytes = store.stats().bytes;
  CHECK(store.purge("h/s", true) == 2);
  CHECK(gz->invalidated.load());
  CHECK(id->invalidated.load());
  CHECK(store.stats().objects == 2);
  CHECK(store.stats().bytes == bytes);
  ObjectRef got = find(store, "h/s", request_with("Accept-Encoding", "gzip"));
  REQUIRE(got == gz);
  CHECK(got->invalidated.load());
}

TEST_CASE("store: purge_tag hits exactly the tagged objects") {
  Store store(1 << 20, 1 << 16);
  auto ab = make("h/ab", 10, {"a", "b"});
  auto b = make("h/b", 10, {"b"});
  auto c = make("h/c", 10, {"c", "bb"});
  auto none = make("h/none", 10);
  for (const auto& o : {ab, b, c, none}) store.insert(o);

  CHECK(store.purge_tag("b", true) == 2);
  CHECK(ab->invalidated.load());
  CHECK(b->invalidated.load());
  CHECK_FALSE(c->invalidated.load());
  CHECK_FALSE(none->invalidated.load());
  CHECK(store.stats().objects == 4);

  CHECK(store.purge_tag("b", false) == 2);
  CHECK(find(store, "h/ab", kNoHeaders) == nullptr);
  CHECK(find(store, "h/b", kNoHeaders) == nullptr);
  CHECK(find(store, "h/c", kNoHeaders) == c);
  CHECK(find(store, "h/none", kNoHeaders) == none);
  CHECK(store.stats().bytes == c->charge() + none->charge());
  CHECK(store.purge_tag("b", false) == 0);
  CHECK(store.purge_tag("zzz", false) == 0);
}

TEST_CASE("store: purge_if with a prefix") {
  Store store(1 << 20, 1 << 16);
  for (const char* k : {"h/a/1", "h/a/2", "h/ab", "h/b/1"}) store.insert(make(k));
  store.insert(make_ae("h/a/3", "gzip", "g"));
  auto prefix = [](const CachedObject& o) { return o.key().starts_with("h/a/"); };
  CHECK(store.purge_if(prefix, true) == 3);
  CHECK(store.stats().objects == 5);
  CHECK(store.purge_if(prefix, false) == 3);
  CHECK(store.stats().objects == 2);
  CHECK(find(store, "h/a/1", kNoHeaders) == nullptr);
  CHECK(find(store, "h/ab", kNoHeaders) != nullptr);
  CHECK(find(store, "h/b/1", kNoHeaders) != nullptr);
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
          ObjectRef got = find(store, k, request_with("Accept-Encoding", enc));
          if (got && (got->key() != k || got->body->to_string().find_first_not_of('z') != std::string::npos)) ++bad_bodies;
        } else if (o < 88) {
          store.insert(make_ae(k, enc, std::string(static_cast<size_t>(size(rng)), 'z')));
          if (store.stats().bytes > memory) ++over_memory;
        } else if (o < 96) {
          store.purge(k, (rng() & 1) != 0);
        } else if (o < 98) {
          store.purge_tag("none", false);
        } else {
          std::string prefix = numbered("mt", key(rng)).substr(0, 8);
          store.purge_if([&](const CachedObject& obj) { return obj.key().starts_with(prefix); }, (rng() & 1) != 0);
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

// ---- variants with a key-cookie part ----

TEST_CASE("store: variant_string joins the Vary part and the extra part") {
  CHECK(Store::variant_string("", "") == "");
  CHECK(Store::variant_string("accept-encoding:gzip\n", "") == "accept-encoding:gzip\n");
  CHECK(Store::variant_string("", "sid=1") == "\x1fsid=1");
  CHECK(Store::variant_string("accept-encoding:gzip\n", "sid=1") == "accept-encoding:gzip\n\x1fsid=1");
}

TEST_CASE("store: variant_extra selects among key-cookie variants") {
  Store store(1 << 20, 1 << 16);
  auto plain = make("h/v");
  auto one = make("h/v");
  one->variant = Store::variant_string("", "sid=1");
  auto gz_two = make_ae("h/v", "gzip", "g2");
  gz_two->variant = Store::variant_string(gz_two->variant, "sid=2");
  REQUIRE(store.insert(plain));
  REQUIRE(store.insert(one));
  REQUIRE(store.insert(gz_two));
  CHECK(store.stats().objects == 3);

  CHECK(store.lookup("h/v", kNoHeaders).object == plain);
  CHECK(store.lookup("h/v", kNoHeaders, "sid=1").object == one);
  CHECK(store.lookup("h/v", kNoHeaders, "sid=3").object == nullptr);
  CHECK(store.lookup("h/v", request_with("Accept-Encoding", "gzip"), "sid=2").object == gz_two);
  CHECK(store.lookup("h/v", request_with("Accept-Encoding", "br"), "sid=2").object == nullptr);
  // The separator cannot be forged by an extra part that contains the whole variant.
  CHECK(store.lookup("h/v", kNoHeaders, "\x1fsid=1").object == nullptr);
}

// ---- the tag index ----

TEST_CASE("store: the tag index forgets evicted objects") {
  const uint64_t one = make(numbered("tag", 0), 1000, {"t"})->charge();
  Store store(10 * one, 10 * one);
  auto tagged = make(numbered("tag", 0), 1000, {"t"});
  REQUIRE(store.insert(tagged));
  for (int i = 0; i < 100; ++i) request(store, numbered("fil", i), 1000);
  REQUIRE(find(store, numbered("tag", 0)) == nullptr);
  CHECK(tagged.use_count() == 1);  // neither a stripe nor the index holds it
  CHECK(store.purge_tag("t", false) == 0);
  CHECK(store.stats().objects > 0);

  // A tag shared by evicted and live objects reaches the live ones only.
  auto fresh = make(numbered("tag", 1), 1000, {"t"});
  for (int i = 0; i < 3; ++i) find(store, numbered("tag", 1));  // asked for: admitted over the others
  REQUIRE(store.insert(fresh));
  CHECK(store.purge_tag("t", false) == 1);
  CHECK(find(store, numbered("tag", 1)) == nullptr);
}

TEST_CASE("store: the tag index follows a replaced object") {
  Store store(1 << 20, 1 << 16);
  auto v1 = make("h/t", 10, {"old", "both"});
  auto v2 = make("h/t", 10, {"new", "both"});
  store.insert(v1);
  store.insert(v2);
  CHECK(v1.use_count() == 1);
  CHECK(store.purge_tag("old", false) == 0);
  CHECK(find(store, "h/t") == v2);
  CHECK(store.purge_tag("both", true) == 1);
  CHECK_FALSE(v1->invalidated.load());
  CHECK(v2->invalidated.load());
  CHECK(store.purge_tag("new", false) == 1);
  CHECK(store.stats().objects == 0);
  CHECK(store.stats().bytes == 0);
}

TEST_CASE("store: the tag index forgets purged objects") {
  Store store(1 << 20, 1 << 16);
  auto a = make("h/a", 10, {"x"});
  auto b = make("h/b", 10, {"x"});
  auto c = make("h/c", 10, {"x"});
  for (const auto& o : {a, b, c}) store.insert(o);
  CHECK(store.purge("h/a", false) == 1);
  CHECK(store.purge_if([](const CachedObject& o) { return o.key() == "h/b"; }, false) == 1);
  CHECK(a.use_count() == 1);
  CHECK(b.use_count() == 1);
  CHECK(store.purge_tag("x", false) == 1);  // only c was left
  CHECK(store.purge_tag("x", false) == 0);
  CHECK(c.use_count() == 1);
  CHECK(store.stats().purged == 3);
}

// ---- hit-for-pass ----

TEST_CASE("store: hit-for-pass marks expire at `until`") {
  Store store(1 << 20, 1 << 16);
  store.mark_hit_for_pass("h/nc", 1100, 1000);
  CHECK(store.stats().hit_for_pass_marks == 1);
  Store::Lookup got = store.lookup("h/nc", kNoHeaders, {}, 1000);
  CHECK(got.object == nullptr);
  CHECK(got.hit_for_pass);
  CHECK(store.lookup("h/nc", kNoHeaders, {}, 1099).hit_for_pass);
  CHECK_FALSE(store.lookup("h/other", kNoHeaders, {}, 1000).hit_for_pass);
  CHECK_FALSE(store.lookup("h/nc", kNoHeaders, {}, 1100).hit_for_pass);
  CHECK(store.stats().hit_for_pass_marks == 0);  // an expired mark found by a lookup goes
  CHECK_FALSE(store.lookup("h/nc", kNoHeaders, {}, 1000).hit_for_pass);

  // Marking again moves the expiry.
  store.mark_hit_for_pass("h/nc", 2000, 1500);
  store.mark_hit_for_pass("h/nc", 1600, 1500);
  CHECK(store.stats().hit_for_pass_marks == 1);
  CHECK(store.lookup("h/nc", kNoHeaders, {}, 1599).hit_for_pass);
  CHECK_FALSE(store.lookup("h/nc", kNoHeaders, {}, 1600).hit_for_pass);
}

TEST_CASE("store: hit-for-pass marks use the wall clock when lookup gets no time") {
  Store store(1 << 20, 1 << 16);
  const Seconds now = std::time(nullptr);
  store.mark_hit_for_pass("h/later", now + 3600, now);
  store.mark_hit_for_pass("h/past", now - 3600, now - 7200);
  CHECK(store.lookup("h/later", kNoHeaders).hit_for_pass);
  CHECK_FALSE(store.lookup("h/past", kNoHeaders).hit_for_pass);
}

TEST_CASE("store: insert clears the key's hit-for-pass mark") {
  Store store(1 << 20, 1 << 16);
  store.mark_hit_for_pass("h/k", 5000, 1000);
  store.mark_hit_for_pass("h/j", 5000, 1000);
  auto o = make("h/k");
  REQUIRE(store.insert(o));
  CHECK(store.stats().hit_for_pass_marks == 1);
  Store::Lookup got = store.lookup("h/k", kNoHeaders, {}, 1000);
  CHECK(got.object == o);
  CHECK_FALSE(got.hit_for_pass);
  CHECK(store.purge("h/k", false) == 1);
  CHECK_FALSE(store.lookup("h/k", kNoHeaders, {}, 1000).hit_for_pass);
  CHECK(store.lookup("h/j", kNoHeaders, {}, 1000).hit_for_pass);
}

TEST_CASE("store: hit-for-pass marks are bounded, the oldest dropped") {
  Store store(1 << 20, 1 << 16);
  constexpr int kMarks = 150'000;
  for (int i = 0; i < kMarks; ++i) store.mark_hit_for_pass(numbered("hfp", i), 5000, 1000);
  const uint64_t marks = store.stats().hit_for_pass_marks;
  CHECK(marks <= 100'000);
  CHECK(marks >= 90'000);
  CHECK_FALSE(store.lookup(numbered("hfp", 0), kNoHeaders, {}, 1000).hit_for_pass);
  CHECK(store.lookup(numbered("hfp", kMarks - 1), kNoHeaders, {}, 1000).hit_for_pass);
  // Expired marks go when a new one comes (those of the new key's stripe, at least).
  store.mark_hit_for_pass("h/new", 9000, 6000);
  CHECK(store.stats().hit_for_pass_marks < marks);
}

// ---- bans ----

namespace {

Store::Ban ban_of(std::string host, std::string prefix, std::string regex = {}, bool soft = false) {
  Store::Ban ban;
  ban.host = std::move(host);
  ban.prefix = std::move(prefix);
  if (!regex.empty()) {
    std::string error;
    ban.regex = BanRegex::compile(regex, error);
    REQUIRE_MESSAGE(ban.regex, error);
  }
  ban.soft = soft;
  return ban;
}

}  // namespace

TEST_CASE("store: bans by host, prefix and regex apply at lookup") {
  Store store(1 << 20, 1 << 16);
  for (const char* k : {"a.com/img/1.jpg", "a.com/img/2.png", "a.com/css/x.css", "b.com/img/1.jpg", "b.com/js/y.js"})
    store.insert(make(k));

  CHECK(store.ban(ban_of("a.com", "/img/")) == 1);
  CHECK(store.active_bans() == 1);
  CHECK(store.stats().objects == 5);  // recorded, not yet applied
  CHECK(find(store, "a.com/img/1.jpg") == nullptr);
  CHECK(find(store, "a.com/img/2.png") == nullptr);
  CHECK(find(store, "a.com/css/x.css") != nullptr);
  CHECK(find(store, "b.com/img/1.jpg") != nullptr);
  CHECK(store.stats().objects == 3);
  CHECK(store.stats().purged == 2);

  CHECK(store.ban(ban_of("", "", "\\.jpg$")) == 2);  // every host
  CHECK(find(store, "b.com/img/1.jpg") == nullptr);
  CHECK(find(store, "b.com/js/y.js") != nullptr);

  CHECK(store.ban(ban_of("b.com", "/js/", "z")) == 3);  // prefix and regex must both match
  CHECK(find(store, "b.com/js/y.js") != nullptr);
  CHECK(store.ban(ban_of("", "/js/", "y\\.js")) == 4);
  CHECK(find(store, "b.com/js/y.js") == nullptr);
  CHECK(find(store, "a.com/css/x.css") != nullptr);
  CHECK(store.active_bans() == 4);
}

TEST_CASE("store: a ban spares objects stored after it") {
  Store store(1 << 20, 1 << 16);
  store.insert(make("a.com/old"));
  store.ban(ban_of("a.com", "/"));
  auto newer = make("a.com/new");
  store.insert(newer);
  CHECK(newer->ban_epoch == 1);
  CHECK(find(store, "a.com/old") == nullptr);
  CHECK(find(store, "a.com/new") == newer);
  auto replaced = make("a.com/old");
  store.insert(replaced);
  CHECK(find(store, "a.com/old") == replaced);
}

TEST_CASE("store: soft bans mark and keep; a later hard ban removes") {
  Store store(1 << 20, 1 << 16);
  auto gz = make_ae("a.com/s", "gzip", "g");
  auto id = make_ae("a.com/s", "identity", "i");
  auto other = make("a.com/t");
  for (const auto& o : {gz, id, other}) store.insert(o);
  store.ban(ban_of("a.com", "/s", {}, true));
  ObjectRef got = find(store, "a.com/s", request_with("Accept-Encoding", "gzip"));
  REQUIRE(got == gz);
  CHECK(gz->invalidated.load());
  CHECK_FALSE(id->invalidated.load());  // lazily: not looked up yet
  CHECK_FALSE(other->invalidated.load());
  CHECK(store.stats().objects == 3);
  CHECK(store.stats().purged == 1);
  CHECK(find(store, "a.com/s", request_with("Accept-Encoding", "gzip")) == gz);
  CHECK(store.stats().purged == 1);  // a mark is counted once

  store.ban(ban_of("", "/s"));
  CHECK(find(store, "a.com/s", request_with("Accept-Encoding", "gzip")) == nullptr);
  CHECK(store.stats().objects == 2);
}

TEST_CASE("store: sweep_bans applies bans to every object, then forgets them") {
  Store store(1 << 20, 1 << 16);
  for (int i = 0; i < 100; ++i) store.insert(make(numbered("a.com/p", i), 10, {"t"}));
  for (int i = 0; i < 50; ++i) store.insert(make(numbered("b.com/p", i)));
  auto soft_one = make("c.com/soft");
  store.insert(soft_one);
  CHECK(store.sweep_bans() == 0);  // nothing to do

  store.ban(ban_of("a.com", "/p-00000"));  // p-000000 .. p-000009
  store.ban(ban_of("b.com", "", "p-00000[0-4]$"));
  store.ban(ban_of("c.com", "", {}, true));
  CHECK(store.active_bans() == 3);
  CHECK(store.sweep_bans() == 10 + 5 + 1);
  CHECK(store.active_bans() == 0);
  StoreStats st = store.stats();
  CHECK(st.objects == 150 + 1 - 15);
  CHECK(st.bans == 0);
  CHECK(st.purged == 16);
  CHECK(soft_one->invalidated.load());
  CHECK(find(store, numbered("a.com/p", 5)) == nullptr);
  CHECK(find(store, numbered("a.com/p", 10)) != nullptr);
  CHECK(store.purge_tag("t", false) == 90);  // the swept ones left the tag index
  auto [bytes, objects] = held(store);
  CHECK(bytes == store.stats().bytes);
  CHECK(objects == store.stats().objects);

  // A ban after the sweep still reaches the objects stored before it.
  store.ban(ban_of("b.com", ""));
  CHECK(store.sweep_bans() == 45);
  CHECK(store.stats().objects == 1);
}

TEST_CASE("store: a sweep in slices lets go of the stripes between them and misses nothing") {
  Store store(64 << 20, 1 << 16);
  for (int i = 0; i < 2000; ++i) store.insert(make(numbered("a.com/p", i)));
  store.ban(ban_of("a.com", "", "[02468]$"));
  // One slice only: the sweep is under way, and nothing is locked between calls.
  const size_t first = store.sweep_bans(std::chrono::microseconds(0));
  CHECK(first <= 256);
  CHECK(store.sweeping());
  CHECK(store.active_bans() == 1);
  // Lookups meanwhile apply the ban themselves (unless the first slice's stripe held the object:
  // the keyed hash places keys anew in every process).
  const uint64_t purged_before_lookup = store.stats().purged;
  CHECK(find(store, numbered("a.com/p", 1998)) == nullptr);
  const uint64_t by_lookup = store.stats().purged - purged_before_lookup;
  CHECK(by_lookup <= 1);
  CHECK(find(store, numbered("a.com/p", 1999)) != nullptr);
  // Inserts meanwhile rehash the stripes' maps; the sweep still reaches every older object.
  for (int i = 0; i < 20000; ++i) store.insert(make(numbered("b.com/q", i)));
  size_t total = first;
  int calls = 1;
  while (store.sweeping()) {
    total += store.sweep_bans(std::chrono::microseconds(0));
    ++calls;
  }
  CHECK(calls > 16);  // one slice a call
  CHECK(total + by_lookup == 1000);  // what the lookup above removed was counted there
  CHECK(store.active_bans() == 0);
  CHECK(store.stats().objects == 1000 + 20000);
  CHECK(store.stats().purged == 1000);
  for (int i = 0; i < 2000; i += 97) CHECK((find(store, numbered("a.com/p", i)) == nullptr) == (i % 2 == 0));
}

TEST_CASE("store: concurrent insert, lookup, purge, bans and marks keep the invariants") {
  const uint64_t memory = 200000;
  Store store(memory, 20000);
  constexpr int kThreads = 4;
  constexpr int kIterations = 10000;
  std::atomic<int> over_memory{0};
  std::atomic<int> bad_bodies{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  // The sweeper, as the proxy's main loop runs it.
  std::thread sweeper([&] {
    for (int round = 0; !done.load(); ++round) {
      // Whole sweeps, and sweeps one slice at a time that go on while the others work.
      store.sweep_bans(round % 2 ? std::chrono::microseconds(0) : std::chrono::microseconds::max());
      std::this_thread::yield();
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(2000 + t);
      std::uniform_int_distribution<int> op(0, 99);
      std::uniform_int_distribution<int> key(0, 199);
      std::uniform_int_distribution<int> size(0, 8000);
      for (int i = 0; i < kIterations; ++i) {
        const int n = key(rng);
        std::string k = numbered(n % 2 ? "a.com/mt" : "b.com/mt", n);
        const char* enc = (rng() & 1) ? "gzip" : "identity";
        std::string extra = (rng() & 3) == 0 ? "sid=1" : "";
        int o = op(rng);
        if (o < 45) {
          Store::Lookup got = store.lookup(k, request_with("Accept-Encoding", enc), extra, 1000);
          if (got.object && (got.object->key() != k || got.object->body->to_string().find_first_not_of('z') !=
                                                         std::string::npos))
            ++bad_bodies;
        } else if (o < 80) {
          auto obj = make_ae(k, enc, std::string(static_cast<size_t>(size(rng)), 'z'));
          obj->variant = Store::variant_string(obj->variant, extra);
          obj->set_tags({numbered("tag", n % 7)});
          store.insert(obj);
          if (store.stats().bytes > memory) ++over_memory;
        } else if (o < 86) {
          store.purge(k, (rng() & 1) != 0);
        } else if (o < 90) {
          store.purge_tag(numbered("tag", n % 7), (rng() & 1) != 0);
        } else if (o < 94) {
          store.mark_hit_for_pass(k, 1000 + (rng() & 1), 1000);
        } else if (o < 97) {
          store.ban(ban_of(n % 2 ? "a.com" : "", numbered("/mt", n).substr(0, 5), (rng() & 1) ? "[13579]$" : "",
                           (rng() & 1) != 0));
        } else {
          std::string prefix = numbered("a.com/mt", n).substr(0, 12);
          store.purge_if([&](const CachedObject& obj) { return obj.key().starts_with(prefix); }, (rng() & 1) != 0);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  done = true;
  sweeper.join();
  store.sweep_bans();
  CHECK(store.active_bans() == 0);
  CHECK(over_memory.load() == 0);
  CHECK(bad_bodies.load() == 0);
  StoreStats st = store.stats();
  CHECK(st.bytes <= memory);
  auto [bytes, objects] = held(store);
  CHECK(bytes == st.bytes);
  CHECK(objects == st.objects);
  // Every object left is newer than every ban, or was checked against them.
  for (int t = 0; t < 7; ++t) store.purge_tag(numbered("tag", t), false);
  CHECK(store.stats().objects == 0);
  CHECK(store.stats().bytes == 0);
}

namespace {
// An object varying on X-Variant, fetched by a request with this X-Variant.
std::shared_ptr<CachedObject> make_variant(std::string key, const std::string& value) {
  auto o = std::make_shared<CachedObject>();
  set_key(*o, std::move(key));
  o->vary_names = {"x-variant"};
  http::Headers response;
  response.add("Vary", "X-Variant");
  o->variant = *vary_key(response, request_with("X-Variant", value));
  o->headers.add("Vary", "X-Variant");
  o->body = body_of(value);
  return o;
}
}  // namespace

TEST_CASE("store: 10,000 variants of one URL keep at most max_variants, and lookups find the right one") {
  Store store(64 << 20, 1 << 16, 8);
  for (int i = 0; i < 10000; ++i) REQUIRE(store.insert(make_variant("h/v", numbered("v", i))));
  CHECK(held(store).second == 8);
  CHECK(store.stats().variants_replaced == 10000 - 8);
  // The last eight stayed, each found by its own request; an older one is gone.
  for (int i = 10000 - 8; i < 10000; ++i) {
    ObjectRef o = find(store, "h/v", request_with("X-Variant", numbered("v", i)));
    REQUIRE(o);
    CHECK(o->body->to_string() == numbered("v", i));
  }
  CHECK_FALSE(find(store, "h/v", request_with("X-Variant", numbered("v", 0))));
  CHECK_FALSE(find(store, "h/v"));
}

TEST_CASE("store: past max_variants a variant that was read outlives those that were not") {
  Store store(64 << 20, 1 << 16, 3);
  REQUIRE(store.insert(make_variant("h/v", "popular")));
  REQUIRE(find(store, "h/v", request_with("X-Variant", "popular")));
  for (int i = 0; i < 100; ++i) REQUIRE(store.insert(make_variant("h/v", numbered("junk", i))));
  CHECK(held(store).second == 3);
  ObjectRef popular = find(store, "h/v", request_with("X-Variant", "popular"));
  REQUIRE(popular);
  CHECK(popular->body->to_string() == "popular");
  CHECK(find(store, "h/v", request_with("X-Variant", numbered("junk", 99))));
  // Replacing a variant that is there is not a new variant.
  REQUIRE(store.insert(make_variant("h/v", "popular")));
  CHECK(held(store).second == 3);
  CHECK(store.stats().variants_replaced == 98);
}

TEST_CASE("stored_view: an object's freshness as decide() sees it; a soft purge makes it stale") {
  CachedObject object;
  CacheControl cc;
  cc.max_age = 60;
  object.cc = cc;
  object.lifetime = 60;
  object.grace = 30;
  object.age = AgeBasis{1000, 1000, 1000, 0};
  StoredView view = stored_view(object, 1010);
  CHECK(view.lifetime == 60);
  CHECK(view.current_age == 10);
  CHECK(view.grace == 30);
  CHECK(view.response_cc.max_age == std::optional<Seconds>(60));
  CHECK(decide(CacheControl{}, view) == Use::kFresh);

  object.invalidated = true;
  view = stored_view(object, 1010);
  CHECK(view.lifetime == 0);
  CHECK(view.current_age == 10);
  CHECK(view.grace == 30);  // still served within grace while it is revalidated
  CHECK(decide(CacheControl{}, view) != Use::kFresh);
  // Purged the second it was stored: at least a second old, so never fresh.
  view = stored_view(object, 1000);
  CHECK(view.current_age == 1);
  CHECK(decide(CacheControl{}, view) != Use::kFresh);
}

TEST_CASE("Store::replace: only in place of the object still stored, keeping its bans and soft purge") {
  Store store(1 << 20, 1 << 20);
  std::shared_ptr<CachedObject> first = make("h/a");
  REQUIRE(store.insert(first));
  std::shared_ptr<CachedObject> richer = copy_of(*first);
  richer->set_encodings({{compress::Coding::kGzip, body_of("gz")}});
  CHECK(richer->charge() > first->charge());
  CHECK(store.replace(*first, richer));
  ObjectRef now = store.lookup("h/a", kNoHeaders).object;
  CHECK(now.get() == richer.get());
  CHECK(now->encoded(compress::Coding::kGzip) != nullptr);
  CHECK(store.stats().objects == 1);
  CHECK(store.stats().bytes == richer->charge());

  // Once replaced by something else, or gone, the late copy is dropped.
  std::shared_ptr<CachedObject> late = copy_of(*first);
  CHECK_FALSE(store.replace(*first, late));
  CHECK(store.lookup("h/a", kNoHeaders).object.get() == richer.get());
  store.purge("h/a", false);
  CHECK_FALSE(store.replace(*richer, copy_of(*richer)));
  CHECK(store.lookup("h/a", kNoHeaders).object == nullptr);

  // A soft purge and a ban that came meanwhile still apply to the replacement.
  std::shared_ptr<CachedObject> soft = make("h/b");
  REQUIRE(store.insert(soft));
  store.purge("h/b", true);
  std::shared_ptr<CachedObject> soft_copy = copy_of(*soft);
  CHECK(store.replace(*soft, soft_copy));
  CHECK(store.lookup("h/b", kNoHeaders).object->invalidated.load());
  std::shared_ptr<CachedObject> banned = make("h/c");
  REQUIRE(store.insert(banned));
  store.ban({"h", "/c", nullptr, false});
  CHECK(store.replace(*banned, copy_of(*banned)));
  CHECK(store.lookup("h/c", kNoHeaders).object == nullptr);
}

namespace {
// Every key the same hash: one stripe, one list, what a flood of colliding keys would make.
size_t same_hash(std::string_view) { return 42; }
}  // namespace

TEST_CASE("store: keys whose hashes collide share a list, each found, replaced and purged as its own") {
  Store store(64 << 20, 1 << 16, 2, same_hash);
  for (int i = 0; i < 5; ++i) REQUIRE(store.insert(make(numbered("h/k", i))));
  for (int i = 0; i < 5; ++i) {
    ObjectRef o = find(store, numbered("h/k", i));
    REQUIRE(o);
    CHECK(o->key() == numbered("h/k", i));
  }
  CHECK_FALSE(find(store, "h/absent"));

  // A key's variants count against its own max_variants, not its neighbours'.
  for (const char* value : {"a", "b", "c"}) REQUIRE(store.insert(make_variant("h/v", value)));
  CHECK_FALSE(find(store, "h/v", request_with("X-Variant", "a")));
  CHECK(find(store, "h/v", request_with("X-Variant", "c")));
  for (int i = 0; i < 5; ++i) CHECK(find(store, numbered("h/k", i)));

  // The same key and variant replaces that key's object only.
  REQUIRE(store.insert(make(numbered("h/k", 2), 200)));
  CHECK(find(store, numbered("h/k", 2))->body->size() == 200);
  CHECK(find(store, numbered("h/k", 3))->body->size() == 100);

  CHECK(store.purge(numbered("h/k", 1), false) == 1);
  CHECK_FALSE(find(store, numbered("h/k", 1)));
  CHECK(store.purge(numbered("h/k", 3), true) == 1);
  CHECK(find(store, numbered("h/k", 3))->invalidated.load());
  CHECK_FALSE(find(store, numbered("h/k", 4))->invalidated.load());
  CHECK(find(store, numbered("h/k", 0)));

  const Seconds now = 1'000'000;
  store.mark_hit_for_pass("h/pass", now + 60, now);
  CHECK(store.lookup("h/pass", kNoHeaders, {}, now).hit_for_pass);
  CHECK_FALSE(store.lookup("h/other", kNoHeaders, {}, now).hit_for_pass);

  auto [bytes, objects] = held(store);
  CHECK(objects == 4 + 2);
  CHECK(bytes == store.stats().bytes);
  CHECK(objects == store.stats().objects);
}

TEST_CASE("store: colliding keys are evicted one by one, and the survivors are the keys they were") {
  const uint64_t one = make(numbered("h/k", 0))->charge();
  Store store(50 * one, 50 * one, 32, same_hash);
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 200; ++i)
      if (!find(store, numbered("h/k", i))) REQUIRE(store.insert(make(numbered("h/k", i))));
  CHECK(store.stats().bytes <= 50 * one);
  CHECK(store.stats().evictions > 0);
  size_t found = 0;
  for (int i = 0; i < 200; ++i) {
    ObjectRef o = find(store, numbered("h/k", i));
    if (!o) continue;
    ++found;
    CHECK(o->key() == numbered("h/k", i));
  }
  auto [bytes, objects] = held(store);
  CHECK(found == objects);
  CHECK(bytes == store.stats().bytes);
  CHECK(objects == store.stats().objects);
}
