#include "proxy/fill.h"

#include <algorithm>
#include <utility>

#include "cache/policy.h"
#include "cache/targeted.h"
#include "proxy/assembly.h"
#include "proxy/clock.h"
#include "proxy/compression.h"
#include "proxy/exchange.h"
#include "proxy/heads.h"
#include "proxy/worker.h"

namespace edge::proxy {

namespace {

cache::Seconds seconds(conf::Duration d) { return static_cast<cache::Seconds>(d.count() / 1000); }

cache::StoreOptions store_options(const conf::CachePolicy& policy, const conf::Cache& cache) {
  cache::StoreOptions options;
  options.store_set_cookie = policy.store_set_cookie;
  options.default_ttl = seconds(policy.ttl);
  if (policy.max_ttl.count() > 0) options.max_ttl = seconds(policy.max_ttl);
  options.heuristic_cap = seconds(cache.heuristic_max);
  return options;
}

std::vector<std::string> surrogate_tags(const http::Headers& headers) {
  std::vector<std::string> tags;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!http::iequals(headers.name(i), "Surrogate-Key") && !http::iequals(headers.name(i), "xkey")) continue;
    std::string_view value = headers.value(i);
    size_t pos = 0;
    while (pos < value.size()) {
      size_t start = value.find_first_not_of(" \t,", pos);
      if (start == std::string_view::npos) break;
      size_t end = value.find_first_of(" \t,", start);
      if (end == std::string_view::npos) end = value.size();
      tags.emplace_back(value.substr(start, end - start));
      pos = end;
    }
  }
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return tags;
}

std::vector<std::string> vary_names(const http::Headers& headers) {
  std::vector<std::string> names;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!http::iequals(headers.name(i), "Vary")) continue;
    http::for_each_token(headers.value(i), [&](std::string_view token) {
      std::string name(token);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      names.push_back(std::move(name));
    });
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

// A status that says the backend is in trouble: never a reason to stop trying to cache the key.
bool backend_trouble(int status) { return status >= 500; }

// A fill's upstream head (a GET, ending in an empty line) made conditional on `stored`.
void add_validators(std::string& head, const cache::CachedObject& stored) {
  std::string fields;
  append_validators(fields, stored);
  if (fields.empty() || head.size() < 2) return;
  head.insert(head.size() - 2, fields);
}

// Parts of the same representation: the same strong validator and length (RFC 9111 3.4).
bool same_representation(const cache::CachedObject& a, const cache::CachedObject& b) {
  const uint64_t a_length = a.partial() ? a.complete_length() : a.body->size();
  const uint64_t b_length = b.partial() ? b.complete_length() : b.body->size();
  const std::string validator = cache::strong_validator(a.headers);
  return !validator.empty() && a_length == b_length && validator == cache::strong_validator(b.headers);
}

// A page read back whole (from memcached) compiled as a fill compiles one as it arrives.
void attach_template(cache::CachedObject& object) {
  ssi::Parser parser(ssi::Syntax::kBoth);
  std::string scratch;
  http::IoSlice slices[16];
  uint64_t offset = 0;
  while (offset < object.body->size()) {
    const int n = object.body->peek(offset, slices, 16, SIZE_MAX, scratch);
    if (n <= 0) break;
    for (int i = 0; i < n; ++i) {
      parser.feed({slices[i].data, slices[i].len});
      offset += slices[i].len;
    }
  }
  ssi::Template compiled = parser.finish();
  if (!compiled.is_verbatim()) object.set_attachment(std::make_shared<CompiledPage>(std::move(compiled)));
}

// A new object for params.key from a response: identity, status, variant, freshness and tags;
// the caller sets fields and body. A standard reason phrase is not kept: it is the default.
std::shared_ptr<cache::CachedObject> new_object(const Fill::Params& params, const http::ResponseHead& head,
                                                const http::ResponseHead& policy_head, cache::Seconds request_time,
                                                cache::Seconds now) {
  const cache::StoreOptions options = store_options(*params.policy, params.generation->config.cache);
  auto object = std::make_shared<cache::CachedObject>();
  const std::string_view key = params.key;
  object->set_key(key, params.host, key.substr(std::min(params.host.size(), key.size())));
  object->status = head.status;
  if (head.reason != http::reason_phrase(head.status)) object->set_reason(head.reason);
  object->vary_names = vary_names(head.headers);
  const std::optional<std::string> vary_part = cache::vary_key(head.headers, params.request.headers);
  object->variant = cache::Store::variant_string(vary_part.value_or(""), params.variant_extra);
  const cache::AgeBasis age = cache::age_basis(head, request_time, now);
  const cache::CacheControl cc = cache::parse_cache_control(policy_head.headers, false);
  object->age = age;
  object->cc = cc;
  object->lifetime = cache::freshness_lifetime(policy_head, cc, age, options);
  object->grace = seconds(params.policy->grace);
  object->set_tags(surrogate_tags(head.headers));
  return object;
}

}  // namespace

