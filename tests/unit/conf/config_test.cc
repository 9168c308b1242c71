#include "conf/config.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/temp_dir.h"

using namespace edge::conf;
using namespace std::chrono_literals;

namespace {

// Eight lines; tests append to it, so their errors start at line 9.
const std::string minimal =
    "listen:\n"
    "  - address: 127.0.0.1:8080\n"
    "backends:\n"
    "  app:\n"
    "    servers: [127.0.0.1:9000]\n"
    "hosts:\n"
    "  - match: \"*\"\n"
    "    backend: app\n";

LoadResult load(const std::string& yaml) { return load_string(yaml, "test.yaml"); }

std::vector<std::string> error_texts(const LoadResult& result) {
  std::vector<std::string> out;
  for (const Error& error : result.errors) out.push_back(error.text());
  return out;
}

// The single error of a load that must fail with exactly one.
std::string only_error(const std::string& yaml) {
  LoadResult result = load(yaml);
  CHECK_FALSE(result.config.has_value());
  REQUIRE_MESSAGE(result.errors.size() == 1, doctest::toString(error_texts(result).size()));
  return result.errors.front().text();
}

// One line per error, for INFO() when a comparison fails.
std::string joined(const LoadResult& result) {
  std::string out;
  for (const Error& error : result.errors) out += "\n  " + error.text();
  return out;
}

std::string with_backend_body(const std::string& body) {
  return "listen:\n"
         "  - address: 127.0.0.1:8080\n"
         "backends:\n"
         "  app:\n" +
         body +
         "hosts:\n"
         "  - match: \"*\"\n"
         "    backend: app\n";
}

}  // namespace

TEST_CASE("parse_duration accepts a number with a unit") {
  CHECK(parse_duration("500ms") == 500ms);
  CHECK(parse_duration("10s") == 10s);
  CHECK(parse_duration("5m") == 5min);
  CHECK(parse_duration("1h") == 1h);
  CHECK(parse_duration("0s") == 0ms);
  CHECK(parse_duration("007s") == 7s);
  CHECK(parse_duration("9223372036854775807ms") == Duration::max());
}

TEST_CASE("parse_duration refuses bare numbers, unknown units and overflow") {
  for (const char* bad : {"", "10", "s", "ms", "-1s", "+1s", "1.5s", "10 s", " 10s", "10s ",
                          "10S", "10sec", "1d", "10ms5", "0x10s", "9223372036854775808ms",
                          "2562047788015216h", "99999999999999999999ms"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_duration(bad).has_value());
  }
}

TEST_CASE("parse_size takes bytes or a k, m, g suffix in powers of 1024") {
  CHECK(parse_size("0") == 0u);
  CHECK(parse_size("512") == 512u);
  CHECK(parse_size("16k") == 16u * 1024);
  CHECK(parse_size("16K") == 16u * 1024);
  CHECK(parse_size("512m") == 512u * 1024 * 1024);
  CHECK(parse_size("2g") == 2ull * 1024 * 1024 * 1024);
  CHECK(parse_size("2G") == 2ull * 1024 * 1024 * 1024);
  CHECK(parse_size("18446744073709551615") == 18446744073709551615ull);
  CHECK(parse_size("17179869183g") == 17179869183ull << 30);
}

TEST_CASE("parse_size refuses garbage and overflow") {
  for (const char* bad : {"", "k", "1.5k", "-1", "+1", "16kb", "16 k", "1t", " 16k", "16k ",
                          "0x10", "1e3", "18446744073709551616", "17179869184g",
                          "18014398509481984k"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_size(bad).has_value());
  }
}

TEST_CASE("parse_address reads IPv4, bracketed IPv6, localhost and wildcards") {
  auto v4 = parse_address("127.0.0.1:8080");
  REQUIRE(v4);
  CHECK(v4->host == "127.0.0.1");
  CHECK(v4->port == 8080);
  CHECK_FALSE(v4->ipv6);
  CHECK(v4->text() == "127.0.0.1:8080");

  auto v6 = parse_address("[::1]:8080");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 8080);
  CHECK(v6->ipv6);
  CHECK(v6->text() == "[::1]:8080");

  auto long_v6 = parse_address("[0:0:0:0:0:0:0:1]:1");
  REQUIRE(long_v6);
  CHECK(long_v6->host == "::1");

  auto localhost = parse_address("localhost:80");
  REQUIRE(localhost);
  CHECK(localhost->host == "127.0.0.1");
  CHECK(localhost->text() == "127.0.0.1:80");

  auto star = parse_address("*:8080");
  REQUIRE(star);
  CHECK(star->host == "0.0.0.0");
  auto bare = parse_address(":65535");
  REQUIRE(bare);
  CHECK(bare->text() == "0.0.0.0:65535");
}

TEST_CASE("parse_address refuses host names, bad ports and malformed text") {
  for (const char* bad :
       {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http",
        "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:80 ", "example.com:80", "::1:80", "[::1]",
        "[::1]80", "[::1:80", "[127.0.0.1]:80", "[]:80", "256.1.1.1:80", "1.2.3:80", "::80"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_address(bad).has_value());
  }
}

TEST_CASE("a full configuration loads every key") {
  const std::string yaml =
      "workers: 4\n"
      "listen:\n"
      "  - address: 0.0.0.0:8080\n"
      "  - address: \"[::1]:8443\"\n"
      "limits:\n"
      "  header_timeout: 5s\n"
      "  idle_timeout: 2m\n"
      "  body_timeout: 30s\n"
      "  send_timeout: 1h\n"
      "  max_header_bytes: 32k\n"
      "  max_request_line: 4k\n"
      "  max_body_bytes: 1g\n"
      "  max_connections: 500\n"
      "  buffer_memory: 2m\n"
      "  temp_dir: /var/tmp/edge\n"
      "backends:\n"
      "  books_en:\n"
      "    servers:\n"
      "      - 127.0.0.1:8210\n"
      "      - { address: localhost:8211 }\n"
      "    connect_timeout: 250ms\n"
      "    response_timeout: 10s\n"
      "    pool: { max_idle: 8, idle_timeout: 15s }\n"
      "  other:\n"
      "    servers: [\"[::1]:9000\"]\n"
      "hosts:\n"
      "  - match: [WWW.Example.com, \"*.example.de\"]\n"
      "    backend: books_en\n"
      "    routes:\n"
      "      - { path: /api/, backend: other }\n"
      "      - path: /static/\n"
      "  - match: \"*\"\n"
      "    backend: other\n";
  LoadResult result = load(yaml);
  INFO(joined(result));
  REQUIRE(result.config);
  CHECK(result.errors.empty());
  const Config& config = *result.config;
  CHECK(config.file == "test.yaml");
  CHECK(config.workers == 4);

  REQUIRE(config.listen.size() == 2);
  CHECK(config.listen[0].address.text() == "0.0.0.0:8080");
  CHECK(config.listen[0].mark.file == "test.yaml");
  CHECK(config.listen[0].mark.line == 3);
  CHECK(config.listen[0].mark.col == 5);
  CHECK(config.listen[1].address.ipv6);
  CHECK(config.listen[1].address.port == 8443);

  const Limits& limits = config.limits;
  CHECK(limits.header_timeout == 5s);
  CHECK(limits.idle_timeout == 2min);
  CHECK(limits.body_timeout == 30s);
  CHECK(limits.send_timeout == 1h);
  CHECK(limits.max_header_bytes == 32u * 1024);
  CHECK(limits.max_request_line == 4u * 1024);
  CHECK(limits.max_body_bytes == 1ull << 30);
  CHECK(limits.max_connections == 500u);
  CHECK(limits.buffer_memory == 2u * 1024 * 1024);
  CHECK(limits.temp_dir == "/var/tmp/edge");

  REQUIRE(config.backends.size() == 2);
  const Backend& books = config.backends[0];
  CHECK(books.name == "books_en");
  CHECK(books.mark.line == 17);
  CHECK(books.mark.col == 3);
  REQUIRE(books.servers.size() == 2);
  CHECK(books.servers[0].address.text() == "127.0.0.1:8210");
  CHECK(books.servers[0].mark.line == 19);
  CHECK(books.servers[0].mark.col == 9);
  CHECK(books.servers[1].address.text() == "127.0.0.1:8211");
  CHECK(books.connect_timeout == 250ms);
  CHECK(books.response_timeout == 10s);
  CHECK(books.pool.max_idle == 8u);
  CHECK(books.pool.idle_timeout == 15s);
  CHECK(config.backends[1].servers.at(0).address.text() == "[::1]:9000");
  CHECK(config.backend_index("books_en") == 0);
  CHECK(config.backend_index("other") == 1);
  CHECK(config.backend_index("nope") == -1);

  REQUIRE(config.hosts.size() == 2);
  const Host& first = config.hosts[0];
  CHECK(first.match == std::vector<std::string>{"www.example.com", "*.example.de"});
  CHECK(first.backend == 0);
  CHECK(first.mark.line == 27);
  REQUIRE(first.routes.size() == 2);
  CHECK(first.routes[0].path_prefix == "/api/");
  CHECK(first.routes[0].backend == 1);
  CHECK(first.routes[0].mark.line == 30);
  CHECK(first.routes[1].path_prefix == "/static/");
  CHECK(first.routes[1].backend == -1);
  CHECK(config.hosts[1].match == std::vector<std::string>{"*"});
  CHECK(config.hosts[1].backend == 1);
}

TEST_CASE("omitted keys take the header's defaults and workers: auto uses every core") {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  for (const std::string& yaml : {minimal, "workers: auto\n" + minimal}) {
    LoadResult result = load(yaml);
    INFO(joined(result));
    REQUIRE(result.config);
    const Config& config = *result.config;
    CHECK(config.workers == static_cast<int>(cores));
    const Limits defaults;
    CHECK(config.limits.header_timeout == defaults.header_timeout);
    CHECK(config.limits.idle_timeout == 60s);
    CHECK(config.limits.body_timeout == 60s);
    CHECK(config.limits.send_timeout == 60s);
    CHECK(config.limits.max_header_bytes == 16u * 1024);
    CHECK(config.limits.max_request_line == 8u * 1024);
    CHECK(config.limits.max_body_bytes == 10u * 1024 * 1024);
    CHECK(config.limits.max_connections == 10000u);
    CHECK(config.limits.buffer_memory == 1024u * 1024);
    CHECK(config.limits.temp_dir == "/tmp");
    REQUIRE(config.backends.size() == 1);
    CHECK(config.backends[0].connect_timeout == 1s);
    CHECK(config.backends[0].response_timeout == 30s);
    const Pool pool_defaults;
    CHECK(config.backends[0].pool.max_idle == pool_defaults.max_idle);
    CHECK(config.backends[0].pool.idle_timeout == pool_defaults.idle_timeout);
    REQUIRE(config.hosts.size() == 1);
    CHECK(config.hosts[0].routes.empty());
  }
}

TEST_CASE("workers takes 1 to 256 or auto") {
  CHECK(load("workers: 1\n" + minimal).config->workers == 1);
  CHECK(load("workers: 256\n" + minimal).config->workers == 256);
  CHECK(only_error("workers: 0\n" + minimal) ==
        "test.yaml:1:10: bad workers '0': expected an integer from 1 to 256");
  CHECK(only_error("workers: 257\n" + minimal) ==
        "test.yaml:1:10: bad workers '257': expected an integer from 1 to 256");
  CHECK(only_error("workers: -1\n" + minimal) ==
        "test.yaml:1:10: bad workers '-1': expected an integer from 1 to 256");
  CHECK(only_error("workers: many\n" + minimal) ==
        "test.yaml:1:10: bad workers 'many': expected an integer from 1 to 256");
  CHECK(only_error("workers: [2]\n" + minimal) ==
        "test.yaml:1:10: 'workers' must be a non-empty scalar, not a list");
}

TEST_CASE("io is epoll or uring, epoll by default; EDGE_IO overrides a file's") {
  CHECK(load(minimal).config->io == edge::conf::Io::kEpoll);
  CHECK(load("io: uring\n" + minimal).config->io == edge::conf::Io::kUring);
  CHECK(load("io: epoll\n" + minimal).config->io == edge::conf::Io::kEpoll);
  CHECK(only_error("io: poll\n" + minimal) == "test.yaml:1:5: bad io 'poll': expected epoll or uring");
  CHECK(only_error("io: Uring\n" + minimal) == "test.yaml:1:5: bad io 'Uring': expected epoll or uring");
  CHECK(only_error("io: [uring]\n" + minimal) == "test.yaml:1:5: 'io' must be a non-empty scalar, not a list");

  char path[] = "/tmp/edge_conf_testXXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << "io: epoll\n" << minimal;
  const char* before = std::getenv("EDGE_IO");
  const std::string saved = before ? before : "";
  setenv("EDGE_IO", "uring", 1);
  CHECK(load_file(path).config->io == edge::conf::Io::kUring);
  setenv("EDGE_IO", "epoll", 1);
  CHECK(load_file(path).config->io == edge::conf::Io::kEpoll);
  setenv("EDGE_IO", "fast", 1);
  LoadResult bad = load_file(path);
  CHECK_FALSE(bad.config);
  CHECK(error_texts(bad) ==
        std::vector<std::string>{std::string(path) + ":0:0: bad EDGE_IO 'fast' in the environment: expected epoll or uring"});
  if (before) {
    setenv("EDGE_IO", saved.c_str(), 1);
  } else {
    unsetenv("EDGE_IO");
  }
  std::remove(path);
}

TEST_CASE("shutdown_timeout is a top-level duration, 30s by default, errors at the value") {
  CHECK(load(minimal).config->shutdown_timeout == std::chrono::seconds(30));
  CHECK(load("shutdown_timeout: 1500ms\n" + minimal).config->shutdown_timeout == std::chrono::milliseconds(1500));
  CHECK(load("shutdown_timeout: 2m\n" + minimal).config->shutdown_timeout == std::chrono::minutes(2));
  CHECK(only_error("shutdown_timeout: 0s\n" + minimal) ==
        "test.yaml:1:19: 'shutdown_timeout' must be greater than zero");
  CHECK(only_error("shutdown_timeout: 30\n" + minimal).rfind("test.yaml:1:19: bad duration '30'", 0) == 0);
  CHECK(only_error("shutdown_timeout: [1s]\n" + minimal) ==
        "test.yaml:1:19: 'shutdown_timeout' must be a non-empty scalar, not a list");
}

TEST_CASE("the hostile-input bounds: defaults, values, zero where it means none, errors at the value") {
  const Config defaults = *load(minimal).config;
  CHECK(defaults.limits.max_header_fields == 100u);
  CHECK(defaults.limits.min_upload_rate == 1024u);
  CHECK(defaults.limits.upload_rate_grace == 10s);
  CHECK(defaults.limits.max_temp_file_size == 1ull << 30);
  CHECK(defaults.limits.max_temp_total == 4ull << 30);
  CHECK(defaults.cache.max_variants == 32u);

  LoadResult set = load(minimal +
                        "limits: { max_header_fields: 50, min_upload_rate: 10k, upload_rate_grace: 2s, "
                        "max_temp_file_size: 64m, max_temp_total: 1g }\n"
                        "cache: { max_variants: 4 }\n");
  INFO(joined(set));
  REQUIRE(set.config);
  CHECK(set.config->limits.max_header_fields == 50u);
  CHECK(set.config->limits.min_upload_rate == 10u * 1024);
  CHECK(set.config->limits.upload_rate_grace == 2s);
  CHECK(set.config->limits.max_temp_file_size == 64u << 20);
  CHECK(set.config->limits.max_temp_total == 1u << 30);
  CHECK(set.config->cache.max_variants == 4u);

  LoadResult zero = load(minimal + "limits: { min_upload_rate: 0, max_temp_file_size: 0, max_temp_total: 0 }\n");
  REQUIRE(zero.config);
  CHECK(zero.config->limits.min_upload_rate == 0u);
  CHECK(zero.config->limits.max_temp_file_size == 0u);
  CHECK(zero.config->limits.max_temp_total == 0u);

  CHECK(only_error(minimal + "limits: { max_header_fields: 0 }\n") ==
        "test.yaml:9:30: bad max_header_fields '0': expected an integer from 1 to 100000");
  CHECK(only_error(minimal + "limits: { upload_rate_grace: 0s }\n") ==
        "test.yaml:9:30: 'upload_rate_grace' must be greater than zero");
  CHECK(only_error(minimal + "limits: { max_temp_total: lots }\n").starts_with("test.yaml:9:27: bad size 'lots'"));
  CHECK(only_error(minimal + "cache: { max_variants: 0 }\n") ==
        "test.yaml:9:24: bad max_variants '0': expected an integer from 1 to 10000");
}

