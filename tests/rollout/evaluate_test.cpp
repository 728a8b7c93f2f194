// Loading checkpoints against a dataset, scoring, and the NPE mass inference's bookkeeping
// (rollout/src/evaluate.cpp).
#include "npe/rollout/evaluate.h"

#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "npe/datagen/generate.h"
#include "npe/model/infer.h"
#include "npe/model/train.h"
#include "test_util.h"

namespace npe::rollout {
namespace {

// A small Box2D dataset (variable masses) and an untrained classic model's checkpoint trained on
// it: save_checkpoint with the world identity npe-train records.
struct Fixture {
  test::TempDir dir;
  std::string prefix;
  datagen::Manifest manifest;
  std::string ckpt;
  Fixture() {
    datagen::DatagenConfig c;
    c.num_scenes = 12;
    c.seed = test::fresh_seed();
    c.world.timesteps = 12;
    c.world.variable_mass = true;
    c.progress = false;
    c.out_prefix = dir / "data/d";
    datagen::generate_dataset(c);
    prefix = c.out_prefix;
    manifest = datagen::read_manifest(prefix);
    model::ModelConfig mc;
    mc.kind = model::Kind::Classic;
    auto net = model::make_model(mc);
    net->fit_normalisation(torch::rand({50, 5}) + 0.5, torch::randn({50, 2}));
    ckpt = dir / "classic.pt";
    model::save_checkpoint(ckpt, *net, {{"world_identity", datagen::world_identity(manifest).to_json()}}, nullptr);
  }
};

TEST(Evaluate, LoadsByKindAndRecordsAllowedTransfers) {
  Fixture f;
  auto models = load_models({{model::Kind::Classic, f.ckpt, "--classic_ckpt"}}, torch::kCPU, f.manifest, f.prefix);
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name, "classic");
  EXPECT_TRUE(models[0].transfers.empty());
  // the wrong kind names the source
  try {
    load_models({{model::Kind::Modern, f.ckpt, "--modern_ckpt"}}, torch::kCPU, f.manifest, f.prefix);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--modern_ckpt"), std::string::npos) << e.what();
  }
  datagen::Manifest other = f.manifest;
  other.world.restitution = 0.5;
  EXPECT_THROW(load_models({{model::Kind::Classic, f.ckpt, "--classic_ckpt"}}, torch::kCPU, other, f.prefix), Error);
  models = load_models({{model::Kind::Classic, f.ckpt, "--classic_ckpt"}}, torch::kCPU, other, f.prefix,
                       {"restitution"});
  ASSERT_EQ(models[0].transfers.size(), 1u);
  const auto j = transfers_json(models[0].transfers);
  EXPECT_EQ(j["restitution"]["trained"], "1");
  EXPECT_EQ(j["restitution"]["dataset"], "0.5");
}

TEST(Evaluate, ConstantVelocityScoreIsItsRolloutAndWindowMse) {
  Fixture f;
  const auto test = datagen::load_split(f.prefix, f.manifest, "test");
  const auto val_t = model::to_tensor(datagen::load_split(f.prefix, f.manifest, "val"), torch::kCPU);
  const Score s = score_model("constant_velocity", constant_velocity(), nullptr, f.manifest, test, val_t, 2, 5);
  const StepMetrics direct = rollout_metrics(test, rollout(test, 2, 5, f.manifest.step_scale(), constant_velocity()),
                                             f.manifest.pos_scale());
  EXPECT_EQ(s.metrics.cosine.size(), 5u);
  for (int k = 0; k < 5; ++k) {
    EXPECT_EQ(s.metrics.pos_error_px[k], direct.pos_error_px[k]);
    EXPECT_TRUE(s.metrics.cosine[k] == direct.cosine[k] ||
                (std::isnan(s.metrics.cosine[k]) && std::isnan(direct.cosine[k])));
  }
  const auto ids = torch::arange(val_t.size(0) * (val_t.size(1) - 2), torch::kLong);
  EXPECT_EQ(s.val_mse, model::window_mse(nullptr, val_t, ids));
  EXPECT_EQ(s.to_json()["val_mse"], s.val_mse);
}

TEST(Evaluate, MassInferenceCountsOnlyCollidingBalls) {
  Fixture f;
  auto models = load_models({{model::Kind::Classic, f.ckpt, "--classic_ckpt"}}, torch::kCPU, f.manifest, f.prefix);
  const auto test = datagen::load_split(f.prefix, f.manifest, "test");
  const torch::Tensor traj = model::to_tensor(test, torch::kCPU);
  const int64_t S = test.scenes, N = test.num_balls;
  const auto& hyp = f.manifest.world.mass_choices;
  const torch::Tensor pick = model::mass_hypothesis_errors(*models[0].checkpoint.net, traj, hyp).argmin(-1);
  // truth: ball b of scene s "is" the hypothesis the model picks when (s + b) is even, another otherwise
  std::vector<std::vector<double>> truth(S, std::vector<double>(N));
  std::vector<std::vector<uint8_t>> collides(S, std::vector<uint8_t>(N, 1));
  int64_t right = 0;
  for (int64_t s = 0; s < S; ++s)
    for (int64_t b = 0; b < N; ++b) {
      const int64_t k = pick[s][b].item<int64_t>();
      truth[s][b] = (s + b) % 2 == 0 ? hyp[k] : hyp[(k + 1) % hyp.size()];
      right += (s + b) % 2 == 0;
    }
  collides[0][0] = 0;  // a ball that touches none is not scored
  right -= 1;
  const MassInference mi = npe_mass_inference(*models[0].checkpoint.net, traj, hyp, collides, truth);
  EXPECT_EQ(mi.balls_that_collide, S * N - 1);
  EXPECT_DOUBLE_EQ(mi.accuracy, static_cast<double>(right) / (S * N - 1));
  ASSERT_EQ(mi.inferred.size(), static_cast<size_t>(S));
  EXPECT_EQ(mi.inferred[0][0], hyp[pick[0][0].item<int64_t>()]);
}

}  // namespace
}  // namespace npe::rollout
