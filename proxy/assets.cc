#include "proxy/assets.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/invalidation.h"
#include "cache/memcached.h"
#include "cache/policy.h"
#include "http/log_text.h"
#include "cache/record.h"
#include "cache/static_key.h"
#include "cache/store.h"
#include "conf/config.h"
#include "http/mime.h"
#include "http/shared_body.h"
#include "http/uri.h"
#include "proxy/compression.h"
#include "proxy/router.h"
#include "proxy/tier.h"
#include "proxy/tier_config.h"

namespace edge::proxy {
namespace {

constexpr size_t kMaxInFlight = 64;
// Beyond this a file is not read: no memcached item is that large, whatever max_item says.
constexpr uint64_t kMaxRead = 64ull << 20;
constexpr cache::Seconds kDefaultMaxAge = 86400;
// RFC 9111 1.2.2: a cache reads any larger delta-seconds as this.
constexpr cache::Seconds kLargestMaxAge = 2147483648;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

void usage(FILE* out) {
  std::fputs(
      "usage: edge assets --config FILE --route PREFIX [--host NAME] [--max-age AGE] DIR\n"
      "\n"
      "Stores every file under DIR in memcached, under the keys the static route PREFIX reads.\n"
      "\n"
      "  --config FILE    the proxy's YAML configuration (cache.memcached and the route)\n"
      "  --route PREFIX   the path of a `static: memcached` route, exactly as configured\n"
      "  --host NAME      the host for {host} in the route's key, and the host entry when several\n"
      "                   have the route (default: the entry's first name, if it is not a wildcard)\n"
      "  --max-age AGE    Cache-Control max-age of the stored responses: 30s, 10m, 1h, 7d or seconds\n"
      "                   (default: the route's ttl, else 1d)\n"
      "  --help           this text\n"
      "\n"
      "Exit code: 0 all files stored (or too large, or skipped), 1 some failed, 2 usage or config error.\n",
      out);
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "edge assets: %s\n", message.c_str());
  usage(stderr);
  return 2;
}

int error(const std::string& message) {
  std::fprintf(stderr, "edge assets: %s\n", message.c_str());
  return 2;
}

struct Options {
  std::string config_path;
  std::string route;
  std::optional<std::string> host;
  std::optional<cache::Seconds> max_age;
  std::string dir;
};

// Whole seconds, with an optional unit; conf::parse_duration has no days and refuses bare numbers.
std::optional<cache::Seconds> parse_max_age(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 12) return std::nullopt;
  cache::Seconds value = 0;
  for (size_t i = 0; i < digits; ++i) value = value * 10 + (text[i] - '0');
  const std::string_view unit = text.substr(digits);
  cache::Seconds scale = 0;
  if (unit.empty() || unit == "s")
    scale = 1;
  else if (unit == "m")
    scale = 60;
  else if (unit == "h")
    scale = 3600;
  else if (unit == "d")
    scale = 86400;
  else
    return std::nullopt;
  if (value > kLargestMaxAge / scale) return std::nullopt;
  return value * scale;
}

// The value of `--name VALUE` or `--name=VALUE` at argv[i] (advancing i past VALUE), nullopt when
// argv[i] is not that option, and `missing` set when it is but has no value.
std::optional<std::string> option_value(std::string_view name, int argc, char** argv, int& i, bool& missing) {
  const std::string_view arg = argv[i];
  if (arg == name) {
    if (i + 1 >= argc) {
      missing = true;
      return std::nullopt;
    }
    return std::string(argv[++i]);
  }
  if (arg.size() > name.size() && arg.starts_with(name) && arg[name.size()] == '=')
    return std::string(arg.substr(name.size() + 1));
  return std::nullopt;
}

