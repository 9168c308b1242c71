// proxy/fill: one backend fetch of a cache key, shared by every request that wants the key while
// it runs (request coalescing), and the Coalescer that finds the fill running for a key.
//
// A Fill runs on the loop of the worker that started it (its Fetch lives there) and outlives
// that request: if the client that started it leaves, the fill still completes for the others
// and for the cache. The fill never calls into a request: it publishes its state, and tells its
// subscribers that it changed (the head decided, more body, the end, a failure); each reads the
// state with snapshot(). A subscriber on the fill's worker is told by a direct call, one on
// another worker through that worker's inbox. Nobody polls.
//
// Telling is reentrant-safe: the fill holds no lock while it calls a subscriber, which may
// unsubscribe, start another fill or end its request from the call; a subscriber is never told
// after unsubscribe() has returned. The initiator is not told from inside start(): once start()
// has returned it reads snapshot() itself, as one that joins does after subscribe().
//
// With the memcached tier, a fill first asks memcached (kFetching all along): a usable record (or
// a static route's foreign value) becomes kStreaming at once, complete, and goes into the RAM
// tier; a stale record becomes the object to revalidate; anything else goes on to the backend.
//
// What a fill becomes once the response head arrives:
//   kStreaming  storable (or a 304 that refreshed `stale`): `object` is the cached object being
//               filled; its SharedBody grows, and subscribers stream it as it does. At the end
//               the object goes into the store. A page to be assembled (ESI/SSI) is compiled as
//               it arrives and becomes kStreaming only once whole, with its template attached.
//   kPass       not storable: the key is marked hit-for-pass (unless the reason was the request
//               or a 5xx); the initiator, told of it, takes the fetch over with take_pass() and
//               passes the response through (if it has left, the fill finishes the fetch);
//               every other subscriber goes to the backend itself, in parallel.
//   kFailed     no usable response (`status`); `stale` may be served instead where allowed.
// The route's streak (Params::streak) is told what the response proved: reset once an object is
// stored (or refreshed by a 304, or found in memcached), lengthened by a response that marks the
// key (a 5xx aside), untouched by a failure.
//
// Ownership: shared (std::shared_ptr) by the Coalescer while it runs, by its subscribers, and by
// itself while its Fetch is in flight. The Fetch is the fill's until take_pass() hands it over
// (the fill finishes it from its callbacks; nothing else can end it first). Subscribers are borrowed: from subscribe() (or start()) until unsubscribe().
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/store.h"
#include "compress/codec.h"
#include "conf/config.h"
#include "hash/keyed_hash.h"
#include "http/message.h"
#include "proxy/fetch.h"
#include "proxy/generation.h"
#include "proxy/herd.h"
#include "proxy/tier.h"
#include "ssi/template.h"

namespace edge::proxy {

class Worker;

// Who reads a fill's events (a request's Exchange). Called on the subscriber's own loop.
class FillSubscriber {
 public:
  // The fill's state changed: read it with snapshot().
  virtual void on_fill_event() = 0;
  // An interim response (103 Early Hints, 102) from the backend, told to the initiator only,
  // on its loop, as it arrives: never stored, never told to the others.
  virtual void on_fill_interim(const http::ResponseHead&) {}

 protected:
  ~FillSubscriber() = default;
};

class Fill final : public Fetch::Owner, public std::enable_shared_from_this<Fill> {
 public:
  enum class State { kFetching, kStreaming, kPass, kFailed };

