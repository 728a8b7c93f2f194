#include "npe/model/distributed.h"

#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "npe/core/io.h"
#include "npe/model/checkpoint.h"
#include "npe/model/metrics_csv.h"
#include "dataset_util.h"
#include "test_util.h"

namespace npe::model {
namespace {
namespace fs = std::filesystem;
using Env = std::map<std::string, std::string>;

DistEnv parse(const Env& env) {
  return dist_env_from([&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

void expect_error(const Env& env, std::initializer_list<const char*> fragments) {
  try {
    parse(env);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const char* f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
  }
}

TEST(DistEnv, NoLauncherIsOneProcess) {
  const DistEnv e = parse({});
  EXPECT_FALSE(e.distributed());
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.launcher, "none");
  // a Slurm job step of one task is one process too, MASTER_ADDR or not
  EXPECT_FALSE(parse({{"SLURM_NTASKS", "1"}, {"SLURM_PROCID", "0"}}).distributed());
}

TEST(DistEnv, TorchrunVariables) {
  std::mt19937_64 rng(test::fresh_seed());
  const int world = 2 + static_cast<int>(rng() % 30), rank = static_cast<int>(rng() % world);
  const int local = rank % 8, port = 1024 + static_cast<int>(rng() % 60000);
  const DistEnv e = parse({{"RANK", std::to_string(rank)},
                           {"WORLD_SIZE", std::to_string(world)},
                           {"LOCAL_RANK", std::to_string(local)},
                           {"MASTER_ADDR", "node17"},
                           {"MASTER_PORT", std::to_string(port)},
                           {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                           {"TORCHELASTIC_RESTART_COUNT", "3"},
                           {"SLURM_NTASKS", "99"},
                           {"SLURM_PROCID", "98"}});
  EXPECT_TRUE(e.distributed());
  EXPECT_EQ(e.launcher, "env");  // RANK/WORLD_SIZE win over Slurm's variables
  EXPECT_EQ(e.rank, rank);
  EXPECT_EQ(e.world_size, world);
  EXPECT_EQ(e.local_rank, local);
  EXPECT_EQ(e.master_addr, "node17");
  EXPECT_EQ(e.master_port, port);
  EXPECT_TRUE(e.agent_store);
  EXPECT_EQ(e.store_prefix, "/worker/attempt_3");
  // without the agent's store, rank 0 hosts it; LOCAL_RANK defaults to RANK, the port to 29500
  const DistEnv f = parse({{"RANK", "1"}, {"WORLD_SIZE", "2"}});
  EXPECT_FALSE(f.agent_store);
  EXPECT_EQ(f.local_rank, 1);
  EXPECT_EQ(f.master_port, 29500);
  EXPECT_EQ(f.master_addr, "127.0.0.1");
}

TEST(DistEnv, SlurmVariables) {
  const DistEnv e = parse(
      {{"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "5"}, {"SLURM_LOCALID", "1"}, {"MASTER_ADDR", "gpu-a01"}});
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "gpu-a01");
  expect_error({{"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "5"}}, {"MASTER_ADDR", "scontrol show hostnames"});
}

TEST(DistEnv, BadValuesNameTheVariable) {
  expect_error({{"RANK", "0"}}, {"RANK is set but WORLD_SIZE is not"});
  expect_error({{"WORLD_SIZE", "2"}}, {"WORLD_SIZE is set but RANK is not"});
  expect_error({{"RANK", "2"}, {"WORLD_SIZE", "2"}}, {"RANK", "[0, 2)", "found 2"});
  expect_error({{"RANK", "one"}, {"WORLD_SIZE", "2"}}, {"RANK", "expected an integer", "'one'"});
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "0"}}, {"WORLD_SIZE", "found '0'"});
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "-1"}}, {"LOCAL_RANK", "'-1'"});
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}},
               {"MASTER_PORT", "[1, 65535]", "'70000'"});
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", ""}}, {"MASTER_ADDR", "empty"});
  expect_error({{"SLURM_NTASKS", "4"}, {"SLURM_PROCID", "4"}, {"MASTER_ADDR", "h"}}, {"SLURM_PROCID", "[0, 4)"});
}

TEST(ProcessGroup, OfOneIsTheIdentity) {
  ProcessGroup g;
  EXPECT_EQ(g.size(), 1);
  EXPECT_TRUE(g.is_root());
  torch::manual_seed(test::fresh_seed());
  const torch::Tensor t = torch::randn({17}), before = t.clone();
  g.all_reduce(t, Reduce::Avg);
  g.broadcast(t, 0);
  EXPECT_TRUE(torch::equal(t, before));
  EXPECT_TRUE(g.any(true));
  EXPECT_FALSE(g.any(false));
  int ran = 0;
  g.agree("work", [&] { ++ran; });
  EXPECT_EQ(ran, 1);
  // an error is the error as it is (no "rank 0:" prefix)
  try {
    g.agree("fails", [] { throw Error("--dataset_prefix 'x': not found"); });
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--dataset_prefix 'x': not found");
  }
  // the environment's group of one process (no launcher) is the same
  ProcessGroup h(DistEnv{}, torch::kCPU);
  EXPECT_EQ(h.size(), 1);
}

TEST(ProcessGroup, SeveralProcessesNeedCudaDevices) {
  DistEnv e;
  e.world_size = 2;
  e.launcher = "env";
  try {
    ProcessGroup g(e, torch::kCPU);
    ADD_FAILURE() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("WORLD_SIZE 2"), std::string::npos) << err.what();
  }
}

