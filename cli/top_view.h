// cli/top_view: what `edge top` shows, as pure functions so it can be tested without a terminal
// or a socket: GET /top's answer read back, text from outside made safe for a terminal, and the
// screen's lines at a given width.
//
// The answer is read by a small strict parser for exactly the shape proxy/admin_render.h writes
// ({"window","by","total","top":[{"host","target","count","error"}]}): every member once, in
// any order, nothing else; unsigned integers only; a count never below its error. Strings may
// hold raw bytes from 0x20 up (the port writes a URL's bytes as they came) and the JSON escapes,
// \u included (surrogate pairs become UTF-8, a lone one is refused). Anything else, a truncated
// answer included, is refused with the reason and the byte offset where reading stopped.
//
// Host and target come from whoever sent the request: a hostile client chooses them. Nothing of
// theirs reaches the terminal before escape_for_terminal(), which leaves only printable ASCII,
// so no byte of theirs can start an escape sequence (C0, DEL, or C1 as a raw byte or in UTF-8).
//
// Results own their strings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "top/windows.h"

namespace edge::cli {

struct TopRow {
  std::string host;    // as the port sent it, unescaped for the terminal
  std::string target;
  uint64_t count = 0;  // an upper bound
  uint64_t error = 0;  // count - error is a lower bound
};

struct TopAnswer {
  top::Window window = top::Window::k1m;
  top::By by = top::By::kRequests;
  uint64_t total = 0;
  std::vector<TopRow> rows;  // in the port's order, heaviest first
};

// nullopt with `error` ("<reason> at byte <offset>") when `json` is not exactly that shape.
std::optional<TopAnswer> parse_top_answer(std::string_view json, std::string& error);

// The names GET /top takes and answers with: "10s", "1m", ...; "requests", "bytes", ...
std::string_view window_name(top::Window window);
std::string_view by_name(top::By by);

// Printable ASCII (0x20 to 0x7e) as it is, the backslash doubled, every other byte as \xHH.
std::string escape_for_terminal(std::string_view text);

// The columns `text` takes on a terminal, counting each UTF-8 sequence as one: what the screen
// writes is ASCII (escaped) but for its own "±" and "…".
size_t display_width(std::string_view text);
// `text` cut to at most `width` columns, its last column an ellipsis when something was cut.
std::string fit_to_width(std::string_view text, size_t width);

// How the view stands with the admin port.
enum class Connection { kConnecting, kOk, kFailing };

// Everything one screen shows. `answer` is the last one read, kept while the port fails.
struct Screen {
  std::string admin;  // the admin address as given
  top::Query query;   // what is being asked (the keys change it)
  std::optional<TopAnswer> answer;
  Connection connection = Connection::kConnecting;
  std::string status;  // why the port fails, or what happened last
  std::string clock;   // the time to show ("12:34:56 UTC")
};

// The lines of the screen, none wider than `width` columns (SIZE_MAX: no cut), at most `height`
// (SIZE_MAX: every row): the header (address, window, by, host, total, clock, connection), with
// `interactive` the keys and the status line, then the column titles and a row per entry:
// rank, count (with " ±error" when the error is not 0), share of the total, host and target,
// both escaped and cut with an ellipsis to fit.
std::vector<std::string> render_screen(const Screen& screen, size_t width, size_t height, bool interactive);

// One row, as render_screen lays it out: the count column `count_width` wide, the host column
// `host_width` wide, the target taking what is left of `width`.
std::string render_row(size_t rank, const TopRow& row, uint64_t total, size_t count_width, size_t host_width,
                       size_t width);

}  // namespace edge::cli
