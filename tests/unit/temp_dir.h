// A fresh directory under /tmp, removed with everything in it when the object goes.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace edge::testing {

struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/edge_unit_dirXXXXXX";
    const char* made = mkdtemp(pattern);
    REQUIRE(made != nullptr);
    path = made;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `content` to the file `name` in the directory; its path.
  std::string write(const std::string& name, const std::string& content) const {
    std::string file = path + "/" + name;
    std::ofstream out(file, std::ios::binary);
    out << content;
    return file;
  }
};

}  // namespace edge::testing
