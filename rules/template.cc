#include "rules/template.h"

#include <algorithm>
#include <charconv>

namespace edge::rules {

namespace {

void append_clean(std::string& out, std::string_view value) {
  for (char c : value)
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out.push_back(c);
}

std::string_view value_of(conf::Placeholder kind, const TemplateValues& v) {
  using P = conf::Placeholder;
  switch (kind) {
    case P::kHost: return v.host;
    case P::kPath: return v.target.substr(0, v.target.find('?'));
    case P::kQuery: {
      const size_t mark = v.target.find('?');
      return mark == std::string_view::npos ? std::string_view() : v.target.substr(mark + 1);
    }
    case P::kTarget: return v.target;
    case P::kRest: return v.route_prefix <= v.target.size() ? v.target.substr(v.route_prefix) : std::string_view();
    case P::kScheme: return v.scheme;
    case P::kMethod: return v.method;
    case P::kClientIp: return v.client_ip;
    case P::kBackend: return v.backend;
    case P::kCache: return v.cache;
    case P::kLiteral:
    case P::kStatus: break;
  }
  return {};
}

bool iequals(std::string_view a, std::string_view b) { return http::iequals(a, b); }

bool dropped(const conf::HeaderEdits& edits, std::string_view name) {
  for (const std::string& d : edits.dropped)
    if (iequals(d, name)) return true;
  return false;
}

}  // namespace

void expand(const conf::Template& text, const TemplateValues& values, std::string& out) {
  for (const conf::Template::Part& part : text.parts) {
    if (part.kind == conf::Placeholder::kLiteral) {
      out.append(part.literal);
    } else if (part.kind == conf::Placeholder::kStatus) {
      char digits[8];
      const auto end = std::to_chars(digits, digits + sizeof digits, values.status).ptr;
      out.append(digits, static_cast<size_t>(end - digits));
    } else {
      append_clean(out, value_of(part.kind, values));
    }
  }
}

std::string redirect_location(const conf::Redirect& redirect, const TemplateValues& values) {
  std::string out;
  expand(redirect.to, values, out);
  if (out.size() >= 2 && out[0] == '/' && (out[1] == '/' || out[1] == '\\')) {
    size_t run = 1;
    while (run < out.size() && (out[run] == '/' || out[run] == '\\')) ++run;
    out.erase(1, run - 1);
  }
  return out;
}

void edit_request_fields(const conf::HeaderEdits& edits, const TemplateValues& values, http::Headers& fields) {
  if (!edits.dropped.empty())
    fields.remove_if([&](std::string_view name, http::FieldId) { return dropped(edits, name); });
  // One buffer per thread: the fields copy what they are given.
  thread_local std::string value;
  for (const conf::HeaderRule& rule : edits.added) {
    value.clear();
    expand(rule.value, values, value);
    fields.add(rule.name, value);
  }
}

void edit_response_head(const conf::HeaderEdits& edits, const TemplateValues& values, std::string& head) {
  if (!edits.dropped.empty()) {
    // Field lines start after the status line; the head ends with an empty line.
    size_t read = head.find("\r\n") + 2;
    size_t write = read;
    while (read < head.size()) {
      const size_t end = head.find("\r\n", read);
      if (end == std::string::npos || end == read) break;
      const size_t colon = head.find(':', read);
      const bool keep = colon > end || !dropped(edits, std::string_view(head).substr(read, colon - read));
      if (keep) {
        if (write != read) std::copy(head.begin() + read, head.begin() + end + 2, head.begin() + write);
        write += end + 2 - read;
      }
      read = end + 2;
    }
    head.erase(write, read - write);
  }
  if (edits.added.empty()) return;
  // The head ends with the empty line: the lines go in its place, and it after them.
  head.resize(head.size() - 2);
  for (const conf::HeaderRule& rule : edits.added) {
    head.append(rule.name).append(": ");
    expand(rule.value, values, head);
    head.append("\r\n");
  }
  head.append("\r\n");
}

}  // namespace edge::rules
