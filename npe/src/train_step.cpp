#include "npe/model/train_step.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include <ATen/autocast_mode.h>
#include <fmt/format.h>

#include "classic_fused.h"
#include "cuda_graph.h"
#include "modern_fused.h"
#include "npe/core/error.h"

namespace npe::model {
using torch::Tensor;

bool cuda_graphs_available() { return StepGraph::available(); }

Tensor scheduled_lr_tensor(const TrainConfig& c, Kind kind, const Tensor& step, int64_t total) {
  const Tensor s = step.to(torch::kFloat64);
  if (kind != Kind::Modern && c.optimizer == "rmsprop") {  // classic_lr
    const Tensor decays = ((s - 50000) / 2500).floor().clamp_min(0);
    return torch::where(s <= 50000, torch::full_like(s, c.lr), c.lr * torch::pow(0.99, decays));
  }
  if (kind == Kind::Modern) {  // modern_lr
    const int64_t warm = std::max<int64_t>(1, total / 10);
    const Tensor warming = c.lr * (0.1 + 0.9 * s / static_cast<double>(warm));
    const Tensor p = ((s - warm) / static_cast<double>(std::max<int64_t>(1, total - warm))).clamp_max(1.0);
    const Tensor cosine = c.lr * 0.5 * (1.0 + torch::cos(M_PI * p));
    return torch::where(s < warm, warming, cosine);
  }
  return torch::full_like(s, c.lr);
}

namespace {
enum class Update { AdamW, Adam, RMSprop };
}  // namespace

struct TrainStep::Impl {
  TrainConfig cfg;
  Kind kind;
  NPEImpl& net;
  torch::optim::Optimizer& opt;
  Tensor traj;
  int64_t total_steps, step;
  StepOptions options;
  torch::Device device;

  Update update = Update::AdamW;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, alpha = 0.99, weight_decay = 0;
  std::vector<Tensor> params, grads, moment1, moment2;  // moment1: exp_avg / square_avg
  Tensor grad_flat;                    // float32 [parameters]: every grad is a view of it
  std::vector<Tensor> buckets;         // views of grad_flat, all-reduced in turn (data parallel)
  ProcessGroup* processes = nullptr;  // data parallel (nullptr: one process)
  int rank = 0, world = 1;

  // device state of the step
  Tensor step_t;        // int64 scalar: the step being taken
  Tensor opt_steps_t;   // float32 scalar: optimizer steps taken (the fused kernels' state_steps)
  Tensor lr_t;          // float32 scalar: the last step's learning rate
  Tensor perm_t;        // int64 [windows]: the current epoch's permutation
  Tensor arange_t;      // int64 [batch]
  Tensor loss_sum_t;    // float32 scalar
  Tensor first_bad_t;   // int64 scalar, -1: none
  int64_t loss_count = 0;

  WindowOrder order;
  int64_t loaded_epoch = -1;

  std::unique_ptr<StepGraph> graph;
  int warmed = 0;
  bool captured = false;

  // the classic model's hand-written step (classic_fused.h), when it applies
  bool fused = false;
  std::string fused_reason;  // why not, when it does not
  int fused_wpb = 0;
  fused::Batch fbatch;
  fused::StepState fstate;
  fused::UpdateConfig fupdate;
  Tensor partial_t, floss_t, done_t;
  // the modern model's hand-written loss and gradient (modern_fused.h), when it applies; the
  // clipping and the update stay the tensor ops below
  bool modern_fused = false;
  fused::ModernShape mshape;
  fused::ModernModel mmodel;
  Tensor mwork_t, mloss_t;

  Impl(const TrainConfig& c, NPEImpl& n, torch::optim::Optimizer& o, Tensor t, int64_t total, int64_t start,
       StepOptions so)
      : cfg(c), kind(n.config().kind), net(n), opt(o), traj(std::move(t)), total_steps(total), step(start),
        options(so), device(traj.device()), processes(so.group), rank(so.group ? so.group->rank() : 0),
        world(so.group ? so.group->size() : 1),
        order(traj.size(0) * (traj.size(1) - 2), c.batch_size * world, c.seed, traj.device()) {}

