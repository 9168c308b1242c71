// hitratio: sends a fixed, Zipf-distributed stream of GETs through a caching proxy and reports
// how many of them the proxy had to fetch from its origin, against the best a cache of the same
// size could do if it knew the popularity of every object.
//
//   hitratio --port P --origin-port O [--objects N] [--alpha A] [--sizes fixed:BYTES|mixed]
//            [--warmup N] [--requests N] [--seed S] [--cache-bytes B] [--overhead B]
//            [--connections C] [--bound-only]
//
// The stream: request i asks for the object of popularity rank k with probability
// k^-alpha / H (H the sum over all ranks), drawn from a xoshiro256** generator seeded from --seed;
// ranks map to object ids through a permutation drawn from the same seed, so the popular objects
// are scattered over the id space. Object id X is GET /cache/obj-X?size=BYTES&cc=max-age%3D86400
// &type=application%2Foctet-stream: edge-app's /cache route answers BYTES pattern bytes, cacheable
// for a day, and a binary type that no proxy compresses. With --sizes mixed each object's size is
// log-uniform from 1 KB to 256 KB, drawn from a hash of its id and the seed: always the same for a
// given object.
//
// The requests go over --connections keep-alive connections, one request in flight on each; a
// connection that is free takes the next request of the stream. The order the proxy sees is the
// stream's, except that requests a few places apart may arrive swapped, as responses come back
// in a different order from run to run.
//
// Hits and misses: edge-app puts X-Count (how many requests for this target it has received,
// this one included) on every /cache response, and a proxy replays it unchanged from its cache.
// So each origin fetch of an object carries a value of its own, and the misses are the distinct
// (object, X-Count) pairs among the answers: the first answer with a new pair counts as the miss,
// any other as a hit (it came from the cache, or waited for another request's fetch). Not "higher
// than the last one": a proxy that sends two concurrent misses for one object to the origin may
// deliver the second fetch's answer first. This needs nothing from the proxy. Two cross-checks
// are printed: the origin's own request count (edge-app's /stats, "received", read before and
// after the measured requests), and the misses by the proxy's X-Cache header (a response
// without one, or whose value does not start with HIT, is a miss).
//
// The bound: under this model (independent requests, fixed popularity) no cache that learns
// online does better, on average, than one that always holds the objects of highest
// probability. For fixed sizes that is the top cache_bytes / size ranks. For mixed sizes the set
// depends on what is counted: for request misses objects are taken by probability per byte, for
// byte misses by probability alone (each greedily, skipping an object that no longer fits). The
// object's cost is its body, plus --overhead bytes for a second pair of bounds that charge each
// object for its head, key and bookkeeping, as a real cache must.
//
// The online bound: that static set knows each object's probability, which a real cache can only
// learn from the requests it has seen. The second reference is a cache that counts every request
// of the stream exactly from its start and holds the objects counted most so far: on a miss it
// takes the object in if its count per byte (plus --overhead, for the charged bound) beats the
// lowest held ones it must push out. For objects of one size that is LFU on exact counts, the
// most any cache can learn of popularity from the same requests; it is run over the same stream,
// its misses counted over the measured part.
//
// Output: a human line, then one line of key=value pairs for a script to read, starting with
// "result". Exit status 1 if the run could not finish (it stalled, or the origin did not answer),
// 2 for bad arguments.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace {

