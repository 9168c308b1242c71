#include "top/heavy_hitters.h"

#include <algorithm>
#include <utility>

namespace edge::top {

SpaceSaving::SpaceSaving(size_t capacity) : capacity_(std::max<size_t>(1, capacity)) {
  heap_.reserve(capacity_);
  where_.reserve(capacity_);
}

void SpaceSaving::clear() {
  heap_.clear();
  where_.clear();
  total_ = 0;
}

void SpaceSaving::swap_slots(size_t a, size_t b) {
  std::swap(heap_[a], heap_[b]);
  where_[heap_[a].key] = a;
  where_[heap_[b].key] = b;
}

// Counts only grow, so a slot only ever moves down.
void SpaceSaving::sift_down(size_t i) {
  for (;;) {
    const size_t left = 2 * i + 1, right = left + 1;
    size_t smallest = i;
    if (left < heap_.size() && heap_[left].count < heap_[smallest].count) smallest = left;
    if (right < heap_.size() && heap_[right].count < heap_[smallest].count) smallest = right;
    if (smallest == i) return;
    swap_slots(i, smallest);
    i = smallest;
  }
}

void SpaceSaving::add(std::string_view key, uint64_t weight) {
  total_ += weight;
  if (auto it = where_.find(key); it != where_.end()) {
    heap_[it->second].count += weight;
    return sift_down(it->second);
  }
  if (!full()) {
    // A new slot may weigh less than its parent: it moves up.
    heap_.push_back(Slot{std::string(key), weight, 0});
    size_t i = heap_.size() - 1;
    where_.emplace(heap_.back().key, i);
    while (i > 0) {
      const size_t parent = (i - 1) / 2;
      if (heap_[parent].count <= heap_[i].count) break;
      swap_slots(i, parent);
      i = parent;
    }
    return;
  }
  Slot& smallest = heap_.front();
  where_.erase(smallest.key);
  smallest.error = smallest.count;
  smallest.count += weight;
  smallest.key.assign(key);  // keeps the string's capacity when it fits
  where_.emplace(smallest.key, 0);
  sift_down(0);
}

std::vector<Hitter> SpaceSaving::hitters() const {
  std::vector<Hitter> out;
  out.reserve(heap_.size());
  for (const Slot& slot : heap_) out.push_back({slot.key, slot.count, slot.error});
  return out;
}

std::vector<Hitter> merge(const std::vector<const SpaceSaving*>& summaries, size_t n, uint64_t* total) {
  struct Merged {
    Hitter hitter;
    uint64_t floors_present = 0;  // the floors of the full summaries that hold the key
  };
  std::unordered_map<std::string, Merged> merged;
  uint64_t sum = 0;
  uint64_t floors = 0;  // a key absent from a full summary may have had up to its floor there
  for (const SpaceSaving* summary : summaries) {
    sum += summary->total();
    floors += summary->floor();
    for (Hitter& hitter : summary->hitters()) {
      Merged& into = merged[hitter.key];
      into.hitter.count += hitter.count;
      into.hitter.error += hitter.error;
      into.floors_present += summary->floor();
    }
  }
  std::vector<Hitter> out;
  out.reserve(merged.size());
  for (auto& [key, entry] : merged) {
    Hitter hitter = entry.hitter;
    hitter.key = key;
    hitter.count += floors - entry.floors_present;
    hitter.error += floors - entry.floors_present;
    out.push_back(std::move(hitter));
  }
  std::sort(out.begin(), out.end(), [](const Hitter& a, const Hitter& b) {
    return a.count != b.count ? a.count > b.count : a.key < b.key;
  });
  if (out.size() > n) out.resize(n);
  if (total) *total = sum;
  return out;
}

}  // namespace edge::top