// Fills `options`; returns the exit code when the command line ends the command (help, errors).
std::optional<int> parse_options(int argc, char** argv, Options& options) {
  bool only_positional = false;
  std::vector<std::string> positional;
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (only_positional || arg.empty() || arg.front() != '-' || arg == "-") {
      positional.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    bool missing = false;
    if (auto v = option_value("--config", argc, argv, i, missing)) {
      options.config_path = *v;
    } else if (auto v = option_value("--route", argc, argv, i, missing)) {
      options.route = *v;
    } else if (auto v = option_value("--host", argc, argv, i, missing)) {
      std::string normalized;
      if (!http::canonical_host(*v, normalized)) return usage_error("bad --host '" + *v + "'");
      options.host = normalized;
    } else if (auto v = option_value("--max-age", argc, argv, i, missing)) {
      options.max_age = parse_max_age(*v);
      if (!options.max_age)
        return usage_error("bad --max-age '" + *v + "': expected seconds, or a number with s, m, h or d");
    } else if (missing) {
      return usage_error(std::string(arg) + " needs a value");
    } else {
      return usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (options.config_path.empty()) return usage_error("--config FILE is required");
  if (options.route.empty()) return usage_error("--route PREFIX is required");
  if (positional.empty()) return usage_error("the directory to load is required");
  if (positional.size() > 1) return usage_error("one directory only, not '" + positional[1] + "' too");
  options.dir = positional.front();
  return std::nullopt;
}

std::string match_names(const conf::Host& entry) {
  std::string out = "[";
  for (size_t i = 0; i < entry.match.size(); ++i) out += (i ? ", " : "") + entry.match[i];
  return out + "]";
}

std::string entries_text(const std::vector<const conf::Host*>& entries) {
  std::string out;
  for (const conf::Host* entry : entries) out += (out.empty() ? "" : ", ") + match_names(*entry);
  return out;
}

const conf::Route* route_with_path(const conf::Host& entry, std::string_view path) {
  for (const conf::Route& route : entry.routes)
    if (route.path_prefix == path) return &route;
  return nullptr;
}

bool is_static(const conf::Route& route) { return route.cache.static_source == conf::StaticSource::kMemcached; }

struct Target {
  const conf::Host* entry = nullptr;
  const conf::Route* route = nullptr;
  std::string host;  // for {host} and the records' host; "" when none is known
};

std::optional<Target> resolve_target(const conf::Config& config, const Options& options) {
  std::vector<const conf::Host*> with_route;
  std::vector<const conf::Host*> with_static;
  std::vector<std::string> all_paths;
  for (const conf::Host& entry : config.hosts) {
    for (const conf::Route& route : entry.routes) all_paths.push_back(route.path_prefix);
    if (const conf::Route* route = route_with_path(entry, options.route)) {
      with_route.push_back(&entry);
      if (is_static(*route)) with_static.push_back(&entry);
    }
  }
  if (with_route.empty()) {
    std::sort(all_paths.begin(), all_paths.end());
    all_paths.erase(std::unique(all_paths.begin(), all_paths.end()), all_paths.end());
    std::string known;
    for (const std::string& path : all_paths) known += (known.empty() ? "" : ", ") + path;
    error("no route has the path '" + options.route + "' in " + config.file +
          (known.empty() ? " (it has no routes)" : " (routes: " + known + ")"));
    return std::nullopt;
  }

  Target target;
  if (options.host) {
    // The entry the proxy serves this host from, so that the keys are the ones it will read.
    const RouteMatch match = Router(config).match(*options.host, options.route);
    const conf::Host* entry = match.host >= 0 ? &config.hosts[static_cast<size_t>(match.host)] : nullptr;
    if (!entry || !route_with_path(*entry, options.route)) {
      error("host '" + *options.host + "' is " +
            (entry ? "served by the entry " + match_names(*entry) + ", which has no route '" + options.route + "'"
                   : "matched by no host entry") +
            "; entries with that route: " + entries_text(with_route));
      return std::nullopt;
    }
    target.entry = entry;
    target.host = *options.host;
  } else if (with_static.size() > 1) {
    error("several host entries have a static route '" + options.route + "': " + entries_text(with_static) +
          "; choose one with --host NAME");
    return std::nullopt;
  } else {
    target.entry = with_static.empty() ? with_route.front() : with_static.front();
    const std::string& first = target.entry->match.front();
    if (first != "*" && !first.starts_with("*.")) target.host = first;
  }
  target.route = route_with_path(*target.entry, options.route);

  if (!is_static(*target.route)) {
    const conf::Error not_static{target.route->mark, "route '" + options.route + "' of host entry " +
                                                         match_names(*target.entry) + " is not `static: memcached`"};
    std::fprintf(stderr, "%s\n", not_static.text().c_str());
    return std::nullopt;
  }
  if (!config.cache.memcached.enabled || config.cache.memcached.servers.empty()) {
    error("cache.memcached is not configured in " + config.file + ": there is nowhere to store the files");
    return std::nullopt;
  }
  const std::string& key_template = target.route->cache.static_key;
  if (target.host.empty() && key_template.find("{host}") != std::string::npos) {
    error("the key '" + key_template + "' of route '" + options.route + "' uses {host}, and host entry " +
          match_names(*target.entry) + " has no exact name: give one with --host NAME");
    return std::nullopt;
  }
  return target;
}

// Keeps RFC 3986's unreserved characters and "!$&'()*+,;=:@", which a path segment may hold as
// they are; clients send them so, and the key is made of the path as the client sends it.
void append_segment(std::string& out, std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  static constexpr std::string_view kKept = "-._~!$&'()*+,;=:@";
  for (char c : segment) {
    const auto u = static_cast<unsigned char>(c);
    const bool alnum = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9');
    if (alnum || kKept.find(c) != std::string_view::npos) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0x0f];
    }
  }
}

