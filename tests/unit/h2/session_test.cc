#include "h2/session.h"

#include <doctest/doctest.h>
#include <nghttp2/nghttp2.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace edge;

namespace {

class TestStream final : public h2::Stream {
 public:
  explicit TestStream(int32_t id) : h2::Stream(id) {}
  ~TestStream() override = default;
  http::Body body;
  http::Body response;
};

// A server Session and a client on nghttp2, bytes passed between them in memory, the clock the
// test's.
class Pair final : public h2::Session::Handler {
 public:
  explicit Pair(h2::Limits limits = {}) : server(*this, limits, 1 << 20) {
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* frame, void* user) -> int {
          auto& self = *static_cast<Pair*>(user);
          if (frame->hd.type == NGHTTP2_GOAWAY) self.goaway = frame->goaway.error_code;
          return 0;
        });
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen, const uint8_t* value,
               size_t valuelen, uint8_t, void* user) -> int {
          auto& self = *static_cast<Pair*>(user);
          self.got[frame->hd.stream_id][std::string(reinterpret_cast<const char*>(name), namelen)] =
              std::string(reinterpret_cast<const char*>(value), valuelen);
          return 0;
        });
    nghttp2_session_client_new(&client, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(client, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~Pair() { nghttp2_session_del(client); }

  // Client to server and back until neither has more. false: the server ended the connection.
  bool pump() {
    bool alive = true;
    for (int round = 0; round < 100; ++round) {
      const uint8_t* data;
      std::string sent;
      ssize_t n;
      while ((n = nghttp2_session_mem_send(client, &data)) > 0) sent.append(reinterpret_cast<const char*>(data), n);
      server.set_now(now);
      if (!sent.empty()) alive = server.receive(sent.data(), sent.size()) && alive;
      std::string back;
      server.produce(back, 1 << 20);
      if (!back.empty()) nghttp2_session_mem_recv(client, reinterpret_cast<const uint8_t*>(back.data()), back.size());
      if (sent.empty() && back.empty()) break;
    }
    return alive;
  }

  int32_t request(std::vector<std::pair<std::string, std::string>> fields) {
    std::vector<nghttp2_nv> nv;
    for (auto& [n, v] : fields)
      nv.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()), n.size(), v.size(),
                    NGHTTP2_NV_FLAG_NONE});
    return nghttp2_submit_request(client, nullptr, nv.data(), nv.size(), nullptr, nullptr);
  }

  h2::Stream* open_stream(int32_t id) override {
    auto& stream = streams[id];
    stream = std::make_unique<TestStream>(id);
    return stream.get();
  }
  void on_stream_head(h2::Stream& stream) override {
    heads[stream.id()] = stream.head().method + " " + stream.head().target;
    for (size_t i = 0; i < stream.head().headers.size(); ++i)
      fields[stream.id()].push_back(std::string(stream.head().headers.name(i)) + ": " +
                                    std::string(stream.head().headers.value(i)));
    stream.set_body_sink(&static_cast<TestStream&>(stream).body);
  }
  void on_stream_refused(h2::Stream& stream, int status) override { refused[stream.id()] = status; }
  void on_stream_request(h2::Stream& stream) override {
    if (!answer) return;
    auto& s = static_cast<TestStream&>(stream);
    s.response.append("hello");
    s.response.set_complete();
    server.respond(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\nKeep-Alive: x\r\n\r\n", nullptr,
                   &s.response,
                   true);
  }
  void on_stream_written(h2::Stream&) override {}
  void on_stream_close(h2::Stream& stream, uint32_t) override { streams.erase(stream.id()); }

  h2::Session server;
  nghttp2_session* client = nullptr;
  uint64_t now = 1000;
  bool answer = true;  // requests are answered at once; else left open
  std::map<int32_t, std::unique_ptr<TestStream>> streams;
  std::map<int32_t, std::string> heads;
  std::map<int32_t, std::vector<std::string>> fields;
  std::map<int32_t, int> refused;
  std::map<int32_t, std::map<std::string, std::string>> got;
  std::optional<uint32_t> goaway;
};

}  // namespace

