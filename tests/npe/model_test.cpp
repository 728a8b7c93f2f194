#include "npe/model/model.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace npe::model {
namespace {

// Random states in the dataset's normalised units: x in [0, 1], y in [0, 0.75], |v| ~ 1, mass.
torch::Tensor random_states(int64_t B, int64_t N) {
  auto s = torch::rand({B, N, 5});
  s.select(-1, 1).mul_(0.75);
  s.narrow(-1, 2, 2).sub_(0.5).mul_(2);
  s.select(-1, 4).fill_(1.0);
  return s;
}

std::shared_ptr<NPEImpl> random_model(Kind kind) {
  ModelConfig c;
  c.kind = kind;
  c.msg_dim = 32;
  auto m = make_model(c);
  auto s = random_states(64, 4);
  m->fit_normalisation(s, torch::randn({64, 4, 2}) * 0.1);
  m->eval();
  return m;
}

class ModelTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override { torch::manual_seed(test::fresh_seed()); }
};

TEST_P(ModelTest, OutputShapesForAnyBallCount) {
  auto m = random_model(GetParam());
  for (int64_t n : {1, 2, 3, 4, 6}) {
    auto out = m->forward(random_states(5, n), random_states(5, n));
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{5, n, 2}));
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  }
}

TEST_P(ModelTest, NeighbourhoodMaskIgnoresFarBalls) {
  auto m = random_model(GetParam());
  torch::NoGradGuard ng;
  const double r = m->config().neighborhood;
  auto prev = random_states(1, 2), cur = prev.clone();
  // ball 0 at (0.3, 0.3); ball 1 beyond the neighbourhood, then moved and re-aimed, still beyond
  cur[0][0][0] = 0.3;
  cur[0][0][1] = 0.3;
  cur[0][1][0] = 0.3 + 1.5 * r;
  cur[0][1][1] = 0.3;
  auto a = m->forward(prev, cur)[0][0];
  auto cur2 = cur.clone();
  cur2[0][1][0] = 0.3 + 2.5 * r;
  cur2[0][1][2] = -0.9;
  auto prev2 = prev.clone();
  prev2[0][1][3] = 0.7;
  EXPECT_TRUE(torch::equal(a, m->forward(prev2, cur2)[0][0]));
  // ... while a ball inside the neighbourhood changes the prediction. A randomly initialised ReLU
  // encoder can be dead for every pair of this focus ball (about 1 model in 100 for the classic
  // one), so up to 5 fresh models are tried: a mask that drops in-neighbourhood balls fails all.
  auto cur3 = cur.clone();
  cur3[0][1][0] = 0.3 + 0.9 * r;
  bool changed = false;
  for (int attempt = 0; attempt < 5 && !changed; ++attempt) {
    auto fresh = attempt == 0 ? m : random_model(GetParam());
    changed = !torch::allclose(fresh->forward(prev, cur)[0][0], fresh->forward(prev, cur3)[0][0]);
  }
  EXPECT_TRUE(changed);
  auto p = m->make_pairs(prev, cur3);
  EXPECT_EQ(p.mask.sizes(), (std::vector<int64_t>{1, 2, 1}));
  EXPECT_EQ(p.mask[0][0][0].item<float>(), 1.0f);
  EXPECT_EQ(m->make_pairs(prev, cur).mask[0][0][0].item<float>(), 0.0f);
}

TEST_P(ModelTest, PermutingBallsPermutesPredictions) {
  auto m = random_model(GetParam());
  torch::NoGradGuard ng;
  auto prev = random_states(3, 4), cur = random_states(3, 4);
  auto perm = torch::tensor({2, 0, 3, 1}, torch::kLong);
  auto out = m->forward(prev, cur);
  auto out_p = m->forward(prev.index_select(1, perm), cur.index_select(1, perm));
  EXPECT_TRUE(torch::allclose(out.index_select(1, perm), out_p, 1e-5, 1e-6));
}

TEST_P(ModelTest, LoneBallSeesNoContext) {
  auto m = random_model(GetParam());
  torch::NoGradGuard ng;
  auto prev = random_states(2, 1), cur = random_states(2, 1);
  auto p = m->make_pairs(prev, cur);
  EXPECT_EQ(p.context.size(2), 0);
  EXPECT_EQ(m->forward(prev, cur).sizes(), (std::vector<int64_t>{2, 1, 2}));
}


