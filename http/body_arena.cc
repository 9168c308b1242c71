#include "http/body_arena.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>

namespace edge::http {

namespace {
// Address space, not memory: the file is sparse and only written pages count. Power-of-two
// classes waste at most half of a block's address space, never its memory.
constexpr uint64_t kSharedReserve = uint64_t{64} << 30;
}  // namespace

BodyArena& BodyArena::shared() {
  // Never destroyed: a body freed during the process's exit (a static's destructor, a thread
  // still ending) must still find its arena.
  static BodyArena* const arena = new BodyArena(kSharedReserve);
  return *arena;
}

BodyArena::BodyArena(uint64_t reserve) {
  fd_ = ::memfd_create("edge-bodies", MFD_CLOEXEC);
  if (fd_ < 0) return;
  void* base = MAP_FAILED;
  if (::ftruncate(fd_, static_cast<off_t>(reserve)) == 0)
    base = ::mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd_, 0);
  if (base == MAP_FAILED) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  base_ = static_cast<char*>(base);
  reserve_ = reserve;
}

BodyArena::~BodyArena() {
  if (base_) ::munmap(base_, reserve_);
  if (fd_ >= 0) ::close(fd_);
}

int BodyArena::class_of(size_t size) {
  return std::max(kMinClass, static_cast<int>(std::bit_width(std::max<size_t>(size, 1) - 1))) - kMinClass;
}

char* BodyArena::allocate(size_t size) {
  if (!base_ || size == 0) return nullptr;
  const int size_class = class_of(size);
  if (size_class >= kClasses) return nullptr;
  const uint64_t block = uint64_t{1} << (size_class + kMinClass);
  std::lock_guard lock(mutex_);
  uint64_t offset;
  if (!free_[size_class].empty()) {
    offset = free_[size_class].back();
    free_[size_class].pop_back();
  } else {
    if (reserve_ - next_ < block) return nullptr;
    offset = next_;
    next_ += block;
  }
  allocated_.fetch_add(block, std::memory_order_relaxed);
  return base_ + offset;
}

void BodyArena::release(char* data, size_t size) {
  if (!data) return;
  const int size_class = class_of(size);
  const uint64_t block = uint64_t{1} << (size_class + kMinClass);
  const uint64_t offset = offset_of(data);
  // Outside the lock: the block is no one's until it is on a free list. A failed punch (it cannot
  // fail on a memfd short of a kernel without holes) would leave old bytes to be overwritten:
  // still correct, only late in giving the memory back.
  ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(block));
  std::lock_guard lock(mutex_);
  free_[size_class].push_back(offset);
  allocated_.fetch_sub(block, std::memory_order_relaxed);
}

bool any_in_arena(const uv_buf_t* bufs, unsigned count) {
  const BodyArena& arena = BodyArena::shared();
  for (unsigned i = 0; i < count; ++i)
    if (arena.contains(bufs[i].base, bufs[i].len)) return true;
  return false;
}

ssize_t send_now(int fd, const uv_buf_t* bufs, unsigned count) {
  const BodyArena& arena = BodyArena::shared();
  size_t sent = 0;
  unsigned i = 0;
  while (i < count) {
    size_t want = 0;
    ssize_t n;
    if (arena.contains(bufs[i].base, bufs[i].len)) {
      want = bufs[i].len;
      off_t offset = static_cast<off_t>(arena.offset_of(bufs[i].base));
      do n = ::sendfile(fd, arena.fd(), &offset, want);
      while (n < 0 && errno == EINTR);
      ++i;
    } else {
      iovec iov[64];
      int run = 0;
      while (i < count && run < 64 && !arena.contains(bufs[i].base, bufs[i].len)) {
        iov[run++] = iovec{bufs[i].base, bufs[i].len};
        want += bufs[i].len;
        ++i;
      }
      msghdr message{};
      message.msg_iov = iov;
      message.msg_iovlen = static_cast<size_t>(run);
      const int more = i < count ? MSG_MORE : 0;
      do n = ::sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT | more);
      while (n < 0 && errno == EINTR);
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || sent > 0) return static_cast<ssize_t>(sent);
      return -errno;  // libuv's errors are negated errno values on this platform
    }
    sent += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < want) break;
  }
  return static_cast<ssize_t>(sent);
}

}  // namespace edge::http
