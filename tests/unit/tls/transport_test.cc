#include "tls/transport.h"

#include <doctest/doctest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "http/body.h"
#include "http/server_conn.h"
#include "http/tcp_transport.h"
#include "tests/unit/tls/test_credentials.h"

using edge::http::Output;
using edge::http::TcpTransport;
using edge::http::Transport;
using edge::tls::TlsTransport;
using edge::testing::Credentials;

namespace {

constexpr char kHost[] = "test.example";


int select_http11(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* offered,
                  unsigned offered_length, void*) {
  static const unsigned char kOurs[] = "\x08http/1.1";
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_length, kOurs, sizeof kOurs - 1, offered, offered_length) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

struct Sink final : Transport::Reader {
  TlsTransport* transport = nullptr;
  std::string received;
  size_t deliveries = 0;
  int ends = 0;
  int end_status = 0;
  bool stop_every_delivery = false;
  bool stop_once = false;
  bool stopped = false;
  bool inside_read_start = false;
  bool delivered_inside_read_start = false;
  std::function<void()> on_each;

  void on_data(const char* data, size_t len) override {
    if (inside_read_start) delivered_inside_read_start = true;
    received.append(data, len);
    ++deliveries;
    if (on_each) on_each();
    if (stop_every_delivery || stop_once) {
      stop_once = false;
      stopped = true;
      transport->read_stop();
    }
  }
  void on_end(int status) override {
    ++ends;
    end_status = status;
  }
  void resume() {
    stopped = false;
    inside_read_start = true;
    REQUIRE(transport->read_start(this) == 0);
    inside_read_start = false;
  }
};

struct ConnectWait final : Transport::Connected {
  int calls = 0;
  int status = 1;
  void on_connected(int s) override {
    ++calls;
    status = s;
  }
};

struct WriteWait final : Output::WriteDone {
  std::vector<std::string>* events = nullptr;
  int calls = 0;
  int status = 1;
  void on_written(int s) override {
    ++calls;
    status = s;
    if (events) events->push_back("written " + std::to_string(s));
  }
};

// Frees the transport from its close completion, as an owner must.
struct Closer final : Transport::Closed {
  std::unique_ptr<TlsTransport> owned;
  std::vector<std::string>* events = nullptr;
  int calls = 0;
  void on_closed() override {
    ++calls;
    if (events) events->push_back("closed");
    owned.reset();
  }
};

// A TcpTransport that counts the writes handed to the socket: how many segments a peer sees.
class CountingTcp final : public Transport {
 public:
  CountingTcp(uv_loop_t* loop, uv_buf_t buffer, int* writes) : tcp_(loop, buffer), writes_(writes) {}
  int accept(uv_stream_t* listener) { return tcp_.accept(listener); }
  int write(const uv_buf_t* bufs, unsigned count, WriteDone* done) override {
    ++*writes_;
    return tcp_.write(bufs, count, done);
  }
  size_t queued_bytes() const override { return tcp_.queued_bytes(); }
  int read_start(Reader* reader) override { return tcp_.read_start(reader); }
  void read_stop() override { tcp_.read_stop(); }
  int connect(const sockaddr* address, Connected* done) override { return tcp_.connect(address, done); }
  int shutdown() override { return tcp_.shutdown(); }
  void close(Closed* done) override { tcp_.close(done); }
  int peer_address(sockaddr_storage* out) const override { return tcp_.peer_address(out); }

 private:
  TcpTransport tcp_;
  int* writes_;
};

// A listener whose connections become server TlsTransports, clients that connect to it, and
// raw TCP peers, all on the test's loop.
struct Rig {
  uv_loop_t loop;
  uv_tcp_t listener;
  Credentials credentials;
  SSL_CTX* server_context = nullptr;
  SSL_CTX* client_context = nullptr;
  std::vector<char> server_socket_buffer = std::vector<char>(64 * 1024);
  std::vector<char> client_socket_buffer = std::vector<char>(64 * 1024);
  std::vector<char> server_plaintext = std::vector<char>(16 * 1024);
  std::vector<char> client_plaintext = std::vector<char>(16 * 1024);
  size_t server_plaintext_size = 16 * 1024;

