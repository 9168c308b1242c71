#include "proxy/admin.h"

#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <tuple>
#include <unordered_map>

#include "cache/invalidation.h"
#include "cache/policy.h"
#include "cache/static_key.h"
#include "http/log_text.h"
#include "http/message.h"
#include "http/parser.h"
#include "http/uri.h"
#include "http/server_conn.h"
#include "http/tcp_transport.h"
#include "log/error_log.h"
#include "proxy/admin_events.h"
#include "proxy/admin_render.h"
#include "proxy/admin_session.h"
#include "proxy/bounds.h"
#include "proxy/heads.h"
#include "proxy/loop_tasks.h"
#include "proxy/peers.h"
#include "proxy/router.h"
#include "proxy/status_page.h"
#include "proxy/tier.h"
#include "rules/address.h"

namespace edge::proxy {

// ---- the pure parts (proxy/admin_render.h) ----

namespace admin {

namespace {

void append_number(std::string& out, int64_t n) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

void append_unsigned(std::string& out, uint64_t n) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

// A duration in nanoseconds as milliseconds with three decimals; null for none.
void append_ms(std::string& out, std::optional<double> ns) {
  if (!ns) {
    out.append("null");
    return;
  }
  char digits[32];
  auto end = std::to_chars(digits, digits + sizeof digits, *ns / 1e6, std::chars_format::fixed, 3).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

const char* balance_name(conf::Balance balance) {
  switch (balance) {
    case conf::Balance::kLeastConn:
      return "least_conn";
    case conf::Balance::kRoundRobin:
      return "round_robin";
  }
  return "unknown";
}
}  // namespace

std::optional<std::string> percent_decode(std::string_view segment) {
  std::optional<std::string> out = http::percent_decode(segment, false);
  // A name never holds a NUL, and a '/' here could only have come from %2F.
  if (out && out->find_first_of(std::string_view("\0/", 2)) != std::string::npos) return std::nullopt;
  return out;
}

Route parse_route(std::string_view path) {
  Route route;
  if (path == "/purge") route.kind = Route::kPurge;
  if (path == "/ban") route.kind = Route::kBan;
  if (path == "/stats") route.kind = Route::kStats;
  if (path == "/metrics") route.kind = Route::kMetrics;
  if (path == "/reload") route.kind = Route::kReload;
  if (path == "/top") route.kind = Route::kTop;
  if (path == "/") route.kind = Route::kPage;
  if (path == "/login") route.kind = Route::kLogin;
  if (path == "/logout") route.kind = Route::kLogout;
  if (path == "/events") route.kind = Route::kEvents;
  if (route.kind != Route::kNotFound) return route;
  constexpr std::string_view kPrefix = "/backends";
  if (!path.starts_with(kPrefix)) return route;
  std::string_view rest = path.substr(kPrefix.size());
  if (rest.empty()) {
    route.kind = Route::kBackends;
    return route;
  }
  if (rest == ".txt") {
    route.kind = Route::kBackendsText;
    return route;
  }
  if (rest.front() != '/') return route;
  rest.remove_prefix(1);
  std::string_view parts[3];
  for (int i = 0; i < 3; ++i) {
    size_t slash = rest.find('/');
    if ((slash == std::string_view::npos) != (i == 2)) return route;  // exactly three segments
    parts[i] = rest.substr(0, slash);
    if (parts[i].empty()) return route;
    if (slash != std::string_view::npos) rest.remove_prefix(slash + 1);
  }
  Route::Kind kind;
  if (parts[2] == "drain")
    kind = Route::kDrain;
  else if (parts[2] == "enable")
    kind = Route::kEnable;
  else
    return route;
  std::optional<std::string> backend = percent_decode(parts[0]);
  std::optional<std::string> server = percent_decode(parts[1]);
  if (!backend || !server) return route;
  route.kind = kind;
  route.backend = std::move(*backend);
  route.server = std::move(*server);
  return route;
}

std::string_view allowed_methods(Route::Kind kind) {
  switch (kind) {
    case Route::kBackends:
    case Route::kBackendsText:
    case Route::kStats:
    case Route::kMetrics:
    case Route::kTop:
    case Route::kPage:
    case Route::kEvents:
      return "GET, HEAD";
    case Route::kDrain:
    case Route::kEnable:
    case Route::kPurge:
    case Route::kBan:
    case Route::kReload:
    case Route::kLogin:
    case Route::kLogout:
      return "POST";
    case Route::kNotFound:
      break;
  }
  return "";
}

bool method_allowed(Route::Kind kind, std::string_view method) {
  switch (kind) {
    case Route::kBackends:
    case Route::kBackendsText:
    case Route::kStats:
    case Route::kMetrics:
    case Route::kTop:
    case Route::kPage:
    case Route::kEvents:
      return method == "GET" || method == "HEAD";
    case Route::kDrain:
    case Route::kEnable:
    case Route::kPurge:
    case Route::kBan:
    case Route::kReload:
    case Route::kLogin:
    case Route::kLogout:
      return method == "POST";
    case Route::kNotFound:
      break;
  }
  return false;
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  authorization = http::trim(authorization);
  constexpr std::string_view kScheme = "Bearer";
  if (authorization.size() <= kScheme.size() || !http::iequals(authorization.substr(0, kScheme.size()), kScheme))
    return std::nullopt;
  std::string_view rest = authorization.substr(kScheme.size());
  if (rest.front() != ' ' && rest.front() != '\t') return std::nullopt;
  std::string_view token = http::trim(rest);
  if (token.empty()) return std::nullopt;
  for (char c : token)
    if (c == ' ' || c == '\t') return std::nullopt;
  return token;
}

TokenDigest digest_token(std::string_view token) {
  TokenDigest digest{};
  unsigned int len = 0;
  if (EVP_Digest(token.data(), token.size(), digest.bytes, &len, EVP_sha256(), nullptr) != 1 ||
      len != sizeof digest.bytes) {
    // Cannot happen with a working libcrypto; an unmatchable digest keeps the port shut.
    for (unsigned char& b : digest.bytes) b = 0xff;
  }
  return digest;
}

bool token_matches(std::string_view presented, const TokenDigest& expected) {
  TokenDigest digest = digest_token(presented);
  return CRYPTO_memcmp(digest.bytes, expected.bytes, sizeof digest.bytes) == 0;
}

std::string json_string(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  for (char c : text) {
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out.append(escaped);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

ServerLatencies gather_server_latencies(const std::vector<std::vector<int>>& server_slots,
                                        const std::vector<const WorkerMetrics*>& workers) {
  ServerLatencies latencies;
  for (const std::vector<int>& backend : server_slots) {
    std::vector<ServerHistograms>& servers = latencies.emplace_back(backend.size());
    for (size_t s = 0; s < backend.size(); ++s)
      for (const WorkerMetrics* worker : workers) {
        if (const ServerMetrics* metrics = worker->server(backend[s])) {
          metrics->first_byte.read_into(servers[s].first_byte);
          metrics->connect.read_into(servers[s].connect);
        }
      }
  }
  return latencies;
}

std::string render_backends_json(const balancer::Balancer& balancer, int64_t now_ms,
                                 const ServerLatencies* latencies) {
  std::string out = "{\"backends\":[";
  for (size_t b = 0; b < balancer.size(); ++b) {
    const balancer::BackendState& backend = balancer.backend(b);
    const conf::Backend& config = backend.config();
    if (b > 0) out.push_back(',');
    out.append("{\"name\":").append(json_string(config.name));
    out.append(",\"balance\":\"").append(balance_name(config.balance)).append("\"");
    out.append(",\"queued\":");
    append_unsigned(out, backend.queued());
    out.append(",\"servers\":[");
    for (size_t s = 0; s < backend.size(); ++s) {
      const balancer::ServerState& server = backend.server(s);
      if (s > 0) out.push_back(',');
      out.append("{\"address\":").append(json_string(backend.server_config(s).address.text()));
      out.append(",\"state\":").append(json_string(balancer::mode_name(server.mode(now_ms, config.slow_start))));
      out.append(",\"in_flight\":");
      append_number(out, server.in_flight());
      out.append(",\"served\":");
      append_unsigned(out, server.served());
      out.append(",\"failed\":");
      append_unsigned(out, server.failed());
      out.append(",\"weight\":");
      append_unsigned(out, backend.server_config(s).weight);
      out.append(",\"max_conns\":");
      append_unsigned(out, backend.server_config(s).max_conns);
      const HistogramCounts* first_byte =
          latencies && b < latencies->size() && s < (*latencies)[b].size() ? &(*latencies)[b][s].first_byte : nullptr;
      out.append(",\"response_ms\":{\"p50\":");
      append_ms(out, first_byte ? first_byte->quantile_ns(0.5) : std::nullopt);
      out.append(",\"p90\":");
      append_ms(out, first_byte ? first_byte->quantile_ns(0.9) : std::nullopt);
      out.append(",\"p99\":");
      append_ms(out, first_byte ? first_byte->quantile_ns(0.99) : std::nullopt);
      out.append("},\"last_check\":");
      if (!server.checked()) {
        out.append("null");
      } else {
        balancer::ServerState::CheckResult check = server.last_check();
        out.append("{\"ok\":").append(check.ok ? "true" : "false");
        out.append(",\"status\":");
        append_number(out, check.status);
        out.append(",\"detail\":").append(json_string(check.detail));
        out.append(",\"age_ms\":");
        append_number(out, now_ms > check.at_ms ? now_ms - check.at_ms : 0);
        out.push_back('}');
      }
      out.push_back('}');
    }
    out.append("]}");
  }
  out.append("]}\n");
  return out;
}

std::string render_backends_text(const balancer::Balancer& balancer, int64_t now_ms) {
  std::string out;
  for (size_t b = 0; b < balancer.size(); ++b) {
    const balancer::BackendState& backend = balancer.backend(b);
    const conf::Backend& config = backend.config();
    const size_t queued = backend.queued();
    for (size_t s = 0; s < backend.size(); ++s) {
      const balancer::ServerState& server = backend.server(s);
      out.append(config.name).push_back(' ');
      out.append(backend.server_config(s).address.text()).push_back(' ');
      out.append(balancer::mode_name(server.mode(now_ms, config.slow_start)));
      out.append(" in_flight=");
      append_number(out, server.in_flight());
      out.append(" queued=");
      append_unsigned(out, queued);
      out.append(" served=");
      append_unsigned(out, server.served());
      out.append(" failed=");
      append_unsigned(out, server.failed());
      out.append(" check=");
      if (!server.checked()) {
        out.push_back('-');
      } else {
        balancer::ServerState::CheckResult check = server.last_check();
        if (check.status > 0) {
          append_number(out, check.status);
        } else if (check.detail.empty()) {
          out.append(check.ok ? "ok" : "failed");
        } else {
          // One word, so the line stays split-able on spaces: "connection refused" ->
          // "connection_refused".
          for (char c : check.detail) out.push_back(c == ' ' || c == '\t' || c == '\n' || c == '\r' ? '_' : c);
        }
      }
      out.push_back('\n');
    }
  }
  return out;
}


// ---- purge and ban ----

namespace {

bool parse_flag(std::string_view value, bool& out) {
  if (value == "1" || value == "true") {
    out = true;
    return true;
  }
  if (value == "0" || value == "false") {
    out = false;
    return true;
  }
  return false;
}

// Each name at most once, every name among `known`; `error` says which one is wrong.
bool check_names(const QueryParams& params, std::initializer_list<std::string_view> known, std::string& error) {
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& name = params[i].first;
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      error = "unknown parameter: " + name;
      return false;
    }
    for (size_t j = 0; j < i; ++j) {
      if (params[j].first == name) {
        error = "repeated parameter: " + name;
        return false;
      }
    }
  }
  return true;
}

const std::string* find_param(const QueryParams& params, std::string_view name) {
  for (const auto& [n, v] : params)
    if (n == name) return &v;
  return nullptr;
}

// The host part of a cache key made with this authority, read as a client's Host is
// (http::canonical_host); "" when it is not a valid one.
std::string key_host(std::string_view authority) {
  std::string host;
  if (!http::canonical_host(authority, host)) host.clear();
  return host;
}

}  // namespace

std::optional<QueryParams> parse_query(std::string_view query) {
  QueryParams params;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::optional<std::string> name = http::percent_decode(pair.substr(0, eq), false);
    std::optional<std::string> value =
        http::percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), false);
    if (!name || !value) return std::nullopt;
    if (name->find('\0') != std::string::npos || value->find('\0') != std::string::npos) return std::nullopt;
    params.emplace_back(std::move(*name), std::move(*value));
  }
  return params;
}

