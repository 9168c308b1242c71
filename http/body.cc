#include "http/body.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace edge::http {

namespace {
// Small bodies (the common case) take one allocation of about their own size; larger ones grow
// in 64 KiB chunks so a long body is not one huge reallocation.
constexpr size_t kMinChunk = 1024;
constexpr size_t kMaxChunk = 64 * 1024;

int open_temp_file(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  // Filesystems without O_TMPFILE: create and unlink at once, so nothing is left behind.
  std::string path = dir + "/edge-body-XXXXXX";
  fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return -errno;
  ::unlink(path.c_str());
  return fd;
}
}  // namespace

uint64_t TempSpace::reserve(uint64_t bytes) {
  uint64_t used = in_use_.load(std::memory_order_relaxed);
  uint64_t granted = 0;
  do {
    granted = used >= limit_ ? 0 : std::min(bytes, limit_ - used);
    if (granted == 0) return 0;
  } while (!in_use_.compare_exchange_weak(used, used + granted, std::memory_order_relaxed));
  const uint64_t now = used + granted;
  uint64_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  return granted;
}

Body::~Body() {
  if (options_.space && file_size_) options_.space->give_back(file_size_);
  if (fd_ >= 0) ::close(fd_);
}

void Body::clear() {
  if (options_.space && file_size_) options_.space->give_back(file_size_);
  segments_.clear();
  first_live_ = 0;
  size_ = 0;
  memory_bytes_ = 0;
  file_size_ = 0;
  live_file_bytes_ = 0;
  complete_ = false;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

bool Body::may_spill() const {
  return options_.temp_dir && file_size_ < options_.file_limit && !(options_.space && options_.space->exhausted());
}

bool Body::full() const { return !options_.whole && memory_bytes_ >= options_.memory_limit && !may_spill(); }

int Body::append(std::string_view bytes) {
  if (bytes.empty()) return 0;
  if (options_.temp_dir && memory_bytes_ + bytes.size() > options_.memory_limit) {
    const uint64_t room = options_.file_limit > file_size_ ? options_.file_limit - file_size_ : 0;
    size_t to_file = static_cast<size_t>(std::min<uint64_t>(bytes.size(), room));
    if (options_.whole && to_file < bytes.size()) return -EFBIG;
    if (to_file > 0 && options_.space) {
      const uint64_t granted = options_.space->reserve(to_file);
      if (options_.whole && granted < to_file) {
        options_.space->give_back(granted);
        return -ENOSPC;
      }
      to_file = static_cast<size_t>(granted);
    }
    if (to_file > 0) {
      int rc = append_to_file(bytes.substr(0, to_file));
      if (rc < 0) {
        if (options_.space) options_.space->give_back(to_file);
        return rc;
      }
      bytes.remove_prefix(to_file);
    }
    // What the file could not take stays in RAM, past memory_limit by at most this one append:
    // full() now holds the producer back.
  }

  while (!bytes.empty()) {
    Segment* last = segments_.size() > first_live_ ? &segments_.back() : nullptr;
    if (last && last->ram && last->len < last->ram_capacity) {
      size_t n = std::min(bytes.size(), last->ram_capacity - static_cast<size_t>(last->len));
      std::memcpy(last->ram.get() + last->len, bytes.data(), n);
      last->len += n;
      size_ += n;
      memory_bytes_ += n;
      bytes.remove_prefix(n);
      continue;
    }
    size_t capacity = std::clamp(bytes.size(), kMinChunk, kMaxChunk);
    segments_.push_back(Segment{size_, 0, std::unique_ptr<char[]>(new char[capacity]), capacity, 0});
  }
  return 0;
}

int Body::append_to_file(std::string_view bytes) {
  if (fd_ < 0) {
    int fd = open_temp_file(*options_.temp_dir);
    if (fd < 0) return fd;
    fd_ = fd;
  }
  size_t written = 0;
  while (written < bytes.size()) {
    ssize_t n = ::pwrite(fd_, bytes.data() + written, bytes.size() - written,
                         static_cast<off_t>(file_size_ + written));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    written += static_cast<size_t>(n);
  }
  bool extend = segments_.size() > first_live_ && !segments_.back().ram &&
                segments_.back().file_offset + segments_.back().len == file_size_;
  if (extend) {
    segments_.back().len += bytes.size();
  } else {
    segments_.push_back(Segment{size_, bytes.size(), nullptr, 0, file_size_});
  }
  file_size_ += bytes.size();
  live_file_bytes_ += bytes.size();
  size_ += bytes.size();
  return 0;
}

void Body::empty_file() {
  // Every byte of the file was released: the next spill starts it again from nothing, so a slow
  // reader's file never holds more than file_limit however long the body.
  if (::ftruncate(fd_, 0) != 0) return;
  if (options_.space && file_size_) options_.space->give_back(file_size_);
  file_size_ = 0;
}

int Body::peek(uint64_t offset, IoSlice* out, int max, size_t max_bytes, std::string& scratch) const {
  int count = 0;
  size_t total = 0;
  // Segments are sorted by start; find the first one that contains offset.
  size_t i = first_live_;
  while (i < segments_.size() && segments_[i].start + segments_[i].len <= offset) ++i;
  for (; i < segments_.size() && count < max && total < max_bytes; ++i) {
    const Segment& s = segments_[i];
    uint64_t skip = offset > s.start ? offset - s.start : 0;
    size_t want = static_cast<size_t>(std::min<uint64_t>(s.len - skip, max_bytes - total));
    if (s.ram) {
      out[count++] = IoSlice{s.ram.get() + skip, want};
    } else {
      // One file read per call keeps the scratch buffer's contents valid for the caller.
      if (count > 0) break;
      want = std::min(want, std::max<size_t>(scratch.capacity(), 16 * 1024));
      scratch.resize(want);
      ssize_t n;
      do {
        n = ::pread(fd_, scratch.data(), want, static_cast<off_t>(s.file_offset + skip));
      } while (n < 0 && errno == EINTR);
      if (n < 0) return -errno;
      if (n == 0) return -EIO;
      out[count++] = IoSlice{scratch.data(), static_cast<size_t>(n)};
      total += static_cast<size_t>(n);
      break;
    }
    total += want;
    offset = s.start + s.len;
  }
  return count;
}

void Body::release_before(uint64_t offset) {
  const size_t first_before = first_live_;
  while (first_live_ < segments_.size()) {
    Segment& s = segments_[first_live_];
    if (s.start + s.len > offset) break;
    if (s.ram) {
      memory_bytes_ -= s.len;
    } else {
      live_file_bytes_ -= s.len;
    }
    s.ram.reset();
    ++first_live_;
  }
  if (first_live_ == first_before) return;
  if (live_file_bytes_ == 0 && file_size_ > 0) empty_file();
  if (first_live_ > 32 && first_live_ * 2 > segments_.size()) {
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<long>(first_live_));
    first_live_ = 0;
  }
  if (producer_ && !full()) producer_->on_body_drained();
}

std::string Body::to_string() const {
  std::string out;
  out.reserve(size_);
  std::string scratch;
  scratch.reserve(64 * 1024);
  IoSlice slices[16];
  uint64_t offset = segments_.size() > first_live_ ? segments_[first_live_].start : size_;
  for (;;) {
    int n = peek(offset, slices, 16, 1 << 20, scratch);
    if (n <= 0) break;
    for (int i = 0; i < n; ++i) {
      out.append(slices[i].data, slices[i].len);
      offset += slices[i].len;
    }
  }
  return out;
}

}  // namespace edge::http
