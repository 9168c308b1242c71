// HTTP/2 through the real binaries: h2c by prior knowledge on a cleartext listener with `h2c: on`,
// h2 by ALPN on a TLS one. Real clients (curl, nghttp, h2load) as a user runs them; a client on
// nghttp2's library for many streams on one connection (hits, misses, passes, an ESI page, a slow
// stream beside fast ones, a graceful stop); and a raw-frame client of our own for every attack
// the defences answer (rapid reset, CONTINUATION flood, HPACK bomb, SETTINGS and PING floods,
// a zero window, oversized and malformed frames, forbidden fields), each followed by a fresh
// connection that must still be served.
#include <doctest/doctest.h>
#include <nghttp2/nghttp2.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

std::string h2c_config(const App& app, const std::string& extra = "", const std::string& limits = "") {
  return R"(workers: 1
listen: [{address: "127.0.0.1:{{port}}", h2c: on}]
limits: {)" + limits + R"(}
cache: {x_cache: on}
)" + extra + R"(
backends:
  app:
    servers: [)" + yaml_address(app.port) + R"(]
hosts:
  - match: ["*"]
    backend: app
    routes:
      - {path: /cache/esi/, esi: on}
)";
}

// The output of a shell command (stdout), as run by a user.
std::string run(const std::string& command) { return run_command(command); }

uint64_t rss_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  return 0;
}

// ---- raw frames ----

enum : uint8_t { kData = 0, kHeaders = 1, kPriority = 2, kRstStream = 3, kSettings = 4, kPing = 6, kGoaway = 7,
                 kWindowUpdate = 8, kContinuation = 9 };
enum : uint8_t { kEndStream = 0x1, kEndHeaders = 0x4, kAck = 0x1 };

std::string u32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string out;
  const size_t n = payload.size();
  out += static_cast<char>(n >> 16);
  out += static_cast<char>(n >> 8);
  out += static_cast<char>(n);
  out += static_cast<char>(type);
  out += static_cast<char>(flags);
  out += u32(stream & 0x7fffffff);
  out.append(payload);
  return out;
}

std::string setting(uint16_t id, uint32_t value) {
  return std::string{static_cast<char>(id >> 8), static_cast<char>(id)} + u32(value);
}

// An HPACK integer with an n-bit prefix (RFC 7541 5.1), the prefix's other bits in `first`.
std::string hpack_int(uint8_t first, int bits, size_t value) {
  std::string out;
  const size_t max = (1u << bits) - 1;
  if (value < max) {
    out += static_cast<char>(first | value);
    return out;
  }
  out += static_cast<char>(first | max);
  value -= max;
  while (value >= 128) {
    out += static_cast<char>((value % 128) + 128);
    value /= 128;
  }
  out += static_cast<char>(value);
  return out;
}

// A literal field without indexing, new name (RFC 7541 6.2.2), no Huffman.
std::string literal(std::string_view name, std::string_view value) {
  return hpack_int(0x00, 4, 0) + hpack_int(0x00, 7, name.size()) + std::string(name) +
         hpack_int(0x00, 7, value.size()) + std::string(value);
}
// A literal field with incremental indexing, new name (6.2.1): it enters the dynamic table.
std::string indexed_literal(std::string_view name, std::string_view value) {
  return hpack_int(0x40, 6, 0) + hpack_int(0x00, 7, name.size()) + std::string(name) +
         hpack_int(0x00, 7, value.size()) + std::string(value);
}

std::string request_block(std::string_view path, std::string_view authority = "example.com",
                          std::string_view method = "GET") {
  return literal(":method", method) + literal(":scheme", "http") + literal(":path", path) +
         literal(":authority", authority);
}

struct Frame {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream = 0;
  std::string payload;
  uint32_t error() const {  // of a GOAWAY or RST_STREAM
    const size_t at = type == kGoaway ? 4 : 0;
    if (payload.size() < at + 4) return ~0u;
    auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(payload[at + i])); };
    return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
  }
};