namespace {
struct UrlParts {
  std::string host;    // canonical
  std::string target;  // canonical
};
// A purge names a URL as a client would, and it is read the same way (http/uri), so that it
// finds the key a request for it made.
std::optional<UrlParts> split_url(std::string_view url) {
  url = url.substr(0, url.find('#'));  // a URL may carry a fragment; a request-target may not
  const std::optional<http::RequestTarget> target = http::split_request_target("GET", url, true);
  if (!target || target->form != http::TargetForm::kAbsolute) return std::nullopt;
  UrlParts parts;
  if (!http::canonical_host(target->authority, parts.host) || !http::canonical_target(target->path_query, parts.target))
    return std::nullopt;
  return parts;
}
}  // namespace

std::optional<std::string> url_cache_key(std::string_view url) {
  std::optional<UrlParts> parts = split_url(url);
  if (!parts) return std::nullopt;
  return cache::cache_key(parts->host, parts->target);
}

std::optional<top::Query> parse_top(std::string_view query, std::string& error) {
  std::optional<QueryParams> params = parse_query(query);
  if (!params) {
    error = "bad percent-encoding in the query";
    return std::nullopt;
  }
  if (!check_names(*params, {"window", "by", "host", "n"}, error)) return std::nullopt;
  top::Query out;
  if (const std::string* window = find_param(*params, "window"); window && !top::parse_window(*window, out.window)) {
    error = "window must be 10s, 1m, 10m or 1h";
    return std::nullopt;
  }
  if (const std::string* by = find_param(*params, "by"); by && !top::parse_by(*by, out.by)) {
    error = "by must be requests, bytes, misses or backend_time";
    return std::nullopt;
  }
  if (const std::string* host = find_param(*params, "host")) {
    out.host = key_host(*host);
    if (out.host.empty()) {
      error = "host must be a host name or address";
      return std::nullopt;
    }
  }
  if (const std::string* n = find_param(*params, "n")) {
    size_t value = 0;
    const auto [end, ec] = std::from_chars(n->data(), n->data() + n->size(), value);
    if (ec != std::errc() || end != n->data() + n->size() || value < 1 || value > 1000) {
      error = "n must be a number from 1 to 1000";
      return std::nullopt;
    }
    out.n = value;
  }
  return out;
}

std::string render_top_json(const top::Query& query, const top::Ranking& ranking) {
  static constexpr const char* kWindows[] = {"10s", "1m", "10m", "1h"};
  static constexpr const char* kBy[] = {"requests", "bytes", "misses", "backend_time"};
  std::string out = "{\"window\":\"";
  out.append(kWindows[static_cast<size_t>(query.window)]).append("\",\"by\":\"");
  out.append(kBy[static_cast<size_t>(query.by)]).append("\",\"total\":");
  append_unsigned(out, ranking.total);
  out.append(",\"top\":[");
  for (size_t i = 0; i < ranking.hitters.size() && i < query.n; ++i) {
    const top::Hitter& hitter = ranking.hitters[i];
    // Keys are the host, then the target (which starts with '/').
    const size_t slash = hitter.key.find('/');
    const std::string_view key = hitter.key;
    if (i > 0) out.push_back(',');
    out.append("{\"host\":").append(json_string(key.substr(0, slash)));
    out.append(",\"target\":").append(json_string(slash == std::string_view::npos ? "" : key.substr(slash)));
    out.append(",\"count\":");
    append_unsigned(out, hitter.count);
    out.append(",\"error\":");
    append_unsigned(out, hitter.error);
    out.push_back('}');
  }
  out.append("]}\n");
  return out;
}

std::optional<PurgeRequest> parse_purge(std::string_view query, std::string& error) {
  std::optional<QueryParams> params = parse_query(query);
  if (!params) {
    error = "bad percent-encoding in the query";
    return std::nullopt;
  }
  if (!check_names(*params, {"url", "tag", "soft", "local", "every_query"}, error)) return std::nullopt;
  const std::string* url = find_param(*params, "url");
  const std::string* tag = find_param(*params, "tag");
  const std::string* soft = find_param(*params, "soft");
  const std::string* local = find_param(*params, "local");
  const std::string* every_query = find_param(*params, "every_query");
  PurgeRequest request;
  if (soft && !parse_flag(*soft, request.soft)) {
    error = "soft must be 0 or 1";
    return std::nullopt;
  }
  if (every_query && !parse_flag(*every_query, request.every_query)) {
    error = "every_query must be 0 or 1";
    return std::nullopt;
  }
  if (request.every_query && tag) {
    error = "every_query goes with a url, not a tag";
    return std::nullopt;
  }
  if (local && !parse_flag(*local, request.local)) {
    error = "local must be 0 or 1";
    return std::nullopt;
  }
  if ((url != nullptr) == (tag != nullptr)) {
    error = "give either url or tag";
    return std::nullopt;
  }
  if (tag) {
    if (tag->empty()) {
      error = "empty tag";
      return std::nullopt;
    }
    request.tag = *tag;
    return request;
  }
  std::optional<UrlParts> parts = split_url(*url);
  if (!parts) {
    error = "url must be an absolute http or https URL";
    return std::nullopt;
  }
  request.key = cache::cache_key(parts->host, parts->target);
  request.host = parts->host;
  request.target.assign(parts->target);
  return request;
}

std::optional<cache::Store::Ban> every_query_ban(const PurgeRequest& request, std::string& error) {
  cache::Store::Ban ban;
  ban.host = request.host;
  ban.soft = request.soft;
  ban.prefix = cache::cache_key("", request.target.substr(0, request.target.find('?')));
  // The path, every byte but letters and digits escaped, then an optional query.
  std::string regex = "^";
  for (char c : ban.prefix) {
    if (!std::isalnum(static_cast<unsigned char>(c))) regex.push_back('\\');
    regex.push_back(c);
  }
  regex.append("(\\?.*)?$");
  ban.regex = cache::BanRegex::compile(regex, error);
  if (!ban.regex) return std::nullopt;
  return ban;
}

std::optional<cache::Store::Ban> parse_ban(std::string_view query, std::string& error, bool* local) {
  std::optional<QueryParams> params = parse_query(query);
  if (!params) {
    error = "bad percent-encoding in the query";
    return std::nullopt;
  }
  if (!check_names(*params, {"host", "prefix", "regex", "soft", "local"}, error)) return std::nullopt;
  const std::string* host = find_param(*params, "host");
  const std::string* prefix = find_param(*params, "prefix");
  const std::string* regex = find_param(*params, "regex");
  const std::string* soft = find_param(*params, "soft");
  const std::string* local_flag = find_param(*params, "local");
  cache::Store::Ban ban;
  if (soft && !parse_flag(*soft, ban.soft)) {
    error = "soft must be 0 or 1";
    return std::nullopt;
  }
  bool is_local = false;
  if (local_flag && !parse_flag(*local_flag, is_local)) {
    error = "local must be 0 or 1";
    return std::nullopt;
  }
  if (local) *local = is_local;
  if ((!prefix || prefix->empty()) && (!regex || regex->empty())) {
    error = "give a prefix, a regex or both";
    return std::nullopt;
  }
  if (host && !host->empty()) {
    ban.host = key_host(*host);
    if (ban.host.empty()) {
      error = "bad host";
      return std::nullopt;
    }
  }
  if (prefix && !prefix->empty()) {
    if (prefix->front() != '/') {
      error = "prefix must start with /";
      return std::nullopt;
    }
    // Compared with the paths of cache keys, which are normalised.
    ban.prefix = cache::cache_key("", *prefix);
  }
  if (regex && !regex->empty()) {
    ban.regex = cache::BanRegex::compile(*regex, error);
    if (!ban.regex) return std::nullopt;
  }
  return ban;
}

// ---- cache figures ----

namespace {

void append_ratio(std::string& out, double ratio) {
  char digits[32];
  auto end = std::to_chars(digits, digits + sizeof digits, ratio).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

EventCounts totals_of(const CacheFigures& figures) {
  EventCounts totals{};
  for (const HostFigures& host : figures.hosts)
    for (size_t e = 0; e < cache::kEventCount; ++e) totals[e] += host.events[e];
  return totals;
}

uint64_t count_of(const EventCounts& events, cache::Event event) { return events[static_cast<size_t>(event)]; }

void append_events_json(std::string& out, const EventCounts& events) {
  for (size_t e = 0; e < cache::kEventCount; ++e) {
    if (e > 0) out.push_back(',');
    out.append("\"").append(cache::event_key(static_cast<cache::Event>(e))).append("\":");
    append_unsigned(out, events[e]);
  }
  out.append(",\"hit_ratio\":");
  append_ratio(out, hit_ratio(events));
}

// Prometheus: a HELP text's escapes (backslash and line feed only).
std::string prometheus_help(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\')
      out.append("\\\\");
    else if (c == '\n')
      out.append("\\n");
    else
      out.push_back(c);
  }
  return out;
}

// Writes one metric family at a time: its HELP and TYPE, then its samples.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_.append("# HELP ").append(name).push_back(' ');
    out_.append(prometheus_help(help)).push_back('\n');
    out_.append("# TYPE ").append(name).push_back(' ');
    out_.append(type).push_back('\n');
    name_ = name;
  }
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;
  // labels: name/value pairs; values are escaped here.
  void sample(Labels labels, uint64_t value) {
    begin("", labels, {});
    append_unsigned(out_, value);
    out_.push_back('\n');
  }
  void sample_ratio(Labels labels, double value) {
    begin("", labels, {});
    append_ratio(out_, value);
    out_.push_back('\n');
  }
  // A histogram's series: cumulative _bucket{le} lines, _sum in seconds, _count.
  void histogram(Labels labels, const HistogramCounts& counts) {
    static const std::array<std::string, kBucketCount> kLe = [] {
      std::array<std::string, kBucketCount> le;
      for (size_t i = 0; i < kBucketBoundsNs.size(); ++i) {
        char digits[32];
        auto end = std::to_chars(digits, digits + sizeof digits, static_cast<double>(kBucketBoundsNs[i]) / 1e9,
                                 std::chars_format::fixed).ptr;
        le[i].assign(digits, end);
      }
      le.back() = "+Inf";
      return le;
    }();
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kBucketCount; ++i) {
      cumulative += counts.buckets[i];
      begin("_bucket", labels, kLe[i]);
      append_unsigned(out_, cumulative);
      out_.push_back('\n');
    }
    begin("_sum", labels, {});
    append_ratio(out_, static_cast<double>(counts.sum_ns) / 1e9);
    out_.push_back('\n');
    begin("_count", labels, {});
    append_unsigned(out_, cumulative);
    out_.push_back('\n');
  }
  std::string take() { return std::move(out_); }

 private:
  void begin(std::string_view suffix, Labels labels, std::string_view le) {
    out_.append(name_).append(suffix);
    if (labels.size() > 0 || !le.empty()) {
      out_.push_back('{');
      bool first = true;
      for (const auto& [label, value] : labels) {
        if (!first) out_.push_back(',');
        first = false;
        out_.append(label).append("=\"").append(prometheus_label(value)).push_back('"');
      }
      if (!le.empty()) out_.append(first ? "" : ",").append("le=\"").append(le).push_back('"');
      out_.push_back('}');
    }
    out_.push_back(' ');
  }

  std::string out_;
  std::string name_;
};