// ---------------------------------------------------------------------------- the stream

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// xoshiro256**, seeded through splitmix64 as its authors advise.
class Random {
 public:
  explicit Random(uint64_t seed) {
    for (uint64_t& word : s_) word = splitmix64(seed);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1), 53 bits.
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n), n > 0 (Lemire's multiply-and-reject: no modulo bias).
  uint64_t below(uint64_t n) {
    for (;;) {
      const unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
      const uint64_t low = static_cast<uint64_t>(m);
      if (low >= n || low >= (-n) % n) return static_cast<uint64_t>(m >> 64);
    }
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

constexpr uint64_t kMixedMin = 1024;
constexpr uint64_t kMixedMax = 256 * 1024;

struct Model {
  uint32_t objects = 100000;
  double alpha = 0.9;
  uint64_t fixed_size = 4096;  // 0: mixed sizes
  uint64_t seed = 20261204;

  // The size of object `id`, the same every time it is asked for.
  uint64_t size_of(uint32_t id) const {
    if (fixed_size) return fixed_size;
    uint64_t state = seed ^ (0xa0761d6478bd642full * (uint64_t{id} + 1));
    const double u = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
    const double bytes = static_cast<double>(kMixedMin) * std::exp2(u * std::log2(double(kMixedMax) / kMixedMin));
    return std::clamp<uint64_t>(static_cast<uint64_t>(std::llround(bytes)), kMixedMin, kMixedMax);
  }
};

struct Popularity {
  std::vector<double> cdf;      // cdf[r]: the weight of ranks 0..r (rank 0 the most popular), unnormalised
  std::vector<uint32_t> id_of;  // rank -> object id
  double total = 0;

  explicit Popularity(const Model& m) : cdf(m.objects), id_of(m.objects) {
    double running = 0;
    for (uint32_t r = 0; r < m.objects; ++r) cdf[r] = running += std::pow(double(r + 1), -m.alpha);
    total = running;
    std::iota(id_of.begin(), id_of.end(), 0u);
    Random shuffle(m.seed ^ 0x5851f42d4c957f2dull);
    for (uint32_t i = m.objects - 1; i > 0; --i) std::swap(id_of[i], id_of[shuffle.below(uint64_t{i} + 1)]);
  }
  double probability(uint32_t rank) const { return (cdf[rank] - (rank ? cdf[rank - 1] : 0)) / total; }
  uint32_t draw(Random& random) const {
    const double u = random.unit() * total;
    const auto it = std::upper_bound(cdf.begin(), cdf.end(), u);
    return static_cast<uint32_t>(std::min<size_t>(it - cdf.begin(), cdf.size() - 1));
  }
};

// ---------------------------------------------------------------------------- the bound

struct Bound {
  uint32_t objects = 0;        // objects held by the request-miss bound's cache
  double miss_ratio = 1;       // 1 - the probability that a request's object is held
  double byte_miss_ratio = 1;  // 1 - the expected share of requested bytes held (its own set)
  std::vector<bool> held;      // by object id: in the request-miss bound's set
};

// A static cache of `cache_bytes`, each object costing its size plus `overhead`, filled greedily
// by value per cost; for request misses an object's value is its probability, for byte misses its
// probability times its size.
Bound static_bound(const Model& m, const Popularity& pop, uint64_t cache_bytes, uint64_t overhead) {
  const uint32_t n = m.objects;
  std::vector<uint32_t> order(n);
  Bound bound;
  bound.held.assign(n, false);
  double all_bytes = 0;
  for (uint32_t r = 0; r < n; ++r) all_bytes += pop.probability(r) * double(m.size_of(pop.id_of[r]));

  auto fill = [&](auto value) {
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return value(a) / double(m.size_of(pop.id_of[a]) + overhead) >
             value(b) / double(m.size_of(pop.id_of[b]) + overhead);
    });
    std::vector<uint32_t> taken;
    uint64_t left = cache_bytes;
    for (uint32_t r : order) {
      const uint64_t cost = m.size_of(pop.id_of[r]) + overhead;
      if (cost <= left) {
        left -= cost;
        taken.push_back(r);
      }
    }
    return taken;
  };

  double hit = 0;
  for (uint32_t r : fill([&](uint32_t r) { return pop.probability(r); })) {
    hit += pop.probability(r);
    bound.held[pop.id_of[r]] = true;
    ++bound.objects;
  }
  bound.miss_ratio = std::max(0.0, 1 - hit);
  double byte_hit = 0;
  for (uint32_t r : fill([&](uint32_t r) { return pop.probability(r) * double(m.size_of(pop.id_of[r])); }))
    byte_hit += pop.probability(r) * double(m.size_of(pop.id_of[r]));
  bound.byte_miss_ratio = std::max(0.0, 1 - byte_hit / all_bytes);
  return bound;
}

