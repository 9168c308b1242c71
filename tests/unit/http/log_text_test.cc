#include "http/log_text.h"

#include <doctest/doctest.h>

#include <string>

using edge::http::escape_for_log;

TEST_CASE("escape_for_log: a value cannot break or forge a log line") {
  CHECK(escape_for_log("book-1") == "book-1");
  CHECK(escape_for_log("") == "");
  // A purge tag that tries to end its line and write one of its own.
  const std::string forged = "x\nedge: admin: purge tag everything: 9999 objects\r\n";
  const std::string escaped = escape_for_log(forged);
  CHECK(escaped == "x\\nedge: admin: purge tag everything: 9999 objects\\r\\n");
  CHECK(escaped.find_first_of("\r\n") == std::string::npos);
  // Tabs, terminal escapes, NUL, DEL and the other control bytes.
  CHECK(escape_for_log("a\tb") == "a\\tb");
  CHECK(escape_for_log("\x1b[2J\x1b]0;owned\x07") == "\\x1b[2J\\x1b]0;owned\\x07");
  CHECK(escape_for_log(std::string("a\0b", 3)) == "a\\x00b");
  CHECK(escape_for_log("\x7f\x01\x1f") == "\\x7f\\x01\\x1f");
  // The backslash itself, so an escape in the log always means an escaped byte.
  CHECK(escape_for_log("\\x0a") == "\\\\x0a");
  CHECK(escape_for_log("\\n") == "\\\\n");
  // Other bytes stay: UTF-8 reads as written.
  CHECK(escape_for_log("caf\xc3\xa9 \xe2\x9c\x93 \xff") == "caf\xc3\xa9 \xe2\x9c\x93 \xff");
  // Every byte value: the output never holds a control byte.
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  for (char c : escape_for_log(all)) {
    const auto byte = static_cast<unsigned char>(c);
    CHECK((byte >= 0x20 && byte != 0x7f));
  }
}