constexpr balancer::ServerMode kModes[] = {balancer::ServerMode::kUp, balancer::ServerMode::kSlowStart,
                                           balancer::ServerMode::kDraining, balancer::ServerMode::kDown,
                                           balancer::ServerMode::kEjected};

// One backend's servers as an operator sees them: an address listed twice is one server (as
// for drain and enable), its figures summed, so no two samples share their labels.
struct ServerFigures {
  std::string address;
  balancer::ServerMode mode;
  uint64_t in_flight = 0, served = 0, failed = 0, weight = 0, max_conns = 0, went_down = 0, came_up = 0;
  std::optional<balancer::ServerState::CheckResult> check;  // the first listing's
  ServerHistograms histograms;  // the first listing's: every listing has the same slot
};

// `histograms`: the backend's, by server index (null: none).
std::vector<ServerFigures> server_figures(const balancer::BackendState& backend, int64_t now_ms,
                                          const std::vector<ServerHistograms>* histograms) {
  std::vector<ServerFigures> servers;
  for (size_t s = 0; s < backend.size(); ++s) {
    const balancer::ServerState& server = backend.server(s);
    const std::string& address = backend.server_config(s).address.text();
    auto same = std::find_if(servers.begin(), servers.end(), [&](const ServerFigures& f) { return f.address == address; });
    if (same == servers.end()) {
      ServerFigures f;
      f.address = address;
      f.mode = server.mode(now_ms, backend.config().slow_start);
      if (server.checked()) f.check = server.last_check();
      if (histograms && s < histograms->size()) f.histograms = (*histograms)[s];
      servers.push_back(std::move(f));
      same = std::prev(servers.end());
    }
    same->in_flight += static_cast<uint64_t>(std::max(0, server.in_flight()));
    same->served += server.served();
    same->failed += server.failed();
    same->weight += backend.server_config(s).weight;
    same->max_conns += backend.server_config(s).max_conns;
    same->went_down += server.went_down();
    same->came_up += server.came_up();
  }
  return servers;
}

}  // namespace

CacheFigures gather_cache_figures(const conf::Config& config, const std::vector<int>& host_slots,
                                  const std::vector<const cache::Counters*>& counters, const cache::StoreStats& store) {
  CacheFigures figures;
  figures.store = store;
  figures.memory = config.cache.memory;
  figures.hosts.resize(config.hosts.size());
  for (size_t h = 0; h < config.hosts.size(); ++h) {
    HostFigures& host = figures.hosts[h];
    if (!config.hosts[h].match.empty()) host.host = config.hosts[h].match.front();
    const int slot = h < host_slots.size() ? host_slots[h] : -1;
    for (const cache::Counters* worker : counters) {
      if (!worker || slot < 0 || static_cast<size_t>(slot) >= worker->hosts()) continue;
      for (size_t e = 0; e < cache::kEventCount; ++e)
        host.events[e] += worker->get(static_cast<size_t>(slot), static_cast<cache::Event>(e));
    }
  }
  return figures;
}

double hit_ratio(const EventCounts& events) {
  const uint64_t served = count_of(events, cache::Event::kHit) + count_of(events, cache::Event::kStale);
  const uint64_t all = served + count_of(events, cache::Event::kMiss) + count_of(events, cache::Event::kPass) +
                       count_of(events, cache::Event::kHitForPass);
  return all == 0 ? 0.0 : static_cast<double>(served) / static_cast<double>(all);
}

std::vector<HostTraffic> gather_host_traffic(const conf::Config& config, const std::vector<int>& host_slots,
                                             const std::vector<const WorkerMetrics*>& workers) {
  std::vector<HostTraffic> traffic;
  std::vector<int> slots;  // of the entries in `traffic`
  auto add = [&](std::string label, int slot) {
    HostTraffic& host = traffic.emplace_back();
    host.host = std::move(label);
    slots.push_back(slot);
    for (const WorkerMetrics* worker : workers) {
      const HostMetrics& metrics = worker->host(slot);
      for (size_t c = 0; c < kStatusClassCount; ++c) host.responses[c] += metrics.responses[c].load(std::memory_order_relaxed);
      metrics.duration.read_into(host.duration);
      metrics.first_byte.read_into(host.first_byte);
    }
  };
  for (size_t h = 0; h < config.hosts.size(); ++h) {
    const int slot = h < host_slots.size() ? host_slots[h] : -1;
    // A host without a slot counts with "": no two samples share their labels.
    if (slot < 0 || std::find(slots.begin(), slots.end(), slot) != slots.end()) continue;
    add(LabelSlots::label(config.hosts[h]), slot);
  }
  add("", -1);
  return traffic;
}

ConnectionFigures gather_connection_figures(const std::vector<const Stats*>& workers) {
  ConnectionFigures figures;
  for (const Stats* worker : workers) {
    WorkerFigures& w = figures.workers.emplace_back();
    w.connections = worker->client_connections.load(std::memory_order_relaxed);
    w.requests_in_progress = worker->requests_in_progress.load(std::memory_order_relaxed);
    // Read apart, the two may disagree for a moment.
    w.waiting = w.connections > w.requests_in_progress ? w.connections - w.requests_in_progress : 0;
    figures.open += w.connections;
    figures.backend_open += worker->backend_connections.load(std::memory_order_relaxed);
    figures.bytes_in += worker->client_bytes_received.load(std::memory_order_relaxed);
    figures.bytes_out += worker->client_bytes_sent.load(std::memory_order_relaxed);
    figures.backend_bytes_in += worker->backend_bytes_received.load(std::memory_order_relaxed);
    figures.backend_bytes_out += worker->backend_bytes_sent.load(std::memory_order_relaxed);
    figures.requests += worker->requests.load(std::memory_order_relaxed);
    figures.upstream_failures += worker->upstream_failures.load(std::memory_order_relaxed);
    figures.tls_handshakes += worker->tls_handshakes.load(std::memory_order_relaxed);
    figures.tls_resumed += worker->tls_resumed.load(std::memory_order_relaxed);
    figures.access_log_dropped += worker->access_log_dropped.load(std::memory_order_relaxed);
    figures.h2_connections += worker->h2_connections.load(std::memory_order_relaxed);
    figures.h2_streams += worker->h2_streams.load(std::memory_order_relaxed);
    for (size_t r = 0; r < kCloseReasonCount; ++r) figures.closes[r] += worker->closes[r].load(std::memory_order_relaxed);
    for (size_t a = 0; a < kRuleActionCount; ++a) figures.rules[a] += worker->rule_actions[a].load(std::memory_order_relaxed);
    for (size_t c = 0; c < compress::kCodings; ++c) {
      figures.coded[c].responses += worker->coded_responses[c].load(std::memory_order_relaxed);
      figures.coded[c].bytes_before += worker->coded_bytes_before[c].load(std::memory_order_relaxed);
      figures.coded[c].bytes_after += worker->coded_bytes_after[c].load(std::memory_order_relaxed);
    }
  }
  return figures;
}

