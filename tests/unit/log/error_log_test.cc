// log/error_log: the line format and the folding of repeats, on a clock the test moves.
#include "log/error_log.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace edge::log;
using namespace std::chrono_literals;

namespace {
struct Rig {
  TimePoint now = TimePoint(std::chrono::milliseconds(1796321400123));  // 2026-12-03T18:10:00.123Z
  std::vector<std::string> lines;
  Logger log{[this] { return now; }, [this](std::string_view line) { lines.emplace_back(line); }};

  size_t count_containing(std::string_view text) const {
    size_t n = 0;
    for (const auto& line : lines) n += line.find(text) != std::string::npos;
    return n;
  }
};
}  // namespace

TEST_CASE("a line is UTC time to the millisecond, the level and the message") {
  const TimePoint at = TimePoint(std::chrono::milliseconds(1796321400123));
  CHECK(format_line(at, Level::kInfo, "edge: listening on 127.0.0.1:8080") ==
        "2026-12-03T18:10:00.123Z info edge: listening on 127.0.0.1:8080\n");
  CHECK(format_line(at + 877ms, Level::kWarn, "w") == "2026-12-03T18:10:01.000Z warn w\n");
  CHECK(format_line(TimePoint(std::chrono::milliseconds(7)), Level::kError, "e") == "1970-01-01T00:00:00.007Z error e\n");
  CHECK(std::string(level_name(Level::kError)) == "error");
}

TEST_CASE("a burst of one message is written a few times, then once with how many were left out") {
  Rig rig;
  for (int i = 0; i < 1000; ++i) {
    rig.log.write(Level::kError, "edge: backend app server 127.0.0.1:9: connection refused");
    rig.now += 200us;  // 1000 in 200 ms
  }
  CHECK(rig.lines.size() == RepeatFolder::kFoldAfter);
  rig.log.flush();  // the second has not passed: nothing owed yet
  CHECK(rig.lines.size() == RepeatFolder::kFoldAfter);
  rig.now += 1s;
  rig.log.flush();
  REQUIRE(rig.lines.size() == RepeatFolder::kFoldAfter + 1);
  CHECK(rig.lines.back() == "2026-12-03T18:10:01.323Z error edge: backend app server 127.0.0.1:9: connection refused "
                            "(repeated 995 times)\n");
  // The next second starts afresh.
  rig.log.write(Level::kError, "edge: backend app server 127.0.0.1:9: connection refused");
  CHECK(rig.lines.size() == RepeatFolder::kFoldAfter + 2);
}

TEST_CASE("the count owed is written by the next line after the second, whatever it says") {
  Rig rig;
  for (int i = 0; i < 8; ++i) rig.log.write(Level::kWarn, "same");
  rig.now += 1500ms;
  rig.log.write(Level::kInfo, "other");
  REQUIRE(rig.lines.size() == RepeatFolder::kFoldAfter + 2);
  CHECK(rig.lines[RepeatFolder::kFoldAfter] == "2026-12-03T18:10:01.623Z warn same (repeated 3 times)\n");
  CHECK(rig.lines.back() == "2026-12-03T18:10:01.623Z info other\n");
}

TEST_CASE("different messages are not folded together") {
  Rig rig;
  for (int i = 0; i < 100; ++i) rig.log.write(Level::kError, "message " + std::to_string(i));
  CHECK(rig.lines.size() == 100);
  rig.now += 2s;
  rig.log.flush();
  CHECK(rig.lines.size() == 100);  // nothing was left out
  CHECK(rig.count_containing("repeated") == 0);
}

TEST_CASE("a burst spread over seconds says its count once per second") {
  Rig rig;
  for (int i = 0; i < 3000; ++i) {
    rig.log.write(Level::kError, "flood");
    rig.now += 1ms;  // 3 s
  }
  rig.log.flush(true);
  CHECK(rig.count_containing("repeated") == 3);
  CHECK(rig.count_containing("flood (repeated 995 times)") == 3);
  CHECK(rig.lines.size() == 3 * (RepeatFolder::kFoldAfter + 1));
}

TEST_CASE("a message at most kFoldAfter times a second is never folded") {
  Rig rig;
  for (int i = 0; i < 20; ++i) {
    rig.log.write(Level::kInfo, "steady");
    rig.now += 250ms;
  }
  rig.log.flush(true);
  CHECK(rig.lines.size() == 20);
}
