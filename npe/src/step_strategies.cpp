// The three step strategies of step_strategy.h and the step's shared tail (StepContext::finish).
#include <string>

#include <ATen/autocast_mode.h>
#include <fmt/format.h>

#include "classic_fused.h"
#include "cuda_graph.h"
#include "modern_fused.h"
#include "step_strategy.h"

namespace npe::model {
using torch::Tensor;

void StepContext::finish(const Tensor& loss) {
  if (world > 1)  // the mean gradient over the processes, on the compute stream
    for (const Tensor& b : optimizer.buckets) processes->all_reduce(b, Reduce::Avg);
  first_bad_t.copy_(torch::where(first_bad_t.lt(0) & torch::isfinite(loss).logical_not(), step_t, first_bad_t));
  loss_sum_t.add_(loss.detach().to(torch::kFloat32));
  if (cfg.max_grad_norm > 0) optimizer.clip(cfg.max_grad_norm);
  lr_t.copy_(scheduled_lr_tensor(cfg, kind, step_t, total_steps));
  optimizer.update(lr_t);
  step_t.add_(1);
}

Tensor StepContext::batch_ids() const {
  const int64_t windows = perm_t.size(0), B = arange_t.size(0);
  // this process's slice of the step's global batch of world * B windows
  const Tensor offset = step_t.remainder(order.steps_per_epoch()) * (B * world) + rank * B;
  return perm_t.index_select(0, (arange_t + offset).remainder(windows));
}

namespace {

// libtorch's ops and autograd; bf16 autocast on CUDA when asked.
class LibtorchStep : public StepStrategy {
 public:
  void body(StepContext& c) override {
    torch::NoGradGuard outer;  // only libtorch's forward below records autograd history
    at::_foreach_zero_(c.optimizer.grads);
    const Tensor ids = c.batch_ids();
    Tensor loss;
    {
      torch::AutoGradMode grad(true);
      if (c.options.bf16) {
        at::autocast::set_autocast_enabled(at::kCUDA, true);
        at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
        at::autocast::set_autocast_cache_enabled(false);  // casts inside a capture must not be cached
        at::autocast::increment_nesting();
      }
      loss = window_loss(c.net, c.traj, ids, c.cfg.input_noise, c.cfg.noise == "random_walk", c.cfg.step_scale);
      if (c.options.bf16) {
        at::autocast::decrement_nesting();
        at::autocast::set_autocast_enabled(at::kCUDA, false);
        at::autocast::set_autocast_cache_enabled(true);
      }
      loss.backward();
    }
    c.finish(loss);
  }
  bool hand_written() const override { return false; }
};

// What the hand-written kernels read of a batch: the trajectories, the epoch's permutation, the
// model's standardisation buffers and its neighbourhood.
fused::Batch make_batch(const StepContext& c) {
  fused::Batch b;
  const auto buffer = [&](const char* name) { return c.net.named_buffers()[name].data_ptr<float>(); };
  b.traj = c.traj.data_ptr<float>();
  b.scenes = c.traj.size(0), b.frames = c.traj.size(1), b.balls = static_cast<int>(c.traj.size(2));
  b.perm = c.perm_t.data_ptr<int64_t>();
  b.windows = c.perm_t.size(0);
  b.steps_per_epoch = c.order.steps_per_epoch();
  b.batch = static_cast<int>(c.cfg.batch_size);
  b.world = c.world, b.rank = c.rank;
  b.mean = buffer("state_mean"), b.std = buffer("state_std"), b.dv_std = buffer("dv_std");
  const double r = c.net.config().neighborhood;
  b.r2 = static_cast<float>(r * r);
  return b;
}

// The classic model's forward, backward and update in two kernels (classic_fused.h); data
// parallel three, with the all-reduce before the update.
class ClassicFusedStep : public StepStrategy {
 public:
  // Takes the classic model on CUDA in float32 without input noise, when the parameters are the
  // classic model's in its order and a block of one window fits in shared memory; otherwise
  // returns false with the reason in `why`. Binds the kernels to the context's tensors.
  bool init(StepContext& c, std::string* why) {
    auto no = [&](std::string reason) {
      *why = std::move(reason);
      return false;
    };
    DeviceOptimizer& o = c.optimizer;
    if (c.options.bf16) return no("bf16 autocast");
    if (c.cfg.input_noise > 0) return no("input noise");
    int sms = 0;
    int64_t smem = 0;
    if (!fused::device_limits(&sms, &smem)) return no("no CUDA kernels in this build");
    const int64_t N = c.traj.size(2);
    wpb_ = N >= 2 ? fused::windows_per_block(static_cast<int>(c.cfg.batch_size), static_cast<int>(N), sms, smem) : 0;
    if (wpb_ < 1) return no(fmt::format("{} balls need more shared memory than a block has", N));
    // the parameters, in the optimizer's order, are the classic model's 12 layers
    const auto named = c.net.named_parameters();
    if (named.size() != 2 * fused::kLayers || o.params.size() != named.size()) return no("unexpected parameters");
    for (size_t t = 0; t < named.size(); ++t) {
      const int l = static_cast<int>(t / 2);
      const Tensor& p = named[t].value();
      const std::vector<int64_t> want = t % 2 == 0 ? std::vector<int64_t>{fused::layer_out(l), fused::layer_in(l)}
                                                   : std::vector<int64_t>{fused::layer_out(l)};
      if (!p.is_same(o.params[t]) || p.sizes() != c10::IntArrayRef(want) || !p.is_contiguous())
        return no(fmt::format("unexpected parameter '{}'", named[t].key()));
      state_.param[t] = p.data_ptr<float>();
      state_.moment1[t] = o.moment1[t].data_ptr<float>();
      state_.moment2[t] = o.kind == UpdateKind::RMSprop ? nullptr : o.moment2[t].data_ptr<float>();
    }
    batch_ = make_batch(c);
    const int blocks = (batch_.batch + wpb_ - 1) / wpb_;
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(c.device);
    partial_t_ = torch::zeros({fused::partial_floats(blocks)}, f32);
    loss_t_ = torch::zeros({2}, f32);
    done_t_ = torch::zeros({1}, torch::TensorOptions().dtype(torch::kInt32).device(c.device));
    state_.grad = o.grad_flat.data_ptr<float>();
    state_.partial = partial_t_.data_ptr<float>();
    state_.loss = loss_t_.data_ptr<float>();
    state_.step = c.step_t.data_ptr<int64_t>();
    state_.opt_steps = o.steps.data_ptr<float>();
    state_.lr = c.lr_t.data_ptr<float>();
    state_.loss_sum = c.loss_sum_t.data_ptr<float>();
    state_.first_bad = c.first_bad_t.data_ptr<int64_t>();
    state_.done = reinterpret_cast<unsigned int*>(done_t_.data_ptr<int32_t>());
    update_.kind = o.kind == UpdateKind::AdamW  ? fused::Update::AdamW
                   : o.kind == UpdateKind::Adam ? fused::Update::Adam
                                                : fused::Update::RMSprop;
    update_.beta1 = static_cast<float>(o.beta1), update_.beta2 = static_cast<float>(o.beta2);
    update_.eps = static_cast<float>(o.eps), update_.alpha = static_cast<float>(o.alpha);
    update_.weight_decay = static_cast<float>(o.weight_decay);
    update_.max_grad_norm = static_cast<float>(c.cfg.max_grad_norm);
    update_.lr = c.cfg.lr;
    update_.paper_decay = c.cfg.optimizer == "rmsprop";
    fused::prepare_loss_grad(wpb_, static_cast<int>(N));
    return true;
  }

