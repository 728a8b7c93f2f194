#include "npe/core/npy.h"

#include <random>

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "npe/core/io.h"
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

// Reads are bounded: a FIFO or /dev/zero is refused before a byte is read, a header that claims
// more than a corrupt file could hold is refused, and the data size is checked before allocation.
TEST(Npy, ReadsAreBounded) {
  test::TempDir dir;
  const std::string fifo = dir / "a.npy";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THROW(read_npy_f32(fifo), Error);
  EXPECT_THROW(read_npy_f32("/dev/zero"), Error);
  std::string big = npy_header_f32({2, 2});
  big[8] = '\xff';  // header length 65535: more than the file holds
  big[9] = '\xff';
  EXPECT_THROW(parse_npy_f32(big, "x.npy"), Error);
  std::string v2 = "\x93NUMPY\x02";
  v2 += std::string(1, '\0') + std::string("\xff\xff\xff\x7f", 4) + std::string(100, ' ');
  write_file_atomic(dir / "v2.npy", v2);
  try {
    read_npy_f32(dir / "v2.npy");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected at most"), std::string::npos) << e.what();
  }
  const float d[4] = {1, 2, 3, 4};
  write_npy_f32(dir / "ok.npy", {2, 2}, d);
  std::string bytes = read_file(dir / "ok.npy");
  write_file_atomic(dir / "long.npy", bytes + std::string(8, '\0'));  // more data than the shape
  EXPECT_THROW(read_npy_f32(dir / "long.npy"), Error);
  EXPECT_EQ(read_npy_f32(dir / "ok.npy").data[3], 4.0f);
}

// Keys are found as keys, never inside another key's value.
TEST(Npy, KeysAreKeysNotSubstrings) {
  const float d[1] = {7};
  std::string ok = npy_header_f32({1});
  ok += std::string(reinterpret_cast<const char*>(d), 4);
  EXPECT_EQ(parse_npy_f32(ok, "ok").shape, std::vector<int64_t>{1});
  // a version 1.0 file of header dict `dict` (padded to 64 bytes) followed by `data`
  auto npy_file = [](std::string dict, const std::string& data) {
    dict.append((64 - (10 + dict.size() + 1) % 64) % 64, ' ');
    dict.push_back('\n');
    std::string f = std::string("\x93NUMPY\x01\x00", 8);
    f.push_back(static_cast<char>(dict.size() & 0xff));
    f.push_back(static_cast<char>(dict.size() >> 8));
    return f + dict + data;
  };
  const std::string seven(reinterpret_cast<const char*>(d), 4);
  // a header whose 'note' value mentions 'shape': the shape key must still be the real one
  const std::string f = npy_file("{'descr': '<f4', 'fortran_order': False, 'note': 'shape', 'shape': (1,), }", seven);
  EXPECT_EQ(parse_npy_f32(f, "note").shape, std::vector<int64_t>{1});
  // a header whose only 'shape' is inside a value has no shape
  EXPECT_THROW(parse_npy_f32(npy_file("{'descr': '<f4', 'fortran_order': False, 'x': 'shape', }", ""), "bad"), Error);
}

}  // namespace
}  // namespace npe
