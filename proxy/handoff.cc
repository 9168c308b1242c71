#include "proxy/handoff.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "log/error_log.h"

namespace edge::proxy::handoff {

namespace {

constexpr int kSendWaitMs = 5000;
// A peer holds the one place at the upgrade socket: one that neither takes over nor leaves
// within this time (from its connection to its "ready") is let go.
constexpr uint64_t kPeerWaitMs = 60000;
// How long a new process waits on each message of a running one before it gives up.
constexpr int kReceiveWaitSeconds = 10;

bool fill_sockaddr(const std::string& path, sockaddr_un& addr, std::string& error) {
  addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    error = path + ": a Unix socket path must have between 1 and " + std::to_string(sizeof addr.sun_path - 1) +
            " bytes";
    return false;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return true;
}

// Whether a process accepts connections at `path` now (a file left by a dead one refuses them).
bool answers(const std::string& path) {
  sockaddr_un addr{};
  std::string ignored;
  if (!fill_sockaddr(path, addr, ignored)) return false;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return up;
}

bool read_exactly(int socket, char* out, size_t n, int& received_fd, std::string& error) {
  size_t got = 0;
  while (got < n) {
    iovec iov{out + got, n - got};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t r = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      error = errno == EAGAIN || errno == EWOULDBLOCK ? "no answer in time" : std::strerror(errno);
      return false;
    }
    if (r == 0) {
      error = "the connection was closed";
      return false;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        // One descriptor per frame; any more would be a peer that does not speak this protocol.
        if (received_fd < 0) {
          received_fd = fd;
        } else {
          ::close(fd);
        }
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
      error = "a descriptor was lost (truncated control data)";
      return false;
    }
    got += static_cast<size_t>(r);
  }
  return true;
}

void close_quietly(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

std::string frame(std::string_view message) {
  std::string out(4, '\0');
  const uint32_t n = static_cast<uint32_t>(message.size());
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  out.append(message);
  return out;
}

Decoder::Status Decoder::next(std::string& message) {
  if (buffer_.size() < 4) return Status::kNeedMore;
  const auto byte = [this](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(buffer_[i])); };
  const uint32_t n = byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
  if (n > kMaxMessage) return Status::kBad;
  if (buffer_.size() < 4 + n) return Status::kNeedMore;
  message.assign(buffer_, 4, n);
  buffer_.erase(0, 4 + n);
  return Status::kMessage;
}

bool send_message(int socket, std::string_view message, int pass_fd, std::string& error) {
  if (message.size() > kMaxMessage) {
    error = "message too long";
    return false;
  }
  const std::string bytes = frame(message);
  size_t sent = 0;
  bool fd_sent = pass_fd < 0;
  while (sent < bytes.size()) {
    iovec iov{const_cast<char*>(bytes.data()) + sent, bytes.size() - sent};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fd_sent) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &pass_fd, sizeof pass_fd);
    }
    const ssize_t r = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // The peer reads slowly; the messages are small, so this is rare and short.
      pollfd p{socket, POLLOUT, 0};
      if (::poll(&p, 1, kSendWaitMs) <= 0) {
        error = "the peer does not read";
        return false;
      }
      continue;
    }
    if (r < 0) {
      error = std::strerror(errno);
      return false;
    }
    fd_sent = true;
    sent += static_cast<size_t>(r);
  }
  return true;
}

bool receive_message(int socket, std::string& message, int& received_fd, std::string& error) {
  received_fd = -1;
  char head[4];
  if (!read_exactly(socket, head, sizeof head, received_fd, error)) {
    close_quietly(received_fd);
    return false;
  }
  const uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(head[0])) << 24 |
                     static_cast<uint32_t>(static_cast<unsigned char>(head[1])) << 16 |
                     static_cast<uint32_t>(static_cast<unsigned char>(head[2])) << 8 |
                     static_cast<uint32_t>(static_cast<unsigned char>(head[3]));
  if (n > kMaxMessage) {
    error = "a message longer than " + std::to_string(kMaxMessage) + " bytes";
    close_quietly(received_fd);
    return false;
  }
  std::string payload(n, '\0');
  if (n > 0 && !read_exactly(socket, payload.data(), n, received_fd, error)) {
    close_quietly(received_fd);
    return false;
  }
  message = std::move(payload);
  return true;
}