std::shared_ptr<cache::CachedObject> object_for_post(const Fill::Params& params, std::string_view target,
                                                     const http::ResponseHead& head, cache::Seconds request_time) {
  const conf::Cache& config = params.generation->config.cache;
  if (params.policy->esi || wants_esi(head.headers)) return nullptr;
  if (head.content_length && *head.content_length > config.max_object) return nullptr;
  const std::optional<http::ResponseHead> targeted = cache::targeted_view(head, config.targeted_field);
  const http::ResponseHead& policy_head = targeted ? *targeted : head;
  if (!cache::post_answers_get(params.request, target, policy_head, params.host, store_options(*params.policy, config)))
    return nullptr;
  std::shared_ptr<cache::CachedObject> object = new_object(params, head, policy_head, request_time, wall_now());
  object->headers = cache::stored_headers(head.headers);
  return object;
}

std::shared_ptr<Fill> Fill::start(Worker& worker, Params params, uint64_t initiator_id, FillSubscriber* initiator,
                                  bool* started) {
  auto fill = std::shared_ptr<Fill>(new Fill(worker, std::move(params)));
  // What was fetched is a GET whatever the client sent (a HEAD is answered from it), and
  // storability is judged for that GET.
  fill->params_.request.method = "GET";
  *started = true;
  if (fill->params_.coalesced) {
    std::shared_ptr<Fill> running = worker.shared().coalescer.add(fill);
    if (running != fill) {
      // Another worker started one for this key a moment ago: the caller joins it instead.
      *started = false;
      return running;
    }
  }
  {
    std::lock_guard lock(fill->mutex_);
    if (initiator) {
      fill->initiator_ = initiator_id;
      fill->subscribers_.push_back(Subscriber{&worker, initiator_id, initiator});
    }
  }
  // A fetch may fail at once, before the initiator holds the fill to read it with.
  fill->starting_ = true;
  if (!fill->params_.tier_lookup || fill->params_.tier_key.empty() || !fill->ask_tier(fill->params_.tier_key))
    fill->start_fetch();
  fill->starting_ = false;
  return fill;
}

bool Fill::ask_tier(std::string key) {
  Tier* tier = worker_.shared().tier.get();
  if (!tier) return false;
  Tier::Lookup lookup;
  lookup.key = std::move(key);
  lookup.foreign_ok = params_.static_route;
  lookup.path = params_.static_path;
  lookup.foreign_lifetime = seconds(params_.policy->ttl);
  // The answer holds the fill (a task dropped at shutdown lets it go).
  auto answer = [fill = shared_from_this()](Tier::Found found) { fill->on_tier_found(std::move(found)); };
  return tier->lookup(std::move(lookup), worker_.poster(), std::move(answer));
}

void Fill::start_fetch() {
  self_ = shared_from_this();
  Fetch::Request request;
  request.generation = params_.generation;
  request.backend = params_.backend;
  request.head = std::move(params_.upstream_head);
  request.idempotent = true;
  request_time_ = wall_now();
  Fetch::start(worker_, this, std::move(request));
}

