#include "npe/model/model.h"

#include <cmath>
#include <type_traits>

#include <fmt/format.h>

#include "npe/core/error.h"
#include "npe/core/json.h"
#include "npe/datagen/dataset.h"

namespace npe::model {
namespace nn = torch::nn;
using torch::Tensor;

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::Classic: return "classic";
    case Kind::Modern: return "modern";
    case Kind::NP: return "np";
    case Kind::LSTM: return "lstm";
    case Kind::GNS: return "gns";
  }
  return "?";
}

Kind kind_from_name(const std::string& s) {
  for (const Kind k : {Kind::Classic, Kind::Modern, Kind::NP, Kind::LSTM, Kind::GNS})
    if (s == kind_name(k)) return k;
  throw Error(
      fmt::format("model kind: expected \"classic\", \"modern\", \"np\", \"lstm\" or \"gns\", found \"{}\"", s));
}

nlohmann::json ModelConfig::to_json() const {
  return {{"kind", kind_name(kind)},  {"neighborhood", neighborhood},
          {"msg_dim", msg_dim},       {"enc_blocks", enc_blocks},
          {"dec_blocks", dec_blocks}, {"expansion", expansion},
          {"dropout", dropout},       {"residual_velocity", residual_velocity},
          {"walls", walls},           {"mp_steps", mp_steps}};
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& source) {
  ModelConfig c;
  if (!j.is_object())
    throw Error(fmt::format("{}: model config expected a JSON object, found {}", source, j.dump().substr(0, 80)));
  auto get = [&](const char* key, auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    const auto v = j.contains(key) ? json_as<T>(j.at(key)) : std::nullopt;
    if (!v)
      throw Error(fmt::format("{}: model config field '{}' is missing or of the wrong type or range (found {})", source,
                              key, j.contains(key) ? j.at(key).dump().substr(0, 80) : "nothing"));
    *out = *v;
  };
  std::string kind;
  get("kind", &kind);
  c.kind = kind_from_name(kind);
  get("neighborhood", &c.neighborhood);
  get("msg_dim", &c.msg_dim);
  get("enc_blocks", &c.enc_blocks);
  get("dec_blocks", &c.dec_blocks);
  get("expansion", &c.expansion);
  get("dropout", &c.dropout);
  // absent in checkpoints written before the option: their modern heads predict v(t+1)
  if (j.contains("residual_velocity")) get("residual_velocity", &c.residual_velocity);
  if (j.contains("walls")) get("walls", &c.walls);           // absent before the walls worlds: no walls
  if (j.contains("mp_steps")) get("mp_steps", &c.mp_steps);  // absent before the GNS
  if (c.msg_dim < 1 || c.enc_blocks < 0 || c.dec_blocks < 0 || c.expansion < 1 || c.mp_steps < 0 ||
      !(c.dropout >= 0 && c.dropout < 1) || !(c.neighborhood > 0) || !std::isfinite(c.neighborhood))
    throw Error(fmt::format("{}: model config out of range: {}", source, j.dump()));
  c.check_size(source);
  return c;
}

