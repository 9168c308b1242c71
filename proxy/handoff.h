// proxy/handoff: a binary upgrade. The running edge offers its listening sockets on a Unix socket
// (`upgrade_socket`); a new edge started with `--takeover PATH` connects there, receives every
// one of them (SCM_RIGHTS) and, once its own workers accept on them, says "ready": the old
// process then drains as on SIGTERM. Nothing is ever closed in between, so no connection queued
// in a listening socket is lost.
//
// The exchange, every message a frame (below) of text:
//   new -> old   "takeover 1"                       (the protocol's version)
//   old -> new   "listen 127.0.0.1:8080"  + a fd    one per listening socket (every worker's)
//                "admin 127.0.0.1:9090"   + a fd    the admin port's, when there is one
//                "end N"                            N: the sockets sent
//   new -> old   "ready"                            the new process serves
// or, instead of the sockets, "refused REASON" (the old process is draining already). A new
// process that closes the connection before "ready" changes nothing for the old one.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edge::proxy::handoff {

// A frame: the payload's length as 4 bytes, big-endian, then the payload. A frame may carry one
// file descriptor, attached to its first byte. A payload is at most kMaxMessage bytes.
constexpr size_t kMaxMessage = 4096;
std::string frame(std::string_view message);

// Cuts frames out of a byte stream read in pieces of any size.
class Decoder {
 public:
  enum class Status { kMessage, kNeedMore, kBad };
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  // kMessage: `message` is the next payload; kBad: a length over kMaxMessage (the stream is
  // unusable from there on).
  Status next(std::string& message);

 private:
  std::string buffer_;
};

// Writes one frame to a connected stream socket, with `pass_fd` attached unless it is -1 (the
// sender keeps its own descriptor). Waits up to a few seconds for room on a non-blocking socket.
// false with `error` set when it cannot.
bool send_message(int socket, std::string_view message, int pass_fd, std::string& error);
// Reads one frame from a blocking socket: `message` gets its payload, `received_fd` the
// descriptor it carried (the caller owns it) or -1. false with `error` on EOF or an error.
bool receive_message(int socket, std::string& message, int& received_fd, std::string& error);

// "127.0.0.1:8080" or "[::1]:8080": what a listening socket is bound to (getsockname).
std::string bound_address_text(int fd);

enum class Kind { kListen, kAdmin };

// A listening socket as the old process offers it: a descriptor it keeps owning.
struct Offered {
  Kind kind;
  int fd;
};

// A listening socket taken over: the new process owns `fd` until it hands it on (to a worker or
// the admin port) and sets it to -1.
struct Inherited {
  Kind kind;
  std::string address;  // as bound_address_text() says
  sockaddr_storage storage{};  // getsockname's
  int fd = -1;
};

// The new process's side of a takeover: the sockets received and the connection to the old
// process, which stays open until ready(). Closes whatever it still owns when destroyed.
class Takeover {
 public:
  Takeover() = default;
  ~Takeover();
  Takeover(Takeover&& other) noexcept;
  Takeover& operator=(Takeover&& other) noexcept;
  Takeover(const Takeover&) = delete;
  Takeover& operator=(const Takeover&) = delete;

  // Connects to `path` and receives every socket the old process offers. false with `error`
  // (which names the path) when nobody answers there or the exchange fails; then nothing is held.
  bool connect(const std::string& path, std::string& error);
  bool active() const { return connection_ >= 0; }
  std::vector<Inherited>& sockets() { return sockets_; }
  // Tells the old process to drain, and closes the connection. false with `error` when it is
  // gone already.
  bool ready(std::string& error);

 private:
  void release();
  std::string path_;
  int connection_ = -1;
  std::vector<Inherited> sockets_;
};

// The running process's side: the Unix socket where it offers its listening sockets, on the
// main loop. One connection at a time is served, and let go when it is not ready within 60 s;
// the socket file is created with mode 0600 and removed by close() (unless another process has
// put its own there since).
class Offer {
 public:
  // `sockets` is called for each request and returns the descriptors to offer (the caller keeps
  // them open while the offer is open); an empty answer refuses. `on_ready` runs on the loop
  // when a new process said "ready"; the offer is closed by then.
  Offer(std::function<std::vector<Offered>()> sockets, std::function<void()> on_ready);
  ~Offer();
  Offer(const Offer&) = delete;
  Offer& operator=(const Offer&) = delete;

  // Binds and listens (no loop needed yet). A file left at `path` by a process gone is
  // replaced; a socket where a process still answers is refused with `error`, unless
  // `takeover`: then this process binds beside it and publish() puts its socket in its place.
  bool bind(const std::string& path, bool takeover, std::string& error);
  // Starts accepting on `loop` (after bind()).
  void start(uv_loop_t* loop);
  // After a takeover: this process's socket replaces the old process's at `path` (rename).
  void publish();
  // Stops offering: the listener and any connection close; the loop must run afterwards, and
  // before the Offer is destroyed.
  void close();
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

}  // namespace edge::proxy::handoff
