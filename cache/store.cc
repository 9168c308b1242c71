// cache/store: see store.h.
//
// Layout
//   - kStripes stripes, chosen by the key's hash (keyed: hash/keyed_hash.h, so clients cannot
//     aim keys at one stripe or one list). Each has a mutex, an index from the key's hash to its
//     objects (one per variant; objects of another key with the same hash, if any, share the
//     chain, and readers compare keys) and the hit-for-pass marks of its keys. The index holds
//     no copy of the key: an object's key is stored once, in it.
//   - One eviction state behind its own mutex: the small (window) and main FIFOs, the byte and
//     object counts and the statistics.
//   - The frequency sketch: lock-free, counted by every lookup before it takes a stripe lock.
//   - The tag index (tag -> the objects carrying it) behind its own mutex.
//   - The bans: an immutable list, replaced whole (copy on write) under its own mutex, and the
//     epoch (the id of the latest ban).
//
// The store's bookkeeping for an object is in the object (CachedObject::StoreLinks): the
// store's own reference to it, its links in the index and in a FIFO, its charge, its key hash,
// its read count (0..3), whether it is dead (no longer counted) and the newest ban it has been
// checked against. A stored object is therefore one block of the heap, with nothing allocated
// beside it for the store; the index and the FIFOs are intrusive.
//
// Lock order: the sweep mutex (held by sweep_bans() only, around everything it does), then a
// stripe mutex, then (optionally, nested) the eviction mutex, the tag mutex or the
// ban mutex, one of them at a time. The last three are leaves: nothing is locked while one of
// them is held. Never two stripes at once. Eviction therefore cannot remove its victims from
// their stripes while it holds the eviction mutex: it marks them dead (which releases their
// bytes and takes them out of their FIFO at once), and the inserting thread removes them from
// their stripes after dropping every lock, through references it kept. Until then, a dead object
// still in a stripe's index is skipped by every reader.
//
// Which lock guards what (StoreLinks):
//   - self: the stripe mutex. Set at insert, before the object enters its index and its FIFO;
//     let go by whoever takes the object out of its index, only once it is dead (released), so
//     an object in a FIFO or an index always has it.
//   - next_in_bucket, indexed, bans_checked: the stripe mutex.
//   - dead: written under the eviction mutex (with the stripe mutex also held, or not); atomic
//     because readers check it under the stripe mutex only. An object is released (bytes, object
//     count, FIFO) exactly once: by whoever turns `dead` from false to true.
//   - freq: atomic; bumped by lookups, consumed by eviction.
//   - fifo_prev, fifo_next, in_main, the FIFOs and every counter: the eviction mutex.
//   - charge, head_charge, overhead_charge, key_hash: set before the object is shared, then
//     read only.
//   - The tag index: the tag mutex. An object is tagged when it enters its stripe's index and
//     untagged when it leaves it, both under the stripe mutex, so the tag index holds exactly the
//     objects in the indexes (dead ones awaiting removal included).
//
// Bans: an object's ban_epoch is read under its stripe mutex when it is inserted, so a sweep
// that has passed a stripe can only miss objects inserted after it started, which are newer
// than every ban it forgets.
#include "cache/store.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <deque>
#include <unordered_set>
#include <utility>

#include "cache/frequency_sketch.h"
#include "hash/keyed_hash.h"
#include "http/heap.h"

namespace edge::cache {

namespace {

constexpr size_t kStripes = 16;
constexpr uint8_t kMaxFreq = 3;
// The window (the small FIFO) is 1/kWindowShare of the memory; main holds the rest.
constexpr uint64_t kWindowShare = 100;
// A refused candidate as popular as this, by the sketch, still gets in once in 128 tries: an
// attacker cannot keep a victim in by raising its count (TinyLFU's defence against that, as
// Caffeine has it).
constexpr uint32_t kLuckyCount = 6;
// A candidate is weighed against at most this many of main's objects: one larger than that many
// unread ones together is refused.
constexpr size_t kMaxDisplaced = 1024;
// The sketch is sized for objects of this size on average (16 bytes of counters per object: 0.8%
// of the memory).
constexpr uint64_t kSketchObjectSize = 2048;
constexpr size_t kMaxHitForPassPerStripe = 100'000 / kStripes;
constexpr char kVariantSeparator = '\x1f';
// A sweep holds a stripe's lock for at most this many entries or this long (plus one bucket).
constexpr size_t kSweepSliceEntries = 256;
constexpr auto kSweepSliceHold = std::chrono::microseconds(500);

size_t keyed_hash_of(std::string_view key) { return static_cast<size_t>(hash::keyed_hash(key)); }

// The Vary part of the variant a request selects from an object stored with these Vary names,
// computed as cache::vary_key does it from the response.
std::optional<std::string> vary_part_for(const CachedObject& object, const http::Headers& request) {
  http::Headers vary;
  if (!object.vary_names.empty()) {
    std::string names;
    for (const std::string& name : object.vary_names) {
      if (!names.empty()) names += ", ";
      names += name;
    }
    vary.add("Vary", names);
  }
  return vary_key(vary, request);
}

}  // namespace

bool Store::variant_matches(const CachedObject& object, const http::Headers& request, std::string_view extra) {
  std::optional<std::string> vary = vary_part_for(object, request);
  if (!vary) return false;
  std::string_view variant = object.variant;
  if (!variant.starts_with(*vary)) return false;
  variant.remove_prefix(vary->size());
  if (extra.empty()) return variant.empty();
  return variant.size() == extra.size() + 1 && variant.front() == kVariantSeparator && variant.substr(1) == extra;
}

namespace {

struct BanRecord {
  uint64_t epoch;
  Store::Ban ban;

