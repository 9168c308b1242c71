// proxy/request: one client request, as named steps, from its head to its last byte written.
//
// The steps (proxy/trace.h names them; each is a function, in this file unless said):
//   recv      recv()                    at the head: identity, route, Expect, the route's rules
//                                       (access list, rate limit, maintenance, redirect: an
//                                       answer decided here waits for the body), fields the key
//                                       does not describe, the request's header rules
//   lookup    Exchange::lookup()        proxy/exchange.cc: the store asked for the key
//   hit/stale Exchange::lookup()        a usable stored object, fresh or within its stale rules
//   miss      Exchange::start_fill()    a fill started for the key (proxy/fill.cc fetches)
//   wait      Exchange::join_fill()     another request's fill joined (bounded by coalesce_timeout)
//   pass      Exchange::start_pass()    to the backend for this request alone (proxy/fetch.cc), or
//             Exchange::take_pass()     the fetch of a fill it started that may not be stored
//   deliver   deliver()                 a stored object's head: 200, or 304/412/206/416 from it
//   relay     relay()                   a passed response's head, its body streamed
//   assemble  assemble()                an ESI/SSI page from its includes (proxy/assembly.cc)
//   synth     synth()                   an answer edge makes itself (errors, rejections)
//   purge     purge()                   a PURGE from an allowed address (of a URL, or with
//                                       X-Purge-Method a ban by prefix or regex): the RAM cache
//                                       at once, the memcached tier's log before the answer
//   done      done()                    written, or abandoned: everything held is let go, and
//                                       the access log gets the request's line (log/access_log)
// Every head goes through proxy/heads' build_response_head(); the request's trace records each
// step with its time, for the access log and debug output.
//
// The Request does not know how bytes reach the client: its Client (an HTTP/1.1 connection,
// proxy/client; an HTTP/2 stream, proxy/h2_client) sends a head and a body source, kicks the
// writer as the body grows, and closes (or resets the stream) when a response breaks off.
//
// Ownership: the Client embeds the Request and calls done() before the next request or before it
// goes. Between start() and done() the Request borrows the request head and body; it owns its
// Exchange and the Assembly it started (an AssemblyHandle), and shares the object it delivers.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "cache/store.h"
#include "compress/stream.h"
#include "http/body.h"
#include "http/message.h"
#include "proxy/assembly.h"
#include "proxy/exchange.h"
#include "proxy/heads.h"
#include "proxy/router.h"
#include "proxy/stats.h"
#include "proxy/trace.h"
#include "rules/address.h"
#include "rules/template.h"

namespace edge::proxy {

class Worker;

class Request final : Exchange::Owner, Assembly::Owner {
 public:
  class Client {
   public:
    // The framing this client allows for a response: its version, and whether its connection
    // may stay open afterwards (never when `may_keep_alive` is false).
    virtual ClientFraming framing(bool may_keep_alive) = 0;
    struct Response {
      const std::string* head = nullptr;    // borrowed until the write is done
      const http::HeadIndex* index = nullptr;  // an HTTP/2 stream's head located; borrowed as `head`
      http::BodySource* body = nullptr;     // null: none; borrowed until the write is done
      bool chunked = false;
      bool release = true;                  // written body parts may be freed (a passed body)
      bool keep_alive = true;
      bool synthetic = false;               // synth(): nothing more is read if not kept alive
    };
    // Writes the response; the Client calls the Request's done() once it is written.
    virtual void send(const Response& response) = 0;
    // Writes an interim response's head (103 Early Hints) ahead of the response.
    virtual void send_interim(std::string head) = 0;
    virtual void kick() = 0;  // the body being written grew, completed or failed
    // The response cannot be completed (it started, and its source broke off): close.
    virtual void broke_off(CloseReason reason) = 0;
    virtual std::string_view client_ip() = 0;
    virtual bool secure() = 0;  // the connection is TLS (https)
    // Bytes of the current response written to the client so far, head included.
    virtual uint64_t bytes_sent() = 0;
    // The backend switched protocols (101): the connection becomes a tunnel to `upstream` once
    // the 101 is written. False when this client cannot (the upstream is let go).
    virtual bool start_tunnel(Fetch::Upgraded upstream) = 0;

   protected:
    ~Client() = default;
  };

  Request(Worker& worker, Client& client);
  ~Request() { done(); }
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  // The recv step, at the head. 0: go on (read the body); else the status to refuse the request
  // with, closing the connection. An answer decided here (404) is early_status(), given by
  // start() once the body is read.
  int recv(http::RequestHead& head);
  int early_status() const { return early_status_; }
  // The request is complete: answered from the cache, a fill, a pass, or synth.
  void start(const http::RequestHead& head, const http::Body& body);
  // An answer edge makes itself.
  // `extra_fields`: whole field lines (a redirect's Location).
  // The body is `page`, else the route's error page for the status, else edge's own.
  void synth(int status, bool may_keep_alive, std::string_view extra_fields = {}, const conf::ErrorPage* page = nullptr);
  // The connection refuses what it read of `head` (malformed, too slow): synth, then close.
  void refuse(const http::RequestHead& head, int status);
  // The response is written, the client left, or the connection closes: let everything go.
  void done();

  bool responding() const { return responding_; }
  // Waiting on another request's fill: the Client bounds it with coalesce_timeout, then calls
  // stop_waiting(), which passes the request to the backend alone.
  bool waiting_for_fill() const { return exchange_.waiting_for_fill(); }
  void stop_waiting() { exchange_.stop_waiting(); }
  const Trace& trace() const { return trace_; }

