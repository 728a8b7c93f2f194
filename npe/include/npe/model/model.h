// npe/model/model.h: the Neural Physics Engine (Chang, Ullman, Torralba, Tenenbaum, ICLR 2017,
// arXiv:1612.00341), classic and modern variants, in libtorch.
//
// Both models map two frames of a scene to the next velocity of every ball, each ball in turn
// being the "focus" and the others its "context":
//   prev, cur: [B, N, 5] states at t-1 and t (x, y, vx, vy, mass; normalised as in the dataset)
//   returns    [B, N, 2] predicted (vx, vy) at t+1, same units as the dataset
// Pair inputs: focus = [s_f(t-1), s_f(t)] (10 features); context = the same for ball c with its
// position taken relative to the focus ball's position at the same time (translation-invariant
// pair inputs). Pairs whose centres are farther apart at t than `neighborhood` (in normalised
// position units; 3.5 radii by default) are masked out before the sum over context balls (the
// paper's neighbourhood mask, section 2). Inputs are standardised by buffers fitted on the
// training split, so a checkpoint carries the normalisation its model expects.
// Mixed ball counts: a ball slot whose mass is 0 is absent (npe/datagen/dataset.h). Absent balls
// are never context (the mask below), their predictions are meaningless and left out of losses
// and metrics, and the models do not depend on how many absent slots pad a scene.
// Walls worlds (ModelConfig::walls; Chang et al. 2017, section 4): every object carries a type and
// a size, and the wall blocks are objects of the scene. A walls model's states are
// [B, N + kWallObjects, kWallStateDim]: the N balls first, then the scene's wall blocks
// (object_states), each [x, y, vx, vy, mass, obstacle, size] with obstacle 0 for a ball and 1 for
// a block, size a ball's radius or a block's half side in ball radii, a block's velocity and mass
// 0. Blocks are context objects of the balls within the neighbourhood, never focus objects: the
// models return [B, N + kWallObjects, 2] with the blocks' velocities 0, so that a rollout leaves
// them in place and the losses (over objects of positive mass) leave them out.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace npe::datagen {
struct Trajectories;
struct Manifest;
}  // namespace npe::datagen

namespace npe::model {

// Walls models' objects: the wall slots after the balls (datagen::kWallSlots) and the features.
constexpr int64_t kWallObjects = 32;
constexpr int64_t kWallStateDim = 7;  // x, y, vx, vy, mass, obstacle, size

// classic and modern: the NPE; np and lstm: the paper's baselines (section 3.2, figure 2); gns: a
// graph network simulator (Sanchez-Gonzalez et al. 2020), beyond the paper.
enum class Kind { Classic, Modern, NP, LSTM, GNS };
std::string kind_name(Kind k);              // "classic" / "modern" / "np" / "lstm" / "gns"
Kind kind_from_name(const std::string& s);  // throws npe::Error

struct ModelConfig {
  Kind kind = Kind::Classic;
  double neighborhood = 0.2625;  // mask distance, normalised position units (3.5 * 60 / 800)
  // modern only
  int msg_dim = 96;
  int enc_blocks = 3;
  int dec_blocks = 3;
  int expansion = 2;
  double dropout = 0.0;
  // modern: true, the head predicts the velocity change dv (in units of the velocity's standard
  // deviation) and the model returns v(t) + dv, as the classic NPE does (npe-train
  // --residual_velocity); false (default), it predicts the standardised v(t+1) directly. On the
  // 4-ball world at 20 M samples (H100) the residual head's validation MSE was 7.6e-4 against
  // 6.8e-4 for the direct head (README, npe-train); it starts at the constant-velocity loss.
  bool residual_velocity = false;
  // A walls model (the module comment): objects of kWallStateDim features, wall blocks as context.
  bool walls = false;
  // gns: message-passing steps of the processor (its latent width is msg_dim)
  int mp_steps = 5;
  // Features per object: 5 (x, y, vx, vy, mass), or kWallStateDim for a walls model.
  int64_t state_dim() const { return walls ? kWallStateDim : 5; }

  nlohmann::json to_json() const;
  // Throws npe::Error naming `source` when a field is missing, mistyped or out of range.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  // Throws npe::Error naming `source`, with the parameter count and memory the sizes would take,
  // when a modern model's sizes are absurd (msg_dim > 8192, blocks > 256, expansion > 64, or more
  // than 2^30 parameters).
  void check_size(const std::string& source) const;
};

// The common interface; see the file comment for shapes.
class NPEImpl : public torch::nn::Module {
 public:
  explicit NPEImpl(const ModelConfig& config);
  virtual torch::Tensor forward(const torch::Tensor& prev, const torch::Tensor& cur) = 0;
  const ModelConfig& config() const { return config_; }
  // The standardisation fitted by fit_normalisation: [state_dim()] per state feature.
  const torch::Tensor& state_std() const { return state_std_; }