  bool matches(const CachedObject& o) const {
    if (!ban.host.empty() && o.host() != ban.host) return false;
    if (!ban.prefix.empty() && !o.path().starts_with(ban.prefix)) return false;
    return !ban.regex || ban.regex->matches(o.path());
  }
};
// Oldest first; never changed once published.
using BanList = std::vector<std::shared_ptr<const BanRecord>>;

}  // namespace

std::string Store::variant_string(std::string_view vary_part, std::string_view extra) {
  std::string variant(vary_part);
  if (!extra.empty()) {
    variant.push_back(kVariantSeparator);
    variant.append(extra);
  }
  return variant;
}

void CachedObject::set_key(std::string_view key, std::string_view host, std::string_view path) {
  // Built before anything is replaced: the views may be this object's own.
  PackedString new_key(key);
  PackedString apart;
  if (key.size() != host.size() + path.size() || !key.starts_with(host) || !key.ends_with(path)) {
    std::string names;
    names.reserve(host.size() + path.size());
    names.append(host).append(path);
    apart = names;
  }
  key_ = std::move(new_key);
  apart_ = std::move(apart);
  host_length_ = static_cast<uint32_t>(host.size());
}

const CachedObject::Extras& CachedObject::extras() const {
  static const Extras none;
  return extras_ ? *extras_ : none;
}

CachedObject::Extras& CachedObject::extras_to_change() {
  if (!extras_) extras_ = std::make_unique<Extras>();
  return *extras_;
}

void CachedObject::drop_empty_extras() {
  if (extras_ && extras_->reason.empty() && extras_->parts.empty() && extras_->complete_length == 0 &&
      extras_->encodings.empty() && extras_->tags.empty() && !extras_->attachment)
    extras_.reset();
}

void CachedObject::set_reason(std::string_view reason) {
  extras_to_change().reason = reason;
  drop_empty_extras();
}

void CachedObject::set_parts(std::vector<Part> parts, uint64_t complete_length) {
  Extras& extras = extras_to_change();
  parts.shrink_to_fit();
  extras.parts = std::move(parts);
  extras.complete_length = complete_length;
  drop_empty_extras();
}

void CachedObject::set_encodings(std::vector<Encoded> encodings) {
  encodings.shrink_to_fit();
  extras_to_change().encodings = std::move(encodings);
  drop_empty_extras();
}

void CachedObject::set_tags(std::vector<std::string> tags) {
  tags.shrink_to_fit();
  extras_to_change().tags = std::move(tags);
  drop_empty_extras();
}

void CachedObject::set_attachment(std::shared_ptr<const Attachment> attachment) {
  extras_to_change().attachment = std::move(attachment);
  drop_empty_extras();
}

std::shared_ptr<CachedObject> copy_of(const CachedObject& from) {
  auto to = std::make_shared<CachedObject>();
  to->set_key(from.key(), from.host(), from.path());
  to->variant = from.variant;
  to->vary_names = from.vary_names;
  to->status = from.status;
  to->set_reason(from.reason());
  to->headers = from.headers;
  to->body = from.body;
  to->decoded = from.decoded;
  to->age = from.age;
  to->lifetime = from.lifetime;
  to->grace = from.grace;
  to->cc = from.cc;
  to->set_parts(from.parts(), from.complete_length());
  to->set_encodings(from.encodings());
  to->set_tags(from.tags());
  to->set_attachment(from.attachment());
  return to;
}

struct Store::Impl {
  using Links = CachedObject::StoreLinks;

  // A FIFO of stored objects, linked through their StoreLinks: appending, taking one out and
  // moving one to the back are O(1), and nothing is allocated per object.
  struct Fifo {
    const CachedObject* head = nullptr;  // the oldest
    const CachedObject* tail = nullptr;
    uint64_t bytes = 0;
    size_t count = 0;

    void push_back(const CachedObject& o) {
      Links& l = o.store_;
      l.fifo_prev = tail;
      l.fifo_next = nullptr;
      (tail ? tail->store_.fifo_next : head) = &o;
      tail = &o;
      bytes += l.charge;
      ++count;
    }
    void unlink(const CachedObject& o) {
      Links& l = o.store_;
      (l.fifo_prev ? l.fifo_prev->store_.fifo_next : head) = l.fifo_next;
      (l.fifo_next ? l.fifo_next->store_.fifo_prev : tail) = l.fifo_prev;
      l.fifo_prev = l.fifo_next = nullptr;
      bytes -= l.charge;
      --count;
    }
  };

  // A stripe's index: buckets of objects by key hash, each a chain through next_in_bucket, oldest
  // first. The objects of one key hash (a key's variants, and any key that collides with it)
  // share a bucket. The buckets double to keep at most one object per bucket on average; they
  // never shrink.
  struct Index {
    std::vector<const CachedObject*> buckets;  // a power of two of them, or none yet
    size_t count = 0;

    // The first object of the bucket a key hash falls in (the chain holds other hashes too).
    const CachedObject* first(size_t key_hash) const {
      return buckets.empty() ? nullptr : buckets[slot(key_hash, buckets.size())];
    }
    void append(const CachedObject& o) {
      if (count + 1 > buckets.size()) grow();
      const CachedObject** at = &buckets[slot(o.store_.key_hash, buckets.size())];
      while (*at) at = &(*at)->store_.next_in_bucket;
      *at = &o;
      o.store_.next_in_bucket = nullptr;
      o.store_.indexed = true;
      ++count;
    }
    // `with` takes the place of `o`, which leaves.
    void replace(const CachedObject& o, const CachedObject& with) {
      *link_to(o) = &with;
      with.store_.next_in_bucket = o.store_.next_in_bucket;
      with.store_.indexed = true;
      o.store_.next_in_bucket = nullptr;
      o.store_.indexed = false;
    }
    void remove(const CachedObject& o) {
      *link_to(o) = o.store_.next_in_bucket;
      o.store_.next_in_bucket = nullptr;
      o.store_.indexed = false;
      --count;
    }

