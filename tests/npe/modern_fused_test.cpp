// The modern NPE's hand-written loss and gradient (npe/src/modern_fused.h): which shapes the
// kernels take, the loss and every parameter's gradient against libtorch's float32 autograd of
// ModernNPEImpl (beside libtorch's own bf16 autocast of the same model, as the yardstick of
// bf16 rounding), bit-for-bit repetition, and TrainStep taking the path.
#include "modern_fused.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <ATen/autocast_mode.h>
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

bool cuda_kernels() {
  int sms = 0;
  int64_t smem = 0;
  return fused::device_limits(&sms, &smem);
}

fused::ModernShape default_shape() {
  fused::ModernShape s;
  s.batch = 2048, s.balls = 4, s.enc_blocks = 3, s.dec_blocks = 3, s.sms = 132, s.smem_bytes = 227 * 1024;
  return s;
}

TEST(ModernFused, TakesTheDefaultModelAndRefusesWhatItCannotRun) {
  fused::ModernShape s = default_shape();
  const char* why = fused::modern_unsupported(s);
  if (why && std::string(why) == "no CUDA kernels in this build") GTEST_SKIP() << why;
  EXPECT_EQ(why, nullptr) << why;
  auto refused = [](fused::ModernShape t) { return fused::modern_unsupported(t) != nullptr; };
  s.balls = 1;
  EXPECT_TRUE(refused(s)) << "one ball: no pairs";
  s = default_shape(), s.smem_bytes = 163 * 1024;  // an A100's 163 KB per block
  EXPECT_TRUE(refused(s));
  s = default_shape(), s.enc_blocks = fused::kModernMaxBlocks + 1;
  EXPECT_TRUE(refused(s));
  s = default_shape(), s.batch = 0;
  EXPECT_TRUE(refused(s));
  s = default_shape();
  fused::ModernShape half = s;
  half.batch = 1024;
  EXPECT_GT(fused::modern_workspace_bytes(s), fused::modern_workspace_bytes(half));
  EXPECT_LT(fused::modern_workspace_bytes(s), int64_t{400} << 20);
}

// A modern model whose LayerNorm weights and all biases are drawn at random too (about 1 and a
// few tenths), so that no gradient is trivially zero or equal to another's.
std::shared_ptr<NPEImpl> random_modern(const ModelConfig& mc) {
  auto net = make_model(mc);
  torch::NoGradGuard no_grad;
  for (auto& kv : net->named_parameters()) {
    torch::Tensor& t = kv.value();
    const std::string& name = kv.key();
    if (name.find("norm.weight") != std::string::npos)
      t.copy_(1.0 + 0.3 * torch::randn_like(t));
    else if (name.find("bias") != std::string::npos)
      t.copy_(0.2 * torch::randn_like(t));
  }
  return net;
}

struct Case {
  int N, B, enc, dec;
  bool residual;
};

struct Problem {
  torch::Tensor traj, perm;  // CUDA
  std::shared_ptr<NPEImpl> net;
  fused::Batch batch;
  int64_t step = 0;
  torch::Tensor step_t, ids;
};

Problem make_setup(const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  torch::manual_seed(seed);
  Problem s;
  const auto traj = test_util::random_trajectories(8, 9, c.N, true, rng);
  ModelConfig mc;
  mc.kind = Kind::Modern;
  mc.neighborhood = 0.4;  // about half of the pairs of balls in [0, 1]^2
  mc.enc_blocks = c.enc, mc.dec_blocks = c.dec, mc.residual_velocity = c.residual;
  s.net = random_modern(mc);
  s.net->fit_normalisation(traj);
  s.net->to(torch::kCUDA);
  s.traj = traj.to(torch::kCUDA);
  const int64_t windows = traj.size(0) * (traj.size(1) - 2);
  s.perm = torch::randperm(windows, torch::kLong).to(torch::kCUDA);
  s.step = std::uniform_int_distribution<int64_t>(0, 1000)(rng);
  s.step_t = torch::full({}, s.step, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA));
  fused::Batch& a = s.batch;
  a.traj = s.traj.data_ptr<float>();
  a.scenes = traj.size(0), a.frames = traj.size(1), a.balls = c.N;
  a.perm = s.perm.data_ptr<int64_t>();
  a.windows = windows;
  a.steps_per_epoch = 7;
  a.batch = c.B;
  const auto buffers = s.net->named_buffers();
  a.mean = buffers["state_mean"].data_ptr<float>();
  a.std = buffers["state_std"].data_ptr<float>();
  a.dv_std = buffers["dv_std"].data_ptr<float>();
  a.r2 = static_cast<float>(mc.neighborhood * mc.neighborhood);
  // the same windows as TrainStep's libtorch path takes (one process)
  const int64_t offset = (s.step % a.steps_per_epoch) * c.B;
  s.ids = s.perm.index_select(0, (torch::arange(c.B, s.perm.options()) + offset).remainder(windows));
  return s;
}

