// http/parser: incremental HTTP/1.x parsing over llhttp, one class for requests and one for
// responses. Both stop after each complete message, so pipelined bytes that follow stay with the
// caller until it is ready for the next message.
//
// Contract:
// - feed() consumes bytes and reports how many it took. It stops after the head of a message
//   (so the owner can decide where its body goes, or refuse it) and after a complete message.
//   After kHead, feed again even with no bytes left: a message without a body completes right
//   there, with zero bytes consumed. Callers loop:
//     bool again = false;
//     while (!data.empty() || again) { r = feed(data); data.remove_prefix(r.consumed); again = r.event == kHead; ... }
// - The request body is appended to the Body set with set_body_sink() at kHead (each new message
//   starts with none: discarded). The response body goes to the sink set before feeding.
// - Errors are final for the connection: error_status() is the HTTP status to answer with
//   (400, 413, 414, 431, 505; 502 for a response parser), error_reason() says why, for logs.
// - Strict: llhttp in its strict mode with no lenient flags, and a HeadScanner before it. A bare
//   CR or LF, obs-fold, Content-Length with Transfer-Encoding, duplicate Content-Length, bad
//   chunk sizes or chunk data not followed by CRLF, bad header names or values, a
//   Transfer-Encoding other than one final "chunked" (a request: 501 when another coding
//   precedes it, else 400), a response status outside 100-599, and a Connection header that
//   nominates Host, Content-Length or Transfer-Encoding are errors.
// - The fields a Connection header nominates are removed from the head before kHead, so no
//   reader of the head sees what the next hop will not. Trailer fields (requests and responses)
//   are read, counted against the head's byte limit, and dropped: the head never changes after
//   kHead.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "http/body.h"
#include "http/message.h"

namespace edge::http {

enum class ParseEvent {
  kNeedMore,  // every byte was consumed; feed more
  kHead,      // the head is complete; the caller inspects it, then feeds the rest
  kMessage,   // the message is complete; bytes after it were not consumed
  kError,
};

struct ParseResult {
  ParseEvent event;
  size_t consumed;
};

// Checks the bytes of a head before llhttp reads them: every line ends in CRLF (no bare CR or
// LF), no line starts with white space (obs-fold), and a request line's parts are separated by
// exactly one space. Stops at the end of the head; for
// responses, an interim (1xx) head is followed by the final one's.
class HeadScanner {
 public:
  enum Verdict { kMore, kEnd, kBad };
  struct Result {
    Verdict verdict;
    size_t offset;  // kEnd: where the head ended in `data`; kBad: the offending byte
  };
  // `switch_on_101`: a 101 is a final head (the request asked to upgrade); other 1xx heads are
  // followed by another.
  explicit HeadScanner(bool responses, bool switch_on_101 = false)
      : responses_(responses), switch_on_101_(switch_on_101) {}
  void reset(bool responses, bool switch_on_101 = false) { *this = HeadScanner(responses, switch_on_101); }
  Result scan(std::string_view data);

 private:
  enum State { kBeforeStart, kBeforeStartCr, kInLine, kAfterCr, kLineStart, kEmptyLineCr, kDone };
  State state_ = kBeforeStart;
  int line_offset_ = 0;  // in the start line: bytes seen; after it: -1
  int status_ = 0;  // a response's status code, from its start line's digits
  char previous_ = 0;
  bool responses_;
  bool switch_on_101_;
};

class RequestParser {
 public:
  struct Limits {
    uint64_t max_header_bytes = 16 * 1024;
    uint64_t max_request_line = 8 * 1024;
    uint64_t max_body_bytes = 10 * 1024 * 1024;
    uint64_t max_header_fields = 100;  // fields in the head, else 431
  };

  explicit RequestParser(Limits limits);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  ParseResult feed(std::string_view data);

  // The head being parsed or just parsed. Valid (fully) from kHead on.
  RequestHead& head() { return head_; }
  void set_body_sink(Body* body) { body_ = body; }

  // True between the first byte of a message and its end.
  bool in_message() const { return in_message_; }
  bool head_complete() const { return head_complete_; }
  uint64_t body_bytes() const { return body_bytes_; }