  void bind_optimizer();
  void setup_fused();
  void setup_modern_fused();
  fused::Batch make_batch() const;
  void body();
  void finish(const Tensor& loss);
  void refresh_epoch();
};

namespace {
// The parameter's state in `opt` (a libtorch State type), created as libtorch's optimizers create
// it on their first step when the optimizer has not stepped yet.
template <typename State>
State& param_state(torch::optim::Optimizer& opt, const Tensor& p) {
  auto& slot = opt.state()[p.unsafeGetTensorImpl()];
  if (!slot) {
    auto s = std::make_unique<State>();
    if constexpr (std::is_same_v<State, torch::optim::RMSpropParamState>) {
      s->square_avg(torch::zeros_like(p));
    } else {
      s->exp_avg(torch::zeros_like(p)).exp_avg_sq(torch::zeros_like(p));
    }
    slot = std::move(s);
  }
  return static_cast<State&>(*slot);
}
}  // namespace

void TrainStep::Impl::bind_optimizer() {
  if (opt.param_groups().size() != 1) throw Error("train step: expected an optimizer with one parameter group");
  auto& group = opt.param_groups().front();
  auto& options = group.options();
  if (auto* o = dynamic_cast<torch::optim::AdamWOptions*>(&options)) {
    update = Update::AdamW;
    beta1 = std::get<0>(o->betas()), beta2 = std::get<1>(o->betas()), eps = o->eps(), weight_decay = o->weight_decay();
    if (o->amsgrad()) throw Error("train step: AdamW with amsgrad is not supported");
  } else if (auto* a = dynamic_cast<torch::optim::AdamOptions*>(&options)) {
    update = Update::Adam;
    beta1 = std::get<0>(a->betas()), beta2 = std::get<1>(a->betas()), eps = a->eps(), weight_decay = a->weight_decay();
    if (a->amsgrad()) throw Error("train step: Adam with amsgrad is not supported");
  } else if (auto* r = dynamic_cast<torch::optim::RMSpropOptions*>(&options)) {
    update = Update::RMSprop;
    alpha = r->alpha(), eps = r->eps(), weight_decay = r->weight_decay();
    if (r->momentum() != 0 || r->centered())
      throw Error("train step: RMSprop with momentum or centering is not supported");
  } else {
    throw Error("train step: expected an AdamW, Adam or RMSprop optimizer (make_optimizer)");
  }
  int64_t state_step = -1;
  // One flat gradient buffer; each parameter's grad is a view of it, which autograd accumulates
  // into in place (the grads are never undefined again: the step zeroes them), and buckets of it
  // at parameter boundaries are what the processes all-reduce.
  int64_t total = 0;
  for (auto& p : group.params()) {
    if (p.scalar_type() != torch::kFloat32)
      throw Error(fmt::format("train step: expected float32 parameters, found {}", c10::toString(p.scalar_type())));
    total += p.numel();
  }
  grad_flat = torch::zeros({total}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  constexpr int64_t kBucketFloats = (int64_t{25} << 20) / 4;  // 25 MiB, DistributedDataParallel's default
  int64_t offset = 0, bucket_start = 0;
  for (auto& p : group.params()) {
    const int64_t n = p.numel();
    if (offset + n - bucket_start > kBucketFloats && offset > bucket_start) {
      buckets.push_back(grad_flat.narrow(0, bucket_start, offset - bucket_start));
      bucket_start = offset;
    }
    Tensor view = grad_flat.narrow(0, offset, n).view(p.sizes());
    if (p.grad().defined()) view.copy_(p.grad());
    p.mutable_grad() = view;
    offset += n;
  }
  if (offset > bucket_start) buckets.push_back(grad_flat.narrow(0, bucket_start, offset - bucket_start));
  for (auto& p : group.params()) {
    params.push_back(p);
    grads.push_back(p.grad());
    int64_t s = 0;
    switch (update) {
      case Update::AdamW: {
        auto& st = param_state<torch::optim::AdamWParamState>(opt, p);
        moment1.push_back(st.exp_avg()), moment2.push_back(st.exp_avg_sq()), s = st.step();
        break;
      }
      case Update::Adam: {
        auto& st = param_state<torch::optim::AdamParamState>(opt, p);
        moment1.push_back(st.exp_avg()), moment2.push_back(st.exp_avg_sq()), s = st.step();
        break;
      }
      case Update::RMSprop: {
        auto& st = param_state<torch::optim::RMSpropParamState>(opt, p);
        moment1.push_back(st.square_avg()), s = st.step();
        break;
      }
    }
    if (state_step >= 0 && s != state_step)
      throw Error(fmt::format("train step: the optimizer's parameters have taken different numbers of steps ({} "
                              "and {})", state_step, s));
    state_step = s;
  }
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  opt_steps_t = torch::full({}, static_cast<double>(std::max<int64_t>(0, state_step)), f32);
}

// The fused path takes the classic model on CUDA in float32 without input noise, when the
// parameters are the classic model's in its order and a block of one window fits in shared
// memory; otherwise the step stays libtorch's (fused_reason says why).
void TrainStep::Impl::setup_fused() {
  auto no = [&](std::string why) { fused_reason = std::move(why); };
  if (!options.fused) return no("not asked for");
  if (!device.is_cuda()) return no("CPU training");
  if (kind == Kind::Modern) return setup_modern_fused();
  if (kind != Kind::Classic) return no(fmt::format("the {} model", kind_name(kind)));
  if (options.bf16) return no("bf16 autocast");
  if (cfg.input_noise > 0) return no("input noise");
  int sms = 0;
  int64_t smem = 0;
  if (!fused::device_limits(&sms, &smem)) return no("no CUDA kernels in this build");
  const int64_t N = traj.size(2);
  fused_wpb = N >= 2 ? fused::windows_per_block(static_cast<int>(cfg.batch_size), static_cast<int>(N), sms, smem) : 0;
  if (fused_wpb < 1) return no(fmt::format("{} balls need more shared memory than a block has", N));
  // the parameters, in the optimizer's order, are the classic model's 12 layers
  const auto named = net.named_parameters();
  if (named.size() != 2 * fused::kLayers || params.size() != named.size()) return no("unexpected parameters");
  for (size_t t = 0; t < named.size(); ++t) {
    const int l = static_cast<int>(t / 2);
    const Tensor& p = named[t].value();
    const std::vector<int64_t> want = t % 2 == 0 ? std::vector<int64_t>{fused::layer_out(l), fused::layer_in(l)}
                                                 : std::vector<int64_t>{fused::layer_out(l)};
    if (!p.is_same(params[t]) || p.sizes() != c10::IntArrayRef(want) || !p.is_contiguous())
      return no(fmt::format("unexpected parameter '{}'", named[t].key()));
    fstate.param[t] = p.data_ptr<float>();
    fstate.moment1[t] = moment1[t].data_ptr<float>();
    fstate.moment2[t] = update == Update::RMSprop ? nullptr : moment2[t].data_ptr<float>();
  }
  fbatch = make_batch();
  const int blocks = (fbatch.batch + fused_wpb - 1) / fused_wpb;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  partial_t = torch::zeros({fused::partial_floats(blocks)}, f32);
  floss_t = torch::zeros({2}, f32);
  done_t = torch::zeros({1}, torch::TensorOptions().dtype(torch::kInt32).device(device));
  fstate.grad = grad_flat.data_ptr<float>();
  fstate.partial = partial_t.data_ptr<float>();
  fstate.loss = floss_t.data_ptr<float>();
  fstate.step = step_t.data_ptr<int64_t>();
  fstate.opt_steps = opt_steps_t.data_ptr<float>();
  fstate.lr = lr_t.data_ptr<float>();
  fstate.loss_sum = loss_sum_t.data_ptr<float>();
  fstate.first_bad = first_bad_t.data_ptr<int64_t>();
  fstate.done = reinterpret_cast<unsigned int*>(done_t.data_ptr<int32_t>());
  fupdate.kind = update == Update::AdamW ? fused::Update::AdamW
                 : update == Update::Adam ? fused::Update::Adam : fused::Update::RMSprop;
  fupdate.beta1 = static_cast<float>(beta1), fupdate.beta2 = static_cast<float>(beta2);
  fupdate.eps = static_cast<float>(eps), fupdate.alpha = static_cast<float>(alpha);
  fupdate.weight_decay = static_cast<float>(weight_decay);
  fupdate.max_grad_norm = static_cast<float>(cfg.max_grad_norm);
  fupdate.lr = cfg.lr;
  fupdate.paper_decay = cfg.optimizer == "rmsprop";
  fused::prepare_loss_grad(fused_wpb, static_cast<int>(N));
  fused = true;
}

fused::Batch TrainStep::Impl::make_batch() const {
  fused::Batch b;
  const auto buffer = [&](const char* name) { return net.named_buffers()[name].data_ptr<float>(); };
  b.traj = traj.data_ptr<float>();
  b.scenes = traj.size(0), b.frames = traj.size(1), b.balls = static_cast<int>(traj.size(2));
  b.perm = perm_t.data_ptr<int64_t>();
  b.windows = perm_t.size(0);
  b.steps_per_epoch = order.steps_per_epoch();
  b.batch = static_cast<int>(cfg.batch_size);
  b.world = world, b.rank = rank;
  b.mean = buffer("state_mean"), b.std = buffer("state_std"), b.dv_std = buffer("dv_std");
  const double r = net.config().neighborhood;
  b.r2 = static_cast<float>(r * r);
  return b;
}

// The modern model's hand-written loss and gradient take its bf16 step on CUDA at the kernels'
// width (msg_dim 96, expansion 2) without dropout or input noise, when the parameters are the
// model's and the device's shared memory holds a residual block's tile; otherwise libtorch's
// autograd under autocast (fused_reason says why).
void TrainStep::Impl::setup_modern_fused() {
  auto no = [&](std::string why) { fused_reason = std::move(why); };
  const ModelConfig& mc = net.config();
  if (!options.bf16) return no("float32 (the modern model's hand-written step is its bf16 path)");
  if (cfg.input_noise > 0) return no("input noise");
  if (mc.dropout > 0) return no("dropout");
  if (mc.msg_dim != fused::kModernWidth || mc.msg_dim * mc.expansion != fused::kModernHidden)
    return no(fmt::format("msg_dim {} and expansion {} (the kernels are written for {} and {})", mc.msg_dim, mc.expansion,
                          fused::kModernWidth, fused::kModernHidden / fused::kModernWidth));
  int sms = 0;
  int64_t smem = 0;
  if (!fused::device_limits(&sms, &smem)) return no("no CUDA kernels in this build");
  mshape.batch = static_cast<int>(cfg.batch_size), mshape.balls = static_cast<int>(traj.size(2));
  mshape.enc_blocks = mc.enc_blocks, mshape.dec_blocks = mc.dec_blocks, mshape.sms = sms, mshape.smem_bytes = smem;
  if (const char* why = fused::modern_unsupported(mshape)) return no(why);
  // the optimizer's parameters are the model's own (whose gradients the kernels write)
  const auto named = net.named_parameters();
  if (named.size() != params.size()) return no("unexpected parameters");
  for (size_t t = 0; t < params.size(); ++t)
    if (!named[t].value().is_same(params[t])) return no(fmt::format("unexpected parameter '{}'", named[t].key()));
  if (const std::string bad = fused::bind_modern_model(net, &mmodel); !bad.empty()) return no(bad);
  fbatch = make_batch();
  const int64_t bytes = fused::modern_workspace_bytes(mshape);
  try {
    mwork_t = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kUInt8).device(device));
  } catch (const c10::OutOfMemoryError&) {
    return no(fmt::format("its {:.0f} MB of scratch do not fit in the device's memory", bytes / 1e6));
  }
  mloss_t = torch::zeros({2}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  fused::modern_prepare(mshape, mmodel, mwork_t.data_ptr());
  modern_fused = true;
}

void TrainStep::Impl::refresh_epoch() {
  const int64_t epoch = step / order.steps_per_epoch();
  if (epoch == loaded_epoch) return;
  const std::vector<int64_t>& perm = order.permutation(epoch);
  // A synchronous copy, ordered on the current stream after the steps that read the old one.
  perm_t.copy_(torch::from_blob(const_cast<int64_t*>(perm.data()), {static_cast<int64_t>(perm.size())}, torch::kLong));
  loaded_epoch = epoch;
}

// Everything here is a device op on static tensors, so that it can be captured.
void TrainStep::Impl::body() {
  if (fused) {  // two kernels (classic_fused.h); data parallel: three, the all-reduce before the update
    void* stream = current_cuda_stream();
    if (world == 1) return fused::launch_step(fbatch, fupdate, fstate, fused_wpb, stream);
    fused::launch_loss_grad(fbatch, fstate, fused_wpb, stream);
    for (const Tensor& b : buckets) processes->all_reduce(b, Reduce::Avg);
    fused::launch_update(fupdate, fstate, stream);
    return;
  }
  torch::NoGradGuard outer;  // only libtorch's forward below records autograd history
  if (modern_fused) {  // 6 + 4 per residual block kernels (modern_fused.h), then finish()'s tensor ops
    fused::launch_modern_loss_grad(fbatch, step_t.data_ptr<int64_t>(), mshape, mmodel, mwork_t.data_ptr(),
                                   mloss_t.data_ptr<float>(), current_cuda_stream());
    return finish(mloss_t.select(0, 0));
  }
  at::_foreach_zero_(grads);
  const int64_t windows = perm_t.size(0), B = arange_t.size(0);
  // this process's slice of the step's global batch of world * B windows
  const Tensor offset = step_t.remainder(order.steps_per_epoch()) * (B * world) + rank * B;
  const Tensor ids = perm_t.index_select(0, (arange_t + offset).remainder(windows));
  Tensor loss;
  {
    torch::AutoGradMode grad(true);
    if (options.bf16) {
      at::autocast::set_autocast_enabled(at::kCUDA, true);
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
      at::autocast::set_autocast_cache_enabled(false);  // casts inside a capture must not be cached
      at::autocast::increment_nesting();
    }
    loss = window_loss(net, traj, ids, cfg.input_noise);
    if (options.bf16) {
      at::autocast::decrement_nesting();
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      at::autocast::set_autocast_cache_enabled(true);
    }
    loss.backward();
  }
  finish(loss);
}

// The step after the loss and gradient: the all-reduce (data parallel), the loss's accumulators,
// clipping, the learning rate and the optimizer's update.
void TrainStep::Impl::finish(const Tensor& loss) {
  if (world > 1)  // the mean gradient over the processes, on the compute stream
    for (const Tensor& b : buckets) processes->all_reduce(b, Reduce::Avg);
  first_bad_t.copy_(torch::where(first_bad_t.lt(0) & torch::isfinite(loss).logical_not(), step_t, first_bad_t));
  loss_sum_t.add_(loss.detach().to(torch::kFloat32));
  if (cfg.max_grad_norm > 0) {  // torch.nn.utils.clip_grad_norm_ without its .item()
    const Tensor total = torch::stack(at::_foreach_norm(grads, 2)).norm();
    at::_foreach_mul_(grads, (cfg.max_grad_norm / (total + 1e-6)).clamp_max(1.0));
  }
  lr_t.copy_(scheduled_lr_tensor(cfg, kind, step_t, total_steps));
  opt_steps_t.add_(1);
  const std::vector<Tensor> steps(params.size(), opt_steps_t);
  switch (update) {
    case Update::AdamW:
      at::_fused_adamw_(params, grads, moment1, moment2, {}, steps, lr_t, beta1, beta2, weight_decay, eps, false, false);
      break;
    case Update::Adam:
      at::_fused_adam_(params, grads, moment1, moment2, {}, steps, lr_t, beta1, beta2, weight_decay, eps, false, false);
      break;
    case Update::RMSprop: {
      std::vector<Tensor> g = grads;
      if (weight_decay != 0) g = at::_foreach_add(grads, params, weight_decay);
      at::_foreach_mul_(moment1, alpha);
      at::_foreach_addcmul_(moment1, g, g, 1 - alpha);
      std::vector<Tensor> denom = at::_foreach_sqrt(moment1);
      at::_foreach_add_(denom, eps);
      std::vector<Tensor> delta = at::_foreach_div(g, denom);
      at::_foreach_mul_(delta, lr_t);
      at::_foreach_sub_(params, delta);
      break;
    }
  }
  step_t.add_(1);
}

TrainStep::TrainStep(const TrainConfig& config, NPEImpl& net, torch::optim::Optimizer& optimizer, Tensor traj,
                     int64_t total_steps, int64_t start_step, StepOptions options)
    : impl_(std::make_unique<Impl>(config, net, optimizer, std::move(traj), total_steps, start_step, options)) {
  Impl& m = *impl_;
  if (options.bf16 && !m.device.is_cuda())
    throw Error("--bf16: bf16 autocast is for CUDA training (the CPU path stays float32)");
  if (m.traj.dim() != 4 || m.traj.size(1) < 3)
    throw Error(fmt::format("train step: expected trajectories [S, T >= 3, N, 5], found {}", c10::str(m.traj.sizes())));
  m.bind_optimizer();
  const auto i64 = torch::TensorOptions().dtype(torch::kLong).device(m.device);
  m.step_t = torch::full({}, start_step, i64);
  m.first_bad_t = torch::full({}, -1, i64);
  m.arange_t = torch::arange(config.batch_size, i64);
  m.perm_t = torch::empty({m.traj.size(0) * (m.traj.size(1) - 2)}, i64);
  m.loss_sum_t = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(m.device));
  m.lr_t = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(m.device));
  if (m.traj.scalar_type() != torch::kFloat32 || !m.traj.is_contiguous())
    throw Error("train step: expected contiguous float32 trajectories");
  m.setup_fused();
  if (m.device.is_cuda() && options.cuda_graph) {
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
                       static_cast<uint64_t>(m.rank));
  if (!m.graph) {
    m.body();
  } else if (m.captured) {
    m.graph->replay();
  } else if (m.warmed < m.options.warmup_steps) {
    m.graph->warm([&] { m.body(); });
    ++m.warmed;
  } else {
    m.graph->capture([&] { m.body(); });
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
  if (m.world > 1) m.processes->all_reduce(m.loss_sum_t, Reduce::Avg);
  const double mean = m.loss_count ? m.loss_sum_t.item<double>() / static_cast<double>(m.loss_count) : NAN;
  m.loss_sum_t.zero_();
  m.loss_count = 0;
  return mean;
}

