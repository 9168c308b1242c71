#include "log/access_log.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "tests/unit/temp_dir.h"

using namespace edge;
using log::AccessRecord;
using conf::AccessLogFormat;

namespace {

AccessRecord known_record() {
  AccessRecord r;
  r.time_ms = 971185536123;  // 2000-10-10T13:45:36.123Z
  r.client = "192.0.2.7";
  r.host = "example.com";
  r.method = "GET";
  r.target = "/a?b=c";
  r.status = 200;
  r.bytes = 2326;
  r.referer = "https://example.com/";
  r.user_agent = "curl/8.5.0";
  r.total_ms = 1.25;
  r.ttfb_ms = 0.5;
  r.cache = "MISS";
  r.backend = "app";
  r.server = "127.0.0.1:9000";
  r.worker = 1;
  r.retries = 2;
  return r;
}

std::string line_of(AccessLogFormat format, const AccessRecord& record) {
  std::string out;
  log::format_line(out, format, record);
  return out;
}

// A strict reader of the one JSON object per line the log writes: string keys, and strings,
// numbers or null as values. The strings come back decoded (\u00XX as the byte it stands for).
// nullopt: not valid JSON of that shape.
std::optional<std::map<std::string, std::string>> parse_json_line(const std::string& line) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  auto string = [&](std::string& value) -> bool {
    if (i >= line.size() || line[i] != '"') return false;
    ++i;
    while (i < line.size() && line[i] != '"') {
      const auto c = static_cast<unsigned char>(line[i]);
      if (c < 0x20 || c >= 0x80) return false;  // the log writes plain ASCII
      if (c != '\\') {
        value.push_back(line[i++]);
        continue;
      }
      if (++i >= line.size()) return false;
      const char e = line[i++];
      switch (e) {
        case '"': value.push_back('"'); break;
        case '\\': value.push_back('\\'); break;
        case '/': value.push_back('/'); break;
        case 'n': value.push_back('\n'); break;
        case 'r': value.push_back('\r'); break;
        case 't': value.push_back('\t'); break;
        case 'b': value.push_back('\b'); break;
        case 'f': value.push_back('\f'); break;
        case 'u': {
          if (i + 4 > line.size()) return false;
          unsigned code = 0;
          for (int k = 0; k < 4; ++k) {
            const char h = line[i++];
            if (!std::isxdigit(static_cast<unsigned char>(h))) return false;
            code = code * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (h | 0x20) - 'a' + 10);
          }
          if (code > 0xff) return false;  // the log escapes single bytes only
          value.push_back(static_cast<char>(code));
          break;
        }
        default:
          return false;
      }
    }
    if (i >= line.size()) return false;
    ++i;
    return true;
  };
  if (line.size() < 3 || line.back() != '\n' || line[0] != '{') return std::nullopt;
  if (line.find('\n') != line.size() - 1 || line.find('\r') != std::string::npos) return std::nullopt;
  i = 1;
  for (;;) {
    std::string key;
    std::string value;
    if (!string(key) || i >= line.size() || line[i++] != ':') return std::nullopt;
    if (line[i] == '"') {
      if (!string(value)) return std::nullopt;
    } else if (line.compare(i, 4, "null") == 0) {
      value = "null";
      i += 4;
    } else {
      const size_t start = i;
      while (i < line.size() && (std::isdigit(static_cast<unsigned char>(line[i])) || line[i] == '.' || line[i] == '-')) ++i;
      if (i == start) return std::nullopt;
      value = "#" + line.substr(start, i - start);  // a number, marked
    }
    if (out.count(key)) return std::nullopt;  // a forged duplicate key
    out[key] = value;
    if (i >= line.size()) return std::nullopt;
    if (line[i] == ',') {
      ++i;
      continue;
    }
    if (line[i] == '}' && i + 2 == line.size()) return out;
    return std::nullopt;
  }
}

