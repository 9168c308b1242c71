// proxy/admin_events: what the admin port remembers of recent purges, bans and reloads, for
// GET /events and the status page. Defined in admin_events.cc.
//
// A ring of the last kCapacity events, newest first when rendered:
//   {"events":[{"at":<unix ms>,"kind":"purge"|"ban"|"reload","detail":"..."}, ...]}
// Purges and bans are those asked of this node's admin port (a peer's local=1 ones too, said
// so in the detail); reloads both POST /reload's and SIGHUP's (proxy/server.h), refused ones
// with their errors. Details are free text for people; nothing parses them.
//
// Ownership: the admin server's, on its loop; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace edge::proxy::admin {

struct AdminEvent {
  int64_t at_ms = 0;  // Unix time
  std::string kind;   // "purge", "ban" or "reload"
  std::string detail;
};

class EventRing {
 public:
  static constexpr size_t kCapacity = 50;
  // The detail is cut to kMaxDetail bytes (a reload's list of errors can be long).
  static constexpr size_t kMaxDetail = 2048;

  void add(int64_t at_ms, std::string_view kind, std::string_view detail);
  size_t size() const { return events_.size(); }
  std::string render_json() const;

 private:
  std::deque<AdminEvent> events_;  // newest first
};

// The Unix time in milliseconds, for AdminEvent::at_ms.
int64_t unix_now_ms();

}  // namespace edge::proxy::admin
