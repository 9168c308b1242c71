// proxy/exchange: one request through the cache path and, where needed, to a backend: the part
// of a request's life that a client's request and an ESI include share.
//
// For GET and HEAD on a cached route: the store is looked up; a usable object is handed to the
// owner at once; a stale one may be served while it is refreshed in the background; a miss (or
// a revalidation) joins the fill running for its key or starts one; a hit-for-pass key, a
// no-store request or a bypass cookie passes. Everything else passes: a Fetch of its own, whose
// response is handed to the owner as it arrives. A successful unsafe request invalidates what it
// changed; a POST's response that says it is the current representation of the POST's target
// (RFC 9110 9.3.3) is stored for later GETs of it as it passes.
//
// A fill's events are read here, on the owner's loop: told directly by a fill on this worker
// (from inside that fill's fetch callbacks), through the worker's inbox by another's. A fill
// this exchange started that proves not storable is taken over (Fill::take_pass) and passed
// through like a pass-through Fetch of its own.
//
// Ownership: the owner embeds or owns the Exchange and calls end() (or destroys it) before the
// request, the body or the owner go away. The Exchange borrows the request head and body until
// then; it owns its pass-through Fetch, shares the Fill it waits on, and hands out shared objects.
// Callbacks come on the owner's loop, possibly from inside start(); the owner may end or restart
// the exchange from any of them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cache/counters.h"
#include "cache/policy.h"
#include "cache/store.h"
#include "http/body.h"
#include "http/message.h"
#include "proxy/fetch.h"
#include "proxy/fill.h"
#include "proxy/router.h"
#include "proxy/trace.h"

namespace edge::proxy {

class Worker;

class Exchange final : Fetch::Owner, FillSubscriber {
 public:
  class Owner {
   public:
    // Deliver this object: complete, or still filling, in which case on_exchange_progress()
    // follows each time its body grows, completes or fails.
    virtual void on_exchange_object(const cache::ObjectRef& object, const char* x_cache) = 0;
    // A response passed through: the Fetch's Body holds what has arrived; called again as it
    // grows, `complete` the last time.
    virtual void on_exchange_response(Fetch& fetch, const http::ResponseHead& head, bool complete) = 0;
    virtual void on_exchange_progress() = 0;
    // No response could be had (status), or the one being delivered broke off.
    virtual void on_exchange_failed(int status) = 0;
    // An interim response (103 Early Hints, 102) from the backend this request asked, ahead of
    // the final one.
    virtual void on_exchange_interim(const http::ResponseHead&) {}

   protected:
    ~Owner() = default;
  };

  struct Request {
    GenerationRef generation;                 // the configuration route's indexes belong to
    const http::RequestHead* head = nullptr;  // borrowed until end()
    const http::Body* body = nullptr;         // borrowed until end(); null: none
    RouteMatch route;
    // Borrowed until end(), like the head.
    // The request's identity, canonical (http/uri), for the key and the upstream head alike.
    std::string_view authority;      // the host (no port); "" when the request named none
    std::string_view origin_target;  // the target in origin form
    std::string_view client_ip;      // for X-Forwarded-For
    bool https = false;              // came over TLS: X-Forwarded-Proto
    // The protocol the request switches to (an allowed Upgrade): passed, never cached.
    std::string_view upgrade;
    Trace* trace = nullptr;          // the steps taken are added here; null: not traced
  };

  Exchange(Worker& worker, Owner* owner) : worker_(worker), owner_(owner) {}
  ~Exchange() { end(); }
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  void start(const Request& request);
  // The owner is done: the fetch stops, the fill is left, nothing more is called back.
  void end();

