#include "proxy/exchange.h"

#include <algorithm>

#include "cache/static_key.h"
#include "proxy/clock.h"
#include "proxy/compression.h"
#include "proxy/heads.h"
#include "proxy/worker.h"

namespace edge::proxy {

namespace {
using http::iequals;

// The value of cookie `name` in the request's Cookie fields, or nullopt.
std::optional<std::string_view> cookie_value(const http::Headers& headers, std::string_view name) {
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!iequals(headers.name(i), "Cookie")) continue;
    std::string_view list = headers.value(i);
    while (!list.empty()) {
      size_t semi = list.find(';');
      std::string_view pair = http::trim(list.substr(0, semi));
      size_t eq = pair.find('=');
      if (eq != std::string_view::npos && http::trim(pair.substr(0, eq)) == name) return http::trim(pair.substr(eq + 1));
      if (semi == std::string_view::npos) break;
      list.remove_prefix(semi + 1);
    }
  }
  return std::nullopt;
}

}  // namespace

void Exchange::start(const Request& request) {
  end();
  active_ = true;
  id_ = worker_.next_connection_id();
  generation_ = request.generation;
  head_ = request.head;
  body_ = request.body;
  route_ = request.route;
  authority_ = request.authority;
  origin_target_ = request.origin_target;
  client_ip_ = request.client_ip;
  https_ = request.https;
  upgrade_ = request.upgrade;
  trace_ = request.trace;
  delivering_ = false;
  x_cache_ = "PASS";
  facts_ = {};
  policy_ = &policy_of(generation_->config, route_);
  if (policy_->enabled && upgrade_.empty() && (head_->method == "GET" || head_->is_head())) return serve_from_cache();
  count(cache::Event::kPass);
  start_pass();
}

void Exchange::end() {
  if (!active_) return;
  active_ = false;
  fetch_.reset();
  post_object_.reset();
  post_body_.reset();
  leave_fill();
  generation_.reset();
}

void Exchange::count(cache::Event event) {
  worker_.cache_counters().count(generation_->host_slot(route_.host), event);
}

void Exchange::serve_from_cache() {
  step(Step::kLookup);
  const http::RequestHead& head = *head_;
  for (const std::string& name : policy_->bypass_on_cookie) {
    if (cookie_value(head.headers, name)) {
      count(cache::Event::kPass);
      return start_pass();
    }
  }
  compute_key();
  request_cc_ = cache::parse_cache_control(head.headers, true);
  const bool authorized = head.headers.get("Authorization").has_value();

  // With `ram: off` no object of the route is in the store, but its hit-for-pass marks are.
  cache::Store::Lookup found = worker_.shared().store.lookup(cache_key_, head.headers, key_extra_);
  if (found.object && (!authorized || cache::shareable_with_authorization(found.object->cc))) {
    const cache::ObjectRef& object = found.object;
    if (object->partial()) return serve_partial(object);
    switch (cache::decide(request_cc_, cache::stored_view(*object, wall_now()))) {
      case cache::Use::kFresh:
        count(cache::Event::kHit);
        step(Step::kHit);
        return deliver(object, "HIT");
      case cache::Use::kStaleAllowed:
        count(cache::Event::kStale);
        step(Step::kStale);
        return deliver(object, "STALE");
      case cache::Use::kStaleWhileRevalidate:
        count(cache::Event::kStale);
        step(Step::kStale);
        refresh_in_background(object);
        return deliver(object, "STALE");
      case cache::Use::kRevalidate:
        if (request_cc_.only_if_cached) return owner_->on_exchange_failed(504);
        // Only this client's no-cache or max-age may find the object too old while it is
        // fresh for everyone else: then a 304 refreshes it, but a full answer, shaped by
        // fields the key does not describe, goes to this client alone.
        if (cache::decide(cache::CacheControl{}, cache::stored_view(*object, wall_now())) == cache::Use::kFresh)
          return start_fill(object, false, false);
        return start_fill(object, true);
    }
  }
  // RFC 9111 5.2.1.7: nothing stored will do, and the client wants nothing else.
  if (request_cc_.only_if_cached) return owner_->on_exchange_failed(504);
  if (found.hit_for_pass) {
    count(cache::Event::kHitForPass);
    // A static route's value may have reached memcached since the mark (baked after a request
    // for it): memcached is still asked, only nobody waits for another request's fetch.
    if (policy_->static_source == conf::StaticSource::kMemcached && worker_.shared().tier) return start_fill(nullptr, false);
    return start_pass();
  }
  // A request that may not be stored (no-store) still passes; one with credentials fetches
  // alone, since what it gets may be for it only.
  if (request_cc_.no_store) {
    count(cache::Event::kPass);
    return start_pass();
  }
  // A range far into the representation is fetched as it is asked, not after all that precedes it.
  if (!policy_->esi && policy_->ram) {
    const std::optional<cache::ByteRange> range = cache::requested_range(head);
    if (range && range->first >= policy_->range_fetch_from) return start_range_fill(nullptr, *range, true);
  }
  start_fill(nullptr, !authorized);
}