 private:
  // The route's rules (conf::Rules) that answer at the head: an early status, or 0.
  int apply_rules(const conf::Rules& rules);
  void read_client();  // client_address_ and client_ip_, once per request
  void purge();
  void purge_recorded(bool ok, const std::string& error);
  rules::TemplateValues template_values();
  void deliver(const cache::ObjectRef& object, const char* x_cache);
  void deliver_head(const cache::CachedObject& object, int status, std::string_view extra, bool has_body,
                    std::optional<uint64_t> length, bool length_without_body, http::BodySource* body,
                    compress::Coding coding = compress::Coding::kIdentity);
  // The coding a response with these fields goes out in: the client's choice (Accept-Encoding)
  // among `offered` (the route's codings when empty) when the route compresses it, which also
  // makes the response say Vary: Accept-Encoding; identity otherwise, and for a range request.
  compress::Coding decide_coding(int status, const http::Headers& fields, std::optional<uint64_t> length,
                                 std::span<const compress::Coding> offered);
  // `body` (null for a head alone) compressed as it streams, at the route's stream level; sets
  // the spec's Content-Encoding and weak ETag and forgets its length. The writer must release
  // what it wrote of the returned source. `body` itself, and the spec unchanged, when the worker
  // is at Worker::kMaxCompressingStreams or the encoder cannot be made.
  http::BodySource* stream_coded(ResponseSpec& spec, compress::Coding coding, http::BodySource* body,
                                 bool release_inner);
  void relay(Fetch& fetch, const http::ResponseHead& head, bool complete);
  void switch_protocols(Fetch& fetch, const http::ResponseHead& head);
  void compile_passed_page(Fetch& fetch, const http::ResponseHead& head, bool complete);
  void assemble();
  void send_assembled();
  // Every response goes out here: the head from `spec` (and `inline_body` right after it).
  void send(const ResponseSpec& spec, http::BodySource* body, bool release, bool may_keep_alive = true,
            bool synthetic = false, std::string_view inline_body = {});

  void on_exchange_object(const cache::ObjectRef& object, const char* x_cache) override;
  void on_exchange_response(Fetch& fetch, const http::ResponseHead& head, bool complete) override;
  void on_exchange_progress() override;
  void on_exchange_failed(int status) override;
  void on_exchange_interim(const http::ResponseHead& interim) override;
  void on_assembly_progress() override;
  void on_assembly_failed() override;
  // The request's access log line, formatted here and queued for the log's writer thread.
  void log_access(uint64_t done_ns);  // done_ns: uv_hrtime() when the request ended

  Worker& worker_;
  Client& client_;
  GenerationRef generation_;  // the configuration this request runs on, from recv() to done()
  Trace trace_;
  const http::RequestHead* head_ = nullptr;  // borrowed from recv() until done()
  RouteMatch route_;
  std::string host_;    // canonical (http/uri): from the target's authority or Host; "" for none
  std::string target_;  // canonical, in origin form
  int early_status_ = 0;
  std::string early_fields_;  // field lines of the early answer (a redirect's Location)
  const conf::ErrorPage* early_page_ = nullptr;  // the early answer's body (maintenance)
  const conf::Rules* rules_ = nullptr;  // the route's; null before routing or without a route
  bool purging_ = false;                // a PURGE for purge(), once its body is read
  std::string upgrade_;  // the protocol the request switches to, that its route allows; "" none
  conf::ErrorPage purge_answer_;        // what purge() answers (JSON)
  // Held while the memcached tier records a purge; its callback finds the request through it
  // only while it lives (done() lets it go).
  std::shared_ptr<Request*> purge_wait_;
  // The client as the rules and the access log see it (rules/address.h): the peer, or behind a
  // trusted proxy the address X-Forwarded-For names. Read when first needed.
  bool client_read_ = false;
  rules::IpAddress client_address_;
  std::string client_ip_;
  Exchange exchange_;             // the request through the cache and to a backend
  cache::ObjectRef object_;       // being delivered from the cache
  AssemblyHandle assembly_;  // the page being assembled from object_
  bool holding_head_ = false;       // esi.on_error fail: the head waits for every include
  bool assembly_starting_ = false;  // inside Assembly::start: its news waits
  bool assembly_failed_ = false;    // it failed while starting
  http::BodyWindow window_;         // the part of object_'s body a range asks for
  compress::CompressingSource compressing_;  // the body being sent, compressed as it streams
  bool vary_accept_encoding_ = false;        // the response varies by the client's Accept-Encoding
  compress::Coding sent_coding_ = compress::Coding::kIdentity;  // of the body being sent
  bool coded_streamed_ = false;  // by compressing_; else a stored encoding of these sizes:
  uint64_t coded_before_ = 0;
  uint64_t coded_after_ = 0;
  cache::PartsBody parts_body_;     // what a request wants of a partial object_'s parts
  const char* x_cache_ = "PASS";
  int status_ = 0;           // of the response sent; 0: none
  bool exchanged_ = false;   // the request went through exchange_ (its facts are this request's)
  bool active_ = false;      // between recv() and done()
  bool responding_ = false;  // a response is being sent (or its head decided, for an object)
  bool head_sent_ = false;
  std::string response_head_;
  http::HeadIndex head_index_;  // where response_head_'s fields lie, for an HTTP/2 stream
};

}  // namespace edge::proxy
