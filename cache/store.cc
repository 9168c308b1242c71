// cache/store: see store.h.
//
// Layout
//   - kStripes stripes, chosen by std::hash of the key. Each has a mutex and a map
//     key -> entries (one Entry per variant).
//   - One eviction state behind its own mutex: the small and main FIFOs (of entries), the ghost
//     FIFO (of key hashes), the byte and object counts and the statistics.
//
// An Entry is the store's bookkeeping for one stored object: the ObjectRef, its charge, its key
// hash, its read count (0..3) and whether it is dead (no longer counted).
//
// Lock order: a stripe mutex, then (optionally, nested) the eviction mutex. Never the reverse, and
// never two stripes at once. Eviction therefore cannot remove its victims from their stripes
// while it holds the eviction mutex: it marks them dead (which releases their bytes at once),
// and the inserting thread removes them from their stripes after dropping every lock. Until
// then, a dead entry still in a stripe map is skipped by every reader.
//
// Which lock guards what:
//   - Entry::obj: the entry's stripe mutex (reset when the entry leaves its stripe, so a dead
//     shell left in a FIFO does not keep the object's memory).
//   - Entry::dead: written under the eviction mutex (with the stripe mutex also held, or not);
//     atomic because readers check it under the stripe mutex only. An entry is released (bytes,
//     object count) exactly once: by whoever turns `dead` from false to true.
//   - Entry::freq: atomic; bumped by lookups, consumed by eviction.
//   - Entry::in_main, the FIFOs, the ghost and every counter: the eviction mutex.
//
// FIFOs use lazy deletion: purged or replaced entries stay in their FIFO as dead shells and are
// skipped when popped; the FIFOs are compacted when dead shells outnumber live entries.
#include "cache/store.h"

#include <algorithm>
#include <deque>
#include <utility>