void ModelConfig::check_size(const std::string& source) const {
  constexpr int kMaxWidth = 8192, kMaxBlocks = 256, kMaxExpansion = 64;
  constexpr double kMaxParameters = 1 << 30;
  if (kind == Kind::GNS) {
    // per step an edge MLP (3 d x d + 2 d x d) and a node MLP (2 d x d + 2 d x d)
    const double params = 9.0 * (mp_steps + 1) * static_cast<double>(msg_dim) * msg_dim;
    if (msg_dim > kMaxWidth || mp_steps > kMaxBlocks || params > kMaxParameters)
      throw Error(fmt::format("{}: gns model of msg_dim {} and {} message-passing steps would hold about {:.3g} "
                              "parameters; expected msg_dim <= {}, mp_steps <= {} and at most {:.3g} parameters",
                              source, msg_dim, mp_steps, params, kMaxWidth, kMaxBlocks, kMaxParameters));
    return;
  }
  if (kind != Kind::Modern) return;  // the classic model and the baselines have the paper's fixed sizes
  // Weights of the modern model: each residual block holds two width x (width x expansion)
  // matrices; refused before any allocation when a size is beyond what any GPU holds.
  const double params = 2.0 * (enc_blocks + dec_blocks) * static_cast<double>(msg_dim) * msg_dim * expansion;
  if (msg_dim > kMaxWidth || enc_blocks > kMaxBlocks || dec_blocks > kMaxBlocks || expansion > kMaxExpansion ||
      params > kMaxParameters)
    throw Error(fmt::format("{}: modern model of msg_dim {}, {} + {} blocks, expansion {} would hold about {:.3g} "
                            "parameters ({:.3g} GiB of float32 weights, 4x that to train with AdamW); expected "
                            "msg_dim <= {}, blocks <= {}, expansion <= {} and at most {:.3g} parameters",
                            source, msg_dim, enc_blocks, dec_blocks, expansion, params, params * 4 / (1 << 30),
                            kMaxWidth, kMaxBlocks, kMaxExpansion, kMaxParameters));
}

NPEImpl::NPEImpl(const ModelConfig& config) : config_(config) {
  state_mean_ = register_buffer("state_mean", torch::zeros({config.state_dim()}));
  state_std_ = register_buffer("state_std", torch::ones({config.state_dim()}));
  dv_std_ = register_buffer("dv_std", torch::ones({2}));
}

Tensor present_balls(const Tensor& states) { return (states.select(-1, 4) > 0).to(states.dtype()); }

Tensor present_objects(const Tensor& states) {
  if (states.size(-1) != kWallStateDim) return present_balls(states);
  return ((states.select(-1, 4) > 0) | (states.select(-1, 5) > 0.5)).to(states.dtype());
}

Tensor object_states(const Tensor& traj, const Tensor& walls, double radius) {
  TORCH_CHECK(traj.dim() == 4 && traj.size(3) == 5 && walls.dim() == 3 && walls.size(0) == traj.size(0) &&
                  walls.size(1) == kWallObjects && walls.size(2) == 4,
              "object_states expects trajectories [S, T, N, 5] and walls [S, ", kWallObjects, ", 4], got ",
              traj.sizes(), " and ", walls.sizes());
  const int64_t S = traj.size(0), T = traj.size(1), N = traj.size(2);
  const auto o = traj.options();
  // balls: obstacle 0, size 1 radius (absent slots all zero)
  const Tensor present = present_balls(traj).unsqueeze(-1);
  Tensor balls = torch::cat({traj, torch::zeros({S, T, N, 1}, o), present}, -1);
  // blocks: position, velocity and mass 0, obstacle 1, half side in radii (empty rows all zero)
  const Tensor block = (walls.select(-1, 2) > 0).to(o.dtype()).unsqueeze(-1);  // [S, K, 1]
  Tensor blocks = torch::cat(
      {walls.narrow(-1, 0, 2), torch::zeros({S, kWallObjects, 3}, o), block, walls.narrow(-1, 2, 1) / radius}, -1);
  return torch::cat({balls, blocks.unsqueeze(1).expand({S, T, kWallObjects, kWallStateDim})}, 2).contiguous();
}

namespace {
// The trajectories' states as a tensor over their own memory (no copy).
Tensor states_view(const datagen::Trajectories& t) {
  return torch::from_blob(const_cast<float*>(t.data.data()), {t.scenes, t.timesteps, t.num_balls, datagen::kStateDim},
                          torch::kFloat32);
}
}  // namespace

Tensor to_tensor(const datagen::Trajectories& t, const torch::Device& device) {
  return states_view(t).to(device, /*non_blocking=*/false, /*copy=*/true);
}

