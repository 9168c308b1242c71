// top/heavy_hitters: the most frequent (or heaviest) keys of a stream in bounded memory.
//
// SpaceSaving holds at most `capacity` keys, each with a count and an error. A key it holds has
// its weight added; a new key, once it is full, takes the place of the key with the smallest
// count and starts from that count, which becomes its error (Metwally, Agrawal and El Abbadi's
// Space-Saving, with weights). So every count is an upper bound of the key's true weight and
// count - error a lower bound; a key whose true weight exceeds total/capacity is always held, and
// the heaviest keys' counts are exact while they never left. One add is a hash lookup and a
// sift in a min-heap: O(log capacity), no allocation once the summary is full (the evicted key's
// map node is reused for the new one).
//
// merge() folds several summaries (the workers', the time slots of a window) into a ranking:
// counts add up; a key absent from a full summary may have had up to that summary's smallest
// count there, which goes to its error.
//
// Not thread-safe: one owner (a worker) writes; readers get copies from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hash/keyed_hash.h"

namespace edge::top {

struct Hitter {
  std::string key;
  uint64_t count = 0;  // an upper bound of the key's weight
  uint64_t error = 0;  // count - error is a lower bound
};

// A key with its hash computed once, for adding it to several summaries.
struct HashedKey {
  explicit HashedKey(std::string_view key) : text(key), hash(static_cast<size_t>(edge::hash::keyed_hash(key))) {}
  std::string_view text;
  size_t hash;
};

class SpaceSaving {
 public:
  explicit SpaceSaving(size_t capacity);
  SpaceSaving(const SpaceSaving& other);
  SpaceSaving& operator=(const SpaceSaving&) = delete;
  SpaceSaving(SpaceSaving&&) = default;
  SpaceSaving& operator=(SpaceSaving&&) = default;

  void add(const HashedKey& key, uint64_t weight = 1);
  void add(std::string_view key, uint64_t weight = 1) { add(HashedKey(key), weight); }
  void clear();

  size_t capacity() const { return capacity_; }
  size_t size() const { return heap_.size(); }
  bool full() const { return heap_.size() >= capacity_; }
  uint64_t total() const { return total_; }  // every weight added since clear()
  // The smallest count held; 0 while not full (a key not held then has weight 0).
  uint64_t floor() const { return full() ? heap_.front().count : 0; }
  std::vector<Hitter> hitters() const;  // in no particular order

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return static_cast<size_t>(edge::hash::keyed_hash(s)); }
    size_t operator()(const HashedKey& k) const { return k.hash; }
  };
  struct Equal {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
    bool operator()(const HashedKey& a, std::string_view b) const { return a.text == b; }
    bool operator()(std::string_view a, const HashedKey& b) const { return a == b.text; }
  };
  using Index = std::unordered_map<std::string, size_t, Hash, Equal>;  // key -> its place in heap_
  struct Slot {
    // The key and this slot's place, in index_: map nodes never move, so a slot that moves in
    // the heap updates its place without hashing its key again.
    Index::value_type* entry = nullptr;
    uint64_t count = 0;
    uint64_t error = 0;
  };
  void sift_down(size_t i);
  void swap_slots(size_t a, size_t b);

  size_t capacity_;
  uint64_t total_ = 0;
  std::vector<Slot> heap_;  // min-heap by count
  Index index_;
};

// A summary's content as a value, to be carried to another thread and merged there: its keys,
// the most a key it does not show may weigh (its floor), and its total.
struct Ranking {
  std::vector<Hitter> hitters;  // heaviest first (ties by key)
  uint64_t floor = 0;
  uint64_t total = 0;
};
Ranking ranking_of(const SpaceSaving& summary);
// Several rankings together: counts add up, a key absent from one gets that one's floor added
// to its count and error; the heaviest `n` are kept, and the result's floor is the sum of the
// floors (what a key shown by none may weigh).
Ranking merge_rankings(const std::vector<Ranking>& rankings, size_t n);
// The same for summaries.
std::vector<Hitter> merge(const std::vector<const SpaceSaving*>& summaries, size_t n, uint64_t* total = nullptr);

}  // namespace edge::top
