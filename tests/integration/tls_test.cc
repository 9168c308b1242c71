// HTTPS listeners through the real binaries: certificates made by `openssl req` at test time, a
// client written on OpenSSL's library talking to edge over loopback, and curl and openssl
// s_client run as a user would. SNI picks the certificate,
// a client without SNI gets the default, old protocol versions are refused, ALPN is answered,
// a session is resumed on whichever worker takes the next connection, plain HTTP to the TLS
// port gets a 400, a stalled handshake is closed, plain listeners redirect where asked, and the
// backend hears X-Forwarded-Proto: https. Behind edge, another edge serves as a TLS backend:
// verified, its sessions resumed, health-checked over TLS.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

// A self-signed ECDSA P-256 certificate for `name` and `*.name`, written as DIR/NAME.pem and
// DIR/NAME.key.
void make_certificate(const TempDir& dir, const std::string& name) {
  const std::string base = dir.path() + "/" + name;
  const std::string command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                              "-keyout '" + base + ".key' -out '" + base + ".pem' -subj '/CN=" + name +
                              "' -addext 'subjectAltName=DNS:" + name + ",DNS:*." + name + "' 2>/dev/null";
  REQUIRE(std::system(command.c_str()) == 0);
}

struct Certificates {
  TempDir dir;
  Certificates() {
    make_certificate(dir, "a.test");
    make_certificate(dir, "b.test");
  }
  std::string token_file() const { return dir.write("admin.token", "tls-test-token\n"); }
  std::string pem(const std::string& name) const { return dir.path() + "/" + name + ".pem"; }
  std::string key(const std::string& name) const { return dir.path() + "/" + name + ".key"; }
};

struct TlsOptions {
  std::string server_name;                // "" : no SNI
  std::string alpn = "http/1.1";          // one protocol offered; "" : none
  int min_version = 0;                    // 0: OpenSSL's default
  int max_version = 0;
  SSL_SESSION* session = nullptr;         // borrowed: offered for resumption
  std::string request;                    // sent after the handshake; "" : none
};

struct TlsOutcome {
  bool handshake = false;
  std::string subject;  // the server certificate's CN
  std::string alpn;
  bool reused = false;
  std::string response;  // everything read until the server closed
  SSL_SESSION* session = nullptr;  // owned: SSL_SESSION_free
  ~TlsOutcome() { SSL_SESSION_free(session); }
};

// What `command` (a shell command line) prints on stdout, stderr folded in.
std::string output_of(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  ::pclose(pipe);
  return out;
}

int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  return fd;
}

void run_tls(uint16_t port, const TlsOptions& options, TlsOutcome& out) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  REQUIRE(ctx);
  if (options.max_version && options.max_version < TLS1_2_VERSION) {
    // The client must be able to offer what the test wants refused.
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
  }
  if (options.min_version) SSL_CTX_set_min_proto_version(ctx, options.min_version);
  if (options.max_version) SSL_CTX_set_max_proto_version(ctx, options.max_version);
  SSL* ssl = SSL_new(ctx);
  const int fd = connect_loopback(port);
  SSL_set_fd(ssl, fd);
  if (!options.server_name.empty()) SSL_set_tlsext_host_name(ssl, options.server_name.c_str());
  if (!options.alpn.empty()) {
    std::string wire(1, static_cast<char>(options.alpn.size()));
    wire += options.alpn;
    SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
  }
  if (options.session) SSL_set_session(ssl, options.session);
  out.handshake = SSL_connect(ssl) == 1;
  ERR_clear_error();
  if (out.handshake) {
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
      char name[256] = {};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, name, sizeof name);
      out.subject = name;
      X509_free(peer);
    }
    const unsigned char* selected = nullptr;
    unsigned length = 0;
    SSL_get0_alpn_selected(ssl, &selected, &length);
    out.alpn.assign(reinterpret_cast<const char*>(selected), length);
    out.reused = SSL_session_reused(ssl) == 1;
    if (!options.request.empty()) {
      REQUIRE(SSL_write(ssl, options.request.data(), static_cast<int>(options.request.size())) > 0);
      char buffer[16384];
      int n = 0;
      while ((n = SSL_read(ssl, buffer, sizeof buffer)) > 0) out.response.append(buffer, static_cast<size_t>(n));
      ERR_clear_error();
    }
    // A TLS 1.3 ticket arrives after the handshake: read above, or looked for now.
    out.session = SSL_get1_session(ssl);
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(ctx);
}

