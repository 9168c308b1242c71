// scripts/demo-load, run briefly against the real binaries: its figures must be sane (every
// request answered, the cache saving backend requests, hit ratios between 0 and 1, every app
// server taking a share), not fast.
#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {
std::string bin_dir() {
  const std::string edge = edge_bin();
  return edge.substr(0, edge.rfind('/'));
}

double ratio(const YAML::Node& run, const std::string& kind) {
  const YAML::Node value = run["hit_ratio"][kind];
  REQUIRE_MESSAGE(value, kind);
  return value.IsNull() ? -1 : value.as<double>();
}
}  // namespace

TEST_CASE("demo-load: a short run with and without the cache gives sane figures") {
  TempDir dir;
  const std::string json = dir.path() + "/figures.json";
  const std::string output =
      run_command(std::string(EDGE_SOURCE_DIR) + "/scripts/demo-load --bin " + bin_dir() +
                  " --seconds 2 --connections 8 --runs cache,nocache --json " + json + " 2>&1");
  INFO(output);
  REQUIRE(output.find("client requests") != std::string::npos);
  REQUIRE(output.find("app servers: share, peak") != std::string::npos);
  const YAML::Node figures = YAML::LoadFile(json);
  REQUIRE(figures["runs"].size() == 2);
  const YAML::Node cache = figures["runs"][0];
  const YAML::Node nocache = figures["runs"][1];
  CHECK(cache["run"].as<std::string>() == "cache");
  CHECK(nocache["run"].as<std::string>() == "nocache");

  for (const YAML::Node& run : {cache, nocache}) {
    const long requests = run["requests"].as<long>();
    CHECK(requests > 20);
    CHECK(run["errors"].as<long>() == 0);
    CHECK(run["status"]["5xx"].as<long>() == 0);
    CHECK(run["status"]["4xx"].as<long>() == 0);
    CHECK(run["latency_ms"]["p50"].as<double>() > 0);
    CHECK(run["latency_ms"]["p99"].as<double>() >= run["latency_ms"]["p50"].as<double>());
    long pages = 0;
    for (const char* page : {"home", "book", "author", "tag", "search"}) pages += run["pages"][page].as<long>();
    CHECK(pages + run["posts"].as<long>() == run["status"]["2xx"].as<long>() + run["status"]["3xx"].as<long>());
    CHECK(run["fragment_uses"]["userbar"].as<long>() == pages);  // every page has the userbar
    for (const auto& entry : run["hit_ratio"]) {
      if (entry.second.IsNull()) continue;
      CHECK(entry.second.as<double>() <= 1.0);
      CHECK(entry.second.as<double>() >= -0.05);  // a refresh in flight at the end may count twice
    }
    // The view counter is never cached: every use reached an app server.
    CHECK(ratio(run, "fragment/view") == doctest::Approx(0.0).epsilon(0.02));
    // Every server took part, and its peak is at least one request at a time.
    double shares = 0;
    for (const auto& server : run["servers"]) {
      CHECK(server["requests"].as<long>() > 0);
      CHECK(server["peak_in_progress"].as<long>() >= 1);
      shares += server["share"].as<double>();
    }
    CHECK(shares == doctest::Approx(1.0));
  }
  // Without the cache every fragment is fetched; with it the shared fragments are mostly hits.
  CHECK(ratio(nocache, "fragment/tagcloud") <= 0.02);
  CHECK(ratio(cache, "fragment/tagcloud") > 0.5);
  CHECK(ratio(cache, "fragment/mostviewed") > 0.5);
  const double with = cache["backend_requests"].as<double>() / cache["requests"].as<double>();
  const double without = nocache["backend_requests"].as<double>() / nocache["requests"].as<double>();
  CHECK(with < without);
}

TEST_CASE("demo-load: a bad command line is refused with a message") {
  const std::string output =
      run_command(std::string(EDGE_SOURCE_DIR) + "/scripts/demo-load --bin " + bin_dir() + " --runs bogus 2>&1; echo exit=$?");
  CHECK(output.find("unknown run 'bogus'") != std::string::npos);
  CHECK(output.find("exit=2") != std::string::npos);
}