TEST_CASE("cache.route_pass_after: 4 by default, 0 turns it off, errors at the value") {
  CHECK(load(minimal).config->cache.route_pass_after == 4u);
  LoadResult off = load(minimal + "cache: { route_pass_after: 0 }\n");
  INFO(joined(off));
  REQUIRE(off.config);
  CHECK(off.config->cache.route_pass_after == 0u);
  CHECK(load(minimal + "cache: { route_pass_after: 1000 }\n").config->cache.route_pass_after == 1000u);
  CHECK(only_error(minimal + "cache: { route_pass_after: 1001 }\n") ==
        "test.yaml:9:28: bad route_pass_after '1001': expected an integer from 0 to 1000");
  CHECK(only_error(minimal + "cache: { route_pass_after: -1 }\n") ==
        "test.yaml:9:28: bad route_pass_after '-1': expected an integer from 0 to 1000");
  CHECK(only_error(minimal + "cache:\n  route_pass_after: [4]\n") ==
        "test.yaml:10:21: 'route_pass_after' must be a non-empty scalar, not a list");
}

TEST_CASE("targeted cache control: cache.targeted_field and forward_targeted") {
  const Config defaults = *load(minimal).config;
  CHECK(defaults.cache.targeted_field.empty());
  CHECK_FALSE(defaults.hosts.at(0).cache.forward_targeted);
  LoadResult set = load(minimal + "    forward_targeted: on\n" + "cache: { targeted_field: Edge-Cache-Control }\n");
  INFO(joined(set));
  REQUIRE(set.config);
  CHECK(set.config->cache.targeted_field == "Edge-Cache-Control");
  CHECK(set.config->hosts.at(0).cache.forward_targeted);
  CHECK(only_error(minimal + "cache: { targeted_field: \"Edge Cache\" }\n").starts_with(
      "test.yaml:9:26: bad targeted_field 'Edge Cache': expected a field name"));
  for (std::string taken : {"Cache-Control", "cdn-cache-control", "Surrogate-Control", "Expires", "Connection"}) {
    CAPTURE(taken);
    CHECK(only_error(minimal + "cache: { targeted_field: " + taken + " }\n") ==
          "test.yaml:9:26: bad targeted_field '" + taken + "': that field already means something else");
  }
  CHECK(only_error(minimal + "    forward_targeted: maybe\n") ==
        "test.yaml:9:23: bad forward_targeted 'maybe': expected on, off, true or false");
}

TEST_CASE("range_fetch_from: a size or off, per host and route") {
  CHECK(load(minimal).config->hosts.at(0).cache.range_fetch_from == 1024u * 1024u);
  CHECK(load(minimal + "    range_fetch_from: 0\n").config->hosts.at(0).cache.range_fetch_from == 0u);
  CHECK(load(minimal + "    range_fetch_from: 4m\n").config->hosts.at(0).cache.range_fetch_from == 4u * 1024u * 1024u);
  CHECK(load(minimal + "    range_fetch_from: off\n").config->hosts.at(0).cache.range_fetch_from == UINT64_MAX);
  CHECK(only_error(minimal + "    range_fetch_from: soon\n").starts_with("test.yaml:9:23: bad size 'soon'"));
  CHECK(only_error(minimal + "    range_fetch_from: [1]\n") ==
        "test.yaml:9:23: 'range_fetch_from' must be a non-empty scalar, not a list");
}

TEST_CASE("compress: on by default, off, or a map whose keys override the host's one by one") {
  using edge::compress::Coding;
  const edge::compress::Rules defaults;
  const LoadResult plain = load(minimal);
  REQUIRE(plain.config);
  CHECK(plain.config->hosts.at(0).cache.compress.enabled);
  CHECK(plain.config->hosts.at(0).cache.compress.codings == defaults.codings);
  CHECK_FALSE(load(minimal + "    compress: off\n").config->hosts.at(0).cache.compress.enabled);

  const LoadResult set = load(minimal +
                              "    compress:\n"
                              "      types: [Text/HTML, \"text/*\"]\n"
                              "      min_length: 1k\n"
                              "      encodings: [gzip, br]\n"
                              "      level: {br: 11, gzip: 1}\n"
                              "      stream_level: {zstd: 19}\n"
                              "    routes:\n"
                              "      - {path: /a/, compress: {encodings: [zstd]}}\n"
                              "      - {path: /b/, compress: off}\n");
  INFO(joined(set));
  REQUIRE(set.config);
  const edge::compress::Rules& host = set.config->hosts.at(0).cache.compress;
  CHECK(host.types == std::vector<std::string>{"text/html", "text/*"});
  CHECK(host.min_length == 1024u);
  CHECK(host.codings == std::vector<Coding>{Coding::kGzip, Coding::kBr});
  CHECK(host.level[static_cast<size_t>(Coding::kBr)] == 11);
  CHECK(host.level[static_cast<size_t>(Coding::kGzip)] == 1);
  CHECK(host.level[static_cast<size_t>(Coding::kZstd)] == defaults.level[static_cast<size_t>(Coding::kZstd)]);
  CHECK(host.stream_level[static_cast<size_t>(Coding::kZstd)] == 19);
  const edge::compress::Rules& a = set.config->hosts.at(0).routes.at(0).cache.compress;
  CHECK(a.enabled);
  CHECK(a.codings == std::vector<Coding>{Coding::kZstd});
  CHECK(a.min_length == 1024u);  // the host's
  CHECK(a.types == host.types);
  CHECK_FALSE(set.config->hosts.at(0).routes.at(1).cache.compress.enabled);
}

TEST_CASE("compress: every bad value is reported where it is") {
  CHECK(only_error(minimal + "    compress: maybe\n") ==
        "test.yaml:9:15: bad compress 'maybe': expected on, off, true or false");
  CHECK(only_error(minimal + "    compress: {level: 3}\n") == "test.yaml:9:23: 'level' must be a map, not a scalar");
  CHECK(only_error(minimal + "    compress: {enabled: on}\n") == "test.yaml:9:16: unknown key 'enabled'");
  CHECK(only_error(minimal + "    compress: {encodings: [br, deflate]}\n") ==
        "test.yaml:9:32: bad encoding 'deflate': expected br, zstd or gzip");
  CHECK(only_error(minimal + "    compress: {encodings: [identity]}\n") ==
        "test.yaml:9:28: bad encoding 'identity': expected br, zstd or gzip");
  CHECK(only_error(minimal + "    compress: {encodings: [GZIP]}\n") ==
        "test.yaml:9:28: bad encoding 'GZIP': expected br, zstd or gzip");
  CHECK(only_error(minimal + "    compress: {encodings: [br, br]}\n") == "test.yaml:9:32: duplicate encoding 'br'");
  CHECK(only_error(minimal + "    compress: {encodings: []}\n") == "test.yaml:9:27: 'encodings' must not be empty");
  CHECK(only_error(minimal + "    compress: {types: [html]}\n") ==
        "test.yaml:9:24: bad media type 'html': expected type/subtype or type/*");
  CHECK(only_error(minimal + "    compress: {types: [\"text/ html\"]}\n") ==
        "test.yaml:9:24: bad media type 'text/ html': expected type/subtype or type/*");
  CHECK(only_error(minimal + "    compress: {types: [\"*/*\"]}\n") ==
        "test.yaml:9:24: bad media type '*/*': expected type/subtype or type/*");
  CHECK(only_error(minimal + "    compress: {types: [text/css, Text/CSS]}\n") ==
        "test.yaml:9:34: duplicate media type 'text/css' (first at line 9)");
  CHECK(only_error(minimal + "    compress: {min_length: lots}\n").starts_with("test.yaml:9:28: bad size 'lots'"));
  CHECK(only_error(minimal + "    compress: {level: {br: 12}}\n") ==
        "test.yaml:9:28: bad level br '12': expected an integer from 0 to 11");
  CHECK(only_error(minimal + "    compress: {level: {gzip: 0}}\n") ==
        "test.yaml:9:30: bad level gzip '0': expected an integer from 1 to 9");
  CHECK(only_error(minimal + "    compress: {stream_level: {zstd: -1}}\n") ==
        "test.yaml:9:37: bad stream_level zstd '-1': expected an integer from 1 to 19");
  CHECK(only_error(minimal + "    compress: {level: {deflate: 1}}\n") == "test.yaml:9:24: unknown key 'deflate'");
}

TEST_CASE("Error::text is file:line:col: message") {
  Error error{{"edge.yaml", 3, 7}, "unknown key 'x'"};
  CHECK(error.text() == "edge.yaml:3:7: unknown key 'x'");
}

TEST_CASE("an unknown key is reported at the key, in every map") {
  CHECK(only_error("colour: blue\n" + minimal) == "test.yaml:1:1: unknown key 'colour'");
  CHECK(only_error(minimal + "limits:\n  header_timeot: 10s\n") ==
        "test.yaml:10:3: unknown key 'header_timeot'");
  CHECK(only_error(with_backend_body("    servers: [127.0.0.1:1]\n    balancer: least_conn\n")) ==
        "test.yaml:6:5: unknown key 'balancer'");
  CHECK(only_error(with_backend_body("    servers: [127.0.0.1:1]\n    pool: { max_idel: 1 }\n")) ==
        "test.yaml:6:13: unknown key 'max_idel'");
  CHECK(only_error(with_backend_body("    servers:\n      - { address: 127.0.0.1:1, wieght: 2 }\n")) ==
        "test.yaml:6:33: unknown key 'wieght'");
  CHECK(only_error("listen:\n  - address: :80\n    tsl: {}\n" + minimal.substr(minimal.find("backends"))) ==
        "test.yaml:3:5: unknown key 'tsl'");
  CHECK(only_error(minimal + "    caching: off\n") == "test.yaml:9:5: unknown key 'caching'");
  CHECK(only_error(minimal + "    routes:\n      - { path: /a, caching: off }\n") ==
        "test.yaml:10:21: unknown key 'caching'");
}

TEST_CASE("a key given twice is an error at the second") {
  CHECK(only_error(minimal + "limits: { idle_timeout: 1s, idle_timeout: 2s }\n") ==
        "test.yaml:9:29: duplicate key 'idle_timeout' (first at line 9)");
}

TEST_CASE("wrong node types are errors at the value, not exceptions") {
  CHECK(only_error("- a\n- b\n") == "test.yaml:1:1: the configuration must be a map, not a list");
  CHECK(only_error("just a string\n") ==
        "test.yaml:1:1: the configuration must be a map, not a scalar");
  CHECK(only_error(minimal + "limits: [1, 2]\n") ==
        "test.yaml:9:9: 'limits' must be a map, not a list");
  CHECK(only_error(minimal + "limits: 10s\n") ==
        "test.yaml:9:9: 'limits' must be a map, not a scalar");
  // An empty value has no position of its own: the error points at its key.
  CHECK(only_error(minimal + "limits:\n") == "test.yaml:9:1: 'limits' must be a map, not empty");
  CHECK(only_error(minimal + "limits:\n  temp_dir: [a]\n") ==
        "test.yaml:10:13: 'temp_dir' must be a non-empty scalar, not a list");
  CHECK(only_error(minimal + "limits:\n  temp_dir: \"\"\n") ==
        "test.yaml:10:13: 'temp_dir' must be a non-empty scalar, not an empty string");

  LoadResult listen_scalar = load("listen: 0.0.0.0:80\n" + minimal.substr(minimal.find("backends")));
  CHECK(error_texts(listen_scalar) ==
        std::vector<std::string>{"test.yaml:1:9: 'listen' must be a list, not a scalar"});
  LoadResult listen_items = load("listen: [0.0.0.0:80]\n" + minimal.substr(minimal.find("backends")));
  CHECK(error_texts(listen_items) ==
        std::vector<std::string>{"test.yaml:1:10: each listen entry must be a map, not a scalar"});

  CHECK(only_error(with_backend_body("    servers: { address: 127.0.0.1:1 }\n")) ==
        "test.yaml:5:14: 'servers' must be a list, not a map");
  CHECK(only_error(with_backend_body("    servers: [[127.0.0.1:1]]\n")) ==
        "test.yaml:5:15: a server must be an address or a map, not a list");
  CHECK(only_error(with_backend_body("    - 127.0.0.1:1\n")) ==
        "test.yaml:5:5: 'backend app' must be a map, not a list");
  CHECK(only_error(minimal + "  - just a name\n") ==
        "test.yaml:9:5: each host must be a map, not a scalar");
  CHECK(only_error(minimal + "  - match: { a: b }\n    backend: app\n") ==
        "test.yaml:9:12: 'match' must be a name or a list of names, not a map");
  CHECK(only_error(minimal + "  - match: [[a]]\n    backend: app\n") ==
        "test.yaml:9:13: a host match must be a scalar, not a list");
  CHECK(only_error(minimal + "    routes: /api/\n") ==
        "test.yaml:9:13: 'routes' must be a list, not a scalar");
  CHECK(only_error(minimal + "    routes: [/api/]\n") ==
        "test.yaml:9:14: each route must be a map, not a scalar");
  CHECK(only_error("? [a]\n: b\n" + minimal) == "test.yaml:1:3: a key must be a scalar, not a list");
}

TEST_CASE("bad durations, sizes and addresses are errors at the value") {
  CHECK(only_error(minimal + "limits:\n  header_timeout: 10\n") ==
        "test.yaml:10:19: bad duration '10': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "limits:\n  idle_timeout: 3d\n") ==
        "test.yaml:10:17: bad duration '3d': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "limits:\n  idle_timeout: 99999999999999999999h\n") ==
        "test.yaml:10:17: bad duration '99999999999999999999h': too large");
  CHECK(only_error(minimal + "limits:\n  body_timeout: 0s\n") ==
        "test.yaml:10:17: 'body_timeout' must be greater than zero");
  CHECK(only_error(minimal + "limits:\n  max_header_bytes: 16kb\n") ==
        "test.yaml:10:21: bad size '16kb': expected a number of bytes with an optional k, m or g "
        "suffix");
  CHECK(only_error(minimal + "limits:\n  max_body_bytes: 99999999999g\n") ==
        "test.yaml:10:19: bad size '99999999999g': too large");
  CHECK(only_error(minimal + "limits:\n  max_header_bytes: 0\n") ==
        "test.yaml:10:21: 'max_header_bytes' must be at least 1");
  CHECK(load(minimal + "limits:\n  max_body_bytes: 0\n").config->limits.max_body_bytes == 0u);
  CHECK(only_error(minimal + "limits:\n  max_connections: 10k\n") ==
        "test.yaml:10:20: bad max_connections '10k': expected an integer from 1 to 4294967295");
  CHECK(only_error(with_backend_body("    servers: [127.0.0.1:1]\n    connect_timeout: 1\n")) ==
        "test.yaml:6:22: bad duration '1': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(with_backend_body("    servers: [127.0.0.1:1]\n    pool: { max_idle: -1 }\n")) ==
        "test.yaml:6:23: bad max_idle '-1': expected an integer from 0 to 1048576");

  CHECK(only_error("listen:\n  - address: app.example.com:80\n" +
                   minimal.substr(minimal.find("backends"))) ==
        "test.yaml:2:14: bad address 'app.example.com:80': 'app.example.com' is not a numeric "
        "IPv4 address (host names are not resolved; use an IP address or localhost)");
  CHECK(only_error("listen:\n  - address: 127.0.0.1:70000\n" +
                   minimal.substr(minimal.find("backends"))) ==
        "test.yaml:2:14: bad address '127.0.0.1:70000': the port must be a number from 1 to "
        "65535");
  CHECK(only_error(with_backend_body("    servers:\n      - ::1:80\n")) ==
        "test.yaml:6:9: bad address '::1:80': an IPv6 address needs brackets, as in [::1]:8080");
  CHECK(only_error(with_backend_body("    servers:\n      - { address: \"[::g]:80\" }\n")) ==
        "test.yaml:6:20: bad address '[::g]:80': '::g' is not an IPv6 address");
}

TEST_CASE("missing required keys are reported at the enclosing map") {
  CHECK(only_error("workers: 2\nlisten:\n  - address: :80\nbackends:\n  a:\n    servers: [:1]\n") ==
        "test.yaml:1:1: missing required key 'hosts'");
  LoadResult nothing = load("workers: 2\n");
  CHECK(error_texts(nothing) == std::vector<std::string>{
                                    "test.yaml:1:1: missing required key 'listen'",
                                    "test.yaml:1:1: missing required key 'backends'",
                                    "test.yaml:1:1: missing required key 'hosts'",
                                });
  CHECK(only_error("listen:\n  - {}\n" + minimal.substr(minimal.find("backends"))) ==
        "test.yaml:2:5: missing required key 'address'");
  CHECK(only_error(with_backend_body("    connect_timeout: 1s\n")) ==
        "test.yaml:5:5: missing required key 'servers'");
  CHECK(only_error(minimal + "  - match: a.example\n") ==
        "test.yaml:9:5: missing required key 'backend'");
  CHECK(only_error(minimal + "  - backend: app\n") ==
        "test.yaml:9:5: missing required key 'match'");
  CHECK(only_error(minimal + "    routes:\n      - backend: app\n") ==
        "test.yaml:10:9: missing required key 'path'");
}

