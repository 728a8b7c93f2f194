// SAC, APG with a critic (SHAC) and the hybrid, over VecEnv (agents.h).
#include "npe/control/agents.h"

#include <cmath>

#include <fmt/format.h>

#include "npe/core/error.h"

namespace npe::control {
namespace {

using torch::Tensor;
namespace nn = torch::nn;

// ---- networks ----------------------------------------------------------------------------------

// Linear -> LayerNorm -> ELU per hidden layer, then a linear head.
struct MlpImpl : nn::Cloneable<MlpImpl> {
  int64_t in = 0, out = 0, hidden = 0, layers = 0;
  nn::Sequential net{nullptr};
  MlpImpl(int64_t in_, int64_t out_, int64_t hidden_, int64_t layers_)
      : in(in_), out(out_), hidden(hidden_), layers(layers_) {
    reset();
  }
  void reset() override {
    nn::Sequential s;
    int64_t width = in;
    for (int64_t l = 0; l < layers; ++l) {
      s->push_back(nn::Linear(width, hidden));
      s->push_back(nn::LayerNorm(nn::LayerNormOptions({hidden})));
      s->push_back(nn::ELU());
      width = hidden;
    }
    s->push_back(nn::Linear(width, out));
    net = register_module("net", s);
  }
  Tensor forward(const Tensor& x) { return net->forward(x); }
};
TORCH_MODULE(Mlp);

// The tanh-squashed Gaussian policy: actions in (-1, 1)^2.
struct PolicyImpl : nn::Cloneable<PolicyImpl> {
  int64_t obs_dim, act_dim, hidden, layers;
  Mlp body{nullptr};
  PolicyImpl(int64_t o, int64_t a, int64_t h, int64_t l) : obs_dim(o), act_dim(a), hidden(h), layers(l) { reset(); }
  void reset() override { body = register_module("body", Mlp(obs_dim, 2 * act_dim, hidden, layers)); }
  // The Gaussian before the tanh squash: its mean and log standard deviation [E, act_dim].
  std::pair<Tensor, Tensor> distribution(const Tensor& obs) {
    const auto out = body->forward(obs).chunk(2, 1);
    return {out[0], torch::clamp(out[1], -5.0, 2.0)};
  }
  // Reparameterised sample (or tanh of the mean) and its log-probability [E].
  std::pair<Tensor, Tensor> sample(const Tensor& obs, bool deterministic) {
    const auto [mean, log_std] = distribution(obs);
    if (deterministic) return {torch::tanh(mean), torch::zeros({obs.size(0)}, obs.options())};
    const Tensor eps = torch::randn_like(mean);
    const Tensor u = mean + log_std.exp() * eps;
    // log N(u; mean, std) - sum log(1 - tanh(u)^2)
    const Tensor log_normal = (-0.5 * eps.pow(2) - log_std - 0.5 * std::log(2 * M_PI)).sum(1);
    return {torch::tanh(u), log_normal - log_tanh_jacobian(u)};
  }
  Tensor log_prob(const Tensor& obs, const Tensor& action) {
    const auto [mean, log_std] = distribution(obs);
    const Tensor u = torch::atanh(torch::clamp(action, -1 + 1e-6, 1 - 1e-6));
    const Tensor z = (u - mean) / log_std.exp();
    return (-0.5 * z.pow(2) - log_std - 0.5 * std::log(2 * M_PI)).sum(1) - log_tanh_jacobian(u);
  }
  // sum log(1 - tanh(u)^2), written stably
  static Tensor log_tanh_jacobian(const Tensor& u) {
    return (2 * (std::log(2.0) - u - torch::softplus(-2 * u))).sum(1);
  }
};
TORCH_MODULE(Policy);

// Twin Q networks Q(s, a).
struct TwinQImpl : nn::Cloneable<TwinQImpl> {
  int64_t in, hidden, layers;
  Mlp q1{nullptr}, q2{nullptr};
  TwinQImpl(int64_t i, int64_t h, int64_t l) : in(i), hidden(h), layers(l) { reset(); }
  void reset() override {
    q1 = register_module("q1", Mlp(in, 1, hidden, layers));
    q2 = register_module("q2", Mlp(in, 1, hidden, layers));
  }
  std::pair<Tensor, Tensor> forward(const Tensor& obs, const Tensor& act) {
    const Tensor x = torch::cat({obs, act}, 1);
    return {q1->forward(x).squeeze(1), q2->forward(x).squeeze(1)};
  }
};
TORCH_MODULE(TwinQ);

void polyak(nn::Module& target, nn::Module& source, double tau) {
  torch::NoGradGuard g;
  auto t = target.parameters(), s = source.parameters();
  for (size_t i = 0; i < t.size(); ++i) t[i].mul_(1 - tau).add_(s[i], tau);
}

// Clips the gradients of `params` to `max_norm` without reading the norm back; returns the norm.
Tensor clip_gradients(const std::vector<Tensor>& params, double max_norm) {
  std::vector<Tensor> sq;
  for (const auto& p : params)
    if (p.grad().defined()) sq.push_back(p.grad().pow(2).sum());
  if (sq.empty()) return {};
  const Tensor norm = torch::stack(sq).sum().sqrt();
  const Tensor scale = torch::clamp_max(max_norm / (norm + 1e-6), 1.0);
  for (const auto& p : params)
    if (p.grad().defined()) p.grad().mul_(scale);
  return norm;
}

// ---- replay buffer on the device ---------------------------------------------------------------

struct Replay {
  Tensor obs, act, reward, next_obs, terminal;
  int64_t capacity = 0, size = 0, next = 0;
  void init(int64_t cap, int64_t obs_dim, int64_t act_dim, const torch::TensorOptions& o) {
    capacity = cap;
    obs = torch::zeros({cap, obs_dim}, o);
    next_obs = torch::zeros({cap, obs_dim}, o);
    act = torch::zeros({cap, act_dim}, o);
    reward = torch::zeros({cap}, o);
    terminal = torch::zeros({cap}, o);
  }
  void add(const Tensor& o, const Tensor& a, const Tensor& r, const Tensor& o2, const Tensor& term) {
    const int64_t n = o.size(0);
    const Tensor where = (torch::arange(n, torch::TensorOptions().dtype(torch::kInt64).device(o.device())) + next) %
                         capacity;
    obs.index_copy_(0, where, o.detach());
    act.index_copy_(0, where, a.detach());
    reward.index_copy_(0, where, r.detach());
    next_obs.index_copy_(0, where, o2.detach());
    terminal.index_copy_(0, where, term.detach().to(reward.scalar_type()));
    next = (next + n) % capacity;
    size = std::min(capacity, size + n);
  }
  void save(torch::serialize::OutputArchive& a) const {
    a.write("replay.obs", obs.slice(0, 0, size));
    a.write("replay.act", act.slice(0, 0, size));
    a.write("replay.reward", reward.slice(0, 0, size));
    a.write("replay.next_obs", next_obs.slice(0, 0, size));
    a.write("replay.terminal", terminal.slice(0, 0, size));
    a.write("replay.next", torch::tensor(next));
  }
  void load(torch::serialize::InputArchive& a) {
    Tensor o, ac, r, o2, t, nx;
    a.read("replay.obs", o);
    a.read("replay.act", ac);
    a.read("replay.reward", r);
    a.read("replay.next_obs", o2);
    a.read("replay.terminal", t);
    a.read("replay.next", nx);
    size = o.size(0);
    next = nx.item<int64_t>();
    obs.slice(0, 0, size).copy_(o);
    act.slice(0, 0, size).copy_(ac);
    reward.slice(0, 0, size).copy_(r);
    next_obs.slice(0, 0, size).copy_(o2);
    terminal.slice(0, 0, size).copy_(t);
  }
};

template <class Module>
void save_module(torch::serialize::OutputArchive& a, const std::string& key, Module& m) {
  torch::serialize::OutputArchive sub;
  m->save(sub);
  a.write(key, sub);
}
template <class Module>
void load_module(torch::serialize::InputArchive& a, const std::string& key, Module& m) {
  torch::serialize::InputArchive sub;
  a.read(key, sub);
  m->load(sub);
}
void save_optimizer(torch::serialize::OutputArchive& a, const std::string& key, torch::optim::Optimizer& o) {
  torch::serialize::OutputArchive sub;
  o.save(sub);
  a.write(key, sub);
}
void load_optimizer(torch::serialize::InputArchive& a, const std::string& key, torch::optim::Optimizer& o) {
  torch::serialize::InputArchive sub;
  a.read(key, sub);
  o.load(sub);
}

// ---- the policy every learning agent has --------------------------------------------------------

class PolicyAgent : public Agent {
 public:
  PolicyAgent(const AgentConfig& c, const TaskSpec& task, torch::Device device, torch::ScalarType dtype)
      : c_(c),
        opts_(torch::TensorOptions().dtype(dtype).device(device)),
        policy_(task_obs_dim(task), task_act_dim(task), c.hidden, c.layers) {
    policy_->to(device, dtype);
  }
  Tensor act(const Tensor& obs, bool deterministic) override {
    torch::NoGradGuard g;
    return policy_->sample(obs, deterministic).first;
  }
  std::pair<Tensor, Tensor> sample(const Tensor& obs, bool deterministic) override {
    return policy_->sample(obs, deterministic);
  }
  Tensor log_prob(const Tensor& obs, const Tensor& action) override { return policy_->log_prob(obs, action); }
  std::pair<Tensor, Tensor> distribution(const Tensor& obs) override { return policy_->distribution(obs); }
  std::vector<Tensor> policy_parameters() override { return policy_->parameters(); }