std::string url_path(std::string_view prefix, std::string_view relative) {
  std::string path(prefix);
  if (!path.ends_with('/')) path += '/';
  size_t start = 0;
  while (true) {
    const size_t slash = relative.find('/', start);
    append_segment(path, relative.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    path += '/';
    start = slash + 1;
  }
  return path;
}

// The route of `entry` the proxy picks for `path`: the longest prefix.
const conf::Route* serving_route(const conf::Host& entry, std::string_view path) {
  const conf::Route* best = nullptr;
  for (const conf::Route& route : entry.routes)
    if (path.starts_with(route.path_prefix) && (!best || route.path_prefix.size() > best->path_prefix.size()))
      best = &route;
  return best;
}

std::string strong_etag(std::string_view content) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(content.data(), content.size(), digest, &length, EVP_sha256(), nullptr) != 1 || length < 8)
    return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string etag = "\"";
  for (unsigned int i = 0; i < 8; ++i) {
    etag += kHex[digest[i] >> 4];
    etag += kHex[digest[i] & 0x0f];
  }
  return etag + "\"";
}

std::string human_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"kB", "MB", "GB", "TB"};
  if (bytes < 1000) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes) / 1000;
  size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(kUnits)) {
    value /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
  return text;
}

class Progress {
 public:
  explicit Progress(size_t total)
      : total_(total),
        terminal_(::isatty(STDERR_FILENO) == 1),
        step_(std::clamp<size_t>(total / 10, 1, 1000)) {}

  void update(size_t done, uint64_t bytes) {
    if (terminal_) {
      const auto now = std::chrono::steady_clock::now();
      if (done < total_ && now - last_draw_ < kRedrawInterval) return;
      last_draw_ = now;
      std::fprintf(stderr, "\r\x1b[K%s", line(done, bytes).c_str());
      drawn_ = true;
    } else if (done % step_ == 0 || done == total_) {
      std::fprintf(stderr, "%s\n", line(done, bytes).c_str());
    }
  }

  // A line that stays: on a terminal it replaces the progress line, which the next update redraws.
  void report(const std::string& text) {
    std::fprintf(stderr, "%s%s\n", terminal_ && drawn_ ? "\r\x1b[K" : "", http::escape_for_log(text).c_str());
    drawn_ = false;
  }

