#include "npe/model/train_step.h"

#include <cmath>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include "cuda_graph.h"
#include "device_optimizer.h"
#include "npe/core/error.h"
#include "step_strategy.h"

namespace npe::model {
using torch::Tensor;

bool cuda_graphs_available() { return StepGraph::available(); }

Tensor scheduled_lr_tensor(const TrainConfig& c, Kind kind, const Tensor& step, int64_t total) {
  const Tensor s = step.to(torch::kFloat64);
  if (!modern_recipe(kind) && c.optimizer == "rmsprop") {  // classic_lr
    const Tensor decays = ((s - 50000) / 2500).floor().clamp_min(0);
    return torch::where(s <= 50000, torch::full_like(s, c.lr), c.lr * torch::pow(0.99, decays));
  }
  if (modern_recipe(kind)) {  // modern_lr
    const int64_t warm = std::max<int64_t>(1, total / 10);
    const Tensor warming = c.lr * (0.1 + 0.9 * s / static_cast<double>(warm));
    const Tensor p = ((s - warm) / static_cast<double>(std::max<int64_t>(1, total - warm))).clamp_max(1.0);
    const Tensor cosine = c.lr * 0.5 * (1.0 + torch::cos(M_PI * p));
    return torch::where(s < warm, warming, cosine);
  }
  return torch::full_like(s, c.lr);
}

// The step's pieces: the device-side optimizer, the data order, the shared device state and the
// strategy that computes a step (step_strategy.h), replayed as a CUDA graph on CUDA.
struct TrainStep::Impl {
  TrainConfig cfg;
  NPEImpl& net;
  int64_t step;
  StepOptions options;
  int world;
  DeviceOptimizer optimizer;
  WindowOrder order;
  StepContext ctx;
  std::unique_ptr<StepStrategy> strategy;
  std::string fused_reason;  // why the step is not hand-written, when it is not
  int64_t loss_count = 0;
  int64_t loaded_epoch = -1;

  std::unique_ptr<StepGraph> graph;
  int warmed = 0;
  bool captured = false;

  Impl(const TrainConfig& c, NPEImpl& n, torch::optim::Optimizer& o, Tensor traj, int64_t total, int64_t start,
       StepOptions so)
      : cfg(c),
        net(n),
        step(start),
        options(so),
        world(so.group ? so.group->size() : 1),
        optimizer(o, traj.device()),
        order(traj.size(0) * (traj.size(1) - 2), c.batch_size * world, c.seed, traj.device()),
        ctx{cfg,
            n.config().kind,
            n,
            traj,
            total,
            so,
            traj.device(),
            so.group,
            so.group ? so.group->rank() : 0,
            world,
            optimizer,
            order,
            {},
            {},
            {},
            {},
            {},
            {}} {}

