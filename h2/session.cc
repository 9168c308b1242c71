#include "h2/session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace edge::h2 {

namespace {

std::string_view view(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// A field's cost in a header list (RFC 9113 6.5.2).
constexpr uint32_t kFieldOverhead = 32;

}  // namespace

namespace {

// nghttp2's allocations: a request costs it a dozen small blocks (the stream, the frames queued,
// the fields' copies) taken and given back within microseconds. Blocks are kept by size class
// for the thread's next ones, a bounded number of each, instead of going back to malloc each
// time. One pool per thread: a session lives on its worker's thread, and a connection that
// closes leaves its blocks to the next one there. A block freed on another thread than the one
// that took it joins that thread's pool, which is as good.
// The pool is trivially destructible, so it stays usable while the thread's other objects are
// destroyed; BlockPoolTrimmer gives its blocks back when the thread ends.
struct BlockPool {
  static constexpr size_t kClasses = 6;  // 64 bytes to 2 KB
#if defined(__SANITIZE_ADDRESS__)
  static constexpr uint32_t kMaxKept = 0;  // every block back to malloc, where ASan watches it
#else
  static constexpr uint32_t kMaxKept = 128;  // at most 516 KB a thread
#endif
  struct alignas(16) Header {
    union {
      Header* next;  // while kept
      size_t size;   // while in use: what was asked for
    };
    size_t size_class;
  };

  Header* free[kClasses];
  uint32_t kept[kClasses];
  uint32_t max_kept;

  static size_t size_class(size_t n) {
    return n > 2048 ? kClasses : static_cast<size_t>(std::bit_width((std::max<size_t>(n, 1) - 1) | 63)) - 6;
  }
  static size_t capacity(size_t c) { return size_t{64} << c; }

  void* allocate(size_t n);
  void release(void* p);
  void* resize(void* p, size_t n);
  void trim() {
    for (size_t c = 0; c < kClasses; ++c) {
      while (Header* h = free[c]) {
        free[c] = h->next;
        std::free(h);
      }
      kept[c] = 0;
    }
  }
};

thread_local constinit BlockPool t_pool{{}, {}, BlockPool::kMaxKept};

struct BlockPoolTrimmer {
  ~BlockPoolTrimmer() {
    t_pool.max_kept = 0;  // blocks freed later (other thread_local objects) go to malloc
    t_pool.trim();
  }
};
thread_local BlockPoolTrimmer t_trimmer;

void* BlockPool::allocate(size_t n) {
  const size_t c = size_class(n);
  if (c < kClasses && free[c]) {
    Header* h = free[c];
    free[c] = h->next;
    --kept[c];
    h->size = n;
    return h + 1;
  }
  auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + (c < kClasses ? capacity(c) : n)));
  if (!h) return nullptr;
  h->size_class = c;
  h->size = n;
  return h + 1;
}

void BlockPool::release(void* p) {
  if (!p) return;
  Header* h = static_cast<Header*>(p) - 1;
  const size_t c = h->size_class;
  if (c >= kClasses || kept[c] >= max_kept) return std::free(h);
  if (kept[c] == 0) (void)&t_trimmer;  // made on first use: the thread's end trims what is kept
  h->next = free[c];
  free[c] = h;
  ++kept[c];
}

void* BlockPool::resize(void* p, size_t n) {
  if (!p) return allocate(n);
  Header* h = static_cast<Header*>(p) - 1;
  if (h->size_class < kClasses && n <= capacity(h->size_class)) {
    h->size = n;
    return p;
  }
  void* moved = allocate(n);
  if (!moved) return nullptr;
  std::memcpy(moved, p, std::min(h->size, n));
  release(p);
  return moved;
}

void* pool_malloc(size_t n, void*) { return t_pool.allocate(n); }
void pool_free(void* p, void*) { t_pool.release(p); }
void* pool_calloc(size_t count, size_t n, void*) {
  if (n && count > SIZE_MAX / n) return nullptr;
  void* p = t_pool.allocate(count * n);
  if (p) std::memset(p, 0, count * n);
  return p;
}
void* pool_realloc(void* p, size_t n, void*) { return t_pool.resize(p, n); }

}  // namespace

