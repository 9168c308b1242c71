// log/access_log: the access log: one line per request, formatted on the worker that served it
// and written to a file (or stdout) by a thread of its own.
//
// The threading rule: a worker never touches the file. It formats its line (format_line) and
// push()es it into a bounded in-memory queue, which takes a mutex held only to append; the
// writer thread swaps the queue for an empty one and writes the batch with the mutex released.
// The writer lingers before it takes a batch: woken by the first line after a write, it waits
// until the queue holds wake_bytes (a quarter of `buffer`, at most 64 KB) or kLinger has passed,
// and only the line that crosses wake_bytes wakes it early. So a busy worker costs one wake-up
// and one write() per batch, not one per line (on a shared core, each of those was a context
// switch), and a line reaches the file at most kLinger after it was pushed.
// When the queue is full (its `buffer` bytes), the line is dropped and push() says so: a worker
// never waits for the disk. reopen() (SIGUSR1, after logrotate moved the file) is done by the
// writer at its next batch: lines already queued go to the new file.
//
// Formats (conf::AccessLogFormat):
//   combined  the Apache/nginx combined format, then edge's fields as key=value pairs:
//     127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a HTTP/1.1" 200 2326 "-" "curl/8.5.0"
//       host="example.com" cache=HIT backend=app server=127.0.0.1:8081 worker=0 retries=0
//       total_ms=0.412 ttfb_ms=-
//     (one line). Quoted values escape `"` and `\` with a backslash, and every control byte and
//     byte >= 0x80 as \xHH, so what a client sends can neither end the line nor the quoted value.
//   json      one JSON object per line, strings escaped per RFC 8259 (control characters as
//     \uXXXX or their short forms, `"` and `\`), bytes >= 0x80 as \u00XX (each byte, so a
//     non-UTF-8 value stays valid JSON and nothing is lost).
//
// Ownership: the Server owns the AccessLog (through Shared) and destroys it after the workers
// have stopped; the destructor writes what is queued, stops the thread and closes the file.
// push() and reopen() may be called from any thread; open() and start() once, before that.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "conf/config.h"

namespace edge::log {

// The facts of one request, as the line shows them. Borrowed for the call.
struct AccessRecord {
  int64_t time_ms = 0;            // wall clock, milliseconds since the epoch, when it was done
  std::string_view client;        // the peer's address
  std::string_view host;          // canonical host ("" : none)
  std::string_view method;
  std::string_view target;
  int http_major = 1;
  int http_minor = 1;
  int status = 0;                 // 0: no response was started (the client left first)
  uint64_t bytes = 0;             // bytes of the response written to the client, head included
  std::string_view referer;       // "" : none
  std::string_view user_agent;    // "" : none
  double total_ms = 0;            // from the head read to the last byte written (or the end)
  double ttfb_ms = -1;            // to the backend's response head; < 0: no backend was asked
  std::string_view cache;         // X-Cache's value: HIT, MISS, STALE, PASS, REVALIDATED
  std::string_view backend;       // "" : none asked
  std::string_view server;        // the server's address; "" : none
  int worker = 0;
  uint32_t retries = 0;           // tries on other servers after the first
};

// Appends the record's line, '\n' included.
void format_line(std::string& out, conf::AccessLogFormat format, const AccessRecord& record);

class AccessLog {
 public:
  static constexpr std::chrono::milliseconds kLinger{100};

  // `path`: a file, appended to (created 0644 if absent); `to_stdout`: standard output.
  // `buffer`: the bytes the queue holds at most.
  AccessLog(std::string path, bool to_stdout, uint64_t buffer);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Opens the file; false with `error` set when it cannot be.
  bool open(std::string& error);
  // Starts the writer thread; until then lines queue (and drop once the queue is full).
  void start();

  // Any thread, never blocks on the disk: false when the queue is full and the line was dropped.
  bool push(std::string_view line);
  // Any thread: the file is reopened by the writer before its next batch.
  void reopen();
  // Waits until every line pushed before the call is written (tests, shutdown). Needs start().
  void flush();

 private:
  void run();
  void write_batch(const std::string& batch);
  void reopen_file();

  const std::string path_;
  const bool to_stdout_;
  const uint64_t capacity_;
  const uint64_t wake_bytes_;  // a batch this large is written without waiting for kLinger
  int fd_ = -1;  // the writer's (open() before start())
  bool write_failing_ = false;  // the writer's: a failure was reported, until a write succeeds

  std::mutex mutex_;  // guards everything below
  std::condition_variable wake_;     // the writer: lines, a reopen, or stop
  std::condition_variable written_;  // flush(): a batch was written
  std::string queue_;
  uint64_t queued_total_ = 0;   // bytes accepted since start
  uint64_t written_total_ = 0;  // bytes handed to the file since start
  bool reopen_ = false;
  bool stop_ = false;
  bool writer_idle_ = false;  // the writer sleeps until a line comes: the next push() wakes it
  uint64_t flush_to_ = 0;     // flush() waits for the bytes up to here: no lingering until written
  std::thread thread_;
};

}  // namespace edge::log