std::pair<double, int64_t> TrainStep::loss_accumulator() {
  Impl& m = *impl_;
  if (m.world == 1) return {m.loss_sum_t.item<double>(), m.loss_count};
  const Tensor mean = m.loss_sum_t.clone();
  m.processes->all_reduce(mean, Reduce::Avg);
  return {mean.item<double>(), m.loss_count};
}

void TrainStep::restore_loss_accumulator(double sum, int64_t count) {
  impl_->loss_sum_t.fill_(sum);  // a float32 sum read as double: restored exactly
  impl_->loss_count = count;
}

int64_t TrainStep::first_nonfinite_step() {
  Impl& m = *impl_;
  if (m.world == 1) return m.first_bad_t.item<int64_t>();
  constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  const Tensor first = torch::where(m.first_bad_t.lt(0), torch::full_like(m.first_bad_t, kNone), m.first_bad_t);
  m.processes->all_reduce(first, Reduce::Min);
  const int64_t v = first.item<int64_t>();
  return v == kNone ? -1 : v;
}

void TrainStep::broadcast_state() {
  Impl& m = *impl_;
  if (m.world == 1) return;
  torch::NoGradGuard no_grad;
  for (const Tensor& p : m.params) m.processes->broadcast(p.detach(), 0);
  for (const Tensor& b : m.net.buffers()) m.processes->broadcast(b, 0);
  for (const Tensor& t : m.moment1) m.processes->broadcast(t, 0);
  for (const Tensor& t : m.moment2) m.processes->broadcast(t, 0);
  m.processes->broadcast(m.opt_steps_t, 0);
}