// The rendezvous and the set-up agreement, over a real TCPStore on this machine: two ranks (threads
// here, processes in npe-train) join at a free port; an error on rank 1 reaches rank 0 named.
TEST(ProcessGroup, RendezvousAgreesOverTheStore) {
  const int port = test::free_tcp_port();
  std::string messages[2];
  int ran[2] = {0, 0};
  auto rank_main = [&](int r) {
    DistEnv e;
    e.rank = r;
    e.world_size = 2;
    e.local_rank = r;
    e.master_port = port;
    e.launcher = "env";
    try {
      ProcessGroup g = ProcessGroup::store_only(e, std::chrono::seconds(60));
      EXPECT_EQ(g.rank(), r);
      g.agree("fine", [&] { ++ran[r]; });
      EXPECT_THROW(g.all_reduce(torch::ones({2}), Reduce::Sum), Error);  // no collectives in a store-only group
      g.agree("set-up", [&] {
        if (r == 1) throw Error("--dataset_prefix 'd': not found");
      });
      messages[r] = "no error";
    } catch (const Error& err) {
      messages[r] = err.what();
    }
  };
  std::thread t0(rank_main, 0), t1(rank_main, 1);
  t0.join();
  t1.join();
  EXPECT_EQ(ran[0], 1);
  EXPECT_EQ(ran[1], 1);
  EXPECT_EQ(messages[0], "rank 1: --dataset_prefix 'd': not found");
  EXPECT_EQ(messages[1], "--dataset_prefix 'd': not found");
}

// There is no 2-process CPU test of the all-reduce: NCCL, npe's backend, has no CPU path, and
// libtorch's Gloo backend cannot be constructed from C++ with the torch wheel (no gloo/ headers).
// The data-parallel path is tested on 2 GPUs (DistributedCuda below, run on the GPU machine).

// ---- 2 GPUs: npe-train as one process with batch B against two processes with batch B/2 ----

class DistributedCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ProcessGroup::nccl_available()) GTEST_SKIP() << "this build has no NCCL (built without a CUDA compiler)";
    if (!torch::cuda::is_available() || torch::cuda::device_count() < 2)
      GTEST_SKIP() << "needs 2 CUDA devices, found " << (torch::cuda::is_available() ? torch::cuda::device_count() : 0);
  }

  // Runs `args` as WORLD_SIZE processes (RANK r on GPU r) started here as torchrun would; returns
  // each process's exit code and output.
  // `meanwhile`: a shell snippet run beside the processes (e.g. one that signals them).
  static std::vector<test::CommandResult> launch(int world, const std::string& args, const test::TempDir& dir,
                                                 const std::string& tag, const std::string& meanwhile = "") {
    const int port = test::free_tcp_port();
    std::string script;
    for (int r = 0; r < world; ++r)
      script += fmt::format(
          "(RANK={0} LOCAL_RANK={0} WORLD_SIZE={1} MASTER_ADDR=127.0.0.1 MASTER_PORT={2} timeout 300 {3} {4} "
          "> {5}.{0}.log 2>&1; echo $? > {5}.{0}.rc) &\n",
          r, world, port, test::tool("npe-train"), args, dir / tag);
    script += meanwhile + "\nwait\n";
    write_file_atomic(dir / (tag + ".sh"), script);
    test::run_command("bash " + dir / (tag + ".sh"));
    std::vector<test::CommandResult> out;
    for (int r = 0; r < world; ++r) {
      const std::string rc = read_file(fmt::format("{}.{}.rc", dir / tag, r));
      out.push_back({std::stoi(rc), read_file(fmt::format("{}.{}.log", dir / tag, r))});
    }
    return out;
  }

  static void expect_close(const std::string& a, const std::string& b, double rel, const char* what) {
    const Checkpoint x = load_checkpoint(a, std::nullopt, "a", torch::kCPU);
    const Checkpoint y = load_checkpoint(b, std::nullopt, "b", torch::kCPU);
    ASSERT_EQ(x.step, y.step);
    double diff = 0, scale = 0;
    const auto px = x.net->named_parameters(), py = y.net->named_parameters();
    for (const auto& item : px) {
      diff = std::max(diff, (item.value() - py[item.key()]).abs().max().item<double>());
      scale = std::max(scale, item.value().abs().max().item<double>());
    }
    EXPECT_LE(diff, rel * scale) << what << ": largest parameter difference " << diff << " (largest parameter " << scale
                                 << ")";
    fmt::print("[{}] step {}: largest parameter difference {:.3g}, relative {:.3g}\n", what, x.step, diff,
               diff / scale);
  }
};

