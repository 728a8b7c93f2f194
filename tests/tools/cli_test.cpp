// The command-line tools as a user runs them: a tiny end-to-end pipeline, and bad input that must
// give one clear error naming the file or flag, with a non-zero exit status.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "npe/datagen/dataset.h"
#include "npe/core/io.h"
#include "npe/core/npy.h"
#include "test_util.h"

namespace npe {
namespace {
namespace fs = std::filesystem;
using test::run_command;
using test::tool;

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    prefix_ = *dir_ / "data/balls";
    auto r = run_command(tool("npe-datagen") + " --num_scenes 40 --timesteps 20 --no_progress --out_prefix " + prefix_);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (const char* kind : {"classic", "modern"}) {
      r = run_command(tool("npe-train") + (std::string(kind) == "modern" ? " --modern --msg_dim 16" : "") +
                      " --device cpu --batch_size 16 --total_samples 320 --eval_every 10 --no_progress --name " + kind +
                      " --checkpoint_dir " + (*dir_ / "ck") + " --dataset_prefix " + prefix_);
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  // Copies the dataset to a fresh prefix that a test may damage.
  static std::string copy_dataset(const std::string& name) {
    const std::string p = *dir_ / (name + "/balls");
    fs::create_directories(fs::path(p).parent_path());
    for (const char* suffix : {".json", "_train.npy", "_val.npy", "_test.npy"})
      fs::copy_file(prefix_ + suffix, p + suffix);
    return p;
  }
  static void expect_error(const std::string& cmd, std::initializer_list<std::string> needles) {
    auto r = run_command(cmd);
    // exit status 2 and "error:" (not "internal error:"): a diagnosed user error
    EXPECT_EQ(r.exit_code, 2) << cmd << "\n" << r.output;
    EXPECT_NE(r.output.find(": error: "), std::string::npos) << r.output;
    for (const auto& n : needles)
      EXPECT_NE(r.output.find(n), std::string::npos) << "missing '" << n << "' in:\n" << r.output;
  }

  static test::TempDir* dir_;
  static std::string prefix_;
};
test::TempDir* Cli::dir_ = nullptr;
std::string Cli::prefix_;

TEST_F(Cli, EvalAndRenderRunOnTrainedCheckpoints) {
  const std::string out = *dir_ / "out";
  auto r = run_command(tool("npe-eval") + " --device cpu --classic_ckpt " + (*dir_ / "ck/classic.pt") +
                       " --modern_ckpt " + (*dir_ / "ck/modern.best.pt") + " --dataset_prefix " + prefix_ +
                       " --num_scenes 4 --rollout_steps 10" + " --out_png " + out + "/m.png --out_json " + out +
                       "/m.json --out_csv " + out + "/m.csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("constant_velocity"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("simulator"), std::string::npos) << r.output;  // the engine's row
  for (const char* f : {"m.png", "m.json", "m.csv"}) EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  EXPECT_NE(read_file(out + "/m.csv").find("\nsimulator,10,"), std::string::npos);
  r = run_command(tool("npe-render") + " --device cpu --classic_ckpt " + (*dir_ / "ck/classic.pt") + " --modern_ckpt " +
                  (*dir_ / "ck/modern.pt") + " --dataset_prefix " + prefix_ +
                  " --num_scenes 1 --rollout_steps 8 --out_dir " + out + " --metrics_csv " +
                  (*dir_ / "ck/classic.csv") + "," + (*dir_ / "ck/modern.csv"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out + "/rollout_gt_classic_modern_sim_scene0.mp4"));
  EXPECT_TRUE(fs::exists(out + "/training_curves.png"));
}

// npe-datagen --engine gpu (the CPU reference where no GPU is present, said in one line), with
// obstacles, then npe-render on the dataset alone: the engine's scenes can be looked at.
TEST_F(Cli, GpuEngineDatasetWithObstaclesRenders) {
  const std::string p = *dir_ / "gpu/obs";
  auto r = run_command(tool("npe-datagen") +
                       " --engine gpu --num_scenes 12 --timesteps 16 --variable_mass --no_progress"
                       " --obstacles 'capsule:250,300,550,300,30;box:650,150,60,30,30' --out_prefix " +
                       p);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // without a GPU one line says so (and says why); with one, nothing
  const std::string line = "running the engine's CPU reference";
  const size_t said = r.output.find(line);
  if (said != std::string::npos) {
    EXPECT_EQ(r.output.find("CPU reference", said + line.size()), std::string::npos) << "said more than once:\n"
                                                                                     << r.output;
  }
  const auto m = read_file(p + ".json");
  EXPECT_NE(m.find("\"engine\": \"npe-gpu\""), std::string::npos) << m;
  EXPECT_NE(m.find("\"capsule\""), std::string::npos) << m;
  const std::string out = *dir_ / "gpu/render";
  r = run_command(tool("npe-render") + " --dataset_prefix " + p +
                  " --split train --num_scenes 2 --rollout_steps 14 --out_dir " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out + "/train_scene1.mp4")) << r.output;
  expect_error(tool("npe-render") + " --dataset_prefix " + p + " --split nope --out_dir " + out, {"--split", "nope"});
}

TEST_F(Cli, BadObstaclesAndEngineFlags) {
  const std::string p = *dir_ / "bad/obs";
  expect_error(tool("npe-datagen") + " --engine gpu --obstacles 'circle:1,2,3' --out_prefix " + p,
               {"--obstacles", "circle"});
  expect_error(tool("npe-datagen") + " --engine gpu --obstacles 'box:1,2,0,4,5' --out_prefix " + p,
               {"--obstacles", "half extents"});
  expect_error(tool("npe-datagen") + " --obstacles 'capsule:1,2,3,4,5' --out_prefix " + p,
               {"--obstacles", "--engine gpu"});
  expect_error(tool("npe-datagen") + " --engine warp --out_prefix " + p, {"--engine", "warp"});
  expect_error(tool("npe-datagen") + " --engine gpu --substeps 2 --out_prefix " + p, {"--substeps"});
  expect_error(tool("npe-datagen") + " --engine gpu --contact_ramp -0.5 --out_prefix " + p, {"--contact_ramp", "-0.5"});
  expect_error(tool("npe-datagen") + " --contact_ramp 0.1 --out_prefix " + p, {"--contact_ramp", "--engine gpu"});
  EXPECT_FALSE(fs::exists(p + ".json"));
}

// npe-datagen --shard k/N for every k, then --merge_shards N: the merged dataset holds the scenes of
// a single run (the suite's dataset, same flags) and npe-train reads it; a shard's manifest is not a
// dataset's; bad --shard and --merge_shards flags are refused naming them.
TEST_F(Cli, ShardedDatasetIsASingleRunThatTheToolsRead) {
  const std::string p = *dir_ / "shards/balls";
  for (int k = 0; k < 3; ++k) {
    const auto r = run_command(tool("npe-datagen") +
                               fmt::format(" --num_scenes 40 --timesteps 20 --no_progress --shard {}/3", k) +
                               " --out_prefix " + p);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  auto r = run_command(tool("npe-datagen") + " --merge_shards 3 --out_prefix " + p);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("merged 3 shards of 40 scenes"), std::string::npos) << r.output;
  const auto merged = datagen::read_manifest(p), single = datagen::read_manifest(prefix_);
  for (const char* split : {"train", "val", "test"}) {
    const auto a = datagen::load_split(prefix_, single, split), b = datagen::load_split(p, merged, split);
    ASSERT_EQ(a.data.size(), b.data.size()) << split;
    EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)), 0) << split;
  }
  r = run_command(tool("npe-train") +
                  " --device cpu --batch_size 16 --total_samples 160 --eval_every 5 --no_progress"
                  " --name sharded --checkpoint_dir " +
                  (*dir_ / "shards/ck") + " --dataset_prefix " + p);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(*dir_ / "shards/ck/sharded.pt")) << r.output;
  expect_error(tool("npe-train") + " --device cpu --no_progress --checkpoint_dir " + (*dir_ / "shards/ck2") +
                   " --dataset_prefix " + p + ".shard-00001-of-00003",
               {"shard-00001-of-00003.json", "shard 1 of 3", "--merge_shards 3"});
  for (const char* bad : {"3/2", "-1/4", "a/b", "1/0"})
    expect_error(tool("npe-datagen") + " --num_scenes 10 --no_progress --shard " + bad + " --out_prefix " +
                     (*dir_ / "shards/bad"),
                 {"--shard", bad});
  expect_error(
      tool("npe-datagen") + " --num_scenes 10 --no_progress --shard 0/11 --out_prefix " + (*dir_ / "shards/bad"),
      {"--shard 0/11", "num_scenes (10)"});
  expect_error(tool("npe-datagen") + " --merge_shards 4 --out_prefix " + p,
               {"--merge_shards 4", "shard-00000-of-00004.json", "N = 3"});
  expect_error(tool("npe-datagen") + " --merge_shards 3 --seed 1 --out_prefix " + p, {"--seed", "--merge_shards"});
  expect_error(tool("npe-datagen") + " --merge_shards 3", {"--merge_shards", "--out_prefix"});
  EXPECT_FALSE(fs::exists(*dir_ / "shards/bad.json"));
}