// A connection that speaks HTTP/2 a frame at a time, as an attacker would.
class RawH2 {
 public:
  explicit RawH2(uint16_t port, std::string_view settings = {}) : client_(port, std::chrono::seconds(10)) {
    REQUIRE(client_.connected());
    client_.send(std::string(kPrefaceText) + frame(kSettings, 0, 0, settings));
    nghttp2_hd_inflate_new(&inflater_);
  }
  ~RawH2() { nghttp2_hd_inflate_del(inflater_); }
  bool send(std::string_view bytes) { return client_.send(bytes); }
  // Reads frames until `until` says stop or the connection ends; every frame read is kept.
  // false: the connection closed (or timed out) first.
  bool read_until(const std::function<bool(const Frame&)>& until) {
    for (;;) {
      while (buffer_.size() >= 9) {
        const size_t n = static_cast<size_t>(static_cast<unsigned char>(buffer_[0])) << 16 |
                         static_cast<size_t>(static_cast<unsigned char>(buffer_[1])) << 8 |
                         static_cast<unsigned char>(buffer_[2]);
        if (buffer_.size() < 9 + n) break;
        Frame f;
        f.type = static_cast<uint8_t>(buffer_[3]);
        f.flags = static_cast<uint8_t>(buffer_[4]);
        f.stream = static_cast<uint32_t>(static_cast<unsigned char>(buffer_[5]) & 0x7f) << 24 |
                   static_cast<uint32_t>(static_cast<unsigned char>(buffer_[6])) << 16 |
                   static_cast<uint32_t>(static_cast<unsigned char>(buffer_[7])) << 8 |
                   static_cast<unsigned char>(buffer_[8]);
        f.payload = buffer_.substr(9, n);
        buffer_.erase(0, 9 + n);
        if (f.type == kHeaders) inflate(f);
        frames.push_back(f);
        if (until(f)) return true;
      }
      std::string more = client_.read_some();
      if (more.empty()) {
        closed = true;
        return false;
      }
      buffer_ += more;
    }
  }
  // The GOAWAY's error code, reading until it comes (nullopt: none before the close).
  std::optional<uint32_t> goaway() {
    for (const Frame& f : frames)
      if (f.type == kGoaway) return f.error();
    std::optional<uint32_t> error;
    read_until([&](const Frame& f) {
      if (f.type == kGoaway) error = f.error();
      return f.type == kGoaway;
    });
    return error;
  }
  // The stream's RST_STREAM code or its response's :status byte form, whichever comes first.
  std::optional<Frame> stream_end(uint32_t stream) {
    auto ends = [&](const Frame& f) {
      return f.stream == stream &&
             (f.type == kRstStream || ((f.type == kHeaders || f.type == kData) && (f.flags & kEndStream)));
    };
    for (const Frame& f : frames)
      if (ends(f)) return f;
    std::optional<Frame> found;
    read_until([&](const Frame& f) {
      if (ends(f)) found = f;
      return found.has_value();
    });
    return found;
  }
  bool wait_closed() { return client_.wait_closed(); }

  std::vector<Frame> frames;
  std::map<uint32_t, int> statuses;  // each response's :status, decoded (HPACK) as HEADERS came
  bool closed = false;

 private:
  void inflate(const Frame& f) {
    auto* in = reinterpret_cast<const uint8_t*>(f.payload.data());
    size_t left = f.payload.size();
    for (;;) {
      nghttp2_nv nv;
      int flags = 0;
      const ssize_t used = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, in, left, 1);
      REQUIRE(used >= 0);
      in += used;
      left -= static_cast<size_t>(used);
      if (flags & NGHTTP2_HD_INFLATE_EMIT) {
        const std::string name(reinterpret_cast<const char*>(nv.name), nv.namelen);
        if (name == ":status") statuses[f.stream] = std::stoi(std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen));
      }
      if (flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inflater_);
        break;
      }
      if (used == 0 && left == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT)) break;
    }
  }
  nghttp2_hd_inflater* inflater_ = nullptr;
  static constexpr std::string_view kPrefaceText = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  Client client_;
  std::string buffer_;
};

// ---- a client on nghttp2 ----

struct StreamResult {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  std::optional<uint32_t> reset;  // RST_STREAM's code, or a close with an error
  bool closed = false;
};

