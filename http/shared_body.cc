#include "http/shared_body.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "http/body_arena.h"
#include "http/heap.h"

namespace edge::http {

namespace {
constexpr uint64_t kFirstBlock = 16 * 1024;
constexpr uint64_t kLargestBlock = 1024 * 1024;
}  // namespace

SharedBody::SharedBody(uint64_t expected) {
  if (expected > 0) add_block(expected);
}

SharedBody::~SharedBody() {
  for (size_t i = 0; i < block_count(); ++i) {
    const Block& b = block(i);
    if (b.in_arena)
      BodyArena::shared().release(b.data, b.capacity);
    else
      delete[] b.data;
  }
}

uint64_t SharedBody::capacity() const {
  if (!first_.data) return 0;
  // The producer's view, or a finished body's: no lock.
  const Block& last = more_ ? more_->back() : first_;
  return last.start + last.capacity;
}

uint64_t SharedBody::memory() const {
  uint64_t bytes = more_ ? heap_bytes(sizeof(std::vector<Block>)) + heap_bytes(more_->capacity() * sizeof(Block)) : 0;
  for (size_t i = 0; i < block_count(); ++i) bytes += block(i).in_arena ? block(i).capacity : heap_bytes(block(i).capacity);
  return bytes;
}

void SharedBody::lock() const {
  // Held for a push or a scan of a few blocks: spinning is shorter than sleeping.
  while (locked_.test_and_set(std::memory_order_acquire)) std::this_thread::yield();
}

void SharedBody::add_block(uint64_t capacity) {
  char* data = nullptr;
  if (capacity >= BodyArena::kMinBlock) data = BodyArena::shared().allocate(capacity);
  const bool in_arena = data != nullptr;
  if (!data) data = new char[capacity];
  const Block added{data, this->capacity(), capacity, in_arena};
  if (!first_.data) {
    // Readers look at no block before size() says a byte is there, and the size is published
    // (release) after this.
    first_ = added;
  } else {
    lock();
    if (!more_) more_ = std::make_unique<std::vector<Block>>();
    more_->push_back(added);
    unlock();
  }
}

std::shared_ptr<SharedBody> SharedBody::from(std::string_view bytes) {
  auto body = std::make_shared<SharedBody>(bytes.size());
  body->append(bytes);
  body->finish();
  return body;
}

void SharedBody::append(std::string_view bytes) {
  uint64_t size = size_.load(std::memory_order_relaxed);
  while (!bytes.empty()) {
    if (size == capacity()) {
      // A body longer than announced, or of unknown length: blocks double up to a bound, so a
      // large body costs few allocations and little slack.
      uint64_t grow = first_.data ? std::min(kLargestBlock, last_block().capacity * 2) : kFirstBlock;
      grow = std::max<uint64_t>(grow, std::min<uint64_t>(bytes.size(), kLargestBlock));
      add_block(grow);
    }
    // Only the producer touches the last block and the bytes past size_, so this needs no lock:
    // readers never look past the published size.
    Block& block = last_block();
    const uint64_t room = block.start + block.capacity - size;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(room, bytes.size()));
    std::memcpy(block.data + (size - block.start), bytes.data(), n);
    bytes.remove_prefix(n);
    size += n;
    size_.store(size, std::memory_order_release);
  }
}

void SharedBody::finish() { state_.store(kComplete, std::memory_order_release); }

void SharedBody::fail() { state_.store(kFailed, std::memory_order_release); }

int SharedBody::peek(uint64_t offset, IoSlice* out, int max, size_t max_bytes, std::string&) const {
  const bool done = complete();
  const uint64_t available = size();
  if (offset >= available) return 0;
  const uint64_t end = offset + std::min<uint64_t>(available - offset, max_bytes);  // max_bytes may be SIZE_MAX
  if (!done) lock();  // more_ may still grow; a complete body's never does
  // The block holding `offset`: blocks are few (one when the size was known), so a scan is fine.
  const size_t blocks = block_count();
  size_t i = 0;
  while (i + 1 < blocks && block(i + 1).start <= offset) ++i;
  int count = 0;
  while (count < max && offset < end && i < blocks) {
    const Block& b = block(i);
    const uint64_t block_end = std::min(end, b.start + b.capacity);
    out[count++] = IoSlice{b.data + (offset - b.start), static_cast<size_t>(block_end - offset)};
    offset = block_end;
    ++i;
  }
  if (!done) unlock();
  return count;
}

std::string SharedBody::to_string() const {
  std::string out;
  std::string scratch;
  uint64_t offset = 0;
  IoSlice slices[8];
  while (true) {
    int n = peek(offset, slices, 8, SIZE_MAX, scratch);
    if (n <= 0) break;
    for (int i = 0; i < n; ++i) {
      out.append(slices[i].data, slices[i].len);
      offset += slices[i].len;
    }
  }
  return out;
}

int BodyWindow::peek(uint64_t offset, IoSlice* out, int max, size_t max_bytes, std::string& scratch) const {
  if (offset >= length_) return 0;
  const uint64_t left = length_ - offset;
  return inner_->peek(first_ + offset, out, max, static_cast<size_t>(std::min<uint64_t>(max_bytes, left)), scratch);
}

uint64_t BodyWindow::size() const {
  const uint64_t available = inner_->size();
  if (available <= first_) return 0;
  return std::min(length_, available - first_);
}

}  // namespace edge::http
