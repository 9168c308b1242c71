#include "http/server_conn.h"

#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "http/tcp_transport.h"

using namespace edge::http;

namespace {

using Close = ServerConn::Close;

// Runs the loop until `done` holds. A guard timer ends a test that would otherwise hang; it
// is never what a test waits for.
bool run_until(uv_loop_t* loop, const std::function<bool()>& done) {
  uv_timer_t guard;
  uv_timer_init(loop, &guard);
  bool expired = false;
  guard.data = &expired;
  uv_timer_start(&guard, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, 10000, 0);
  while (!done() && !expired) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return done();
}

// A Transport over another that counts deliveries, as a TLS transport would sit on TCP.
class CountingTransport final : public Transport, Transport::Reader {
 public:
  explicit CountingTransport(std::unique_ptr<Transport> inner) : inner_(std::move(inner)) {}
  int write(const uv_buf_t* bufs, unsigned count, WriteDone* done) override { return inner_->write(bufs, count, done); }
  size_t queued_bytes() const override { return inner_->queued_bytes(); }
  int read_start(Transport::Reader* reader) override {
    reader_ = reader;
    return inner_->read_start(this);
  }
  void read_stop() override { inner_->read_stop(); }
  int connect(const sockaddr* address, Connected* done) override { return inner_->connect(address, done); }
  int shutdown() override { return inner_->shutdown(); }
  void close(Closed* done) override { inner_->close(done); }
  int peer_address(sockaddr_storage* out) const override { return inner_->peer_address(out); }

  size_t* deliveries = nullptr;

 private:
  void on_data(const char* data, size_t len) override {
    if (deliveries) ++*deliveries;
    reader_->on_data(data, len);
  }
  void on_end(int status) override { reader_->on_end(status); }

  std::unique_ptr<Transport> inner_;
  Transport::Reader* reader_ = nullptr;
};

// What the tests see of a connection, kept by the fixture: the connection frees itself.
struct Record {
  std::vector<std::string> targets;
  std::vector<Close> closes;
  bool freed = false;
  int refused = 0;
  int timers = 0;
  bool peer_end = false;
  size_t deliveries = 0;
};

struct Behaviour {
  bool hold = false;                 // on_request does not answer; the test calls answer()
  bool answer_at_head = false;       // 403 from on_head
  bool timer_on_request = false;     // set_timer(10) instead of answering
  uint64_t big_body = 0;             // answer with this many bytes
};

class TestConn final : public ServerConn {
 public:
  TestConn(uv_loop_t* loop, const Settings& settings, Record* record, const Behaviour& behaviour)
      : ServerConn(loop, settings), record_(record), behaviour_(behaviour) {}

  void answer() {
    const RequestHead& head = parser().head();
    const bool keep_alive = head.keep_alive && !peer_ended();
    body_.clear();
    if (behaviour_.big_body) {
      std::string block(1 << 20, 'x');
      for (uint64_t n = 0; n < behaviour_.big_body; n += block.size()) body_.append(block);
    } else {
      body_.append(head.target);
    }
    body_.set_complete();
    out_ = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body_.size()) + "\r\n";
    if (!keep_alive) out_ += "Connection: close\r\n";
    out_ += "\r\n";
    respond(&out_, &body_, false, false, keep_alive);
  }

 private:
  ~TestConn() override { record_->freed = true; }

  Body* on_head(RequestHead&) override {
    if (behaviour_.answer_at_head) {
      out_ = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      respond(&out_, nullptr, false, false, false);
      return nullptr;
    }
    return &request_body_;
  }
  void on_request(RequestHead& head) override {
    record_->targets.push_back(head.target);
    if (behaviour_.timer_on_request) return set_timer(10);
    if (!behaviour_.hold) answer();
  }
  void on_refuse(int status, Close) override {
    ++record_->refused;
    out_ = "HTTP/1.1 " + std::to_string(status) + " No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    respond(&out_, nullptr, false, false, false);
  }
  void on_peer_end(int) override { record_->peer_end = true; }
  void on_timer() override {
    ++record_->timers;
    answer();
  }
  void on_close(Close why) override { record_->closes.push_back(why); }

  Record* record_;
  Behaviour behaviour_;
  Body request_body_;
  Body body_;
  std::string out_;
};

// A listener on 127.0.0.1:0 whose connections are TestConns, and a client on the same loop.
struct Fixture {
  uv_loop_t loop;
  uv_tcp_t listener;
  char read_buffer[16 * 1024];
  ServerConn::Settings settings;
  // The clock the connection's deadlines read (made before the connection): the timeout tests
  // move it instead of waiting.
  std::unique_ptr<ManualClock> clock;
  Behaviour behaviour;
  Record record;
  TestConn* conn = nullptr;  // the last one accepted; valid until record.freed