struct OnlineBound {
  uint32_t objects = 0;  // held at the stream's end
  double miss_ratio = 1;
  double byte_miss_ratio = 1;
};

OnlineBound online_bound(const Model& m, const std::vector<uint32_t>& stream, uint64_t measured_from,
                         uint64_t cache_bytes, uint64_t overhead) {
  std::vector<uint64_t> count(m.objects, 0);
  std::vector<bool> held(m.objects, false);
  // Held objects by count per byte of cost, the lowest first.
  std::set<std::pair<double, uint32_t>> by_density;
  auto cost = [&](uint32_t id) { return m.size_of(id) + overhead; };
  auto density = [&](uint32_t id) { return double(count[id]) / double(cost(id)); };
  uint64_t used = 0, requests = 0, misses = 0;
  double bytes = 0, byte_misses = 0;
  std::vector<std::pair<double, uint32_t>> pushed_out;
  for (uint64_t i = 0; i < stream.size(); ++i) {
    const uint32_t id = stream[i];
    const bool measured = i >= measured_from;
    if (measured) {
      ++requests;
      bytes += double(m.size_of(id));
    }
    if (held[id]) {
      by_density.erase({density(id), id});
      ++count[id];
      by_density.insert({density(id), id});
      continue;
    }
    ++count[id];
    if (measured) {
      ++misses;
      byte_misses += double(m.size_of(id));
    }
    if (cost(id) > cache_bytes) continue;
    pushed_out.clear();
    while (used + cost(id) > cache_bytes && by_density.begin()->first < density(id)) {
      pushed_out.push_back(*by_density.begin());
      used -= cost(by_density.begin()->second);
      by_density.erase(by_density.begin());
    }
    if (used + cost(id) > cache_bytes) {  // the denser ones it would need to push out stay
      for (const auto& kept : pushed_out) used += cost(kept.second);
      by_density.insert(pushed_out.begin(), pushed_out.end());
      continue;
    }
    for (const auto& out : pushed_out) held[out.second] = false;
    held[id] = true;
    used += cost(id);
    by_density.insert({density(id), id});
  }
  OnlineBound bound;
  bound.objects = static_cast<uint32_t>(by_density.size());
  if (requests) bound.miss_ratio = double(misses) / double(requests);
  if (bytes > 0) bound.byte_miss_ratio = byte_misses / bytes;
  return bound;
}

// ---------------------------------------------------------------------------- HTTP

double now_s() {
  using namespace std::chrono;
  static const auto t0 = steady_clock::now();
  return duration<double>(steady_clock::now() - t0).count();
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::optional<uint64_t> parse_uint(std::string_view s, int base = 10) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return std::nullopt;
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  return v;
}