// Mixed ball counts: a scene of n balls padded with absent (all-zero) slots predicts its balls as
// the unpadded scene does, whatever the padding; absent slots are never context.
TEST_P(ModelTest, AbsentSlotsChangeNothing) {
  auto m = random_model(GetParam());
  torch::NoGradGuard ng;
  auto prev = random_states(4, 3), cur = random_states(4, 3);
  cur.narrow(-1, 0, 2).mul_(0.15);  // close together: every pair within the neighbourhood (0.2625)
  prev.narrow(-1, 0, 2).mul_(0.15);
  const auto base = m->forward(prev, cur);
  for (int64_t pad : {1, 3}) {
    auto z = torch::zeros({4, pad, 5});
    const auto out = m->forward(torch::cat({prev, z}, 1), torch::cat({cur, z}, 1));
    EXPECT_TRUE(torch::allclose(out.narrow(1, 0, 3), base, 1e-5, 1e-6)) << pad;
    const auto mask = m->make_pairs(torch::cat({prev, z}, 1), torch::cat({cur, z}, 1)).mask;
    // focus 0's context is slots 1..2+pad: the present ones count, the absent ones do not
    EXPECT_EQ(mask[0][0].sum().item<float>(), 2.0f) << pad;
  }
}

// Walls models (ModelConfig::walls): states [B, N + 32, 7], the wall rows after the balls.
namespace walls {
constexpr double kRadius = 60.0 / 800;  // a ball's radius over the position scale

// Object states of one frame: `balls` [B, N, 5] and `blocks` block centres (normalised), the rest
// of the 32 wall rows empty.
torch::Tensor objects(const torch::Tensor& balls, const std::vector<std::pair<double, double>>& blocks) {
  const int64_t B = balls.size(0);
  auto rows = torch::zeros({B, kWallObjects, 4});
  for (size_t k = 0; k < blocks.size(); ++k) {
    rows.select(1, static_cast<int64_t>(k)).select(-1, 0).fill_(blocks[k].first);
    rows.select(1, static_cast<int64_t>(k)).select(-1, 1).fill_(blocks[k].second);
    rows.select(1, static_cast<int64_t>(k)).select(-1, 2).fill_(40.0 / 800);
    rows.select(1, static_cast<int64_t>(k)).select(-1, 3).fill_(1);
  }
  return object_states(balls.unsqueeze(1), rows, kRadius).squeeze(1);
}

std::shared_ptr<NPEImpl> model(Kind kind) {
  ModelConfig c;
  c.kind = kind;
  c.msg_dim = 32;
  c.walls = true;
  auto m = make_model(c);
  auto s = objects(random_states(64, 2), {{0.1, 0.1}});
  m->fit_normalisation(s, torch::randn({64 * 2, 2}) * 0.1);
  m->eval();
  return m;
}
}  // namespace walls

// Each object's features: a ball [x, y, vx, vy, m, 0, 1], a block [x, y, 0, 0, 0, 1, 40/60], an
// empty wall row all zero; every frame carries the scene's blocks.
TEST(Model, ObjectStatesOfAWallsWorld) {
  auto traj = random_states(3 * 4, 2).reshape({3, 4, 2, 5});
  auto rows = torch::zeros({3, kWallObjects, 4});
  rows[1][0] = torch::tensor({0.5f, 0.25f, 0.05f, 2.0f});
  const auto o = object_states(traj, rows, walls::kRadius);
  ASSERT_EQ(o.sizes(), (std::vector<int64_t>{3, 4, 2 + kWallObjects, kWallStateDim}));
  EXPECT_TRUE(torch::equal(o.narrow(-1, 0, 5).narrow(2, 0, 2), traj));
  EXPECT_TRUE(torch::equal(o[1][3][1].narrow(0, 5, 2), torch::tensor({0.0f, 1.0f})));
  EXPECT_TRUE(torch::allclose(o[1][2][2], torch::tensor({0.5f, 0.25f, 0.0f, 0.0f, 0.0f, 1.0f, 0.05f / 0.075f})));
  EXPECT_EQ(o[0][0][2].abs().sum().item<float>(), 0.0f);  // scene 0 has no blocks
  EXPECT_EQ(o[1][0][3].abs().sum().item<float>(), 0.0f);  // an empty row
  // present objects: the balls and the block; present balls: the balls alone
  EXPECT_EQ(present_objects(o[1][0]).sum().item<float>(), 3.0f);
  EXPECT_EQ(present_balls(o[1][0]).sum().item<float>(), 2.0f);
  EXPECT_THROW(object_states(traj, torch::zeros({3, 5, 4}), walls::kRadius), std::exception);
}

