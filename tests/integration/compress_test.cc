// Compression at the edge through the real binaries: every body a client gets coded is decoded
// here with the libraries edge uses and compared with what the backend sent; what reached the
// backend is counted by edge-app.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "compress/codec.h"
#include "tests/integration/testkit.h"

using namespace edge::testkit;
using edge::compress::Coding;

namespace {

std::string config_for(const App& app, const std::string& top = "") {
  return top + R"(
workers: 2
listen: [{address: "127.0.0.1:{{port}}"}]
backends:
  app: {servers: [)" + yaml_address(app.port) + R"(]}
hosts:
  - match: ["*"]
    backend: app
    routes:
      - {path: /cache/off/, compress: off}
      - {path: /cache/gzip/, compress: {encodings: [gzip], level: {gzip: 1}}}
      - {path: /cache/pass/, cache: off}
      - {path: /cache/esi/, esi: on}
)";
}

struct Site {
  App app{"origin"};
  Edge edge{config_for(app)};
};

// A Site whose edge has an admin port, for /stats and /metrics.
struct AdminSite {
  App app{"origin"};
  TempDir secrets;
  std::string token = "compress-test-token";
  std::string token_file = secrets.write("admin.token", token + "\n");
  Edge edge{config_for(app, "admin: {address: \"127.0.0.1:0\", token_file: \"" + token_file + "\"}\n")};
};

Response fetch(uint16_t port, const std::string& target, const std::string& headers = "", const std::string& method = "GET") {
  return exchange(port, method + " " + target + " HTTP/1.1\r\nHost: site.test\r\n" + headers + "Connection: close\r\n\r\n",
                  method);
}

std::string pattern(uint64_t size) {
  std::string out;
  for (uint64_t i = 0; i < size; ++i) out.push_back(static_cast<char>('a' + i % 26));
  return out;
}

std::string field(const Response& r, std::string_view name) { return std::string(r.header(name).value_or("")); }

// The body as the client reads it once decoded by its Content-Encoding.
std::string decoded(const Response& r) {
  const std::string coding = field(r, "Content-Encoding");
  if (coding.empty()) return r.body;
  const std::optional<Coding> parsed = edge::compress::parse_coding(coding);
  REQUIRE(parsed);
  std::optional<std::string> out = edge::compress::decode_all(*parsed, r.body, 64 << 20);
  REQUIRE(out);
  return *out;
}

constexpr const char* kHtml = "type=text%2Fhtml%3B%20charset%3Dutf-8";

}  // namespace

TEST_CASE("compress: a stored page is compressed once and each client gets the coding it prefers") {
  Site s;
  const std::string t = std::string("/cache/stored?cc=max-age%3D60&etag=%22v1%22&size=20000&") + kHtml;
  const std::string body = pattern(20000);
  // The fill's own response streams, compressed as it goes.
  Response first = fetch(s.edge.port, t, "Accept-Encoding: gzip, deflate, br, zstd\r\n");
  CHECK(first.status == 200);
  CHECK(field(first, "Content-Encoding") == "br");
  CHECK(decoded(first) == body);
  CHECK(field(first, "Vary") == "Accept-Encoding");
  CHECK(field(first, "ETag") == "W/\"v1\"");

  struct Case {
    const char* accept;
    const char* coding;
  };
  for (Case c : {Case{"br, gzip", "br"}, Case{"gzip, zstd", "zstd"}, Case{"gzip", "gzip"}, Case{"x-gzip", "gzip"},
                 Case{"br;q=0.1, gzip", "gzip"}, Case{"deflate", ""}, Case{"identity", ""},
                 Case{"br;q=0, zstd;q=0, gzip;q=0", ""}, Case{"*", "br"}}) {
    CAPTURE(c.accept);
    Response hit = fetch(s.edge.port, t, std::string("Accept-Encoding: ") + c.accept + "\r\n");
    CHECK(field(hit, "X-Cache") == "HIT");
    CHECK(field(hit, "Content-Encoding") == c.coding);
    CHECK(field(hit, "Vary") == "Accept-Encoding");
    CHECK(decoded(hit) == body);
    // Stored encodings have a length; the identity body too.
    CHECK(field(hit, "Content-Length") == std::to_string(hit.body.size()));
    CHECK(field(hit, "ETag") == (*c.coding ? "W/\"v1\"" : "\"v1\""));
    if (*c.coding) CHECK(hit.body.size() < body.size() / 10);
  }
  // No Accept-Encoding: identity (RFC 9110 12.5.3 would allow any coding; no client that sends
  // none expects one).
  Response plain = fetch(s.edge.port, t);
  CHECK(field(plain, "Content-Encoding") == "");
  CHECK(plain.body == body);
  CHECK(app_count(s.app.port, t) == 1);
}