std::string get_request(const std::string& host, const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
}

// GET /health for a.test over exactly TLS `version`.
TlsOptions health_over(int version) {
  TlsOptions options;
  options.server_name = "a.test";
  options.min_version = version;
  options.max_version = version;
  options.request = get_request("a.test", "/health");
  return options;
}

// Everything read from a plain connection to `port` after sending `bytes`, until it closes.
std::string plain_exchange(uint16_t port, const std::string& bytes) {
  const int fd = connect_loopback(port);
  if (!bytes.empty()) REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
  std::string out;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) out.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

std::string config_for(const App& app, const Certificates& certificates, const std::string& tls_extra = "") {
  return R"(workers: 2
limits: {header_timeout: 1s}
admin: {address: "127.0.0.1:0", token_file: ")" + certificates.token_file() + R"("}
listen:
  - {address: "127.0.0.1:{{port}}"}
  - address: "127.0.0.1:{{port}}"
    tls:
      certificates:
        - {cert: ")" + certificates.pem("a.test") + R"(", key: ")" + certificates.key("a.test") + R"("}
        - {cert: ")" + certificates.pem("b.test") + R"(", key: ")" + certificates.key("b.test") + R"("}
)" + tls_extra + R"(backends:
  app: {servers: [)" + yaml_address(app.port) + R"(]}
hosts:
  - match: [secure.a.test]
    backend: app
    redirect_https: on
  - match: [scheme.a.test]
    backend: app
    key_scheme: on
  - match: ["*"]
    backend: app
)";
}

// One figure of the admin port's /stats connections section ("tls_resumed", a close reason).
long connection_figure(uint16_t admin_port, const std::string& name) {
  const Response stats = exchange(admin_port, "GET /stats HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer "
                                              "tls-test-token\r\nConnection: close\r\n\r\n");
  REQUIRE(stats.status == 200);
  const size_t at = stats.body.find("\"" + name + "\":");
  REQUIRE(at != std::string::npos);
  return std::stol(stats.body.substr(at + name.size() + 3));
}

struct Site {
  Certificates certificates;
  App app{"origin"};
  Edge edge{config_for(app, certificates)};
  uint16_t plain() const { return edge.ports.at(0); }
  uint16_t tls() const { return edge.ports.at(1); }
};

}  // namespace

TEST_CASE("tls: SNI picks the certificate; no SNI or an unknown name gets the default") {
  Site site;
  REQUIRE(site.edge.ports.size() == 2);
  struct Case {
    const char* server_name;
    const char* subject;
  };
  for (const Case c : {Case{"a.test", "a.test"}, Case{"b.test", "b.test"}, Case{"www.b.test", "b.test"},
                       Case{"deep.www.b.test", "b.test"}, Case{"B.TEST", "b.test"}, Case{"", "a.test"},
                       Case{"unknown.test", "a.test"}}) {
    CAPTURE(c.server_name);
    TlsOptions options;
    options.server_name = c.server_name;
    TlsOutcome outcome;
    run_tls(site.tls(), options, outcome);
    REQUIRE(outcome.handshake);
    CHECK(outcome.subject == c.subject);
  }
}

TEST_CASE("tls: a request over TLS reaches the backend with X-Forwarded-Proto: https; plain says http") {
  Site site;
  TlsOptions options;
  options.server_name = "a.test";
  options.request = get_request("a.test", "/echo");
  TlsOutcome outcome;
  run_tls(site.tls(), options, outcome);
  REQUIRE(outcome.handshake);
  CHECK(outcome.response.rfind("HTTP/1.1 200 ", 0) == 0);
  CHECK(outcome.response.find(R"(["X-Forwarded-Proto","https"])") != std::string::npos);
  const Response plain = get(site.plain(), "a.test", "/echo");
  CHECK(plain.status == 200);
  CHECK(plain.body.find(R"(["X-Forwarded-Proto","http"])") != std::string::npos);
}

