// proxy/compression: the content codings of stored objects, made once when they are stored.
//
// A stored object keeps its identity body and, for a response its route compresses, the same
// body in each of the route's codings (CachedObject::encodings, counted in its charge).
// Request::deliver sends the one the client's Accept-Encoding chooses; responses without stored
// encodings are compressed as they stream (compress/stream.h, in proxy/request.cc).
//
// Small bodies get their encodings on the loop that stores them; larger ones are stored without
// and handed to the Compressor, whose thread makes the encodings and replaces the stored object
// with a copy that has them (cache::Store::replace), unless it was replaced or went meanwhile.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "cache/store.h"
#include "compress/coding.h"

namespace edge::proxy {

// Bodies up to this size are compressed on the loop that stores them (a few milliseconds at
// most at the stored levels); larger ones by the Compressor.
inline constexpr uint64_t kCompressWhenStoredMax = 64 * 1024;

// A copy of `object` with its body in every coding of `rules` it lacks (at rules.level), or
// null when there is nothing to add: not compressible (compress::compressible), a page to
// assemble, a partial or incomplete body, one over `max_size`, or one no coding makes smaller.
std::shared_ptr<cache::CachedObject> with_encodings(const cache::CachedObject& object, const compress::Rules& rules,
                                                    uint64_t max_size = kCompressWhenStoredMax);

// Whether `object` is one with_encodings() left for the Compressor: compressible, but larger
// than kCompressWhenStoredMax.
bool compress_later(const cache::CachedObject& object, const compress::Rules& rules);

// One thread making the encodings of large stored objects. submit() from any thread.
class Compressor {
 public:
  explicit Compressor(cache::Store& store);
  ~Compressor();  // what is still queued is dropped: those objects stay without encodings
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  // Queues a stored object; false (and nothing queued) when kMaxQueued are waiting already:
  // the object is then compressed per delivery, as it streams.
  bool submit(cache::ObjectRef object, const compress::Rules& rules);

  static constexpr size_t kMaxQueued = 64;

 private:
  struct Job {
    cache::ObjectRef object;
    compress::Rules rules;
  };
  void run();

  cache::Store& store_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace edge::proxy
