#include "http/parser.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

namespace edge::http {

namespace {
// llhttp resumes a paused parser at the node after the callback, which may complete a message
// without consuming input: it needs a valid pointer even for an empty feed.
constexpr char kEmpty[1] = {0};

template <typename Parser>
Parser* self(llhttp_t* p) {
  return static_cast<Parser*>(p->data);
}

constexpr auto kTchar = [] {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[static_cast<size_t>(c)] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[static_cast<size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) table[static_cast<size_t>(c)] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) table[static_cast<unsigned char>(c)] = true;
  return table;
}();

// llhttp lets a space or other separators into a field name; RFC 9112 says such a message must
// be refused, and a name that differs between two parsers is how requests get smuggled.
bool valid_field_names(const Headers& headers) {
  for (size_t i = 0; i < headers.size(); ++i) {
    std::string_view name = headers.name(i);
    if (name.empty()) return false;
    for (char c : name)
      if (!kTchar[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

int request_error_status(llhttp_errno_t err) {
  switch (err) {
    case HPE_INVALID_VERSION: return 505;
    default: return 400;
  }
}

bool is_chunked(std::string_view coding) { return iequals(coding, "chunked"); }

// RFC 9112 6.1 and 6.3: the only framing a message may carry is a final "chunked", once; a
// coding before it is one we would have to undo (501 for a request); anything else leaves the
// body's end to guesswork. Returns 0 when the framing is sound (no Transfer-Encoding at all is).
int transfer_coding_error(const Headers& headers, int version_minor, bool request) {
  bool any = false, chunked_last = false, other = false, misplaced = false;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (headers.id(i) != FieldId::kTransferEncoding) continue;
    any = true;
    if (trim(headers.value(i)).empty()) misplaced = true;
    for_each_token(headers.value(i), [&](std::string_view coding) {
      if (chunked_last) misplaced = true;  // chunked applied before another coding, or twice
      if (is_chunked(coding)) {
        chunked_last = true;
      } else {
        other = true;
      }
    });
  }
  if (!any) return 0;
  if (version_minor == 0 || misplaced || !chunked_last) return 400;
  if (other) return request ? 501 : 400;
  return 0;
}

// The fields a message's framing or routing rest on: a Connection header may not make them
// hop-by-hop, or the next hop would read another message than the one we did.
bool protected_from_connection(std::string_view name) {
  return iequals(name, "host") || iequals(name, "content-length") || iequals(name, "transfer-encoding");
}

// RFC 9110 7.6.1: the fields Connection nominates are for this hop only. They are removed from
// the head here, once, so that nothing after the parser (the cache's Vary, request directives,
// the upstream head, storage) sees a field the next hop will not. False: a protected field is
// nominated.
// The Upgrade field's value when Connection names `upgrade` and there is exactly one; "".
std::string upgrade_asked(const Headers& headers) {
  bool named = false;
  for (size_t i = 0; i < headers.size(); ++i)
    if (headers.id(i) == FieldId::kConnection)
      for_each_token(headers.value(i), [&](std::string_view token) { named = named || iequals(token, "upgrade"); });
  if (!named || headers.count("Upgrade") != 1) return {};
  return std::string(*headers.get("Upgrade"));
}

bool remove_connection_nominated(Headers& headers) {
  std::vector<std::string_view> nominated;
  bool refused = false;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (headers.id(i) != FieldId::kConnection) continue;
    for_each_token(headers.value(i), [&](std::string_view token) {
      if (protected_from_connection(token)) refused = true;
      if (!iequals(token, "close") && !iequals(token, "keep-alive") && !iequals(token, "connection"))
        nominated.push_back(token);
    });
  }
  if (refused) return false;
  if (nominated.empty()) return true;
  // The views borrow the arena, which remove_if leaves in place.
  headers.remove_if([&](std::string_view name, FieldId id) {
    if (id == FieldId::kConnection) return false;
    for (std::string_view token : nominated)
      if (iequals(token, name)) return true;
    return false;
  });
  return true;
}
}  // namespace

// ---- head bytes ----

HeadScanner::Result HeadScanner::scan(std::string_view data) {
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    const char previous = previous_;
    previous_ = c;
    switch (state_) {
      case kBeforeStart:  // empty lines before a start line are allowed (RFC 9112 2.2)
        if (c == '\r') {
          state_ = kBeforeStartCr;
        } else if (c == '\n') {
          return {kBad, i};
        } else {
          state_ = kInLine;
          line_offset_ = 1;
          status_ = 0;
        }
        break;
      case kBeforeStartCr:
        if (c != '\n') return {kBad, i};
        state_ = kBeforeStart;
        break;
      case kInLine:
        if (line_offset_ < 0 && c != '\r' && c != '\n') {
          // Inside a field line only its end matters: jump to the next CR, checking that no LF
          // comes before it.
          const char* rest = data.data() + i;
          const size_t left = data.size() - i;
          const void* lf = std::memchr(rest, '\n', left);
          const size_t span = lf ? static_cast<size_t>(static_cast<const char*>(lf) - rest) : left;
          const void* cr = std::memchr(rest, '\r', span);
          if (!cr) {
            if (lf) return {kBad, i + span};  // a bare LF
            previous_ = data.back();
            return {kMore, data.size()};
          }
          i += static_cast<size_t>(static_cast<const char*>(cr) - rest);
          previous_ = '\r';
          state_ = kAfterCr;
        } else if (c == '\r') {
          state_ = kAfterCr;
        } else if (c == '\n') {
          return {kBad, i};  // a bare LF ends a line for some readers only
        } else if (line_offset_ >= 0 && !responses_ && c > ' ') {
          // A request line's run of visible bytes: only the SP, HTAB, CR or LF after it matters,
          // so the run is passed over at once (most of the line is its target).
          size_t end = i + 1;
          while (end < data.size() && data[end] > ' ') ++end;
          line_offset_ += static_cast<int>(end - i);
          previous_ = data[end - 1];
          i = end - 1;
        } else if (line_offset_ >= 0) {
          // "HTTP/1.1 101": the status's digits
          if (line_offset_ >= 9 && line_offset_ <= 11 && c >= '0' && c <= '9') status_ = status_ * 10 + (c - '0');
          // A request line has exactly one SP between its parts; a reason phrase may hold more.
          if (!responses_ && (c == ' ' || c == '\t') && (previous == ' ' || previous == '\t')) return {kBad, i};
          ++line_offset_;
        }
        break;
      case kAfterCr:
        if (c != '\n') return {kBad, i};  // a bare CR ends a line for some readers only
        state_ = kLineStart;
        line_offset_ = -1;
        break;
      case kLineStart:
        // A line that starts with white space folds onto the field before it (obs-fold):
        // refused, as RFC 9112 5.2 allows, since readers unfold it differently.
        if (c == ' ' || c == '\t') return {kBad, i};
        if (c == '\r') {
          state_ = kEmptyLineCr;
        } else if (c == '\n') {
          return {kBad, i};
        } else {
          state_ = kInLine;
        }
        break;
      case kEmptyLineCr:
        if (c != '\n') return {kBad, i};
        if (responses_ && status_ >= 100 && status_ <= 199 && !(switch_on_101_ && status_ == 101)) {
          state_ = kBeforeStart;  // an interim response: the final one's head follows
          break;
        }
        state_ = kDone;
        return {kEnd, i + 1};
      case kDone:
        return {kEnd, i};
    }
  }
  return {state_ == kDone ? kEnd : kMore, data.size()};
}

// ---- requests ----

const llhttp_settings_t RequestParser::kSettings = [] {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_begin = &RequestParser::on_message_begin;
  s.on_method = &RequestParser::on_method;
  s.on_url = &RequestParser::on_url;
  s.on_header_field = &RequestParser::on_header_field;
  s.on_header_value = &RequestParser::on_header_value;
  s.on_header_value_complete = &RequestParser::on_header_value_complete;
  s.on_headers_complete = &RequestParser::on_headers_complete;
  s.on_body = &RequestParser::on_body;
  s.on_message_complete = &RequestParser::on_message_complete;
  return s;
}();

RequestParser::RequestParser(Limits limits) : limits_(limits) {
  llhttp_init(&parser_, HTTP_REQUEST, &kSettings);
  parser_.data = this;
}

int RequestParser::on_message_begin(llhttp_t* p) {
  auto* r = self<RequestParser>(p);
  r->head_.clear();
  r->in_message_ = true;
  r->head_complete_ = false;
  r->in_value_ = false;
  r->field_open_ = false;
  r->head_fields_ = 0;
  r->body_bytes_ = 0;
  r->trailer_bytes_ = 0;
  r->body_ = nullptr;
  return 0;
}

int RequestParser::on_method(llhttp_t* p, const char* at, size_t len) {
  self<RequestParser>(p)->head_.method.append(at, len);
  return 0;
}

int RequestParser::on_url(llhttp_t* p, const char* at, size_t len) {
  auto* r = self<RequestParser>(p);
  if (r->head_.target.size() + len > r->limits_.max_request_line) {
    r->error_status_ = 414;
    r->error_reason_ = "request line too long";
    return HPE_USER;
  }
  r->head_.target.append(at, len);
  return 0;
}

int RequestParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* r = self<RequestParser>(p);
  if (r->head_complete_) return r->on_trailer(len);
  if (r->in_value_ || !r->field_open_) {
    if (++r->head_fields_ > r->limits_.max_header_fields) {
      r->error_status_ = 431;
      r->error_reason_ = "too many header fields";
      return HPE_USER;
    }
    r->head_.headers.begin_field();
    r->in_value_ = false;
    r->field_open_ = true;
  }
  r->head_.headers.append_name({at, len});
  return 0;
}

int RequestParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* r = self<RequestParser>(p);
  if (r->head_complete_) return r->on_trailer(len);
  r->in_value_ = true;
  r->head_.headers.append_value({at, len});
  return 0;
}

int RequestParser::on_header_value_complete(llhttp_t* p) {
  auto* r = self<RequestParser>(p);
  if (r->head_complete_) return 0;
  if (!r->field_open_) r->head_.headers.begin_field();  // "Name:" with an empty value
  r->head_.headers.end_field();
  r->in_value_ = false;
  r->field_open_ = false;
  return 0;
}

int RequestParser::on_trailer(size_t len) {
  // A chunked body's trailer fields are read and dropped (nothing downstream reads trailers,
  // and merging them into the head would let a field arrive after routing), within the head's
  // byte limit.
  trailer_bytes_ += len;
  if (trailer_bytes_ > limits_.max_header_bytes) {
    error_status_ = 431;
    error_reason_ = "trailer section larger than max_header_bytes";
    return HPE_USER;
  }
  return 0;
}

int RequestParser::on_headers_complete(llhttp_t* p) {
  auto* r = self<RequestParser>(p);
  RequestHead& h = r->head_;
  h.version_major = p->http_major;
  h.version_minor = p->http_minor;
  if (h.version_major != 1) {
    r->error_status_ = 505;
    r->error_reason_ = "unsupported HTTP version";
    return HPE_USER;
  }
  if (!valid_field_names(h.headers)) {
    r->error_status_ = 400;
    r->error_reason_ = "invalid header field name";
    return HPE_USER;
  }
  if (int status = transfer_coding_error(h.headers, h.version_minor, true)) {
    r->error_status_ = status;
    r->error_reason_ = status == 501 ? "transfer coding not implemented" : "invalid Transfer-Encoding";
    return HPE_USER;
  }
  h.upgrade = upgrade_asked(h.headers);
  if (!remove_connection_nominated(h.headers)) {
    r->error_status_ = 400;
    r->error_reason_ = "Connection nominates a framing or routing field";
    return HPE_USER;
  }
  h.keep_alive = llhttp_should_keep_alive(p) != 0;
  h.chunked = (p->flags & F_CHUNKED) != 0;
  if (p->flags & F_CONTENT_LENGTH) {
    h.content_length = p->content_length;
    if (p->content_length > r->limits_.max_body_bytes) {
      r->error_status_ = 413;
      r->error_reason_ = "body larger than max_body_bytes";
      return HPE_USER;
    }
  }
  r->head_complete_ = true;
  r->in_body_ = true;
  r->paused_at_head_ = true;
  return HPE_PAUSED;
}