Tensor object_states(const datagen::Trajectories& t, double radius) {
  if (t.walls.empty()) throw Error("object_states: the trajectories carry no walls (not a walls world)");
  const Tensor walls = torch::from_blob(const_cast<float*>(t.walls.data()),
                                        {t.scenes, datagen::kWallSlots, datagen::kWallDim}, torch::kFloat32);
  return object_states(states_view(t), walls, radius);
}

Tensor model_states(const datagen::Trajectories& split, const datagen::Manifest& manifest,
                    const torch::Device& device) {
  if (manifest.world.walls.empty()) return to_tensor(split, device);
  return object_states(split, manifest.world.radius / manifest.pos_scale()).to(device);
}

Tensor masked_velocity_mse(const Tensor& pred, const Tensor& target, const Tensor& present) {
  auto err = (pred - target).pow(2).sum(-1) * present;  // [B, N]
  return err.sum() / (2 * present.sum()).clamp_min(1);
}

void NPEImpl::fit_normalisation(const Tensor& states, const Tensor& dv) {
  torch::NoGradGuard no_grad;
  auto s = states.reshape({-1, states.size(-1)}).to(torch::kFloat64);
  s = s.index({s.select(1, 4) > 0});  // absent slots (mixed ball counts) are no states
  auto mean = s.mean(0);
  auto std = s.std(0);
  // A constant feature (uniform mass) keeps scale 1 so that it standardises to exactly 0.
  std = torch::where(std > 1e-6, std, torch::ones_like(std));
  auto dstd = dv.reshape({-1, 2}).to(torch::kFloat64).pow(2).mean(0).sqrt();
  dstd = torch::where(dstd > 1e-6, dstd, torch::ones_like(dstd));
  state_mean_.copy_(mean.to(torch::kFloat32));
  state_std_.copy_(std.to(torch::kFloat32));
  dv_std_.copy_(dstd.to(torch::kFloat32));
}

void NPEImpl::fit_normalisation(const Tensor& traj) {
  const int64_t T = traj.size(1);
  auto v = traj.narrow(-1, 2, 2);
  auto dv = (v.narrow(1, 1, T - 1) - v.narrow(1, 0, T - 1)).reshape({-1, 2});
  fit_normalisation(traj, dv.index({traj.narrow(1, 1, T - 1).select(-1, 4).reshape(-1) > 0}));
}

namespace {
// Standardised [s(t-1), s(t)] of every ball, absolute positions: [B, N, 10].
Tensor own_features(const Tensor& prev, const Tensor& cur, const Tensor& mean, const Tensor& std) {
  return torch::cat({(prev - mean) / std, (cur - mean) / std}, -1);
}
// The focus balls of a model's inputs: all N objects, or for a walls model the first N - kWallObjects.
int64_t check_inputs(const ModelConfig& config, const Tensor& prev, const Tensor& cur) {
  const int64_t F = config.state_dim();
  TORCH_CHECK(prev.dim() == 3 && prev.size(2) == F && cur.sizes() == prev.sizes() &&
                  (!config.walls || prev.size(1) > kWallObjects),
              "NPE expects prev and cur of shape [B, N", config.walls ? " + 32 wall slots" : "", ", ", F, "], got ",
              prev.sizes(), " and ", cur.sizes());
  return config.walls ? prev.size(1) - kWallObjects : prev.size(1);
}
// Context index table for `N` focus objects among `M`: row i lists every object j != i in index
// order, entry k being k + (k >= i) ([N, M-1]). Computed without masked_select, whose
// data-dependent shape waits for the device and cannot be captured in a CUDA graph.
Tensor context_index(int64_t N, int64_t M, const torch::Device& device) {
  const auto idx = torch::TensorOptions().dtype(torch::kLong).device(device);
  auto k = torch::arange(std::max<int64_t>(M - 1, 0), idx).unsqueeze(0);
  return k + (k >= torch::arange(N, idx).unsqueeze(1)).to(torch::kLong);
}
// [B, M, F] -> [B, N, M-1, F]: row i holds the objects other than i (context_index).
Tensor gather_context(const Tensor& s, const Tensor& ctx_idx) {
  const int64_t B = s.size(0), N = ctx_idx.size(0), M = s.size(1);
  return s.index_select(1, ctx_idx.reshape(-1)).reshape({B, N, M - 1, s.size(2)});
}
// 1 where the context object is present and its centre at t is within `r` of the focus ball's,
// else 0: [B, N, M-1].
Tensor neighbourhood_mask(const Tensor& cur, const Tensor& ctx_idx, double r) {
  auto c = gather_context(cur, ctx_idx);
  auto d = c.narrow(-1, 0, 2) - cur.narrow(-1, 0, 2).narrow(1, 0, ctx_idx.size(0)).unsqueeze(2);
  return (d.pow(2).sum(-1) <= r * r).to(cur.dtype()) * present_objects(c);
}
}  // namespace

