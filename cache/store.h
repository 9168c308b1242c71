// cache/store: the RAM tier of the HTTP cache: stored responses, shared by every worker thread,
// bounded in memory, admitted by TinyLFU and evicted from FIFOs.
//
// Objects: a CachedObject is built once (by the fetch that stored it) and never changed after
// insert(), except for its `invalidated` flag (a soft purge) and the store's own bookkeeping in
// it. An object is stored once, in one store: insert() refuses one a store took before. A revalidation stores a new object
// sharing the old one's body. Readers get an ObjectRef, a
// shared_ptr to a const object: a body being delivered stays alive and is never copied, whatever
// the store does meanwhile (replace, evict, purge).
//
// Keys: a key (cache::cache_key) has one or more variants, told apart by their variant string
// (cache::vary_key over the Vary names the stored response gave; "" without Vary). A new object
// with the same key and variant replaces the old one. A key holds at most `max_variants`: a new
// variant past it replaces the oldest one that was not read since it came in (else the oldest),
// so variants made up by clients push out one another, not the ones in use. A lookup computes
// the request's variant once (per set of Vary names among the key's variants, normally one) and
// compares strings: its cost is bounded by max_variants, not by what clients sent.
//
// Memory: every object is charged its head, body, key and a fixed overhead; the sum never stays
// above `memory` after insert() returns. Objects over `max_object` are refused.
//
// Admission and eviction (W-TinyLFU over FIFOs, after Caffeine's and S3-FIFO's designs): every
// lookup, hit or miss, counts its key in a frequency sketch (cache/frequency_sketch.h), which
// remembers keys the store does not hold. New objects enter a window FIFO (1% of the memory).
// An object leaving the window enters main while main has room; once main is full, it takes
// the place of main's next victims only if the sketch says it was asked for more often lately
// than they were together, or, asked for at least twice, more often per byte than they were
// when they take twice its room; else it is evicted (an admission refusal; a tie keeps the
// victims). Main is a FIFO that gives
// an object read since its last pass another round (up to 3 reads remembered): its victim is
// the first unread one. A scan of new keys therefore never displaces what is popular, and
// under independent requests the store holds close to the most popular objects that fit. An
// attacker who raises a victim's count cannot keep it forever: counts halve over time, and a
// candidate counted 6 or more wins one draw in 128 even when it loses the comparison.
//
// Tags, bans, hit-for-pass: a tag index (tag -> objects) follows objects in and out, so
// purge_tag() touches only the tagged objects. A ban is only recorded when issued; lookup()
// applies the bans newer than the object it found, and sweep_bans() applies them all to every
// object, a slice at a time, and then forgets them. Hit-for-pass marks live beside the keys they
// mark.
//
// Threads: every public function may be called from any thread. The store is lock-striped by
// key for lookups; insertion and eviction take the stripe's lock and, briefly, the eviction lock;
// the tag index and the ban list have a lock each, taken briefly (store.cc has the lock order).
// purge_if() and sweep_bans() lock one stripe at a time; sweep_bans() a slice of it at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cache/ban_regex.h"
#include "cache/compact.h"
#include "compress/coding.h"
#include "cache/partial.h"
#include "cache/policy.h"
#include "http/message.h"
#include "http/shared_body.h"

namespace edge::cache {

// Something a module derives from a stored response and keeps with it (the compiled ESI template
// of a page): built before the object is stored, immutable after, counted in its charge.
struct Attachment {
  virtual ~Attachment() = default;
  virtual uint64_t memory() const = 0;
};

struct CachedObject {
  // The key (cache_key(host, target), or a static asset's key), the host it was stored for (lower
  // case, no port: bans and per-host figures) and the path (normalised path, "?" and query:
  // bans), set together. A key of cache_key's form is the host followed by the path, and holds
  // both: only a key of another form keeps them apart.
  void set_key(std::string_view key, std::string_view host, std::string_view path);
  std::string_view key() const { return key_; }
  std::string_view host() const { return names().substr(0, host_length_); }
  std::string_view path() const { return names().substr(host_length_); }

