#include "npe/model/checkpoint.h"

#include <gtest/gtest.h>

#include "npe/core/io.h"
#include "test_util.h"

namespace npe::model {
namespace {

class CheckpointTest : public ::testing::TestWithParam<Kind> {};

TEST_P(CheckpointTest, SaveLoadGivesTheIdenticalForwardPass) {
  torch::manual_seed(test::fresh_seed());
  test::TempDir dir;
  ModelConfig c;
  c.kind = GetParam();
  c.msg_dim = 24;
  auto m = make_model(c);
  m->fit_normalisation(torch::rand({100, 5}) * 3, torch::randn({100, 2}));
  torch::optim::Adam opt(m->parameters(), 1e-3);
  // take one optimizer step so that weights and optimizer state are not at their initial values
  auto prev = torch::rand({4, 3, 5}), cur = torch::rand({4, 3, 5});
  m->forward(prev, cur).pow(2).mean().backward();
  opt.step();
  m->eval();
  save_checkpoint(dir / "m.pt", *m, {{"step", 7}}, &opt);
  Checkpoint back = load_checkpoint(dir / "m.pt", c.kind, "--x", torch::kCPU);
  EXPECT_EQ(back.step, 7);
  EXPECT_EQ(back.config.kind, c.kind);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(m->forward(prev, cur), back.net->forward(prev, cur)));
}

TEST_P(CheckpointTest, WrongKindIsAClearError) {
  test::TempDir dir;
  ModelConfig c;
  c.kind = GetParam();
  auto m = make_model(c);
  save_checkpoint(dir / "m.pt", *m, {}, nullptr);
  const Kind other = c.kind == Kind::Classic ? Kind::Modern : Kind::Classic;
  try {
    load_checkpoint(dir / "m.pt", other, "--modern_ckpt", torch::kCPU);
    FAIL();
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("--modern_ckpt"), std::string::npos) << w;
    EXPECT_NE(w.find("holds a " + kind_name(c.kind)), std::string::npos) << w;
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, CheckpointTest, ::testing::Values(Kind::Classic, Kind::Modern, Kind::NP, Kind::LSTM),
                         [](const auto& info) { return kind_name(info.param); });

TEST(Checkpoint, CorruptOrMissingFileIsAClearError) {
  test::TempDir dir;
  write_file_atomic(dir / "junk.pt", std::string(1000, 'x'));
  EXPECT_THROW(load_checkpoint(dir / "junk.pt", std::nullopt, "", torch::kCPU), Error);
  EXPECT_THROW(load_checkpoint(dir / "none.pt", std::nullopt, "", torch::kCPU), Error);
  // a truncated real checkpoint
  auto m = make_model(ModelConfig{});
  save_checkpoint(dir / "m.pt", *m, {}, nullptr);
  const std::string bytes = read_file(dir / "m.pt");
  write_file_atomic(dir / "cut.pt", bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(load_checkpoint(dir / "cut.pt", std::nullopt, "", torch::kCPU), Error);
}

// parse_checkpoint reads the same bytes as load_checkpoint; weights of another dtype (the archive
// format allows any) and absurd sizes in the model record are refused with the tensor or the size.
TEST(Checkpoint, ParseFromBytesChecksDtypeAndSizes) {
  torch::manual_seed(test::fresh_seed());
  test::TempDir dir;
  ModelConfig c;
  c.kind = Kind::Modern;
  c.msg_dim = 8;
  auto m = make_model(c);
  m->fit_normalisation(torch::rand({50, 5}) + 0.5, torch::randn({50, 2}));
  save_checkpoint(dir / "m.pt", *m, {{"step", 3}}, nullptr);
  Checkpoint back = parse_checkpoint(read_file(dir / "m.pt"), "m.pt", Kind::Modern);
  EXPECT_EQ(back.step, 3);
  const auto prev = torch::rand({2, 3, 5}) + 0.5, cur = torch::rand({2, 3, 5}) + 0.5;
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(m->forward(prev, cur), back.net->forward(prev, cur)));
  // float64 weights: the archive format allows them, and libtorch's Module::load would take their
  // bytes as float32 garbage
  m->to(torch::kFloat64);
  save_checkpoint(dir / "f64.pt", *m, {}, nullptr);
  try {
    parse_checkpoint(read_file(dir / "f64.pt"), "f64.pt", std::nullopt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected float32"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("found Double"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_checkpoint(std::string(100, '\0'), "zeros.pt", std::nullopt), Error);
  ModelConfig huge = c;
  huge.msg_dim = 100000;
  try {
    ModelConfig::from_json(huge.to_json(), "huge.pt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("GiB"), std::string::npos) << e.what();
  }
  huge.msg_dim = 4096;  // within every single bound, but 2 * 512 blocks * 4096^2 * 64 parameters
  huge.enc_blocks = huge.dec_blocks = 256;
  huge.expansion = 64;
  EXPECT_THROW(huge.check_size("x"), Error);
  EXPECT_NO_THROW(c.check_size("x"));
}

// The dataset check compares the checkpoint's recorded training world with the dataset's field by
// field: each field refused with both values, allowed fields returned for the output to record,
// a checkpoint without a recorded world refused unless every field is allowed.
TEST(Checkpoint, DatasetCheckComparesEveryWorldField) {
  Checkpoint ck;
  datagen::Manifest trained;
  trained.engine = "box2d";
  ck.meta = {{"world_identity", datagen::world_identity(trained).to_json()}};
  EXPECT_TRUE(check_dataset_matches(ck, trained, "ck.pt", "data/p").empty());
  datagen::Manifest more_balls = trained;
  more_balls.world.num_balls = 7;
  EXPECT_TRUE(check_dataset_matches(ck, more_balls, "ck.pt", "data/p").empty());
  struct Case {
    std::string field;
    void (*edit)(datagen::Manifest&);
  };
  const Case cases[] = {
      {"height", [](datagen::Manifest& m) { m.world.height = 500; }},
      {"radius", [](datagen::Manifest& m) { m.world.radius = 40; }},
      {"masses", [](datagen::Manifest& m) { m.world.variable_mass = true; }},
      {"restitution", [](datagen::Manifest& m) { m.world.restitution = 0.5; }},
      {"friction", [](datagen::Manifest& m) { m.world.friction = 0.1; }},
      {"obstacles", [](datagen::Manifest& m) { m.world.obstacles = datagen::parse_obstacles("capsule:1,2,3,4,5"); }},
      {"engine", [](datagen::Manifest& m) { m.engine = "npe-gpu"; }},
      {"frame_dt", [](datagen::Manifest& m) { m.world.frame_dt = 0.2; }},
      {"vel_scale", [](datagen::Manifest& m) { m.world.max_speed = 120; }},
  };
  for (const Case& c : cases) {
    datagen::Manifest other = trained;
    c.edit(other);
    try {
      check_dataset_matches(ck, other, "ck.pt", "data/p");
      ADD_FAILURE() << c.field << " accepted";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("ck.pt"), std::string::npos) << what;
      EXPECT_NE(what.find("data/p"), std::string::npos) << what;
      EXPECT_NE(what.find("with " + c.field + " "), std::string::npos) << what;
      EXPECT_NE(what.find("has " + c.field + " "), std::string::npos) << what;
    }
    const auto transfers = check_dataset_matches(ck, other, "ck.pt", "data/p", {c.field});
    ASSERT_EQ(transfers.size(), 1u) << c.field;
    EXPECT_EQ(transfers[0].field, c.field);
    EXPECT_EQ(check_dataset_matches(ck, other, "ck.pt", "data/p", {"all"}).size(), 1u);
  }
  Checkpoint old;  // written before checkpoints recorded their world
  old.meta = {{"dataset", {{"radius", 60.0}}}};
  EXPECT_THROW(check_dataset_matches(old, trained, "old.pt", "data/p"), Error);
  EXPECT_THROW(check_dataset_matches(old, trained, "old.pt", "data/p", {"radius"}), Error);
  EXPECT_TRUE(check_dataset_matches(old, trained, "old.pt", "data/p", {"all"}).empty());
}

}  // namespace
}  // namespace npe::model