 protected:
  AgentConfig c_;
  torch::TensorOptions opts_;
  Policy policy_;
};

// ---- the soft actor-critic parts shared by SAC and the hybrid ----------------------------------

class SoftActorCritic : public PolicyAgent {
 public:
  SoftActorCritic(const AgentConfig& c, const TaskSpec& task, torch::Device device, torch::ScalarType dtype)
      : PolicyAgent(c, task, device, dtype),
        critic_(task_obs_dim(task) + task_act_dim(task), c.hidden, c.layers),
        target_entropy_(-static_cast<double>(task_act_dim(task))) {
    critic_->to(device, dtype);
    target_ = std::dynamic_pointer_cast<TwinQImpl>(critic_->clone());
    for (auto& p : target_->parameters()) p.set_requires_grad(false);
    log_alpha_ = torch::full({1}, std::log(c.init_alpha), opts_).requires_grad_(true);
    actor_opt_ = std::make_unique<torch::optim::Adam>(policy_->parameters(), torch::optim::AdamOptions(c.actor_lr));
    critic_opt_ = std::make_unique<torch::optim::Adam>(critic_->parameters(), torch::optim::AdamOptions(c.critic_lr));
    alpha_opt_ = std::make_unique<torch::optim::Adam>(std::vector<Tensor>{log_alpha_},
                                                      torch::optim::AdamOptions(c.alpha_lr));
    replay_.init(c.replay_capacity, task_obs_dim(task), task_act_dim(task), opts_);
  }