TEST_CASE("tls: http and https share cached objects, unless the host sets key_scheme") {
  Site site;
  auto over_tls = [&](const std::string& host) {
    TlsOptions options;
    options.server_name = "a.test";
    options.request = get_request(host, "/static/app.js");
    TlsOutcome outcome;
    run_tls(site.tls(), options, outcome);
    REQUIRE(outcome.handshake);
    REQUIRE(outcome.response.rfind("HTTP/1.1 200 ", 0) == 0);
    const size_t at = outcome.response.find("X-Cache: ");
    REQUIRE(at != std::string::npos);
    return outcome.response.substr(at + 9, outcome.response.find('\r', at) - at - 9);
  };
  auto over_plain = [&](const std::string& host) {
    const Response r = get(site.plain(), host, "/static/app.js");
    REQUIRE(r.status == 200);
    return std::string(r.header("X-Cache").value_or(""));
  };
  // One object for both schemes.
  CHECK(over_plain("a.test") == "MISS");
  CHECK(over_tls("a.test") == "HIT");
  // One each.
  CHECK(over_plain("scheme.a.test") == "MISS");
  CHECK(over_tls("scheme.a.test") == "MISS");
  CHECK(over_tls("scheme.a.test") == "HIT");
  CHECK(over_plain("scheme.a.test") == "HIT");
}

TEST_CASE("tls: curl and openssl s_client, as a user would run them") {
  Site site;
  const std::string port = std::to_string(site.tls());
  // curl resolves b.test to loopback, verifies the certificate against it, and gets the page.
  const std::string curl = output_of("curl -sS --resolve b.test:" + port + ":127.0.0.1 --cacert '" +
                                     site.certificates.pem("b.test") + "' -w ' %{http_code} %{http_version}' " +
                                     "https://b.test:" + port + "/health");
  CHECK(curl == "ok\n 200 2");  // h2, by ALPN
  // The same name without its CA: curl refuses the certificate, edge serves nobody by mistake.
  const std::string untrusted = output_of("curl -sS --resolve b.test:" + port + ":127.0.0.1 https://b.test:" + port + "/health");
  CHECK(untrusted.find("certificate") != std::string::npos);
  // s_client with SNI and ALPN, as an operator checks a listener.
  const std::string s_client = output_of("openssl s_client -connect 127.0.0.1:" + port +
                                         " -servername www.b.test -alpn http/1.1 </dev/null");
  CAPTURE(s_client);
  CHECK(s_client.find("New, TLSv1.3") != std::string::npos);
  CHECK(s_client.find("ALPN protocol: http/1.1") != std::string::npos);
  CHECK(s_client.find("subject=CN = b.test") != std::string::npos);
  // TLS 1.1 is refused whatever the client allows.
  const std::string old = output_of("openssl s_client -brief -connect 127.0.0.1:" + port +
                                    " -tls1_1 -cipher DEFAULT@SECLEVEL=0 </dev/null");
  CHECK(old.find("Protocol version: TLSv1.1") == std::string::npos);
  CHECK(old.find("alert") != std::string::npos);
}

TEST_CASE("tls: ALPN answers http/1.1 or h2, and a client offering neither still connects without ALPN") {
  Site site;
  TlsOptions options;
  options.server_name = "a.test";
  TlsOutcome offered;
  run_tls(site.tls(), options, offered);
  REQUIRE(offered.handshake);
  CHECK(offered.alpn == "http/1.1");
  options.alpn = "h2";
  TlsOutcome h2;
  run_tls(site.tls(), options, h2);
  REQUIRE(h2.handshake);
  CHECK(h2.alpn == "h2");
  options.alpn = "spdy/3";
  TlsOutcome other;
  run_tls(site.tls(), options, other);
  REQUIRE(other.handshake);
  CHECK(other.alpn.empty());
}

TEST_CASE("tls: TLS 1.0 and 1.1 are refused; 1.2 and 1.3 are served") {
  Site site;
  for (int version : {TLS1_VERSION, TLS1_1_VERSION}) {
    CAPTURE(version);
    TlsOptions options;
    options.server_name = "a.test";
    options.max_version = version;
    TlsOutcome outcome;
    run_tls(site.tls(), options, outcome);
    CHECK_FALSE(outcome.handshake);
  }
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    CAPTURE(version);
    const TlsOptions options = health_over(version);
    TlsOutcome outcome;
    run_tls(site.tls(), options, outcome);
    REQUIRE(outcome.handshake);
    CHECK(outcome.response.rfind("HTTP/1.1 200 ", 0) == 0);
  }
}