TEST_CASE("empty required lists are errors") {
  CHECK(only_error("listen: []\n" + minimal.substr(minimal.find("backends"))) ==
        "test.yaml:1:9: 'listen' must not be empty");
  CHECK(only_error(with_backend_body("    servers: []\n")) ==
        "test.yaml:5:14: 'servers' must not be empty");
  CHECK(only_error(minimal.substr(0, minimal.find("hosts")) + "hosts: []\n") ==
        "test.yaml:6:8: 'hosts' must not be empty");
  CHECK(only_error(minimal + "  - match: []\n    backend: app\n") ==
        "test.yaml:9:12: 'match' must not be empty");
}

TEST_CASE("a host or route naming a missing backend is an error at the name") {
  CHECK(only_error(minimal + "  - match: a.example\n    backend: ap\n") ==
        "test.yaml:10:14: unknown backend 'ap'");
  CHECK(only_error(minimal + "    routes:\n      - { path: /api/, backend: api }\n") ==
        "test.yaml:10:33: unknown backend 'api'");
}

TEST_CASE("hosts may come before backends in the file") {
  LoadResult result = load(
      "hosts:\n  - { match: a.example, backend: b }\n"
      "listen: [{ address: \":80\" }]\n"
      "backends: { b: { servers: [\"127.0.0.1:1\"] } }\n");
  INFO(joined(result));
  REQUIRE(result.config);
  CHECK(result.config->hosts[0].backend == 0);
}

TEST_CASE("host match names are lower-cased and must be a name, *.domain or *") {
  LoadResult result = load(minimal + "  - match: Shop.Example.COM\n    backend: app\n");
  REQUIRE(result.config);
  CHECK(result.config->hosts[1].match == std::vector<std::string>{"shop.example.com"});

  for (std::string bad : {"a*.b", "*.", "*.*.b", "a..b", ".a", "a.", "a.b:80", "a b", "", "a/b",
                          "**", "[::1]"}) {
    CAPTURE(bad);
    std::string text =
        only_error(minimal + "  - match: [\"" + bad + "\"]\n    backend: app\n");
    CHECK(text.starts_with("test.yaml:9:13: bad host match '"));
    CHECK(text.ends_with("': expected a host name without port, '*.domain' or '*'"));
  }
}

TEST_CASE("a host name matched twice is an error, in one entry or across entries") {
  CHECK(only_error(minimal + "  - match: [a.example, b.example, A.Example]\n    backend: app\n") ==
        "test.yaml:9:35: duplicate host match 'a.example' (first at line 9)");
  CHECK(only_error(minimal + "  - match: \"*\"\n    backend: app\n") ==
        "test.yaml:9:12: duplicate host match '*' (first at line 7)");
  CHECK(only_error(minimal +
                   "  - match: [\"*.example.de\"]\n    backend: app\n"
                   "  - match:\n      - www.example.de\n      - \"*.EXAMPLE.de\"\n"
                   "    backend: app\n") ==
        "test.yaml:13:9: duplicate host match '*.example.de' (first at line 9)");
}

TEST_CASE("route paths start with '/' and are unique within a host") {
  CHECK(only_error(minimal + "    routes:\n      - { path: api/ }\n") ==
        "test.yaml:10:17: bad route path 'api/': it must start with '/'");
  CHECK(only_error(minimal + "    routes:\n      - { path: /a/ }\n      - { path: /a/ }\n") ==
        "test.yaml:11:17: duplicate route path '/a/' (first at line 10)");
  LoadResult two_hosts = load(minimal + "    routes: [{ path: /a/ }]\n" +
                              "  - match: b.example\n    backend: app\n    routes: [{ path: /a/ }]\n");
  INFO(joined(two_hosts));
  CHECK(two_hosts.config.has_value());
}

TEST_CASE("the same listen address twice is an error") {
  CHECK(only_error("listen:\n  - address: \"*:80\"\n  - address: 0.0.0.0:80\n" +
                   minimal.substr(minimal.find("backends"))) ==
        "test.yaml:3:14: duplicate listen address '0.0.0.0:80' (first at line 2)");
}

TEST_CASE("a YAML syntax error is one error at the parser's position") {
  LoadResult result = load("listen:\n  - address: :80\nbackends: [a, b\nhosts: []\n");
  CHECK_FALSE(result.config);
  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].mark.file == "test.yaml");
  CHECK(result.errors[0].mark.line == 4);
  CHECK(result.errors[0].mark.col == 6);
  CHECK(result.errors[0].message == "end of sequence flow not found");

  LoadResult tabs = load("listen:\n\t- address: :80\n");
  REQUIRE(tabs.errors.size() == 1);
  CHECK(tabs.errors[0].mark.line == 2);
}

TEST_CASE("errors on several lines are all reported, top to bottom") {
  LoadResult result = load(
      "workers: 0\n"
      "listen:\n"
      "  - address: example.com:80\n"
      "limits:\n"
      "  header_timeout: 10\n"
      "  max_body_bytes: lots\n"
      "  colour: blue\n"
      "backends:\n"
      "  app:\n"
      "    servers: [127.0.0.1:0]\n"
      "    response_timeout: 1x\n"
      "hosts:\n"
      "  - match: [a.example, a.example]\n"
      "    backend: nowhere\n"
      "    routes:\n"
      "      - { path: nope }\n");
  CHECK_FALSE(result.config);
  std::vector<std::string> lines;
  for (const Error& error : result.errors) {
    lines.push_back(std::to_string(error.mark.line) + ":" + std::to_string(error.mark.col));
  }
  INFO(joined(result));
  CHECK(lines == std::vector<std::string>{"1:10", "3:14", "5:19", "6:19", "7:3", "10:15", "11:23",
                                          "13:24", "14:14", "16:17"});
}

TEST_CASE("empty input and several documents are errors") {
  CHECK(only_error("") == "test.yaml:1:1: the configuration is empty");
  CHECK(only_error("# nothing here\n") == "test.yaml:1:1: the configuration is empty");
  CHECK(only_error(minimal + "---\nworkers: 2\n") ==
        "test.yaml:9:1: only one YAML document is allowed in a configuration");
}

TEST_CASE("a stray token at document level is an error, not an endless stream of documents") {
  CHECK(only_error(",i") == "test.yaml:1:1: unexpected ','");
  CHECK(only_error("[a, b]\n,\n") == "test.yaml:2:1: unexpected ','");
}

TEST_CASE("hostile YAML yields errors and never throws") {
  // A sequence that contains itself.
  CHECK_FALSE(load("&a [*a]").config);
  CHECK_FALSE(load("listen: &a [*a]\n").config);
  CHECK_FALSE(load("listen: &a [{ address: *a }]\n").config);
  CHECK_FALSE(load(std::string(10000, '[')).config);
  CHECK_FALSE(load(std::string(10000, '{')).config);
  CHECK_FALSE(load(std::string("\0\xff\xfe", 3)).config);
  CHECK_FALSE(load("*unknown").config);
  CHECK_FALSE(load("!!binary AAAA: x").config);

  LoadResult anchors = load(
      "listen:\n  - &l { address: \":80\" }\n"
      "backends:\n  a: &b { servers: [\"127.0.0.1:1\"] }\n  b: *b\n"
      "hosts:\n  - { match: x.example, backend: a }\n");
  INFO(joined(anchors));
  CHECK(anchors.config.has_value());
}

TEST_CASE("load_file reads a file and names it in errors") {
  char path[] = "/tmp/edge_conf_testXXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    std::ofstream out(path);
    out << minimal << "limits:\n  idle_timeout: 5\n";
  }
  LoadResult bad = load_file(path);
  REQUIRE(bad.errors.size() == 1);
  CHECK(bad.errors[0].text() == std::string(path) +
                                    ":10:17: bad duration '5': expected a number with a unit: "
                                    "ms, s, m, h");
  {
    std::ofstream out(path);
    out << minimal;
  }
  LoadResult good = load_file(path);
  REQUIRE(good.config);
  CHECK(good.config->file == path);
  CHECK(good.config->listen[0].mark.file == path);
  std::remove(path);

  LoadResult missing = load_file("/nonexistent/edge.yaml");
  CHECK_FALSE(missing.config);
  CHECK(error_texts(missing) ==
        std::vector<std::string>{"/nonexistent/edge.yaml:0:0: cannot read: No such file or directory"});

  LoadResult directory = load_file("/tmp");
  CHECK(error_texts(directory) ==
        std::vector<std::string>{"/tmp:0:0: cannot read: Is a directory"});
}

namespace {

using edge::testing::TempDir;

// The servers line, then `rest`: errors in `rest` start at line 6.
std::string with_backend_keys(const std::string& rest) {
  return with_backend_body("    servers: [127.0.0.1:1]\n" + rest);
}

}  // namespace

TEST_CASE("server weight and max_conns, balance, queue, health, eject and slow_start load") {
  LoadResult result = load(with_backend_body(
      "    servers:\n"
      "      - { address: 127.0.0.1:8210, weight: 2, max_conns: 1 }\n"
      "      - 127.0.0.1:8211\n"
      "      - { address: 127.0.0.1:8212, weight: 256, max_conns: 1000000 }\n"
      "    balance: round_robin\n"
      "    queue: { max: 100, timeout: 250ms }\n"
      "    health: { path: /healthz, interval: 3s, timeout: 500ms, rise: 5, fall: 7 }\n"
      "    eject: { failures: 0, cooldown: 1m }\n"
      "    slow_start: 10s\n"));
  INFO(joined(result));
  REQUIRE(result.config);
  const Backend& backend = result.config->backends.at(0);
  REQUIRE(backend.servers.size() == 3);
  CHECK(backend.servers[0].weight == 2u);
  CHECK(backend.servers[0].max_conns == 1u);
  CHECK(backend.servers[0].mark.line == 6);
  CHECK(backend.servers[1].weight == 1u);
  CHECK(backend.servers[1].max_conns == 0u);
  CHECK(backend.servers[2].weight == 256u);
  CHECK(backend.servers[2].max_conns == 1000000u);
  CHECK(backend.balance == Balance::kRoundRobin);
  CHECK(backend.queue.max == 100u);
  CHECK(backend.queue.timeout == 250ms);
  CHECK(backend.health.enabled);
  CHECK(backend.health.path == "/healthz");
  CHECK(backend.health.interval == 3s);
  CHECK(backend.health.timeout == 500ms);
  CHECK(backend.health.rise == 5u);
  CHECK(backend.health.fall == 7u);
  CHECK(backend.eject.failures == 0u);
  CHECK(backend.eject.cooldown == 1min);
  CHECK(backend.slow_start == 10s);
}

TEST_CASE("the balancing keys take the header's defaults when omitted") {
  LoadResult result = load(minimal);
  REQUIRE(result.config);
  const Backend& backend = result.config->backends.at(0);
  REQUIRE(backend.servers.size() == 1);
  CHECK(backend.servers[0].weight == 1u);
  CHECK(backend.servers[0].max_conns == 0u);
  CHECK(backend.balance == Balance::kLeastConn);
  CHECK(backend.queue.max == 1024u);
  CHECK(backend.queue.timeout == 5s);
  CHECK_FALSE(backend.health.enabled);
  CHECK(backend.health.path == "/health");
  CHECK(backend.health.interval == 2s);
  CHECK(backend.health.timeout == 1s);
  CHECK(backend.health.rise == 2u);
  CHECK(backend.health.fall == 3u);
  CHECK(backend.eject.failures == 3u);
  CHECK(backend.eject.cooldown == 10s);
  CHECK(backend.slow_start == 0ms);
  const Admin& admin = result.config->admin;
  CHECK_FALSE(admin.enabled);
  CHECK(admin.address.text() == "127.0.0.1:9090");
  CHECK(admin.token.empty());

  // A key that is present but says little: each part keeps its defaults.
  LoadResult partial = load(with_backend_keys(
      "    balance: least_conn\n    queue: { max: 0 }\n    health: {}\n    eject: {}\n"
      "    slow_start: 0s\n"));
  INFO(joined(partial));
  REQUIRE(partial.config);
  const Backend& other = partial.config->backends.at(0);
  CHECK(other.balance == Balance::kLeastConn);
  CHECK(other.queue.max == 0u);
  CHECK(other.queue.timeout == 5s);
  CHECK(other.health.enabled);
  CHECK(other.health.path == "/health");
  CHECK(other.health.rise == 2u);
  CHECK(other.eject.failures == 3u);
  CHECK(other.slow_start == 0ms);

  LoadResult path_only = load(with_backend_keys("    health: { path: /ping }\n"));
  REQUIRE(path_only.config);
  CHECK(path_only.config->backends[0].health.enabled);
  CHECK(path_only.config->backends[0].health.path == "/ping");
  CHECK(path_only.config->backends[0].health.interval == 2s);
}

TEST_CASE("bad server weight and max_conns are errors at the value") {
  CHECK(only_error(with_backend_body("    servers:\n      - { address: 127.0.0.1:1, weight: 0 }\n")) ==
        "test.yaml:6:41: bad weight '0': expected an integer from 1 to 256");
  CHECK(only_error(with_backend_body("    servers:\n      - { address: 127.0.0.1:1, weight: 257 }\n")) ==
        "test.yaml:6:41: bad weight '257': expected an integer from 1 to 256");
  CHECK(only_error(with_backend_body("    servers:\n      - { address: 127.0.0.1:1, weight: 1.5 }\n")) ==
        "test.yaml:6:41: bad weight '1.5': expected an integer from 1 to 256");
  CHECK(only_error(with_backend_body(
            "    servers:\n      - { address: 127.0.0.1:1, max_conns: 1000001 }\n")) ==
        "test.yaml:6:44: bad max_conns '1000001': expected an integer from 0 to 1000000");
  CHECK(only_error(with_backend_body("    servers:\n      - { address: 127.0.0.1:1, max_conns: -1 }\n")) ==
        "test.yaml:6:44: bad max_conns '-1': expected an integer from 0 to 1000000");
  CHECK(only_error(with_backend_body(
            "    servers:\n      - { address: 127.0.0.1:1, max_conns: 99999999999999999999 }\n")) ==
        "test.yaml:6:44: bad max_conns '99999999999999999999': expected an integer from 0 to "
        "1000000");
  CHECK(only_error(with_backend_body("    servers:\n      - { weight: 2 }\n")) ==
        "test.yaml:6:9: missing required key 'address'");
}

TEST_CASE("bad balance, queue, health, eject and slow_start values are errors at the value") {
  CHECK(only_error(with_backend_keys("    balance: random\n")) ==
        "test.yaml:6:14: bad balance 'random': expected least_conn or round_robin");
  CHECK(only_error(with_backend_keys("    balance: Round_Robin\n")) ==
        "test.yaml:6:14: bad balance 'Round_Robin': expected least_conn or round_robin");
  CHECK(only_error(with_backend_keys("    balance: [least_conn]\n")) ==
        "test.yaml:6:14: 'balance' must be a non-empty scalar, not a list");

  CHECK(only_error(with_backend_keys("    queue: { max: 1000001 }\n")) ==
        "test.yaml:6:19: bad max '1000001': expected an integer from 0 to 1000000");
  CHECK(only_error(with_backend_keys("    queue: { timeout: 0s }\n")) ==
        "test.yaml:6:23: 'timeout' must be greater than zero");
  CHECK(only_error(with_backend_keys("    queue: { timeout: 5 }\n")) ==
        "test.yaml:6:23: bad duration '5': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(with_backend_keys("    queue: 100\n")) ==
        "test.yaml:6:12: 'queue' must be a map, not a scalar");

  CHECK(only_error(with_backend_keys("    health: { path: health }\n")) ==
        "test.yaml:6:21: bad health path 'health': it must start with '/'");
  CHECK(only_error(with_backend_keys("    health: { path: \"/a b\" }\n")) ==
        "test.yaml:6:21: bad health path '/a b': it must not contain spaces or control "
        "characters");
  CHECK(only_error(with_backend_keys("    health: { path: \"/a\\r\\nX: y\" }\n")) ==
        "test.yaml:6:21: bad health path '/a\r\nX: y': it must not contain spaces or control "
        "characters");
  CHECK(only_error(with_backend_keys("    health: { path: \"\" }\n")) ==
        "test.yaml:6:21: 'path' must be a non-empty scalar, not an empty string");
  CHECK(only_error(with_backend_keys("    health: { interval: 0s }\n")) ==
        "test.yaml:6:25: 'interval' must be greater than zero");
  CHECK(only_error(with_backend_keys("    health: { timeout: 1 }\n")) ==
        "test.yaml:6:24: bad duration '1': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(with_backend_keys("    health: { rise: 0 }\n")) ==
        "test.yaml:6:21: bad rise '0': expected an integer from 1 to 100");
  CHECK(only_error(with_backend_keys("    health: { fall: 101 }\n")) ==
        "test.yaml:6:21: bad fall '101': expected an integer from 1 to 100");
  CHECK(only_error(with_backend_keys("    health: on\n")) ==
        "test.yaml:6:13: 'health' must be a map, not a scalar");
  CHECK(only_error(with_backend_keys("    health:\n")) ==
        "test.yaml:6:5: 'health' must be a map, not empty");

  CHECK(only_error(with_backend_keys("    eject: { failures: 1001 }\n")) ==
        "test.yaml:6:24: bad failures '1001': expected an integer from 0 to 1000");
  CHECK(only_error(with_backend_keys("    eject: { cooldown: 0s }\n")) ==
        "test.yaml:6:24: 'cooldown' must be greater than zero");
  CHECK(only_error(with_backend_keys("    eject: [3]\n")) ==
        "test.yaml:6:12: 'eject' must be a map, not a list");

  CHECK(only_error(with_backend_keys("    slow_start: 10\n")) ==
        "test.yaml:6:17: bad duration '10': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(with_backend_keys("    slow_start: -1s\n")) ==
        "test.yaml:6:17: bad duration '-1s': expected a number with a unit: ms, s, m, h");
}