// The same model after N steps on 1 GPU with batch B and on 2 GPUs with batch B/2 each: the two
// processes' averaged gradient is the full batch's (one ball count: every window weighs the same),
// up to float32 summation order; both models are trained in float32 (--precision fp32) so that
// the comparison is not bf16's rounding. A 2-process run stopped and resumed (--resume) ends where
// the uninterrupted 2-process run does.
TEST_F(DistributedCuda, OneGpuBatchBEqualsTwoGpusBatchHalf) {
  test::TempDir dir;
  const std::string prefix = test_util::make_dataset(dir, test::fresh_seed());
  const uint64_t seed = test::fresh_seed() % 1000;
  for (const char* model : {"modern", "classic"}) {
    const bool modern = std::string(model) == "modern";
    const int B = modern ? 256 : 50, steps = 60;
    const std::string common = fmt::format(
        "--model {} --dataset_prefix {} --total_samples {} --eval_every 20 --val_windows 500 --precision fp32 "
        "--seed {} --no_progress --checkpoint_dir {}",
        model, prefix, B * steps, seed, dir.path.string());
    const auto one = test::run_command(fmt::format("CUDA_VISIBLE_DEVICES=0 {} {} --batch_size {} --name one_{}",
                                                   test::tool("npe-train"), common, B, model));
    ASSERT_EQ(one.exit_code, 0) << one.output;
    const auto two = launch(2, fmt::format("{} --batch_size {} --name two_{}", common, B / 2, model), dir,
                            std::string("two_") + model);
    for (const auto& r : two) ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(two[0].output.find("data parallel: 2 processes"), std::string::npos) << two[0].output;
    EXPECT_NE(two[0].output.find("difference at the end 0\n"), std::string::npos) << two[0].output;
    EXPECT_EQ(two[1].output.find("npe-train"), std::string::npos) << "rank 1 reports nothing: " << two[1].output;
    expect_close(dir / fmt::format("one_{}.pt", model), dir / fmt::format("two_{}.pt", model), 5e-5, model);
    // the validation losses of the two runs, step by step
    const auto a = parse_metrics_csv(read_file(dir / fmt::format("one_{}.csv", model)), "one");
    const auto b = parse_metrics_csv(read_file(dir / fmt::format("two_{}.csv", model)), "two");
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].step, b[i].step);
      EXPECT_EQ(a[i].samples_seen, b[i].samples_seen);
      EXPECT_NEAR(a[i].val_loss, b[i].val_loss, 1e-3 * a[i].val_loss) << model << " step " << a[i].step;
    }
    if (!modern) continue;
    // stopped after 30 steps, then resumed: the end of the uninterrupted 2-process run
    const std::string args = fmt::format("{} --batch_size {} --name resumed_{}", common, B / 2, model);
    for (const auto& r : launch(2, args + " --stop_after_steps 30", dir, "stop")) ASSERT_EQ(r.exit_code, 0) << r.output;
    for (const auto& r : launch(2, args + " --resume", dir, "resume")) ASSERT_EQ(r.exit_code, 0) << r.output;
    expect_close(dir / fmt::format("two_{}.pt", model), dir / fmt::format("resumed_{}.pt", model), 1e-6, "resumed");
  }
}