  TlsTransport* server = nullptr;  // the last accepted, until it is closed
  TlsTransport* client = nullptr;
  Closer server_closer;
  Closer client_closer;
  Sink server_sink;
  Sink client_sink;
  int server_socket_writes = 0;
  int client_socket_writes = 0;
  ConnectWait connect_wait;
  std::function<void()> on_accept;
  // When set, it takes each accepted server transport instead of the rig's sink.
  std::function<void(std::unique_ptr<TlsTransport>)> adopt;

  Rig() {
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &listener);
    listener.data = this;
    sockaddr_in any{};
    uv_ip4_addr("127.0.0.1", 0, &any);
    REQUIRE(uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&any), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 16, &Rig::on_connection) == 0);

    server_context = SSL_CTX_new(TLS_server_method());
    REQUIRE(SSL_CTX_use_certificate(server_context, credentials.cert) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(server_context, credentials.key) == 1);
    SSL_CTX_set_alpn_select_cb(server_context, &select_http11, nullptr);
    // No session tickets: after the handshake the server says nothing unasked, so a peer that
    // closes its socket sends a plain FIN, never a reset over unread tickets.
    SSL_CTX_set_num_tickets(server_context, 0);

    client_context = SSL_CTX_new(TLS_client_method());
    static const unsigned char kAlpn[] = "\x08http/1.1";
    REQUIRE(SSL_CTX_set_alpn_protos(client_context, kAlpn, sizeof kAlpn - 1) == 0);
    REQUIRE(X509_STORE_add_cert(SSL_CTX_get_cert_store(client_context), credentials.cert) == 1);
    SSL_CTX_set_verify(client_context, SSL_VERIFY_PEER, nullptr);
  }

  ~Rig() {
    if (server) server->close(&server_closer);
    if (client) client->close(&client_closer);
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    SSL_CTX_free(server_context);
    SSL_CTX_free(client_context);
  }

  static void on_connection(uv_stream_t* stream, int status) noexcept {
    auto* rig = static_cast<Rig*>(stream->data);
    if (status < 0) return;
    auto tcp = std::make_unique<CountingTcp>(
        &rig->loop, uv_buf_init(rig->server_socket_buffer.data(), static_cast<unsigned>(rig->server_socket_buffer.size())),
        &rig->server_socket_writes);
    if (tcp->accept(stream) != 0) return;
    auto tls = std::make_unique<TlsTransport>(
        std::move(tcp), SSL_new(rig->server_context), &rig->loop,
        uv_buf_init(rig->server_plaintext.data(), static_cast<unsigned>(rig->server_plaintext_size)),
        TlsTransport::Role::kServer);
    if (rig->adopt) return rig->adopt(std::move(tls));
    rig->server = tls.get();
    rig->server_closer.owned = std::move(tls);
    rig->server_sink.transport = rig->server;
    rig->server->read_start(&rig->server_sink);
    if (rig->on_accept) rig->on_accept();
  }

  sockaddr_storage address() {
    sockaddr_storage address{};
    int length = sizeof address;
    uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&address), &length);
    return address;
  }

  // A client that sends `sni` and verifies the certificate against `verify_name`.
  void connect_client(const char* sni = kHost, const char* verify_name = kHost,
                      Transport::Connected* waiter = nullptr) {
    auto tcp = std::make_unique<CountingTcp>(
        &loop, uv_buf_init(client_socket_buffer.data(), static_cast<unsigned>(client_socket_buffer.size())),
        &client_socket_writes);
    SSL* ssl = SSL_new(client_context);
    SSL_set_tlsext_host_name(ssl, sni);
    SSL_set1_host(ssl, verify_name);
    auto tls = std::make_unique<TlsTransport>(
        std::move(tcp), ssl, &loop,
        uv_buf_init(client_plaintext.data(), static_cast<unsigned>(client_plaintext.size())),
        TlsTransport::Role::kClient);
    client = tls.get();
    client_closer.owned = std::move(tls);
    client_sink.transport = client;
    sockaddr_storage to = address();
    REQUIRE(client->connect(reinterpret_cast<const sockaddr*>(&to), waiter ? waiter : &connect_wait) == 0);
  }

  void connect_and_handshake() {
    connect_client();
    REQUIRE(run([&] { return connect_wait.calls == 1; }));
    REQUIRE(connect_wait.status == 0);
    REQUIRE(client->read_start(&client_sink) == 0);
  }

  void close_server() {
    server->close(&server_closer);
    server = nullptr;
  }
  void close_client() {
    client->close(&client_closer);
    client = nullptr;
  }

  // Runs the loop until `done` holds, for a bounded number of turns. A guard timer wakes a turn
  // that would block with nothing to do; it is never what a test waits for.
  bool run(const std::function<bool()>& done) {
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, [](uv_timer_t*) noexcept {}, 5000, 5000);
    for (int turn = 0; turn < 100000 && !done(); ++turn) uv_run(&loop, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
    return done();
  }
  // A few turns that wait for nothing: what is ready runs, nothing blocks.
  void spin(int turns = 20) {
    for (int i = 0; i < turns; ++i) uv_run(&loop, UV_RUN_NOWAIT);
  }
};