  struct Params {
    std::string key;
    std::string host;           // the key's host part
    std::string variant_extra;  // the key-cookie part of the variant
    GenerationRef generation;  // the configuration host_index, policy and backend belong to
    int host_index = -1;
    const conf::CachePolicy* policy = nullptr;  // borrowed from generation
    http::RequestHead request;  // the initiator's request (storability, Vary selection)
    cache::ObjectRef stale;     // the stored object being revalidated, or null
    int backend = -1;
    std::string upstream_head;  // a GET, with the stale object's validators when revalidating
    bool coalesced = true;      // registered in the Coalescer (false: a private fill)
    // The route's streak of not-storable fills (proxy/herd.h), told what this fill's response
    // proved to be; borrowed from generation. Null: nobody is told.
    RouteStreak* streak = nullptr;
    bool ram = true;            // the RAM tier stores the object (the route's `ram`)
    // False for a revalidation only the initiator's own directives asked for (no-cache on an
    // object fresh for everyone): a 304 refreshes the stored object, but a full response goes
    // to the initiator alone, unstored, and marks nothing.
    bool replaces = true;
    // The memcached tier: asked before the backend under this key ("" : not asked), and
    // written through when the response is stored. On a static route the key is the route's
    // and a value in no record format is served as a body (static_path: its Content-Type).
    std::string tier_key;
    bool tier_lookup = true;  // false: written through only (a refresh of what memcached gave)
    bool static_route = false;
    std::string static_path;
    // A fill of a byte range (cache/partial.h): upstream_head asks for `range` (last UINT64_MAX:
    // to the end), with an If-Range on `partial`'s validator when part of the object is stored.
    // A usable 206 becomes part of a partial object (its parts and `partial`'s, when the
    // validators agree), published as kStreaming while the part arrives; a 200 is stored as any
    // full response. Never coalesced, never asks memcached. `range_is_request`: the range is
    // exactly the client's, so a 206 that cannot be stored is passed through to it; otherwise
    // (a part of what the client asked) the initiator is told kPass with nothing to take.
    std::optional<cache::ByteRange> range;
    cache::ObjectRef partial;
    bool range_is_request = false;
  };

  struct Snapshot {
    State state = State::kFetching;
    cache::ObjectRef object;  // kStreaming
    cache::ObjectRef stale;   // kFailed, and kPass with a status: what may be served instead
    int status = 0;           // kFailed; kPass: the backend's 5xx to a revalidation (else 0)
    bool revalidated = false; // kStreaming from a 304
    bool from_tier = false;   // kStreaming: found in memcached, no backend asked
    bool stale_from_tier = false;  // from_tier, stale but within grace: refreshed in the background
    Fetch::Facts fetch;       // the backend exchange so far (backend -1: none asked)
  };

  // Starts the fetch on `worker`'s loop, and returns the fill. `initiator` (null: none, a
  // background refresh) is the subscriber on this loop that asked, with its id unique on the
  // loop; it is subscribed already, and told of nothing that happens before start() returns.
  // When a fill for the key was registered meanwhile by someone else, that one is returned
  // instead, nothing is started, `*started` is false, and the caller subscribes to it.
  static std::shared_ptr<Fill> start(Worker& worker, Params params, uint64_t initiator_id,
                                     FillSubscriber* initiator, bool* started);

  // On `worker`'s loop (any worker): `subscriber`, known by `id` (unique on that loop), is told
  // of every event from now until unsubscribe(). False when the fill is over and will tell
  // nothing more: read snapshot().
  bool subscribe(Worker& worker, uint64_t id, FillSubscriber& subscriber);
  void unsubscribe(Worker& worker, uint64_t id);
  Snapshot snapshot() const;

  // kPass, for the initiator while it is told of it: the fetch, its head (borrowed for the
  // call) and whether the response is complete. The fetch is the caller's from then on (its
  // owner, finish()). Null fetch for anyone else, or once taken.
  struct Pass {
    FetchHandle fetch;
    const http::ResponseHead* head = nullptr;
    bool complete = false;
  };
  Pass take_pass(uint64_t initiator_id);
  const std::string& key() const { return params_.key; }

