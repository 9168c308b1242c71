#include "proxy/metrics.h"

#include <doctest/doctest.h>

#include <string>

namespace edge::proxy {
namespace {

constexpr uint64_t kMs = 1'000'000;

HistogramCounts counts_of(const Histogram& h) {
  HistogramCounts c;
  h.read_into(c);
  return c;
}

TEST_CASE("a duration goes to the first bucket whose bound is at least it") {
  CHECK(bucket_of(0) == 0);
  CHECK(bucket_of(kMs / 2) == 0);      // on the bound: le="0.0005"
  CHECK(bucket_of(kMs / 2 + 1) == 1);
  CHECK(bucket_of(3 * kMs) == 3);      // (2 ms, 5 ms]
  CHECK(bucket_of(30'000 * kMs) == kBucketBoundsNs.size() - 1);
  CHECK(bucket_of(30'000 * kMs + 1) == kBucketBoundsNs.size());  // +Inf
  CHECK(bucket_of(UINT64_MAX) == kBucketBoundsNs.size());
}

TEST_CASE("the bounds rise, from half a millisecond to thirty seconds") {
  CHECK(kBucketBoundsNs.front() == kMs / 2);
  CHECK(kBucketBoundsNs.back() == 30'000 * kMs);
  for (size_t i = 1; i < kBucketBoundsNs.size(); ++i) CHECK(kBucketBoundsNs[i] > kBucketBoundsNs[i - 1]);
}

TEST_CASE("a histogram counts its samples and sums them") {
  Histogram h;
  h.record(1 * kMs);
  h.record(3 * kMs);
  h.record_shared(3 * kMs);
  h.record(40'000 * kMs);
  const HistogramCounts c = counts_of(h);
  CHECK(c.count() == 4);
  CHECK(c.sum_ns == 40'007 * kMs);
  CHECK(c.buckets[1] == 1);
  CHECK(c.buckets[3] == 2);
  CHECK(c.buckets[kBucketCount - 1] == 1);

  HistogramCounts total;
  total.add(c);
  total.add(c);
  CHECK(total.count() == 8);
  CHECK(total.sum_ns == 2 * c.sum_ns);
}

TEST_CASE("quantiles are interpolated inside their bucket") {
  HistogramCounts empty;
  CHECK_FALSE(empty.quantile_ns(0.5).has_value());

  Histogram h;
  // Ten samples in (1 ms, 2 ms], ten in (5 ms, 10 ms].
  for (int i = 0; i < 10; ++i) h.record(kMs + kMs / 2);
  for (int i = 0; i < 10; ++i) h.record(7 * kMs);
  const HistogramCounts c = counts_of(h);
  CHECK(*c.quantile_ns(0.5) == doctest::Approx(2.0 * kMs));    // the 10th sample: top of the first
  CHECK(*c.quantile_ns(0.25) == doctest::Approx(1.5 * kMs));   // halfway through (1, 2]
  CHECK(*c.quantile_ns(0.75) == doctest::Approx(7.5 * kMs));   // halfway through (5, 10]
  CHECK(*c.quantile_ns(0.99) == doctest::Approx(9.9 * kMs));

  Histogram first;
  first.record(100);
  CHECK(*counts_of(first).quantile_ns(0.5) == doctest::Approx(0.25 * kMs));  // (0, 0.5 ms]

  Histogram beyond;
  beyond.record(60'000 * kMs);
  CHECK(*counts_of(beyond).quantile_ns(0.9) == doctest::Approx(30'000.0 * kMs));  // the last bound
}

TEST_CASE("responses are counted by class, per host slot, with slot -1 its own") {
  WorkerMetrics m(4, 2);
  m.record_response(1, 200, 3 * kMs, 2 * kMs, true);
  m.record_response(1, 404, kMs, 0, true);
  m.record_response(-1, 400, kMs, 0, true);
  m.record_response(9, 503, kMs, 0, false);  // past the slots: with slot -1; no histogram
  m.record_response(1, 99, kMs, 0, true);    // no class: timed, not counted
  CHECK(m.host(1).responses[1].load() == 1);
  CHECK(m.host(1).responses[3].load() == 1);
  CHECK(m.host(-1).responses[3].load() == 1);
  CHECK(m.host(-1).responses[4].load() == 1);
  CHECK(counts_of(m.host(1).duration).count() == 3);
  CHECK(counts_of(m.host(1).first_byte).count() == 1);
  CHECK(counts_of(m.host(-1).duration).count() == 1);
  CHECK(m.server(1) != nullptr);
  CHECK(m.server(2) == nullptr);
  CHECK(m.server(-1) == nullptr);
  CHECK(std::string(status_class_name(1)) == "2xx");
  CHECK(status_class_of(599) == 4);
  CHECK(status_class_of(600) == -1);
}

}  // namespace
}  // namespace edge::proxy