struct Session::Callbacks {
  static Session& of(void* user) { return *static_cast<Session*>(user); }
  static Stream* stream_of(void* user, int32_t id) { return of(user).find_stream(id); }

  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
    Session& self = of(user);
    // Frames that ask nothing of a server but cost it a wake-up each: a flood of them is an
    // attack whatever their kind.
    bool idle = false;
    switch (hd->type) {
      case NGHTTP2_HEADERS:
      case NGHTTP2_GOAWAY:
        break;
      case NGHTTP2_RST_STREAM:
        // Rapid reset: every stream opened and cancelled at once costs a server the work it
        // started. (nghttp2's own limiter, set looser, would say INTERNAL_ERROR.)
        if (!self.resets_.take(self.now_, self.limits_.resets_burst, self.limits_.resets_per_second))
          self.terminate(Error::kEnhanceYourCalm);
        break;
      case NGHTTP2_DATA:
        idle = hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM);
        break;
      case NGHTTP2_CONTINUATION:
        idle = hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_HEADERS);
        break;
      default:  // SETTINGS, PING, PRIORITY, WINDOW_UPDATE, PUSH_PROMISE and unknown types
        idle = true;
    }
    if (idle && !self.idle_frames_.take(self.now_, self.limits_.idle_frames_burst, self.limits_.idle_frames_per_second))
      self.terminate(Error::kEnhanceYourCalm);
    return 0;
  }

  static int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    Session& self = of(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST || self.fatal_) return 0;
    Stream* stream = self.handler_.open_stream(frame->hd.stream_id);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, stream);
    self.last_id_ = frame->hd.stream_id;
    self.last_stream_ = stream;
    stream->progress_at_ = self.now_;
    self.streams_.push_back(stream);
    ++self.open_streams_;
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    Stream* stream = stream_of(user, frame->hd.stream_id);
    if (!stream) return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      of(user).header(*stream, view(name, namelen), view(value, valuelen));
      return 0;
    }
    // Trailers are read and dropped, as HTTP/1.1's are, within the same bound.
    stream->list_bytes_ += static_cast<uint32_t>(std::min<size_t>(namelen + valuelen + kFieldOverhead, 1u << 20));
    if (stream->list_bytes_ > of(user).limits_.max_header_list_size) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
    Session& self = of(user);
    Stream* stream = stream_of(user, id);
    if (!stream) return 0;
    stream->body_received_ += len;
    stream->progress_at_ = self.now_;
    if (!stream->sink_) {
      // Discarded (an answer given at the head), within the same bound.
      if (stream->body_received_ > self.max_body_bytes_ && !stream->refused_) {
        stream->refused_ = true;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      }
      return 0;
    }
    if (stream->body_received_ > self.max_body_bytes_) {
      stream->sink_ = nullptr;
      stream->refused_ = true;
      self.handler_.on_stream_refused(*stream, 413);
      return 0;
    }
    if (stream->sink_->append(view(data, len)) != 0) {
      stream->sink_ = nullptr;
      stream->refused_ = true;
      self.handler_.on_stream_refused(*stream, 500);
      return 0;
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    Session& self = of(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      self.remember_error(frame->goaway.error_code, false);
      return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    Stream* stream = stream_of(user, frame->hd.stream_id);
    if (!stream) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      if (!self.finish_head(*stream)) return 0;
    }
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) || stream->request_complete_) return 0;
    stream->request_complete_ = true;
    if (stream->sink_) stream->sink_->set_complete();
    if (stream->head_done_ && !stream->refused_) self.handler_.on_stream_request(*stream);
    return 0;
  }

  static int on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    Session& self = of(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      self.remember_error(frame->goaway.error_code, true);
      return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    Stream* stream = stream_of(user, frame->hd.stream_id);
    if (!stream) return 0;
    stream->bytes_sent_ += frame->hd.length + 9;
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) || stream->response_done_) return 0;
    stream->response_done_ = true;
    // A response given before the request ended: the rest of the upload is not wanted
    // (RFC 9113 8.1).
    if (!stream->request_complete_)
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream->id_, NGHTTP2_NO_ERROR);
    self.handler_.on_stream_written(*stream);
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error, void* user) {
    Session& self = of(user);
    if (id == self.last_id_) self.last_stream_ = nullptr;
    auto it = std::find_if(self.streams_.begin(), self.streams_.end(), [id](Stream* s) { return s->id_ == id; });
    if (it == self.streams_.end()) return 0;
    Stream* stream = *it;
    *it = self.streams_.back();
    self.streams_.pop_back();
    --self.open_streams_;
    self.handler_.on_stream_close(*stream, error);
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source* source, void* user) {
    Session& self = of(user);
    Stream& stream = *static_cast<Stream*>(source->ptr);
    http::IoSlice slices[16];
    const int n = stream.body_->peek(stream.offset_, slices, 16, length, stream.scratch_);
    if (n < 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // the stream is reset
    size_t copied = 0;
    for (int i = 0; i < n; ++i) {
      std::memcpy(buf + copied, slices[i].data, slices[i].len);
      copied += slices[i].len;
    }
    stream.offset_ += copied;
    if (stream.release_ && copied) stream.body_->release_before(stream.offset_);
    stream.progress_at_ = self.now_;
    if (stream.body_->complete() && stream.offset_ >= stream.body_->size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (copied == 0) {
      stream.deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(copied);
  }
};

Session::Session(Handler& handler, const Limits& limits, uint64_t max_body_bytes)
    : handler_(handler),
      limits_(limits),
      max_body_bytes_(max_body_bytes),
      idle_frames_{static_cast<double>(limits.idle_frames_burst)},
      resets_{static_cast<double>(limits.resets_burst)} {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, &Callbacks::on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, &Callbacks::on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &Callbacks::on_stream_close);

  nghttp2_option* options = nullptr;
  nghttp2_option_new(&options);
  nghttp2_option_set_no_closed_streams(options, 1);
  nghttp2_option_set_max_continuations(options, limits.max_continuations);
  nghttp2_option_set_stream_reset_rate_limit(options, 10ull * limits.resets_burst, 10ull * limits.resets_per_second);
  nghttp2_option_set_max_outbound_ack(options, 100);
  nghttp2_option_set_max_settings(options, 32);
  nghttp2_mem mem{nullptr, &pool_malloc, &pool_free, &pool_calloc, &pool_realloc};
  nghttp2_session_server_new3(&session_, callbacks, this, options, &mem);
  nghttp2_option_del(options);
  nghttp2_session_callbacks_del(callbacks);

  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.initial_window_size},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, limits.max_frame_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list_size},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  const int32_t window = static_cast<int32_t>(limits.connection_window_size);
  if (window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, window);
}

