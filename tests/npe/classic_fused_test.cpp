// The classic NPE's hand-written step (npe/src/classic_fused.h): its CPU reference against
// libtorch's autograd of ClassicNPEImpl, the CUDA kernels against the CPU reference bit for bit,
// the update kernel against the optimizers' formulas, and TrainStep's fused path against its
// libtorch path.
#include "classic_fused.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cuda_graph.h"
#include "dataset_util.h"
#include "npe/model/model.h"
#include "npe/model/train.h"
#include "npe/model/train_step.h"
#include "test_util.h"

namespace npe::model {
namespace {

struct Problem {
  torch::Tensor traj, perm;  // on the CPU
  std::shared_ptr<NPEImpl> net;
  int64_t step = 0;
  int B = 0;
  fused::Batch batch(const torch::Tensor& traj_on, const torch::Tensor& perm_on) const {
    fused::Batch a;
    a.traj = traj_on.data_ptr<float>();
    a.scenes = traj.size(0), a.frames = traj.size(1), a.balls = static_cast<int>(traj.size(2));
    a.perm = perm_on.data_ptr<int64_t>();
    a.windows = perm.size(0);
    a.steps_per_epoch = 7;
    a.batch = B;
    const auto buffers = net->named_buffers();
    a.mean = buffers["state_mean"].data_ptr<float>();
    a.std = buffers["state_std"].data_ptr<float>();
    a.dv_std = buffers["dv_std"].data_ptr<float>();
    const double r = net->config().neighborhood;
    a.r2 = static_cast<float>(r * r);
    return a;
  }
};

// A random problem: N balls (mixed counts), a fresh classic model whose normalisation is fitted
// to the data, a random data order and step, a batch of B windows.
Problem random_problem(uint64_t seed, int N, int B) {
  std::mt19937_64 rng(seed);
  torch::manual_seed(seed);
  Problem p;
  p.traj = test_util::random_trajectories(6, 7, N, true, rng);
  ModelConfig mc;
  mc.kind = Kind::Classic;
  mc.neighborhood = 0.4;  // about half of the pairs of balls in [0, 1]^2
  p.net = make_model(mc);
  p.net->fit_normalisation(p.traj);
  const int64_t windows = p.traj.size(0) * (p.traj.size(1) - 2);
  p.perm = torch::randperm(windows, torch::kLong);
  p.step = std::uniform_int_distribution<int64_t>(0, 1000)(rng);
  p.B = B;
  return p;
}

std::vector<float> flat_parameters(NPEImpl& net) {
  std::vector<float> v;
  for (const auto& t : net.parameters()) {
    const auto c = t.detach().cpu().contiguous();
    v.insert(v.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  return v;
}

// The pairs of the batch inside and outside the neighbourhood, and the absent balls: a test
// problem must have all three for the masking to be exercised.
struct Coverage {
  int inside = 0, outside = 0, absent = 0;
};
Coverage coverage(const Problem& p, const fused::Batch& a) {
  Coverage c;
  for (int b = 0; b < p.B; ++b) {
    const float* cur = fused::window_frame(a, fused::batch_window(a, p.step, b), 1);
    for (int i = 0; i < a.balls; ++i) {
      if (!(cur[5 * i + 4] > 0)) {
        ++c.absent;
        continue;
      }
      for (int j = 0; j < a.balls; ++j)
        if (j != i) ++(fused::in_neighbourhood(cur + 5 * i, cur + 5 * j, a.r2) ? c.inside : c.outside);
    }
  }
  return c;
}

TEST(ClassicFused, LayoutIsTheModelsParameterOrder) {
  ModelConfig mc;
  mc.kind = Kind::Classic;
  auto net = make_model(mc);
  const auto named = net->named_parameters();
  ASSERT_EQ(named.size(), 2u * fused::kLayers);
  int64_t offset = 0;
  for (size_t t = 0; t < named.size(); ++t) {
    const int l = static_cast<int>(t / 2);
    const auto& p = named[t].value();
    EXPECT_EQ(offset, t % 2 == 0 ? fused::weight_offset(l) : fused::bias_offset(l)) << named[t].key();
    if (t % 2 == 0)
      EXPECT_EQ(p.sizes(), torch::IntArrayRef({fused::layer_out(l), fused::layer_in(l)})) << named[t].key();
    else
      EXPECT_EQ(p.sizes(), torch::IntArrayRef({fused::layer_out(l)})) << named[t].key();
    offset += p.numel();
  }
  EXPECT_EQ(offset, fused::kParams);
}

// The CPU reference's loss and gradient equal libtorch's autograd of ClassicNPEImpl::forward and
// masked_velocity_mse (window_loss) on the same windows, to float32 rounding (other orders of
// summation), over ball counts 2..6 with absent balls, pairs inside and outside the
// neighbourhood and several block sizes. Six trials at least, more until the batches covered 50
// pairs inside and outside the neighbourhood and 10 absent balls (six alone fell short for about
// 1 seed in 150: small batches of scenes with few balls).
TEST(ClassicFused, CpuReferenceEqualsAutograd) {
  Coverage total;
  const auto covered = [&] { return total.inside > 50 && total.outside > 50 && total.absent > 10; };
  int trial = 0;
  for (; trial < 6 || (trial < 30 && !covered()); ++trial) {
    const uint64_t seed = test::fresh_seed();
    std::mt19937_64 rng(seed);
    const int N = 2 + trial % 5;
    const int B = std::uniform_int_distribution<int>(1, 40)(rng);
    const int wpb = std::vector<int>{1, 2, 3, 5, B, 64}[trial % 6];
    Problem p = random_problem(seed, N, B);
    const fused::Batch a = p.batch(p.traj, p.perm);
    const Coverage c = coverage(p, a);
    total.inside += c.inside, total.outside += c.outside, total.absent += c.absent;

    const std::vector<float> params = flat_parameters(*p.net);
    std::vector<float> grad(fused::kParams);
    const float loss = fused::classic_loss_grad_cpu(a, p.step, std::min(wpb, B), params.data(), grad.data());

    std::vector<int64_t> ids(B);
    for (int b = 0; b < B; ++b) ids[b] = fused::batch_window(a, p.step, b);
    p.net->zero_grad();
    const auto ref = window_loss(*p.net, p.traj, torch::tensor(ids));
    ref.backward();
    const std::string what = "N " + std::to_string(N) + " B " + std::to_string(B) + " wpb " + std::to_string(wpb);
    EXPECT_NEAR(loss, ref.item<double>(), 2e-6 * ref.item<double>()) << what;
    int64_t offset = 0;
    for (const auto& named : p.net->named_parameters()) {
      const auto g = named.value().grad().reshape(-1);
      const double scale = g.abs().max().item<double>();
      double worst = 0;
      for (int64_t k = 0; k < g.numel(); ++k)
        worst = std::max(worst, std::abs(static_cast<double>(grad[offset + k]) - g[k].item<double>()));
      EXPECT_LE(worst, 1e-5 * scale + 1e-9) << named.key() << ", " << what << ", largest |grad| " << scale;
      offset += g.numel();
    }
  }
  std::printf("%d trials: pairs inside the neighbourhood %d, outside %d, absent balls %d\n", trial, total.inside,
              total.outside, total.absent);
  EXPECT_GT(total.inside, 50);
  EXPECT_GT(total.outside, 50);
  EXPECT_GT(total.absent, 10);
}

// A NaN weight makes the loss NaN (ReLU passes NaN through, as libtorch's does), so that the step
// flags a diverging run as libtorch's path does (TrainStep::first_nonfinite_step).
TEST(ClassicFused, NanWeightGivesNanLoss) {
  // a problem with a pair inside the neighbourhood (1 draw in 2000 has none: six scenes of one ball)
  Problem p = random_problem(test::fresh_seed(), 4, 30);
  for (int k = 0; k < 5 && coverage(p, p.batch(p.traj, p.perm)).inside == 0; ++k)
    p = random_problem(test::fresh_seed(), 4, 30);
  const fused::Batch a = p.batch(p.traj, p.perm);
  ASSERT_GT(coverage(p, a).inside, 0);
  std::vector<float> params = flat_parameters(*p.net);
  std::vector<float> grad(fused::kParams);
  EXPECT_TRUE(std::isfinite(fused::classic_loss_grad_cpu(a, p.step, 4, params.data(), grad.data())));
  params[fused::weight_offset(fused::kEnc0 + 2) + 7] = NAN;  // one encoder weight
  EXPECT_TRUE(std::isnan(fused::classic_loss_grad_cpu(a, p.step, 4, params.data(), grad.data())));
}

// Blocks of any size: windows_per_block fits the shared memory it is given, and the rows of a
// block never exceed its capacity (build_rows writes at most N focus rows and N (N - 1) pairs a
// window).
TEST(ClassicFused, WindowsPerBlockFitsTheSharedMemory) {
  for (const int N : {2, 4, 8, 12}) {
    const int64_t one = fused::block_smem_bytes(1, N);
    EXPECT_EQ(fused::windows_per_block(50, N, 132, one - 1), 0) << N;
    EXPECT_EQ(fused::windows_per_block(50, N, 132, one), 1) << N;
    const int w = fused::windows_per_block(4096, N, 132, 227 * 1024);
    if (w > 0) {
      EXPECT_LE(fused::block_smem_bytes(w, N), 227 * 1024) << N;
    }
  }
  // H100/H200 (227 KiB a block, 132 SMs): the paper's batch of 50 on 4 balls is one window a block
  EXPECT_EQ(fused::windows_per_block(50, 4, 132, 227 * 1024), 1);
  EXPECT_GE(fused::windows_per_block(2048, 4, 132, 227 * 1024), 2);
}

bool cuda_kernels() {
  int sms = 0;
  int64_t smem = 0;
  return torch::cuda::is_available() && fused::device_limits(&sms, &smem);
}

// The CUDA kernels give the CPU reference's loss and gradient bit for bit (same per-item
// functions, same order of sums, --fmad=false), for several block sizes.
TEST(ClassicFusedCuda, KernelsGiveTheCpuReferenceBitForBit) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  if (!cuda_kernels()) GTEST_SKIP() << "npe was built without a CUDA compiler";
  int sms = 0;
  int64_t smem = 0;
  ASSERT_TRUE(fused::device_limits(&sms, &smem));
  for (int trial = 0; trial < 6; ++trial) {
    const uint64_t seed = test::fresh_seed();
    const int N = 2 + trial % 5, B = 1 + static_cast<int>(seed % 97);
    Problem p = random_problem(seed, N, B);
    const int auto_wpb = fused::windows_per_block(B, N, sms, smem);
    for (const int wpb : {1, 3, auto_wpb}) {
      if (fused::block_smem_bytes(wpb, N) > smem) continue;
      const std::vector<float> params = flat_parameters(*p.net);
      std::vector<float> want(fused::kParams);
      const float want_loss = fused::classic_loss_grad_cpu(p.batch(p.traj, p.perm), p.step, wpb, params.data(),
                                                           want.data());

      p.net->to(torch::kCUDA);
      const auto traj = p.traj.to(torch::kCUDA), perm = p.perm.to(torch::kCUDA);
      const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA);
      const int blocks = (B + wpb - 1) / wpb;
      auto grad = torch::full({fused::kParams}, NAN, f32),
           partial = torch::full({fused::partial_floats(blocks)}, NAN, f32);
      auto loss = torch::zeros({2}, f32);
      auto step = torch::full({}, p.step, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA));
      fused::StepState st{};
      const auto ps = p.net->parameters();
      for (size_t t = 0; t < ps.size(); ++t) st.param[t] = ps[t].data_ptr<float>();
      st.grad = grad.data_ptr<float>(), st.partial = partial.data_ptr<float>(), st.loss = loss.data_ptr<float>();
      st.step = step.data_ptr<int64_t>();
      fused::prepare_loss_grad(wpb, N);
      fused::launch_loss_grad(p.batch(traj, perm), st, wpb, model::current_cuda_stream());
      const auto got = grad.cpu();
      const float got_loss = loss.cpu()[0].item<float>();
      p.net->to(torch::kCPU);
      EXPECT_EQ(got_loss, want_loss) << "N " << N << " B " << B << " wpb " << wpb;
      int64_t differ = 0;
      for (int k = 0; k < fused::kParams; ++k) differ += got.data_ptr<float>()[k] != want[k];
      EXPECT_EQ(differ, 0) << "gradient entries that differ, N " << N << " B " << B << " wpb " << wpb;
    }
  }
}

// The update kernel against the optimizers' formulas in float64 (train_step.h): RMSprop with the
// paper's decayed rate, Adam with L2 decay, AdamW with decoupled decay and clipping.
TEST(ClassicFusedCuda, UpdateFollowsTheOptimizersFormulas) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  if (!cuda_kernels()) GTEST_SKIP() << "npe was built without a CUDA compiler";
  struct Case {
    fused::Update kind;
    float weight_decay, max_grad_norm;
    int64_t step;
  };
  for (const Case k : {Case{fused::Update::RMSprop, 0.0f, 0.0f, 61234}, Case{fused::Update::RMSprop, 0.01f, 0.5f, 7},
                       Case{fused::Update::Adam, 0.01f, 0.0f, 3}, Case{fused::Update::AdamW, 0.01f, 0.5f, 11}}) {
    const uint64_t seed = test::fresh_seed();
    torch::manual_seed(seed);
    const auto cuda = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA);
    const auto p0 = torch::randn({fused::kParams}) * 0.1, g = torch::randn({fused::kParams}) * 0.01;
    // exp_avg of either sign; square_avg (RMSprop) and exp_avg_sq are never negative
    const auto m10 = k.kind == fused::Update::RMSprop ? torch::rand({fused::kParams}) * 1e-4
                                                      : torch::randn({fused::kParams}) * 0.001;
    const auto m20 = torch::rand({fused::kParams}) * 1e-4;
    auto p = p0.to(cuda), m1 = m10.to(cuda), m2 = m20.to(cuda), grad = g.to(cuda);
    auto loss = torch::tensor({0.25f, 8.0f}).to(cuda);
    auto step = torch::full({}, k.step, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA));
    auto opt_steps = torch::full({}, 4.0f, cuda), lr = torch::zeros({}, cuda), loss_sum = torch::full({}, 1.0f, cuda);
    auto first_bad = torch::full({}, int64_t{-1}, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA));
    fused::StepState st{};
    for (int t = 0; t < 2 * fused::kLayers; ++t) {
      const int l = t / 2, at = t % 2 == 0 ? fused::weight_offset(l) : fused::bias_offset(l);
      st.param[t] = p.data_ptr<float>() + at;
      st.moment1[t] = m1.data_ptr<float>() + at;
      st.moment2[t] = k.kind == fused::Update::RMSprop ? nullptr : m2.data_ptr<float>() + at;
    }
    st.grad = grad.data_ptr<float>(), st.loss = loss.data_ptr<float>(), st.step = step.data_ptr<int64_t>();
    st.opt_steps = opt_steps.data_ptr<float>(), st.lr = lr.data_ptr<float>(), st.loss_sum = loss_sum.data_ptr<float>();
    st.first_bad = first_bad.data_ptr<int64_t>();
    auto done = torch::zeros({1}, torch::TensorOptions().dtype(torch::kInt32).device(torch::kCUDA));
    st.done = reinterpret_cast<unsigned int*>(done.data_ptr<int32_t>());
    fused::UpdateConfig c;
    c.kind = k.kind, c.weight_decay = k.weight_decay, c.max_grad_norm = k.max_grad_norm;
    c.lr = 1e-3, c.paper_decay = k.kind == fused::Update::RMSprop;
    fused::launch_update(c, st, model::current_cuda_stream());

    // float64 expectations
    const auto P = p0.to(torch::kFloat64), M1 = m10.to(torch::kFloat64), M2 = m20.to(torch::kFloat64);
    auto G = g.to(torch::kFloat64);
    if (k.max_grad_norm > 0) G = G * std::min(1.0, k.max_grad_norm / (G.norm().item<double>() + 1e-6));
    double rate = 1e-3;
    if (c.paper_decay && k.step > 50000) rate *= std::pow(0.99, static_cast<double>((k.step - 50000) / 2500));
    const double wd = k.weight_decay;
    torch::Tensor want;
    if (k.kind == fused::Update::RMSprop) {
      const auto g2 = G + wd * P;
      const auto sq = 0.99 * M1 + 0.01 * g2 * g2;
      want = P - rate * g2 / (sq.sqrt() + 1e-8);
    } else {
      const double n = 5, bc1 = 1 - std::pow(0.9, n), bc2 = 1 - std::pow(0.999, n);
      auto Pd = P;
      auto g2 = G;
      if (k.kind == fused::Update::AdamW)
        Pd = P - rate * wd * P;
      else
        g2 = G + wd * P;
      const auto a1 = 0.9 * M1 + 0.1 * g2, a2 = 0.999 * M2 + 0.001 * g2 * g2;
      want = Pd - (rate / bc1) * a1 / (a2.sqrt() / std::sqrt(bc2) + 1e-8);
    }
    const double moved = (want - P).abs().max().item<double>();
    const double err = (p.cpu().to(torch::kFloat64) - want).abs().max().item<double>();
    // float32 rounding of the update (relative) and of the parameter itself (a few ulps)
    EXPECT_LT(err, 1e-5 * moved + 1e-7 * P.abs().max().item<double>())
        << static_cast<int>(k.kind) << ": moved " << moved;
    EXPECT_NEAR(lr.item<double>(), rate, 1e-7 * rate);
    EXPECT_EQ(step.item<int64_t>(), k.step + 1);
    EXPECT_EQ(opt_steps.item<float>(), 5.0f);
    EXPECT_FLOAT_EQ(loss_sum.item<float>(), 1.25f);
    EXPECT_EQ(first_bad.item<int64_t>(), -1);
    EXPECT_EQ(done.item<int32_t>(), 0);  // reset for the next step
  }
}

