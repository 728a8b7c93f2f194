// TrainStep (npe/model/train_step.h): the device-side step against libtorch's own optimizers,
// clipping and schedule, and on CUDA its replayed graph against the same step run eagerly.
#include "npe/model/train_step.h"

#include <gtest/gtest.h>

#include "npe/datagen/generate.h"
#include "npe/core/error.h"
#include "dataset_util.h"
#include "test_util.h"

namespace npe::model {
namespace {

// Random trajectories [S, T, N, 5] in the dataset's normalised units (positions in [0, 1],
// velocities of a few hundredths, masses from {1, 5, 25}): the step's arithmetic does not
// depend on them being physical.
torch::Tensor random_trajectories(int64_t S, int64_t T, int64_t N) {
  auto traj = torch::rand({S, T, N, 5}, torch::kFloat32);
  traj.narrow(-1, 2, 2).mul_(0.05).sub_(0.025);
  auto choice = torch::randint(0, 3, {S, 1, N, 1});
  traj.narrow(-1, 4, 1).copy_(torch::pow(5.0, choice.to(torch::kFloat32)).expand({S, T, N, 1}));
  return traj;
}

TEST(ScheduledLrTensor, EqualsTheHostSchedule) {
  for (const Kind kind : {Kind::Classic, Kind::Modern}) {
    TrainConfig c = default_train_config(kind);
    for (const int64_t total : {int64_t{10}, int64_t{1000}, int64_t{1200000}}) {
      std::vector<int64_t> steps = {0, 1, total / 10 - 1, total / 10, total / 10 + 1, total / 2, total - 1, total};
      for (int64_t s : {49999, 50000, 50001, 52499, 52500, 55000, 1199999}) steps.push_back(s);
      for (const int64_t s : steps) {
        const double host = scheduled_lr(c, kind, s, total);
        const double dev = scheduled_lr_tensor(c, kind, torch::tensor(s), total).item<double>();
        EXPECT_NEAR(dev, host, 1e-15 * c.lr + 1e-14 * host) << kind_name(kind) << " step " << s << " of " << total;
      }
    }
  }
  TrainConfig c = default_train_config(Kind::Classic);
  c.optimizer = "adam";  // no schedule
  EXPECT_EQ(scheduled_lr_tensor(c, Kind::Classic, torch::tensor(int64_t{60000}), 100).item<double>(), c.lr);
}

struct Case {
  const char* name;
  Kind kind;
  const char* optimizer;
  double weight_decay, max_grad_norm;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// K steps of TrainStep on CPU against K steps of the eager loop with libtorch's optimizers
// (window_loss + optimizer_step over WindowOrder's batches), from the same initial weights and
// over more than one epoch. The updates are the same formulas in another order of float32
// operations (the fused AdamW kernel, a float32 learning rate), so the weights agree to a few
// float32 roundings per step, not bit for bit.
class StepVsLibtorch : public ::testing::TestWithParam<Case> {};
TEST_P(StepVsLibtorch, SameWeightsAfterSteps) {
  const Case k = GetParam();
  const uint64_t seed = test::fresh_seed();
  torch::manual_seed(seed);
  const auto traj = random_trajectories(6, 8, 3);  // 36 windows: an epoch is 4 batches of 8
  TrainConfig cfg = default_train_config(k.kind);
  cfg.optimizer = k.optimizer;
  cfg.weight_decay = k.weight_decay;
  cfg.max_grad_norm = k.max_grad_norm;
  cfg.lr = 3e-3;
  cfg.batch_size = 8;
  cfg.seed = seed;
  cfg.model.msg_dim = 16;
  const int64_t K = 10, total = 40;  // modern: 4 warm-up steps, then the cosine
  torch::manual_seed(seed + 1);
  auto a = make_model(cfg.model);
  torch::manual_seed(seed + 1);
  auto b = make_model(cfg.model);
  a->fit_normalisation(traj);
  b->fit_normalisation(traj);
  auto opt_a = make_optimizer(cfg, *a);
  auto opt_b = make_optimizer(cfg, *b);
  if (std::string(k.optimizer) == "rmsprop") {
    // RMSprop's first steps move a parameter by lr g / (0.1 |g| + eps): with eps = 1e-8, a gradient
    // at rounding level (1e-7, where it should cancel to 0) moves it by up to lr / 2, so the two
    // paths' 1-ulp differences in the update order were amplified 10^5 times (seen: 0.015 apart
    // in about 1 run of 40). eps = 1e-3 (read by both from the options) bounds the amplification.
    for (auto* opt : {opt_a.get(), opt_b.get()})
      static_cast<torch::optim::RMSpropOptions&>(opt->param_groups()[0].options()).eps(1e-3);
  }

  TrainStep step(cfg, *a, *opt_a, traj, total, 0);
  double loss_a = 0;
  for (int64_t s = 0; s < K; ++s) step.run();
  loss_a = step.take_mean_loss();
  EXPECT_EQ(step.step(), K);
  EXPECT_FALSE(step.captured());
  EXPECT_EQ(step.first_nonfinite_step(), -1);
  EXPECT_NEAR(step.lr(), scheduled_lr(cfg, k.kind, K - 1, total), 1e-7 * cfg.lr);

  WindowOrder order(traj.size(0) * (traj.size(1) - 2), cfg.batch_size, cfg.seed, torch::kCPU);
  double loss_b = 0;
  for (int64_t s = 0; s < K; ++s) {
    auto loss = window_loss(*b, traj, order.batch(s));
    loss_b += loss.item<double>() / K;
    optimizer_step(*opt_b, *b, loss, scheduled_lr(cfg, k.kind, s, total), cfg.max_grad_norm);
  }
  EXPECT_NEAR(loss_a, loss_b, 1e-5 * loss_b);
  auto pa = a->parameters(), pb = b->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  double worst = 0;
  for (size_t i = 0; i < pa.size(); ++i) worst = std::max(worst, (pa[i] - pb[i]).abs().max().item<double>());
  EXPECT_LT(worst, 2e-6) << k.name;
  // and the steps did move the weights (by far more than the tolerance): the comparison is not of
  // two copies
  torch::manual_seed(seed + 1);
  auto init = make_model(cfg.model);
  double travelled = 0;
  for (size_t i = 0; i < pa.size(); ++i)
    travelled = std::max(travelled, (pa[i] - init->parameters()[i]).abs().max().item<double>());
  EXPECT_GT(travelled, 25 * 2e-6) << k.name;

  // the step count reaches the optimizer's state, so that a checkpoint resumes the bias corrections
  step.sync_optimizer();
  for (const auto& p : pa) {
    const auto& s = *opt_a->state().at(p.unsafeGetTensorImpl());
    const int64_t n = std::string(k.optimizer) == "rmsprop"
                          ? static_cast<const torch::optim::RMSpropParamState&>(s).step()
                      : std::string(k.optimizer) == "adam"
                          ? static_cast<const torch::optim::AdamParamState&>(s).step()
                          : static_cast<const torch::optim::AdamWParamState&>(s).step();
    EXPECT_EQ(n, K);
  }
}
INSTANTIATE_TEST_SUITE_P(Optimizers, StepVsLibtorch,
                         ::testing::Values(Case{"classic_rmsprop", Kind::Classic, "rmsprop", 0.0, 0.0},
                                           Case{"classic_rmsprop_decay_clip", Kind::Classic, "rmsprop", 0.01, 0.05},
                                           Case{"modern_adamw_clip", Kind::Modern, "adamw", 0.01, 0.05},
                                           Case{"modern_adam_decay", Kind::Modern, "adam", 0.01, 0.0}),
                         [](const auto& info) { return std::string(info.param.name); });

// A step object built on an optimizer that already took steps (a resumed run) continues its
// bias corrections: 5 + 5 steps through two TrainSteps equal 10 through one.
TEST(TrainStep, ContinuesAnOptimizersState) {
  const uint64_t seed = test::fresh_seed();
  torch::manual_seed(seed);
  const auto traj = random_trajectories(5, 6, 4);
  TrainConfig cfg = default_train_config(Kind::Modern);
  cfg.batch_size = 4;
  cfg.seed = seed;
  cfg.model.msg_dim = 16;
  torch::manual_seed(seed + 1);
  auto a = make_model(cfg.model);
  torch::manual_seed(seed + 1);
  auto b = make_model(cfg.model);
  a->fit_normalisation(traj), b->fit_normalisation(traj);
  auto opt_a = make_optimizer(cfg, *a), opt_b = make_optimizer(cfg, *b);
  {
    TrainStep one(cfg, *a, *opt_a, traj, 30, 0);
    for (int i = 0; i < 10; ++i) one.run();
  }
  {
    TrainStep first(cfg, *b, *opt_b, traj, 30, 0);
    for (int i = 0; i < 5; ++i) first.run();
    first.sync_optimizer();
  }
  TrainStep second(cfg, *b, *opt_b, traj, 30, 5);
  for (int i = 0; i < 5; ++i) second.run();
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << "parameter " << i;
}

TEST(TrainStep, RefusesWhatItCannotRun) {
  const auto traj = random_trajectories(2, 5, 2);
  TrainConfig cfg = default_train_config(Kind::Modern);
  auto net = make_model(cfg.model);
  auto opt = make_optimizer(cfg, *net);
  StepOptions bf16;
  bf16.bf16 = true;
  try {
    TrainStep s(cfg, *net, *opt, traj, 10, 0, bf16);
    FAIL() << "bf16 on CPU was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("precision"), std::string::npos) << e.what();
  }
  torch::optim::SGD sgd(net->parameters(), 0.1);
  EXPECT_THROW(TrainStep(cfg, *net, sgd, traj, 10, 0), Error);
  EXPECT_THROW(TrainStep(cfg, *net, *opt, torch::rand({2, 2, 2, 5}), 10, 0), Error);  // no window
}

// On CUDA the captured graph, replayed, takes the steps the eager step takes, to float tolerance
// (bitwise equality is not promised: cuBLAS may choose other kernels under capture).
TEST(TrainStepCuda, ReplayedGraphEqualsEagerSteps) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  if (!cuda_graphs_available()) GTEST_SKIP() << "npe was built without a CUDA compiler (no CUDA graphs)";
  for (const Kind kind : {Kind::Classic, Kind::Modern, Kind::NP, Kind::LSTM}) {
    const uint64_t seed = test::fresh_seed();
    torch::manual_seed(seed);
    const auto traj = random_trajectories(40, 12, 4).to(torch::kCUDA);
    TrainConfig cfg = default_train_config(kind);
    cfg.batch_size = 64;
    cfg.seed = seed;
    torch::manual_seed(seed + 1);
    auto a = make_model(cfg.model);
    torch::manual_seed(seed + 1);
    auto b = make_model(cfg.model);
    a->fit_normalisation(traj.cpu()), b->fit_normalisation(traj.cpu());
    a->to(torch::kCUDA), b->to(torch::kCUDA);
    auto opt_a = make_optimizer(cfg, *a), opt_b = make_optimizer(cfg, *b);
    StepOptions eager;
    eager.cuda_graph = false;
    TrainStep graph(cfg, *a, *opt_a, traj, 200, 0), plain(cfg, *b, *opt_b, traj, 200, 0, eager);
    for (int i = 0; i < 30; ++i) graph.run(), plain.run();  // 400 windows: 6 per epoch, 5 epochs
    EXPECT_TRUE(graph.captured());
    EXPECT_FALSE(plain.captured());
    const double loss_graph = graph.take_mean_loss(), loss_plain = plain.take_mean_loss();
    EXPECT_NEAR(loss_graph, loss_plain, 1e-4 * loss_plain) << kind_name(kind);
    auto pa = a->parameters(), pb = b->parameters();
    double worst = 0;
    for (size_t i = 0; i < pa.size(); ++i) worst = std::max(worst, (pa[i] - pb[i]).abs().max().item<double>());
    EXPECT_LT(worst, 1e-4) << kind_name(kind);
    EXPECT_EQ(graph.first_nonfinite_step(), -1);
    EXPECT_NEAR(graph.lr(), scheduled_lr(cfg, kind, 29, 200), 1e-7 * cfg.lr);
  }
}

// bf16 training of the modern model, both ways (the hand-written step, modern_fused.h, and
// libtorch's autocast): on a Box2D dataset the loss falls as float32's does, from the same
// initial weights over the same batches.
TEST(TrainStepCuda, Bf16LearnsLikeFloat32) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  const std::string prefix = test_util::make_dataset(dir, seed, 200);
  const auto m = datagen::read_manifest(prefix);
  const auto traj = to_tensor(datagen::load_split(prefix, m, "train"), torch::kCUDA);
  TrainConfig cfg = default_train_config(Kind::Modern);
  cfg.batch_size = 256;
  cfg.seed = seed;
  cfg.lr = 3e-3;
  const char* names[3] = {"float32", "bf16 (fused)", "bf16 (autocast)"};
  double first[3], last[3];
  bool fused[3];
  for (int v = 0; v < 3; ++v) {
    torch::manual_seed(seed + 1);
    auto net = make_model(cfg.model);
    net->fit_normalisation(traj.cpu());
    net->to(torch::kCUDA);
    auto opt = make_optimizer(cfg, *net);
    StepOptions o;
    o.bf16 = v > 0;
    o.fused = v == 1;
    o.cuda_graph = cuda_graphs_available();
    TrainStep step(cfg, *net, *opt, traj, 400, 0, o);
    fused[v] = step.fused();
    for (int i = 0; i < 20; ++i) step.run();
    first[v] = step.take_mean_loss();
    for (int i = 20; i < 400; ++i) step.run();
    last[v] = step.take_mean_loss();  // the mean over steps 20..399
    std::printf("%s: mean loss, steps 0-19 %.3e, steps 20-399 %.3e%s\n", names[v], first[v], last[v],
                fused[v] ? " (hand-written step)" : "");
  }
  EXPECT_FALSE(fused[0]);
  EXPECT_FALSE(fused[2]);
  // 400 steps bring the loss down in each (by 10% or more; with --residual_velocity the first
  // steps already start near the constant-velocity loss: seen 7.8e-3 -> 7.0e-3)
  for (int v = 0; v < 3; ++v) {
    EXPECT_LT(last[v], 0.95 * first[v]) << names[v];
    EXPECT_NEAR(last[v], last[0], 0.2 * last[0]) << names[v];
  }
}

}  // namespace
}  // namespace npe::model
