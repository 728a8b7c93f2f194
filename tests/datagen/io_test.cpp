#include "npe/datagen/io.h"

#include <filesystem>

#include <unistd.h>

#include <gtest/gtest.h>

#include "test_util.h"

namespace npe {
namespace {
namespace fs = std::filesystem;

TEST(Io, AtomicWriteReplacesOnlyOnSuccess) {
  test::TempDir dir;
  const std::string p = dir / "sub/file.txt";
  write_file_atomic(p, "first");
  EXPECT_EQ(read_file(p), "first");
  EXPECT_THROW(write_file_atomic(p, [](std::FILE* f) {
                 std::fputs("partial", f);
                 throw Error("boom");
               }),
               Error);
  EXPECT_EQ(read_file(p), "first");  // the old content survives a failed write
  int entries = 0;
  for (auto& e : fs::directory_iterator(dir.path / "sub")) { (void)e; ++entries; }
  EXPECT_EQ(entries, 1);  // no temporary file left behind
}

TEST(Io, UnwritablePathIsAClearError) {
  if (::geteuid() == 0) {
    // root ignores directory permissions; use a path below a regular file instead
    test::TempDir dir;
    write_file_atomic(dir / "f", "x");
    try {
      check_writable(dir / "f/sub/out.npy");
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("f/sub"), std::string::npos) << e.what();
    }
    return;
  }
  EXPECT_THROW(check_writable("/proc/npe/out.npy"), Error);
}

TEST(Io, ReadMissingFileNamesIt) {
  try {
    read_file("/nonexistent/npe.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/npe.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace npe
