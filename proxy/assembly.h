// proxy/assembly: a page assembled from its compiled ESI/SSI template and its includes.
//
// Every include of a level starts at once, each a sub-request through the cache path (an
// Exchange: its own key, freshness, coalescing and purges). The output is one BodySource that
// the client's writer reads in order: the template's text, then each include's body as it
// arrives (a stored object, a passed response, or a nested assembly); what precedes the first
// unfinished include can go out at once. A failing include (an error status, no answer within
// include_timeout, a loop, too deep, a host not allowed) falls back to its alt, then to nothing
// when it says onerror="continue"; otherwise to nothing and counted, or the page fails, as
// esi.on_error says.
//
// Ownership: the owner (a request, or the parent assembly of a nested one) holds the Assembly
// through the AssemblyHandle start() returns; letting it go calls finish(), and the Assembly
// then frees itself (after its deadline's close completion). It shares the page object and every include's
// object, owns its includes' Exchanges and nested assemblies, and borrows the client's request
// head (the owner keeps it alive).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/store.h"
#include "http/body.h"
#include "http/deadline.h"
#include "http/message.h"
#include "proxy/generation.h"
#include "ssi/template.h"

namespace edge::proxy {

class Worker;
class Assembly;

// An assembly borrowed from start(): finished (it then frees itself) when the handle lets it go.
struct FinishAssembly {
  void operator()(Assembly* assembly) const;
};
using AssemblyHandle = std::unique_ptr<Assembly, FinishAssembly>;

// The compiled template kept with a stored page.
struct CompiledPage final : cache::Attachment {
  explicit CompiledPage(ssi::Template compiled) : page(std::move(compiled)) {}
  uint64_t memory() const override { return page.memory(); }
  ssi::Template page;
};

// Whether a response asks the edge to process ESI (`Surrogate-Control: content="ESI/1.0"`).
bool wants_esi(const http::Headers& headers);
// The compiled template of a stored object, or null.
const ssi::Template* compiled_page(const cache::CachedObject& object);

class Assembly {
 public:
  class Owner {
   public:
    virtual void on_assembly_progress() = 0;  // more output, or more includes resolved
    virtual void on_assembly_failed() = 0;    // the page cannot be completed
   protected:
    ~Owner() = default;
  };

  // What every level of one page shares.
  struct Page {
    GenerationRef generation;  // the page request's: every include routes by it
    const http::RequestHead* client = nullptr;  // the client's request, borrowed
    std::string client_ip;
    bool https = false;  // the client's connection is TLS
    uint32_t includes_left = 0;  // esi.max_includes, counted down across levels
    int host_index = -1;         // the page's host entry (in generation), for the counters
  };

  // `object` must carry a CompiledPage. `host` and `path` locate it (relative srcs resolve
  // against them); `chain` holds the keys of the pages above it, for loop detection.
  static AssemblyHandle start(Worker& worker, Owner* owner, cache::ObjectRef object, std::shared_ptr<Page> page,
                         std::string host, std::string path, int depth, std::vector<std::string> chain);
  void finish();

  const http::BodySource& output() const { return output_; }
  // Every include, at every level below, has its source (bodies may still be arriving).
  bool resolved() const;

 private:
  struct Slot;
  class Output final : public http::BodySource {
   public:
    struct Part {
      const http::BodySource* source = nullptr;  // null until resolved (or empty)
      uint64_t first = 0;
      std::optional<uint64_t> length;  // known: a text range, or a source that completed
      bool resolved = false;
    };
    int peek(uint64_t offset, http::IoSlice* out, int max, size_t max_bytes, std::string& scratch) const override;
    uint64_t size() const override;
    bool complete() const override;
    bool uses_scratch() const override;
    std::vector<Part> parts;

   private:
    uint64_t part_size(const Part& part) const;
    bool part_complete(const Part& part) const;
  };

  Assembly(Worker& worker, Owner* owner, cache::ObjectRef object, std::shared_ptr<Page> page, std::string host,
           std::string path, int depth, std::vector<std::string> chain);
  ~Assembly();
  friend class http::Deadline;  // frees it (finish())
  void begin();
  void start_include(Slot& slot, const std::string& src);
  void include_failed(Slot& slot);
  void fail_page();
  void progress();
  void on_timeout();

  Worker& worker_;
  Owner* owner_;
  cache::ObjectRef object_;
  std::shared_ptr<Page> page_;
  std::string host_;
  std::string path_;
  int depth_;
  std::vector<std::string> chain_;
  std::vector<std::unique_ptr<Slot>> slots_;
  Output output_;
  http::Deadline deadline_;
  bool finished_ = false;
  bool failed_ = false;
};

}  // namespace edge::proxy
