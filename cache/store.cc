// cache/store: see store.h.
//
// Layout
//   - kStripes stripes, chosen by the key's hash (keyed: hash/keyed_hash.h, so clients cannot
//     aim keys at one stripe or one list). Each has a mutex, a map from the key's hash to its
//     entries (one Entry per variant; entries of another key with the same hash, if any, share
//     the list, and readers compare the objects' keys) and the hit-for-pass marks of
//     its keys. The map holds no copy of the key: an object's key is stored once, in it.
//   - One eviction state behind its own mutex: the small (window) and main FIFOs (of entries),
//     the byte and object counts and the statistics.
//   - The frequency sketch: lock-free, counted by every lookup before it takes a stripe lock.
//   - The tag index (tag -> the entries carrying it) behind its own mutex.
//   - The bans: an immutable list, replaced whole (copy on write) under its own mutex, and the
//     epoch (the id of the latest ban).
//
// An Entry is the store's bookkeeping for one stored object: the ObjectRef, its charge, its key
// hash, its read count (0..3), whether it is dead (no longer counted) and the newest ban it has
// been checked against.
//
// Lock order: the sweep mutex (held by sweep_bans() only, around everything it does), then a
// stripe mutex, then (optionally, nested) the eviction mutex, the tag mutex or the
// ban mutex, one of them at a time. The last three are leaves: nothing is locked while one of
// them is held. Never two stripes at once. Eviction therefore cannot remove its victims from
// their stripes while it holds the eviction mutex: it marks them dead (which releases their
// bytes at once), and the inserting thread removes them from their stripes after dropping every
// lock. Until then, a dead entry still in a stripe map is skipped by every reader.
//
// Which lock guards what:
//   - Entry::obj: the entry's stripe mutex. Non-null exactly while the entry is in its stripe's
//     map (reset when it leaves, so a dead shell left in a FIFO or the tag index snapshot of a
//     purge does not keep the object's memory).
//   - Entry::bans_checked: the stripe mutex.
//   - Entry::dead: written under the eviction mutex (with the stripe mutex also held, or not);
//     atomic because readers check it under the stripe mutex only. An entry is released (bytes,
//     object count) exactly once: by whoever turns `dead` from false to true.
//   - Entry::freq: atomic; bumped by lookups, consumed by eviction.
//   - Entry::in_main, the FIFOs and every counter: the eviction mutex.
//   - The tag index: the tag mutex. An entry is indexed when it enters its stripe's map and
//     unindexed when it leaves it, both under the stripe mutex, so the index holds exactly the
//     entries in the maps (dead ones awaiting removal included).
//
// FIFOs use lazy deletion: purged or replaced entries stay in their FIFO as dead shells and are
// skipped when popped; the FIFOs are compacted when dead shells outnumber live entries.
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
constexpr size_t kCompactMin = 1024;
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
  struct Entry {
    ObjectRef obj;  // guarded by the stripe mutex
    uint64_t charge = 0;
    uint32_t head_charge = 0;      // of `charge`: the head's part
    uint32_t overhead_charge = 0;  // and the bookkeeping's; the rest is the body's
    size_t key_hash = 0;
    uint64_t bans_checked = 0;  // stripe mutex: bans up to this epoch no longer concern it
    std::atomic<uint8_t> freq{0};
    std::atomic<bool> dead{false};  // written under the eviction mutex
    bool in_main = false;           // eviction mutex
  };
  using EntryPtr = std::shared_ptr<Entry>;

  // The entries of one key hash, oldest first: nearly always one, kept without a vector's block.
  class Variants {
   public:
    EntryPtr* begin() { return many_ ? many_->data() : &one_; }
    EntryPtr* end() { return many_ ? many_->data() + many_->size() : &one_ + (one_ ? 1 : 0); }
    bool empty() const { return many_ ? many_->empty() : !one_; }
    void push_back(EntryPtr e) {
      if (!many_ && !one_) {
        one_ = std::move(e);
        return;
      }
      if (!many_) {
        many_ = std::make_unique<std::vector<EntryPtr>>();
        many_->push_back(std::move(one_));
      }
      many_->push_back(std::move(e));
    }
    void erase(EntryPtr* at) {
      if (!many_) {
        one_.reset();
        return;
      }
      many_->erase(many_->begin() + (at - many_->data()));
      if (many_->empty()) many_.reset();
    }
    template <typename Pred>
    void erase_if(Pred&& pred) {
      if (many_) {
        std::erase_if(*many_, pred);
        if (many_->empty()) many_.reset();
      } else if (one_ && pred(one_)) {
        one_.reset();
      }
    }

   private:
    EntryPtr one_;  // the only entry, while there is no `many_`
    std::unique_ptr<std::vector<EntryPtr>> many_;
  };

  struct HitForPass {
    Seconds until;
    uint64_t seq;  // which entry of `order` is this mark's
  };

  struct Stripe {
    std::mutex mu;
    // By the key's hash: the entries (variants) of the keys with that hash, which is one key
    // unless two collide. The key itself is the objects' own, not a copy.
    std::unordered_map<size_t, Variants> map;
    std::unordered_map<std::string, HitForPass, hash::KeyedHash, std::equal_to<>> hfp;
    // Marks by age, for the bound; an entry whose seq no longer matches its mark is stale.
    std::deque<std::pair<std::string, uint64_t>> hfp_order;
    uint64_t hfp_seq = 0;
  };

  struct Eviction {
    std::mutex mu;
    std::deque<EntryPtr> small, main;
    uint64_t small_bytes = 0, main_bytes = 0;
    size_t small_live = 0, main_live = 0;
    StoreStats stats;
  };

  Impl(uint64_t memory_, uint64_t max_object_, uint32_t max_variants_, Store::KeyHash key_hash)
      : hash_key(key_hash ? key_hash : keyed_hash_of),
        memory(memory_),
        max_object(max_object_),
        max_variants(std::max<uint32_t>(1, max_variants_)),
        sketch(static_cast<size_t>(memory_ / kSketchObjectSize)) {}

  const Store::KeyHash hash_key;
  // Set at construction and by resize(); atomics because inserts read them without ev.mu.
  std::atomic<uint64_t> memory;
  std::atomic<uint64_t> max_object;
  std::atomic<size_t> max_variants;
  Stripe stripes[kStripes];
  mutable Eviction ev;

  std::mutex tags_mu;
  std::unordered_map<std::string, std::unordered_set<EntryPtr>> tag_index;

  mutable std::mutex bans_mu;
  std::shared_ptr<const BanList> bans = std::make_shared<const BanList>();  // bans_mu
  std::atomic<uint64_t> ban_epoch{0};  // written under bans_mu, after `bans` holds the ban

  // How often each key was looked up lately, held or not: what admission decides by.
  FrequencySketch sketch;
  uint64_t lucky_draws = 0;           // ev.mu
  std::vector<EntryPtr> displaced;  // ev.mu: evict_small()'s, kept for its capacity

  std::atomic<uint64_t> purged{0};
  std::atomic<uint64_t> hfp_marks{0};
  std::atomic<uint64_t> variants_replaced{0};

  Stripe& stripe_for(size_t key_hash) { return stripes[key_hash % kStripes]; }

  // ---- under ev.mu ----

  // Marks the entry dead and releases its bytes; false if it already was.
  bool release_locked(Entry& e) {
    if (e.dead.load(std::memory_order_relaxed)) return false;
    e.dead.store(true, std::memory_order_relaxed);
    ev.stats.bytes -= e.charge;
    ev.stats.head_bytes -= e.head_charge;
    ev.stats.overhead_bytes -= e.overhead_charge;
    ev.stats.body_bytes -= e.charge - e.head_charge - e.overhead_charge;
    ev.stats.objects -= 1;
    if (e.in_main) {
      ev.main_bytes -= e.charge;
      ev.main_live -= 1;
    } else {
      ev.small_bytes -= e.charge;
      ev.small_live -= 1;
    }
    return true;
  }

  static void compact(std::deque<EntryPtr>& fifo, size_t live) {
    if (fifo.size() < kCompactMin || fifo.size() - live < live) return;
    std::erase_if(fifo, [](const EntryPtr& e) { return e->dead.load(std::memory_order_relaxed); });
  }

  void evict(EntryPtr e, std::vector<EntryPtr>& victims) {
    release_locked(*e);
    ++ev.stats.evictions;
    victims.push_back(std::move(e));
  }

  // Pops the first live entry of `fifo`, or null.
  static EntryPtr pop_live(std::deque<EntryPtr>& fifo) {
    while (!fifo.empty()) {
      EntryPtr e = std::move(fifo.front());
      fifo.pop_front();
      if (!e->dead.load(std::memory_order_relaxed)) return e;
    }
    return nullptr;
  }

  // The entry evict_main() would take next, left at main's front: entries read since their last
  // pass are sent round again first, their count lowered. Null when main holds nothing live.
  Entry* main_victim() {
    while (EntryPtr e = pop_live(ev.main)) {
      uint8_t f = e->freq.load(std::memory_order_relaxed);
      if (f == 0) {
        ev.main.push_front(std::move(e));
        return ev.main.front().get();
      }
      // A concurrent lookup may bump it meanwhile; losing that bump is harmless.
      e->freq.store(static_cast<uint8_t>(f - 1), std::memory_order_relaxed);
      ev.main.push_back(std::move(e));
    }
    return nullptr;
  }

  // Main's unread live entries from its front (after main_victim() sent the read ones round)
  // until they free `room` bytes, into `displaced`; at most kMaxDisplaced of them, among at most
  // 4 x kMaxDisplaced entries looked at (read and dead ones are passed over), so the work under
  // the eviction lock stays bounded however many objects main holds. False when those do not
  // free enough.
  bool victims_for(uint64_t room, std::vector<EntryPtr>& displaced) {
    displaced.clear();
    if (!main_victim()) return false;
    uint64_t freed = 0;
    const size_t looked_at = std::min(ev.main.size(), 4 * kMaxDisplaced);
    for (size_t i = 0; i < looked_at && displaced.size() < kMaxDisplaced; ++i) {
      const EntryPtr& e = ev.main[i];
      if (e->dead.load(std::memory_order_relaxed) || e->freq.load(std::memory_order_relaxed) > 0) continue;
      displaced.push_back(e);
      freed += e->charge;
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
  bool admitted(const Entry& candidate, const std::vector<EntryPtr>& displaced) {
    const uint32_t wanted = sketch.estimate(candidate.key_hash);
    uint64_t held = 0, freed = 0;
    for (const EntryPtr& e : displaced) {
      held += sketch.estimate(e->key_hash);
      freed += e->charge;
    }
    if (wanted > held) return true;
    if (wanted >= 2 && freed >= 2 * candidate.charge &&
        double(wanted) * double(freed) > double(held) * double(candidate.charge))  // no overflow
      return true;
    if (wanted < kLuckyCount) return false;
    return (++lucky_draws * 0x9e3779b97f4a7c15ULL) >> 57 == 0;
  }

  void to_main(EntryPtr e) {
    e->in_main = true;
    ev.small_bytes -= e->charge;
    ev.small_live -= 1;
    ev.main_bytes += e->charge;
    ev.main_live += 1;
    ev.main.push_back(std::move(e));
  }

  // Takes one live entry out of the window: into main if main has room for it or it wins
  // admission against the victims it would displace (which are then evicted), else evicted.
  void evict_small(std::vector<EntryPtr>& victims, uint64_t main_room) {
    EntryPtr candidate = pop_live(ev.small);
    if (!candidate) return;
    if (ev.main_bytes + candidate->charge > main_room) {
      const uint64_t room = ev.main_bytes + candidate->charge - main_room;
      if (victims_for(room, displaced) && admitted(*candidate, displaced)) {
        for (EntryPtr& e : displaced) evict(std::move(e), victims);
      } else if (!displaced.empty()) {
        displaced.clear();
        ++ev.stats.admission_refusals;
        return evict(std::move(candidate), victims);
      }
    }
    to_main(std::move(candidate));
  }

  // Evicts main's victim (see main_victim()).
  void evict_main(std::vector<EntryPtr>& victims) {
    if (main_victim()) evict(pop_live(ev.main), victims);
  }

  void evict_to_fit_locked(std::vector<EntryPtr>& victims) {
    const uint64_t limit = memory.load(std::memory_order_relaxed);
    const uint64_t small_target = limit / kWindowShare;
    while (ev.stats.bytes > limit) {
      if (ev.small_live == 0 && ev.main_live == 0) break;  // cannot happen: bytes > 0
      if ((ev.small_bytes > small_target && ev.small_live > 0) || ev.main_live == 0) {
        evict_small(victims, limit - small_target);
      } else {
        evict_main(victims);
      }
    }
    compact(ev.small, ev.small_live);
    compact(ev.main, ev.main_live);
  }

  // ---- tag index: under the entries' stripe mutex, takes tags_mu ----

  void index_tags(const EntryPtr& added, const EntryPtr& removed) {
    const bool add = added && !added->obj->tags().empty();
    const bool remove = removed && removed->obj && !removed->obj->tags().empty();
    if (!add && !remove) return;  // most objects have no tags: no global lock for them
    std::lock_guard lock(tags_mu);  // stripe -> tags
    if (remove) {
      for (const std::string& tag : removed->obj->tags()) {
        auto it = tag_index.find(tag);
        if (it == tag_index.end()) continue;
        it->second.erase(removed);
        if (it->second.empty()) tag_index.erase(it);
      }
    }
    if (add)
      for (const std::string& tag : added->obj->tags()) tag_index[tag].insert(added);
  }

  // The entry leaves its stripe's map (the caller erases it from the map): unindexed, its object
  // let go. Under the stripe mutex.
  void detach_locked(const EntryPtr& e) {
    index_tags(nullptr, e);
    e->obj.reset();
  }

  // ---- stripe side ----

  // Removes evicted entries from their stripes. Called with no lock held.
  void remove_from_stripes(const std::vector<EntryPtr>& victims) {
    for (const EntryPtr& e : victims) {
      Stripe& s = stripe_for(e->key_hash);
      std::lock_guard lock(s.mu);
      if (!e->obj) continue;  // already removed (replaced or purged)
      auto it = s.map.find(e->key_hash);
      if (it != s.map.end()) {
        it->second.erase_if([&](const EntryPtr& listed) { return listed == e; });
        if (it->second.empty()) s.map.erase(it);
      }
      detach_locked(e);
    }
  }

  // Releases entries already erased from stripe `s`'s map, then detaches them; under s.mu.
  // Returns how many were live.
  size_t release_removed_locked(const std::vector<EntryPtr>& removed) {
    if (removed.empty()) return 0;
    size_t n = 0;
    {
      std::lock_guard ev_lock(ev.mu);  // stripe -> eviction
      for (const EntryPtr& e : removed) n += release_locked(*e) ? 1 : 0;
    }
    for (const EntryPtr& e : removed) detach_locked(e);
    return n;
  }

  // Removes one live entry from its stripe (whose mutex the caller holds); true if it was live.
  bool remove_entry_locked(Stripe& s, const EntryPtr& e) {
    if (!e->obj) return false;
    auto it = s.map.find(e->key_hash);
    if (it != s.map.end()) {
      it->second.erase_if([&](const EntryPtr& listed) { return listed == e; });
      if (it->second.empty()) s.map.erase(it);
    }
    return release_removed_locked({e}) == 1;
  }

  // Removes (or, soft, marks) every live entry for which match(entry) is true, in one stripe.
  template <typename Match>
  size_t purge_in_stripe(Stripe& s, Match&& match, bool soft) {
    std::lock_guard lock(s.mu);
    size_t n = 0;
    if (soft) {
      for (auto& [key_hash, entries] : s.map) {
        for (const EntryPtr& e : entries) {
          if (e->dead.load(std::memory_order_relaxed) || !match(*e->obj)) continue;
          e->obj->invalidated.store(true);
          ++n;
        }
      }
      return n;
    }
    std::vector<EntryPtr> removed;
    for (auto it = s.map.begin(); it != s.map.end();) {
      auto& entries = it->second;
      entries.erase_if([&](const EntryPtr& e) {
        // Dead entries still here are evicted ones awaiting removal: drop them too.
        if (!e->dead.load(std::memory_order_relaxed) && !match(*e->obj)) return false;
        removed.push_back(e);
        return true;
      });
      it = entries.empty() ? s.map.erase(it) : std::next(it);
    }
    return release_removed_locked(removed);
  }

  // ---- bans ----

  std::shared_ptr<const BanList> ban_snapshot() const {
    std::lock_guard lock(bans_mu);  // (stripe ->) bans
    return bans;
  }

  enum class BanVerdict { kKeep, kRemove };

  // Applies to a live entry the bans of `list` it has not been checked against; a soft ban marks
  // it (counted in `marked` when it was not yet). Under the entry's stripe mutex. kRemove: a hard
  // ban matched, the caller removes it.
  BanVerdict apply_bans_locked(Entry& e, const BanList& list, size_t& marked) {
    if (list.empty() || e.bans_checked >= list.back()->epoch) return BanVerdict::kKeep;
    const CachedObject& o = *e.obj;
    // Bans are oldest first: the ones the entry has not seen are a suffix.
    auto first = std::upper_bound(list.begin(), list.end(), e.bans_checked,
                                  [](uint64_t epoch, const auto& ban) { return epoch < ban->epoch; });
    for (auto it = first; it != list.end(); ++it) {
      const BanRecord& ban = **it;
      if (!ban.matches(o)) continue;
      if (!ban.ban.soft) return BanVerdict::kRemove;
      if (!o.invalidated.exchange(true)) ++marked;
    }
    e.bans_checked = list.back()->epoch;
    return BanVerdict::kKeep;
  }

  // ---- the ban sweep ----

  // Where the sweep is in one stripe: its map's buckets are visited in order. Inserting may
  // rehash the map between two slices and move entries across buckets; the stripe is then
  // visited again from its first bucket (entries already checked cost a comparison).
  struct Cursor {
    size_t bucket = 0;
    size_t bucket_count = 0;  // the map's when `bucket` was set
    bool done = false;
  };
  struct Sweep {
    mutable std::mutex mu;                // one sweeper at a time; first in the lock order
    std::shared_ptr<const BanList> bans;  // the bans this sweep applies; null: none under way
    Cursor cursors[kStripes];
  } sweep;

  // Applies `list` to the entries of the next buckets of `s`, under s.mu, for at most
  // kSweepSliceEntries entries or kSweepSliceHold, whichever comes first (a bucket is never
  // split). Returns the objects removed or marked.
  size_t sweep_slice(Stripe& s, Cursor& cursor, const BanList& list) {
    std::lock_guard lock(s.mu);
    const auto start = std::chrono::steady_clock::now();
    if (cursor.bucket_count != s.map.bucket_count()) {
      cursor.bucket = 0;
      cursor.bucket_count = s.map.bucket_count();
    }
    size_t affected = 0;
    size_t examined = 0;
    std::vector<EntryPtr> removed;
    std::vector<size_t> emptied;
    while (cursor.bucket < cursor.bucket_count) {
      for (auto it = s.map.begin(cursor.bucket); it != s.map.end(cursor.bucket); ++it) {
        it->second.erase_if([&](const EntryPtr& e) {
          ++examined;
          if (e->dead.load(std::memory_order_relaxed)) return false;  // eviction removes it
          if (apply_bans_locked(*e, list, affected) == BanVerdict::kKeep) return false;
          removed.push_back(e);
          return true;
        });
        if (it->second.empty()) emptied.push_back(it->first);
      }
      // Erasing never rehashes: the cursor stays valid.
      for (size_t key_hash : emptied) s.map.erase(key_hash);
      emptied.clear();
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

// What the heap holds for a stored object, as the heap counts it (http/heap.h): the object, the
// store's entry and its places in the index and a FIFO, then what each part holds beside them.
// A body or encoding shared with another object is counted with each.
CachedObject::Charge CachedObject::charge_parts() const {
  // The object, and the store's entry, index node (and its bucket) and FIFO slot. (A key with
  // several variants also holds a vector of their entries: 16 bytes each, not counted.)
  using Entry = Store::Impl::Entry;
  using EntryPtr = Store::Impl::EntryPtr;
  constexpr uint64_t kFixed = http::shared_object_bytes<CachedObject>() + http::shared_object_bytes<Entry>() +
                              http::heap_bytes(sizeof(void*) + sizeof(std::pair<const size_t, Store::Impl::Variants>)) +
                              sizeof(void*) + sizeof(EntryPtr);
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
  auto it = s.map.find(key_hash);
  if (it != s.map.end()) {
    // Borrowed under the stripe's lock: no reference count is touched but the result's.
    const Impl::EntryPtr* found = nullptr;
    // The request's variant is worked out once per set of Vary names, not once per variant.
    const std::vector<std::string>* names = nullptr;
    std::optional<std::string> wanted;
    for (const Impl::EntryPtr& e : it->second) {
      if (e->dead.load(std::memory_order_relaxed) || e->obj->key() != key) continue;
      if (!names || e->obj->vary_names != *names) {
        names = &e->obj->vary_names.get();
        std::optional<std::string> vary = vary_part_for(*e->obj, request_headers);
        wanted = vary ? std::optional(variant_string(*vary, variant_extra)) : std::nullopt;
      }
      if (wanted && e->obj->variant == *wanted) {
        found = &e;
        break;
      }
    }
    if (found && (*found)->bans_checked < im.ban_epoch.load(std::memory_order_acquire)) {
      size_t marked = 0;
      Impl::EntryPtr entry = *found;  // removing it changes the list `found` points into
      if (im.apply_bans_locked(*entry, *im.ban_snapshot(), marked) == Impl::BanVerdict::kRemove) {
        if (im.remove_entry_locked(s, entry)) ++marked;
        found = nullptr;  // `it` may be gone with it
      }
      if (marked > 0) im.purged.fetch_add(marked, std::memory_order_relaxed);
    }
    if (found) {
      Impl::Entry& entry = **found;
      uint8_t f = entry.freq.load(std::memory_order_relaxed);
      while (f < kMaxFreq &&
             !entry.freq.compare_exchange_weak(f, static_cast<uint8_t>(f + 1), std::memory_order_relaxed)) {
      }
      result.object = entry.obj;
      return result;
    }
  }
  if (!s.hfp.empty()) result.hit_for_pass = im.hfp_marked_locked(s, key, now ? *now : std::time(nullptr));
  return result;
}

bool Store::insert(std::shared_ptr<CachedObject> object) { return insert_replacing(std::move(object), nullptr); }

bool Store::replace(const CachedObject& current, std::shared_ptr<CachedObject> object) {
  return insert_replacing(std::move(object), &current);
}

bool Store::insert_replacing(std::shared_ptr<CachedObject> object, const CachedObject* current) {
  if (!object) return false;
  Impl& im = *impl_;
  object->headers.shrink_to_fit();  // kept for as long as the object: no slack from its growth
  const CachedObject::Charge parts = object->charge_parts();
  const uint64_t charge = parts.total();
  if (charge > im.max_object.load(std::memory_order_relaxed) || charge > im.memory.load(std::memory_order_relaxed)) {
    std::lock_guard ev_lock(im.ev.mu);
    ++im.ev.stats.refused_too_large;
    return false;
  }
  auto entry = std::make_shared<Impl::Entry>();
  entry->charge = charge;
  // Heads and keys are bounded far below 4 GB (the parser's and the key's limits).
  entry->head_charge = static_cast<uint32_t>(parts.head);
  entry->overhead_charge = static_cast<uint32_t>(parts.overhead);
  entry->key_hash = im.hash_key(object->key());

  std::vector<Impl::EntryPtr> victims;
  {
    Impl::Stripe& s = im.stripe_for(entry->key_hash);
    std::lock_guard lock(s.mu);
    Impl::Variants* listed = nullptr;
    if (current) {
      // Only in place of `current`, as it is now: with its bans and soft purge carried over, so
      // what befell the object meanwhile befalls its replacement.
      auto found = s.map.find(entry->key_hash);
      if (found == s.map.end()) return false;
      listed = &found->second;
      auto at = std::find_if(listed->begin(), listed->end(),
                             [&](const Impl::EntryPtr& e) { return e->obj.get() == current; });
      if (at == listed->end()) return false;
      object->ban_epoch = current->ban_epoch;
      entry->bans_checked = (*at)->bans_checked;
      object->invalidated.store(current->invalidated.load(std::memory_order_relaxed), std::memory_order_relaxed);
    } else {
      // Read under the stripe mutex: see "Bans" above.
      object->ban_epoch = im.ban_epoch.load(std::memory_order_acquire);
      entry->bans_checked = object->ban_epoch;
    }
    entry->obj = std::move(object);
    Impl::Variants& entries = listed ? *listed : s.map[entry->key_hash];
    const std::string_view key = entry->obj->key();
    Impl::EntryPtr old;
    auto same = std::find_if(entries.begin(), entries.end(), [&](const Impl::EntryPtr& e) {
      return e->obj->variant == entry->obj->variant && e->obj->key() == key;
    });
    Impl::EntryPtr pushed_out;
    if (same != entries.end()) {
      old = std::exchange(*same, entry);
    } else {
      entries.push_back(entry);
      const auto others = entries.end() - 1;
      const auto of_key = [&](const Impl::EntryPtr& e) { return e->obj->key() == key; };
      if (static_cast<size_t>(std::count_if(entries.begin(), others, of_key)) >=
          im.max_variants.load(std::memory_order_relaxed)) {
        // Oldest first: a dead one awaiting removal, else one nobody read, else the oldest.
        auto victim = std::find_if(entries.begin(), others, [&](const Impl::EntryPtr& e) {
          return of_key(e) &&
                 (e->dead.load(std::memory_order_relaxed) || e->freq.load(std::memory_order_relaxed) == 0);
        });
        if (victim == others) victim = std::find_if(entries.begin(), others, of_key);
        pushed_out = *victim;
        entries.erase(victim);
      }
    }
    if (pushed_out && im.release_removed_locked({pushed_out}) == 1)
      im.variants_replaced.fetch_add(1, std::memory_order_relaxed);
    im.index_tags(entry, old);
    if (!s.hfp.empty()) im.hfp_clear_locked(s, entry->obj->key());
    {
      std::lock_guard ev_lock(im.ev.mu);  // stripe -> eviction
      auto& ev = im.ev;
      if (old) im.release_locked(*old);
      ++ev.stats.inserts;
      ++ev.stats.objects;
      ev.stats.bytes += charge;
      ev.stats.head_bytes += entry->head_charge;
      ev.stats.overhead_bytes += entry->overhead_charge;
      ev.stats.body_bytes += charge - entry->head_charge - entry->overhead_charge;
      ev.small_bytes += charge;
      ev.small_live += 1;
      ev.small.push_back(entry);
      im.evict_to_fit_locked(victims);
    }
    if (old) old->obj.reset();  // already unindexed above
  }
  im.remove_from_stripes(victims);
  return true;
}

void Store::resize(uint64_t memory, uint64_t max_object, uint32_t max_variants) {
  Impl& im = *impl_;
  im.max_object.store(max_object, std::memory_order_relaxed);
  im.max_variants.store(std::max<uint32_t>(1, max_variants), std::memory_order_relaxed);
  std::vector<Impl::EntryPtr> victims;
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
    auto it = s.map.find(key_hash);
    if (it == s.map.end()) return 0;
    if (soft) {
      for (const Impl::EntryPtr& e : it->second) {
        if (e->dead.load(std::memory_order_relaxed) || e->obj->key() != key) continue;
        e->obj->invalidated.store(true);
        ++n;
      }
    } else {
      std::vector<Impl::EntryPtr> removed;
      it->second.erase_if([&](const Impl::EntryPtr& e) {
        if (e->obj->key() != key) return false;
        removed.push_back(e);
        return true;
      });
      if (it->second.empty()) s.map.erase(it);
      n = im.release_removed_locked(removed);
    }
  }
  im.purged.fetch_add(n, std::memory_order_relaxed);
  return n;
}

size_t Store::purge_tag(std::string_view tag, bool soft) {
  Impl& im = *impl_;
  std::vector<Impl::EntryPtr> tagged;
  {
    std::lock_guard lock(im.tags_mu);
    auto it = im.tag_index.find(std::string(tag));
    if (it == im.tag_index.end()) return 0;
    tagged.assign(it->second.begin(), it->second.end());
  }
  // Entries may have left (or died) since the snapshot: each is checked under its stripe mutex.
  size_t n = 0;
  for (const Impl::EntryPtr& e : tagged) {
    Impl::Stripe& s = im.stripe_for(e->key_hash);
    std::lock_guard lock(s.mu);
    if (!e->obj || e->dead.load(std::memory_order_relaxed)) continue;
    if (soft) {
      e->obj->invalidated.store(true);
      ++n;
    } else {
      n += im.remove_entry_locked(s, e) ? 1 : 0;
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