 private:
  Fill(Worker& worker, Params params) : worker_(worker), params_(std::move(params)) {}
  void on_fetch_response(Fetch& fetch, const http::ResponseHead& head, bool complete) override;
  void on_fetch_failed(Fetch& fetch, int status) override;
  void on_fetch_interim(Fetch& fetch, const http::ResponseHead& interim) override;
  void start_fetch();
  bool ask_tier(std::string key);  // false: memcached cannot be asked now
  void write_through(const cache::CachedObject& object);
  void on_tier_found(Tier::Found found);
  void publish_from_tier(std::shared_ptr<cache::CachedObject> object);
  void refresh_from_backend();  // a stale record served from memcached, by a fill of its own
  void decide(Fetch& fetch, const http::ResponseHead& head, bool complete);
  // A 206 to a range fill: stored as a part, or passed (false: not usable as a part).
  bool decide_part(Fetch& fetch, const http::ResponseHead& head, const http::ResponseHead& policy_head, bool complete);
  // The end of a part's body: the part joins what is stored now (or the whole, once complete).
  void store_part();
  void copy_body(Fetch& fetch, bool complete);
  // The body cannot be what it says (a 206 shorter or longer than its part, a coding that does
  // not decode): readers stop, the fill fails with 502 and nothing is stored.
  void abandon_body(Fetch& fetch);
  void end();  // on the fill's loop: leaves the coalescer, tells the last event, drops the self reference
  void notify_all();  // tells every subscriber
  bool subscribed(uint64_t id) const;  // a subscriber on this fill's worker

  struct Subscriber {
    Worker* worker;
    uint64_t id;
    FillSubscriber* subscriber;  // called only on its worker's loop
  };

  Worker& worker_;
  Params params_;
  std::shared_ptr<Fill> self_;  // keeps the fill alive while its fetch runs (the tier's answer
                                // holds it while memcached is asked)
  cache::Seconds request_time_ = 0;
  bool decided_ = false;
  std::shared_ptr<cache::CachedObject> filling_;  // kStreaming: being filled, inserted at the end
  std::shared_ptr<http::SharedBody> body_;
  std::optional<cache::Part> part_;  // a range fill's part, as its Content-Range announced it
  uint64_t copied_ = 0;
  // A response the backend coded although asked for none, on a route that compresses: body_
  // gets it decoded, `coded_` keeps it as sent (one of the object's encodings once whole).
  std::unique_ptr<compress::Decoder> decoder_;
  std::shared_ptr<http::SharedBody> coded_;
  compress::Coding coded_as_ = compress::Coding::kIdentity;
  bool decoded_whole_ = false;  // the decoder saw its stream's end
  std::string decoded_;         // scratch
  // A page with ESI/SSI is compiled as it arrives and published only whole, with its template.
  std::optional<ssi::Parser> esi_parser_;
  cache::ObjectRef refresh_after_publish_;  // a stale record served from memcached, to refresh
  bool variant_asked_ = false;  // memcached was asked for this request's Vary variant
  bool starting_ = false;       // inside start(): the initiator reads the state once it returns
  Pass pass_;                   // kPass: the fetch until the initiator takes it

  mutable std::mutex mutex_;  // guards everything below
  State state_ = State::kFetching;
  cache::ObjectRef object_;
  int status_ = 0;
  bool revalidated_ = false;
  bool from_tier_ = false;
  bool stale_from_tier_ = false;
  Fetch::Facts facts_;
  bool over_ = false;  // no more events
  uint64_t initiator_ = 0;  // its id; 0 once it left
  uint64_t departures_ = 0;  // unsubscriptions from this fill's worker (only it writes it)
  std::vector<Subscriber> subscribers_;
};

// The object a POST's response becomes when it answers later GETs of its target
// (cache::post_answers_get, judged by `params`' policy): to be stored under params.key, its
// status, fields and freshness set, its body for the caller to fill. Null when it is not one
// (or is a page to assemble, or larger than max_object). `target`: the POST's, as keyed.
std::shared_ptr<cache::CachedObject> object_for_post(const Fill::Params& params, std::string_view target,
                                                     const http::ResponseHead& head, cache::Seconds request_time);

// The fills running, by key. Any thread.
class Coalescer {
 public:
  // The fill running for `key`, or null.
  std::shared_ptr<Fill> find(const std::string& key);
  // Registers `fill` unless one is running for its key; returns the one that runs.
  std::shared_ptr<Fill> add(const std::shared_ptr<Fill>& fill);
  void remove(const Fill* fill);

 private:
  static constexpr size_t kStripes = 16;
  struct Stripe {
    std::mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<Fill>, hash::KeyedHash, std::equal_to<>> fills;
  };
  Stripe& stripe(const std::string& key) { return stripes_[hash::KeyedHash{}(key) % kStripes]; }
  Stripe stripes_[kStripes];
};

}  // namespace edge::proxy