using edge::testing::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every byte a hostile client could send in a field.
const std::string kHostile = std::string("a\r\nb\"c\\d\te\x01\x1b[31m\x7f") + "\xff\xc3\x28" + std::string(1, '\0') + "z";

}  // namespace

TEST_CASE("access log: the combined format with edge's fields") {
  CHECK(line_of(AccessLogFormat::kCombined, known_record()) ==
        "192.0.2.7 - - [10/Oct/2000:13:45:36 +0000] \"GET /a?b=c HTTP/1.1\" 200 2326 \"https://example.com/\" "
        "\"curl/8.5.0\" host=\"example.com\" cache=MISS backend=app server=127.0.0.1:9000 worker=1 retries=2 "
        "total_ms=1.250 ttfb_ms=0.500\n");

  AccessRecord bare;
  bare.time_ms = 0;
  bare.client = "::1";
  bare.method = "GET";
  bare.target = "/";
  bare.http_minor = 0;
  bare.status = 404;
  CHECK(line_of(AccessLogFormat::kCombined, bare) ==
        "::1 - - [01/Jan/1970:00:00:00 +0000] \"GET / HTTP/1.0\" 404 - \"-\" \"-\" host=- cache=- backend=- server=- "
        "worker=0 retries=0 total_ms=0.000 ttfb_ms=-\n");
}

TEST_CASE("access log: the json format with known facts") {
  const std::string line = line_of(AccessLogFormat::kJson, known_record());
  CHECK(line ==
        "{\"time\":\"2000-10-10T13:45:36.123Z\",\"client\":\"192.0.2.7\",\"host\":\"example.com\",\"method\":\"GET\","
        "\"target\":\"/a?b=c\",\"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes\":2326,"
        "\"referer\":\"https://example.com/\",\"user_agent\":\"curl/8.5.0\",\"total_ms\":1.250,\"ttfb_ms\":0.500,"
        "\"cache\":\"MISS\",\"backend\":\"app\",\"server\":\"127.0.0.1:9000\",\"worker\":1,\"retries\":2}\n");
  const auto parsed = parse_json_line(line);
  REQUIRE(parsed);
  CHECK(parsed->at("status") == "#200");
  CHECK(parsed->at("cache") == "MISS");

  AccessRecord none;
  none.client = "192.0.2.7";
  const auto empty = parse_json_line(line_of(AccessLogFormat::kJson, none));
  REQUIRE(empty);
  CHECK(empty->at("ttfb_ms") == "null");
  CHECK(empty->at("backend") == "null");
  CHECK(empty->at("host") == "null");
  CHECK(empty->at("method") == "");
}

