#include "log/error_log.h"

#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace edge::log {

const char* level_name(Level level) {
  switch (level) {
    case Level::kError: return "error";
    case Level::kWarn: return "warn";
    case Level::kInfo: return "info";
  }
  return "?";
}

std::string format_line(TimePoint at, Level level, std::string_view message) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int millis = static_cast<int>(ms - static_cast<int64_t>(seconds) * 1000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char stamp[96];  // room for any year the int fields can hold
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
  std::string line;
  line.reserve(40 + message.size());
  line += stamp;
  line += level_name(level);
  line += ' ';
  line += message;
  line += '\n';
  return line;
}

// ---- folding ----

bool RepeatFolder::admit(Level level, std::string_view message, TimePoint now, std::vector<Summary>& summaries) {
  expire(now, summaries);
  auto it = entries_.find(std::string(message));
  if (it == entries_.end()) {
    // Past the bound, a flood of distinct messages is written as it comes rather than held.
    if (entries_.size() >= kMaxTracked) return true;
    entries_.emplace(std::string(message), Entry{level, now, 1});
    if (now + kWindow < earliest_end_) earliest_end_ = now + kWindow;
    return true;
  }
  return ++it->second.seen <= kFoldAfter;
}

void RepeatFolder::expire(TimePoint now, std::vector<Summary>& summaries) {
  // Most calls fall here: nothing tracked has reached the end of its second.
  if (now < earliest_end_) return;
  earliest_end_ = TimePoint::max();
  for (auto it = entries_.begin(); it != entries_.end();) {
    const TimePoint end = it->second.since + kWindow;
    if (end <= now || now == TimePoint::max()) {
      if (it->second.seen > kFoldAfter)
        summaries.push_back({it->second.level, it->first + " (repeated " + std::to_string(it->second.seen - kFoldAfter) +
                                                   " times)"});
      it = entries_.erase(it);
    } else {
      if (end < earliest_end_) earliest_end_ = end;
      ++it;
    }
  }
}

// ---- a log ----

void Logger::write(Level level, std::string_view message) {
  std::lock_guard<std::mutex> lock(mutex_);
  const TimePoint now = clock_();
  std::vector<RepeatFolder::Summary> summaries;
  const bool admitted = folder_.admit(level, message, now, summaries);
  for (const auto& summary : summaries) emit(now, summary.level, summary.message);
  if (admitted) emit(now, level, message);
}

void Logger::flush(bool all) {
  std::lock_guard<std::mutex> lock(mutex_);
  const TimePoint now = clock_();
  std::vector<RepeatFolder::Summary> summaries;
  folder_.expire(all ? TimePoint::max() : now, summaries);
  for (const auto& summary : summaries) emit(now, summary.level, summary.message);
}

void Logger::emit(TimePoint now, Level level, std::string_view message) { sink_(format_line(now, level, message)); }

namespace {
void write_stderr(std::string_view line) {
  // One write per line; a short write (a full pipe, a signal) continues where it stopped,
  // still under the log's lock.
  while (!line.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    line.remove_prefix(static_cast<size_t>(n));
  }
}

void vwrite(Level level, const char* format, va_list args) {
  char small[512];
  va_list again;
  va_copy(again, args);
  const int n = std::vsnprintf(small, sizeof small, format, args);
  if (n < 0) {
    va_end(again);
    return;
  }
  if (static_cast<size_t>(n) < sizeof small) {
    va_end(again);
    return process_log().write(level, std::string_view(small, static_cast<size_t>(n)));
  }
  std::string big(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(big.data(), big.size(), format, again);
  va_end(again);
  big.pop_back();
  process_log().write(level, big);
}
}  // namespace

Logger& process_log() {
  // Never destroyed: threads may still log while the process exits.
  static Logger* log = new Logger([] { return std::chrono::system_clock::now(); }, write_stderr);
  return *log;
}

void error(const char* format, ...) {
  va_list args;
  va_start(args, format);
  vwrite(Level::kError, format, args);
  va_end(args);
}

void warn(const char* format, ...) {
  va_list args;
  va_start(args, format);
  vwrite(Level::kWarn, format, args);
  va_end(args);
}

void info(const char* format, ...) {
  va_list args;
  va_start(args, format);
  vwrite(Level::kInfo, format, args);
  va_end(args);
}

}  // namespace edge::log
