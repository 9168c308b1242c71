// rules/template: the values a request gives a conf::Template's placeholders, and the rules'
// texts made from them (header values, redirect targets).
//
// Everything here is plain functions over borrowed views, run on the request path: no
// allocation but the output string's.
#pragma once

#include <string>
#include <string_view>

#include "conf/config.h"
#include "http/message.h"

namespace edge::rules {

// The request's side of the placeholders, borrowed for the call.
struct TemplateValues {
  std::string_view host;       // canonical, no port
  std::string_view target;     // canonical origin form: path and query
  size_t route_prefix = 0;     // the matched route's prefix length ({rest} starts there)
  std::string_view scheme;     // "http" or "https"
  std::string_view method;
  std::string_view client_ip;
  std::string_view backend;
  std::string_view cache;      // the X-Cache value; response headers only
  int status = 0;              // response headers only
};

// Appends the template with its placeholders filled. Control characters that a value might
// carry are left out, so a field value or a Location stays one line.
void expand(const conf::Template& text, const TemplateValues& values, std::string& out);

// The Location of a redirect: expand(), and a relative result that starts with `//` or `/\`
// (a browser would read another host) starts with a single `/`.
std::string redirect_location(const conf::Redirect& redirect, const TemplateValues& values);

// A request's fields after `edits` (conf::HeaderEdits): the dropped names removed, the added
// lines appended.
void edit_request_fields(const conf::HeaderEdits& edits, const TemplateValues& values, http::Headers& fields);

// A response head (status line to the empty line, as proxy/heads writes it) after `edits`: the
// dropped names' lines removed, the added lines inserted before the final empty line.
void edit_response_head(const conf::HeaderEdits& edits, const TemplateValues& values, std::string& head);

}  // namespace edge::rules