  // The client side.
  uv_tcp_t client;
  uv_connect_t connect_request;
  bool connected = false;
  bool client_reading = true;
  bool client_eof = false;
  std::string received;
  std::vector<std::unique_ptr<std::string>> sent;  // alive until the loop is done

  Fixture() {
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &listener);
    listener.data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    REQUIRE(uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 16, &Fixture::on_connection) == 0);
    settings.linger_ms = 5000;
  }

  ~Fixture() {
    if (conn && !record.freed) conn->close(Close::kHandler);
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&client)))
      uv_close(reinterpret_cast<uv_handle_t*>(&client), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }

  static void on_connection(uv_stream_t* listener, int status) {
    auto* f = static_cast<Fixture*>(listener->data);
    REQUIRE(status == 0);
    auto tcp = std::make_unique<TcpTransport>(&f->loop, uv_buf_init(f->read_buffer, sizeof f->read_buffer));
    REQUIRE(tcp->accept(listener) == 0);
    auto counting = std::make_unique<CountingTransport>(std::move(tcp));
    counting->deliveries = &f->record.deliveries;
    f->conn = new TestConn(&f->loop, f->settings, &f->record, f->behaviour);
    f->conn->start(std::move(counting));
  }

  void connect() {
    uv_tcp_init(&loop, &client);
    client.data = this;
    connect_request.data = this;
    sockaddr_storage addr{};
    int len = sizeof addr;
    uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&addr), &len);
    REQUIRE(uv_tcp_connect(&connect_request, &client, reinterpret_cast<const sockaddr*>(&addr),
                           [](uv_connect_t* req, int status) {
                             auto* f = static_cast<Fixture*>(req->data);
                             REQUIRE(status == 0);
                             f->connected = true;
                             f->start_reading();
                           }) == 0);
    REQUIRE(run_until(&loop, [&] { return connected && conn != nullptr; }));
  }

  void start_reading() {
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&client),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          static char storage[64 * 1024];
          (void)h;
          *buf = uv_buf_init(storage, sizeof storage);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* f = static_cast<Fixture*>(s->data);
          if (n > 0) f->received.append(buf->base, static_cast<size_t>(n));
          if (n < 0) {
            f->client_eof = true;
            uv_read_stop(s);
          }
        });
  }

  void send(std::string bytes) {
    sent.push_back(std::make_unique<std::string>(std::move(bytes)));
    uv_buf_t buf = uv_buf_init(sent.back()->data(), static_cast<unsigned>(sent.back()->size()));
    auto* req = new uv_write_t;
    REQUIRE(uv_write(req, reinterpret_cast<uv_stream_t*>(&client), &buf, 1, [](uv_write_t* r, int) { delete r; }) == 0);
  }

  void half_close() {
    auto* req = new uv_shutdown_t;
    REQUIRE(uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&client), [](uv_shutdown_t* r, int) { delete r; }) == 0);
  }

  void close_client() { uv_close(reinterpret_cast<uv_handle_t*>(&client), nullptr); }

  size_t responses() const {
    size_t n = 0;
    for (size_t at = received.find("HTTP/1.1 "); at != std::string::npos; at = received.find("HTTP/1.1 ", at + 1)) ++n;
    return n;
  }

  bool run(const std::function<bool()>& done) { return run_until(&loop, done); }
};

std::string get(std::string_view target, bool close = false) {
  std::string r = "GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n";
  if (close) r += "Connection: close\r\n";
  return r + "\r\n";
}

}  // namespace

TEST_CASE("server_conn: pipelined requests are answered in order") {
  Fixture f;
  f.connect();
  f.send(get("/a") + get("/b") + get("/c"));
  REQUIRE(f.run([&] { return f.responses() == 3; }));
  CHECK(f.received.find("/a") < f.received.find("/b"));
  CHECK(f.received.find("/b") < f.received.find("/c"));
  CHECK(f.record.targets == std::vector<std::string>{"/a", "/b", "/c"});
  CHECK(f.conn->phase() == ServerConn::Phase::kWaiting);
  CHECK(f.record.closes.empty());
}

TEST_CASE("server_conn: a head split byte by byte") {
  Fixture f;
  f.connect();
  const std::string request = get("/split");
  for (char c : request) {
    const size_t before = f.record.deliveries;
    f.send(std::string(1, c));
    REQUIRE(f.run([&] { return f.record.deliveries > before; }));
  }
  CHECK(f.record.deliveries >= request.size());
  REQUIRE(f.run([&] { return f.responses() == 1; }));
  CHECK(f.record.targets == std::vector<std::string>{"/split"});
}

