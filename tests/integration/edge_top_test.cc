// `edge top`: GET /top watched from the command line, as a snapshot (--once) and live in a
// terminal (under a tmux server of the test's own, whose screen the test reads back).
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

constexpr const char* kToken = "edge-top-test-token";

struct Ran {
  int code = -1;
  std::string output;  // stdout and stderr together
};

// A command run to its end (bounded), through env so it is found on PATH.
Ran run(const std::vector<std::string>& args) {
  std::vector<std::string> with_env = {"-u", "TMUX"};
  with_env.insert(with_env.end(), args.begin(), args.end());
  Process process("/usr/bin/env", with_env);
  Ran ran;
  ran.code = process.wait(std::chrono::seconds(30)).value_or(-1);
  ran.output = process.output();
  return ran;
}

Ran edge_top(const std::vector<std::string>& args) {
  std::vector<std::string> all = {std::filesystem::absolute(edge_bin()).string(), "top"};
  all.insert(all.end(), args.begin(), args.end());
  return run(all);
}

// The line of `text` that starts with `prefix`, or "".
std::string line_starting(const std::string& text, const std::string& prefix) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    if (line.starts_with(prefix)) return line;
    start = end + 1;
  }
  return "";
}

// The columns a line of UTF-8 takes.
size_t columns(const std::string& line) {
  size_t count = 0;
  for (char c : line)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  return count;
}

// The single-quoted shell word for `text`.
std::string shell_word(const std::string& text) {
  std::string word = "'";
  for (char c : text) {
    if (c == '\'') word.append("'\\''");
    else word.push_back(c);
  }
  return word + "'";
}

// `edge top` in a tmux server on a socket of the test's own: nothing else's sessions are seen or
// touched, and the server is killed with the object. The pane runs a shell that writes the
// program's pid, runs it and writes its exit status to files in `dir`: the test reads them there
// rather than from tmux, which may mark a pane dead before it has reaped its process.
class Tmux {
 public:
  Tmux(const TempDir& dir, const std::vector<std::string>& top_args, int width, int height)
      : socket_(dir.path() + "/tmux.sock"), pid_file_(dir.path() + "/top.pid"), exit_file_(dir.path() + "/top.exit") {
    std::string top = "exec " + shell_word(std::filesystem::absolute(edge_bin()).string()) + " top";
    for (const std::string& arg : top_args) top.append(" ").append(shell_word(arg));
    const std::string pane = "sh -c " + shell_word("echo $$ > " + shell_word(pid_file_) + "; " + top) +
                             "; echo $? > " + shell_word(exit_file_ + ".part") + "; mv " + shell_word(exit_file_ + ".part") +
                             " " + shell_word(exit_file_);
    started_ = command({"new-session", "-d", "-s", "top", "-x", std::to_string(width), "-y", std::to_string(height),
                        pane});
    // Kept once the program exits, so the test can read the screen it leaves.
    if (started_.code == 0) command({"set-option", "-t", "top", "remain-on-exit", "on"});
    else started_.output += "\n(tmux needs pseudo-terminals: is devpts mounted on /dev/pts?)";
  }
  ~Tmux() { run({"tmux", "-S", socket_, "kill-server"}); }
  Tmux(const Tmux&) = delete;
  Tmux& operator=(const Tmux&) = delete;

  const Ran& started() const { return started_; }
  Ran command(std::vector<std::string> args) const {
    args.insert(args.begin(), {"tmux", "-S", socket_, "-f", "/dev/null"});
    return run(args);
  }
  std::string screen() const { return command({"capture-pane", "-p", "-t", "top"}).output; }
  // Polls the screen until `wanted` holds (at most 20 s); the last screen read.
  template <typename Wanted>
  std::string wait_for_screen(Wanted wanted) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::string text = screen();
    while (!wanted(text) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      text = screen();
    }
    return text;
  }
  // The program's pid, once the pane's shell has written it; 0 if it has not within 20 s.
  pid_t pid() const {
    const std::string text = wait_for_file(pid_file_);
    return text.empty() ? 0 : static_cast<pid_t>(std::stol(text));
  }
  // How the program ended ("exit 0"; a signal as the shell says it: "exit 143" for SIGTERM), or
  // "running" if it has not within 20 s.
  std::string wait_for_exit() const {
    const std::string text = wait_for_file(exit_file_);
    return text.empty() ? "running" : "exit " + text.substr(0, text.find('\n'));
  }

 private:
  static std::string wait_for_file(const std::string& path) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream file(path);
      std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
      if (text.ends_with('\n')) return text;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "";
  }

  std::string socket_;
  std::string pid_file_;
  std::string exit_file_;
  Ran started_;
};