class H2 {
 public:
  // `manual_window`: streams' windows are opened only by consume() (the connection's is kept open).
  explicit H2(uint16_t port, bool manual_window = false, int32_t initial_window = 65535)
      : client_(port, std::chrono::seconds(20)) {
    REQUIRE(client_.connected());
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen, const uint8_t* value,
               size_t valuelen, uint8_t, void* user) -> int {
          auto& self = *static_cast<H2*>(user);
          StreamResult& s = self.streams[frame->hd.stream_id];
          std::string n(reinterpret_cast<const char*>(name), namelen);
          std::string v(reinterpret_cast<const char*>(value), valuelen);
          if (n == ":status")
            s.status = std::stoi(v);
          else
            s.headers[n] = v;
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cb, [](nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) -> int {
          auto& self = *static_cast<H2*>(user);
          self.streams[id].body.append(reinterpret_cast<const char*>(data), len);
          if (self.manual_window_) {
            if (self.held_.count(id))
              nghttp2_session_consume_connection(session, len);
            else
              nghttp2_session_consume(session, id, len);
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cb, [](nghttp2_session*, int32_t id, uint32_t error, void* user) -> int {
          auto& self = *static_cast<H2*>(user);
          StreamResult& s = self.streams[id];
          s.closed = true;
          if (error) s.reset = error;
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* frame, void* user) -> int {
          auto& self = *static_cast<H2*>(user);
          if (frame->hd.type == NGHTTP2_GOAWAY) self.goaway = frame->goaway.error_code;
          return 0;
        });
    nghttp2_option* option;
    nghttp2_option_new(&option);
    if (manual_window) nghttp2_option_set_no_auto_window_update(option, 1);
    nghttp2_session_client_new2(&session_, cb, this, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(cb);
    manual_window_ = manual_window;
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(initial_window)}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 1);
    if (manual_window) nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 1 << 30);
  }
  ~H2() { nghttp2_session_del(session_); }

  int32_t get(const std::string& path, const std::vector<std::pair<std::string, std::string>>& extra = {},
              const std::string& method = "GET", const std::string& authority = "example.com") {
    std::vector<std::pair<std::string, std::string>> fields = {
        {":method", method}, {":scheme", "http"}, {":path", path}, {":authority", authority}};
    fields.insert(fields.end(), extra.begin(), extra.end());
    std::vector<nghttp2_nv> nv;
    for (auto& [n, v] : fields)
      nv.push_back(nghttp2_nv{reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()), n.size(),
                              v.size(), NGHTTP2_NV_FLAG_NONE});
    const int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), nullptr, nullptr);
    REQUIRE(id > 0);
    streams[id];
    return id;
  }
  // The stream's window stays shut: its response stalls once the first window is spent.
  void hold(int32_t id) { held_.insert({id, true}); }

  // Sends what is queued and reads until `done` or the connection ends; false on an end first.
  bool run(const std::function<bool()>& done) {
    for (;;) {
      for (;;) {
        const uint8_t* data;
        const ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n <= 0) break;
        if (!client_.send({reinterpret_cast<const char*>(data), static_cast<size_t>(n)})) return false;
      }
      if (done()) return true;
      std::string in = client_.read_some();
      if (in.empty()) return done();
      if (nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(in.data()), in.size()) < 0) return false;
    }
  }
  bool finish(int32_t id) {
    return run([&] { return streams[id].closed; });
  }
  bool finish_all() {
    return run([&] {
      for (auto& [id, s] : streams)
        if (!s.closed) return false;
      return true;
    });
  }

  std::map<int32_t, StreamResult> streams;
  std::optional<uint32_t> goaway;

 private:
  Client client_;
  nghttp2_session* session_ = nullptr;
  bool manual_window_ = false;
  std::map<int32_t, bool> held_;
};

// A fresh HTTP/2 connection gets a request answered: what every attack must leave possible.
void check_served(uint16_t port) {
  H2 fresh(port);
  const int32_t id = fresh.get("/bytes?n=10");
  REQUIRE(fresh.finish(id));
  CHECK(fresh.streams[id].status == 200);
  CHECK(fresh.streams[id].body == "abcdefghij");
}

}  // namespace