std::string render_stats_json(const CacheFigures& figures) {
  std::string out = "{\"hosts\":[";
  for (size_t h = 0; h < figures.hosts.size(); ++h) {
    if (h > 0) out.push_back(',');
    out.append("{\"host\":").append(json_string(figures.hosts[h].host)).push_back(',');
    append_events_json(out, figures.hosts[h].events);
    out.push_back('}');
  }
  out.append("],\"totals\":{");
  append_events_json(out, totals_of(figures));
  const cache::StoreStats& st = figures.store;
  const std::pair<const char*, uint64_t> store_figures[] = {
      {"objects", st.objects},     {"bytes", st.bytes},
      {"memory", figures.memory},  {"inserts", st.inserts},
      {"evictions", st.evictions}, {"refused_too_large", st.refused_too_large},
      {"purged", st.purged},       {"bans", st.bans},
      {"hit_for_pass_marks", st.hit_for_pass_marks},
      {"admission_refusals", st.admission_refusals},
      {"head_bytes", st.head_bytes},
      {"body_bytes", st.body_bytes},
      {"overhead_bytes", st.overhead_bytes},
      {"sketch_bytes", st.sketch_bytes},
  };
  out.append("},\"store\":{");
  bool first = true;
  for (const auto& [name, value] : store_figures) {
    if (!first) out.push_back(',');
    first = false;
    out.append("\"").append(name).append("\":");
    append_unsigned(out, value);
  }
  // What one object costs on average, by part: the figures above over `objects`.
  const auto per_object = [&](uint64_t part) { return st.objects ? (part + st.objects / 2) / st.objects : 0; };
  out.append(",\"per_object\":{\"head\":");
  append_unsigned(out, per_object(st.head_bytes));
  out.append(",\"body\":");
  append_unsigned(out, per_object(st.body_bytes));
  out.append(",\"overhead\":");
  append_unsigned(out, per_object(st.overhead_bytes));
  out.append("}}");
  if (figures.limits) {
    out.append(",\"limits\":{");
    for (const auto& [name, value] : figures.limits->events) {
      out.append("\"").append(name).append("\":");
      append_unsigned(out, value);
      out.push_back(',');
    }
    out.append("\"temp_bytes\":");
    append_unsigned(out, figures.limits->temp_bytes);
    out.append(",\"temp_bytes_peak\":");
    append_unsigned(out, figures.limits->temp_bytes_peak);
    out.append("}");
  }
  if (figures.connections) {
    const ConnectionFigures& c = *figures.connections;
    const std::pair<const char*, uint64_t> open_figures[] = {
        {"open", c.open},         {"backend_open", c.backend_open},         {"bytes_in", c.bytes_in},
        {"bytes_out", c.bytes_out}, {"backend_bytes_in", c.backend_bytes_in}, {"backend_bytes_out", c.backend_bytes_out},
    };
    out.append(",\"connections\":{");
    for (const auto& [name, value] : open_figures) {
      out.append("\"").append(name).append("\":");
      append_unsigned(out, value);
      out.push_back(',');
    }
    out.append("\"requests\":");
    append_unsigned(out, figures.connections->requests);
    out.append(",\"upstream_failures\":");
    append_unsigned(out, figures.connections->upstream_failures);
    out.append(",\"tls_handshakes\":");
    append_unsigned(out, figures.connections->tls_handshakes);
    out.append(",\"tls_resumed\":");
    append_unsigned(out, figures.connections->tls_resumed);
    out.append(",\"access_log_dropped\":");
    append_unsigned(out, figures.connections->access_log_dropped);
    out.append(",\"h2_connections\":");
    append_unsigned(out, figures.connections->h2_connections);
    out.append(",\"h2_streams\":");
    append_unsigned(out, figures.connections->h2_streams);
    out.append(",\"compression\":{");
    for (size_t c = 1; c < compress::kCodings; ++c) {
      const ConnectionFigures::Coded& coded = figures.connections->coded[c];
      if (c > 1) out.push_back(',');
      out.append("\"").append(compress::coding_name(static_cast<compress::Coding>(c))).append("\":{\"responses\":");
      append_unsigned(out, coded.responses);
      out.append(",\"bytes_before\":");
      append_unsigned(out, coded.bytes_before);
      out.append(",\"bytes_after\":");
      append_unsigned(out, coded.bytes_after);
      out.append("}");
    }
    out.append("},\"closes\":{");
    for (size_t r = 0; r < kCloseReasonCount; ++r) {
      if (r > 0) out.push_back(',');
      out.append("\"").append(close_reason_key(static_cast<CloseReason>(r))).append("\":");
      append_unsigned(out, figures.connections->closes[r]);
    }
    out.append("},\"rules\":{");
    for (size_t a = 0; a < kRuleActionCount; ++a) {
      if (a > 0) out.push_back(',');
      out.append("\"").append(rule_action_key(static_cast<RuleAction>(a))).append("\":");
      append_unsigned(out, figures.connections->rules[a]);
    }
    out.append("}},\"workers\":[");
    for (size_t w = 0; w < c.workers.size(); ++w) {
      if (w > 0) out.push_back(',');
      out.append("{\"connections\":");
      append_unsigned(out, c.workers[w].connections);
      out.append(",\"requests_in_progress\":");
      append_unsigned(out, c.workers[w].requests_in_progress);
      out.append(",\"waiting\":");
      append_unsigned(out, c.workers[w].waiting);
      out.push_back('}');
    }
    out.append("]");
  }
  if (figures.memcached) {
    out.append(",\"memcached\":{");
    first = true;
    for (const auto& [name, value] : memcached_figures(*figures.memcached)) {
      if (!first) out.push_back(',');
      first = false;
      out.append("\"").append(name).append("\":");
      append_unsigned(out, value);
    }
    out.append("}");
  }
  out.append("}\n");
  return out;
}

std::vector<std::pair<const char*, uint64_t>> memcached_figures(const TierCounters& tier) {
  return {
      {"lookups", tier.lookups},
      {"hits", tier.hits},
      {"foreign", tier.foreign},
      {"misses", tier.misses},
      {"purged", tier.purged},
      {"unparsable", tier.unparsable},
      {"stores", tier.stores},
      {"too_large", tier.too_large},
      {"invalidations", tier.invalidations},
      {"invalidation_failures", tier.invalidation_failures},
      {"log_reads", tier.log_reads},
      {"keys_asked", tier.pool.gets},
      {"round_trips", tier.pool.batches},
      {"errors", tier.pool.errors},
      {"timeouts", tier.pool.timeouts},
      {"refused", tier.pool.refused},
  };
}

std::string prometheus_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out.append("\\\\");
    else if (c == '"')
      out.append("\\\"");
    else if (c == '\n')
      out.append("\\n");
    else
      out.push_back(c);
  }
  return out;
}

std::string render_metrics(const CacheFigures& figures, const balancer::Balancer& balancer, int64_t now_ms) {
  Exposition m;

  std::string events_help = "Requests by what the cache did with them, per host entry:";
  for (size_t e = 0; e < cache::kEventCount; ++e) {
    const auto event = static_cast<cache::Event>(e);
    events_help.append(e == 0 ? " " : "; ").append(cache::event_key(event)).append(": ").append(cache::event_help(event));
  }
  m.family("edge_cache_events_total", "counter", events_help);
  for (const HostFigures& host : figures.hosts)
    for (size_t e = 0; e < cache::kEventCount; ++e)
      m.sample({{"host", host.host}, {"event", cache::event_key(static_cast<cache::Event>(e))}}, host.events[e]);

  m.family("edge_cache_hit_ratio", "gauge",
           "(hits + stale) / (hits + stale + misses + passes + hit_for_pass) since start; 0 without requests");
  for (const HostFigures& host : figures.hosts) m.sample_ratio({{"host", host.host}}, hit_ratio(host.events));

  const cache::StoreStats& st = figures.store;
  m.family("edge_cache_objects", "gauge", "Objects in the cache store");
  m.sample({}, st.objects);
  m.family("edge_cache_bytes", "gauge", "Bytes the stored objects are charged (heads, bodies, overhead)");
  m.sample({}, st.bytes);
  m.family("edge_cache_memory_bytes", "gauge", "The cache store's memory bound (cache.memory)");
  m.sample({}, figures.memory);
  m.family("edge_cache_inserts_total", "counter", "Objects stored");
  m.sample({}, st.inserts);
  m.family("edge_cache_evictions_total", "counter", "Objects evicted to stay within the memory bound");
  m.sample({}, st.evictions);
  m.family("edge_cache_refused_too_large_total", "counter", "Objects not stored for being over cache.max_object");
  m.sample({}, st.refused_too_large);
  m.family("edge_cache_purged_total", "counter", "Objects removed or invalidated by purges and bans");
  m.sample({}, st.purged);
  m.family("edge_cache_bans", "gauge", "Bans recorded and not yet swept");
  m.sample({}, st.bans);
  m.family("edge_cache_hit_for_pass_marks", "gauge", "Keys currently marked hit-for-pass");
  m.sample({}, st.hit_for_pass_marks);
  m.family("edge_cache_admission_refusals_total", "counter",
           "Objects that left the admission window without taking a stored object's place");
  m.sample({}, st.admission_refusals);
  m.family("edge_cache_part_bytes", "gauge", "Bytes the stored objects are charged, by part");
  m.sample({{"part", "head"}}, st.head_bytes);
  m.sample({{"part", "body"}}, st.body_bytes);
  m.sample({{"part", "overhead"}}, st.overhead_bytes);
  m.family("edge_cache_sketch_bytes", "gauge", "The admission's frequency sketch (outside cache.memory)");
  m.sample({}, st.sketch_bytes);
  if (figures.limits) {
    m.family("edge_limit_events_total", "counter",
             "Times a bound on hostile input was hit (too_many_fields, slow_uploads, send_timeouts, "
             "paused_at_file_cap, paused_at_temp_total, slots_held, variants_replaced)");
    for (const auto& [name, value] : figures.limits->events) m.sample({{"event", name}}, value);
    m.family("edge_temp_bytes", "gauge", "Bytes buffered bodies hold in temp_dir (bound: limits.max_temp_total)");
    m.sample({}, figures.limits->temp_bytes);
    m.family("edge_temp_bytes_peak", "gauge", "The most edge_temp_bytes has been since start");
    m.sample({}, figures.limits->temp_bytes_peak);
  }
  if (figures.connections) {
    m.family("edge_requests_total", "counter", "Complete requests read from clients");
    m.sample({}, figures.connections->requests);
    m.family("edge_upstream_failures_total", "counter", "Backend exchanges that failed");
    m.sample({}, figures.connections->upstream_failures);
    m.family("edge_tls_handshakes_total", "counter", "TLS handshakes completed by client connections");
    m.sample({}, figures.connections->tls_handshakes);
    m.family("edge_tls_resumed_total", "counter", "TLS handshakes that resumed a session");
    m.sample({}, figures.connections->tls_resumed);
    m.family("edge_access_log_dropped_total", "counter", "Access log lines dropped because the log's queue was full");
    m.sample({}, figures.connections->access_log_dropped);
    m.family("edge_h2_connections_total", "counter", "Client connections that spoke HTTP/2");
    m.sample({}, figures.connections->h2_connections);
    m.family("edge_h2_streams_total", "counter", "HTTP/2 streams clients opened");
    m.sample({}, figures.connections->h2_streams);
    const std::pair<const char*, const char*> coded_families[] = {
        {"edge_compressed_responses_total", "Responses edge sent in a content coding, by coding"},
        {"edge_compressed_bytes_before_total", "Body bytes of coded responses before their coding, by coding"},
        {"edge_compressed_bytes_after_total", "Body bytes of coded responses as sent, by coding"},
    };
    for (size_t family = 0; family < 3; ++family) {
      m.family(coded_families[family].first, "counter", coded_families[family].second);
      for (size_t c = 1; c < compress::kCodings; ++c) {
        const ConnectionFigures::Coded& coded = figures.connections->coded[c];
        const uint64_t value = family == 0 ? coded.responses : family == 1 ? coded.bytes_before : coded.bytes_after;
        m.sample({{"encoding", compress::coding_name(static_cast<compress::Coding>(c))}}, value);
      }
    }
    std::string closes_help = "Client connections closed, each once, by reason:";
    for (size_t r = 0; r < kCloseReasonCount; ++r) closes_help.append(r == 0 ? " " : ", ").append(close_reason_key(static_cast<CloseReason>(r)));
    m.family("edge_connection_closes_total", "counter", closes_help);
    for (size_t r = 0; r < kCloseReasonCount; ++r)
      m.sample({{"reason", close_reason_key(static_cast<CloseReason>(r))}}, figures.connections->closes[r]);
    std::string rules_help = "Requests the hosts' and routes' rules answered, by action:";
    for (size_t a = 0; a < kRuleActionCount; ++a) rules_help.append(a == 0 ? " " : ", ").append(rule_action_key(static_cast<RuleAction>(a)));
    m.family("edge_rule_actions_total", "counter", rules_help);
    for (size_t a = 0; a < kRuleActionCount; ++a)
      m.sample({{"action", rule_action_key(static_cast<RuleAction>(a))}}, figures.connections->rules[a]);

    const ConnectionFigures& c = *figures.connections;
    m.family("edge_client_connections", "gauge", "Client connections open");
    m.sample({}, c.open);
    m.family("edge_backend_connections", "gauge", "Backend connections open (connecting, busy or idle in a pool)");
    m.sample({}, c.backend_open);
    using WorkerField = uint64_t WorkerFigures::*;
    const std::tuple<const char*, const char*, WorkerField> worker_families[] = {
        {"edge_worker_client_connections", "Client connections open on the worker", &WorkerFigures::connections},
        {"edge_worker_requests_in_progress", "Requests whose head was read and whose response is not yet written",
         &WorkerFigures::requests_in_progress},
        {"edge_worker_waiting_connections",
         "Client connections without a request in progress (idle between requests, or reading a head)",
         &WorkerFigures::waiting},
    };
    for (const auto& [name, help, field] : worker_families) {
      m.family(name, "gauge", help);
      for (size_t w = 0; w < c.workers.size(); ++w) m.sample({{"worker", std::to_string(w)}}, c.workers[w].*field);
    }
    const std::tuple<const char*, const char*, uint64_t> byte_families[] = {
        {"edge_client_received_bytes_total", "Bytes received from clients (HTTP, after TLS)", c.bytes_in},
        {"edge_client_sent_bytes_total", "Bytes of responses sent to clients, heads included (HTTP, before TLS)",
         c.bytes_out},
        {"edge_backend_received_bytes_total", "Bytes received from backends (HTTP, after TLS)", c.backend_bytes_in},
        {"edge_backend_sent_bytes_total", "Bytes of requests sent to backends (HTTP, before TLS)", c.backend_bytes_out},
    };
    for (const auto& [name, help, value] : byte_families) {
      m.family(name, "counter", help);
      m.sample({}, value);
    }
  }
  if (!figures.traffic.empty()) {
    m.family("edge_responses_total", "counter",
             "Responses by status class (code: 1xx to 5xx) and host entry (\"\": none matched)");
    for (const HostTraffic& host : figures.traffic)
      for (size_t k = 0; k < kStatusClassCount; ++k)
        m.sample({{"host", host.host}, {"code", status_class_name(k)}}, host.responses[k]);
    m.family("edge_request_duration_seconds", "histogram",
             "From a request's head read to its response written (or abandoned), by host entry");
    for (const HostTraffic& host : figures.traffic) m.histogram({{"host", host.host}}, host.duration);
    m.family("edge_request_first_byte_seconds", "histogram",
             "From a request's head read to its backend's response head, for requests that went to a backend, "
             "by host entry");
    for (const HostTraffic& host : figures.traffic) m.histogram({{"host", host.host}}, host.first_byte);
  }
  if (figures.memcached) {
    m.family("edge_memcached_total", "counter",
             "The memcached tier, by what happened (lookups, hits, foreign, misses, purged, unparsable, stores, "
             "too_large, invalidations, invalidation_failures, log_reads, keys_asked, round_trips, errors, timeouts, "
             "refused)");
    for (const auto& [name, value] : memcached_figures(*figures.memcached)) m.sample({{"what", name}}, value);
    m.family("edge_memcached_operation_seconds", "histogram",
             "From asking the memcached tier to its answer (pool queueing included), by operation: get (a lookup's "
             "multi-get), set (a write-through)");
    m.histogram({{"op", "get"}}, figures.memcached->get_latency);
    m.histogram({{"op", "set"}}, figures.memcached->set_latency);
  }

  // The backends: gathered once, then written family by family.
  struct BackendFigures {
    std::string name;
    uint64_t queued;
    std::vector<ServerFigures> servers;
  };
  std::vector<BackendFigures> backends;
  for (size_t b = 0; b < balancer.size(); ++b) {
    const balancer::BackendState& backend = balancer.backend(b);
    backends.push_back({backend.config().name, backend.queued(),
                        server_figures(backend, now_ms, b < figures.latencies.size() ? &figures.latencies[b] : nullptr)});
  }
  m.family("edge_backend_queued", "gauge", "Requests waiting for a free server of the backend");
  for (const BackendFigures& b : backends) m.sample({{"backend", b.name}}, b.queued);

  using Field = uint64_t ServerFigures::*;
  const std::tuple<const char*, const char*, const char*, Field> server_families[] = {
      {"edge_backend_server_in_flight", "gauge", "Requests in flight to the server", &ServerFigures::in_flight},
      {"edge_backend_server_served_total", "counter", "Exchanges with the server that got a response",
       &ServerFigures::served},
      {"edge_backend_server_failed_total", "counter", "Exchanges with the server that failed", &ServerFigures::failed},
      {"edge_backend_server_weight", "gauge", "The server's configured weight", &ServerFigures::weight},
      {"edge_backend_server_max_conns", "gauge", "The server's configured max_conns (0: no limit)",
       &ServerFigures::max_conns},
  };
  for (const auto& [name, type, help, field] : server_families) {
    m.family(name, type, help);
    for (const BackendFigures& b : backends)
      for (const ServerFigures& s : b.servers) m.sample({{"backend", b.name}, {"server", s.address}}, s.*field);
  }

  m.family("edge_backend_server_state", "gauge", "1 for the server's current state, 0 for the others");
  for (const BackendFigures& b : backends)
    for (const ServerFigures& s : b.servers)
      for (balancer::ServerMode mode : kModes)
        m.sample({{"backend", b.name}, {"server", s.address}, {"state", balancer::mode_name(mode)}},
                 s.mode == mode ? 1 : 0);

  m.family("edge_backend_server_health_transitions_total", "counter",
           "Times the active health checks took the server down (to=\"down\") or back up (to=\"up\")");
  for (const BackendFigures& b : backends)
    for (const ServerFigures& s : b.servers) {
      m.sample({{"backend", b.name}, {"server", s.address}, {"to", "down"}}, s.went_down);
      m.sample({{"backend", b.name}, {"server", s.address}, {"to", "up"}}, s.came_up);
    }
  if (!figures.latencies.empty()) {
    m.family("edge_backend_first_byte_seconds", "histogram",
             "From a request sent to the server to its response head read");
    for (const BackendFigures& b : backends)
      for (const ServerFigures& s : b.servers)
        m.histogram({{"backend", b.name}, {"server", s.address}}, s.histograms.first_byte);
    m.family("edge_backend_connect_seconds", "histogram",
             "From a connect to the server started to the connection ready (TLS handshake included)");
    for (const BackendFigures& b : backends)
      for (const ServerFigures& s : b.servers) m.histogram({{"backend", b.name}, {"server", s.address}}, s.histograms.connect);
  }

  m.family("edge_backend_server_check_ok", "gauge",
           "1 if the server's last active health check passed, 0 if not; absent before the first");
  for (const BackendFigures& b : backends)
    for (const ServerFigures& s : b.servers)
      if (s.check) m.sample({{"backend", b.name}, {"server", s.address}}, s.check->ok ? 1 : 0);
  m.family("edge_backend_server_check_age_seconds", "gauge", "Seconds since the server's last active health check");
  for (const BackendFigures& b : backends)
    for (const ServerFigures& s : b.servers)
      if (s.check)
        m.sample_ratio({{"backend", b.name}, {"server", s.address}},
                       static_cast<double>(now_ms > s.check->at_ms ? now_ms - s.check->at_ms : 0) / 1000.0);
  return m.take();
}

}  // namespace admin

