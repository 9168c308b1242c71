#include "cli/top_view.h"

#include <algorithm>
#include <cstdio>
#include <limits>

namespace edge::cli {

namespace {

// A reader over the answer's bytes; the first failure is kept and every later step fails, so
// the parse reads as the shape it expects and checks once.
class Reader {
 public:
  explicit Reader(std::string_view text) : text_(text) {}

  bool failed() const { return !reason_.empty(); }
  std::string error() const { return reason_ + " at byte " + std::to_string(failed_at_); }

  bool fail(const char* reason) {
    if (!failed()) {
      reason_ = reason;
      failed_at_ = pos_;
    }
    return false;
  }

  void skip_space() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  // The next non-space byte is `c`: consumed.
  bool take(char c) {
    if (failed()) return false;
    skip_space();
    if (pos_ >= text_.size()) return fail("the answer ends early");
    if (text_[pos_] != c) return fail(c == '"' ? "a string was expected" : "an unexpected character");
    ++pos_;
    return true;
  }

  // Like take(), but only looks: true (and consumed) when the next byte is `c`.
  bool take_if(char c) {
    if (failed()) return false;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool at_end() {
    skip_space();
    return pos_ == text_.size();
  }

  bool string(std::string& out) {
    out.clear();
    if (!take('"')) return false;
    while (pos_ < text_.size()) {
      const unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return fail("a control character inside a string");
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      if (++pos_ >= text_.size()) break;
      const char escape = text_[pos_++];
      switch (escape) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u':
          if (!unicode_escape(out)) return false;
          break;
        default:
          --pos_;
          return fail("a bad escape inside a string");
      }
    }
    return fail("the answer ends inside a string");
  }

  bool unsigned_number(uint64_t& out) {
    if (failed()) return false;
    skip_space();
    if (pos_ >= text_.size()) return fail("the answer ends early");
    if (text_[pos_] < '0' || text_[pos_] > '9') return fail("an unsigned integer was expected");
    if (text_[pos_] == '0' && pos_ + 1 < text_.size() && text_[pos_ + 1] >= '0' && text_[pos_ + 1] <= '9')
      return fail("a number with a leading zero");
    out = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      const uint64_t digit = static_cast<uint64_t>(text_[pos_] - '0');
      if (out > (std::numeric_limits<uint64_t>::max() - digit) / 10) return fail("a number too large");
      out = out * 10 + digit;
      ++pos_;
    }
    // A fraction or an exponent is a number this shape never has.
    if (pos_ < text_.size() && (text_[pos_] == '.' || text_[pos_] == 'e' || text_[pos_] == 'E'))
      return fail("an unsigned integer was expected");
    return true;
  }

 private:
  bool hex4(uint32_t& out) {
    if (text_.size() - pos_ < 4) return fail("the answer ends inside a string");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_];
      uint32_t digit;
      if (c >= '0' && c <= '9') digit = static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') digit = static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') digit = static_cast<uint32_t>(c - 'A' + 10);
      else return fail("a bad \\u escape");
      out = out * 16 + digit;
      ++pos_;
    }
    return true;
  }

  bool unicode_escape(std::string& out) {
    uint32_t code;
    if (!hex4(code)) return false;
    if (code >= 0xDC00 && code <= 0xDFFF) return fail("a lone surrogate");
    if (code >= 0xD800 && code <= 0xDBFF) {
      if (text_.size() - pos_ < 2 || text_[pos_] != '\\' || text_[pos_ + 1] != 'u') return fail("a lone surrogate");
      pos_ += 2;
      uint32_t low;
      if (!hex4(low)) return false;
      if (low < 0xDC00 || low > 0xDFFF) return fail("a lone surrogate");
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    if (code < 0x80) {
      out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (code >> 6)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (code >> 12)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (code >> 18)));
      out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::string reason_;
  size_t failed_at_ = 0;
};

