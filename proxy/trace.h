// proxy/trace: the steps one request took and when, for the access log and debug output.
//
// A Trace is a fixed array in the request (no allocation): each entry is a step and the
// microseconds since the request's head was complete. Past kMaxEntries (an ESI page whose
// includes wake it often), later entries are not kept and `dropped` says how many.
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <string>

namespace edge::proxy {

// The named steps of a request (proxy/request.h says which function runs each).
#define EDGE_STEPS(X)                                                              \
  X(kRecv, "recv")          /* identity, route, fields the key does not describe */ \
  X(kLookup, "lookup")      /* the store asked for the key */                        \
  X(kHit, "hit")            /* a usable stored object */                             \
  X(kStale, "stale")        /* a stale object served (grace, stale-*) */             \
  X(kMiss, "miss")          /* a fill started for the key */                         \
  X(kWait, "wait")          /* joined another request's fill */                      \
  X(kPass, "pass")          /* to the backend for this request alone */              \
  X(kDeliver, "deliver")    /* a stored object's head written (200, 206, 304, 416) */\
  X(kRelay, "relay")        /* a passed response's head written */                   \
  X(kAssemble, "assemble")  /* an ESI/SSI page assembled from its includes */        \
  X(kSynth, "synth")        /* an answer edge makes itself */                        \
  X(kPurge, "purge")        /* a PURGE carried out (conf::PurgeAccess) */             \
  X(kDone, "done")          /* the response written, or the request abandoned */

enum class Step : uint8_t {
#define EDGE_STEP_ENUM(name, text) name,
  EDGE_STEPS(EDGE_STEP_ENUM)
#undef EDGE_STEP_ENUM
};

const char* step_name(Step step);

class Trace {
 public:
  static constexpr size_t kMaxEntries = 16;
  struct Entry {
    Step step;
    uint32_t at_us;  // since start()
  };

  void start() {
    started_ns_ = uv_hrtime();
    count_ = 0;
    dropped_ = 0;
  }
  // start() with `first` taken at once, on the same reading of the clock.
  void start(Step first) {
    start();
    entries_[count_++] = Entry{first, 0};
  }
  // Returns the time it read (uv_hrtime()), for the caller's own figures.
  uint64_t add(Step step) {
    const uint64_t now_ns = uv_hrtime();
    if (count_ == kMaxEntries) {
      ++dropped_;
      return now_ns;
    }
    const uint64_t us = (now_ns - started_ns_) / 1000;
    entries_[count_++] = Entry{step, us > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(us)};
    return now_ns;
  }
  uint64_t started_ns() const { return started_ns_; }  // uv_hrtime() at start()
  size_t size() const { return count_; }
  const Entry& operator[](size_t i) const { return entries_[i]; }
  bool took(Step step) const {
    for (size_t i = 0; i < count_; ++i)
      if (entries_[i].step == step) return true;
    return false;
  }
  // "recv:0 lookup:3 hit:4 deliver:9" (microseconds), "+N" when entries were dropped.
  std::string text() const;

 private:
  std::array<Entry, kMaxEntries> entries_{};
  uint64_t started_ns_ = 0;
  uint8_t count_ = 0;
  uint32_t dropped_ = 0;
};

}  // namespace edge::proxy