TEST_CASE("an unknown key inside queue, health, eject or admin is an error at the key") {
  CHECK(only_error(with_backend_keys("    queue: { size: 1 }\n")) ==
        "test.yaml:6:14: unknown key 'size'");
  CHECK(only_error(with_backend_keys("    health: { uri: /x }\n")) ==
        "test.yaml:6:15: unknown key 'uri'");
  CHECK(only_error(with_backend_keys("    eject:\n      errors: 1\n")) ==
        "test.yaml:7:7: unknown key 'errors'");
  TempDir dir;
  std::string token = dir.write("admin.token", "secret\n");
  CHECK(only_error(minimal + "admin:\n  token_file: " + token + "\n  port: 9091\n") ==
        "test.yaml:11:3: unknown key 'port'");
}

TEST_CASE("admin loads its address and reads the token file") {
  TempDir dir;
  std::string token_path = dir.write("admin.token", " \n\ts3cret-token \r\n\n");
  LoadResult result =
      load(minimal + "admin:\n  address: \"[::1]:9443\"\n  token_file: " + token_path + "\n");
  INFO(joined(result));
  REQUIRE(result.config);
  const Admin& admin = result.config->admin;
  CHECK(admin.enabled);
  CHECK(admin.address.text() == "[::1]:9443");
  CHECK(admin.token_file == token_path);
  CHECK(admin.token == "s3cret-token");
  CHECK(admin.mark.file == "test.yaml");
  CHECK(admin.mark.line == 9);
  CHECK(admin.mark.col == 1);

  // The address defaults to loopback; admin may come before listen in the file.
  LoadResult defaults = load("admin: { token_file: " + token_path + " }\n" + minimal);
  INFO(joined(defaults));
  REQUIRE(defaults.config);
  CHECK(defaults.config->admin.enabled);
  CHECK(defaults.config->admin.address.text() == "127.0.0.1:9090");
  CHECK(defaults.config->admin.token == "s3cret-token");
  CHECK(defaults.config->admin.mark.line == 1);
  CHECK(defaults.config->admin.max_connections == 64);
  CHECK(defaults.config->admin.header_timeout == std::chrono::seconds(5));
}

TEST_CASE("admin's connection cap and header timeout") {
  TempDir dir;
  std::string token_path = dir.write("admin.token", "t\n");
  const std::string head = minimal + "admin:\n  token_file: " + token_path + "\n";
  LoadResult result = load(head + "  max_connections: 8\n  header_timeout: 750ms\n");
  INFO(joined(result));
  REQUIRE(result.config);
  CHECK(result.config->admin.max_connections == 8);
  CHECK(result.config->admin.header_timeout == std::chrono::milliseconds(750));
  CHECK(only_error(head + "  max_connections: 0\n") ==
        "test.yaml:11:20: bad max_connections '0': expected an integer from 1 to 65536");
  CHECK(only_error(head + "  max_connections: 70000\n") ==
        "test.yaml:11:20: bad max_connections '70000': expected an integer from 1 to 65536");
  CHECK(only_error(head + "  header_timeout: 0s\n") == "test.yaml:11:19: 'header_timeout' must be greater than zero");
  CHECK(only_error(head + "  header_timeout: soon\n").starts_with("test.yaml:11:19: bad duration 'soon'"));
}

TEST_CASE("admin's session_ttl") {
  TempDir dir;
  std::string token_path = dir.write("admin.token", "t\n");
  const std::string head = minimal + "admin:\n  token_file: " + token_path + "\n";
  LoadResult defaults = load(head);
  INFO(joined(defaults));
  REQUIRE(defaults.config);
  CHECK(defaults.config->admin.session_ttl == std::chrono::hours(8));
  LoadResult result = load(head + "  session_ttl: 90m\n");
  REQUIRE(result.config);
  CHECK(result.config->admin.session_ttl == std::chrono::minutes(90));
  CHECK(load(head + "  session_ttl: 720h\n").config);
  CHECK(only_error(head + "  session_ttl: 0s\n") == "test.yaml:11:16: 'session_ttl' must be greater than zero");
  CHECK(only_error(head + "  session_ttl: 721h\n") == "test.yaml:11:16: 'session_ttl' must be at most 720h (30 days)");
  CHECK(only_error(head + "  session_ttl: later\n").starts_with("test.yaml:11:16: bad duration 'later'"));
}

TEST_CASE("a relative token_file is resolved against the configuration file's directory") {
  TempDir dir;
  std::filesystem::create_directory(dir.path + "/secrets");
  dir.write("secrets/admin.token", "abc\n");
  std::string config = dir.write("edge.yaml", minimal + "admin:\n  token_file: secrets/admin.token\n");
  LoadResult result = load_file(config);
  INFO(joined(result));
  REQUIRE(result.config);
  CHECK(result.config->admin.token_file == dir.path + "/secrets/admin.token");
  CHECK(result.config->admin.token == "abc");

  std::string missing =
      dir.write("missing.yaml", minimal + "admin:\n  token_file: nope.token\n");
  LoadResult bad = load_file(missing);
  CHECK(error_texts(bad) == std::vector<std::string>{
                                missing + ":10:15: cannot read token file '" + dir.path +
                                "/nope.token': No such file or directory"});
}

TEST_CASE("a missing, unreadable, empty or oversized token file is an error at token_file") {
  TempDir dir;
  CHECK(only_error(minimal + "admin:\n  token_file: " + dir.path + "/none\n") ==
        "test.yaml:10:15: cannot read token file '" + dir.path + "/none': No such file or directory");
  CHECK(only_error(minimal + "admin:\n  token_file: " + dir.path + "\n") ==
        "test.yaml:10:15: cannot read token file '" + dir.path + "': Is a directory");
  std::string empty = dir.write("empty.token", "");
  CHECK(only_error(minimal + "admin:\n  token_file: " + empty + "\n") ==
        "test.yaml:10:15: token file '" + empty + "' is empty");
  std::string blank = dir.write("blank.token", " \n\t\r\n");
  CHECK(only_error(minimal + "admin:\n  token_file: " + blank + "\n") ==
        "test.yaml:10:15: token file '" + blank + "' is empty");
  std::string huge = dir.write("huge.token", std::string(65537, 'x'));
  CHECK(only_error(minimal + "admin:\n  token_file: " + huge + "\n") ==
        "test.yaml:10:15: token file '" + huge + "' is larger than 65536 bytes");
  if (geteuid() != 0) {  // root reads anything
    std::string locked = dir.write("locked.token", "secret");
    std::filesystem::permissions(locked, std::filesystem::perms::none);
    CHECK(only_error(minimal + "admin:\n  token_file: " + locked + "\n") ==
          "test.yaml:10:15: cannot read token file '" + locked + "': Permission denied");
  }
  CHECK(only_error(minimal + "admin:\n  token_file: [a]\n") ==
        "test.yaml:10:15: 'token_file' must be a non-empty scalar, not a list");
  CHECK(only_error(minimal + "admin: { address: 127.0.0.1:9091 }\n") ==
        "test.yaml:9:8: missing required key 'token_file'");
  CHECK(only_error(minimal + "admin:\n") == "test.yaml:9:1: 'admin' must be a map, not empty");
}

TEST_CASE("the admin address must not be a listen address") {
  TempDir dir;
  std::string token = dir.write("admin.token", "secret");
  CHECK(only_error(minimal + "admin:\n  address: 127.0.0.1:8080\n  token_file: " + token + "\n") ==
        "test.yaml:10:12: admin address '127.0.0.1:8080' conflicts with listen address "
        "'127.0.0.1:8080' (line 2)");
  CHECK(only_error(minimal + "admin:\n  address: localhost:8080\n  token_file: " + token + "\n") ==
        "test.yaml:10:12: admin address '127.0.0.1:8080' conflicts with listen address "
        "'127.0.0.1:8080' (line 2)");
  // A wildcard listener on the same port takes the admin port too; the default address is at
  // fault when there is no address key, so the error is at `admin`.
  const std::string rest = minimal.substr(minimal.find("backends"));
  CHECK(only_error("listen:\n  - address: \"*:9090\"\n" + rest + "admin: { token_file: " + token +
                   " }\n") ==
        "test.yaml:9:1: admin address '127.0.0.1:9090' conflicts with listen address "
        "'0.0.0.0:9090' (line 2)");
  CHECK(only_error("listen:\n  - address: \"[::1]:9000\"\n  - address: 127.0.0.1:9000\n" + rest +
                   "admin: { address: \"[::1]:9000\", token_file: " + token + " }\n") ==
        "test.yaml:10:19: admin address '[::1]:9000' conflicts with listen address '[::1]:9000' "
        "(line 2)");
  // A different port, or the other address family's loopback, is fine.
  for (const char* address : {"127.0.0.1:8081", "\"[::1]:8080\"", "0.0.0.0:8081"}) {
    CAPTURE(address);
    LoadResult ok = load(minimal + "admin:\n  address: " + address + "\n  token_file: " + token + "\n");
    INFO(joined(ok));
    CHECK(ok.config.has_value());
  }
  // A bad admin address is one error, not two.
  CHECK(only_error(minimal + "admin:\n  address: 127.0.0.1:65536\n  token_file: " + token + "\n") ==
        "test.yaml:10:12: bad address '127.0.0.1:65536': the port must be a number from 1 to 65535");
}

TEST_CASE("port 0 (the kernel's choice) is allowed where edge listens, and conflicts with nothing") {
  TempDir dir;
  std::string token = dir.write("admin.token", "secret");
  const std::string rest = minimal.substr(minimal.find("backends"));
  LoadResult ok = load("listen:\n  - address: 127.0.0.1:0\n  - address: 127.0.0.1:0\n  - address: \"*:0\"\n" + rest +
                       "admin:\n  address: 127.0.0.1:0\n  token_file: " + token + "\n");
  INFO(joined(ok));
  REQUIRE(ok.config.has_value());
  REQUIRE(ok.config->listen.size() == 3);
  CHECK(ok.config->listen[0].address.port == 0);
  CHECK(ok.config->admin.address.port == 0);
  // Where edge connects, a port 0 is still an error.
  CHECK(only_error(minimal.substr(0, minimal.find("backends")) + "backends:\n  app: {servers: [127.0.0.1:0]}\n" +
                   minimal.substr(minimal.find("hosts")))
            .ends_with("bad address '127.0.0.1:0': the port must be a number from 1 to 65535"));
  CHECK_FALSE(parse_address("127.0.0.1:0").has_value());
}

TEST_CASE("errors in the new keys are all reported, top to bottom") {
  LoadResult result = load(
      "listen:\n"
      "  - address: 127.0.0.1:9090\n"
      "admin: { token_file: /nonexistent/edge.token, colour: red }\n"
      "backends:\n"
      "  app:\n"
      "    servers:\n"
      "      - { address: 127.0.0.1:1, weight: 0, max_conns: x }\n"
      "    balance: fastest\n"
      "    queue: { max: -1, timeout: 0s }\n"
      "    health: { path: x, rise: 0 }\n"
      "    eject: { failures: many }\n"
      "    slow_start: soon\n"
      "hosts:\n"
      "  - { match: \"*\", backend: app }\n");
  CHECK_FALSE(result.config);
  std::vector<std::string> positions;
  for (const Error& error : result.errors) {
    positions.push_back(std::to_string(error.mark.line) + ":" + std::to_string(error.mark.col));
  }
  INFO(joined(result));
  CHECK(positions == std::vector<std::string>{"3:1", "3:22", "3:47", "7:41", "7:55", "8:14",
                                              "9:19", "9:32", "10:21", "10:30", "11:24",
                                              "12:17"});
}

// The cache: top-level `cache:` map, and the per-host and per-route policy keys.

TEST_CASE("without cache keys, hosts, routes and the cache take the header's defaults") {
  LoadResult result = load(minimal + "    routes: [{ path: /a/ }]\n");
  INFO(joined(result));
  REQUIRE(result.config);
  const Config& config = *result.config;
  const CachePolicy defaults;
  for (const CachePolicy* policy : {&config.hosts.at(0).cache, &config.hosts[0].routes.at(0).cache}) {
    CHECK(policy->enabled);
    CHECK(policy->enabled == defaults.enabled);
    CHECK(policy->ttl == 0ms);
    CHECK(policy->max_ttl == 0ms);
    CHECK(policy->grace == 0ms);
    CHECK_FALSE(policy->store_set_cookie);
    CHECK(policy->bypass_on_cookie.empty());
    CHECK(policy->key_cookies.empty());
    CHECK_FALSE(policy->key_scheme);
    CHECK_FALSE(policy->esi);
  }
  const Cache& cache = config.cache;
  CHECK(cache.memory == 256ull * 1024 * 1024);
  CHECK(cache.max_object == 16ull * 1024 * 1024);
  CHECK(cache.coalesce_timeout == 5s);
  CHECK(cache.hit_for_pass == 120s);
  CHECK(cache.heuristic_max == 24h);
  CHECK(cache.x_cache);
  CHECK(cache.mark.line == 0);

  // An empty map keeps every default but records where it is.
  LoadResult empty = load(minimal + "cache: {}\n");
  INFO(joined(empty));
  REQUIRE(empty.config);
  CHECK(empty.config->cache.memory == 256ull * 1024 * 1024);
  CHECK(empty.config->cache.x_cache);
  CHECK(empty.config->cache.mark.file == "test.yaml");
  CHECK(empty.config->cache.mark.line == 9);
  CHECK(empty.config->cache.mark.col == 1);
}

TEST_CASE("the top-level cache map loads every key") {
  LoadResult result = load("cache:\n"
                           "  memory: 1g\n"
                           "  max_object: 64m\n"
                           "  coalesce_timeout: 250ms\n"
                           "  hit_for_pass: 30s\n"
                           "  heuristic_max: 2h\n"
                           "  x_cache: off\n" +
                           minimal);
  INFO(joined(result));
  REQUIRE(result.config);
  const Cache& cache = result.config->cache;
  CHECK(cache.memory == 1ull << 30);
  CHECK(cache.max_object == 64ull << 20);
  CHECK(cache.coalesce_timeout == 250ms);
  CHECK(cache.hit_for_pass == 30s);
  CHECK(cache.heuristic_max == 2h);
  CHECK_FALSE(cache.x_cache);
  CHECK(cache.mark.file == "test.yaml");
  CHECK(cache.mark.line == 1);
  CHECK(cache.mark.col == 1);

  // Zero hit_for_pass (bare or with a unit) never marks; max_object may equal memory.
  for (const char* zero : {"0", "0s", "0ms"}) {
    CAPTURE(zero);
    LoadResult z = load(minimal + "cache: { memory: 1m, max_object: 1024k, hit_for_pass: " +
                        zero + ", x_cache: true }\n");
    INFO(joined(z));
    REQUIRE(z.config);
    CHECK(z.config->cache.hit_for_pass == 0ms);
    CHECK(z.config->cache.memory == z.config->cache.max_object);
    CHECK(z.config->cache.x_cache);
  }
  LoadResult small = load(minimal + "cache: { memory: 100, max_object: 1, x_cache: false }\n");
  INFO(joined(small));
  REQUIRE(small.config);
  CHECK(small.config->cache.memory == 100u);
  CHECK(small.config->cache.max_object == 1u);
  CHECK_FALSE(small.config->cache.x_cache);
}