   private:
    // Spread by the bits above the ones that chose the stripe.
    static size_t slot(size_t key_hash, size_t n) { return (key_hash / kStripes) & (n - 1); }
    const CachedObject** link_to(const CachedObject& o) {
      const CachedObject** at = &buckets[slot(o.store_.key_hash, buckets.size())];
      while (*at != &o) at = &(*at)->store_.next_in_bucket;
      return at;
    }
    void grow() {
      std::vector<const CachedObject*> old = std::exchange(buckets, {});
      buckets.assign(old.empty() ? 16 : 2 * old.size(), nullptr);
      // Each chain's order is kept: objects are appended at the tails, taken in order.
      std::vector<const CachedObject**> tails(buckets.size());
      for (size_t i = 0; i < buckets.size(); ++i) tails[i] = &buckets[i];
      for (const CachedObject* chain : old) {
        while (chain) {
          const CachedObject* next = chain->store_.next_in_bucket;
          const CachedObject**& tail = tails[slot(chain->store_.key_hash, buckets.size())];
          *tail = chain;
          chain->store_.next_in_bucket = nullptr;
          tail = &chain->store_.next_in_bucket;
          chain = next;
        }
      }
    }
  };

  struct HitForPass {
    Seconds until;
    uint64_t seq;  // which entry of `order` is this mark's
  };

  struct Stripe {
    std::mutex mu;
    Index index;
    std::unordered_map<std::string, HitForPass, hash::KeyedHash, std::equal_to<>> hfp;
    // Marks by age, for the bound; an entry whose seq no longer matches its mark is stale.
    std::deque<std::pair<std::string, uint64_t>> hfp_order;
    uint64_t hfp_seq = 0;
  };

  struct Eviction {
    std::mutex mu;
    Fifo small, main;
    StoreStats stats;
  };

  Impl(uint64_t memory_, uint64_t max_object_, uint32_t max_variants_, Store::KeyHash key_hash)
      : hash_key(key_hash ? key_hash : keyed_hash_of),
        memory(memory_),
        max_object(max_object_),
        max_variants(std::max<uint32_t>(1, max_variants_)),
        sketch(static_cast<size_t>(memory_ / kSketchObjectSize)) {}

  // The store's references are the objects' own: let go of them all, after walking the chains
  // (an object may be freed as soon as its reference goes).
  ~Impl() {
    std::vector<ObjectRef> held;
    for (Stripe& s : stripes)
      for (const CachedObject* chain : s.index.buckets)
        for (const CachedObject* o = chain; o; o = o->store_.next_in_bucket) held.push_back(std::move(o->store_.self));
  }

  const Store::KeyHash hash_key;
  // Set at construction and by resize(); atomics because inserts read them without ev.mu.
  std::atomic<uint64_t> memory;
  std::atomic<uint64_t> max_object;
  std::atomic<size_t> max_variants;
  Stripe stripes[kStripes];
  mutable Eviction ev;

  std::mutex tags_mu;
  std::unordered_map<std::string, std::unordered_set<ObjectRef>> tag_index;

  mutable std::mutex bans_mu;
  std::shared_ptr<const BanList> bans = std::make_shared<const BanList>();  // bans_mu
  std::atomic<uint64_t> ban_epoch{0};  // written under bans_mu, after `bans` holds the ban

  // How often each key was looked up lately, held or not: what admission decides by.
  FrequencySketch sketch;
  uint64_t lucky_draws = 0;                    // ev.mu
  std::vector<const CachedObject*> displaced;  // ev.mu: evict_small()'s, kept for its capacity

  std::atomic<uint64_t> purged{0};
  std::atomic<uint64_t> hfp_marks{0};
  std::atomic<uint64_t> variants_replaced{0};

  Stripe& stripe_for(size_t key_hash) { return stripes[key_hash % kStripes]; }

  // ---- under ev.mu ----

  // Marks the object dead, takes it out of its FIFO and releases its bytes; false if it already
  // was.
  bool release_locked(const CachedObject& o) {
    Links& l = o.store_;
    if (l.dead.load(std::memory_order_relaxed)) return false;
    l.dead.store(true, std::memory_order_relaxed);
    ev.stats.bytes -= l.charge;
    ev.stats.head_bytes -= l.head_charge;
    ev.stats.overhead_bytes -= l.overhead_charge;
    ev.stats.body_bytes -= l.charge - l.head_charge - l.overhead_charge;
    ev.stats.objects -= 1;
    (l.in_main ? ev.main : ev.small).unlink(o);
    return true;
  }

  // The object leaves the FIFOs; the caller removes it from its stripe once no eviction lock is
  // held (remove_from_stripes), through the reference kept in `victims`.
  void evict(const CachedObject& o, std::vector<ObjectRef>& victims) {
    victims.push_back(o.store_.self);  // set: only whoever takes it out of its index lets it go
    release_locked(o);
    ++ev.stats.evictions;
  }

  // The object evict_main() would take next, left at main's front: objects read since their
  // last pass are sent round again first, their count lowered. Null when main is empty.
  const CachedObject* main_victim() {
    while (const CachedObject* o = ev.main.head) {
      const uint8_t f = o->store_.freq.load(std::memory_order_relaxed);
      if (f == 0) return o;
      // A concurrent lookup may bump it meanwhile; losing that bump is harmless.
      o->store_.freq.store(static_cast<uint8_t>(f - 1), std::memory_order_relaxed);
      ev.main.unlink(*o);
      ev.main.push_back(*o);
    }
    return nullptr;
  }