  // Fits the input standardisation to training states [*, F] (rows with mass 0, absent balls and
  // wall blocks, left out) and velocity changes [*, 2] (of present balls only).
  void fit_normalisation(const torch::Tensor& states, const torch::Tensor& dv);
  // The same, fitted to trajectories [S, T, N, F]: their present balls' states and frame-to-frame
  // velocity changes.
  void fit_normalisation(const torch::Tensor& trajectories);

  // Focus features [B, N, 2F] of the N focus balls (a walls model: the first M - kWallObjects
  // objects), context features [B, N, M-1, 2F] of every other object (standardised) and the
  // neighbourhood mask [B, N, M-1] (1 = present and within `neighborhood`, 0 = masked out).
  struct Pairs {
    torch::Tensor focus, context, mask;
  };
  Pairs make_pairs(const torch::Tensor& prev, const torch::Tensor& cur) const;
  // The focus balls' predicted velocities [B, N, 2] padded to every object [B, M, 2] (the wall
  // blocks' rows 0).
  torch::Tensor pad_objects(const torch::Tensor& v, const torch::Tensor& cur) const;

 protected:
  ModelConfig config_;
  torch::Tensor state_mean_, state_std_;  // [state_dim()] buffers
  torch::Tensor dv_std_;                  // [2] buffer: scale of velocity changes
};

// Classic NPE (paper, section 2 and appendix): per pair, focus and context each through a
// 25-unit ReLU layer, concatenated, then 5 layers of 50 ReLU units; encodings summed over masked
// context balls; decoder [sum, focus] through 4 layers of 50 ReLU units and a linear output to the
// velocity change dv; prediction v(t+1) = v(t) + dv.
class ClassicNPEImpl : public NPEImpl {
 public:
  explicit ClassicNPEImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& prev, const torch::Tensor& cur) override;

 private:
  torch::nn::Linear focus_in_{nullptr}, context_in_{nullptr};
  torch::nn::Sequential encoder_, decoder_;
};

// Modern NPE: input projection + GELU, pre-LayerNorm residual MLP blocks (hidden msg_dim x
// expansion, GELU, dropout) in the pair encoder and the decoder, final LayerNorm and a linear
// head that predicts the velocity change (ModelConfig::residual_velocity; or v(t+1) directly).
class ModernNPEImpl : public NPEImpl {
 public:
  explicit ModernNPEImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& prev, const torch::Tensor& cur) override;

 private:
  torch::nn::Linear enc_in_{nullptr}, dec_in_{nullptr}, head_{nullptr};
  torch::nn::ModuleList enc_blocks_, dec_blocks_;
  torch::nn::LayerNorm final_norm_{nullptr};
};

// NP baseline (paper, section 3.2: "no pairwise"): the classic NPE with the pairwise layer taken
// out. Each context ball is encoded alone, from its own standardised states [s_c(t-1), s_c(t)]
// (absolute positions: nothing of the focus ball enters the encoder), through a 25-unit ReLU
// layer and 5 layers of 50 ReLU units; the encodings of the balls within the neighbourhood are
// summed and decoded with the focus ball's states as in the classic model (4 x 50 ReLU, linear
// to dv). It tells what the pairwise factorisation adds.
class NoPairwiseImpl : public NPEImpl {
 public:
  explicit NoPairwiseImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& prev, const torch::Tensor& cur) override;

 private:
  torch::nn::Linear context_in_{nullptr};
  torch::nn::Sequential encoder_, decoder_;
};

// LSTM baseline (paper, section 3.2): for each focus ball, the balls' standardised states
// [s(t-1), s(t)] (10 features, absolute positions) are read as a sequence, the context balls in
// decreasing index order and the focus ball last, by a 3-layer LSTM of 100 units; its last output
// goes through a linear layer to dv. No neighbourhood mask; not invariant to the context order.
// Absent balls (mixed counts: the last slots) are fed first, as zero vectors.
class LstmImpl : public NPEImpl {
 public:
  explicit LstmImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& prev, const torch::Tensor& cur) override;

 private:
  torch::nn::LSTM lstm_{nullptr};
  torch::nn::Linear head_{nullptr};
};

