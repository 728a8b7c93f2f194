#include "npe/core/interrupt.h"
#include "npe/core/io.h"

#include <atomic>
#include <csignal>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
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
  fs::path temp;
  {
    AtomicFile f(p);
    std::fputs("new, never committed", f.get());
    EXPECT_TRUE(fs::exists(f.temp()));
    EXPECT_EQ(read_file(p), "old");
    temp = f.temp();
  }
  EXPECT_EQ(read_file(p), "old");
  EXPECT_FALSE(fs::exists(temp));
  AtomicFile f(p);
  std::fputs("new", f.get());
  temp = f.temp();
  f.commit();
  EXPECT_EQ(read_file(p), "new");
  EXPECT_FALSE(fs::exists(temp));
}

// A writer killed outright leaves its temporary file, unlocked; the next commit to the same output
// removes those, and only those: a live writer's (locked) and another output's stay.
TEST(Io, CommitRemovesTemporaryFilesOfDeadWriters) {
  test::TempDir dir;
  const fs::path p = dir / "x.npy";
  const fs::path stale = dir.path / ".x.npy.tmp.123.00000000deadbeef";
  const fs::path live = dir.path / ".x.npy.tmp.456.00000000cafef00d";
  const fs::path other = dir.path / ".y.npy.tmp.123.00000000deadbeef";
  for (const auto& f : {stale, live, other}) write_file_atomic(f, "partial");
  const int held = ::open(live.c_str(), O_RDONLY);  // a writer still at work holds its lock
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  write_file_atomic(p, "complete");
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_EQ(read_file(p), "complete");
  ::close(held);
}

// Writers of one output that run at once never remove each other's temporary file: each is
// locked before it has the name the stale-temp sweep looks for (a race a review found).
TEST(Io, ConcurrentWritersOfOneOutputAllSucceed) {
  test::TempDir dir;
  const fs::path p = dir / "x.json";
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&, w] {
      for (int k = 0; k < 300; ++k) try {
          write_file_atomic(p, fmt::format("writer {} write {}", w, k));
        } catch (const Error&) {
          ++failures;
        }
    });
  for (auto& t : writers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(read_file(p).rfind("writer ", 0), 0u);
  for (const auto& e : fs::directory_iterator(dir.path)) EXPECT_EQ(e.path(), p) << "left behind";
}

// Outputs: a device, a FIFO, a directory, or a link to one is refused and left as it was; a link to
// a regular file (or to a new path) is written through, and stays a link.
TEST(Io, OutputsAreRegularFilesOrNewPaths) {
  test::TempDir dir;
  auto refused = [](const fs::path& p, const std::string& words) {
    try {
      write_file_atomic(p, "x");
      ADD_FAILURE() << p << " was written";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  refused("/dev/null", "is a character device");
  const fs::path fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  refused(fifo, "is a FIFO");
  EXPECT_EQ(fs::status(fifo).type(), fs::file_type::fifo);
  fs::create_directories(dir / "d");
  refused(dir / "d", "is a directory");
  fs::create_symlink("/dev/null", dir / "to_null");
  refused(dir / "to_null", "a link to '/dev/null'");
  EXPECT_TRUE(fs::is_symlink(dir / "to_null"));
  EXPECT_THROW(check_writable(dir / "to_null"), Error);
  write_file_atomic(dir / "real.txt", "old");
  fs::create_symlink("real.txt", dir / "link.txt");
  write_file_atomic(dir / "link.txt", "new");
  EXPECT_TRUE(fs::is_symlink(dir / "link.txt"));
  EXPECT_EQ(read_file(dir / "real.txt"), "new");
  fs::create_symlink("later.txt", dir / "dangling");
  write_file_atomic(dir / "dangling", "made");
  EXPECT_TRUE(fs::is_symlink(dir / "dangling"));
  EXPECT_EQ(read_file(dir / "later.txt"), "made");
  fs::create_symlink("loop_b", dir / "loop_a");
  fs::create_symlink("loop_a", dir / "loop_b");
  refused(dir / "loop_a", "too many levels");
}

// A legal output name of 250 bytes still has a legal temporary name.
TEST(Io, LongOutputNamesHaveLegalTemporaryNames) {
  test::TempDir dir;
  const fs::path p = dir / std::string(250, 'n');
  write_file_atomic(p, "long");
  EXPECT_EQ(read_file(p), "long");
  AtomicFile f(p);
  EXPECT_LE(f.temp().filename().string().size(), 255u);
}

// Reads open regular files only: a FIFO is refused at once (never waits for a writer), /dev/zero is
// refused (never grows without end), and a file over the reader's bound is refused unread.
TEST(Io, ReadsAreBounded) {
  test::TempDir dir;
  const fs::path fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto refused = [](const std::function<void()>& f, const std::string& words) {
    try {
      f();
      ADD_FAILURE() << "read";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  refused([&] { read_file(fifo); }, "is a FIFO (named pipe); expected a regular file");
  refused([&] { read_file("/dev/zero"); }, "is a character device");
  refused([&] { read_file(dir.path); }, "is a directory");
  write_file_atomic(dir / "big", std::string(100, 'x'));
  refused([&] { read_file(dir / "big", 99); }, "expected at most 99 bytes, found 100");
  EXPECT_EQ(read_file(dir / "big", 100).size(), 100u);
  refused([&] { read_file(dir / "missing"); }, "no such file");
}

// One writer per output: a second lock on the same output is refused, naming the label, the path
// and the holder's pid; released, the lock file is gone and the output can be locked again.
TEST(Io, OutputLockAdmitsOneWriter) {
  test::TempDir dir;
  const fs::path p = dir / "out/data";
  {
    OutputLock a(p, "--out_prefix");
    try {
      OutputLock b(p, "--out_prefix");
      ADD_FAILURE() << "two writers";
    } catch (const Error& e) {
      const std::string w = e.what();
      EXPECT_NE(w.find("--out_prefix '" + p.string() + "': another process (pid " + std::to_string(::getpid())),
                std::string::npos)
          << w;
    }
    EXPECT_TRUE(fs::exists(dir / "out/.data.lock"));
  }
  EXPECT_FALSE(fs::exists(dir / "out/.data.lock"));
  OutputLock again(p, "--out_prefix");
}

// An output may be neither an input nor another output, however its path is spelled (.., a link,
// a hard link).
TEST(Io, OutputsMustNotBeInputsOrEachOther) {
  test::TempDir dir;
  write_file_atomic(dir / "a/m.json", "{}");
  fs::create_hard_link(dir / "a/m.json", dir / "hard.json");
  fs::create_symlink(dir / "a/m.json", dir / "soft.json");
  auto refused = [](const std::vector<CommandFile>& files, const std::vector<std::string>& words) {
    try {
      check_distinct_files(files);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      for (const auto& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
    }
  };
  const CommandFile in{"dataset manifest", dir / "a/m.json", false};
  refused({in, {"--out_json", dir / "a/../a/m.json", true}},
          {"--out_json", "dataset manifest", "not one of its inputs"});
  refused({in, {"--out_json", dir / "hard.json", true}}, {"--out_json", "hard.json"});
  refused({in, {"--out_json", dir / "soft.json", true}}, {"--out_json"});
  refused({{"--out_csv", dir / "r.csv", true}, {"--out_json", dir / "./r.csv", true}},
          {"--out_json", "--out_csv", "not another output"});
  check_distinct_files({in, {"--out_json", dir / "r.json", true}, {"--out_csv", dir / "r.csv", true}});
  check_distinct_files({in, {"other input", dir / "hard.json", false}});  // two inputs may be one file
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
