#include "app/store.h"

#include "app/pg_store.h"
#include "app/sqlite_store.h"

namespace edge::app {

std::unique_ptr<Store> open_store(std::string_view spec, std::chrono::milliseconds busy_timeout, std::string& error) {
  if (spec.starts_with("sqlite:")) {
    const std::string path(spec.substr(7));
    if (path.empty()) {
      error = "sqlite: needs a file name (or :memory:)";
      return nullptr;
    }
    return open_sqlite_store(path, busy_timeout, error);
  }
  if (spec.starts_with("postgresql://") || spec.starts_with("postgres://")) return open_pg_store(spec, busy_timeout, error);
  error = "a store is sqlite:PATH or postgresql://...";
  return nullptr;
}

}  // namespace edge::app