// Every model of a walls world: blocks are context within the neighbourhood and never focus (their
// rows predict 0); a block beyond the neighbourhood, an empty wall row and the order of the blocks
// change nothing (the LSTM reads every object in order: only the shapes are checked for it).
TEST(Model, WallsModelsSeeBlocksAsContext) {
  torch::manual_seed(test::fresh_seed());
  torch::NoGradGuard ng;
  for (const Kind kind : {Kind::Classic, Kind::Modern, Kind::NP, Kind::LSTM, Kind::GNS}) {
    auto m = walls::model(kind);
    EXPECT_EQ(m->config().state_dim(), kWallStateDim);
    const double r = m->config().neighborhood;
    auto balls = random_states(2, 2);
    balls.select(-1, 0).select(1, 0).fill_(0.3), balls.select(-1, 1).select(1, 0).fill_(0.3);
    balls.select(-1, 0).select(1, 1).fill_(0.3 + 3 * r), balls.select(-1, 1).select(1, 1).fill_(0.3);
    const auto none = walls::objects(balls, {});
    const auto out = m->forward(none, none);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 2 + kWallObjects, 2})) << kind_name(kind);
    EXPECT_EQ(out.narrow(1, 2, kWallObjects).abs().sum().item<float>(), 0.0f) << kind_name(kind);
    if (kind == Kind::LSTM) continue;
    // a block far from ball 0 (and from ball 1): nothing changes
    const auto far = walls::objects(balls, {{0.3 + 1.5 * r, 0.3 + 1.2 * r}});
    EXPECT_TRUE(torch::allclose(m->forward(far, far), out, 1e-5, 1e-6)) << kind_name(kind);
    // two blocks next to ball 0, in either order: the same prediction, not the block-free one
    const auto near = walls::objects(balls, {{0.3 + 0.6 * r, 0.3}, {0.3, 0.3 - 0.6 * r}});
    const auto swapped = walls::objects(balls, {{0.3, 0.3 - 0.6 * r}, {0.3 + 0.6 * r, 0.3}});
    const auto a = m->forward(near, near), b = m->forward(swapped, swapped);
    EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6)) << kind_name(kind);
    // (a random ReLU encoder can be dead for every pair of a focus ball: up to 5 fresh models)
    bool changed = !torch::allclose(a.narrow(1, 0, 1), out.narrow(1, 0, 1));
    for (int attempt = 0; attempt < 4 && !changed; ++attempt) {
      auto fresh = walls::model(kind);
      changed = !torch::allclose(fresh->forward(near, near).narrow(1, 0, 1),
                                 fresh->forward(none, none).narrow(1, 0, 1));
    }
    EXPECT_TRUE(changed) << kind_name(kind);
    const auto mask = m->make_pairs(near, near).mask;
    ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{2, 2, 1 + kWallObjects}));
    EXPECT_EQ(mask[0][0].sum().item<float>(), 2.0f) << kind_name(kind);  // the 2 blocks; ball 1 is far
  }
  // a walls model refuses ball states without wall rows, a plain model refuses object states
  auto m = walls::model(Kind::Classic);
  EXPECT_THROW(m->forward(random_states(1, 2), random_states(1, 2)), std::exception);
  EXPECT_THROW(random_model(Kind::Classic)
                   ->forward(walls::objects(random_states(1, 2), {}), walls::objects(random_states(1, 2), {})),
               std::exception);
}

// (The LSTM baseline has its own tests below: it has no mask and reads the context in order.)
INSTANTIATE_TEST_SUITE_P(Kinds, ModelTest, ::testing::Values(Kind::Classic, Kind::Modern, Kind::NP, Kind::GNS),
                         [](const auto& info) { return kind_name(info.param); });

