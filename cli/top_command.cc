#include "cli/top_command.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>

#include "cli/top_view.h"
#include "conf/config.h"
#include "http/oneshot.h"

namespace edge::cli {

namespace {

constexpr uint64_t kRequestTimeoutMs = 3000;
// An answer of 1000 rows of long URLs stays well under this; a larger one is not GET /top's.
constexpr uint64_t kMaxAnswerBytes = 8 * 1024 * 1024;
constexpr size_t kMaxTokenBytes = 64 * 1024;  // as the configuration loader reads admin.token_file
constexpr size_t kMostRows = 1000;            // GET /top's own limit on n

bool parse_count(const std::string& text, size_t& out) {
  if (text.empty() || text.size() > 6) return false;
  size_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<size_t>(c - '0');
  }
  out = value;
  return true;
}

bool parse_interval(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(value)) return false;
  if (value < 0.1 || value > 3600) return false;
  out = value;
  return true;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if ((byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') || (byte >= '0' && byte <= '9') || byte == '-' ||
        byte == '.' || byte == '_' || byte == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xF]);
    }
  }
  return out;
}

// The token file's content trimmed of ASCII white space, as the configuration loader reads
// admin.token_file; nullopt with `error` when it cannot be a bearer token.
std::optional<std::string> read_token(const std::string& path, std::string& error) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    error = "cannot read token file '" + path + "': " + std::strerror(errno);
    return std::nullopt;
  }
  std::string content(kMaxTokenBytes + 1, '\0');
  file.read(content.data(), static_cast<std::streamsize>(content.size()));
  content.resize(static_cast<size_t>(file.gcount()));
  if (content.size() > kMaxTokenBytes) {
    error = "token file '" + path + "' is larger than " + std::to_string(kMaxTokenBytes) + " bytes";
    return std::nullopt;
  }
  constexpr std::string_view space = " \t\r\n\v\f";
  const size_t first = content.find_first_not_of(space);
  if (first == std::string::npos) {
    error = "token file '" + path + "' is empty";
    return std::nullopt;
  }
  std::string token = content.substr(first, content.find_last_not_of(space) - first + 1);
  // It goes into a header line: a control character there would end the line or forge another.
  for (char c : token) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      error = "token file '" + path + "' holds a control character";
      return std::nullopt;
    }
  }
  return token;
}

struct Fetched {
  std::optional<TopAnswer> answer;
  std::string error;  // why there is none
};

std::string describe_failure(const http::OneShot::Outcome& outcome) {
  using Failure = http::OneShot::Failure;
  switch (outcome.failure) {
    case Failure::kNone: return "";
    case Failure::kConnect: return std::string("cannot connect: ") + outcome.detail;
    case Failure::kWrite: return std::string("cannot send the request: ") + outcome.detail;
    case Failure::kRead: return std::string("cannot read the answer: ") + outcome.detail;
    case Failure::kClosed: return "the port closed the connection without answering";
    case Failure::kTruncated: return "the answer was cut short";
    case Failure::kBadResponse: return std::string("not an HTTP answer: ") + outcome.detail;
    case Failure::kTooLarge: return "the answer is too large";
    case Failure::kTimeout: return "no answer within " + std::to_string(kRequestTimeoutMs / 1000) + " s";
  }
  return "";
}

class AdminPort {
 public:
  AdminPort(const conf::Address& address, std::string token)
      : address_(address.to_sockaddr()), authority_(address.text()), token_(std::move(token)) {}

  Fetched fetch(const top::Query& query) const {
    Fetched fetched;
    http::OneShot::Options options;
    options.timeout_ms = kRequestTimeoutMs;
    options.max_body_bytes = kMaxAnswerBytes;
    std::string request =
        http::simple_request("GET", top_target(query), authority_, "Authorization: Bearer " + token_ + "\r\n");
    http::OneShot::run(reinterpret_cast<const sockaddr*>(&address_), std::move(request), options,
                       [&fetched](const http::OneShot::Outcome& outcome) {
                         if (outcome.failure != http::OneShot::Failure::kNone) {
                           fetched.error = describe_failure(outcome);
                           return;
                         }
                         const http::ResponseHead& head = outcome.parser.head();
                         const std::string body = outcome.body.to_string();
                         if (head.status == 200) {
                           std::string error;
                           fetched.answer = parse_top_answer(body, error);
                           if (!fetched.answer) fetched.error = "a bad answer: " + error;
                           return;
                         }
                         fetched.error = std::to_string(head.status) + " " + head.reason;
                         if (head.status == 401) fetched.error.append(": the admin port refused the token");
                         // The port's own reason ({"error": "..."}), short enough for one line.
                         std::string_view said = body;
                         while (!said.empty() && (said.back() == '\n' || said.back() == '\r')) said.remove_suffix(1);
                         if (!said.empty()) fetched.error.append(": ").append(said.substr(0, 200));
                       });
    return fetched;
  }

