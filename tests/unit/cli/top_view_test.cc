#include "cli/top_view.h"

#include <doctest/doctest.h>

#include <limits>
#include <string>

#include "cli/top_command.h"

using namespace edge::cli;
using edge::top::By;
using edge::top::Window;

namespace {

constexpr size_t kAny = std::numeric_limits<size_t>::max();

std::optional<TopAnswer> parse(std::string_view json) {
  std::string error;
  std::optional<TopAnswer> answer = parse_top_answer(json, error);
  if (answer) CHECK(error.empty());
  return answer;
}

std::string refusal(std::string_view json) {
  std::string error;
  CHECK_MESSAGE(!parse_top_answer(json, error), json);
  return error;
}

}  // namespace

TEST_CASE("GET /top's answer is read back as the admin port writes it") {
  auto answer = parse(
      "{\"window\":\"10m\",\"by\":\"bytes\",\"total\":56,\"top\":["
      "{\"host\":\"site.test\",\"target\":\"/echo?x=a\",\"count\":30,\"error\":0},"
      "{\"host\":\"b.test\",\"target\":\"/\",\"count\":20,\"error\":3}]}\n");
  REQUIRE(answer);
  CHECK(answer->window == Window::k10m);
  CHECK(answer->by == By::kBytes);
  CHECK(answer->total == 56);
  REQUIRE(answer->rows.size() == 2);
  CHECK(answer->rows[0].host == "site.test");
  CHECK(answer->rows[0].target == "/echo?x=a");
  CHECK(answer->rows[0].count == 30);
  CHECK(answer->rows[1].error == 3);

  // Members in another order, white space between tokens, an empty ranking.
  answer = parse(" { \"top\" : [ ] , \"total\" : 0 , \"by\" : \"backend_time\" , \"window\" : \"1h\" } ");
  REQUIRE(answer);
  CHECK(answer->rows.empty());
  CHECK(answer->by == By::kBackendTime);
  CHECK(answer->total == 0);
  CHECK(parse("{\"window\":\"1m\",\"by\":\"misses\",\"total\":18446744073709551615,\"top\":[]}")->total ==
        std::numeric_limits<uint64_t>::max());
}

TEST_CASE("strings keep their raw bytes and decode every JSON escape") {
  auto answer = parse(
      "{\"window\":\"1m\",\"by\":\"requests\",\"total\":1,\"top\":[{\"host\":\"h\",\"target\":"
      "\"/\\u001b[2J\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\xff\x7f\",\"count\":1,\"error\":0}]}");
  REQUIRE(answer);
  CHECK(answer->rows[0].target == "/\x1b[2J\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80\xff\x7f");
}

TEST_CASE("a truncated answer is refused wherever it stops") {
  const std::string whole =
      "{\"window\":\"1m\",\"by\":\"requests\",\"total\":2,\"top\":[{\"host\":\"h\",\"target\":\"/a\\u0041\","
      "\"count\":2,\"error\":0}]}";
  REQUIRE(parse(whole));
  // Every prefix but the whole, a number cut short included ("total":2 of "total":25 is a
  // different answer, but the object around it is still open).
  for (size_t length = 0; length < whole.size(); ++length) {
    std::string error;
    CHECK_MESSAGE(!parse_top_answer(whole.substr(0, length), error), whole.substr(0, length));
    CHECK(error.find(" at byte ") != std::string::npos);
  }
}