  void refresh_epoch();
};

void TrainStep::Impl::refresh_epoch() {
  const int64_t epoch = step / order.steps_per_epoch();
  if (epoch == loaded_epoch) return;
  const std::vector<int64_t>& perm = order.permutation(epoch);
  // A synchronous copy, ordered on the current stream after the steps that read the old one.
  ctx.perm_t.copy_(
      torch::from_blob(const_cast<int64_t*>(perm.data()), {static_cast<int64_t>(perm.size())}, torch::kLong));
  loaded_epoch = epoch;
}

TrainStep::TrainStep(const TrainConfig& config, NPEImpl& net, torch::optim::Optimizer& optimizer, Tensor traj,
                     int64_t total_steps, int64_t start_step, StepOptions options) {
  if (options.bf16 && !traj.device().is_cuda())
    throw FieldError("precision", ": bf16 autocast is for CUDA training (the CPU path stays float32)");
  if (traj.dim() != 4 || traj.size(1) < 3)
    throw Error(fmt::format("train step: expected trajectories [S, T >= 3, N, 5], found {}", c10::str(traj.sizes())));
  if (traj.scalar_type() != torch::kFloat32 || !traj.is_contiguous())
    throw Error("train step: expected contiguous float32 trajectories");
  impl_ = std::make_unique<Impl>(config, net, optimizer, std::move(traj), total_steps, start_step, options);
  Impl& m = *impl_;
  StepContext& c = m.ctx;
  const auto i64 = torch::TensorOptions().dtype(torch::kLong).device(c.device);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(c.device);
  c.step_t = torch::full({}, start_step, i64);
  c.first_bad_t = torch::full({}, -1, i64);
  c.arange_t = torch::arange(config.batch_size, i64);
  c.perm_t = torch::empty({c.traj.size(0) * (c.traj.size(1) - 2)}, i64);
  c.loss_sum_t = torch::zeros({}, f32);
  c.lr_t = torch::zeros({}, f32);
  m.strategy = make_hand_written_step(c, &m.fused_reason);
  if (!m.strategy) m.strategy = make_libtorch_step();
  if (c.device.is_cuda() && options.cuda_graph) {
    if (!StepGraph::available())
      throw Error("train step: CUDA graphs are not available in this build (npe was built without a CUDA compiler)");
    m.graph = std::make_unique<StepGraph>();
  }
}

TrainStep::~TrainStep() = default;

void TrainStep::run() {
  Impl& m = *impl_;
  m.refresh_epoch();
  // Dropout masks and input noise: on CPU and in eager CUDA steps drawn from (seed, step), so that
  // a resumed run draws the ones an uninterrupted run would; a replayed graph draws from the
  // generator's Philox offset, advanced by each replay.
  if ((m.net.config().dropout > 0 || m.cfg.input_noise > 0) && !m.captured)
    torch::manual_seed((m.cfg.seed * 1000003ULL + static_cast<uint64_t>(m.step)) * static_cast<uint64_t>(m.world) +
                       static_cast<uint64_t>(m.ctx.rank));
  auto body = [&] { m.strategy->body(m.ctx); };
  if (!m.graph) {
    body();
  } else if (m.captured) {
    m.graph->replay();
  } else if (m.warmed < m.options.warmup_steps) {
    m.graph->warm(body);
    ++m.warmed;
  } else {
    m.graph->capture(body);
    m.captured = true;
    m.graph->replay();
  }
  ++m.step;
  ++m.loss_count;
}

int64_t TrainStep::step() const { return impl_->step; }
bool TrainStep::captured() const { return impl_->captured; }

double TrainStep::take_mean_loss() {
  Impl& m = *impl_;
  StepContext& c = m.ctx;
  if (m.world > 1) c.processes->all_reduce(c.loss_sum_t, Reduce::Avg);
  const double mean = m.loss_count ? c.loss_sum_t.item<double>() / static_cast<double>(m.loss_count) : NAN;
  c.loss_sum_t.zero_();
  m.loss_count = 0;
  return mean;
}

std::pair<double, int64_t> TrainStep::loss_accumulator() {
  Impl& m = *impl_;
  if (m.world == 1) return {m.ctx.loss_sum_t.item<double>(), m.loss_count};
  const Tensor mean = m.ctx.loss_sum_t.clone();
  m.ctx.processes->all_reduce(mean, Reduce::Avg);
  return {mean.item<double>(), m.loss_count};
}

void TrainStep::restore_loss_accumulator(double sum, int64_t count) {
  impl_->ctx.loss_sum_t.fill_(sum);  // a float32 sum read as double: restored exactly
  impl_->loss_count = count;
}

int64_t TrainStep::first_nonfinite_step() {
  const StepContext& c = impl_->ctx;
  if (impl_->world == 1) return c.first_bad_t.item<int64_t>();
  constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  const Tensor first = torch::where(c.first_bad_t.lt(0), torch::full_like(c.first_bad_t, kNone), c.first_bad_t);
  c.processes->all_reduce(first, Reduce::Min);
  const int64_t v = first.item<int64_t>();
  return v == kNone ? -1 : v;
}

void TrainStep::broadcast_state() {
  Impl& m = *impl_;
  if (m.world == 1) return;
  torch::NoGradGuard no_grad;
  ProcessGroup& g = *m.ctx.processes;
  for (const Tensor& p : m.optimizer.params) g.broadcast(p.detach(), 0);
  for (const Tensor& b : m.net.buffers()) g.broadcast(b, 0);
  for (const Tensor& t : m.optimizer.moment1) g.broadcast(t, 0);
  for (const Tensor& t : m.optimizer.moment2) g.broadcast(t, 0);
  g.broadcast(m.optimizer.steps, 0);
}

double TrainStep::replica_divergence() {
  Impl& m = *impl_;
  if (m.world == 1) return 0.0;
  torch::NoGradGuard no_grad;
  std::vector<Tensor> flat;
  for (const Tensor& p : m.optimizer.params) flat.push_back(p.detach().reshape({-1}));
  const Tensor mine = torch::cat(flat), root = mine.clone();
  m.ctx.processes->broadcast(root, 0);
  return (mine - root).abs().max().item<double>();
}

bool TrainStep::fused() const { return impl_->strategy->hand_written(); }
const std::string& TrainStep::fused_reason() const { return impl_->fused_reason; }

int64_t TrainStep::gradient_buckets() const {
  return impl_->world > 1 ? static_cast<int64_t>(impl_->optimizer.buckets.size()) : 0;
}

double TrainStep::lr() { return impl_->ctx.lr_t.item<double>(); }

void TrainStep::sync_optimizer() { impl_->optimizer.sync(); }

}  // namespace npe::model