  int error_status() const { return error_status_; }
  const char* error_reason() const { return error_reason_; }

 private:
  static int on_message_begin(llhttp_t*);
  static int on_method(llhttp_t*, const char*, size_t);
  static int on_url(llhttp_t*, const char*, size_t);
  static int on_header_field(llhttp_t*, const char*, size_t);
  static int on_header_value(llhttp_t*, const char*, size_t);
  static int on_header_value_complete(llhttp_t*);
  static int on_headers_complete(llhttp_t*);
  static int on_body(llhttp_t*, const char*, size_t);
  static int on_message_complete(llhttp_t*);
  static const llhttp_settings_t kSettings;

  ParseResult fail(int status, const char* reason, size_t consumed);
  int on_trailer(size_t len);

  llhttp_t parser_;
  Limits limits_;
  HeadScanner scanner_{false};
  RequestHead head_;
  Body* body_ = nullptr;
  uint64_t head_bytes_ = 0;
  uint64_t head_fields_ = 0;
  uint64_t body_bytes_ = 0;
  uint64_t trailer_bytes_ = 0;
  bool in_message_ = false;
  bool head_complete_ = false;
  bool in_body_ = false;
  bool in_value_ = false;
  bool field_open_ = false;
  bool paused_at_head_ = false;
  bool message_done_ = false;
  int error_status_ = 0;
  const char* error_reason_ = "";
};

class ResponseParser {
 public:
  explicit ResponseParser(uint64_t max_header_bytes = 64 * 1024);
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  // Before each response: whether it answers a HEAD request (no body, whatever the head says),
  // and whether the request asked to upgrade: only then is a 101 taken, as the final response
  // (head().upgrade names the protocol; kMessage's `consumed` ends at its head, and the bytes
  // after it are the new protocol's). Otherwise a 101 is an error.
  void expect_response(bool to_head_request, bool upgrade_asked = false);
  bool switched() const { return switched_; }  // the response was a 101

  // Interim 1xx responses are skipped: kHead and kMessage refer to the final response only.
  // With a sink set, the interim heads but 100 Continue (at most kMaxInterims a response; more
  // are dropped) are appended to it as they end, for the caller to take after feed().
  ParseResult feed(std::string_view data);
  static constexpr size_t kMaxInterims = 8;
  void set_interim_sink(std::vector<ResponseHead>* sink) { interim_sink_ = sink; }
  // The peer closed: completes a response delimited by the close, or reports truncation.
  ParseEvent finish();
  bool head_complete() const { return head_complete_; }

  ResponseHead& head() { return head_; }
  void set_body_sink(Body* body) { body_ = body; }
  bool started() const { return started_; }  // any byte of a response has been seen
  uint64_t body_bytes() const { return body_bytes_; }
  const char* error_reason() const { return error_reason_; }

 private:
  static int on_message_begin(llhttp_t*);
  static int on_status(llhttp_t*, const char*, size_t);
  static int on_header_field(llhttp_t*, const char*, size_t);
  static int on_header_value(llhttp_t*, const char*, size_t);
  static int on_header_value_complete(llhttp_t*);
  static int on_headers_complete(llhttp_t*);
  static int on_body(llhttp_t*, const char*, size_t);
  static int on_message_complete(llhttp_t*);
  static const llhttp_settings_t kSettings;
  int on_trailer(size_t len);

  llhttp_t parser_;
  uint64_t max_header_bytes_;
  uint64_t trailer_bytes_ = 0;
  HeadScanner scanner_{true};
  ResponseHead head_;
  Body* body_ = nullptr;
  uint64_t head_bytes_ = 0;
  uint64_t body_bytes_ = 0;
  bool to_head_request_ = false;
  bool upgrade_asked_ = false;
  bool switched_ = false;
  bool started_ = false;
  bool in_value_ = false;
  bool field_open_ = false;
  bool head_complete_ = false;
  bool paused_at_head_ = false;
  bool message_done_ = false;
  bool interim_ = false;
  std::vector<ResponseHead>* interim_sink_ = nullptr;
  size_t interims_ = 0;  // interim heads of this response seen
  const char* error_reason_ = "";
};

}  // namespace edge::http