// A plain TCP peer on the rig's loop.
struct RawPeer {
  uv_tcp_t tcp;
  uv_connect_t connect_request;
  std::string received;
  std::string sent;
  int end_status = 0;
  bool connected = false;

  void connect(Rig& rig) {
    uv_tcp_init(&rig.loop, &tcp);
    tcp.data = this;
    connect_request.data = this;
    sockaddr_storage to = rig.address();
    REQUIRE(uv_tcp_connect(&connect_request, &tcp, reinterpret_cast<const sockaddr*>(&to),
                           [](uv_connect_t* request, int status) noexcept {
                             auto* peer = static_cast<RawPeer*>(request->data);
                             peer->connected = status == 0;
                             uv_read_start(
                                 reinterpret_cast<uv_stream_t*>(&peer->tcp),
                                 [](uv_handle_t*, size_t, uv_buf_t* buf) noexcept {
                                   static char storage[16 * 1024];
                                   *buf = uv_buf_init(storage, sizeof storage);
                                 },
                                 [](uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) noexcept {
                                   auto* self = static_cast<RawPeer*>(stream->data);
                                   if (n > 0) self->received.append(buf->base, static_cast<size_t>(n));
                                   if (n < 0) {
                                     self->end_status = static_cast<int>(n);
                                     uv_read_stop(stream);
                                   }
                                 });
                           }) == 0);
    REQUIRE(rig.run([&] { return connected; }));
  }
  void send(std::string bytes) {
    sent = std::move(bytes);
    uv_buf_t buf = uv_buf_init(sent.data(), static_cast<unsigned>(sent.size()));
    REQUIRE(uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp), &buf, 1) == static_cast<int>(sent.size()));
  }
  void close() { uv_close(reinterpret_cast<uv_handle_t*>(&tcp), nullptr); }
};

// The HTTP server core over a TlsTransport, as a client connection would run: one body per
// request, then the connection closes.
class HttpOverTls final : public edge::http::ServerConn {
 public:
  HttpOverTls(uv_loop_t* loop, const std::string* body, bool* freed)
      : ServerConn(loop, Settings{}), body_text_(body), freed_(freed) {}

 private:
  ~HttpOverTls() override { *freed_ = true; }
  edge::http::Body* on_head(edge::http::RequestHead&) override { return nullptr; }
  void on_request(edge::http::RequestHead&) override {
    body_.append(*body_text_);
    body_.set_complete();
    head_ = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body_.size()) + "\r\nConnection: close\r\n\r\n";
    respond(&head_, &body_, false, false, false);
  }
  void on_refuse(int, Close) override { close(Close::kHandler); }
  void on_close(Close) override {}

  const std::string* body_text_;
  bool* freed_;
  edge::http::Body body_;
  std::string head_;
};