  // Main's unread objects from its front (after main_victim() sent the read ones round) until
  // they free `room` bytes, into `displaced`; at most kMaxDisplaced of them, among at most
  // 4 x kMaxDisplaced objects looked at (read ones are passed over), so the work under the
  // eviction lock stays bounded however many objects main holds. False when those do not free
  // enough.
  bool victims_for(uint64_t room, std::vector<const CachedObject*>& displaced) {
    displaced.clear();
    if (!main_victim()) return false;
    uint64_t freed = 0;
    size_t looked_at = 0;
    for (const CachedObject* o = ev.main.head; o && looked_at < 4 * kMaxDisplaced && displaced.size() < kMaxDisplaced;
         o = o->store_.fifo_next, ++looked_at) {
      if (o->store_.freq.load(std::memory_order_relaxed) > 0) continue;
      displaced.push_back(o);
      freed += o->store_.charge;
      if (freed >= room) return true;
    }
    return false;
  }

  // TinyLFU, by requests saved: the window's candidate takes the victims' places if the sketch
  // counts it more than all of them together (so a large object must be wanted more than the many
  // small ones it would push out), or if it saves more requests per byte than they do while they
  // take at least twice its room (a small object asked for again may push out a large one asked
  // for a little more often: the memory freed holds many more like it). On a tie the victims
  // stay, and a key counted once wins only by the first rule, so a scan of new keys cannot flush
  // the objects main holds.
  bool admitted(const CachedObject& candidate, const std::vector<const CachedObject*>& displaced) {
    const uint32_t wanted = sketch.estimate(candidate.store_.key_hash);
    const uint64_t charge = candidate.store_.charge;
    uint64_t held = 0, freed = 0;
    for (const CachedObject* o : displaced) {
      held += sketch.estimate(o->store_.key_hash);
      freed += o->store_.charge;
    }
    if (wanted > held) return true;
    if (wanted >= 2 && freed >= 2 * charge && double(wanted) * double(freed) > double(held) * double(charge))  // no overflow
      return true;
    if (wanted < kLuckyCount) return false;
    return (++lucky_draws * 0x9e3779b97f4a7c15ULL) >> 57 == 0;
  }

  void to_main(const CachedObject& o) {
    ev.small.unlink(o);
    o.store_.in_main = true;
    ev.main.push_back(o);
  }

  // Takes the window's oldest object out: into main if main has room for it or it wins
  // admission against the victims it would displace (which are then evicted), else evicted.
  void evict_small(std::vector<ObjectRef>& victims, uint64_t main_room) {
    const CachedObject* candidate = ev.small.head;
    if (!candidate) return;
    const uint64_t charge = candidate->store_.charge;
    if (ev.main.bytes + charge > main_room) {
      const uint64_t room = ev.main.bytes + charge - main_room;
      if (victims_for(room, displaced) && admitted(*candidate, displaced)) {
        for (const CachedObject* o : displaced) evict(*o, victims);
      } else if (!displaced.empty()) {
        displaced.clear();
        ++ev.stats.admission_refusals;
        return evict(*candidate, victims);
      }
      displaced.clear();
    }
    to_main(*candidate);
  }

  // Evicts main's victim (see main_victim()).
  void evict_main(std::vector<ObjectRef>& victims) {
    if (const CachedObject* o = main_victim()) evict(*o, victims);
  }

  void evict_to_fit_locked(std::vector<ObjectRef>& victims) {
    const uint64_t limit = memory.load(std::memory_order_relaxed);
    const uint64_t small_target = limit / kWindowShare;
    while (ev.stats.bytes > limit) {
      if (ev.small.count == 0 && ev.main.count == 0) break;  // cannot happen: bytes > 0
      if ((ev.small.bytes > small_target && ev.small.count > 0) || ev.main.count == 0) {
        evict_small(victims, limit - small_target);
      } else {
        evict_main(victims);
      }
    }
  }

  // ---- tag index: under the objects' stripe mutex, takes tags_mu ----

  void index_tags(const ObjectRef& added, const ObjectRef& removed) {
    const bool add = added && !added->tags().empty();
    const bool remove = removed && !removed->tags().empty();
    if (!add && !remove) return;  // most objects have no tags: no global lock for them
    std::lock_guard lock(tags_mu);  // stripe -> tags
    if (remove) {
      for (const std::string& tag : removed->tags()) {
        auto it = tag_index.find(tag);
        if (it == tag_index.end()) continue;
        it->second.erase(removed);
        if (it->second.empty()) tag_index.erase(it);
      }
    }
    if (add)
      for (const std::string& tag : added->tags()) tag_index[tag].insert(added);
  }

  // The object has left its stripe's index and been released: unindexed from its tags, and the
  // store's reference let go. Under the stripe mutex.
  void detach_locked(const CachedObject& o) {
    index_tags(nullptr, o.store_.self);
    o.store_.self.reset();
  }

  // ---- stripe side ----

  // Removes evicted objects from their stripes' indexes. Called with no lock held.
  void remove_from_stripes(const std::vector<ObjectRef>& victims) {
    for (const ObjectRef& o : victims) {
      Stripe& s = stripe_for(o->store_.key_hash);
      std::lock_guard lock(s.mu);
      if (!o->store_.indexed) continue;  // already removed (replaced or purged)
      s.index.remove(*o);
      detach_locked(*o);
    }
  }

  // Releases objects already taken out of stripe `s`'s index, then detaches them; under s.mu.
  // Returns how many were live.
  size_t release_removed_locked(const std::vector<const CachedObject*>& removed) {
    if (removed.empty()) return 0;
    size_t n = 0;
    {
      std::lock_guard ev_lock(ev.mu);  // stripe -> eviction
      for (const CachedObject* o : removed) n += release_locked(*o) ? 1 : 0;
    }
    for (const CachedObject* o : removed) detach_locked(*o);
    return n;
  }