TEST_CASE("tls: a session is resumed by every later connection, whichever worker takes it") {
  Site site;
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    CAPTURE(version);
    TlsOptions options = health_over(version);
    TlsOutcome first;
    run_tls(site.tls(), options, first);
    REQUIRE(first.handshake);
    CHECK_FALSE(first.reused);
    REQUIRE(first.session);
    // Two workers, each with its own socket on the port: eight connections land on both (all on
    // one has a chance of 1 in 128), and a key per worker would fail about half of them.
    for (int i = 0; i < 8; ++i) {
      CAPTURE(i);
      options.session = first.session;
      TlsOutcome again;
      run_tls(site.tls(), options, again);
      REQUIRE(again.handshake);
      CHECK(again.reused);
      CHECK(again.response.rfind("HTTP/1.1 200 ", 0) == 0);
    }
  }
  CHECK(connection_figure(site.edge.admin_port, "tls_handshakes") == 18);
  CHECK(connection_figure(site.edge.admin_port, "tls_resumed") == 16);
}

TEST_CASE("tls: plain HTTP sent to the TLS port is answered 400 in plain text") {
  Site site;
  const std::string answer = plain_exchange(site.tls(), get_request("a.test", "/health"));
  CHECK(answer.rfind("HTTP/1.1 400 ", 0) == 0);
  CHECK(answer.find("Connection: close") != std::string::npos);
  CHECK(connection_figure(site.edge.admin_port, "plain_http_on_tls") == 1);
  // The port still serves TLS.
  TlsOptions options;
  options.server_name = "a.test";
  TlsOutcome outcome;
  run_tls(site.tls(), options, outcome);
  CHECK(outcome.handshake);
}

TEST_CASE("tls: a handshake that never comes, or stops halfway, is closed at header_timeout") {
  Site site;
  // Nothing at all, then the first bytes of a ClientHello record and nothing more.
  CHECK(plain_exchange(site.tls(), "").empty());
  CHECK(plain_exchange(site.tls(), std::string("\x16\x03\x01\x02\x00\x01", 6)).size() < 64);
  CHECK(connection_figure(site.edge.admin_port, "header_timeout") == 2);
}

TEST_CASE("tls: a truncated record or a reset after the handshake harms nobody else") {
  Site site;
  {
    // A real handshake, then half a record, then the socket closes without close_notify.
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = SSL_new(ctx);
    const int fd = connect_loopback(site.tls());
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "a.test");
    REQUIRE(SSL_connect(ssl) == 1);
    const char half_record[] = {0x17, 0x03, 0x03, 0x40, 0x00, 'x', 'y'};
    REQUIRE(::send(fd, half_record, sizeof half_record, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof half_record));
    ::close(fd);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  {
    // Garbage where a record header belongs.
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = SSL_new(ctx);
    const int fd = connect_loopback(site.tls());
    SSL_set_fd(ssl, fd);
    REQUIRE(SSL_connect(ssl) == 1);
    const std::string garbage(100, '\xff');
    ::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL);
    char buffer[256];
    while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
    }
    ::close(fd);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  TlsOptions options;
  options.server_name = "b.test";
  options.request = get_request("b.test", "/health");
  TlsOutcome outcome;
  run_tls(site.tls(), options, outcome);
  REQUIRE(outcome.handshake);
  CHECK(outcome.response.rfind("HTTP/1.1 200 ", 0) == 0);
}

TEST_CASE("tls: redirect_https answers a plain request 308 to the https URL and serves it over TLS") {
  Site site;
  const Response plain = get(site.plain(), "secure.a.test", "/books/1?x=2");
  CHECK(plain.status == 308);
  CHECK(plain.header("Location").value_or("") == "https://secure.a.test/books/1?x=2");
  TlsOptions options;
  options.server_name = "secure.a.test";
  options.request = get_request("secure.a.test", "/health");
  TlsOutcome outcome;
  run_tls(site.tls(), options, outcome);
  REQUIRE(outcome.handshake);
  CHECK(outcome.subject == "a.test");
  CHECK(outcome.response.rfind("HTTP/1.1 200 ", 0) == 0);
}