 private:
  sockaddr_storage address_;
  std::string authority_;
  std::string token_;
};

std::string utc_clock() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%H:%M:%S UTC", &parts);
  return text;
}

struct TerminalSize {
  size_t columns = 80;
  size_t rows = 24;
};

std::optional<TerminalSize> terminal_size(int fd) {
  winsize size{};
  if (ioctl(fd, TIOCGWINSZ, &size) != 0 || size.ws_col == 0 || size.ws_row == 0) return std::nullopt;
  return TerminalSize{size.ws_col, size.ws_row};
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(written));
  }
  return true;
}

// What the signal handlers tell the loop; the pipe wakes its poll().
volatile sig_atomic_t g_quit_signal = 0;
volatile sig_atomic_t g_resized = 0;
int g_wake_pipe[2] = {-1, -1};

extern "C" void on_signal(int signal) {
  const int saved_errno = errno;
  if (signal == SIGWINCH) g_resized = 1;
  else g_quit_signal = signal;
  if (g_wake_pipe[1] >= 0) {
    const ssize_t ignored = ::write(g_wake_pipe[1], "x", 1);
    (void)ignored;
  }
  errno = saved_errno;
}

// The terminal as the view needs it (cbreak, no echo, the alternate screen, no cursor) while
// the object lives, and as it was once it is gone, however the view ends.
class TerminalSession {
 public:
  TerminalSession() {
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios cbreak = saved_;
      // ISIG stays: Ctrl-C is a SIGINT, which ends the view as `q` does.
      cbreak.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
      // No suspend key: a stopped view would leave the shell in cbreak mode and the alternate screen.
      cbreak.c_cc[VSUSP] = _POSIX_VDISABLE;
      cbreak.c_cc[VMIN] = 1;
      cbreak.c_cc[VTIME] = 0;
      modes_changed_ = tcsetattr(STDIN_FILENO, TCSANOW, &cbreak) == 0;
    }
    write_all(STDOUT_FILENO, "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");
  }
  ~TerminalSession() {
    write_all(STDOUT_FILENO, "\x1b[?25h\x1b[?1049l");
    if (modes_changed_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  TerminalSession(const TerminalSession&) = delete;
  TerminalSession& operator=(const TerminalSession&) = delete;

 private:
  termios saved_{};
  bool modes_changed_ = false;
};

class SignalHandlers {
 public:
  SignalHandlers() {
    if (pipe2(g_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) g_wake_pipe[0] = g_wake_pipe[1] = -1;
    struct sigaction action{};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (int signal : kSignals) sigaction(signal, &action, nullptr);
  }
  ~SignalHandlers() {
    struct sigaction action{};
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    for (int signal : kSignals) sigaction(signal, &action, nullptr);
    for (int& fd : g_wake_pipe) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }
  SignalHandlers(const SignalHandlers&) = delete;
  SignalHandlers& operator=(const SignalHandlers&) = delete;

  void drain() const {
    char bytes[64];
    while (g_wake_pipe[0] >= 0 && ::read(g_wake_pipe[0], bytes, sizeof bytes) > 0) {
    }
  }

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};
};

top::Window next_window(top::Window window) {
  switch (window) {
    case top::Window::k10s: return top::Window::k1m;
    case top::Window::k1m: return top::Window::k10m;
    case top::Window::k10m: return top::Window::k1h;
    case top::Window::k1h: return top::Window::k10s;
  }
  return top::Window::k1m;
}

top::By next_by(top::By by) { return static_cast<top::By>((static_cast<size_t>(by) + 1) % top::kByCount); }

size_t more_rows(size_t n) { return std::min(kMostRows, n < 5 ? n + 1 : n + 5); }
size_t fewer_rows(size_t n) { return n <= 5 ? std::max<size_t>(1, n - 1) : n - 5; }

void draw(const Screen& screen) {
  const TerminalSize size = terminal_size(STDOUT_FILENO).value_or(TerminalSize{});
  // One column short of the edge: a character in the last column leaves some terminals waiting
  // to wrap, and the erase that follows would then take that character too.
  const size_t width = size.columns > 1 ? size.columns - 1 : 1;
  const std::vector<std::string> lines = render_screen(screen, width, size.rows, true);
  std::string frame = "\x1b[H";
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) frame.append("\r\n");
    frame.append(lines[i]).append("\x1b[K");
  }
  frame.append("\x1b[J");
  write_all(STDOUT_FILENO, frame);
}

