#include "proxy/metrics.h"

#include <algorithm>

namespace edge::proxy {

uint64_t HistogramCounts::count() const {
  uint64_t n = 0;
  for (uint64_t b : buckets) n += b;
  return n;
}

void HistogramCounts::add(const HistogramCounts& other) {
  for (size_t i = 0; i < kBucketCount; ++i) buckets[i] += other.buckets[i];
  sum_ns += other.sum_ns;
}

std::optional<double> HistogramCounts::quantile_ns(double q) const {
  const uint64_t total = count();
  if (total == 0) return std::nullopt;
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(total);
  uint64_t below = 0;
  for (size_t i = 0; i < kBucketCount; ++i) {
    const uint64_t in_bucket = buckets[i];
    if (in_bucket == 0 || static_cast<double>(below + in_bucket) < rank) {
      below += in_bucket;
      continue;
    }
    // Nothing is known of +Inf's samples but that they are past the last bound.
    if (i == kBucketBoundsNs.size()) return static_cast<double>(kBucketBoundsNs.back());
    const double lower = i == 0 ? 0.0 : static_cast<double>(kBucketBoundsNs[i - 1]);
    const double upper = static_cast<double>(kBucketBoundsNs[i]);
    return lower + (upper - lower) * (rank - static_cast<double>(below)) / static_cast<double>(in_bucket);
  }
  return static_cast<double>(kBucketBoundsNs.back());
}

void Histogram::read_into(HistogramCounts& into) const {
  for (size_t i = 0; i < kBucketCount; ++i) into.buckets[i] += buckets_[i].load(std::memory_order_relaxed);
  into.sum_ns += sum_ns_.load(std::memory_order_relaxed);
}

const char* status_class_name(size_t index) {
  static constexpr const char* kNames[kStatusClassCount] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  return index < kStatusClassCount ? kNames[index] : "?";
}

int status_class_of(int status) { return status >= 100 && status <= 599 ? status / 100 - 1 : -1; }

WorkerMetrics::WorkerMetrics(size_t host_slots, size_t server_slots)
    : host_slots_(host_slots),
      server_slots_(server_slots),
      hosts_(new HostMetrics[host_slots + 1]()),
      servers_(new ServerMetrics[server_slots]()) {}

void WorkerMetrics::record_response(int host_slot, int status, uint64_t duration_ns, uint64_t first_byte_ns,
                                    bool histograms) {
  HostMetrics& h = host(host_slot);
  const int status_class = status_class_of(status);
  if (status_class >= 0) {
    std::atomic<uint64_t>& n = h.responses[static_cast<size_t>(status_class)];
    n.store(n.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // one writer
  }
  if (!histograms) return;
  h.duration.record(duration_ns);
  if (first_byte_ns) h.first_byte.record(first_byte_ns);
}

}  // namespace edge::proxy
