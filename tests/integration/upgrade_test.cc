// A binary upgrade: a new edge started with --takeover takes the listening sockets over from the
// running one (its upgrade_socket), which then drains and exits 0, while clients go on sending.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

std::string config_template(uint16_t app_port, int workers) {
  return "upgrade_socket: upgrade.sock\n" + single_backend_config(yaml_address(app_port), "", "", workers);
}

std::string with_port(std::string text, uint16_t port) {
  const std::string marker = "{{port}}";
  text.replace(text.find(marker), marker.size(), std::to_string(port));
  return text;
}

// What the client threads saw. A failure is a request without its whole 200 and body: a refused
// connection, a reset or a wrong answer.
struct Load {
  std::atomic<bool> stop{false};
  std::atomic<long> ok{0};
  std::atomic<long> failed{0};
  std::atomic<long> posts{0};
  // GETs sent on a reused keep-alive connection that the server had closed as idle before
  // reading them (no byte of an answer), sent again on a new connection, as RFC 9112 9.3.1
  // lets any client do for an idempotent request.
  std::atomic<long> resent{0};
  std::mutex mutex;
  std::vector<std::string> failures;

  void fail(const std::string& what) {
    failed.fetch_add(1);
    std::lock_guard lock(mutex);
    if (failures.size() < 20) failures.push_back(what);
  }
};

std::string pattern(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>('a' + i % 26);
  return out;
}

// One client thread: keep-alive GETs on one connection, GETs on a new connection each, and a
// POST on a new connection now and then.
void client_loop(uint16_t port, int id, Load& load) {
  std::unique_ptr<Client> kept;
  for (uint64_t n = 0; !load.stop.load(); ++n) {
    const std::string tag = std::to_string(id) + "-" + std::to_string(n);
    const size_t size = 100 + n % 900;
    const std::string get = "GET /bytes?n=" + std::to_string(size) + "&t=" + tag + " HTTP/1.1\r\nHost: a\r\n\r\n";
    const int kind = static_cast<int>(n % 8);
    if (kind == 7) {
      const std::string body = "post " + tag;
      Client fresh(port, std::chrono::seconds(20));
      if (!fresh.connected()) {
        load.fail("POST " + tag + ": connection refused");
        continue;
      }
      fresh.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
      Response r = fresh.read_response();
      if (r.complete && r.status == 200 && r.body.find(body) != std::string::npos) {
        load.ok.fetch_add(1);
        load.posts.fetch_add(1);
      } else {
        load.fail("POST " + tag + ": status " + std::to_string(r.status) + (r.complete ? "" : ", incomplete"));
      }
      continue;
    }
    const bool keep_alive = kind < 5;
    bool reused = keep_alive && kept && kept->connected();
    if (!keep_alive || !reused) kept = std::make_unique<Client>(port, std::chrono::seconds(20));
    if (!kept->connected()) {
      load.fail("GET " + tag + ": connection refused");
      kept.reset();
      continue;
    }
    kept->send(get);
    Response r = kept->read_response();
    if (reused && !r.complete && r.status == 0) {
      load.resent.fetch_add(1);
      kept = std::make_unique<Client>(port, std::chrono::seconds(20));
      if (!kept->connected()) {
        load.fail("GET " + tag + " (resent): connection refused");
        kept.reset();
        continue;
      }
      kept->send(get);
      r = kept->read_response();
    }
    if (r.complete && r.status == 200 && r.body == pattern(size)) {
      load.ok.fetch_add(1);
    } else {
      load.fail("GET " + tag + ": status " + std::to_string(r.status) + (r.complete ? "" : ", incomplete"));
    }
    if (!keep_alive || !r.complete || r.header("Connection") == std::string_view("close")) kept.reset();
  }
}