int run_live(const TopOptions& options, const AdminPort& port) {
  SignalHandlers handlers;
  TerminalSession terminal;
  Screen screen;
  screen.admin = options.admin;
  screen.query = options.query;
  const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(options.interval_seconds));
  auto next_fetch = std::chrono::steady_clock::now();
  bool keys_open = isatty(STDIN_FILENO);
  bool quit = false;
  while (!quit && g_quit_signal == 0) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_fetch) {
      Fetched fetched = port.fetch(screen.query);
      if (fetched.answer) {
        screen.answer = std::move(fetched.answer);
        screen.connection = Connection::kOk;
        screen.status.clear();
      } else {
        screen.connection = Connection::kFailing;
        char every[64];
        std::snprintf(every, sizeof every, " (asking again every %g s)", options.interval_seconds);
        screen.status = fetched.error + every;
      }
      next_fetch = std::chrono::steady_clock::now() + interval;
    }
    g_resized = 0;
    screen.clock = utc_clock();
    draw(screen);

    pollfd fds[2] = {{g_wake_pipe[0], POLLIN, 0}, {keys_open ? STDIN_FILENO : -1, POLLIN, 0}};
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_fetch - std::chrono::steady_clock::now());
    const int ready = poll(fds, 2, static_cast<int>(std::max<int64_t>(0, wait.count())));
    if (ready <= 0) continue;
    if (fds[0].revents != 0) handlers.drain();
    if (fds[1].revents == 0) continue;
    char keys[64];
    const ssize_t got = ::read(STDIN_FILENO, keys, sizeof keys);
    if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
      keys_open = false;  // no more keys; the view goes on until a signal
      continue;
    }
    for (ssize_t i = 0; i < got; ++i) {
      const top::Query before = screen.query;
      switch (keys[i]) {
        case 'q': case 'Q': quit = true; break;
        case 'w': screen.query.window = next_window(screen.query.window); break;
        case 'b': screen.query.by = next_by(screen.query.by); break;
        case '+': case '=': screen.query.n = more_rows(screen.query.n); break;
        case '-': case '_': screen.query.n = fewer_rows(screen.query.n); break;
        default: break;
      }
      if (screen.query.window != before.window || screen.query.by != before.by || screen.query.n != before.n)
        next_fetch = std::chrono::steady_clock::now();  // asked again at once, in the new terms
    }
  }
  return 0;
}

int run_once(const TopOptions& options, const AdminPort& port) {
  Fetched fetched = port.fetch(options.query);
  if (!fetched.answer) {
    std::fprintf(stderr, "edge top: %s: %s\n", escape_for_terminal(options.admin).c_str(),
                 escape_for_terminal(fetched.error).c_str());
    return 1;
  }
  Screen screen;
  screen.admin = options.admin;
  screen.query = options.query;
  screen.answer = std::move(fetched.answer);
  screen.connection = Connection::kOk;
  screen.clock = utc_clock();
  size_t width = std::numeric_limits<size_t>::max();
  if (isatty(STDOUT_FILENO)) {
    if (auto size = terminal_size(STDOUT_FILENO)) width = size->columns;
  }
  std::string text;
  for (const std::string& line : render_screen(screen, width, std::numeric_limits<size_t>::max(), false))
    text.append(line).push_back('\n');
  return write_all(STDOUT_FILENO, text) ? 0 : 1;
}

}  // namespace