  void finish() {
    if (terminal_ && drawn_) std::fputc('\n', stderr);
  }

 private:
  std::string line(size_t done, uint64_t bytes) const {
    return "edge assets: " + std::to_string(done) + "/" + std::to_string(total_) + " files, " + human_bytes(bytes);
  }

  size_t total_;
  bool terminal_;
  size_t step_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

enum class Outcome { kStored, kTooLarge, kFailed, kSkipped };

// Shared by the main thread and the pool's threads (where set callbacks run).
struct Tally {
  explicit Tally(size_t files) : progress(files) {}

  // One file is done, whatever its fate; `why` is reported unless it was stored.
  void settle(Outcome outcome, uint64_t size, const std::string& file, const std::string& why) {
    std::lock_guard lock(mutex);
    switch (outcome) {
      case Outcome::kStored:
        ++stored;
        stored_bytes += size;
        break;
      case Outcome::kTooLarge:
        ++too_large;
        break;
      case Outcome::kFailed:
        ++failed;
        break;
      case Outcome::kSkipped:
        ++skipped;
        break;
    }
    if (outcome != Outcome::kStored) progress.report("edge assets: " + file + ": " + why);
    ++done;
    done_bytes += size;
    progress.update(done, done_bytes);
  }

  // Problems met while listing DIR: no file of the count, no progress.
  void note(Outcome outcome, const std::string& file, const std::string& why) {
    std::lock_guard lock(mutex);
    ++(outcome == Outcome::kFailed ? failed : skipped);
    progress.report("edge assets: " + file + ": " + why);
  }

  std::mutex mutex;
  std::condition_variable changed;
  size_t in_flight = 0;
  size_t done = 0;
  uint64_t done_bytes = 0;
  size_t stored = 0;
  uint64_t stored_bytes = 0;
  size_t too_large = 0;
  size_t failed = 0;
  size_t skipped = 0;
  Progress progress;
};

std::string joined(const std::string& root, const std::string& relative) {
  if (relative.empty()) return root;
  return root.ends_with('/') ? root + relative : root + "/" + relative;
}

struct Listing {
  std::vector<std::string> files;  // relative paths
  std::vector<std::pair<std::string, std::string>> failed, skipped;  // path, why
};

void list_tree(const std::string& root, const std::string& relative, Listing& listing) {
  namespace fs = std::filesystem;
  const std::string dir = joined(root, relative);
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with('.')) continue;
    const std::string child = relative.empty() ? name : relative + "/" + name;
    std::error_code status_ec;
    const fs::file_status status = it->symlink_status(status_ec);
    if (status_ec)
      listing.failed.emplace_back(joined(root, child), status_ec.message());
    else if (fs::is_symlink(status))
      listing.skipped.emplace_back(joined(root, child), "skipped: a symbolic link");
    else if (fs::is_directory(status))
      list_tree(root, child, listing);
    else if (fs::is_regular_file(status))
      listing.files.push_back(child);
    else
      listing.skipped.emplace_back(joined(root, child), "skipped: not a regular file");
  }
  if (ec) listing.failed.emplace_back(dir, "cannot list the directory: " + ec.message());
}

struct FileRead {
  std::string content;
  struct stat info {};
  std::string error;  // set when the file could not be read
  bool too_large = false;
};