std::string bound_address_text(int fd) {
  sockaddr_storage storage{};
  socklen_t len = sizeof storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  if (storage.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return std::string("[") + host + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
  ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
}

// ---- Takeover ----

Takeover::~Takeover() { release(); }

Takeover::Takeover(Takeover&& other) noexcept
    : path_(std::move(other.path_)), connection_(std::exchange(other.connection_, -1)),
      sockets_(std::move(other.sockets_)) {
  other.sockets_.clear();
}

Takeover& Takeover::operator=(Takeover&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    connection_ = std::exchange(other.connection_, -1);
    sockets_ = std::move(other.sockets_);
    other.sockets_.clear();
  }
  return *this;
}

void Takeover::release() {
  for (Inherited& socket : sockets_) close_quietly(socket.fd);
  sockets_.clear();
  close_quietly(connection_);
}

bool Takeover::connect(const std::string& path, std::string& error) {
  release();
  path_ = path;
  sockaddr_un addr{};
  if (!fill_sockaddr(path, addr, error)) return false;
  connection_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connection_ < 0 || ::connect(connection_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int code = errno;
    error = "cannot take over from " + path + ": " + std::strerror(code);
    if (code == ENOENT || code == ECONNREFUSED)
      error += " (no edge offers its sockets there: is upgrade_socket set to this path in the running one?)";
    release();
    return false;
  }
  timeval tv{kReceiveWaitSeconds, 0};
  ::setsockopt(connection_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(connection_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string why;
  if (!send_message(connection_, "takeover 1", -1, why)) {
    error = "cannot take over from " + path + ": " + why;
    release();
    return false;
  }
  for (;;) {
    std::string message;
    int fd = -1;
    if (!receive_message(connection_, message, fd, why)) {
      error = "cannot take over from " + path + ": " + why;
      release();
      return false;
    }
    const bool listen = message.starts_with("listen ");
    if (listen || message.starts_with("admin ")) {
      if (fd < 0) {
        error = "cannot take over from " + path + ": '" + message + "' came without its socket";
        release();
        return false;
      }
      Inherited socket{listen ? Kind::kListen : Kind::kAdmin, bound_address_text(fd), {}, fd};
      socklen_t len = sizeof socket.storage;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&socket.storage), &len);
      sockets_.push_back(std::move(socket));
      continue;
    }
    close_quietly(fd);
    if (message.starts_with("end ") && message.substr(4) == std::to_string(sockets_.size())) return true;
    error = "cannot take over from " + path + ": " +
            (message.starts_with("refused ") ? "the running process refused: " + message.substr(8)
                                             : "unexpected answer '" + message.substr(0, 80) + "'");
    release();
    return false;
  }
}

bool Takeover::ready(std::string& error) {
  const bool ok = send_message(connection_, "ready", -1, error);
  close_quietly(connection_);
  return ok;
}

// ---- Offer ----

struct Offer::Impl {
  std::function<std::vector<Offered>()> sockets;
  std::function<void()> on_ready;
  int fd = -1;               // the bound socket until start()
  std::string bound_path;    // where bind() put it (beside the path during a takeover)
  dev_t dev = 0;             // the socket file's identity, to remove only our own
  ino_t ino = 0;
  uv_pipe_t listener{};
  uv_timer_t peer_timer{};
  bool started = false;
  bool closed = false;
  // The one connection served at a time.
  uv_pipe_t* peer = nullptr;
  pid_t peer_pid = 0;
  bool asked = false;    // it sent a message
  bool offered = false;  // the sockets were sent
  Decoder decoder;
  char buffer[512];

  static void on_connection(uv_stream_t* server, int status) noexcept;
  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) noexcept;
  void handle(const std::string& message);
  void drop_peer(const char* why);
};