Session::~Session() { nghttp2_session_del(session_); }

void Stream::reuse(int32_t id) {
  id_ = id;
  head_.clear();
  authority_.clear();
  scheme_.clear();
  cookies_.clear();
  sink_ = nullptr;
  list_bytes_ = 0;
  too_large_ = malformed_ = head_done_ = refused_ = request_complete_ = response_started_ = response_done_ = false;
  body_ = nullptr;
  inline_body_.bytes = {};
  release_ = true;
  deferred_ = false;
  offset_ = body_received_ = bytes_sent_ = progress_at_ = 0;
}

bool Session::Bucket::take(uint64_t now, uint32_t burst, uint32_t per_second) {
  if (now > refilled_at) {
    tokens = std::min<double>(burst, tokens + static_cast<double>(now - refilled_at) * per_second / 1000.0);
    refilled_at = now;
  }
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

void Session::terminate(Error error) {
  if (fatal_) return;
  fatal_ = true;
  going_away_ = true;
  nghttp2_session_terminate_session(session_, static_cast<uint32_t>(error));
}

void Session::remember_error(uint32_t code, bool sent) {
  if (end_error_ != 0) return;
  end_error_ = code;
  end_sent_ = sent;
}

bool Session::receive(const char* data, size_t len) {
  if (fatal_) return false;
  const ssize_t r = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), len);
  if (r < 0) {
    // The library's own limits (ACKs piling up, too many CONTINUATION frames) and a bad preface
    // end the session without a GOAWAY queued: the client is told why all the same.
    const bool abuse = r == NGHTTP2_ERR_FLOODED || r == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
    terminate(abuse ? Error::kEnhanceYourCalm : Error::kProtocol);
    return false;
  }
  return !fatal_;
}

