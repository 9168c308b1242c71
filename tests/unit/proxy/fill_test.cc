// A fill and its fetch against a scripted backend: a listening socket on 127.0.0.1 driven by the
// worker's own loop, which the test runs in its thread until what it waits for has happened.
#include "proxy/fill.h"

#include <doctest/doctest.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "cache/policy.h"
#include "proxy/worker.h"
#include "tests/unit/proxy/backend_rig.h"

using namespace edge;
using proxy::Fill;

namespace {

using test_rig::FakeBackend;
using test_rig::PassOwner;
using test_rig::Reply;
using test_rig::Rig;

// A request's side of a fill: counts what it is told and reads the state each time.
struct Reader final : proxy::FillSubscriber {
  std::shared_ptr<Fill> fill;
  uint64_t id = 0;
  int events = 0;
  Fill::Snapshot last;
  std::function<void(Reader&)> then;  // after reading

  void on_fill_event() override {
    ++events;
    last = fill->snapshot();
    if (then) then(*this);
  }
  bool over() const { return last.state != Fill::State::kFetching && (last.state != Fill::State::kStreaming || done()); }
  bool done() const { return last.object && (last.object->body->complete() || last.object->body->failed()); }
};

std::shared_ptr<Fill> start(Rig& rig, Fill::Params params, Reader* initiator) {
  bool started = false;
  uint64_t id = 0;
  if (initiator) id = initiator->id = ++rig.last_id;
  std::shared_ptr<Fill> fill = Fill::start(*rig.worker, std::move(params), id, initiator, &started);
  REQUIRE(started);
  if (initiator) initiator->fill = fill;
  return fill;
}

void join(Rig& rig, proxy::Worker& worker, const std::shared_ptr<Fill>& fill, Reader& reader) {
  reader.fill = fill;
  reader.id = ++rig.last_id;
  REQUIRE(fill->subscribe(worker, reader.id, reader));
}

std::string ok(std::string_view cache_control, std::string_view body, std::string_view extra = "") {
  return "HTTP/1.1 200 OK\r\nCache-Control: " + std::string(cache_control) + "\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + std::string(extra) + "\r\n" + std::string(body);
}

cache::ObjectRef stale_object(const std::string& path, std::string_view body) {
  auto object = std::make_shared<cache::CachedObject>();
  object->set_key(cache::cache_key("test.example", path), "test.example", path);
  object->status = 200;
  object->set_reason("OK");
  object->headers.add("ETag", "\"v1\"");
  object->headers.add("Cache-Control", "max-age=1");
  object->cc = cache::parse_cache_control(object->headers, false);
  object->body = http::SharedBody::from(body);
  const cache::Seconds long_ago = static_cast<cache::Seconds>(std::time(nullptr)) - 3600;
  object->age = cache::AgeBasis{long_ago, long_ago, long_ago, 0};
  object->lifetime = 1;
  return object;
}

}  // namespace

TEST_CASE("fill: a storable answer streams to its subscribers and is stored") {
  Rig rig;
  rig.backend.script({ok("max-age=60", "hello world")});
  Reader initiator;
  std::shared_ptr<Fill> fill = start(rig, rig.params("/a"), &initiator);
  CHECK(initiator.events == 0);  // nothing is told from inside start()
  rig.run_until([&] { return initiator.over(); });
  CHECK(initiator.last.state == Fill::State::kStreaming);
  CHECK_FALSE(initiator.last.revalidated);
  CHECK(initiator.last.object->body->to_string() == "hello world");
  cache::ObjectRef stored = rig.stored("/a");
  REQUIRE(stored);
  CHECK(stored->body->to_string() == "hello world");
  CHECK(rig.shared->coalescer.find(fill->key()) == nullptr);
  // Over: nobody joins any more.
  Reader late;
  late.fill = fill;
  CHECK_FALSE(fill->subscribe(*rig.worker, 1, late));
}

