// testkit: what the integration tests need to run the real binaries and talk HTTP to them.
//
// Everything binds to 127.0.0.1. The binaries under test bind port 0 and the test reads the port
// they report (nothing can take it in between); memcached binds an ephemeral port too and
// reports it in a file. PostgreSQL cannot report one: it gets a port free_port() found, and
// another when that was taken by then. Processes are started by the test
// and stopped by it (by pid) when their handle goes out of scope. A Client uses blocking sockets
// with receive timeouts; get() and exchange() are one http::OneShot each, run on a loop of their
// own and bounded by 30 s. Either way a hung server fails the test instead of hanging it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http/message.h"

namespace edge::testkit {

// A port that was free a moment ago (bound to port 0, then released): for an address where
// nothing must listen.
uint16_t free_port();

// A port on 127.0.0.1 held for a server that configurations must name before it starts (edges
// naming each other's admin ports as peers; an app told the admin port of the edge in front).
// The port stays bound (SO_REUSEADDR, never listening) while the object lives: the kernel gives
// it to no one else, and the server, binding it with SO_REUSEADDR as libuv does, may listen on
// it. So parallel tests never race for it.
class ReservedPort {
 public:
  ReservedPort();
  ~ReservedPort();
  ReservedPort(const ReservedPort&) = delete;
  ReservedPort& operator=(const ReservedPort&) = delete;
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// Paths of the binaries under test, from EDGE_BIN / EDGE_APP_BIN (set by ctest).
std::string edge_bin();
std::string edge_app_bin();

// A temporary directory removed (recursively) with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, std::string_view content) const;  // returns the path

 private:
  std::string path_;
};

// A child process; stdout and stderr go to a log file that output() reads.
class Process {
 public:
  Process(const std::string& binary, const std::vector<std::string>& args);
  ~Process();  // SIGTERM, then SIGKILL after 5 s if still running; waits
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Waits for the process to exit (at most `limit`); returns its exit code, or -signal, or
  // nullopt if it is still running.
  std::optional<int> wait(std::chrono::milliseconds limit = std::chrono::seconds(10));
  void kill(int signal);
  std::string output() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> status_;
};

// Polls until something accepts on 127.0.0.1:port (at most `limit`); false on time-out.
bool wait_for_port(uint16_t port, std::chrono::milliseconds limit = std::chrono::seconds(10));

// An edge-app process on the port it reported after binding port 0 (or on the --port given in
// extra_args), ready when constructed.
// App and Edge stop their process with SIGTERM when destroyed and expect exit code 0 (under the
// sanitizers that also means no leak and no error report); anything else is printed with the
// process's output and counted in unclean_exits(), which fails the test binary.
struct App {
  explicit App(const std::string& name, std::vector<std::string> extra_args = {});
  ~App();
  uint16_t port;
  Process process;
};

// An edge process with the given YAML config (written to a temp file), ready when constructed.
// The YAML's listener is `{{port}}` (replaced by 0); `port` is the one edge reported binding,
// and `admin_port` the admin port's (0 without an admin section), so an admin address of port 0
// works too.
struct Edge {
  explicit Edge(const std::string& yaml_template);
  ~Edge();
  TempDir dir;
  uint16_t port = 0;               // the first listen entry's
  std::vector<uint16_t> ports;     // every listen entry's, in the configuration's order
  uint16_t admin_port = 0;
  std::string config_path;
  Process process;
};

int unclean_exits();

// A line of edge's log without its time and level ("2026-12-03T18:10:00.123Z info "); any other
// line (edge-app's, a configuration error) as it is.
std::string_view log_message(std::string_view line);

// The process's output once a complete line whose message starts with `prefix` is in it (what a
// binary writes once it listens, or once it has reloaded): the line as it is, or after the time
// and level of edge's log. Throws with the output if the process dies first or never writes it
// within 20 s.
std::string wait_for_line(Process& process, std::string_view prefix, const std::string& what);

// A memcached server of its own on the port it reported after binding an ephemeral one (64 MB,
// no UDP), ready when constructed.
struct MemcachedServer {
  MemcachedServer();
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
  TempDir dir;  // where memcached reports its port
  uint16_t port = 0;
  Process process;
};
// One command on a fresh plain connection to memcached at 127.0.0.1:port: the answer up to and
// including `terminator` (or what came before a close or a time-out of 5 s).
std::string memcached_command(uint16_t port, const std::string& command, const std::string& terminator);
// One "STAT <name> <value>" figure of the server's `stats`; throws if it is missing.
long memcached_stat(uint16_t port, const std::string& name);

// A PostgreSQL server of its own, ready when constructed: Debian's binaries (the newest version
// under /usr/lib/postgresql), a cluster made by initdb in `dir` (superuser "edge", trust
// authentication, UTF8, C locale), listening on 127.0.0.1 at a port that was free (another one
// is tried when it is taken by then) and on a socket in `dir`, with fsync, synchronous commit and
// full-page writes off: nothing here has to survive a crash. PostgreSQL refuses to run as root:
// run by root, initdb and postgres run as the postgres system user through setpriv, which execs
// (`process` is the postmaster itself), keeping the parent-death signal a Process sets.
// stop() is a fast shutdown (SIGINT: clients disconnected, transactions rolled back; the
// postmaster waits for nothing), as is the destructor; start() starts it again on the same data
// and port.
struct PostgresServer {
  PostgresServer();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  void stop();
  void start();
  // libpq's URI for `database` ("postgres" is made by initdb).
  std::string uri(const std::string& database = "postgres") const;
  TempDir dir;  // data/ is the cluster
  uint16_t port = 0;
  std::unique_ptr<Process> process;  // null while stopped