TEST_CASE("h2c: curl, nghttp and h2load by prior knowledge; HTTP/1.1 still served on the same port") {
  App app("app");
  Edge edge(h2c_config(app));
  const std::string url = "http://127.0.0.1:" + std::to_string(edge.port);
  CHECK(run("curl -s --http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' '" + url +
            "/bytes?n=100'") == "2 200");
  // The second is a hit: the cache behaves as for HTTP/1.1.
  const std::string cached = url + "/cache/curl?cc=max-age%3D60";
  CHECK(run("curl -s --http2-prior-knowledge -D - -o /dev/null '" + cached + "'").find("x-cache: MISS") !=
        std::string::npos);
  const std::string second = run("curl -s --http2-prior-knowledge -D - -o /dev/null '" + cached + "'");
  CHECK(second.find("x-cache: HIT") != std::string::npos);
  CHECK(second.find("via: 2 edge") != std::string::npos);
  CHECK(second.find("connection") == std::string::npos);
  CHECK(app_count(app.port, "/cache/curl?cc=max-age%3D60") == 1);
  // nghttp speaks h2c by prior knowledge for an http URL.
  const std::string nghttp = run("nghttp -s '" + url + "/bytes?n=3000' 2>&1");
  CHECK(nghttp.find("200") != std::string::npos);
  const std::string load = run("h2load -n 2000 -c 4 -m 25 '" + cached + "' 2>&1");
  CHECK(load.find("2000 succeeded, 0 failed, 0 errored") != std::string::npos);
  CHECK(load.find("status codes: 2000 2xx") != std::string::npos);
  // An HTTP/1.1 client on the same port.
  Response r = get(edge.port, "example.com", "/bytes?n=10");
  CHECK(r.status == 200);
  CHECK(r.body == "abcdefghij");
}