TEST_CASE("tls: a wrong certificate setup stops edge with file:line:col and OpenSSL's reason") {
  Certificates certificates;
  TempDir dir;
  auto check = [&](const std::string& certificate_lines) {
    const std::string path = dir.write("bad.yaml", "listen:\n  - address: 127.0.0.1:0\n    tls:\n      certificates:\n" +
                                                        certificate_lines +
                                                        "backends:\n  app: {servers: [127.0.0.1:9]}\n"
                                                        "hosts:\n  - {match: [\"*\"], backend: app}\n");
    Process process(edge_bin(), {"--config", path, "--check"});
    const std::optional<int> code = process.wait();
    return std::pair(code.value_or(-1), process.output());
  };
  SUBCASE("a missing certificate file") {
    auto [code, output] = check("        - {cert: missing.pem, key: " + certificates.key("a.test") + "}\n");
    CHECK(code == 2);
    CHECK(output.find("bad.yaml:5:18: cannot read certificate '") != std::string::npos);
    CHECK(output.find("No such file or directory") != std::string::npos);
  }
  SUBCASE("a key that is not the certificate's") {
    auto [code, output] = check("        - {cert: " + certificates.pem("a.test") + ", key: " + certificates.key("b.test") + "}\n");
    CHECK(code == 2);
    CHECK(output.find("does not match certificate") != std::string::npos);
    CHECK(output.find("bad.yaml:5:") != std::string::npos);
  }
  SUBCASE("a file that is not PEM") {
    const std::string junk = dir.write("junk.pem", "not a certificate\n");
    auto [code, output] = check("        - {cert: " + junk + ", key: " + certificates.key("a.test") + "}\n");
    CHECK(code == 2);
    CHECK(output.find("cannot load certificate") != std::string::npos);
  }
}

namespace {

// edge in front of another edge whose TLS listener serves a.test's certificate, in front of the
// app: the front's backend speaks TLS with `backend_tls` and keeps no idle connection, so every
// request makes a new TLS connection (each a handshake the back counts).
struct Chain {
  Certificates certificates;
  App app{"origin"};
  Edge back{config_for(app, certificates)};
  // `backend_extra`: more lines of the backend's map, each indented by four spaces.
  std::string front_config(const std::string& backend_tls, const std::string& backend_extra = "") const {
    return R"(workers: 1
listen: [{address: "127.0.0.1:{{port}}"}]
admin: {address: "127.0.0.1:0", token_file: ")" + certificates.token_file() + R"("}
backends:
  secure:
    servers: [)" + yaml_address(back.ports.at(1)) + R"(]
    pool: {max_idle: 0}
    tls: )" + backend_tls + "\n" + backend_extra + R"(hosts:
  - match: ["*"]
    backend: secure
)";
  }
  // The front's /backends.txt line for the back: "secure <address> <mode> ... check=<detail>".
  std::string server_line(const Edge& front) const {
    const Response r = exchange(front.admin_port, "GET /backends.txt HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer "
                                                  "tls-test-token\r\nConnection: close\r\n\r\n");
    const std::string server = "secure " + std::string("127.0.0.1:") + std::to_string(back.ports.at(1)) + " ";
    const size_t at = r.body.find(server);
    if (at == std::string::npos) return "";
    return r.body.substr(at, r.body.find('\n', at) - at);
  }
  // Polls the front's admin port until the back's line contains every one of `words`; that line,
  // or the last one seen after 20 s.
  std::string wait_for_server(const Edge& front, const std::vector<std::string>& words) const {
    std::string line;
    for (int i = 0; i < 800; ++i) {
      line = server_line(front);
      if (std::all_of(words.begin(), words.end(), [&](const std::string& w) { return line.find(w) != std::string::npos; }))
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return line;
  }
};

constexpr char kHealth[] = "    health: {path: /health, interval: 100ms, timeout: 2s, rise: 1, fall: 1}\n";

}  // namespace

TEST_CASE("tls: a backend over TLS, verified by name against a CA file, its sessions resumed") {
  Chain chain;
  Edge front{chain.front_config("{ca_file: \"" + chain.certificates.pem("a.test") + "\", server_name: a.test}")};
  for (int i = 0; i < 8; ++i) {
    const Response r = get(front.port, "a.test", "/echo");
    CHECK(r.status == 200);
    // The back saw a TLS connection: its backend heard https.
    CHECK(r.body.find(R"(["X-Forwarded-Proto","https"])") != std::string::npos);
  }
  CHECK(connection_figure(chain.back.admin_port, "tls_handshakes") == 8);
  CHECK(connection_figure(chain.back.admin_port, "tls_resumed") == 7);
}

