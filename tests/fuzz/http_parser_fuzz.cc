// Feeds arbitrary bytes to the request and response parsers, split at a point the input picks,
// the way a connection would: the parsers must stop cleanly, never crash or overrun.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/parser.h"

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
    if (r.event == edge::http::ParseEvent::kMessage) body.clear();
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
