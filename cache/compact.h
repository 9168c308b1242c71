// cache/compact: containers a stored object holds many of, one pointer wide each. A store holds
// tens of thousands of objects, and most of their strings and lists are short or empty: a
// std::string takes 32 bytes even when empty, a std::vector 24.
//
// - PackedString: text in one heap block, its length first. Empty holds no block. Read as a
//   std::string_view; replaced whole, never edited in place.
// - SparseVector<T>: a std::vector<T> behind a pointer, allocated only while it has elements.
//   Read as a const std::vector<T>& (an empty one when there is none); changed by assigning a
//   whole vector.
//
// Both are values: copies are deep, moves steal. Not thread-safe beyond const reads, like the
// standard containers. memory() is what they hold on the heap, as http/heap.h counts it.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/heap.h"

namespace edge::cache {

class PackedString {
 public:
  PackedString() = default;
  PackedString(std::string_view text) { assign(text); }  // implicit: a string stands in for it
  PackedString(const PackedString& other) { assign(other); }
  PackedString(PackedString&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  PackedString& operator=(const PackedString& other) {
    if (this != &other) assign(other);
    return *this;
  }
  PackedString& operator=(PackedString&& other) noexcept {
    std::swap(block_, other.block_);
    return *this;
  }
  PackedString& operator=(std::string_view text) {
    assign(text);
    return *this;
  }
  ~PackedString() { delete[] block_; }

  std::string_view view() const {
    if (!block_) return {};
    uint32_t size;
    std::memcpy(&size, block_, sizeof size);
    return {block_ + sizeof size, size};
  }
  operator std::string_view() const { return view(); }  // implicit: read as a view everywhere
  size_t size() const { return view().size(); }
  bool empty() const { return block_ == nullptr; }
  std::string str() const { return std::string(view()); }
  uint64_t memory() const { return block_ ? http::heap_bytes(sizeof(uint32_t) + size()) : 0; }

  friend bool operator==(const PackedString& a, const PackedString& b) { return a.view() == b.view(); }
  friend bool operator==(const PackedString& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const PackedString& a, const char* b) { return a.view() == std::string_view(b); }

 private:
  void assign(std::string_view text) {
    // Built before the old block goes: `text` may be a view of it.
    char* block = nullptr;
    if (!text.empty()) {
      const auto size = static_cast<uint32_t>(text.size());
      block = new char[sizeof size + size];
      std::memcpy(block, &size, sizeof size);
      std::memcpy(block + sizeof size, text.data(), size);
    }
    delete[] block_;
    block_ = block;
  }
  char* block_ = nullptr;
};

template <typename T>
class SparseVector {
 public:
  SparseVector() = default;
  SparseVector(std::vector<T> elements) { *this = std::move(elements); }  // implicit: given as a vector
  SparseVector(std::initializer_list<T> elements) : SparseVector(std::vector<T>(elements)) {}
  SparseVector(const SparseVector& other) { *this = other; }
  SparseVector(SparseVector&&) noexcept = default;
  SparseVector& operator=(const SparseVector& other) {
    if (this != &other) *this = other.get();
    return *this;
  }
  SparseVector& operator=(SparseVector&&) noexcept = default;
  SparseVector& operator=(std::vector<T> elements) {
    if (elements.empty()) {
      elements_.reset();
    } else {
      elements.shrink_to_fit();
      elements_ = std::make_unique<std::vector<T>>(std::move(elements));
    }
    return *this;
  }

  SparseVector& operator=(std::initializer_list<T> elements) { return *this = std::vector<T>(elements); }

  const std::vector<T>& get() const { return elements_ ? *elements_ : none(); }
  operator const std::vector<T>&() const { return get(); }  // implicit: read as a vector everywhere

  auto begin() const { return get().begin(); }
  auto end() const { return get().end(); }
  size_t size() const { return get().size(); }
  bool empty() const { return get().empty(); }

  // The vector's own block and its elements' array; what the elements hold beyond that is the
  // caller's to count.
  uint64_t memory() const {
    return elements_ ? http::heap_bytes(sizeof(std::vector<T>)) + http::heap_bytes(elements_->capacity() * sizeof(T))
                     : 0;
  }

  friend bool operator==(const SparseVector& a, const SparseVector& b) { return a.get() == b.get(); }
  friend bool operator==(const SparseVector& a, const std::vector<T>& b) { return a.get() == b; }

 private:
  static const std::vector<T>& none() {
    static const std::vector<T> empty;
    return empty;
  }
  std::unique_ptr<std::vector<T>> elements_;
};

}  // namespace edge::cache