void Exchange::compute_key() {
  cache_host_.assign(authority_);
  const std::string_view target = origin_target_.empty() ? std::string_view(head_->target) : origin_target_;
  cache_key_ = cache::cache_key(cache_host_, target);
  key_extra_.clear();
  // A cookie's part always has '=': "https;" never reads as one.
  if (policy_->key_scheme) key_extra_.append(https_ ? "https;" : "http;");
  for (const std::string& name : policy_->key_cookies) {
    key_extra_.append(name).append("=");
    if (auto value = cookie_value(head_->headers, name)) key_extra_.append(*value);
    key_extra_.append(";");
  }
}

cache::ByteRange Exchange::wanted_bytes(const http::Headers& stored, uint64_t size) const {
  const cache::RangeDecision range = cache::decide_range(*head_, stored, size);
  if (range.kind == cache::RangeDecision::kPartial) return range.range;
  return {0, size - 1};
}

void Exchange::serve_partial(const cache::ObjectRef& object) {
  const cache::CachedObject& stored = *object;
  const http::RequestHead& head = *head_;
  const cache::Use use = cache::decide(request_cc_, cache::stored_view(stored, wall_now()));
  const cache::RangeDecision range = cache::decide_range(head, stored.headers, stored.complete_length());
  const bool client_range = range.kind == cache::RangeDecision::kPartial;
  const cache::ByteRange wanted = client_range ? range.range : cache::ByteRange{0, stored.complete_length() - 1};
  if (use == cache::Use::kFresh || use == cache::Use::kStaleAllowed) {
    // What the parts answer alone: a HEAD, a condition, a range past the end, bytes they hold.
    const bool answered = head.is_head() ||
                          cache::evaluate_preconditions(head, stored.headers) != cache::Precondition::kProceed ||
                          range.kind == cache::RangeDecision::kUnsatisfiable ||
                          cache::parts_cover(stored.parts(), wanted.first, wanted.last);
    if (answered) {
      const bool fresh = use == cache::Use::kFresh;
      count(fresh ? cache::Event::kHit : cache::Event::kStale);
      step(fresh ? Step::kHit : Step::kStale);
      return deliver(object, fresh ? "HIT" : "STALE");
    }
    const std::optional<cache::ByteRange> missing = cache::missing_span(stored.parts(), wanted.first, wanted.last);
    return start_range_fill(object, *missing, client_range && missing->first == wanted.first &&
                                                  missing->last == wanted.last);
  }
  if (request_cc_.only_if_cached) return owner_->on_exchange_failed(504);
  // Stale: all the request wants is fetched, with If-Range on the stored validator; the stored
  // parts join the new one if it is unchanged (RFC 9111 3.4), and a 200 replaces them if not.
  start_range_fill(object, wanted, client_range);
}