TEST_CASE("fill: subscribers on this worker and on another share one fetch") {
  Rig rig;
  rig.backend.script({ok("max-age=60", "shared"), "", false});
  Reader initiator, here, there;
  std::shared_ptr<Fill> fill = start(rig, rig.params("/s"), &initiator);
  REQUIRE(rig.shared->coalescer.find(fill->key()) == fill);
  join(rig, *rig.worker, fill, here);
  join(rig, *rig.other, fill, there);
  rig.run_until([&] { return initiator.over() && here.over(); });
  CHECK(here.last.object == initiator.last.object);
  CHECK(here.events >= 1);
  // The other worker's subscriber hears through its inbox, on its own loop.
  CHECK(there.events == 0);
  rig.run_until([&] { return there.over(); }, rig.other.get());
  CHECK(there.last.object == initiator.last.object);
  CHECK(rig.backend.requests() == 1);
  fill->unsubscribe(*rig.other, there.id);
}

TEST_CASE("fill: a non-storable answer is a pass the initiator takes over; the others fetch alone") {
  Rig rig;
  rig.backend.script({"HTTP/1.1 200 OK\r\nCache-Control: private\r\nContent-Length: 10\r\n\r\nfirst", "-last", true});
  Reader initiator, other;
  PassOwner owner;
  proxy::Fetch* taken = nullptr;
  initiator.then = [&](Reader& r) {
    if (r.last.state != Fill::State::kPass) return;
    Fill::Pass pass = r.fill->take_pass(r.id);
    REQUIRE(pass.fetch);
    CHECK(r.fill->take_pass(r.id).fetch == nullptr);  // once
    r.fill->unsubscribe(*rig.worker, r.id);
    taken = pass.fetch.release();  // PassOwner finishes it
    taken->set_owner(&owner);
    owner.on_fetch_response(*taken, *pass.head, pass.complete);
  };
  other.then = [&](Reader& r) {
    if (r.last.state != Fill::State::kPass) return;
    CHECK(r.fill->take_pass(r.id).fetch == nullptr);  // not the initiator's
    r.fill->unsubscribe(*rig.worker, r.id);
  };
  std::shared_ptr<Fill> fill = start(rig, rig.params("/p"), &initiator);
  join(rig, *rig.worker, fill, other);
  rig.run_until([&] { return taken != nullptr; });
  CHECK(other.last.state == Fill::State::kPass);
  CHECK(owner.status == 200);
  CHECK_FALSE(owner.complete);
  rig.backend.send_rest();
  rig.run_until([&] { return owner.complete; });
  CHECK(owner.body == "first-last");
  CHECK(initiator.events == 1);
  CHECK(other.events == 1);
  CHECK(rig.stored("/p") == nullptr);
  CHECK(rig.hit_for_pass("/p"));
}

TEST_CASE("fill: a pass whose initiator left finishes the fetch") {
  Rig rig;
  rig.backend.script({"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 10\r\n\r\nfirst", "-last", true});
  Reader initiator;
  std::shared_ptr<Fill> fill = start(rig, rig.params("/gone"), &initiator);
  fill->unsubscribe(*rig.worker, initiator.id);
  rig.run_until([&] { return fill->snapshot().state == Fill::State::kPass; });
  CHECK(initiator.events == 0);
  CHECK(fill->take_pass(initiator.id).fetch == nullptr);
}

TEST_CASE("fill: a 304 refreshes the stale object it revalidates") {
  Rig rig;
  rig.backend.script({"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=300\r\n\r\n"});
  cache::ObjectRef stale = stale_object("/r", "old body");
  Reader initiator;
  start(rig, rig.params("/r", stale), &initiator);
  rig.run_until([&] { return initiator.over(); });
  CHECK(initiator.last.state == Fill::State::kStreaming);
  CHECK(initiator.last.revalidated);
  CHECK(initiator.last.object->body == stale->body);
  CHECK(initiator.last.object->lifetime == 300);
  cache::ObjectRef stored = rig.stored("/r");
  REQUIRE(stored);
  CHECK(stored->body->to_string() == "old body");
}