std::string pattern(size_t size) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return bytes;
}

int write_all(TlsTransport* transport, const std::string& bytes, Output::WriteDone* done = nullptr) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
  return transport->write(&buf, 1, done);
}

}  // namespace

TEST_CASE("tls: handshake, bytes both ways, ALPN and SNI") {
  Rig rig;
  // Written by the server before the handshake even started: held, then sent first.
  static const std::string kEarly = "early;";
  rig.on_accept = [&] { CHECK(write_all(rig.server, kEarly) == 0); };
  rig.connect_and_handshake();
  CHECK(rig.client->handshake_done());
  CHECK(rig.client->alpn() == "http/1.1");
  CHECK(rig.client->failure() == TlsTransport::Failure::kNone);

  const std::string ping = "ping from the client";
  CHECK(write_all(rig.client, ping) == static_cast<int>(ping.size()));
  REQUIRE(rig.run([&] { return rig.server_sink.received == ping; }));
  CHECK(rig.server->handshake_done());
  CHECK(rig.server->alpn() == "http/1.1");
  CHECK(rig.server->server_name() == kHost);
  CHECK_FALSE(rig.server->resumed());

  const std::string pong = "pong from the server";
  CHECK(write_all(rig.server, pong) == static_cast<int>(pong.size()));
  REQUIRE(rig.run([&] { return rig.client_sink.received == kEarly + pong; }));
  CHECK(rig.server->queued_bytes() == 0);
  CHECK(rig.client->queued_bytes() == 0);
  CHECK(rig.server_sink.ends == 0);
  CHECK(rig.client_sink.ends == 0);
}

TEST_CASE("tls: small buffers written together, empty ones among them, arrive whole and in order") {
  Rig rig;
  rig.connect_and_handshake();
  // A head, an empty piece, a chunk line, a body larger than a record, a last small piece: the
  // small ones share records, the large one is cut at the record size.
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string line = "5000\r\n";
  const std::string body = pattern(0x5000);
  const std::string tail = "\r\n0\r\n\r\n";
  uv_buf_t bufs[] = {uv_buf_init(const_cast<char*>(head.data()), static_cast<unsigned>(head.size())),
                     uv_buf_init(nullptr, 0),
                     uv_buf_init(const_cast<char*>(line.data()), static_cast<unsigned>(line.size())),
                     uv_buf_init(const_cast<char*>(body.data()), static_cast<unsigned>(body.size())),
                     uv_buf_init(const_cast<char*>(tail.data()), static_cast<unsigned>(tail.size()))};
  WriteWait done;
  const int written = rig.server->write(bufs, 5, &done);
  REQUIRE(written >= 0);
  const std::string all = head + line + body + tail;
  REQUIRE(rig.run([&] { return rig.client_sink.received.size() == all.size(); }));
  CHECK(rig.client_sink.received == all);
  // What did not go out at once completed once, with success.
  if (static_cast<size_t>(written) < all.size()) {
    REQUIRE(rig.run([&] { return done.calls == 1; }));
    CHECK(done.status == 0);
  }
  CHECK(rig.server->failure() == TlsTransport::Failure::kNone);
}

TEST_CASE("tls: a large write to a peer that does not read stays bounded and arrives whole") {
  Rig rig;
  rig.server_sink.stop_once = true;  // the first delivery stops the server's reading
  rig.connect_and_handshake();

  const std::string big = pattern(8 * 1024 * 1024);
  WriteWait done;
  size_t most_ciphertext = 0;
  const int at_once = write_all(rig.client, big, &done);
  REQUIRE(at_once >= 0);
  CHECK(static_cast<size_t>(at_once) < big.size());
  CHECK(done.calls == 0);
  most_ciphertext = rig.client->ciphertext_queued();
  CHECK(rig.client->queued_bytes() <= big.size() - static_cast<size_t>(at_once) + 2 * TlsTransport::kEncryptAhead);

  REQUIRE(rig.run([&] { return rig.server_sink.stopped; }));
  rig.spin();
  CHECK(done.calls == 0);
  CHECK(rig.client->queued_bytes() > 0);

  // A write without completion behind it (static bytes): queued after the big one, in order.
  static const std::string kTail = "and the tail";
  CHECK(write_all(rig.client, kTail) == 0);

  rig.server_sink.on_each = [&] {
    most_ciphertext = std::max(most_ciphertext, rig.client->ciphertext_queued());
  };
  rig.server_sink.resume();
  REQUIRE(rig.run([&] { return done.calls == 1 && rig.server_sink.received.size() == big.size() + kTail.size(); }));
  CHECK(done.status == 0);
  CHECK(rig.server_sink.received == big + kTail);
  CHECK(most_ciphertext <= 2 * TlsTransport::kEncryptAhead);
  CHECK(rig.client->queued_bytes() == 0);
  rig.spin();
  CHECK(done.calls == 1);
}