Offer::Offer(std::function<std::vector<Offered>()> sockets, std::function<void()> on_ready)
    : impl_(std::make_unique<Impl>()) {
  impl_->sockets = std::move(sockets);
  impl_->on_ready = std::move(on_ready);
}

Offer::~Offer() { close(); }

bool Offer::bind(const std::string& path, bool takeover, std::string& error) {
  path_ = path;
  std::string bind_path = path;
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      error = path + " exists and is not a socket";
      return false;
    }
    // A takeover binds beside whatever is there (its probe would only disturb the old
    // process); rename() then replaces it, live or stale.
    if (takeover) {
      bind_path = path + "." + std::to_string(::getpid());
      ::unlink(bind_path.c_str());  // only a failed attempt of an earlier process of this pid
    } else if (answers(path)) {
      error = "another process offers its sockets at " + path + " (to take them over, start with --takeover " +
              path + ")";
      return false;
    } else {
      ::unlink(path.c_str());  // left by a process that is gone
    }
  }
  sockaddr_un addr{};
  if (!fill_sockaddr(bind_path, addr, error)) return false;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error = "cannot bind " + bind_path + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return false;
  }
  // Whoever may connect takes over the process's ports: its owner only.
  if (::chmod(bind_path.c_str(), 0600) != 0 || ::listen(fd, 8) != 0 || ::stat(bind_path.c_str(), &st) != 0) {
    error = "cannot listen on " + bind_path + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(bind_path.c_str());
    return false;
  }
  impl_->fd = fd;
  impl_->bound_path = bind_path;
  impl_->dev = st.st_dev;
  impl_->ino = st.st_ino;
  return true;
}

void Offer::start(uv_loop_t* loop) {
  if (impl_->fd < 0 || impl_->started) return;
  uv_pipe_init(loop, &impl_->listener, 0);
  uv_pipe_open(&impl_->listener, impl_->fd);
  impl_->listener.data = impl_.get();
  uv_timer_init(loop, &impl_->peer_timer);
  impl_->peer_timer.data = impl_.get();
  impl_->started = true;
  impl_->fd = -1;
  if (const int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&impl_->listener), 8, &Impl::on_connection); rc != 0)
    edge::log::error("edge: upgrade socket %s: %s", path_.c_str(), uv_strerror(rc));
}

void Offer::publish() {
  if (impl_->bound_path == path_ || impl_->bound_path.empty()) return;
  if (::rename(impl_->bound_path.c_str(), path_.c_str()) != 0) {
    edge::log::warn("edge: upgrade socket: cannot move %s to %s: %s", impl_->bound_path.c_str(), path_.c_str(),
                    std::strerror(errno));
    return;
  }
  impl_->bound_path = path_;
}

void Offer::close() {
  if (impl_->closed) return;
  impl_->closed = true;
  // The file is removed only while it is still ours: after a takeover it is the new process's.
  struct stat st{};
  if (!impl_->bound_path.empty() && ::lstat(impl_->bound_path.c_str(), &st) == 0 && st.st_dev == impl_->dev &&
      st.st_ino == impl_->ino)
    ::unlink(impl_->bound_path.c_str());
  if (impl_->fd >= 0) close_quietly(impl_->fd);
  if (impl_->peer) impl_->drop_peer(nullptr);
  if (impl_->started) {
    uv_close(reinterpret_cast<uv_handle_t*>(&impl_->listener), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&impl_->peer_timer), nullptr);
  }
}

