#include "device_optimizer.h"

#include <cmath>
#include <type_traits>

#include <fmt/format.h>

#include "npe/core/error.h"

namespace npe::model {
using torch::Tensor;

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

DeviceOptimizer::DeviceOptimizer(torch::optim::Optimizer& opt, const torch::Device& device) : opt_(opt) {
  if (opt.param_groups().size() != 1) throw Error("train step: expected an optimizer with one parameter group");
  auto& group = opt.param_groups().front();
  auto& options = group.options();
  if (auto* o = dynamic_cast<torch::optim::AdamWOptions*>(&options)) {
    kind = UpdateKind::AdamW;
    beta1 = std::get<0>(o->betas()), beta2 = std::get<1>(o->betas()), eps = o->eps(), weight_decay = o->weight_decay();
    if (o->amsgrad()) throw Error("train step: AdamW with amsgrad is not supported");
  } else if (auto* a = dynamic_cast<torch::optim::AdamOptions*>(&options)) {
    kind = UpdateKind::Adam;
    beta1 = std::get<0>(a->betas()), beta2 = std::get<1>(a->betas()), eps = a->eps(), weight_decay = a->weight_decay();
    if (a->amsgrad()) throw Error("train step: Adam with amsgrad is not supported");
  } else if (auto* r = dynamic_cast<torch::optim::RMSpropOptions*>(&options)) {
    kind = UpdateKind::RMSprop;
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
    switch (kind) {
      case UpdateKind::AdamW: {
        auto& st = param_state<torch::optim::AdamWParamState>(opt, p);
        moment1.push_back(st.exp_avg()), moment2.push_back(st.exp_avg_sq()), s = st.step();
        break;
      }
      case UpdateKind::Adam: {
        auto& st = param_state<torch::optim::AdamParamState>(opt, p);
        moment1.push_back(st.exp_avg()), moment2.push_back(st.exp_avg_sq()), s = st.step();
        break;
      }
      case UpdateKind::RMSprop: {
        auto& st = param_state<torch::optim::RMSpropParamState>(opt, p);
        moment1.push_back(st.square_avg()), s = st.step();
        break;
      }
    }
    if (state_step >= 0 && s != state_step)
      throw Error(fmt::format("train step: the optimizer's parameters have taken different numbers of steps ({} "
                              "and {})",
                              state_step, s));
    state_step = s;
  }
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  steps = torch::full({}, static_cast<double>(std::max<int64_t>(0, state_step)), f32);
}

void DeviceOptimizer::clip(double max_norm) {
  const Tensor total = torch::stack(at::_foreach_norm(grads, 2)).norm();
  at::_foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp_max(1.0));
}

void DeviceOptimizer::update(const Tensor& lr) {
  steps.add_(1);
  const std::vector<Tensor> step_counts(params.size(), steps);
  switch (kind) {
    case UpdateKind::AdamW:
      at::_fused_adamw_(params, grads, moment1, moment2, {}, step_counts, lr, beta1, beta2, weight_decay, eps, false,
                        false);
      break;
    case UpdateKind::Adam:
      at::_fused_adam_(params, grads, moment1, moment2, {}, step_counts, lr, beta1, beta2, weight_decay, eps, false,
                       false);
      break;
    case UpdateKind::RMSprop: {
      std::vector<Tensor> g = grads;
      if (weight_decay != 0) g = at::_foreach_add(grads, params, weight_decay);
      at::_foreach_mul_(moment1, alpha);
      at::_foreach_addcmul_(moment1, g, g, 1 - alpha);
      std::vector<Tensor> denom = at::_foreach_sqrt(moment1);
      at::_foreach_add_(denom, eps);
      std::vector<Tensor> delta = at::_foreach_div(g, denom);
      at::_foreach_mul_(delta, lr);
      at::_foreach_sub_(params, delta);
      break;
    }
  }
}

void DeviceOptimizer::sync() {
  const auto n = static_cast<int64_t>(std::llround(steps.item<double>()));
  for (auto& p : params) {
    switch (kind) {
      case UpdateKind::AdamW: param_state<torch::optim::AdamWParamState>(opt_, p).step(n); break;
      case UpdateKind::Adam: param_state<torch::optim::AdamParamState>(opt_, p).step(n); break;
      case UpdateKind::RMSprop: param_state<torch::optim::RMSpropParamState>(opt_, p).step(n); break;
    }
  }
}

}  // namespace npe::model
