// proxy/fetch: one request sent to a backend and its response read back, whoever asked for it:
// a client's pass-through request, a cache fill that other requests wait on, a background
// revalidation. The Fetch chooses the server (balancer), waits in the backend's queue when every
// server is at max_conns, and retries where that is safe:
//   - a connect failure: any request goes to another server;
//   - a reset before any response byte: only idempotent requests, on another server;
//   - a kept-alive connection the server had just closed: once more, fresh, same server.
// The response is read at full speed into the Fetch's Body (which spills to a temporary file),
// whatever the pace of whoever reads it.
//
// Ownership: a Fetch lives on one worker loop and owns itself: it is created by start() and
// freed after its owner calls finish(), once the calls on the stack have returned (from its
// deadline's close completion). A fetch finished while a server
// with max_conns works on its request lives on, with nobody to tell, until that server has
// answered (the response is dropped) or response_timeout has passed: the server's slot is held
// until then, so the next request never finds it busy. The owner is
// borrowed: callbacks stop after on_fetch_failed(), after on_fetch_response(complete=true), and
// after finish() or set_owner(nullptr). The request body is borrowed until the fetch ends.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "balancer/balancer.h"
#include "http/body.h"
#include "http/deadline.h"
#include "http/parser.h"
#include "proxy/generation.h"
#include "proxy/upstream.h"

namespace edge::proxy {

class Fetch;
// An owned fetch: finished (it then frees itself) when the handle lets it go.
struct FinishFetch {
  void operator()(Fetch* fetch) const;
};
using FetchHandle = std::unique_ptr<Fetch, FinishFetch>;

class Worker;

class Fetch final : UpstreamConn::Owner, balancer::Waiter {
 public:
  // What the access log says of the backend exchange: copied by whoever asked, as it goes.
  struct Facts {
    int backend = -1;
    int server = -1;             // the last server tried; -1: none yet
    uint32_t retries = 0;        // servers tried after the first
    uint64_t first_byte_ns = 0;  // uv_hrtime() when the response head was read; 0: not yet
  };
  class Owner {
   public:
    // The head is complete; the Body holds what has arrived. Called again on every read that
    // made progress; `complete` the last time.
    virtual void on_fetch_response(Fetch& fetch, const http::ResponseHead& head, bool complete) = 0;
    // No response could be had: the status to answer with (502, 503, 504 or 500). If the
    // response had started, the Body holds its part and `response_started()` is true.
    virtual void on_fetch_failed(Fetch& fetch, int status) = 0;
    // An interim response (103 Early Hints, 102) ahead of the final one: to pass on, or not.
    virtual void on_fetch_interim(Fetch&, const http::ResponseHead&) {}

   protected:
    ~Owner() = default;
  };

  struct Request {
    GenerationRef generation;  // whose backend, servers and balancer; required
    int backend = -1;          // index into generation's backends
    std::string head;                   // the request head as sent upstream
    const http::Body* body = nullptr;   // borrowed; null or empty: no body
    bool head_request = false;          // the response has no body whatever it says
    bool idempotent = true;             // may be repeated on another server after a reset
    bool upgrade = false;               // asks to switch protocols: a 101 is its answer
  };
  // A 101's connection and the balancer slot it holds, for a tunnel: the taker releases the
  // slot (generation->balancer) when the tunnel ends.
  struct Upgraded {
    UpgradedConn conn;
    GenerationRef generation;
    int backend = -1;
    int server = -1;
  };

  // Starts at once; the owner may be called back before this returns. Null when the owner
  // finished the fetch from inside such a callback (it failed at once).
  static Fetch* start(Worker& worker, Owner* owner, Request request);
  // The owner is done with the fetch (any time): it stops, and frees itself later.
  void finish();
  // Hands the fetch to another owner on the same loop (null: nobody is listening any more).
  void set_owner(Owner* owner) { owner_ = owner; }

  http::Body& response_body() { return response_body_; }
  // After a 101 (on_fetch_response's complete call): its connection and slot, once; the fetch
  // keeps neither. A fetch finished without it closes the connection and releases the slot.
  Upgraded take_upgraded();
  const std::string& request_head() const { return request_.head; }
  bool response_started() const { return response_started_; }
  uint64_t id() const { return id_; }
  const Facts& facts() const { return facts_; }

  // The queue granted a slot (through the worker, on this fetch's loop).
  void on_granted(int server);
  // The worker is stopping: the owner hears of a failure (503) unless the fetch has ended, and
  // the fetch finishes.
  void shutdown();

 private:
  Fetch(Worker& worker, Owner* owner, Request request);
  ~Fetch() = default;
  friend class http::Deadline;  // frees it (finish())

  void dispatch();
  void forward_to(int server, bool fresh);
  void release_slot(balancer::Outcome outcome);
  bool holds_busy_server();  // our request is written to a server with max_conns
  void let_go();             // leaves the worker and the queue; freed later
  static balancer::Outcome outcome_of(UpstreamFailure failure);
  void fail(int status);
  balancer::BackendState& backend_state();
  void granted(int server) override;
  void on_upstream_response(const http::ResponseHead& head, bool complete) override;
  void on_upstream_failed(UpstreamFailure failure, bool reused) override;
  void on_upstream_interim(const http::ResponseHead& interim) override;
  void on_upstream_upgraded(UpgradedConn conn) override;
  void on_queue_timeout();

  Worker& worker_;
  Owner* owner_;
  Request request_;
  http::Deadline deadline_;  // the queue timeout; its close frees the fetch
  http::Body response_body_;
  UpstreamConn* upstream_ = nullptr;
  UpgradedConn upgraded_;  // a 101's connection until take_upgraded()
  uint64_t id_ = 0;              // unique on this worker: grants find the fetch by it
  Facts facts_;
  uint64_t tried_servers_ = 0;   // bit per server index (mod 64)
  int slot_server_ = -1;         // the server whose balancer slot this fetch holds
  int last_failure_status_ = 0;  // the answer if no server is left to try (0: 503)
  bool queued_ = false;
  bool retried_fresh_ = false;
  bool response_started_ = false;
  bool finished_ = false;
  bool draining_ = false;  // finished, holding the slot until the server has answered
  bool ended_ = false;  // complete or failed: the owner has heard the end
};

}  // namespace edge::proxy