// ---- the listener and its connections ----

namespace {

constexpr uint64_t kIdleTimeoutMs = 60'000;  // between requests on a kept-alive connection
constexpr uint64_t kSendTimeoutMs = 60'000;    // a response the client does not read
constexpr uint64_t kAdminLingerMs = 2'000;
constexpr size_t kReadBufferSize = 16 * 1024;
constexpr http::RequestParser::Limits kLimits{8 * 1024, 8 * 1024, 64 * 1024};

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kText = "text/plain; charset=utf-8";
constexpr std::string_view kPrometheus = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kHtml = "text/html; charset=utf-8";

struct Reply {
  int status = 200;
  std::string_view content_type = kJson;
  std::string body;
  std::string extra_headers;  // whole lines, CRLF included
  bool close_connection = false;  // the connection closes after it
};

// Who sent a request: the bearer token, a signed-in browser's session cookie
// (proxy/admin_session.h), or nobody known.
enum class Access { kNone, kBearer, kSession };

Reply json_error(int status, std::string_view message) {
  return {status, kJson, "{\"error\":" + admin::json_string(message) + "}\n", {}};
}

class Conn;

// The AdminServer's state; AdminServer::Impl is this under another name.
class Admin {
 public:
  Admin(uv_loop_t* loop, const GenerationRef& generation, cache::Store& store,
        std::vector<const cache::Counters*> counters, Tier* tier, const Bounds* bounds,
        std::vector<const Stats*> worker_stats, AdminServer::Reload reload, AdminServer::Top top,
        std::vector<const WorkerMetrics*> worker_metrics)
      : loop_(loop),
        generation_(generation),
        settings_(generation->config.admin),
        store_(store),
        counters_(std::move(counters)),
        tier_(tier),
        bounds_(bounds),
        worker_stats_(std::move(worker_stats)),
        worker_metrics_(std::move(worker_metrics)),
        reload_(std::move(reload)),
        top_(std::move(top)),
        token_(admin::digest_token(settings_.token)),
        sessions_(std::chrono::duration_cast<std::chrono::milliseconds>(settings_.session_ttl).count()),
        tasks_(loop),
        peers_(loop, generation->config.cluster) {}
  ~Admin() { close(); }

  bool open(std::string& error, int inherited_fd);
  conf::Address address() const;
  int fd() const;
  void close();

  uv_loop_t* loop() const { return loop_; }
  bool closing() const { return closed_; }
  uint64_t header_timeout_ms() const {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(settings_.header_timeout).count());
  }
  // Whether the head carries the admin token; evaluated in constant time.
  bool authorized(const http::RequestHead& head) const;
  // The bearer token, else a live session's cookie (then `session` is its id and `csrf` its
  // CSRF token), else nobody.
  Access access_of(const http::RequestHead& head, std::string& session, std::string& csrf);
  // A reload, whoever asked for it, for GET /events.
  void note_reload(std::string_view cause, const Reloaded& outcome);
  uv_buf_t read_buffer() { return uv_buf_init(read_buffer_, sizeof read_buffer_); }
  void unlink(Conn* c);
  void forget(uint64_t ticket) { awaiting_.erase(ticket); }
  // The answer, or nullopt when it comes later through Conn::finish() (a purge or ban on its
  // way to memcached and the cluster's peers).
  std::optional<Reply> answer(const http::RequestHead& head, Conn* conn);

 private:
  // A purge or ban made here, answered once memcached and every peer have it.
  struct Spread {
    std::string result;  // the local result's JSON members, e.g. "\"purged\":3"
    int waiting = 0;
    bool memcached_asked = false;
    bool memcached_ok = false;
    size_t peers_ok = 0;
    std::vector<std::string> errors;
  };

  static void on_connection(uv_stream_t* listener, int status) noexcept;
  Reply server_action(const admin::Route& route, std::string_view method);
  std::optional<Reply> purge(std::string_view query, std::string_view target, Conn* conn);
  std::optional<Reply> ban(std::string_view query, std::string_view target, Conn* conn);
  // Records `ban` here, then in memcached's log and on the peers (unless `local`: a peer's).
  std::optional<Reply> apply_ban(cache::Store::Ban ban, bool local, std::string_view target, Conn* conn);
  std::optional<Reply> spread(std::string result, cache::Invalidation entry,
                              std::vector<std::string> remove_keys, std::string_view target, Conn* conn);
  void spread_done(uint64_t ticket, const std::shared_ptr<Spread>& spread);
  admin::CacheFigures cache_figures() const;