int connect_to(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// edge-app's "received" from its /stats, on a connection of its own. That request counts itself.
std::optional<uint64_t> origin_received(uint16_t port) {
  const int fd = connect_to(port);
  if (fd < 0) return std::nullopt;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  static const char request[] = "GET /stats HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n";
  std::string answer;
  if (send(fd, request, sizeof request - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof request - 1)) {
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) answer.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t at = answer.find("\"received\":");
  if (at == std::string::npos) return std::nullopt;
  size_t end = at + 11;
  while (end < answer.size() && answer[end] >= '0' && answer[end] <= '9') ++end;
  return parse_uint(std::string_view(answer).substr(at + 11, end - at - 11));
}

// What the run counts.
struct Tally {
  uint64_t requests = 0;       // answered 200 with the object's full body
  uint64_t misses = 0;         // of those, fetched from the origin for this request (by X-Count)
  uint64_t xcache_misses = 0;  // of those, not marked HIT by the proxy's X-Cache
  uint64_t bytes = 0;          // body bytes of the requests
  uint64_t byte_misses = 0;    // body bytes of the misses
  uint64_t bound_misses = 0;   // requests whose object is not in the bound's set
  uint64_t errors = 0;         // anything else: another status, a short body, no X-Count, a broken connection
  uint64_t warmup_errors = 0;  // the same during the warm-up
  uint64_t retries = 0;        // requests sent again after the connection closed before any answer
};

class Client {
 public:
  Client(const Model& m, const std::vector<uint32_t>& stream, const std::vector<bool>& bound_held, uint16_t port,
         std::string host, int connections)
      : m_(m),
        stream_(stream),
        bound_held_(bound_held),
        port_(port),
        host_(std::move(host)),
        conns_(static_cast<size_t>(connections)),
        scratch_(1 << 20) {}

  // Sends stream[begin, end) and waits for every answer; false if the run stalled or could not
  // connect. `measured` chooses whether the answers are counted in tally().
  bool run(size_t begin, size_t end, bool measured) {
    next_ = begin;
    end_ = end;
    measured_ = measured;
    if (ep_ < 0 && (ep_ = epoll_create1(EPOLL_CLOEXEC)) < 0) return false;
    size_t busy = 0;
    for (size_t i = 0; i < conns_.size(); ++i) {
      if (conns_[i].fd < 0 && !open(i)) return false;
      if (next_ < end_) {
        send_next(i);
        ++busy;
      }
    }
    std::vector<epoll_event> events(conns_.size());
    in_flight_ = busy;
    while (in_flight_ > 0) {
      const int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 10000);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        std::fprintf(stderr, "hitratio: no answer for 10 s (%zu requests in flight)\n", in_flight_);
        return false;
      }
      for (int k = 0; k < n; ++k) {
        if (!service(events[k].data.u32)) return false;
      }
    }
    return true;
  }
  const Tally& tally() const { return tally_; }

 private:
  enum class Phase { kHead, kBody, kChunkSize, kChunkData, kChunkEnd, kTrailers };

  struct Conn {
    int fd = -1;
    bool busy = false;
    size_t index = 0;  // the request in flight: its place in the stream
    std::string out;   // its bytes not yet written
    size_t out_off = 0;
    bool answered = false;  // some of its response arrived
    Phase phase = Phase::kHead;
    std::string head;  // the response head, or a chunk size or trailer line, as it arrives
    uint64_t remaining = 0;
    // The response so far.
    int status = 0;
    uint64_t body = 0;
    std::optional<uint64_t> x_count;
    bool x_cache_hit = false;
    bool close_after = false;
  };

  bool open(size_t i) {
    Conn& c = conns_[i];
    c.fd = connect_to(port_);
    if (c.fd < 0) {
      std::fprintf(stderr, "hitratio: cannot connect to 127.0.0.1:%u: %s\n", port_, std::strerror(errno));
      return false;
    }
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
    return true;
  }
  void drop(size_t i) {
    Conn& c = conns_[i];
    if (c.fd < 0) return;
    epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
  }

  std::string target(uint32_t id) const {
    return "/cache/obj-" + std::to_string(id) + "?size=" + std::to_string(m_.size_of(id)) +
           "&cc=max-age%3D86400&type=application%2Foctet-stream";
  }

  void send_next(size_t i) { start(i, next_++); }

  void start(size_t i, size_t index) {
    Conn& c = conns_[i];
    c.busy = true;
    c.index = index;
    c.out = "GET " + target(stream_[index]) + " HTTP/1.1\r\nHost: " + host_ + "\r\n\r\n";
    c.out_off = 0;
    c.answered = false;
    c.phase = Phase::kHead;
    c.head.clear();
    c.status = 0;
    c.body = 0;
    c.x_count.reset();
    c.x_cache_hit = false;
    c.close_after = false;
    flush(i);
  }

  // Writes what is left of the request; a request this small goes out in one write on a fresh
  // socket, so EPOLLOUT is watched only in the rare case it does not.
  void flush(size_t i) {
    Conn& c = conns_[i];
    while (c.out_off < c.out.size()) {
      const ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.u32 = static_cast<uint32_t>(i);
        epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
        return;
      }
      return;  // the read side sees the error or the close
    }
  }

  bool service(size_t i) {
    Conn& c = conns_[i];
    if (c.out_off < c.out.size()) {
      flush(i);
      if (c.out_off == c.out.size()) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = static_cast<uint32_t>(i);
        epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
      }
    }
    for (;;) {
      const ssize_t n = recv(c.fd, scratch_.data(), scratch_.size(), 0);
      if (n > 0) {
        if (!c.busy) return closed(i, "bytes nobody asked for");
        c.answered = true;
        if (!consume(i, scratch_.data(), static_cast<size_t>(n))) return closed(i, "a response it could not read");
        if (conns_[i].fd < 0) return reopen(i);
        if (static_cast<size_t>(n) < scratch_.size()) return true;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (n < 0 && errno == EINTR) continue;
      return closed(i, n == 0 ? nullptr : std::strerror(errno));
    }
  }

  // The connection ended (the proxy closed it, or its answer made no sense): a request that had
  // no answer yet is sent again on a new connection, one cut off mid-answer is an error.
  bool closed(size_t i, const char* why) {
    Conn& c = conns_[i];
    drop(i);
    if (c.busy) {
      if (c.answered) {
        error(why ? why : "the connection closed in the middle of a response");
        c.busy = false;
        --in_flight_;
        return reopen(i);
      }
      ++tally_.retries;
      if (tally_.retries > 10000) {
        std::fprintf(stderr, "hitratio: the proxy keeps closing connections before answering\n");
        return false;
      }
      if (!open(i)) return false;
      start(i, c.index);
      return true;
    }
    return reopen(i);
  }

  // A fresh connection in place of one that is gone, and the next request on it if any is left.
  bool reopen(size_t i) {
    if (conns_[i].fd < 0 && !open(i)) return false;
    if (!conns_[i].busy && next_ < end_) {
      send_next(i);
      ++in_flight_;
    }
    return true;
  }

  // Feeds response bytes through the framing; false if they are not HTTP/1.1 as expected.
  bool consume(size_t i, const char* p, size_t n) {
    Conn& c = conns_[i];
    while (n > 0) {
      switch (c.phase) {
        case Phase::kHead: {
          const size_t from = c.head.size() >= 3 ? c.head.size() - 3 : 0;
          c.head.append(p, n);
          const size_t end = c.head.find("\r\n\r\n", from);
          if (end == std::string::npos) {
            if (c.head.size() > 65536) return false;
            return true;
          }
          const size_t used = end + 4 - (c.head.size() - n);
          p += used;
          n -= used;
          c.head.resize(end + 4);
          if (!parse_head(c)) return false;
          if (c.phase == Phase::kHead) return complete(i) && n == 0;
          break;
        }
        case Phase::kBody: {
          const size_t take = static_cast<size_t>(std::min<uint64_t>(c.remaining, n));
          c.remaining -= take;
          c.body += take;
          p += take;
          n -= take;
          if (c.remaining == 0) return complete(i) && n == 0;
          break;
        }
        case Phase::kChunkSize:
        case Phase::kChunkEnd:
        case Phase::kTrailers: {
          const char* nl = static_cast<const char*>(std::memchr(p, '\n', n));
          const size_t take = nl ? static_cast<size_t>(nl - p) + 1 : n;
          c.head.append(p, take);
          p += take;
          n -= take;
          if (!nl) {
            if (c.head.size() > 4096) return false;
            break;
          }
          std::string_view line = trim(std::string_view(c.head).substr(0, c.head.size() - 1));
          if (c.phase == Phase::kChunkSize) {
            line = line.substr(0, line.find(';'));
            const auto size = parse_uint(trim(line), 16);
            if (!size) return false;
            c.remaining = *size;
            c.phase = *size ? Phase::kChunkData : Phase::kTrailers;
          } else if (c.phase == Phase::kChunkEnd) {
            if (!line.empty()) return false;
            c.phase = Phase::kChunkSize;
          } else if (line.empty()) {
            return complete(i) && n == 0;
          }
          c.head.clear();
          break;
        }
        case Phase::kChunkData: {
          const size_t take = static_cast<size_t>(std::min<uint64_t>(c.remaining, n));
          c.remaining -= take;
          c.body += take;
          p += take;
          n -= take;
          if (c.remaining == 0) c.phase = Phase::kChunkEnd;
          break;
        }
      }
    }
    return true;
  }

  // Reads the status and the fields that matter; sets the body's framing (kHead again: none).
  static bool parse_head(Conn& c) {
    std::string_view head(c.head);
    const size_t eol = head.find("\r\n");
    const std::string_view status_line = head.substr(0, eol);
    if (status_line.substr(0, 7) != "HTTP/1." || status_line.size() < 12) return false;
    const auto status = parse_uint(status_line.substr(9, 3));
    if (!status) return false;
    c.status = static_cast<int>(*status);
    std::optional<uint64_t> length;
    bool chunked = false;
    size_t at = eol + 2;
    while (at < head.size()) {
      const size_t line_end = head.find("\r\n", at);
      const std::string_view line = head.substr(at, line_end - at);
      at = line_end + 2;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = line.substr(0, colon), value = trim(line.substr(colon + 1));
      if (iequals(name, "content-length"))
        length = parse_uint(value);
      else if (iequals(name, "transfer-encoding"))
        chunked = value.size() >= 7 && iequals(value.substr(value.size() - 7), "chunked");
      else if (iequals(name, "x-count"))
        c.x_count = parse_uint(value);
      else if (iequals(name, "x-cache"))
        c.x_cache_hit = value.size() >= 3 && iequals(value.substr(0, 3), "hit");
      else if (iequals(name, "connection"))
        c.close_after = iequals(value, "close");
    }
    if (status_line.substr(0, 8) == "HTTP/1.0") c.close_after = true;
    if (c.status == 204 || c.status == 304 || (c.status >= 100 && c.status < 200)) {
      c.phase = Phase::kHead;
    } else if (chunked) {
      c.phase = Phase::kChunkSize;
    } else if (length) {
      c.remaining = *length;
      c.phase = *length ? Phase::kBody : Phase::kHead;
    } else {
      return false;  // a body up to the close: not what any of these proxies sends
    }
    c.head.clear();
    return true;
  }

  bool complete(size_t i) {
    Conn& c = conns_[i];
    const uint32_t id = stream_[c.index];
    const uint64_t size = m_.size_of(id);
    if (c.status != 200 || c.body != size || !c.x_count) {
      char why[256];
      std::snprintf(why, sizeof why, "%s: status %d, %llu body bytes of %llu%s", target(id).c_str(), c.status,
                    static_cast<unsigned long long>(c.body), static_cast<unsigned long long>(size),
                    c.x_count ? "" : ", no X-Count");
      error(why);
    } else {
      // Warm-up answers count too: they tell which origin fetches were already seen.
      const bool miss = fetches_seen_.insert(uint64_t{id} << 32 | (*c.x_count & 0xffffffffu)).second;
      if (measured_) {
        ++tally_.requests;
        tally_.bytes += size;
        if (miss) {
          ++tally_.misses;
          tally_.byte_misses += size;
        }
        if (!c.x_cache_hit) ++tally_.xcache_misses;
        if (!bound_held_[id]) ++tally_.bound_misses;
      }
    }
    c.busy = false;
    c.phase = Phase::kHead;
    c.head.clear();
    --in_flight_;
    if (c.close_after) {
      drop(i);
      return true;  // service() reopens it
    }
    if (next_ < end_) {
      send_next(i);
      ++in_flight_;
    }
    return true;
  }

  // A request that got no proper answer: counted among the measured ones' errors, or the
  // warm-up's; the first few are shown.
  void error(const char* why) {
    uint64_t& count = measured_ ? tally_.errors : tally_.warmup_errors;
    if (++count <= 5) std::fprintf(stderr, "hitratio: %s%s\n", measured_ ? "" : "warm-up: ", why);
  }

  const Model& m_;
  const std::vector<uint32_t>& stream_;
  const std::vector<bool>& bound_held_;
  uint16_t port_;
  std::string host_;
  std::vector<Conn> conns_;
  std::unordered_set<uint64_t> fetches_seen_;  // (object id << 32 | X-Count) of every answer so far
  std::vector<char> scratch_;
  int ep_ = -1;
  size_t next_ = 0, end_ = 0, in_flight_ = 0;
  bool measured_ = false;
  Tally tally_;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: hitratio --port P --origin-port O [--objects N] [--alpha A] [--sizes fixed:BYTES|mixed]\n"
               "                [--warmup N] [--requests N] [--seed S] [--cache-bytes B] [--overhead B]\n"
               "                [--connections C] [--bound-only]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  Model m;
  uint64_t warmup = 200000, requests = 300000, cache_bytes = 32ull << 20, overhead = 512;
  int port = 0, origin_port = 0, connections = 8;
  bool bound_only = false;
  for (int a = 1; a < argc; ++a) {
    const std::string_view arg = argv[a];
    if (arg == "--bound-only") {
      bound_only = true;
      continue;
    }
    if (a + 1 >= argc) usage();
    const std::string_view value = argv[++a];
    auto number = [&]() {
      const auto v = parse_uint(value);
      if (!v) usage();
      return *v;
    };
    if (arg == "--port")
      port = static_cast<int>(number());
    else if (arg == "--origin-port")
      origin_port = static_cast<int>(number());
    else if (arg == "--objects")
      m.objects = static_cast<uint32_t>(number());
    else if (arg == "--alpha")
      m.alpha = std::atof(argv[a]);
    else if (arg == "--sizes" && value == "mixed")
      m.fixed_size = 0;
    else if (arg == "--sizes" && value.substr(0, 6) == "fixed:") {
      const auto v = parse_uint(value.substr(6));
      if (!v || *v == 0) usage();
      m.fixed_size = *v;
    } else if (arg == "--warmup")
      warmup = number();
    else if (arg == "--requests")
      requests = number();
    else if (arg == "--seed")
      m.seed = number();
    else if (arg == "--cache-bytes")
      cache_bytes = number();
    else if (arg == "--overhead")
      overhead = number();
    else if (arg == "--connections")
      connections = static_cast<int>(number());
    else
      usage();
  }
  if (m.objects == 0 || m.alpha <= 0 || connections <= 0 ||
      (!bound_only && (port <= 0 || port > 65535 || origin_port <= 0 || origin_port > 65535)))
    usage();

  const Popularity pop(m);
  const Bound bound = static_bound(m, pop, cache_bytes, 0);
  const Bound charged = static_bound(m, pop, cache_bytes, overhead);
  Random random(m.seed);
  std::vector<uint32_t> stream(warmup + requests);
  for (uint32_t& id : stream) id = pop.id_of[pop.draw(random)];
  const OnlineBound online = online_bound(m, stream, warmup, cache_bytes, 0);
  const OnlineBound online_charged = online_bound(m, stream, warmup, cache_bytes, overhead);
  char bound_text[512];
  std::snprintf(bound_text, sizeof bound_text,
                "ideal_objects=%u ideal_miss_ratio=%.4f ideal_byte_miss_ratio=%.4f overhead=%llu "
                "ideal_charged_objects=%u ideal_charged_miss_ratio=%.4f ideal_charged_byte_miss_ratio=%.4f "
                "online_objects=%u online_miss_ratio=%.4f online_byte_miss_ratio=%.4f "
                "online_charged_objects=%u online_charged_miss_ratio=%.4f online_charged_byte_miss_ratio=%.4f",
                bound.objects, bound.miss_ratio, bound.byte_miss_ratio, static_cast<unsigned long long>(overhead),
                charged.objects, charged.miss_ratio, charged.byte_miss_ratio, online.objects, online.miss_ratio,
                online.byte_miss_ratio, online_charged.objects, online_charged.miss_ratio,
                online_charged.byte_miss_ratio);
  if (bound_only) {
    std::printf("ideal static cache of %llu bytes: %u objects, misses %.2f%%, byte misses %.2f%%; "
                "online bound (exact counts): %u objects, misses %.2f%%, byte misses %.2f%%\n",
                static_cast<unsigned long long>(cache_bytes), bound.objects, 100 * bound.miss_ratio,
                100 * bound.byte_miss_ratio, online.objects, 100 * online.miss_ratio, 100 * online.byte_miss_ratio);
    std::printf("result %s\n", bound_text);
    return 0;
  }

  Client client(m, stream, bound.held, static_cast<uint16_t>(port), "127.0.0.1:" + std::to_string(port), connections);
  const double t0 = now_s();
  if (!client.run(0, warmup, false)) return 1;
  const double t1 = now_s();
  const auto before = origin_received(static_cast<uint16_t>(origin_port));
  if (!before) {
    std::fprintf(stderr, "hitratio: no /stats from the origin on port %d\n", origin_port);
    return 1;
  }
  if (!client.run(warmup, warmup + requests, true)) return 1;
  const double t2 = now_s();
  const auto after = origin_received(static_cast<uint16_t>(origin_port));
  if (!after) {
    std::fprintf(stderr, "hitratio: no /stats from the origin on port %d\n", origin_port);
    return 1;
  }
  // Each /stats request counts itself: the second one is not a miss.
  const uint64_t origin_requests = *after - *before - 1;

  const Tally& t = client.tally();
  auto ratio = [](uint64_t a, uint64_t b) { return b ? double(a) / double(b) : 0.0; };
  std::printf(
      "%llu requests: misses %.2f%%, byte misses %.2f%% (origin %llu requests, X-Cache %.2f%%); "
      "ideal static cache %.2f%% and %.2f%% (%u objects); %.1f s + %.1f s of warm-up\n",
      static_cast<unsigned long long>(t.requests), 100 * ratio(t.misses, t.requests),
      100 * ratio(t.byte_misses, t.bytes), static_cast<unsigned long long>(origin_requests),
      100 * ratio(t.xcache_misses, t.requests), 100 * bound.miss_ratio, 100 * bound.byte_miss_ratio, bound.objects,
      t2 - t1, t1 - t0);
  std::printf(
      "result requests=%llu errors=%llu warmup_errors=%llu retries=%llu misses=%llu miss_ratio=%.4f bytes=%llu "
      "byte_misses=%llu "
      "byte_miss_ratio=%.4f origin_requests=%llu origin_miss_ratio=%.4f xcache_misses=%llu "
      "xcache_miss_ratio=%.4f stream_ideal_miss_ratio=%.4f %s seconds=%.1f warmup_seconds=%.1f\n",
      static_cast<unsigned long long>(t.requests), static_cast<unsigned long long>(t.errors),
      static_cast<unsigned long long>(t.warmup_errors), static_cast<unsigned long long>(t.retries),
      static_cast<unsigned long long>(t.misses), ratio(t.misses, t.requests), static_cast<unsigned long long>(t.bytes),
      static_cast<unsigned long long>(t.byte_misses), ratio(t.byte_misses, t.bytes),
      static_cast<unsigned long long>(origin_requests), ratio(origin_requests, t.requests),
      static_cast<unsigned long long>(t.xcache_misses), ratio(t.xcache_misses, t.requests),
      ratio(t.bound_misses, t.requests), bound_text, t2 - t1, t1 - t0);
  return 0;
}