// Graph network simulator baseline (Sanchez-Gonzalez et al. 2020; Battaglia et al. 2018),
// encode-process-decode on the scene's objects:
// - encode: every object's standardised [s(t-1), s(t)] (2F, absolute position included: the box's
//   walls) through an MLP to a latent of msg_dim; every edge from an object to a focus ball
//   within the neighbourhood, [displacement / position std, distance / neighbourhood], through an
//   MLP;
// - process: mp_steps rounds of message passing with residual updates, each edge
//   e += MLP([e, h_receiver, h_sender]) and each focus ball h += MLP([h, sum of its masked edges]);
//   wall blocks send but do not receive (their latents stay their encodings);
// - decode: an MLP from each focus ball's latent to the velocity change dv (scaled by the
//   training split's RMS change), v(t+1) = v(t) + dv.
// Every MLP has two hidden layers of msg_dim ReLU units; the encoders' and the processor's end in
// a LayerNorm (the decoder's does not). Trained with the modern recipe.
class GnsImpl : public NPEImpl {
 public:
  explicit GnsImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& prev, const torch::Tensor& cur) override;

 private:
  torch::nn::Sequential node_encoder_, edge_encoder_, decoder_;
  torch::nn::ModuleList edge_updates_, node_updates_;
};

std::shared_ptr<NPEImpl> make_model(const ModelConfig& config);

// Which balls of states [..., N, F] are present: 1 where the mass is > 0, 0 for the absent slots
// of mixed-count datasets and for wall blocks ([..., N], the states' dtype).
torch::Tensor present_balls(const torch::Tensor& states);
// Which objects are present: the present balls, and for walls states (F = kWallStateDim) the wall
// blocks ([..., M], the states' dtype).
torch::Tensor present_objects(const torch::Tensor& states);

// Trajectories as a tensor [scenes, T, N, 5] float32 on `device` (a copy).
torch::Tensor to_tensor(const datagen::Trajectories& traj, const torch::Device& device);

// A walls world's object states [S, T, N + kWallObjects, kWallStateDim] (the module comment) from
// its trajectories (with their walls, datagen::Trajectories::walls) and the ball radius over the
// position scale. Throws npe::Error when the trajectories carry no walls.
torch::Tensor object_states(const datagen::Trajectories& trajectories, double radius);
// The same from tensors: trajectories [S, T, N, 5] and walls [S, kWallObjects, 4] (record_walls
// rows), on their device.
torch::Tensor object_states(const torch::Tensor& trajectories, const torch::Tensor& walls, double radius);
// What a model reads from a split of the dataset `manifest` describes, on `device`: to_tensor's
// states, or for a walls world (manifest.world.walls) object_states. Throws npe::Error when a walls
// world's split carries no walls.
torch::Tensor model_states(const datagen::Trajectories& split, const datagen::Manifest& manifest,
                           const torch::Device& device);
// Mean squared error over the present balls and both velocity components: pred and target
// [B, N, 2], present [B, N] (0/1). Equals torch::mse_loss when every ball is present.
torch::Tensor masked_velocity_mse(const torch::Tensor& pred, const torch::Tensor& target, const torch::Tensor& present);

int64_t parameter_count(const NPEImpl& model);

// Wraps a model as a rollout predictor (npe/rollout/rollout.h's Predictor signature):
// prev, cur [scenes, N, 5] host float32 -> v_next [scenes, N, 2] host float32. Runs on `device`
// in eval mode without gradients, `batch` scenes at a time. A walls model needs the walls of the
// scenes the rollout runs, in its order: `walls` [scenes, kWallObjects, 4] (the dataset's rows,
// datagen::Trajectories::walls) and `radius` (the ball radius over the position scale); it sees
// them with the balls as object_states does. Throws npe::Error when a walls model has no walls.
std::function<void(const float*, const float*, int64_t, int64_t, float*)> make_predictor(std::shared_ptr<NPEImpl> net,
                                                                                         torch::Device device,
                                                                                         int64_t batch = 4096,
                                                                                         const float* walls = nullptr,
                                                                                         double radius = 0);
// The same for rollouts of the scenes of `split` (a split of the dataset `manifest` describes), in
// its order: a walls world's predictor reads the split's walls, so `split` must outlive it.
std::function<void(const float*, const float*, int64_t, int64_t, float*)> make_predictor(
    std::shared_ptr<NPEImpl> net, torch::Device device, int64_t batch, const datagen::Trajectories& split,
    const datagen::Manifest& manifest);

}  // namespace npe::model