int RequestParser::on_body(llhttp_t* p, const char* at, size_t len) {
  auto* r = self<RequestParser>(p);
  r->body_bytes_ += len;
  if (r->body_bytes_ > r->limits_.max_body_bytes) {
    r->error_status_ = 413;
    r->error_reason_ = "body larger than max_body_bytes";
    return HPE_USER;
  }
  if (r->body_ && r->body_->append({at, len}) != 0) {
    r->error_status_ = 500;
    r->error_reason_ = "cannot buffer the request body";
    return HPE_USER;
  }
  return 0;
}

int RequestParser::on_message_complete(llhttp_t* p) {
  auto* r = self<RequestParser>(p);
  if (r->body_) r->body_->set_complete();
  r->in_message_ = false;
  r->in_body_ = false;
  r->message_done_ = true;
  return HPE_PAUSED;
}

ParseResult RequestParser::fail(int status, const char* reason, size_t consumed) {
  if (error_status_ == 0) {
    error_status_ = status;
    error_reason_ = reason;
  }
  return {ParseEvent::kError, consumed};
}

ParseResult RequestParser::feed(std::string_view data) {
  if (error_status_) return {ParseEvent::kError, 0};
  if (llhttp_get_errno(&parser_) == HPE_PAUSED) llhttp_resume(&parser_);
  if (llhttp_get_errno(&parser_) == HPE_PAUSED_UPGRADE) llhttp_resume_after_upgrade(&parser_);
  const char* begin = data.empty() ? kEmpty : data.data();

  // The head may use at most max_header_bytes: feed llhttp only that much of it, so a client
  // cannot make us parse (or hold) more.
  const bool in_head = !in_body_;
  size_t window = data.size();
  bool limited = false;
  if (in_head) {
    uint64_t allowance = limits_.max_header_bytes > head_bytes_ ? limits_.max_header_bytes - head_bytes_ : 0;
    if (window > allowance) {
      window = static_cast<size_t>(allowance);
      limited = true;
    }
  }

  if (in_head && scanner_.scan({begin, window}).verdict == HeadScanner::kBad)
    return fail(400, "bare CR or LF, or a folded line, in the head", 0);

  paused_at_head_ = false;
  message_done_ = false;
  llhttp_errno_t err = llhttp_execute(&parser_, begin, window);
  const bool paused = err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE;
  size_t consumed = paused ? static_cast<size_t>(llhttp_get_error_pos(&parser_) - begin) : window;
  if (in_head) head_bytes_ += consumed;  // a head that completed here ends exactly at the pause
  if (paused_at_head_ || message_done_) head_bytes_ = 0;
  if (message_done_) scanner_.reset(false);

  if (paused) {
    if (message_done_) return {ParseEvent::kMessage, consumed};
    if (paused_at_head_) return {ParseEvent::kHead, consumed};
    return {ParseEvent::kNeedMore, consumed};
  }
  if (err != HPE_OK) {
    if (err == HPE_USER) return fail(error_status_ ? error_status_ : 400, error_reason_, consumed);
    return fail(request_error_status(err), llhttp_get_error_reason(&parser_), consumed);
  }
  if (limited) {
    if (head_.headers.size() == 0) return fail(414, "request line too long", consumed);
    return fail(431, "request head larger than max_header_bytes", consumed);
  }
  return {ParseEvent::kNeedMore, consumed};
}