TEST_CASE("anything but exactly that shape is refused, with the reason") {
  const std::string row = "{\"host\":\"h\",\"target\":\"/\",\"count\":1,\"error\":0}";
  auto with_top = [](const std::string& top) {
    return "{\"window\":\"1m\",\"by\":\"requests\",\"total\":1,\"top\":[" + top + "]}";
  };
  CHECK(refusal("") == "the answer ends early at byte 0");
  CHECK(refusal("[]").starts_with("an unexpected character"));
  CHECK(refusal("{\"window\":\"1m\",\"by\":\"requests\",\"total\":1}").starts_with("a missing member"));
  CHECK(refusal("{\"window\":\"1m\",\"window\":\"1m\",\"by\":\"requests\",\"total\":1,\"top\":[]}")
            .starts_with("a repeated member"));
  CHECK(refusal("{\"window\":\"1m\",\"by\":\"requests\",\"total\":1,\"top\":[],\"more\":1}")
            .starts_with("an unknown member"));
  CHECK(refusal("{\"window\":\"1d\",\"by\":\"requests\",\"total\":1,\"top\":[]}").starts_with("an unknown window"));
  CHECK(refusal("{\"window\":\"1m\",\"by\":\"cpu\",\"total\":1,\"top\":[]}").starts_with("an unknown weight"));
  CHECK(refusal("{\"window\":\"1m\",\"by\":\"requests\",\"total\":-1,\"top\":[]}")
            .starts_with("an unsigned integer was expected"));
  CHECK(refusal("{\"window\":\"1m\",\"by\":\"requests\",\"total\":1.5,\"top\":[]}")
            .starts_with("an unsigned integer was expected"));
  CHECK(refusal("{\"window\":\"1m\",\"by\":\"requests\",\"total\":01,\"top\":[]}").starts_with("a number with a leading zero"));
  CHECK(refusal("{\"window\":\"1m\",\"by\":\"requests\",\"total\":18446744073709551616,\"top\":[]}")
            .starts_with("a number too large"));
  CHECK(refusal("{\"window\":\"1m\",\"by\":\"requests\",\"total\":\"1\",\"top\":[]}")
            .starts_with("an unsigned integer was expected"));
  CHECK(refusal(with_top(row) + " x").starts_with("bytes after the answer"));
  CHECK(refusal(with_top(row + ",")).starts_with("an unexpected character"));
  CHECK(refusal(with_top(row + "," + row + "]")).starts_with("an unexpected character"));
  CHECK(refusal(with_top("{\"host\":\"h\",\"target\":\"/\",\"count\":1,\"error\":2}"))
            .starts_with("an error larger than its count"));
  CHECK(refusal(with_top("{\"host\":\"h\",\"target\":\"/\",\"count\":1}")).starts_with("a missing member"));
  CHECK(refusal(with_top("{\"host\":\"h\",\"target\":\"/\x1b\",\"count\":1,\"error\":0}"))
            .starts_with("a control character inside a string"));
  CHECK(refusal(with_top("{\"host\":\"h\",\"target\":\"/\\x1b\",\"count\":1,\"error\":0}"))
            .starts_with("a bad escape inside a string"));
  CHECK(refusal(with_top("{\"host\":\"h\",\"target\":\"/\\u12\",\"count\":1,\"error\":0}"))
            .starts_with("a bad \\u escape"));
  CHECK(refusal(with_top("{\"host\":\"h\",\"target\":\"/\\ud800\",\"count\":1,\"error\":0}"))
            .starts_with("a lone surrogate"));
  CHECK(refusal(with_top("{\"host\":\"h\",\"target\":\"/\\udc00\",\"count\":1,\"error\":0}"))
            .starts_with("a lone surrogate"));
  CHECK(refusal("<html>503</html>").starts_with("an unexpected character at byte 0"));
  // Deep nesting where a value belongs is refused at once, without recursion.
  CHECK(refusal("{\"window\":" + std::string(100000, '[')).starts_with("a string was expected"));
}

TEST_CASE("control characters never reach the terminal") {
  CHECK(escape_for_terminal("/plain?a=b&c=d~") == "/plain?a=b&c=d~");
  CHECK(escape_for_terminal("/\x1b[2J\x1b]0;owned\x07") == "/\\x1b[2J\\x1b]0;owned\\x07");
  CHECK(escape_for_terminal("a\nb\rc\td\x7f") == "a\\x0ab\\x0dc\\x09d\\x7f");
  // C1 controls, raw (8-bit CSI) or as UTF-8 (U+009B), and any other byte from 0x80.
  CHECK(escape_for_terminal("\x9b" "31m") == "\\x9b31m");
  CHECK(escape_for_terminal("\xc2\x9b" "31m") == "\\xc2\\x9b31m");
  CHECK(escape_for_terminal("caf\xc3\xa9") == "caf\\xc3\\xa9");
  CHECK(escape_for_terminal(std::string("a\0b", 3)) == "a\\x00b");
  // The backslash is doubled, so an escape shown is never one the text wrote itself.
  CHECK(escape_for_terminal("\\x1b") == "\\\\x1b");
  for (int byte = 0; byte < 256; ++byte) {
    for (char c : escape_for_terminal(std::string(1, static_cast<char>(byte))))
      CHECK((c >= 0x20 && c < 0x7f));
  }
}

TEST_CASE("text is cut to the width with an ellipsis, never inside a character") {
  CHECK(display_width("abc") == 3);
  CHECK(display_width("12 \u00b13") == 5);
  CHECK(fit_to_width("abcdef", 6) == "abcdef");
  CHECK(fit_to_width("abcdef", 5) == "abcd\u2026");
  CHECK(fit_to_width("abcdef", 1) == "\u2026");
  CHECK(fit_to_width("abcdef", 0) == "");
  CHECK(fit_to_width("a\u00b1bcdef", 3) == "a\u00b1\u2026");
  CHECK(display_width(fit_to_width("a\u00b1bcdef", 3)) == 3);
}

