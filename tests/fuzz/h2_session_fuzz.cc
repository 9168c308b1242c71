// Feeds arbitrary bytes, after the client preface, to an HTTP/2 server session the way a
// connection would: in pieces the input chooses, each followed by what the session has to write,
// with the clock moving between them. A handler answers every request as edge would (a head and
// a body, some bodies growing later, some streams reset), so responses, flow control and the
// streams' ends are exercised too. The session must never crash, leak or overrun, and what it
// hands the handler must hold the session's promises:
// - a request head has a method, a target in origin form (or `*`, or an authority for CONNECT),
//   no pseudo-header and no connection-specific field among its fields, one Cookie at most, and a
//   Host equal to its `:authority`;
// - a stream is closed once, and nothing is called on it after.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "h2/session.h"
#include "http/body.h"

namespace {
using namespace edge;

void check(bool condition) {
  if (!condition) __builtin_trap();
}

class FuzzStream final : public h2::Stream {
 public:
  explicit FuzzStream(int32_t id) : h2::Stream(id) {}
  ~FuzzStream() override = default;
  http::Body request_body;
  http::Body response_body;
  bool closed = false;
};

class Handler final : public h2::Session::Handler {
 public:
  explicit Handler(const uint8_t* choices, size_t n) : choices_(choices), n_(n) {}
  h2::Session* session = nullptr;
  std::map<int32_t, std::unique_ptr<FuzzStream>> streams;

  h2::Stream* open_stream(int32_t id) override {
    check(streams.find(id) == streams.end());
    auto stream = std::make_unique<FuzzStream>(id);
    FuzzStream* raw = stream.get();
    streams[id] = std::move(stream);
    return raw;
  }
  void on_stream_head(h2::Stream& base) override {
    auto& stream = live(base);
    const http::RequestHead& head = stream.head();
    check(!head.method.empty());
    check(head.method == "CONNECT" || head.target == "*" || (!head.target.empty() && head.target[0] == '/'));
    check(head.headers.count("cookie") <= 1);
    for (size_t i = 0; i < head.headers.size(); ++i) {
      check(!head.headers.name(i).empty() && head.headers.name(i)[0] != ':');
      const http::FieldId id = head.headers.id(i);
      check(id != http::FieldId::kConnection && id != http::FieldId::kKeepAlive &&
            id != http::FieldId::kProxyConnection && id != http::FieldId::kTransferEncoding &&
            id != http::FieldId::kUpgrade);
    }
    check(head.headers.count(http::FieldId::kHost) <= 1);
    stream.set_body_sink(&stream.request_body);
    if (choice() % 7 == 0) answer(stream, 404, "early");
  }
  void on_stream_refused(h2::Stream& base, int status) override {
    check(status == 413 || status == 431 || status == 500);
    answer(live(base), status, "refused");
  }
  void on_stream_request(h2::Stream& base) override {
    auto& stream = live(base);
    if (stream.responding()) return;
    switch (choice() % 4) {
      case 0:
        return answer(stream, 200, "a body sent at once");
      case 1: {
        // A body that grows later: resumed on the next input piece.
        session->respond(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", nullptr, &stream.response_body, true);
        growing_.push_back(stream.id());
        return;
      }
      case 2:
        return session->reset(stream, h2::Error::kInternal);
      default:
        session->respond(stream, "HTTP/1.1 204 No Content\r\nConnection: x-gone\r\nX-Gone: 1\r\n\r\n", nullptr, nullptr, true);
    }
  }
  void on_stream_written(h2::Stream& base) override { live(base); }
  void on_stream_close(h2::Stream& base, uint32_t) override {
    auto& stream = live(base);
    stream.closed = true;
    streams.erase(stream.id());
  }

  // Between input pieces: the growing bodies get more, some complete.
  void grow() {
    std::vector<int32_t> still;
    for (int32_t id : growing_) {
      auto it = streams.find(id);
      if (it == streams.end()) continue;
      FuzzStream& stream = *it->second;
      stream.response_body.append(std::string(choice() % 64 * 512, 'x'));
      if (choice() % 3 == 0)
        stream.response_body.set_complete();
      else
        still.push_back(id);
      session->resume(stream);
    }
    growing_ = std::move(still);
  }

  uint8_t choice() { return n_ ? choices_[next_++ % n_] : 0; }

 private:
  FuzzStream& live(h2::Stream& base) {
    auto& stream = static_cast<FuzzStream&>(base);
    check(!stream.closed);
    auto it = streams.find(stream.id());
    check(it != streams.end() && it->second.get() == &stream);
    return stream;
  }
  void answer(FuzzStream& stream, int status, const std::string& text) {
    stream.response_body.append(text);
    stream.response_body.set_complete();
    session->respond(stream,
                     "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(text.size()) +
                         "\r\n\r\n",
                     nullptr, &stream.response_body, true);
  }

  const uint8_t* choices_;
  size_t n_;
  size_t next_ = 0;
  std::vector<int32_t> growing_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first bytes choose the pieces' size and the handler's answers; the rest is the input.
  const size_t piece = 1 + data[0] % 64;
  const size_t choices = std::min<size_t>(size - 1, 1 + data[1] % 16);
  Handler handler(data + 1, choices);
  h2::Limits limits;
  limits.max_concurrent_streams = 16;
  limits.max_header_list_size = 4096;
  limits.idle_frames_burst = 64;
  limits.resets_burst = 16;
  h2::Session session(handler, limits, 64 * 1024);
  handler.session = &session;
  std::string input(h2::kPreface);
  input.append(reinterpret_cast<const char*>(data) + 1 + choices, size - 1 - choices);
  uint64_t now = 1000;
  std::string out;
  for (size_t at = 0; at < input.size(); at += piece) {
    session.set_now(now += 7);
    const size_t n = std::min(piece, input.size() - at);
    const bool alive = session.receive(input.data() + at, n);
    handler.grow();
    out.clear();
    if (!session.produce(out, 64 * 1024) || !alive) break;
  }
  out.clear();
  session.produce(out, 1 << 20);
  // As the connection's close does: every stream the handler holds is let go.
  handler.streams.clear();
  session.forget_streams();
  return 0;
}