bool Session::produce(std::string& out, size_t max) {
  while (out.size() < max) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      fatal_ = true;
      return false;
    }
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  return true;
}

bool Session::finished() const {
  return !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_);
}

bool Session::wants_write() const { return nghttp2_session_want_write(session_) != 0; }

void Session::header(Stream& stream, std::string_view name, std::string_view value) {
  stream.list_bytes_ += static_cast<uint32_t>(std::min<size_t>(name.size() + value.size() + kFieldOverhead, 1u << 20));
  if (stream.too_large_ || stream.malformed_) return;
  if (stream.list_bytes_ > limits_.max_header_list_size || stream.head_.headers.size() >= limits_.max_header_fields) {
    stream.too_large_ = true;
    return;
  }
  if (!name.empty() && name[0] == ':') {
    // nghttp2 has checked that each comes once, before the regular fields, with a sound value.
    if (name == ":method")
      stream.head_.method.assign(value);
    else if (name == ":path")
      stream.head_.target.assign(value);
    else if (name == ":scheme")
      stream.scheme_.assign(value);
    else if (name == ":authority")
      stream.authority_.assign(value);
    else
      stream.malformed_ = true;
    return;
  }
  // HTTP/2 forbids only NUL, CR and LF in a value (nghttp2 checks those); the HTTP/1.1 head it
  // becomes takes nothing but visible characters, space, tab and obs-text.
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && byte != '\t') || byte == 0x7f) {
      stream.malformed_ = true;
      return;
    }
  }
  if (name == "cookie") {
    // One Cookie field, as HTTP/1.1 carries it (RFC 9113 8.2.3), for key_cookies and the backend.
    if (!stream.cookies_.empty()) stream.cookies_.append("; ");
    stream.cookies_.append(value);
    return;
  }
  stream.head_.headers.add(name, value);
}

bool Session::finish_head(Stream& stream) {
  auto malformed = [&] {
    stream.refused_ = true;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.id_, NGHTTP2_PROTOCOL_ERROR);
    return false;
  };
  if (stream.too_large_) {
    // As an HTTP/1.1 connection closes after its 431: the streams taken end, no new one starts.
    stream.refused_ = true;
    handler_.on_stream_refused(stream, 431);
    goaway(Error::kEnhanceYourCalm);
    return false;
  }
  if (stream.malformed_) return malformed();
  http::RequestHead& head = stream.head_;
  if (head.method != "CONNECT" && stream.scheme_ != "http" && stream.scheme_ != "https") return malformed();
  if (!stream.authority_.empty()) {
    // The same host both ways, or the request is malformed (RFC 9113 8.3.1); the backend and
    // the key then read it from Host alone.
    const size_t hosts = head.headers.count(http::FieldId::kHost);
    if (hosts > 1) return malformed();
    if (hosts == 1) {
      if (!http::iequals(*head.headers.get(http::FieldId::kHost), stream.authority_)) return malformed();
    } else {
      head.headers.add("host", stream.authority_);
    }
  }
  if (!stream.cookies_.empty()) {
    head.headers.add("cookie", stream.cookies_);
    stream.cookies_.clear();
  }
  head.version_major = 2;
  head.version_minor = 0;
  head.keep_alive = true;
  head.chunked = false;
  head.content_length.reset();
  if (auto length = head.headers.get(http::FieldId::kContentLength)) {
    uint64_t n = 0;
    for (char c : *length) n = n * 10 + static_cast<uint64_t>(c - '0');  // digits: nghttp2 checked
    head.content_length = n;
  } else if (!stream.request_complete_ && !(head.method == "GET" || head.method == "HEAD")) {
    // A body without a length: the head says chunked to whoever reads it as HTTP/1.1.
    head.chunked = true;
  }
  stream.head_done_ = true;
  if (head.content_length.value_or(0) > max_body_bytes_) {
    stream.refused_ = true;
    handler_.on_stream_refused(stream, 413);
    return false;
  }
  handler_.on_stream_head(stream);
  return !stream.refused_;
}