TEST_CASE("bad values in the top-level cache map are errors at the value") {
  CHECK(only_error(minimal + "cache: { memory: 0 }\n") ==
        "test.yaml:9:18: 'memory' must be at least 1");
  CHECK(only_error(minimal + "cache: { memory: lots }\n") ==
        "test.yaml:9:18: bad size 'lots': expected a number of bytes with an optional k, m or g "
        "suffix");
  CHECK(only_error(minimal + "cache: { max_object: 0 }\n") ==
        "test.yaml:9:22: 'max_object' must be at least 1");
  CHECK(only_error(minimal + "cache: { max_object: [1m] }\n") ==
        "test.yaml:9:22: 'max_object' must be a non-empty scalar, not a list");
  CHECK(only_error(minimal + "cache: { coalesce_timeout: 0s }\n") ==
        "test.yaml:9:28: 'coalesce_timeout' must be greater than zero");
  CHECK(only_error(minimal + "cache: { coalesce_timeout: 0 }\n") ==
        "test.yaml:9:28: bad duration '0': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "cache: { hit_for_pass: 2 }\n") ==
        "test.yaml:9:24: bad duration '2': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "cache: { hit_for_pass: -1s }\n") ==
        "test.yaml:9:24: bad duration '-1s': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "cache: { heuristic_max: 0s }\n") ==
        "test.yaml:9:25: 'heuristic_max' must be greater than zero");
  CHECK(only_error(minimal + "cache: { heuristic_max: 1d }\n") ==
        "test.yaml:9:25: bad duration '1d': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "cache: { x_cache: yes }\n") ==
        "test.yaml:9:19: bad x_cache 'yes': expected on, off, true or false");
  CHECK(only_error(minimal + "cache: { x_cache: On }\n") ==
        "test.yaml:9:19: bad x_cache 'On': expected on, off, true or false");
  CHECK(only_error(minimal + "cache: { x_cache: {} }\n") ==
        "test.yaml:9:19: 'x_cache' must be a non-empty scalar, not a map");
}

TEST_CASE("max_object above memory is an error at max_object, or at memory for the default") {
  CHECK(only_error(minimal + "cache:\n  memory: 16m\n  max_object: 17m\n") ==
        "test.yaml:11:15: 'max_object' (17m) must not be larger than 'memory' (16m)");
  CHECK(only_error(minimal + "cache:\n  max_object: 1g\n") ==
        "test.yaml:10:15: 'max_object' (1g) must not be larger than 'memory' (256m)");
  CHECK(only_error(minimal + "cache:\n  memory: 8m\n") ==
        "test.yaml:10:11: 'max_object' (16m) must not be larger than 'memory' (8m)");
  CHECK(only_error(minimal + "cache: { memory: 1000, max_object: 1001 }\n") ==
        "test.yaml:9:36: 'max_object' (1001) must not be larger than 'memory' (1000)");
  // A bad memory is one error, not two.
  CHECK(only_error(minimal + "cache: { memory: 1x, max_object: 1m }\n") ==
        "test.yaml:9:18: bad size '1x': expected a number of bytes with an optional k, m or g "
        "suffix");
}

TEST_CASE("the top-level cache must be a map of known keys") {
  CHECK(only_error(minimal + "cache: off\n") == "test.yaml:9:8: 'cache' must be a map, not a scalar");
  CHECK(only_error(minimal + "cache:\n") == "test.yaml:9:1: 'cache' must be a map, not empty");
  CHECK(only_error(minimal + "cache: [memory]\n") ==
        "test.yaml:9:8: 'cache' must be a map, not a list");
  CHECK(only_error(minimal + "cache:\n  memory: 1g\n  size: 1g\n") ==
        "test.yaml:11:3: unknown key 'size'");
  CHECK(only_error(minimal + "cache: { ttl: 1m }\n") == "test.yaml:9:10: unknown key 'ttl'");
  CHECK(only_error(minimal + "cache: { memory: 1g, memory: 2g }\n") ==
        "test.yaml:9:22: duplicate key 'memory' (first at line 9)");
}

TEST_CASE("a host entry loads every cache key") {
  LoadResult result = load(minimal +
                           "    cache: off\n"
                           "    ttl: 10m\n"
                           "    max_ttl: 24h\n"
                           "    grace: 30s\n"
                           "    store_set_cookie: true\n"
                           "    bypass_on_cookie: [session, \"__Host-id\", \"a!#$%&'*+-.^_`|~9\"]\n"
                           "    key_cookies: Lang\n"
                           "    key_scheme: on\n");
  INFO(joined(result));
  REQUIRE(result.config);
  const CachePolicy& policy = result.config->hosts.at(0).cache;
  CHECK_FALSE(policy.enabled);
  CHECK(policy.ttl == 10min);
  CHECK(policy.max_ttl == 24h);
  CHECK(policy.grace == 30s);
  CHECK(policy.store_set_cookie);
  CHECK(policy.bypass_on_cookie ==
        std::vector<std::string>{"session", "__Host-id", "a!#$%&'*+-.^_`|~9"});
  CHECK(policy.key_cookies == std::vector<std::string>{"Lang"});
  CHECK(policy.key_scheme);
}

TEST_CASE("cache takes on, off, true and false; the cookie lists take one name or a list") {
  for (auto [text, enabled] : {std::pair{"on", true}, std::pair{"true", true},
                               std::pair{"off", false}, std::pair{"false", false}}) {
    CAPTURE(text);
    LoadResult result = load(minimal + "    cache: " + text + "\n    store_set_cookie: " +
                             text + "\n");
    INFO(joined(result));
    REQUIRE(result.config);
    CHECK(result.config->hosts[0].cache.enabled == enabled);
    CHECK(result.config->hosts[0].cache.store_set_cookie == enabled);
  }
  LoadResult lists = load(minimal + "    bypass_on_cookie: []\n    key_cookies:\n      - a\n      - b\n");
  INFO(joined(lists));
  REQUIRE(lists.config);
  CHECK(lists.config->hosts[0].cache.bypass_on_cookie.empty());
  CHECK(lists.config->hosts[0].cache.key_cookies == std::vector<std::string>{"a", "b"});
}

TEST_CASE("ttl, max_ttl and grace take zero, bare or with a unit") {
  for (const char* zero : {"0", "0s", "0ms", "0h"}) {
    CAPTURE(zero);
    const std::string z = zero;
    LoadResult result =
        load(minimal + "    ttl: " + z + "\n    max_ttl: " + z + "\n    grace: " + z + "\n" +
             "    routes: [{ path: /a/, ttl: " + z + ", max_ttl: " + z + ", grace: " + z + " }]\n");
    INFO(joined(result));
    REQUIRE(result.config);
    for (const CachePolicy* policy :
         {&result.config->hosts[0].cache, &result.config->hosts[0].routes.at(0).cache}) {
      CHECK(policy->ttl == 0ms);
      CHECK(policy->max_ttl == 0ms);
      CHECK(policy->grace == 0ms);
    }
  }
  // A zero on either side means "none" and never conflicts; equal values are fine.
  for (const char* keys : {"ttl: 1h, max_ttl: 0", "ttl: 0, max_ttl: 1s", "ttl: 60s, max_ttl: 1m"}) {
    CAPTURE(keys);
    LoadResult result = load(minimal + "    routes: [{ path: /a/, " + keys + " }]\n");
    INFO(joined(result));
    CHECK(result.config.has_value());
  }
}

TEST_CASE("a route takes every cache key it does not set from its host") {
  LoadResult result = load(minimal +
                           "  - match: a.example\n"          // 9
                           "    backend: app\n"              // 10
                           "    routes:\n"                   // 11: before the host's keys
                           "      - { path: /same/ }\n"      // 12
                           "      - { path: /api/, cache: on, ttl: 1m, key_cookies: [], grace: 0 }\n"
                           "      - path: /set/\n"           // 14
                           "        max_ttl: 1h\n"
                           "        store_set_cookie: false\n"
                           "        bypass_on_cookie: admin\n"
                           "    cache: off\n"                // 18
                           "    ttl: 5m\n"
                           "    max_ttl: 2h\n"
                           "    grace: 10s\n"
                           "    store_set_cookie: on\n"
                           "    bypass_on_cookie: [session, token]\n"
                           "    key_cookies: [lang]\n");
  INFO(joined(result));
  REQUIRE(result.config);
  const Host& host = result.config->hosts.at(1);
  REQUIRE(host.routes.size() == 3);

  const CachePolicy& same = host.routes[0].cache;
  CHECK_FALSE(same.enabled);
  CHECK(same.ttl == 5min);
  CHECK(same.max_ttl == 2h);
  CHECK(same.grace == 10s);
  CHECK(same.store_set_cookie);
  CHECK(same.bypass_on_cookie == std::vector<std::string>{"session", "token"});
  CHECK(same.key_cookies == std::vector<std::string>{"lang"});

  const CachePolicy& api = host.routes[1].cache;
  CHECK(api.enabled);
  CHECK(api.ttl == 1min);
  CHECK(api.max_ttl == 2h);
  CHECK(api.grace == 0ms);
  CHECK(api.store_set_cookie);
  CHECK(api.bypass_on_cookie == std::vector<std::string>{"session", "token"});
  CHECK(api.key_cookies.empty());

  const CachePolicy& set = host.routes[2].cache;
  CHECK_FALSE(set.enabled);
  CHECK(set.ttl == 5min);
  CHECK(set.max_ttl == 1h);
  CHECK(set.grace == 10s);
  CHECK_FALSE(set.store_set_cookie);
  CHECK(set.bypass_on_cookie == std::vector<std::string>{"admin"});
  CHECK(set.key_cookies == std::vector<std::string>{"lang"});

  // The host keeps its own policy; another host's routes start from the defaults.
  CHECK_FALSE(host.cache.enabled);
  CHECK(host.cache.bypass_on_cookie == std::vector<std::string>{"session", "token"});
  LoadResult other = load(minimal + "    routes: [{ path: /x/, ttl: 1m }]\n  - match: b.example\n"
                                    "    backend: app\n    cache: off\n    ttl: 1h\n");
  INFO(joined(other));
  REQUIRE(other.config);
  const CachePolicy& x = other.config->hosts.at(0).routes.at(0).cache;
  CHECK(x.enabled);
  CHECK(x.ttl == 1min);
  CHECK(x.max_ttl == 0ms);
}

TEST_CASE("bad cache keys on a host or route are errors at the value") {
  CHECK(only_error(minimal + "    cache: maybe\n") ==
        "test.yaml:9:12: bad cache 'maybe': expected on, off, true or false");
  CHECK(only_error(minimal + "    cache: yes\n") ==
        "test.yaml:9:12: bad cache 'yes': expected on, off, true or false");
  CHECK(only_error(minimal + "    cache: [on]\n") ==
        "test.yaml:9:12: 'cache' must be a non-empty scalar, not a list");
  CHECK(only_error(minimal + "    cache: { ttl: 1m }\n") ==
        "test.yaml:9:12: 'cache' must be a non-empty scalar, not a map");
  CHECK(only_error(minimal + "    cache:\n") ==
        "test.yaml:9:5: 'cache' must be a non-empty scalar, not empty");
  CHECK(only_error(minimal + "    ttl: 10\n") ==
        "test.yaml:9:10: bad duration '10': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "    ttl: 00\n") ==
        "test.yaml:9:10: bad duration '00': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "    max_ttl: 1d\n") ==
        "test.yaml:9:14: bad duration '1d': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "    grace: -5s\n") ==
        "test.yaml:9:12: bad duration '-5s': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "    grace: [5s]\n") ==
        "test.yaml:9:12: 'grace' must be a non-empty scalar, not a list");
  CHECK(only_error(minimal + "    store_set_cookie: 1\n") ==
        "test.yaml:9:23: bad store_set_cookie '1': expected on, off, true or false");
  CHECK(only_error(minimal + "    routes:\n      - { path: /a/, ttl: soon }\n") ==
        "test.yaml:10:27: bad duration 'soon': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "    routes:\n      - path: /a/\n        cache: of\n") ==
        "test.yaml:11:16: bad cache 'of': expected on, off, true or false");
}

TEST_CASE("unknown keys next to the cache keys are errors at the key") {
  CHECK(only_error(minimal + "    tll: 1m\n") == "test.yaml:9:5: unknown key 'tll'");
  CHECK(only_error(minimal + "    routes:\n      - { path: /a/, cahce: off }\n") ==
        "test.yaml:10:22: unknown key 'cahce'");
  CHECK(only_error(minimal + "    memory: 1g\n") == "test.yaml:9:5: unknown key 'memory'");
  CHECK(only_error(minimal + "    ttl: 1m\n    ttl: 2m\n") ==
        "test.yaml:10:5: duplicate key 'ttl' (first at line 9)");
}

TEST_CASE("cookie names must be tokens, given once, as a name or a list of names") {
  CHECK(only_error(minimal + "    bypass_on_cookie: [\"a b\"]\n") ==
        "test.yaml:9:24: bad cookie name 'a b': expected a token (letters, digits and "
        "!#$%&'*+-.^_`|~)");
  for (const char* bad : {"a=b", "a;b", "a,b", "\\\"a\\\"", "a/b", "(a)", "a:b", "a\\tb", "caf\\u00e9"}) {
    CAPTURE(bad);
    std::string text = only_error(minimal + "    key_cookies: [\"" + bad + "\"]\n");
    CHECK(text.starts_with("test.yaml:9:19: bad cookie name '"));
    CHECK(text.ends_with("': expected a token (letters, digits and !#$%&'*+-.^_`|~)"));
  }
  CHECK(only_error(minimal + "    key_cookies: [a, \"\"]\n") ==
        "test.yaml:9:22: bad cookie name '': expected a token (letters, digits and "
        "!#$%&'*+-.^_`|~)");
  CHECK(only_error(minimal + "    key_cookies: \"\"\n") ==
        "test.yaml:9:18: bad cookie name '': expected a token (letters, digits and "
        "!#$%&'*+-.^_`|~)");
  CHECK(only_error(minimal + "    key_cookies: a b\n") ==
        "test.yaml:9:18: bad cookie name 'a b': expected a token (letters, digits and "
        "!#$%&'*+-.^_`|~)");
  CHECK(only_error(minimal + "    bypass_on_cookie:\n      - sid\n      - [a]\n") ==
        "test.yaml:11:9: a cookie name must be a scalar, not a list");
  CHECK(only_error(minimal + "    bypass_on_cookie:\n      - sid\n      - \n") ==
        "test.yaml:9:5: a cookie name must be a scalar, not empty");
  CHECK(only_error(minimal + "    key_cookies: [sid, lang, sid]\n") ==
        "test.yaml:9:30: duplicate cookie name 'sid' (first at line 9)");
  CHECK(only_error(minimal + "    bypass_on_cookie: { sid: 1 }\n") ==
        "test.yaml:9:23: 'bypass_on_cookie' must be a cookie name or a list of them, not a map");
  CHECK(only_error(minimal + "    bypass_on_cookie:\n") ==
        "test.yaml:9:5: 'bypass_on_cookie' must be a cookie name or a list of them, not empty");
  CHECK(only_error(minimal + "    routes: [{ path: /a/, key_cookies: [\"x y\"] }]\n") ==
        "test.yaml:9:41: bad cookie name 'x y': expected a token (letters, digits and "
        "!#$%&'*+-.^_`|~)");
  // Names are case-sensitive: these are two cookies.
  LoadResult cased = load(minimal + "    key_cookies: [sid, SID]\n");
  INFO(joined(cased));
  REQUIRE(cased.config);
  CHECK(cased.config->hosts[0].cache.key_cookies == std::vector<std::string>{"sid", "SID"});
}

TEST_CASE("max_ttl below a non-zero ttl is an error at the key that sets it") {
  // Both on the host: at max_ttl, once, not again for each route.
  CHECK(only_error(minimal + "    ttl: 1h\n    max_ttl: 30m\n    routes: [{ path: /a/ }]\n") ==
        "test.yaml:10:14: 'max_ttl' (30m) must not be less than 'ttl' (1h)");
  CHECK(only_error(minimal + "    max_ttl: 59s\n    ttl: 1m\n") ==
        "test.yaml:9:14: 'max_ttl' (59s) must not be less than 'ttl' (1m)");
  CHECK(only_error(minimal + "    routes: [{ path: /a/, ttl: 1500ms, max_ttl: 1s }]\n") ==
        "test.yaml:9:49: 'max_ttl' (1s) must not be less than 'ttl' (1500ms)");
  // One side on the route, the other inherited: at the route's key, naming the host's line.
  CHECK(only_error(minimal + "    max_ttl: 1m\n    routes:\n      - { path: /a/, ttl: 2m }\n") ==
        "test.yaml:11:27: 'max_ttl' (1m, from the host at line 9) must not be less than 'ttl' "
        "(2m)");
  CHECK(only_error(minimal + "    ttl: 90s\n    routes:\n      - { path: /a/, max_ttl: 1m }\n") ==
        "test.yaml:11:31: 'max_ttl' (1m) must not be less than 'ttl' (90s, from the host at line "
        "9)");
  // A route's ttl up to its host's max_ttl is fine, wherever the host's keys are in the file.
  LoadResult fixed = load(minimal + "    routes: [{ path: /a/, ttl: 1m }]\n    max_ttl: 2m\n");
  INFO(joined(fixed));
  CHECK(fixed.config.has_value());
  // A bad ttl is one error, not two.
  CHECK(only_error(minimal + "    ttl: 1x\n    max_ttl: 1s\n") ==
        "test.yaml:9:10: bad duration '1x': expected a number with a unit: ms, s, m, h");
}

