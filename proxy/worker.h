// proxy/worker: one thread, one libuv loop, its own listening sockets (SO_REUSEPORT), and
// everything that lives on that loop: client connections and upstream pools.
//
// Shared (process-wide): the RAM cache, the count of client connections, the current
// configuration's Generation (proxy/generation.h) and what outlives configurations. A
// connection never leaves the worker that accepted it.
#pragma once

#include <netinet/in.h>
#include <uv.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "balancer/balancer.h"
#include "cache/counters.h"
#include "cache/store.h"
#include "conf/config.h"
#include "log/access_log.h"
#include "proxy/bounds.h"
#include "proxy/compression.h"
#include "proxy/fill.h"
#include "proxy/generation.h"
#include "proxy/loop_tasks.h"
#include "proxy/metrics.h"
#include "proxy/router.h"
#include "proxy/stats.h"
#include "rules/rate_limit.h"
#include "proxy/tier.h"
#include "proxy/upstream.h"
#include "tls/context.h"
#include "top/windows.h"
#include "uring/ring.h"

namespace edge::proxy {

class ClientConn;
class Fetch;
class H2Client;

struct Shared {
  // Builds the first generation from `config`, with the backends' contexts of `tls`; keeps the
  // listeners' contexts.
  Shared(conf::Config config, tls::Contexts tls);
  // The current generation. Main thread only: the workers get theirs through their inbox
  // (Worker::use_generation), so a reload publishes it to each in turn.
  GenerationRef generation;
  LabelSlots host_slots;       // before store: the first generation takes its slots
  LabelSlots server_slots;
  cache::Store store;          // the RAM cache, every worker's; resized in place by a reload
  Coalescer coalescer;         // the cache fills running, by key
  Compressor compressor{store};  // the encodings of large stored objects; stops before the store goes
  std::atomic<uint64_t> client_connections{0};
  Bounds bounds;  // the temp-file space and the bounds' counters
  std::unique_ptr<Tier> tier;  // with cache.memcached; outlives the workers and the admin loop
  tls::Contexts tls;  // the listeners' TLS contexts and ticket keys; outlive the workers
  std::unique_ptr<log::AccessLog> access_log;  // with access_log; outlives the workers
  // The rules' shared state: every zone's token buckets (limits.rate_limit_clients of them, so a
  // reload keeps them), and the connections each client address has open.
  rules::RateLimiter rate_limiter;
  rules::ClientConnCounter client_conns;
};

class Worker {
 public:
  Worker(Shared& shared, int index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  static Worker& of(uv_loop_t* loop) { return *static_cast<Worker*>(loop->data); }

  // Takes ownership of a bound, listening, non-blocking socket for `address` (a listen
  // entry's Address::text()), whose connections speak TLS with `tls` (borrowed, outlives the
  // worker) unless it is null. Before start(), or on the worker's loop (a reload adds it; it
  // listens at once).
  void adopt_listener(const std::string& address, int fd, const tls::ServerContext* tls);
  // On the worker's loop (post it through poster()), for a reload: connections accepted from
  // now on by the listener of `address` use `tls`; close_listener() stops accepting there.
  void use_tls(const std::string& address, const tls::ServerContext* tls);
  void close_listener(const std::string& address);
  // On the worker's loop: requests that start from now on run on `generation`; those in
  // progress keep theirs. Connection pools of servers the generation keeps carry over with their
  // idle connections; the others stop pooling and go once nothing here uses them.
  void use_generation(GenerationRef generation);
  void start();
  // A graceful stop (any thread): the listeners close, idle connections close at once, and a
  // connection with a request in progress closes once its response is written (which says
  // Connection: close when its head is still to come). `on_drained` is called once, on this
  // worker's thread, when no client connection is left; it must be safe from that thread. The
  // worker's loop goes on (pools, background fetches) until request_stop().
  void request_drain(std::function<void()> on_drained);
  // Stops now (any thread, at most once): every connection, fetch and pool is closed and the
  // loop ends. After a drain too.
  void request_stop();
  void join();

  uv_loop_t* loop() { return &loop_; }
  int index() const { return index_; }
  Shared& shared() { return shared_; }
  // The generation requests starting now take (this worker's own reference: copying it touches
  // no counter another thread writes).
  const GenerationRef& generation() const { return generation_; }
  const conf::Limits& limits() const { return generation_->config.limits; }
  Bounds& bounds() { return shared_.bounds; }
  // Options for a buffered body: a request's (kept whole) or a response's (streamed).
  http::Body::Options body_options(bool whole);
  Stats& stats() { return stats_; }
  // Responses of this worker being compressed as they stream (compress::CompressingSource): each
  // holds an encoder of a few hundred KB until its body is compressed to the end. At
  // kMaxCompressingStreams, further responses are sent as they are.
  uint32_t& compressing_streams() { return compressing_streams_; }
  static constexpr uint32_t kMaxCompressingStreams = 128;
  cache::Counters& cache_counters() { return cache_counters_; }
  WorkerMetrics& metrics() { return metrics_; }
  // The connection pool of a server of `generation`, one this worker took (every request,
  // fetch and fill on this worker runs on one).
  Pool& pool(const GenerationRef& generation, int backend, int server);

  // The loop's one read buffer: every read callback on this loop consumes its bytes before
  // returning, so one buffer serves every connection and an idle connection holds none.
  uv_buf_t read_buffer() { return uv_buf_init(read_buffer_.get(), kReadBufferSize); }
  // Likewise for the plaintext TLS connections decrypt into (allocated on first use).
  uv_buf_t tls_buffer();
  // Sockets, on the worker's I/O path (`io`): a client's connection, taken from `listener`
  // inside its connection callback (`accepted`: 0 or a libuv error, then only close() remains),
  // and a backend connection's, not yet connected.
  std::unique_ptr<http::Transport> accept_transport(uv_stream_t* listener, int* accepted);
  std::unique_ptr<http::Transport> new_transport();
  bool uses_uring() const { return ring_ != nullptr; }
  // The current time as an HTTP date, refreshed at most once a second.
  std::string_view date();

  // An HTTP/2 connection with frames to write from outside its own reads (a backend's bytes, a
  // fill's news): it writes them once before the loop next waits (a uv_prepare), so the frames
  // of everything that happened in one turn of the loop leave in one write.
  void defer_flush(H2Client* client);
  void cancel_flush(H2Client* client);

  void add_client(ClientConn* conn);
  void remove_client(ClientConn* conn);
  uint64_t next_connection_id() { return ++last_connection_id_; }

  // News from other threads, through this loop's one inbox (tasks_): a queued fetch's slot was
  // granted; a fill that `subscriber` (subscribed from this loop) waits on has an event.
  void post_grant(uint64_t fetch, int backend, int server);  // any thread
  // A fetch that left its backend's queue while a grant was on its way: the grant, when it
  // comes, is given back to `generation`'s balancer.
  void expect_orphan_grant(uint64_t fetch, GenerationRef generation) {
    orphan_grants_.emplace(fetch, std::move(generation));
  }
  void post_fill_event(uint64_t subscriber);                // any thread
  // Runs a task on this loop (any thread; dropped once the worker stops): how the memcached
  // tier's answers come back.
  const LoopTasks::Poster& poster() const { return poster_; }

  void add_fetch(Fetch* fetch);
  void remove_fetch(Fetch* fetch);
  // This loop's subscribers to fills on other workers, found by id when an event arrives (a
  // fill on this worker tells its subscribers directly). Fill::subscribe keeps it.
  void add_subscriber(uint64_t id, FillSubscriber* subscriber);
  void remove_subscriber(uint64_t id);
  // A response written (or abandoned) for `host` and `target`, for GET /top (unless the
  // configuration's metrics.top is off): `bytes` sent,
  // whether the cache missed, microseconds to the backend's first byte (0: none asked).
  void record_top(std::string_view host, std::string_view target, uint64_t bytes, bool miss, uint64_t backend_us);
  // This worker's part of a /top answer (on its loop): every key it holds for the query's
  // window and weight, of the query's host when set.
  top::Ranking top_ranking(const top::Query& query);
  // Draining or stopped: no response is kept alive any more.
  bool stopping() const { return stopping_; }

 private:
  static void on_connection(uv_stream_t* listener, int status) noexcept;
  static void on_flush_prepare(uv_prepare_t* prepare) noexcept;
  static void on_stop(uv_async_t* async) noexcept;
  void drain();
  void stop_now();
  void check_drained();
  static void on_note(void* worker, const LoopTasks::Note& note);
  void run();

  static constexpr size_t kReadBufferSize = 64 * 1024;

  Shared& shared_;
  int index_;
  uv_loop_t loop_;
  uv_async_t stop_async_;
  uv_prepare_t flush_prepare_;
  std::vector<H2Client*> flushes_;  // waiting for flush_prepare_
  std::vector<H2Client*> flushing_;  // being flushed (a swap keeps both allocations)
  struct Listener {
    uv_tcp_t tcp;
    Worker* worker;
    std::string address;
    const tls::ServerContext* tls;  // null: plain HTTP
  };
  void listen_on(Listener& listener);
  void close_listeners();  // those not closed yet (drain, stop)
  static void free_listener(uv_handle_t* handle) noexcept;
  // Pools whose generation nothing on this worker uses any more, and no connection, go.
  void prune_retired_pools();

  GenerationRef generation_;
  std::vector<std::string> h2c_addresses_;  // listen addresses of generation_ with `h2c: on`
  std::vector<std::unique_ptr<Listener>> listeners_;  // closed ones leave through free_listener
  bool running_ = false;  // the loop runs: adopted listeners listen at once
  std::unique_ptr<char[]> tls_buffer_;
  // By balancer::ServerState::id: the current generation's servers, and those a reload removed
  // while something here may still use them.
  std::unordered_map<uint64_t, std::unique_ptr<Pool>> pools_;
  std::unordered_map<uint64_t, std::unique_ptr<Pool>> retired_pools_;
  std::unordered_map<uint64_t, GenerationRef> orphan_grants_;  // by fetch id
  std::unique_ptr<char[]> read_buffer_;
  uring::Ring* ring_ = nullptr;  // with `io: uring` when the kernel allowed it; closed by ~Worker
  std::vector<ClientConn*> clients_;  // for shutdown; unordered
  uint64_t last_connection_id_ = 0;
  std::unordered_map<uint64_t, Fetch*> fetches_;
  std::unordered_map<uint64_t, FillSubscriber*> subscribers_;
  std::unique_ptr<LoopTasks> tasks_;  // the inbox
  LoopTasks::Poster poster_;
  Stats stats_;
  uint32_t compressing_streams_ = 0;
  cache::Counters cache_counters_;
  WorkerMetrics metrics_;
  std::vector<top::Windows> top_;  // [top::By]
  std::string top_key_;            // reused: host, then target
  std::thread thread_;
  // What other threads asked for through stop_async_ (a send may carry both).
  std::atomic<bool> drain_requested_{false};
  std::atomic<bool> stop_requested_{false};
  std::function<void()> on_drained_;  // written before drain_requested_ is set
  bool stopping_ = false;
  bool stopped_ = false;
  bool drained_told_ = false;
  uint64_t date_second_ = 0;
  char date_[32] = {};
  size_t date_len_ = 0;
};

}  // namespace edge::proxy