FileRead read_file(const std::string& path, uint64_t limit) {
  FileRead result;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    result.error = std::strerror(errno);
    return result;
  }
  if (::fstat(fd, &result.info) != 0) {
    result.error = std::strerror(errno);
  } else if (!S_ISREG(result.info.st_mode)) {
    result.error = "no longer a regular file";
  } else if (static_cast<uint64_t>(result.info.st_size) > limit) {
    result.too_large = true;
  } else {
    // Reads to the end, not to st_size: a file being written may have grown; past `limit` it is
    // too large whatever it ends up as.
    result.content.resize(static_cast<size_t>(result.info.st_size) + 1);
    size_t have = 0;
    while (true) {
      if (have == result.content.size()) {
        if (have > limit) break;
        result.content.resize(std::min<uint64_t>(have * 2 + 4096, limit + 1));
      }
      const ssize_t n = ::read(fd, result.content.data() + have, result.content.size() - have);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        result.error = std::strerror(errno);
        break;
      }
      if (n == 0) break;
      have += static_cast<size_t>(n);
    }
    result.content.resize(have);
    if (have > limit) result.too_large = true;
  }
  ::close(fd);
  return result;
}

std::string make_record(const Target& target, const std::string& key, const std::string& path,
                        std::string_view relative, const FileRead& file, cache::Seconds max_age, cache::Seconds now) {
  cache::CachedObject object;
  object.set_key(key, target.host, path);
  object.status = 200;
  object.headers.add("Content-Type", http::content_type_for_path(relative));
  object.headers.add("Cache-Control", "max-age=" + std::to_string(max_age));
  object.headers.add("ETag", strong_etag(file.content));
  object.headers.add("Last-Modified", cache::format_http_date(file.info.st_mtime));
  object.body = http::SharedBody::from(file.content);
  object.age = cache::AgeBasis{now, now, now, 0};
  object.cc = cache::parse_cache_control(object.headers, false);
  object.lifetime = max_age;
  object.grace = std::chrono::duration_cast<std::chrono::seconds>(target.route->cache.grace).count();
  // Baked once, compressed once: the route's encodings travel in the record.
  if (std::shared_ptr<cache::CachedObject> encoded = with_encodings(object, target.route->cache.compress, UINT64_MAX))
    return cache::encode(*encoded, now);
  return cache::encode(object, now);
}

}  // namespace

