// edge-demo-load: plays a book community's traffic against the demo site (through edge, or
// straight at an edge-app) for a set time and reports what it measured. See load/options.h for
// the command line, load/mix.h for what is asked and counted, load/runner.h for the client.
#include <unistd.h>
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <string>

#include "app/demo_data.h"
#include "app/demo_pages.h"
#include "load/mix.h"
#include "load/options.h"
#include "load/runner.h"

namespace app = edge::app;
namespace load = edge::load;

namespace {

bool write_file(const std::string& path, const std::string& text) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (!file) return false;
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  return std::fclose(file) == 0 && written;
}

load::ProgressStyle progress_style(load::Progress progress) {
  const bool terminal = isatty(STDERR_FILENO) == 1;
  switch (progress) {
    case load::Progress::kOn:
      return terminal ? load::ProgressStyle::kRewritten : load::ProgressStyle::kLines;
    case load::Progress::kAuto:
      return terminal ? load::ProgressStyle::kRewritten : load::ProgressStyle::kNone;
    case load::Progress::kOff:
      break;
  }
  return load::ProgressStyle::kNone;
}

}  // namespace

int main(int argc, char** argv) {
  const load::ParsedFlags flags = load::parse_flags(argc, argv);
  if (flags.help) {
    std::fputs(load::usage().c_str(), stdout);
    return 0;
  }
  if (!flags.error.empty()) {
    std::fprintf(stderr, "edge-demo-load: %s\n%s", flags.error.c_str(), load::usage().c_str());
    return 2;
  }
  const load::Options& options = flags.options;

  const app::DemoData data(options.data_seed);
  const app::DemoSizes& sizes = data.sizes();
  if (options.users > sizes.users) {
    std::fprintf(stderr, "edge-demo-load: --users %u: the demo data has %u users\n%s", options.users, sizes.users,
                 load::usage().c_str());
    return 2;
  }

  load::RunConfig config;
  const std::string& host = options.target.host;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&config.target);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&config.target);
  if (uv_ip4_addr(host.c_str(), options.target.port, v4) != 0 &&
      uv_ip6_addr(host.c_str(), options.target.port, v6) != 0) {
    std::fprintf(stderr, "edge-demo-load: bad target address %s\n", host.c_str());
    return 1;
  }
  config.host_header = options.host_header;
  config.connections = options.connections;
  config.seconds = options.seconds;
  config.seed = options.seed;
  config.progress = progress_style(options.progress);

  std::signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  if (int rc = uv_loop_init(&loop); rc < 0) {
    std::fprintf(stderr, "edge-demo-load: uv_loop_init: %s\n", uv_strerror(rc));
    return 1;
  }

  const std::vector<uint32_t> users = load::spread_users(options.users, sizes.users);
  load::SignIn signed_in = load::sign_in(&loop, reinterpret_cast<const sockaddr*>(&config.target),
                                         options.host_header, users);
  if (!signed_in.error.empty()) {
    std::fprintf(stderr, "edge-demo-load: %s\n", signed_in.error.c_str());
    uv_loop_close(&loop);
    return 1;
  }

  // The words of the first few thousand titles: the vocabulary is small, and this is most of it.
  std::vector<std::string> words =
      load::search_words([&](uint32_t book) { return data.book_title(book); }, std::min<uint32_t>(sizes.books, 5000));
  const load::Mix mix({sizes.books, sizes.authors, sizes.tags, data.picks(app::kPicks), std::move(words)},
                      {options.alpha, options.signed_in, options.posts, options.seed});
  std::fprintf(stderr, "edge-demo-load: %zu users signed in; %.4g s against %s:%u, %u connections\n",
               signed_in.tokens.size(), options.seconds, host.c_str(), static_cast<unsigned>(options.target.port),
               options.connections);
  load::Results results = load::run_load(&loop, config, mix, signed_in.tokens);
  results.logins = signed_in.tokens.size();
  uv_loop_close(&loop);

  std::fputs(load::summary_text(results).c_str(), stdout);
  std::fflush(stdout);
  if (!options.json_path.empty() && !write_file(options.json_path, load::results_json(results))) {
    std::fprintf(stderr, "edge-demo-load: cannot write %s\n", options.json_path.c_str());
    return 1;
  }
  return 0;
}