// Polls (generous cap) until `condition` holds.
template <typename Condition>
bool eventually(Condition condition) {
  for (int i = 0; i < 6000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a takeover under load: the old edge drains and exits 0, no request fails, the new one serves") {
  App app("a");
  // The new process has fewer workers than the old one: one of its workers takes two sockets.
  const std::string old_template = config_template(app.port, 3);
  Edge old_edge(old_template);
  const std::string new_config = old_edge.dir.write("new.yaml", with_port(config_template(app.port, 2), old_edge.port));

  Load load;
  std::vector<std::thread> clients;
  for (int id = 0; id < 4; ++id) clients.emplace_back(client_loop, old_edge.port, id, std::ref(load));
  CHECK(eventually([&] { return load.ok.load() >= 300; }));

  Process new_edge(edge_bin(), {"--config", new_config, "--takeover", old_edge.dir.path() + "/upgrade.sock"});
  wait_for_line(new_edge, "edge: upgrade: serving in place of the previous process", "new edge");
  CHECK(old_edge.process.wait(std::chrono::seconds(40)) == 0);
  const long at_exit = load.ok.load();
  // The new process alone serves from here on.
  CHECK(eventually([&] { return load.ok.load() >= at_exit + 300; }));
  load.stop = true;
  for (std::thread& t : clients) t.join();

  std::string failures;
  for (const std::string& f : load.failures) failures += f + "\n";
  INFO("requests answered: ", load.ok.load(), ", resent after an idle close: ", load.resent.load(), "\n", failures);
  CHECK(load.failed.load() == 0);
  CHECK(load.posts.load() > 0);

  const std::string old_log = old_edge.process.output();
  CHECK(contains(old_log, "edge: upgrade: 3 listening sockets sent to pid"));
  CHECK(contains(old_log, "edge: stopping (upgrade)"));
  const std::string new_log = new_edge.output();
  CHECK(contains(new_log, "edge: upgrade: 3 listening sockets taken over from"));
  // The next upgrade finds the new process at the same path; the old one's exit left it there.
  Response r = get(old_edge.port, "a", "/bytes?n=10");
  CHECK(r.status == 200);
  Process probe(edge_bin(), {"--config", new_config});
  CHECK(probe.wait(std::chrono::seconds(20)) == 1);
  CHECK(contains(probe.output(), "address already in use by another process"));
  new_edge.kill(SIGTERM);
  CHECK(new_edge.wait(std::chrono::seconds(40)) == 0);
}

TEST_CASE("--takeover where nobody offers sockets fails with a clear message and exit code 1") {
  App app("a");
  TempDir dir;
  const std::string config = dir.write("edge.yaml", with_port(config_template(app.port, 1), 0));

  Process nothing(edge_bin(), {"--config", config, "--takeover", dir.path() + "/absent.sock"});
  CHECK(nothing.wait(std::chrono::seconds(20)) == 1);
  CHECK(contains(nothing.output(), "edge: cannot take over from " + dir.path() + "/absent.sock: No such file"));
  CHECK(contains(nothing.output(), "no edge offers its sockets there"));

  // A socket file whose process is gone: connections are refused.
  const std::string stale = dir.path() + "/stale.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, stale.c_str(), stale.size());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  ::close(fd);
  Process refused(edge_bin(), {"--config", config, "--takeover", stale});
  CHECK(refused.wait(std::chrono::seconds(20)) == 1);
  CHECK(contains(refused.output(), "edge: cannot take over from " + stale + ": Connection refused"));
}

TEST_CASE("without --takeover a second edge is refused: on the same port, and on the same upgrade_socket") {
  App app("a");
  Edge running(config_template(app.port, 1));
  const std::string same_port = running.dir.write("same-port.yaml", with_port(config_template(app.port, 1), running.port));
  Process second(edge_bin(), {"--config", same_port});
  CHECK(second.wait(std::chrono::seconds(20)) == 1);
  CHECK(contains(second.output(), "cannot listen on 127.0.0.1:" + std::to_string(running.port) +
                                      ": address already in use by another process"));

  // Another port, the same upgrade_socket: one process offers there at a time.
  const std::string same_socket = running.dir.write("same-socket.yaml", with_port(config_template(app.port, 1), 0));
  Process third(edge_bin(), {"--config", same_socket});
  CHECK(third.wait(std::chrono::seconds(20)) == 1);
  CHECK(contains(third.output(), "upgrade_socket: another process offers its sockets at " + running.dir.path() +
                                     "/upgrade.sock"));
  CHECK(get(running.port, "a", "/bytes?n=10").status == 200);
  // A stale socket file (the running edge's own, still there) does not stop the running edge.
  CHECK_FALSE(contains(running.process.output(), "warn"));
}

TEST_CASE("a new process that fails before it is ready leaves the old one serving") {
  App app("a");
  Edge old_edge(config_template(app.port, 2));
  // The new process takes the sockets, then fails at its admin port, held by someone else.
  int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(holder, 1) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string token = old_edge.dir.write("admin.token", "secret-token-for-the-test\n");
  const std::string config = old_edge.dir.write(
      "new.yaml", with_port(config_template(app.port, 1), old_edge.port) + "admin:\n  address: 127.0.0.1:" +
                      std::to_string(ntohs(addr.sin_port)) + "\n  token_file: admin.token\n");
  Process new_edge(edge_bin(), {"--config", config, "--takeover", old_edge.dir.path() + "/upgrade.sock"});
  CHECK(new_edge.wait(std::chrono::seconds(20)) == 1);
  ::close(holder);
  wait_for_line(old_edge.process, "edge: upgrade: pid", "old edge");
  CHECK(eventually([&] { return contains(old_edge.process.output(), "did not take over"); }));
  CHECK(old_edge.process.running());
  CHECK(get(old_edge.port, "a", "/bytes?n=10").status == 200);
  CHECK_FALSE(contains(old_edge.process.output(), "edge: stopping"));
  // The failed process left nothing at the path but the old one's socket, which still answers.
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(old_edge.dir.path()))
    if (contains(entry.path().filename().string(), "upgrade.sock")) files.push_back(entry.path().filename().string());
  CHECK(files == std::vector<std::string>{"upgrade.sock"});
  const std::string good = old_edge.dir.write("good.yaml", with_port(config_template(app.port, 1), old_edge.port));
  Process next(edge_bin(), {"--config", good, "--takeover", old_edge.dir.path() + "/upgrade.sock"});
  wait_for_line(next, "edge: upgrade: serving in place of the previous process", "new edge");
  CHECK(old_edge.process.wait(std::chrono::seconds(40)) == 0);
  CHECK(get(old_edge.port, "a", "/bytes?n=10").status == 200);
  next.kill(SIGTERM);
  CHECK(next.wait(std::chrono::seconds(40)) == 0);
}