int run_assets(int argc, char** argv) {
  Options options;
  if (std::optional<int> code = parse_options(argc, argv, options)) return *code;

  conf::LoadResult loaded = conf::load_file(options.config_path);
  if (!loaded.config) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.text().c_str());
    return 2;
  }
  const conf::Config& config = *loaded.config;
  const std::optional<Target> target = resolve_target(config, options);
  if (!target) return 2;

  std::error_code ec;
  if (!std::filesystem::is_directory(options.dir, ec))
    return error("'" + options.dir + "' is not a directory" + (ec ? ": " + ec.message() : ""));

  cache::Seconds max_age = kDefaultMaxAge;
  if (options.max_age)
    max_age = *options.max_age;
  else if (auto ttl = std::chrono::duration_cast<std::chrono::seconds>(target->route->cache.ttl).count(); ttl > 0)
    max_age = std::min<cache::Seconds>(ttl, kLargestMaxAge);

  Listing listing;
  list_tree(options.dir, "", listing);
  std::sort(listing.files.begin(), listing.files.end());

  // Before the pool: its threads run the callbacks that use the tally until it is destroyed.
  Tally tally(listing.files.size());
  for (const auto& [file, why] : listing.failed) tally.note(Outcome::kFailed, file, why);
  for (const auto& [file, why] : listing.skipped) tally.note(Outcome::kSkipped, file, why);

  std::signal(SIGPIPE, SIG_IGN);
  const conf::Memcached& memcached = config.cache.memcached;
  cache::MemcachedConfig pool_settings = pool_config(memcached);
  // A server taken out of the ring would have its keys written to the others, where the proxy
  // (whose ring has every server) never looks: each of them fails instead, and is reported.
  pool_settings.failure_limit = std::numeric_limits<int>::max();
  cache::MemcachedPool pool(pool_settings);
  const cache::MemcachedPool::Post inline_post = [](std::function<void()> task) { task(); };

  // A memcached with no invalidation log yet (a new deploy, baked before any edge started): the
  // log is made now, dated before the records that follow. The first edge would otherwise make it
  // itself, dated after them, and count every one as stored before a purge it cannot see. An
  // existing log is kept.
  {
    std::promise<void> made;
    const bool queued = pool.add(std::string(Tier::kLogKey), cache::invalidation_log_header(std::time(nullptr) - 1), 0,
                                 inline_post, [&made](cache::McStatus) { made.set_value(); });
    if (queued) made.get_future().wait();
  }

  const std::string& key_template = target->route->cache.static_key;
  const uint64_t limit = std::min<uint64_t>(memcached.max_item, kMaxRead);
  for (const std::string& relative : listing.files) {
    const std::string file = joined(options.dir, relative);
    const std::string path = url_path(options.route, relative);
    if (const conf::Route* serving = serving_route(*target->entry, path); serving != target->route) {
      tally.settle(Outcome::kSkipped, 0, file, "skipped: " + path + " is served by route '" +
                                                   (serving ? serving->path_prefix : "") + "'");
      continue;
    }
    std::string key = cache::expand_static_key(key_template, target->host, path);
    if (!cache::MemcachedPool::valid_key(key)) {
      tally.settle(Outcome::kSkipped, 0, file,
                   "skipped: key '" + key + "' is not a valid memcached key (" + std::to_string(key.size()) +
                       " bytes; at most 250, no spaces or control characters)");
      continue;
    }
    FileRead read = read_file(file, limit);
    if (!read.error.empty()) {
      tally.settle(Outcome::kFailed, 0, file, "cannot read: " + read.error);
      continue;
    }
    const auto size = static_cast<uint64_t>(read.too_large ? read.info.st_size : read.content.size());
    const std::string max_item = "cache.memcached.max_item is " + std::to_string(memcached.max_item);
    if (read.too_large) {
      tally.settle(Outcome::kTooLarge, size, file, "too large: " + std::to_string(size) + " bytes; " + max_item);
      continue;
    }
    std::string record = make_record(*target, key, path, relative, read, max_age, std::time(nullptr));
    read.content = {};
    const std::string too_large_why = "too large: its record is " + std::to_string(record.size()) +
                                      " bytes, over the limit with its key and memcached's overhead; " + max_item;

    std::unique_lock lock(tally.mutex);
    tally.changed.wait(lock, [&] { return tally.in_flight < kMaxInFlight; });
    ++tally.in_flight;
    lock.unlock();
    const bool queued = pool.set(
        std::move(key), std::move(record), 0, inline_post, [&tally, file, size, too_large_why](cache::McStatus status) {
          if (status == cache::McStatus::kOk)
            tally.settle(Outcome::kStored, size, file, "");
          else if (status == cache::McStatus::kTooLarge)
            tally.settle(Outcome::kTooLarge, size, file, too_large_why);
          else
            tally.settle(Outcome::kFailed, size, file,
                         std::string("memcached set failed: ") + cache::mc_status_name(status));
          std::lock_guard guard(tally.mutex);
          --tally.in_flight;
          tally.changed.notify_all();
        });
    if (!queued) {
      tally.settle(Outcome::kFailed, size, file, "memcached set failed: refused by the client (no usable server)");
      lock.lock();
      --tally.in_flight;
      lock.unlock();
    }
  }
  std::unique_lock lock(tally.mutex);
  tally.changed.wait(lock, [&] { return tally.in_flight == 0; });
  tally.progress.finish();

  std::string servers;
  for (const conf::Address& server : memcached.servers) servers += (servers.empty() ? "" : ",") + server.text();
  std::printf("edge assets: %zu files stored (%llu bytes) under %s for host %s in memcached %s; %zu too large, "
              "%zu failed, %zu skipped\n",
              tally.stored, static_cast<unsigned long long>(tally.stored_bytes), options.route.c_str(),
              target->host.empty() ? "(any)" : target->host.c_str(), servers.c_str(), tally.too_large, tally.failed,
              tally.skipped);
  return tally.failed > 0 ? 1 : 0;
}

}  // namespace edge::proxy
