// http/log_text: text from outside (a client, a backend, an admin parameter, memcached) made safe
// to put in a log line.
//
// Every log line edge writes goes to stderr, one event a line. A value that held a line break
// could forge a line; an escape sequence could rewrite the operator's terminal. So each such
// value passes through escape_for_log() first: control characters (below 0x20 and 0x7f) and
// the backslash become escapes (\n, \r, \t, \\, else \xHH); every other byte stays, so UTF-8
// text reads as it came and a line means one event.
#pragma once

#include <string>
#include <string_view>

namespace edge::http {

std::string escape_for_log(std::string_view text);

}  // namespace edge::http