TEST_CASE("server_conn: keep-alive, then a request that closes") {
  Fixture f;
  f.connect();
  f.send(get("/one"));
  REQUIRE(f.run([&] { return f.responses() == 1; }));
  CHECK(f.conn->phase() == ServerConn::Phase::kWaiting);
  f.send(get("/two", true));
  REQUIRE(f.run([&] { return f.client_eof; }));
  CHECK(f.responses() == 2);
  CHECK(f.received.find("Connection: close") != std::string::npos);
  CHECK(f.record.closes.empty());  // lingering: the server waits for the client's close
  f.close_client();
  REQUIRE(f.run([&] { return f.record.freed; }));
  CHECK(f.record.closes == std::vector<Close>{Close::kKeepAliveDone});
}

TEST_CASE("server_conn: an error at the head is answered, then the connection closes") {
  Fixture f;
  f.connect();
  f.send("GET / HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n" + get("/never"));
  REQUIRE(f.run([&] { return f.client_eof; }));
  CHECK(f.received.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(f.record.refused == 1);
  CHECK(f.record.targets.empty());
  f.close_client();
  REQUIRE(f.run([&] { return f.record.freed; }));
  CHECK(f.record.closes == std::vector<Close>{Close::kBadRequest});  // the refusal's reason wins
}

TEST_CASE("server_conn: an answer at the head closes after it, the body unread") {
  Fixture f;
  f.behaviour.answer_at_head = true;
  f.connect();
  f.send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc");
  REQUIRE(f.run([&] { return f.client_eof; }));
  CHECK(f.received.rfind("HTTP/1.1 403", 0) == 0);
  CHECK(f.record.targets.empty());
}

TEST_CASE("server_conn: a client that half-closes after its request still gets the answer") {
  Fixture f;
  f.behaviour.hold = true;
  f.connect();
  f.send(get("/late"));
  f.half_close();
  REQUIRE(f.run([&] { return f.record.peer_end; }));
  CHECK(f.record.closes.empty());
  f.conn->answer();
  REQUIRE(f.run([&] { return f.record.freed; }));
  CHECK(f.received.find("/late") != std::string::npos);
  CHECK(f.received.find("Connection: close") != std::string::npos);
  CHECK(f.record.closes == std::vector<Close>{Close::kKeepAliveDone});
}

TEST_CASE("server_conn: the lingering close drains leftovers, then ends on the client's close or the linger") {
  SUBCASE("the client closes") {
    Fixture f;
    f.connect();
    f.send(get("/bye", true));
    REQUIRE(f.run([&] { return f.client_eof; }));
    CHECK(f.conn->phase() == ServerConn::Phase::kClosing);
    f.send(std::string(10000, 'z'));  // leftovers: read and dropped, never parsed
    REQUIRE(f.run([&] { return f.record.deliveries > 1 && !f.record.freed; }));
    f.close_client();
    REQUIRE(f.run([&] { return f.record.freed; }));
    CHECK(f.record.refused == 0);
    CHECK(f.record.closes == std::vector<Close>{Close::kKeepAliveDone});
  }
  SUBCASE("the linger runs out") {
    Fixture f;
    f.settings.linger_ms = 20;
    f.connect();
    f.send(get("/bye", true));
    REQUIRE(f.run([&] { return f.record.freed; }));
    CHECK(f.record.closes == std::vector<Close>{Close::kKeepAliveDone});
  }
}

TEST_CASE("server_conn: each phase's timeout, on a clock the test moves") {
  constexpr uint64_t kTimeout = 30000;
  SUBCASE("no head on a fresh connection: closed quietly") {
    Fixture f;
    f.clock = std::make_unique<ManualClock>(&f.loop);
    f.settings.header_timeout_ms = kTimeout;
    f.connect();
    f.clock->advance(kTimeout - 1);
    CHECK_FALSE(f.conn->closed());
    f.clock->advance(1);
    REQUIRE(f.run([&] { return f.record.freed; }));
    CHECK(f.received.empty());
    CHECK(f.record.closes == std::vector<Close>{Close::kHeaderTimeout});
  }
  SUBCASE("part of a head: 408") {
    Fixture f;
    f.clock = std::make_unique<ManualClock>(&f.loop);
    f.settings.header_timeout_ms = kTimeout;
    f.connect();
    f.send("GET / HTTP/1.1\r\nHo");
    REQUIRE(f.run([&] { return f.conn->phase() == ServerConn::Phase::kHead; }));
    f.clock->advance(kTimeout);
    REQUIRE(f.run([&] { return f.client_eof; }));
    CHECK(f.received.rfind("HTTP/1.1 408", 0) == 0);
    f.close_client();
    REQUIRE(f.run([&] { return f.record.freed; }));
    CHECK(f.record.closes == std::vector<Close>{Close::kHeaderTimeout});
  }
  SUBCASE("part of a body: 408") {
    Fixture f;
    f.clock = std::make_unique<ManualClock>(&f.loop);
    f.settings.body_timeout_ms = kTimeout;
    f.connect();
    f.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab");
    REQUIRE(f.run([&] { return f.conn->phase() == ServerConn::Phase::kBody; }));
    f.clock->advance(kTimeout);
    REQUIRE(f.run([&] { return f.client_eof; }));
    CHECK(f.received.rfind("HTTP/1.1 408", 0) == 0);
    f.close_client();
    REQUIRE(f.run([&] { return f.record.freed; }));
    CHECK(f.record.closes == std::vector<Close>{Close::kBodyTimeout});
  }
  SUBCASE("idle after a request") {
    Fixture f;
    f.clock = std::make_unique<ManualClock>(&f.loop);
    f.settings.idle_timeout_ms = kTimeout;
    f.connect();
    f.send(get("/once"));
    REQUIRE(f.run([&] { return f.responses() == 1 && f.conn->phase() == ServerConn::Phase::kWaiting; }));
    f.clock->advance(kTimeout);
    REQUIRE(f.run([&] { return f.record.freed; }));
    CHECK(f.record.closes == std::vector<Close>{Close::kIdleTimeout});
  }
  SUBCASE("the handler's own deadline while it handles") {
    Fixture f;
    f.clock = std::make_unique<ManualClock>(&f.loop);
    f.behaviour.timer_on_request = true;
    f.connect();
    f.send(get("/timer"));
    REQUIRE(f.run([&] { return f.conn->phase() == ServerConn::Phase::kHandling; }));
    CHECK(f.record.timers == 0);
    f.clock->advance(10);
    REQUIRE(f.run([&] { return f.responses() == 1; }));
    CHECK(f.record.timers == 1);
  }
  SUBCASE("a client that stops reading its response") {
    Fixture f;
    f.clock = std::make_unique<ManualClock>(&f.loop);
    f.settings.send_timeout_ms = kTimeout;
    f.behaviour.big_body = 64 << 20;
    f.connect();
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&f.client));
    f.send(get("/big"));
    REQUIRE(f.run([&] { return f.conn->writing() && f.conn->transport()->queued_bytes() > 0; }));
    // Every check sees no progress once the socket is full: closed between send_timeout and 1.25
    // times it after the last progress.
    for (int i = 0; i < 6 && f.record.closes.empty(); ++i) {
      f.clock->advance(kTimeout / 4);
      uv_run(&f.loop, UV_RUN_NOWAIT);
    }
    REQUIRE(f.run([&] { return f.record.freed; }));
    CHECK(f.record.closes == std::vector<Close>{Close::kSendTimeout});
  }
}

