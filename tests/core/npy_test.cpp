#include "npe/core/npy.h"

#include <random>

#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "test_util.h"

namespace npe {
namespace {

TEST(Npy, RoundTripRandomArray) {
  test::TempDir dir;
  std::mt19937_64 rng(test::fresh_seed());
  std::vector<int64_t> shape = {int64_t(rng() % 7 + 1), int64_t(rng() % 5 + 1), 3, 5};
  std::vector<float> data(shape[0] * shape[1] * 15);
  std::normal_distribution<float> g;
  for (float& x : data) x = g(rng);
  write_npy_f32(dir / "a.npy", shape, data.data());
  NpyArray back = read_npy_f32(dir / "a.npy");
  EXPECT_EQ(back.shape, shape);
  EXPECT_EQ(back.data, data);
}

TEST(Npy, HeaderIsAlignedAndParsable) {
  const std::string h = npy_header_f32({12, 60, 4, 5});
  EXPECT_EQ(h.size() % 64, 0u);
  EXPECT_EQ(h.substr(0, 6), "\x93NUMPY");
  EXPECT_NE(h.find("'shape': (12, 60, 4, 5)"), std::string::npos);
  EXPECT_EQ(h.back(), '\n');
  EXPECT_NE(npy_header_f32({7}).find("(7,)"), std::string::npos);
}

TEST(Npy, RejectsTruncatedData) {
  const std::string bytes = npy_header_f32({2, 3}) + std::string(6 * 4 - 1, '\0');
  try {
    parse_npy_f32(bytes, "x.npy");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.npy"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("needs 24 bytes, file has 23"), std::string::npos) << e.what();
  }
}

TEST(Npy, RejectsBadMagicDtypeAndOrder) {
  EXPECT_THROW(parse_npy_f32("not an npy file at all", "x"), Error);
  std::string h = npy_header_f32({2});
  std::string f8 = h;
  f8.replace(f8.find("<f4"), 3, "<f8");
  EXPECT_THROW(parse_npy_f32(f8 + std::string(8, '\0'), "x"), Error);
  std::string fo = h;
  fo.replace(fo.find("False"), 5, "True ");
  EXPECT_THROW(parse_npy_f32(fo + std::string(8, '\0'), "x"), Error);
  std::string big = h;
  big[8] = '\xff';  // header length beyond the file
  EXPECT_THROW(parse_npy_f32(big, "x"), Error);
  EXPECT_THROW(read_npy_f32("/nonexistent/dir/a.npy"), Error);
}

}  // namespace
}  // namespace npe