void Exchange::start_range_fill(cache::ObjectRef partial, cache::ByteRange range, bool range_is_request) {
  Fill::Params params = fill_params(nullptr, false);
  params.tier_lookup = false;  // memcached holds complete responses only
  std::string fields = "Range: bytes=";
  append_number(fields, range.first);
  fields.push_back('-');
  if (range.last != UINT64_MAX) append_number(fields, range.last);
  fields.append("\r\n");
  if (partial) append_field(fields, "If-Range", cache::strong_validator(partial->headers));
  params.upstream_head.insert(params.upstream_head.size() - 2, fields);
  params.range = range;
  params.partial = std::move(partial);
  params.range_is_request = range_is_request;
  bool started = false;
  fill_ = Fill::start(worker_, std::move(params), id_, this, &started);
  fill_initiator_ = true;
  step(Step::kMiss);
  on_fill_event();  // it may have failed at once
}

Fill::Params Exchange::fill_params(cache::ObjectRef stale, bool coalesced) {
  Fill::Params params;
  params.key = cache_key_;
  params.host = cache_host_;
  params.variant_extra = key_extra_;
  params.host_index = route_.host;
  params.policy = policy_;
  params.request = *head_;
  params.generation = generation_;
  params.backend = route_.backend;
  // A route that compresses stores identity (or what the backend sends anyway, decoded) and
  // makes its codings itself: the backend is spared the work, and one object serves everyone.
  build_upstream_head(params.upstream_head, *head_, authority_, origin_target_, client_ip_, https_, 0,
                      generation_->config, route_.backend, true, stale.get(), policy_->compress.enabled);
  params.stale = std::move(stale);
  params.coalesced = coalesced;
  params.streak = generation_->route_streak(route_);
  params.ram = policy_->ram;
  if (worker_.shared().tier) {
    if (policy_->static_source == conf::StaticSource::kMemcached) {
      const std::string_view target = origin_target_.empty() ? std::string_view(head_->target) : origin_target_;
      params.tier_key = cache::expand_static_key(policy_->static_key, cache_host_, target);
      params.static_route = true;
      params.static_path.assign(target.substr(0, target.find('?')));
    } else {
      params.tier_key = Tier::http_key(cache_key_, key_extra_);
    }
  }
  return params;
}

void Exchange::start_fill(cache::ObjectRef stale, bool coalesced, bool replaces) {
  // `ram: off` reads memcached for every request: no fill is shared, as no object stays. A
  // route whose recent responses were none storable makes nobody wait (proxy/herd.h).
  coalesced = coalesced && policy_->ram;
  if (coalesced) {
    const RouteStreak* streak = generation_->route_streak(route_);
    if (streak && streak->passes(generation_->config.cache.route_pass_after)) coalesced = false;
  }
  if (coalesced) {
    if (std::shared_ptr<Fill> running = worker_.shared().coalescer.find(cache_key_)) return join_fill(std::move(running));
  }
  bool started = false;
  Fill::Params params = fill_params(std::move(stale), coalesced);
  params.replaces = replaces;
  if (!replaces) params.tier_lookup = false;  // the client asked the origin, not another node
  std::shared_ptr<Fill> fill = Fill::start(worker_, std::move(params), id_, this, &started);
  if (!started) return join_fill(std::move(fill));
  fill_initiator_ = true;
  fill_ = std::move(fill);
  step(Step::kMiss);
  on_fill_event();  // it may have failed at once
}

void Exchange::join_fill(std::shared_ptr<Fill> fill) {
  count(cache::Event::kCoalesced);
  step(Step::kWait);
  fill_ = std::move(fill);
  fill_initiator_ = false;
  fill_->subscribe(worker_, id_, *this);
  on_fill_event();  // it may be well under way, or over
}

void Exchange::leave_fill() {
  if (!fill_) return;
  fill_->unsubscribe(worker_, id_);
  fill_.reset();
  fill_initiator_ = false;
}

void Exchange::stop_waiting() {
  if (!waiting_for_fill()) return;
  leave_fill();
  start_pass();
}

void Exchange::refresh_in_background(const cache::ObjectRef& stale) {
  if (worker_.shared().coalescer.find(cache_key_)) return;  // already being refreshed
  bool started = false;
  Fill::start(worker_, fill_params(stale, true), 0, nullptr, &started);
}