  std::optional<Reply> reload(Conn* conn);
  std::optional<Reply> top(std::string_view query, Conn* conn);
  // GET /, POST /login and /logout, GET /events: what a browser uses; nullopt for other routes.
  std::optional<Reply> answer_browser(const admin::Route& route, const http::RequestHead& head, Conn* conn);
  Reply login(Conn* conn);
  Reply logout(Conn* conn);
  static Reply reload_reply(const Reloaded& outcome);
  const conf::Config& config() const { return generation_->config; }
  balancer::Balancer& balancer() const { return generation_->balancer; }

  uv_loop_t* loop_;
  const GenerationRef& generation_;  // the current one, replaced by reloads on this loop
  const conf::Admin settings_;       // the port's own, from the start (a reload leaves them)
  cache::Store& store_;
  std::vector<const cache::Counters*> counters_;  // one per worker
  Tier* tier_;  // null without cache.memcached
  const Bounds* bounds_;  // null in tests without one
  std::vector<const Stats*> worker_stats_;  // one per worker; empty in tests without workers
  std::vector<const WorkerMetrics*> worker_metrics_;  // likewise
  AdminServer::Reload reload_;
  AdminServer::Top top_;
  admin::TokenDigest token_;
  admin::Sessions sessions_;
  admin::EventRing events_;
  uint64_t refused_sign_ins_ = 0;
  LoopTasks tasks_;
  PeerNotifier peers_;
  uint64_t last_ticket_ = 0;
  std::unordered_map<uint64_t, Conn*> awaiting_;  // connections waiting for a spread, by ticket
  uv_tcp_t* listener_ = nullptr;  // owned; freed in its close callback
  bool closed_ = false;
  // Intrusive list of open connections, oldest first: at the cap, the oldest one that has not
  // made an authorised request is let go for the newcomer.
  Conn* conns_ = nullptr;
  Conn* conns_tail_ = nullptr;
  size_t conn_count_ = 0;
  char read_buffer_[kReadBufferSize];  // consumed by each read callback before the next read
};

// One admin connection: requests one at a time, on the server connection core.
class Conn final : public http::ServerConn {
 public:
  explicit Conn(Admin* admin);
  // The answer that was not ready when the request was read; `ticket` says it is still awaited.
  void await(uint64_t ticket) { awaiting_ticket_ = ticket; }
  void finish(const Reply& reply);
  // Whether a request on this connection carried the token (or a session cookie, or signed in
  // with it); until then it may be let go when the port is at its cap.
  bool trusted() const { return trusted_; }
  void trust() { trusted_ = true; }
  // The current request's sender, and its session's id and CSRF token when it is a session.
  Access access() const { return access_; }
  const std::string& session() const { return session_; }
  const std::string& csrf() const { return csrf_; }
  // The body of a POST /login: the sign-in form.
  std::string form() const { return form_.to_string(); }

  Conn* prev = nullptr;
  Conn* next = nullptr;

 private:
  http::Body* on_head(http::RequestHead& head) override;
  void on_request(http::RequestHead& head) override;
  void on_refuse(int status, Close why) override;
  void on_peer_end(int status) override;
  void on_timer() override;
  void on_close(Close why) override;

  void respond_error(int status, std::string_view detail);
  void refuse_unauthorized();
  http::Body* read_sign_in_form(const http::RequestHead& head);
  void send(const Reply& reply, bool head_request, bool http10);

  Admin* admin_;  // borrowed until on_close()
  std::string out_;  // the response, borrowed by the writer until it is written
  bool keep_alive_ = true;
  bool head_request_ = false;
  bool http10_ = false;
  bool trusted_ = false;
  uint64_t awaiting_ticket_ = 0;  // a spread this connection waits for, else 0
  Access access_ = Access::kNone;
  std::string session_;
  std::string csrf_;
  http::Body form_;  // a POST /login's body, at most 64 KiB (the port's limit), in RAM
};

// ---- Admin ----

bool Admin::open(std::string& error, int inherited_fd) {
  const conf::Address& address = settings_.address;
  const sockaddr_storage storage = address.to_sockaddr();
  listener_ = new uv_tcp_t;
  uv_tcp_init(loop_, listener_);
  listener_->data = this;
  int rc = inherited_fd >= 0 ? uv_tcp_open(listener_, inherited_fd)
                             : uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&storage), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 128, &Admin::on_connection);
  if (rc == 0) return true;
  error = conf::Error{settings_.mark, "cannot listen on " + address.text() + ": " + uv_strerror(rc)}.text();
  close();
  return false;
}

conf::Address Admin::address() const {
  conf::Address bound = settings_.address;
  sockaddr_storage storage{};
  int len = sizeof storage;
  if (!listener_ || uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&storage), &len) != 0) return bound;
  bound.port = ntohs(storage.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port
                                                   : reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
  return bound;
}

int Admin::fd() const {
  uv_os_fd_t fd = -1;
  if (!listener_ || uv_fileno(reinterpret_cast<const uv_handle_t*>(listener_), &fd) != 0) return -1;
  return fd;
}

void Admin::close() {
  if (!closed_) {
    peers_.stop();
    tasks_.close();
  }
  closed_ = true;
  if (listener_) {
    uv_close(reinterpret_cast<uv_handle_t*>(listener_), [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_tcp_t*>(h); });
    listener_ = nullptr;
  }
  while (conns_) conns_->close(http::ServerConn::Close::kHandler);  // unlinks it
}

void Admin::on_connection(uv_stream_t* listener, int status) noexcept {
  auto* admin = static_cast<Admin*>(listener->data);
  if (status < 0 || admin->closed_) return;
  if (admin->conn_count_ >= admin->settings_.max_connections) {
    // Idle or unauthorised connections must not lock an operator out: the oldest connection
    // that never showed the token makes room. Those that did are kept; if every one did, the
    // newcomer is the one closed.
    Conn* oldest = admin->conns_;
    while (oldest && oldest->trusted()) oldest = oldest->next;
    if (oldest) oldest->close(http::ServerConn::Close::kHandler);  // unlinks it
  }
  auto* c = new Conn(admin);
  c->prev = admin->conns_tail_;
  if (admin->conns_tail_)
    admin->conns_tail_->next = c;
  else
    admin->conns_ = c;
  admin->conns_tail_ = c;
  ++admin->conn_count_;
  auto transport = std::make_unique<http::TcpTransport>(admin->loop_, admin->read_buffer());
  const int rc = transport->accept(listener);
  c->start(std::move(transport));  // the first request's clock starts at accept
  if (rc != 0) return c->close(http::ServerConn::Close::kPeerClosed);
  if (admin->settings_.access.enabled) {
    sockaddr_storage peer{};
    const std::optional<rules::IpAddress> address =
        c->transport()->peer_address(&peer) == 0 ? rules::from_sockaddr(peer) : std::nullopt;
    if (!address || !rules::allowed(admin->settings_.access, *address)) {
      static constexpr std::string_view kForbidden =
          "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      uv_buf_t buf = uv_buf_init(const_cast<char*>(kForbidden.data()), static_cast<unsigned>(kForbidden.size()));
      c->transport()->write(&buf, 1, nullptr);
      return c->close(http::ServerConn::Close::kHandler);
    }
  }
  if (admin->conn_count_ > admin->settings_.max_connections) c->close(http::ServerConn::Close::kHandler);
}

void Admin::unlink(Conn* c) {
  if (c->prev) c->prev->next = c->next;
  if (c->next) c->next->prev = c->prev;
  if (conns_ == c) conns_ = c->next;
  if (conns_tail_ == c) conns_tail_ = c->prev;
  c->prev = c->next = nullptr;
  --conn_count_;
}

bool Admin::authorized(const http::RequestHead& head) const {
  if (head.headers.count("Authorization") != 1) return false;
  std::optional<std::string_view> token = admin::bearer_token(*head.headers.get("Authorization"));
  // Evaluated whatever the header held, so a malformed one takes as long as a wrong one.
  return admin::token_matches(token.value_or(std::string_view{}), token_) && token && !settings_.token.empty();
}

std::optional<Reply> Admin::answer(const http::RequestHead& head, Conn* conn) {
  // The head was authorised when it arrived (Conn::on_head), or is one of the sign-in page's.
  const admin::Route route = admin::parse_route(head.path());
  if (std::optional<Reply> reply = answer_browser(route, head, conn)) return reply;
  if (route.kind == admin::Route::kNotFound) return json_error(404, "not found");
  if (route.kind == admin::Route::kDrain || route.kind == admin::Route::kEnable)
    return server_action(route, head.method);
  if (!admin::method_allowed(route.kind, head.method)) {
    Reply reply = json_error(405, "method not allowed");
    reply.extra_headers = "Allow: " + std::string(admin::allowed_methods(route.kind)) + "\r\n";
    return reply;
  }
  const std::string_view target = head.target;
  const size_t question = target.find('?');
  const std::string_view query = question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);
  const int64_t now = balancer::now_ms();
  switch (route.kind) {
    case admin::Route::kPurge:
      return purge(query, target, conn);
    case admin::Route::kBan:
      return ban(query, target, conn);
    case admin::Route::kReload:
      return reload(conn);
    case admin::Route::kTop:
      return top(query, conn);
    case admin::Route::kStats:
      return Reply{200, kJson, admin::render_stats_json(cache_figures()), {}};
    case admin::Route::kMetrics:
      return Reply{200, kPrometheus, admin::render_metrics(cache_figures(), balancer(), now), {}};
    case admin::Route::kBackendsText:
      return Reply{200, kText, admin::render_backends_text(balancer(), now), {}};
    case admin::Route::kBackends:
    default:  // kNotFound, kDrain and kEnable were answered above
    {
      const admin::ServerLatencies latencies = admin::gather_server_latencies(generation_->server_slots, worker_metrics_);
      return Reply{200, kJson, admin::render_backends_json(balancer(), now, worker_metrics_.empty() ? nullptr : &latencies),
                   {}};
    }
  }
}

std::optional<Reply> Admin::purge(std::string_view query, std::string_view target, Conn* conn) {
  std::string error;
  std::optional<admin::PurgeRequest> request = admin::parse_purge(query, error);
  if (!request) return json_error(400, error);
  if (request->every_query) {
    std::optional<cache::Store::Ban> ban = admin::every_query_ban(*request, error);
    if (!ban) return json_error(400, error);
    return apply_ban(std::move(*ban), request->local, target, conn);
  }
  const bool by_tag = !request->tag.empty();
  const size_t n = by_tag ? store_.purge_tag(request->tag, request->soft) : store_.purge(request->key, request->soft);
  const std::string& what = by_tag ? request->tag : request->key;
  edge::log::info("edge: admin: %s%spurge %s %s: %zu objects", request->local ? "peer's " : "",
                  request->soft ? "soft " : "", by_tag ? "tag" : "key", http::escape_for_log(what).c_str(), n);
  events_.add(admin::unix_now_ms(), "purge",
              std::string(request->local ? "peer's " : "") + (request->soft ? "soft" : "hard") + " purge of " +
                  (by_tag ? "tag " : "URL ") + what + ": " + std::to_string(n) + (n == 1 ? " object" : " objects"));
  std::string result = "\"purged\":" + std::to_string(n);
  if (request->local) return Reply{200, kJson, "{" + result + "}\n", {}};
  cache::Invalidation entry;
  entry.kind = by_tag ? cache::Invalidation::Kind::kTag : cache::Invalidation::Kind::kUrl;
  entry.soft = request->soft;
  entry.key = by_tag ? request->tag : request->key;
  std::vector<std::string> remove_keys;
  if (!by_tag && !request->soft) {
    // Every variant is in the log; the plain one, and a static route's value, go at once.
    remove_keys.push_back(Tier::http_key(request->key, {}));
    const RouteMatch match = generation_->router.match(request->host, request->target.substr(0, request->target.find('?')));
    if (match.host >= 0) {
      const conf::Host& host = config().hosts[static_cast<size_t>(match.host)];
      const conf::CachePolicy& policy =
          match.route >= 0 ? host.routes[static_cast<size_t>(match.route)].cache : host.cache;
      if (policy.static_source == conf::StaticSource::kMemcached)
        remove_keys.push_back(cache::expand_static_key(policy.static_key, request->host, request->target));
    }
  }
  return spread(std::move(result), std::move(entry), std::move(remove_keys), target, conn);
}