// The modern model's hand-written bf16 step (modern_fused.h, npe-train's default on CUDA) data
// parallel: 2 processes with batch B/2 each stay identical (the all-reduce goes between the
// kernels' gradient and the update) and learn as 1 process with batch B does, up to bf16
// rounding (the two runs round different partial sums): validation losses within 3%.
TEST_F(DistributedCuda, ModernHandWrittenStepDataParallel) {
  test::TempDir dir;
  const std::string prefix = test_util::make_dataset(dir, test::fresh_seed());
  const int B = 256, steps = 200;
  const std::string common = fmt::format(
      "--model modern --dataset_prefix {} --total_samples {} --eval_every 50 --val_windows 1000 --seed {} "
      "--no_progress --checkpoint_dir {}",
      prefix, B * steps, test::fresh_seed() % 1000, dir.path.string());
  const auto one = test::run_command(
      fmt::format("CUDA_VISIBLE_DEVICES=0 {} {} --batch_size {} --name one", test::tool("npe-train"), common, B));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_NE(one.output.find("bf16, hand-written step"), std::string::npos) << one.output;
  const auto two = launch(2, fmt::format("{} --batch_size {} --name two", common, B / 2), dir, "two");
  for (const auto& r : two) ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(two[0].output.find("bf16, hand-written step"), std::string::npos) << two[0].output;
  EXPECT_NE(two[0].output.find("difference at the end 0\n"), std::string::npos) << two[0].output;
  const auto a = parse_metrics_csv(read_file(dir / "one.csv"), "one");
  const auto b = parse_metrics_csv(read_file(dir / "two.csv"), "two");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].step, b[i].step);
    EXPECT_NEAR(a[i].val_loss, b[i].val_loss, 3e-2 * a[i].val_loss) << "step " << a[i].step;
  }
  EXPECT_LT(a.back().val_loss, a.front().val_loss) << "the runs learn";
}

// Ctrl-C under a launcher (torchrun relays it to every process): both processes stop at the next
// agreed step with exit status 130 and process 0's final checkpoint, and --resume finishes the run
// where the uninterrupted run ends.
TEST_F(DistributedCuda, InterruptStopsEveryProcessAndResumes) {
  test::TempDir dir;
  const std::string prefix = test_util::make_dataset(dir, test::fresh_seed());
  const std::string common = fmt::format("--model modern --dataset_prefix {} --total_samples {} --batch_size 128 "
                                         "--eval_every 500 --val_windows 500 --precision fp32 --no_progress "
                                         "--checkpoint_dir {}",
                                         prefix, 256 * 3000, dir.path.string());
  for (const auto& r : launch(2, common + " --name whole", dir, "whole")) ASSERT_EQ(r.exit_code, 0) << r.output;
  // SIGINT to both processes once the first checkpoint (step 500) is written
  const std::string signal = fmt::format("for i in $(seq 600); do [ -e {0} ] && break; sleep 0.05; done\n"
                                         "for p in $(pgrep -x npe-train); do tr '\\0' ' ' < /proc/$p/cmdline | grep -q "
                                         "-- '--name cut' && kill -INT $p; done",
                                         dir / "cut.pt");
  const auto cut = launch(2, common + " --name cut", dir, "cut", signal);
  for (const auto& r : cut) EXPECT_EQ(r.exit_code, 130) << r.output;
  EXPECT_NE(cut[0].output.find("interrupted at step"), std::string::npos) << cut[0].output;
  const int64_t stopped = load_checkpoint(dir / "cut.pt", std::nullopt, "cut", torch::kCPU).step;
  EXPECT_GT(stopped, 0);
  EXPECT_LT(stopped, 3000) << "the run ended before the signal";
  EXPECT_EQ(stopped % 100, 0) << "stops are agreed every 100 steps";
  fmt::print("[interrupt] both processes stopped at step {}\n", stopped);
  for (const auto& r : launch(2, common + " --name cut --resume", dir, "resume")) ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_close(dir / "whole.pt", dir / "cut.pt", 1e-6, "interrupted and resumed");
}

// An error on one process only (process 0's --resume checkpoint is corrupt) stops both, each
// naming it, instead of leaving the other waiting in a collective.
TEST_F(DistributedCuda, SetUpErrorOnOneProcessStopsBoth) {
  test::TempDir dir;
  const std::string prefix = test_util::make_dataset(dir, test::fresh_seed());
  write_file_atomic(dir / "bad.pt", "not a checkpoint");
  const auto r = launch(2,
                        fmt::format("--model modern --dataset_prefix {} --total_samples 4096 --batch_size 256 "
                                    "--no_progress --checkpoint_dir {} --name bad --resume",
                                    prefix, dir.path.string()),
                        dir, "bad");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].exit_code, 2) << r[0].output;
  EXPECT_EQ(r[1].exit_code, 2) << r[1].output;
  EXPECT_NE(r[0].output.find("bad.pt"), std::string::npos) << r[0].output;
  EXPECT_NE(r[1].output.find("rank 0: "), std::string::npos) << r[1].output;
  EXPECT_NE(r[1].output.find("bad.pt"), std::string::npos) << r[1].output;
}

}  // namespace
}  // namespace npe::model