TEST_CASE("a takeover keeps the admin port and the addresses still configured, binds new ones, closes the others") {
  App app("a");
  ReservedPort admin_port;
  TempDir secrets;
  const std::string token_path = secrets.write("admin.token", "a-token-long-enough-for-the-admin-port\n");
  const std::string backend = single_backend_config(yaml_address(app.port), "", "", 2);
  const std::string admin = "admin:\n  address: 127.0.0.1:" + std::to_string(admin_port.port()) +
                            "\n  token_file: " + token_path + "\n";
  const std::string listen_line = "listen: [{address: \"127.0.0.1:{{port}}\"}]\n";
  const std::string both = "listen: [{address: \"127.0.0.1:{{port}}\"}, {address: \"127.0.0.1:0\"}]\n";
  std::string old_config = "upgrade_socket: upgrade.sock\n" + backend + admin;
  old_config.replace(old_config.find(listen_line), listen_line.size(), both);
  Edge old_edge(old_config);
  REQUIRE(old_edge.ports.size() == 2);
  const uint16_t kept = old_edge.ports[0];
  const uint16_t dropped = old_edge.ports[1];

  // The new one keeps the first address, drops the second and adds one of port 0.
  std::string new_config = "upgrade_socket: upgrade.sock\n" + backend + admin;
  new_config.replace(new_config.find(listen_line), listen_line.size(),
                     "listen: [{address: \"127.0.0.1:" + std::to_string(kept) + "\"}, {address: \"127.0.0.1:0\"}]\n");
  const std::string path = old_edge.dir.write("new.yaml", new_config);
  Process new_edge(edge_bin(), {"--config", path, "--takeover", old_edge.dir.path() + "/upgrade.sock"});
  wait_for_line(new_edge, "edge: upgrade: serving in place of the previous process", "new edge");
  CHECK(old_edge.process.wait(std::chrono::seconds(40)) == 0);
  const std::string said = new_edge.output();
  CHECK(contains(said, "edge: upgrade: 5 listening sockets taken over"));
  CHECK(contains(said, "edge: upgrade: 127.0.0.1:" + std::to_string(dropped) +
                           " is not in the configuration any more: its 2 sockets are closed"));
  CHECK(contains(said, "edge: admin listening on 127.0.0.1:" + std::to_string(admin_port.port())));
  CHECK(get(kept, "a", "/bytes?n=10").status == 200);
  CHECK_FALSE(Client(dropped, std::chrono::seconds(1)).connected());
  Client admin_client(admin_port.port());
  REQUIRE(admin_client.connected());
  admin_client.send("GET /stats HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a-token-long-enough-for-the-admin-port\r\n\r\n");
  CHECK(admin_client.read_response().status == 200);
  new_edge.kill(SIGTERM);
  CHECK(new_edge.wait(std::chrono::seconds(40)) == 0);
}