TEST_CASE("rows: rank, count with its error, share, host and target cut to the width") {
  TopRow row{"site.test", "/a/very/long/target?with=a&query=string", 1234, 5};
  const std::string line = render_row(1, row, 2468, 7, 9, 80);
  CHECK(line == "   1  1234 \u00b15   50.0%  site.test  /a/very/long/target?with=a&query=string");
  const std::string cut = render_row(1, row, 2468, 7, 9, 50);
  CHECK(display_width(cut) == 50);
  CHECK(cut == "   1  1234 \u00b15   50.0%  site.test  /a/very/long/ta\u2026");
  // No error: the count alone; a total of 0: no share.
  CHECK(render_row(12, TopRow{"h", "/", 7, 0}, 0, 5, 4, 80) == "  12      7       -  h     /");
  // A hostile target is escaped before it is measured and cut.
  const std::string hostile = render_row(3, TopRow{"h", "/\x1b[31mred", 1, 0}, 1, 5, 4, 80);
  CHECK(hostile == "   3      1  100.0%  h     /\\x1b[31mred");
  CHECK(hostile.find('\x1b') == std::string::npos);
  // Too narrow for the target: what fits, never wider.
  for (size_t width = 0; width < 40; ++width) CHECK(display_width(render_row(1, row, 2468, 9, 9, width)) <= width);
}

TEST_CASE("the screen: header, keys, status, titles and as many rows as fit") {
  Screen screen;
  screen.admin = "127.0.0.1:9090";
  screen.query.window = Window::k10s;
  screen.connection = Connection::kOk;
  screen.clock = "12:34:56 UTC";
  screen.answer = TopAnswer{Window::k10s, By::kRequests, 36,
                            {{"site.test", "/hot", 30, 0}, {"site.test", "/warm", 5, 0}, {"evil.test", "/\x1b[2J", 1, 0}}};
  std::vector<std::string> lines = render_screen(screen, kAny, kAny, false);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "edge top  127.0.0.1:9090  window 10s  by requests  host *  total 36  12:34:56 UTC  [ok]");
  CHECK(lines[1] == "   #  COUNT   SHARE  HOST       TARGET");
  CHECK(lines[2] == "   1     30   83.3%  site.test  /hot");
  CHECK(lines[3] == "   2      5   13.9%  site.test  /warm");
  CHECK(lines[4] == "   3      1    2.8%  evil.test  /\\x1b[2J");

  screen.connection = Connection::kFailing;
  screen.status = "cannot connect: connection refused\x1b[2J";
  lines = render_screen(screen, 60, 5, true);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "edge top  127.0.0.1:9090  window 10s  by requests  host *  \u2026");
  CHECK(lines[1] == "keys: q quit  w window  b by  +/- rows (n 20)");
  CHECK(lines[2] == "cannot connect: connection refused\\x1b[2J");
  CHECK(lines[4].starts_with("   1     30"));
  for (const std::string& line : lines) CHECK(display_width(line) <= 60);

  // Before any answer: the titles alone; a height smaller than the header: the header cut.
  screen.answer.reset();
  CHECK(render_screen(screen, kAny, kAny, true).size() == 4);
  CHECK(render_screen(screen, kAny, 2, true).size() == 2);
}

TEST_CASE("edge top's arguments") {
  std::string error;
  auto options = parse_top_options({"--admin", "127.0.0.1:9090", "--token-file=t", "--window", "10s", "--by",
                                    "misses", "--host", "a b", "-n", "5", "--interval", "0.5", "--once"},
                                   error);
  REQUIRE(options);
  CHECK(options->admin == "127.0.0.1:9090");
  CHECK(options->token_file == "t");
  CHECK(options->query.window == Window::k10s);
  CHECK(options->query.by == By::kMisses);
  CHECK(options->interval_seconds == 0.5);
  CHECK(options->once);
  CHECK(top_target(options->query) == "/top?window=10s&by=misses&n=5&host=a%20b");

  options = parse_top_options({"--admin", "[::1]:9090", "--token-file", "t"}, error);
  REQUIRE(options);
  CHECK(top_target(options->query) == "/top?window=1m&by=requests&n=20");
  CHECK(options->interval_seconds == 1.0);

  for (const auto& bad : std::vector<std::vector<std::string>>{
           {"--token-file", "t"},
           {"--admin", "127.0.0.1:9090"},
           {"--admin", "nowhere", "--token-file", "t"},
           {"--admin", "127.0.0.1:0", "--token-file", "t"},
           {"--admin", "127.0.0.1:9090", "--token-file", "t", "--window", "1d"},
           {"--admin", "127.0.0.1:9090", "--token-file", "t", "--by", "cpu"},
           {"--admin", "127.0.0.1:9090", "--token-file", "t", "-n", "0"},
           {"--admin", "127.0.0.1:9090", "--token-file", "t", "-n", "1001"},
           {"--admin", "127.0.0.1:9090", "--token-file", "t", "-n", "x"},
           {"--admin", "127.0.0.1:9090", "--token-file", "t", "--interval", "0"},
           {"--admin", "127.0.0.1:9090", "--token-file", "t", "--interval", "nan"},
           {"--admin", "127.0.0.1:9090", "--token-file", "t", "--host"},
           {"--admin", "127.0.0.1:9090", "--token-file", "t", "--verbose"},
       }) {
    error.clear();
    CHECK(!parse_top_options(bad, error));
    CHECK(!error.empty());
  }
  error = "x";
  CHECK(!parse_top_options({"--help"}, error));
  CHECK(error.empty());
}