TEST_CASE("tls: read_stop with bytes still buffered loses nothing, and read_start delivers later") {
  Rig rig;
  // A small plaintext buffer leaves part of each record decrypted inside OpenSSL; a large write
  // leaves whole records unread behind the BIO.
  rig.server_plaintext_size = 1000;
  rig.server_sink.stop_every_delivery = true;
  rig.connect_and_handshake();

  const std::string bytes = pattern(300 * 1024);
  WriteWait done;
  write_all(rig.client, bytes, &done);
  size_t resumes = 0;
  size_t stops_with_decrypted = 0;  // part of a record decrypted and not yet delivered
  size_t stops_with_records = 0;    // whole records still unread behind the BIO
  while (rig.server_sink.received.size() < bytes.size()) {
    REQUIRE(rig.run([&] { return rig.server_sink.stopped; }));
    if (SSL_pending(rig.server->ssl()) > 0) ++stops_with_decrypted;
    if (BIO_ctrl_pending(SSL_get_rbio(rig.server->ssl())) > 0) ++stops_with_records;
    const size_t seen = rig.server_sink.received.size();
    rig.spin(5);
    REQUIRE(rig.server_sink.received.size() == seen);  // nothing while stopped
    rig.server_sink.resume();
    REQUIRE_FALSE(rig.server_sink.delivered_inside_read_start);
    ++resumes;
    REQUIRE(resumes < 10000);
  }
  CHECK(rig.server_sink.received == bytes);
  CHECK(rig.server_sink.deliveries == resumes);
  CHECK(stops_with_decrypted > 0);
  CHECK(stops_with_records > 0);
  CHECK(rig.server_sink.ends == 0);
}

