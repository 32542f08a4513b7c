// The reliability tests' own main: `--child <mode> ...` runs a child process of a test (see
// children.cpp), anything else runs the Catch2 tests.

#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace annals::reliability {
int run_child(const std::vector<std::string>& args);
}  // namespace annals::reliability

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "--child") {
    return annals::reliability::run_child(std::vector<std::string>(argv + 2, argv + argc));
  }
  return Catch::Session().run(argc, argv);
}