NPEImpl::Pairs NPEImpl::make_pairs(const Tensor& prev, const Tensor& cur) const {
  const int64_t N = check_inputs(config_, prev, cur), M = cur.size(1), F = config_.state_dim();
  Pairs p;
  p.focus = own_features(prev, cur, state_mean_, state_std_).narrow(1, 0, N);  // [B, N, 2F]

  auto ctx_idx = context_index(N, M, cur.device());
  auto relative = [&](const Tensor& s) {  // context state with position relative to the focus
    auto c = gather_context(s, ctx_idx);
    auto rel_pos = (c.narrow(-1, 0, 2) - s.narrow(1, 0, N).narrow(-1, 0, 2).unsqueeze(2)) / state_std_.narrow(0, 0, 2);
    auto rest = (c.narrow(-1, 2, F - 2) - state_mean_.narrow(0, 2, F - 2)) / state_std_.narrow(0, 2, F - 2);
    return torch::cat({rel_pos, rest}, -1);
  };
  p.context = torch::cat({relative(prev), relative(cur)}, -1);  // [B, N, M-1, 2F]
  p.mask = neighbourhood_mask(cur, ctx_idx, config_.neighborhood);
  return p;
}

Tensor NPEImpl::pad_objects(const Tensor& v, const Tensor& cur) const {
  if (!config_.walls) return v;
  return torch::cat({v, torch::zeros({cur.size(0), kWallObjects, 2}, v.options())}, 1);
}

namespace {
nn::Sequential relu_mlp(int64_t in, int64_t width, int layers) {
  nn::Sequential s;
  for (int i = 0; i < layers; ++i) {
    s->push_back(nn::Linear(i == 0 ? in : width, width));
    s->push_back(nn::ReLU());
  }
  return s;
}

// Pre-LayerNorm residual MLP block: x + Dropout(W2 GELU(W1 LN(x))).
struct ResidualBlockImpl : nn::Module {
  ResidualBlockImpl(int64_t dim, int64_t hidden, double dropout)
      : norm(register_module("norm", nn::LayerNorm(nn::LayerNormOptions({dim})))),
        fc1(register_module("fc1", nn::Linear(dim, hidden))),
        fc2(register_module("fc2", nn::Linear(hidden, dim))),
        drop(register_module("drop", nn::Dropout(dropout))) {}
  Tensor forward(const Tensor& x) { return x + drop(fc2(torch::gelu(fc1(norm(x))))); }
  nn::LayerNorm norm;
  nn::Linear fc1, fc2;
  nn::Dropout drop;
};
TORCH_MODULE(ResidualBlock);
}  // namespace

ClassicNPEImpl::ClassicNPEImpl(const ModelConfig& c) : NPEImpl(c) {
  const int64_t f2 = 2 * c.state_dim();
  focus_in_ = register_module("focus_in", nn::Linear(f2, 25));
  context_in_ = register_module("context_in", nn::Linear(f2, 25));
  encoder_ = register_module("encoder", relu_mlp(50, 50, 5));
  decoder_ = register_module("decoder", relu_mlp(50 + f2, 50, 4));
  decoder_->push_back(nn::Linear(50, 2));
}

