#include "top/heavy_hitters.h"

#include <algorithm>
#include <utility>

namespace edge::top {

SpaceSaving::SpaceSaving(size_t capacity) : capacity_(std::max<size_t>(1, capacity)) {
  heap_.reserve(capacity_);
  index_.reserve(capacity_);
}

SpaceSaving::SpaceSaving(const SpaceSaving& other) : SpaceSaving(other.capacity_) {
  total_ = other.total_;
  for (const Slot& slot : other.heap_) {
    auto [it, inserted] = index_.emplace(slot.entry->first, heap_.size());
    heap_.push_back(Slot{&*it, slot.count, slot.error});
  }
}

void SpaceSaving::clear() {
  heap_.clear();
  index_.clear();
  total_ = 0;
}

void SpaceSaving::swap_slots(size_t a, size_t b) {
  std::swap(heap_[a], heap_[b]);
  heap_[a].entry->second = a;
  heap_[b].entry->second = b;
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

void SpaceSaving::add(const HashedKey& key, uint64_t weight) {
  total_ += weight;
  if (auto it = index_.find(key); it != index_.end()) {
    heap_[it->second].count += weight;
    return sift_down(it->second);
  }
  if (!full()) {
    // A new slot may weigh less than its parent: it moves up.
    size_t i = heap_.size();
    auto [it, inserted] = index_.emplace(std::string(key.text), i);
    heap_.push_back(Slot{&*it, weight, 0});
    while (i > 0) {
      const size_t parent = (i - 1) / 2;
      if (heap_[parent].count <= heap_[i].count) break;
      swap_slots(i, parent);
      i = parent;
    }
    return;
  }
  Slot& smallest = heap_.front();
  Index::node_type node = index_.extract(smallest.entry->first);
  node.key().assign(key.text);  // keeps the string's capacity when it fits
  node.mapped() = 0;
  smallest.entry = &*index_.insert(std::move(node)).position;
  smallest.error = smallest.count;
  smallest.count += weight;
  sift_down(0);
}

std::vector<Hitter> SpaceSaving::hitters() const {
  std::vector<Hitter> out;
  out.reserve(heap_.size());
  for (const Slot& slot : heap_) out.push_back({slot.entry->first, slot.count, slot.error});
  return out;
}

Ranking ranking_of(const SpaceSaving& summary) {
  Ranking out{summary.hitters(), summary.floor(), summary.total()};
  std::sort(out.hitters.begin(), out.hitters.end(), [](const Hitter& a, const Hitter& b) {
    return a.count != b.count ? a.count > b.count : a.key < b.key;
  });
  return out;
}

Ranking merge_rankings(const std::vector<Ranking>& rankings, size_t n) {
  struct Merged {
    Hitter hitter;
    uint64_t floors_present = 0;  // the floors of the rankings that show the key
  };
  std::unordered_map<std::string, Merged> merged;
  Ranking out;
  for (const Ranking& ranking : rankings) {
    out.total += ranking.total;
    out.floor += ranking.floor;
    for (const Hitter& hitter : ranking.hitters) {
      Merged& into = merged[hitter.key];
      into.hitter.count += hitter.count;
      into.hitter.error += hitter.error;
      into.floors_present += ranking.floor;
    }
  }
  out.hitters.reserve(merged.size());
  for (auto& [key, entry] : merged) {
    Hitter hitter = entry.hitter;
    hitter.key = key;
    hitter.count += out.floor - entry.floors_present;
    hitter.error += out.floor - entry.floors_present;
    out.hitters.push_back(std::move(hitter));
  }
  std::sort(out.hitters.begin(), out.hitters.end(), [](const Hitter& a, const Hitter& b) {
    return a.count != b.count ? a.count > b.count : a.key < b.key;
  });
  if (out.hitters.size() > n) {
    // What is cut off may come back in a later merge: the floor covers it.
    out.floor = std::max(out.floor, out.hitters[n].count);
    out.hitters.resize(n);
  }
  return out;
}

std::vector<Hitter> merge(const std::vector<const SpaceSaving*>& summaries, size_t n, uint64_t* total) {
  std::vector<Ranking> rankings;
  rankings.reserve(summaries.size());
  for (const SpaceSaving* summary : summaries) rankings.push_back(ranking_of(*summary));
  Ranking merged = merge_rankings(rankings, n);
  if (total) *total = merged.total;
  return std::move(merged.hitters);
}

}  // namespace edge::top
