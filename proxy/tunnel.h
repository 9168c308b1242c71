// proxy/tunnel: an upgraded connection (WebSocket, or another protocol a route lets through)
// once the backend's 101 is written: bytes relayed both ways, as they come, until either side
// ends.
//
// Each direction has one write in flight and a backlog behind it; past kMaxBacklog the side that
// feeds it is not read until the write completes, so a slow reader holds at most that much of
// the fast writer's bytes in edge. When either side ends or fails, what is already on its way to
// the other side is written, then both close: a WebSocket says goodbye in its own frames, so no
// half-closed tunnel is kept.
//
// The client side stays the ClientConn's (its connection, counted in max_connections and its
// close reasons, its timer for the idle timeout); the Tunnel reads it through the ClientConn
// (from_client(), client_ended()) and writes to its transport. The backend side is the Tunnel's:
// it owns that transport and holds the server's balancer slot (max_conns) until it ends.
//
// Ownership: made with new; owns itself. The ClientConn lets go of it with detach() (from its
// on_close, or when the tunnel told it to finish): the Tunnel then never calls it again, closes
// the backend's transport, and deletes itself once that close completes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "http/transport.h"
#include "proxy/fetch.h"

namespace edge::proxy {

class Worker;

// Closes a transport nobody reads any more, and frees it once the close completes.
void close_transport(std::unique_ptr<http::Transport> transport);
// A 101's connection nobody tunnels: closed, and its balancer slot released.
void abandon_upgraded(Fetch::Upgraded upstream);

class Tunnel final : http::Transport::Reader, http::Transport::Closed {
 public:
  static constexpr size_t kMaxBacklog = 256 * 1024;

  class Client {
   public:
    virtual http::Transport& client_transport() = 0;
    virtual void pause_client(bool paused) = 0;
    // The tunnel is over: every byte for the client is written (`clean`), or one side failed.
    // The client closes its connection; it calls detach() from its on_close.
    virtual void tunnel_over(bool clean) = 0;

   protected:
    ~Client() = default;
  };

  Tunnel(Worker& worker, Client& client, Fetch::Upgraded upstream);
  Tunnel(const Tunnel&) = delete;
  Tunnel& operator=(const Tunnel&) = delete;

  // The 101 is written: the backend's bytes so far go to the client, and both sides are read.
  void start();
  void from_client(std::string_view data);
  void client_ended();
  // The ClientConn is closing: nothing more to it; the backend side closes.
  void detach();
  uint64_t last_activity_ms() const { return last_activity_ms_; }

 private:
  // One direction: bytes written to `to` from `flight`, `backlog` behind it.
  struct Direction final : http::Output::WriteDone {
    Tunnel* tunnel = nullptr;
    bool toward_client = false;
    std::string flight;   // being written; stays put until on_written
    std::string backlog;  // arrived while a write was in flight
    bool writing = false;
    bool source_ended = false;
    void on_written(int status) override;
    bool idle() const { return !writing && backlog.empty(); }
  };

  ~Tunnel();
  http::Output* target(const Direction& d);
  void push(Direction& d, std::string_view data);
  void write_next(Direction& d);
  void throttle(const Direction& d);
  void check_end();
  void fail();
  void on_data(const char* data, size_t len) override;  // the backend's
  void on_end(int status) override;
  void on_closed() override;

  Worker& worker_;
  Client* client_;  // null once detached
  Fetch::Upgraded upstream_;
  Direction to_client_;
  Direction to_backend_;
  uint64_t last_activity_ms_ = 0;
  bool started_ = false;
  bool upstream_reading_ = false;
  bool client_paused_ = false;
  bool over_ = false;     // the client was told
  bool closing_ = false;  // the backend's transport is closing
};

}  // namespace edge::proxy