TEST_CASE("h2c: a listener without h2c answers the preface as a bad HTTP/1.1 request") {
  App app("app");
  Edge edge(single_backend_config(yaml_address(app.port)));
  Response r = exchange(edge.port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  CHECK(r.status == 400);
}

TEST_CASE("h2: a hundred streams on one connection: passes, misses, coalesced hits and an ESI page") {
  App app("app");
  Edge edge(h2c_config(app));
  const std::string page = "/cache/esi/page?cc=max-age%3D60&body=" +
                           percent_encode("<p><esi:include src=\"/cache/frag?cc=max-age%3D60\"/></p>");
  H2 h2(edge.port);
  std::map<int32_t, std::string> expected;
  for (int i = 0; i < 100; ++i) {
    switch (i % 4) {
      case 0:
        expected[h2.get("/bytes?n=" + std::to_string(1000 + i))] = std::string();
        break;
      case 1:
        expected[h2.get("/cache/same?cc=max-age%3D60")] = "same";
        break;
      case 2:
        expected[h2.get("/cache/own" + std::to_string(i) + "?cc=max-age%3D60")] = "own";
        break;
      default:
        expected[h2.get(page)] = "esi";
    }
  }
  REQUIRE(h2.finish_all());
  for (auto& [id, kind] : expected) {
    const StreamResult& s = h2.streams[id];
    CHECK(s.status == 200);
    CHECK(!s.reset);
    if (kind.empty()) CHECK(s.body.size() == std::stoul(s.headers.at("content-length")));
    if (kind == "same") CHECK(s.body.find("GET /cache/same") != std::string::npos);
    if (kind == "esi") {
      CHECK(s.body.rfind("<p>app GET /cache/frag", 0) == 0);
      CHECK(s.body.find("</p>") != std::string::npos);
    }
  }
  // The 25 requests for one key reached the backend once.
  CHECK(app_count(app.port, "/cache/same?cc=max-age%3D60") == 1);
  CHECK(app_count(app.port, "/cache/frag?cc=max-age%3D60") == 1);
  // What HTTP/1.1 gets for the page is what the streams got.
  Response page1 = get(edge.port, "example.com", page);
  CHECK(page1.body == h2.streams[expected.rbegin()->first].body);
}

TEST_CASE("h2: a stream whose client does not read stalls alone; the others on its connection are served") {
  App app("app");
  Edge edge(h2c_config(app));
  H2 h2(edge.port, /*manual_window=*/true);
  const int32_t slow = h2.get("/bytes?n=2000000");
  h2.hold(slow);
  // Its first window's worth arrives, then nothing more.
  REQUIRE(h2.run([&] { return h2.streams[slow].body.size() >= 65535; }));
  std::vector<int32_t> fast;
  for (int i = 0; i < 20; ++i) fast.push_back(h2.get("/bytes?n=50000"));
  REQUIRE(h2.run([&] {
    for (int32_t id : fast)
      if (!h2.streams[id].closed) return false;
    return true;
  }));
  for (int32_t id : fast) {
    CHECK(h2.streams[id].status == 200);
    CHECK(h2.streams[id].body.size() == 50000);
  }
  CHECK(!h2.streams[slow].closed);
  CHECK(h2.streams[slow].body.size() == 65535);
  // The backend was let go: the slow response is held by edge, not by the app.
  // (The app counts the /stats request that asks.)
  for (int i = 0; i < 500 && app_stat(app.port, "in_progress") != 1; ++i) usleep(10000);
  CHECK(app_stat(app.port, "in_progress") == 1);
}

TEST_CASE("h2: a zero window held past send_timeout resets that stream; the connection goes on") {
  App app("app");
  Edge edge(h2c_config(app, "", "send_timeout: 1s"));
  H2 h2(edge.port, /*manual_window=*/true);
  const int32_t slow = h2.get("/bytes?n=500000");
  h2.hold(slow);
  REQUIRE(h2.finish(slow));
  REQUIRE(h2.streams[slow].reset);
  CHECK(*h2.streams[slow].reset == NGHTTP2_CANCEL);
  const int32_t next = h2.get("/bytes?n=10");
  REQUIRE(h2.finish(next));
  CHECK(h2.streams[next].status == 200);
  CHECK(h2.streams[next].body == "abcdefghij");
}

TEST_CASE("h2: rapid reset (CVE-2023-44487) ends the connection with GOAWAY; others are served") {
  App app("app");
  Edge edge(h2c_config(app));
  const uint64_t before = rss_kb(edge.process.pid());
  RawH2 raw(edge.port);
  std::string burst;
  for (uint32_t id = 1; id < 2 * 1000; id += 2) {
    burst += frame(kHeaders, kEndHeaders | kEndStream, id, request_block("/wait?ms=1000"));
    burst += frame(kRstStream, 0, id, u32(8));
  }
  raw.send(burst);
  const auto error = raw.goaway();
  REQUIRE(error);
  CAPTURE(*error);
  CHECK(*error == 0xb);  // ENHANCE_YOUR_CALM
  CHECK(raw.wait_closed());
  CHECK(rss_kb(edge.process.pid()) < before + 64 * 1024);
  check_served(edge.port);
}

TEST_CASE("h2: a CONTINUATION flood (CVE-2024-27316) ends the connection with GOAWAY") {
  App app("app");
  Edge edge(h2c_config(app));
  RawH2 raw(edge.port);
  std::string flood = frame(kHeaders, 0, 1, request_block("/"));
  for (int i = 0; i < 5000; ++i) flood += frame(kContinuation, 0, 1, literal("x-filler", std::string(100, 'a')));
  raw.send(flood);
  const auto error = raw.goaway();
  REQUIRE(error);
  CHECK(*error == 0xb);
  CHECK(raw.wait_closed());
  // Empty CONTINUATION frames, which carry nothing to bound by size, are counted too.
  RawH2 empty(edge.port);
  std::string nothing = frame(kHeaders, 0, 1, request_block("/"));
  for (int i = 0; i < 5000; ++i) nothing += frame(kContinuation, 0, 1, "");
  empty.send(nothing);
  REQUIRE(empty.goaway());
  Response r = get(edge.port, "example.com", "/bytes?n=3");
  CHECK(r.status == 200);
}

TEST_CASE("h2: an HPACK bomb (one large entry referenced over and over) gets 431 and GOAWAY") {
  App app("app");
  Edge edge(h2c_config(app));
  RawH2 raw(edge.port);
  // One 4 KB value enters the dynamic table, then a 1 KB block names it a thousand times: 4 MB
  // of fields from 1 KB on the wire.
  std::string block = request_block("/bytes?n=5") + indexed_literal("x-bomb", std::string(4000, 'b'));
  for (int i = 0; i < 1000; ++i) block += hpack_int(0x80, 7, 62);  // the newest dynamic entry
  raw.send(frame(kHeaders, kEndHeaders | kEndStream, 1, block));
  auto end = raw.stream_end(1);
  REQUIRE(end);
  CHECK(raw.statuses[1] == 431);
  const auto error = raw.goaway();
  REQUIRE(error);
  CHECK(*error == 0xb);
  check_served(edge.port);
}

TEST_CASE("h2: a head over max_header_list_size is answered 431") {
  App app("app");
  Edge edge(h2c_config(app, "http2: {max_header_list_size: 4k}"));
  H2 h2(edge.port);
  const int32_t id = h2.get("/bytes?n=5", {{"x-big", std::string(5000, 'a')}});
  REQUIRE(h2.finish(id));
  CHECK(h2.streams[id].status == 431);
}

TEST_CASE("h2: SETTINGS and PING floods end the connection with ENHANCE_YOUR_CALM") {
  App app("app");
  Edge edge(h2c_config(app));
  for (uint8_t type : {kSettings, kPing}) {
    CAPTURE(static_cast<int>(type));
    RawH2 raw(edge.port);
    std::string flood;
    for (int i = 0; i < 3000; ++i)
      flood += type == kSettings ? frame(kSettings, 0, 0, setting(0x3, 100)) : frame(kPing, 0, 0, std::string(8, 'p'));
    raw.send(flood);
    const auto error = raw.goaway();
    REQUIRE(error);
    CHECK(*error == 0xb);
  }
  Response r = get(edge.port, "example.com", "/bytes?n=3");
  CHECK(r.status == 200);
}

TEST_CASE("h2: oversized and malformed frames end the connection with the right error") {
  App app("app");
  Edge edge(h2c_config(app));
  const std::vector<std::pair<std::string, uint32_t>> cases = {
      // FRAME_SIZE_ERROR: past SETTINGS_MAX_FRAME_SIZE.
      {frame(kHeaders, kEndHeaders | kEndStream, 1, request_block("/") + literal("x", std::string(20000, 'a'))), 0x6},
      {frame(kData, 0, 0, "stream zero"), 0x1},  // PROTOCOL_ERROR
      {frame(kWindowUpdate, 0, 0, u32(0)), 0x1},
      {frame(kHeaders, kEndHeaders, 1, "\xff\xff\xff\xff"), 0x9},  // an index past any table: COMPRESSION_ERROR
  };
  for (const auto& [bytes, expected] : cases) {
    CAPTURE(expected);
    RawH2 raw(edge.port);
    raw.send(bytes);
    const auto error = raw.goaway();
    REQUIRE(error);
    CHECK(*error == expected);
  }
  Response r = get(edge.port, "example.com", "/bytes?n=3");
  CHECK(r.status == 200);
}

TEST_CASE("h2: requests HTTP/2 forbids are reset as malformed, each on its own stream") {
  App app("app");
  Edge edge(h2c_config(app));
  RawH2 raw(edge.port);
  const std::vector<std::string> blocks = {
      request_block("/") + literal("connection", "keep-alive"),
      request_block("/") + literal("transfer-encoding", "chunked"),
      request_block("/") + literal("te", "gzip"),
      request_block("/") + literal("X-Upper", "1"),
      request_block("/") + literal("host", "other.example"),  // :authority says example.com
      request_block("/") + literal("x-crlf", "a\r\nb"),
      request_block("/") + literal("x-ctl", "a\x01b"),  // HTTP/2 allows it; the HTTP/1.1 head would not
      request_block("/") + literal("x-del", "a\x7f"),
      literal(":method", "GET") + literal(":path", "/") + literal(":authority", "example.com"),  // no :scheme
      request_block("/") + literal(":method", "GET"),  // twice
      literal(":method", "GET") + literal(":scheme", "ftp") + literal(":path", "/") + literal(":authority", "a"),
  };
  uint32_t id = 1;
  for (const std::string& block : blocks) {
    CAPTURE(id);
    raw.send(frame(kHeaders, kEndHeaders | kEndStream, id, block));
    auto end = raw.stream_end(id);
    REQUIRE(end);
    CHECK(end->type == kRstStream);
    CHECK(end->error() == 0x1);
    id += 2;
  }
  // The connection still serves a sound request, and a Host equal to :authority is one.
  raw.send(frame(kHeaders, kEndHeaders | kEndStream, id, request_block("/bytes?n=4") + literal("host", "example.com")));
  auto end = raw.stream_end(id);
  REQUIRE(end);
  CHECK(end->type == kData);
  CHECK(app_count(app.port, "/") == 0);
}

TEST_CASE("h2: the key and the route read the same canonical identity as HTTP/1.1") {
  App app("app");
  Edge edge(h2c_config(app));
  H2 h2(edge.port);
  // Cookies split over fields reach the backend as one, in order.
  const int32_t first = h2.get("/cache/ident/./x/../y?cc=max-age%3D60", {{"cookie", "a=1"}, {"cookie", "b=2"}}, "GET",
                               "EXAMPLE.com");
  REQUIRE(h2.finish(first));
  CHECK(h2.streams[first].status == 200);
  CHECK(h2.streams[first].headers["x-got-cookie"] == "a=1; b=2");
  Response again = get(edge.port, "example.com", "/cache/ident/y?cc=max-age%3D60");
  CHECK(again.header("X-Cache").value_or("") == "HIT");
}

TEST_CASE("h2 over TLS: ALPN h2 by default, http/1.1 when the listener offers only that") {
  App app("app");
  TempDir certs;
  const std::string base = certs.path() + "/a.test";
  run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -keyout '" + base +
      ".key' -out '" + base + ".pem' -subj '/CN=a.test' -addext 'subjectAltName=DNS:a.test' 2>/dev/null");
  for (const std::string alpn : {"", "alpn: [http/1.1]"}) {
    CAPTURE(alpn);
    Edge edge(R"(workers: 1
listen:
  - address: "127.0.0.1:{{port}}"
    tls:
      certificates: [{cert: ")" + base + R"(.pem", key: ")" + base + R"(.key"}]
      )" + alpn + R"(
backends:
  app:
    servers: [)" + yaml_address(app.port) + R"(]
hosts:
  - match: ["*"]
    backend: app
)");
    const std::string url = "https://a.test:" + std::to_string(edge.port) + "/bytes?n=100";
    const std::string got = run("curl -s -k --http2 --resolve a.test:" + std::to_string(edge.port) +
                                ":127.0.0.1 -o /dev/null -w '%{http_version} %{http_code}' '" + url + "'");
    CHECK(got == (alpn.empty() ? "2 200" : "1.1 200"));
  }
}