 private:
  bool launch();  // false when the port was taken
};

// "127.0.0.1:<port>" as a quoted YAML string, for a list of servers.
std::string yaml_address(uint16_t port);
// An Edge configuration with one backend, `app`, serving every Host. `servers` is the body of
// its servers list ("yaml_address(a), yaml_address(b)"); `backend_extra` adds lines to the
// backend, `limits` keys to `limits: {...}`.
std::string single_backend_config(const std::string& servers, const std::string& backend_extra = "",
                                  const std::string& limits = "", int workers = 1);
// A counter from an edge-app's /stats ("served", "in_progress", ...), asked directly; throws if
// the answer lacks it.
long app_stat(uint16_t port, const std::string& name);
// How many requests an edge-app received for exactly this target (its /count endpoint).
long app_count(uint16_t port, const std::string& target);
// Percent-encodes everything but letters, digits and "/-_.": for a target inside a query.
std::string percent_encode(std::string_view text);
// What a shell command (a real client: curl, nghttp, h2load) writes on its standard output.
std::string run_command(const std::string& command);

struct Response {
  int status = 0;
  int version_minor = 1;
  std::string reason;
  http::Headers headers;
  std::string body;
  bool complete = false;  // a whole message was read
  std::vector<http::ResponseHead> interims;  // 1xx heads before it (100 Continue left out)
  // A 101's Upgrade field: Connection nominates it, so the parser keeps it here, not in headers.
  std::string upgrade;
  std::optional<std::string_view> header(std::string_view name) const { return headers.get(name); }
};

// A request to the demo site on a fresh connection (Host: books.test, Connection: close): `extra`
// is whole header lines ("Cookie: session=x\r\n"); a POST's `form` goes as
// application/x-www-form-urlencoded.
Response demo_request(uint16_t port, std::string_view method, const std::string& target, const std::string& extra = "",
                      const std::string& form = "");
// Logs in to the demo site as `user` (a name or number): "session=<token>" for a Cookie field.
// Throws if the login is refused.
std::string demo_login(uint16_t port, const std::string& user);

// A client connection to 127.0.0.1:port, from `source` (another loopback address, such as
// 127.0.0.2, for a test of what edge does by client address) when given.
class Client {
 public:
  explicit Client(uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                  const char* source = nullptr);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void set_receive_buffer(int bytes);  // before reading a large response slowly