TEST_CASE("h2 response_fields: an HTTP/1.1 head as HTTP/2 fields, hop-by-hop ones dropped") {
  h2::ResponseFields out;
  REQUIRE(h2::response_fields("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nConnection: close, X-Hop\r\n"
                              "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nX-Kept: a b\r\n\r\n",
                              out));
  CHECK(out.status == 404);
  CHECK(std::string_view(out.status_text, 3) == "404");
  REQUIRE(out.fields.size() == 2);
  CHECK(out.name(0) == "content-type");
  CHECK(out.value(0) == "text/plain");
  CHECK(out.name(1) == "x-kept");
  CHECK(out.value(1) == "a b");
  // The buffers are reused: a second head leaves nothing of the first.
  REQUIRE(h2::response_fields("HTTP/1.1 204 No Content\r\n\r\n", out));
  CHECK(out.status == 204);
  CHECK(out.fields.empty());
  CHECK_FALSE(h2::response_fields("", out));
  CHECK_FALSE(h2::response_fields("HTTP/1.1 2x0 OK\r\n\r\n", out));
  CHECK_FALSE(h2::response_fields("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", out));
  CHECK_FALSE(h2::response_fields("HTTP/1.1 200 OK\r\nX: 1", out));
  CHECK_FALSE(h2::response_fields("HTTP/1.1 200 OK\r\nConnection: a\r\nConnection: b\r\n\r\n", out));
}

TEST_CASE("h2 session: a request head reads as HTTP/1.1's would; the response's hop-by-hop fields are gone") {
  Pair pair;
  const int32_t id = pair.request({{":method", "POST"},
                                   {":scheme", "https"},
                                   {":path", "/a?b"},
                                   {":authority", "Example.com:8443"},
                                   {"cookie", "a=1"},
                                   {"content-length", "0"},
                                   {"cookie", "b=2"}});
  REQUIRE(pair.pump());
  CHECK(pair.heads[id] == "POST /a?b");
  CHECK(pair.fields[id] == std::vector<std::string>{"content-length: 0", "host: Example.com:8443", "cookie: a=1; b=2"});
  CHECK(pair.got[id][":status"] == "200");
  CHECK(pair.got[id].count("connection") == 0);
  CHECK(pair.got[id].count("keep-alive") == 0);
  CHECK(pair.got[id]["content-length"] == "5");
}

TEST_CASE("h2 session: frames that ask nothing are bounded by a bucket that refills with the clock") {
  h2::Limits limits;
  limits.idle_frames_burst = 100;
  limits.idle_frames_per_second = 10;
  {
    // Ten a second for a minute: never past the bucket.
    Pair pair(limits);
    for (int second = 0; second < 60; ++second) {
      for (int i = 0; i < 10; ++i) nghttp2_submit_ping(pair.client, NGHTTP2_FLAG_NONE, nullptr);
      REQUIRE(pair.pump());
      pair.now += 1000;
    }
    CHECK_FALSE(pair.goaway);
  }
  {
    // A burst past it at one moment.
    Pair pair(limits);
    for (int i = 0; i < 150; ++i) nghttp2_submit_ping(pair.client, NGHTTP2_FLAG_NONE, nullptr);
    CHECK_FALSE(pair.pump());
    REQUIRE(pair.goaway);
    CHECK(*pair.goaway == static_cast<uint32_t>(h2::Error::kEnhanceYourCalm));
  }
}

TEST_CASE("h2 session: streams opened and reset are bounded by a bucket of their own") {
  h2::Limits limits;
  limits.resets_burst = 20;
  limits.resets_per_second = 5;
  // Opened (the server sees the requests and leaves them unanswered), then reset.
  auto open_and_reset = [](Pair& pair, int n) {
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i)
      ids.push_back(pair.request({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "a"}}));
    REQUIRE(pair.pump());
    REQUIRE(pair.streams.size() == static_cast<size_t>(n));
    for (int32_t id : ids) nghttp2_submit_rst_stream(pair.client, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  };
  {
    Pair pair(limits);
    pair.answer = false;
    for (int second = 0; second < 30; ++second) {
      open_and_reset(pair, 5);
      REQUIRE(pair.pump());
      pair.now += 1000;
    }
    CHECK_FALSE(pair.goaway);
  }
  {
    Pair pair(limits);
    pair.answer = false;
    open_and_reset(pair, 40);
    CHECK_FALSE(pair.pump());
    REQUIRE(pair.goaway);
    CHECK(*pair.goaway == static_cast<uint32_t>(h2::Error::kEnhanceYourCalm));
  }
}

TEST_CASE("h2 session: a head past the list size is refused with 431 and the connection goes away") {
  h2::Limits limits;
  limits.max_header_list_size = 1024;
  Pair pair(limits);
  const int32_t id = pair.request({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "a"},
                                   {"x-big", std::string(2000, 'a')}});
  pair.pump();
  CHECK(pair.refused[id] == 431);
  REQUIRE(pair.goaway);
  CHECK(*pair.goaway == static_cast<uint32_t>(h2::Error::kEnhanceYourCalm));
}