  void save(torch::serialize::OutputArchive& a) override {
    save_module(a, "policy", policy_);
    save_module(a, "critic", critic_);
    save_module(a, "target", target_);
    a.write("log_alpha", log_alpha_.detach());
    save_optimizer(a, "actor_opt", *actor_opt_);
    save_optimizer(a, "critic_opt", *critic_opt_);
    save_optimizer(a, "alpha_opt", *alpha_opt_);
    a.write("steps", torch::tensor(steps_));
    if (last_obs_.defined()) a.write("last_obs", last_obs_);
    replay_.save(a);
  }
  void load(torch::serialize::InputArchive& a) override {
    load_module(a, "policy", policy_);
    load_module(a, "critic", critic_);
    load_module(a, "target", target_);
    Tensor la, st;
    a.read("log_alpha", la);
    {
      torch::NoGradGuard g;
      log_alpha_.copy_(la);
    }
    load_optimizer(a, "actor_opt", *actor_opt_);
    load_optimizer(a, "critic_opt", *critic_opt_);
    load_optimizer(a, "alpha_opt", *alpha_opt_);
    a.read("steps", st);
    steps_ = st.item<int64_t>();
    Tensor lo;
    if (a.try_read("last_obs", lo)) last_obs_ = lo.to(opts_.device());
    replay_.load(a);
  }

