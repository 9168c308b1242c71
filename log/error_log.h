// log: the error log, the lines edge writes to stderr while it runs.
//
// A line is `<UTC time to the millisecond> <level> <message>`, for example
//   2026-12-03T18:10:00.123Z info edge: listening on 127.0.0.1:8080
// The message is one line, escaped by the caller (http::escape_for_log for anything a client or
// the configuration wrote); the log adds the prefix and the newline. Each line leaves in one
// write(2), under the log's lock, so lines from several threads never interleave.
//
// Repeats are folded: the same message (its text after the prefix) written more than
// `kFoldAfter` times within a second from its first time is written `kFoldAfter` times; the rest
// are counted, and once that second has passed one line `<message> (repeated N times)` says how
// many were left out. That line is written by the next log call after the second, or by flush(),
// which the process calls every second and at exit.
//
// Not in the log: what the command line prints before anything runs (usage, `--check`, and a
// configuration's `file:line:col: message` errors, which tools parse), written plainly.
//
// Threads: every function may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace edge::log {

enum class Level { kError, kWarn, kInfo };
const char* level_name(Level level);  // "error", "warn", "info"

using TimePoint = std::chrono::system_clock::time_point;

// `2026-12-03T18:10:00.123Z info edge: ...\n`, the whole line.
std::string format_line(TimePoint at, Level level, std::string_view message);

// The folding of repeats, as a pure rule over times given by the caller.
class RepeatFolder {
 public:
  static constexpr size_t kFoldAfter = 5;
  static constexpr std::chrono::milliseconds kWindow{1000};
  static constexpr size_t kMaxTracked = 1024;  // more messages at once are written, not folded

  struct Summary {
    Level level;
    std::string message;  // "<message> (repeated N times)"
  };

  // True if `message` is to be written now. Before that, `summaries` receives the lines owed
  // for messages whose second has passed.
  bool admit(Level level, std::string_view message, TimePoint now, std::vector<Summary>& summaries);
  // The lines owed for messages whose second has passed by `now` (all of them with
  // TimePoint::max()).
  void expire(TimePoint now, std::vector<Summary>& summaries);

 private:
  struct Entry {
    Level level;
    TimePoint since;
    size_t seen = 0;
  };
  std::unordered_map<std::string, Entry> entries_;
  TimePoint earliest_end_ = TimePoint::max();
};

// A log: a clock, a sink that takes whole lines, and the folder between them.
class Logger {
 public:
  using Clock = std::function<TimePoint()>;
  using Sink = std::function<void(std::string_view line)>;
  Logger(Clock clock, Sink sink) : clock_(std::move(clock)), sink_(std::move(sink)) {}

  void write(Level level, std::string_view message);
  // Writes the summaries owed for seconds that have passed; all of them with `all`.
  void flush(bool all = false);

 private:
  void emit(TimePoint now, Level level, std::string_view message);

  Clock clock_;
  Sink sink_;
  std::mutex mutex_;
  RepeatFolder folder_;
};

// The process's log: system clock, one write(2) per line to stderr.
Logger& process_log();

// printf-style, to the process's log.
void error(const char* format, ...) __attribute__((format(printf, 1, 2)));
void warn(const char* format, ...) __attribute__((format(printf, 1, 2)));
void info(const char* format, ...) __attribute__((format(printf, 1, 2)));
inline void flush(bool all = false) { process_log().flush(all); }

}  // namespace edge::log