// The fused loss [2] (loss, D) and gradients (one per parameter, prefilled with NaN so that an
// entry not written shows); the scratch is filled with the byte `fill` (0xff: NaN floats).
// `sms`: the multiprocessors the step is planned for (0: the device's), which set the grids and
// so the number of tiles per thread block, of stages per weight-gradient range and of chunks per
// small-layer block.
std::pair<torch::Tensor, std::vector<torch::Tensor>> fused_loss_grad(Problem& s, const Case& c, int fill = 0xff,
                                                                     int sms_override = 0) {
  for (auto& p : s.net->parameters()) p.mutable_grad() = torch::full_like(p, NAN);
  fused::ModernModel m;
  EXPECT_EQ(fused::bind_modern_model(*s.net, &m), "");
  int sms = 0;
  int64_t smem = 0;
  EXPECT_TRUE(fused::device_limits(&sms, &smem));
  fused::ModernShape shape;
  shape.batch = c.B, shape.balls = c.N, shape.enc_blocks = c.enc, shape.dec_blocks = c.dec;
  shape.sms = sms_override > 0 ? sms_override : sms;
  shape.smem_bytes = smem;
  EXPECT_EQ(fused::modern_unsupported(shape), nullptr);
  auto work = torch::full({fused::modern_workspace_bytes(shape)}, fill,
                          torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA));
  auto loss = torch::full({2}, NAN, torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA));
  fused::modern_prepare(shape, m, work.data_ptr());
  fused::launch_modern_loss_grad(s.batch, s.step_t.data_ptr<int64_t>(), shape, m, work.data_ptr(),
                                 loss.data_ptr<float>(), current_cuda_stream());
  std::vector<torch::Tensor> grads;
  for (auto& p : s.net->parameters()) grads.push_back(p.grad().clone());
  return {loss.cpu(), grads};
}

// libtorch's autograd of window_loss over the same windows, in float32 or under bf16 autocast.
std::pair<double, std::vector<torch::Tensor>> autograd_loss_grad(Problem& s, bool bf16) {
  for (auto& p : s.net->parameters()) p.mutable_grad() = torch::Tensor();
  if (bf16) {
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  auto loss = window_loss(*s.net, s.traj, s.ids, 0.0);
  if (bf16) {
    at::autocast::decrement_nesting();
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (auto& p : s.net->parameters()) grads.push_back(p.grad().clone());
  return {loss.item<double>(), grads};
}

double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto w = want.to(torch::kFloat64);
  return (got.to(torch::kFloat64) - w).norm().item<double>() / std::max(w.norm().item<double>(), 1e-30);
}

// The loss and every parameter's gradient against float32 autograd, on mixed ball counts, batch
// sizes that leave partial tiles and partial row ranges, both heads and several block counts.
// bf16 rounds to 8 bits of mantissa (relative 2^-9 per rounding): every parameter's gradient
// within 5%, and, over batches of 32 windows or more (where rounding errors average out), the
// loss within 1% and the whole gradient at least as close to float32 as libtorch's bf16
// autocast is (which also rounds the residual stream and the weight gradients). A batch of one
// window (a few rows) is a single draw of the rounding: there the loss within 5%. Seen on an
// H100: whole-gradient errors 1.6e-3 to 4.8e-3 against autocast's 3.6e-3 to 9.1e-3; for one
// window 3.6e-3 to 1.3e-2 against 6.5e-3 to 8.2e-3.
TEST(ModernFusedCuda, LossAndGradientMatchFloat32Autograd) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  if (!cuda_kernels()) GTEST_SKIP() << "npe was built without a CUDA compiler";
  for (const Case c : {Case{4, 300, 3, 3, false}, Case{2, 37, 1, 1, false}, Case{5, 129, 2, 3, true},
                       Case{3, 1, 0, 2, false}, Case{4, 65, 3, 0, true}}) {
    const uint64_t seed = test::fresh_seed();
    Problem s = make_setup(c, seed);
    const std::string what = "N " + std::to_string(c.N) + " B " + std::to_string(c.B) + " blocks " +
                             std::to_string(c.enc) + "+" + std::to_string(c.dec) + (c.residual ? " residual" : "");
    const auto [loss, got] = fused_loss_grad(s, c);
    const auto [want_loss, want] = autograd_loss_grad(s, false);
    const auto [amp_loss, amp] = autograd_loss_grad(s, true);
    // D = max(1, 2 x the present balls of the batch at t)
    const int64_t T = s.traj.size(1);
    const auto cur = s.traj.index({s.ids.div(T - 2, "floor"), s.ids.remainder(T - 2) + 1});  // [B, N, 5]
    const double present = (cur.select(-1, 4) > 0).sum().item<double>();
    EXPECT_EQ(loss[1].item<double>(), std::max(1.0, 2.0 * present)) << what;
    const bool many = c.B >= 32;
    EXPECT_NEAR(loss[0].item<double>(), want_loss, (many ? 1e-2 : 5e-2) * want_loss) << what;
    const auto names = s.net->named_parameters().keys();
    double worst = 0, fused_all = 0, amp_all = 0, norm_all = 0;
    std::string worst_name;
    for (size_t k = 0; k < got.size(); ++k) {
      ASSERT_TRUE(torch::isfinite(got[k]).all().item<bool>()) << what << ": " << names[k] << " not written";
      const double e = relative_error(got[k], want[k]);
      if (e > worst) worst = e, worst_name = names[k];
      EXPECT_LT(e, 0.05) << what << ": " << names[k];
      const auto w = want[k].to(torch::kFloat64);
      fused_all += (got[k].to(torch::kFloat64) - w).pow(2).sum().item<double>();
      amp_all += (amp[k].to(torch::kFloat64) - w).pow(2).sum().item<double>();
      norm_all += w.pow(2).sum().item<double>();
    }
    fused_all = std::sqrt(fused_all / norm_all), amp_all = std::sqrt(amp_all / norm_all);
    std::printf("%s: loss %.6e (float32 %.6e, autocast %.6e); gradient error %.2e (autocast %.2e), worst %.2e (%s)\n",
                what.c_str(), loss[0].item<double>(), want_loss, amp_loss, fused_all, amp_all, worst,
                worst_name.c_str());
    if (many) {
      EXPECT_LE(fused_all, std::max(amp_all, 2e-3)) << what;
    }
  }
}