void Fill::on_tier_found(Tier::Found found) {
  std::shared_ptr<cache::CachedObject> object = std::move(found.object);
  if (object && found.kind == Tier::Found::Kind::kRecord) {
    // A record's directives are read again from its fields: a targeted field among them rules.
    if (std::optional<cache::CacheControl> targeted =
            cache::targeted_directives(object->headers, params_.generation->config.cache.targeted_field))
      object->cc = *targeted;
    const http::Headers& request = params_.request.headers;
    // Keys are hashed when long: the record says whose it is. A static key is the route's
    // choice, whatever wrote it.
    if (!params_.static_route && object->key() != params_.key) object.reset();
    if (object && !params_.static_route && !cache::Store::variant_matches(*object, request, params_.variant_extra)) {
      // The URL's key holds its latest variant; each variant also has a key of its own.
      const std::optional<std::string> vary_part = cache::vary_key(object->headers, request);
      const bool asked_already = variant_asked_;
      variant_asked_ = true;
      if (vary_part && !asked_already &&
          ask_tier(Tier::http_key(params_.key, cache::Store::variant_string(*vary_part, params_.variant_extra))))
        return;
      object.reset();
    }
    if (object && request.get("Authorization") && !cache::shareable_with_authorization(object->cc)) object.reset();
  }
  // Compiled before anything else uses it: served, or revalidated (a 304 keeps the template).
  if (object && (found.assemble || params_.policy->esi)) attach_template(*object);
  if (object && found.kind == Tier::Found::Kind::kRecord) {
    const cache::Use use = cache::decide(cache::parse_cache_control(params_.request.headers, true),
                                         cache::stored_view(*object, wall_now()));
    if (use == cache::Use::kStaleWhileRevalidate && params_.coalesced) {
      // Within grace or stale-while-revalidate (a soft purge elsewhere, say): served stale at
      // once, and refreshed by a fill of its own once this one has left the coalescer.
      refresh_after_publish_ = object;
      stale_from_tier_ = true;
    } else if (use != cache::Use::kFresh && use != cache::Use::kStaleAllowed) {
      // Stale in memcached: revalidated with the backend like a stale object of our own.
      if (!params_.stale) {
        add_validators(params_.upstream_head, *object);
        // Subscribers on other workers read it through snapshot(), under the lock.
        std::lock_guard lock(mutex_);
        params_.stale = std::move(object);
      }
      object.reset();
    }
  }
  if (!object) return start_fetch();
  publish_from_tier(std::move(object));
}

void Fill::write_through(const cache::CachedObject& object) {
  Tier* tier = worker_.shared().tier.get();
  if (!tier || params_.tier_key.empty()) return;
  tier->store(object, params_.tier_key);
  if (!params_.static_route && !object.vary_names.empty())
    tier->store(object, Tier::http_key(params_.key, object.variant));
}

void Fill::publish_from_tier(std::shared_ptr<cache::CachedObject> object) {
  // Kept in RAM, it gets its encodings once (a record may carry them already); else each
  // delivery compresses as it streams.
  if (params_.ram) {
    if (std::shared_ptr<cache::CachedObject> encoded = with_encodings(*object, params_.policy->compress))
      object = std::move(encoded);
  }
  // A foreign value has no freshness of its own: it goes into RAM only for the route's ttl.
  Shared& shared = worker_.shared();
  if (params_.ram && object->lifetime > 0 && shared.store.insert(object) &&
      compress_later(*object, params_.policy->compress))
    shared.compressor.submit(object, params_.policy->compress);
  if (params_.streak) params_.streak->storable();
  {
    std::lock_guard lock(mutex_);
    state_ = State::kStreaming;
    object_ = std::move(object);
    from_tier_ = true;
  }
  end();
}

void Fill::refresh_from_backend() {
  Params refresh = params_;
  add_validators(refresh.upstream_head, *refresh_after_publish_);
  refresh.stale = std::move(refresh_after_publish_);
  refresh.tier_lookup = false;  // memcached was just asked
  bool started = false;
  Fill::start(worker_, std::move(refresh), 0, nullptr, &started);
}

bool Fill::subscribe(Worker& worker, uint64_t id, FillSubscriber& subscriber) {
  std::lock_guard lock(mutex_);
  if (over_) return false;
  // Another worker's subscriber is told through its inbox, which finds it by id.
  if (&worker != &worker_) worker.add_subscriber(id, &subscriber);
  subscribers_.push_back(Subscriber{&worker, id, &subscriber});
  return true;
}

void Fill::unsubscribe(Worker& worker, uint64_t id) {
  std::lock_guard lock(mutex_);
  std::erase_if(subscribers_, [&](const Subscriber& s) { return s.worker == &worker && s.id == id; });
  if (&worker != &worker_) return worker.remove_subscriber(id);
  ++departures_;
  // The initiator leaving changes nothing else: the fill completes for the others and the cache.
  if (id == initiator_) initiator_ = 0;
}

