// edge-app: the companion app server (see app/server.h and app/routes.h).
#include <uv.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "app/admin_client.h"
#include "app/options.h"
#include "app/server.h"
#include "app/store.h"

namespace {
struct Signals {
  uv_signal_t term;
  uv_signal_t intr;
  edge::app::Server* server;
};

// The store as the start-up line shows it: a PostgreSQL URI without its password.
std::string store_shown(const std::string& spec) {
  const size_t scheme_end = spec.find("://");
  const size_t at = spec.find('@');
  if (scheme_end == std::string::npos || at == std::string::npos) return spec;
  const size_t colon = spec.find(':', scheme_end + 3);
  if (colon == std::string::npos || colon > at) return spec;
  return spec.substr(0, colon) + ":***" + spec.substr(at);
}

void on_signal(uv_signal_t* handle, int) noexcept {
  auto* s = static_cast<Signals*>(handle->data);
  s->server->stop();
  uv_close(reinterpret_cast<uv_handle_t*>(&s->term), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->intr), nullptr);
}
}  // namespace

int main(int argc, char** argv) {
  edge::app::ParsedFlags flags = edge::app::parse_flags(argc, argv);
  if (!flags.error.empty()) {
    std::fprintf(stderr, "edge-app: %s\n%s", flags.error.c_str(), edge::app::usage().c_str());
    return 2;
  }
  if (flags.help) {
    std::fputs(edge::app::usage().c_str(), stdout);
    return 0;
  }
  std::string admin_token;
  if (flags.options.admin) {
    std::string error;
    auto token = edge::app::read_token_file(flags.options.admin_token_file, error);
    if (!token) {
      std::fprintf(stderr, "edge-app: --admin-token-file: %s\n", error.c_str());
      return 2;
    }
    admin_token = std::move(*token);
  }
  std::string store_error;
  std::unique_ptr<edge::app::Store> store =
      edge::app::open_store(flags.options.store, std::chrono::milliseconds(flags.options.store_busy_timeout_ms), store_error);
  if (!store) {
    std::fprintf(stderr, "edge-app: --store %s: %s\n", flags.options.store.c_str(), store_error.c_str());
    return 1;
  }
  // A client that goes away mid-write must give us EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);

  uv_loop_t loop;
  if (int rc = uv_loop_init(&loop); rc < 0) {
    std::fprintf(stderr, "edge-app: uv_loop_init: %s\n", uv_strerror(rc));
    return 1;
  }
  int exit_code = 0;
  {
    const uint64_t started = uv_hrtime();
    edge::app::Server server(&loop, flags.options, std::move(store), std::move(admin_token));
    const double generated_ms = static_cast<double>(uv_hrtime() - started) / 1e6;
    Signals signals{};
    signals.server = &server;
    uv_signal_init(&loop, &signals.term);
    uv_signal_init(&loop, &signals.intr);
    signals.term.data = signals.intr.data = &signals;
    uv_signal_start(&signals.term, &on_signal, SIGTERM);
    uv_signal_start(&signals.intr, &on_signal, SIGINT);

    if (int rc = server.listen(); rc < 0) {
      std::fprintf(stderr, "edge-app: cannot listen on %s:%u: %s\n", flags.options.host.c_str(),
                   static_cast<unsigned>(flags.options.port), uv_strerror(rc));
      on_signal(&signals.term, 0);  // the same clean-up as a signal: close everything
      exit_code = 1;
    } else {
      const edge::app::DemoData& data = server.demo().data();
      const edge::app::DemoSizes& sizes = data.sizes();
      std::printf("edge-app %s listening on %s:%u\n", flags.options.name.c_str(), flags.options.host.c_str(),
                  static_cast<unsigned>(server.port()));
      std::printf("edge-app %s demo data (seed %llu): %u books, %u authors, %u tags, %u reviews, %u users; "
                  "%.1f MB, made in %.0f ms; store %s%s\n",
                  flags.options.name.c_str(), static_cast<unsigned long long>(data.seed()), sizes.books, sizes.authors,
                  sizes.tags, sizes.reviews, sizes.users, static_cast<double>(data.memory_bytes()) / 1e6, generated_ms,
                  store_shown(flags.options.store).c_str(), flags.options.admin ? "; purges go to the admin port" : "");
      std::fflush(stdout);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (exit_code == 0) {
      const auto& st = server.stats();
      std::printf("edge-app %s stopped: served %llu\n", flags.options.name.c_str(),
                  static_cast<unsigned long long>(st.served));
    }
  }
  uv_loop_close(&loop);
  return exit_code;
}