TEST_CASE("access log: what a client sends can neither split nor forge a line") {
  const std::string target = "/x\" 200 1 \"-\" \"-\" host=\"evil\" cache=HIT\n1.2.3.4 - - [x] \"GET /forged" + kHostile;
  const std::string host = "evil.example\r\nX: " + kHostile;
  const std::string referer = "\",\"status\":999,\"x\":\"" + kHostile;
  const std::string user_agent = "\"} {\"forged\":true" + kHostile;
  AccessRecord r = known_record();
  r.target = target;
  r.host = host;
  r.referer = referer;
  r.user_agent = user_agent;
  r.method = "GE T";

  SUBCASE("json") {
    const std::string line = line_of(AccessLogFormat::kJson, r);
    CAPTURE(line);
    const auto parsed = parse_json_line(line);
    REQUIRE(parsed);  // one object on one line, no raw control or non-ASCII bytes
    CHECK(parsed->size() == 17);
    CHECK(parsed->at("status") == "#200");
    // Every value reads back exactly as it came, bytes >= 0x80 and NUL included.
    CHECK(parsed->at("target") == r.target);
    CHECK(parsed->at("host") == r.host);
    CHECK(parsed->at("referer") == r.referer);
    CHECK(parsed->at("user_agent") == r.user_agent);
    CHECK(parsed->at("method") == r.method);
  }
  SUBCASE("combined") {
    const std::string line = line_of(AccessLogFormat::kCombined, r);
    CAPTURE(line);
    CHECK(line.find('\n') == line.size() - 1);
    CHECK(line.find('\r') == std::string::npos);
    for (const char c : line) {
      const auto byte = static_cast<unsigned char>(c);
      CHECK((byte == '\n' || (byte >= 0x20 && byte < 0x7f)));
    }
    // Every quote in the line is either a delimiter or escaped: the unescaped ones are exactly
    // the delimiters of the request, referer, user agent and host.
    int delimiters = 0;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\') {
        ++i;
        continue;
      }
      if (line[i] == '"') ++delimiters;
    }
    CHECK(delimiters == 8);
    CHECK(line.find("\\x0d\\x0a") != std::string::npos);
    CHECK(line.find("\\xff\\xc3(") != std::string::npos);
    CHECK(line.find("\\x00z") != std::string::npos);
    CHECK(line.find("\\\"") != std::string::npos);
    CHECK(line.find("\\\\d") != std::string::npos);
    // edge's own fields come after the quoted ones, once each.
    CHECK(line.find(" cache=MISS backend=app server=127.0.0.1:9000 worker=1 retries=2 ") != std::string::npos);
    CHECK(line.find(" 200 2326 ") != std::string::npos);
  }
}

TEST_CASE("access log: lines are written in batches by the writer thread, and flushed at the end") {
  TempDir dir;
  const std::string path = dir.path + "/access.log";
  {
    log::AccessLog log(path, false, 1 << 20);
    std::string error;
    REQUIRE(log.open(error));
    log.start();
    for (int i = 0; i < 100; ++i) CHECK(log.push("line " + std::to_string(i) + "\n"));
    log.flush();
    const std::string text = read_file(path);
    CHECK(text.rfind("line 0\n", 0) == 0);
    CHECK(text.find("line 99\n") == text.size() - 8);
    CHECK(log.push("last\n"));
  }
  CHECK(read_file(path).find("line 99\nlast\n") != std::string::npos);
  std::string error;
  CHECK_FALSE(log::AccessLog(dir.path + "/no/such/dir/a.log", false, 4096).open(error));
  CHECK(error.find("cannot open access log") == 0);
}

TEST_CASE("access log: a full queue drops lines and counts them, without blocking") {
  TempDir dir;
  const std::string path = dir.path + "/access.log";
  log::AccessLog log(path, false, 4096);
  std::string error;
  REQUIRE(log.open(error));
  // No writer yet: nothing drains the queue, so it fills and stays full.
  const std::string line(100, 'x');
  // With no writer, a push that waited for room would never return: getting through the loop is
  // the proof that a full queue refuses instead.
  int accepted = 0;
  int refused = 0;
  for (int i = 0; i < 1000; ++i) (log.push(line + "\n") ? accepted : refused) += 1;
  CHECK(accepted == 4096 / 101);
  CHECK(refused == 1000 - 4096 / 101);
  log.start();
  log.flush();
  CHECK(read_file(path).size() == static_cast<size_t>(accepted) * 101);
  // Written, the queue takes lines again.
  CHECK(log.push(line + "\n"));
}

TEST_CASE("access log: reopen writes to a new file at the path once the old one was moved") {
  TempDir dir;
  const std::string path = dir.path + "/access.log";
  log::AccessLog log(path, false, 1 << 16);
  std::string error;
  REQUIRE(log.open(error));
  log.start();
  CHECK(log.push("before\n"));
  log.flush();
  std::filesystem::rename(path, path + ".1");
  CHECK(log.push("moved\n"));  // still the old file: nobody asked for a reopen yet
  log.flush();
  log.reopen();
  CHECK(log.push("after\n"));
  log.flush();
  CHECK(read_file(path + ".1") == "before\nmoved\n");
  CHECK(read_file(path) == "after\n");
}