  // The fields below are laid out for size (cache/compact.h): a store holds many objects, and
  // most of their lists are empty.

  // Which variant of the key this is: the vary_key of the request that fetched it (over
  // vary_names), then, when the route has key_scheme or key_cookies, "\x1f" and the key-extra
  // string (the scheme, the key cookies' values).
  PackedString variant;
  SparseVector<std::string> vary_names;  // lower-case names from the response's Vary, sorted
  uint16_t status = 200;
  // `body` was decoded from the coding the backend applied (kept among the encodings): its
  // strong ETag is sent weak, since the bytes are not the origin's.
  bool decoded = false;
  // Set by a soft purge or soft ban: the object stays, but is treated as stale from then on.
  mutable std::atomic<bool> invalidated{false};

 private:
  uint32_t host_length_ = 0;  // here, beside the small fields, where it costs no padding

 public:
  http::Headers headers;  // as stored: hop-by-hop fields already removed
  std::shared_ptr<const http::SharedBody> body;  // never null in the store; shared by deliveries
  StoredAge age;
  Seconds lifetime = 0;
  Seconds grace = 0;         // the route's grace when it was stored
  StoredCacheControl cc;     // the response's directives
  uint64_t ban_epoch = 0;    // set by insert(): bans after this one apply to the object

  // The body in other content codings (compress/), each whole and complete, made once when the
  // object was stored; `body` is always the identity one.
  struct Encoded {
    compress::Coding coding;
    std::shared_ptr<const http::SharedBody> body;
  };
  // What few objects have, kept behind one pointer (null while there is none of it).
  struct Extras {
    PackedString reason;  // empty: the status's standard phrase
    // A partial object (cache/partial.h): the parts it holds, sorted, of a representation of
    // `complete_length` bytes; `body` is then the newest part's (also among the parts) and
    // stands for nothing more. Empty for a complete object.
    std::vector<Part> parts;
    uint64_t complete_length = 0;
    // Empty when the route compresses nothing of the body (or has not yet).
    std::vector<Encoded> encodings;
    std::vector<std::string> tags;                 // Surrogate-Key / xkey values
    std::shared_ptr<const Attachment> attachment;  // null unless a module compiled one
  };
  std::string_view reason() const { return extras().reason; }
  const std::vector<Part>& parts() const { return extras().parts; }
  uint64_t complete_length() const { return extras().complete_length; }
  const std::vector<Encoded>& encodings() const { return extras().encodings; }
  const std::vector<std::string>& tags() const { return extras().tags; }
  const std::shared_ptr<const Attachment>& attachment() const { return extras().attachment; }
  // The extras are made on first use, and let go once all of them are empty again.
  void set_reason(std::string_view reason);
  void set_parts(std::vector<Part> parts, uint64_t complete_length);
  void set_encodings(std::vector<Encoded> encodings);
  void set_tags(std::vector<std::string> tags);
  void set_attachment(std::shared_ptr<const Attachment> attachment);

  const http::SharedBody* encoded(compress::Coding coding) const {
    for (const Encoded& e : encodings())
      if (e.coding == coding) return e.body.get();
    return nullptr;
  }
  bool partial() const { return !parts().empty(); }

  // Bytes counted against the store's memory, by part: the head (reason, fields, Vary names,
  // tags), the body (every coding of it, the parts of a partial one, what a module derived from
  // it) and the bookkeeping (the key, its host and path, the variant, and a fixed share for the
  // object's structures).
  struct Charge {
    uint64_t head = 0;
    uint64_t body = 0;
    uint64_t overhead = 0;
    uint64_t total() const { return head + body + overhead; }
  };
  Charge charge_parts() const;
  uint64_t charge() const { return charge_parts().total(); }

