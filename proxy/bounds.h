// proxy/bounds: the process-wide side of the bounds on what clients and backends may make edge
// hold: the temp-file space every buffered body draws from, and how often each bound was hit.
//
// Shared by every worker (atomics: any thread adds, the admin port reads). Owned by Shared; the
// admin port borrows it.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include "http/body.h"

namespace edge::proxy {

struct Bounds {
  explicit Bounds(uint64_t max_temp_total) : temp_space(max_temp_total) {}

  http::TempSpace temp_space;  // limits.max_temp_total
  std::atomic<uint64_t> too_many_fields{0};  // requests refused 431 for limits.max_header_fields
  std::atomic<uint64_t> slow_uploads{0};     // request bodies under limits.min_upload_rate (408)
  std::atomic<uint64_t> send_timeouts{0};    // clients closed for leaving a response unread
  // Backend reads stopped because a response waited for its client with its temp file full:
  // at limits.max_temp_file_size, or with the process at limits.max_temp_total.
  std::atomic<uint64_t> paused_at_file_cap{0};
  std::atomic<uint64_t> paused_at_temp_total{0};
  // Clients that left while their request was at a server with max_conns: the slot was kept
  // until the server had answered.
  std::atomic<uint64_t> slots_held{0};

  void count(std::atomic<uint64_t>& counter) { counter.fetch_add(1, std::memory_order_relaxed); }

  // The counters by name, in the order /stats and /metrics show them (the temp-space gauges
  // apart: temp_bytes, temp_bytes_peak).
  std::vector<std::pair<const char*, uint64_t>> events() const {
    return {
        {"too_many_fields", too_many_fields.load(std::memory_order_relaxed)},
        {"slow_uploads", slow_uploads.load(std::memory_order_relaxed)},
        {"send_timeouts", send_timeouts.load(std::memory_order_relaxed)},
        {"paused_at_file_cap", paused_at_file_cap.load(std::memory_order_relaxed)},
        {"paused_at_temp_total", paused_at_temp_total.load(std::memory_order_relaxed)},
        {"slots_held", slots_held.load(std::memory_order_relaxed)},
    };
  }
};

}  // namespace edge::proxy