 protected:
  Tensor alpha() const { return log_alpha_.detach().exp(); }

  // One critic update from the replay buffer; returns its loss.
  Tensor update_critic() {
    const Tensor idx = torch::randint(replay_.size, {c_.batch_size},
                                      torch::TensorOptions().dtype(torch::kInt64).device(opts_.device()));
    const Tensor o = replay_.obs.index_select(0, idx), a = replay_.act.index_select(0, idx),
                 r = replay_.reward.index_select(0, idx), o2 = replay_.next_obs.index_select(0, idx),
                 term = replay_.terminal.index_select(0, idx);
    Tensor y;
    {
      torch::NoGradGuard g;
      auto [a2, logp2] = policy_->sample(o2, false);
      auto [q1t, q2t] = target_->forward(o2, a2);
      y = r + c_.gamma * (1 - term) * (torch::min(q1t, q2t) - alpha() * logp2);
    }
    auto [q1, q2] = critic_->forward(o, a);
    const Tensor loss = (q1 - y).pow(2).mean() + (q2 - y).pow(2).mean();
    critic_opt_->zero_grad();
    loss.backward();
    clip_gradients(critic_->parameters(), c_.max_grad_norm);
    critic_opt_->step();
    polyak(*target_, *critic_, c_.tau);
    return loss.detach();
  }

  // The entropy temperature's update from log-probabilities of fresh actions.
  void update_alpha(const Tensor& logp) {
    const Tensor loss = -(log_alpha_ * (logp.detach() + target_entropy_)).mean();
    alpha_opt_->zero_grad();
    loss.backward();
    alpha_opt_->step();
  }

  // Soft value of observations under the current policy: min Q(s, a') - alpha log pi(a'|s),
  // differentiable through s and a' (the critic's parameters are not updated by it).
  Tensor soft_value(const Tensor& obs) {
    auto [a, logp] = policy_->sample(obs, false);
    auto [q1, q2] = critic_->forward(obs, a);
    return torch::min(q1, q2) - alpha() * logp;
  }

  TwinQ critic_, target_{nullptr};
  Tensor log_alpha_;
  double target_entropy_;
  std::unique_ptr<torch::optim::Adam> actor_opt_, critic_opt_, alpha_opt_;
  Replay replay_;
  Tensor last_obs_;  // the environments' current observations
  int64_t steps_ = 0;
};

class Sac : public SoftActorCritic {
 public:
  using SoftActorCritic::SoftActorCritic;
  int steps_per_iteration() const override { return 1; }

  IterationStats iterate(VecEnv& env) override {
    if (!last_obs_.defined()) last_obs_ = env.observe(env.state()).detach();
    Tensor action;
    if (steps_ < c_.warmup_steps)
      action = torch::rand({env.num_envs(), 2}, opts_) * 2 - 1;
    else
      action = act(last_obs_, false);
    StepResult r;
    {
      torch::NoGradGuard g;
      r = env.step(action);
    }
    replay_.add(last_obs_, action, r.reward, r.final_obs, r.terminated);
    last_obs_ = r.obs.detach();
    ++steps_;
    IterationStats s;
    s.reward = r.reward.mean();
    for (int u = 0; u < c_.updates_per_step; ++u) {
      s.critic_loss = update_critic();
      auto [a, logp] = policy_->sample(replay_sample_obs(), false);
      auto [q1, q2] = critic_->forward(last_batch_obs_, a);
      const Tensor loss = (alpha() * logp - torch::min(q1, q2)).mean();
      actor_opt_->zero_grad();
      loss.backward();
      s.grad_norm = clip_gradients(policy_->parameters(), c_.max_grad_norm);
      actor_opt_->step();
      critic_opt_->zero_grad();  // the actor's loss reached the critic's parameters too
      update_alpha(logp);
      s.actor_loss = loss.detach();
    }
    s.alpha = alpha().squeeze();
    return s;
  }