 private:
  friend class Store;
  std::string_view names() const { return apart_.empty() ? key_.view() : apart_.view(); }
  const Extras& extras() const;
  Extras& extras_to_change();
  void drop_empty_extras();
  PackedString key_;
  PackedString apart_;  // host then path, when the key is not the two together
  std::unique_ptr<Extras> extras_;

  // The store's bookkeeping for the object, kept in it so that a stored object is one block, not
  // one for the object and others for its entry, index node and queue slot. Only the store that
  // took the object reads or writes it (store.cc says under which lock); an object is stored once.
  struct StoreLinks {
    std::shared_ptr<const CachedObject> self;      // the store's reference; null once it let go
    const CachedObject* next_in_bucket = nullptr;  // the stripe's index
    const CachedObject* fifo_prev = nullptr;       // the window's or main's FIFO
    const CachedObject* fifo_next = nullptr;
    uint64_t charge = 0;
    uint64_t bans_checked = 0;  // bans up to this epoch no longer concern it
    size_t key_hash = 0;
    uint32_t head_charge = 0;      // of `charge`: the head's part
    uint32_t overhead_charge = 0;  // and the bookkeeping's; the rest is the body's
    std::atomic<uint8_t> freq{0};  // reads since its last pass through main, up to 3
    std::atomic<bool> dead{false};  // no longer counted, out of its FIFO
    bool in_main = false;
    bool indexed = false;  // in its stripe's index
    bool taken = false;    // a store took it (once)
  };
  mutable StoreLinks store_;
};
using ObjectRef = std::shared_ptr<const CachedObject>;

// A copy to change before it is stored (a stored object never changes): everything but
// ban_epoch (insert() sets it) and `invalidated`; bodies are shared, not copied.
std::shared_ptr<CachedObject> copy_of(const CachedObject& from);

// How a stored object looks to decide() at `now`: a soft-purged object is stale from then on
// (no lifetime, at least a second old), whatever its freshness said.
StoredView stored_view(const CachedObject& object, Seconds now);

struct StoreStats {
  uint64_t objects = 0;
  uint64_t bytes = 0;
  uint64_t inserts = 0;
  uint64_t evictions = 0;
  uint64_t refused_too_large = 0;
  uint64_t admission_refusals = 0;  // window objects that lost to main's victim (TinyLFU)
  // `bytes` by part (CachedObject::Charge).
  uint64_t head_bytes = 0;
  uint64_t body_bytes = 0;
  uint64_t overhead_bytes = 0;
  uint64_t sketch_bytes = 0;  // the admission's frequency sketch (not in `bytes`)
  uint64_t purged = 0;  // removed or marked by purge, purge_tag, purge_if and bans
  uint64_t bans = 0;    // active bans
  uint64_t hit_for_pass_marks = 0;
  uint64_t variants_replaced = 0;  // variants pushed out by a new one past max_variants
};

class Store {
 public:
  // What the store hashes keys with: hash::keyed_hash, unless a test gives a function whose
  // hashes collide.
  using KeyHash = size_t (*)(std::string_view key);
  Store(uint64_t memory, uint64_t max_object, uint32_t max_variants = 32, KeyHash key_hash = nullptr);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  struct Lookup {
    ObjectRef object;           // the matching variant, or null
    bool hit_for_pass = false;  // no object, and the key is marked hit-for-pass (mark_hit_for_pass)
  };
  // The variant of `key` whose Vary selection over `request_headers`, followed by
  // `variant_extra` (the scheme and key-cookie part, "" without either), matches; counts as a
  // read for eviction. Bans newer than the object are applied first: a hard ban removes it (null), a soft
  // one marks it invalidated. `now` is the clock hit-for-pass marks were given in (Unix seconds);
  // the wall clock (std::time) when not given.
  Lookup lookup(std::string_view key, const http::Headers& request_headers, std::string_view variant_extra = {},
                std::optional<Seconds> now = std::nullopt);

