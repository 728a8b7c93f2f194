#include "npe/core/interrupt.h"
#include "npe/core/io.h"

#include <csignal>
#include <filesystem>

#include <fmt/format.h>
#include <sys/wait.h>
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
  EXPECT_THROW(write_file_atomic(
                   p,
                   [](std::FILE* f) {
    std::fputs("partial", f);
    throw Error("boom");
                   }),
               Error);
  EXPECT_EQ(read_file(p), "first");  // the old content survives a failed write
  int entries = 0;
  for (auto& e : fs::directory_iterator(dir.path / "sub")) {
    (void)e;
    ++entries;
  }
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

TEST(Io, AtomicFileCommitsOnlyWhenAsked) {
  test::TempDir dir;
  const std::string p = dir / "a/out.bin";
  write_file_atomic(p, "old");
  {
    AtomicFile f(p);
    std::fputs("new, never committed", f.get());
    EXPECT_TRUE(fs::exists(temp_path_for(p)));
    EXPECT_EQ(read_file(p), "old");
  }
  EXPECT_EQ(read_file(p), "old");
  EXPECT_FALSE(fs::exists(temp_path_for(p)));
  AtomicFile f(p);
  std::fputs("new", f.get());
  f.commit();
  EXPECT_EQ(read_file(p), "new");
  EXPECT_FALSE(fs::exists(temp_path_for(p)));
}

// A writer killed outright leaves ".<name>.tmp.<pid>"; the next commit to the same path removes
// those of processes no longer running, and only those.
TEST(Io, CommitRemovesTemporaryFilesOfDeadWriters) {
  test::TempDir dir;
  const fs::path p = dir / "x.npy";
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(dead, &status, 0), dead);  // reaped: its pid names no process now
  const fs::path stale = dir.path / fmt::format(".x.npy.tmp.{}", dead);
  const fs::path live = dir.path / fmt::format(".x.npy.tmp.{}", ::getppid());  // our parent runs
  const fs::path other = dir.path / fmt::format(".y.npy.tmp.{}", dead);        // another file's
  for (const auto& f : {stale, live, other}) write_file_atomic(f, "partial");
  write_file_atomic(p, "complete");
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_EQ(read_file(p), "complete");
}

// SIGINT sets the flag that long loops poll; a second SIGINT ends the process at once. Run in
// child processes (death tests), since the flag is process-wide.
TEST(IoDeathTest, InterruptSetsTheFlagAndASecondOneKills) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        install_interrupt_handlers();
        if (interrupt_requested()) std::_Exit(1);
        std::raise(SIGINT);
        try {
          throw_if_interrupted("stopped at scene 3");
        } catch (const Interrupted& e) {
          std::_Exit(std::string(e.what()) == "stopped at scene 3" ? 7 : 2);
        }
        std::_Exit(3);
      },
      ::testing::ExitedWithCode(7), "");
  EXPECT_EXIT(
      {
        install_interrupt_handlers();
        std::raise(SIGTERM);
        std::raise(SIGTERM);
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGTERM), "");
}

}  // namespace
}  // namespace npe