 private:
  Tensor replay_sample_obs() {
    const Tensor idx = torch::randint(replay_.size, {c_.batch_size},
                                      torch::TensorOptions().dtype(torch::kInt64).device(opts_.device()));
    last_batch_obs_ = replay_.obs.index_select(0, idx);
    return last_batch_obs_;
  }
  Tensor last_batch_obs_;
};

// The discounted return of `horizon` differentiable steps from the environments' current state,
// bootstrapped with `value` at truncations and at the horizon (episodes that restart inside the
// window start a new discount). `entropy_alpha` > 0 adds -alpha log pi to every reward.
struct Window {
  Tensor ret;                                         // [E], differentiable
  std::vector<Tensor> obs, reward, done, next_value;  // per step, detached (the critic's targets)
  std::vector<Tensor> logp;
  Tensor last_obs;
};

template <class Sample, class Value, class Record>
Window rollout_window(VecEnv& env, int horizon, double gamma, const Tensor& alpha, Sample&& sample, Value&& value,
                      Record&& record) {
  Window w;
  env.detach();
  Tensor obs = env.observe(env.state());
  Tensor discount = torch::ones({env.num_envs()}, obs.options());
  Tensor ret = torch::zeros({env.num_envs()}, obs.options());
  for (int t = 0; t < horizon; ++t) {
    auto [a, logp] = sample(obs);
    StepResult r = env.step(a);
    record(obs, a, r);
    Tensor reward = r.reward;
    if (alpha.defined()) reward = reward - alpha * logp;
    ret = ret + discount * reward;
    // a truncated episode's last state is worth its value; a terminated one's nothing
    const Tensor trunc = r.truncated.to(obs.scalar_type());
    const Tensor v_final = value(r.final_obs);
    ret = ret + discount * gamma * trunc * v_final;
    const Tensor done = (r.terminated | r.truncated);
    w.obs.push_back(obs.detach());
    w.reward.push_back(r.reward.detach());
    w.done.push_back(done);
    w.next_value.push_back(torch::where(r.terminated, torch::zeros_like(v_final), v_final).detach());
    w.logp.push_back(logp);
    discount = torch::where(done, torch::ones_like(discount), discount * gamma);
    obs = r.obs;
  }
  // the horizon's bootstrap, for episodes still running: one that ended on the last step was
  // bootstrapped (truncated) or ends there (terminated), and the next episode is not its future
  const Tensor running = 1 - w.done.back().to(obs.scalar_type());
  w.ret = ret + discount * running * value(obs);
  w.last_obs = obs.detach();
  return w;
}

// The billiards shot with the alpha-order gradient (AgentConfig::zo_mix): samples shots, steps the
// environments, and returns the surrogate -mean(g . a) whose gradient in the policy's parameters is
// the mixed reward gradient g pushed through the sampled actions a.
struct MixedShot {
  Tensor surrogate, reward, logp, obs, action;
  StepResult step;
};
MixedShot mixed_shot(VecEnv& env, std::unique_ptr<VecEnv>& aux, PolicyImpl& policy, const AgentConfig& c) {
  MixedShot m;
  env.detach();
  m.obs = env.observe(env.state()).detach();
  const Layouts layouts = env.layouts();
  std::tie(m.action, m.logp) = policy.sample(m.obs, false);
  const Tensor a = m.action.detach().requires_grad_(true);
  m.step = env.step(a);
  m.reward = m.step.reward.detach();
  const Tensor g_first = torch::autograd::grad({m.step.reward.sum()}, {a})[0];
  Tensor g = g_first;
  if (c.zo_mix > 0) {
    const int64_t E = env.num_envs(), M = c.zo_samples;
    if (!aux) aux = std::make_unique<VecEnv>(env.task(), E * 2 * M, env.device(), 1, env.dtype());
    torch::NoGradGuard ng;
    const Tensor eps = torch::randn({E, M, 2}, m.obs.options());
    const Tensor base = a.detach().unsqueeze(1);
    const Tensor shots = torch::cat({base + c.zo_sigma * eps, base - c.zo_sigma * eps}, 1).reshape({E * 2 * M, 2});
    aux->reset({layouts.position.repeat_interleave(2 * M, 0), layouts.active.repeat_interleave(2 * M, 0),
                layouts.goal.repeat_interleave(2 * M, 0)});
    const Tensor r = aux->step(shots).reward.view({E, 2, M});  // the environment scales onto the unit disc
    const Tensor g_zero = ((r.select(1, 0) - r.select(1, 1)).unsqueeze(2) * eps).mean(1) / (2 * c.zo_sigma);
    g = c.zo_mix * g_zero + (1 - c.zo_mix) * g_first;
  }
  m.surrogate = -(g.detach() * m.action).sum(1).mean();
  return m;
}

class Hybrid : public SoftActorCritic {
 public:
  using SoftActorCritic::SoftActorCritic;
  int steps_per_iteration() const override { return c_.horizon; }

