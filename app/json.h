// app/json: the JSON documents the app server answers with (/echo, /stats) and the string
// escaping under them. Pure functions; results own their strings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/body.h"
#include "http/message.h"

namespace edge::app {

// Appends `s` as a quoted JSON string. '"', '\\' and control characters are escaped (\n, \r, \t,
// \b, \f by name, the rest as \u00XX). Valid UTF-8 passes through unchanged; a byte that is not
// part of a valid UTF-8 sequence is written as \u00XX (its Latin-1 reading), so the output is
// always valid JSON and the byte value stays recoverable.
void append_json_string(std::string& out, std::string_view s);
std::string json_string(std::string_view s);

// /echo includes the request body as a string only up to this size.
inline constexpr uint64_t kEchoBodyLimit = 64 * 1024;

// The request as /echo reports it, on one line:
// {"method":"POST","target":"/echo?a=1","version":"1.1","headers":[["Host","x"],...],
//  "body_bytes":5,"body":"hello"}
// Headers are in received order with their received spelling. "body" is present only when the
// body is at most kEchoBodyLimit bytes (so an empty body gives "body":"").
std::string echo_json(const http::RequestHead& head, const http::Body& body);

// {"name":"a1","received":5,"served":3,"in_progress":1,"peak_in_progress":2}, and then
// ,"websockets":1,"websockets_opened":4 when websockets_opened is not 0: a server that never
// spoke WebSocket reports what it always did; then ,"demo":{"book":3,...} when `demo` is not
// empty (the counts by kind of demo request, in the order given).
using NamedCounts = std::vector<std::pair<std::string_view, uint64_t>>;
std::string stats_json(std::string_view name, uint64_t received, uint64_t served, uint64_t in_progress,
                       uint64_t peak_in_progress, uint64_t websockets = 0, uint64_t websockets_opened = 0,
                       const NamedCounts& demo = {});

}  // namespace edge::app