TEST_CASE("cache errors across the file are all reported, top to bottom") {
  LoadResult result = load(
      "cache: { memory: 1m, max_object: 2m, colour: red }\n"
      "listen:\n"
      "  - address: 127.0.0.1:8080\n"
      "backends:\n"
      "  app:\n"
      "    servers: [127.0.0.1:9000]\n"
      "hosts:\n"
      "  - match: \"*\"\n"
      "    backend: app\n"
      "    cache: sometimes\n"
      "    ttl: 1m\n"
      "    max_ttl: 10s\n"
      "    key_cookies: [\"a;b\"]\n"
      "    routes:\n"
      "      - { path: /a/, grace: 5, bypass_on_cookie: {} }\n");
  CHECK_FALSE(result.config);
  std::vector<std::string> positions;
  for (const Error& error : result.errors) {
    positions.push_back(std::to_string(error.mark.line) + ":" + std::to_string(error.mark.col));
  }
  INFO(joined(result));
  CHECK(positions == std::vector<std::string>{"1:34", "1:38", "10:12", "12:14", "13:19",
                                              "15:29", "15:50"});
}

// ESI: the top-level `esi:` map, and the per-host and per-route `esi` switch.

TEST_CASE("without esi keys, hosts, routes and the esi map take the header's defaults") {
  LoadResult result = load(minimal + "    routes: [{ path: /a/ }]\n");
  INFO(joined(result));
  REQUIRE(result.config);
  const Config& config = *result.config;
  const CachePolicy policy_defaults;
  CHECK_FALSE(policy_defaults.esi);
  CHECK_FALSE(config.hosts.at(0).cache.esi);
  CHECK_FALSE(config.hosts[0].routes.at(0).cache.esi);
  const Esi& esi = config.esi;
  CHECK(esi.max_depth == 5u);
  CHECK(esi.include_timeout == 5s);
  CHECK(esi.allow_hosts.empty());
  CHECK(esi.on_error == EsiOnError::kContinue);
  CHECK(esi.max_includes == 256u);
  CHECK(esi.mark.line == 0);
  const Esi defaults;
  CHECK(esi.max_depth == defaults.max_depth);
  CHECK(esi.include_timeout == defaults.include_timeout);
  CHECK(esi.on_error == defaults.on_error);
  CHECK(esi.max_includes == defaults.max_includes);

  // An empty map keeps every default but records where it is.
  LoadResult empty = load(minimal + "esi: {}\n");
  INFO(joined(empty));
  REQUIRE(empty.config);
  CHECK(empty.config->esi.max_depth == 5u);
  CHECK(empty.config->esi.allow_hosts.empty());
  CHECK(empty.config->esi.mark.file == "test.yaml");
  CHECK(empty.config->esi.mark.line == 9);
  CHECK(empty.config->esi.mark.col == 1);
}

TEST_CASE("the top-level esi map loads every key") {
  LoadResult result = load("esi:\n"
                           "  max_depth: 20\n"
                           "  include_timeout: 250ms\n"
                           "  allow_hosts: [Static.Example.com, \"*.CDN.example\", api.example]\n"
                           "  on_error: fail\n"
                           "  max_includes: 10000\n" +
                           minimal);
  INFO(joined(result));
  REQUIRE(result.config);
  const Esi& esi = result.config->esi;
  CHECK(esi.max_depth == 20u);
  CHECK(esi.include_timeout == 250ms);
  CHECK(esi.allow_hosts ==
        std::vector<std::string>{"static.example.com", "*.cdn.example", "api.example"});
  CHECK(esi.on_error == EsiOnError::kFail);
  CHECK(esi.max_includes == 10000u);
  CHECK(esi.mark.file == "test.yaml");
  CHECK(esi.mark.line == 1);
  CHECK(esi.mark.col == 1);

  // The lower bounds; one host may stand without brackets; continue is named explicitly.
  LoadResult low = load(minimal + "esi: { max_depth: 1, include_timeout: 1ms, max_includes: 1, "
                                  "allow_hosts: www.Example.org, on_error: continue }\n");
  INFO(joined(low));
  REQUIRE(low.config);
  CHECK(low.config->esi.max_depth == 1u);
  CHECK(low.config->esi.include_timeout == 1ms);
  CHECK(low.config->esi.max_includes == 1u);
  CHECK(low.config->esi.allow_hosts == std::vector<std::string>{"www.example.org"});
  CHECK(low.config->esi.on_error == EsiOnError::kContinue);

  // An empty list is the default: only the page's own host.
  LoadResult none = load(minimal + "esi:\n  allow_hosts: []\n  include_timeout: 2m\n");
  INFO(joined(none));
  REQUIRE(none.config);
  CHECK(none.config->esi.allow_hosts.empty());
  CHECK(none.config->esi.include_timeout == 2min);
}

TEST_CASE("bad values in the top-level esi map are errors at the value") {
  CHECK(only_error(minimal + "esi: { max_depth: 0 }\n") ==
        "test.yaml:9:19: bad max_depth '0': expected an integer from 1 to 20");
  CHECK(only_error(minimal + "esi: { max_depth: 21 }\n") ==
        "test.yaml:9:19: bad max_depth '21': expected an integer from 1 to 20");
  CHECK(only_error(minimal + "esi: { max_depth: -1 }\n") ==
        "test.yaml:9:19: bad max_depth '-1': expected an integer from 1 to 20");
  CHECK(only_error(minimal + "esi: { max_depth: deep }\n") ==
        "test.yaml:9:19: bad max_depth 'deep': expected an integer from 1 to 20");
  CHECK(only_error(minimal + "esi: { max_depth: [5] }\n") ==
        "test.yaml:9:19: 'max_depth' must be a non-empty scalar, not a list");
  CHECK(only_error(minimal + "esi: { include_timeout: 0s }\n") ==
        "test.yaml:9:25: 'include_timeout' must be greater than zero");
  CHECK(only_error(minimal + "esi: { include_timeout: 0 }\n") ==
        "test.yaml:9:25: bad duration '0': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "esi: { include_timeout: 5 }\n") ==
        "test.yaml:9:25: bad duration '5': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "esi: { include_timeout: 1d }\n") ==
        "test.yaml:9:25: bad duration '1d': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(minimal + "esi: { on_error: ignore }\n") ==
        "test.yaml:9:18: bad on_error 'ignore': expected continue or fail");
  CHECK(only_error(minimal + "esi: { on_error: Fail }\n") ==
        "test.yaml:9:18: bad on_error 'Fail': expected continue or fail");
  CHECK(only_error(minimal + "esi: { on_error: [fail] }\n") ==
        "test.yaml:9:18: 'on_error' must be a non-empty scalar, not a list");
  CHECK(only_error(minimal + "esi:\n  on_error:\n") ==
        "test.yaml:10:3: 'on_error' must be a non-empty scalar, not empty");
  CHECK(only_error(minimal + "esi: { max_includes: 0 }\n") ==
        "test.yaml:9:22: bad max_includes '0': expected an integer from 1 to 10000");
  CHECK(only_error(minimal + "esi: { max_includes: 10001 }\n") ==
        "test.yaml:9:22: bad max_includes '10001': expected an integer from 1 to 10000");
}

TEST_CASE("allow_hosts takes host names and *.domain wildcards, never '*'") {
  CHECK(only_error(minimal + "esi:\n  allow_hosts:\n    - a.example\n    - \"*\"\n") ==
        "test.yaml:12:7: '*' is not allowed in allow_hosts: name the hosts, or use '*.domain'");
  CHECK(only_error(minimal + "esi: { allow_hosts: \"*\" }\n") ==
        "test.yaml:9:21: '*' is not allowed in allow_hosts: name the hosts, or use '*.domain'");
  CHECK(only_error(minimal + "esi: { allow_hosts: [a.example:8080] }\n") ==
        "test.yaml:9:22: bad allowed host 'a.example:8080': expected a host name without port "
        "or '*.domain'");
  for (const char* bad : {"http://a.example", "a..example", "a.example.", ".a.example", "*.",
                          "**.example", "a.*.example", "*example", "a example", "a/b", ""}) {
    CAPTURE(bad);
    std::string text = only_error(minimal + "esi: { allow_hosts: [\"" + bad + "\"] }\n");
    CHECK(text.starts_with("test.yaml:9:22: bad allowed host '"));
    CHECK(text.ends_with("': expected a host name without port or '*.domain'"));
  }
  CHECK(only_error(minimal + "esi:\n  allow_hosts: [a.example, \"*.b.example\", A.Example]\n") ==
        "test.yaml:10:43: duplicate allowed host 'a.example' (first at line 10)");
  CHECK(only_error(minimal + "esi: { allow_hosts: { a.example: 1 } }\n") ==
        "test.yaml:9:21: 'allow_hosts' must be a host name or a list of them, not a map");
  CHECK(only_error(minimal + "esi:\n  allow_hosts:\n") ==
        "test.yaml:10:3: 'allow_hosts' must be a host name or a list of them, not empty");
  CHECK(only_error(minimal + "esi: { allow_hosts: [a.example, [b.example]] }\n") ==
        "test.yaml:9:33: an allowed host must be a scalar, not a list");
}

TEST_CASE("the top-level esi must be a map of known keys") {
  CHECK(only_error(minimal + "esi: on\n") == "test.yaml:9:6: 'esi' must be a map, not a scalar");
  CHECK(only_error(minimal + "esi:\n") == "test.yaml:9:1: 'esi' must be a map, not empty");
  CHECK(only_error(minimal + "esi: [max_depth]\n") ==
        "test.yaml:9:6: 'esi' must be a map, not a list");
  CHECK(only_error(minimal + "esi: { depth: 3 }\n") == "test.yaml:9:8: unknown key 'depth'");
  CHECK(only_error(minimal + "esi:\n  max_depth: 3\n  timeout: 1s\n") ==
        "test.yaml:11:3: unknown key 'timeout'");
  CHECK(only_error(minimal + "esi: { memory: 1m }\n") == "test.yaml:9:8: unknown key 'memory'");
  CHECK(only_error(minimal + "esi: { max_depth: 2, max_depth: 3 }\n") ==
        "test.yaml:9:22: duplicate key 'max_depth' (first at line 9)");
}

TEST_CASE("esi on a host or route takes on, off, true and false") {
  for (auto [text, on] : {std::pair{"on", true}, std::pair{"true", true},
                          std::pair{"off", false}, std::pair{"false", false}}) {
    CAPTURE(text);
    LoadResult result = load(minimal + "    esi: " + text + "\n    routes:\n      - { path: /a/ }\n"
                             "  - match: b.example\n    backend: app\n    esi: " +
                             (on ? "off" : "on") + "\n    routes: [{ path: /b/, esi: " + text +
                             " }]\n");
    INFO(joined(result));
    REQUIRE(result.config);
    CHECK(result.config->hosts.at(0).cache.esi == on);
    CHECK(result.config->hosts[0].routes.at(0).cache.esi == on);
    CHECK(result.config->hosts.at(1).cache.esi == !on);
    CHECK(result.config->hosts[1].routes.at(0).cache.esi == on);
  }
}

TEST_CASE("a route takes esi from its host unless it sets it, apart from the cache switch") {
  LoadResult result = load(minimal +
                           "    routes: [{ path: /on/, esi: on }]\n"  // 9
                           "  - match: a.example\n"                  // 10
                           "    backend: app\n"
                           "    routes:\n"                           // 12: before the host's keys
                           "      - { path: /same/ }\n"
                           "      - { path: /off/, esi: off }\n"
                           "      - { path: /cached/, cache: on, ttl: 1m }\n"
                           "    esi: on\n"                           // 16
                           "    cache: off\n");
  INFO(joined(result));
  REQUIRE(result.config);
  const Host& first = result.config->hosts.at(0);
  CHECK_FALSE(first.cache.esi);
  CHECK(first.routes.at(0).cache.esi);

  const Host& host = result.config->hosts.at(1);
  CHECK(host.cache.esi);
  CHECK_FALSE(host.cache.enabled);
  REQUIRE(host.routes.size() == 3);
  CHECK(host.routes[0].cache.esi);
  CHECK_FALSE(host.routes[0].cache.enabled);
  CHECK_FALSE(host.routes[1].cache.esi);
  CHECK_FALSE(host.routes[1].cache.enabled);
  CHECK(host.routes[2].cache.esi);
  CHECK(host.routes[2].cache.enabled);
  CHECK(host.routes[2].cache.ttl == 1min);
}

TEST_CASE("bad esi switches on a host or route are errors at the value") {
  CHECK(only_error(minimal + "    esi: yes\n") ==
        "test.yaml:9:10: bad esi 'yes': expected on, off, true or false");
  CHECK(only_error(minimal + "    esi: On\n") ==
        "test.yaml:9:10: bad esi 'On': expected on, off, true or false");
  CHECK(only_error(minimal + "    esi: [on]\n") ==
        "test.yaml:9:10: 'esi' must be a non-empty scalar, not a list");
  CHECK(only_error(minimal + "    esi: { max_depth: 2 }\n") ==
        "test.yaml:9:10: 'esi' must be a non-empty scalar, not a map");
  CHECK(only_error(minimal + "    esi:\n") ==
        "test.yaml:9:5: 'esi' must be a non-empty scalar, not empty");
  CHECK(only_error(minimal + "    routes:\n      - { path: /a/, esi: 1 }\n") ==
        "test.yaml:10:27: bad esi '1': expected on, off, true or false");
  CHECK(only_error(minimal + "    routes:\n      - path: /a/\n        esi: enabled\n") ==
        "test.yaml:11:14: bad esi 'enabled': expected on, off, true or false");
  // The limits live in the top-level map only.
  CHECK(only_error(minimal + "    max_depth: 3\n") == "test.yaml:9:5: unknown key 'max_depth'");
  CHECK(only_error(minimal + "    routes:\n      - { path: /a/, esl: on }\n") ==
        "test.yaml:10:22: unknown key 'esl'");
  CHECK(only_error(minimal + "    esi: on\n    esi: off\n") ==
        "test.yaml:10:5: duplicate key 'esi' (first at line 9)");
}

TEST_CASE("esi errors across the file are all reported, top to bottom") {
  LoadResult result = load(
      "esi: { max_depth: 0, on_error: stop, colour: red }\n"
      "listen:\n"
      "  - address: 127.0.0.1:8080\n"
      "backends:\n"
      "  app:\n"
      "    servers: [127.0.0.1:9000]\n"
      "hosts:\n"
      "  - match: \"*\"\n"
      "    backend: app\n"
      "    esi: maybe\n"
      "    routes:\n"
      "      - { path: /a/, esi: 2 }\n");
  CHECK_FALSE(result.config);
  std::vector<std::string> positions;
  for (const Error& error : result.errors) {
    positions.push_back(std::to_string(error.mark.line) + ":" + std::to_string(error.mark.col));
  }
  INFO(joined(result));
  CHECK(positions == std::vector<std::string>{"1:19", "1:32", "1:38", "10:10", "12:27"});
}

namespace {

// Two lines of cache.memcached, then `minimal`: keys appended to it start at line 11.
const std::string with_memcached =
    "cache:\n"
    "  memcached: { servers: [127.0.0.1:11211] }\n" +
    minimal;

}  // namespace

TEST_CASE("without memcached and cluster keys, everything takes the header's defaults") {
  LoadResult result = load(minimal + "    routes: [{ path: /a/ }]\n");
  INFO(joined(result));
  REQUIRE(result.config);
  const Memcached& memcached = result.config->cache.memcached;
  CHECK_FALSE(memcached.enabled);
  CHECK(memcached.servers.empty());
  CHECK(memcached.timeout == 50ms);
  CHECK(memcached.threads == 2);
  CHECK(memcached.retry == 5s);
  CHECK(memcached.max_item == 1024 * 1024);
  CHECK(memcached.mark.line == 0);
  const Cluster& cluster = result.config->cluster;
  CHECK(cluster.peers.empty());
  CHECK(cluster.timeout == 1s);
  CHECK(cluster.mark.line == 0);
  for (const CachePolicy* policy : {&result.config->hosts.at(0).cache,
                                    &result.config->hosts.at(0).routes.at(0).cache}) {
    CHECK(policy->ram);
    CHECK(policy->static_source == StaticSource::kNone);
    CHECK(policy->static_key == "{host}{path}");
  }
}

