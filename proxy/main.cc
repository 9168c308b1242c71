// edge: the reverse proxy's command line.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/top_command.h"
#include "conf/config.h"
#include "http/log_text.h"
#include "log/error_log.h"
#include "proxy/assets.h"
#include "proxy/server.h"
#include "proxy/version.h"

namespace {
void usage(FILE* out) {
  std::fputs(
      "usage: edge --config FILE [--check]\n"
      "       edge --config FILE --takeover PATH\n"
      "       edge --version\n"
      "       edge assets --config FILE --route PREFIX [--host NAME] [--max-age AGE] DIR   (see edge assets --help)\n"
      "       edge top --admin HOST:PORT --token-file FILE [--window W] [--by WEIGHT] [--host H] [-n N]\n"
      "                [--interval SECONDS] [--once]   (see edge top --help)\n"
      "\n"
      "  --config FILE   the YAML configuration to run\n"
      "  --check         validate the configuration and exit (0 valid, 2 invalid)\n"
      "  --takeover PATH a binary upgrade: take the listening sockets over from the edge that\n"
      "                  offers them at PATH (its upgrade_socket); it drains once this one serves\n"
      "  --version       the version and build options (build type, sanitizers, OpenSSL, libuv)\n"
      "  --help          this text\n"
      "\n"
      "While it runs, edge writes its log to stderr, a line per event:\n"
      "  2026-12-03T18:10:00.123Z info edge: listening on 127.0.0.1:8080\n"
      "(UTC time, level error, warn or info, message). Configuration errors at start keep\n"
      "their plain `file:line:col: message` form.\n",
      out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "assets") == 0) return edge::proxy::run_assets(argc, argv);
  if (argc > 1 && std::strcmp(argv[1], "top") == 0) return edge::cli::run_top(argc, argv);
  std::string config_path;
  bool check = false;
  std::string takeover_path;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (arg == "--version") {
      std::fputs(edge::proxy::version_text().c_str(), stdout);
      return 0;
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config_path = arg.substr(9);
    } else if (arg == "--takeover" && i + 1 < argc) {
      takeover_path = argv[++i];
    } else if (arg.starts_with("--takeover=")) {
      takeover_path = arg.substr(11);
    } else {
      std::fprintf(stderr, "edge: unknown argument '%s'\n", edge::http::escape_for_log(arg).c_str());
      usage(stderr);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fputs("edge: --config FILE is required\n", stderr);
    usage(stderr);
    return 2;
  }

  edge::conf::LoadResult loaded = edge::conf::load_file(config_path);
  if (!loaded.config) {
    for (const auto& error : loaded.errors) std::fprintf(stderr, "%s\n", error.text().c_str());
    return 2;
  }
  // Certificates and keys are read now, so --check finds what start-up would.
  std::vector<edge::conf::Error> errors;
  std::vector<edge::conf::Error> warnings;
  edge::tls::Contexts tls = edge::tls::build_contexts(*loaded.config, errors, warnings);
  for (const auto& warning : warnings) {
    std::fprintf(stderr, "%s:%d:%d: warning: %s\n", warning.mark.file.c_str(), warning.mark.line, warning.mark.col,
                 warning.message.c_str());
  }
  if (!errors.empty()) {
    for (const auto& error : errors) std::fprintf(stderr, "%s\n", error.text().c_str());
    return 2;
  }
  if (check) {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }

  std::signal(SIGPIPE, SIG_IGN);
  edge::proxy::Server server(std::move(*loaded.config), std::move(tls));
  std::string error;
  if (!takeover_path.empty()) {
    edge::proxy::handoff::Takeover takeover;
    if (!takeover.connect(takeover_path, error)) {
      std::fprintf(stderr, "edge: %s\n", error.c_str());
      return 1;
    }
    edge::log::info("edge: upgrade: %zu listening sockets taken over from %s", takeover.sockets().size(),
                    takeover_path.c_str());
    server.take_over(std::move(takeover));
  }
  if (!server.open(error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  const int code = server.run();
  edge::log::flush(true);  // the repeats still owed, before the last line
  edge::log::info("edge: stopped (exit code %d)", code);
  return code;
}