  int64_t extra_frames() const override { return extra_base_ + (aux_ ? aux_->frames() : 0); }

  IterationStats iterate(VecEnv& env) override {
    IterationStats s;
    if (env.task().kind == TaskKind::kBilliards && c_.zo_mix > 0) {
      MixedShot m = mixed_shot(env, aux_, *policy_, c_);
      replay_.add(m.obs, m.action, m.reward, m.step.final_obs, m.step.terminated);
      ++steps_;
      const Tensor loss = m.surrogate + (alpha() * m.logp).mean();
      actor_opt_->zero_grad();
      loss.backward();
      s.grad_norm = clip_gradients(policy_->parameters(), c_.max_grad_norm);
      actor_opt_->step();
      update_alpha(m.logp);
      for (int u = 0; u < c_.updates_per_step; ++u) s.critic_loss = update_critic();
      s.actor_loss = loss.detach();
      s.reward = m.reward.mean();
      s.alpha = alpha().squeeze();
      return s;
    }
    const int horizon = env.task().kind == TaskKind::kBilliards ? 1 : c_.horizon;
    Window w = rollout_window(
        env, horizon, c_.gamma, alpha(), [&](const Tensor& o) { return policy_->sample(o, false); },
        [&](const Tensor& o) { return soft_value(o); },
        [&](const Tensor& o, const Tensor& a, const StepResult& r) {
      replay_.add(o, a, r.reward, r.final_obs, r.terminated);
        });
    steps_ += horizon;
    const Tensor loss = -w.ret.mean() / horizon;
    actor_opt_->zero_grad();
    loss.backward();
    s.grad_norm = clip_gradients(policy_->parameters(), c_.max_grad_norm);
    actor_opt_->step();
    critic_opt_->zero_grad();  // the bootstrap reached the critic's parameters; they learn from the replay
    update_alpha(torch::cat(w.logp));
    for (int u = 0; u < c_.updates_per_step * horizon; ++u) s.critic_loss = update_critic();
    s.actor_loss = loss.detach();
    s.reward = torch::stack(w.reward).mean();
    s.alpha = alpha().squeeze();
    return s;
  }
  void save(torch::serialize::OutputArchive& a) override {
    SoftActorCritic::save(a);
    a.write("extra_frames", torch::tensor(extra_frames()));
  }
  void load(torch::serialize::InputArchive& a) override {
    SoftActorCritic::load(a);
    Tensor x;
    if (a.try_read("extra_frames", x)) extra_base_ = x.item<int64_t>();
  }