struct Site {
  RecordingBackend origin;
  TempDir secrets;
  std::string token_file = secrets.write("admin.token", std::string(kToken) + "\n");
  std::string wrong_token_file = secrets.write("wrong.token", "not-the-token\n");
  Edge edge{"listen: [{address: \"127.0.0.1:{{port}}\"}]\nadmin: {address: \"127.0.0.1:0\", token_file: \"" +
            token_file + "\"}\nbackends:\n  app: {servers: [" + yaml_address(origin.port()) +
            "]}\nhosts:\n  - {match: [\"*\"], backend: app}\n"};
  std::string admin = "127.0.0.1:" + std::to_string(edge.admin_port);

  // 30 requests to /hot, 5 to /warm and one whose target carries an escape sequence, encoded
  // (edge refuses a raw control byte or any byte from 0x80 in a target with a 400, and does not
  // rank it: the hostile bytes themselves reach `edge top` only from a hostile port, below).
  void send_traffic() {
    for (int i = 0; i < 30; ++i) REQUIRE(get(edge.port, "site.test", "/hot").status == 200);
    for (int i = 0; i < 5; ++i) REQUIRE(get(edge.port, "site.test", "/warm").status == 200);
    REQUIRE(get(edge.port, "site.test", "/evil%1B[2J").status == 200);
    for (const char* raw : {"/evil\x1b[2J", "/evil\xc2\x9b" "2J", "/evil\x9b" "2J"})
      REQUIRE(get(edge.port, "site.test", raw).status == 400);
  }
};

// An answer the test's own server gives once, in place of an admin port.
std::string raw_answer(const std::string& status, const std::string& body) {
  return "HTTP/1.1 " + status + "\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

}  // namespace

TEST_CASE("edge top --once: the ranking as text, the hostile bytes escaped, the failures said") {
  Site site;
  site.send_traffic();
  Ran ran = edge_top({"--admin", site.admin, "--token-file", site.token_file, "--once"});
  CHECK_MESSAGE(ran.code == 0, ran.output);
  CHECK_MESSAGE(ran.output.starts_with("edge top  " + site.admin + "  window 1m  by requests  host *  total 36  "),
                ran.output);
  CHECK(line_starting(ran.output, "   1 ") == "   1     30   83.3%  site.test  /hot");
  CHECK(line_starting(ran.output, "   2 ") == "   2      5   13.9%  site.test  /warm");
  CHECK(line_starting(ran.output, "   3 ") == "   3      1    2.8%  site.test  /evil%1B[2J");
  CHECK(line_starting(ran.output, "   4 ").empty());

  ran = edge_top({"--admin", site.admin, "--token-file", site.token_file, "--once", "--by", "misses", "-n", "1"});
  CHECK(ran.code == 0);
  CHECK(ran.output.find("by misses") != std::string::npos);

  // A wrong token: non-zero, and why.
  ran = edge_top({"--admin", site.admin, "--token-file", site.wrong_token_file, "--once"});
  CHECK(ran.code == 1);
  CHECK_MESSAGE(ran.output.find("401 Unauthorized: the admin port refused the token") != std::string::npos, ran.output);
  // Nobody listening.
  ran = edge_top({"--admin", "127.0.0.1:" + std::to_string(free_port()), "--token-file", site.token_file, "--once"});
  CHECK(ran.code == 1);
  CHECK_MESSAGE(ran.output.find("cannot connect: connection refused") != std::string::npos, ran.output);
  // A token file that is not there; bad arguments: the usage, exit 2.
  ran = edge_top({"--admin", site.admin, "--token-file", site.secrets.path() + "/none", "--once"});
  CHECK(ran.code == 1);
  CHECK(ran.output.find("cannot read token file") != std::string::npos);
  ran = edge_top({"--admin", site.admin, "--token-file", site.token_file, "--window", "1d"});
  CHECK(ran.code == 2);
  CHECK(ran.output.find("bad value for --window: '1d'") != std::string::npos);
  CHECK(ran.output.find("usage: edge top") != std::string::npos);
  ran = edge_top({"--token-file", site.token_file});
  CHECK(ran.code == 2);
}

