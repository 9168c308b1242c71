// Feeds arbitrary bytes to the request and response parsers, split at a point the input picks,
// the way a connection would: the parsers must stop cleanly, never crash or overrun.
//
// And a differential check: every request edge accepts is forwarded (the upstream head edge
// builds, and its body) as bytes that parse, alone and whole, to the same request: the same
// method, the canonical target and host, the same end-to-end fields in the same order, the same
// body. A mismatch traps.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "conf/config.h"
#include "http/parser.h"
#include "http/uri.h"
#include "proxy/heads.h"

namespace {
using namespace edge;

const conf::Config& config() {
  static const conf::Config loaded = [] {
    conf::LoadResult r = conf::load_string(
        "listen: [{address: 127.0.0.1:1}]\nbackends: {b: {servers: [127.0.0.1:2]}}\nhosts: [{match: \"*\", backend: b}]\n",
        "fuzz.yaml");
    if (!r.config) __builtin_trap();
    return std::move(*r.config);
  }();
  return loaded;
}

void check(bool condition) {
  if (!condition) __builtin_trap();
}

// Fields edge itself decides on the way out: framing, hop-by-hop, and those it sets.
bool decided_by_edge(const http::Headers& headers, size_t i) {
  const http::FieldId id = headers.id(i);
  return http::is_hop_by_hop(id) || id == http::FieldId::kContentLength || id == http::FieldId::kExpect ||
         id == http::FieldId::kHost || id == http::FieldId::kXForwardedFor || id == http::FieldId::kXForwardedProto ||
         id == http::FieldId::kXForwardedHost || id == http::FieldId::kVia;
}

void check_forwarded(const http::RequestHead& head, const std::string& body) {
  std::string host, target;
  if (head.method == "CONNECT" || !http::read_request_identity(head, host, target)) return;
  std::string out;
  proxy::build_upstream_head(out, head, host, target, "127.0.0.1", false, body.size(), config(), 0, false, nullptr);
  out += body;

  http::RequestParser again({1 << 20, 1 << 20, 1 << 20});
  http::Body again_body;
  std::string_view rest = out;
  http::ParseResult r = again.feed(rest);
  check(r.event == http::ParseEvent::kHead);
  rest.remove_prefix(r.consumed);
  again.set_body_sink(&again_body);
  r = again.feed(rest);
  check(r.event == http::ParseEvent::kMessage);
  rest.remove_prefix(r.consumed);
  check(rest.empty());  // exactly one request, nothing trailing

  const http::RequestHead& forwarded = again.head();
  check(forwarded.method == head.method);
  check(forwarded.target == target);
  check(again_body.to_string() == body);
  std::string forwarded_host, forwarded_target;
  check(http::read_request_identity(forwarded, forwarded_host, forwarded_target));
  check(forwarded_target == target);
  if (!host.empty()) check(forwarded_host == host);
  // The end-to-end fields, in order, name for name and value for value.
  size_t j = 0;
  for (size_t i = 0; i < head.headers.size(); ++i) {
    if (decided_by_edge(head.headers, i)) continue;
    while (j < forwarded.headers.size() && decided_by_edge(forwarded.headers, j)) ++j;
    check(j < forwarded.headers.size());
    check(forwarded.headers.name(j) == head.headers.name(i));
    check(forwarded.headers.value(j) == head.headers.value(i));
    ++j;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t step = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  edge::http::RequestParser request({512, 256, 4096});
  edge::http::Body body;
  std::string_view rest = input;
  bool again = false;
  while ((!rest.empty() || again)) {
    again = false;
    auto r = request.feed(rest.substr(0, step));
    rest.remove_prefix(r.consumed);
    if (r.event == edge::http::ParseEvent::kError) break;
    if (r.event == edge::http::ParseEvent::kHead) {
      request.set_body_sink(&body);
      again = true;
    }
    if (r.event == edge::http::ParseEvent::kMessage) {
      check_forwarded(request.head(), body.to_string());
      body.clear();
    }
  }

  edge::http::ResponseParser response(1024);
  edge::http::Body response_body;
  response.expect_response(data[0] & 1);
  response.set_body_sink(&response_body);
  rest = input;
  while (!rest.empty()) {
    auto r = response.feed(rest.substr(0, step));
    rest.remove_prefix(r.consumed);
    if (r.event == edge::http::ParseEvent::kError) return 0;
    if (r.event == edge::http::ParseEvent::kMessage) {
      response_body.clear();
      response.expect_response(false);
    }
  }
  response.finish();
  return 0;
}