  // Removes one object from its stripe (whose mutex the caller holds); true if it was live.
  bool remove_entry_locked(Stripe& s, const CachedObject& o) {
    if (!o.store_.indexed) return false;
    s.index.remove(o);
    return release_removed_locked({&o}) == 1;
  }

  // Calls fn(object) for every object of the stripe's index; fn may take the object out.
  template <typename Fn>
  static void for_each_in_bucket(Index& index, size_t bucket, Fn&& fn) {
    for (const CachedObject* o = index.buckets[bucket]; o;) {
      const CachedObject* next = o->store_.next_in_bucket;
      fn(*o);
      o = next;
    }
  }

  // Removes (or, soft, marks) every live object for which match(object) is true, in one stripe.
  template <typename Match>
  size_t purge_in_stripe(Stripe& s, Match&& match, bool soft) {
    std::lock_guard lock(s.mu);
    size_t n = 0;
    std::vector<const CachedObject*> removed;
    for (size_t b = 0; b < s.index.buckets.size(); ++b) {
      for_each_in_bucket(s.index, b, [&](const CachedObject& o) {
        const bool dead = o.store_.dead.load(std::memory_order_relaxed);
        if (soft) {
          if (dead || !match(o)) return;
          o.invalidated.store(true);
          ++n;
          return;
        }
        // Dead objects still here are evicted ones awaiting removal: drop them too.
        if (!dead && !match(o)) return;
        s.index.remove(o);
        removed.push_back(&o);
      });
    }
    return soft ? n : release_removed_locked(removed);
  }

  // ---- bans ----

  std::shared_ptr<const BanList> ban_snapshot() const {
    std::lock_guard lock(bans_mu);  // (stripe ->) bans
    return bans;
  }

  enum class BanVerdict { kKeep, kRemove };

  // Applies to a live object the bans of `list` it has not been checked against; a soft ban
  // marks it (counted in `marked` when it was not yet). Under the object's stripe mutex.
  // kRemove: a hard ban matched, the caller removes it.
  BanVerdict apply_bans_locked(const CachedObject& o, const BanList& list, size_t& marked) {
    uint64_t& checked = o.store_.bans_checked;
    if (list.empty() || checked >= list.back()->epoch) return BanVerdict::kKeep;
    // Bans are oldest first: the ones the object has not seen are a suffix.
    auto first = std::upper_bound(list.begin(), list.end(), checked,
                                  [](uint64_t epoch, const auto& ban) { return epoch < ban->epoch; });
    for (auto it = first; it != list.end(); ++it) {
      const BanRecord& ban = **it;
      if (!ban.matches(o)) continue;
      if (!ban.ban.soft) return BanVerdict::kRemove;
      if (!o.invalidated.exchange(true)) ++marked;
    }
    checked = list.back()->epoch;
    return BanVerdict::kKeep;
  }

  // ---- the ban sweep ----

  // Where the sweep is in one stripe: its index's buckets are visited in order. Inserting may
  // grow the index between two slices and move objects across buckets; the stripe is then
  // visited again from its first bucket (objects already checked cost a comparison).
  struct Cursor {
    size_t bucket = 0;
    size_t bucket_count = 0;  // the index's when `bucket` was set
    bool done = false;
  };
  struct Sweep {
    mutable std::mutex mu;                // one sweeper at a time; first in the lock order
    std::shared_ptr<const BanList> bans;  // the bans this sweep applies; null: none under way
    Cursor cursors[kStripes];
  } sweep;

  // Applies `list` to the objects of the next buckets of `s`, under s.mu, for at most
  // kSweepSliceEntries objects or kSweepSliceHold, whichever comes first (a bucket is never
  // split). Returns the objects removed or marked.
  size_t sweep_slice(Stripe& s, Cursor& cursor, const BanList& list) {
    std::lock_guard lock(s.mu);
    const auto start = std::chrono::steady_clock::now();
    if (cursor.bucket_count != s.index.buckets.size()) {
      cursor.bucket = 0;
      cursor.bucket_count = s.index.buckets.size();
    }
    size_t affected = 0;
    size_t examined = 0;
    std::vector<const CachedObject*> removed;
    while (cursor.bucket < cursor.bucket_count) {
      // Removing never resizes the index: the cursor stays valid.
      for_each_in_bucket(s.index, cursor.bucket, [&](const CachedObject& o) {
        ++examined;
        if (o.store_.dead.load(std::memory_order_relaxed)) return;  // eviction removes it
        if (apply_bans_locked(o, list, affected) == BanVerdict::kKeep) return;
        s.index.remove(o);
        removed.push_back(&o);
      });
      ++cursor.bucket;
      if (examined >= kSweepSliceEntries || std::chrono::steady_clock::now() - start >= kSweepSliceHold) break;
    }
    cursor.done = cursor.bucket >= cursor.bucket_count;
    return affected + release_removed_locked(removed);
  }

  // ---- hit-for-pass marks: under the stripe mutex ----

  void hfp_erase_locked(Stripe& s, std::unordered_map<std::string, HitForPass>::iterator it) {
    s.hfp.erase(it);
    hfp_marks.fetch_sub(1, std::memory_order_relaxed);
  }

  void hfp_clear_locked(Stripe& s, std::string_view key) {
    auto it = s.hfp.find(key);
    if (it != s.hfp.end()) hfp_erase_locked(s, it);
  }

