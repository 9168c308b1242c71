#include "proxy/request.h"

#include <chrono>
#include <cstdio>

#include "cache/policy.h"
#include "http/log_text.h"
#include "http/uri.h"
#include "log/error_log.h"
#include "proxy/clock.h"
#include "proxy/tier.h"
#include "proxy/worker.h"

namespace edge::proxy {

namespace {
using http::iequals;
}  // namespace

const char* step_name(Step step) {
  switch (step) {
#define EDGE_STEP_NAME(name, text) \
  case Step::name:                 \
    return text;
    EDGE_STEPS(EDGE_STEP_NAME)
#undef EDGE_STEP_NAME
  }
  return "?";
}

std::string Trace::text() const {
  std::string out;
  for (size_t i = 0; i < count_; ++i) {
    if (i) out.push_back(' ');
    out.append(step_name(entries_[i].step)).push_back(':');
    append_number(out, entries_[i].at_us);
  }
  if (dropped_) {
    out.append(" +");
    append_number(out, dropped_);
  }
  return out;
}

Request::Request(Worker& worker, Client& client) : worker_(worker), client_(client), exchange_(worker, this) {}

// ---- recv ----

int Request::recv(http::RequestHead& head) {
  done();
  active_ = true;
  bump(worker_.stats().requests_in_progress);
  generation_ = worker_.generation();
  head_ = &head;
  route_ = RouteMatch{};
  host_.clear();
  target_.clear();
  responding_ = false;
  head_sent_ = false;
  early_status_ = 0;
  early_fields_.clear();
  early_page_ = nullptr;
  rules_ = nullptr;
  purging_ = false;
  upgrade_.clear();
  client_read_ = false;
  x_cache_ = "PASS";
  vary_accept_encoding_ = false;
  status_ = 0;
  exchanged_ = false;
  trace_.start(Step::kRecv);
  // A reverse proxy opens no tunnels.
  if (head.method == "CONNECT") return 405;
  // One reading of the request's identity (http/uri): the host it names and its target, both
  // canonical, for routing, the cache key, the upstream head and the log alike.
  if (!http::read_request_identity(head, host_, target_)) return 400;
  if (const std::optional<std::string_view> expect = head.headers.get(http::FieldId::kExpect))
    if (!iequals(*expect, "100-continue")) return 417;
  route_ = generation_->router.match(host_, std::string_view(target_).substr(0, target_.find('?')));
  if (route_.host < 0) {
    early_status_ = 404;
    return 0;
  }
  rules_ = &rules_of(generation_->config, route_);
  if ((early_status_ = apply_rules(*rules_))) return 0;
  const conf::Host& host = generation_->config.hosts[static_cast<size_t>(route_.host)];
  if (host.redirect_https && !client_.secure()) {
    // The same host and target on the default https port; 308 keeps the method and the body.
    early_status_ = 308;
    early_fields_.append("Location: https://").append(host_).append(target_).append("\r\n");
    return 0;
  }
  // Fields a backend may act on that the cache key does not describe: the route's list, and
  // X-Forwarded-Host, which edge sets itself from the host it routed by.
  const conf::CachePolicy& policy = policy_of(generation_->config, route_);
  head.headers.remove_if([&](std::string_view name, http::FieldId id) {
    if (id == http::FieldId::kXForwardedHost) return true;
    for (const std::string& dropped : policy.drop_request_fields)
      if (iequals(dropped, name)) return true;
    return false;
  });
  // Before anything reads the request: the cache's Vary and the upstream head see the result.
  if (!rules_->request_headers.empty()) rules::edit_request_fields(rules_->request_headers, template_values(), head.headers);
  // A tunnel only for a GET asking for a protocol the route allows; any other Upgrade is
  // ignored, as a server may (RFC 9110 7.8), and never reaches the backend.
  if (!head.upgrade.empty() && head.method == "GET" && !rules_->upgrade.empty()) {
    http::for_each_token(head.upgrade, [&](std::string_view offered) {
      const std::string_view name = offered.substr(0, offered.find('/'));
      if (upgrade_.empty())
        for (const std::string& allowed : rules_->upgrade)
          if (iequals(allowed, name)) upgrade_.assign(offered);
    });
  }
  return 0;
}

// In the order the rules document: who may ask, how often, whether the host is open, where to.
int Request::apply_rules(const conf::Rules& rules) {
  Stats& stats = worker_.stats();
  if (rules.access.enabled || rules.rate_limit.enabled || rules.maintenance.enabled || rules.purge.enabled) read_client();
  if (rules.access.enabled && !rules::allowed(rules.access, client_address_)) {
    stats.count_rule(RuleAction::kDenied);
    return 403;
  }
  if (rules.rate_limit.enabled) {
    const rules::RateLimiter::Verdict verdict = worker_.shared().rate_limiter.take(
        rules.rate_limit.zone_id, client_address_, rules.rate_limit.per_second,
        rules.rate_limit.burst, uv_now(worker_.loop()));
    if (!verdict.allowed) {
      stats.count_rule(RuleAction::kRateLimited);
      early_fields_.append("Retry-After: ");
      append_number(early_fields_, (verdict.retry_after_ms + 999) / 1000);
      early_fields_.append("\r\n");
      return 429;
    }
  }
  if (rules.purge.enabled && head_->method == "PURGE") {
    if (!rules::matches_any(rules.purge.allow, client_address_)) {
      stats.count_rule(RuleAction::kDenied);
      return 403;
    }
    purging_ = true;
    return 0;
  }
  if (rules.maintenance.enabled && !rules::matches_any(rules.maintenance.allow, client_address_)) {
    stats.count_rule(RuleAction::kMaintenance);
    early_fields_.append("Retry-After: ");
    append_number(early_fields_, static_cast<uint64_t>((rules.maintenance.retry_after.count() + 999) / 1000));
    early_fields_.append("\r\n");
    early_page_ = rules.maintenance.page.get();
    return 503;
  }
  if (rules.redirect.enabled) {
    stats.count_rule(RuleAction::kRedirected);
    append_field(early_fields_, "Location", rules::redirect_location(rules.redirect, template_values()));
    return rules.redirect.status;
  }
  return 0;
}

void Request::read_client() {
  if (client_read_) return;
  client_read_ = true;
  const std::string_view peer = client_.client_ip();
  client_ip_.assign(peer);
  const std::optional<rules::IpAddress> address = rules::parse_ip(peer);
  client_address_ = address.value_or(rules::IpAddress{});
  const std::vector<conf::Cidr>& trusted = generation_->config.trusted_proxies;
  if (!address || !head_ || !rules::matches_any(trusted, *address)) return;
  std::string forwarded_for;
  for (size_t i = 0; i < head_->headers.size(); ++i) {
    if (head_->headers.id(i) != http::FieldId::kXForwardedFor) continue;
    if (!forwarded_for.empty()) forwarded_for.push_back(',');
    forwarded_for.append(head_->headers.value(i));
  }
  client_address_ = rules::real_client(*address, forwarded_for, trusted);
  client_ip_ = rules::ip_text(client_address_);
}

rules::TemplateValues Request::template_values() {
  read_client();
  rules::TemplateValues values;
  values.host = host_;
  values.target = target_;
  if (route_.host >= 0 && route_.route >= 0)
    values.route_prefix =
        generation_->config.hosts[static_cast<size_t>(route_.host)].routes[static_cast<size_t>(route_.route)].path_prefix.size();
  values.scheme = client_.secure() ? "https" : "http";
  if (head_) values.method = head_->method;
  values.client_ip = client_ip_;
  if (route_.backend >= 0) values.backend = generation_->config.backends[static_cast<size_t>(route_.backend)].name;
  return values;
}

void Request::refuse(const http::RequestHead& head, int status) {
  if (!active_) {
    // Refused before recv() read its identity: nothing of an earlier request may show.
    active_ = true;
    bump(worker_.stats().requests_in_progress);
    generation_ = worker_.generation();
    route_ = RouteMatch{};
    rules_ = nullptr;
    client_read_ = false;
    host_.clear();
    target_.clear();
    x_cache_ = "PASS";
    vary_accept_encoding_ = false;
    status_ = 0;
    exchanged_ = false;
    trace_.start();
  }
  head_ = &head;
  synth(status, false);
}

// ---- lookup, hit, miss, wait, pass: proxy/exchange.cc ----

void Request::start(const http::RequestHead& head, const http::Body& body) {
  head_ = &head;
  responding_ = false;
  if (early_status_) return synth(early_status_, true, early_fields_, early_page_);
  if (purging_) return purge();
  Exchange::Request request;
  request.generation = generation_;
  request.head = &head;
  request.body = &body;
  request.route = route_;
  request.authority = host_;
  request.origin_target = target_;
  request.client_ip = client_.client_ip();
  request.https = client_.secure();
  request.upgrade = upgrade_;
  request.trace = &trace_;
  exchanged_ = true;
  exchange_.start(request);
}

void Request::on_exchange_object(const cache::ObjectRef& object, const char* x_cache) {
  if (!responding_) deliver(object, x_cache);
}

void Request::on_exchange_response(Fetch& fetch, const http::ResponseHead& head, bool complete) {
  if (responding_) return client_.kick();
  if (head.status >= 500 && rules_ && rules_->error_pages.backend_errors) {
    // The backend's own page is not sent: the route's page for its status is.
    if (const conf::ErrorPage* page = rules_->error_pages.find(head.status)) {
      x_cache_ = exchange_.x_cache();
      return synth(head.status, true, {}, page);
    }
  }
  if ((exchange_.policy()->esi || wants_esi(head.headers)) && response_has_body(head.status, false)) {
    fetch.response_body().keep_whole();  // compiled only once complete
    return compile_passed_page(fetch, head, complete);
  }
  relay(fetch, head, complete);
}

void Request::on_exchange_progress() {
  if (object_ && object_->body->failed()) return client_.broke_off(CloseReason::kUpstreamBroken);
  client_.kick();
}

void Request::on_exchange_interim(const http::ResponseHead& interim) {
  // Never to an HTTP/1.0 client (RFC 9110 15.2), nor once the response has begun.
  if (head_sent_ || responding_ || !head_ || head_->http10()) return;
  client_.send_interim(build_interim_head(interim));
}

void Request::on_exchange_failed(int status) {
  if (responding_) return client_.broke_off(CloseReason::kUpstreamBroken);
  synth(status, true);
}

// ---- deliver: a stored object ----

void Request::deliver(const cache::ObjectRef& object, const char* x_cache) {
  const http::RequestHead& request = *head_;
  object_ = object;
  x_cache_ = x_cache;
  responding_ = true;
  if (compiled_page(*object)) return assemble();
  trace_.add(Step::kDeliver);
  const http::SharedBody& body = *object->body;
  const bool head_request = request.is_head();
  // Once stored encodings exist, they are what is offered: a coding that did not shrink the body
  // was left out on purpose.
  compress::Coding stored_codings[compress::kCodings];
  size_t stored_count = 0;
  for (const cache::CachedObject::Encoded& encoded : object->encodings())
    if (stored_count < compress::kCodings) stored_codings[stored_count++] = encoded.coding;
  const compress::Coding coding =
      object->partial() ? compress::Coding::kIdentity
                        : decide_coding(object->status, object->headers,
                                        body.complete() ? std::optional<uint64_t>(body.size()) : std::nullopt,
                                        {stored_codings, stored_count});
  switch (cache::evaluate_preconditions(request, object->headers)) {
    case cache::Precondition::kNotModified:
      deliver_head(*object, 304, {}, false, std::nullopt, false, nullptr, coding);
      object_.reset();
      return;
    case cache::Precondition::kFailed:
      responding_ = false;
      object_.reset();
      return synth(412, true);
    case cache::Precondition::kProceed:
      break;
  }
  const bool has_body = response_has_body(object->status, head_request);
  const bool partial = object->partial();
  if (partial || (object->status == 200 && body.complete() && request.headers.get("Range"))) {
    // A partial object answers from its parts (cache/partial.h): a range of them, or the whole
    // representation they hold together.
    const uint64_t size = partial ? object->complete_length() : body.size();
    const cache::RangeDecision range = cache::decide_range(request, object->headers, size);
    std::string extra = "Content-Range: bytes ";
    if (range.kind == cache::RangeDecision::kUnsatisfiable) {
      extra.append("*/");
      append_number(extra, size);
      extra.append("\r\n");
      deliver_head(*object, 416, extra, false, 0, true, nullptr);
      object_.reset();
      return;
    }
    const bool ranged = range.kind == cache::RangeDecision::kPartial;
    const cache::ByteRange bytes = ranged ? range.range : cache::ByteRange{0, size - 1};
    http::BodySource* source = &window_;
    if (partial) {
      if (has_body && !cache::parts_cover(object->parts(), bytes.first, bytes.last)) {
        responding_ = false;  // never a body with a hole: the exchange fetches what is missing
        object_.reset();
        return synth(502, true);
      }
      parts_body_.reset(&object->parts(), bytes.first, bytes.last);
      source = &parts_body_;
    } else {
      window_.reset(&body, bytes.first, bytes.last - bytes.first + 1);
    }
    const uint64_t count = bytes.last - bytes.first + 1;
    if (!ranged) return deliver_head(*object, 200, {}, has_body, count, head_request, has_body ? source : nullptr);
    append_number(extra, bytes.first);
    extra.append("-");
    append_number(extra, bytes.last);
    extra.append("/");
    append_number(extra, size);
    extra.append("\r\n");
    return deliver_head(*object, 206, extra, has_body, count, head_request, has_body ? source : nullptr);
  }
  std::optional<uint64_t> length;
  if (body.complete()) length = body.size();
  deliver_head(*object, object->status, {}, has_body, length, head_request,
               has_body ? const_cast<http::SharedBody*>(&body) : nullptr, coding);
}

void Request::deliver_head(const cache::CachedObject& object, int status, std::string_view extra, bool has_body,
                           std::optional<uint64_t> length, bool length_without_body, http::BodySource* body,
                           compress::Coding coding) {
  ResponseSpec spec;
  spec.status = status;
  spec.reason = status == object.status ? object.reason() : std::string_view();
  spec.origin = ResponseOrigin::kStored;
  spec.fields = &object.headers;
  spec.age = object.age.current_age(wall_now());
  spec.extra_fields = extra;
  spec.has_body = has_body;
  spec.length = length;
  spec.length_without_body = length_without_body;
  bool release = false;
  spec.weak_etag = object.decoded;
  if (coding != compress::Coding::kIdentity) {
    if (status == 304) {
      spec.weak_etag = true;
    } else {
      if (const http::SharedBody* encoded = object.encoded(coding)) {
        spec.content_coding = compress::coding_name(coding);
        spec.weak_etag = true;
        spec.length = encoded->size();
        if (body) {
          body = const_cast<http::SharedBody*>(encoded);
          sent_coding_ = coding;
          coded_streamed_ = false;
          coded_before_ = object.body->size();
          coded_after_ = encoded->size();
        }
      } else {
        body = stream_coded(spec, coding, body, false);
        release = body == &compressing_;
      }
    }
  }
  send(spec, body, release);
}

compress::Coding Request::decide_coding(int status, const http::Headers& fields, std::optional<uint64_t> length,
                                        std::span<const compress::Coding> offered) {
  vary_accept_encoding_ = false;
  if (route_.host < 0) return compress::Coding::kIdentity;
  const compress::Rules& rules = policy_of(generation_->config, route_).compress;
  if (!compress::compressible(rules, status, fields, length)) return compress::Coding::kIdentity;
  vary_accept_encoding_ = true;
  // A range is of the identity representation, as stored and as the backend sends it.
  if (head_->headers.get("Range")) return compress::Coding::kIdentity;
  return compress::choose_coding(head_->headers, offered.empty() ? std::span<const compress::Coding>(rules.codings)
                                                                  : offered);
}

http::BodySource* Request::stream_coded(ResponseSpec& spec, compress::Coding coding, http::BodySource* body,
                                        bool release_inner) {
  const compress::Rules& rules = policy_of(generation_->config, route_).compress;
  // Encoders are the memory a stream holds: past the worker's bound (many slow readers at
  // once), or when one cannot be made, the body goes as it is.
  if (body && (worker_.compressing_streams() >= Worker::kMaxCompressingStreams ||
               !compressing_.start(body, coding, rules.stream_level[static_cast<size_t>(coding)], release_inner,
                                   &worker_.compressing_streams())))
    return body;
  spec.content_coding = compress::coding_name(coding);
  spec.weak_etag = true;
  spec.length.reset();  // known once compressed, which is too late for the head
  if (!body) return nullptr;
  sent_coding_ = coding;
  coded_streamed_ = true;
  return &compressing_;
}

// ---- relay: a passed response ----

void Request::relay(Fetch& fetch, const http::ResponseHead& head, bool complete) {
  if (head.status == 101) return switch_protocols(fetch, head);
  responding_ = true;
  x_cache_ = exchange_.x_cache();
  trace_.add(Step::kRelay);
  const bool head_request = head_->is_head();
  ResponseSpec spec;
  spec.status = head.status;
  spec.reason = head.reason;
  spec.origin = ResponseOrigin::kBackend;
  spec.fields = &head.headers;
  spec.has_body = response_has_body(head.status, head_request);
  if (!spec.has_body) {
    // A HEAD's or a 304's Content-Length describes the body it would have had.
    if (head.content_length && (head_request || head.status == 304)) {
      spec.length = head.content_length;
      spec.length_without_body = true;
    }
  } else if (head.content_length || complete) {
    spec.length = head.content_length ? *head.content_length : fetch.response_body().size();
  }
  http::BodySource* body = spec.has_body ? &fetch.response_body() : nullptr;
  std::optional<uint64_t> length = head.content_length;  // a HEAD's too
  if (!length && complete) length = fetch.response_body().size();
  const compress::Coding coding = decide_coding(head.status, head.headers, length, {});
  if (coding != compress::Coding::kIdentity && (spec.has_body || spec.length_without_body))
    body = stream_coded(spec, coding, body, true);
  send(spec, body, true);
}

void Request::switch_protocols(Fetch& fetch, const http::ResponseHead& head) {
  responding_ = true;
  x_cache_ = exchange_.x_cache();
  trace_.add(Step::kRelay);
  Fetch::Upgraded upstream = fetch.take_upgraded();
  if (!upstream.conn.transport || !client_.start_tunnel(std::move(upstream)))
    return client_.broke_off(CloseReason::kUpstreamBroken);
  ResponseSpec spec;
  spec.status = 101;
  spec.reason = head.reason;
  spec.origin = ResponseOrigin::kBackend;
  spec.fields = &head.headers;
  // Hop-by-hop, so out of the relayed fields: the switch itself says them again.
  const std::string switched = "Upgrade: " + head.upgrade + "\r\nConnection: upgrade\r\n";
  spec.extra_fields = switched;
  send(spec, nullptr, false);
}

// ---- assemble: a page from its includes ----

void Request::compile_passed_page(Fetch& fetch, const http::ResponseHead& head, bool complete) {
  // A page that is not stored is compiled once whole, then assembled like a stored one.
  if (!complete) return;
  const http::Body& body = fetch.response_body();
  auto page = std::make_shared<cache::CachedObject>();
  page->status = head.status;
  page->set_reason(head.reason);
  page->headers = cache::stored_headers(head.headers);
  ssi::Parser parser(ssi::Syntax::kBoth);
  auto shared_body = std::make_shared<http::SharedBody>(body.size());
  std::string scratch;
  http::IoSlice slices[16];
  for (uint64_t offset = 0; offset < body.size();) {
    const int n = body.peek(offset, slices, 16, SIZE_MAX, scratch);
    if (n <= 0) return synth(500, false);
    for (int i = 0; i < n; ++i) {
      shared_body->append({slices[i].data, slices[i].len});
      parser.feed({slices[i].data, slices[i].len});
      offset += slices[i].len;
    }
  }
  shared_body->finish();
  page->body = shared_body;
  page->set_attachment(std::make_shared<CompiledPage>(parser.finish()));
  exchange_.end();  // the fetch's body is copied: its connection may go
  deliver(page, "PASS");
}

void Request::assemble() {
  trace_.add(Step::kAssemble);
  auto page = std::make_shared<Assembly::Page>();
  page->client = head_;
  page->client_ip = client_.client_ip();
  page->https = client_.secure();
  page->generation = generation_;
  page->includes_left = generation_->config.esi.max_includes;
  page->host_index = route_.host;
  // Includes found in the cache resolve while the assembly starts: their news is taken in once
  // it has started.
  assembly_starting_ = true;
  assembly_failed_ = false;
  holding_head_ = false;
  assembly_ = Assembly::start(worker_, this, object_, std::move(page), host_, target_, 0, {});
  assembly_starting_ = false;
  if (assembly_failed_) return on_assembly_failed();
  // With on_error: fail, nothing is said until every include has answered, so a failure can
  // still be a 502; otherwise the page streams from the first byte.
  holding_head_ = generation_->config.esi.on_error == conf::EsiOnError::kFail && !assembly_->resolved();
  if (!holding_head_) send_assembled();
}

void Request::send_assembled() {
  const cache::CachedObject& page = *object_;
  const bool head_request = head_->is_head();
  const http::BodySource& body = assembly_->output();
  ResponseSpec spec;
  spec.status = page.status;
  spec.reason = page.reason();
  spec.origin = ResponseOrigin::kAssembled;
  spec.fields = &page.headers;
  spec.has_body = response_has_body(page.status, head_request);
  if (body.complete()) spec.length = body.size();
  spec.length_without_body = head_request;
  http::BodySource* out = spec.has_body ? const_cast<http::BodySource*>(&body) : nullptr;
  bool release = false;
  const compress::Coding coding = decide_coding(page.status, page.headers, spec.length, {});
  if (coding != compress::Coding::kIdentity) {
    out = stream_coded(spec, coding, out, false);
    release = out == &compressing_;
  }
  send(spec, out, release);
}

void Request::on_assembly_progress() {
  if (assembly_starting_) return;
  if (holding_head_) {
    if (!assembly_->resolved()) return;
    holding_head_ = false;
    return send_assembled();
  }
  client_.kick();
}

void Request::on_assembly_failed() {
  if (assembly_starting_) {
    assembly_failed_ = true;
    return;
  }
  if (holding_head_ || !head_sent_) {
    holding_head_ = false;
    responding_ = false;
    return synth(502, true);
  }
  client_.broke_off(CloseReason::kUpstreamBroken);
}

// ---- purge: a PURGE or BAN on the main port ----

void Request::purge() {
  trace_.add(Step::kPurge);
  Shared& shared = worker_.shared();
  read_client();
  cache::Invalidation entry;
  std::vector<std::string> remove_keys;
  std::string& answer = purge_answer_.body;
  purge_answer_.content_type = "application/json";
  // How the cache plugins of Varnish's users ask (BAN is not a method the parser takes):
  // X-Purge-Method absent or `exact`, the URL; `prefix` or `regex`, a ban on the host's paths.
  const std::string_view how = head_->headers.get("X-Purge-Method").value_or("exact");
  const std::string path = target_.substr(0, target_.find('?'));
  if (iequals(how, "exact")) {
    // Every variant of the URL, as the admin port's purge by URL.
    const std::string key = cache::cache_key(host_, target_);
    const size_t n = shared.store.purge(key, false);
    log::info("edge: PURGE %s from %s: %zu objects", http::escape_for_log(key).c_str(), client_ip_.c_str(), n);
    answer = "{\"purged\":" + std::to_string(n);
    entry.kind = cache::Invalidation::Kind::kUrl;
    entry.key = key;
    remove_keys.push_back(Tier::http_key(key, {}));
  } else if (iequals(how, "prefix") || iequals(how, "regex")) {
    // Every object of the host whose path starts with, or matches, the request's path.
    cache::Store::Ban ban;
    ban.host = host_;
    if (iequals(how, "prefix")) {
      ban.prefix = path;
    } else {
      std::string error;
      ban.regex = cache::BanRegex::compile(path, error);
      if (!ban.regex) {
        answer = "{\"error\":\"" + http::escape_for_log(error) + "\"}\n";
        return synth(400, true, {}, &purge_answer_);
      }
    }
    entry.kind = cache::Invalidation::Kind::kBan;
    entry.host = ban.host;
    entry.prefix = ban.prefix;
    entry.regex = ban.regex ? ban.regex->text() : std::string();
    const uint64_t id = shared.store.ban(std::move(ban));
    log::info("edge: PURGE ban host=%s %s=%s from %s: ban %llu", host_.c_str(), iequals(how, "prefix") ? "prefix" : "regex",
              http::escape_for_log(path).c_str(), client_ip_.c_str(), static_cast<unsigned long long>(id));
    answer = "{\"ban\":" + std::to_string(id);
  } else {
    answer = "{\"error\":\"X-Purge-Method must be exact, prefix or regex\"}\n";
    return synth(400, true, {}, &purge_answer_);
  }
  worker_.stats().count_rule(RuleAction::kPurged);
  if (!shared.tier) {
    answer.append("}\n");
    return synth(200, true, {}, &purge_answer_);
  }
  // Answered once memcached's log has it: after the answer, no node can fill from a stale record.
  purge_wait_ = std::make_shared<Request*>(this);
  shared.tier->record(std::move(entry), std::move(remove_keys), worker_.poster(),
                      [wait = std::weak_ptr<Request*>(purge_wait_)](bool ok, std::string error) {
                        if (const std::shared_ptr<Request*> request = wait.lock()) (*request)->purge_recorded(ok, error);
                      });
}

void Request::purge_recorded(bool ok, const std::string& error) {
  purge_wait_.reset();
  purge_answer_.body.append(ok ? ",\"memcached\":\"ok\"}\n" : ",\"memcached\":\"failed\"}\n");
  if (!ok) log::warn("edge: a purge on the main port was not recorded in memcached: %s", error.c_str());
  synth(ok ? 200 : 502, true, {}, &purge_answer_);
}

// ---- synth: an answer edge makes ----

void Request::synth(int status, bool may_keep_alive, std::string_view extra_fields, const conf::ErrorPage* page) {
  trace_.add(Step::kSynth);
  if (!page) page = (rules_ ? rules_->error_pages : generation_->config.error_pages).find(status);
  const std::string_view reason = http::reason_phrase(status);
  char body[256];
  const int body_len =
      std::snprintf(body, sizeof body, "<html><head><title>%d %.*s</title></head><body><h1>%d %.*s</h1><hr>edge</body></html>\n",
                    status, static_cast<int>(reason.size()), reason.data(), status, static_cast<int>(reason.size()),
                    reason.data());
  const bool head_request = head_ && head_->is_head();
  ResponseSpec spec;
  spec.status = status;
  spec.origin = ResponseOrigin::kSynthetic;
  spec.content_type = page ? std::string_view(page->content_type) : std::string_view("text/html");
  spec.extra_fields = status == 503 && extra_fields.empty() ? std::string_view("Retry-After: 1\r\n") : extra_fields;
  spec.has_body = !head_request;
  const std::string_view text = page ? std::string_view(page->body) : std::string_view(body, static_cast<size_t>(body_len));
  spec.length = text.size();
  spec.length_without_body = true;
  responding_ = true;
  send(spec, nullptr, false, may_keep_alive, true, head_request ? std::string_view() : text);
}

// ---- every response goes out here ----

void Request::send(const ResponseSpec& spec_in, http::BodySource* body, bool release, bool may_keep_alive,
                   bool synthetic, std::string_view inline_body) {
  ResponseSpec spec = spec_in;
  // A request that asked to switch and was not switched may be followed by the other
  // protocol's bytes: nothing after it is read as HTTP.
  if (head_ && !head_->upgrade.empty() && spec.status != 101) may_keep_alive = false;
  const conf::Cache& config = generation_->config.cache;
  if (config.x_cache && !synthetic) spec.x_cache = x_cache_;
  if (!synthetic) spec.vary_accept_encoding = vary_accept_encoding_;
  if (!synthetic && route_.host >= 0) {
    spec.drop_targeted = !policy_of(generation_->config, route_).forward_targeted;
    spec.targeted_field = config.targeted_field;
  }
  std::string trace;
  if (config.x_trace) {
    trace = trace_.text();
    spec.trace = trace;
  }
  const ResponseFraming framing =
      build_response_head(response_head_, spec, client_.framing(may_keep_alive), worker_.date(), &head_index_);
  if (rules_ && !rules_->response_headers.empty()) {
    rules::TemplateValues values = template_values();
    values.cache = synthetic ? std::string_view() : std::string_view(x_cache_);
    values.status = spec.status;
    rules::edit_response_head(rules_->response_headers, values, response_head_);
    head_index_.clear();  // the fields moved: the head is read again
  }
  response_head_.append(inline_body);
  head_sent_ = true;
  status_ = spec.status;
  Client::Response response;
  response.head = &response_head_;
  response.index = head_index_.size ? &head_index_ : nullptr;
  response.body = body;
  response.chunked = body && framing.chunked;
  response.release = release;
  response.keep_alive = framing.keep_alive;
  response.synthetic = synthetic;
  client_.send(response);
}

// ---- done ----

void Request::done() {
  if (!active_) return;
  active_ = false;
  if (sent_coding_ != compress::Coding::kIdentity) {
    Stats& stats = worker_.stats();
    const auto c = static_cast<size_t>(sent_coding_);
    bump(stats.coded_responses[c]);
    bump(stats.coded_bytes_before[c], coded_streamed_ ? compressing_.bytes_in() : coded_before_);
    bump(stats.coded_bytes_after[c], coded_streamed_ ? compressing_.size() : coded_after_);
    sent_coding_ = compress::Coding::kIdentity;
  }
  compressing_.reset();
  assembly_.reset();
  purge_wait_.reset();
  exchange_.end();
  object_.reset();
  const uint64_t done_ns = trace_.add(Step::kDone);
  drop(worker_.stats().requests_in_progress);
  if (worker_.shared().access_log) log_access(done_ns);
  if (status_) {
    const conf::Metrics& recording = generation_->config.metrics;
    const Fetch::Facts& fetch = exchange_.fetch_facts();
    const uint64_t started = trace_.started_ns();
    const uint64_t backend_ns = exchanged_ && fetch.first_byte_ns > started ? fetch.first_byte_ns - started : 0;
    const uint64_t sent = client_.bytes_sent();
    bump(worker_.stats().client_bytes_sent, sent);
    worker_.metrics().record_response(generation_->host_slot(route_.host), status_,
                                      recording.histograms ? done_ns - started : 0, backend_ns,
                                      recording.histograms);
    if (recording.top && !target_.empty())
      worker_.record_top(host_, target_, sent, exchanged_ && std::string_view(x_cache_) == "MISS", backend_ns / 1000);
  }
  generation_.reset();
}

void Request::log_access(uint64_t done_ns) {
  const conf::Config& config = generation_->config;
  log::AccessRecord record;
  record.time_ms = static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  // The peer itself unless a trusted proxy may name another (read_client() parses it then).
  if (!config.trusted_proxies.empty()) read_client();
  record.client = config.trusted_proxies.empty() ? client_.client_ip() : std::string_view(client_ip_);
  record.host = host_;
  if (head_) {
    record.method = head_->method;
    // The canonical target when recv() read one, else what the client sent.
    record.target = target_.empty() ? std::string_view(head_->target) : std::string_view(target_);
    record.http_major = head_->version_major;
    record.http_minor = head_->version_minor;
    record.referer = head_->headers.get("Referer").value_or(std::string_view());
    record.user_agent = head_->headers.get("User-Agent").value_or(std::string_view());
  }
  record.status = status_;
  record.bytes = status_ ? client_.bytes_sent() : 0;
  record.total_ms = static_cast<double>(done_ns - trace_.started_ns()) / 1e6;
  // An answer edge made before any lookup (a refusal, a 404 for an unknown host) has no cache
  // status and no backend.
  record.cache = exchanged_ ? std::string_view(x_cache_) : std::string_view();
  const Fetch::Facts& fetch = exchange_.fetch_facts();
  std::string server;
  if (exchanged_ && fetch.backend >= 0 && static_cast<size_t>(fetch.backend) < config.backends.size()) {
    const conf::Backend& backend = config.backends[static_cast<size_t>(fetch.backend)];
    record.backend = backend.name;
    if (fetch.server >= 0 && static_cast<size_t>(fetch.server) < backend.servers.size()) {
      server = backend.servers[static_cast<size_t>(fetch.server)].address.text();
      record.server = server;
    }
    record.retries = fetch.retries;
    if (fetch.first_byte_ns)
      record.ttfb_ms = fetch.first_byte_ns > trace_.started_ns()
                           ? static_cast<double>(fetch.first_byte_ns - trace_.started_ns()) / 1e6
                           : 0.0;
  }
  record.worker = worker_.index();
  // Reused by every request of this worker: no allocation per line once it has grown.
  static thread_local std::string line;
  line.clear();
  log::format_line(line, config.access_log.format, record);
  if (!worker_.shared().access_log->push(line))
    bump(worker_.stats().access_log_dropped);
}

}  // namespace edge::proxy