std::optional<Reply> Admin::ban(std::string_view query, std::string_view target, Conn* conn) {
  std::string error;
  bool local = false;
  std::optional<cache::Store::Ban> ban = admin::parse_ban(query, error, &local);
  if (!ban) return json_error(400, error);
  return apply_ban(std::move(*ban), local, target, conn);
}

std::optional<Reply> Admin::apply_ban(cache::Store::Ban ban, bool local, std::string_view target, Conn* conn) {
  const std::string description = "host=" + (ban.host.empty() ? std::string("*") : ban.host) +
                                  " prefix=" + ban.prefix + " regex=" + (ban.regex ? ban.regex->text() : "");
  cache::Invalidation entry;
  entry.kind = cache::Invalidation::Kind::kBan;
  entry.soft = ban.soft;
  entry.host = ban.host;
  entry.prefix = ban.prefix;
  entry.regex = ban.regex ? ban.regex->text() : "";
  const uint64_t id = store_.ban(std::move(ban));
  const size_t active = store_.active_bans();
  edge::log::info("edge: admin: %s%sban %llu %s", local ? "peer's " : "", entry.soft ? "soft " : "",
                  static_cast<unsigned long long>(id), http::escape_for_log(description).c_str());
  events_.add(admin::unix_now_ms(), "ban",
              std::string(local ? "peer's " : "") + (entry.soft ? "soft" : "hard") + " ban " + std::to_string(id) + ": " +
                  description);
  std::string result = "\"ban\":" + std::to_string(id) + ",\"active_bans\":" + std::to_string(active);
  if (local) return Reply{200, kJson, "{" + result + "}\n", {}};
  return spread(std::move(result), std::move(entry), {}, target, conn);
}

std::optional<Reply> Admin::spread(std::string result, cache::Invalidation entry,
                                   std::vector<std::string> remove_keys, std::string_view target, Conn* conn) {
  if (!tier_ && peers_.peers() == 0) return Reply{200, kJson, "{" + result + "}\n", {}};
  const uint64_t ticket = ++last_ticket_;
  awaiting_.emplace(ticket, conn);
  conn->await(ticket);
  auto state = std::make_shared<Spread>();
  state->result = std::move(result);
  // Both answer later, from this loop, never from inside these calls.
  state->waiting = (tier_ ? 1 : 0) + (peers_.peers() > 0 ? 1 : 0);
  if (tier_) {
    state->memcached_asked = true;
    tier_->record(std::move(entry), std::move(remove_keys), tasks_.poster(),
                  [this, ticket, state](bool ok, std::string error) {
                    state->memcached_ok = ok;
                    if (!ok) state->errors.push_back(std::move(error));
                    spread_done(ticket, state);
                  });
  }
  if (peers_.peers() > 0) {
    std::string peer_target(target);
    peer_target.append(peer_target.find('?') == std::string::npos ? "?" : "&").append("local=1");
    peers_.notify(std::move(peer_target), [this, ticket, state](PeerNotifier::Result peers) {
      state->peers_ok = peers.ok;
      for (std::string& failure : peers.failures) state->errors.push_back("peer " + std::move(failure));
      spread_done(ticket, state);
    });
  }
  return std::nullopt;
}

void Admin::spread_done(uint64_t ticket, const std::shared_ptr<Spread>& state) {
  if (--state->waiting > 0) return;
  auto it = awaiting_.find(ticket);
  if (it == awaiting_.end()) return;  // the client left
  Conn* conn = it->second;
  awaiting_.erase(it);
  std::string body = "{" + state->result;
  if (state->memcached_asked) body += state->memcached_ok ? ",\"memcached\":\"ok\"" : ",\"memcached\":\"failed\"";
  if (peers_.peers() > 0)
    body += ",\"peers\":{\"ok\":" + std::to_string(state->peers_ok) +
            ",\"failed\":" + std::to_string(peers_.peers() - state->peers_ok) + "}";
  if (!state->errors.empty()) {
    body += ",\"errors\":[";
    for (size_t i = 0; i < state->errors.size(); ++i) {
      if (i) body += ",";
      body += admin::json_string(state->errors[i]);
      edge::log::warn("edge: admin: %s", http::escape_for_log(state->errors[i]).c_str());
    }
    body += "]";
  }
  body += "}\n";
  // Done here but not everywhere: the caller must know the purge may not hold on every node.
  conn->finish(Reply{state->errors.empty() ? 200 : 502, kJson, std::move(body), {}});
}

admin::CacheFigures Admin::cache_figures() const {
  admin::CacheFigures figures = admin::gather_cache_figures(config(), generation_->host_slots, counters_, store_.stats());
  if (tier_) figures.memcached = tier_->counters();
  if (bounds_) {
    admin::LimitFigures& limits = figures.limits.emplace();
    limits.events = bounds_->events();
    limits.events.emplace_back("variants_replaced", figures.store.variants_replaced);
    limits.temp_bytes = bounds_->temp_space.in_use();
    limits.temp_bytes_peak = bounds_->temp_space.peak();
  }
  if (!worker_stats_.empty()) figures.connections = admin::gather_connection_figures(worker_stats_);
  if (!worker_metrics_.empty()) {
    figures.traffic = admin::gather_host_traffic(config(), generation_->host_slots, worker_metrics_);
    figures.latencies = admin::gather_server_latencies(generation_->server_slots, worker_metrics_);
  }
  return figures;
}

std::optional<Reply> Admin::top(std::string_view query, Conn* conn) {
  std::string error;
  std::optional<top::Query> parsed = admin::parse_top(query, error);
  if (!parsed) return json_error(400, error);
  if (!top_) return json_error(503, "no workers");
  const uint64_t ticket = ++last_ticket_;
  awaiting_.emplace(ticket, conn);
  conn->await(ticket);
  top_(*parsed, [this, ticket, request = *parsed](std::optional<top::Ranking> ranking) {
    auto it = awaiting_.find(ticket);
    if (it == awaiting_.end()) return;  // the client left
    Conn* waiting = it->second;
    awaiting_.erase(it);
    waiting->finish(ranking ? Reply{200, kJson, admin::render_top_json(request, *ranking), {}}
                            : json_error(503, "edge is stopping"));
  });
  return std::nullopt;
}

std::optional<Reply> Admin::reload(Conn* conn) {
  const uint64_t ticket = ++last_ticket_;
  awaiting_.emplace(ticket, conn);
  conn->await(ticket);
  reload_([this, ticket](const Reloaded& outcome) {
    note_reload("admin", outcome);
    auto it = awaiting_.find(ticket);
    if (it == awaiting_.end()) return;  // the client left
    Conn* waiting = it->second;
    awaiting_.erase(it);
    waiting->finish(reload_reply(outcome));
  });
  return std::nullopt;
}

Reply Admin::reload_reply(const Reloaded& outcome) {
  std::string body = "{\"reloaded\":";
  body.append(outcome.ok ? "true" : "false");
  if (outcome.ok) body.append(",\"generation\":").append(std::to_string(outcome.generation));
  auto append_list = [&body](const char* name, const std::vector<std::string>& lines) {
    body.append(",\"").append(name).append("\":[");
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) body.push_back(',');
      body.append(admin::json_string(lines[i]));
    }
    body.push_back(']');
  };
  append_list(outcome.ok ? "changes" : "errors", outcome.ok ? outcome.changes : outcome.errors);
  body.append("}\n");
  // 422: the request was fine; the file it asked to apply was not.
  return {outcome.ok ? 200 : 422, kJson, std::move(body), {}};
}

Access Admin::access_of(const http::RequestHead& head, std::string& session, std::string& csrf) {
  session.clear();
  csrf.clear();
  if (authorized(head)) return Access::kBearer;
  std::optional<std::string_view> cookie = admin::cookie_value(head.headers, admin::kSessionCookie);
  if (!cookie) return Access::kNone;
  std::optional<std::string> token = sessions_.csrf_of(*cookie, balancer::now_ms());
  if (!token) return Access::kNone;
  session.assign(*cookie);
  csrf = std::move(*token);
  return Access::kSession;
}

void Admin::note_reload(std::string_view cause, const Reloaded& outcome) {
  std::string detail(cause);
  const std::vector<std::string>& lines = outcome.ok ? outcome.changes : outcome.errors;
  if (outcome.ok)
    detail.append(": generation ").append(std::to_string(outcome.generation));
  else
    detail.append(": refused, the running configuration kept");
  if (outcome.ok && lines.empty()) detail.append(", nothing added or removed");
  for (size_t i = 0; i < lines.size(); ++i) detail.append(i == 0 ? ": " : "; ").append(lines[i]);
  events_.add(admin::unix_now_ms(), "reload", detail);
}

namespace {
std::string peer_text(http::Transport* transport) {
  sockaddr_storage storage{};
  char text[64] = "unknown";
  if (transport && transport->peer_address(&storage) == 0) {
    if (storage.ss_family == AF_INET)
      uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&storage), text, sizeof text);
    else if (storage.ss_family == AF_INET6)
      uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&storage), text, sizeof text);
  }
  return text;
}

Reply page_reply(int status, const std::string& nonce, std::string page) {
  return Reply{status, kHtml, std::move(page), admin::page_headers(nonce), false};
}
}  // namespace

std::optional<Reply> Admin::answer_browser(const admin::Route& route, const http::RequestHead& head, Conn* conn) {
  switch (route.kind) {
    case admin::Route::kPage:
    case admin::Route::kLogin:
    case admin::Route::kLogout:
    case admin::Route::kEvents:
      break;
    default:
      return std::nullopt;
  }
  if (!admin::method_allowed(route.kind, head.method)) {
    Reply reply = json_error(405, "method not allowed");
    reply.extra_headers = "Allow: " + std::string(admin::allowed_methods(route.kind)) + "\r\n";
    return reply;
  }
  switch (route.kind) {
    case admin::Route::kLogin:
      return login(conn);
    case admin::Route::kLogout:
      return logout(conn);
    case admin::Route::kEvents:
      return Reply{200, kJson, events_.render_json(), {}, false};
    default: {
      // The status page needs a session: its script signs its POSTs with the session's CSRF
      // token. A bearer token alone gets the form, as nobody does.
      const std::string nonce = admin::random_hex(16);
      if (nonce.empty()) return json_error(500, "no random bytes for the page's nonce");
      if (conn->access() == Access::kSession)
        return page_reply(200, nonce, admin::render_status_page(conn->csrf(), nonce));
      return page_reply(200, nonce, admin::render_sign_in_page("", nonce));
    }
  }
}