bool Fill::subscribed(uint64_t id) const {
  std::lock_guard lock(mutex_);
  return std::any_of(subscribers_.begin(), subscribers_.end(),
                     [&](const Subscriber& s) { return s.worker == &worker_ && s.id == id; });
}

Fill::Pass Fill::take_pass(uint64_t initiator_id) {
  if (!initiator_id || initiator_id != initiator_) return {};
  return std::exchange(pass_, Pass{});
}

Fill::Snapshot Fill::snapshot() const {
  std::lock_guard lock(mutex_);
  Snapshot s;
  s.state = state_;
  s.object = object_;
  s.stale = params_.stale;
  s.status = status_;
  s.revalidated = revalidated_;
  s.from_tier = from_tier_;
  s.stale_from_tier = stale_from_tier_;
  s.fetch = facts_;
  return s;
}

void Fill::notify_all() {
  // A subscriber told directly may unsubscribe itself or others, or subscribe to another fill:
  // the list is copied and the lock released first, and once anyone here has left, each one is
  // looked up again before it is called. The fill outlives the calls: its caller holds it
  // (self_, or the tier's answer).
  std::vector<Subscriber> subscribers;
  uint64_t departures = 0;
  {
    std::lock_guard lock(mutex_);
    subscribers = subscribers_;
    departures = departures_;
  }
  for (const Subscriber& s : subscribers) {
    if (s.worker != &worker_) {
      s.worker->post_fill_event(s.id);
    } else if (!starting_ && (departures == departures_ || subscribed(s.id))) {
      s.subscriber->on_fill_event();
    }
  }
}

void Fill::end() {
  {
    std::lock_guard lock(mutex_);
    over_ = true;
  }
  // Out of the coalescer before anyone hears the last event: a subscriber told directly may
  // answer its client at once, whose next request must not find this fill running.
  if (params_.coalesced) worker_.shared().coalescer.remove(this);
  if (refresh_after_publish_) refresh_from_backend();  // registered before anyone is told
  notify_all();
  pass_ = Pass{};  // untaken (the initiator left): the fetch is finished
  self_.reset();  // may free the fill: nothing after this
}

void Fill::on_fetch_interim(Fetch&, const http::ResponseHead& interim) {
  FillSubscriber* initiator = nullptr;
  {
    std::lock_guard lock(mutex_);
    for (const Subscriber& s : subscribers_)
      if (s.worker == &worker_ && s.id == initiator_ && initiator_) initiator = s.subscriber;
  }
  if (initiator) initiator->on_fill_interim(interim);
}

void Fill::on_fetch_response(Fetch& fetch, const http::ResponseHead& head, bool complete) {
  if (!decided_) {
    {
      std::lock_guard lock(mutex_);
      facts_ = fetch.facts();
    }
    return decide(fetch, head, complete);
  }
  if (filling_) copy_body(fetch, complete);
}