void Exchange::deliver(const cache::ObjectRef& object, const char* x_cache) {
  x_cache_ = x_cache;
  owner_->on_exchange_object(object, x_cache);
}

void Exchange::on_fill_event() {
  if (!fill_) return;
  const Fill::Snapshot snap = fill_->snapshot();
  // Only the fill this request started is its backend exchange; one it joined was another's.
  if (fill_initiator_ && snap.fetch.backend >= 0) facts_ = snap.fetch;
  switch (snap.state) {
    case Fill::State::kFetching:
      return;
    case Fill::State::kStreaming: {
      if (delivering_) {
        if (snap.object->body->complete() || snap.object->body->failed()) leave_fill();
        return owner_->on_exchange_progress();
      }
      if (snap.object->partial()) {
        // A part that does not hold what this request wants (the backend sent less, or the
        // representation changed under the stored parts): the request goes as it came.
        const cache::ByteRange wanted = wanted_bytes(snap.object->headers, snap.object->complete_length());
        if (!cache::parts_cover(snap.object->parts(), wanted.first, wanted.last)) {
          leave_fill();
          count(cache::Event::kPass);
          return start_pass();
        }
      }
      if (!fill_initiator_ && !cache::Store::variant_matches(*snap.object, head_->headers, key_extra_)) {
        // Another variant was fetched: this request needs its own.
        leave_fill();
        return start_fill(nullptr, false);
      }
      // A miss counts once its response proves storable; one that is not counts as a pass.
      const char* label = "HIT";
      if (snap.revalidated) {
        count(cache::Event::kRevalidated);
        label = "REVALIDATED";
      } else if (snap.stale_from_tier) {
        count(cache::Event::kStale);
        label = "STALE";
      } else if (snap.from_tier) {
        count(cache::Event::kHit);
      } else if (fill_initiator_) {
        count(cache::Event::kMiss);
        label = "MISS";
      }
      delivering_ = true;
      if (snap.object->body->complete()) leave_fill();
      return deliver(snap.object, label);
    }
    case Fill::State::kPass: {
      // A revalidation answered 5xx: the stale object where this request allows it, else the
      // backend's answer, not an error of edge's own.
      const bool trouble = snap.status != 0;
      if (trouble && stale_may_stand_in(snap.stale)) {
        leave_fill();
        count(cache::Event::kStale);
        step(Step::kStale);
        return deliver(snap.stale, "STALE");
      }
      if (fill_initiator_) return take_pass();
      // Not storable, and not ours (the initiator took the response): to the backend, in parallel.
      leave_fill();
      count(trouble ? cache::Event::kPass : cache::Event::kHitForPass);
      return start_pass();
    }
    case Fill::State::kFailed: {
      const bool broke_off = delivering_;
      leave_fill();
      if (broke_off) return owner_->on_exchange_failed(502);
      return serve_stale_or_error(snap.stale, snap.status ? snap.status : 502);
    }
  }
}

bool Exchange::stale_may_stand_in(const cache::ObjectRef& stale) const {
  return stale && cache::may_serve_stale_on_error(request_cc_, cache::stored_view(*stale, wall_now()));
}

void Exchange::serve_stale_or_error(const cache::ObjectRef& stale, int status) {
  if (stale_may_stand_in(stale)) {
    count(cache::Event::kStale);
    step(Step::kStale);
    return deliver(stale, "STALE");
  }
  owner_->on_exchange_failed(status);
}

void Exchange::take_pass() {
  Fill::Pass pass = fill_->take_pass(id_);
  leave_fill();
  count(cache::Event::kPass);
  x_cache_ = "PASS";
  // Nothing to take (decided before this exchange could be told): to the backend, alone.
  if (!pass.fetch) return start_pass();
  step(Step::kPass);
  fetch_ = std::move(pass.fetch);
  fetch_->set_owner(this);
  on_fetch_response(*fetch_, *pass.head, pass.complete);
}

