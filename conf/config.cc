#include "conf/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <sstream>
#include <thread>
#include <tuple>
#include <utility>

namespace edge::conf {

sockaddr_storage Address::to_sockaddr(socklen_t* length) const {
  // The loader accepted only numeric hosts, so inet_pton cannot fail here.
  sockaddr_storage storage{};
  if (ipv6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    ::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr);
    if (length) *length = sizeof(sockaddr_in6);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&storage);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &in4->sin_addr);
    if (length) *length = sizeof(sockaddr_in);
  }
  return storage;
}

std::string Address::text() const {
  std::string out = ipv6 ? "[" + host + "]" : host;
  return out + ":" + std::to_string(port);
}

std::string cidr_text(const Cidr& cidr) {
  char buffer[INET6_ADDRSTRLEN];
  if (!inet_ntop(cidr.v6 ? AF_INET6 : AF_INET, cidr.bytes.data(), buffer, sizeof buffer)) return {};
  return std::string(buffer) + '/' + std::to_string(cidr.bits);
}

std::string Error::text() const {
  return mark.file + ":" + std::to_string(mark.line) + ":" + std::to_string(mark.col) + ": " +
         message;
}

int Config::backend_index(std::string_view name) const {
  for (size_t i = 0; i < backends.size(); ++i) {
    if (backends[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

namespace {

// An error about the file as a whole (it cannot be read, or loading failed outright).
Error error_at_file(const std::string& file, std::string message) {
  Error error;
  error.mark.file = file;
  error.message = std::move(message);
  return error;
}

// The value parsers keep the reason for a refusal so the loader can say what is wrong, while
// the public parse_* functions only answer yes or no.
template <class T>
struct Parsed {
  std::optional<T> value;
  std::string why;
};

template <class T>
Parsed<T> refuse(std::string why) {
  return {std::nullopt, std::move(why)};
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

size_t leading_digits(std::string_view text) {
  size_t n = 0;
  while (n < text.size() && is_digit(text[n])) ++n;
  return n;
}

// Digits only: no sign, no spaces, no base prefix. nullopt on overflow too.
std::optional<uint64_t> parse_unsigned(std::string_view digits) {
  if (digits.empty() || leading_digits(digits) != digits.size()) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return value;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

Parsed<Duration> duration_of(std::string_view text) {
  const char* expected = "expected a number with a unit: ms, s, m, h";
  size_t digits = leading_digits(text);
  if (digits == 0 || digits == text.size()) return refuse<Duration>(expected);
  std::string_view unit = text.substr(digits);
  int64_t factor = 0;
  if (unit == "ms") {
    factor = 1;
  } else if (unit == "s") {
    factor = 1000;
  } else if (unit == "m") {
    factor = 60 * 1000;
  } else if (unit == "h") {
    factor = 60 * 60 * 1000;
  } else {
    return refuse<Duration>(expected);
  }
  auto number = parse_unsigned(text.substr(0, digits));
  constexpr auto max_ms = static_cast<uint64_t>(std::numeric_limits<Duration::rep>::max());
  if (!number || *number > max_ms / static_cast<uint64_t>(factor)) {
    return refuse<Duration>("too large");
  }
  return {Duration(static_cast<Duration::rep>(*number) * factor), {}};
}

Parsed<uint64_t> size_of(std::string_view text) {
  const char* expected = "expected a number of bytes with an optional k, m or g suffix";
  size_t digits = leading_digits(text);
  if (digits == 0) return refuse<uint64_t>(expected);
  uint64_t factor = 1;
  std::string unit = lowered(text.substr(digits));
  if (unit == "k") {
    factor = uint64_t{1} << 10;
  } else if (unit == "m") {
    factor = uint64_t{1} << 20;
  } else if (unit == "g") {
    factor = uint64_t{1} << 30;
  } else if (!unit.empty()) {
    return refuse<uint64_t>(expected);
  }
  auto number = parse_unsigned(text.substr(0, digits));
  if (!number || *number > std::numeric_limits<uint64_t>::max() / factor) {
    return refuse<uint64_t>("too large");
  }
  return {*number * factor, {}};
}

// A port to listen on may also be 0 (the kernel picks one, reported at start), a value apart
// that the message leaves to the documentation; one to connect to may not.
enum class PortZero { kRefused, kAllowed };

Parsed<uint16_t> port_of(std::string_view text, PortZero zero) {
  auto number = parse_unsigned(text);
  if (!number || (*number == 0 && zero == PortZero::kRefused) || *number > 65535) {
    return refuse<uint16_t>("the port must be a number from 1 to 65535");
  }
  return {static_cast<uint16_t>(*number), {}};
}

// Canonical text of a numeric address, so that equal addresses compare equal as strings.
std::optional<std::string> numeric_host(const std::string& host, int family) {
  unsigned char bytes[sizeof(in6_addr)];
  if (inet_pton(family, host.c_str(), bytes) != 1) return std::nullopt;
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(family, bytes, text, sizeof text) == nullptr) return std::nullopt;
  return std::string(text);
}

Parsed<Address> address_of(std::string_view text, PortZero zero = PortZero::kRefused) {
  Address address;
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return refuse<Address>("missing ']'");
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return refuse<Address>("expected ':port' after ']'");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    auto canonical = numeric_host(std::string(host), AF_INET6);
    if (!canonical) return refuse<Address>("'" + std::string(host) + "' is not an IPv6 address");
    address.host = *canonical;
    address.ipv6 = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return refuse<Address>("expected host:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return refuse<Address>("an IPv6 address needs brackets, as in [::1]:8080");
    }
    if (host.empty() || host == "*") {
      address.host = "0.0.0.0";
    } else if (lowered(host) == "localhost") {
      address.host = "127.0.0.1";
    } else if (auto canonical = numeric_host(std::string(host), AF_INET)) {
      address.host = *canonical;
    } else {
      return refuse<Address>("'" + std::string(host) +
                             "' is not a numeric IPv4 address (host names are not resolved; use "
                             "an IP address or localhost)");
    }
  }
  auto port_number = port_of(port, zero);
  if (!port_number.value) return refuse<Address>(port_number.why);
  address.port = *port_number.value;
  return {address, {}};
}

bool is_host_label_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || c == '-' || c == '_';
}

// Lower-case labels separated by single dots; no port, no trailing dot.
bool is_host_name(std::string_view name) {
  if (name.empty() || name.front() == '.' || name.back() == '.') return false;
  char previous = '.';
  for (char c : name) {
    if (c == '.' ? previous == '.' : !is_host_label_char(c)) return false;
    previous = c;
  }
  return true;
}

bool is_host_pattern(std::string_view pattern) {
  if (pattern == "*") return true;
  if (pattern.starts_with("*.")) return is_host_name(pattern.substr(2));
  return is_host_name(pattern);
}

// RFC 9110 tchar: a cookie name is a token (RFC 6265 4.1.1).
bool is_token(std::string_view text) {
  constexpr std::string_view specials = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [&](char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           specials.find(c) != std::string_view::npos;
  });
}

// A duration in its largest exact unit, for messages: 90000ms -> "90s", 3600000ms -> "1h".
std::string duration_text(Duration duration) {
  auto ms = duration.count();
  if (ms != 0 && ms % (60 * 60 * 1000) == 0) return std::to_string(ms / (60 * 60 * 1000)) + "h";
  if (ms != 0 && ms % (60 * 1000) == 0) return std::to_string(ms / (60 * 1000)) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// A size in its largest exact unit, for messages: 268435456 -> "256m".
std::string size_text(uint64_t bytes) {
  for (auto [shift, unit] : {std::pair{30, "g"}, std::pair{20, "m"}, std::pair{10, "k"}}) {
    uint64_t factor = uint64_t{1} << shift;
    if (bytes != 0 && bytes % factor == 0) return std::to_string(bytes / factor) + unit;
  }
  return std::to_string(bytes);
}

const char* describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "empty";
  }
}

// Returns 0 or an errno value; reads at most `limit` bytes plus one, so that a caller can tell
// a file that is too large. Defined below.
int read_whole_file(const std::string& path, std::string& text,
                    size_t limit = std::numeric_limits<size_t>::max());

// Leading and trailing spaces, tabs, CR and LF (and the other ASCII white space) removed.
std::string_view trimmed(std::string_view text) {
  constexpr std::string_view space = " \t\r\n\v\f";
  size_t first = text.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  size_t last = text.find_last_not_of(space);
  return text.substr(first, last - first + 1);
}

// A relative path is relative to the directory of the configuration file that names it.
std::string resolved_path(const std::string& config_file, const std::string& path) {
  std::filesystem::path target(path);
  if (target.is_absolute()) return path;
  std::filesystem::path directory = std::filesystem::path(config_file).parent_path();
  if (directory.empty()) return path;
  return (directory / target).string();
}

// Two listeners conflict when their addresses are equal, or when they share a port and one of
// them is the wildcard address of the other's family.
// Port 0 overlaps nothing: each such listener gets a port of its own.
bool overlaps(const Address& a, const Address& b) {
  if (a.port == 0 || a.port != b.port || a.ipv6 != b.ipv6) return false;
  const char* any = a.ipv6 ? "::" : "0.0.0.0";
  return a.host == b.host || a.host == any || b.host == any;
}

struct Entry {
  YAML::Node key;
  YAML::Node value;
};

// A map's entries by key; std::less<> so that string_view lookups need no copy.
using Entries = std::map<std::string, Entry, std::less<>>;

// The cache keys a host entry or a route may carry (CachePolicy).
constexpr std::string_view kCachePolicyKeys[] = {
    "cache", "ttl", "max_ttl", "grace", "store_set_cookie", "bypass_on_cookie", "key_cookies",
    "key_scheme", "forward_targeted", "esi", "ram", "static", "key", "drop_request_fields",
    "range_fetch_from", "compress"};

// The rule keys a host entry or a route may carry (Rules).
constexpr std::string_view kRuleKeys[] = {"access", "rate_limit", "purge", "maintenance", "redirect",
                                          "request_headers", "response_headers", "error_pages", "upgrade"};

// Where a host set ttl and max_ttl, so that a route's conflicting value can name the line.
struct TtlSource {
  int ttl_line = 0;  // 0: not set on the host
  int max_ttl_line = 0;
  std::optional<Mark> key;  // the host's `key` key, checked against its routes' `static`
};

bool is_wildcard(const Address& address) {
  return address.host == (address.ipv6 ? "::" : "0.0.0.0");
}

bool is_loopback(const Address& address) {
  return address.ipv6 ? address.host == "::1" : address.host.starts_with("127.");
}

class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)) {}

  std::optional<Config> load(const YAML::Node& root) {
    Config config;
    config.file = file_;
    config.admin.address = Address{"127.0.0.1", 9090, false};
    if (root.IsNull()) {
      fail_at({file_, 1, 1}, "the configuration is empty");
      return std::nullopt;
    }
    if (!root.IsMap()) {
      fail(root, std::string("the configuration must be a map, not ") + describe(root));
      return std::nullopt;
    }
    Entries top = entries(root, {"workers", "io", "listen", "admin", "limits", "backends", "hosts",
                                 "cache", "esi", "cluster", "shutdown_timeout", "access_log",
                                 "upgrade_socket", "metrics", "http2", "trusted_proxies", "error_pages"});
    // Backends first, whatever the file order, so that hosts can resolve their names at once.
    read_workers(find(top, "workers"), config);
    read_io(find(top, "io"), config);
    read_duration(find(top, "shutdown_timeout"), "shutdown_timeout", config.shutdown_timeout);
    read_listen(require(top, "listen", root), config);
    if (const Entry* upgrade = find(top, "upgrade_socket")) read_upgrade_socket(*upgrade, config);
    if (const Entry* admin = find(top, "admin")) read_admin(*admin, config);
    // After admin, whose address a peer must not be.
    if (const Entry* cluster = find(top, "cluster")) read_cluster(*cluster, config);
    if (const Entry* limits = find(top, "limits")) read_limits(*limits, config.limits);
    if (const Entry* http2 = find(top, "http2")) read_http2(*http2, config.http2);
    if (const Entry* cache = find(top, "cache")) read_cache(*cache, config.cache);
    // Before the hosts, whose `static: memcached` needs it.
    memcached_ = config.cache.memcached.enabled;
    if (const Entry* esi = find(top, "esi")) read_esi(*esi, config.esi);
    if (const Entry* access_log = find(top, "access_log")) read_access_log(*access_log, config.access_log);
    if (const Entry* metrics = find(top, "metrics")) read_metrics(*metrics, config.metrics);
    if (const Entry* trusted = find(top, "trusted_proxies")) read_cidr_list(*trusted, "trusted_proxies", config.trusted_proxies);
    // Before the hosts, which start from these pages.
    if (const Entry* pages = find(top, "error_pages")) read_error_pages(*pages, config.error_pages);
    read_backends(require(top, "backends", root), config);
    read_hosts(require(top, "hosts", root), config);
    if (!errors_.empty()) return std::nullopt;
    return config;
  }

  void fail_at(Mark mark, std::string message) {
    errors_.push_back({std::move(mark), std::move(message)});
  }

  bool has_errors() const { return !errors_.empty(); }

  std::vector<Error> take_errors() {
    // Checks run in schema order, not file order; the reader wants them top to bottom.
    std::stable_sort(errors_.begin(), errors_.end(), [](const Error& a, const Error& b) {
      return std::pair(a.mark.line, a.mark.col) < std::pair(b.mark.line, b.mark.col);
    });
    return std::move(errors_);
  }

  Mark mark_of(const YAML::Mark& mark) const {
    return {file_, mark.line < 0 ? 0 : mark.line + 1, mark.column < 0 ? 0 : mark.column + 1};
  }

 private:
  Mark mark_of(const YAML::Node& node) const { return mark_of(node.Mark()); }

  // An empty value has no text of its own (yaml-cpp places it at the next token), so its
  // errors point at the key.
  Mark mark_of(const Entry& entry) const {
    return mark_of(entry.value.IsNull() ? entry.key : entry.value);
  }

  void fail(const YAML::Node& at, std::string message) {
    fail_at(mark_of(at), std::move(message));
  }

  void fail(const Entry& at, std::string message) { fail_at(mark_of(at), std::move(message)); }

  // `known`, and the cache keys of a host entry or a route.
  static std::vector<std::string_view> with_cache_keys(
      std::initializer_list<std::string_view> known) {
    std::vector<std::string_view> out(known);
    out.insert(out.end(), std::begin(kCachePolicyKeys), std::end(kCachePolicyKeys));
    out.insert(out.end(), std::begin(kRuleKeys), std::end(kRuleKeys));
    return out;
  }

  Entries entries(const YAML::Node& map, std::initializer_list<std::string_view> known) {
    return entries(map, std::vector<std::string_view>(known));
  }

  Entries entries(const YAML::Node& map, const std::vector<std::string_view>& known) {
    Entries out;
    // The pair is a value: yaml-cpp's iterator hands out a temporary that references into it.
    for (const auto& pair : map) {
      const YAML::Node& key = pair.first;
      if (!key.IsScalar()) {
        fail(key, std::string("a key must be a scalar, not ") + describe(key));
        continue;
      }
      const std::string& name = key.Scalar();
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        fail(key, "unknown key '" + name + "'");
        continue;
      }
      auto [previous, inserted] = out.try_emplace(name, Entry{key, pair.second});
      if (!inserted) {
        fail(key, "duplicate key '" + name + "' (first at line " +
                      std::to_string(mark_of(previous->second.key).line) + ")");
      }
    }
    return out;
  }

  static const Entry* find(const Entries& entries, std::string_view key) {
    auto it = entries.find(key);
    return it == entries.end() ? nullptr : &it->second;
  }

  const Entry* require(const Entries& entries, std::string_view key, const YAML::Node& map) {
    const Entry* entry = find(entries, key);
    if (!entry) fail(map, "missing required key '" + std::string(key) + "'");
    return entry;
  }

  bool expect_map(const Entry& entry, std::string_view what) {
    if (entry.value.IsMap()) return true;
    fail(entry, "'" + std::string(what) + "' must be a map, not " + describe(entry.value));
    return false;
  }

  bool expect_map(const YAML::Node& node, std::string_view what) {
    if (node.IsMap()) return true;
    fail(node, "each " + std::string(what) + " must be a map, not " + describe(node));
    return false;
  }

  // A required list must also be non-empty: an empty one is a mistake, not a choice.
  bool expect_list(const Entry& entry, std::string_view what) {
    if (!entry.value.IsSequence()) {
      fail(entry, "'" + std::string(what) + "' must be a list, not " + describe(entry.value));
      return false;
    }
    if (entry.value.size() == 0) {
      fail(entry, "'" + std::string(what) + "' must not be empty");
      return false;
    }
    return true;
  }

  std::optional<std::string> scalar(const Entry& entry, std::string_view what) {
    if (entry.value.IsScalar() && !entry.value.Scalar().empty()) return entry.value.Scalar();
    fail(entry, "'" + std::string(what) + "' must be a non-empty scalar, not " +
                    (entry.value.IsScalar() ? "an empty string" : describe(entry.value)));
    return std::nullopt;
  }

  // Zero is refused unless `allow_zero`: for most durations it would mean "never wait".
  void read_duration(const Entry* entry, std::string_view what, Duration& out,
                     bool allow_zero = false) {
    if (!entry) return;
    auto text = scalar(*entry, what);
    if (!text) return;
    auto parsed = duration_of(*text);
    if (!parsed.value) {
      fail(*entry, "bad duration '" + *text + "': " + parsed.why);
    } else if (parsed.value->count() == 0 && !allow_zero) {
      fail(*entry, "'" + std::string(what) + "' must be greater than zero");
    } else {
      out = *parsed.value;
    }
  }

  // For durations whose zero means "none": a bare `0` is taken as well as `0s`.
  void read_duration_or_none(const Entry* entry, std::string_view what, Duration& out) {
    if (entry && entry->value.IsScalar() && entry->value.Scalar() == "0") {
      out = Duration(0);
      return;
    }
    read_duration(entry, what, out, true);
  }

  // on, off, true or false, and nothing else.
  void read_switch(const Entry* entry, std::string_view what, bool& out) {
    if (!entry) return;
    auto text = scalar(*entry, what);
    if (!text) return;
    if (*text == "on" || *text == "true") {
      out = true;
    } else if (*text == "off" || *text == "false") {
      out = false;
    } else {
      fail(*entry, "bad " + std::string(what) + " '" + *text +
                       "': expected on, off, true or false");
    }
  }

  void read_size(const Entry* entry, std::string_view what, uint64_t min, uint64_t& out) {
    if (!entry) return;
    auto text = scalar(*entry, what);
    if (!text) return;
    auto parsed = size_of(*text);
    if (!parsed.value) {
      fail(*entry, "bad size '" + *text + "': " + parsed.why);
    } else if (*parsed.value < min) {
      fail(*entry, "'" + std::string(what) + "' must be at least " + std::to_string(min));
    } else {
      out = *parsed.value;
    }
  }

  void read_count(const Entry* entry, std::string_view what, uint64_t min, uint64_t max,
                  uint64_t& out) {
    if (!entry) return;
    auto text = scalar(*entry, what);
    if (!text) return;
    auto number = parse_unsigned(*text);
    if (!number || *number < min || *number > max) {
      fail(*entry, "bad " + std::string(what) + " '" + *text + "': expected an integer from " +
                       std::to_string(min) + " to " + std::to_string(max));
    } else {
      out = *number;
    }
  }

  void read_count(const Entry* entry, std::string_view what, uint32_t min, uint32_t max,
                  uint32_t& out) {
    uint64_t value = out;
    read_count(entry, what, min, max, value);
    out = static_cast<uint32_t>(value);
  }

  std::optional<Address> read_address(const Entry* entry, std::string_view what,
                                      PortZero zero = PortZero::kRefused) {
    if (!entry) return std::nullopt;
    auto text = scalar(*entry, what);
    if (!text) return std::nullopt;
    auto parsed = address_of(*text, zero);
    if (!parsed.value) fail(*entry, "bad address '" + *text + "': " + parsed.why);
    return parsed.value;
  }

  void read_workers(const Entry* entry, Config& config) {
    constexpr uint64_t max_workers = 256;
    uint64_t workers = 0;
    if (entry && entry->value.IsScalar() && entry->value.Scalar() == "auto") {
      entry = nullptr;
    }
    read_count(entry, "workers", 1, max_workers, workers);
    if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
    config.workers = static_cast<int>(workers);
  }

  void read_io(const Entry* entry, Config& config) {
    if (!entry) return;
    auto text = scalar(*entry, "io");
    if (!text) return;
    if (*text == "epoll") {
      config.io = Io::kEpoll;
    } else if (*text == "uring") {
      config.io = Io::kUring;
    } else {
      fail(*entry, "bad io '" + *text + "': expected epoll or uring");
    }
  }

  void read_listen(const Entry* entry, Config& config) {
    if (!entry || !expect_list(*entry, "listen")) return;
    std::map<std::string, int> seen;  // address text -> line
    for (const YAML::Node& item : entry->value) {
      if (!expect_map(item, "listen entry")) continue;
      Entries fields = entries(item, {"address", "tls", "h2c"});
      const Entry* address_entry = require(fields, "address", item);
      ListenTls tls;
      if (const Entry* tls_entry = find(fields, "tls")) read_listen_tls(*tls_entry, tls);
      bool h2c = false;
      if (const Entry* h2c_entry = find(fields, "h2c")) {
        read_switch(h2c_entry, "h2c", h2c);
        if (h2c && tls.enabled) fail(*h2c_entry, "h2c is HTTP/2 in cleartext: a tls listener offers h2 through its alpn");
      }
      auto address = read_address(address_entry, "address", PortZero::kAllowed);
      if (!address) continue;
      Mark mark = mark_of(*address_entry);
      // Two sockets with SO_REUSEPORT on one address would bind silently and split the load.
      auto [first, inserted] = seen.try_emplace(address->text(), mark.line);
      if (!inserted && address->port != 0) {
        fail_at(mark, "duplicate listen address '" + address->text() + "' (first at line " +
                          std::to_string(first->second) + ")");
      }
      config.listen.push_back({*address, std::move(tls), h2c, mark_of(item)});
    }
  }

  void read_listen_tls(const Entry& entry, ListenTls& tls) {
    tls.enabled = true;
    tls.mark = mark_of(entry.key);
    if (!expect_map(entry, "tls")) return;
    Entries fields = entries(entry.value, {"certificates", "min_version", "ciphers", "alpn",
                                           "session_tickets", "ticket_rotation"});
    if (const Entry* certificates = require(fields, "certificates", entry.value)) {
      read_certificates(*certificates, tls);
    }
    if (const Entry* version = find(fields, "min_version")) {
      if (auto text = scalar(*version, "min_version")) {
        if (*text == "1.2") {
          tls.min_version = TlsVersion::k1_2;
        } else if (*text == "1.3") {
          tls.min_version = TlsVersion::k1_3;
        } else if (*text == "1.0" || *text == "1.1") {
          fail(*version, "TLS " + *text + " is not offered: min_version may be 1.2 or 1.3");
        } else {
          fail(*version, "bad min_version '" + *text + "': expected 1.2 or 1.3");
        }
      }
    }
    if (const Entry* ciphers = find(fields, "ciphers")) {
      if (auto text = scalar(*ciphers, "ciphers")) {
        tls.ciphers = *text;
        tls.ciphers_mark = mark_of(*ciphers);
      }
    }
    if (const Entry* alpn = find(fields, "alpn")) read_alpn(*alpn, tls);
    read_switch(find(fields, "session_tickets"), "session_tickets", tls.session_tickets);
    read_duration(find(fields, "ticket_rotation"), "ticket_rotation", tls.ticket_rotation);
  }

  void read_certificates(const Entry& entry, ListenTls& tls) {
    if (!expect_list(entry, "certificates")) return;
    std::map<std::string, int> names_seen;  // SNI name -> line
    int default_line = 0;
    for (const YAML::Node& item : entry.value) {
      if (!expect_map(item, "certificate")) continue;
      TlsCertificate certificate;
      certificate.mark = mark_of(item);
      Entries fields = entries(item, {"cert", "key", "names", "default"});
      bool ok = true;
      for (auto [key, path, mark] : {std::tuple{"cert", &certificate.cert_file, &certificate.cert_mark},
                                     std::tuple{"key", &certificate.key_file, &certificate.key_mark}}) {
        const Entry* file = require(fields, key, item);
        auto text = file ? scalar(*file, key) : std::nullopt;
        if (!text) {
          ok = false;
          continue;
        }
        *path = resolved_path(file_, *text);
        *mark = mark_of(*file);
      }
      if (const Entry* names = find(fields, "names")) {
        if (!names->value.IsSequence() || names->value.size() == 0) {
          fail(*names, "'names' must be a non-empty list of host names");
          ok = false;
        } else {
          for (const YAML::Node& node : names->value) {
            const Entry name_entry{names->key, node};
            auto text = scalar(name_entry, "a certificate name");
            if (!text) {
              ok = false;
              continue;
            }
            std::string name = lowered(*text);
            Mark mark = mark_of(node);
            if (name == "*" || !is_host_pattern(name)) {
              fail_at(mark, "bad certificate name '" + *text + "': expected a host name without port or '*.domain'");
              ok = false;
              continue;
            }
            auto [first, inserted] = names_seen.try_emplace(name, mark.line);
            if (!inserted) {
              fail_at(mark, "certificate name '" + name + "' is already given to another certificate (line " +
                                std::to_string(first->second) + ")");
              ok = false;
              continue;
            }
            certificate.names.push_back(std::move(name));
          }
        }
      }
      if (const Entry* is_default = find(fields, "default")) {
        read_switch(is_default, "default", certificate.is_default);
        if (certificate.is_default && default_line) {
          fail(*is_default, "only one certificate may be the default (the first is at line " +
                                std::to_string(default_line) + ")");
          ok = false;
        }
        if (certificate.is_default) default_line = mark_of(*is_default).line;
      }
      if (ok) tls.certificates.push_back(std::move(certificate));
    }
    // Without a `default: on`, the first certificate is the default.
    if (!default_line && !tls.certificates.empty()) tls.certificates.front().is_default = true;
  }

  void read_alpn(const Entry& entry, ListenTls& tls) {
    if (!expect_list(entry, "alpn")) return;
    std::vector<std::string> protocols;
    for (const YAML::Node& node : entry.value) {
      const Entry item{entry.key, node};
      auto text = scalar(item, "an alpn protocol");
      if (!text) continue;
      if (*text != "http/1.1" && *text != "h2") {
        fail(item, "unknown alpn protocol '" + *text + "': expected h2 or http/1.1");
        continue;
      }
      if (std::find(protocols.begin(), protocols.end(), *text) != protocols.end()) {
        fail(item, "duplicate alpn protocol '" + *text + "'");
        continue;
      }
      protocols.push_back(*text);
    }
    if (!protocols.empty()) tls.alpn = std::move(protocols);
  }

  void read_admin(const Entry& entry, Config& config) {
    Admin& admin = config.admin;
    admin.enabled = true;
    admin.mark = mark_of(entry.key);
    if (!expect_map(entry, "admin")) return;
    Entries fields =
        entries(entry.value, {"address", "token_file", "max_connections", "header_timeout", "session_ttl", "access"});
    if (const Entry* access = find(fields, "access")) read_access(*access, admin.access);
    read_count(find(fields, "max_connections"), "max_connections", 1, 65536, admin.max_connections);
    read_duration(find(fields, "header_timeout"), "header_timeout", admin.header_timeout);
    if (const Entry* ttl = find(fields, "session_ttl")) {
      read_duration(ttl, "session_ttl", admin.session_ttl);
      if (admin.session_ttl > std::chrono::hours(24 * 30)) fail(*ttl, "'session_ttl' must be at most 720h (30 days)");
    }
    const Entry* address_entry = find(fields, "address");
    bool address_ok = true;
    if (address_entry) {
      auto address = read_address(address_entry, "address", PortZero::kAllowed);
      address_ok = address.has_value();
      if (address) admin.address = *address;
    }
    // Without an address key, the default address is at fault: say so at the admin key.
    Mark address_mark = address_entry ? mark_of(*address_entry) : admin.mark;
    for (const Listen& listen : config.listen) {
      if (!address_ok || !overlaps(admin.address, listen.address)) continue;
      fail_at(address_mark, "admin address '" + admin.address.text() +
                                "' conflicts with listen address '" + listen.address.text() +
                                "' (line " + std::to_string(listen.mark.line) + ")");
      break;
    }
    if (const Entry* token_file = require(fields, "token_file", entry.value)) {
      if (auto token = read_token_file(*token_file)) {
        admin.token_file = std::move(token->first);
        admin.token = std::move(token->second);
      }
    }
  }

  // The file's path as resolved, and its content trimmed; nullopt after an error at `entry`.
  std::optional<std::pair<std::string, std::string>> read_token_file(const Entry& entry) {
    // A token is short; the cap keeps a mistaken path (a log, /dev/zero) from being read whole.
    constexpr size_t max_token_bytes = 64 * 1024;
    auto text = scalar(entry, "token_file");
    if (!text) return std::nullopt;
    std::string path = resolved_path(file_, *text);
    std::string content;
    if (int error = read_whole_file(path, content, max_token_bytes); error != 0) {
      fail(entry, "cannot read token file '" + path + "': " + std::strerror(error));
      return std::nullopt;
    }
    if (content.size() > max_token_bytes) {
      fail(entry, "token file '" + path + "' is larger than " + std::to_string(max_token_bytes) +
                      " bytes");
      return std::nullopt;
    }
    std::string_view token = trimmed(content);
    if (token.empty()) {
      fail(entry, "token file '" + path + "' is empty");
      return std::nullopt;
    }
    return std::pair(std::move(path), std::string(token));
  }

  void read_cluster(const Entry& entry, Config& config) {
    Cluster& cluster = config.cluster;
    cluster.mark = mark_of(entry.key);
    if (!expect_map(entry, "cluster")) return;
    Entries fields = entries(entry.value, {"peers", "timeout"});
    if (const Entry* peers = require(fields, "peers", entry.value)) read_peers(*peers, config);
    read_duration(find(fields, "timeout"), "timeout", cluster.timeout);
  }

  // This node's admin port, named as a peer: the same address, or loopback on the port of an
  // admin bound to the wildcard address.
  static bool is_own_admin(const Address& peer, const Admin& admin) {
    if (!admin.enabled || peer.port != admin.address.port) return false;
    if (peer.ipv6 == admin.address.ipv6 && peer.host == admin.address.host) return true;
    return is_wildcard(admin.address) && peer.ipv6 == admin.address.ipv6 && is_loopback(peer);
  }

  void read_peers(const Entry& entry, Config& config) {
    if (!expect_list(entry, "peers")) return;
    std::map<std::string, int> seen;  // address text -> line
    for (const YAML::Node& item : entry.value) {
      if (!expect_map(item, "peer")) continue;
      Peer peer;
      peer.mark = mark_of(item);
      Entries fields = entries(item, {"address", "token_file"});
      const Entry* address_entry = require(fields, "address", item);
      auto address = read_address(address_entry, "address");
      bool ok = address.has_value();
      if (address) {
        Mark mark = mark_of(*address_entry);
        std::string text = address->text();
        if (is_wildcard(*address)) {
          fail_at(mark, "bad peer address '" + text + "': a peer needs its own address, not a "
                        "wildcard");
          ok = false;
        } else if (is_own_admin(*address, config.admin)) {
          fail_at(mark, "peer address '" + text + "' is this node's own admin address (admin " +
                            "at line " + std::to_string(config.admin.mark.line) + ")");
          ok = false;
        } else if (auto [first, inserted] = seen.try_emplace(text, mark.line); !inserted) {
          fail_at(mark, "duplicate peer address '" + text + "' (first at line " +
                            std::to_string(first->second) + ")");
          ok = false;
        }
        peer.address = *address;
      }
      if (const Entry* token_file = require(fields, "token_file", item)) {
        auto token = read_token_file(*token_file);
        if (token) {
          peer.token = std::move(token->second);
        } else {
          ok = false;
        }
      }
      if (ok) config.cluster.peers.push_back(std::move(peer));
    }
  }

  void read_limits(const Entry& entry, Limits& limits) {
    if (!expect_map(entry, "limits")) return;
    Entries fields = entries(entry.value, {"header_timeout", "idle_timeout", "body_timeout",
                                           "send_timeout", "max_header_bytes", "max_request_line",
                                           "max_body_bytes", "max_connections", "buffer_memory",
                                           "temp_dir", "max_header_fields", "min_upload_rate",
                                           "upload_rate_grace", "max_temp_file_size",
                                           "max_temp_total", "max_conns_per_client", "rate_limit_clients",
                                           "tunnel_idle_timeout"});
    read_duration(find(fields, "tunnel_idle_timeout"), "tunnel_idle_timeout", limits.tunnel_idle_timeout);
    read_count(find(fields, "max_conns_per_client"), "max_conns_per_client", 0, 1000000, limits.max_conns_per_client);
    read_count(find(fields, "rate_limit_clients"), "rate_limit_clients", 1024, 100000000, limits.rate_limit_clients);
    read_duration(find(fields, "header_timeout"), "header_timeout", limits.header_timeout);
    read_duration(find(fields, "idle_timeout"), "idle_timeout", limits.idle_timeout);
    read_duration(find(fields, "body_timeout"), "body_timeout", limits.body_timeout);
    read_duration(find(fields, "send_timeout"), "send_timeout", limits.send_timeout);
    read_size(find(fields, "max_header_bytes"), "max_header_bytes", 1, limits.max_header_bytes);
    read_size(find(fields, "max_request_line"), "max_request_line", 1, limits.max_request_line);
    // Zero is meaningful here: a site that accepts no request bodies at all.
    read_size(find(fields, "max_body_bytes"), "max_body_bytes", 0, limits.max_body_bytes);
    read_count(find(fields, "max_connections"), "max_connections", 1,
               std::numeric_limits<uint32_t>::max(), limits.max_connections);
    read_size(find(fields, "buffer_memory"), "buffer_memory", 1, limits.buffer_memory);
    read_count(find(fields, "max_header_fields"), "max_header_fields", 1, 100000, limits.max_header_fields);
    // Zero is meaningful for these three: no minimum rate, no spooling to disk.
    read_size(find(fields, "min_upload_rate"), "min_upload_rate", 0, limits.min_upload_rate);
    read_duration(find(fields, "upload_rate_grace"), "upload_rate_grace", limits.upload_rate_grace);
    read_size(find(fields, "max_temp_file_size"), "max_temp_file_size", 0, limits.max_temp_file_size);
    read_size(find(fields, "max_temp_total"), "max_temp_total", 0, limits.max_temp_total);
    if (const Entry* temp_dir = find(fields, "temp_dir")) {
      if (auto text = scalar(*temp_dir, "temp_dir")) limits.temp_dir = *text;
    }
  }

  void read_http2(const Entry& entry, Http2& http2) {
    if (!expect_map(entry, "http2")) return;
    Entries fields = entries(entry.value, {"max_concurrent_streams", "max_header_list_size", "max_frame_size",
                                           "initial_window_size", "connection_window_size", "idle_timeout",
                                           "header_timeout"});
    read_count(find(fields, "max_concurrent_streams"), "max_concurrent_streams", 1, 10000, http2.max_concurrent_streams);
    read_bounded_size(find(fields, "max_header_list_size"), "max_header_list_size", 1024, 1024 * 1024,
                      http2.max_header_list_size);
    // RFC 9113 6.5.2's bounds.
    read_bounded_size(find(fields, "max_frame_size"), "max_frame_size", 16 * 1024, (1u << 24) - 1, http2.max_frame_size);
    read_bounded_size(find(fields, "initial_window_size"), "initial_window_size", 1, (1ull << 31) - 1,
                      http2.initial_window_size);
    read_bounded_size(find(fields, "connection_window_size"), "connection_window_size", 65535, (1ull << 31) - 1,
                      http2.connection_window_size);
    read_duration(find(fields, "idle_timeout"), "idle_timeout", http2.idle_timeout);
    read_duration(find(fields, "header_timeout"), "header_timeout", http2.header_timeout);
  }

  void read_bounded_size(const Entry* entry, std::string_view what, uint64_t min, uint64_t max, uint64_t& out) {
    if (!entry) return;
    uint64_t value = out;
    read_size(entry, what, min, value);
    if (value > max) {
      fail(*entry, std::string(what) + " must be at most " + std::to_string(max) + " bytes");
      return;
    }
    out = value;
  }

  void read_cache(const Entry& entry, Cache& cache) {
    cache.mark = mark_of(entry.key);
    if (!expect_map(entry, "cache")) return;
    Entries fields = entries(entry.value, {"memory", "max_object", "coalesce_timeout",
                                           "hit_for_pass", "heuristic_max", "x_cache", "x_trace",
                                           "memcached", "max_variants", "targeted_field",
                                           "route_pass_after"});
    const Entry* memory = find(fields, "memory");
    const Entry* max_object = find(fields, "max_object");
    size_t errors_before = errors_.size();
    read_size(memory, "memory", 1, cache.memory);
    read_size(max_object, "max_object", 1, cache.max_object);
    // The default max_object is at fault when the key is absent: say so at memory.
    if (errors_.size() == errors_before && cache.max_object > cache.memory) {
      fail(max_object ? *max_object : *memory,
           "'max_object' (" + size_text(cache.max_object) + ") must not be larger than 'memory' (" +
               size_text(cache.memory) + ")");
    }
    read_duration(find(fields, "coalesce_timeout"), "coalesce_timeout", cache.coalesce_timeout);
    // Zero is meaningful here: a key whose response was not storable is never marked.
    read_duration_or_none(find(fields, "hit_for_pass"), "hit_for_pass", cache.hit_for_pass);
    // Zero is meaningful here too: routes never stop coalescing.
    read_count(find(fields, "route_pass_after"), "route_pass_after", 0, 1000, cache.route_pass_after);
    read_duration(find(fields, "heuristic_max"), "heuristic_max", cache.heuristic_max);
    read_switch(find(fields, "x_cache"), "x_cache", cache.x_cache);
    read_switch(find(fields, "x_trace"), "x_trace", cache.x_trace);
    read_count(find(fields, "max_variants"), "max_variants", 1, 10000, cache.max_variants);
    if (const Entry* targeted = find(fields, "targeted_field")) {
      if (auto name = scalar(*targeted, "targeted_field")) {
        static constexpr std::string_view kTaken[] = {
            "cache-control", "cdn-cache-control", "surrogate-control", "expires", "pragma", "age",
            "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
            "upgrade", "content-length"};
        std::string lower = *name;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!is_token(*name)) {
          fail(*targeted, "bad targeted_field '" + *name + "': expected a field name (letters, digits and !#$%&'*+-.^_`|~)");
        } else if (std::find(std::begin(kTaken), std::end(kTaken), lower) != std::end(kTaken)) {
          fail(*targeted, "bad targeted_field '" + *name + "': that field already means something else");
        } else {
          cache.targeted_field = *name;
        }
      }
    }
    if (const Entry* memcached = find(fields, "memcached")) {
      read_memcached(*memcached, cache.memcached);
    }
  }

  void read_memcached(const Entry& entry, Memcached& memcached) {
    // Enabled even when its body is wrong, so that static routes do not add a second error.
    memcached.enabled = true;
    memcached.mark = mark_of(entry.key);
    if (!expect_map(entry, "memcached")) return;
    Entries fields = entries(entry.value, {"servers", "timeout", "threads", "retry", "max_item"});
    if (const Entry* servers = require(fields, "servers", entry.value)) {
      read_memcached_servers(*servers, memcached);
    }
    read_duration(find(fields, "timeout"), "timeout", memcached.timeout);
    read_count(find(fields, "threads"), "threads", 1, 64, memcached.threads);
    read_duration(find(fields, "retry"), "retry", memcached.retry);
    read_size(find(fields, "max_item"), "max_item", 1, memcached.max_item);
  }

  void read_memcached_servers(const Entry& entry, Memcached& memcached) {
    if (!expect_list(entry, "servers")) return;
    std::map<std::string, int> seen;  // address text -> line
    for (const YAML::Node& item : entry.value) {
      Entry as_entry{entry.key, item};
      auto address = read_address(&as_entry, "server");
      if (!address) continue;
      Mark mark = mark_of(as_entry);
      auto [first, inserted] = seen.try_emplace(address->text(), mark.line);
      if (!inserted) {
        fail_at(mark, "duplicate memcached server '" + address->text() + "' (first at line " +
                          std::to_string(first->second) + ")");
        continue;
      }
      memcached.servers.push_back(*address);
    }
  }

  void read_esi(const Entry& entry, Esi& esi) {
    esi.mark = mark_of(entry.key);
    if (!expect_map(entry, "esi")) return;
    Entries fields = entries(entry.value, {"max_depth", "include_timeout", "allow_hosts",
                                           "on_error", "max_includes"});
    read_count(find(fields, "max_depth"), "max_depth", 1, 20, esi.max_depth);
    read_duration(find(fields, "include_timeout"), "include_timeout", esi.include_timeout);
    read_allow_hosts(find(fields, "allow_hosts"), esi.allow_hosts);
    if (const Entry* on_error = find(fields, "on_error")) {
      if (auto text = scalar(*on_error, "on_error")) {
        if (*text == "continue") {
          esi.on_error = EsiOnError::kContinue;
        } else if (*text == "fail") {
          esi.on_error = EsiOnError::kFail;
        } else {
          fail(*on_error, "bad on_error '" + *text + "': expected continue or fail");
        }
      }
    }
    read_count(find(fields, "max_includes"), "max_includes", 1, 10000, esi.max_includes);
  }

  void read_upgrade_socket(const Entry& entry, Config& config) {
    config.upgrade_socket_mark = mark_of(entry.value);
    auto text = scalar(entry, "upgrade_socket");
    if (!text) return;
    std::string path = resolved_path(file_, *text);
    // sun_path's room, less what a takeover adds for the socket it binds beside this one
    // (".<pid>", proxy/handoff.h).
    constexpr size_t kMaxPath = sizeof(sockaddr_un{}.sun_path) - 1 - 12;
    if (path.size() > kMaxPath) {
      fail(entry, "upgrade_socket '" + path + "' is too long for a Unix socket (" + std::to_string(path.size()) +
                      " bytes, at most " + std::to_string(kMaxPath) + ")");
      return;
    }
    config.upgrade_socket = std::move(path);
  }

  void read_access_log(const Entry& entry, AccessLog& log) {
    log.enabled = true;
    log.mark = mark_of(entry.key);
    if (!expect_map(entry, "access_log")) return;
    Entries fields = entries(entry.value, {"path", "format", "buffer"});
    if (const Entry* path = require(fields, "path", entry.value)) {
      if (auto text = scalar(*path, "path")) {
        if (*text == "stdout") {
          log.to_stdout = true;
          log.path = "stdout";
        } else {
          log.path = resolved_path(file_, *text);
        }
      }
    }
    if (const Entry* format = find(fields, "format")) {
      if (auto text = scalar(*format, "format")) {
        if (*text == "combined") {
          log.format = AccessLogFormat::kCombined;
        } else if (*text == "json") {
          log.format = AccessLogFormat::kJson;
        } else {
          fail(*format, "bad format '" + *text + "': expected combined or json");
        }
      }
    }
    read_size(find(fields, "buffer"), "buffer", 4096, log.buffer);
  }

  void read_metrics(const Entry& entry, Metrics& metrics) {
    metrics.mark = mark_of(entry.key);
    if (!expect_map(entry, "metrics")) return;
    Entries fields = entries(entry.value, {"histograms", "top"});
    read_switch(find(fields, "histograms"), "histograms", metrics.histograms);
    read_switch(find(fields, "top"), "top", metrics.top);
  }

  // A host name or a list of them, lower-cased; a `*.domain` wildcard keeps its `*.`; `*` is
  // refused; `[]` is allowed.
  void read_allow_hosts(const Entry* entry, std::vector<std::string>& out) {
    if (!entry) return;
    std::vector<std::string> names;
    std::map<std::string, int> seen;  // lower-cased name -> line
    bool ok = true;
    auto add = [&](const Entry& item) {
      if (!item.value.IsScalar()) {
        fail(item, std::string("an allowed host must be a scalar, not ") + describe(item.value));
        ok = false;
        return;
      }
      const std::string& text = item.value.Scalar();
      std::string name = lowered(text);
      Mark mark = mark_of(item);
      if (name == "*") {
        fail_at(mark, "'*' is not allowed in allow_hosts: name the hosts, or use '*.domain'");
        ok = false;
        return;
      }
      if (!is_host_pattern(name)) {
        fail_at(mark, "bad allowed host '" + text +
                          "': expected a host name without port or '*.domain'");
        ok = false;
        return;
      }
      auto [first, inserted] = seen.try_emplace(name, mark.line);
      if (!inserted) {
        fail_at(mark, "duplicate allowed host '" + name + "' (first at line " +
                          std::to_string(first->second) + ")");
        ok = false;
        return;
      }
      names.push_back(std::move(name));
    };
    if (entry->value.IsScalar()) {
      add(*entry);
    } else if (entry->value.IsSequence()) {
      for (const YAML::Node& item : entry->value) add({entry->key, item});
    } else {
      fail(*entry, std::string("'allow_hosts' must be a host name or a list of them, not ") +
                       describe(entry->value));
      ok = false;
    }
    if (ok) out = std::move(names);
  }

  // The cache keys of a host entry or a route, over `policy` (the defaults, or the host's).
  // `host` is where the host set ttl and max_ttl, for a route; null for a host.
  void read_cache_policy(const Entries& fields, CachePolicy& policy, const TtlSource* host,
                         TtlSource* source) {
    read_switch(find(fields, "cache"), "cache", policy.enabled);
    const Entry* ttl = find(fields, "ttl");
    const Entry* max_ttl = find(fields, "max_ttl");
    size_t errors_before = errors_.size();
    read_duration_or_none(ttl, "ttl", policy.ttl);
    read_duration_or_none(max_ttl, "max_ttl", policy.max_ttl);
    if (errors_.size() == errors_before && (ttl || max_ttl) && policy.ttl.count() != 0 &&
        policy.max_ttl.count() != 0 && policy.max_ttl < policy.ttl) {
      // At the key this entry sets; a value it inherits names the host's line.
      auto inherited = [](int line) {
        return line > 0 ? ", from the host at line " + std::to_string(line) : std::string();
      };
      std::string message = "'max_ttl' (" + duration_text(policy.max_ttl) +
                            (max_ttl || !host ? "" : inherited(host->max_ttl_line)) +
                            ") must not be less than 'ttl' (" + duration_text(policy.ttl) +
                            (ttl || !host ? "" : inherited(host->ttl_line)) + ")";
      fail(max_ttl ? *max_ttl : *ttl, std::move(message));
    }
    if (source) {
      if (ttl) source->ttl_line = mark_of(*ttl).line;
      if (max_ttl) source->max_ttl_line = mark_of(*max_ttl).line;
    }
    read_duration_or_none(find(fields, "grace"), "grace", policy.grace);
    read_switch(find(fields, "store_set_cookie"), "store_set_cookie", policy.store_set_cookie);
    read_cookie_names(find(fields, "bypass_on_cookie"), "bypass_on_cookie",
                      policy.bypass_on_cookie);
    read_cookie_names(find(fields, "key_cookies"), "key_cookies", policy.key_cookies);
    read_switch(find(fields, "key_scheme"), "key_scheme", policy.key_scheme);
    read_switch(find(fields, "forward_targeted"), "forward_targeted", policy.forward_targeted);
    read_token_list(find(fields, "drop_request_fields"), "drop_request_fields", "field name",
                    policy.drop_request_fields);
    read_switch(find(fields, "esi"), "esi", policy.esi);
    read_switch(find(fields, "ram"), "ram", policy.ram);
    if (const Entry* from = find(fields, "range_fetch_from")) {
      if (auto text = scalar(*from, "range_fetch_from")) {
        if (*text == "off") {
          policy.range_fetch_from = UINT64_MAX;
        } else {
          read_size(from, "range_fetch_from", 0, policy.range_fetch_from);
        }
      }
    }
    read_compress(find(fields, "compress"), policy.compress);
    if (const Entry* source_entry = find(fields, "static")) {
      if (auto text = scalar(*source_entry, "static")) {
        if (*text != "memcached") {
          fail(*source_entry, "bad static '" + *text + "': expected memcached");
        } else if (!memcached_) {
          fail(source_entry->key, "static: memcached needs cache.memcached");
        }
        // Set after an error too (nothing is returned then), so that a `key` next to it does
        // not add a second error.
        policy.static_source = StaticSource::kMemcached;
      }
    }
    if (const Entry* key = find(fields, "key")) {
      read_static_key(*key, policy.static_key);
      if (source) source->key = mark_of(key->key);
    }
  }

  // `compress: on|off` or a map of the rules' keys (a map turns it on); keys not given keep the
  // host's value (or the default).
  void read_compress(const Entry* entry, compress::Rules& rules) {
    if (!entry) return;
    if (!entry->value.IsMap()) return read_switch(entry, "compress", rules.enabled);
    rules.enabled = true;
    const Entries fields =
        entries(entry->value, {"types", "min_length", "encodings", "level", "stream_level"});
    if (const Entry* types = find(fields, "types"); types && expect_list(*types, "types")) {
      std::vector<std::string> listed;
      std::map<std::string, int> seen;  // type -> line
      for (const YAML::Node& item : types->value) {
        const Entry at{types->key, item};
        std::string type = item.IsScalar() ? lowered(item.Scalar()) : std::string();
        const size_t slash = type.find('/');
        const bool valid = slash != std::string::npos && is_token(type.substr(0, slash)) && type[0] != '*' &&
                           (type.substr(slash + 1) == "*" || is_token(type.substr(slash + 1)));
        if (!valid) {
          fail(at, "bad media type '" + (item.IsScalar() ? item.Scalar() : describe(item)) +
                       "': expected type/subtype or type/*");
          continue;
        }
        auto [first, inserted] = seen.try_emplace(type, mark_of(at).line);
        if (!inserted) {
          fail(at, "duplicate media type '" + type + "' (first at line " + std::to_string(first->second) + ")");
          continue;
        }
        listed.push_back(std::move(type));
      }
      rules.types = std::move(listed);
    }
    read_size(find(fields, "min_length"), "min_length", 0, rules.min_length);
    if (const Entry* encodings = find(fields, "encodings"); encodings && expect_list(*encodings, "encodings")) {
      std::vector<compress::Coding> codings;
      for (const YAML::Node& item : encodings->value) {
        const Entry at{encodings->key, item};
        std::optional<compress::Coding> coding;
        if (item.IsScalar() && item.Scalar() != "identity" && item.Scalar() != "x-gzip")
          coding = compress::parse_coding(item.Scalar());
        if (!coding || !item.IsScalar() || lowered(item.Scalar()) != item.Scalar()) {
          fail(at, "bad encoding '" + (item.IsScalar() ? item.Scalar() : describe(item)) +
                       "': expected br, zstd or gzip");
        } else if (std::find(codings.begin(), codings.end(), *coding) != codings.end()) {
          fail(at, "duplicate encoding '" + item.Scalar() + "'");
        } else {
          codings.push_back(*coding);
        }
      }
      rules.codings = std::move(codings);
    }
    read_levels(find(fields, "level"), "level", rules.level);
    read_levels(find(fields, "stream_level"), "stream_level", rules.stream_level);
  }

  // {br: N, zstd: N, gzip: N}, each within its library's range.
  void read_levels(const Entry* entry, std::string_view what, int (&levels)[compress::kCodings]) {
    if (!entry || !expect_map(*entry, what)) return;
    const Entries fields = entries(entry->value, {"br", "zstd", "gzip"});
    for (const auto& [name, field] : fields) {
      const auto index = static_cast<size_t>(*compress::parse_coding(name));
      uint64_t level = static_cast<uint64_t>(levels[index]);
      read_count(&field, std::string(what) + " " + name, static_cast<uint64_t>(compress::kMinLevel[index]),
                 static_cast<uint64_t>(compress::kMaxLevel[index]), level);
      levels[index] = static_cast<int>(level);
    }
  }

  // Text kept as it is and the placeholders {host}, {path}, {query}; memcached keys take no
  // spaces or control characters.
  void read_static_key(const Entry& entry, std::string& out) {
    auto text = scalar(entry, "key");
    if (!text) return;
    auto bad = [&](size_t at, const std::string& why) {
      fail(entry, "bad key '" + *text + "': " + why + " at character " + std::to_string(at + 1));
    };
    for (size_t i = 0; i < text->size(); ++i) {
      char c = (*text)[i];
      if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
        bad(i, "a space or control character");
        return;
      }
      if (c == '}') {
        bad(i, "'}' without '{'");
        return;
      }
      if (c != '{') continue;
      size_t close = text->find('}', i + 1);
      if (close == std::string::npos) {
        bad(i, "'{' without '}'");
        return;
      }
      std::string name = text->substr(i + 1, close - i - 1);
      if (name != "host" && name != "path" && name != "query") {
        bad(i, "unknown placeholder '{" + name + "}' (expected {host}, {path} or {query})");
        return;
      }
      i = close;
    }
    out = *text;
  }

  // A name or a list of names; an empty list is allowed (a route clears its host's list).
  void read_cookie_names(const Entry* entry, std::string_view what,
                         std::vector<std::string>& out) {
    read_token_list(entry, what, "cookie name", out);
  }

  // A token or a list of tokens, each given once (compared case-insensitively for field names).
  void read_token_list(const Entry* entry, std::string_view what, std::string_view noun,
                       std::vector<std::string>& out) {
    if (!entry) return;
    std::vector<std::string> names;
    std::map<std::string, int> seen;  // name -> line
    bool ok = true;
    auto add = [&](const Entry& item) {
      if (!item.value.IsScalar()) {
        fail(item, "a " + std::string(noun) + " must be a scalar, not " + describe(item.value));
        ok = false;
        return;
      }
      const std::string& name = item.value.Scalar();
      Mark mark = mark_of(item);
      if (!is_token(name)) {
        fail_at(mark, "bad " + std::string(noun) + " '" + name +
                          "': expected a token (letters, digits and !#$%&'*+-.^_`|~)");
        ok = false;
        return;
      }
      std::string seen_as = name;
      if (noun != "cookie name")  // field names are case-insensitive, cookie names are not
        for (char& c : seen_as) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto [first, inserted] = seen.try_emplace(seen_as, mark.line);
      if (!inserted) {
        fail_at(mark, "duplicate " + std::string(noun) + " '" + name + "' (first at line " +
                          std::to_string(first->second) + ")");
        ok = false;
        return;
      }
      names.push_back(name);
    };
    if (entry->value.IsScalar()) {
      add(*entry);
    } else if (entry->value.IsSequence()) {
      for (const YAML::Node& item : entry->value) add({entry->key, item});
    } else {
      fail(*entry, "'" + std::string(what) + "' must be a " + std::string(noun) +
                       " or a list of them, not " + describe(entry->value));
      ok = false;
    }
    if (ok) out = std::move(names);
  }

  void read_backends(const Entry* entry, Config& config) {
    if (!entry || !expect_map(*entry, "backends")) return;
    if (entry->value.size() == 0) {
      fail(*entry, "'backends' must not be empty");
      return;
    }
    for (const auto& pair : entry->value) {
      const YAML::Node& key = pair.first;
      if (!key.IsScalar() || key.Scalar().empty()) {
        fail(key, "a backend name must be a non-empty scalar");
        continue;
      }
      const std::string& name = key.Scalar();
      int existing = config.backend_index(name);
      if (existing >= 0) {
        fail(key, "duplicate backend '" + name + "' (first at line " +
                      std::to_string(config.backends[existing].mark.line) + ")");
        continue;
      }
      // Kept even when its body is wrong, so that hosts naming it do not add a second error.
      Backend& backend = config.backends.emplace_back();
      backend.name = name;
      backend.mark = mark_of(key);
      read_backend({key, pair.second}, backend);
    }
  }

  void read_backend(const Entry& entry, Backend& backend) {
    if (!expect_map(entry, "backend " + backend.name)) return;
    Entries fields = entries(entry.value, {"servers", "balance", "queue", "health", "eject",
                                           "slow_start", "connect_timeout", "response_timeout",
                                           "pool", "tls"});
    if (const Entry* servers = require(fields, "servers", entry.value)) {
      read_servers(*servers, backend);
    }
    if (const Entry* balance = find(fields, "balance")) read_balance(*balance, backend.balance);
    if (const Entry* queue = find(fields, "queue")) read_queue(*queue, backend.queue);
    if (const Entry* health = find(fields, "health")) read_health(*health, backend.health);
    if (const Entry* eject = find(fields, "eject")) read_eject(*eject, backend.eject);
    // Zero is meaningful here: a server that comes back takes its full share at once.
    read_duration(find(fields, "slow_start"), "slow_start", backend.slow_start, true);
    read_duration(find(fields, "connect_timeout"), "connect_timeout", backend.connect_timeout);
    read_duration(find(fields, "response_timeout"), "response_timeout",
                  backend.response_timeout);
    if (const Entry* pool = find(fields, "pool")) read_pool(*pool, backend.pool);
    if (const Entry* tls = find(fields, "tls")) read_backend_tls(*tls, backend.tls);
  }

  void read_backend_tls(const Entry& entry, BackendTls& tls) {
    tls.enabled = true;
    tls.mark = mark_of(entry.key);
    if (!expect_map(entry, "tls")) return;
    Entries fields = entries(entry.value, {"verify", "ca_file", "server_name"});
    read_switch(find(fields, "verify"), "verify", tls.verify);
    if (const Entry* ca = find(fields, "ca_file")) {
      if (auto text = scalar(*ca, "ca_file")) {
        tls.ca_file = resolved_path(file_, *text);
        tls.ca_mark = mark_of(*ca);
      }
    }
    if (const Entry* name = find(fields, "server_name")) {
      if (auto text = scalar(*name, "server_name")) {
        std::string lowered_name = lowered(*text);
        if (!is_host_pattern(lowered_name) || lowered_name.find('*') != std::string::npos) {
          fail(*name, "bad server_name '" + *text + "': expected a host name without port");
        } else {
          tls.server_name = std::move(lowered_name);
        }
      }
    }
  }

  void read_servers(const Entry& entry, Backend& backend) {
    if (!expect_list(entry, "servers")) return;
    constexpr uint32_t max_weight = 256;
    constexpr uint32_t max_conns = 1000000;
    for (const YAML::Node& item : entry.value) {
      std::optional<Address> address;
      Server server;
      if (item.IsMap()) {
        Entries fields = entries(item, {"address", "weight", "max_conns"});
        address = read_address(require(fields, "address", item), "address");
        read_count(find(fields, "weight"), "weight", 1, max_weight, server.weight);
        read_count(find(fields, "max_conns"), "max_conns", 0, max_conns, server.max_conns);
      } else if (item.IsScalar()) {
        Entry as_entry{entry.key, item};
        address = read_address(&as_entry, "server");
      } else {
        fail(item, std::string("a server must be an address or a map, not ") + describe(item));
      }
      if (!address) continue;
      server.address = *address;
      server.mark = mark_of(item);
      backend.servers.push_back(std::move(server));
    }
  }

  void read_balance(const Entry& entry, Balance& balance) {
    auto text = scalar(entry, "balance");
    if (!text) return;
    if (*text == "least_conn") {
      balance = Balance::kLeastConn;
    } else if (*text == "round_robin") {
      balance = Balance::kRoundRobin;
    } else {
      fail(entry, "bad balance '" + *text + "': expected least_conn or round_robin");
    }
  }

  void read_queue(const Entry& entry, Queue& queue) {
    if (!expect_map(entry, "queue")) return;
    Entries fields = entries(entry.value, {"max", "timeout"});
    read_count(find(fields, "max"), "max", 0, 1000000, queue.max);
    read_duration(find(fields, "timeout"), "timeout", queue.timeout);
  }

  void read_health(const Entry& entry, Health& health) {
    constexpr uint32_t max_streak = 100;
    health.enabled = true;
    if (!expect_map(entry, "health")) return;
    Entries fields = entries(entry.value, {"path", "interval", "timeout", "rise", "fall"});
    if (const Entry* path = find(fields, "path")) {
      if (auto text = scalar(*path, "path")) {
        // It goes into a request line as it is.
        bool clean = std::none_of(text->begin(), text->end(), [](char c) {
          return static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
        });
        if (text->front() != '/') {
          fail(*path, "bad health path '" + *text + "': it must start with '/'");
        } else if (!clean) {
          fail(*path, "bad health path '" + *text +
                          "': it must not contain spaces or control characters");
        } else {
          health.path = *text;
        }
      }
    }
    read_duration(find(fields, "interval"), "interval", health.interval);
    read_duration(find(fields, "timeout"), "timeout", health.timeout);
    read_count(find(fields, "rise"), "rise", 1, max_streak, health.rise);
    read_count(find(fields, "fall"), "fall", 1, max_streak, health.fall);
  }

  void read_eject(const Entry& entry, Eject& eject) {
    if (!expect_map(entry, "eject")) return;
    Entries fields = entries(entry.value, {"failures", "cooldown"});
    read_count(find(fields, "failures"), "failures", 0, 1000, eject.failures);
    read_duration(find(fields, "cooldown"), "cooldown", eject.cooldown);
  }

  void read_pool(const Entry& entry, Pool& pool) {
    if (!expect_map(entry, "pool")) return;
    Entries fields = entries(entry.value, {"max_idle", "idle_timeout"});
    read_count(find(fields, "max_idle"), "max_idle", 0, 1u << 20, pool.max_idle);
    read_duration(find(fields, "idle_timeout"), "idle_timeout", pool.idle_timeout);
  }

  void read_hosts(const Entry* entry, Config& config) {
    if (!entry || !expect_list(*entry, "hosts")) return;
    for (const YAML::Node& item : entry->value) {
      if (!expect_map(item, "host")) continue;
      Host& host = config.hosts.emplace_back();
      host.mark = mark_of(item);
      Entries fields = entries(item, with_cache_keys({"match", "backend", "routes", "redirect_https"}));
      host.rules.error_pages = config.error_pages;
      if (const Entry* redirect = find(fields, "redirect_https")) {
        read_switch(redirect, "redirect_https", host.redirect_https);
        const bool any_tls = std::any_of(config.listen.begin(), config.listen.end(),
                                         [](const Listen& listen) { return listen.tls.enabled; });
        // Without an HTTPS listener here, every request would be redirected again and again.
        if (host.redirect_https && !any_tls) fail(*redirect, "'redirect_https' needs a listen entry with 'tls'");
      }
      if (const Entry* match = require(fields, "match", item)) read_match(*match, host);
      const std::string zone = host.match.empty() ? std::string() : host.match.front();
      read_rules(fields, host.rules, zone);
      // A host that redirects every request needs no backend of its own.
      if (host.rules.redirect.enabled && !find(fields, "backend") && !config.backends.empty()) {
        host.backend = 0;
      } else if (const Entry* backend = require(fields, "backend", item)) {
        host.backend = read_backend_name(*backend, config);
      }
      // Before the routes, which start from the host's policy.
      TtlSource source;
      read_cache_policy(fields, host.cache, nullptr, &source);
      if (const Entry* routes = find(fields, "routes")) {
        read_routes(*routes, config, host, source);
      }
      bool any_static = host.cache.static_source != StaticSource::kNone ||
                        std::any_of(host.routes.begin(), host.routes.end(), [](const Route& r) {
                          return r.cache.static_source != StaticSource::kNone;
                        });
      if (source.key && !any_static) {
        fail_at(*source.key, "'key' needs 'static: memcached' on this host or one of its routes");
      }
    }
  }

  void read_match(const Entry& entry, Host& host) {
    if (entry.value.IsScalar()) {
      read_match_name(entry, host);
      return;
    }
    if (!entry.value.IsSequence()) {
      fail(entry, std::string("'match' must be a name or a list of names, not ") +
                      describe(entry.value));
      return;
    }
    if (entry.value.size() == 0) {
      fail(entry, "'match' must not be empty");
      return;
    }
    for (const YAML::Node& item : entry.value) read_match_name({entry.key, item}, host);
  }

  void read_match_name(const Entry& entry, Host& host) {
    if (!entry.value.IsScalar()) {
      fail(entry, std::string("a host match must be a scalar, not ") + describe(entry.value));
      return;
    }
    std::string name = lowered(entry.value.Scalar());
    Mark mark = mark_of(entry);
    if (!is_host_pattern(name)) {
      fail_at(mark, "bad host match '" + entry.value.Scalar() +
                        "': expected a host name without port, '*.domain' or '*'");
      return;
    }
    auto [first, inserted] = host_matches_.try_emplace(name, mark.line);
    if (!inserted) {
      fail_at(mark, "duplicate host match '" + name + "' (first at line " +
                        std::to_string(first->second) + ")");
      return;
    }
    host.match.push_back(std::move(name));
  }

  int read_backend_name(const Entry& entry, const Config& config) {
    auto name = scalar(entry, "backend");
    if (!name) return -1;
    int index = config.backend_index(*name);
    if (index < 0) fail(entry, "unknown backend '" + *name + "'");
    return index;
  }

  void read_routes(const Entry& entry, const Config& config, Host& host,
                   const TtlSource& host_source) {
    if (!entry.value.IsSequence()) {
      fail(entry, std::string("'routes' must be a list, not ") + describe(entry.value));
      return;
    }
    std::map<std::string, int> paths;  // path -> line
    for (const YAML::Node& item : entry.value) {
      if (!expect_map(item, "route")) continue;
      Route route;
      route.mark = mark_of(item);
      route.cache = host.cache;
      route.rules = host.rules;
      Entries fields = entries(item, with_cache_keys({"path", "backend"}));
      if (const Entry* path = find(fields, "path"); path && path->value.IsScalar()) {
        read_rules(fields, route.rules, (host.match.empty() ? std::string() : host.match.front()) + ' ' + path->value.Scalar());
      }
      if (const Entry* backend = find(fields, "backend")) {
        route.backend = read_backend_name(*backend, config);
      }
      read_cache_policy(fields, route.cache, &host_source, nullptr);
      if (const Entry* key = find(fields, "key");
          key && route.cache.static_source == StaticSource::kNone) {
        fail(key->key, "'key' needs 'static: memcached' on this route or its host");
      }
      const Entry* path = require(fields, "path", item);
      if (!path) continue;
      auto text = scalar(*path, "path");
      if (!text) continue;
      if (text->front() != '/') {
        fail(*path, "bad route path '" + *text + "': it must start with '/'");
        continue;
      }
      auto [first, inserted] = paths.try_emplace(*text, mark_of(*path).line);
      if (!inserted) {
        fail(*path, "duplicate route path '" + *text + "' (first at line " +
                        std::to_string(first->second) + ")");
        continue;
      }
      route.path_prefix = *text;
      host.routes.push_back(std::move(route));
    }
  }

  // ---- rules (struct Rules): access lists, rate limits, maintenance, redirects, header rules,
  // error pages ----

  // One prefix: `a.b.c.d[/n]`, `x:y::z[/n]`; nullopt after an error at `entry`.
  std::optional<Cidr> read_cidr(const Entry& entry) {
    if (!entry.value.IsScalar()) {
      fail(entry, std::string("an address prefix must be a scalar, not ") + describe(entry.value));
      return std::nullopt;
    }
    const std::string& text = entry.value.Scalar();
    auto bad = [&](const std::string& why) {
      fail(entry, "bad address prefix '" + text + "': " + why);
      return std::nullopt;
    };
    const size_t slash = text.find('/');
    const std::string address = text.substr(0, slash);
    Cidr cidr;
    if (inet_pton(AF_INET, address.c_str(), cidr.bytes.data()) == 1) {
      cidr.bits = 32;
    } else if (inet_pton(AF_INET6, address.c_str(), cidr.bytes.data()) == 1) {
      cidr.v6 = true;
      cidr.bits = 128;
    } else {
      return bad("expected an IPv4 or IPv6 address, with /bits or without");
    }
    if (slash != std::string::npos) {
      const std::string digits = text.substr(slash + 1);
      const auto bits = leading_digits(digits) == digits.size() ? parse_unsigned(digits) : std::nullopt;
      if (!bits || *bits > cidr.bits) return bad("the prefix length must be 0 to " + std::to_string(cidr.bits));
      cidr.bits = static_cast<uint8_t>(*bits);
    }
    for (size_t bit = cidr.bits; bit < cidr.bytes.size() * 8; ++bit)
      if (cidr.bytes[bit / 8] & (0x80 >> (bit % 8))) return bad("bits are set past the prefix length");
    return cidr;
  }

  // A prefix or a list of them; `all` (alone or in a list) is every IPv4 and IPv6 address.
  bool read_cidr_list(const Entry& entry, std::string_view what, std::vector<Cidr>& out) {
    std::vector<Cidr> list;
    bool ok = true;
    auto add = [&](const Entry& item) {
      if (item.value.IsScalar() && item.value.Scalar() == "all") {
        list.push_back(Cidr{});
        Cidr v6;
        v6.v6 = true;
        list.push_back(v6);
      } else if (auto cidr = read_cidr(item)) {
        list.push_back(*cidr);
      } else {
        ok = false;
      }
    };
    if (entry.value.IsSequence()) {
      for (const YAML::Node& item : entry.value) add({entry.key, item});
    } else if (entry.value.IsScalar()) {
      add(entry);
    } else {
      fail(entry, "'" + std::string(what) + "' must be an address prefix or a list of them, not " +
                      describe(entry.value));
      return false;
    }
    if (ok) out = std::move(list);
    return ok;
  }

  void read_access(const Entry& entry, AccessList& access) {
    access = AccessList{};
    access.mark = mark_of(entry.key);
    if (!expect_map(entry, "access")) return;
    const size_t errors_before = errors_.size();
    Entries fields = entries(entry.value, {"allow", "deny"});
    const Entry* allow = find(fields, "allow");
    const Entry* deny = find(fields, "deny");
    if (!allow && !deny) {
      if (errors_.size() > errors_before) return;  // a misspelt key says it already
      fail(entry, "'access' needs 'allow', 'deny' or both");
      return;
    }
    if (allow && !read_cidr_list(*allow, "allow", access.allow)) return;
    if (deny && !read_cidr_list(*deny, "deny", access.deny)) return;
    for (const Cidr& a : access.allow)
      for (const Cidr& d : access.deny)
        if (a.v6 == d.v6 && a.bits == d.bits && a.bytes == d.bytes) {
          fail(*deny, "'" + cidr_text(d) + "' is both allowed and denied");
          return;
        }
    access.enabled = true;
  }

  // `placeholders`: the names this template may use; every other `{name}` is an error.
  std::optional<Template> read_template(const Entry& entry, std::string_view what,
                                        std::initializer_list<std::pair<std::string_view, Placeholder>> placeholders) {
    auto text = scalar(entry, what);
    if (!text) return std::nullopt;
    Template out;
    out.text = *text;
    auto literal = [&](char c) {
      if (out.parts.empty() || out.parts.back().kind != Placeholder::kLiteral) out.parts.push_back({});
      out.parts.back().literal.push_back(c);
    };
    for (size_t i = 0; i < text->size(); ++i) {
      const char c = (*text)[i];
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        fail(entry, "bad " + std::string(what) + " '" + *text + "': a control character at character " +
                        std::to_string(i + 1));
        return std::nullopt;
      }
      if (c != '{') {
        literal(c);
        continue;
      }
      if (i + 1 < text->size() && (*text)[i + 1] == '{') {
        literal('{');
        ++i;
        continue;
      }
      const size_t close = text->find('}', i);
      const std::string name = close == std::string::npos ? std::string() : text->substr(i + 1, close - i - 1);
      auto known = std::find_if(placeholders.begin(), placeholders.end(), [&](const auto& p) { return p.first == name; });
      if (known == placeholders.end()) {
        std::string expected;
        for (const auto& p : placeholders) expected += (expected.empty() ? "{" : ", {") + std::string(p.first) + "}";
        fail(entry, "bad " + std::string(what) + " '" + *text + "': " +
                        (close == std::string::npos ? std::string("'{' without '}'")
                                                    : "unknown placeholder '{" + name + "}'") +
                        " at character " + std::to_string(i + 1) + " (expected " + expected + "; '{{' is a '{')");
        return std::nullopt;
      }
      out.parts.push_back({known->second, {}});
      i = close;
    }
    return out;
  }

  static constexpr std::pair<std::string_view, Placeholder> kRequestPlaceholders[] = {
      {"host", Placeholder::kHost},     {"path", Placeholder::kPath},       {"query", Placeholder::kQuery},
      {"target", Placeholder::kTarget}, {"rest", Placeholder::kRest},       {"scheme", Placeholder::kScheme},
      {"method", Placeholder::kMethod}, {"client_ip", Placeholder::kClientIp}, {"backend", Placeholder::kBackend}};

  std::optional<Template> read_request_template(const Entry& entry, std::string_view what) {
    return read_template(entry, what,
                         {kRequestPlaceholders[0], kRequestPlaceholders[1], kRequestPlaceholders[2],
                          kRequestPlaceholders[3], kRequestPlaceholders[4], kRequestPlaceholders[5],
                          kRequestPlaceholders[6], kRequestPlaceholders[7], kRequestPlaceholders[8]});
  }

  std::optional<Template> read_response_template(const Entry& entry, std::string_view what) {
    return read_template(entry, what,
                         {kRequestPlaceholders[0], kRequestPlaceholders[1], kRequestPlaceholders[2],
                          kRequestPlaceholders[3], kRequestPlaceholders[4], kRequestPlaceholders[5],
                          kRequestPlaceholders[6], kRequestPlaceholders[7], kRequestPlaceholders[8],
                          {"cache", Placeholder::kCache}, {"status", Placeholder::kStatus}});
  }

  // Fields a header rule may not touch: the message's framing and hop-by-hop fields, and on a
  // request its identity and what edge writes itself.
  static bool rule_may_edit(std::string_view name, bool request) {
    static constexpr std::string_view kNever[] = {"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
                                                  "Proxy-Connection", "Upgrade", "TE", "Trailer"};
    static constexpr std::string_view kNeverOnRequest[] = {"Host", "X-Forwarded-Host", "X-Forwarded-Proto", "Expect"};
    auto named = [&](std::string_view n) { return lowered(n) == lowered(name); };
    if (std::any_of(std::begin(kNever), std::end(kNever), named)) return false;
    return !(request && std::any_of(std::begin(kNeverOnRequest), std::end(kNeverOnRequest), named));
  }

  // `request_headers` / `response_headers`, flattened onto `edits` (the host's, for a route).
  void read_header_rules(const Entry& entry, bool request, HeaderEdits& edits) {
    const std::string what = request ? "request_headers" : "response_headers";
    if (!expect_map(entry, what)) return;
    Entries fields = entries(entry.value, {"remove", "set", "append"});
    auto checked_name = [&](const Entry& at, const std::string& name) {
      if (!is_token(name)) {
        fail(at, "bad field name '" + name + "': expected a token (letters, digits and !#$%&'*+-.^_`|~)");
        return false;
      }
      if (!rule_may_edit(name, request)) {
        fail(at, "'" + name + "' may not be changed by a rule: " +
                     (request ? "edge writes it, or it frames the message" : "it frames the message"));
        return false;
      }
      return true;
    };
    auto drop = [&](const std::string& name) {
      const std::string low = lowered(name);
      std::erase_if(edits.added, [&](const HeaderRule& rule) { return lowered(rule.name) == low; });
      if (std::none_of(edits.dropped.begin(), edits.dropped.end(), [&](const std::string& d) { return lowered(d) == low; }))
        edits.dropped.push_back(name);
    };
    if (const Entry* remove = find(fields, "remove")) {
      std::vector<std::string> names;
      read_token_list(remove, "remove", "field name", names);
      for (const std::string& name : names)
        if (checked_name(*remove, name)) drop(name);
    }
    for (const HeaderRule::Kind kind : {HeaderRule::Kind::kSet, HeaderRule::Kind::kAppend}) {
      const char* key = kind == HeaderRule::Kind::kSet ? "set" : "append";
      const Entry* list = find(fields, key);
      if (!list || !expect_map(*list, key)) continue;
      std::map<std::string, int> seen;  // lower-cased name -> line
      for (const auto& pair : list->value) {
        const Entry item{pair.first, pair.second};
        if (!pair.first.IsScalar()) {
          fail(pair.first, "a field name must be a scalar");
          continue;
        }
        const std::string& name = pair.first.Scalar();
        if (!checked_name({pair.first, pair.first}, name)) continue;
        auto [first, inserted] = seen.try_emplace(lowered(name), mark_of(pair.first).line);
        if (!inserted) {
          fail(pair.first, "duplicate field name '" + name + "' (first at line " + std::to_string(first->second) + ")");
          continue;
        }
        if (pair.second.IsScalar() && pair.second.Scalar().empty()) {
          fail(item, "the value of '" + name + "' is empty: to remove a field, name it in 'remove'");
          continue;
        }
        auto value = request ? read_request_template(item, "field value") : read_response_template(item, "field value");
        if (!value) continue;
        if (kind == HeaderRule::Kind::kSet) drop(name);
        edits.added.push_back({kind, name, std::move(*value)});
      }
    }
  }

  void read_redirect(const Entry& entry, Redirect& redirect) {
    redirect = Redirect{};
    redirect.mark = mark_of(entry.key);
    if (!expect_map(entry, "redirect")) return;
    Entries fields = entries(entry.value, {"to", "status"});
    if (const Entry* status = find(fields, "status")) {
      uint64_t code = 0;
      read_count(status, "status", 301, 308, code);
      if (code == 304 || code == 305 || code == 306) {
        fail(*status, "bad status '" + std::to_string(code) + "': expected 301, 302, 303, 307 or 308");
      }
      if (code) redirect.status = static_cast<int>(code);
    }
    const Entry* to = require(fields, "to", entry.value);
    if (!to) return;
    auto location = read_request_template(*to, "to");
    if (!location) return;
    if (!check_location(*to, *location)) return;
    redirect.to = std::move(*location);
    redirect.enabled = true;
  }

  // A Location template's host is its own: an absolute one names it with literal text or
  // {host}, and the path after it starts with '/' (a literal, {path} or {target}); a relative
  // one starts with '/' but not '//'. So no request can send the client to another site.
  bool check_location(const Entry& at, const Template& location) {
    auto bad = [&](const std::string& why) {
      fail(at, "bad redirect 'to' '" + location.text + "': " + why);
      return false;
    };
    auto starts_path = [](const Template::Part& part) {
      return part.kind == Placeholder::kPath || part.kind == Placeholder::kTarget ||
             (part.kind == Placeholder::kLiteral && (part.literal.front() == '/' || part.literal.front() == '?'));
    };
    if (location.parts.empty()) return bad("it is empty");
    for (const Template::Part& part : location.parts)
      if (part.kind == Placeholder::kLiteral && part.literal.find_first_of(" \\") != std::string::npos)
        return bad("a space or '\\' (write it percent-encoded)");
    const Template::Part& first = location.parts.front();
    if (first.kind == Placeholder::kLiteral && first.literal.starts_with("//"))
      return bad("a relative target must not start with '//'");
    if (starts_path(first)) return true;
    // Absolute: scheme "://" authority, then the path.
    size_t part = 0;
    std::string_view rest;
    if (first.kind == Placeholder::kScheme) {
      if (location.parts.size() < 2 || location.parts[1].kind != Placeholder::kLiteral ||
          !location.parts[1].literal.starts_with("://"))
        return bad("{scheme} must be followed by '://'");
      part = 1;
      rest = std::string_view(location.parts[1].literal).substr(3);
    } else if (first.kind == Placeholder::kLiteral &&
               (first.literal.starts_with("http://") || first.literal.starts_with("https://"))) {
      rest = std::string_view(first.literal).substr(first.literal.find("://") + 3);
    } else {
      return bad("expected a path starting with '/', or an absolute http:// or https:// URL");
    }
    bool authority = false;
    for (;;) {
      const size_t end = rest.find_first_of("/?#");
      if (end != std::string_view::npos) {
        if (end == 0 && !authority) return bad("it names no host");
        if (rest.substr(0, end).find('@') != std::string_view::npos) return bad("user information ('@') in its host");
        return true;
      }
      if (rest.find('@') != std::string_view::npos) return bad("user information ('@') in its host");
      authority = authority || !rest.empty();
      if (++part >= location.parts.size()) return authority ? true : bad("it names no host");
      const Template::Part& next = location.parts[part];
      if (next.kind == Placeholder::kHost) {
        authority = true;
        rest = {};
        continue;
      }
      if (next.kind == Placeholder::kLiteral) {
        rest = next.literal;
        continue;
      }
      if (!authority) return bad("it names no host");
      if (starts_path(next)) return true;
      return bad("only {host} may be part of its host, and {" + placeholder_name(next.kind) +
                 "} must come after a '/'");
    }
  }

  static std::string placeholder_name(Placeholder kind) {
    for (const auto& [name, value] : kRequestPlaceholders)
      if (value == kind) return std::string(name);
    return kind == Placeholder::kCache ? "cache" : "status";
  }

  void read_rate_limit(const Entry& entry, RateLimit& limit, const std::string& zone) {
    limit = RateLimit{};
    limit.mark = mark_of(entry.key);
    if (entry.value.IsScalar() && (entry.value.Scalar() == "off" || entry.value.Scalar() == "false")) return;
    if (!expect_map(entry, "rate_limit")) return;
    Entries fields = entries(entry.value, {"rate", "burst"});
    const Entry* rate = require(fields, "rate", entry.value);
    if (!rate) return;
    auto text = scalar(*rate, "rate");
    if (!text) return;
    const size_t slash = text->find('/');
    const std::string count = text->substr(0, slash);
    const std::string unit = slash == std::string::npos ? std::string() : text->substr(slash + 1);
    const auto n = leading_digits(count) == count.size() ? parse_unsigned(count) : std::nullopt;
    if (!n || *n == 0 || *n > 1000000 || (unit != "s" && unit != "m")) {
      fail(*rate, "bad rate '" + *text + "': expected requests per second or minute, 1 to 1000000 ('10/s', '30/m')");
      return;
    }
    limit.per_second = unit == "s" ? static_cast<double>(*n) : static_cast<double>(*n) / 60.0;
    uint64_t burst = *n;
    read_count(find(fields, "burst"), "burst", 1, 1000000, burst);
    limit.burst = static_cast<double>(burst);
    limit.zone = zone;
    // FNV-1a, as rules::RateLimiter::zone_id() (checked by its tests): computed once here.
    limit.zone_id = 0xcbf29ce484222325;
    for (unsigned char c : zone) limit.zone_id = (limit.zone_id ^ c) * 0x100000001b3;
    limit.enabled = true;
  }

  std::shared_ptr<const ErrorPage> read_page_file(const Entry& entry, std::string_view what) {
    constexpr size_t kMaxPageBytes = 64 * 1024;
    auto text = scalar(entry, what);
    if (!text) return nullptr;
    auto page = std::make_shared<ErrorPage>();
    page->file = resolved_path(file_, *text);
    if (int error = read_whole_file(page->file, page->body, kMaxPageBytes); error != 0) {
      fail(entry, "cannot read page '" + page->file + "': " + std::strerror(error));
      return nullptr;
    }
    if (page->body.size() > kMaxPageBytes) {
      fail(entry, "page '" + page->file + "' is larger than 64k");
      return nullptr;
    }
    const std::string extension = lowered(page->file.substr(page->file.rfind('.') + 1));
    page->content_type = extension == "json"  ? "application/json"
                         : extension == "txt" ? "text/plain; charset=utf-8"
                                              : "text/html; charset=utf-8";
    return page;
  }

  // Over `pages` (the top level's, or a host's for a route): status by status.
  void read_error_pages(const Entry& entry, ErrorPages& pages) {
    if (!expect_map(entry, "error_pages")) return;
    for (const auto& pair : entry.value) {
      const Entry item{pair.first, pair.second};
      const std::string key = pair.first.IsScalar() ? pair.first.Scalar() : std::string();
      if (key == "backend_errors") {
        read_switch(&item, "backend_errors", pages.backend_errors);
        continue;
      }
      const auto status = leading_digits(key) == key.size() ? parse_unsigned(key) : std::nullopt;
      if (!status || *status < 400 || *status > 599) {
        fail(pair.first, "bad error_pages key '" + key + "': expected a status from 400 to 599, or 'backend_errors'");
        continue;
      }
      auto page = read_page_file(item, "error page");
      if (!page) continue;
      const int code = static_cast<int>(*status);
      auto held = std::find_if(pages.pages.begin(), pages.pages.end(), [&](const auto& p) { return p.first == code; });
      if (held != pages.pages.end())
        held->second = std::move(page);
      else
        pages.pages.emplace_back(code, std::move(page));
    }
  }

  void read_purge(const Entry& entry, PurgeAccess& purge) {
    purge = PurgeAccess{};
    purge.mark = mark_of(entry.key);
    if (entry.value.IsScalar() && (entry.value.Scalar() == "off" || entry.value.Scalar() == "false")) return;
    if (!expect_map(entry, "purge")) return;
    Entries fields = entries(entry.value, {"allow"});
    const Entry* allow = require(fields, "allow", entry.value);
    if (allow && read_cidr_list(*allow, "allow", purge.allow)) purge.enabled = true;
  }

  void read_maintenance(const Entry& entry, Maintenance& maintenance) {
    maintenance = Maintenance{};
    maintenance.mark = mark_of(entry.key);
    if (entry.value.IsScalar()) {
      read_switch(&entry, "maintenance", maintenance.enabled);
      return;
    }
    if (!expect_map(entry, "maintenance")) return;
    Entries fields = entries(entry.value, {"page", "retry_after", "allow"});
    if (const Entry* page = find(fields, "page")) maintenance.page = read_page_file(*page, "page");
    read_duration(find(fields, "retry_after"), "retry_after", maintenance.retry_after);
    if (const Entry* allow = find(fields, "allow")) read_cidr_list(*allow, "allow", maintenance.allow);
    maintenance.enabled = true;
  }

  // The rule keys of a host entry or a route, over `rules` (the host's, for a route). `zone`
  // names the entry for a rate limit it declares.
  void read_rules(const Entries& fields, Rules& rules, const std::string& zone) {
    if (const Entry* access = find(fields, "access")) read_access(*access, rules.access);
    if (const Entry* limit = find(fields, "rate_limit")) read_rate_limit(*limit, rules.rate_limit, zone);
    if (const Entry* purge = find(fields, "purge")) read_purge(*purge, rules.purge);
    if (const Entry* maintenance = find(fields, "maintenance")) read_maintenance(*maintenance, rules.maintenance);
    if (const Entry* redirect = find(fields, "redirect")) read_redirect(*redirect, rules.redirect);
    if (const Entry* headers = find(fields, "request_headers")) read_header_rules(*headers, true, rules.request_headers);
    if (const Entry* headers = find(fields, "response_headers")) read_header_rules(*headers, false, rules.response_headers);
    if (const Entry* pages = find(fields, "error_pages")) read_error_pages(*pages, rules.error_pages);
    if (const Entry* upgrade = find(fields, "upgrade")) {
      if (upgrade->value.IsScalar() && (upgrade->value.Scalar() == "off" || upgrade->value.Scalar() == "false")) {
        rules.upgrade.clear();
      } else {
        std::vector<std::string> protocols;
        read_token_list(upgrade, "upgrade", "protocol", protocols);
        for (std::string& protocol : protocols) {
          protocol = lowered(protocol);
          if (protocol == "h2c") fail(*upgrade, "'h2c' cannot be tunnelled: HTTP/2 is edge's own (listen: h2c)");
        }
        if (!has_errors()) rules.upgrade = std::move(protocols);
      }
    }
  }

  std::string file_;
  std::vector<Error> errors_;
  std::map<std::string, int> host_matches_;  // lower-cased name -> line of its first use
  bool memcached_ = false;                    // cache.memcached is configured
};