void Offer::Impl::on_connection(uv_stream_t* server, int status) noexcept {
  auto* self = static_cast<Impl*>(server->data);
  if (status != 0 || self->closed) return;
  auto* peer = new uv_pipe_t;
  uv_pipe_init(server->loop, peer, 0);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(peer)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(peer), [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_pipe_t*>(h); });
    return;
  }
  uv_os_fd_t fd = -1;
  uv_fileno(reinterpret_cast<uv_handle_t*>(peer), &fd);
  ucred cred{};
  socklen_t len = sizeof cred;
  const bool known = ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
  // The file's mode keeps others out; the peer's user is checked as well, in case the
  // directory's owner changed it.
  const bool allowed = known && (cred.uid == ::geteuid() || cred.uid == 0);
  if (!allowed || self->peer) {
    if (!allowed)
      edge::log::warn("edge: upgrade socket: refused a connection from uid %ld (not this process's user)",
                      known ? static_cast<long>(cred.uid) : -1L);
    else
      edge::log::warn("edge: upgrade socket: refused a second connection while pid %ld takes over",
                      static_cast<long>(self->peer_pid));
    uv_close(reinterpret_cast<uv_handle_t*>(peer), [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_pipe_t*>(h); });
    return;
  }
  self->peer = peer;
  self->peer_pid = cred.pid;
  uv_timer_start(
      &self->peer_timer,
      [](uv_timer_t* timer) noexcept {
        auto* impl = static_cast<Impl*>(timer->data);
        impl->asked = true;  // told even when it never said anything
        impl->drop_peer(("it was not ready within " + std::to_string(kPeerWaitMs / 1000) + " s").c_str());
      },
      kPeerWaitMs, 0);
  self->offered = false;
  self->asked = false;
  self->decoder = Decoder();
  peer->data = self;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(peer),
      [](uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
        auto* impl = static_cast<Impl*>(handle->data);
        *buf = uv_buf_init(impl->buffer, sizeof impl->buffer);
      },
      &Impl::on_read);
}

void Offer::Impl::on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<Impl*>(stream->data);
  if (n < 0) return self->drop_peer(n == UV_EOF ? "it closed the connection" : uv_strerror(static_cast<int>(n)));
  self->decoder.feed(std::string_view(buf->base, static_cast<size_t>(n)));
  std::string message;
  for (;;) {
    switch (self->decoder.next(message)) {
      case Decoder::Status::kNeedMore:
        return;
      case Decoder::Status::kBad:
        return self->drop_peer("it sent a malformed message");
      case Decoder::Status::kMessage:
        self->handle(message);
        // A "ready" may have closed everything: nothing more is read from this buffer.
        if (!self->peer || self->closed) return;
    }
  }
}

void Offer::Impl::handle(const std::string& message) {
  asked = true;
  uv_os_fd_t fd = -1;
  uv_fileno(reinterpret_cast<uv_handle_t*>(peer), &fd);
  std::string error;
  if (message == "takeover 1" && !offered) {
    const std::vector<Offered> offer = sockets();
    if (offer.empty()) {
      send_message(fd, "refused this process is stopping", -1, error);
      return drop_peer("this process is stopping");
    }
    for (const Offered& socket : offer) {
      const std::string what = (socket.kind == Kind::kListen ? "listen " : "admin ") + bound_address_text(socket.fd);
      if (!send_message(fd, what, socket.fd, error)) return drop_peer(error.c_str());
    }
    if (!send_message(fd, "end " + std::to_string(offer.size()), -1, error)) return drop_peer(error.c_str());
    offered = true;
    edge::log::info("edge: upgrade: %zu listening sockets sent to pid %ld; serving on until it is ready",
                    offer.size(), static_cast<long>(peer_pid));
    return;
  }
  if (message == "ready" && offered) {
    edge::log::info("edge: upgrade: pid %ld serves now", static_cast<long>(peer_pid));
    offered = false;
    drop_peer(nullptr);
    return on_ready();
  }
  drop_peer(("it sent an unexpected message '" + message.substr(0, 80) + "'").c_str());
}

void Offer::Impl::drop_peer(const char* why) {
  if (!peer) return;
  uv_timer_stop(&peer_timer);
  // A peer that left without asking anything was only looking (another edge's probe).
  if (why && (offered || asked))
    edge::log::warn("edge: upgrade: pid %ld did not take over (%s); this process serves on",
                    static_cast<long>(peer_pid), why);
  uv_close(reinterpret_cast<uv_handle_t*>(peer), [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_pipe_t*>(h); });
  peer = nullptr;
}

}  // namespace edge::proxy::handoff