void Fill::decide(Fetch& fetch, const http::ResponseHead& head, bool complete) {
  decided_ = true;
  Shared& shared = worker_.shared();
  const conf::Cache& config = params_.generation->config.cache;
  const cache::Seconds now = wall_now();
  const cache::StoreOptions options = store_options(*params_.policy, config);

  if (params_.stale && head.status == 304) {
    // The stored response is still good: its head is refreshed, its body kept (RFC 9111 4.3.4).
    auto object = std::make_shared<cache::CachedObject>();
    const cache::CachedObject& stale = *params_.stale;
    object->set_key(stale.key(), stale.host(), stale.path());
    object->variant = stale.variant;
    object->vary_names = stale.vary_names;
    object->status = stale.status;
    object->set_reason(stale.reason());
    http::ResponseHead merged;
    merged.status = stale.status;
    merged.headers = cache::merge_not_modified(stale.headers, head.headers);
    object->headers = cache::stored_headers(merged.headers);
    object->body = stale.body;
    if (std::optional<http::ResponseHead> view = cache::targeted_view(merged, config.targeted_field)) merged = std::move(*view);
    const cache::AgeBasis age = cache::age_basis(head, request_time_, now);
    const cache::CacheControl cc = cache::parse_cache_control(merged.headers, false);
    object->age = age;
    object->cc = cc;
    object->lifetime = cache::freshness_lifetime(merged, cc, age, options);
    object->grace = stale.grace;
    object->set_tags(stale.tags());
    object->set_attachment(stale.attachment());  // same body, same compiled template and encodings
    object->set_encodings(stale.encodings());
    object->decoded = stale.decoded;
    if (params_.ram) shared.store.insert(object);
    write_through(*object);
    if (params_.streak) params_.streak->storable();
    {
      std::lock_guard lock(mutex_);
      state_ = State::kStreaming;
      object_ = object;
      revalidated_ = true;
    }
    fetch.finish();
    return end();
  }

  if (params_.stale && backend_trouble(head.status)) {
    // Subscribers decide, each by its own request, whether the stale object may stand in; where
    // it may not, the backend's own answer is theirs (the initiator takes this one over), as a
    // pass: nothing stored, nothing marked.
    {
      std::lock_guard lock(mutex_);
      state_ = State::kPass;
      status_ = head.status;
    }
    fetch.set_owner(nullptr);
    pass_ = Pass{FetchHandle(&fetch), &head, complete};
    return end();
  }

  // What this cache obeys: a targeted field's directives when one applies (cache/targeted.h).
  // The stored fields stay as received, so a later 304 is read the same way.
  const std::optional<http::ResponseHead> targeted = cache::targeted_view(head, config.targeted_field);
  const http::ResponseHead& policy_head = targeted ? *targeted : head;
  // A range fill's 206 (or 416) says nothing of the key as a whole: it is a part, or it passes
  // without a mark.
  if (params_.range && (head.status == 206 || head.status == 416)) {
    if (head.status == 206 && decide_part(fetch, head, policy_head, complete)) return;
    {
      std::lock_guard lock(mutex_);
      state_ = State::kPass;
    }
    if (params_.range_is_request) {
      fetch.set_owner(nullptr);
      pass_ = Pass{FetchHandle(&fetch), &head, complete};
    } else {
      fetch.finish();  // bytes the client did not ask for alone: it fetches its own request
    }
    return end();
  }
  const cache::StoreVerdict verdict = cache::can_store(params_.request, policy_head, options);
  const bool too_large = head.content_length && *head.content_length > config.max_object;
  if (!params_.replaces || verdict != cache::StoreVerdict::kStore || too_large) {
    if (params_.replaces && (too_large || cache::marks_hit_for_pass(verdict, head.status))) {
      // A 5xx marks the key when its own fields refuse storing, but says nothing about the route.
      if (params_.streak && !backend_trouble(head.status)) params_.streak->not_storable(config.route_pass_after);
      if (config.hit_for_pass.count() > 0)
        shared.store.mark_hit_for_pass(params_.key, now + seconds(config.hit_for_pass), now);
    }
    {
      std::lock_guard lock(mutex_);
      state_ = State::kPass;
    }
    // The initiator (on this loop, told directly) takes the response over while it is told;
    // the others fetch for themselves.
    fetch.set_owner(nullptr);
    pass_ = Pass{FetchHandle(&fetch), &head, complete};
    return end();
  }

  // A route that makes its own codings asked the backend for none: its Vary on Accept-Encoding
  // tells nothing apart that edge keys on (edge says it again when it sends a coding), and a
  // coding it applied anyway is undone as the body arrives, kept as sent besides.
  const compress::Rules& rules = params_.policy->compress;
  std::optional<http::ResponseHead> negotiated;
  if (rules.enabled) {
    const std::optional<compress::Coding> applied = compress::applied_coding(head.headers);
    if (applied && !compress::no_transform(head.headers)) {
      decoder_ = compress::Decoder::make(*applied);
      coded_ = std::make_shared<http::SharedBody>(head.content_length.value_or(0));
      coded_as_ = *applied;
    }
    if (decoder_ || head.headers.has_token("vary", "accept-encoding")) {
      negotiated = head;
      negotiated->headers = compress::without_vary_accept_encoding(head.headers);
      if (decoder_) negotiated->headers.remove_if([](std::string_view name, http::FieldId) {
        return http::iequals(name, "content-encoding");
      });
    }
  }
  const http::ResponseHead& stored_head = negotiated ? *negotiated : head;
  std::shared_ptr<cache::CachedObject> object = new_object(params_, stored_head, policy_head, request_time_, now);
  object->headers = cache::stored_headers(stored_head.headers);
  object->decoded = decoder_ != nullptr;
  body_ = std::make_shared<http::SharedBody>(decoder_ ? 0 : head.content_length.value_or(0));
  object->body = body_;
  filling_ = object;
  if (params_.policy->esi || wants_esi(head.headers)) {
    esi_parser_.emplace(ssi::Syntax::kBoth);
  } else {
    std::lock_guard lock(mutex_);
    state_ = State::kStreaming;
    object_ = object;
  }
  copy_body(fetch, complete);
}

