// http/body_arena: memory for large bodies that a socket can be given without a copy.
//
// The process has one arena: a memfd reserved large and sparse, mapped once (MAP_SHARED). A
// block from it is plain memory to whoever writes or reads the body, and the transports hand it
// to sendfile(2) by its offset in the file, so the kernel sends a cached 1 MB body as references
// to its pages instead of copying it into socket buffers. TLS, HTTP/2 and every other reader see
// ordinary bytes.
//
// Contract:
// - allocate(size) gives a page-aligned block of at least `size` bytes, or null (no arena here:
//   memfd or the mapping refused; or its space used up): the caller then takes the heap. Blocks
//   come in power-of-two sizes, but only the pages written hold memory.
// - release(block, size) with the size it was allocated with: its pages go back to the system at
//   once (a hole punched in the file). A send still in the kernel holds its own references to
//   the pages it took, so bytes in flight never change, and the next block there starts on fresh
//   pages. The bytes of a block must not change once sent (bodies only ever append).
// - contains()/offset_of() say where bytes lie, without a lock.
// - Thread safety: any thread; allocate and release take one mutex (large bodies are few).
//
// send_now() is the one user of the offsets: the write both transports make when nothing of
// theirs is queued.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace edge::http {

class BodyArena {
 public:
  // Below this a body stays on the heap: copying it costs less than the system call more that
  // sending it apart from its head would.
  static constexpr size_t kMinBlock = 64 * 1024;

  static BodyArena& shared();  // the process's, made at first use and never destroyed

  explicit BodyArena(uint64_t reserve);
  BodyArena(const BodyArena&) = delete;
  BodyArena& operator=(const BodyArena&) = delete;
  ~BodyArena();

  char* allocate(size_t size);
  void release(char* block, size_t size);

  bool contains(const char* data, size_t len) const {
    const uintptr_t at = reinterpret_cast<uintptr_t>(data);
    const uintptr_t base = reinterpret_cast<uintptr_t>(base_);
    return len != 0 && at >= base && len <= reserve_ && at - base <= reserve_ - len;
  }
  uint64_t offset_of(const char* data) const {
    return reinterpret_cast<uintptr_t>(data) - reinterpret_cast<uintptr_t>(base_);
  }
  int fd() const { return fd_; }
  bool usable() const { return base_ != nullptr; }
  uint64_t bytes_allocated() const { return allocated_.load(std::memory_order_relaxed); }

 private:
  static constexpr int kMinClass = 16;  // 2^16 = kMinBlock
  static constexpr int kClasses = 48 - kMinClass;
  static int class_of(size_t size);

  int fd_ = -1;
  char* base_ = nullptr;
  uint64_t reserve_ = 0;  // 0 while unusable, so contains() is false for everything
  std::mutex mutex_;
  uint64_t next_ = 0;  // offsets past it were never handed out
  std::array<std::vector<uint64_t>, kClasses> free_;  // released blocks by size class
  std::atomic<uint64_t> allocated_{0};
};

// Writes `bufs` to the non-blocking stream socket `fd` at once, in order: runs of the shared
// arena's bytes with sendfile(2), other bytes with one sendmsg(2) (MSG_MORE when arena bytes
// follow, so a head leaves with the body's first segment). Stops at the first short write.
// Returns the bytes written (0 when the socket is full), or a negative libuv error when nothing
// was written.
ssize_t send_now(int fd, const uv_buf_t* bufs, unsigned count);

// Whether any of `bufs` lies in the shared arena (then send_now() pays).
bool any_in_arena(const uv_buf_t* bufs, unsigned count);

}  // namespace edge::http