TEST_CASE("server_conn: pipelined bytes past max_pending stop the reading until the answer") {
  Fixture f;
  f.settings.max_pending = 1024;
  f.behaviour.hold = true;
  f.connect();
  std::string burst = get("/first");
  for (int i = 0; i < 200; ++i) burst += get("/p" + std::to_string(i));
  f.send(burst);
  REQUIRE(f.run([&] { return !f.record.targets.empty() && !f.conn->reading(); }));
  CHECK(f.record.targets.size() == 1);
  // Answering every request as it comes from now on drains the rest, in order.
  f.conn->answer();
  REQUIRE(f.run([&] {
    while (f.conn->phase() == ServerConn::Phase::kHandling && !f.conn->responding() &&
           f.record.targets.size() > 1)
      f.conn->answer();
    return f.responses() == 201;
  }));
  CHECK(f.record.targets.size() == 201);
  CHECK(f.record.targets.back() == "/p199");
  CHECK(f.received.find("/p0") < f.received.find("/p199"));
}

TEST_CASE("tcp_transport: a large write is queued, completes once, and close completes after it") {
  Fixture f;
  f.behaviour.hold = true;
  f.connect();
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&f.client));
  Transport* t = f.conn->transport();
  sockaddr_storage peer{};
  CHECK(t->peer_address(&peer) == 0);
  CHECK(peer.ss_family == AF_INET);

  struct Done : Output::WriteDone {
    int calls = 0;
    int status = 1;
    void on_written(int s) override {
      ++calls;
      status = s;
    }
  } done;
  std::string big(32 << 20, 'q');
  uv_buf_t buf = uv_buf_init(big.data(), static_cast<unsigned>(big.size()));
  const int now = t->write(&buf, 1, &done);
  REQUIRE(now >= 0);
  REQUIRE(static_cast<size_t>(now) < big.size());
  CHECK(done.calls == 0);
  CHECK(t->queued_bytes() == big.size() - static_cast<size_t>(now));
  f.start_reading();
  REQUIRE(f.run([&] { return done.calls == 1; }));
  CHECK(done.status == 0);
  CHECK(t->queued_bytes() == 0);
  REQUIRE(f.run([&] { return f.received.size() == big.size(); }));
}