Tensor ClassicNPEImpl::forward(const Tensor& prev, const Tensor& cur) {
  Pairs p = make_pairs(prev, cur);
  const int64_t N = p.focus.size(1), M = cur.size(1);
  auto f = torch::relu(focus_in_(p.focus)).unsqueeze(2).expand({-1, -1, std::max<int64_t>(M - 1, 0), -1});
  auto c = torch::relu(context_in_(p.context));
  auto e = encoder_->forward(torch::cat({f, c}, -1));  // [B, N, M-1, 50]
  auto sum = (e * p.mask.unsqueeze(-1)).sum(2);        // [B, N, 50]
  auto dv = decoder_->forward(torch::cat({sum, p.focus}, -1)) * dv_std_;
  return pad_objects(cur.narrow(1, 0, N).narrow(-1, 2, 2) + dv, cur);
}

ModernNPEImpl::ModernNPEImpl(const ModelConfig& c) : NPEImpl(c) {
  const int64_t d = c.msg_dim, h = c.msg_dim * c.expansion;
  const int64_t f2 = 2 * c.state_dim();
  enc_in_ = register_module("enc_in", nn::Linear(2 * f2, d));
  dec_in_ = register_module("dec_in", nn::Linear(d + f2, d));
  enc_blocks_ = register_module("enc_blocks", nn::ModuleList());
  dec_blocks_ = register_module("dec_blocks", nn::ModuleList());
  for (int i = 0; i < c.enc_blocks; ++i) enc_blocks_->push_back(ResidualBlock(d, h, c.dropout));
  for (int i = 0; i < c.dec_blocks; ++i) dec_blocks_->push_back(ResidualBlock(d, h, c.dropout));
  final_norm_ = register_module("final_norm", nn::LayerNorm(nn::LayerNormOptions({d})));
  head_ = register_module("head", nn::Linear(d, 2));
}

Tensor ModernNPEImpl::forward(const Tensor& prev, const Tensor& cur) {
  Pairs p = make_pairs(prev, cur);
  const int64_t N = p.focus.size(1), M = cur.size(1);
  auto f = p.focus.unsqueeze(2).expand({-1, -1, std::max<int64_t>(M - 1, 0), -1});
  auto x = torch::gelu(enc_in_(torch::cat({f, p.context}, -1)));  // [B, N, M-1, d]
  for (auto& b : *enc_blocks_) x = b->as<ResidualBlock>()->forward(x);
  auto y = torch::gelu(dec_in_(torch::cat({(x * p.mask.unsqueeze(-1)).sum(2), p.focus}, -1)));
  for (auto& b : *dec_blocks_) y = b->as<ResidualBlock>()->forward(y);
  auto out = head_(final_norm_(y));
  // dv in units of the velocity's standard deviation: O(1) for collisions (in units of dv_std, the
  // RMS change over all windows, about 20x larger)
  if (config_.residual_velocity)
    return pad_objects(cur.narrow(1, 0, N).narrow(-1, 2, 2) + out * state_std_.narrow(0, 2, 2), cur);
  return pad_objects(out * state_std_.narrow(0, 2, 2) + state_mean_.narrow(0, 2, 2), cur);  // standardised v(t+1)
}

NoPairwiseImpl::NoPairwiseImpl(const ModelConfig& c) : NPEImpl(c) {
  const int64_t f2 = 2 * c.state_dim();
  context_in_ = register_module("context_in", nn::Linear(f2, 25));
  encoder_ = register_module("encoder", relu_mlp(25, 50, 5));
  decoder_ = register_module("decoder", relu_mlp(50 + f2, 50, 4));
  decoder_->push_back(nn::Linear(50, 2));
}