// ---- responses ----

const llhttp_settings_t ResponseParser::kSettings = [] {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_begin = &ResponseParser::on_message_begin;
  s.on_status = &ResponseParser::on_status;
  s.on_header_field = &ResponseParser::on_header_field;
  s.on_header_value = &ResponseParser::on_header_value;
  s.on_header_value_complete = &ResponseParser::on_header_value_complete;
  s.on_headers_complete = &ResponseParser::on_headers_complete;
  s.on_body = &ResponseParser::on_body;
  s.on_message_complete = &ResponseParser::on_message_complete;
  return s;
}();

ResponseParser::ResponseParser(uint64_t max_header_bytes) : max_header_bytes_(max_header_bytes) {
  llhttp_init(&parser_, HTTP_RESPONSE, &kSettings);
  parser_.data = this;
}

void ResponseParser::expect_response(bool to_head_request, bool upgrade_asked) {
  if (llhttp_get_errno(&parser_) == HPE_PAUSED) llhttp_resume(&parser_);
  to_head_request_ = to_head_request;
  upgrade_asked_ = upgrade_asked;
  switched_ = false;
  started_ = false;
  head_complete_ = false;
  interims_ = 0;
  head_bytes_ = 0;
  body_bytes_ = 0;
  head_.clear();
  scanner_.reset(true, upgrade_asked);
}

