// ssi/template: compiles a response body with ESI or SSI markup into a Template, a compact list
// of the body's text ranges and the includes between them, kept with the cached object.
//
// Pure: no I/O, no clock, no libuv, only the standard library. The Parser reads the body as it
// arrives, in chunks of any size; the Template it returns owns no body bytes: its text segments
// are (offset, length) ranges of the ORIGINAL body, which the caller keeps beside it. Fetching
// and writing the includes is the executor's job, not this module's.
//
// What is recognised (element, attribute and directive names in lower case only, as ESI 1.0 and
// the SSI servers write them; anything else is text):
//
// ESI (Syntax::kEsi, kBoth)
//   <esi:include src="..." alt="..." onerror="continue"/>   an include; `<esi:include ...>` works
//       too, and the end tag `</esi:include>` is dropped wherever it stands. Attributes in any
//       order, '...' or "...", whitespace around '='; unknown attributes are ignored. Without a
//       src (or with an empty one) the element is dropped and counts as nothing.
//   <esi:remove>...</esi:remove>   dropped with its content; markup inside is not looked at, so
//       the first `</esi:remove>` ends it. `<esi:remove/>` is dropped.
//   <esi:comment text="..."/>   dropped (as are `<esi:comment ...>` and `</esi:comment>`).
//   <!--esi ... -->   the wrapper is dropped and what is inside is template text, includes and
//       all. A plain HTML comment inside it ends before the wrapper does.
//   <!-- ... -->, <![CDATA[ ... ]]>   text, and nothing inside them is recognised, so an include
//       that is commented out is not fetched.
//   Any other <esi:...> element, such as esi:try or esi:vars, is text: markup the parser does not
//   understand passes through.
//
// SSI (Syntax::kSsi, kBoth), as nginx and Apache write it
//   <!--# include virtual="..." -->   an include (whitespace after '#' and around '=' optional,
//       parameters other than virtual and file ignored). SSI includes always continue on error,
//       as nginx and Apache do; alt is "". An include without virtual is dropped.
//   <!--# include file="..." -->   refused: the directive becomes nothing and Template::refused
//       counts it. `file` names a path on the serving machine, and the edge must never serve
//       its own disk.
//   Other directives (echo, set, if, config, ...) are text.
//
// Attribute values are decoded: &amp; &lt; &gt; &quot; &apos; and numeric references (&#39;
// &#x27;); any other '&' stays as written. An include whose decoded src contains a control
// character (below 0x20, or 0x7F) is refused too: it could never be a request target.
//
// Malformed markup never fails the body; nothing in it is lost:
//   - a construct that does not parse (missing '=', unquoted or unterminated value, '/' not
//     followed by '>', a repeated attribute, no whitespace between attributes) is text from its
//     '<' on, and the parser looks for the next construct from the byte after that '<';
//   - a construct cut off by the end of the body (`<esi:include src="a"` at the very end) is text;
//   - a construct longer than kMaxConstruct bytes from its '<' to its end is text; that bounds
//     what the Parser holds between chunks;
//   - `<esi:remove>` never closed: everything from the `<esi:remove>` tag to the end of the body
//     is text, verbatim (includes in it are not processed). Varnish drops the rest of the body
//     instead; a missing end tag should not make the end of a page vanish, and what
//     esi:remove holds is by design safe to show (it is what a client without ESI sees).
//   - `<!--esi` never closed: the wrapper is dropped when it is met and the content up to the
//     end is template text, as Varnish does (a browser would hide it).
//   - unclosed HTML comments and CDATA sections are text to the end of the body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edge::ssi {

enum class Syntax : uint8_t { kEsi, kSsi, kBoth };

// The longest construct recognised, counted from its '<' to its last byte. Longer ones are text.
inline constexpr size_t kMaxConstruct = 8 * 1024;

struct Include {
  std::string src;  // as written, entities decoded; relative or absolute; never empty
  std::string alt;  // ESI alt=, "" when none
  bool continue_on_error = false;  // ESI onerror="continue"; always true for SSI
  bool operator==(const Include&) const = default;
};

struct Segment {
  enum Kind : uint8_t { kText, kInclude };
  // kText: the bytes to write. kInclude: where the include's markup stood, for logs.
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t include = 0;  // kInclude: index into Template::includes; 0 for text
  Kind kind = kText;
  bool operator==(const Segment&) const = default;
};

// The compiled body. Segments are in body order, never overlap, never empty, and lie within
// [0, source_size). Text ranges that touch in the body are one segment, so a body without any
// construct is one text segment (none for an empty body). Includes are numbered in the order
// they appear. Immutable once compiled: share it with the cached object.
struct Template {
  std::vector<Segment> segments;
  std::vector<Include> includes;
  uint64_t source_size = 0;  // bytes of the body it was compiled from
  uint32_t refused = 0;      // includes refused: SSI file=, or a src with control characters

  bool has_includes() const { return !includes.empty(); }
  // True when the output is the body itself: no include, nothing dropped. The body can then be
  // delivered as it is, and the template need not be kept.
  bool is_verbatim() const;
  // Bytes it occupies, heap included, for cache accounting.
  size_t memory() const;
  bool operator==(const Template&) const = default;
};

// Compiles one body as it arrives. Not thread-safe; one body at a time.
class Parser {
 public:
  explicit Parser(Syntax syntax);

  // Feeds the next bytes of the body; offsets continue across calls. A construct split across
  // chunks, at any byte, is recognised exactly as if it came whole, so the Template does not
  // depend on how the body was cut. Between calls the parser holds at most kMaxConstruct - 1
  // bytes (the start of a construct not yet decided), never the body.
  void feed(std::string_view chunk);

  // The end of the body: whatever is undecided becomes text (see "Malformed markup" above).
  // Returns the Template and leaves the Parser ready for a new body with the same syntax.
  Template finish();

 private:
  size_t scan(std::string_view data, uint64_t base, bool final);
  void add_text(uint64_t offset, uint64_t length);

  Syntax syntax_;
  Template template_;
  std::string pending_;       // the body from the first undecided construct on
  uint64_t received_ = 0;     // bytes fed so far
  bool in_esi_comment_ = false;
  bool in_remove_ = false;
  uint64_t remove_start_ = 0;      // offset of the open <esi:remove>
  std::string_view opaque_end_;    // "-->" or "]]>" inside a comment or CDATA, else empty
};

// Compiles a whole body at once: the same as one feed() and finish().
Template compile(std::string_view body, Syntax syntax);

}  // namespace edge::ssi