// The engine's and the training loop's benchmarks and the Box2D comparison run from the command
// line (small sizes).
TEST_F(Cli, BenchAndCompareEnginesWriteTheirReports) {
  const std::string out = *dir_ / "bench";
  auto r = run_command(tool("npe-bench") + " engine --quick --device cpu --repeats 1 --cases a,c --out_csv " + out +
                       "/e.csv --out_json " + out + "/e.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string csv = read_file(out + "/e.csv");
  EXPECT_NE(csv.find("a_4ball_recorded,cpu,float32"), std::string::npos) << csv;
  EXPECT_NE(csv.find("c_world_2000,cpu,float32"), std::string::npos) << csv;
  EXPECT_EQ(csv.find("b_4ball_final"), std::string::npos) << csv;
  expect_error(tool("npe-bench") + " engine --repeats 0", {"--repeats"});
  expect_error(tool("npe-bench") + " fluid", {"fluid", "engine, diffsim, train, train-dp or control"});
  r = run_command(tool("npe-bench") + " train --quick --device cpu --threads 1 --out_csv " + out +
                  "/t.csv --out_json " + out + "/t.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string tcsv = read_file(out + "/t.csv");
  EXPECT_NE(tcsv.find("cpu,classic,eager,50,"), std::string::npos) << tcsv;
  EXPECT_NE(tcsv.find("cpu,modern,eager,2048,"), std::string::npos) << tcsv;
  r = run_command(tool("npe-compare-engines") + " --num_scenes 40 --out_json " + out + "/c.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(read_file(out + "/c.json").find("speed_ks_statistic"), std::string::npos);
}

// npe-control: a short run writes its files; bad flags and task files get one-line errors naming
// the flag or the file and field.
TEST_F(Cli, ControlTrainsAndNamesBadInputs) {
  const std::string out = *dir_ / "control";
  auto r = run_command(tool("npe-control") +
                       " train --task reach --algo apg --device cpu --num_envs 8 --max_frames 960 " +
                       "--eval_layouts 8 --hidden 16 --video_layouts 0 --out_dir " + out + "/run");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(read_file(out + "/run/metrics.csv").find("evaluation,frames,env_steps,seconds,success"), std::string::npos);
  EXPECT_NE(read_file(out + "/run/summary.json").find("\"frames_to_target\""), std::string::npos);
  // the finished run's policy filmed afterwards (as for runs trained on the GPU machine)
  r = run_command(tool("npe-control") + " video --task reach --algo apg --device cpu --hidden 16 --video_layouts 2 " +
                  "--out_dir " + out + "/run");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(fs::file_size(out + "/run/policy.mp4"), 1000u);
  const std::string video = tool("npe-control") +
                            " video --task reach --algo apg --device cpu --num_envs 8 --eval_layouts 8 --out_dir ";
  expect_error(video + out + "/run --hidden 16 --video_layouts 0", {"--video_layouts", "found 0"});
  expect_error(video + out + "/run", {"--out_dir", "another 'agent'", "summary.json"});  // hidden 256, not 16
  expect_error(video + out + "/none --hidden 16", {"--out_dir", "none", "no checkpoint.pt"});
  const std::string train = tool("npe-control") + " train --device cpu --out_dir " + out + "/bad";
  expect_error(train + " --task pool", {"--task", "expected billiards, herding, reach or a task file", "pool"});
  expect_error(train + " --algo ppo", {"--algo", "expected sac, apg, hybrid or cem", "ppo"});
  expect_error(train + " --num_envs 0", {"--num_envs", "found 0"});
  expect_error(train + " --gamma 2", {"--gamma", "[0, 1]", "found 2"});
  expect_error(train + " --task herding --algo cem", {"--algo", "billiards"});
  expect_error(tool("npe-control") + " fly", {"train, compare, diagnose or video", "fly"});
  write_file_atomic(out + "/t.json", R"({"kind": "herding", "drag": -1})");
  expect_error(train + " --task " + out + "/t.json", {"--task", "t.json", "task field 'drag'", "positive", "-1"});
  write_file_atomic(out + "/u.json", R"({"kind": "herding", "speed": 3})");
  expect_error(train + " --task " + out + "/u.json", {"u.json", "unknown task field 'speed'"});
  write_file_atomic(out + "/v.json", "{\"kind\": ");
  expect_error(train + " --task " + out + "/v.json", {"v.json", "not valid JSON"});
  // an earlier run is never overwritten
  expect_error(tool("npe-control") + " train --task reach --device cpu --out_dir " + out + "/run",
               {"--out_dir", "holds an earlier run", "resume"});
}

// npe-sysid on a variable-mass dataset, its masses used by npe-eval's simulator row; refused on
// a uniform-mass dataset.
TEST_F(Cli, SysidIdentifiesMassesThatEvalUses) {
  const std::string p = *dir_ / "vm/vm", out = *dir_ / "vm/out";
  auto r = run_command(tool("npe-datagen") +
                       " --variable_mass --num_scenes 30 --timesteps 16 --no_progress --out_prefix " + p);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(tool("npe-sysid") + " --device cpu --dataset_prefix " + p +
                  " --num_scenes 3 --iterations 6 --window 5" + " --out_json " + out + "/s.json --out_md " + out +
                  "/s.md");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| simulator, gradient-based fit"), std::string::npos) << r.output;
  EXPECT_NE(read_file(out + "/s.md").find("| chance | 33.3% |"), std::string::npos);
  r = run_command(tool("npe-eval") + " --device cpu --dataset_prefix " + p +
                  " --num_scenes 3 --rollout_steps 8 --sim_masses " + out + "/s.json --out_png " + out +
                  "/m.png --out_json " + out + "/m.json --out_csv " + out + "/m.csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(read_file(out + "/m.json").find(out + "/s.json"), std::string::npos);
  expect_error(
      tool("npe-eval") + " --device cpu --dataset_prefix " + p + " --num_scenes 4 --sim_masses " + out + "/s.json",
      {"--sim_masses", "at least 4 scenes, found 3"});
  expect_error(tool("npe-sysid") + " --dataset_prefix " + prefix_, {"--dataset_prefix", "--variable_mass"});
  expect_error(tool("npe-sysid") + " --dataset_prefix " + p + " --window 40", {"--window", "found 40"});
}

// A dataset the engine cannot replay (friction) gets no simulator row, said in one line; asking
// for one explicitly is an error naming the flag.
TEST_F(Cli, EvalSkipsTheSimulatorOnWorldsTheEngineCannotReplay) {
  const std::string p = copy_dataset("friction");
  std::string m = read_file(p + ".json");
  const auto at = m.find("\"friction\": 0.0");
  ASSERT_NE(at, std::string::npos) << m;
  m.replace(at, 15, "\"friction\": 0.3");
  write_file_atomic(p + ".json", m);
  const std::string out = *dir_ / "friction/out";
  const std::string eval = tool("npe-eval") + " --device cpu --classic_ckpt " + (*dir_ / "ck/classic.pt") +
                           " --dataset_prefix " + p + " --num_scenes 2 --rollout_steps 5 --out_png " + out +
                           "/m.png --out_json " + out + "/m.json --out_csv " + out + "/m.csv";
  // the checkpoint was trained without friction: evaluated there only on purpose, and recorded
  expect_error(eval, {"classic.pt", "friction 0", "friction 0.3", "allow_world_transfer friction"});
  auto r = run_command(eval + " --allow_world_transfer 'masses, friction'");  // names, spaces allowed
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = nlohmann::json::parse(read_file(out + "/m.json"));
  EXPECT_EQ(report["world_transfer"]["classic"]["friction"]["trained"], "0") << report.dump();
  EXPECT_EQ(report["world_transfer"]["classic"]["friction"]["dataset"], "0.3") << report.dump();
  EXPECT_NE(r.output.find("no simulator row: the dataset's friction is 0.3"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(out + "/m.csv").find("simulator"), std::string::npos);
  expect_error(tool("npe-eval") + " --dataset_prefix " + p + " --simulator", {"--simulator", "friction"});
}

// The walls worlds end to end, as the paper runs them: datasets of the training shapes (O, L) and
// of a test shape (U); a classic, an LSTM and a graph network model trained on the first (walls models: the blocks
// are context objects, the fused step says why it does not apply); npe-eval on U without the
// simulator row (the engine replays no per-scene walls); a model without walls evaluated there
// only on purpose (--allow_world_transfer walls).
TEST_F(Cli, WallsWorldsTrainOnOAndLAndEvaluateOnU) {
  const std::string d = *dir_ / "walls";
  for (const char* shapes : {"O,L", "U"}) {
    auto r = run_command(tool("npe-datagen") + " --preset walls --walls " + shapes +
                         " --num_scenes 20 --timesteps 16 --no_progress --out_prefix " + d + "/" + shapes[0] + "/w");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("w_test_walls.npy"), std::string::npos) << r.output;
  }
  for (const char* kind : {"classic", "lstm", "gns"}) {
    auto r = run_command(tool("npe-train") + " --model " + kind + (std::string(kind) == "gns" ? " --msg_dim 16" : "") +
                         " --device cpu --batch_size 16 --total_samples 320 --eval_every 10 --no_progress --name " +
                         kind + " --checkpoint_dir " + d + "/ck --dataset_prefix " + d + "/O/w");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const std::string out = d + "/out";
  const std::string eval = tool("npe-eval") + " --device cpu --classic_ckpt " + d + "/ck/classic.pt --lstm_ckpt " + d +
                           "/ck/lstm.pt --gns_ckpt " + d + "/ck/gns.pt --dataset_prefix " + d +
                           "/U/w --num_scenes 3 --rollout_steps 10" + " --out_png " + out + "/m.png --out_json " + out +
                           "/m.json --out_csv " + out + "/m.csv";
  auto r = run_command(eval);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("no simulator row: a walls world"), std::string::npos) << r.output;
  const auto report = nlohmann::json::parse(read_file(out + "/m.json"));
  for (const char* m : {"classic", "lstm", "gns", "constant_velocity"}) {
    ASSERT_TRUE(report["models"].contains(m)) << report.dump();
    EXPECT_EQ(report["models"][m]["cosine"].size(), 10u);
  }
  // trained on O and L, evaluated on U: the shapes may differ, so no transfer is recorded
  EXPECT_FALSE(report.contains("world_transfer")) << report.dump();
  // the rollout beside the ground truth, each scene with its own walls
  r = run_command(tool("npe-render") + " --device cpu --classic_ckpt " + d + "/ck/classic.pt --dataset_prefix " + d +
                  "/U/w --num_scenes 2 --rollout_steps 6 --out_dir " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out + "/rollout_gt_classic_scene1.mp4")) << r.output;
  // a model trained without walls: refused on a walls world unless asked for, then it sees the balls
  expect_error(tool("npe-eval") + " --device cpu --simulator=false --classic_ckpt " + (*dir_ / "ck/classic.pt") +
                   " --dataset_prefix " + d + "/U/w --num_scenes 2 --rollout_steps 5 --out_png " + out +
                   "/n.png --out_json " + out + "/n.json --out_csv " + out + "/n.csv",
               {"classic.pt", "walls", "allow_world_transfer"});
}

// npe-optimize on the shipped example converges and writes rollouts npe-render draws.
TEST_F(Cli, OptimizeShippedExampleAndRenderIt) {
  const std::string out = *dir_ / "opt";
  auto r = run_command(tool("npe-optimize") + " --problem " + NPE_SOURCE_DIR +
                       "/data/examples/launch.json --out_prefix " + out + "/launch");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(converged)"), std::string::npos) << r.output;
  r = run_command(tool("npe-render") + " --dataset_prefix " + out + "/launch --num_scenes 2 --out_dir " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out + "/test_scene1.mp4"));
  std::ofstream(out + "/bad.json")
      << R"({"balls": [[100, 300, 0, 0, 1], [300, 300, 0, 0, 1]], "shooter": 0, "target_ball": 1, "frames": 5})";
  expect_error(tool("npe-optimize") + " --problem " + out + "/bad.json --out_prefix " + out + "/b",
               {out + "/bad.json", "'target' is missing"});
  EXPECT_FALSE(fs::exists(out + "/b.json"));
}

// The paper's experiments in miniature: a dataset mixing 2 and 3 balls, the classic NPE and the NP
// baseline trained on it (the NP with noise injection), npe-eval on a 5-ball dataset with both,
// and npe-results' table (n/a where the modern model is missing).
TEST_F(Cli, ResultsTableFromMixedCountCheckpoints) {
  const std::string mix = *dir_ / "mix/mix", five = *dir_ / "five/five", ck = *dir_ / "ck_mix", out = *dir_ / "res";
  auto r = run_command(tool("npe-datagen") +
                       " --num_scenes 40 --timesteps 16 --num_balls 2,3 --no_progress --out_prefix " + mix);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(tool("npe-datagen") + " --num_scenes 20 --timesteps 16 --num_balls 5 --no_progress --out_prefix " +
                  five);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* kind : {"classic", "np"}) {
    r = run_command(tool("npe-train") + " --model " + kind + " --device cpu --batch_size 16 --total_samples 160 " +
                    "--no_progress --name " + kind + " --checkpoint_dir " + ck + " --dataset_prefix " + mix +
                    (std::string(kind) == "np" ? " --input_noise 0.05" : ""));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  r = run_command(tool("npe-eval") + " --device cpu --np_ckpt " + ck + "/np.best.pt --classic_ckpt " + ck +
                  "/classic.best.pt --dataset_prefix " + five + " --num_scenes 3 --rollout_steps 10 --out_png " + out +
                  "/e.png --out_json " + out + "/e.json --out_csv " + out + "/e.csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(read_file(out + "/e.csv").find("\nnp,10,"), std::string::npos);
  r = run_command(tool("npe-results") + " --device cpu --world '5 balls:" + ck + ":" + five + "' --world '2-3 balls:" +
                  ck + ":" + mix + "' --num_scenes 3 --rollout_steps 10 --steps 2,10 --long_steps 5,10 --simulator " +
                  "--out_md " + out + "/t.md --out_csv " + out + "/t.csv --out_json " + out + "/t.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string md = read_file(out + "/t.md");
  // the simulator's rows on both worlds, and the long-rollout table: a row per world, model, step
  for (const char* row :
       {"| 5 balls | classic |", "| 5 balls | np |", "| 5 balls | constant velocity |", "| 2-3 balls | classic |",
        "| world | model | samples | val MSE | cos@2 | cos@10 |", "| 5 balls | simulator |",
        "| 5 balls | classic | 0.00016 M |", "| step | cos | rel | pos px | KE drift |", "| 5 balls | classic | 10 |",
        "| 5 balls | simulator | 5 |", " | +0.000 |"})
    EXPECT_NE(md.find(row), std::string::npos) << row << " in\n" << md;
  expect_error(tool("npe-results") + " --device cpu --world '5 balls:" + ck + ":" + five +
                   "' --rollout_steps 10 --steps 2,10 --long_steps 5,11 --out_md " + out + "/u.md",
               {"--long_steps", "1..--rollout_steps (10)", "11"});
  EXPECT_FALSE(fs::exists(out + "/u.md"));
  EXPECT_NE(md.find("| 5 balls | n/a |"), std::string::npos) << md;  // no modern model: no modern-vs-classic claim
  // the engine replays one ball count per dataset: no simulator rows for 2-3 balls, and the reason
  EXPECT_EQ(md.find("| 2-3 balls | simulator |"), std::string::npos) << md;
  EXPECT_NE(r.output.find("2-3 balls: no simulator rows: "), std::string::npos) << r.output;
  EXPECT_NE(read_file(out + "/t.csv").find("world,model,step,cosine,rel_mag_error,pos_error_px,energy_drift\n"),
            std::string::npos);
  EXPECT_NE(read_file(out + "/t.csv").find("2-3 balls,np,10,"), std::string::npos);
  EXPECT_TRUE(fs::exists(out + "/t.json"));
}

TEST_F(Cli, BadExperimentFlags) {
  const std::string e = *dir_ / "bad/bad";
  expect_error(tool("npe-datagen") + " --num_balls 3,x --out_prefix " + e, {"--num_balls", "'x'"});
  expect_error(tool("npe-datagen") + " --preset npe2016 --out_prefix " + e, {"--preset", "npe2016"});
  expect_error(tool("npe-datagen") + " --preset npe2017 --max_speed 5 --out_prefix " + e, {"--max_speed", "--preset"});
  expect_error(tool("npe-datagen") + " --engine gpu --num_balls 3,4 --num_scenes 3 --out_prefix " + e,
               {"--num_balls 3,4"});
  expect_error(tool("npe-datagen") + " --engine gpu --preset npe2017 --num_scenes 3 --out_prefix " + e,
               {"--preset npe2017"});
  expect_error(tool("npe-train") +
                   " --device cpu --input_noise -1 --total_samples 100 --no_progress --checkpoint_dir " +
                   (*dir_ / "ck6") + " --dataset_prefix " + copy_dataset("noise"),
               {"--input_noise", "-1"});
  expect_error(tool("npe-results") + " --device cpu --world nocolons", {"--world", "nocolons"});
  expect_error(tool("npe-results") + " --device cpu --world 'x:" + (*dir_ / "empty") + ":" + prefix_ + "'",
               {"--world", "no checkpoint"});
  expect_error(tool("npe-results") + " --device cpu", {"--world"});
}

TEST_F(Cli, UnknownFlag) {
  expect_error(tool("npe-datagen") + " --num_scenes 10 --bogus_flag 3", {"bogus_flag"});
  expect_error(tool("npe-train") + " --nope", {"nope"});
  expect_error(tool("npe-eval") + " stray", {"stray"});
}

TEST_F(Cli, RestitutionOutOfRange) {
  expect_error(tool("npe-datagen") + " --restitution 1.5 --out_prefix " + (*dir_ / "e/e"), {"--restitution", "1.5"});
  expect_error(tool("npe-datagen") + " --engine gpu --restitution 0 --num_scenes 3 --out_prefix " + (*dir_ / "e/e"),
               {"restitution"});
}

TEST_F(Cli, UnknownOrConflictingModel) {
  expect_error(tool("npe-train") + " --device cpu --model gru", {"--model", "gru"});
  expect_error(tool("npe-train") + " --device cpu --model lstm --modern", {"--modern", "--model lstm"});
  expect_error(tool("npe-train") + " --device cpu --precision fp8 --total_samples 100 --no_progress --checkpoint_dir " +
                   (*dir_ / "ck4") + " --dataset_prefix " + copy_dataset("prec"),
               {"--precision", "fp8"});
  expect_error(tool("npe-train") +
                   " --device cpu --checkpoint_every -1 --total_samples 100 --no_progress "
                   "--checkpoint_dir " +
                   (*dir_ / "ck5") + " --dataset_prefix " + copy_dataset("ckev"),
               {"--checkpoint_every", "-1"});
}

TEST_F(Cli, ZeroScenes) {
  expect_error(tool("npe-datagen") + " --num_scenes 0 --out_prefix " + (*dir_ / "z/z"), {"--num_scenes"});
}

TEST_F(Cli, NegativeRadius) {
  expect_error(tool("npe-datagen") + " --num_scenes 10 --radius -3 --out_prefix " + (*dir_ / "r/r"),
               {"--radius", "-3"});
}

// The library names the field (frame_dt); the tool shows the flag that sets it (--dt), and a
// field of no flag of the tool is shown as the library names it.
TEST_F(Cli, FieldErrorsNameTheToolsFlag) {
  expect_error(tool("npe-datagen") + " --num_scenes 10 --dt 0 --out_prefix " + (*dir_ / "dt/dt"),
               {"npe-datagen: error: --dt: expected a positive frame interval in s, found 0"});
  expect_error(
      tool("npe-datagen") + " --num_scenes 10 --engine gpu --cpu --num_balls 3,4 --out_prefix " + (*dir_ / "nb/nb"),
      {"npe-datagen: error: --num_balls 3,4: the engine simulates scenes of one ball count"});
}

TEST_F(Cli, UnwritableOutputPath) {
  write_file_atomic(*dir_ / "a_file", "x");
  expect_error(tool("npe-datagen") + " --num_scenes 10 --no_progress --out_prefix " + (*dir_ / "a_file/sub/x"),
               {"a_file/sub"});
  EXPECT_FALSE(fs::exists(*dir_ / "a_file/sub"));
}

TEST_F(Cli, MissingDataset) {
  expect_error(tool("npe-train") + " --device cpu --total_samples 100 --checkpoint_dir " + (*dir_ / "ck3") +
                   " --dataset_prefix " + (*dir_ / "none/x"),
               {"none/x.json"});
}

TEST_F(Cli, TruncatedDatasetFile) {
  const std::string p = copy_dataset("trunc");
  fs::resize_file(p + "_train.npy", fs::file_size(p + "_train.npy") - 100);
  expect_error(tool("npe-train") + " --device cpu --total_samples 100 --no_progress --checkpoint_dir " +
                   (*dir_ / "ck2") + " --dataset_prefix " + p,
               {"_train.npy", "truncated"});
}

TEST_F(Cli, WrongTensorShape) {
  const std::string p = copy_dataset("shape");
  std::vector<float> data(6 * 20 * 3 * 5, 0.25f);
  write_npy_f32(p + "_test.npy", {6, 20, 3, 5}, data.data());
  expect_error(tool("npe-eval") + " --device cpu --classic_ckpt " + (*dir_ / "ck/classic.pt") + " --dataset_prefix " +
                   p + " --out_png " + (*dir_ / "o/a.png"),
               {"_test.npy", "shape", "(6, 20, 3, 5)"});
}

TEST_F(Cli, CheckpointOfTheWrongKind) {
  expect_error(
      tool("npe-eval") + " --device cpu --classic_ckpt " + (*dir_ / "ck/modern.pt") + " --dataset_prefix " + prefix_,
      {"--classic_ckpt", "modern.pt", "holds a modern model"});
  expect_error(tool("npe-render") + " --device cpu --modern_ckpt " + (*dir_ / "ck/classic.pt") + " --dataset_prefix " +
                   prefix_ + " --rollout_steps 10 --out_dir " + (*dir_ / "o"),
               {"--modern_ckpt", "holds a classic model"});
}

TEST_F(Cli, CheckpointFromAnotherWorld) {
  const std::string p = *dir_ / "big/balls";
  auto r = run_command(tool("npe-datagen") + " --num_scenes 10 --timesteps 20 --radius 40 --no_progress --out_prefix " +
                       p);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_error(
      tool("npe-eval") + " --device cpu --classic_ckpt " + (*dir_ / "ck/classic.pt") + " --dataset_prefix " + p,
      {"classic.pt", "radius 60", "radius 40"});
}

TEST_F(Cli, ResumeWithOtherFlagsIsRefused) {
  expect_error(tool("npe-train") +
                   " --device cpu --batch_size 32 --total_samples 640 --no_progress --resume --name classic" +
                   " --checkpoint_dir " + (*dir_ / "ck") + " --dataset_prefix " + prefix_,
               {"--batch_size", "16", "32"});
}

// Files directly in `dir` (hidden temporary files of killed writers included).
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs `command` in the background, sends `signal` after `seconds`, and returns the exit status
// that bash reports for it (128 + the signal when it died of it).
int signal_after(const std::string& command, const char* signal, double seconds) {
  const auto r = run_command(fmt::format("bash -c '{} > /dev/null 2>&1 & p=$!; sleep {:.3f}; kill -{} $p; wait $p; "
                                         "echo status $?'",
                                         command, seconds, signal));
  const size_t at = r.output.rfind("status ");
  return at == std::string::npos ? -1 : std::stoi(r.output.substr(at + 7));
}

// A training run killed with SIGKILL at a random moment (no chance to clean up), then resumed,
// ends with the uninterrupted run's metrics: every validation loss, bit for bit (CPU, one thread),
// from the last atomic checkpoint (--checkpoint_every) on, or from scratch when killed before it.
// SIGINT instead stops the run cleanly: exit status 130, a checkpoint at the step reached, and
// --resume again ends with the same run. No temporary file is left once the run has finished.
TEST_F(Cli, TrainingKilledOrInterruptedResumesToTheSameRun) {
  const std::string prefix = copy_dataset("sigkill");
  const std::string flags = " --device cpu --threads 1 --batch_size 16 --total_samples 48000 --eval_every 300"
                            " --checkpoint_every 40 --no_progress --name run --dataset_prefix " +
                            prefix;
  auto r = run_command(tool("npe-train") + flags + " --checkpoint_dir " + (*dir_ / "sk_full"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto losses = [](const std::string& csv) {  // columns step..lr, without the wall-clock seconds
    std::string out;
    std::istringstream in(csv);
    for (std::string line; std::getline(in, line);) out += line.substr(0, line.rfind(',')) + "\n";
    return out;
  };
  const std::string want = losses(read_file(*dir_ / "sk_full/run.csv"));
  std::mt19937_64 rng(test::fresh_seed());
  for (int trial = 0; trial < 3; ++trial) {
    const std::string ck = *dir_ / fmt::format("sk_kill{}", trial);
    const double at = std::uniform_real_distribution<double>(0.05, 1.5)(rng);
    const int status = signal_after(tool("npe-train") + flags + " --checkpoint_dir " + ck, "9", at);
    ASSERT_TRUE(status == 137 || status == 0) << "killed after " << at << " s: status " << status;
    r = run_command(tool("npe-train") + flags + " --checkpoint_dir " + ck + " --resume");
    ASSERT_EQ(r.exit_code, 0) << "killed after " << at << " s:\n" << r.output;
    EXPECT_EQ(losses(read_file(ck + "/run.csv")), want) << "killed after " << at << " s";
    EXPECT_EQ(entries(ck), (std::vector<std::string>{"run.best.pt", "run.csv", "run.pt"}))
        << "killed after " << at << " s";
  }
  const std::string ck = *dir_ / "sk_int";
  r = run_command("bash -c '" + tool("npe-train") + flags + " --checkpoint_dir " + ck +
                  " & p=$!; "
                  "while [ ! -f " +
                  ck + "/run.csv ]; do sleep 0.01; done; kill -INT $p; wait $p; echo status $?'");
  ASSERT_NE(r.output.find("status 130"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("interrupted at step"), std::string::npos) << r.output;
  r = run_command(tool("npe-train") + flags + " --checkpoint_dir " + ck + " --resume");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("records no training world"), std::string::npos) << r.output;  // it records one
  EXPECT_EQ(losses(read_file(ck + "/run.csv")), want);
}

// npe-datagen over an existing dataset of another seed, killed with SIGKILL at random moments:
// every file present is whole, each either the old dataset's or the new one's, none lost; a
// re-run finishes the job and leaves no temporary file. SIGINT stops it cleanly (status 130)
// with the old files untouched and no temporary file.
TEST_F(Cli, DatagenKilledOrInterruptedKeepsEveryFileWhole) {
  const std::string base = *dir_ / "dg";
  const std::string flags = " --num_scenes 1500 --timesteps 40 --threads 1 --no_progress";
  auto gen = [&](const std::string& prefix, int seed) {
    auto r = run_command(tool("npe-datagen") + flags + fmt::format(" --seed {} --out_prefix ", seed) + prefix);
    EXPECT_EQ(r.exit_code, 0) << r.output;
  };
  gen(base + "/old/d", 1);
  gen(base + "/new/d", 0);
  const std::vector<std::string> names = {"d.json", "d_test.npy", "d_train.npy", "d_val.npy"};
  ASSERT_EQ(entries(base + "/old"), names);
  std::mt19937_64 rng(test::fresh_seed());
  for (int trial = 0; trial < 4; ++trial) {
    const std::string dir = base + fmt::format("/kill{}", trial);
    fs::create_directories(dir);
    for (const auto& n : names) fs::copy_file(base + "/old/" + n, dir + "/" + n);
    const double at = std::uniform_real_distribution<double>(0.02, 1.2)(rng);
    const int status = signal_after(tool("npe-datagen") + flags + " --seed 0 --out_prefix " + dir + "/d", "9", at);
    ASSERT_TRUE(status == 137 || status == 0) << "killed after " << at << " s: status " << status;
    for (const auto& n : names) {
      const std::string now = read_file(dir + "/" + n);
      EXPECT_TRUE(now == read_file(base + "/old/" + n) || now == read_file(base + "/new/" + n))
          << n << " is neither the old nor the new file after a kill at " << at << " s";
    }
    gen(dir + "/d", 0);
    EXPECT_EQ(entries(dir), names) << "killed after " << at << " s";
    for (const auto& n : names) EXPECT_EQ(read_file(dir + "/" + n), read_file(base + "/new/" + n)) << n;
  }
  const std::string dir = base + "/int";
  fs::create_directories(dir);
  for (const auto& n : names) fs::copy_file(base + "/old/" + n, dir + "/" + n);
  const auto r = run_command("bash -c '" + tool("npe-datagen") +
                             " --num_scenes 1000000 --timesteps 40 --threads 1 "
                             "--no_progress --out_prefix " +
                             dir + "/d & p=$!; while ! ls -a " + dir +
                             " | grep -q tmp; do sleep 0.01; done; sleep 0.2; kill -INT $p; wait $p; echo status $?'");
  ASSERT_NE(r.output.find("status 130"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("interrupted at scene"), std::string::npos) << r.output;
  EXPECT_EQ(entries(dir), names);
  for (const auto& n : names) EXPECT_EQ(read_file(dir + "/" + n), read_file(base + "/old/" + n)) << n;
}

// One writer per output: while npe-datagen writes a prefix, a second npe-datagen on it is refused
// (naming the pid that holds it) and the first finishes a whole dataset. Repeated, since the
// second starts at a different moment of the first's run each time.
TEST_F(Cli, TwoDatagenWritersOnOnePrefix) {
  for (int trial = 0; trial < 4; ++trial) {
    const std::string dir = *dir_ / fmt::format("writers{}", trial);
    fs::create_directories(dir);
    const std::string gen = tool("npe-datagen") + " --num_scenes 2000 --timesteps 30 --threads 1 --no_progress " +
                            "--out_prefix " + dir + "/d";
    // the first runs in the background; the second starts once the first holds its lock
    const auto r = run_command("bash -c '" + gen + " --seed 1 > " + dir + "/first.log 2>&1 & p=$!; while [ ! -e " +
                               dir + "/.d.json.lock ]; do sleep 0.005; done; sleep 0." + std::to_string(trial) + "; " +
                               gen + " --seed 2; echo second $?; wait $p; echo first $?'");
    EXPECT_NE(r.output.find("second 2"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("another process (pid"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("first 0"), std::string::npos) << r.output << read_file(dir + "/first.log");
    const auto m = datagen::read_manifest(dir + "/d");
    EXPECT_EQ(m.seed, 1u);
    for (const char* split : {"train", "val", "test"}) EXPECT_NO_THROW(datagen::load_split(dir + "/d", m, split));
    EXPECT_FALSE(fs::exists(dir + "/.d.json.lock"));
  }
}

// A fresh npe-train with the --name of a live run is refused (with or without --overwrite) and
// leaves the live run's files alone; the live run, stopped by SIGTERM, resumes.
TEST_F(Cli, TrainOverALiveRunIsRefused) {
  const std::string data = copy_dataset("live");
  const std::string ck = *dir_ / "live_ck";
  const std::string train = tool("npe-train") + " --device cpu --no_progress --batch_size 16 --eval_every 5 " +
                            "--threads 1 --checkpoint_dir " + ck + " --dataset_prefix " + data + " --name run";
  for (int trial = 0; trial < 2; ++trial) {
    const std::string extra = trial == 0 ? "" : " --overwrite";
    const auto r = run_command(
        "bash -c '" + train + " --total_samples 160000000" + extra + " > /dev/null 2>&1 & p=$!; while [ ! -e " + ck +
        "/.run.pt.lock ]; do sleep 0.005; done; sleep 0.3; " + train +
        " --total_samples 320 --overwrite; echo second $?; kill -TERM $p; wait $p; echo first $?'");
    EXPECT_NE(r.output.find("second 2"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("another process (pid"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("first 130"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(ck + "/.run.pt.lock"));
    // the live run's checkpoint is its own: it resumes (total_samples is the live run's)
    const auto again = run_command(train + " --total_samples 160000000 --resume --stop_after_steps 1");
    EXPECT_EQ(again.exit_code, 0) << again.output;
  }
}

TEST_F(Cli, AbsurdRolloutLength) {
  expect_error(tool("npe-eval") + " --device cpu --classic_ckpt " + (*dir_ / "ck/classic.pt") + " --dataset_prefix " +
                   prefix_ + " --rollout_steps 2147483647",
               {"--rollout_steps"});
}

TEST_F(Cli, CorruptCheckpointAndMetricsCsv) {
  write_file_atomic(*dir_ / "junk.pt", "not a checkpoint");
  expect_error(tool("npe-eval") + " --device cpu --modern_ckpt " + (*dir_ / "junk.pt") + " --dataset_prefix " + prefix_,
               {"junk.pt"});
  write_file_atomic(*dir_ / "bad.csv", "step,samples_seen,train_loss,val_loss,lr,seconds\n1,2,x,4,5,6\n");
  expect_error(
      tool("npe-render") + " --num_scenes 0 --metrics_csv " + (*dir_ / "bad.csv") + " --out_dir " + (*dir_ / "o"),
      {"bad.csv", "line 2"});
}

// Every row of tests/tools/bad_inputs.tsv: the damaged input gets one clear error (exit status 2,
// "npe-x: error: ...") containing the row's fragments. With NPE_BAD_INPUTS_MD set, the answers
// are written there as the Markdown table that README.md quotes (scripts/bad_inputs_table.sh).
TEST_F(Cli, BadInputsTable) {
  std::istringstream rows(read_file(std::string(NPE_SOURCE_DIR) + "/tests/tools/bad_inputs.tsv"));
  auto split = [](const std::string& text, const std::string& sep) {
    std::vector<std::string> out;
    for (size_t at = 0;;) {
      const size_t next = text.find(sep, at);
      out.push_back(text.substr(at, next == std::string::npos ? std::string::npos : next - at));
      if (next == std::string::npos) return out;
      at = next + sep.size();
    }
  };
  auto replace_all = [](std::string s, const std::string& from, const std::string& to) {
    for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
    return s;
  };
  std::string md = "| bad input | made by | command | exit | npe's answer |\n|---|---|---|---|---|\n";
  int n = 0;
  for (std::string line; std::getline(rows, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto cols = split(line, "\t");
    ASSERT_EQ(cols.size(), 4u) << "bad_inputs.tsv: expected 4 tab-separated columns: " << line;
    const std::string t = *dir_ / fmt::format("bad/{}", n++);
    const std::string d = t + "/data/balls";
    fs::create_directories(t + "/data");
    for (const char* suffix : {".json", "_train.npy", "_val.npy", "_test.npy"})
      fs::copy_file(prefix_ + suffix, d + suffix);
    auto fill = [&](std::string s) {
      s = replace_all(s, "{train}",
                      "{bin}/npe-train --device cpu --no_progress --total_samples 320 --batch_size 16 "
                      "--checkpoint_dir {t}/ck --dataset_prefix {d}");
      s = replace_all(s, "{eval}",
                      "{bin}/npe-eval --device cpu --num_scenes 2 --rollout_steps 5 --out_png {t}/o.png "
                      "--out_json {t}/o.json --out_csv {t}/o.csv --dataset_prefix {d}");
      s = replace_all(s, "{render}", "{bin}/npe-render --num_scenes 0 --out_dir {t}/o --metrics_csv {t}/m.csv");
      s = replace_all(s, "{bin}", NPE_TEST_BIN_DIR);
      s = replace_all(s, "{src}", NPE_SOURCE_DIR);
      s = replace_all(s, "{ck}", *dir_ / "ck");
      s = replace_all(s, "{d}", d);
      return replace_all(s, "{t}", t);
    };
    write_file_atomic(t + "/setup.sh", "set -e\n" + fill(cols[1]) + "\n");
    write_file_atomic(t + "/command.sh", fill(cols[2]) + "\n");
    auto r = run_command("bash " + t + "/setup.sh");
    ASSERT_EQ(r.exit_code, 0) << cols[0] << ": set-up failed: " << cols[1] << "\n" << r.output;
    r = run_command("bash " + t + "/command.sh");
    std::string answer;
    for (const auto& l : split(r.output, "\n"))
      if (l.find(": error: ") != std::string::npos || l.find("internal error") != std::string::npos) answer += l;
    EXPECT_EQ(r.exit_code, 2) << cols[0] << "\n" << r.output;
    EXPECT_NE(answer.find(": error: "), std::string::npos) << cols[0] << ": no error line in:\n" << r.output;
    for (const auto& frag : split(cols[3], " | "))
      EXPECT_NE(answer.find(fill(frag)), std::string::npos)
          << cols[0] << ": '" << fill(frag) << "' missing in: " << answer;
    // the table shows placeholders, not this machine's paths
    auto show = [&](std::string s) {
      s = replace_all(s, d, "{d}");
      s = replace_all(s, t, "{t}");
      s = replace_all(s, *dir_ / "ck", "{ck}");
      s = replace_all(s, std::string(NPE_TEST_BIN_DIR) + "/", "");
      return replace_all(replace_all(s, "|", "\\|"), "`", "'");
    };
    auto code = [&](const std::string& s) {
      return "`" +
             replace_all(replace_all(replace_all(show(s), "{bin}/", ""), "{train}", "npe-train ..."), "{eval}",
                         "npe-eval ...") +
             "`";
    };
    md += fmt::format("| {} | {} | {} | {} | {} |\n", cols[0], cols[1] == "true" ? "" : code(cols[1]),
                      replace_all(code(cols[2]), "{render}", "npe-render ..."), r.exit_code, show(answer));
  }
  EXPECT_GE(n, 30);
  if (const char* out = std::getenv("NPE_BAD_INPUTS_MD")) write_file_atomic(out, md);
}

}  // namespace
}  // namespace npe