namespace {

uint8_t* bytes(const char* p) { return reinterpret_cast<uint8_t*>(const_cast<char*>(p)); }

// The nghttp2 form of a response's fields, borrowing their bytes from `text` (nghttp2 copies them
// only without NO_COPY).
void to_nv(const char* status, const char* text, const std::vector<http::HeadIndex::Field>& fields,
           std::vector<nghttp2_nv>& nv, uint8_t flags) {
  nv.clear();
  nv.push_back(nghttp2_nv{bytes(":status"), bytes(status), 7, 3, flags});
  for (const http::HeadIndex::Field& field : fields)
    nv.push_back(nghttp2_nv{bytes(text + field.name), bytes(text + field.value), field.name_len, field.value_len, flags});
}

// "HTTP/1.1 200 ...": the status digits of a head proxy/heads wrote.
bool status_digits(std::string_view head) {
  return head.size() >= 12 && head.starts_with("HTTP/1.1 ") && head[9] >= '1' && head[9] <= '5' &&
         head[10] >= '0' && head[10] <= '9' && head[11] >= '0' && head[11] <= '9';
}

}  // namespace

void Session::respond(Stream& stream, std::string_view head, const http::HeadIndex* index, http::BodySource* body,
                      bool release) {
  if (stream.response_started_) return;
  if (index && (index->size < 16 || index->size > head.size() || !status_digits(head))) index = nullptr;
  const size_t end = index ? index->size - 4 : head.find("\r\n\r\n");
  if (!body && end != std::string_view::npos && end + 4 < head.size()) {
    stream.inline_body_.bytes = head.substr(end + 4);
    body = &stream.inline_body_;
    release = false;
  }
  // The bytes stay put until the stream is freed: HEADERS are serialised later.
  constexpr uint8_t kBorrowed = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
  if (index) {
    to_nv(head.data() + 9, head.data(), index->fields, nv_, kBorrowed);
  } else if (response_fields(head, stream.response_)) {
    to_nv(stream.response_.status_text, stream.response_.text.data(), stream.response_.fields, nv_, kBorrowed);
  } else {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.id_, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  stream.response_started_ = true;
  stream.progress_at_ = now_;
  if (!body) {
    nghttp2_submit_response(session_, stream.id_, nv_.data(), nv_.size(), nullptr);
    return;
  }
  stream.body_ = body;
  stream.release_ = release;
  stream.offset_ = 0;
  nghttp2_data_provider provider;
  provider.source.ptr = &stream;
  provider.read_callback = &Callbacks::read_body;
  nghttp2_submit_response(session_, stream.id_, nv_.data(), nv_.size(), &provider);
}

void Session::respond_interim(Stream& stream, std::string_view head) {
  if (stream.response_started_) return;
  ResponseFields fields;
  if (!response_fields(head, fields) || fields.status < 100 || fields.status > 199 || fields.status == 101) return;
  to_nv(fields.status_text, fields.text.data(), fields.fields, nv_, NGHTTP2_NV_FLAG_NONE);  // copied: `fields` dies here
  nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, stream.id_, nullptr, nv_.data(), nv_.size(), nullptr);
}

