// GET /metrics after a known mix of traffic: exact counts, histograms whose counts match the
// requests, plausible bytes and open connections, and promtool's lint clean; /stats' workers and
// /backends' response_ms; the metrics switches.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

constexpr const char* kToken = "metrics-test-token";

Response admin_get(uint16_t port, const std::string& target) { return admin_request(port, kToken, "GET", target); }

std::string request_for(const std::string& host, const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
}

// The value of the sample named exactly `series` (name and labels, as edge writes them).
std::optional<double> sample(const std::string& body, const std::string& series) {
  const std::string line_start = series + " ";
  size_t at = body.starts_with(line_start) ? 0 : body.find("\n" + line_start);
  if (at == std::string::npos) return std::nullopt;
  if (at > 0) ++at;
  return std::strtod(body.c_str() + at + line_start.size(), nullptr);
}

// /metrics once `ready` holds of it (what is recorded at a request's end may trail the response
// the client read by a moment), or as it is after a bounded wait.
template <typename Ready>
std::string metrics_when(uint16_t admin_port, Ready ready) {
  std::string body;
  for (int attempt = 0; attempt < 100; ++attempt) {
    body = admin_get(admin_port, "/metrics").body;
    if (ready(body)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return body;
}

// promtool's lint of an exposition: "" when clean, else what it said.
std::string promtool_problems(const std::string& exposition) {
  TempDir dir;
  const std::string input = dir.write("metrics.txt", exposition);
  const std::string output = dir.path() + "/promtool.out";
  const int rc = std::system(("promtool check metrics < '" + input + "' > '" + output + "' 2>&1").c_str());
  std::ifstream in(output);
  std::stringstream said;
  said << in.rdbuf();
  if (rc != 0) return "promtool exited with " + std::to_string(rc) + ": " + said.str();
  return said.str();
}

std::string config_for(uint16_t app_port, const std::string& token, const std::string& extra = "") {
  return "workers: 2\nlisten: [{address: \"127.0.0.1:{{port}}\"}]\nadmin: {address: \"127.0.0.1:0\", token_file: \"" +
         token + "\"}\nbackends:\n  app: {servers: [" + yaml_address(app_port) +
         "]}\nhosts:\n  - {match: [site.test, www.site.test], backend: app}\n  - {match: [other.test], backend: app}\n" +
         extra;
}

}  // namespace

TEST_CASE("/metrics counts a known mix of traffic exactly, and promtool finds nothing to say") {
  App app("a");
  TempDir secrets;
  const std::string token = secrets.write("admin.token", std::string(kToken) + "\n");
  Edge edge{config_for(app.port, token)};
  const std::string server = "127.0.0.1:" + std::to_string(app.port);

  // Fresh connections, spread by the kernel over both workers, whose figures /metrics adds up.
  uint64_t sent = 0;
  auto send = [&](const std::string& host, const std::string& target, int status) {
    const std::string raw = request_for(host, target);
    sent += raw.size();
    REQUIRE(exchange(edge.port, raw).status == status);
  };
  for (int i = 0; i < 5; ++i) send("site.test", "/echo?x=" + std::to_string(i), 200);
  for (int i = 0; i < 3; ++i) send("www.site.test", "/status?code=404", 404);
  send("site.test", "/cache/c?cc=max-age%3D60&body=c", 200);  // a miss
  send("site.test", "/cache/c?cc=max-age%3D60&body=c", 200);  // a hit
  for (int i = 0; i < 2; ++i) send("other.test", "/echo", 200);
  send("other.test", "/status?code=503", 503);
  send("nowhere.test", "/", 404);  // no host entry: edge answers itself

  const std::string body = metrics_when(edge.admin_port, [](const std::string& b) {
    return sample(b, "edge_request_duration_seconds_count{host=\"\"}") == 1.0 &&
           sample(b, "edge_request_duration_seconds_count{host=\"site.test\"}") == 10.0 &&
           sample(b, "edge_request_duration_seconds_count{host=\"other.test\"}") == 3.0 &&
           sample(b, "edge_client_connections") == 0.0;
  });
  INFO(body);
  CHECK(sample(body, "edge_responses_total{host=\"site.test\",code=\"2xx\"}") == 7.0);
  CHECK(sample(body, "edge_responses_total{host=\"site.test\",code=\"4xx\"}") == 3.0);
  CHECK(sample(body, "edge_responses_total{host=\"site.test\",code=\"5xx\"}") == 0.0);
  CHECK(sample(body, "edge_responses_total{host=\"other.test\",code=\"2xx\"}") == 2.0);
  CHECK(sample(body, "edge_responses_total{host=\"other.test\",code=\"5xx\"}") == 1.0);
  CHECK(sample(body, "edge_responses_total{host=\"\",code=\"4xx\"}") == 1.0);
  CHECK_FALSE(sample(body, "edge_responses_total{host=\"www.site.test\",code=\"4xx\"}"));  // the entry's first name

  // Every response is timed; the cache hit and the unknown host never went to the backend.
  CHECK(sample(body, "edge_request_duration_seconds_bucket{host=\"site.test\",le=\"+Inf\"}") == 10.0);
  CHECK(*sample(body, "edge_request_duration_seconds_sum{host=\"site.test\"}") > 0.0);
  CHECK(sample(body, "edge_request_first_byte_seconds_count{host=\"site.test\"}") == 9.0);
  CHECK(sample(body, "edge_request_first_byte_seconds_count{host=\"other.test\"}") == 3.0);
  CHECK(sample(body, "edge_request_first_byte_seconds_count{host=\"\"}") == 0.0);
  const std::string labels = "{backend=\"app\",server=\"" + server + "\"}";
  CHECK(sample(body, "edge_backend_first_byte_seconds_count" + labels) == 12.0);
  const std::optional<double> connects = sample(body, "edge_backend_connect_seconds_count" + labels);
  CHECK(connects >= 1.0);
  CHECK(connects <= 12.0);
  CHECK(sample(body, "edge_backend_server_health_transitions_total{backend=\"app\",server=\"" + server +
                         "\",to=\"down\"}") == 0.0);
  CHECK(sample(body, "edge_cache_events_total{host=\"site.test\",event=\"hits\"}") == 1.0);

  // Bytes: every byte the clients sent, exactly; responses at least their heads' worth.
  CHECK(sample(body, "edge_client_received_bytes_total") == static_cast<double>(sent));
  CHECK(*sample(body, "edge_client_sent_bytes_total") > 14.0 * 40);
  CHECK(*sample(body, "edge_backend_sent_bytes_total") > 12.0 * 40);
  CHECK(*sample(body, "edge_backend_received_bytes_total") > 12.0 * 40);
  CHECK(*sample(body, "edge_backend_connections") <= *connects);  // those kept alive in the pools
  CHECK(sample(body, "edge_worker_requests_in_progress{worker=\"0\"}") == 0.0);
  CHECK(sample(body, "edge_worker_requests_in_progress{worker=\"1\"}") == 0.0);

  CHECK(promtool_problems(body) == "");

  // A kept-alive connection, idle after its response: open, and waiting.
  Client idle(edge.port);
  REQUIRE(idle.send("GET /echo HTTP/1.1\r\nHost: other.test\r\n\r\n"));
  REQUIRE(idle.read_response().status == 200);
  const std::string open = metrics_when(edge.admin_port, [](const std::string& b) {
    return sample(b, "edge_client_connections") == 1.0 &&
           sample(b, "edge_request_duration_seconds_count{host=\"other.test\"}") == 4.0;
  });
  CHECK(sample(open, "edge_client_connections") == 1.0);
  CHECK(*sample(open, "edge_worker_waiting_connections{worker=\"0\"}") +
            *sample(open, "edge_worker_waiting_connections{worker=\"1\"}") ==
        1.0);

  const Response stats = admin_get(edge.admin_port, "/stats");
  CHECK_MESSAGE(stats.body.find("\"workers\":[{\"connections\":") != std::string::npos, stats.body);
  CHECK_MESSAGE(stats.body.find("\"requests_in_progress\":0,\"waiting\":") != std::string::npos, stats.body);
  CHECK_MESSAGE(stats.body.find("\"connections\":{\"open\":1,\"backend_open\":") != std::string::npos, stats.body);
  const Response backends = admin_get(edge.admin_port, "/backends");
  CHECK_MESSAGE(backends.body.find("\"response_ms\":{\"p50\":") != std::string::npos, backends.body);
  CHECK_MESSAGE(backends.body.find("\"p50\":null") == std::string::npos, backends.body);
}

TEST_CASE("/metrics without histograms or top: the counters stay, the histograms stay empty") {
  App app("a");
  TempDir secrets;
  const std::string token = secrets.write("admin.token", std::string(kToken) + "\n");
  Edge edge{config_for(app.port, token, "metrics: {histograms: false, top: false}\n")};
  const std::string server = "127.0.0.1:" + std::to_string(app.port);
  for (int i = 0; i < 4; ++i) REQUIRE(get(edge.port, "site.test", "/echo").status == 200);

  const std::string body = metrics_when(edge.admin_port, [](const std::string& b) {
    return sample(b, "edge_responses_total{host=\"site.test\",code=\"2xx\"}") == 4.0;
  });
  INFO(body);
  CHECK(sample(body, "edge_responses_total{host=\"site.test\",code=\"2xx\"}") == 4.0);
  CHECK(sample(body, "edge_request_duration_seconds_count{host=\"site.test\"}") == 0.0);
  CHECK(sample(body, "edge_backend_first_byte_seconds_count{backend=\"app\",server=\"" + server + "\"}") == 0.0);
  CHECK(*sample(body, "edge_client_sent_bytes_total") > 0.0);
  CHECK(promtool_problems(body) == "");
  CHECK(admin_get(edge.admin_port, "/top").body == "{\"window\":\"1m\",\"by\":\"requests\",\"total\":0,\"top\":[]}\n");
  const Response backends = admin_get(edge.admin_port, "/backends");
  CHECK_MESSAGE(backends.body.find("\"response_ms\":{\"p50\":null,\"p90\":null,\"p99\":null}") != std::string::npos,
                backends.body);
}

TEST_CASE("a reload that reorders the hosts and adds one keeps each host's and server's figures") {
  App app("a");
  TempDir secrets;
  const std::string token = secrets.write("admin.token", std::string(kToken) + "\n");
  Edge edge{config_for(app.port, token)};
  const std::string server = "127.0.0.1:" + std::to_string(app.port);
  for (int i = 0; i < 3; ++i) REQUIRE(get(edge.port, "site.test", "/echo").status == 200);
  REQUIRE(get(edge.port, "other.test", "/echo").status == 200);

  // The hosts in the other order, and a new one first; port 0: the listener is kept as it is.
  std::ofstream(edge.config_path, std::ios::trunc)
      << "workers: 2\nlisten: [{address: \"127.0.0.1:0\"}]\nadmin: {address: \"127.0.0.1:0\", token_file: \"" + token +
             "\"}\nbackends:\n  app: {servers: [" + yaml_address(app.port) +
             "]}\nhosts:\n  - {match: [new.test], backend: app}\n  - {match: [other.test], backend: app}\n"
             "  - {match: [site.test, www.site.test], backend: app}\n";
  const Response reloaded = admin_request(edge.admin_port, kToken, "POST", "/reload");
  REQUIRE_MESSAGE(reloaded.status == 200, reloaded.body);
  REQUIRE(get(edge.port, "site.test", "/echo").status == 200);
  REQUIRE(get(edge.port, "new.test", "/echo").status == 200);

  const std::string body = metrics_when(edge.admin_port, [](const std::string& b) {
    return sample(b, "edge_responses_total{host=\"new.test\",code=\"2xx\"}") == 1.0 &&
           sample(b, "edge_responses_total{host=\"site.test\",code=\"2xx\"}") == 4.0;
  });
  INFO(body);
  CHECK(sample(body, "edge_responses_total{host=\"site.test\",code=\"2xx\"}") == 4.0);
  CHECK(sample(body, "edge_responses_total{host=\"other.test\",code=\"2xx\"}") == 1.0);
  CHECK(sample(body, "edge_responses_total{host=\"new.test\",code=\"2xx\"}") == 1.0);
  CHECK(sample(body, "edge_request_duration_seconds_count{host=\"site.test\"}") == 4.0);
  CHECK(sample(body, "edge_backend_first_byte_seconds_count{backend=\"app\",server=\"" + server + "\"}") == 6.0);
  CHECK(promtool_problems(body) == "");
}

TEST_CASE("/metrics times the memcached tier's gets and sets, and promtool finds nothing to say") {
  App app("a");
  MemcachedServer memcached;
  TempDir secrets;
  const std::string token = secrets.write("admin.token", std::string(kToken) + "\n");
  Edge edge{config_for(app.port, token, "cache: {memcached: {servers: [" + memcached.address() + "]}}\n")};
  // A miss: a lookup in memcached, then the backend, then a write-through.
  REQUIRE(get(edge.port, "site.test", "/cache/m?cc=max-age%3D60&body=m").status == 200);

  const std::string body = metrics_when(edge.admin_port, [](const std::string& b) {
    return sample(b, "edge_memcached_operation_seconds_count{op=\"set\"}") >= 1.0;
  });
  INFO(body);
  CHECK(sample(body, "edge_memcached_operation_seconds_count{op=\"get\"}") >= 1.0);
  CHECK(sample(body, "edge_memcached_operation_seconds_count{op=\"set\"}") >= 1.0);
  CHECK(sample(body, "edge_memcached_operation_seconds_bucket{op=\"get\",le=\"+Inf\"}") ==
        sample(body, "edge_memcached_operation_seconds_count{op=\"get\"}"));
  CHECK(promtool_problems(body) == "");
}