TEST_CASE("compress: HEAD, 304 and ranges of a compressed stored page") {
  Site s;
  const std::string t = std::string("/cache/cond?cc=max-age%3D60&etag=%22v2%22&size=5000&") + kHtml;
  fetch(s.edge.port, t);
  Response head = fetch(s.edge.port, t, "Accept-Encoding: br\r\n", "HEAD");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(field(head, "Content-Encoding") == "br");
  Response full = fetch(s.edge.port, t, "Accept-Encoding: br\r\n");
  CHECK(field(head, "Content-Length") == std::to_string(full.body.size()));

  // RFC 9110 13.1.2: If-None-Match compares weakly, so the coded page's W/"v2" matches; the 304
  // carries the ETag of what this client would get, and no Content-Encoding.
  Response coded_304 = fetch(s.edge.port, t, "Accept-Encoding: br\r\nIf-None-Match: W/\"v2\"\r\n");
  CHECK(coded_304.status == 304);
  CHECK(field(coded_304, "ETag") == "W/\"v2\"");
  CHECK(field(coded_304, "Content-Encoding") == "");
  CHECK(field(coded_304, "Vary") == "Accept-Encoding");
  Response plain_304 = fetch(s.edge.port, t, "If-None-Match: \"v2\"\r\n");
  CHECK(plain_304.status == 304);
  CHECK(field(plain_304, "ETag") == "\"v2\"");
  CHECK(fetch(s.edge.port, t, "Accept-Encoding: br\r\nIf-None-Match: W/\"v1\"\r\n").status == 200);

  // A range is of the identity body, whatever the client accepts.
  Response range = fetch(s.edge.port, t, "Accept-Encoding: br, gzip\r\nRange: bytes=100-199\r\n");
  CHECK(range.status == 206);
  CHECK(field(range, "Content-Encoding") == "");
  CHECK(field(range, "Content-Range") == "bytes 100-199/5000");
  CHECK(range.body == pattern(5000).substr(100, 100));
  // A weak ETag never satisfies If-Range (RFC 9110 13.1.5): the whole coded page comes instead.
  Response if_range = fetch(s.edge.port, t, "Accept-Encoding: br\r\nRange: bytes=0-9\r\nIf-Range: W/\"v2\"\r\n");
  CHECK(if_range.status == 200);
  CHECK(app_count(s.app.port, t) == 1);
}

