#include "ssi/template.h"

#include <algorithm>

namespace edge::ssi {

namespace {

constexpr std::string_view kCommentEnd = "-->";
constexpr std::string_view kCdataEnd = "]]>";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_name_start(char c) { return is_lower(c) || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'; }

// ---- entities ----

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The reference starting at text[0] == '&': its length and what it stands for, or 0 when it is
// not one we decode (then the '&' is kept as written).
size_t decode_reference(std::string_view text, std::string& out) {
  struct Named {
    std::string_view name;
    char value;
  };
  static constexpr Named kNamed[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  for (const Named& n : kNamed) {
    if (text.starts_with(n.name)) {
      out += n.value;
      return n.name.size();
    }
  }
  if (text.size() < 4 || text[1] != '#') return 0;
  const bool hex = text[2] == 'x' || text[2] == 'X';
  size_t i = hex ? 3 : 2;
  const size_t digits_start = i;
  uint32_t cp = 0;
  for (; i < text.size() && text[i] != ';'; ++i) {
    const char c = text[i];
    uint32_t d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return 0;
    cp = cp * (hex ? 16 : 10) + d;
    if (cp > 0x10FFFF) return 0;  // also stops the sum before it could overflow
  }
  if (i == digits_start || i == text.size()) return 0;
  if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  append_utf8(out, cp);
  return i + 1;
}

std::string decode_entities(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  while (!raw.empty()) {
    const size_t amp = raw.find('&');
    out.append(raw.substr(0, amp));
    if (amp == std::string_view::npos) break;
    raw.remove_prefix(amp);
    size_t used = decode_reference(raw, out);
    if (used == 0) {
      out += '&';
      used = 1;
    }
    raw.remove_prefix(used);
  }
  return out;
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7F;
  });
}

// ---- recognising one construct ----

enum class Verdict { kMore, kNo, kYes };

enum class Action {
  kDrop,
  kInclude,
  kRefuse,
  kOpenRemove,
  kCloseRemove,
  kOpenEsiComment,
  kCloseEsiComment,
  kOpenOpaque,
  kCloseOpaque,
};

struct Match {
  Verdict verdict = Verdict::kNo;
  Action action = Action::kDrop;
  size_t length = 0;
  Include include;
  std::string_view opaque_end;  // kOpenOpaque
};

Match verdict_only(Verdict v) { return Match{v}; }

Match yes(Action action, size_t length) {
  Match m{Verdict::kYes, action, length};
  return m;
}

// Reads forward from a candidate's first byte, never more than kMaxConstruct bytes from it, so
// the verdict on a candidate depends only on those bytes and on whether the body ends before
// them: never on where the chunks were cut.
class Cursor {
 public:
  Cursor(std::string_view data, size_t start, bool final) : data_(data), start_(start), pos_(start) {
    if (data.size() - start >= kMaxConstruct) {
      end_ = start + kMaxConstruct;
      more_may_come_ = false;
    } else {
      end_ = data.size();
      more_may_come_ = !final;
    }
  }

  bool done() const { return pos_ >= end_; }
  char peek() const { return data_[pos_]; }
  void advance() { ++pos_; }
  size_t length() const { return pos_ - start_; }
  // What to answer when the bytes ran out before a decision.
  Verdict ran_out() const { return more_may_come_ ? Verdict::kMore : Verdict::kNo; }

  // Skips whitespace; whether there was any.
  bool skip_spaces() {
    const size_t from = pos_;
    while (!done() && is_space(peek())) advance();
    return pos_ != from;
  }

  Verdict literal(std::string_view s) {
    for (char c : s) {
      if (done()) return ran_out();
      if (peek() != c) return Verdict::kNo;
      advance();
    }
    return Verdict::kYes;
  }

  // A run of lower-case letters: an element or directive name.
  Verdict lower_word(std::string_view& word) {
    const size_t from = pos_;
    while (!done() && is_lower(peek())) advance();
    if (done()) return ran_out();
    word = data_.substr(from, pos_ - from);
    return Verdict::kYes;
  }

  Verdict name(std::string_view& word) {
    const size_t from = pos_;
    if (done()) return ran_out();
    if (!is_name_start(peek())) return Verdict::kNo;
    while (!done() && is_name_char(peek())) advance();
    if (done()) return ran_out();
    word = data_.substr(from, pos_ - from);
    return Verdict::kYes;
  }

