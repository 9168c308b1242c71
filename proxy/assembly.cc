#include "proxy/assembly.h"

#include <algorithm>

#include "http/uri.h"
#include "proxy/exchange.h"
#include "proxy/router.h"
#include "proxy/worker.h"

namespace edge::proxy {

bool wants_esi(const http::Headers& headers) {
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!http::iequals(headers.name(i), "Surrogate-Control")) continue;
    std::string_view value = headers.value(i);
    // content="ESI/1.0", possibly among other directives and for other surrogates' targets.
    for (size_t at = value.find("ESI/1.0"); at != std::string_view::npos; at = value.find("ESI/1.0", at + 1))
      if (value.substr(0, at).find("content") != std::string_view::npos) return true;
  }
  return false;
}

const ssi::Template* compiled_page(const cache::CachedObject& object) {
  const auto* compiled = dynamic_cast<const CompiledPage*>(object.attachment().get());
  return compiled ? &compiled->page : nullptr;
}

// ---- one include ----

struct Assembly::Slot final : Exchange::Owner, Assembly::Owner {
  Slot(Assembly& parent_in, size_t part_in, const ssi::Include& include_in, Worker& worker)
      : parent(parent_in), part(part_in), include(include_in), exchange(worker, this) {}

  void on_exchange_object(const cache::ObjectRef& found, const char*) override {
    if (found->status < 200 || found->status >= 300) return failed_before_start();
    object = found;
    if (compiled_page(*found)) {
      // A fragment that is itself a template: its includes are one level deeper.
      std::vector<std::string> chain = parent.chain_;
      chain.push_back(parent.host_ + parent.path_);
      nested = Assembly::start(parent.worker_, this, found, parent.page_, std::string(host), std::string(path),
                               parent.depth_ + 1, std::move(chain));
      return resolve(&nested->output());
    }
    resolve(found->body.get());
  }

  void on_exchange_response(Fetch& fetch, const http::ResponseHead& head, bool) override {
    if (parent.output_.parts[part].resolved) return parent.progress();
    if (head.status < 200 || head.status >= 300) return failed_before_start();
    // The page's output keeps every part whole until the page is written.
    fetch.response_body().keep_whole();
    resolve(&fetch.response_body());
  }

  void on_exchange_progress() override { parent.progress(); }

  void on_exchange_failed(int) override {
    if (parent.output_.parts[part].resolved) return parent.fail_page();  // broke off mid-body
    failed_before_start();
  }

  void on_assembly_progress() override { parent.progress(); }
  void on_assembly_failed() override { parent.fail_page(); }

  void resolve(const http::BodySource* source) {
    Output::Part& p = parent.output_.parts[part];
    p.source = source;
    p.resolved = true;
    parent.progress();
  }

  void failed_before_start() {
    exchange.end();
    object.reset();
    parent.include_failed(*this);
  }

  void end() {
    exchange.end();
    nested.reset();
  }

  Assembly& parent;
  size_t part;
  const ssi::Include& include;  // in the page's template, which the parent keeps alive
  http::RequestHead head;       // a GET of its own, when the page's request was not one
  Exchange exchange;
  cache::ObjectRef object;
  AssemblyHandle nested;
  std::string key;             // host and target of what is asked
  std::string_view host, path;  // views of key
  bool tried_alt = false;
};

// ---- the assembly ----

void FinishAssembly::operator()(Assembly* assembly) const { assembly->finish(); }

AssemblyHandle Assembly::start(Worker& worker, Owner* owner, cache::ObjectRef object, std::shared_ptr<Page> page,
                          std::string host, std::string path, int depth, std::vector<std::string> chain) {
  auto* assembly =
      new Assembly(worker, owner, std::move(object), std::move(page), std::move(host), std::move(path), depth,
                   std::move(chain));
  assembly->begin();
  return AssemblyHandle(assembly);
}

Assembly::Assembly(Worker& worker, Owner* owner, cache::ObjectRef object, std::shared_ptr<Page> page,
                   std::string host, std::string path, int depth, std::vector<std::string> chain)
    : worker_(worker),
      owner_(owner),
      object_(std::move(object)),
      page_(std::move(page)),
      host_(std::move(host)),
      path_(std::move(path)),
      depth_(depth),
      chain_(std::move(chain)) {
  deadline_.init(worker.loop(), [](void* self) noexcept { static_cast<Assembly*>(self)->on_timeout(); }, this);
}