TEST_CASE("fill: a 5xx while revalidating is a pass to the initiator, with the stale object to stand in") {
  Rig rig;
  rig.backend.script({"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown"});
  cache::ObjectRef stale = stale_object("/e", "old body");
  Reader initiator;
  start(rig, rig.params("/e", stale), &initiator);
  rig.run_until([&] { return initiator.over(); });
  CHECK(initiator.last.state == Fill::State::kPass);
  CHECK(initiator.last.status == 503);
  CHECK(initiator.last.stale == stale);
  CHECK_FALSE(rig.hit_for_pass("/e"));
}

TEST_CASE("fill: a backend that resets fails with 502") {
  Rig rig;
  Reply reset;
  reset.reset = true;
  rig.backend.script(reset);
  Reader initiator;
  std::shared_ptr<Fill> fill = start(rig, rig.params("/x"), &initiator);
  rig.run_until([&] { return initiator.over(); });
  CHECK(initiator.last.state == Fill::State::kFailed);
  CHECK(initiator.last.status == 502);
  CHECK(initiator.last.stale == nullptr);
  CHECK(rig.shared->coalescer.find(fill->key()) == nullptr);
}

TEST_CASE("fill: a subscriber that left is never told again, even by a fill telling the others") {
  Rig rig;
  rig.backend.script({ok("max-age=60", "0123456789", ""), "", false});
  Reader initiator, leaves_early, dropped, stays;
  std::shared_ptr<Fill> fill = start(rig, rig.params("/l"), &initiator);
  join(rig, *rig.worker, fill, leaves_early);
  join(rig, *rig.worker, fill, dropped);
  join(rig, *rig.worker, fill, stays);
  fill->unsubscribe(*rig.worker, leaves_early.id);
  // Told first, the initiator leaves and takes `dropped` with it (as a request ending others
  // on its connection would), while the fill is telling everyone.
  initiator.then = [&](Reader& r) {
    r.fill->unsubscribe(*rig.worker, r.id);
    fill->unsubscribe(*rig.worker, dropped.id);
  };
  rig.run_until([&] { return stays.over(); });
  CHECK(initiator.events == 1);
  CHECK(leaves_early.events == 0);
  CHECK(dropped.events == 0);
  CHECK(stays.last.state == Fill::State::kStreaming);
}

TEST_CASE("fill: the route's streak hears what each response proved") {
  proxy::RouteStreak streak;
  // One fill on a fresh rig, its answer `reply`; a pass is left to the fill, which finishes it.
  auto fill_once = [&](const std::string& path, const std::string& reply, cache::ObjectRef stale = nullptr) {
    Rig rig;
    rig.backend.script({reply});
    Reader initiator;
    initiator.then = [&](Reader& r) {
      if (r.last.state == Fill::State::kPass) r.fill->unsubscribe(*rig.worker, r.id);
    };
    Fill::Params params = rig.params(path, std::move(stale));
    params.streak = &streak;
    start(rig, std::move(params), &initiator);
    rig.run_until([&] { return initiator.over(); });
  };
  fill_once("/a", ok("no-store", "x"));
  CHECK(streak.count() == 1u);
  fill_once("/b", ok("private, max-age=60", "x"));
  CHECK(streak.count() == 2u);
  fill_once("/c", ok("max-age=60", "x", "Set-Cookie: id=1\r\n"));
  CHECK(streak.count() == 3u);
  // Backend trouble says nothing about the route, even when its fields refuse storing.
  fill_once("/d", "HTTP/1.1 503 Service Unavailable\r\nCache-Control: no-store\r\nContent-Length: 4\r\n\r\ndown");
  CHECK(streak.count() == 3u);
  // A stored object resets it, and so does a 304 that refreshes one.
  fill_once("/e", ok("max-age=60", "stored"));
  CHECK(streak.count() == 0u);
  fill_once("/f", ok("no-store", "x"));
  REQUIRE(streak.count() == 1u);
  fill_once("/r", "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=300\r\n\r\n", stale_object("/r", "old"));
  CHECK(streak.count() == 0u);
}
