// `edge assets` against a real memcached: a directory tree loaded under a static route's keys and
// read back as records, the files it leaves out and why, the host choice, and its errors. Time
// limits here are fail-safes against a hang, never measurements.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "cache/memcached.h"
#include "cache/record.h"
#include "tests/integration/testkit.h"

using namespace edge::cache;
using namespace edge::testkit;
using namespace std::chrono_literals;

namespace {

constexpr auto kFailSafe = 20s;
constexpr int64_t kMtime = 1700000000;
constexpr const char* kMtimeText = "Tue, 14 Nov 2023 22:13:20 GMT";

struct Run {
  int code;
  std::string output;  // stdout and stderr together
};

Run run_assets(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"assets"};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(edge_bin(), argv);
  auto code = p.wait(kFailSafe);
  REQUIRE(code.has_value());
  return {*code, p.output()};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// One memcached at `port`; every entry in `hosts` is the text of a host list item after "- ".
std::string config_yaml(uint16_t port, const std::string& hosts) {
  return "listen:\n"
         "  - address: 127.0.0.1:1\n"
         "backends:\n"
         "  app:\n"
         "    servers: [127.0.0.1:2]\n"
         "cache:\n"
         "  memcached: { servers: [\"127.0.0.1:" +
         std::to_string(port) +
         "\"], max_item: 64k, timeout: 200ms }\n"
         "hosts:\n" +
         hosts;
}

const std::string kSiteHost =
    "  - match: [a.test, www.a.test]\n"
    "    backend: app\n"
    "    routes:\n"
    "      - { path: /static/, static: memcached, ttl: 10m, grace: 30s }\n"
    "      - { path: /static/dynamic/ }\n"
    "      - { path: /api/ }\n";

const MemcachedPool::Post kInline = [](std::function<void()> task) { task(); };

std::optional<std::string> get_value(MemcachedPool& pool, const std::string& key) {
  auto promise = std::make_shared<std::promise<McGetResult>>();
  auto future = promise->get_future();
  REQUIRE(pool.get({key}, kInline, [promise](McGetResult r) { promise->set_value(std::move(r)); }));
  REQUIRE(future.wait_for(kFailSafe) == std::future_status::ready);
  McGetResult result = future.get();
  REQUIRE(result.status == McStatus::kOk);
  return result.values.at(0);
}

DecodedRecord get_record(MemcachedPool& pool, const std::string& key) {
  INFO("key: " << key);
  std::optional<std::string> value = get_value(pool, key);
  REQUIRE(value);
  std::optional<DecodedRecord> record = decode(*value);
  REQUIRE(record);
  return std::move(*record);
}

std::string header(const CachedObject& object, std::string_view name) {
  auto value = object.headers.get(name);
  return value ? std::string(*value) : "<none>";
}

void set_mtime(const std::string& path) {
  timespec times[2] = {{kMtime, 0}, {kMtime, 0}};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

std::string binary_png() {
  std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
  for (int i = 0; i < 300; ++i) png += static_cast<char>(i * 7);
  return png;
}

// The tree the tests load: what is stored, what is left out, and a file each way too large.
struct Site {
  Site() {
    set_mtime(files.write("css/site.css", "body { color: red }\n"));
    set_mtime(files.write("img/logo.png", binary_png()));
    set_mtime(files.write("docs/a b.txt", "spaced"));
    set_mtime(files.write("js/deep/er/app.js", "let x = 1;\n"));
    set_mtime(files.write("q?x#.txt", "reserved"));
    files.write(".hidden", "not for memcached");
    files.write(".git/config", "not for memcached");
    files.write("dynamic/page.html", "served by the route /static/dynamic/");
    files.write("big.bin", std::string(100 * 1024, 'b'));        // over max_item: not even read
    files.write("nearly.bin", std::string(65500, 'n'));          // under it alone, over it as a record
    std::filesystem::create_symlink(files.path() + "/css/site.css", files.path() + "/css/link.css");
  }
  TempDir files;
};

}  // namespace

TEST_CASE("assets: a tree is stored under the route's keys, as records the proxy reads") {
  MemcachedServer server;
  TempDir dir;
  const std::string config = dir.write("edge.yaml", config_yaml(server.port, kSiteHost));
  Site site;

  const int64_t before = std::time(nullptr);
  Run run = run_assets({"--config", config, "--route", "/static/", site.files.path()});
  const int64_t after = std::time(nullptr);
  INFO(run.output);
  CHECK(run.code == 0);
  CHECK(contains(run.output, "edge assets: 5 files stored (" + std::to_string(20 + 316 + 6 + 11 + 8) +
                                 " bytes) under /static/ for host a.test in memcached " + server.address() +
                                 "; 2 too large, 0 failed, 2 skipped\n"));
  // Not a terminal: plain progress lines, the last one with every file.
  CHECK(contains(run.output, "edge assets: 8/8 files, "));
  CHECK(contains(run.output, site.files.path() + "/big.bin: too large"));
  CHECK(contains(run.output, site.files.path() + "/nearly.bin: too large"));
  CHECK(contains(run.output, site.files.path() + "/css/link.css: skipped: a symbolic link"));
  CHECK(contains(run.output, site.files.path() + "/dynamic/page.html: skipped"));
  CHECK(contains(run.output, "'/static/dynamic/'"));
  CHECK_FALSE(contains(run.output, "hidden"));
  CHECK_FALSE(contains(run.output, ".git"));

  MemcachedPool pool(MemcachedConfig{{server.address()}, 2s});
  DecodedRecord css = get_record(pool, "a.test/static/css/site.css");
  const CachedObject& object = *css.object;
  CHECK(object.key() == "a.test/static/css/site.css");
  CHECK(object.host() == "a.test");
  CHECK(object.path() == "/static/css/site.css");
  CHECK(object.variant.empty());
  CHECK(object.status == 200);
  CHECK(object.reason().empty());  // the standard phrase is not stored
  CHECK(header(object, "Content-Type") == "text/css; charset=utf-8");
  CHECK(header(object, "Cache-Control") == "max-age=600");
  CHECK(header(object, "ETag") == "\"d92e15bd3da4deb8\"");  // sha256sum of the content
  CHECK(header(object, "Last-Modified") == kMtimeText);
  CHECK(object.body->to_string() == "body { color: red }\n");
  CHECK(object.lifetime == 600);
  CHECK(object.grace == 30);
  REQUIRE(object.cc.get().max_age);
  CHECK(*object.cc.get().max_age == 600);
  CHECK(css.stored_at >= before);
  CHECK(css.stored_at <= after);
  CHECK(object.age.response_time() == css.stored_at);
  CHECK(object.age.corrected_initial_age() == 0);

  DecodedRecord png = get_record(pool, "a.test/static/img/logo.png");
  CHECK(png.object->body->to_string() == binary_png());
  CHECK(header(*png.object, "Content-Type") == "image/png");
  const std::string etag = header(*png.object, "ETag");
  CHECK(etag.size() == 18);
  CHECK(etag.front() == '"');
  CHECK(etag.back() == '"');
  CHECK(etag.find_first_not_of("0123456789abcdef", 1) == 17);
  CHECK(header(*png.object, "ETag") != header(object, "ETag"));

  DecodedRecord spaced = get_record(pool, "a.test/static/docs/a%20b.txt");
  CHECK(spaced.object->path() == "/static/docs/a%20b.txt");
  CHECK(spaced.object->body->to_string() == "spaced");
  CHECK(header(*spaced.object, "Content-Type") == "text/plain; charset=utf-8");
  CHECK(get_record(pool, "a.test/static/js/deep/er/app.js").object->body->to_string() == "let x = 1;\n");
  CHECK(get_record(pool, "a.test/static/q%3Fx%23.txt").object->body->to_string() == "reserved");

  CHECK_FALSE(get_value(pool, "a.test/static/.hidden"));
  CHECK_FALSE(get_value(pool, "a.test/static/.git/config"));
  CHECK_FALSE(get_value(pool, "a.test/static/big.bin"));
  CHECK_FALSE(get_value(pool, "a.test/static/nearly.bin"));
  CHECK_FALSE(get_value(pool, "a.test/static/css/link.css"));
  CHECK_FALSE(get_value(pool, "a.test/static/dynamic/page.html"));

  SUBCASE("--max-age and --host replace the route's ttl and the entry's first name") {
    Run again = run_assets(
        {"--config", config, "--route", "/static/", "--max-age", "7d", "--host", "WWW.A.test", site.files.path()});
    INFO(again.output);
    CHECK(again.code == 0);
    CHECK(contains(again.output, "5 files stored"));
    CHECK(contains(again.output, "for host www.a.test in memcached"));
    DecodedRecord week = get_record(pool, "www.a.test/static/css/site.css");
    CHECK(header(*week.object, "Cache-Control") == "max-age=604800");
    CHECK(week.object->lifetime == 604800);
    CHECK(week.object->host() == "www.a.test");
    CHECK(header(*week.object, "ETag") == header(object, "ETag"));  // same content, same validator
  }
}

TEST_CASE("assets: the host entry and {host} are chosen or asked for") {
  MemcachedServer server;
  TempDir dir;
  const std::string hosts = kSiteHost +
                            "  - match: \"*\"\n"
                            "    backend: app\n"
                            "    routes:\n"
                            "      - { path: /static/, static: memcached }\n"
                            "      - { path: /shared/, static: memcached, key: \"shared{path}\" }\n";
  const std::string config = dir.write("edge.yaml", config_yaml(server.port, hosts));
  TempDir files;
  files.write("x.css", "x");
  MemcachedPool pool(MemcachedConfig{{server.address()}, 2s});

  Run ambiguous = run_assets({"--config", config, "--route", "/static/", files.path()});
  CHECK(ambiguous.code == 2);
  CHECK(contains(ambiguous.output, "[a.test, www.a.test], [*]"));
  CHECK(contains(ambiguous.output, "--host"));

  // A name no entry lists exactly goes where the proxy routes it: the catch-all.
  Run other = run_assets({"--config", config, "--route", "/static/", "--host", "other.test", files.path()});
  INFO(other.output);
  CHECK(other.code == 0);
  CHECK(get_record(pool, "other.test/static/x.css").object->host() == "other.test");
  CHECK(header(*get_record(pool, "other.test/static/x.css").object, "Cache-Control") == "max-age=86400");

  Run missing = run_assets({"--config", config, "--route", "/shared/", "--host", "a.test", files.path()});
  CHECK(missing.code == 2);
  CHECK(contains(missing.output, "served by the entry [a.test, www.a.test], which has no route '/shared/'"));

  // A key without {host} needs no name.
  Run shared = run_assets({"--config", config, "--route", "/shared/", files.path()});
  INFO(shared.output);
  CHECK(shared.code == 0);
  CHECK(contains(shared.output, "1 files stored (1 bytes) under /shared/ for host (any) in memcached"));
  CHECK(get_record(pool, "shared/shared/x.css").object->host().empty());

  TempDir only_star;
  const std::string star_config = only_star.write(
      "edge.yaml", config_yaml(server.port, "  - match: \"*\"\n    backend: app\n    routes:\n"
                                            "      - { path: /static/, static: memcached }\n"));
  Run nameless = run_assets({"--config", star_config, "--route", "/static/", files.path()});
  CHECK(nameless.code == 2);
  CHECK(contains(nameless.output, "uses {host}"));
  CHECK(contains(nameless.output, "--host NAME"));
}

TEST_CASE("assets: usage and configuration errors exit 2 and store nothing") {
  MemcachedServer server;
  TempDir dir;
  const std::string config = dir.write("edge.yaml", config_yaml(server.port, kSiteHost));
  TempDir files;
  files.write("x.css", "x");

  Run not_static = run_assets({"--config", config, "--route", "/api/", files.path()});
  CHECK(not_static.code == 2);
  CHECK(contains(not_static.output, config + ":14:9: route '/api/' of host entry [a.test, www.a.test] is not "
                                             "`static: memcached`"));

  Run unknown = run_assets({"--config", config, "--route", "/nope/", files.path()});
  CHECK(unknown.code == 2);
  CHECK(contains(unknown.output, "no route has the path '/nope/'"));
  CHECK(contains(unknown.output, "(routes: /api/, /static/, /static/dynamic/)"));

  Run no_dir = run_assets({"--config", config, "--route", "/static/", dir.path() + "/absent"});
  CHECK(no_dir.code == 2);
  CHECK(contains(no_dir.output, "absent' is not a directory"));
  Run file_dir = run_assets({"--config", config, "--route", "/static/", config});
  CHECK(file_dir.code == 2);
  CHECK(contains(file_dir.output, "is not a directory"));

  Run no_route = run_assets({"--config", config, files.path()});
  CHECK(no_route.code == 2);
  CHECK(contains(no_route.output, "--route PREFIX is required"));
  CHECK(contains(no_route.output, "usage: edge assets"));
  Run no_config = run_assets({"--route", "/static/", files.path()});
  CHECK(no_config.code == 2);
  CHECK(contains(no_config.output, "--config FILE is required"));
  Run no_files = run_assets({"--config", config, "--route", "/static/"});
  CHECK(no_files.code == 2);
  CHECK(contains(no_files.output, "the directory to load is required"));
  Run bogus = run_assets({"--config", config, "--route", "/static/", "--bogus", files.path()});
  CHECK(bogus.code == 2);
  CHECK(contains(bogus.output, "unknown argument '--bogus'"));
  Run bad_age = run_assets({"--config", config, "--route", "/static/", "--max-age", "5ms", files.path()});
  CHECK(bad_age.code == 2);
  CHECK(contains(bad_age.output, "bad --max-age '5ms'"));

  Run bad_config = run_assets({"--config", dir.write("bad.yaml", "workers: 1\nlimits:\n  idle_timeout: soon\n"),
                               "--route", "/static/", files.path()});
  CHECK(bad_config.code == 2);
  CHECK(contains(bad_config.output, "bad.yaml:3:17: "));

  Run help = run_assets({"--help"});
  CHECK(help.code == 0);
  CHECK(contains(help.output, "--max-age"));

  MemcachedPool pool(MemcachedConfig{{server.address()}, 2s});
  CHECK_FALSE(get_value(pool, "a.test/static/x.css"));
}

TEST_CASE("assets: with memcached down every file fails, fast, and the exit code says so") {
  TempDir dir;
  const std::string config = dir.write("edge.yaml", config_yaml(free_port(), kSiteHost));
  Site site;

  const auto start = std::chrono::steady_clock::now();
  Run run = run_assets({"--config", config, "--route", "/static/", site.files.path()});
  INFO(run.output);
  CHECK(run.code == 1);
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK(contains(run.output, "edge assets: 0 files stored (0 bytes) under /static/ for host a.test"));
  CHECK(contains(run.output, "; 2 too large, 5 failed, 2 skipped\n"));
  CHECK(contains(run.output, site.files.path() + "/css/site.css: memcached set failed: "));
}