TEST_CASE("compress: what is left alone: no-transform, coded, short, unlisted types, routes that opt out") {
  Site s;
  const std::string accept = "Accept-Encoding: br, gzip\r\n";
  auto twice = [&](const std::string& target) {
    fetch(s.edge.port, target, accept);
    return fetch(s.edge.port, target, accept);
  };
  // RFC 9110 7.7: no-transform.
  Response no_transform = twice(std::string("/cache/nt?cc=max-age%3D60%2C%20no-transform&size=5000&") + kHtml);
  CHECK(field(no_transform, "Content-Encoding") == "");
  CHECK(field(no_transform, "Vary") == "");
  CHECK(no_transform.body == pattern(5000));
  // Already coded by the backend and passed: relayed as it came, never coded twice.
  Response coded = twice(std::string("/cache/pass/coded?size=5000&content_encoding=gzip&") + kHtml);
  CHECK(field(coded, "Content-Encoding") == "gzip");
  CHECK(coded.body == pattern(5000));
  Response short_body = twice(std::string("/cache/short?cc=max-age%3D60&size=100&") + kHtml);
  CHECK(field(short_body, "Content-Encoding") == "");
  CHECK(short_body.body == pattern(100));
  Response image = twice("/cache/png?cc=max-age%3D60&size=5000&type=image%2Fpng");
  CHECK(field(image, "Content-Encoding") == "");
  CHECK(field(image, "Vary") == "");
  Response off = twice(std::string("/cache/off/page?cc=max-age%3D60&size=5000&") + kHtml);
  CHECK(field(off, "Content-Encoding") == "");
  CHECK(field(off, "Vary") == "");
  CHECK(off.body == pattern(5000));
  // A route's own encodings: gzip only.
  Response gzip_only = twice(std::string("/cache/gzip/page?cc=max-age%3D60&size=5000&") + kHtml);
  CHECK(field(gzip_only, "Content-Encoding") == "gzip");
  CHECK(decoded(gzip_only) == pattern(5000));
}

TEST_CASE("compress: a passed response is compressed as it streams, chunk after chunk") {
  Site s;
  for (const char* coding : {"br", "zstd", "gzip"}) {
    CAPTURE(coding);
    const std::string t = std::string("/cache/pass/stream-") + coding + "?size=300000&chunk=777&" + kHtml;
    Response r = fetch(s.edge.port, t, std::string("Accept-Encoding: ") + coding + "\r\n");
    CHECK(r.status == 200);
    CHECK(field(r, "X-Cache") == "PASS");
    CHECK(field(r, "Content-Encoding") == coding);
    CHECK(field(r, "Transfer-Encoding") == "chunked");
    CHECK(field(r, "Content-Length") == "");
    CHECK(decoded(r) == pattern(300000));
  }
  // With a Content-Length from the backend too.
  const std::string sized = std::string("/cache/pass/sized?size=4000&") + kHtml;
  Response r = fetch(s.edge.port, sized, "Accept-Encoding: gzip\r\n");
  CHECK(field(r, "Content-Encoding") == "gzip");
  CHECK(decoded(r) == pattern(4000));
  Response head = fetch(s.edge.port, sized, "Accept-Encoding: gzip\r\n", "HEAD");
  CHECK(head.status == 200);
  CHECK(field(head, "Content-Encoding") == "gzip");
  CHECK(field(head, "Content-Length") == "");
  Response plain = fetch(s.edge.port, sized);
  CHECK(field(plain, "Content-Length") == "4000");
  CHECK(field(plain, "Vary") == "Accept-Encoding");
  CHECK(plain.body == pattern(4000));
}

TEST_CASE("compress: an assembled page is compressed once assembled; its fragments stay identity") {
  Site s;
  const std::string fragment = "/cache/frag?cc=max-age%3D60&size=3000&" + std::string(kHtml);
  const std::string page = "/cache/esi/page?cc=max-age%3D60&" + std::string(kHtml) + "&body=" +
                           percent_encode("<html>" + std::string(400, 'x') + "<esi:include src=\"" + fragment +
                                          "\"/></html>");
  const std::string expected = "<html>" + std::string(400, 'x') + pattern(3000) + "</html>";
  for (const char* coding : {"br", "zstd", "gzip"}) {
    CAPTURE(coding);
    Response coded = fetch(s.edge.port, page, std::string("Accept-Encoding: ") + coding + "\r\n");
    CHECK(coded.status == 200);
    CHECK(field(coded, "Content-Encoding") == coding);
    CHECK(decoded(coded) == expected);
    Response plain = fetch(s.edge.port, page);
    CHECK(field(plain, "Content-Encoding") == "");
    CHECK(plain.body == expected);
  }
  CHECK(app_count(s.app.port, page) == 1);
  CHECK(app_count(s.app.port, fragment) == 1);
}