// NP: the classic model without the pairwise layer: a 25-unit context layer (no focus branch),
// the 5 x 50 encoder on 25 inputs, the classic decoder.
TEST(Model, NoPairwiseArchitecture) {
  ModelConfig c;
  c.kind = Kind::NP;
  auto m = make_model(c);
  const int64_t expected = (10 * 25 + 25) + (25 * 50 + 50) + 4 * (50 * 50 + 50) + (60 * 50 + 50) + 3 * (50 * 50 + 50) +
                           (50 * 2 + 2);
  EXPECT_EQ(parameter_count(*m), expected);
}

TEST(Model, LstmBaselineShapesAndOrder) {
  torch::manual_seed(test::fresh_seed());
  auto m = random_model(Kind::LSTM);
  torch::NoGradGuard ng;
  for (int64_t n : {1, 2, 4, 6}) {
    auto out = m->forward(random_states(3, n), random_states(3, n));
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, n, 2}));
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  }
  // 3 layers of 100: 4 gates x 100 x (10 + 100 + 2 biases) for the first layer, (100 + 100 + 2) after
  EXPECT_EQ(parameter_count(*m), 400 * (10 + 100 + 2) + 2 * 400 * (100 + 100 + 2) + (100 * 2 + 2));
  // no neighbourhood: a far ball changes the focus ball's prediction
  auto prev = random_states(8, 2), cur = prev.clone();
  cur.select(1, 0).select(-1, 0).fill_(0.1), cur.select(1, 1).select(-1, 0).fill_(0.9);
  auto far = cur.clone();
  far.select(1, 1).select(-1, 1).add_(0.2);
  EXPECT_FALSE(torch::allclose(m->forward(prev, cur).select(1, 0), m->forward(prev, far).select(1, 0)));
  // the context is read in index order: swapping two context balls changes the focus prediction
  // (over 8 scenes: a randomly initialised 3-layer LSTM forgets its first inputs, so in one scene
  // the difference can fall under allclose's tolerance)
  auto s3p = random_states(8, 3), s3c = random_states(8, 3);
  auto swap = torch::tensor({0, 2, 1}, torch::kLong);
  EXPECT_FALSE(torch::allclose(m->forward(s3p, s3c).select(1, 0),
                               m->forward(s3p.index_select(1, swap), s3c.index_select(1, swap)).select(1, 0)));
}

// The LSTM reads absent slots first, as zero vectors: padding is a prefix of the sequence, so a
// padded scene's prediction differs from the unpadded one only through that prefix, and the
// present balls' features are what it sees last.
TEST(Model, LstmFeedsAbsentSlotsAsALeadingZeroPrefix) {
  torch::manual_seed(test::fresh_seed());
  auto m = random_model(Kind::LSTM);
  torch::NoGradGuard ng;
  auto prev = random_states(2, 3), cur = random_states(2, 3);
  auto z = torch::zeros({2, 2, 5});
  auto a = m->forward(torch::cat({prev, z}, 1), torch::cat({cur, z}, 1)).narrow(1, 0, 3);
  // whatever an absent slot holds besides its zero mass, the prediction is the same
  auto junk = torch::rand({2, 2, 5});
  junk.select(-1, 4).zero_();
  auto b = m->forward(torch::cat({prev, junk}, 1), torch::cat({cur, junk}, 1)).narrow(1, 0, 3);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
}

TEST(Model, NormalisationIgnoresAbsentSlots) {
  torch::manual_seed(test::fresh_seed());
  auto traj = torch::rand({6, 8, 3, 5});
  traj.select(-1, 4).fill_(5.0);
  ModelConfig c;
  auto a = make_model(c), b = make_model(c);
  a->fit_normalisation(traj);
  b->fit_normalisation(torch::cat({traj, torch::zeros({6, 8, 2, 5})}, 2));
  for (const char* name : {"state_mean", "state_std", "dv_std"})
    EXPECT_TRUE(torch::allclose(a->named_buffers()[name], b->named_buffers()[name], 1e-5, 1e-7)) << name;
}

TEST(Model, MaskedVelocityMseIsTheMseOfPresentBalls) {
  torch::manual_seed(test::fresh_seed());
  auto pred = torch::randn({5, 4, 2}), target = torch::randn({5, 4, 2});
  EXPECT_TRUE(torch::allclose(masked_velocity_mse(pred, target, torch::ones({5, 4})), torch::mse_loss(pred, target)));
  auto present = torch::ones({5, 4});
  present.narrow(1, 3, 1).zero_();
  EXPECT_TRUE(torch::allclose(masked_velocity_mse(pred, target, present),
                              torch::mse_loss(pred.narrow(1, 0, 3), target.narrow(1, 0, 3))));
}