TEST_CASE("a takeover after reloads: the listener a reload added is offered, the one it removed is not") {
  App app("a");
  const uint16_t added = free_port();
  const uint16_t dropped = free_port();
  auto listening_on = [&](uint16_t main_port, std::vector<uint16_t> extra) {
    std::string text = with_port(config_template(app.port, 2), main_port);
    std::string entries = "[{address: \"127.0.0.1:" + std::to_string(main_port) + "\"}";
    for (uint16_t port : extra) entries += ", {address: \"127.0.0.1:" + std::to_string(port) + "\"}";
    entries += "]";
    const std::string old_list = "[{address: \"127.0.0.1:" + std::to_string(main_port) + "\"}]";
    text.replace(text.find(old_list), old_list.size(), entries);
    return text;
  };
  Edge old_edge(config_template(app.port, 2));
  auto reload = [&](const std::string& text) {
    std::ofstream(old_edge.config_path, std::ios::trunc) << text;
    old_edge.process.kill(SIGHUP);
  };
  reload(listening_on(old_edge.port, {dropped}));
  wait_for_line(old_edge.process, "edge: reload: listener added: 127.0.0.1:" + std::to_string(dropped), "edge");
  REQUIRE(get(dropped, "a", "/bytes?n=5").status == 200);
  reload(listening_on(old_edge.port, {added}));
  wait_for_line(old_edge.process, "edge: reload: listener removed: 127.0.0.1:" + std::to_string(dropped), "edge");
  REQUIRE(get(added, "a", "/bytes?n=5").status == 200);

  const std::string new_config = old_edge.dir.write("new.yaml", listening_on(old_edge.port, {added}));
  Process new_edge(edge_bin(), {"--config", new_config, "--takeover", old_edge.dir.path() + "/upgrade.sock"});
  wait_for_line(new_edge, "edge: upgrade: serving in place of the previous process", "new edge");
  CHECK(old_edge.process.wait(std::chrono::seconds(40)) == 0);
  // Two workers' sockets for each of the two addresses, and none for the one removed.
  CHECK(contains(new_edge.output(), "edge: upgrade: 4 listening sockets taken over from"));
  CHECK_FALSE(contains(new_edge.output(), "is not in the configuration any more"));
  CHECK(get(added, "a", "/bytes?n=5").status == 200);
  CHECK(get(old_edge.port, "a", "/bytes?n=5").status == 200);
  CHECK_FALSE(Client(dropped, std::chrono::seconds(2)).connected());
  new_edge.kill(SIGTERM);
  CHECK(new_edge.wait(std::chrono::seconds(40)) == 0);
}
