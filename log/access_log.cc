#include "log/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace edge::log {

namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_uint(std::string& out, uint64_t value) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value);
  while (n) out.push_back(digits[--n]);
}

// Milliseconds with three decimals, in integers: printf's %f is a tenth of a line's cost.
void append_ms(std::string& out, double ms) {
  const auto us = static_cast<uint64_t>(std::llround(ms < 0 ? 0.0 : std::min(ms, 1e12) * 1000.0));
  append_uint(out, us / 1000);
  const auto frac = static_cast<unsigned>(us % 1000);
  out.push_back('.');
  out.push_back(static_cast<char>('0' + frac / 100));
  out.push_back(static_cast<char>('0' + frac / 10 % 10));
  out.push_back(static_cast<char>('0' + frac % 10));
}

// Inside a combined line's double quotes: nothing a client sends may close the quotes or the
// line, and the bytes >= 0x80 are escaped too, as nginx does, so the line is plain ASCII.
void append_escaped(std::string& out, std::string_view text) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte == '"' || byte == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20 || byte >= 0x7f) {
      out.append("\\x");
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 15]);
    } else {
      out.push_back(c);
    }
  }
}

void append_quoted(std::string& out, std::string_view text) {
  out.push_back('"');
  append_escaped(out, text);
  out.push_back('"');
}

// A bare token in a combined line (a method, a name from the configuration): quoted as soon as
// it holds anything that could read as a separator.
void append_token(std::string& out, std::string_view text) {
  if (text.empty()) {
    out.push_back('-');
    return;
  }
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f || byte == '"' || byte == '\\' || byte == '=') return append_quoted(out, text);
  }
  out.append(text);
}

// Each byte >= 0x80 is its own \u00XX: a value that is not UTF-8 stays valid JSON, and its
// bytes can be read back.
void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    switch (byte) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (byte < 0x20 || byte >= 0x7f) {
          out.append("\\u00");
          out.push_back(kHex[byte >> 4]);
          out.push_back(kHex[byte & 15]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void append_json_or_null(std::string& out, std::string_view text) {
  if (text.empty()) {
    out.append("null");
  } else {
    append_json_string(out, text);
  }
}

std::tm utc(int64_t time_ms) {
  const auto seconds = static_cast<time_t>(time_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return tm;
}

void format_combined(std::string& out, const AccessRecord& r) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // The same second on most lines of a thread: formatted once.
  thread_local int64_t time_second = INT64_MIN;
  thread_local char time[64];
  if (const int64_t second = r.time_ms / 1000; second != time_second) {
    time_second = second;
    const std::tm tm = utc(r.time_ms);
    std::snprintf(time, sizeof time, "[%02d/%s/%04d:%02d:%02d:%02d +0000]", tm.tm_mday, kMonths[tm.tm_mon % 12],
                  tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  append_token(out, r.client);
  out.append(" - - ").append(time).push_back(' ');
  // The request line as one quoted value: its parts escaped one by one, spaces kept.
  out.push_back('"');
  append_escaped(out, r.method);
  out.push_back(' ');
  append_escaped(out, r.target);
  out.append(r.http_major == 2 ? " HTTP/2.0\"" : r.http_minor == 0 ? " HTTP/1.0\"" : " HTTP/1.1\"");
  out.push_back(' ');
  append_uint(out, static_cast<uint64_t>(r.status < 0 ? 0 : r.status));
  out.push_back(' ');
  if (r.bytes) {
    append_uint(out, r.bytes);
  } else {
    out.push_back('-');
  }
  out.push_back(' ');
  if (r.referer.empty()) {
    out.append("\"-\"");
  } else {
    append_quoted(out, r.referer);
  }
  out.push_back(' ');
  if (r.user_agent.empty()) {
    out.append("\"-\"");
  } else {
    append_quoted(out, r.user_agent);
  }
  out.append(" host=");
  if (r.host.empty()) {
    out.push_back('-');
  } else {
    append_quoted(out, r.host);
  }
  out.append(" cache=");
  append_token(out, r.cache);
  out.append(" backend=");
  append_token(out, r.backend);
  out.append(" server=");
  append_token(out, r.server);
  out.append(" worker=");
  append_uint(out, static_cast<uint64_t>(r.worker < 0 ? 0 : r.worker));
  out.append(" retries=");
  append_uint(out, r.retries);
  out.append(" total_ms=");
  append_ms(out, r.total_ms);
  out.append(" ttfb_ms=");
  if (r.ttfb_ms < 0) {
    out.push_back('-');
  } else {
    append_ms(out, r.ttfb_ms);
  }
  out.push_back('\n');
}

void format_json(std::string& out, const AccessRecord& r) {
  const std::tm tm = utc(r.time_ms);
  char time[64];
  std::snprintf(time, sizeof time, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(((r.time_ms % 1000) + 1000) % 1000));
  out.append("{\"time\":\"").append(time).append("\",\"client\":");
  append_json_string(out, r.client);
  out.append(",\"host\":");
  append_json_or_null(out, r.host);
  out.append(",\"method\":");
  append_json_string(out, r.method);
  out.append(",\"target\":");
  append_json_string(out, r.target);
  out.append(r.http_major == 2    ? ",\"protocol\":\"HTTP/2.0\""
           : r.http_minor == 0 ? ",\"protocol\":\"HTTP/1.0\""
                               : ",\"protocol\":\"HTTP/1.1\"");
  out.append(",\"status\":");
  append_uint(out, static_cast<uint64_t>(r.status < 0 ? 0 : r.status));
  out.append(",\"bytes\":");
  append_uint(out, r.bytes);
  out.append(",\"referer\":");
  append_json_or_null(out, r.referer);
  out.append(",\"user_agent\":");
  append_json_or_null(out, r.user_agent);
  out.append(",\"total_ms\":");
  append_ms(out, r.total_ms);
  out.append(",\"ttfb_ms\":");
  if (r.ttfb_ms < 0) {
    out.append("null");
  } else {
    append_ms(out, r.ttfb_ms);
  }
  out.append(",\"cache\":");
  append_json_or_null(out, r.cache);
  out.append(",\"backend\":");
  append_json_or_null(out, r.backend);
  out.append(",\"server\":");
  append_json_or_null(out, r.server);
  out.append(",\"worker\":");
  append_uint(out, static_cast<uint64_t>(r.worker < 0 ? 0 : r.worker));
  out.append(",\"retries\":");
  append_uint(out, r.retries);
  out.append("}\n");
}

int open_for_append(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

}  // namespace

void format_line(std::string& out, conf::AccessLogFormat format, const AccessRecord& record) {
  if (format == conf::AccessLogFormat::kJson) return format_json(out, record);
  format_combined(out, record);
}

AccessLog::AccessLog(std::string path, bool to_stdout, uint64_t buffer)
    : path_(std::move(path)),
      to_stdout_(to_stdout),
      capacity_(buffer),
      wake_bytes_(std::min<uint64_t>(64 * 1024, std::max<uint64_t>(buffer / 4, 1))) {}

AccessLog::~AccessLog() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0 && !to_stdout_) ::close(fd_);
}

bool AccessLog::open(std::string& error) {
  if (to_stdout_) {
    fd_ = STDOUT_FILENO;
    return true;
  }
  fd_ = open_for_append(path_);
  if (fd_ < 0) {
    error = "cannot open access log '" + path_ + "': " + std::strerror(errno);
    return false;
  }
  return true;
}

void AccessLog::start() { thread_ = std::thread([this] { run(); }); }

bool AccessLog::push(std::string_view line) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    // The caller counts the drop (a worker's Stats).
    if (queue_.size() + line.size() > capacity_) return false;
    const size_t before = queue_.size();
    queue_.append(line);
    queued_total_ += line.size();
    // Wake the writer when it sleeps for want of lines, or when this line makes the batch big
    // enough to write before the linger is over; any other line finds it lingering.
    wake = writer_idle_ || (before < wake_bytes_ && queue_.size() >= wake_bytes_);
    writer_idle_ = false;
  }
  if (wake) wake_.notify_one();
  return true;
}