TEST_CASE("tls: plain HTTP on the TLS port gets a plain 400 and ends reading with UV_EPROTO") {
  Rig rig;
  RawPeer peer;
  peer.connect(rig);
  peer.send("GET / HTTP/1.1\r\nHost: test.example\r\n\r\n");
  REQUIRE(rig.run([&] { return rig.server_sink.ends == 1 && peer.end_status != 0; }));
  CHECK(rig.server_sink.end_status == UV_EPROTO);
  CHECK(rig.server_sink.received.empty());
  CHECK(rig.server->failure() == TlsTransport::Failure::kPlainHttp);
  CHECK_FALSE(rig.server->error_text().empty());
  CHECK(peer.received.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  CHECK(peer.received.find("Content-Type: text/plain\r\n") != std::string::npos);
  CHECK(peer.received.find("Connection: close\r\n") != std::string::npos);
  const size_t body_at = peer.received.find("\r\n\r\n") + 4;
  const std::string length_field = "Content-Length: " + std::to_string(peer.received.size() - body_at) + "\r\n";
  CHECK(peer.received.find(length_field) != std::string::npos);
  CHECK(peer.end_status == UV_EOF);
  CHECK(write_all(rig.server, "late") == UV_EPROTO);
  peer.close();
}

TEST_CASE("tls: garbage inside a handshake record fails the server's handshake") {
  Rig rig;
  RawPeer peer;
  peer.connect(rig);
  peer.send(std::string("\x16\x03\x01\x00\x08", 5) + "garbage!");
  REQUIRE(rig.run([&] { return rig.server_sink.ends == 1; }));
  CHECK(rig.server_sink.end_status == UV_EPROTO);
  CHECK(rig.server->failure() == TlsTransport::Failure::kHandshake);
  CHECK_FALSE(rig.server->error_text().empty());
  CHECK_FALSE(rig.server->handshake_done());
  // The peer gets OpenSSL's alert, not a plain-text answer.
  REQUIRE(rig.run([&] { return !peer.received.empty(); }));
  CHECK(peer.received[0] == '\x15');
  peer.close();
}

TEST_CASE("tls: a certificate for another name fails the client's handshake") {
  Rig rig;
  rig.connect_client(kHost, "other.example");
  REQUIRE(rig.run([&] { return rig.connect_wait.calls == 1 && rig.server_sink.ends == 1; }));
  CHECK(rig.connect_wait.status == UV_EPROTO);
  CHECK_FALSE(rig.client->handshake_done());
  CHECK(rig.client->failure() == TlsTransport::Failure::kHandshake);
  CHECK(rig.client->error_text().find("verify") != std::string::npos);
  // The server hears the client's alert.
  CHECK(rig.server_sink.end_status < 0);
  CHECK(rig.server->failure() == TlsTransport::Failure::kHandshake);
  CHECK(rig.server_sink.received.empty());
  rig.spin();
  CHECK(rig.connect_wait.calls == 1);
}

TEST_CASE("tls: a stream cut without close_notify is an error, a clean shutdown is UV_EOF") {
  SUBCASE("truncated") {
    Rig rig;
    rig.connect_and_handshake();
    CHECK(write_all(rig.client, "a record") == 8);
    REQUIRE(rig.run([&] { return rig.server_sink.received == "a record"; }));
    // close() closes the socket without a close_notify.
    rig.close_client();
    REQUIRE(rig.run([&] { return rig.server_sink.ends == 1; }));
    CHECK(rig.server_sink.end_status < 0);
    CHECK(rig.server_sink.end_status != UV_EOF);
    CHECK(rig.server->failure() == TlsTransport::Failure::kProtocol);
    CHECK_FALSE(rig.server->error_text().empty());
  }
  SUBCASE("close_notify") {
    Rig rig;
    rig.connect_and_handshake();
    CHECK(write_all(rig.client, "last words") == 10);
    CHECK(rig.client->shutdown() == 0);
    CHECK(write_all(rig.client, "too late") == UV_EPIPE);
    REQUIRE(rig.run([&] { return rig.server_sink.ends == 1; }));
    CHECK(rig.server_sink.received == "last words");
    CHECK(rig.server_sink.end_status == UV_EOF);
    CHECK(rig.server->failure() == TlsTransport::Failure::kNone);
    // Reading goes on after shutdown(): the server answers, then ends its side too.
    CHECK(write_all(rig.server, "bye") == 3);
    CHECK(rig.server->shutdown() == 0);
    REQUIRE(rig.run([&] { return rig.client_sink.ends == 1; }));
    CHECK(rig.client_sink.received == "bye");
    CHECK(rig.client_sink.end_status == UV_EOF);
  }
}

TEST_CASE("tls: close() during the handshake and with writes queued") {
  SUBCASE("client closed while connecting") {
    Rig rig;
    rig.connect_client();
    rig.close_client();
    REQUIRE(rig.run([&] { return rig.client_closer.calls == 1; }));
    rig.spin();
    CHECK(rig.connect_wait.calls == 0);
  }
  SUBCASE("server closed mid-handshake with a held write") {
    Rig rig;
    std::vector<std::string> events;
    WriteWait held;
    held.events = &events;
    rig.server_closer.events = &events;
    static const std::string kHeld = "held until the handshake";
    rig.on_accept = [&] {
      CHECK(write_all(rig.server, kHeld, &held) == 0);
      rig.close_server();
    };
    rig.connect_client();
    REQUIRE(rig.run([&] { return rig.server_closer.calls == 1 && rig.connect_wait.calls == 1; }));
    CHECK(events == std::vector<std::string>{"written " + std::to_string(UV_ECANCELED), "closed"});
    CHECK(rig.connect_wait.status < 0);
  }
  SUBCASE("client closed with a write queued in the socket") {
    Rig rig;
    rig.server_sink.stop_once = true;
    rig.connect_and_handshake();
    std::vector<std::string> events;
    WriteWait done;
    done.events = &events;
    rig.client_closer.events = &events;
    const std::string big = pattern(8 * 1024 * 1024);
    const int at_once = write_all(rig.client, big, &done);
    REQUIRE(at_once >= 0);
    REQUIRE(static_cast<size_t>(at_once) < big.size());
    REQUIRE(rig.run([&] { return rig.server_sink.stopped; }));
    rig.close_client();
    CHECK(done.calls == 0);  // not from inside close()
    REQUIRE(rig.run([&] { return rig.client_closer.calls == 1; }));
    CHECK(events == std::vector<std::string>{"written " + std::to_string(UV_ECANCELED), "closed"});
  }
}

TEST_CASE("tls: the HTTP server core runs unchanged over the TLS transport") {
  Rig rig;
  const std::string body = pattern(512 * 1024);
  bool freed = false;
  rig.adopt = [&](std::unique_ptr<TlsTransport> tls) {
    auto* conn = new HttpOverTls(&rig.loop, &body, &freed);
    conn->start(std::move(tls));
  };
  rig.connect_and_handshake();
  const std::string request = "GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n";
  CHECK(write_all(rig.client, request) == static_cast<int>(request.size()));
  // The answer, then the server's close_notify after it.
  REQUIRE(rig.run([&] { return rig.client_sink.ends == 1; }));
  CHECK(rig.client_sink.end_status == UV_EOF);
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  CHECK(rig.client_sink.received == head + body);
  CHECK(rig.client->shutdown() == 0);
  REQUIRE(rig.run([&] { return freed; }));
}

TEST_CASE("tls: the handshake's last flight, an answer and close_notify leave in one segment") {
  Rig rig;
  SSL_CTX_set_num_tickets(rig.server_context, 2);  // TLS 1.3 tickets, sent after the handshake
  // The server answers from inside the delivery and shuts down at once, as an HTTP server does
  // for a request with Connection: close.
  static const std::string kRequest = "request";
  static const std::string kAnswer = "the answer";
  int answer_write = -1;
  rig.server_sink.on_each = [&] {
    if (rig.server_sink.received != kRequest) return;
    answer_write = write_all(rig.server, kAnswer);
    CHECK(rig.server->shutdown() == 0);
  };
  // The client writes its request from on_connected, as a backend connection does.
  struct WriteOnConnect final : Transport::Connected {
    Rig* rig = nullptr;
    int status = 1;
    int request_write = -1;
    void on_connected(int s) override {
      status = s;
      if (s == 0) request_write = write_all(rig->client, kRequest);
    }
  } connected;
  connected.rig = &rig;
  rig.connect_client(kHost, kHost, &connected);
  REQUIRE(rig.run([&] { return connected.status != 1; }));
  REQUIRE(connected.status == 0);
  // Taken whole at once: it waits in the transport's buffer, not in the caller's.
  CHECK(connected.request_write == static_cast<int>(kRequest.size()));
  REQUIRE(rig.client->read_start(&rig.client_sink) == 0);
  REQUIRE(rig.run([&] { return rig.client_sink.ends == 1; }));
  CHECK(rig.client_sink.received == kAnswer);
  CHECK(rig.client_sink.end_status == UV_EOF);
  CHECK(answer_write == static_cast<int>(kAnswer.size()));
  // The client: ClientHello, then its Finished with the request. The server: its first flight,
  // then the tickets, the answer and close_notify together.
  CHECK(rig.client_socket_writes == 2);
  CHECK(rig.server_socket_writes == 2);
  CHECK(rig.server->queued_bytes() == 0);
  CHECK(rig.client->queued_bytes() == 0);
}