Reply Admin::login(Conn* conn) {
  const std::string form = conn->form();
  if (form.size() > admin::kMaxLoginBody) return json_error(413, "the sign-in form is too large");
  std::optional<std::string> token = admin::form_value(form, "token");
  // Compared whatever the form held, so a malformed one takes as long as a wrong one.
  const bool matches = admin::token_matches(token.value_or(std::string{}), token_) && token && !settings_.token.empty();
  const std::string peer = peer_text(conn->transport());
  if (!matches) {
    // The token is long and random: guessing it is hopeless, but each attempt is said, and the
    // connection closed, so one is costly and visible.
    ++refused_sign_ins_;
    edge::log::warn("edge: admin: sign-in refused from %s: %s (%llu refused since start)", peer.c_str(),
                    token ? "wrong token" : "no token in the form", static_cast<unsigned long long>(refused_sign_ins_));
    const std::string nonce = admin::random_hex(16);
    Reply reply = page_reply(401, nonce, admin::render_sign_in_page("Wrong token.", nonce));
    reply.close_connection = true;
    return reply;
  }
  std::optional<admin::Sessions::Opened> opened = sessions_.open(balancer::now_ms());
  if (!opened) return json_error(500, "no random bytes for a session id");
  conn->trust();
  edge::log::info("edge: admin: signed in from %s (%zu sessions)", peer.c_str(), sessions_.size());
  const int64_t max_age = std::max<int64_t>(1, sessions_.ttl_ms() / 1000);
  // No Secure attribute: the port speaks plain HTTP, and a browser would not send the cookie back.
  std::string headers = "Location: /\r\nSet-Cookie: " + std::string(admin::kSessionCookie) + "=" + opened->id +
                        "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age) + "\r\n";
  return Reply{303, kText, "signed in: see /\n", std::move(headers), false};
}

Reply Admin::logout(Conn* conn) {
  const bool ended = conn->access() == Access::kSession && sessions_.close(conn->session());
  if (ended) edge::log::info("edge: admin: signed out (%zu sessions)", sessions_.size());
  std::string headers = "Set-Cookie: " + std::string(admin::kSessionCookie) +
                        "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0\r\n";
  return Reply{200, kJson, ended ? "{\"signed_out\":true}\n" : "{\"signed_out\":false}\n", std::move(headers), false};
}

Reply Admin::server_action(const admin::Route& route, std::string_view method) {
  const int b = config().backend_index(route.backend);
  if (b < 0) return json_error(404, "unknown backend");
  balancer::BackendState& backend = balancer().backend(static_cast<size_t>(b));
  // The same address listed twice in a backend is one server to an operator: both change.
  std::vector<size_t> matches;
  for (size_t s = 0; s < backend.size(); ++s)
    if (backend.server_config(s).address.text() == route.server) matches.push_back(s);
  if (matches.empty()) return json_error(404, "unknown server");
  if (!admin::method_allowed(route.kind, method)) {
    Reply reply = json_error(405, "method not allowed");
    reply.extra_headers = "Allow: " + std::string(admin::allowed_methods(route.kind)) + "\r\n";
    return reply;
  }
  const bool drain = route.kind == admin::Route::kDrain;
  for (size_t s : matches) backend.server(s).set_draining(drain);
  const balancer::ServerState& server = backend.server(matches.front());
  const char* state = balancer::mode_name(server.mode(balancer::now_ms(), backend.config().slow_start));
  edge::log::info("edge: admin: backend %s server %s %s", http::escape_for_log(route.backend).c_str(),
                  http::escape_for_log(route.server).c_str(), drain ? "draining" : "enabled");
  std::string body = "{\"backend\":" + admin::json_string(route.backend) +
                     ",\"server\":" + admin::json_string(route.server) + ",\"state\":" + admin::json_string(state) +
                     "}\n";
  return {200, kJson, std::move(body), {}};
}

// ---- Conn ----

namespace {
http::ServerConn::Settings conn_settings(const Admin& admin) {
  http::ServerConn::Settings settings;
  settings.limits = kLimits;
  // A request must arrive within header_timeout: its head whole, its body between reads.
  settings.header_timeout_ms = admin.header_timeout_ms();
  settings.body_timeout_ms = admin.header_timeout_ms();
  settings.idle_timeout_ms = kIdleTimeoutMs;
  settings.send_timeout_ms = kSendTimeoutMs;
  settings.linger_ms = kAdminLingerMs;
  // At most one read's worth waits while a request is answered.
  settings.max_pending = kReadBufferSize;
  return settings;
}
}  // namespace

Conn::Conn(Admin* admin) : http::ServerConn(admin->loop(), conn_settings(*admin)), admin_(admin) {}

void Conn::on_close(Close) {
  admin_->unlink(this);
  if (awaiting_ticket_) admin_->forget(awaiting_ticket_);
}

http::Body* Conn::on_head(http::RequestHead& head) {
  // No admin request needs its body: it is discarded.
  if (head.method == "CONNECT") {
    respond_error(405, "CONNECT is not served here");
    return nullptr;
  }
  access_ = admin_->access_of(head, session_, csrf_);
  if (access_ != Access::kNone) trusted_ = true;
  const admin::Route::Kind kind = admin::parse_route(head.path()).kind;
  // Whoever posts the sign-in form: the token in it decides.
  if (kind == admin::Route::kLogin && head.method == "POST") return read_sign_in_form(head);
  if (access_ == Access::kNone) {
    if (kind == admin::Route::kPage && (head.method == "GET" || head.is_head())) return nullptr;  // the sign-in page
    // Refused as soon as the head is known: a body announced without the token is never
    // waited for, so it cannot hold the connection.
    refuse_unauthorized();
    return nullptr;
  }
  // A cookie comes with every request a browser sends, whichever page asked for it: one that
  // changes something must show it comes from the status page itself.
  if (access_ == Access::kSession && head.method != "GET" && head.method != "HEAD") {
    if (const char* why = admin::cross_origin_refusal(head.headers)) {
      respond_error(403, why);
      return nullptr;
    }
    const std::optional<std::string_view> presented = head.headers.get(admin::kCsrfHeader);
    if (head.headers.count(admin::kCsrfHeader) != 1 || !admin::secret_equals(*presented, csrf_)) {
      respond_error(403, "a signed-in browser's request must carry the session's X-Edge-CSRF token");
      return nullptr;
    }
  }
  return nullptr;
}

http::Body* Conn::read_sign_in_form(const http::RequestHead& head) {
  if (const char* why = admin::cross_origin_refusal(head.headers)) {
    respond_error(403, why);
    return nullptr;
  }
  // Read before anyone is known: only a small body of a declared length is waited for.
  if (!head.content_length) {
    respond_error(411, "the sign-in form needs a Content-Length");
    return nullptr;
  }
  if (*head.content_length > admin::kMaxLoginBody) {
    respond_error(413, "the sign-in form is too large");
    return nullptr;
  }
  form_.clear();
  return &form_;
}

void Conn::on_refuse(int status, Close why) {
  if (why != Close::kBadRequest) return respond_error(408, "the request did not arrive in time");
  // A declared body over the limit is found with the head's fields all read: without the
  // token, the answer is 401 all the same, and nothing about the port's limits.
  if (status == 413 && !admin_->authorized(parser().head())) return refuse_unauthorized();
  respond_error(status, parser().error_reason());
}

void Conn::on_request(http::RequestHead& head) {
  keep_alive_ = head.keep_alive && !peer_ended() && !admin_->closing();
  head_request_ = head.is_head();
  http10_ = head.version_minor == 0;
  if (std::optional<Reply> reply = admin_->answer(head, this)) return send(*reply, head_request_, http10_);
  // Answered later by finish(), within the time a response may take.
  set_timer(kSendTimeoutMs);
}

void Conn::on_peer_end(int status) {
  // A client that half-closed after its request still gets the answer, then the close.
  keep_alive_ = false;
  if (status != UV_EOF) close(Close::kHandler);
}

void Conn::on_timer() { close(Close::kHandler); }  // the answer did not come in time

void Conn::finish(const Reply& reply) {
  awaiting_ticket_ = 0;
  if (closed()) return;
  send(reply, head_request_, http10_);
}

void Conn::refuse_unauthorized() {
  keep_alive_ = false;
  Reply reply = json_error(401, "unauthorized");
  reply.extra_headers = "WWW-Authenticate: Bearer\r\n";
  send(reply, parser().head().is_head(), parser().head().version_minor == 0);
}

void Conn::respond_error(int status, std::string_view detail) {
  // The request cannot be trusted, nor what follows it: answer and close.
  keep_alive_ = false;
  Reply reply{status, kJson,
              "{\"error\":" + admin::json_string(http::reason_phrase(status)) +
                  ",\"detail\":" + admin::json_string(detail) + "}\n",
              {}};
  send(reply, false, false);
}

void Conn::send(const Reply& reply, bool head_request, bool http10) {
  if (reply.close_connection) keep_alive_ = false;
  char date[32];
  const size_t date_len = http::format_http_date(static_cast<int64_t>(std::time(nullptr)), date);
  ResponseSpec spec;
  spec.status = reply.status;
  spec.origin = ResponseOrigin::kSynthetic;
  spec.content_type = reply.content_type;
  spec.no_store = true;
  spec.extra_fields = reply.extra_headers;
  spec.has_body = !head_request;
  spec.length = reply.body.size();
  spec.length_without_body = true;
  build_response_head(out_, spec, ClientFraming{http10, keep_alive_}, std::string_view(date, date_len));
  if (!head_request) out_.append(reply.body);

  respond(&out_, nullptr, false, false, keep_alive_);  // may complete at once
}

}  // namespace

// ---- AdminServer ----

struct AdminServer::Impl : Admin {
  using Admin::Admin;
};

AdminServer::AdminServer(uv_loop_t* loop, const GenerationRef& generation, cache::Store& store,
                         std::vector<const cache::Counters*> counters, Tier* tier, const Bounds* bounds,
                         std::vector<const Stats*> worker_stats, Reload reload, Top top,
                         std::vector<const WorkerMetrics*> worker_metrics)
    : impl_(std::make_unique<Impl>(loop, generation, store, std::move(counters), tier, bounds,
                                   std::move(worker_stats), std::move(reload), std::move(top),
                                   std::move(worker_metrics))) {}

AdminServer::~AdminServer() = default;

bool AdminServer::open(std::string& error, int inherited_fd) { return impl_->open(error, inherited_fd); }

int AdminServer::fd() const { return impl_->fd(); }

conf::Address AdminServer::address() const { return impl_->address(); }

void AdminServer::close() { impl_->close(); }

void AdminServer::note_reload(std::string_view cause, const Reloaded& outcome) { impl_->note_reload(cause, outcome); }

}  // namespace edge::proxy