  // A quoted value; `value` is what lies between the quotes.
  Verdict quoted(std::string_view& value) {
    if (done()) return ran_out();
    const char quote = peek();
    if (quote != '"' && quote != '\'') return Verdict::kNo;
    advance();
    const size_t close = data_.substr(0, end_).find(quote, pos_);
    if (close == std::string_view::npos) {
      pos_ = end_;
      return ran_out();
    }
    value = data_.substr(pos_, close - pos_);
    pos_ = close + 1;
    return Verdict::kYes;
  }

 private:
  std::string_view data_;
  size_t start_;
  size_t pos_;
  size_t end_;
  bool more_may_come_;
};

struct Attribute {
  std::string_view name;
  std::string_view value;  // raw, entities not decoded
};

enum class TagStyle { kEsi, kSsi };

struct Attributes {
  std::vector<Attribute> list;
  bool self_closing = false;

  const Attribute* find(std::string_view name) const {
    for (const Attribute& a : list)
      if (a.name == name) return &a;
    return nullptr;
  }
};

// Reads ` name="value"` pairs and the end of the tag: "/>" or ">" for ESI, "-->" for SSI.
Verdict read_attributes(Cursor& c, TagStyle style, Attributes& out) {
  for (;;) {
    const bool spaced = c.skip_spaces();
    if (c.done()) return c.ran_out();
    const char next = c.peek();
    if (style == TagStyle::kEsi && next == '>') {
      c.advance();
      return Verdict::kYes;
    }
    if (style == TagStyle::kEsi && next == '/') {
      c.advance();
      out.self_closing = true;
      return c.literal(">");
    }
    if (style == TagStyle::kSsi && next == '-') return c.literal(kCommentEnd);
    // XML wants whitespace before each attribute; without it the tag is not one we trust.
    if (!spaced) return Verdict::kNo;
    Attribute a;
    Verdict v = c.name(a.name);
    if (v != Verdict::kYes) return v;
    c.skip_spaces();
    if ((v = c.literal("=")) != Verdict::kYes) return v;
    c.skip_spaces();
    if ((v = c.quoted(a.value)) != Verdict::kYes) return v;
    if (out.find(a.name) != nullptr) return Verdict::kNo;
    out.list.push_back(a);
  }
}

// An include built from its attributes: kInclude, or kRefuse, or kDrop without a src.
Match include_match(const Attribute* src, const Attribute* alt, bool continue_on_error, size_t length) {
  if (src == nullptr || src->value.empty()) return yes(Action::kDrop, length);
  Include include{decode_entities(src->value), alt ? decode_entities(alt->value) : std::string(),
                  continue_on_error};
  if (include.src.empty()) return yes(Action::kDrop, length);
  if (has_control(include.src)) return yes(Action::kRefuse, length);
  Match m = yes(Action::kInclude, length);
  m.include = std::move(include);
  return m;
}

// After "<!--#".
Match match_ssi(Cursor c) {
  c.skip_spaces();
  std::string_view command;
  Verdict v = c.lower_word(command);
  if (v != Verdict::kYes) return verdict_only(v);
  if (command != "include") return verdict_only(Verdict::kNo);
  Attributes attributes;
  if ((v = read_attributes(c, TagStyle::kSsi, attributes)) != Verdict::kYes) return verdict_only(v);
  if (attributes.find("file") != nullptr) return yes(Action::kRefuse, c.length());
  return include_match(attributes.find("virtual"), nullptr, true, c.length());
}

// After "<".
Match match_esi_start_tag(Cursor c) {
  Verdict v = c.literal("esi:");
  if (v != Verdict::kYes) return verdict_only(v);
  std::string_view element;
  if ((v = c.lower_word(element)) != Verdict::kYes) return verdict_only(v);
  if (element != "include" && element != "remove" && element != "comment") return verdict_only(Verdict::kNo);
  Attributes attributes;
  if ((v = read_attributes(c, TagStyle::kEsi, attributes)) != Verdict::kYes) return verdict_only(v);
  if (element == "include") {
    const Attribute* onerror = attributes.find("onerror");
    return include_match(attributes.find("src"), attributes.find("alt"),
                         onerror != nullptr && onerror->value == "continue", c.length());
  }
  if (element == "remove" && !attributes.self_closing) return yes(Action::kOpenRemove, c.length());
  return yes(Action::kDrop, c.length());
}

// After "<", at "/".
Match match_esi_end_tag(Cursor c, bool in_remove) {
  Verdict v = c.literal("/esi:");
  if (v != Verdict::kYes) return verdict_only(v);
  std::string_view element;
  if ((v = c.lower_word(element)) != Verdict::kYes) return verdict_only(v);
  c.skip_spaces();
  if ((v = c.literal(">")) != Verdict::kYes) return verdict_only(v);
  if (element == "remove") return yes(in_remove ? Action::kCloseRemove : Action::kDrop, c.length());
  if (!in_remove && (element == "include" || element == "comment")) return yes(Action::kDrop, c.length());
  return verdict_only(Verdict::kNo);
}

struct Modes {
  bool esi;
  bool ssi;
  bool in_remove;
  bool in_esi_comment;
};

// After "<", at "!".
Match match_bang(Cursor c, const Modes& modes) {
  c.advance();  // the '!'
  Verdict v;
  if (c.done()) return verdict_only(c.ran_out());
  if (modes.esi && c.peek() == '[') {
    if ((v = c.literal("[CDATA[")) != Verdict::kYes) return verdict_only(v);
    Match m = yes(Action::kOpenOpaque, c.length());
    m.opaque_end = kCdataEnd;
    return m;
  }
  if ((v = c.literal("--")) != Verdict::kYes) return verdict_only(v);
  if (c.done()) return verdict_only(c.ran_out());
  if (modes.ssi && c.peek() == '#') {
    Cursor directive = c;
    directive.advance();
    Match m = match_ssi(directive);
    // A directive SSI does not take is still an HTML comment to ESI.
    if (m.verdict != Verdict::kNo || !modes.esi) return m;
  }
  if (!modes.esi) return verdict_only(Verdict::kNo);
  if (!modes.in_esi_comment) {
    Cursor wrapper = c;
    v = wrapper.literal("esi");
    if (v == Verdict::kMore) return verdict_only(v);
    if (v == Verdict::kYes) return yes(Action::kOpenEsiComment, wrapper.length());
  }
  Match m = yes(Action::kOpenOpaque, c.length());
  m.opaque_end = kCommentEnd;
  return m;
}

// At "<".
Match match_markup(std::string_view data, size_t at, bool final, const Modes& modes) {
  Cursor c(data, at, final);
  c.advance();
  if (c.done()) return verdict_only(c.ran_out());
  const char next = c.peek();
  if (modes.in_remove) return next == '/' ? match_esi_end_tag(c, true) : verdict_only(Verdict::kNo);
  if (next == '!') return match_bang(c, modes);
  if (!modes.esi) return verdict_only(Verdict::kNo);
  if (next == '/') return match_esi_end_tag(c, false);
  return match_esi_start_tag(c);
}

Match match_literal(std::string_view data, size_t at, bool final, std::string_view literal, Action action) {
  Cursor c(data, at, final);
  const Verdict v = c.literal(literal);
  return v == Verdict::kYes ? yes(action, literal.size()) : verdict_only(v);
}

size_t heap_bytes(const std::string& s) {
  const auto* object = reinterpret_cast<const char*>(&s);
  const bool inline_buffer = s.data() >= object && s.data() < object + sizeof(s);
  return inline_buffer ? 0 : s.capacity() + 1;
}

}  // namespace

// ---- Template ----

bool Template::is_verbatim() const {
  if (!includes.empty() || refused != 0) return false;
  if (segments.empty()) return source_size == 0;
  return segments.size() == 1 && segments[0].offset == 0 && segments[0].length == source_size;
}

size_t Template::memory() const {
  size_t bytes = sizeof(Template) + segments.capacity() * sizeof(Segment) + includes.capacity() * sizeof(Include);
  for (const Include& include : includes) bytes += heap_bytes(include.src) + heap_bytes(include.alt);
  return bytes;
}

// ---- Parser ----

Parser::Parser(Syntax syntax) : syntax_(syntax) {}

void Parser::add_text(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  std::vector<Segment>& segments = template_.segments;
  if (!segments.empty()) {
    Segment& last = segments.back();
    if (last.kind == Segment::kText && last.offset + last.length == offset) {
      last.length += length;
      return;
    }
  }
  segments.push_back(Segment{offset, length, 0, Segment::kText});
}

// Decides what it can of `data` (which starts at body offset `base`) and returns how many bytes
// it decided; the rest starts with a construct that needs more bytes. With `final`, all of it.
size_t Parser::scan(std::string_view data, uint64_t base, bool final) {
  const bool esi = syntax_ != Syntax::kSsi;
  const bool ssi = syntax_ != Syntax::kEsi;
  size_t i = 0;     // next byte to look at
  size_t text = 0;  // first byte not yet added as text (meaningless inside esi:remove)
  auto flush = [&](size_t to) {
    if (!in_remove_ && to > text) add_text(base + text, to - text);
    text = to;
  };

  while (i < data.size()) {
    size_t at;
    Match m;
    if (!opaque_end_.empty()) {
      at = data.find(opaque_end_.front(), i);
      if (at == std::string_view::npos) break;
      m = match_literal(data, at, final, opaque_end_, Action::kCloseOpaque);
    } else if (in_esi_comment_ && !in_remove_) {
      at = data.find_first_of("<-", i);
      if (at == std::string_view::npos) break;
      if (data[at] == '-') {
        m = match_literal(data, at, final, kCommentEnd, Action::kCloseEsiComment);
      } else {
        m = match_markup(data, at, final, Modes{esi, ssi, in_remove_, in_esi_comment_});
      }
    } else {
      at = data.find('<', i);
      if (at == std::string_view::npos) break;
      m = match_markup(data, at, final, Modes{esi, ssi, in_remove_, in_esi_comment_});
    }

    if (m.verdict == Verdict::kMore) {
      flush(at);
      return at;
    }
    if (m.verdict == Verdict::kNo) {
      i = at + 1;
      continue;
    }
    const size_t after = at + m.length;
    switch (m.action) {
      case Action::kOpenOpaque:
        opaque_end_ = m.opaque_end;
        i = after;
        continue;  // a comment is text: it stays in the text run
      case Action::kCloseOpaque:
        opaque_end_ = {};
        i = after;
        continue;
      case Action::kCloseRemove:
        in_remove_ = false;  // what it held is dropped: the text run restarts after it
        break;
      case Action::kOpenRemove:
        flush(at);
        in_remove_ = true;
        remove_start_ = base + at;
        break;
      case Action::kInclude:
        flush(at);
        template_.segments.push_back(
            Segment{base + at, m.length, static_cast<uint32_t>(template_.includes.size()), Segment::kInclude});
        template_.includes.push_back(std::move(m.include));
        break;
      case Action::kRefuse:
        flush(at);
        ++template_.refused;
        break;
      case Action::kOpenEsiComment:
        flush(at);
        in_esi_comment_ = true;
        break;
      case Action::kCloseEsiComment:
        flush(at);
        in_esi_comment_ = false;
        break;
      case Action::kDrop:
        flush(at);
        break;
    }
    i = text = after;
  }
  flush(data.size());
  return data.size();
}

void Parser::feed(std::string_view chunk) {
  while (!chunk.empty()) {
    if (pending_.empty()) {
      const size_t decided = scan(chunk, received_, false);
      pending_.assign(chunk.substr(decided));
      received_ += chunk.size();
      return;
    }
    // Only as many bytes as the pending construct can still use: once it has kMaxConstruct of
    // them it is decided, so pending_ never grows past that, however large the chunk.
    const size_t take = std::min(chunk.size(), kMaxConstruct - pending_.size());
    pending_.append(chunk.substr(0, take));
    chunk.remove_prefix(take);
    received_ += take;
    const size_t decided = scan(pending_, received_ - pending_.size(), false);
    pending_.erase(0, decided);
  }
}

Template Parser::finish() {
  if (!pending_.empty()) scan(pending_, received_ - pending_.size(), true);
  if (in_remove_) add_text(remove_start_, received_ - remove_start_);
  template_.source_size = received_;
  template_.segments.shrink_to_fit();
  template_.includes.shrink_to_fit();
  Template done = std::move(template_);
  *this = Parser(syntax_);
  return done;
}

Template compile(std::string_view body, Syntax syntax) {
  Parser parser(syntax);
  parser.feed(body);
  return parser.finish();
}

}  // namespace edge::ssi