double TrainStep::replica_divergence() {
  Impl& m = *impl_;
  if (m.world == 1) return 0.0;
  torch::NoGradGuard no_grad;
  std::vector<Tensor> flat;
  for (const Tensor& p : m.params) flat.push_back(p.detach().reshape({-1}));
  const Tensor mine = torch::cat(flat), root = mine.clone();
  m.processes->broadcast(root, 0);
  return (mine - root).abs().max().item<double>();
}

bool TrainStep::fused() const { return impl_->fused || impl_->modern_fused; }
const std::string& TrainStep::fused_reason() const { return impl_->fused_reason; }

int64_t TrainStep::gradient_buckets() const { return impl_->world > 1 ? static_cast<int64_t>(impl_->buckets.size()) : 0; }

double TrainStep::lr() { return impl_->lr_t.item<double>(); }

void TrainStep::sync_optimizer() {
  Impl& m = *impl_;
  const auto steps = static_cast<int64_t>(std::llround(m.opt_steps_t.item<double>()));
  for (auto& p : m.params) {
    switch (m.update) {
      case Update::AdamW: param_state<torch::optim::AdamWParamState>(m.opt, p).step(steps); break;
      case Update::Adam: param_state<torch::optim::AdamParamState>(m.opt, p).step(steps); break;
      case Update::RMSprop: param_state<torch::optim::RMSpropParamState>(m.opt, p).step(steps); break;
    }
  }
}

}  // namespace npe::model