// No atomics: the same inputs give the same bits; and no scratch is read before it is written in
// the step (NaN-filled and zero-filled scratch give the same bits).
TEST(ModernFusedCuda, RepeatsBitForBit) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  if (!cuda_kernels()) GTEST_SKIP() << "npe was built without a CUDA compiler";
  const Case c{4, 250, 3, 3, false};
  Problem s = make_setup(c, test::fresh_seed());
  const auto [loss_a, a] = fused_loss_grad(s, c, 0xff);
  const auto [loss_b, b] = fused_loss_grad(s, c, 0x00);
  EXPECT_TRUE(torch::equal(loss_a, loss_b));
  for (size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(torch::equal(a[k], b[k])) << k;
}

// The grids follow the multiprocessor count: planned for 2 multiprocessors instead of the
// device's, each persistent thread block runs many tiles, each weight-gradient range many stages
// and each small-layer block many chunks (shared memory reused across iterations, the next
// stage prefetched). Only the order of the float32 sums changes: the same loss, D and gradients
// to float32 rounding. 9,600 encoder rows: more than one stage per range on the device's own
// grid too.
TEST(ModernFusedCuda, GridSizeChangesOnlyTheSummationOrder) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  if (!cuda_kernels()) GTEST_SKIP() << "npe was built without a CUDA compiler";
  for (const Case c : {Case{4, 800, 3, 3, false}, Case{2, 300, 1, 1, true}, Case{5, 200, 0, 0, false}}) {
    Problem s = make_setup(c, test::fresh_seed());
    const auto [loss_a, a] = fused_loss_grad(s, c);
    for (const int sms : {2, 7}) {
      const auto [loss_b, b] = fused_loss_grad(s, c, 0xff, sms);
      EXPECT_NEAR(loss_b[0].item<double>(), loss_a[0].item<double>(), 1e-5 * loss_a[0].item<double>()) << sms;
      EXPECT_EQ(loss_b[1].item<float>(), loss_a[1].item<float>());
      for (size_t k = 0; k < a.size(); ++k) {
        ASSERT_TRUE(torch::isfinite(b[k]).all().item<bool>()) << k;
        EXPECT_LT(relative_error(b[k], a[k]), 1e-4)
            << "parameter " << k << ", " << sms << " multiprocessors, N " << c.N;
      }
    }
  }
}

// TrainStep takes the hand-written step for the modern model in bf16 on CUDA, and says why not
// in float32 and with dropout.
TEST(ModernFusedCuda, TrainStepTakesIt) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  if (!cuda_kernels()) GTEST_SKIP() << "npe was built without a CUDA compiler";
  std::mt19937_64 rng(test::fresh_seed());
  const auto traj = test_util::random_trajectories(10, 8, 4, true, rng).to(torch::kCUDA);
  for (const int variant : {0, 1, 2}) {
    TrainConfig cfg = default_train_config(Kind::Modern);
    cfg.batch_size = 96;
    if (variant == 2) cfg.model.dropout = 0.1;
    auto net = make_model(cfg.model);
    net->fit_normalisation(traj.cpu());
    net->to(torch::kCUDA);
    auto opt = make_optimizer(cfg, *net);
    StepOptions o;
    o.bf16 = variant != 1;
    TrainStep step(cfg, *net, *opt, traj, 50, 0, o);
    EXPECT_EQ(step.fused(), variant == 0) << variant << ": " << step.fused_reason();
    const char* reason = variant == 1 ? "float32" : variant == 2 ? "dropout" : nullptr;
    if (reason) {
      EXPECT_NE(step.fused_reason().find(reason), std::string::npos) << step.fused_reason();
    }
    for (int i = 0; i < 6; ++i) step.run();  // eager, then captured and replayed
    EXPECT_TRUE(std::isfinite(step.take_mean_loss()));
    EXPECT_EQ(step.first_nonfinite_step(), -1);
  }
}

}  // namespace
}  // namespace npe::model