TEST_CASE("compress: /stats and /metrics count coded responses and their bytes before and after, by coding") {
  AdminSite site;
  Edge& edge = site.edge;
  const std::string& token = site.token;
  const std::string stored = std::string("/cache/counted?cc=max-age%3D60&size=20000&") + kHtml;
  uint64_t br_after = 0;
  for (int i = 0; i < 3; ++i) br_after += fetch(edge.port, stored, "Accept-Encoding: br\r\n").body.size();
  const Response passed = fetch(edge.port, std::string("/cache/pass/counted?size=9000&chunk=1000&") + kHtml,
                                "Accept-Encoding: gzip\r\n");
  fetch(edge.port, stored);  // identity: not counted
  fetch(edge.port, stored, "Accept-Encoding: br\r\n", "HEAD");  // no body: not counted

  // What a request adds is recorded at its end, which may trail the response by a moment.
  std::string stats;
  const std::string want_br = "\"br\":{\"responses\":3,\"bytes_before\":60000,\"bytes_after\":" +
                              std::to_string(br_after) + "}";
  const std::string want_gzip = "\"gzip\":{\"responses\":1,\"bytes_before\":9000,\"bytes_after\":" +
                                std::to_string(passed.body.size()) + "}";
  for (int attempt = 0; attempt < 100; ++attempt) {
    stats = admin_request(edge.admin_port, token, "GET", "/stats").body;
    if (stats.find(want_br) != std::string::npos && stats.find(want_gzip) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  INFO(stats);
  CHECK(stats.find(want_br) != std::string::npos);
  CHECK(stats.find(want_gzip) != std::string::npos);
  CHECK(stats.find("\"zstd\":{\"responses\":0,\"bytes_before\":0,\"bytes_after\":0}") != std::string::npos);
  const std::string metrics = admin_request(edge.admin_port, token, "GET", "/metrics").body;
  CHECK(metrics.find("edge_compressed_responses_total{encoding=\"br\"} 3\n") != std::string::npos);
  CHECK(metrics.find("edge_compressed_bytes_before_total{encoding=\"gzip\"} 9000\n") != std::string::npos);
  CHECK(metrics.find("edge_compressed_bytes_after_total{encoding=\"br\"} " + std::to_string(br_after) + "\n") !=
        std::string::npos);
}

TEST_CASE("compress: a fill asks for no coding; one the backend applies anyway is stored as sent and decoded") {
  Site s;
  const std::string body = pattern(8000);
  for (const char* coding : {"gzip", "br", "zstd"}) {
    CAPTURE(coding);
    const std::string t = std::string("/cache/sent-") + coding + "?cc=max-age%3D60&etag=%22s1%22&size=8000&coded=" +
                          coding + "&" + kHtml;
    // The fill streams the decoded body to its client, coded again as that client prefers.
    Response first = fetch(s.edge.port, t, "Accept-Encoding: gzip, br, zstd\r\n");
    CHECK(first.status == 200);
    CHECK(field(first, "X-Got-Accept-Encoding") == "");  // the backend was asked for no coding
    CHECK(decoded(first) == body);
    Response plain = fetch(s.edge.port, t);
    CHECK(field(plain, "X-Cache") == "HIT");
    CHECK(field(plain, "Content-Encoding") == "");
    CHECK(field(plain, "Content-Length") == "8000");
    CHECK(field(plain, "ETag") == "W/\"s1\"");  // decoded: not the backend's bytes
    CHECK(plain.body == body);
    for (const char* wanted : {"gzip", "br", "zstd"}) {
      CAPTURE(wanted);
      Response hit = fetch(s.edge.port, t, std::string("Accept-Encoding: ") + wanted + "\r\n");
      CHECK(field(hit, "Content-Encoding") == wanted);
      CHECK(decoded(hit) == body);
    }
    CHECK(app_count(s.app.port, t) == 1);
  }
  // A body that does not decode as its coding says: nothing stored, the client told it failed.
  const std::string corrupt = std::string("/cache/corrupt?cc=max-age%3D60&size=5000&content_encoding=gzip&") + kHtml;
  for (int i = 0; i < 2; ++i) {
    Response r = fetch(s.edge.port, corrupt, "Accept-Encoding: gzip\r\n");
    CHECK((r.status == 502 || !r.complete));
  }
  CHECK(app_count(s.app.port, corrupt) == 2);
  // no-transform: the backend's coding is left as it is, for everyone.
  const std::string kept = std::string("/cache/kept?cc=max-age%3D60%2C%20no-transform&size=5000&coded=gzip&") + kHtml;
  fetch(s.edge.port, kept);
  Response as_sent = fetch(s.edge.port, kept);
  CHECK(field(as_sent, "Content-Encoding") == "gzip");
  CHECK(decoded(as_sent) == pattern(5000));
}

TEST_CASE("compress: a backend's Vary on Accept-Encoding makes no variants where edge makes the codings") {
  Site s;
  const std::string t = std::string("/cache/varied?cc=max-age%3D60&vary=Accept-Encoding&size=3000&") + kHtml;
  for (const char* accept : {"gzip", "br, gzip", "identity", "zstd;q=0.5, gzip;q=0.4"}) {
    CAPTURE(accept);
    Response r = fetch(s.edge.port, t, std::string("Accept-Encoding: ") + accept + "\r\n");
    CHECK(decoded(r) == pattern(3000));
    CHECK(field(r, "Vary") == "Accept-Encoding");
  }
  CHECK(app_count(s.app.port, t) == 1);
  // Where the route does not compress, the backend's variants are kept apart as before.
  const std::string off = std::string("/cache/off/varied?cc=max-age%3D60&vary=Accept-Encoding&size=3000&") + kHtml;
  fetch(s.edge.port, off, "Accept-Encoding: gzip\r\n");
  Response other = fetch(s.edge.port, off, "Accept-Encoding: br\r\n");
  CHECK(field(other, "X-Got-Accept-Encoding") == "br");
  CHECK(app_count(s.app.port, off) == 2);
}

TEST_CASE("compress: a small passed page arriving in chunks of every size decodes to the same bytes") {
  Site s;
  const std::string body = pattern(700);
  for (int chunk = 1; chunk <= 700; chunk = chunk < 40 ? chunk + 1 : chunk * 3 / 2) {
    CAPTURE(chunk);
    for (const char* coding : {"br", "zstd", "gzip"}) {
      CAPTURE(coding);
      const std::string t = "/cache/pass/small?size=700&chunk=" + std::to_string(chunk) + "&" + kHtml;
      Response r = fetch(s.edge.port, t, std::string("Accept-Encoding: ") + coding + "\r\n");
      REQUIRE(r.complete);
      CHECK(field(r, "Content-Encoding") == coding);
      CHECK(decoded(r) == body);
    }
  }
}

TEST_CASE("compress: a large object is stored at once and gets its encodings in the background") {
  Site s;
  const std::string t = std::string("/cache/large?cc=max-age%3D60&size=400000&") + kHtml;
  Response first = fetch(s.edge.port, t, "Accept-Encoding: br\r\n");
  CHECK(field(first, "Content-Encoding") == "br");
  CHECK(decoded(first) == pattern(400000));
  // Meanwhile the identity object serves, compressed as it streams; then the stored encoding,
  // with its length.
  Response coded;
  for (int attempt = 0; attempt < 200; ++attempt) {
    coded = fetch(s.edge.port, t, "Accept-Encoding: br\r\n");
    if (!field(coded, "Content-Length").empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(field(coded, "X-Cache") == "HIT");
  CHECK(field(coded, "Content-Encoding") == "br");
  CHECK(field(coded, "Content-Length") == std::to_string(coded.body.size()));
  CHECK(decoded(coded) == pattern(400000));
  Response gzip = fetch(s.edge.port, t, "Accept-Encoding: gzip\r\n");
  CHECK(field(gzip, "Content-Length") == std::to_string(gzip.body.size()));
  CHECK(decoded(gzip) == pattern(400000));
  CHECK(app_count(s.app.port, t) == 1);
}

TEST_CASE("compress: the encodings are counted in the cache's memory") {
  AdminSite site;
  Edge& edge = site.edge;
  const std::string& token = site.token;
  auto store_bytes = [&] {
    const std::string stats = admin_request(edge.admin_port, token, "GET", "/stats").body;
    const size_t at = stats.find("\"store\":{\"objects\":");
    REQUIRE(at != std::string::npos);
    const size_t bytes = stats.find("\"bytes\":", at);
    return std::stoull(stats.substr(bytes + 8));
  };
  // Two objects alike but for their route (keys of one length): one without encodings, one with.
  const std::string query = std::string("?cc=max-age%3D60&size=30000&") + kHtml;
  fetch(edge.port, "/cache/off/a" + query);
  const uint64_t identity_only = store_bytes();
  fetch(edge.port, "/cache/xyz/a" + query);
  const uint64_t both = store_bytes();
  uint64_t coded = 0;
  for (const char* coding : {"br", "zstd", "gzip"}) {
    Response r = fetch(edge.port, "/cache/xyz/a" + query, std::string("Accept-Encoding: ") + coding + "\r\n");
    REQUIRE(field(r, "Content-Encoding") == coding);
    coded += r.body.size();
  }
  const uint64_t added = both - 2 * identity_only;
  CHECK(added >= coded);
  CHECK(added <= coded + 3 * 256);  // each encoding's body object and place in the list
}

TEST_CASE("compress: a worker compresses at most 128 streams at once; past that, responses go as they are") {
  App app("origin");
  Edge edge{"workers: 1" + config_for(app).substr(config_for(app).find("\nlisten"))};
  // A page whose include answers after 2 s: its response is coded and open until then.
  const std::string slow = "/cache/slowfrag?cc=no-store&delay=2000&body=SLOW";
  const std::string page = "/cache/esi/held?cc=max-age%3D60&" + std::string(kHtml) + "&body=" +
                           percent_encode("<html>" + std::string(400, 'x') + "<esi:include src=\"" + slow +
                                          "\"/></html>");
  fetch(edge.port, page);  // the template, stored
  const std::string request = "GET " + page + " HTTP/1.1\r\nHost: site.test\r\nAccept-Encoding: gzip\r\n\r\n";
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 128; ++i) {
    auto client = std::make_unique<Client>(edge.port);
    REQUIRE(client->send(request));
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
      const std::string more = client->read_some();
      REQUIRE(!more.empty());
      head += more;
    }
    CHECK(head.find("Content-Encoding: gzip") != std::string::npos);
    held.push_back(std::move(client));
  }
  const std::string passed = std::string("/cache/pass/held?size=5000&") + kHtml;
  Response plain = fetch(edge.port, passed, "Accept-Encoding: gzip\r\n");
  CHECK(field(plain, "Content-Encoding") == "");
  CHECK(field(plain, "Vary") == "Accept-Encoding");
  CHECK(plain.body == pattern(5000));
  held.clear();  // their encoders go with them
  Response coded;
  for (int attempt = 0; attempt < 100; ++attempt) {
    coded = fetch(edge.port, passed, "Accept-Encoding: gzip\r\n");
    if (field(coded, "Content-Encoding") == "gzip") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(field(coded, "Content-Encoding") == "gzip");
  CHECK(decoded(coded) == pattern(5000));
}
