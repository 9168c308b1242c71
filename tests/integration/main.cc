// Integration tests: doctest's runner, failing also when a server under test did not exit cleanly.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "tests/integration/testkit.h"

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  int result = context.run();
  if (context.shouldExit()) return result;
  if (int unclean = edge::testkit::unclean_exits(); unclean > 0) {
    std::fprintf(stderr, "%d server process(es) did not exit cleanly\n", unclean);
    return 1;
  }
  return result;
}