// Returns 0 or an errno value. EISDIR arrives from read(), since open() accepts a directory.
int read_whole_file(const std::string& path, std::string& text, size_t limit) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int error = 0;
  char chunk[16384];
  try {
    while (text.size() <= limit) {
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n > 0) {
        text.append(chunk, static_cast<size_t>(n));
      } else if (n == 0) {
        break;
      } else if (errno != EINTR) {
        error = errno;
        break;
      }
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return error;
}

// Records where each document starts and ignores everything else.
class DocumentStarts final : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;

  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// yaml-cpp 0.7 does not consume a stray token at document level (a ',' for one): each call
// yields another empty document at the same place, so YAML::LoadAll never returns, and
// YAML::Load silently sees an empty document. A bounded walk over the documents catches both
// that and a second document, which YAML::Load would drop without a word.
void check_single_document(std::string_view yaml, Loader& loader) {
  std::istringstream stream{std::string(yaml)};
  YAML::Parser parser(stream);
  DocumentStarts documents;
  for (int call = 0; call < 3 && parser.HandleNextDocument(documents); ++call) {
    const auto& marks = documents.marks;
    if (marks.size() >= 2 && marks[marks.size() - 1].pos == marks[marks.size() - 2].pos) {
      const YAML::Mark& stuck = marks.back();
      std::string message = "unexpected text";
      if (stuck.pos >= 0 && static_cast<size_t>(stuck.pos) < yaml.size()) {
        message = std::string("unexpected '") + yaml[static_cast<size_t>(stuck.pos)] + "'";
      }
      loader.fail_at(loader.mark_of(stuck), message);
      return;
    }
  }
  if (documents.marks.size() >= 2) {
    loader.fail_at(loader.mark_of(documents.marks[1]),
                   "only one YAML document is allowed in a configuration");
  }
}