void Exchange::start_pass() {
  x_cache_ = "PASS";
  step(Step::kPass);
  Fetch::Request request;
  request.generation = generation_;
  request.backend = route_.backend;
  // Built only now: a request answered from the cache never needs it.
  build_upstream_head(request.head, *head_, authority_, origin_target_, client_ip_, https_, body_ ? body_->size() : 0,
                      generation_->config, route_.backend, false, nullptr, false, upgrade_);
  request.upgrade = !upgrade_.empty();
  request.body = body_;
  request.head_request = head_->is_head();
  request.idempotent = head_->idempotent();
  pass_sent_at_ = wall_now();
  // A fetch that fails at once calls back (and the owner may already have moved on to its next
  // request, starting this exchange again): only one still running is ours to keep.
  if (Fetch* fetch = Fetch::start(worker_, this, std::move(request))) fetch_.reset(fetch);
}

void Exchange::on_fetch_failed(Fetch& fetch, int status) {
  facts_ = fetch.facts();
  post_object_.reset();
  post_body_.reset();
  if (fetch_.get() == &fetch) fetch_.release();  // finished just below
  fetch.finish();
  owner_->on_exchange_failed(status);
}

void Exchange::on_fetch_response(Fetch& fetch, const http::ResponseHead& head, bool complete) {
  facts_ = fetch.facts();
  if (!delivering_) {
    delivering_ = true;
    invalidate_after(head);
    if (head_->method == "POST" && policy_->enabled && policy_->ram) start_storing_post(head);
  }
  // Copied before the owner writes it out and lets it go.
  if (post_object_) copy_post_body(fetch, complete);
  owner_->on_exchange_response(fetch, head, complete);
}

void Exchange::start_storing_post(const http::ResponseHead& head) {
  // What a GET would bypass the cache for is not stored for it either.
  for (const std::string& name : policy_->bypass_on_cookie)
    if (cookie_value(head_->headers, name)) return;
  compute_key();
  const std::string_view target = origin_target_.empty() ? std::string_view(head_->target) : origin_target_;
  post_object_ = object_for_post(fill_params(nullptr, false), target, head, pass_sent_at_);
  if (!post_object_) return;
  post_body_ = std::make_shared<http::SharedBody>(head.content_length.value_or(0));
  post_object_->body = post_body_;
}

void Exchange::copy_post_body(Fetch& fetch, bool complete) {
  const http::Body& body = fetch.response_body();
  std::string scratch;
  http::IoSlice slices[16];
  while (post_body_->size() < body.size()) {
    const int n = body.peek(post_body_->size(), slices, 16, SIZE_MAX, scratch);
    if (n <= 0) break;
    for (int i = 0; i < n; ++i) post_body_->append({slices[i].data, slices[i].len});
  }
  if (post_body_->size() > generation_->config.cache.max_object) {
    post_object_.reset();
    post_body_.reset();
    return;
  }
  if (!complete) return;
  post_body_->finish();
  if (std::shared_ptr<cache::CachedObject> encoded = with_encodings(*post_object_, policy_->compress))
    post_object_ = std::move(encoded);
  worker_.shared().store.insert(std::move(post_object_));
  post_body_.reset();
}

void Exchange::invalidate_after(const http::ResponseHead& head) {
  // RFC 9111 4.4: an unsafe method that succeeded changes what the cache holds for the target
  // and for Location / Content-Location on the same host.
  const http::RequestHead& request = *head_;
  if (request.method == "GET" || request.is_head() || request.method == "OPTIONS" || request.method == "TRACE") return;
  if (head.status < 200 || head.status >= 400) return;
  const std::string host(authority_);
  http::RequestHead origin_form;
  const http::RequestHead* effective = &request;
  if (!origin_target_.empty()) {
    origin_form = request;
    origin_form.target.assign(origin_target_);
    effective = &origin_form;
  }
  for (const std::string& target : cache::invalidated_targets(*effective, head, host))
    worker_.shared().store.purge(cache::cache_key(host, target), false);
}

}  // namespace edge::proxy