 private:
  std::unique_ptr<VecEnv> aux_;  // the zeroth-order shots' environments
  int64_t extra_base_ = 0;
};

class Apg : public PolicyAgent {
 public:
  Apg(const AgentConfig& c, const TaskSpec& task, torch::Device device, torch::ScalarType dtype)
      : PolicyAgent(c, task, device, dtype), value_(task_obs_dim(task), 1, c.hidden, c.layers) {
    value_->to(device, dtype);
    target_ = std::dynamic_pointer_cast<MlpImpl>(value_->clone());
    for (auto& p : target_->parameters()) p.set_requires_grad(false);
    actor_opt_ = std::make_unique<torch::optim::Adam>(policy_->parameters(), torch::optim::AdamOptions(c.actor_lr));
    critic_opt_ = std::make_unique<torch::optim::Adam>(value_->parameters(), torch::optim::AdamOptions(c.critic_lr));
  }
  int steps_per_iteration() const override { return c_.horizon; }
  int64_t extra_frames() const override { return extra_base_ + (aux_ ? aux_->frames() : 0); }

  IterationStats iterate(VecEnv& env) override {
    IterationStats s;
    if (env.task().kind == TaskKind::kBilliards && c_.zo_mix > 0) {
      MixedShot m = mixed_shot(env, aux_, *policy_, c_);
      actor_opt_->zero_grad();
      m.surrogate.backward();
      s.grad_norm = clip_gradients(policy_->parameters(), c_.max_grad_norm);
      actor_opt_->step();
      s.actor_loss = m.surrogate.detach();
      s.reward = m.reward.mean();
      s.alpha = torch::zeros({}, opts_);
      return s;
    }
    const int horizon = env.task().kind == TaskKind::kBilliards ? 1 : c_.horizon;
    // the value of states reached: the target critic, differentiable through the state
    auto value = [&](const Tensor& o) { return target_->forward(o).squeeze(1); };
    Window w = rollout_window(
        env, horizon, c_.gamma, Tensor(), [&](const Tensor& o) { return policy_->sample(o, false); }, value,
        [](const Tensor&, const Tensor&, const StepResult&) {});
    const Tensor loss = -w.ret.mean() / horizon;
    actor_opt_->zero_grad();
    loss.backward();
    s.grad_norm = clip_gradients(policy_->parameters(), c_.max_grad_norm);
    actor_opt_->step();
    // the critic: TD(lambda) targets of the window, from the target critic's values
    std::vector<Tensor> targets(horizon);
    {
      torch::NoGradGuard g;
      // G_t = r_t + gamma ((1 - lambda) v_{t+1} + lambda G_{t+1}); at an episode's end or the
      // window's last step G_t = r_t + gamma v_{t+1} (v of a terminal state is 0)
      Tensor next_return;
      for (int t = horizon - 1; t >= 0; --t) {
        const Tensor& v = w.next_value[t];
        const Tensor boot = t == horizon - 1
                                ? v
                                : torch::where(w.done[t], v, (1 - c_.lambda) * v + c_.lambda * next_return);
        targets[t] = w.reward[t] + c_.gamma * boot;
        next_return = targets[t];
      }
    }
    const Tensor obs = torch::cat(w.obs), target = torch::cat(targets);
    const int64_t n = obs.size(0), batch = std::max<int64_t>(1, n / 4);
    for (int it = 0; it < c_.critic_iterations; ++it) {
      const Tensor idx = torch::randint(n, {batch}, torch::TensorOptions().dtype(torch::kInt64).device(obs.device()));
      const Tensor l =
          (value_->forward(obs.index_select(0, idx)).squeeze(1) - target.index_select(0, idx)).pow(2).mean();
      critic_opt_->zero_grad();
      l.backward();
      clip_gradients(value_->parameters(), c_.max_grad_norm);
      critic_opt_->step();
      s.critic_loss = l.detach();
    }
    polyak(*target_, *value_, c_.value_tau);
    s.actor_loss = loss.detach();
    s.reward = torch::stack(w.reward).mean();
    s.alpha = torch::zeros({}, opts_);
    return s;
  }

