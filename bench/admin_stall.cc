// admin_stall: how long cache hits stall while the admin port is attacked.
//
// One keep-alive client asks edge for a cached object in a closed loop and records the longest
// round trip in each phase: at rest; with `flood` idle connections open on the admin port;
// while an operator bans with catastrophic regexes ((a+)+$, and a{1000}b, RE2's worst case)
// over a cache of `objects` objects whose paths are long runs of 'a'. In the flood phase it
// also times an operator's GET /stats on a new connection.
//
// Usage: admin_stall EDGE_PORT ADMIN_PORT TOKEN [objects] [flood] [seconds per phase]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Sends `request` and reads one response with a Content-Length body; its status, or -1.
int round_trip(int fd, const std::string& request) {
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return -1;
  std::string in;
  char buf[65536];
  size_t head_end = std::string::npos;
  size_t length = 0;
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return -1;
    in.append(buf, static_cast<size_t>(n));
    if (head_end == std::string::npos) {
      head_end = in.find("\r\n\r\n");
      if (head_end == std::string::npos) continue;
      size_t cl = in.find("Content-Length: ");
      length = cl < head_end ? std::strtoul(in.c_str() + cl + 16, nullptr, 10) : 0;
    }
    if (in.size() >= head_end + 4 + length) return std::atoi(in.c_str() + 9);
  }
}

std::string get(const std::string& path) { return "GET " + path + " HTTP/1.1\r\nHost: books.test\r\n\r\n"; }

std::string admin_request(const std::string& method, const std::string& target, const std::string& token) {
  return method + " " + target + " HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " + token +
         "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// One admin request on a new connection: its status and how long it took.
std::pair<int, double> admin_call(uint16_t port, const std::string& method, const std::string& target,
                                  const std::string& token) {
  const auto t = Clock::now();
  int fd = connect_to(port);
  int status = fd < 0 ? -1 : round_trip(fd, admin_request(method, target, token));
  if (fd >= 0) ::close(fd);
  return {status, ms_since(t)};
}

std::string encode(const std::string& text) {
  std::string out;
  char hex[4];
  for (unsigned char c : text) {
    if (std::isalnum(c)) {
      out += static_cast<char>(c);
    } else {
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: admin_stall EDGE_PORT ADMIN_PORT TOKEN [objects] [flood] [seconds]\n");
    return 2;
  }
  const auto edge_port = static_cast<uint16_t>(std::atoi(argv[1]));
  const auto admin_port = static_cast<uint16_t>(std::atoi(argv[2]));
  const std::string token = argv[3];
  const int objects = argc > 4 ? std::atoi(argv[4]) : 20000;
  const int flood = argc > 5 ? std::atoi(argv[5]) : 200;
  const int seconds = argc > 6 ? std::atoi(argv[6]) : 3;
  const std::string run(2000, 'a');
  auto path_of = [&](int i) { return "/cache/" + run + "!" + std::to_string(i) + "?cc=max-age%3D3600"; };

  int fd = connect_to(edge_port);
  if (fd < 0) return 1;
  for (int i = 0; i < objects; ++i)
    if (round_trip(fd, get(path_of(i))) != 200) return 1;
  const std::string hit = get(path_of(0));

  std::atomic<int> phase{0};
  std::atomic<bool> stop{false};
  constexpr int kPhases = 4;
  double worst[kPhases] = {};
  long count[kPhases] = {};
  std::thread client([&] {
    int i = 0;
    while (!stop.load()) {
      const int p = phase.load();
      const auto t = Clock::now();
      // Mostly one hot object, and every object in turn, so bans meet objects they have not seen.
      if (round_trip(fd, (++i % 4) ? hit : get(path_of(i % objects))) != 200) {
        std::fprintf(stderr, "a hit failed\n");
        std::exit(1);
      }
      worst[p] = std::max(worst[p], ms_since(t));
      ++count[p];
    }
  });
  auto wait = [&] { std::this_thread::sleep_for(std::chrono::seconds(seconds)); };

  wait();
  phase = 1;
  std::vector<int> idle;
  for (int i = 0; i < flood; ++i) idle.push_back(connect_to(admin_port));
  double stats_worst = 0;
  int stats_failed = 0;
  for (int i = 0; i < 10; ++i) {
    auto [status, ms] = admin_call(admin_port, "GET", "/stats", token);
    stats_worst = std::max(stats_worst, ms);
    stats_failed += status != 200;
  }
  wait();

  phase = 2;
  double ban_worst = 0;
  for (int i = 0; i < 20; ++i) {
    ban_worst = std::max(ban_worst, admin_call(admin_port, "POST", "/ban?regex=" + encode("(a+)+$"), token).second);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  wait();
  phase = 3;
  for (int i = 0; i < 20; ++i) {
    ban_worst = std::max(ban_worst, admin_call(admin_port, "POST", "/ban?regex=" + encode("a{1000}b"), token).second);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  wait();
  stop = true;
  client.join();
  for (int c : idle)
    if (c >= 0) ::close(c);
  ::close(fd);

  const char* names[kPhases] = {"at rest", "admin flood", "bans (a+)+$", "bans a{1000}b"};
  std::printf("%-16s %10s %14s\n", "phase", "hits", "longest (ms)");
  for (int p = 0; p < kPhases; ++p) std::printf("%-16s %10ld %14.2f\n", names[p], count[p], worst[p]);
  std::printf("%d idle admin connections: GET /stats by an operator, worst of 10: %.2f ms (%d failed)\n", flood,
              stats_worst, stats_failed);
  std::printf("POST /ban, worst of 40: %.2f ms\n", ban_worst);
  return 0;
}
