#include "tests/integration/testkit.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "http/body.h"
#include "http/oneshot.h"
#include "http/parser.h"

#if defined(__SANITIZE_THREAD__)
// libuv is not built with ThreadSanitizer and closes its descriptors by raw system call: the
// sanitizer never sees them closed, and takes a number that another thread's get() reuses for a
// race. What libuv does is left out of its view.
extern "C" const char* __tsan_default_suppressions() { return "called_from_lib:libuv.so\n"; }
#endif

namespace edge::testkit {

namespace {
using Clock = std::chrono::steady_clock;

std::string temp_root() {
  const char* dir = std::getenv("TMPDIR");
  return dir && *dir ? dir : "/tmp";
}

// The directory of the running test binary: ctest sets EDGE_BIN and EDGE_APP_BIN, but a test run
// by hand from build/bin finds its siblings there.
std::string own_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

std::string binary_from_env(const char* var, const char* name) {
  const char* value = std::getenv(var);
  if (value && *value) return value;
  return own_dir() + "/" + name;
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

bool try_connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr = loopback(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

std::string_view log_message(std::string_view line) {
  // "2026-12-03T18:10:00.123Z " then the level and a space.
  constexpr std::string_view shape = "dddd-dd-ddTdd:dd:dd.dddZ ";
  if (line.size() < shape.size()) return line;
  for (size_t i = 0; i < shape.size(); ++i) {
    const char c = line[i];
    if (shape[i] == 'd' ? (c < '0' || c > '9') : c != shape[i]) return line;
  }
  for (std::string_view level : {"error ", "warn ", "info "})
    if (line.substr(shape.size()).starts_with(level)) return line.substr(shape.size() + level.size());
  return line;
}

namespace {

// The port at the end of the first complete line of `output` whose message starts with `prefix`
// ("... listening on 127.0.0.1:43817").
std::optional<uint16_t> port_on_line(const std::string& output, std::string_view prefix) {
  for (size_t at = 0; at < output.size();) {
    const size_t end = output.find('\n', at);
    if (end == std::string::npos) break;  // a line still being written
    std::string_view line(output.data() + at, end - at);
    at = end + 1;
    if (!log_message(line).starts_with(prefix)) continue;
    const size_t colon = line.rfind(':');
    const int port = colon == std::string_view::npos ? 0 : std::atoi(std::string(line.substr(colon + 1)).c_str());
    if (port <= 0 || port > 65535) throw std::runtime_error("no port at the end of: " + std::string(line));
    return static_cast<uint16_t>(port);
  }
  return std::nullopt;
}

}  // namespace

// The process's output once a complete line whose message starts with `prefix` is in it (what a binary
// writes once it listens). Throws with the output if the process dies first or never writes it.
std::string wait_for_line(Process& process, std::string_view prefix, const std::string& what) {
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (;;) {
    const std::string output = process.output();
    for (size_t at = 0; at < output.size();) {
      const size_t end = output.find('\n', at);
      if (end == std::string::npos) break;  // a line still being written
      if (log_message(std::string_view(output).substr(at, end - at)).starts_with(prefix)) return output;
      at = end + 1;
    }
    if (!process.running()) throw std::runtime_error(what + " exited before listening; output:\n" + output);
    if (Clock::now() >= deadline)
      throw std::runtime_error(what + " did not say it listens after 20 s; output:\n" + output);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

namespace {

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

std::string make_log_path() {
  std::string path = temp_root() + "/edge-test-log-XXXXXX";
  int fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("mkostemp: " + std::string(std::strerror(errno)));
  ::close(fd);
  return path;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}
}  // namespace

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    int err = errno;
    ::close(fd);
    throw std::runtime_error("free_port: " + std::string(std::strerror(err)));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

ReservedPort::ReservedPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  const int on = 1;
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  if (::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
      ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    const int err = errno;
    ::close(fd_);
    throw std::runtime_error("ReservedPort: " + std::string(std::strerror(err)));
  }
  port_ = ntohs(addr.sin_port);
}

ReservedPort::~ReservedPort() {
  if (fd_ >= 0) ::close(fd_);
}

std::string edge_bin() { return binary_from_env("EDGE_BIN", "edge"); }
std::string edge_app_bin() { return binary_from_env("EDGE_APP_BIN", "edge-app"); }

// ---- TempDir ----

TempDir::TempDir() {
  std::string templ = temp_root() + "/edge-test-XXXXXX";
  if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, std::string_view content) const {
  std::string path = path_ + "/" + name;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
  return path;
}

// ---- Process ----

Process::Process(const std::string& binary, const std::vector<std::string>& args) : log_path_(make_log_path()) {
  // Everything the child needs is prepared before fork: between fork and exec only
  // async-signal-safe calls are allowed.
  std::vector<std::string> argv_strings;
  argv_strings.push_back(binary);
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int exec_pipe[2];
  if (log_fd < 0 || null_fd < 0 || ::pipe2(exec_pipe, O_CLOEXEC) < 0) {
    if (log_fd >= 0) ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    throw std::runtime_error("cannot prepare to start " + binary);
  }
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    ::close(null_fd);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
    throw std::runtime_error("fork: " + std::string(std::strerror(errno)));
  }
  if (pid == 0) {
    // If the test dies without its destructors (a crash, a SIGKILL), the child goes too.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // The child starts with default signal dispositions and an empty mask, whatever the test set.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execv(argv[0], argv.data());
    int err = errno;
    ssize_t ignored = ::write(exec_pipe[1], &err, sizeof err);
    (void)ignored;
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(null_fd);
  ::close(exec_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  pid_ = pid;
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    wait(std::chrono::seconds(5));
    std::remove(log_path_.c_str());
    throw std::runtime_error("cannot execute " + binary + ": " + std::strerror(child_errno));
  }
}

Process::~Process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGTERM);
    if (!wait(std::chrono::seconds(5))) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      status_ = decode_status(status);
    }
  }
  const char* keep = std::getenv("EDGE_TEST_KEEP_LOGS");
  if (!keep || !*keep) std::remove(log_path_.c_str());
}

bool Process::running() {
  if (status_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = decode_status(status);
    return false;
  }
  return r == 0;
}

std::optional<int> Process::wait(std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    if (!running()) return status_;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void Process::kill(int signal) {
  if (pid_ > 0 && !status_) ::kill(pid_, signal);
}

std::string Process::output() const {
  std::ifstream in(log_path_, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool wait_for_port(uint16_t port, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    if (try_connect(port)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// ---- App and Edge ----

namespace {
// A --port among the extra arguments wins (a test that restarts an app on the same port passes
// it); otherwise the app binds port 0 and reports the port it got.
uint16_t app_port(const std::vector<std::string>& extra) {
  for (size_t i = 0; i < extra.size(); ++i) {
    std::string_view arg = extra[i];
    std::string_view value;
    if (arg == "--port" && i + 1 < extra.size())
      value = extra[i + 1];
    else if (arg.substr(0, 7) == "--port=")
      value = arg.substr(7);
    else
      continue;
    int port = std::atoi(std::string(value).c_str());
    if (port <= 0 || port > 65535) throw std::runtime_error("App: bad --port " + std::string(value));
    return static_cast<uint16_t>(port);
  }
  return 0;
}

std::vector<std::string> app_args(const std::string& name, uint16_t port, std::vector<std::string> extra) {
  std::vector<std::string> args = {"--port", std::to_string(port), "--name", name};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}
}  // namespace

namespace {
std::atomic<int> g_unclean_exits{0};

void expect_clean_exit(Process& process, const std::string& what) {
  process.kill(SIGTERM);  // a no-op for a process the test already stopped
  std::optional<int> code = process.wait(std::chrono::seconds(20));
  if (code == 0) return;
  ++g_unclean_exits;
  std::fprintf(stderr, "%s did not exit cleanly on SIGTERM (%s); output:\n%s\n", what.c_str(),
               code ? ("exit " + std::to_string(*code)).c_str() : "still running", process.output().c_str());
}
}  // namespace

int unclean_exits() { return g_unclean_exits.load(); }

std::string yaml_address(uint16_t port) { return "\"127.0.0.1:" + std::to_string(port) + "\""; }

std::string single_backend_config(const std::string& servers, const std::string& backend_extra,
                                  const std::string& limits, int workers) {
  return "workers: " + std::to_string(workers) + R"(
listen: [{address: "127.0.0.1:{{port}}"}]
limits: {)" + limits + R"(}
backends:
  app:
    servers: [)" + servers + R"(]
    )" + backend_extra + R"(
hosts:
  - match: ["*"]
    backend: app
)";
}

long app_stat(uint16_t port, const std::string& name) {
  Response r = get(port, "x", "/stats");
  size_t at = r.body.find("\"" + name + "\":");
  if (at == std::string::npos) throw std::runtime_error("no " + name + " in /stats: " + r.body);
  return std::stol(r.body.substr(at + name.size() + 3));
}

std::string run_command(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run: " + command);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  ::pclose(pipe);
  return out;
}

std::string percent_encode(std::string_view text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

long app_count(uint16_t port, const std::string& target) {
  Response r = get(port, "x", "/count?url=" + percent_encode(target));
  if (r.status != 200) throw std::runtime_error("/count answered " + std::to_string(r.status));
  return std::stol(r.body);
}

App::~App() { expect_clean_exit(process, "edge-app"); }

Edge::~Edge() { expect_clean_exit(process, "edge"); }

App::App(const std::string& name, std::vector<std::string> extra_args)
    : port(app_port(extra_args)), process(edge_app_bin(), app_args(name, port, std::move(extra_args))) {
  const std::string said = "edge-app " + name + " listening on ";
  port = *port_on_line(wait_for_line(process, said, "edge-app " + name), said);
}

Edge::Edge(const std::string& yaml_template)
    : config_path(dir.write("config.yaml", replace_all(yaml_template, "{{port}}", "0"))),
      process(edge_bin(), {"--config", config_path}) {
  // "serving" comes after the lines of every listener.
  const std::string output = wait_for_line(process, "edge: serving", "edge");
  port = *port_on_line(output, "edge: listening on ");
  for (size_t at = output.find("edge: listening on "); at != std::string::npos;
       at = output.find("edge: listening on ", at + 1))
    ports.push_back(*port_on_line(output.substr(at), "edge: listening on "));
  admin_port = port_on_line(output, "edge: admin listening on ").value_or(0);
}

// ---- Client ----

Client::Client(uint16_t port, std::chrono::milliseconds timeout, const char* source) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  if (source) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    if (::inet_pton(AF_INET, source, &from.sin_addr) != 1 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) < 0) {
      ::close(fd);
      return;
    }
  }
  sockaddr_in addr = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    ::close(fd);
    return;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fd_ = fd;
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

void Client::set_receive_buffer(int bytes) {
  if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

bool Client::send(std::string_view bytes) {
  if (fd_ < 0) return false;
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

namespace {
// What `parser` read, as far as it got: the head once a response started, and the body so far.
void read_into(Response& out, http::ResponseParser& parser, const http::Body& body) {
  http::ResponseHead& head = parser.head();
  if (parser.started() || parser.head_complete()) {
    out.status = head.status;
    out.version_minor = head.version_minor;
    out.reason = head.reason;
    out.headers = head.headers;
    out.upgrade = head.upgrade;
  }
  out.body = body.to_string();
}
}  // namespace

Response Client::read_response(std::string_view method) {
  Response out;
  if (fd_ < 0) return out;
  http::ResponseParser parser;
  // A test that reads a 101 asked for an upgrade; no other request gets one from a sane server.
  parser.expect_response(method == "HEAD", true);
  http::Body body;
  parser.set_body_sink(&body);
  parser.set_interim_sink(&out.interims);

  std::string data = std::move(pending_);
  pending_.clear();
  size_t pos = 0;
  char buf[64 * 1024];
  for (;;) {
    // Feed what we have; an empty feed is never needed because the parser only pauses at the end
    // of a message (after which we stop).
    bool done = false;
    while (pos < data.size() && !done) {
      http::ParseResult r = parser.feed(std::string_view(data).substr(pos));
      pos += r.consumed;
      if (r.event == http::ParseEvent::kMessage) {
        out.complete = true;
        done = true;
      } else if (r.event == http::ParseEvent::kError) {
        done = true;
      } else if (r.consumed == 0) {
        done = true;  // cannot happen with a sane parser; do not spin
      }
    }
    if (done) break;
    data.clear();
    pos = 0;
    ssize_t n;
    do {
      n = ::recv(fd_, buf, sizeof buf, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      data.assign(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0 && parser.finish() == http::ParseEvent::kMessage) out.complete = true;
    break;  // closed, reset or timed out
  }
  if (pos < data.size()) pending_.assign(data, pos, std::string::npos);
  read_into(out, parser, body);
  return out;
}

std::string Client::read_some(size_t n) {
  if (!pending_.empty()) {
    std::string out = pending_.substr(0, n);
    pending_.erase(0, out.size());
    return out;
  }
  if (fd_ < 0 || n == 0) return {};
  std::string out(n, '\0');
  ssize_t got;
  do {
    got = ::recv(fd_, out.data(), n, 0);
  } while (got < 0 && errno == EINTR);
  out.resize(got > 0 ? static_cast<size_t>(got) : 0);
  return out;
}

std::string Client::read_exact(size_t n) {
  std::string out;
  while (out.size() < n) {
    std::string part = read_some(n - out.size());
    if (part.empty()) break;
    out += part;
  }
  return out;
}

bool Client::wait_closed() {
  pending_.clear();
  if (fd_ < 0) return true;
  char buf[16 * 1024];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) continue;
    if (n == 0) return true;
    if (errno == EINTR) continue;
    return errno == ECONNRESET || errno == EPIPE;  // EAGAIN: the receive time-out passed
  }
}

// ---- WebSocket ----

std::string ws_handshake(const std::string& host, const std::string& target) {
  std::string out = "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n";
  out += "Upgrade: websocket\r\nConnection: Upgrade\r\n";
  out += "Sec-WebSocket-Key: ";
  out += kWsKey;
  out += "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  return out;
}

std::string ws_frame(uint8_t opcode, std::string_view payload, bool fin, bool masked) {
  static constexpr unsigned char kMask[4] = {0x37, 0xfa, 0x21, 0x3d};
  std::string out;
  out.push_back(static_cast<char>((fin ? 0x80 : 0) | (opcode & 0x0f)));
  const unsigned char mask_bit = masked ? 0x80 : 0;
  const uint64_t length = payload.size();
  if (length <= 125) {
    out.push_back(static_cast<char>(mask_bit | length));
  } else if (length <= 0xffff) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(length >> 8));
    out.push_back(static_cast<char>(length & 0xff));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((length >> shift) & 0xff));
  }
  if (!masked) return out.append(payload);
  out.append(reinterpret_cast<const char*>(kMask), 4);
  for (size_t i = 0; i < payload.size(); ++i) out.push_back(static_cast<char>(payload[i] ^ kMask[i % 4]));
  return out;
}

std::optional<WsFrame> read_ws_frame(Client& client) {
  const std::string start = client.read_exact(2);
  if (start.size() < 2) return std::nullopt;
  WsFrame frame;
  const auto b0 = static_cast<unsigned char>(start[0]);
  const auto b1 = static_cast<unsigned char>(start[1]);
  frame.fin = (b0 & 0x80) != 0;
  frame.opcode = static_cast<uint8_t>(b0 & 0x0f);
  frame.masked = (b1 & 0x80) != 0;
  uint64_t length = b1 & 0x7f;
  if (length >= 126) {
    const size_t size = length == 126 ? 2 : 8;
    const std::string extended = client.read_exact(size);
    if (extended.size() < size) return std::nullopt;
    length = 0;
    for (char c : extended) length = (length << 8) | static_cast<unsigned char>(c);
  }
  if (length > (1ull << 30)) return std::nullopt;
  std::string mask;
  if (frame.masked) {
    mask = client.read_exact(4);
    if (mask.size() < 4) return std::nullopt;
  }
  frame.payload = client.read_exact(static_cast<size_t>(length));
  if (frame.payload.size() < length) return std::nullopt;
  if (frame.masked)
    for (size_t i = 0; i < frame.payload.size(); ++i) frame.payload[i] = static_cast<char>(frame.payload[i] ^ mask[i % 4]);
  return frame;
}

// ---- one-shot helpers ----

Response get(uint16_t port, const std::string& host, const std::string& target) {
  return exchange(port, http::simple_request("GET", target, host), "GET");
}

Response exchange(uint16_t port, std::string_view raw, std::string_view method) {
  // Writes to a server that has already answered and closed must fail, not end the test.
  static const bool sigpipe_ignored = ::signal(SIGPIPE, SIG_IGN) != SIG_ERR;
  (void)sigpipe_ignored;
  const sockaddr_in address = loopback(port);
  http::OneShot::Options options;
  options.head_request = method == "HEAD";
  options.timeout_ms = 30000;
  Response out;
  http::OneShot::run(reinterpret_cast<const sockaddr*>(&address), std::string(raw), options,
                     [&out](const http::OneShot::Outcome& outcome) {
                       read_into(out, outcome.parser, outcome.body);
                       out.complete = outcome.failure == http::OneShot::Failure::kNone;
                     });
  return out;
}

struct RecordingBackend::State {
  std::mutex mutex;
  std::vector<std::string> requests;
  std::map<std::string, std::string> once;
  std::vector<std::thread> connections;
  std::vector<int> fds;
  std::atomic<bool> stopping{false};
};

RecordingBackend::RecordingBackend() : state_(new State) {
  listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener_, 128) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("recording backend: cannot listen");
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

RecordingBackend::~RecordingBackend() {
  state_->stopping = true;
  ::shutdown(listener_, SHUT_RDWR);
  acceptor_.join();
  ::close(listener_);
  {
    std::lock_guard lock(state_->mutex);
    for (int fd : state_->fds) ::shutdown(fd, SHUT_RDWR);
  }
  for (std::thread& t : state_->connections) t.join();
  for (int fd : state_->fds) ::close(fd);
  delete state_;
}

std::vector<std::string> RecordingBackend::requests() {
  std::lock_guard lock(state_->mutex);
  return state_->requests;
}

void RecordingBackend::clear() {
  std::lock_guard lock(state_->mutex);
  state_->requests.clear();
}

void RecordingBackend::answer_once(const std::string& target, std::string raw) {
  std::lock_guard lock(state_->mutex);
  state_->once[target] = std::move(raw);
}

void RecordingBackend::accept_loop() {
  while (!state_->stopping) {
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    int fd = ::accept(listener_, nullptr, nullptr);
    if (fd < 0) continue;
    std::lock_guard lock(state_->mutex);
    state_->fds.push_back(fd);
    state_->connections.emplace_back([this, fd] { serve(fd); });
  }
}

namespace {
// The value of a field in a raw head, found the simple way ("" when absent).
std::string raw_field(const std::string& head, std::string_view name) {
  std::string lower_head = head;
  for (char& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string needle = "\r\n" + std::string(name) + ":";
  for (char& c : needle) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t at = lower_head.find(needle);
  if (at == std::string::npos) return "";
  size_t start = at + needle.size();
  size_t end = head.find("\r\n", start);
  std::string value = head.substr(start, end - start);
  while (!value.empty() && value.front() == ' ') value.erase(0, 1);
  while (!value.empty() && value.back() == ' ') value.pop_back();
  return value;
}
}  // namespace

void RecordingBackend::serve(int fd) {
  std::string buffer;
  char chunk[16384];
  auto fill = [&]() {
    while (!state_->stopping) {
      pollfd p{fd, POLLIN, 0};
      int ready = ::poll(&p, 1, 100);
      if (ready == 0) continue;
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<size_t>(n));
      return true;
    }
    return false;
  };
  for (;;) {
    size_t head_end;
    while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return;
    const std::string head = buffer.substr(0, head_end + 4);
    const std::string length_text = raw_field(head, "content-length");
    const size_t length = length_text.empty() ? 0 : std::stoul(length_text);
    while (buffer.size() < head.size() + length)
      if (!fill()) return;
    std::string request = buffer.substr(0, head.size() + length);
    buffer.erase(0, request.size());
    const size_t sp1 = head.find(' ');
    const size_t sp2 = head.find(' ', sp1 + 1);
    const std::string target = head.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string answer;
    bool close_after = false;
    {
      std::lock_guard lock(state_->mutex);
      state_->requests.push_back(std::move(request));
      auto it = state_->once.find(target);
      if (it != state_->once.end()) {
        answer = std::move(it->second);
        state_->once.erase(it);
        close_after = true;
      }
    }
    if (!close_after) {
      std::string body = target + " host=" + raw_field(head, "host") + " xfh=" + raw_field(head, "x-forwarded-host");
      const bool vary = target.find("/vary/") != std::string::npos;
      if (vary) body += " xvar=" + raw_field(head, "x-var");
      answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: " +
               std::string(target.find("/cached/") != std::string::npos ? "max-age=60" : "no-store") +
               (vary ? "\r\nVary: X-Var" : "") + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
               body;
    }
    size_t sent = 0;
    while (sent < answer.size()) {
      ssize_t n = ::write(fd, answer.data() + sent, answer.size() - sent);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
    if (close_after) {
      ::shutdown(fd, SHUT_WR);
      return;
    }
  }
}

namespace {
// memcached binds an ephemeral port for `-p -1` and writes "TCP INET: <port>" to the file named
// by MEMCACHED_PORT_FILENAME (written aside and renamed, so a file that exists is whole). Run as
// root it drops to nobody before writing, so the directory must be writable by anyone.
std::vector<std::string> memcached_args(const TempDir& dir) {
  std::filesystem::permissions(dir.path(), std::filesystem::perms::all);
  return {"MEMCACHED_PORT_FILENAME=" + dir.path() + "/ports", "/usr/bin/memcached", "-l", "127.0.0.1", "-p", "-1",
          "-U", "0", "-u", "nobody", "-m", "64"};
}
}  // namespace

MemcachedServer::MemcachedServer() : process("/usr/bin/env", memcached_args(dir)) {
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (;;) {
    std::ifstream in(dir.path() + "/ports");
    std::string line;
    while (std::getline(in, line)) {
      if (!line.starts_with("TCP INET: ")) continue;
      port = static_cast<uint16_t>(std::atoi(line.c_str() + 10));
      if (port != 0 && wait_for_port(port)) return;
    }
    if (!process.running() || Clock::now() >= deadline)
      throw std::runtime_error("memcached did not report its port: " + process.output());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string memcached_command(uint16_t port, const std::string& command, const std::string& terminator) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, command.data(), command.size()) == static_cast<ssize_t>(command.size())) {
    char buffer[4096];
    while (answer.find(terminator) == std::string::npos) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n <= 0) break;
      answer.append(buffer, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return answer;
}

long memcached_stat(uint16_t port, const std::string& name) {
  const std::string answer = memcached_command(port, "stats\r\n", "END\r\n");
  const std::string prefix = "STAT " + name + " ";
  const size_t at = answer.find(prefix);
  if (at == std::string::npos) throw std::runtime_error("no " + name + " in memcached's stats");
  return std::stol(answer.substr(at + prefix.size()));
}

namespace {
// The bin directory of the newest PostgreSQL under Debian's /usr/lib/postgresql/<version>.
std::string postgres_bin_dir() {
  std::string best;
  long best_version = -1;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    char* end = nullptr;
    const long version = std::strtol(name.c_str(), &end, 10);
    if (end == name.c_str() || version <= best_version) continue;
    if (!std::filesystem::exists(entry.path() / "bin" / "postgres", ec)) continue;
    best_version = version;
    best = (entry.path() / "bin").string();
  }
  if (best.empty()) throw std::runtime_error("no PostgreSQL server under /usr/lib/postgresql (package postgresql)");
  return best;
}

// A PostgreSQL program as a Process: as the postgres system user when the test runs as root.
std::unique_ptr<Process> start_postgres_program(const std::string& binary, const std::vector<std::string>& args) {
  if (::geteuid() != 0) return std::make_unique<Process>(binary, args);
  std::vector<std::string> wrapped = {"--reuid=postgres", "--regid=postgres", "--init-groups", "--pdeathsig", "keep",
                                      "--", binary};
  wrapped.insert(wrapped.end(), args.begin(), args.end());
  return std::make_unique<Process>("/usr/bin/setpriv", wrapped);
}
}  // namespace

PostgresServer::PostgresServer() {
  if (::geteuid() == 0) {
    const passwd* user = ::getpwnam("postgres");
    if (!user) throw std::runtime_error("running as root, and there is no postgres user to run PostgreSQL as");
    if (::chown(dir.path().c_str(), user->pw_uid, user->pw_gid) != 0)
      throw std::runtime_error("chown " + dir.path() + ": " + std::strerror(errno));
  }
  auto initdb = start_postgres_program(postgres_bin_dir() + "/initdb",
                                       {"-D", dir.path() + "/data", "-U", "edge", "--auth=trust", "--no-sync",
                                        "--encoding=UTF8", "--locale=C"});
  if (initdb->wait(std::chrono::seconds(120)) != 0) throw std::runtime_error("initdb failed: " + initdb->output());
  for (int tries = 0; tries < 5; ++tries) {
    port = free_port();
    if (launch()) return;
  }
  throw std::runtime_error("postgres found no free port to listen on");
}

PostgresServer::~PostgresServer() { stop(); }

void PostgresServer::stop() {
  if (!process) return;
  process->kill(SIGINT);
  process->wait(std::chrono::seconds(30));
  process.reset();  // SIGTERM, then SIGKILL, if it still runs
}

void PostgresServer::start() {
  if (process) return;
  if (!launch()) throw std::runtime_error("postgres cannot listen on its port " + std::to_string(port) + " again");
}

std::string PostgresServer::uri(const std::string& database) const {
  return "postgresql://edge@127.0.0.1:" + std::to_string(port) + "/" + database;
}

bool PostgresServer::launch() {
  process = start_postgres_program(postgres_bin_dir() + "/postgres",
                                   {"-D", dir.path() + "/data", "-k", dir.path(), "-h", "127.0.0.1", "-p",
                                    std::to_string(port), "-c", "fsync=off", "-c", "synchronous_commit=off", "-c",
                                    "full_page_writes=off"});
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  for (;;) {
    // Printed once the listening sockets are open and recovery (after a restart) is done.
    if (process->output().find("database system is ready to accept connections") != std::string::npos) return true;
    if (!process->running()) {
      const std::string output = process->output();  // all of it, now that it has exited
      process.reset();
      if (output.find("could not create any TCP/IP sockets") != std::string::npos) return false;
      throw std::runtime_error("postgres exited while starting: " + output);
    }
    if (Clock::now() >= deadline) throw std::runtime_error("postgres not ready after 60 s: " + process->output());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Response admin_request(uint16_t port, const std::string& token, const std::string& method, const std::string& target) {
  return exchange(port,
                  method + " " + target + " HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " + token +
                      "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                  method);
}

Response demo_request(uint16_t port, std::string_view method, const std::string& target, const std::string& extra,
                      const std::string& form) {
  std::string raw = std::string(method) + " " + target + " HTTP/1.1\r\nHost: books.test\r\n" + extra;
  if (method == "POST")
    raw += "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + std::to_string(form.size()) + "\r\n";
  raw += "Connection: close\r\n\r\n" + form;
  return exchange(port, raw, method);
}

std::string demo_login(uint16_t port, const std::string& user) {
  Response r = demo_request(port, "POST", "/login", "", "user=" + user);
  const std::string set_cookie(r.header("Set-Cookie").value_or(""));
  if (r.status != 303 || set_cookie.rfind("session=", 0) != 0)
    throw std::runtime_error("login as " + user + " refused: " + std::to_string(r.status));
  return set_cookie.substr(0, set_cookie.find(';'));
}

}  // namespace edge::testkit