  void save(torch::serialize::OutputArchive& a) override {
    save_module(a, "policy", policy_);
    save_module(a, "value", value_);
    save_module(a, "target", target_);
    save_optimizer(a, "actor_opt", *actor_opt_);
    save_optimizer(a, "critic_opt", *critic_opt_);
    a.write("extra_frames", torch::tensor(extra_frames()));
  }
  void load(torch::serialize::InputArchive& a) override {
    load_module(a, "policy", policy_);
    load_module(a, "value", value_);
    load_module(a, "target", target_);
    load_optimizer(a, "actor_opt", *actor_opt_);
    load_optimizer(a, "critic_opt", *critic_opt_);
    Tensor x;
    if (a.try_read("extra_frames", x)) extra_base_ = x.item<int64_t>();
  }

 private:
  std::unique_ptr<VecEnv> aux_;  // the zeroth-order shots' environments
  int64_t extra_base_ = 0;
  Mlp value_, target_{nullptr};
  std::unique_ptr<torch::optim::Adam> actor_opt_, critic_opt_;
};

}  // namespace

Algo parse_algo(const std::string& name) {
  if (name == "sac") return Algo::kSac;
  if (name == "apg") return Algo::kApg;
  if (name == "hybrid") return Algo::kHybrid;
  if (name == "cem") return Algo::kCem;
  throw FieldError("algo", fmt::format(": expected sac, apg, hybrid or cem, found '{}'", name));
}

const char* algo_name(Algo a) {
  switch (a) {
    case Algo::kSac: return "sac";
    case Algo::kApg: return "apg";
    case Algo::kHybrid: return "hybrid";
    case Algo::kCem: return "cem";
  }
  return "?";
}

void validate_agent(const AgentConfig& c) {
  auto range = [](const char* field, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi))
      throw FieldError(field, fmt::format(": expected a value in [{}, {}], found {}", lo, hi, v));
  };
  range("hidden", c.hidden, 1, 8192);
  range("layers", c.layers, 1, 16);
  range("actor_lr", c.actor_lr, 0, 1);
  range("critic_lr", c.critic_lr, 0, 1);
  range("alpha_lr", c.alpha_lr, 0, 1);
  range("init_alpha", c.init_alpha, 1e-8, 100);
  range("gamma", c.gamma, 0, 1);
  range("tau", c.tau, 0, 1);
  range("batch_size", static_cast<double>(c.batch_size), 1, 1 << 24);
  range("replay_capacity", static_cast<double>(c.replay_capacity), 1, 1e9);
  range("updates_per_step", c.updates_per_step, 0, 1000);
  range("warmup_steps", static_cast<double>(c.warmup_steps), 0, 1e12);
  range("horizon", c.horizon, 1, 10000);
  range("lambda", c.lambda, 0, 1);
  range("value_tau", c.value_tau, 0, 1);
  range("critic_iterations", c.critic_iterations, 0, 10000);
  range("max_grad_norm", c.max_grad_norm, 1e-12, 1e12);
  range("zo_mix", c.zo_mix, 0, 1);
  range("zo_samples", c.zo_samples, 1, 1024);
  range("zo_sigma", c.zo_sigma, 1e-6, 2);
  range("cem_population", c.cem_population, 2, 1 << 20);
  range("cem_elites", c.cem_elites, 1, c.cem_population);
  range("cem_init_std", c.cem_init_std, 1e-6, 10);
}

std::unique_ptr<Agent> make_agent(Algo algo, const AgentConfig& c, const TaskSpec& task, torch::Device device,
                                  torch::ScalarType dtype) {
  validate_agent(c);
  switch (algo) {
    case Algo::kSac: return std::make_unique<Sac>(c, task, device, dtype);
    case Algo::kApg: return std::make_unique<Apg>(c, task, device, dtype);
    case Algo::kHybrid: return std::make_unique<Hybrid>(c, task, device, dtype);
    case Algo::kCem: break;
  }
  throw FieldError("algo", ": cem is a planner without an agent (cem.h)");
}

}  // namespace npe::control