  void body(StepContext& c) override {
    void* stream = current_cuda_stream();
    if (c.world == 1) return fused::launch_step(batch_, update_, state_, wpb_, stream);
    fused::launch_loss_grad(batch_, state_, wpb_, stream);
    for (const Tensor& b : c.optimizer.buckets) c.processes->all_reduce(b, Reduce::Avg);
    fused::launch_update(update_, state_, stream);
  }
  bool hand_written() const override { return true; }

 private:
  int wpb_ = 0;  // windows per thread block
  fused::Batch batch_;
  fused::StepState state_;
  fused::UpdateConfig update_;
  Tensor partial_t_, loss_t_, done_t_;
};

// The modern model's bf16 loss and gradient in 6 + 4 per residual block kernels (modern_fused.h),
// then StepContext::finish's tensor ops (clipping, update).
class ModernFusedStep : public StepStrategy {
 public:
  // Takes the modern model's bf16 step on CUDA at the kernels' width (msg_dim 96, expansion 2)
  // without dropout or input noise, when the parameters are the model's and the device's shared
  // memory holds a residual block's tile; otherwise returns false with the reason in `why`.
  bool init(StepContext& c, std::string* why) {
    auto no = [&](std::string reason) {
      *why = std::move(reason);
      return false;
    };
    const ModelConfig& mc = c.net.config();
    if (!c.options.bf16) return no("float32 (the modern model's hand-written step is its bf16 path)");
    if (c.cfg.input_noise > 0) return no("input noise");
    if (mc.dropout > 0) return no("dropout");
    if (mc.msg_dim != fused::kModernWidth || mc.msg_dim * mc.expansion != fused::kModernHidden)
      return no(fmt::format("msg_dim {} and expansion {} (the kernels are written for {} and {})", mc.msg_dim,
                            mc.expansion, fused::kModernWidth, fused::kModernHidden / fused::kModernWidth));
    int sms = 0;
    int64_t smem = 0;
    if (!fused::device_limits(&sms, &smem)) return no("no CUDA kernels in this build");
    shape_.batch = static_cast<int>(c.cfg.batch_size), shape_.balls = static_cast<int>(c.traj.size(2));
    shape_.enc_blocks = mc.enc_blocks, shape_.dec_blocks = mc.dec_blocks, shape_.sms = sms, shape_.smem_bytes = smem;
    if (const char* reason = fused::modern_unsupported(shape_)) return no(reason);
    // the optimizer's parameters are the model's own (whose gradients the kernels write)
    const auto named = c.net.named_parameters();
    const auto& params = c.optimizer.params;
    if (named.size() != params.size()) return no("unexpected parameters");
    for (size_t t = 0; t < params.size(); ++t)
      if (!named[t].value().is_same(params[t])) return no(fmt::format("unexpected parameter '{}'", named[t].key()));
    if (const std::string bad = fused::bind_modern_model(c.net, &model_); !bad.empty()) return no(bad);
    batch_ = make_batch(c);
    const int64_t bytes = fused::modern_workspace_bytes(shape_);
    try {
      work_t_ = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kUInt8).device(c.device));
    } catch (const c10::OutOfMemoryError&) {
      return no(fmt::format("its {:.0f} MB of scratch do not fit in the device's memory", bytes / 1e6));
    }
    loss_t_ = torch::zeros({2}, torch::TensorOptions().dtype(torch::kFloat32).device(c.device));
    fused::modern_prepare(shape_, model_, work_t_.data_ptr());
    return true;
  }