Tensor NoPairwiseImpl::forward(const Tensor& prev, const Tensor& cur) {
  const int64_t N = check_inputs(config_, prev, cur);
  const auto ctx_idx = context_index(N, cur.size(1), cur.device());
  auto own = own_features(prev, cur, state_mean_, state_std_);                         // [B, M, 2F]
  auto e = encoder_->forward(torch::relu(context_in_(gather_context(own, ctx_idx))));  // [B, N, M-1, 50]
  auto sum = (e * neighbourhood_mask(cur, ctx_idx, config_.neighborhood).unsqueeze(-1)).sum(2);
  auto dv = decoder_->forward(torch::cat({sum, own.narrow(1, 0, N)}, -1)) * dv_std_;
  return pad_objects(cur.narrow(1, 0, N).narrow(-1, 2, 2) + dv, cur);
}

LstmImpl::LstmImpl(const ModelConfig& c) : NPEImpl(c) {
  lstm_ = register_module("lstm", nn::LSTM(nn::LSTMOptions(2 * c.state_dim(), 100).num_layers(3).batch_first(true)));
  head_ = register_module("head", nn::Linear(100, 2));
}

Tensor LstmImpl::forward(const Tensor& prev, const Tensor& cur) {
  const int64_t N = check_inputs(config_, prev, cur), B = cur.size(0), M = cur.size(1);
  const auto idx = torch::TensorOptions().dtype(torch::kLong).device(cur.device());
  // sequence of focus f: the context objects in decreasing index order, then f ([N, M]); absent
  // slots (mixed ball counts, empty wall rows) are fed as zero vectors
  auto order = torch::cat({context_index(N, M, cur.device()).flip(1), torch::arange(N, idx).unsqueeze(1)}, 1);
  auto own = own_features(prev, cur, state_mean_, state_std_) * present_objects(cur).unsqueeze(-1);
  auto seq = own.index_select(1, order.reshape(-1)).reshape({B * N, M, own.size(-1)});
  auto out = std::get<0>(lstm_->forward(seq));  // [B*N, M, 100]
  auto dv = head_(out.select(1, M - 1)).reshape({B, N, 2}) * dv_std_;
  return pad_objects(cur.narrow(1, 0, N).narrow(-1, 2, 2) + dv, cur);
}

namespace {
// Two hidden layers of `width` ReLU units, then `out` (and a LayerNorm when `norm`).
nn::Sequential gns_mlp(int64_t in, int64_t width, int64_t out, bool norm) {
  nn::Sequential s(nn::Linear(in, width), nn::ReLU(), nn::Linear(width, width), nn::ReLU(), nn::Linear(width, out));
  if (norm) s->push_back(nn::LayerNorm(nn::LayerNormOptions({out})));
  return s;
}
}  // namespace

GnsImpl::GnsImpl(const ModelConfig& c) : NPEImpl(c) {
  const int64_t d = c.msg_dim, f2 = 2 * c.state_dim();
  node_encoder_ = register_module("node_encoder", gns_mlp(f2, d, d, true));
  edge_encoder_ = register_module("edge_encoder", gns_mlp(3, d, d, true));
  edge_updates_ = register_module("edge_updates", nn::ModuleList());
  node_updates_ = register_module("node_updates", nn::ModuleList());
  for (int i = 0; i < c.mp_steps; ++i) {
    edge_updates_->push_back(gns_mlp(3 * d, d, d, true));
    node_updates_->push_back(gns_mlp(2 * d, d, d, true));
  }
  decoder_ = register_module("decoder", gns_mlp(d, d, 2, false));
}

