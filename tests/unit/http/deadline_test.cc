// Deadlines on a clock the test moves: they fire when the clock passes them, earliest first,
// never by themselves; moving one later or clearing it is honoured.
#include "http/deadline.h"

#include <doctest/doctest.h>
#include <uv.h>

#include <string>

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
    for (Fired* f : {&a, &b, &c}) uv_close(f->deadline.handle(), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  CHECK(uv_loop_close(&loop) == 0);
}