  uint64_t id() const { return id_; }
  const char* x_cache() const { return x_cache_; }
  // The backend exchange this request caused (its own fetch, or the fill it started), as far as
  // it went; backend -1 when none was asked. Kept after end(), until the next start().
  const Fetch::Facts& fetch_facts() const { return facts_; }
  const conf::CachePolicy* policy() const { return policy_; }
  // Waiting for another request's fill (the owner bounds that with coalesce_timeout and then
  // calls stop_waiting(), which passes the request to the backend alone).
  bool waiting_for_fill() const { return fill_ && !fill_initiator_ && !delivering_; }
  void stop_waiting();

 private:
  void serve_from_cache();
  void start_pass();
  void start_fill(cache::ObjectRef stale, bool coalesced, bool replaces = true);
  // A partial object found (cache/partial.h): answered from its parts when they hold what the
  // request wants and are fresh, else the bytes missing (stale: all it wants, with If-Range)
  // fetched by range.
  void serve_partial(const cache::ObjectRef& object);
  void start_range_fill(cache::ObjectRef partial, cache::ByteRange range, bool range_is_request);
  // The bytes of a representation of `size` bytes this request wants: its range, or all of it.
  cache::ByteRange wanted_bytes(const http::Headers& stored, uint64_t size) const;
  void join_fill(std::shared_ptr<Fill> fill);
  void leave_fill();
  void on_fill_event() override;
  void on_fill_interim(const http::ResponseHead& interim) override { owner_->on_exchange_interim(interim); }
  void take_pass();
  void refresh_in_background(const cache::ObjectRef& stale);
  Fill::Params fill_params(cache::ObjectRef stale, bool coalesced);
  void deliver(const cache::ObjectRef& object, const char* x_cache);
  // Whether this request lets `stale` answer for a backend in trouble (stale-if-error, grace).
  bool stale_may_stand_in(const cache::ObjectRef& stale) const;
  void serve_stale_or_error(const cache::ObjectRef& stale, int status);
  void invalidate_after(const http::ResponseHead& head);
  // The key, host and variant part a GET of this request's target is stored under.
  void compute_key();
  // A POST whose response answers later GETs of its target (proxy/fill.h object_for_post) is
  // copied as it passes and stored under the GET's key once whole.
  void start_storing_post(const http::ResponseHead& head);
  void copy_post_body(Fetch& fetch, bool complete);
  void count(cache::Event event);
  void step(Step step) {
    if (trace_) trace_->add(step);
  }
  void on_fetch_response(Fetch& fetch, const http::ResponseHead& head, bool complete) override;
  void on_fetch_failed(Fetch& fetch, int status) override;
  void on_fetch_interim(Fetch&, const http::ResponseHead& interim) override { owner_->on_exchange_interim(interim); }

  Worker& worker_;
  Owner* owner_;
  GenerationRef generation_;  // from start() to end()
  uint64_t id_ = 0;  // unique on this worker for each start(): fills' events find it by this
  const http::RequestHead* head_ = nullptr;
  const http::Body* body_ = nullptr;
  RouteMatch route_;
  std::string_view authority_;
  std::string_view origin_target_;
  std::string_view client_ip_;
  std::string_view upgrade_;  // borrowed like the head
  bool https_ = false;
  Trace* trace_ = nullptr;
  const conf::CachePolicy* policy_ = nullptr;
  FetchHandle fetch_;  // a pass-through exchange's
  std::shared_ptr<Fill> fill_;
  bool fill_initiator_ = false;
  bool delivering_ = false;  // the owner has an object from the fill
  bool active_ = false;
  const char* x_cache_ = "PASS";
  Fetch::Facts facts_;
  std::string cache_host_;  // lower case, no port
  std::string cache_key_;
  std::string key_extra_;   // the key-cookie part of the variant
  cache::CacheControl request_cc_;
  cache::Seconds pass_sent_at_ = 0;  // when the pass-through fetch started (wall clock)
  std::shared_ptr<cache::CachedObject> post_object_;  // a POST's response being stored
  std::shared_ptr<http::SharedBody> post_body_;
};

}  // namespace edge::proxy