// TrainStep on CUDA: the fused classic step follows libtorch's (autograd, torch's optimizers) over
// 40 steps of a run from the same weights, and two fused runs are identical bit for bit.
TEST(ClassicFusedCuda, TrainStepFollowsLibtorchsStep) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  if (!cuda_kernels()) GTEST_SKIP() << "npe was built without a CUDA compiler";
  for (const char* optimizer : {"rmsprop", "adamw"}) {
    const uint64_t seed = test::fresh_seed();
    std::mt19937_64 rng(seed);
    torch::manual_seed(seed);
    const auto traj = test_util::random_trajectories(30, 12, 4, true, rng).to(torch::kCUDA);
    TrainConfig cfg = default_train_config(Kind::Classic);
    cfg.optimizer = optimizer;
    cfg.batch_size = 50;
    cfg.seed = seed;
    cfg.lr = 1e-3;
    if (std::string(optimizer) == "adamw") cfg.weight_decay = 0.01, cfg.max_grad_norm = 0.05;
    std::vector<std::shared_ptr<NPEImpl>> nets;
    std::vector<std::unique_ptr<torch::optim::Optimizer>> opts;
    std::vector<std::unique_ptr<TrainStep>> steps;
    for (int run = 0; run < 3; ++run) {  // fused, libtorch, fused again
      torch::manual_seed(seed + 1);
      nets.push_back(make_model(cfg.model));
      nets.back()->fit_normalisation(traj.cpu());
      nets.back()->to(torch::kCUDA);
      opts.push_back(make_optimizer(cfg, *nets.back()));
      if (std::string(optimizer) == "rmsprop")  // see StepVsLibtorch: bounds RMSprop's amplification of rounding
        static_cast<torch::optim::RMSpropOptions&>(opts.back()->param_groups()[0].options()).eps(1e-3);
      StepOptions o;
      o.fused = run != 1;
      steps.push_back(std::make_unique<TrainStep>(cfg, *nets.back(), *opts.back(), traj, 400, 0, o));
    }
    ASSERT_TRUE(steps[0]->fused()) << steps[0]->fused_reason();
    ASSERT_FALSE(steps[1]->fused());
    double loss[3][4];
    for (int interval = 0; interval < 4; ++interval)
      for (int run = 0; run < 3; ++run) {
        for (int i = 0; i < 10; ++i) steps[run]->run();
        loss[run][interval] = steps[run]->take_mean_loss();
      }
    for (int interval = 0; interval < 4; ++interval)
      EXPECT_NEAR(loss[0][interval], loss[1][interval], 1e-3 * loss[1][interval])
          << optimizer << " interval " << interval;
    EXPECT_TRUE(steps[0]->captured());
    EXPECT_EQ(steps[0]->step(), 40);
    EXPECT_NEAR(steps[0]->lr(), steps[1]->lr(), 1e-7 * cfg.lr);
    const auto a = nets[0]->parameters(), b = nets[1]->parameters(), c = nets[2]->parameters();
    double worst = 0, travelled = 0;
    torch::manual_seed(seed + 1);
    const auto init = make_model(cfg.model)->parameters();
    for (size_t i = 0; i < a.size(); ++i) {
      worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
      travelled = std::max(travelled, (a[i].cpu() - init[i]).abs().max().item<double>());
      EXPECT_TRUE(torch::equal(a[i], c[i])) << optimizer << ": two fused runs differ in parameter " << i;
    }
    std::printf("%s: 40 steps, largest parameter difference fused - libtorch %.3g (parameters moved up to %.3g)\n",
                optimizer, worst, travelled);
    EXPECT_LT(worst, 1e-3 * travelled) << optimizer;
    steps[0]->sync_optimizer();  // the moments the kernels updated are the optimizer's state
    const auto& s0 = *opts[0]->state().at(a[0].unsafeGetTensorImpl());
    const auto& s1 = *opts[1]->state().at(b[0].unsafeGetTensorImpl());
    const auto m0 = std::string(optimizer) == "rmsprop"
                        ? static_cast<const torch::optim::RMSpropParamState&>(s0).square_avg()
                        : static_cast<const torch::optim::AdamWParamState&>(s0).exp_avg();
    const auto m1 = std::string(optimizer) == "rmsprop"
                        ? static_cast<const torch::optim::RMSpropParamState&>(s1).square_avg()
                        : static_cast<const torch::optim::AdamWParamState&>(s1).exp_avg();
    EXPECT_LT((m0 - m1).abs().max().item<double>(), 1e-2 * m1.abs().max().item<double>()) << optimizer;
  }
}

}  // namespace
}  // namespace npe::model
