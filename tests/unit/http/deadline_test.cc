// Deadlines on a clock the test moves: they fire when the clock passes them, earliest first,
// never by themselves; moving one later or clearing it is honoured.
#include "http/deadline.h"

#include <doctest/doctest.h>
#include <uv.h>

#include <memory>
#include <string>
#include <vector>

using edge::http::Deadline;
using edge::http::ManualClock;

namespace {
std::string order;  // every deadline's name as it fires
struct Fired {
  std::string log;
  Deadline deadline;
  char name = '?';
};
void fire(void* owner) noexcept {
  auto* f = static_cast<Fired*>(owner);
  f->log.push_back(f->name);
  order.push_back(f->name);
}
}  // namespace

TEST_CASE("deadline: on a ManualClock, deadlines fire as the clock passes them, earliest first") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    ManualClock clock(&loop, 5000);
    Fired a, b, c;
    a.name = 'a';
    b.name = 'b';
    c.name = 'c';
    for (Fired* f : {&a, &b, &c}) f->deadline.init(&loop, &fire, f);
    CHECK(a.deadline.now() == 5000);
    a.deadline.set(300);
    b.deadline.set(100);
    c.deadline.set(200);
    c.deadline.clear();
    uv_run(&loop, UV_RUN_NOWAIT);  // the loop's own time fires nothing
    CHECK(a.log + b.log + c.log == "");
    clock.advance(99);
    CHECK(b.log.empty());
    clock.advance(1);
    CHECK(b.log == "b");
    a.deadline.set(1000);  // moved later: not due at the old time
    clock.advance(250);
    CHECK(a.log.empty());
    clock.advance(1000);
    CHECK(a.log == "a");
    CHECK(c.log.empty());
    CHECK_FALSE(a.deadline.armed());
    order.clear();
    a.deadline.set(20);
    c.deadline.set(10);
    b.deadline.set(15);
    clock.advance(30);
    CHECK(order == "cba");
    for (Fired* f : {&a, &b, &c}) f->deadline.close();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  CHECK(uv_loop_close(&loop) == 0);
}

namespace {
struct Counted {
  Deadline deadline;
  int* freed;
  ~Counted() { ++*freed; }
};
}  // namespace

TEST_CASE("deadline: on the loop's own time, many share one timer and fire earliest first") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    std::vector<std::unique_ptr<Fired>> all;
    for (char name : std::string("edcbaxyz")) {
      all.push_back(std::make_unique<Fired>());
      all.back()->name = name;
      all.back()->deadline.init(&loop, &fire, all.back().get());
    }
    order.clear();
    // e..a due at 5..1 ms; x moved later, y cleared, z closed while armed: none of them fire.
    for (int i = 0; i < 5; ++i) all[i]->deadline.set(static_cast<uint64_t>(5 - i));
    all[5]->deadline.set(1);
    all[5]->deadline.set(8);
    all[6]->deadline.set(2);
    all[6]->deadline.clear();
    all[7]->deadline.set(1);
    all[7]->deadline.close();
    uv_run(&loop, UV_RUN_DEFAULT);  // returns once nothing is armed: the shared timer holds nothing
    CHECK(order == "abcdex");
    CHECK_FALSE(all[0]->deadline.armed());
    // A deadline moved earlier than the one the timer waits for. The loop is turned without
    // waiting: UV_RUN_ONCE would run d's timer on entry when a slow run (a sanitizer's) is
    // already past its millisecond, then wait in the poll for the hour-long one.
    order.clear();
    all[0]->deadline.set(3'600'000);  // an hour: never due while the test runs, however slow
    all[1]->deadline.set(1);
    const uint64_t give_up = uv_now(&loop) + 60'000;  // a broken re-arm fails here, not in ctest
    while (order.empty() && uv_now(&loop) < give_up) uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(order == "d");
    all[0]->deadline.clear();
    for (auto& f : all) f->deadline.close();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  CHECK(uv_loop_close(&loop) == 0);  // the shared timer closed with the last deadline
}

TEST_CASE("deadline: a close's completion comes from the loop, never from inside close()") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  int freed = 0;
  auto* a = new Counted{{}, &freed};
  auto* b = new Counted{{}, &freed};
  a->deadline.init(&loop, [](void*) noexcept {}, a);
  b->deadline.init(&loop, [](void*) noexcept {}, b);
  a->deadline.set(3'600'000);  // armed for an hour: closed, it must not hold the loop (ctest's timeout)
  a->deadline.close_and_delete<Counted>();
  b->deadline.close_and_delete<Counted>();
  CHECK(freed == 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(freed == 2);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("deadline: a loop's teardown stops every deadline and lets the loop close") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  int freed = 0;
  Fired left;  // an owner whose other handles a teardown closed: it must never fire
  left.name = 'l';
  left.deadline.init(&loop, &fire, &left);
  left.deadline.set(1);
  auto* closing = new Counted{{}, &freed};
  closing->deadline.init(&loop, [](void*) noexcept {}, closing);
  Deadline::stop_all(&loop);
  left.deadline.set(1);  // re-arming after the stop is ignored too
  uv_walk(
      &loop,
      [](uv_handle_t* handle, void*) noexcept {
        if (!uv_is_closing(handle) && !Deadline::is_shared_timer(handle)) uv_close(handle, nullptr);
      },
      nullptr);
  closing->deadline.close_and_delete<Counted>();  // an owner closing during the teardown
  order.clear();
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(freed == 1);
  Deadline::release_loop(&loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(order.empty());
  CHECK(uv_loop_close(&loop) == 0);
  left.deadline.close();  // after the loop is gone: frees the queue, touches no handle
}