// An object's members, each read by `member(name)`, which returns false (having failed the
// reader) for a name it does not know. A repeated or missing member is refused.
template <size_t N, typename Member>
bool read_object(Reader& reader, const std::string_view (&names)[N], Member member) {
  bool seen[N] = {};
  if (!reader.take('{')) return false;
  std::string name;
  if (!reader.take_if('}')) {
    do {
      if (!reader.string(name) || !reader.take(':')) return false;
      size_t index = N;
      for (size_t i = 0; i < N; ++i)
        if (names[i] == name) index = i;
      if (index == N) return reader.fail("an unknown member");
      if (seen[index]) return reader.fail("a repeated member");
      seen[index] = true;
      if (!member(index)) return false;
    } while (reader.take_if(','));
    if (!reader.take('}')) return false;
  }
  for (bool was_seen : seen)
    if (!was_seen) return reader.fail("a missing member");
  return true;
}

constexpr std::string_view kAnswerMembers[] = {"window", "by", "total", "top"};
constexpr std::string_view kRowMembers[] = {"host", "target", "count", "error"};

bool read_row(Reader& reader, TopRow& row) {
  return read_object(reader, kRowMembers, [&](size_t index) {
    switch (index) {
      case 0: return reader.string(row.host);
      case 1: return reader.string(row.target);
      case 2: return reader.unsigned_number(row.count);
      default: return reader.unsigned_number(row.error);
    }
  });
}

std::string format_count(const TopRow& row) {
  std::string text = std::to_string(row.count);
  if (row.error != 0) text.append(" \u00b1").append(std::to_string(row.error));
  return text;
}

std::string format_share(uint64_t count, uint64_t total) {
  if (total == 0) return "-";
  char text[16];
  const double share = 100.0 * static_cast<double>(count) / static_cast<double>(total);
  std::snprintf(text, sizeof text, "%.1f%%", std::min(share, 100.0));
  return text;
}

std::string pad_right(std::string text, size_t width) {
  const size_t used = display_width(text);
  if (used < width) text.append(width - used, ' ');
  return text;
}

std::string pad_left(const std::string& text, size_t width) {
  const size_t used = display_width(text);
  return used < width ? std::string(width - used, ' ') + text : text;
}

constexpr size_t kRankWidth = 4;
constexpr size_t kShareWidth = 6;  // "100.0%"
constexpr size_t kGap = 2;
constexpr size_t kHostWidthMost = 32;

std::string_view connection_name(Connection connection) {
  switch (connection) {
    case Connection::kConnecting: return "connecting";
    case Connection::kOk: return "ok";
    case Connection::kFailing: return "failing";
  }
  return "";
}

}  // namespace

std::optional<TopAnswer> parse_top_answer(std::string_view json, std::string& error) {
  Reader reader(json);
  TopAnswer answer;
  std::string text;
  const bool read = read_object(reader, kAnswerMembers, [&](size_t index) {
    switch (index) {
      case 0:
        if (!reader.string(text)) return false;
        return top::parse_window(text, answer.window) || reader.fail("an unknown window");
      case 1:
        if (!reader.string(text)) return false;
        return top::parse_by(text, answer.by) || reader.fail("an unknown weight");
      case 2: return reader.unsigned_number(answer.total);
      default:
        if (!reader.take('[')) return false;
        if (reader.take_if(']')) return true;
        do {
          TopRow row;
          if (!read_row(reader, row)) return false;
          if (row.error > row.count) return reader.fail("an error larger than its count");
          answer.rows.push_back(std::move(row));
        } while (reader.take_if(','));
        return reader.take(']');
    }
  });
  if (read && !reader.at_end()) reader.fail("bytes after the answer");
  if (reader.failed()) {
    error = reader.error();
    return std::nullopt;
  }
  return answer;
}

std::string_view window_name(top::Window window) {
  switch (window) {
    case top::Window::k10s: return "10s";
    case top::Window::k1m: return "1m";
    case top::Window::k10m: return "10m";
    case top::Window::k1h: return "1h";
  }
  return "";
}

