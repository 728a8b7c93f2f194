#include "npe/core/json.h"

#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "test_util.h"

namespace npe {
namespace {
using nlohmann::json;

TEST(Json, IntegersAreTakenOnlyWhenExactAndInRange) {
  std::mt19937_64 rng(test::fresh_seed());
  const int n = static_cast<int>(rng() % 2000000) - 1000000;
  EXPECT_EQ(json_as<int>(json::parse(std::to_string(n))), n);
  EXPECT_EQ(json_as<int64_t>(json::parse(std::to_string(int64_t{n} * 4000000))), int64_t{n} * 4000000);
  // a float, even an integral one, is no integer; out-of-range integers are refused, not wrapped
  for (const char* bad : {"2.5", "1e40", "7.0", "3000000000", "-3000000000", "\"7\"", "true", "null", "[7]"})
    EXPECT_FALSE(json_as<int>(json::parse(bad))) << bad;
  EXPECT_FALSE(json_as<uint64_t>(json::parse("-1")));
  EXPECT_EQ(json_as<uint64_t>(json::parse("18446744073709551615")), std::numeric_limits<uint64_t>::max());
  EXPECT_FALSE(json_as<int64_t>(json::parse("18446744073709551615")));
  EXPECT_EQ(json_as<double>(json::parse("7")), 7.0);
  EXPECT_FALSE(json_as<double>(json::parse("\"7\"")));
  EXPECT_FALSE(json_as<bool>(json::parse("1")));
}

TEST(Json, ArraysConvertOnlyWhenEveryElementDoes) {
  EXPECT_EQ(json_as<std::vector<int>>(json::parse("[3, 4, 5]")), (std::vector<int>{3, 4, 5}));
  EXPECT_FALSE(json_as<std::vector<int>>(json::parse("[3, 4.5]")));
  EXPECT_FALSE(json_as<std::vector<double>>(json::parse("[1, \"x\"]")));
  EXPECT_FALSE(json_as<std::vector<double>>(json::parse("{\"a\": 1}")));
  EXPECT_EQ(json_as<std::vector<double>>(json::parse("[]")), std::vector<double>{});
  EXPECT_TRUE((json_as<std::array<double, 2>>(json::parse("[1, 2.5]"))));
  EXPECT_FALSE((json_as<std::array<double, 2>>(json::parse("[1, 2, 3]"))));
}

TEST(Json, ParseErrorsNameTheSourceAndWhatWasExpected) {
  for (const char* bad : {"{\"a\": ", "300e400", "[1, 2", ""}) {
    try {
      parse_json(bad, "m.json", "an npe dataset manifest");
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      const std::string w = e.what();
      EXPECT_NE(w.find("m.json: not valid JSON"), std::string::npos) << w;
      EXPECT_NE(w.find("expected an npe dataset manifest"), std::string::npos) << w;
    }
  }
  EXPECT_EQ(parse_json("{\"a\": [1]}", "m.json", "x")["a"][0], 1);
}

}  // namespace
}  // namespace npe