TEST_CASE("h2: a stop sends GOAWAY and lets the streams in progress finish") {
  App app("app");
  Edge edge(h2c_config(app));
  H2 h2(edge.port);
  const int32_t slow = h2.get("/wait?ms=1500");
  REQUIRE(h2.run([] { return true; }));  // sent
  // (The app counts the /stats request that asks.)
  for (int i = 0; i < 500 && app_stat(app.port, "in_progress") != 2; ++i) usleep(10000);
  REQUIRE(app_stat(app.port, "in_progress") == 2);
  edge.process.kill(SIGTERM);
  REQUIRE(h2.finish(slow));
  CHECK(h2.streams[slow].status == 200);
  CHECK(!h2.streams[slow].reset);
  REQUIRE(h2.goaway);
  CHECK(*h2.goaway == 0);
  CHECK(edge.process.wait() == 0);
}

TEST_CASE("h2: the access log says HTTP/2.0") {
  App app("app");
  TempDir logs;
  const std::string log_path = logs.path() + "/access.log";
  Edge edge(h2c_config(app, "access_log: {path: \"" + log_path + "\"}"));
  H2 h2(edge.port);
  const int32_t id = h2.get("/bytes?n=7");
  REQUIRE(h2.finish(id));
  std::string line;
  for (int i = 0; i < 100 && line.empty(); ++i) {
    std::ifstream in(log_path);
    std::getline(in, line);
    if (line.empty()) usleep(50000);
  }
  CHECK(line.find("\"GET /bytes?n=7 HTTP/2.0\" 200") != std::string::npos);
}