TEST_CASE("cache.memcached loads every key") {
  LoadResult result = load(minimal +
                           "cache:\n"  // 9
                           "  memory: 64m\n"
                           "  memcached:\n"  // 11
                           "    servers: [127.0.0.1:11211, \"[::1]:11212\", localhost:11213]\n"
                           "    timeout: 20ms\n"
                           "    threads: 64\n"
                           "    retry: 1m\n"
                           "    max_item: 512k\n");
  INFO(joined(result));
  REQUIRE(result.config);
  const Memcached& memcached = result.config->cache.memcached;
  CHECK(memcached.enabled);
  REQUIRE(memcached.servers.size() == 3);
  CHECK(memcached.servers[0].text() == "127.0.0.1:11211");
  CHECK(memcached.servers[1].text() == "[::1]:11212");
  CHECK(memcached.servers[2].text() == "127.0.0.1:11213");
  CHECK(memcached.timeout == 20ms);
  CHECK(memcached.threads == 64);
  CHECK(memcached.retry == 1min);
  CHECK(memcached.max_item == 512 * 1024);
  CHECK(memcached.mark.file == "test.yaml");
  CHECK(memcached.mark.line == 11);
  CHECK(memcached.mark.col == 3);
  CHECK(result.config->cache.memory == 64ull * 1024 * 1024);

  LoadResult defaults = load(with_memcached);
  INFO(joined(defaults));
  REQUIRE(defaults.config);
  const Memcached& plain = defaults.config->cache.memcached;
  CHECK(plain.enabled);
  REQUIRE(plain.servers.size() == 1);
  CHECK(plain.servers[0].text() == "127.0.0.1:11211");
  CHECK(plain.timeout == 50ms);
  CHECK(plain.threads == 2);
  CHECK(plain.retry == 5s);
  CHECK(plain.max_item == 1024 * 1024);
  CHECK(plain.mark.line == 2);
}

TEST_CASE("bad values in cache.memcached are errors at the value") {
  const std::string head = minimal + "cache:\n  memcached:\n";  // keys from line 11
  const std::string servers = "    servers: [127.0.0.1:1]\n";
  CHECK(only_error(minimal + "cache:\n  memcached:\n") ==
        "test.yaml:10:3: 'memcached' must be a map, not empty");
  CHECK(only_error(minimal + "cache:\n  memcached: [127.0.0.1:1]\n") ==
        "test.yaml:10:14: 'memcached' must be a map, not a list");
  CHECK(only_error(minimal + "cache:\n  memcached: { timeout: 1s }\n") ==
        "test.yaml:10:14: missing required key 'servers'");
  CHECK(only_error(head + "    servers: []\n") == "test.yaml:11:14: 'servers' must not be empty");
  CHECK(only_error(head + "    servers: 127.0.0.1:1\n") ==
        "test.yaml:11:14: 'servers' must be a list, not a scalar");
  CHECK(only_error(head + "    servers: [127.0.0.1:1, memcache.local:11211]\n") ==
        "test.yaml:11:28: bad address 'memcache.local:11211': 'memcache.local' is not a numeric "
        "IPv4 address (host names are not resolved; use an IP address or localhost)");
  CHECK(only_error(head + "    servers: [127.0.0.1:0]\n") ==
        "test.yaml:11:15: bad address '127.0.0.1:0': the port must be a number from 1 to 65535");
  CHECK(only_error(head + "    servers:\n      - 127.0.0.1:1\n      - localhost:1\n") ==
        "test.yaml:13:9: duplicate memcached server '127.0.0.1:1' (first at line 12)");
  CHECK(only_error(head + servers + "    timeout: 0ms\n") ==
        "test.yaml:12:14: 'timeout' must be greater than zero");
  CHECK(only_error(head + servers + "    timeout: 50\n") ==
        "test.yaml:12:14: bad duration '50': expected a number with a unit: ms, s, m, h");
  CHECK(only_error(head + servers + "    threads: 0\n") ==
        "test.yaml:12:14: bad threads '0': expected an integer from 1 to 64");
  CHECK(only_error(head + servers + "    threads: 65\n") ==
        "test.yaml:12:14: bad threads '65': expected an integer from 1 to 64");
  CHECK(only_error(head + servers + "    retry: 0s\n") ==
        "test.yaml:12:12: 'retry' must be greater than zero");
  CHECK(only_error(head + servers + "    max_item: 0\n") ==
        "test.yaml:12:15: 'max_item' must be at least 1");
  CHECK(only_error(head + servers + "    max_item: 1mb\n") ==
        "test.yaml:12:15: bad size '1mb': expected a number of bytes with an optional k, m or g "
        "suffix");
  CHECK(only_error(head + servers + "    server: 127.0.0.1:2\n") ==
        "test.yaml:12:5: unknown key 'server'");
  CHECK(only_error(head + servers + "    servers: [127.0.0.1:2]\n") ==
        "test.yaml:12:5: duplicate key 'servers' (first at line 11)");
}

TEST_CASE("ram, static and key load on a host and a route inherits them") {
  LoadResult result = load(with_memcached +
                           "    ram: off\n"  // 11
                           "    static: memcached\n"
                           "    key: \"site:{host}{path}?{query}\"\n"
                           "    routes:\n"
                           "      - { path: /same/ }\n"
                           "      - { path: /ram/, ram: on, key: \"{path}\" }\n"
                           "  - match: b.example\n"
                           "    backend: app\n"
                           "    routes:\n"
                           "      - { path: /static/, static: memcached }\n"
                           "      - { path: /keyed/, static: memcached, key: \"b/{path}\" }\n"
                           "      - { path: /api/, ram: false }\n");
  INFO(joined(result));
  REQUIRE(result.config);
  const Host& host = result.config->hosts.at(0);
  CHECK_FALSE(host.cache.ram);
  CHECK(host.cache.static_source == StaticSource::kMemcached);
  CHECK(host.cache.static_key == "site:{host}{path}?{query}");
  REQUIRE(host.routes.size() == 2);
  CHECK_FALSE(host.routes[0].cache.ram);
  CHECK(host.routes[0].cache.static_source == StaticSource::kMemcached);
  CHECK(host.routes[0].cache.static_key == "site:{host}{path}?{query}");
  CHECK(host.routes[1].cache.ram);
  CHECK(host.routes[1].cache.static_source == StaticSource::kMemcached);
  CHECK(host.routes[1].cache.static_key == "{path}");

  const Host& other = result.config->hosts.at(1);
  CHECK(other.cache.ram);
  CHECK(other.cache.static_source == StaticSource::kNone);
  REQUIRE(other.routes.size() == 3);
  CHECK(other.routes[0].cache.static_source == StaticSource::kMemcached);
  CHECK(other.routes[0].cache.static_key == "{host}{path}");
  CHECK(other.routes[1].cache.static_key == "b/{path}");
  CHECK_FALSE(other.routes[2].cache.ram);
  CHECK(other.routes[2].cache.static_source == StaticSource::kNone);

  // A key on the host is fine when only some of its routes are static.
  LoadResult some = load(with_memcached +
                         "    key: \"x{path}\"\n"
                         "    routes: [{ path: /s/, static: memcached }, { path: /d/ }]\n");
  INFO(joined(some));
  REQUIRE(some.config);
  CHECK(some.config->hosts.at(0).routes.at(0).cache.static_key == "x{path}");
  CHECK(some.config->hosts.at(0).routes.at(1).cache.static_source == StaticSource::kNone);
}

TEST_CASE("bad ram, static and key values are errors at the value") {
  CHECK(only_error(minimal + "    ram: maybe\n") ==
        "test.yaml:9:10: bad ram 'maybe': expected on, off, true or false");
  CHECK(only_error(minimal + "    routes:\n      - { path: /a/, ram: 0 }\n") ==
        "test.yaml:10:27: bad ram '0': expected on, off, true or false");
  CHECK(only_error(with_memcached + "    static: redis\n") ==
        "test.yaml:11:13: bad static 'redis': expected memcached");
  CHECK(only_error(with_memcached + "    static: [memcached]\n") ==
        "test.yaml:11:13: 'static' must be a non-empty scalar, not a list");
  CHECK(only_error(with_memcached + "    static: memcached\n    key: \"{host}{uri}\"\n") ==
        "test.yaml:12:10: bad key '{host}{uri}': unknown placeholder '{uri}' (expected {host}, "
        "{path} or {query}) at character 7");
  CHECK(only_error(with_memcached + "    static: memcached\n    key: \"{}\"\n") ==
        "test.yaml:12:10: bad key '{}': unknown placeholder '{}' (expected {host}, {path} or "
        "{query}) at character 1");
  CHECK(only_error(with_memcached + "    static: memcached\n    key: \"a{path\"\n") ==
        "test.yaml:12:10: bad key 'a{path': '{' without '}' at character 2");
  CHECK(only_error(with_memcached + "    static: memcached\n    key: \"a}{path}\"\n") ==
        "test.yaml:12:10: bad key 'a}{path}': '}' without '{' at character 2");
  CHECK(only_error(with_memcached + "    static: memcached\n    key: \"a b{path}\"\n") ==
        "test.yaml:12:10: bad key 'a b{path}': a space or control character at character 2");
  CHECK(only_error(with_memcached + "    static: memcached\n    key: \"\"\n") ==
        "test.yaml:12:10: 'key' must be a non-empty scalar, not an empty string");
  CHECK(only_error(with_memcached +
                   "    routes:\n      - { path: /a/, static: memcached, key: \"{Host}\" }\n") ==
        "test.yaml:12:46: bad key '{Host}': unknown placeholder '{Host}' (expected {host}, {path} "
        "or {query}) at character 1");
  CHECK(only_error(with_memcached + "    statik: memcached\n") ==
        "test.yaml:11:5: unknown key 'statik'");
}

TEST_CASE("static: memcached without cache.memcached is an error at the static key") {
  CHECK(only_error(minimal + "    static: memcached\n") ==
        "test.yaml:9:5: static: memcached needs cache.memcached");
  CHECK(only_error(minimal + "    routes:\n      - { path: /s/, static: memcached }\n") ==
        "test.yaml:10:22: static: memcached needs cache.memcached");
  // A key next to it adds nothing; a cache map without memcached does not help.
  CHECK(only_error(minimal +
                   "    static: memcached\n    key: \"{path}\"\ncache: { memory: 1g }\n") ==
        "test.yaml:9:5: static: memcached needs cache.memcached");
}

TEST_CASE("key without static on its host, route or the host's routes is an error at the key") {
  CHECK(only_error(with_memcached + "    key: \"{path}\"\n") ==
        "test.yaml:11:5: 'key' needs 'static: memcached' on this host or one of its routes");
  CHECK(only_error(with_memcached + "    key: \"{path}\"\n    routes: [{ path: /a/ }]\n") ==
        "test.yaml:11:5: 'key' needs 'static: memcached' on this host or one of its routes");
  CHECK(only_error(with_memcached + "    routes:\n      - { path: /a/, key: \"{path}\" }\n") ==
        "test.yaml:12:22: 'key' needs 'static: memcached' on this route or its host");
  // Static on the host covers a route's own key.
  LoadResult host_static = load(with_memcached + "    static: memcached\n"
                                                 "    routes: [{ path: /a/, key: \"a{path}\" }]\n");
  INFO(joined(host_static));
  CHECK(host_static.config);
}

TEST_CASE("cluster loads its peers with their tokens and its timeout") {
  TempDir dir;
  dir.write("b.token", "  token-b\n");
  std::string c_token = dir.write("c.token", "token-c");
  std::string config = dir.write(
      "edge.yaml", minimal +
                       "cluster:\n"  // 9
                       "  timeout: 250ms\n"
                       "  peers:\n"
                       "    - { address: 10.0.0.2:9090, token_file: b.token }\n"  // 12
                       "    - address: \"[fd00::3]:9090\"\n"
                       "      token_file: " + c_token + "\n");
  LoadResult result = load_file(config);
  INFO(joined(result));
  REQUIRE(result.config);
  const Cluster& cluster = result.config->cluster;
  CHECK(cluster.timeout == 250ms);
  CHECK(cluster.mark.line == 9);
  CHECK(cluster.mark.col == 1);
  REQUIRE(cluster.peers.size() == 2);
  CHECK(cluster.peers[0].address.text() == "10.0.0.2:9090");
  CHECK(cluster.peers[0].token == "token-b");
  CHECK(cluster.peers[0].mark.line == 12);
  CHECK(cluster.peers[0].mark.col == 7);
  CHECK(cluster.peers[1].address.text() == "[fd00::3]:9090");
  CHECK(cluster.peers[1].token == "token-c");
  CHECK(cluster.peers[1].mark.line == 13);

  // Another port on loopback is another node, even next to this node's admin.
  LoadResult local = load(minimal + "admin: { token_file: " + c_token + " }\n"
                          "cluster: { peers: [{ address: 127.0.0.1:9091, token_file: " + c_token +
                          " }] }\n");
  INFO(joined(local));
  REQUIRE(local.config);
  CHECK(local.config->cluster.timeout == 1s);
  CHECK(local.config->cluster.peers.at(0).address.text() == "127.0.0.1:9091");
}

TEST_CASE("bad cluster peers are errors at the offending node") {
  TempDir dir;
  std::string token = dir.write("peer.token", "t\n");
  std::string empty = dir.write("empty.token", " \n");
  const std::string peers = minimal + "cluster:\n  peers:\n";  // peers from line 11
  auto peer = [&](const std::string& address) {
    return "    - { address: " + address + ", token_file: " + token + " }\n";
  };
  CHECK(only_error(minimal + "cluster:\n") == "test.yaml:9:1: 'cluster' must be a map, not empty");
  CHECK(only_error(minimal + "cluster: { timeout: 1s }\n") ==
        "test.yaml:9:10: missing required key 'peers'");
  CHECK(only_error(minimal + "cluster: { peers: [] }\n") ==
        "test.yaml:9:19: 'peers' must not be empty");
  CHECK(only_error(minimal + "cluster: { peers: [10.0.0.2:9090] }\n") ==
        "test.yaml:9:20: each peer must be a map, not a scalar");
  CHECK(only_error(peers + peer("10.0.0.2:9090") + "  timeout: 0s\n") ==
        "test.yaml:12:12: 'timeout' must be greater than zero");
  CHECK(only_error(peers + "    - { token_file: " + token + " }\n") ==
        "test.yaml:11:7: missing required key 'address'");
  CHECK(only_error(peers + "    - { address: 10.0.0.2:9090 }\n") ==
        "test.yaml:11:7: missing required key 'token_file'");
  CHECK(only_error(peers + "    - { address: 10.0.0.2:9090, token_file: " + dir.path +
                   "/none }\n") ==
        "test.yaml:11:45: cannot read token file '" + dir.path +
            "/none': No such file or directory");
  CHECK(only_error(peers + "    - { address: 10.0.0.2:9090, token_file: " + empty + " }\n") ==
        "test.yaml:11:45: token file '" + empty + "' is empty");
  CHECK(error_texts(load(peers + "    - { address: 10.0.0.2:9090, token: x }\n")) ==
        std::vector<std::string>{"test.yaml:11:7: missing required key 'token_file'",
                                 "test.yaml:11:33: unknown key 'token'"});
  CHECK(only_error(peers + peer("peer2:9090")) ==
        "test.yaml:11:18: bad address 'peer2:9090': 'peer2' is not a numeric IPv4 address (host "
        "names are not resolved; use an IP address or localhost)");
  CHECK(only_error(peers + peer("\"*:9090\"")) ==
        "test.yaml:11:18: bad peer address '0.0.0.0:9090': a peer needs its own address, not a "
        "wildcard");
  CHECK(only_error(peers + peer("10.0.0.2:9090") + peer("10.0.0.2:9090")) ==
        "test.yaml:12:18: duplicate peer address '10.0.0.2:9090' (first at line 11)");
}

TEST_CASE("a peer at this node's own admin address is an error at the peer's address") {
  TempDir dir;
  std::string token = dir.write("t.token", "t");
  auto config = [&](const std::string& admin, const std::string& address) {
    return minimal + "admin: { address: \"" + admin + "\", token_file: " + token + " }\n" +
           "cluster:\n  peers:\n    - { address: \"" + address + "\", token_file: " + token +
           " }\n";
  };
  CHECK(only_error(config("127.0.0.1:9090", "localhost:9090")) ==
        "test.yaml:12:18: peer address '127.0.0.1:9090' is this node's own admin address (admin "
        "at line 9)");
  CHECK(only_error(config("0.0.0.0:9090", "127.0.0.1:9090")) ==
        "test.yaml:12:18: peer address '127.0.0.1:9090' is this node's own admin address (admin "
        "at line 9)");
  CHECK(only_error(config("[::]:9090", "[::1]:9090")) ==
        "test.yaml:12:18: peer address '[::1]:9090' is this node's own admin address (admin at "
        "line 9)");
  // The same port on another machine is another node; without admin, nothing is compared.
  CHECK(load(config("0.0.0.0:9090", "10.0.0.2:9090")).config);
  CHECK(load(minimal + "cluster: { peers: [{ address: 127.0.0.1:9090, token_file: " + token +
             " }] }\n")
            .config);
}