bool Fill::decide_part(Fetch& fetch, const http::ResponseHead& head, const http::ResponseHead& policy_head,
                       bool complete) {
  const conf::Cache& config = params_.generation->config.cache;
  if (head.headers.count("content-range") != 1) return false;  // none, or a multipart answer
  const std::optional<cache::ContentRange> range = cache::parse_content_range(*head.headers.get("Content-Range"));
  if (!range || range->first != params_.range->first || range->last > params_.range->last) return false;
  const uint64_t length = range->last - range->first + 1;
  if ((head.content_length && *head.content_length != length) || length > config.max_object) return false;
  // Parts combine only by a strong validator (RFC 9111 3.4); a page to assemble is kept whole.
  if (cache::strong_validator(head.headers).empty() || params_.policy->esi || wants_esi(head.headers)) return false;
  // Storable as the complete response would be (RFC 9111 3.3).
  http::ResponseHead whole = policy_head;
  whole.status = 200;
  if (cache::can_store(params_.request, whole, store_options(*params_.policy, config)) != cache::StoreVerdict::kStore)
    return false;

  std::shared_ptr<cache::CachedObject> object = new_object(params_, head, whole, request_time_, wall_now());
  object->status = 200;  // what the parts are of: the whole representation
  object->set_reason({});
  object->headers = cache::stored_part_headers(head.headers);
  body_ = std::make_shared<http::SharedBody>(length);
  part_ = cache::Part{range->first, length, body_};
  object->set_parts({*part_}, range->complete_length);
  object->body = body_;
  const cache::CachedObject* stored = params_.partial.get();
  if (stored && same_representation(*stored, *object))
    object->set_parts(cache::add_part(stored->parts(), *part_), range->complete_length);
  filling_ = object;
  {
    std::lock_guard lock(mutex_);
    state_ = State::kStreaming;
    object_ = object;
  }
  copy_body(fetch, complete);
  return true;
}

void Fill::store_part() {
  Shared& shared = worker_.shared();
  std::shared_ptr<cache::CachedObject> object = filling_;
  // Parts another fill stored meanwhile stay, when they are of the same representation; a
  // complete response of it stored meanwhile is better than any part.
  const cache::ObjectRef now_stored =
      shared.store.lookup(params_.key, params_.request.headers, params_.variant_extra).object;
  if (now_stored && now_stored != params_.partial && same_representation(*now_stored, *object)) {
    if (!now_stored->partial()) return;
    object = cache::copy_of(*object);
    object->set_parts(cache::add_part(now_stored->parts(), *part_), object->complete_length());
  }
  if (std::shared_ptr<http::SharedBody> joined = cache::join_parts(object->parts(), object->complete_length())) {
    // The parts meet: stored from now on as the complete response.
    object = cache::copy_of(*object);
    object->set_parts({}, 0);
    object->body = std::move(joined);
    write_through(*object);
  }
  if (params_.ram) shared.store.insert(object);
}