TEST_CASE("h2: a binary upgrade sends GOAWAY; the old process finishes the streams it took, the new one serves") {
  App app("app");
  const std::string config = "upgrade_socket: upgrade.sock\n" + h2c_config(app);
  Edge old_edge(config);
  std::string new_config = config;
  new_config.replace(new_config.find("{{port}}"), 8, std::to_string(old_edge.port));
  const std::string new_path = old_edge.dir.write("new.yaml", new_config);
  H2 h2(old_edge.port);
  const int32_t slow = h2.get("/wait?ms=1500");
  REQUIRE(h2.run([] { return true; }));
  for (int i = 0; i < 500 && app_stat(app.port, "in_progress") != 2; ++i) usleep(10000);
  REQUIRE(app_stat(app.port, "in_progress") == 2);
  Process new_edge(edge_bin(), {"--config", new_path, "--takeover", old_edge.dir.path() + "/upgrade.sock"});
  wait_for_line(new_edge, "edge: upgrade: serving in place of the previous process", "new edge");
  REQUIRE(h2.finish(slow));
  CHECK(h2.streams[slow].status == 200);
  REQUIRE(h2.goaway);
  CHECK(*h2.goaway == 0);
  CHECK(old_edge.process.wait(std::chrono::seconds(40)) == 0);
  check_served(old_edge.port);
  new_edge.kill(SIGTERM);
  CHECK(new_edge.wait(std::chrono::seconds(40)) == 0);
}