LoadResult parse(std::string_view yaml, const std::string& name) {
  Loader loader(name);
  LoadResult result;
  try {
    check_single_document(yaml, loader);
    if (!loader.has_errors()) result.config = loader.load(YAML::Load(std::string(yaml)));
  } catch (const YAML::Exception& e) {
    result.config.reset();
    loader.fail_at(loader.mark_of(e.mark), e.msg);
  } catch (const std::exception& e) {
    result.config.reset();
    loader.fail_at({name, 0, 0}, std::string("cannot load: ") + e.what());
  } catch (...) {
    result.config.reset();
    loader.fail_at({name, 0, 0}, "cannot load: unexpected error");
  }
  result.errors = loader.take_errors();
  if (!result.errors.empty()) result.config.reset();
  return result;
}

}  // namespace

LoadResult load_string(std::string_view yaml, const std::string& name) {
  try {
    return parse(yaml, name);
  } catch (...) {
    // Only reachable when building the error list itself runs out of memory.
    LoadResult result;
    result.errors.push_back(error_at_file(name, "cannot load: out of memory"));
    return result;
  }
}

LoadResult load_file(const std::string& path) {
  LoadResult result;
  try {
    std::string text;
    if (int error = read_whole_file(path, text); error != 0) {
      result.errors.push_back(error_at_file(path, std::string("cannot read: ") + std::strerror(error)));
      return result;
    }
    result = load_string(text, path);
    // The environment's EDGE_IO runs a file on either I/O path without editing it (a test
    // suite, say); the same for a start and its reloads.
    if (const char* io = std::getenv("EDGE_IO"); io && result.config) {
      if (std::string_view(io) == "epoll") {
        result.config->io = Io::kEpoll;
      } else if (std::string_view(io) == "uring") {
        result.config->io = Io::kUring;
      } else {
        result.errors.push_back(error_at_file(path, std::string("bad EDGE_IO '") + io + "' in the environment: expected epoll or uring"));
        result.config.reset();
      }
    }
    return result;
  } catch (...) {
    result.errors.push_back(error_at_file(path, "cannot read: out of memory"));
    return result;
  }
}

std::optional<Duration> parse_duration(std::string_view text) { return duration_of(text).value; }

std::optional<uint64_t> parse_size(std::string_view text) { return size_of(text).value; }

std::optional<Address> parse_address(std::string_view text) { return address_of(text).value; }

}  // namespace edge::conf
