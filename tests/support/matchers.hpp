#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <string_view>

namespace annals::test {

// Matches an exception whose what() contains `fragment`.
class WhatContains : public Catch::MatcherBase<std::exception> {
 public:
  explicit WhatContains(std::string fragment) : fragment_(std::move(fragment)) {}
  bool match(const std::exception& e) const override {
    return std::string_view(e.what()).find(fragment_) != std::string_view::npos;
  }
  std::string describe() const override { return "what() contains \"" + fragment_ + "\""; }

 private:
  std::string fragment_;
};

}  // namespace annals::test