void AccessLog::reopen() {
  {
    std::lock_guard lock(mutex_);
    reopen_ = true;
  }
  wake_.notify_one();
}

void AccessLog::flush() {
  std::unique_lock lock(mutex_);
  const uint64_t target = queued_total_;
  flush_to_ = std::max(flush_to_, target);
  wake_.notify_one();
  written_.wait(lock, [&] { return written_total_ >= target || !thread_.joinable(); });
}

void AccessLog::run() {
  std::string batch;
  std::unique_lock lock(mutex_);
  for (;;) {
    writer_idle_ = true;
    wake_.wait(lock, [&] { return !queue_.empty() || reopen_ || stop_; });
    writer_idle_ = false;
    // Let the batch grow: see the header. Between batches, written_total_ + queue_.size() is
    // queued_total_, so a flush() still waiting means lines in the queue.
    wake_.wait_for(lock, kLinger, [&] {
      return queue_.size() >= wake_bytes_ || reopen_ || stop_ || flush_to_ > written_total_;
    });
    batch.swap(queue_);
    const bool reopen = reopen_;
    const bool stop = stop_;
    reopen_ = false;
    lock.unlock();
    if (reopen) reopen_file();
    write_batch(batch);
    const uint64_t written = batch.size();
    batch.clear();
    lock.lock();
    written_total_ += written;
    written_.notify_all();
    if (stop && queue_.empty()) return;
  }
}

void AccessLog::reopen_file() {
  if (to_stdout_) return;
  const int fd = open_for_append(path_);
  if (fd < 0) {
    // The old file stays in use: its lines are not lost, only not where logrotate expects.
    std::fprintf(stderr, "edge: access log: cannot reopen '%s': %s; still writing to the previous file\n",
                 path_.c_str(), std::strerror(errno));
    return;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void AccessLog::write_batch(const std::string& batch) {
  size_t offset = 0;
  while (offset < batch.size()) {
    const ssize_t n = ::write(fd_, batch.data() + offset, batch.size() - offset);
    if (n > 0) {
      offset += static_cast<size_t>(n);
      write_failing_ = false;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // A full disk or a closed stdout: the batch is lost, said once until writes work again.
    if (!write_failing_)
      std::fprintf(stderr, "edge: access log: cannot write '%s': %s; lines are lost\n", path_.c_str(),
                   n < 0 ? std::strerror(errno) : "nothing written");
    write_failing_ = true;
    return;
  }
}

}  // namespace edge::log
