#include "proxy/compression.h"

#include "compress/codec.h"

namespace edge::proxy {

namespace {

bool eligible(const cache::CachedObject& object, const compress::Rules& rules) {
  return !object.attachment() && !object.partial() && object.body && object.body->complete() &&
         compress::compressible(rules, object.status, object.headers, object.body->size());
}

}  // namespace

bool compress_later(const cache::CachedObject& object, const compress::Rules& rules) {
  return eligible(object, rules) && object.body->size() > kCompressWhenStoredMax;
}

std::shared_ptr<cache::CachedObject> with_encodings(const cache::CachedObject& object, const compress::Rules& rules,
                                                    uint64_t max_size) {
  if (!eligible(object, rules)) return nullptr;
  const http::SharedBody& body = *object.body;
  if (body.size() > max_size) return nullptr;
  const std::string identity = body.to_string();
  std::vector<cache::CachedObject::Encoded> encodings;
  for (compress::Coding coding : rules.codings) {
    if (object.encoded(coding)) continue;
    std::optional<std::string> encoded =
        compress::encode_all(coding, rules.level[static_cast<size_t>(coding)], identity);
    // A body that does not shrink is sent as it is: the coding would only cost the client.
    if (!encoded || encoded->size() >= identity.size()) continue;
    encodings.push_back({coding, http::SharedBody::from(*encoded)});
  }
  if (encodings.empty()) return nullptr;
  std::shared_ptr<cache::CachedObject> copy = cache::copy_of(object);
  std::vector<cache::CachedObject::Encoded> all = copy->encodings();
  all.insert(all.end(), encodings.begin(), encodings.end());
  copy->set_encodings(std::move(all));
  return copy;
}

Compressor::Compressor(cache::Store& store) : store_(store), thread_([this] { run(); }) {}

Compressor::~Compressor() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_one();
  thread_.join();
}

bool Compressor::submit(cache::ObjectRef object, const compress::Rules& rules) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= kMaxQueued) return false;
    queue_.push_back({std::move(object), rules});
  }
  wake_.notify_one();
  return true;
}

void Compressor::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    if (std::shared_ptr<cache::CachedObject> encoded = with_encodings(*job.object, job.rules, UINT64_MAX))
      store_.replace(*job.object, std::move(encoded));
    lock.lock();
  }
}

}  // namespace edge::proxy
