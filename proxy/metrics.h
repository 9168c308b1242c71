// proxy/metrics: the figures /metrics shows of each request: responses by status class, how
// long requests and backends took (histograms), per host and per backend server.
//
// Each Worker owns one WorkerMetrics and is its only writer: a count is a relaxed load and a
// store (no locked instruction), and nothing another worker writes is touched per request.
// Readers (the admin port, on the main loop) read the same atomics relaxed and sum the workers:
// a sum may miss the last few increments, never tear a value.
//
// Hosts and servers have slots (proxy/generation.h: LabelSlots), kept across reloads by their
// label, so a host's or server's figures survive a reload; the slots are fixed at start, so
// memory is bounded whatever reloads do.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

namespace edge::proxy {

// The histogram buckets' upper bounds, in nanoseconds, the same for every histogram: 0.5 ms to
// 30 s, about 2.5x apart (1-2-5), and +Inf after them.
inline constexpr std::array<uint64_t, 16> kBucketBoundsNs = {
    500'000,       1'000'000,     2'000'000,     5'000'000,      10'000'000,     20'000'000,
    50'000'000,    100'000'000,   200'000'000,   500'000'000,    1'000'000'000,  2'000'000'000,
    5'000'000'000, 10'000'000'000, 20'000'000'000, 30'000'000'000};
inline constexpr size_t kBucketCount = kBucketBoundsNs.size() + 1;  // the last is +Inf

// The index of the bucket a duration falls in: the first whose bound is >= it. Sixteen bounds:
// a scan the branch predictor learns beats a binary search at this size.
inline size_t bucket_of(uint64_t ns) {
  size_t i = 0;
  while (i < kBucketBoundsNs.size() && ns > kBucketBoundsNs[i]) ++i;
  return i;
}

// What a histogram holds at one moment, summed over workers: plain numbers.
struct HistogramCounts {
  std::array<uint64_t, kBucketCount> buckets{};  // per bucket, not cumulative
  uint64_t sum_ns = 0;
  uint64_t count() const;
  void add(const HistogramCounts& other);
  // The q-quantile (0 < q < 1) in nanoseconds, interpolated linearly inside its bucket as
  // Prometheus's histogram_quantile does (the first bucket starts at 0; one in +Inf is given
  // the last finite bound); nullopt without samples.
  std::optional<double> quantile_ns(double q) const;
};

// A histogram with one writer: record() is a load and a store per field it touches.
class Histogram {
 public:
  void record(uint64_t ns) {
    bump(buckets_[bucket_of(ns)], 1);
    bump(sum_ns_, ns);
  }
  // The same, from any thread (several writers: the memcached pool's threads).
  void record_shared(uint64_t ns) {
    buckets_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  }
  // Adds this histogram's figures to `into` (any thread).
  void read_into(HistogramCounts& into) const;

 private:
  static void bump(std::atomic<uint64_t>& n, uint64_t by) {
    n.store(n.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
  std::array<std::atomic<uint64_t>, kBucketCount> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

// Status classes 1xx to 5xx.
inline constexpr size_t kStatusClassCount = 5;
// "1xx" .. "5xx"; the class index of a status (100-599), else -1.
const char* status_class_name(size_t index);
int status_class_of(int status);

struct HostMetrics {
  std::array<std::atomic<uint64_t>, kStatusClassCount> responses{};  // by status class
  Histogram duration;    // head read to response written (or abandoned)
  Histogram first_byte;  // head read to the backend's response head, for requests that went there
};

struct ServerMetrics {
  Histogram first_byte;  // request sent to the response head read
  Histogram connect;     // connect started to connected (TLS handshake included)
};

class WorkerMetrics {
 public:
  // Slot counts: those of the process's host and server LabelSlots.
  WorkerMetrics(size_t host_slots, size_t server_slots);

  // A host slot's figures; slot -1 (no host entry: a 400, a 404 for an unknown host, or slots
  // full) is an entry of its own, shown with host="".
  HostMetrics& host(int slot) { return hosts_[index_of(slot, host_slots_)]; }
  const HostMetrics& host(int slot) const { return hosts_[index_of(slot, host_slots_)]; }
  // A server slot's figures; null for slot -1 (slots full: not counted).
  ServerMetrics* server(int slot) {
    return slot >= 0 && static_cast<size_t>(slot) < server_slots_ ? &servers_[static_cast<size_t>(slot)] : nullptr;
  }
  const ServerMetrics* server(int slot) const { return const_cast<WorkerMetrics*>(this)->server(slot); }
  size_t host_slots() const { return host_slots_; }
  size_t server_slots() const { return server_slots_; }

  // A response for `host_slot` (see host()): counted by class; with `histograms`, its duration
  // and, when it went to a backend (first_byte_ns > 0), the time to the backend's first byte.
  void record_response(int host_slot, int status, uint64_t duration_ns, uint64_t first_byte_ns, bool histograms);

 private:
  static size_t index_of(int slot, size_t slots) {
    return slot >= 0 && static_cast<size_t>(slot) < slots ? static_cast<size_t>(slot) : slots;
  }
  size_t host_slots_;
  size_t server_slots_;
  std::unique_ptr<HostMetrics[]> hosts_;      // host_slots_ + 1: the last is "no host"
  std::unique_ptr<ServerMetrics[]> servers_;  // server_slots_
};

}  // namespace edge::proxy