TEST_CASE("h2: an upload silent past body_timeout, or slower than min_upload_rate, is answered 408") {
  App app("app");
  Edge edge(h2c_config(app, "", "body_timeout: 1s, min_upload_rate: 1k, upload_rate_grace: 1s"));
  RawH2 raw(edge.port);
  // Stream 1 says 100 bytes and sends none; stream 3 trickles a byte at a time.
  raw.send(frame(kHeaders, kEndHeaders, 1,
                 request_block("/echo", "example.com", "POST") + literal("content-length", "100")));
  raw.send(frame(kHeaders, kEndHeaders, 3,
                 request_block("/echo", "example.com", "POST") + literal("content-length", "100000")));
  for (int i = 0; i < 30 && !raw.statuses.count(3); ++i) {
    raw.send(frame(kData, 0, 3, "x"));
    raw.read_until([&](const Frame& f) { return f.type == kHeaders; });
  }
  REQUIRE(raw.stream_end(1));
  CHECK(raw.statuses[1] == 408);
  CHECK(raw.statuses[3] == 408);
  // What the client sends after its answer is not wanted: the stream is reset with NO_ERROR.
  CHECK(raw.stream_end(3));
  CHECK(app_count(app.port, "/echo") == 0);
}

TEST_CASE("h2: a connection idle past http2.idle_timeout, or a header block left unfinished, gets GOAWAY") {
  App app("app");
  Edge edge(h2c_config(app, "http2: {idle_timeout: 1s, header_timeout: 1s}"));
  {
    // Served, then idle: NO_ERROR, and the connection closes.
    RawH2 raw(edge.port);
    raw.send(frame(kHeaders, kEndHeaders | kEndStream, 1, request_block("/bytes?n=3")));
    REQUIRE(raw.stream_end(1));
    const auto error = raw.goaway();
    REQUIRE(error);
    CHECK(*error == 0);
    CHECK(raw.wait_closed());
  }
  {
    // A HEADERS without END_HEADERS holds the whole connection (no other frame may come between
    // it and its CONTINUATIONs): past header_timeout the connection ends.
    RawH2 raw(edge.port);
    raw.send(frame(kHeaders, 0, 1, request_block("/bytes?n=3")));
    const auto error = raw.goaway();
    REQUIRE(error);
    CHECK(*error == 0x1);
    CHECK(raw.wait_closed());
  }
  Response r = get(edge.port, "example.com", "/bytes?n=3");
  CHECK(r.status == 200);
}