void Fill::copy_body(Fetch& fetch, bool complete) {
  http::Body& body = fetch.response_body();
  std::string scratch;
  http::IoSlice slices[16];
  while (copied_ < body.size()) {
    int n = body.peek(copied_, slices, 16, SIZE_MAX, scratch);
    if (n <= 0) break;
    for (int i = 0; i < n; ++i) {
      std::string_view bytes{slices[i].data, slices[i].len};
      copied_ += slices[i].len;
      if (decoder_) {
        coded_->append(bytes);
        decoded_.clear();
        // Decoded past max_object, it could not be stored: a bomb stops there.
        const compress::Decoder::Result result =
            decoder_->decode(bytes, decoded_, params_.generation->config.cache.max_object);
        if (result == compress::Decoder::Result::kCorrupt || result == compress::Decoder::Result::kTooLarge)
          return abandon_body(fetch);
        decoded_whole_ = result == compress::Decoder::Result::kEnd;
        bytes = decoded_;
      }
      body_->append(bytes);
      if (esi_parser_) esi_parser_->feed(bytes);
    }
  }
  body.release_before(copied_);
  if (!complete) {
    if (!esi_parser_) notify_all();
    return;
  }
  // A 206 whose body is not the part its Content-Range announced, or a coded body cut short:
  // nothing of it is kept.
  if ((part_ && body_->size() != part_->length) || (decoder_ && !decoded_whole_)) return abandon_body(fetch);
  body_->finish();
  if (part_) {
    store_part();
    filling_.reset();
    fetch.finish();
    return end();
  }
  if (esi_parser_) {
    ssi::Template compiled = esi_parser_->finish();
    if (!compiled.is_verbatim()) filling_->set_attachment(std::make_shared<CompiledPage>(std::move(compiled)));
    std::lock_guard lock(mutex_);
    state_ = State::kStreaming;
    object_ = filling_;
  }
  Shared& shared = worker_.shared();
  // Those who streamed it have the object without encodings; the tiers get them (a copy: an
  // object others hold never changes).
  std::shared_ptr<cache::CachedObject> stored_object = filling_;
  if (coded_) {
    coded_->finish();
    stored_object = cache::copy_of(*filling_);
    std::vector<cache::CachedObject::Encoded> encodings = stored_object->encodings();
    encodings.push_back({coded_as_, coded_});
    stored_object->set_encodings(std::move(encodings));
  }
  if (std::shared_ptr<cache::CachedObject> encoded = with_encodings(*stored_object, params_.policy->compress))
    stored_object = std::move(encoded);
  write_through(*stored_object);
  const bool stored = !params_.ram || shared.store.insert(stored_object);
  if (params_.ram && stored && compress_later(*stored_object, params_.policy->compress))
    shared.compressor.submit(std::move(stored_object), params_.policy->compress);
  if (params_.streak) {
    if (stored) params_.streak->storable();
    else params_.streak->not_storable(params_.generation->config.cache.route_pass_after);
  }
  if (!stored && params_.generation->config.cache.hit_for_pass.count() > 0) {
    // Larger than max_object, which only the end of a body of unknown length can show: it was
    // streamed to the requests that waited for it; the next ones pass.
    const cache::Seconds now = wall_now();
    shared.store.mark_hit_for_pass(params_.key, now + seconds(params_.generation->config.cache.hit_for_pass), now);
  }
  filling_.reset();
  fetch.finish();
  end();
}

void Fill::abandon_body(Fetch& fetch) {
  body_->fail();
  {
    std::lock_guard lock(mutex_);
    state_ = State::kFailed;
    status_ = 502;
  }
  filling_.reset();
  fetch.finish();
  end();
}

void Fill::on_fetch_failed(Fetch& fetch, int status) {
  if (body_ && !body_->complete()) body_->fail();  // the response broke off: readers stop there
  filling_.reset();
  {
    std::lock_guard lock(mutex_);
    if (state_ != State::kStreaming) state_ = State::kFailed;
    status_ = status;
    facts_ = fetch.facts();
  }
  fetch.finish();
  end();
}

// ---- Coalescer ----

std::shared_ptr<Fill> Coalescer::find(const std::string& key) {
  Stripe& s = stripe(key);
  std::lock_guard lock(s.mutex);
  auto it = s.fills.find(key);
  return it == s.fills.end() ? nullptr : it->second;
}

std::shared_ptr<Fill> Coalescer::add(const std::shared_ptr<Fill>& fill) {
  Stripe& s = stripe(fill->key());
  std::lock_guard lock(s.mutex);
  auto [it, added] = s.fills.emplace(fill->key(), fill);
  return it->second;
}

void Coalescer::remove(const Fill* fill) {
  Stripe& s = stripe(fill->key());
  std::lock_guard lock(s.mutex);
  auto it = s.fills.find(fill->key());
  if (it != s.fills.end() && it->second.get() == fill) s.fills.erase(it);
}

}  // namespace edge::proxy