std::string_view by_name(top::By by) {
  switch (by) {
    case top::By::kRequests: return "requests";
    case top::By::kBytes: return "bytes";
    case top::By::kMisses: return "misses";
    case top::By::kBackendTime: return "backend_time";
  }
  return "";
}

std::string escape_for_terminal(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if (byte == '\\') {
      out.append("\\\\");
    } else if (byte >= 0x20 && byte < 0x7f) {
      out.push_back(c);
    } else {
      out.append("\\x");
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xF]);
    }
  }
  return out;
}

size_t display_width(std::string_view text) {
  size_t columns = 0;
  for (char c : text)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++columns;
  return columns;
}

std::string fit_to_width(std::string_view text, size_t width) {
  if (display_width(text) <= width) return std::string(text);
  if (width == 0) return {};
  // Keep width - 1 columns, never cutting inside a UTF-8 sequence, then the ellipsis.
  size_t columns = 0;
  size_t end = 0;
  while (end < text.size()) {
    size_t next = end + 1;
    while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
    if (columns + 1 > width - 1) break;
    ++columns;
    end = next;
  }
  return std::string(text.substr(0, end)) + "\u2026";
}

std::string render_row(size_t rank, const TopRow& row, uint64_t total, size_t count_width, size_t host_width,
                       size_t width) {
  std::string line = pad_left(std::to_string(rank), kRankWidth);
  line.append(kGap, ' ').append(pad_left(format_count(row), count_width));
  line.append(kGap, ' ').append(pad_left(format_share(row.count, total), kShareWidth));
  line.append(kGap, ' ').append(pad_right(fit_to_width(escape_for_terminal(row.host), host_width), host_width));
  line.append(kGap, ' ');
  const size_t used = display_width(line);
  const size_t left = width > used ? width - used : 0;
  line.append(fit_to_width(escape_for_terminal(row.target), left));
  return fit_to_width(line, width);
}

std::vector<std::string> render_screen(const Screen& screen, size_t width, size_t height, bool interactive) {
  std::vector<std::string> lines;
  const top::Query& query = screen.query;
  std::string header = "edge top  " + escape_for_terminal(screen.admin);
  header.append("  window ").append(window_name(query.window));
  header.append("  by ").append(by_name(query.by));
  header.append("  host ").append(query.host.empty() ? "*" : escape_for_terminal(query.host));
  header.append("  total ").append(screen.answer ? std::to_string(screen.answer->total) : "-");
  if (!screen.clock.empty()) header.append("  ").append(screen.clock);
  header.append("  [").append(connection_name(screen.connection)).append("]");
  lines.push_back(fit_to_width(header, width));
  if (interactive) {
    lines.push_back(fit_to_width("keys: q quit  w window  b by  +/- rows (n " + std::to_string(query.n) + ")", width));
    lines.push_back(fit_to_width(escape_for_terminal(screen.status), width));
  }
  if (lines.size() >= height) {
    lines.resize(height);
    return lines;
  }

  const std::vector<TopRow> none;
  const std::vector<TopRow>& rows = screen.answer ? screen.answer->rows : none;
  const uint64_t total = screen.answer ? screen.answer->total : 0;
  size_t count_width = 5;  // "COUNT"
  size_t host_width = 4;   // "HOST"
  for (const TopRow& row : rows) {
    count_width = std::max(count_width, display_width(format_count(row)));
    host_width = std::max(host_width, display_width(escape_for_terminal(row.host)));
  }
  host_width = std::min(host_width, kHostWidthMost);
  std::string titles = pad_left("#", kRankWidth);
  titles.append(kGap, ' ').append(pad_left("COUNT", count_width));
  titles.append(kGap, ' ').append(pad_left("SHARE", kShareWidth));
  titles.append(kGap, ' ').append(pad_right("HOST", host_width));
  titles.append(kGap, ' ').append("TARGET");
  lines.push_back(fit_to_width(titles, width));
  for (size_t i = 0; i < rows.size() && lines.size() < height; ++i)
    lines.push_back(render_row(i + 1, rows[i], total, count_width, host_width, width));
  return lines;
}

}  // namespace edge::cli