TEST_CASE("memcached, static and cluster errors across the file are all reported, top to bottom") {
  LoadResult result = load(
      "cluster: { peers: [{ address: 10.0.0.2:1 }], timeout: 0s }\n"
      "listen:\n"
      "  - address: 127.0.0.1:8080\n"
      "backends:\n"
      "  app:\n"
      "    servers: [127.0.0.1:9000]\n"
      "hosts:\n"
      "  - match: \"*\"\n"
      "    backend: app\n"
      "    static: memcached\n"
      "    ram: no\n"
      "    routes:\n"
      "      - { path: /a/, key: \"{x}\" }\n");
  CHECK_FALSE(result.config);
  std::vector<std::string> positions;
  for (const Error& error : result.errors) {
    positions.push_back(std::to_string(error.mark.line) + ":" + std::to_string(error.mark.col));
  }
  INFO(joined(result));
  CHECK(positions == std::vector<std::string>{"1:20", "1:55", "10:5", "11:10", "13:27"});
}

TEST_CASE("tls: a listen entry's tls map is read, with defaults, and every mistake is placed") {
  const std::string rest = minimal.substr(minimal.find("backends"));
  auto with_tls = [&](const std::string& tls_lines) {
    return "listen:\n  - address: 127.0.0.1:8443\n    tls:\n" + tls_lines + rest;
  };
  LoadResult loaded = load(with_tls("      certificates:\n"
                                    "        - {cert: a.pem, key: a.key}\n"
                                    "        - {cert: /etc/b.pem, key: /etc/b.key, names: [B.example, \"*.b.example\"], default: on}\n"
                                    "      min_version: \"1.3\"\n"
                                    "      ticket_rotation: 10m\n"));
  INFO(joined(loaded));
  REQUIRE(loaded.config);
  const ListenTls& tls = loaded.config->listen[0].tls;
  CHECK(tls.enabled);
  REQUIRE(tls.certificates.size() == 2);
  CHECK(tls.certificates[0].cert_file == "a.pem");  // relative to the file's folder (here none)
  CHECK_FALSE(tls.certificates[0].is_default);
  CHECK(tls.certificates[0].names.empty());
  CHECK(tls.certificates[1].names == std::vector<std::string>{"b.example", "*.b.example"});
  CHECK(tls.certificates[1].is_default);
  CHECK(tls.min_version == TlsVersion::k1_3);
  CHECK(tls.alpn == std::vector<std::string>{"h2", "http/1.1"});
  CHECK(tls.session_tickets);
  CHECK(tls.ticket_rotation == std::chrono::minutes(10));
  CHECK_FALSE(load(minimal).config->listen[0].tls.enabled);

  // Without `default: on`, the first certificate is the default.
  LoadResult first = load(with_tls("      certificates: [{cert: a.pem, key: a.key}, {cert: b.pem, key: b.key}]\n"));
  REQUIRE(first.config);
  CHECK(first.config->listen[0].tls.certificates[0].is_default);

  const std::string one = "      certificates: [{cert: a.pem, key: a.key}]\n";
  CHECK(only_error(with_tls("      min_version: \"1.2\"\n")) == "test.yaml:4:7: missing required key 'certificates'");
  CHECK(only_error(with_tls("      certificates: []\n")) == "test.yaml:4:21: 'certificates' must not be empty");
  CHECK(only_error(with_tls("      certificates: [{cert: a.pem}]\n")) == "test.yaml:4:22: missing required key 'key'");
  CHECK(only_error(with_tls(one + "      min_version: \"1.1\"\n")) ==
        "test.yaml:5:20: TLS 1.1 is not offered: min_version may be 1.2 or 1.3");
  CHECK(only_error(with_tls(one + "      min_version: tls13\n")) == "test.yaml:5:20: bad min_version 'tls13': expected 1.2 or 1.3");
  CHECK(only_error(with_tls(one + "      alpn: [http/1.1, spdy/3]\n")) ==
        "test.yaml:5:24: unknown alpn protocol 'spdy/3': expected h2 or http/1.1");
  CHECK(only_error(with_tls(one + "      alpn: [h2, h2]\n")) == "test.yaml:5:18: duplicate alpn protocol 'h2'");
  {
    LoadResult defaults = load(with_tls(one));
    REQUIRE(defaults.config);
    CHECK(defaults.config->listen[0].tls.alpn == std::vector<std::string>{"h2", "http/1.1"});
    CHECK_FALSE(defaults.config->listen[0].h2c);
  }
  CHECK(only_error(with_tls(one + "      ticket_rotation: 0s\n")) == "test.yaml:5:24: 'ticket_rotation' must be greater than zero");
  CHECK(only_error(with_tls(one + "      session_tickets: maybe\n")) ==
        "test.yaml:5:24: bad session_tickets 'maybe': expected on, off, true or false");
  CHECK(only_error(with_tls("      certificates:\n"
                            "        - {cert: a.pem, key: a.key, names: [a.example]}\n"
                            "        - {cert: b.pem, key: b.key, names: [A.example]}\n")) ==
        "test.yaml:6:45: certificate name 'a.example' is already given to another certificate (line 5)");
  CHECK(only_error(with_tls("      certificates: [{cert: a.pem, key: a.key, names: [\"a.example:443\"]}]\n")) ==
        "test.yaml:4:56: bad certificate name 'a.example:443': expected a host name without port or '*.domain'");
  CHECK(only_error(with_tls("      certificates:\n"
                            "        - {cert: a.pem, key: a.key, default: on}\n"
                            "        - {cert: b.pem, key: b.key, default: on}\n")) ==
        "test.yaml:6:46: only one certificate may be the default (the first is at line 5)");
  CHECK(only_error(with_tls(one + "      cipher: HIGH\n")) == "test.yaml:5:7: unknown key 'cipher'");
}

TEST_CASE("tls: redirect_https is a host's switch and needs an HTTPS listener") {
  LoadResult plain = load(minimal + "    redirect_https: on\n");
  CHECK_FALSE(plain.config);
  CHECK(only_error(minimal + "    redirect_https: on\n") == "test.yaml:9:21: 'redirect_https' needs a listen entry with 'tls'");
  LoadResult with_tls = load("listen:\n  - address: 127.0.0.1:8080\n  - address: 127.0.0.1:8443\n"
                             "    tls: {certificates: [{cert: a.pem, key: a.key}]}\n" +
                             minimal.substr(minimal.find("backends")) + "    redirect_https: on\n");
  INFO(joined(with_tls));
  REQUIRE(with_tls.config);
  CHECK(with_tls.config->hosts[0].redirect_https);
  CHECK_FALSE(load(minimal).config->hosts[0].redirect_https);
}

TEST_CASE("tls: a backend's tls map: verification on by default, a name, a CA file, and what is refused") {
  LoadResult loaded = load(with_backend_body("    servers: [127.0.0.1:1]\n"
                                             "    tls: {ca_file: /etc/edge/ca.pem, server_name: App.Internal}\n"));
  INFO(joined(loaded));
  REQUIRE(loaded.config);
  const BackendTls& tls = loaded.config->backends[0].tls;
  CHECK(tls.enabled);
  CHECK(tls.verify);
  CHECK(tls.ca_file == "/etc/edge/ca.pem");
  CHECK(tls.server_name == "app.internal");
  CHECK_FALSE(load(minimal).config->backends[0].tls.enabled);
  LoadResult off = load(with_backend_body("    servers: [127.0.0.1:1]\n    tls: {verify: off}\n"));
  REQUIRE(off.config);
  CHECK_FALSE(off.config->backends[0].tls.verify);

  CHECK(only_error(with_backend_body("    servers: [127.0.0.1:1]\n    tls: {server_name: \"*.internal\"}\n")) ==
        "test.yaml:6:24: bad server_name '*.internal': expected a host name without port");
  CHECK(only_error(with_backend_body("    servers: [127.0.0.1:1]\n    tls: {server_name: \"app:443\"}\n")) ==
        "test.yaml:6:24: bad server_name 'app:443': expected a host name without port");
  CHECK(only_error(with_backend_body("    servers: [127.0.0.1:1]\n    tls: {sni: app}\n")) == "test.yaml:6:11: unknown key 'sni'");
  // Health checks go over TLS too.
  LoadResult checked = load(with_backend_body("    servers: [127.0.0.1:1]\n    tls: {}\n    health: {path: /health}\n"));
  INFO(joined(checked));
  REQUIRE(checked.config);
  CHECK(checked.config->backends[0].tls.enabled);
  CHECK(checked.config->backends[0].health.enabled);
}

TEST_CASE("access_log: absent, a file relative to the configuration, stdout, its format and buffer") {
  LoadResult none = load(minimal);
  REQUIRE(none.config);
  CHECK_FALSE(none.config->access_log.enabled);

  LoadResult file = load_string(minimal + "access_log:\n  path: logs/access.log\n", "/etc/edge/edge.yaml");
  REQUIRE_MESSAGE(file.config, joined(file));
  const AccessLog& log = file.config->access_log;
  CHECK(log.enabled);
  CHECK(log.path == "/etc/edge/logs/access.log");
  CHECK_FALSE(log.to_stdout);
  CHECK(log.format == AccessLogFormat::kCombined);
  CHECK(log.buffer == 1024 * 1024);
  CHECK(log.mark.line == 9);

  LoadResult out = load(minimal + "access_log: { path: stdout, format: json, buffer: 64k }\n");
  REQUIRE_MESSAGE(out.config, joined(out));
  CHECK(out.config->access_log.to_stdout);
  CHECK(out.config->access_log.format == AccessLogFormat::kJson);
  CHECK(out.config->access_log.buffer == 64 * 1024);
  CHECK(load(minimal + "access_log: { path: /var/log/a.log }\n").config->access_log.path == "/var/log/a.log");
}

TEST_CASE("access_log: bad values are errors at their position") {
  CHECK(only_error(minimal + "access_log:\n  format: json\n") == "test.yaml:10:3: missing required key 'path'");
  CHECK(only_error(minimal + "access_log:\n  path: a.log\n  format: xml\n") ==
        "test.yaml:11:11: bad format 'xml': expected combined or json");
  CHECK(only_error(minimal + "access_log:\n  path: a.log\n  buffer: 1k\n") ==
        "test.yaml:11:11: 'buffer' must be at least 4096");
  CHECK(only_error(minimal + "access_log:\n  path: a.log\n  buffer: lots\n").find("test.yaml:11:11: bad size 'lots'") == 0);
  CHECK(only_error(minimal + "access_log:\n  path: \"\"\n") ==
        "test.yaml:10:9: 'path' must be a non-empty scalar, not an empty string");
  CHECK(only_error(minimal + "access_log:\n  path: a.log\n  rotate: daily\n") == "test.yaml:11:3: unknown key 'rotate'");
  CHECK(only_error(minimal + "access_log: /var/log/a.log\n") == "test.yaml:9:13: 'access_log' must be a map, not a scalar");
}

TEST_CASE("metrics: both recordings on by default, each switched off by itself") {
  LoadResult none = load(minimal);
  REQUIRE(none.config);
  CHECK(none.config->metrics.histograms);
  CHECK(none.config->metrics.top);
  LoadResult off = load(minimal + "metrics: { histograms: false, top: off }\n");
  REQUIRE(off.config);
  CHECK_FALSE(off.config->metrics.histograms);
  CHECK_FALSE(off.config->metrics.top);
  LoadResult one = load(minimal + "metrics:\n  top: false\n");
  REQUIRE(one.config);
  CHECK(one.config->metrics.histograms);
  CHECK_FALSE(one.config->metrics.top);
}

TEST_CASE("metrics: bad values and unknown keys are errors at their position") {
  CHECK(only_error(minimal + "metrics:\n  histograms: maybe\n") ==
        "test.yaml:10:15: bad histograms 'maybe': expected on, off, true or false");
  CHECK(only_error(minimal + "metrics:\n  top: false\n  buckets: 10\n") == "test.yaml:11:3: unknown key 'buckets'");
  CHECK(only_error(minimal + "metrics: off\n") == "test.yaml:9:10: 'metrics' must be a map, not a scalar");
}

TEST_CASE("upgrade_socket: absent, relative to the configuration, absolute, and refused when too long or empty") {
  LoadResult none = load(minimal);
  REQUIRE(none.config);
  CHECK(none.config->upgrade_socket.empty());

  LoadResult relative = load_string(minimal + "upgrade_socket: run/edge.upgrade\n", "/etc/edge/edge.yaml");
  REQUIRE_MESSAGE(relative.config, joined(relative));
  CHECK(relative.config->upgrade_socket == "/etc/edge/run/edge.upgrade");
  CHECK(relative.config->upgrade_socket_mark.line == 9);

  LoadResult absolute = load_string(minimal + "upgrade_socket: /run/edge/upgrade.sock\n", "/etc/edge/edge.yaml");
  REQUIRE_MESSAGE(absolute.config, joined(absolute));
  CHECK(absolute.config->upgrade_socket == "/run/edge/upgrade.sock");

  const std::string long_path = "/" + std::string(100, 'a');
  CHECK(only_error(minimal + "upgrade_socket: " + long_path + "\n") ==
        "test.yaml:9:17: upgrade_socket '" + long_path + "' is too long for a Unix socket (101 bytes, at most 95)");
  CHECK(only_error(minimal + "upgrade_socket: \"\"\n") ==
        "test.yaml:9:17: 'upgrade_socket' must be a non-empty scalar, not an empty string");
}

TEST_CASE("http2: the top-level map, its defaults and bounds; h2c on cleartext listeners only") {
  LoadResult defaults = load(minimal);
  REQUIRE(defaults.config);
  const Http2& d = defaults.config->http2;
  CHECK(d.max_concurrent_streams == 100);
  CHECK(d.max_header_list_size == 16 * 1024);
  CHECK(d.max_frame_size == 16 * 1024);
  CHECK(d.initial_window_size == 256 * 1024);
  CHECK(d.connection_window_size == 1024 * 1024);
  CHECK(d.idle_timeout == std::chrono::seconds(60));
  CHECK(d.header_timeout == std::chrono::seconds(10));

  LoadResult set = load("http2:\n  max_concurrent_streams: 250\n  max_header_list_size: 64k\n  max_frame_size: 1m\n"
                        "  initial_window_size: 1m\n  connection_window_size: 16m\n  idle_timeout: 5m\n"
                        "  header_timeout: 3s\n" + minimal);
  REQUIRE(set.config);
  const Http2& s = set.config->http2;
  CHECK(s.max_concurrent_streams == 250);
  CHECK(s.max_header_list_size == 64 * 1024);
  CHECK(s.max_frame_size == 1024 * 1024);
  CHECK(s.initial_window_size == 1024 * 1024);
  CHECK(s.connection_window_size == 16 * 1024 * 1024);
  CHECK(s.idle_timeout == std::chrono::minutes(5));
  CHECK(s.header_timeout == std::chrono::seconds(3));

  CHECK(only_error("http2:\n  max_concurrent_streams: 0\n" + minimal) ==
        "test.yaml:2:27: bad max_concurrent_streams '0': expected an integer from 1 to 10000");
  CHECK(only_error("http2:\n  max_frame_size: 1k\n" + minimal) == "test.yaml:2:19: 'max_frame_size' must be at least 16384");
  CHECK(only_error("http2:\n  max_frame_size: 16m\n" + minimal) ==
        "test.yaml:2:19: max_frame_size must be at most 16777215 bytes");
  CHECK(only_error("http2:\n  initial_window_size: 2g\n" + minimal) ==
        "test.yaml:2:24: initial_window_size must be at most 2147483647 bytes");
  CHECK(only_error("http2:\n  connection_window_size: 1k\n" + minimal) ==
        "test.yaml:2:27: 'connection_window_size' must be at least 65535");
  CHECK(only_error("http2:\n  max_header_list_size: lots\n" + minimal).starts_with("test.yaml:2:25: bad size 'lots'"));
  CHECK(only_error("http2:\n  idle_timeout: 10\n" + minimal).starts_with("test.yaml:2:17: "));
  CHECK(only_error("http2:\n  push: on\n" + minimal).starts_with("test.yaml:2:3: unknown key 'push'"));
  CHECK(only_error("http2: [1]\n" + minimal).starts_with("test.yaml:1:8: "));

  LoadResult h2c = load("listen:\n  - {address: 127.0.0.1:8080, h2c: on}\n" + minimal.substr(minimal.find("backends:")));
  REQUIRE(h2c.config);
  CHECK(h2c.config->listen[0].h2c);
  CHECK(only_error("listen:\n  - {address: 127.0.0.1:8080, h2c: maybe}\n" + minimal.substr(minimal.find("backends:"))) ==
        "test.yaml:2:36: bad h2c 'maybe': expected on, off, true or false");
  CHECK(only_error("listen:\n  - address: 127.0.0.1:8443\n    h2c: on\n    tls: {certificates: [{cert: a.pem, key: a.key}]}\n" +
                   minimal.substr(minimal.find("backends:"))) ==
        "test.yaml:3:10: h2c is HTTP/2 in cleartext: a tls listener offers h2 through its alpn");
}