TEST_CASE("tls: a backend whose certificate does not match the name, or is not trusted, gets no request") {
  Chain chain;
  SUBCASE("the wrong name") {
    Edge front{chain.front_config("{ca_file: \"" + chain.certificates.pem("a.test") + "\", server_name: c.test}")};
    CHECK(get(front.port, "a.test", "/echo").status == 502);
    CHECK(connection_figure(chain.back.admin_port, "requests") == 0);
  }
  SUBCASE("a CA that did not sign it") {
    Edge front{chain.front_config("{ca_file: \"" + chain.certificates.pem("b.test") + "\", server_name: a.test}")};
    CHECK(get(front.port, "a.test", "/echo").status == 502);
    CHECK(connection_figure(chain.back.admin_port, "requests") == 0);
  }
  SUBCASE("verify: off takes it") {
    Edge front{chain.front_config("{verify: off, server_name: c.test}")};
    CHECK(get(front.port, "a.test", "/echo").status == 200);
    CHECK(connection_figure(chain.back.admin_port, "requests") == 1);
  }
}

TEST_CASE("tls: health checks over TLS to a backend: up and serving, resuming their sessions") {
  Chain chain;
  Edge front{chain.front_config("{ca_file: \"" + chain.certificates.pem("a.test") + "\", server_name: a.test}", kHealth)};
  const std::string line = chain.wait_for_server(front, {" up ", " check=200"});
  CHECK(line.find(" up ") != std::string::npos);
  CHECK(line.find(" check=200") != std::string::npos);
  const Response r = get(front.port, "a.test", "/echo");
  CHECK(r.status == 200);
  CHECK(r.body.find(R"(["X-Forwarded-Proto","https"])") != std::string::npos);
  // Every check is a connection of its own; after the first, each resumes the last session.
  for (int i = 0; i < 800 && connection_figure(chain.back.admin_port, "tls_resumed") < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  CHECK(connection_figure(chain.back.admin_port, "tls_resumed") >= 2);
}

TEST_CASE("tls: health checks to a backend whose certificate does not match the name fail, and say why") {
  Chain chain;
  Edge front{chain.front_config("{ca_file: \"" + chain.certificates.pem("a.test") + "\", server_name: c.test}", kHealth)};
  const std::string line = chain.wait_for_server(front, {" down ", "check=TLS_handshake_failed:"});
  INFO(line);
  CHECK(line.find(" down ") != std::string::npos);
  CHECK(line.find("check=TLS_handshake_failed:") != std::string::npos);
  CHECK(line.find("certificate_verify_failed:_hostname_mismatch") != std::string::npos);
  // Its only server down, the backend answers at once; the back heard no request.
  CHECK(get(front.port, "a.test", "/echo").status == 503);
  CHECK(connection_figure(chain.back.admin_port, "requests") == 0);
  CHECK(front.process.running());
}

TEST_CASE("tls: SIGHUP reloads the certificates; a broken file is refused and the old ones stay") {
  Certificates certificates;
  TempDir live;  // the files the configuration names, rewritten under edge's feet
  const auto copy = [&](const std::string& from, const std::string& name) {
    std::ifstream in(from, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return live.write(name, bytes.str());
  };
  const std::string pem = copy(certificates.pem("a.test"), "site.pem");
  const std::string key = copy(certificates.key("a.test"), "site.key");
  App app{"origin"};
  Edge edge{R"(workers: 2
listen:
  - address: "127.0.0.1:{{port}}"
    tls: {certificates: [{cert: ")" + pem + R"(", key: ")" + key + R"("}]}
backends:
  app: {servers: [)" + yaml_address(app.port) + R"(]}
hosts:
  - {match: ["*"], backend: app}
)"};
  auto subject = [&] {
    TlsOptions options;
    options.server_name = "a.test";
    TlsOutcome outcome;
    run_tls(edge.port, options, outcome);
    REQUIRE(outcome.handshake);
    return outcome.subject;
  };
  CHECK(subject() == "a.test");

  copy(certificates.pem("b.test"), "site.pem");
  copy(certificates.key("b.test"), "site.key");
  edge.process.kill(SIGHUP);
  wait_for_line(edge.process, "edge: reloaded (SIGHUP)", "edge");
  // Each worker takes the new contexts from its inbox; a few connections reach both.
  for (int i = 0; i < 8; ++i) CHECK(subject() == "b.test");

  live.write("site.pem", "not a certificate\n");
  edge.process.kill(SIGHUP);
  const std::string output = wait_for_line(edge.process, "edge: reload refused", "edge");
  CHECK(output.find("cannot load certificate '" + pem + "'") != std::string::npos);
  for (int i = 0; i < 4; ++i) CHECK(subject() == "b.test");
}