  void body(StepContext& c) override {
    torch::NoGradGuard outer;
    fused::launch_modern_loss_grad(batch_, c.step_t.data_ptr<int64_t>(), shape_, model_, work_t_.data_ptr(),
                                   loss_t_.data_ptr<float>(), current_cuda_stream());
    c.finish(loss_t_.select(0, 0));
  }
  bool hand_written() const override { return true; }

 private:
  fused::Batch batch_;
  fused::ModernShape shape_;
  fused::ModernModel model_;
  Tensor work_t_, loss_t_;
};

}  // namespace

std::unique_ptr<StepStrategy> make_libtorch_step() { return std::make_unique<LibtorchStep>(); }

namespace {
// Step `S` bound to the context when it applies; otherwise nullptr with the reason in `why`.
template <class S>
std::unique_ptr<StepStrategy> bound(StepContext& c, std::string* why) {
  auto s = std::make_unique<S>();
  if (!s->init(c, why)) return nullptr;
  return s;
}
}  // namespace

std::unique_ptr<StepStrategy> make_hand_written_step(StepContext& c, std::string* why) {
  if (!c.options.fused) return *why = "not asked for", nullptr;
  if (!c.device.is_cuda()) return *why = "CPU training", nullptr;
  if (c.net.config().walls) return *why = "a walls model (wall blocks as context objects)", nullptr;
  if (c.kind == Kind::Modern) return bound<ModernFusedStep>(c, why);
  if (c.kind != Kind::Classic) return *why = fmt::format("the {} model", kind_name(c.kind)), nullptr;
  return bound<ClassicFusedStep>(c, why);
}

}  // namespace npe::model