TEST_CASE("edge top --once against a hostile or broken admin port: escaped, or refused") {
  RecordingBackend port;
  TempDir secrets;
  const std::string token_file = secrets.write("admin.token", kToken);
  const std::string admin = "127.0.0.1:" + std::to_string(port.port());
  const std::string target = "/top?window=1m&by=requests&n=20";
  // Escape sequences in the JSON: clear the screen, set the window title, ring the bell.
  port.answer_once(target, raw_answer("200 OK",
                                      "{\"window\":\"1m\",\"by\":\"requests\",\"total\":3,\"top\":[{\"host\":"
                                      "\"h\\u001b[2J\",\"target\":\"/\\u001b]0;owned\\u0007\",\"count\":3,\"error\":1}]}"));
  Ran ran = edge_top({"--admin", admin, "--token-file", token_file, "--once"});
  CHECK_MESSAGE(ran.code == 0, ran.output);
  CHECK_MESSAGE(line_starting(ran.output, "   1 ") == "   1   3 \u00b11  100.0%  h\\x1b[2J  /\\x1b]0;owned\\x07",
                ran.output);
  CHECK(ran.output.find('\x1b') == std::string::npos);
  CHECK(ran.output.find('\x07') == std::string::npos);

  port.answer_once(target, raw_answer("200 OK", "{\"window\":\"1m\",\"by\":\"requests\",\"total\":3,\"top\":[{"));
  ran = edge_top({"--admin", admin, "--token-file", token_file, "--once"});
  CHECK(ran.code == 1);
  CHECK_MESSAGE(ran.output.find("a bad answer: the answer ends early at byte") != std::string::npos, ran.output);

  port.answer_once(target, raw_answer("503 Service Unavailable", "{\"error\":\"edge is stopping\"}\n"));
  ran = edge_top({"--admin", admin, "--token-file", token_file, "--once"});
  CHECK(ran.code == 1);
  CHECK_MESSAGE(ran.output.find("503 Service Unavailable: {\"error\":\"edge is stopping\"}") != std::string::npos,
                ran.output);

  port.answer_once(target, "\x1b[2Jgarbage\r\n\r\n");
  ran = edge_top({"--admin", admin, "--token-file", token_file, "--once"});
  CHECK(ran.code == 1);
  CHECK_MESSAGE(ran.output.find("not an HTTP answer") != std::string::npos, ran.output);
  CHECK(ran.output.find('\x1b') == std::string::npos);
  // Every request carried the token.
  for (const std::string& request : port.requests())
    CHECK(request.find(std::string("\r\nAuthorization: Bearer ") + kToken + "\r\n") != std::string::npos);
}

TEST_CASE("edge top live in a terminal: the ranking refreshed in place, keys, and a clean exit") {
  Site site;
  site.send_traffic();
  TempDir dir;
  Tmux tmux(dir, {"--admin", site.admin, "--token-file", site.token_file, "--interval", "0.2"}, 120, 30);
  REQUIRE_MESSAGE(tmux.started().code == 0, tmux.started().output);

  auto shows_hot = [](const std::string& text) {
    return text.find("   1     30   83.3%  site.test  /hot") != std::string::npos;
  };
  std::string screen = tmux.wait_for_screen(shows_hot);
  REQUIRE_MESSAGE(shows_hot(screen), screen);
  CHECK(screen.starts_with("edge top  " + site.admin + "  window 1m  by requests  host *  total 36  "));
  CHECK(screen.find("[ok]") != std::string::npos);
  CHECK(screen.find("keys: q quit  w window  b by  +/- rows (n 20)") != std::string::npos);
  CHECK(screen.find("/evil%1B[2J") != std::string::npos);

  // More traffic shows at a later refresh, in place.
  for (int i = 0; i < 10; ++i) REQUIRE(get(site.edge.port, "site.test", "/warm").status == 200);
  screen = tmux.wait_for_screen(
      [](const std::string& text) { return text.find("   2     15") != std::string::npos; });
  CHECK_MESSAGE(screen.find("   2     15   32.6%  site.test  /warm") != std::string::npos, screen);

  REQUIRE(tmux.command({"send-keys", "-t", "top", "w"}).code == 0);
  screen = tmux.wait_for_screen(
      [](const std::string& text) { return text.find("  window 10m  ") != std::string::npos; });
  CHECK_MESSAGE(screen.find("  window 10m  ") != std::string::npos, screen);
  REQUIRE(tmux.command({"send-keys", "-t", "top", "b"}).code == 0);
  screen = tmux.wait_for_screen([](const std::string& text) { return text.find("  by bytes  ") != std::string::npos; });
  CHECK_MESSAGE(screen.find("  by bytes  ") != std::string::npos, screen);
  REQUIRE(tmux.command({"send-keys", "-t", "top", "-"}).code == 0);
  screen = tmux.wait_for_screen([](const std::string& text) { return text.find("(n 15)") != std::string::npos; });
  CHECK_MESSAGE(screen.find("(n 15)") != std::string::npos, screen);

  REQUIRE(tmux.command({"send-keys", "-t", "top", "q"}).code == 0);
  CHECK_MESSAGE(tmux.wait_for_exit() == "exit 0", tmux.screen());
  // The alternate screen is gone: the pane shows what it showed before, not the ranking.
  screen = tmux.screen();
  CHECK_MESSAGE(screen.find("/hot") == std::string::npos, screen);
}