Assembly::~Assembly() = default;

void Assembly::begin() {
  const ssi::Template& compiled = *compiled_page(*object_);
  const http::BodySource* page_body = object_->body.get();
  output_.parts.reserve(compiled.segments.size());
  slots_.reserve(compiled.includes.size());
  for (const ssi::Segment& segment : compiled.segments) {
    Output::Part part;
    if (segment.kind == ssi::Segment::kText) {
      part.source = page_body;
      part.first = segment.offset;
      part.length = segment.length;
      part.resolved = true;
      output_.parts.push_back(part);
      continue;
    }
    output_.parts.push_back(part);
    slots_.push_back(
        std::make_unique<Slot>(*this, output_.parts.size() - 1, compiled.includes[segment.include], worker_));
  }
  // All at once: each include's fetch is under way before the first one answers.
  for (auto& slot : slots_) {
    if (finished_ || failed_) return;
    start_include(*slot, slot->include.src);
  }
  // Includes found in the cache have resolved already; only a page still waiting needs a clock.
  for (auto& slot : slots_)
    if (!output_.parts[slot->part].resolved) {
      deadline_.set(static_cast<uint64_t>(page_->generation->config.esi.include_timeout.count()));
      break;
    }
}

namespace {
bool host_allowed(std::string_view host, std::string_view page_host, const std::vector<std::string>& allowed) {
  if (host == page_host) return true;
  for (const std::string& entry : allowed) {
    if (entry == host) return true;
    if (entry.starts_with("*.") && host.size() > entry.size() - 1 && host.ends_with(std::string_view(entry).substr(1)))
      return true;
  }
  return false;
}
}  // namespace

void Assembly::start_include(Slot& slot, const std::string& src) {
  const conf::Config& config = page_->generation->config;
  // Where the src points: an absolute URL (its host must be allowed), an absolute path, or a
  // path relative to the page's directory. The slot's key is host, then target.
  std::string& key = slot.key;
  key.clear();
  std::string_view rest = src;
  const bool absolute = rest.starts_with("http://") || rest.starts_with("https://") || rest.starts_with("//");
  if (absolute) {
    rest.remove_prefix(rest.find("//") + 2);
    const size_t slash = rest.find_first_of("/?");
    if (!http::canonical_host(rest.substr(0, slash), key)) return include_failed(slot);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  } else {
    key.assign(host_);
  }
  const size_t host_size = key.size();
  if (rest.empty() || rest.front() == '?') {
    key.push_back('/');
  } else if (rest.front() != '/') {
    const std::string_view page_path = std::string_view(path_).substr(0, path_.find('?'));
    key.append(page_path.substr(0, page_path.rfind('/') + 1));
  }
  key.append(rest);
  // The include's target is read as a client's would be (http/uri), so its key and what its
  // backend is asked agree.
  std::string canonical;
  if (!http::canonical_target(std::string_view(key).substr(host_size), canonical)) return include_failed(slot);
  key.resize(host_size);
  key.append(canonical);
  const std::string_view host = std::string_view(key).substr(0, host_size);
  const std::string_view target = std::string_view(key).substr(host_size);
  const bool loop = (host == host_ && target == path_) || std::find(chain_.begin(), chain_.end(), key) != chain_.end();
  const bool too_deep = depth_ + 1 > static_cast<int>(config.esi.max_depth);
  if (target.empty() || host.empty() || loop || too_deep || !host_allowed(host, host_, config.esi.allow_hosts) ||
      page_->includes_left == 0)
    return include_failed(slot);
  --page_->includes_left;
  const std::string_view path_only = std::string_view(target).substr(0, target.find('?'));
  const RouteMatch route = page_->generation->router.match(host, path_only);
  if (route.host < 0) return include_failed(slot);

  slot.host = host;
  slot.path = target;
  // The include is asked for on the client's behalf, with its cookies and preferences: a GET
  // (or HEAD) page lends its own head, with the include's host and target; any other method's
  // page gets a GET of its own.
  const http::RequestHead* head = page_->client;
  if (head->method != "GET" && !head->is_head()) {
    http::RequestHead& own = slot.head;
    own.clear();
    own.method = "GET";
    own.target.assign(slot.path);
    for (size_t i = 0; i < head->headers.size(); ++i)
      if (head->headers.id(i) != http::FieldId::kHost) own.headers.add(head->headers.name(i), head->headers.value(i));
    own.headers.add("Host", slot.host);
    head = &own;
  }
  Exchange::Request request;
  request.generation = page_->generation;
  request.head = head;
  request.authority = slot.host;
  request.origin_target = slot.path;
  request.route = route;
  request.client_ip = page_->client_ip;
  request.https = page_->https;
  slot.exchange.start(request);
}