  bool send(std::string_view bytes);  // false if the peer is gone
  // Reads one response (for a request with `method`: HEAD has no body). complete=false if the
  // connection closed or timed out first. A 101 Switching Protocols is a whole response at the
  // end of its head: the bytes after it (the new protocol's) are kept for the reads below.
  Response read_response(std::string_view method = "GET");
  // Reads up to n bytes as they come (raw); empty when closed or timed out.
  std::string read_some(size_t n = 65536);
  // Reads exactly n bytes, those kept past the previous response first; fewer (what came) when
  // the connection closed or timed out first.
  std::string read_exact(size_t n);
  // True if the peer closes the connection (EOF or reset) within the timeout; bytes that
  // arrive before the close are discarded.
  bool wait_closed();

 private:
  int fd_ = -1;
  std::string pending_;  // bytes read past the previous response
};

// ---- WebSocket (RFC 6455), the client's side ----

// The handshake's fixed Sec-WebSocket-Key, and the Sec-WebSocket-Accept a server owes it.
inline constexpr std::string_view kWsKey = "dGhlIHNhbXBsZSBub25jZQ==";
inline constexpr std::string_view kWsAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// "GET <target> HTTP/1.1" with Host, Upgrade: websocket, Connection: Upgrade,
// Sec-WebSocket-Key: kWsKey and Sec-WebSocket-Version: 13.
std::string ws_handshake(const std::string& host, const std::string& target);

// One frame as a client sends it: FIN as given, the shortest of the three length forms (7-bit,
// 16-bit, 64-bit), and, when `masked`, the fixed masking key 37 fa 21 3d with the payload masked.
std::string ws_frame(uint8_t opcode, std::string_view payload, bool fin = true, bool masked = true);

struct WsFrame {
  uint8_t opcode = 0;
  bool fin = false;
  bool masked = false;
  std::string payload;  // unmasked
};

// Reads exactly one frame (any length form; unmasked if it was masked), starting with the bytes
// the client kept past the 101. nullopt when the connection closes or times out first, or when
// the frame claims more than 1 GiB.
std::optional<WsFrame> read_ws_frame(Client& client);

// A backend inside the test process that records the exact bytes of every request it receives
// (head and body), so a test can assert what edge forwarded. It reads requests the simple way
// a strict origin does (head up to CRLF CRLF, then Content-Length bytes) and answers each with a
// 200 whose body is "<target> host=<Host> xfh=<X-Forwarded-Host>" (Cache-Control max-age=60
// when the target contains "/cached/", else no-store; when it contains "/vary/", `Vary: X-Var`
// and " xvar=<X-Var>" at the end of the body), unless the test queued raw bytes for that
// target: those are sent once, and the connection closed.
class RecordingBackend {
 public:
  RecordingBackend();
  ~RecordingBackend();
  RecordingBackend(const RecordingBackend&) = delete;
  RecordingBackend& operator=(const RecordingBackend&) = delete;

  uint16_t port() const { return port_; }
  std::vector<std::string> requests();  // in arrival order
  void clear();
  void answer_once(const std::string& target, std::string raw);

 private:
  struct State;
  void accept_loop();
  void serve(int fd);
  uint16_t port_ = 0;
  int listener_ = -1;
  State* state_;
  std::thread acceptor_;
};

// One request on a fresh connection: "GET <target> HTTP/1.1" with Host and Connection: close.
Response get(uint16_t port, const std::string& host, const std::string& target);
// Sends raw bytes on a fresh connection and reads one response.
Response exchange(uint16_t port, std::string_view raw, std::string_view method = "GET");
// One request to an admin port with its bearer token, on a fresh connection (a POST with an
// empty body).
Response admin_request(uint16_t port, const std::string& token, const std::string& method, const std::string& target);

}  // namespace edge::testkit