int ResponseParser::on_message_begin(llhttp_t* p) {
  auto* r = self<ResponseParser>(p);
  r->head_.clear();
  r->started_ = true;
  r->in_value_ = false;
  r->field_open_ = false;
  r->head_complete_ = false;
  r->head_bytes_ = 0;
  r->body_bytes_ = 0;
  r->trailer_bytes_ = 0;
  return 0;
}

int ResponseParser::on_status(llhttp_t* p, const char* at, size_t len) {
  self<ResponseParser>(p)->head_.reason.append(at, len);
  return 0;
}

int ResponseParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* r = self<ResponseParser>(p);
  if (r->head_complete_) return r->on_trailer(len);
  if (r->in_value_ || !r->field_open_) {
    r->head_.headers.begin_field();
    r->in_value_ = false;
    r->field_open_ = true;
  }
  r->head_.headers.append_name({at, len});
  return 0;
}

int ResponseParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* r = self<ResponseParser>(p);
  if (r->head_complete_) return r->on_trailer(len);
  r->in_value_ = true;
  r->head_.headers.append_value({at, len});
  return 0;
}

int ResponseParser::on_header_value_complete(llhttp_t* p) {
  auto* r = self<ResponseParser>(p);
  if (r->head_complete_) return 0;
  if (!r->field_open_) r->head_.headers.begin_field();
  r->head_.headers.end_field();
  r->in_value_ = false;
  r->field_open_ = false;
  return 0;
}

int ResponseParser::on_trailer(size_t len) {
  // Trailer fields are dropped, as a request's are: the head was relayed and maybe stored
  // already, and readers hold views into it.
  trailer_bytes_ += len;
  if (trailer_bytes_ > max_header_bytes_) {
    error_reason_ = "trailer section too large";
    return HPE_USER;
  }
  return 0;
}

int ResponseParser::on_headers_complete(llhttp_t* p) {
  auto* r = self<ResponseParser>(p);
  ResponseHead& h = r->head_;
  h.status = p->status_code;
  h.version_major = p->http_major;
  h.version_minor = p->http_minor;
  r->interim_ = h.status >= 100 && h.status < 200;
  if (h.status < 100 || h.status > 599) {
    r->error_reason_ = "status code outside 100-599";
    return -1;
  }
  if (h.status == 101 && !r->upgrade_asked_) {
    r->error_reason_ = "unexpected 101 Switching Protocols";
    return -1;
  }
  if (!valid_field_names(h.headers)) {
    r->error_reason_ = "invalid header field name";
    return -1;
  }
  if (transfer_coding_error(h.headers, h.version_minor, false)) {
    r->error_reason_ = "invalid Transfer-Encoding";
    return -1;
  }
  if (h.status == 101) {
    // The answer to an upgrade: the last HTTP message on the connection; what follows is the
    // other protocol's, for the caller to take (feed() stops right after this head).
    h.upgrade = upgrade_asked(h.headers);
    if (h.upgrade.empty()) {
      r->error_reason_ = "101 Switching Protocols without Connection: upgrade and one Upgrade field";
      return -1;
    }
    r->interim_ = false;
  }
  if (!remove_connection_nominated(h.headers)) {
    r->error_reason_ = "Connection nominates a framing field";
    return -1;
  }
  if (r->interim_) return 0;
  if (h.status == 101) {
    h.keep_alive = false;
    r->head_complete_ = true;
    r->switched_ = true;
    return 0;
  }
  h.keep_alive = llhttp_should_keep_alive(p) != 0;
  h.chunked = (p->flags & F_CHUNKED) != 0;
  if (p->flags & F_CONTENT_LENGTH) h.content_length = p->content_length;
  r->head_complete_ = true;
  return r->to_head_request_ ? 1 : 0;
}