Tensor GnsImpl::forward(const Tensor& prev, const Tensor& cur) {
  const int64_t N = check_inputs(config_, prev, cur), M = cur.size(1);
  const auto ctx_idx = context_index(N, M, cur.device());
  const Tensor mask = neighbourhood_mask(cur, ctx_idx, config_.neighborhood).unsqueeze(-1);  // [B, N, M-1, 1]
  // edges sender -> focus ball: displacement and distance at t
  const Tensor d = gather_context(cur, ctx_idx).narrow(-1, 0, 2) - cur.narrow(1, 0, N).narrow(-1, 0, 2).unsqueeze(2);
  const Tensor dist = d.pow(2).sum(-1, true).sqrt() / config_.neighborhood;
  Tensor e = edge_encoder_->forward(torch::cat({d / state_std_.narrow(0, 0, 2), dist}, -1));  // [B, N, M-1, d]
  Tensor h = node_encoder_->forward(own_features(prev, cur, state_mean_, state_std_));        // [B, M, d]
  Tensor balls = h.narrow(1, 0, N);
  const Tensor fixed = h.narrow(1, N, M - N);  // wall blocks: senders only
  for (int i = 0; i < config_.mp_steps; ++i) {
    const Tensor all = torch::cat({balls, fixed}, 1);
    const Tensor recv = balls.unsqueeze(2).expand({-1, -1, std::max<int64_t>(M - 1, 0), -1});
    e = e + edge_updates_[i]->as<nn::Sequential>()->forward(torch::cat({e, recv, gather_context(all, ctx_idx)}, -1));
    balls = balls + node_updates_[i]->as<nn::Sequential>()->forward(torch::cat({balls, (e * mask).sum(2)}, -1));
  }
  const Tensor dv = decoder_->forward(balls) * dv_std_;
  return pad_objects(cur.narrow(1, 0, N).narrow(-1, 2, 2) + dv, cur);
}

std::shared_ptr<NPEImpl> make_model(const ModelConfig& c) {
  switch (c.kind) {
    case Kind::Classic: return std::make_shared<ClassicNPEImpl>(c);
    case Kind::Modern: return std::make_shared<ModernNPEImpl>(c);
    case Kind::NP: return std::make_shared<NoPairwiseImpl>(c);
    case Kind::LSTM: return std::make_shared<LstmImpl>(c);
    case Kind::GNS: return std::make_shared<GnsImpl>(c);
  }
  throw Error("make_model: unknown model kind");
}

int64_t parameter_count(const NPEImpl& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::function<void(const float*, const float*, int64_t, int64_t, float*)> make_predictor(
    std::shared_ptr<NPEImpl> net, torch::Device device, int64_t batch, const float* walls, double radius) {
  if (net->config().walls && (!walls || !(radius > 0)))
    throw Error("a walls model predicts with its scenes' walls: the dataset has none (not a walls world)");
  return
      [net, device, batch, walls, radius](const float* prev, const float* cur, int64_t scenes, int64_t n, float* out) {
    torch::NoGradGuard no_grad;
    net->eval();
    for (int64_t s = 0; s < scenes; s += batch) {
      const int64_t b = std::min(batch, scenes - s);
      auto p = torch::from_blob(const_cast<float*>(prev) + s * n * 5, {b, n, 5}).to(device);
      auto c = torch::from_blob(const_cast<float*>(cur) + s * n * 5, {b, n, 5}).to(device);
      if (net->config().walls) {  // the balls and their scenes' blocks as objects
        const auto w =
            torch::from_blob(const_cast<float*>(walls) + s * kWallObjects * 4, {b, kWallObjects, 4}).to(device);
        p = object_states(p.unsqueeze(1), w, radius).squeeze(1);
        c = object_states(c.unsqueeze(1), w, radius).squeeze(1);
      }
      auto v = net->forward(p, c).narrow(1, 0, n).to(torch::kCPU).contiguous();
      std::copy(v.data_ptr<float>(), v.data_ptr<float>() + b * n * 2, out + s * n * 2);
    }
      };
}

std::function<void(const float*, const float*, int64_t, int64_t, float*)> make_predictor(
    std::shared_ptr<NPEImpl> net, torch::Device device, int64_t batch, const datagen::Trajectories& split,
    const datagen::Manifest& manifest) {
  const bool walls = !manifest.world.walls.empty();  // as model_states decides
  if (walls && split.walls.empty()) throw Error("make_predictor: a walls world's split carries no walls");
  return make_predictor(std::move(net), device, batch, walls ? split.walls.data() : nullptr,
                        manifest.world.radius / manifest.pos_scale());
}

}  // namespace npe::model