void Session::resume(Stream& stream) {
  if (!stream.deferred_) return;
  stream.deferred_ = false;
  stream.progress_at_ = now_;
  nghttp2_session_resume_data(session_, stream.id_);
}

void Session::reset(Stream& stream, Error error) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.id_, static_cast<uint32_t>(error));
}

void Session::goaway(Error error) {
  if (going_away_) return;
  going_away_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        static_cast<uint32_t>(error), nullptr, 0);
}

bool Session::waits_on_window(const Stream& stream) const {
  if (!stream.body_ || stream.deferred_ || stream.response_done_) return false;
  return nghttp2_session_get_stream_remote_window_size(session_, stream.id_) <= 0 ||
         nghttp2_session_get_remote_window_size(session_) <= 0;
}

Stream* Session::find_stream(int32_t id) {
  // The frames of one request and of one response come one after another: their stream is the
  // one asked for last, and nghttp2's map is asked once for them all.
  if (id == last_id_) return last_stream_;
  last_id_ = id;
  last_stream_ = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, id));
  return last_stream_;
}

void Session::forget_streams() {
  last_stream_ = nullptr;
  streams_.clear();
  open_streams_ = 0;
  fatal_ = true;
}

void Session::shutdown_notice() {
  if (!going_away_) nghttp2_submit_shutdown_notice(session_);
}

namespace {

// The fields HTTP/2 has no place for (RFC 9113 8.2.2), by length first: a response head has a
// dozen fields, and this runs for every one.
bool hop_by_hop(std::string_view name) {
  switch (name.size()) {
    case 7:
      return http::iequals(name, "Upgrade");
    case 10:
      return http::iequals(name, "Connection") || http::iequals(name, "Keep-Alive");
    case 16:
      return http::iequals(name, "Proxy-Connection");
    case 17:
      return http::iequals(name, "Transfer-Encoding");
    default:
      return false;
  }
}

}  // namespace

bool response_fields(std::string_view head, ResponseFields& out) {
  out.text.clear();
  out.fields.clear();
  const size_t line_end = head.find("\r\n");
  if (line_end == std::string_view::npos || line_end < 12 || head.substr(0, 5) != "HTTP/") return false;
  const size_t space = head.find(' ');
  if (space == std::string_view::npos || space + 4 > line_end) return false;
  out.status = 0;
  for (size_t i = 0; i < 3; ++i) {
    const char c = head[space + 1 + i];
    if (c < '0' || c > '9') return false;
    out.status = out.status * 10 + (c - '0');
    out.status_text[i] = c;
  }
  std::string_view rest = head.substr(line_end + 2);
  std::string_view connection;  // the fields it names go too
  size_t connections = 0;
  out.text.reserve(head.size());  // never more than the head: the views below stay put
  while (!rest.empty()) {
    const size_t end = rest.find("\r\n");
    if (end == std::string_view::npos) return false;
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end + 2);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = http::trim(line.substr(colon + 1));
    if (hop_by_hop(name)) {
      if (name.size() == 10 && (name[0] == 'C' || name[0] == 'c')) {
        connection = value;
        ++connections;
      }
      continue;
    }
    ResponseFields::Field field;
    field.name = static_cast<uint32_t>(out.text.size());
    field.name_len = static_cast<uint32_t>(name.size());
    out.text.append(name);
    char* lower = out.text.data() + field.name;
    for (size_t i = 0; i < name.size(); ++i) lower[i] = static_cast<char>(lower[i] | ((lower[i] >= 'A' && lower[i] <= 'Z') << 5));
    field.value = static_cast<uint32_t>(out.text.size());
    field.value_len = static_cast<uint32_t>(value.size());
    out.text.append(value);
    out.fields.push_back(field);
  }
  if (connections > 1) return false;  // edge writes one at most
  http::for_each_token(connection, [&](std::string_view token) {
    std::erase_if(out.fields, [&](const ResponseFields::Field& f) {
      return http::iequals(std::string_view(out.text.data() + f.name, f.name_len), token);
    });
  });
  return true;
}

}  // namespace edge::h2