  bool hfp_marked_locked(Stripe& s, std::string_view key, Seconds now) {
    auto it = s.hfp.find(key);
    if (it == s.hfp.end()) return false;
    if (it->second.until > now) return true;
    hfp_erase_locked(s, it);
    return false;
  }
};

namespace {

// The strings' own text on the heap, beside the array that holds them.
uint64_t texts_memory(const std::vector<std::string>& strings) {
  uint64_t bytes = 0;
  for (const std::string& s : strings) bytes += http::heap_bytes_of(s);
  return bytes;
}

}  // namespace

// What the heap holds for a stored object, as the heap counts it (http/heap.h): the object (the
// store's bookkeeping included) and its place in the index, then what each part holds beside it.
// A body or encoding shared with another object is counted with each.
CachedObject::Charge CachedObject::charge_parts() const {
  // The object, with the store's bookkeeping in it, and its bucket in the index (at most one
  // object per bucket on average).
  constexpr uint64_t kFixed = http::shared_object_bytes<CachedObject>() + sizeof(void*);
  Charge charge;
  charge.overhead = kFixed + key_.memory() + apart_.memory() + variant.memory();
  charge.head = headers.memory() + vary_names.memory() + texts_memory(vary_names);
  if (extras_) {
    charge.head += extras_->reason.memory() + http::heap_bytes(extras_->tags.capacity() * sizeof(std::string)) +
                   texts_memory(extras_->tags);
    charge.overhead += http::heap_bytes(sizeof(Extras)) + http::heap_bytes(extras_->parts.capacity() * sizeof(Part)) +
                       http::heap_bytes(extras_->encodings.capacity() * sizeof(Encoded));
    if (extras_->attachment) charge.body += extras_->attachment->memory();
  }
  const auto body_memory = [&charge](const std::shared_ptr<const http::SharedBody>& b) {
    if (!b) return;
    charge.overhead += http::shared_object_bytes<http::SharedBody>();
    charge.body += b->memory();
  };
  if (parts().empty()) {
    body_memory(body);
  } else {
    for (const Part& part : parts()) body_memory(part.body);
  }
  for (const Encoded& encoded : encodings()) body_memory(encoded.body);
  return charge;
}

Store::Store(uint64_t memory, uint64_t max_object, uint32_t max_variants, KeyHash key_hash)
    : impl_(std::make_unique<Impl>(memory, max_object, max_variants, key_hash)) {}
Store::~Store() = default;

Store::Lookup Store::lookup(std::string_view key, const http::Headers& request_headers, std::string_view variant_extra,
                            std::optional<Seconds> now) {
  Impl& im = *impl_;
  const size_t key_hash = im.hash_key(key);
  im.sketch.increment(key_hash);
  Impl::Stripe& s = im.stripe_for(key_hash);
  Lookup result;
  std::lock_guard lock(s.mu);
  // Borrowed under the stripe's lock: no reference count is touched but the result's.
  const CachedObject* found = nullptr;
  // The request's variant is worked out once per set of Vary names, not once per variant.
  const std::vector<std::string>* names = nullptr;
  std::optional<std::string> wanted;
  for (const CachedObject* o = s.index.first(key_hash); o; o = o->store_.next_in_bucket) {
    if (o->store_.key_hash != key_hash || o->store_.dead.load(std::memory_order_relaxed) || o->key() != key) continue;
    if (!names || o->vary_names != *names) {
      names = &o->vary_names.get();
      std::optional<std::string> vary = vary_part_for(*o, request_headers);
      wanted = vary ? std::optional(variant_string(*vary, variant_extra)) : std::nullopt;
    }
    if (wanted && o->variant == *wanted) {
      found = o;
      break;
    }
  }
  if (found && found->store_.bans_checked < im.ban_epoch.load(std::memory_order_acquire)) {
    size_t marked = 0;
    if (im.apply_bans_locked(*found, *im.ban_snapshot(), marked) == Impl::BanVerdict::kRemove) {
      if (im.remove_entry_locked(s, *found)) ++marked;
      found = nullptr;  // and perhaps freed
    }
    if (marked > 0) im.purged.fetch_add(marked, std::memory_order_relaxed);
  }
  if (found) {
    std::atomic<uint8_t>& freq = found->store_.freq;
    uint8_t f = freq.load(std::memory_order_relaxed);
    while (f < kMaxFreq && !freq.compare_exchange_weak(f, static_cast<uint8_t>(f + 1), std::memory_order_relaxed)) {
    }
    result.object = found->store_.self;
    return result;
  }
  if (!s.hfp.empty()) result.hit_for_pass = im.hfp_marked_locked(s, key, now ? *now : std::time(nullptr));
  return result;
}

bool Store::insert(std::shared_ptr<CachedObject> object) { return insert_replacing(std::move(object), nullptr); }

bool Store::replace(const CachedObject& current, std::shared_ptr<CachedObject> object) {
  return insert_replacing(std::move(object), &current);
}

bool Store::insert_replacing(std::shared_ptr<CachedObject> object, const CachedObject* current) {
  if (!object || object->store_.taken) return false;
  Impl& im = *impl_;
  object->headers.shrink_to_fit();  // kept for as long as the object: no slack from its growth
  const CachedObject::Charge parts = object->charge_parts();
  const uint64_t charge = parts.total();
  if (charge > im.max_object.load(std::memory_order_relaxed) || charge > im.memory.load(std::memory_order_relaxed)) {
    std::lock_guard ev_lock(im.ev.mu);
    ++im.ev.stats.refused_too_large;
    return false;
  }
  CachedObject::StoreLinks& links = object->store_;
  links.taken = true;
  links.charge = charge;
  // Heads and keys are bounded far below 4 GB (the parser's and the key's limits).
  links.head_charge = static_cast<uint32_t>(parts.head);
  links.overhead_charge = static_cast<uint32_t>(parts.overhead);
  links.key_hash = im.hash_key(object->key());
  const size_t key_hash = links.key_hash;

  std::vector<ObjectRef> victims;
  {
    Impl::Stripe& s = im.stripe_for(key_hash);
    std::lock_guard lock(s.mu);
    if (current) {
      // Only in place of `current`, as it is now: with its bans and soft purge carried over, so
      // what befell the object meanwhile befalls its replacement.
      const CachedObject* listed = s.index.first(key_hash);
      while (listed && listed != current) listed = listed->store_.next_in_bucket;
      if (!listed) {
        links.taken = false;
        return false;
      }
      object->ban_epoch = current->ban_epoch;
      links.bans_checked = current->store_.bans_checked;
      object->invalidated.store(current->invalidated.load(std::memory_order_relaxed), std::memory_order_relaxed);
    } else {
      // Read under the stripe mutex: see "Bans" above.
      object->ban_epoch = im.ban_epoch.load(std::memory_order_acquire);
      links.bans_checked = object->ban_epoch;
    }
    links.self = object;
    const CachedObject& added = *object;
    const std::string_view key = added.key();
    // The same key and variant, replaced; else, past max_variants, the key's oldest variant
    // pushed out: a dead one awaiting removal, else one nobody read, else the oldest.
    const CachedObject* same = nullptr;
    const CachedObject* oldest = nullptr;
    const CachedObject* oldest_unread = nullptr;
    size_t variants = 0;
    for (const CachedObject* o = s.index.first(key_hash); o; o = o->store_.next_in_bucket) {
      if (o->store_.key_hash != key_hash || o->key() != key) continue;
      if (o->variant == added.variant) {
        same = o;
        break;
      }
      ++variants;
      if (!oldest) oldest = o;
      if (!oldest_unread &&
          (o->store_.dead.load(std::memory_order_relaxed) || o->store_.freq.load(std::memory_order_relaxed) == 0))
        oldest_unread = o;
    }
    if (same) {
      s.index.replace(*same, added);
    } else {
      s.index.append(added);
      if (variants >= im.max_variants.load(std::memory_order_relaxed)) {
        const CachedObject* pushed_out = oldest_unread ? oldest_unread : oldest;
        s.index.remove(*pushed_out);
        if (im.release_removed_locked({pushed_out}) == 1) im.variants_replaced.fetch_add(1, std::memory_order_relaxed);
      }
    }
    im.index_tags(links.self, same ? same->store_.self : nullptr);
    if (!s.hfp.empty()) im.hfp_clear_locked(s, key);
    {
      std::lock_guard ev_lock(im.ev.mu);  // stripe -> eviction
      auto& ev = im.ev;
      if (same) im.release_locked(*same);
      ++ev.stats.inserts;
      ++ev.stats.objects;
      ev.stats.bytes += charge;
      ev.stats.head_bytes += links.head_charge;
      ev.stats.overhead_bytes += links.overhead_charge;
      ev.stats.body_bytes += charge - links.head_charge - links.overhead_charge;
      ev.small.push_back(added);
      im.evict_to_fit_locked(victims);
    }
    if (same) victims.push_back(std::move(same->store_.self));  // freed below, with no lock held
  }
  im.remove_from_stripes(victims);
  return true;
}

void Store::resize(uint64_t memory, uint64_t max_object, uint32_t max_variants) {
  Impl& im = *impl_;
  im.max_object.store(max_object, std::memory_order_relaxed);
  im.max_variants.store(std::max<uint32_t>(1, max_variants), std::memory_order_relaxed);
  std::vector<ObjectRef> victims;
  {
    std::lock_guard ev_lock(im.ev.mu);
    im.memory.store(memory, std::memory_order_relaxed);
    im.evict_to_fit_locked(victims);
    // Under the eviction lock: resize() is one call at a time, and stats() reads its memory.
    im.sketch.resize(static_cast<size_t>(memory / kSketchObjectSize));
  }
  im.remove_from_stripes(victims);
}

void Store::mark_hit_for_pass(std::string_view key, Seconds until, Seconds now) {
  Impl& im = *impl_;
  Impl::Stripe& s = im.stripe_for(im.hash_key(key));
  std::lock_guard lock(s.mu);
  std::string k(key);
  const uint64_t seq = ++s.hfp_seq;
  auto [it, added] = s.hfp.try_emplace(k, Impl::HitForPass{until, seq});
  if (added) {
    im.hfp_marks.fetch_add(1, std::memory_order_relaxed);
  } else {
    it->second = {until, seq};
  }
  s.hfp_order.emplace_back(std::move(k), seq);

  // Drop the oldest marks while over the bound, and expired or stale ones at the front.
  while (!s.hfp_order.empty()) {
    auto& [front_key, front_seq] = s.hfp_order.front();
    auto mark = s.hfp.find(front_key);
    const bool stale = mark == s.hfp.end() || mark->second.seq != front_seq;
    if (!stale) {
      if (s.hfp.size() <= kMaxHitForPassPerStripe && mark->second.until > now) break;
      im.hfp_erase_locked(s, mark);
    }
    s.hfp_order.pop_front();
  }
  // Re-marked keys leave stale entries behind the front: keep the queue near the marks' count.
  if (s.hfp_order.size() > 2 * s.hfp.size() + 64) {
    std::erase_if(s.hfp_order, [&](const auto& entry) {
      auto mark = s.hfp.find(entry.first);
      return mark == s.hfp.end() || mark->second.seq != entry.second;
    });
  }
}

size_t Store::purge(std::string_view key, bool soft) {
  Impl& im = *impl_;
  const size_t key_hash = im.hash_key(key);
  Impl::Stripe& s = im.stripe_for(key_hash);
  size_t n = 0;
  {
    std::lock_guard lock(s.mu);
    std::vector<const CachedObject*> removed;
    for (const CachedObject* o = s.index.first(key_hash); o;) {
      const CachedObject* next = o->store_.next_in_bucket;
      if (o->store_.key_hash == key_hash && o->key() == key) {
        if (!soft) {
          s.index.remove(*o);
          removed.push_back(o);
        } else if (!o->store_.dead.load(std::memory_order_relaxed)) {
          o->invalidated.store(true);
          ++n;
        }
      }
      o = next;
    }
    if (!soft) n = im.release_removed_locked(removed);
  }
  im.purged.fetch_add(n, std::memory_order_relaxed);
  return n;
}

size_t Store::purge_tag(std::string_view tag, bool soft) {
  Impl& im = *impl_;
  std::vector<ObjectRef> tagged;
  {
    std::lock_guard lock(im.tags_mu);
    auto it = im.tag_index.find(std::string(tag));
    if (it == im.tag_index.end()) return 0;
    tagged.assign(it->second.begin(), it->second.end());
  }
  // Objects may have left (or died) since the snapshot: each is checked under its stripe mutex.
  size_t n = 0;
  for (const ObjectRef& o : tagged) {
    Impl::Stripe& s = im.stripe_for(o->store_.key_hash);
    std::lock_guard lock(s.mu);
    if (!o->store_.indexed || o->store_.dead.load(std::memory_order_relaxed)) continue;
    if (soft) {
      o->invalidated.store(true);
      ++n;
    } else {
      n += im.remove_entry_locked(s, *o) ? 1 : 0;
    }
  }
  im.purged.fetch_add(n, std::memory_order_relaxed);
  return n;
}

size_t Store::purge_if(const std::function<bool(const CachedObject&)>& match, bool soft) {
  size_t n = 0;
  for (Impl::Stripe& s : impl_->stripes) n += impl_->purge_in_stripe(s, match, soft);
  impl_->purged.fetch_add(n, std::memory_order_relaxed);
  return n;
}

uint64_t Store::ban(Ban ban) {
  Impl& im = *impl_;
  std::lock_guard lock(im.bans_mu);
  const uint64_t epoch = im.ban_epoch.load(std::memory_order_relaxed) + 1;
  auto list = std::make_shared<BanList>(*im.bans);
  list->push_back(std::make_shared<const BanRecord>(BanRecord{epoch, std::move(ban)}));
  im.bans = std::move(list);
  im.ban_epoch.store(epoch, std::memory_order_release);  // after `bans` holds it: see Impl::ban_epoch
  return epoch;
}

size_t Store::sweep_bans(std::chrono::microseconds budget) {
  Impl& im = *impl_;
  Impl::Sweep& sw = im.sweep;
  std::lock_guard sweep_lock(sw.mu);
  const auto start = std::chrono::steady_clock::now();
  // In the budget's own unit: microseconds::max() would overflow as nanoseconds.
  auto spent = [&] {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start) >= budget;
  };
  size_t affected = 0;
  while (true) {
    if (!sw.bans) {
      std::shared_ptr<const BanList> list = im.ban_snapshot();
      if (list->empty()) break;
      sw.bans = std::move(list);
      for (Impl::Cursor& c : sw.cursors) c = {};
    }
    // A slice of each stripe in turn: a worker waiting for one stripe gets it back after at
    // most one slice, and between two slices of its stripe the sweep holds fifteen others.
    bool all_done = false;
    bool out_of_time = false;
    while (!all_done && !out_of_time) {
      all_done = true;
      for (size_t i = 0; i < kStripes && !out_of_time; ++i) {
        if (sw.cursors[i].done) continue;
        all_done = false;
        affected += im.sweep_slice(im.stripes[i], sw.cursors[i], *sw.bans);
        out_of_time = spent();
      }
    }
    if (!all_done) break;
    // Every object stored before the last swept ban has now been checked against the bans up
    // to it; later objects are newer than those bans. Bans recorded meanwhile stay, for the
    // next sweep.
    const uint64_t swept_to = sw.bans->back()->epoch;
    sw.bans.reset();
    {
      std::lock_guard lock(im.bans_mu);
      auto rest = std::make_shared<BanList>();
      for (const auto& ban : *im.bans)
        if (ban->epoch > swept_to) rest->push_back(ban);
      im.bans = std::move(rest);
    }
    if (spent()) break;
  }
  im.purged.fetch_add(affected, std::memory_order_relaxed);
  return affected;
}

bool Store::sweeping() const {
  std::lock_guard lock(impl_->sweep.mu);
  return impl_->sweep.bans != nullptr;
}

size_t Store::active_bans() const {
  return impl_->ban_snapshot()->size();
}

StoreStats Store::stats() const {
  StoreStats st;
  {
    std::lock_guard lock(impl_->ev.mu);
    st = impl_->ev.stats;
    st.sketch_bytes = impl_->sketch.memory();  // resize() changes it under this lock
  }
  st.purged = impl_->purged.load(std::memory_order_relaxed);
  st.bans = active_bans();
  st.hit_for_pass_marks = impl_->hfp_marks.load(std::memory_order_relaxed);
  st.variants_replaced = impl_->variants_replaced.load(std::memory_order_relaxed);
  return st;
}

StoredView stored_view(const CachedObject& object, Seconds now) {
  const bool invalidated = object.invalidated.load(std::memory_order_relaxed);
  StoredView view;
  view.response_cc = object.cc;
  view.lifetime = invalidated ? 0 : object.lifetime;
  view.current_age = object.age.current_age(now);
  if (invalidated) view.current_age = std::max<Seconds>(view.current_age, 1);
  view.grace = object.grace;
  return view;
}

}  // namespace edge::cache