const char* top_usage() {
  return "usage: edge top --admin HOST:PORT --token-file FILE [--window 10s|1m|10m|1h]\n"
         "                [--by requests|bytes|misses|backend_time] [--host H] [-n N]\n"
         "                [--interval SECONDS] [--once]\n"
         "\n"
         "The heaviest URLs of a time window, from the admin port's GET /top, live in the\n"
         "terminal and refreshed in place.\n"
         "\n"
         "  --admin HOST:PORT   the admin port (admin.address)\n"
         "  --token-file FILE   a file holding its token (admin.token_file)\n"
         "  --window W          10s, 1m (default), 10m or 1h\n"
         "  --by WEIGHT         requests (default), bytes, misses or backend_time (microseconds)\n"
         "  --host H            one host's URLs only\n"
         "  -n N                how many URLs, 1 to 1000 (default 20)\n"
         "  --interval SECONDS  between refreshes, 0.1 to 3600 (default 1)\n"
         "  --once              print one snapshot as text and exit (also when stdout is not a\n"
         "                      terminal): 0 on success, 1 with the reason on stderr\n"
         "\n"
         "Keys: q quit, w next window, b next weight, + more rows, - fewer rows.\n";
}

std::string top_target(const top::Query& query) {
  std::string target = "/top?window=";
  target.append(window_name(query.window)).append("&by=").append(by_name(query.by));
  target.append("&n=").append(std::to_string(query.n));
  if (!query.host.empty()) target.append("&host=").append(percent_encode(query.host));
  return target;
}

std::optional<TopOptions> parse_top_options(const std::vector<std::string>& args, std::string& error) {
  TopOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::optional<std::string> value;
    if (const size_t equals = name.find('='); name.starts_with("--") && equals != std::string::npos) {
      value = name.substr(equals + 1);
      name.resize(equals);
    }
    if (name == "--help" || name == "-h") {
      error.clear();
      return std::nullopt;
    }
    if (name == "--once" && !value) {
      options.once = true;
      continue;
    }
    const bool takes_value = name == "--admin" || name == "--token-file" || name == "--window" || name == "--by" ||
                             name == "--host" || name == "-n" || name == "--interval";
    if (!takes_value) {
      error = "unknown argument '" + escape_for_terminal(args[i]) + "'";
      return std::nullopt;
    }
    if (!value) {
      if (i + 1 >= args.size()) {
        error = name + " needs a value";
        return std::nullopt;
      }
      value = args[++i];
    }
    bool ok = true;
    if (name == "--admin") {
      options.admin = *value;
      const std::optional<conf::Address> address = conf::parse_address(*value);
      ok = address && address->port != 0;
    } else if (name == "--token-file") {
      options.token_file = *value;
      ok = !value->empty();
    } else if (name == "--window") {
      ok = top::parse_window(*value, options.query.window);
    } else if (name == "--by") {
      ok = top::parse_by(*value, options.query.by);
    } else if (name == "--host") {
      options.query.host = *value;
      ok = !value->empty();
    } else if (name == "-n") {
      ok = parse_count(*value, options.query.n) && options.query.n >= 1 && options.query.n <= kMostRows;
    } else if (name == "--interval") {
      ok = parse_interval(*value, options.interval_seconds);
    }
    if (!ok) {
      error = "bad value for " + name + ": '" + escape_for_terminal(*value) + "'";
      return std::nullopt;
    }
  }
  if (options.admin.empty()) {
    error = "--admin HOST:PORT is required";
    return std::nullopt;
  }
  if (options.token_file.empty()) {
    error = "--token-file FILE is required";
    return std::nullopt;
  }
  return options;
}

int run_top(int argc, char** argv) {
  std::vector<std::string> args(argv + 2, argv + argc);
  std::string error;
  std::optional<TopOptions> options = parse_top_options(args, error);
  if (!options) {
    if (error.empty()) {
      std::fputs(top_usage(), stdout);
      return 0;
    }
    std::fprintf(stderr, "edge top: %s\n%s", error.c_str(), top_usage());
    return 2;
  }
  std::optional<std::string> token = read_token(options->token_file, error);
  if (!token) {
    std::fprintf(stderr, "edge top: %s\n", escape_for_terminal(error).c_str());
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  const AdminPort port(*conf::parse_address(options->admin), std::move(*token));
  if (options->once || !isatty(STDOUT_FILENO)) return run_once(*options, port);
  return run_live(*options, port);
}

}  // namespace edge::cli