  // CachedObject::variant for a Vary part (cache::vary_key) and a key-cookie part:
  // vary_part, then "\x1f" and extra when extra is not empty. What lookup() compares with.
  static std::string variant_string(std::string_view vary_part, std::string_view extra);
  // Whether a request (its headers and key-cookie part) selects this object's variant.
  static bool variant_matches(const CachedObject& object, const http::Headers& request, std::string_view extra);

  // Stores (or replaces) the object, sets its ban_epoch, indexes its tags and clears the key's
  // hit-for-pass mark. False when it is larger than max_object or than the whole memory;
  // nothing is stored then.
  bool insert(std::shared_ptr<CachedObject> object);
  // insert(), but only in place of `current` (same key and variant) while it is still stored:
  // false, and nothing stored, once it was replaced, evicted or purged. The new object keeps
  // `current`'s ban epoch and soft purge. For a stored object's later additions (its encodings).
  bool replace(const CachedObject& current, std::shared_ptr<CachedObject> object);

  // New bounds, in place (a reload): a smaller memory evicts at once, by the usual rule, until
  // what is stored fits; a larger one lets more in. A memory that calls for another size of
  // frequency sketch starts a new, empty one. Stored objects over a new max_object, and
  // keys over a new max_variants, stay until replaced or evicted.
  void resize(uint64_t memory, uint64_t max_object, uint32_t max_variants);

  // Remembers, until `until` (seconds, the caller's clock), that the key's responses are not
  // storable: lookups say hit_for_pass, so requests go to the backend in parallel instead of
  // queueing behind one fetch. Bounded in number (about 100k); the oldest marks go first.
  // Marking a marked key moves its expiry (either way).
  void mark_hit_for_pass(std::string_view key, Seconds until, Seconds now);

  // Removes every variant of the key; returns how many objects went. With `soft`, marks them
  // invalidated instead and returns how many were marked.
  size_t purge(std::string_view key, bool soft);
  // Every object whose tags include `tag`, removed or (soft) marked, through the tag index (no
  // scan of the store).
  size_t purge_tag(std::string_view tag, bool soft);
  // Every object for which `match` is true, removed or marked (a full scan).
  size_t purge_if(const std::function<bool(const CachedObject&)>& match, bool soft);

  // A ban: objects stored before it on `host` ("" every host) whose path starts with `prefix`
  // (when set) and matches `regex` (when set; BanRegex::matches, a search in linear time) are
  // treated as purged (soft: invalidated). Cheap: recorded, applied by lookup(), and swept by
  // sweep_bans(). Returns the ban's id (its epoch: the first is 1).
  struct Ban {
    std::string host;
    std::string prefix;
    std::shared_ptr<const BanRegex> regex;  // null: none
    bool soft = false;
  };
  uint64_t ban(Ban ban);
  // Applies every recorded ban to every object it still concerns, then forgets bans that no
  // stored object predates. Returns the objects affected by this call.
  //
  // Bounded work: the sweep takes the stripes in turn, a slice of each (at most 256 entries or
  // 0.5 ms under the stripe's lock, then the lock is let go), so a lookup waiting for a stripe
  // waits at most one slice, and RE2 keeps each match linear (cache/ban_regex.h). A call returns
  // once `budget` has run out (after one slice at least); the next call goes on where it stopped,
  // and the bans are forgotten when a sweep has visited every stripe. Bans recorded meanwhile
  // wait for the next sweep, which starts in the same call while the budget lasts (lookups
  // apply them at once anyway). Safe from any thread; calls are
  // serialised. The proxy runs it on its main loop (proxy/server.cc), in steps of a few ms so
  // the admin port on that loop stays responsive.
  size_t sweep_bans(std::chrono::microseconds budget = std::chrono::microseconds::max());
  // Whether a sweep has started and not yet visited every stripe.
  bool sweeping() const;
  size_t active_bans() const;

  StoreStats stats() const;

 private:
  friend struct CachedObject;  // its charge counts the store's bookkeeping for it
  struct Impl;
  bool insert_replacing(std::shared_ptr<CachedObject> object, const CachedObject* current);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::cache
