#include "npe/model/checkpoint.h"

#include <gtest/gtest.h>

#include "npe/datagen/io.h"
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

}  // namespace
}  // namespace npe::model
