// Upgrade tunnels (proxy/tunnel.h): a WebSocket through edge to edge-app's /ws echo, frames both
// ways, the backend's close, the idle timeout, a stop, the backend's max_conns held while open,
// and the upgrades a route does not allow, which never reach the backend.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

std::string config(uint16_t app_port, const std::string& extra = "", const std::string& server_extra = "") {
  return "workers: 1\nlisten: [{address: \"127.0.0.1:{{port}}\"}]\nlimits: {tunnel_idle_timeout: 2s}\n" + extra +
         "backends:\n  app:\n    queue: {max: 8, timeout: 300ms}\n    servers: [{address: \"127.0.0.1:" +
         std::to_string(app_port) + "\"" + server_extra +
         "}]\nhosts:\n  - match: [\"*\"]\n    backend: app\n    routes:\n      - {path: /plain/, upgrade: off}\n";
}

// A WebSocket opened through edge: the 101 read, checked.
void open_socket(Client& client, const std::string& target) {
  REQUIRE(client.send(ws_handshake("example.com", target)));
  Response r = client.read_response();
  REQUIRE(r.status == 101);
  CHECK(r.upgrade == "websocket");
  CHECK(r.header("Sec-WebSocket-Accept") == kWsAccept);  // the backend's, passed through
}

}  // namespace

TEST_CASE("a WebSocket through edge: messages both ways, large ones, ping, and the close handshake") {
  App app("ws-app");
  Edge edge(config(app.port));
  Client client(edge.port);
  open_socket(client, "/ws?greeting=hello");
  std::optional<WsFrame> frame = read_ws_frame(client);  // the backend speaks first
  REQUIRE(frame);
  CHECK(frame->opcode == 1);
  CHECK(frame->payload == "hello");
  CHECK_FALSE(frame->masked);

  REQUIRE(client.send(ws_frame(1, "through edge")));
  frame = read_ws_frame(client);
  REQUIRE(frame);
  CHECK(frame->payload == "through edge");

  // Larger than the tunnel's backlog both ways: back-pressure, not loss.
  std::string big(700 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  REQUIRE(client.send(ws_frame(2, big)));
  frame = read_ws_frame(client);
  REQUIRE(frame);
  CHECK(frame->opcode == 2);
  CHECK(frame->payload == big);

  REQUIRE(client.send(ws_frame(9, "are you there")));
  frame = read_ws_frame(client);
  REQUIRE(frame);
  CHECK(frame->opcode == 10);
  CHECK(frame->payload == "are you there");

  REQUIRE(client.send(ws_frame(8, std::string("\x03\xe8", 2))));
  frame = read_ws_frame(client);
  REQUIRE(frame);
  CHECK(frame->opcode == 8);
  CHECK(frame->payload == std::string("\x03\xe8", 2));
  CHECK(client.wait_closed());  // the backend closed: so does edge, after the frame

  // The tunnel is gone: edge serves the next client.
  CHECK(get(edge.port, "example.com", "/health").status == 200);
}

TEST_CASE("a backend that closes its side ends the tunnel, after what it sent") {
  App app("ws-app");
  Edge edge(config(app.port));
  Client client(edge.port);
  open_socket(client, "/ws?close_after=1");
  REQUIRE(client.send(ws_frame(1, "only one")));
  std::optional<WsFrame> echo = read_ws_frame(client);
  REQUIRE(echo);
  CHECK(echo->payload == "only one");
  std::optional<WsFrame> goodbye = read_ws_frame(client);
  REQUIRE(goodbye);
  CHECK(goodbye->opcode == 8);
  CHECK(client.wait_closed());
}

TEST_CASE("an idle tunnel is closed after tunnel_idle_timeout, and a busy one is not") {
  App app("ws-app");
  Edge edge(config(app.port));
  Client busy(edge.port);
  open_socket(busy, "/ws");
  // Traffic far more often than the timeout keeps it open past two of them.
  for (int i = 0; i < 20; ++i) {
    REQUIRE(busy.send(ws_frame(1, "tick")));
    std::optional<WsFrame> echo = read_ws_frame(busy);
    REQUIRE(echo);
    CHECK(echo->payload == "tick");
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  Client idle(edge.port);
  open_socket(idle, "/ws");
  CHECK(idle.wait_closed());
}

TEST_CASE("a stop closes the open tunnels, and edge exits cleanly") {
  App app("ws-app");
  auto edge = std::make_unique<Edge>(config(app.port, "", "") + "shutdown_timeout: 20s\n");
  Client client(edge->port);
  open_socket(client, "/ws");
  edge->process.kill(SIGTERM);
  CHECK(client.wait_closed());
  const std::optional<int> status = edge->process.wait(std::chrono::seconds(15));
  REQUIRE(status);
  CHECK(*status == 0);
}

TEST_CASE("an open tunnel holds its server's max_conns slot until it ends") {
  App app("ws-app");
  Edge edge(config(app.port, "", ", max_conns: 1"));
  auto client = std::make_unique<Client>(edge.port);
  open_socket(*client, "/ws");
  // The one slot is the tunnel's: another request waits in the queue, then gets 503.
  Response waited = get(edge.port, "example.com", "/health");
  CHECK(waited.status == 503);
  client->send(ws_frame(8, std::string("\x03\xe8", 2)));
  CHECK(read_ws_frame(*client));
  CHECK(client->wait_closed());
  client.reset();
  CHECK(get(edge.port, "example.com", "/health").status == 200);
}

TEST_CASE("upgrades a route does not allow are plain requests: the backend never sees Upgrade") {
  App app("ws-app");
  Edge edge(config(app.port));
  // h2c is never tunnelled; the request is answered as HTTP/1.1, without Upgrade upstream.
  Response r = exchange(edge.port, "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                                   "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nConnection: close\r\n\r\n");
  CHECK(r.status == 200);
  CHECK(r.body.find("Upgrade") == std::string::npos);
  CHECK(r.body.find("HTTP2-Settings") == std::string::npos);
  // A route with `upgrade: off`: the WebSocket handshake reaches the backend without Upgrade,
  // which refuses it.
  Client client(edge.port);
  client.send(ws_handshake("a", "/plain/ws"));
  r = client.read_response();
  CHECK(r.status == 404);
  CHECK(client.wait_closed());  // it asked to switch: nothing after it is read as HTTP
  // The backend refuses the switch: its answer, then the connection ends.
  Client refused(edge.port);
  refused.send("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n");
  r = refused.read_response();
  CHECK(r.status == 426);
  CHECK(r.header("Connection") == std::string_view("close"));
  CHECK(refused.wait_closed());
  // A POST asking to switch is not a WebSocket handshake: no tunnel.
  r = exchange(edge.port, "POST /echo HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                          "Content-Length: 0\r\n\r\n");
  CHECK(r.status == 200);
}
