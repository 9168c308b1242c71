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

Body::~Body() {
  if (fd_ >= 0) ::close(fd_);
}

void Body::clear() {
  segments_.clear();
  first_live_ = 0;
  size_ = 0;
  memory_bytes_ = 0;
  file_size_ = 0;
  complete_ = false;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

int Body::append(std::string_view bytes) {
  if (bytes.empty()) return 0;
  if (options_.temp_dir && memory_bytes_ + bytes.size() > options_.memory_limit)
    return append_to_file(bytes);

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
  size_ += bytes.size();
  return 0;
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
  while (first_live_ < segments_.size()) {
    Segment& s = segments_[first_live_];
    if (s.start + s.len > offset) break;
    if (s.ram) memory_bytes_ -= s.len;
    s.ram.reset();
    ++first_live_;
  }
  if (first_live_ > 32 && first_live_ * 2 > segments_.size()) {
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<long>(first_live_));
    first_live_ = 0;
  }
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