void Assembly::include_failed(Slot& slot) {
  worker_.cache_counters().count(page_->generation->host_slot(page_->host_index), cache::Event::kEsiFailed);
  if (!slot.tried_alt && !slot.include.alt.empty()) {
    slot.tried_alt = true;
    if (!deadline_.armed()) deadline_.set(static_cast<uint64_t>(page_->generation->config.esi.include_timeout.count()));
    return start_include(slot, slot.include.alt);
  }
  if (slot.include.continue_on_error || page_->generation->config.esi.on_error == conf::EsiOnError::kContinue) {
    Output::Part& part = output_.parts[slot.part];
    part.source = nullptr;
    part.length = 0;
    part.resolved = true;
    return progress();
  }
  fail_page();
}

void Assembly::fail_page() {
  if (failed_) return;
  failed_ = true;
  if (owner_) owner_->on_assembly_failed();
}

void Assembly::progress() {
  if (owner_ && !finished_) owner_->on_assembly_progress();
}

void Assembly::on_timeout() {
  if (finished_) return;
  for (auto& slot : slots_) {
    if (failed_ || finished_) return;
    if (output_.parts[slot->part].resolved) continue;
    slot->end();
    include_failed(*slot);
  }
}

bool Assembly::resolved() const {
  for (const auto& slot : slots_) {
    if (!output_.parts[slot->part].resolved) return false;
    if (slot->nested && !slot->nested->resolved()) return false;
  }
  return true;
}

void Assembly::finish() {
  if (finished_) return;
  finished_ = true;
  owner_ = nullptr;
  for (auto& slot : slots_) slot->end();
  deadline_.close_and_delete<Assembly>();
}

// ---- the output ----

uint64_t Assembly::Output::part_size(const Part& part) const {
  if (!part.resolved || !part.source) return 0;
  if (part.length) return *part.length;
  const uint64_t available = part.source->size();
  return available > part.first ? available - part.first : 0;
}

bool Assembly::Output::part_complete(const Part& part) const {
  return part.resolved && (!part.source || part.length || part.source->complete());
}

int Assembly::Output::peek(uint64_t offset, http::IoSlice* out, int max, size_t max_bytes,
                           std::string& scratch) const {
  // As many parts as fit go into one frame, so a page costs a write or two, not one per part;
  // a part read from a file ends the frame, since the next one would overwrite `scratch`.
  uint64_t base = 0;
  int count = 0;
  for (const Part& part : parts) {
    if (!part.resolved || count == max || max_bytes == 0) break;
    const uint64_t size = part_size(part);
    if (offset < base + size) {
      const bool from_file = part.source->uses_scratch();
      if (from_file && count > 0) break;
      const uint64_t left = base + size - offset;
      const int n = part.source->peek(part.first + (offset - base), out + count, max - count,
                                      static_cast<size_t>(std::min<uint64_t>(max_bytes, left)), scratch);
      if (n < 0) return count > 0 ? count : n;
      uint64_t got = 0;
      for (int i = count; i < count + n; ++i) got += out[i].len;
      count += n;
      max_bytes -= static_cast<size_t>(got);
      offset += got;
      if (from_file || got < left) break;  // the part has no more for now
    }
    if (!part_complete(part)) break;
    base += size;
  }
  return count;
}

bool Assembly::Output::uses_scratch() const {
  return std::any_of(parts.begin(), parts.end(),
                     [](const Part& part) { return part.source && part.source->uses_scratch(); });
}

uint64_t Assembly::Output::size() const {
  uint64_t total = 0;
  for (const Part& part : parts) {
    if (!part.resolved) break;
    total += part_size(part);
    if (!part_complete(part)) break;
  }
  return total;
}

bool Assembly::Output::complete() const {
  return std::all_of(parts.begin(), parts.end(), [&](const Part& part) { return part_complete(part); });
}

}  // namespace edge::proxy