int ResponseParser::on_body(llhttp_t* p, const char* at, size_t len) {
  auto* r = self<ResponseParser>(p);
  r->body_bytes_ += len;
  if (r->body_ && r->body_->append({at, len}) != 0) {
    r->error_reason_ = "cannot buffer the response body";
    return HPE_USER;
  }
  return 0;
}

int ResponseParser::on_message_complete(llhttp_t* p) {
  auto* r = self<ResponseParser>(p);
  if (r->switched_) {
    r->message_done_ = true;
    if (r->body_) r->body_->set_complete();
    return HPE_PAUSED;
  }
  if (r->interim_) {
    // A 1xx is not the answer: handed to the sink (103 Early Hints, 102), then forgotten, and
    // the final response awaited. 100 Continue answers an Expect the proxy dealt with itself.
    if (r->interim_sink_ && r->head_.status != 100 && r->interims_++ < kMaxInterims)
      r->interim_sink_->push_back(std::move(r->head_));
    r->interim_ = false;
    r->head_.clear();
    r->started_ = false;
    return 0;
  }
  if (r->body_) r->body_->set_complete();
  r->message_done_ = true;
  // After a HEAD answer, llhttp's idea of keep-alive is still right; nothing to adjust.
  return HPE_PAUSED;
}

ParseResult ResponseParser::feed(std::string_view data) {
  if (llhttp_get_errno(&parser_) == HPE_PAUSED) llhttp_resume(&parser_);
  const char* begin = data.empty() ? kEmpty : data.data();
  size_t window = data.size();
  bool limited = false;
  if (!head_complete_) {
    uint64_t allowance = max_header_bytes_ > head_bytes_ ? max_header_bytes_ - head_bytes_ : 0;
    if (window > allowance) {
      window = static_cast<size_t>(allowance);
      limited = true;
    }
  }
  message_done_ = false;
  bool head_was_complete = head_complete_;
  if (!head_complete_ && scanner_.scan({begin, window}).verdict == HeadScanner::kBad) {
    error_reason_ = "bare CR or LF, or a folded line, in the head";
    return {ParseEvent::kError, 0};
  }
  llhttp_errno_t err = llhttp_execute(&parser_, begin, window);
  size_t consumed = window;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
    consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - begin);
  if (!head_was_complete && !head_complete_) head_bytes_ += consumed;

  if ((err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) && message_done_) return {ParseEvent::kMessage, consumed};
  if (err != HPE_OK) {
    if (err != HPE_USER) error_reason_ = llhttp_get_error_reason(&parser_);
    return {ParseEvent::kError, consumed};
  }
  if (limited && !head_complete_) {
    error_reason_ = "response head too large";
    return {ParseEvent::kError, consumed};
  }
  return {head_complete_ && !head_was_complete ? ParseEvent::kHead : ParseEvent::kNeedMore, consumed};
}

ParseEvent ResponseParser::finish() {
  message_done_ = false;
  if (!started_) {
    error_reason_ = "closed before any response";
    return ParseEvent::kError;
  }
  llhttp_errno_t err = llhttp_finish(&parser_);
  if ((err == HPE_OK || err == HPE_PAUSED) && message_done_) return ParseEvent::kMessage;
  error_reason_ = err == HPE_OK ? "response truncated" : llhttp_get_error_reason(&parser_);
  return ParseEvent::kError;
}

}  // namespace edge::http