TEST_CASE("edge top live keeps going while the admin port fails, and shows why") {
  TempDir dir;
  TempDir secrets;
  const std::string token_file = secrets.write("admin.token", kToken);
  ReservedPort nobody;  // bound, never listening: connections are refused
  const std::string admin = "127.0.0.1:" + std::to_string(nobody.port());
  Tmux tmux(dir, {"--admin", admin, "--token-file", token_file, "--interval", "0.2"}, 100, 20);
  REQUIRE_MESSAGE(tmux.started().code == 0, tmux.started().output);
  auto refused = [](const std::string& text) {
    return text.find("cannot connect: connection refused (asking again every 0.2 s)") != std::string::npos;
  };
  std::string screen = tmux.wait_for_screen(refused);
  CHECK_MESSAGE(refused(screen), screen);
  CHECK(screen.find("[failing]") != std::string::npos);
  // Still alive after several failed rounds; a resize is drawn at the new width.
  REQUIRE(tmux.command({"resize-window", "-t", "top", "-x", "50", "-y", "20"}).code == 0);
  screen = tmux.wait_for_screen([](const std::string& text) { return text.find("\u2026") != std::string::npos; });
  size_t start = 0;
  while (start < screen.size()) {
    size_t end = screen.find('\n', start);
    if (end == std::string::npos) end = screen.size();
    CHECK(columns(screen.substr(start, end - start)) <= 50);
    start = end + 1;
  }
  CHECK_MESSAGE(screen.find("edge top  " + admin) != std::string::npos, screen);
  // SIGTERM ends it as `q` does.
  const pid_t pid = tmux.pid();
  REQUIRE(pid > 0);
  REQUIRE(::kill(pid, SIGTERM) == 0);
  CHECK(tmux.wait_for_exit() == "exit 0");
}

TEST_CASE("edge top live against a hostile, then broken, port: escaped rows kept, the failure said") {
  RecordingBackend port;
  TempDir dir;
  TempDir secrets;
  const std::string token_file = secrets.write("admin.token", kToken);
  const std::string admin = "127.0.0.1:" + std::to_string(port.port());
  // The first answer would clear the screen and set the window title; every later one is the
  // test server's plain text, not JSON.
  port.answer_once("/top?window=1m&by=requests&n=20",
                   raw_answer("200 OK",
                              "{\"window\":\"1m\",\"by\":\"requests\",\"total\":3,\"top\":[{\"host\":"
                              "\"h\\u001b[2J\",\"target\":\"/\\u001b]0;owned\\u0007\\u009b2J\",\"count\":3,\"error\":0}]}"));
  Tmux tmux(dir, {"--admin", admin, "--token-file", token_file, "--interval", "0.2"}, 120, 20);
  REQUIRE_MESSAGE(tmux.started().code == 0, tmux.started().output);
  auto failing = [](const std::string& text) {
    return text.find("a bad answer: an unexpected character at byte 0") != std::string::npos;
  };
  const std::string screen = tmux.wait_for_screen(failing);
  CHECK_MESSAGE(failing(screen), screen);
  CHECK(screen.find("[failing]") != std::string::npos);
  // The last good ranking stays, every byte of it printable.
  CHECK_MESSAGE(screen.find("   1      3  100.0%  h\\x1b[2J  /\\x1b]0;owned\\x07\\xc2\\x9b2J") != std::string::npos,
                screen);
  CHECK(tmux.command({"display-message", "-p", "-t", "top", "#{pane_title}"}).output.find("owned") ==
        std::string::npos);
  REQUIRE(tmux.command({"send-keys", "-t", "top", "q"}).code == 0);
  CHECK(tmux.wait_for_exit() == "exit 0");
}
