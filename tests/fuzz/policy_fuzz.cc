// Feeds arbitrary header values to the cache policy's parsers (Cache-Control, HTTP dates, Range
// and If-Range, request targets, Vary, entity tags) and to the rules built on them: they must
// never crash, overrun or overflow, and must keep the invariants checked below.
//
// Input: one flag byte, then up to eight values separated by '\n'.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cache/policy.h"

namespace {

using namespace edge;
using namespace edge::cache;

void check(bool ok) {
  if (!ok) std::abort();
}

bool in_range(const std::optional<Seconds>& v) { return !v || (*v >= 0 && *v <= kForever); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string_view part[8];
  for (auto& p : part) {
    size_t nl = input.find('\n');
    p = input.substr(0, nl);
    input = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
  }
  const bool weak = flags & 1;

  // ---- Cache-Control ----
  http::Headers h;
  h.add("Cache-Control", part[0]);
  if (flags & 2) h.add("cache-control", part[1]);
  if (flags & 4) h.add("Pragma", part[2]);
  for (bool request : {false, true}) {
    CacheControl cc = parse_cache_control(h, request);
    check(in_range(cc.max_age) && in_range(cc.s_maxage) && in_range(cc.max_stale) && in_range(cc.min_fresh) &&
          in_range(cc.stale_while_revalidate) && in_range(cc.stale_if_error));
  }

  // ---- dates ----
  for (int i = 0; i < 2; ++i) {
    if (auto t = parse_http_date(part[i])) {
      std::string formatted = format_http_date(*t);
      auto again = parse_http_date(formatted);
      // Every valid date has a year of four digits, so its IMF-fixdate reads back the same
      // (a leap second :60 is already the next minute's :00).
      check(again.has_value() && *again == *t);
    }
  }

  // ---- a response through the storing and freshness rules ----
  http::ResponseHead response;
  response.status = 100 + (flags * 3) % 500;
  response.headers.add("Cache-Control", part[0]);
  response.headers.add("Date", part[1]);
  response.headers.add("Expires", part[2]);
  response.headers.add("Age", part[3]);
  response.headers.add("Last-Modified", part[1]);
  response.headers.add("ETag", part[7]);
  response.headers.add("Vary", part[5]);
  response.headers.add("Location", part[4]);
  response.headers.add("Content-Location", part[6]);
  http::RequestHead request;
  request.method = (flags & 8) ? "GET" : "POST";
  request.target = std::string(part[4]);
  request.headers.add("Host", part[6]);
  request.headers.add("Range", part[2]);
  request.headers.add("If-Range", part[3]);
  request.headers.add("If-None-Match", part[7]);
  request.headers.add("If-Match", part[0]);
  request.headers.add("If-Modified-Since", part[1]);
  request.headers.add("Cache-Control", part[5]);

  StoreOptions options;
  options.default_ttl = flags & 16 ? 60 : 0;
  StoreVerdict verdict = can_store(request, response, options);
  check(verdict_name(verdict) != nullptr);
  CacheControl rcc = parse_cache_control(response.headers, false);
  AgeBasis basis = age_basis(response, 1700000000, 1700000000 + (flags & 7));
  Seconds lifetime = freshness_lifetime(response, rcc, basis, options);
  check(lifetime >= 0 && lifetime <= kForever);
  Seconds age = basis.current_age(1700000000 + flags * 1000);
  check(age >= 0 && age <= kForever);
  StoredView stored{rcc, lifetime, age, flags & 32 ? 30 : 0};
  CacheControl qcc = parse_cache_control(request.headers, true);
  Use use = decide(qcc, stored);
  check(use == Use::kFresh || use == Use::kStaleAllowed || use == Use::kStaleWhileRevalidate ||
        use == Use::kRevalidate);
  (void)may_serve_stale_on_error(qcc, stored);
  (void)evaluate_preconditions(request, response.headers);
  http::Headers merged = merge_not_modified(response.headers, request.headers);
  check(merged.count("content-length") == response.headers.count("content-length"));
  for (const std::string& t : invalidated_targets(request, response, part[6])) check(!t.empty());

  // ---- ranges ----
  request.method = "GET";
  const uint64_t body = (flags & 64) ? 0 : static_cast<uint64_t>(part[7].size()) * 97;
  RangeDecision r = decide_range(request, response.headers, body);
  if (r.kind == RangeDecision::kPartial) check(r.range.first <= r.range.last && r.range.last < body);

  // ---- keys ----
  std::string key = cache_key(part[6], part[4]);
  check(key.find('#') == std::string::npos || part[6].find('#') != std::string_view::npos);
  if (!part[4].empty() && part[4].front() == '/') {
    std::string k1 = cache_key("h", part[4]);
    check(!k1.empty() && k1[0] == 'h' && k1.size() >= 2 && k1[1] == '/');
    check(cache_key("h", std::string_view(k1).substr(1)) == k1);  // normalising is idempotent
  }

  http::Headers vary_response;
  vary_response.add("Vary", part[5]);
  if (flags & 2) vary_response.add("vary", part[0]);
  http::Headers forward, backward;
  forward.add("A-Name", part[6]);
  forward.add("Other", part[7]);
  backward.add("Other", part[7]);
  backward.add("a-name", part[6]);
  auto k1 = vary_key(vary_response, forward);
  auto k2 = vary_key(vary_response, backward);
  check(k1.has_value() == k2.has_value());
  if (k1) check(*k1 == *k2);  // request field order never matters across names

  // ---- entity tags ----
  bool strong_match = etag_matches_any(part[7], part[0], false);
  bool weak_match = etag_matches_any(part[7], part[0], true);
  check(!strong_match || weak_match);
  (void)etag_matches_any(part[0], part[7], weak);
  return 0;
}
