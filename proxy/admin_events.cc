#include "proxy/admin_events.h"

#include <chrono>

#include "proxy/admin_render.h"

namespace edge::proxy::admin {

void EventRing::add(int64_t at_ms, std::string_view kind, std::string_view detail) {
  if (detail.size() > kMaxDetail) detail = detail.substr(0, kMaxDetail);
  events_.push_front(AdminEvent{at_ms, std::string(kind), std::string(detail)});
  if (events_.size() > kCapacity) events_.pop_back();
}

std::string EventRing::render_json() const {
  std::string out = "{\"events\":[";
  bool first = true;
  for (const AdminEvent& event : events_) {
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"at\":").append(std::to_string(event.at_ms));
    out.append(",\"kind\":").append(json_string(event.kind));
    out.append(",\"detail\":").append(json_string(event.detail)).push_back('}');
  }
  out.append("]}\n");
  return out;
}

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace edge::proxy::admin