TEST(Model, ClassicArchitectureMatchesThePaper) {
  ModelConfig c;
  auto m = make_model(c);
  // pairwise 2 x (10x25+25) + 5 x (50x50+50) + decoder (60x50+50) + 3 x (50x50+50) + (50x2+2)
  const int64_t expected = 2 * (10 * 25 + 25) + 5 * (50 * 50 + 50) + (60 * 50 + 50) + 3 * (50 * 50 + 50) + (50 * 2 + 2);
  EXPECT_EQ(parameter_count(*m), expected);
}

// The modern head predicts dv: with a zero head the model returns v(t) exactly (a free-flying
// ball keeps its speed), while the direct head returns the training mean velocity.
TEST(Model, ModernPredictsTheVelocityChange) {
  torch::manual_seed(test::fresh_seed());
  torch::NoGradGuard ng;
  auto prev = random_states(3, 4), cur = random_states(3, 4);
  for (bool residual : {true, false}) {
    ModelConfig c;
    c.kind = Kind::Modern;
    c.msg_dim = 16;
    c.residual_velocity = residual;
    auto m = make_model(c);
    m->fit_normalisation(random_states(64, 4), torch::randn({64, 4, 2}) * 0.1);
    for (auto& item : m->named_parameters())
      if (item.key().rfind("head.", 0) == 0) item.value().zero_();
    const auto out = m->forward(prev, cur);
    const auto expected = residual ? cur.narrow(-1, 2, 2)
                                   : m->named_buffers()["state_mean"].narrow(0, 2, 2).expand({3, 4, 2});
    EXPECT_TRUE(torch::equal(out, expected)) << residual;
  }
}

TEST(Model, ConfigJsonRoundTrip) {
  ModelConfig c;
  c.kind = Kind::Modern;
  c.msg_dim = 40;
  c.dropout = 0.1;
  c.residual_velocity = true;  // not the default
  auto back = ModelConfig::from_json(c.to_json(), "x");
  EXPECT_EQ(back.kind, Kind::Modern);
  EXPECT_EQ(back.msg_dim, 40);
  EXPECT_DOUBLE_EQ(back.dropout, 0.1);
  EXPECT_TRUE(back.residual_velocity);
  auto old = c.to_json();
  old.erase("residual_velocity");  // a checkpoint from before the option: direct prediction
  EXPECT_FALSE(ModelConfig::from_json(old, "x").residual_velocity);
  c.walls = true;
  EXPECT_TRUE(ModelConfig::from_json(c.to_json(), "x").walls);
  old.erase("walls");  // a checkpoint from before the walls worlds: no walls
  EXPECT_FALSE(ModelConfig::from_json(old, "x").walls);
  EXPECT_EQ(ModelConfig::from_json(old, "x").state_dim(), 5);
  for (const Kind k : {Kind::Classic, Kind::Modern, Kind::NP, Kind::LSTM, Kind::GNS})
    EXPECT_EQ(kind_from_name(kind_name(k)), k);
  old.erase("mp_steps");  // a checkpoint from before the GNS
  EXPECT_EQ(ModelConfig::from_json(old, "x").mp_steps, 5);
  EXPECT_THROW(kind_from_name("gru"), std::exception);
}

}  // namespace
}  // namespace npe::model

namespace npe::model {
namespace {

TEST(ModelCuda, ForwardOnCudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  torch::manual_seed(test::fresh_seed());
  for (Kind kind : {Kind::Classic, Kind::Modern}) {
    auto m = random_model(kind);
    auto prev = random_states(64, 4), cur = random_states(64, 4);
    torch::NoGradGuard ng;
    auto cpu = m->forward(prev, cur);
    m->to(torch::kCUDA);
    auto gpu = m->forward(prev.cuda(), cur.cuda()).cpu();
    // float32 on both; cuBLAS may use other summation orders (TF32 is off by default in libtorch)
    EXPECT_LT((gpu - cpu).norm().item<double>() / cpu.norm().item<double>(), 1e-5) << kind_name(kind);
  }
}

}  // namespace
}  // namespace npe::model