namespace edge::cache {

namespace {

constexpr size_t kStripes = 16;
constexpr uint64_t kObjectOverhead = 256;
constexpr uint8_t kMaxFreq = 3;
constexpr size_t kMinGhost = 64;
constexpr size_t kCompactMin = 1024;

size_t hash_key(std::string_view key) { return std::hash<std::string_view>{}(key); }

// The variant string a request selects from an object stored with these Vary names, computed as
// cache::vary_key does it from the response.
std::optional<std::string> variant_for(const CachedObject& object, const http::Headers& request) {
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

uint64_t CachedObject::charge() const {
  uint64_t bytes = kObjectOverhead + key.size() + variant.size() + reason.size() + body.size();
  for (size_t i = 0; i < headers.size(); ++i) bytes += headers.name(i).size() + headers.value(i).size();
  for (const std::string& tag : tags) bytes += tag.size();
  for (const std::string& name : vary_names) bytes += name.size();
  return bytes;
}

struct Store::Impl {
  struct Entry {
    ObjectRef obj;  // guarded by the stripe mutex
    uint64_t charge = 0;
    size_t key_hash = 0;
    std::atomic<uint8_t> freq{0};
    std::atomic<bool> dead{false};  // written under the eviction mutex
    bool in_main = false;           // eviction mutex
  };
  using EntryPtr = std::shared_ptr<Entry>;

  struct Stripe {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<EntryPtr>> map;
  };

  struct Eviction {
    std::mutex mu;
    std::deque<EntryPtr> small, main;
    std::deque<size_t> ghost;
    std::unordered_map<size_t, uint32_t> ghost_count;
    uint64_t small_bytes = 0, main_bytes = 0;
    size_t small_live = 0, main_live = 0;
    StoreStats stats;
  };

  Impl(uint64_t memory_, uint64_t max_object_) : memory(memory_), max_object(max_object_) {}

  const uint64_t memory;
  const uint64_t max_object;
  Stripe stripes[kStripes];
  mutable Eviction ev;

  Stripe& stripe_for(size_t key_hash) { return stripes[key_hash % kStripes]; }

  // ---- under ev.mu ----

  // Marks the entry dead and releases its bytes; false if it already was.
  bool release_locked(Entry& e) {
    if (e.dead.load(std::memory_order_relaxed)) return false;
    e.dead.store(true, std::memory_order_relaxed);
    ev.stats.bytes -= e.charge;
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

  void ghost_add(size_t key_hash) {
    ev.ghost.push_back(key_hash);
    ++ev.ghost_count[key_hash];
    size_t cap = std::max<size_t>(kMinGhost, static_cast<size_t>(ev.stats.objects));
    while (ev.ghost.size() > cap) {
      auto it = ev.ghost_count.find(ev.ghost.front());
      if (--it->second == 0) ev.ghost_count.erase(it);
      ev.ghost.pop_front();
    }
  }

  void evict(EntryPtr e, std::vector<EntryPtr>& victims) {
    release_locked(*e);
    ++ev.stats.evictions;
    victims.push_back(std::move(e));
  }

  // Pops one live entry from the small FIFO: to main if it was read, else evicted into the ghost.
  void evict_small(std::vector<EntryPtr>& victims) {
    while (!ev.small.empty()) {
      EntryPtr e = std::move(ev.small.front());
      ev.small.pop_front();
      if (e->dead.load(std::memory_order_relaxed)) continue;
      if (e->freq.load(std::memory_order_relaxed) > 0) {
        e->in_main = true;
        ev.small_bytes -= e->charge;
        ev.small_live -= 1;
        ev.main_bytes += e->charge;
        ev.main_live += 1;
        ev.main.push_back(std::move(e));
      } else {
        ghost_add(e->key_hash);
        evict(std::move(e), victims);
      }
      return;
    }
  }

  // Pops one live entry from the main FIFO: another round if it was read, else evicted.
  void evict_main(std::vector<EntryPtr>& victims) {
    while (!ev.main.empty()) {
      EntryPtr e = std::move(ev.main.front());
      ev.main.pop_front();
      if (e->dead.load(std::memory_order_relaxed)) continue;
      uint8_t f = e->freq.load(std::memory_order_relaxed);
      if (f > 0) {
        // A concurrent lookup may bump it meanwhile; losing that bump is harmless.
        e->freq.store(static_cast<uint8_t>(f - 1), std::memory_order_relaxed);
        ev.main.push_back(std::move(e));
      } else {
        evict(std::move(e), victims);
      }
      return;
    }
  }

  void evict_to_fit_locked(std::vector<EntryPtr>& victims) {
    const uint64_t small_target = memory / 10;
    while (ev.stats.bytes > memory) {
      if (ev.small_live == 0 && ev.main_live == 0) break;  // cannot happen: bytes > 0
      if ((ev.small_bytes > small_target && ev.small_live > 0) || ev.main_live == 0) {
        evict_small(victims);
      } else {
        evict_main(victims);
      }
    }
    compact(ev.small, ev.small_live);
    compact(ev.main, ev.main_live);
  }

  // ---- stripe side ----

  // Removes evicted entries from their stripes. Called with no lock held.
  void remove_from_stripes(const std::vector<EntryPtr>& victims) {
    for (const EntryPtr& e : victims) {
      Stripe& s = stripe_for(e->key_hash);
      std::lock_guard lock(s.mu);
      if (!e->obj) continue;  // already removed (replaced or purged)
      auto it = s.map.find(e->obj->key);
      if (it != s.map.end()) {
        std::erase(it->second, e);
        if (it->second.empty()) s.map.erase(it);
      }
      e->obj.reset();
    }
  }

  // Removes (or, soft, marks) every live entry for which match(entry) is true, in one stripe.
  template <typename Match>
  size_t purge_in_stripe(Stripe& s, Match&& match, bool soft) {
    std::lock_guard lock(s.mu);
    size_t n = 0;
    if (soft) {
      for (auto& [key, entries] : s.map) {
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
      std::erase_if(entries, [&](const EntryPtr& e) {
        // Dead entries still here are evicted ones awaiting removal: drop them too.
        if (!e->dead.load(std::memory_order_relaxed) && !match(*e->obj)) return false;
        removed.push_back(e);
        return true;
      });
      it = entries.empty() ? s.map.erase(it) : std::next(it);
    }
    if (removed.empty()) return 0;
    {
      std::lock_guard ev_lock(ev.mu);  // stripe -> eviction
      for (const EntryPtr& e : removed) n += release_locked(*e) ? 1 : 0;
    }
    for (const EntryPtr& e : removed) e->obj.reset();
    return n;
  }
};

Store::Store(uint64_t memory, uint64_t max_object) : impl_(std::make_unique<Impl>(memory, max_object)) {}
Store::~Store() = default;

ObjectRef Store::lookup(std::string_view key, const http::Headers& request_headers) {
  Impl::Stripe& s = impl_->stripe_for(hash_key(key));
  std::lock_guard lock(s.mu);
  auto it = s.map.find(std::string(key));
  if (it == s.map.end()) return nullptr;
  for (const Impl::EntryPtr& e : it->second) {
    if (e->dead.load(std::memory_order_relaxed)) continue;
    std::optional<std::string> variant = variant_for(*e->obj, request_headers);
    if (!variant || *variant != e->obj->variant) continue;
    uint8_t f = e->freq.load(std::memory_order_relaxed);
    while (f < kMaxFreq && !e->freq.compare_exchange_weak(f, static_cast<uint8_t>(f + 1), std::memory_order_relaxed)) {
    }
    return e->obj;
  }
  return nullptr;
}

bool Store::insert(ObjectRef object) {
  if (!object) return false;
  Impl& im = *impl_;
  const uint64_t charge = object->charge();
  if (charge > im.max_object || charge > im.memory) {
    std::lock_guard ev_lock(im.ev.mu);
    ++im.ev.stats.refused_too_large;
    return false;
  }
  auto entry = std::make_shared<Impl::Entry>();
  entry->charge = charge;
  entry->key_hash = hash_key(object->key);
  entry->obj = std::move(object);

  std::vector<Impl::EntryPtr> victims;
  {
    Impl::Stripe& s = im.stripe_for(entry->key_hash);
    std::lock_guard lock(s.mu);
    std::vector<Impl::EntryPtr>& entries = s.map[entry->obj->key];
    Impl::EntryPtr old;
    auto same = std::find_if(entries.begin(), entries.end(),
                             [&](const Impl::EntryPtr& e) { return e->obj->variant == entry->obj->variant; });
    if (same != entries.end()) {
      old = std::exchange(*same, entry);
    } else {
      entries.push_back(entry);
    }
    {
      std::lock_guard ev_lock(im.ev.mu);  // stripe -> eviction
      auto& ev = im.ev;
      if (old) im.release_locked(*old);
      ++ev.stats.inserts;
      ++ev.stats.objects;
      ev.stats.bytes += charge;
      if (ev.ghost_count.contains(entry->key_hash)) {
        entry->in_main = true;
        ev.main_bytes += charge;
        ev.main_live += 1;
        ev.main.push_back(entry);
      } else {
        ev.small_bytes += charge;
        ev.small_live += 1;
        ev.small.push_back(entry);
      }
      im.evict_to_fit_locked(victims);
    }
    if (old) old->obj.reset();
  }
  im.remove_from_stripes(victims);
  return true;
}

size_t Store::purge(std::string_view key, bool soft) {
  Impl::Stripe& s = impl_->stripe_for(hash_key(key));
  const std::string k(key);
  size_t n = 0;
  std::vector<Impl::EntryPtr> removed;
  {
    std::lock_guard lock(s.mu);
    auto it = s.map.find(k);
    if (it == s.map.end()) return 0;
    if (soft) {
      for (const Impl::EntryPtr& e : it->second) {
        if (e->dead.load(std::memory_order_relaxed)) continue;
        e->obj->invalidated.store(true);
        ++n;
      }
      return n;
    }
    removed = std::move(it->second);
    s.map.erase(it);
    {
      std::lock_guard ev_lock(impl_->ev.mu);  // stripe -> eviction
      for (const Impl::EntryPtr& e : removed) n += impl_->release_locked(*e) ? 1 : 0;
    }
    for (const Impl::EntryPtr& e : removed) e->obj.reset();
  }
  return n;
}

size_t Store::purge_tag(std::string_view tag, bool soft) {
  auto has_tag = [tag](const CachedObject& o) { return std::find(o.tags.begin(), o.tags.end(), tag) != o.tags.end(); };
  size_t n = 0;
  for (Impl::Stripe& s : impl_->stripes) n += impl_->purge_in_stripe(s, has_tag, soft);
  return n;
}

size_t Store::purge_if(const std::function<bool(const CachedObject&)>& match, bool soft) {
  size_t n = 0;
  for (Impl::Stripe& s : impl_->stripes) n += impl_->purge_in_stripe(s, match, soft);
  return n;
}

StoreStats Store::stats() const {
  std::lock_guard lock(impl_->ev.mu);
  return impl_->ev.stats;
}

}  // namespace edge::cache
