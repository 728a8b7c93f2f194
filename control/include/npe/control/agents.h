// npe/control/agents.h: the learning algorithms of npe-control (docs/control.md), in libtorch,
// on the environments' device, reading nothing back from it inside an iteration.
//
//   SAC     soft actor-critic: Haarnoja et al. 2018 (arXiv:1801.01290) with the automatic
//           entropy tuning of Haarnoja et al. 2019 (arXiv:1812.05905): twin Q networks, target
//           networks (Polyak averaging), a tanh-squashed Gaussian policy, a replay buffer on the
//           device filled by all environments at once.
//   APG     analytic policy gradients with a critic, as SHAC (Xu et al. 2022, arXiv:2204.07137):
//           the return of `horizon` simulated steps of every environment back-propagated through
//           the simulator into the policy, the value of the last state from a learned critic V
//           (trained on TD(lambda) targets of the same rollouts, with a target network).
//   Hybrid  SAC's twin critics and entropy tuning, with the actor trained on the soft return of
//           `horizon` simulated steps back-propagated through the simulator and bootstrapped with
//           the soft value min Q - alpha log pi (the maximum-entropy analytic policy update of
//           SAPO, Xing et al. 2024, arXiv:2412.06560); the critics learn from the replay buffer.
//   CEM     the cross-entropy method (Rubinstein 1999) as a per-layout planner of the billiards
//           shot with the simulator as its model: no policy, no learning across layouts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "npe/control/env.h"

namespace npe::control {

enum class Algo { kSac, kApg, kHybrid, kCem };
// "sac", "apg", "hybrid", "cem"; throws npe::FieldError on the field "algo".
Algo parse_algo(const std::string& name);
const char* algo_name(Algo algo);

struct AgentConfig {
  int hidden = 256;                   // units per hidden layer (Linear, LayerNorm, ELU)
  int layers = 2;                     // hidden layers of every network
  double actor_lr = 3e-4;             // Adam
  double critic_lr = 3e-4;            // Adam
  double alpha_lr = 3e-4;             // SAC, hybrid: Adam on log alpha
  double init_alpha = 0.1;            // SAC, hybrid: initial entropy temperature
  double gamma = 0.99;                // discount per step
  double tau = 0.005;                 // SAC, hybrid: Polyak factor of the target critics per update
  int64_t batch_size = 4096;          // SAC, hybrid: transitions per critic update
  int64_t replay_capacity = 1000000;  // SAC, hybrid: transitions kept
  int updates_per_step = 2;           // SAC, hybrid: gradient updates per environment step (per iteration)
  int64_t warmup_steps = 1;           // SAC, hybrid: environment steps of uniform random actions first
  int horizon = 16;                   // APG, hybrid: steps back-propagated per actor update (billiards: 1)
  double lambda = 0.95;               // APG: TD(lambda) of the critic's targets
  double value_tau = 0.2;             // APG: target critic <- (1 - value_tau) target + value_tau critic
  int critic_iterations = 8;          // APG: critic minibatch updates per iteration
  double max_grad_norm = 1.0;         // actor and critic gradients are clipped to this norm
  // APG, hybrid, billiards: the remedy for gradients that contacts make useless (Suh et al. 2022,
  // arXiv:2202.00817, the alpha-order estimator): the shot's reward gradient is mixed as
  // zo_mix * (zeroth-order estimate) + (1 - zo_mix) * (the simulator's gradient); the zeroth-order
  // estimate from zo_samples antithetic pairs of shots a +- zo_sigma eps, eps ~ N(0, I) (their
  // frames count towards the budget). 0: the simulator's gradient alone.
  double zo_mix = 0;
  int zo_samples = 4;
  double zo_sigma = 0.1;
  int cem_population = 64;    // CEM: candidate shots per layout and iteration
  int cem_elites = 8;         // CEM: best candidates refitted
  double cem_init_std = 0.6;  // CEM: first standard deviation of the action
};
// Throws npe::FieldError naming the field, the expected range and the value found.
void validate_agent(const AgentConfig& config);

// Scalars of the last iteration, as device tensors (read at logging time, not per iteration).
struct IterationStats {
  torch::Tensor actor_loss, critic_loss, alpha, grad_norm, reward;  // reward: mean per step
};

class Agent {
 public:
  virtual ~Agent() = default;
  // One iteration: SAC, one environment step of every environment then updates_per_step
  // updates; APG and hybrid, `horizon` steps back-propagated then the updates. Environment
  // steps taken: steps_per_iteration().
  virtual IterationStats iterate(VecEnv& env) = 0;
  virtual int steps_per_iteration() const = 0;
  // Actions [E, 2] for observations [E, obs_dim] (deterministic: tanh of the mean), no gradient.
  virtual torch::Tensor act(const torch::Tensor& obs, bool deterministic) = 0;
  // The policy's parameters (diagnostics: gradients of a return).
  virtual std::vector<torch::Tensor> policy_parameters() = 0;
  // Differentiable actions and log-probabilities for observations (reparameterised).
  virtual std::pair<torch::Tensor, torch::Tensor> sample(const torch::Tensor& obs, bool deterministic) = 0;
  // log pi(action | obs) [E] of given actions in (-1, 1), differentiable in the parameters. The
  // pre-squash value is recovered as atanh of the action clamped to 1 - 1e-6: inexact for |u|
  // above about 7.25 in any dtype; distribution() has no such limit.
  virtual torch::Tensor log_prob(const torch::Tensor& obs, const torch::Tensor& action) = 0;
  // The policy's Gaussian before the tanh squash (actions = tanh(u), u ~ N(mean, exp(log_std)^2)):
  // {mean, log_std}, each [E, act_dim], log_std clamped to [-5, 2]; differentiable in the parameters.
  virtual std::pair<torch::Tensor, torch::Tensor> distribution(const torch::Tensor& obs) = 0;
  // Environment frames the agent simulated beyond the environments' own (zeroth-order shots).
  virtual int64_t extra_frames() const { return 0; }
  // Networks, optimisers and the agent's own state (replay buffer included).
  virtual void save(torch::serialize::OutputArchive& archive) = 0;
  virtual void load(torch::serialize::InputArchive& archive) = 0;
};

// A learning agent for `task` (SAC, APG or hybrid; CEM has none: see cem.h). Networks are drawn
// from torch's global generator (torch::manual_seed before).
std::unique_ptr<Agent> make_agent(Algo algo, const AgentConfig& config, const TaskSpec& task, torch::Device device,
                                  torch::ScalarType dtype);

}  // namespace npe::control
