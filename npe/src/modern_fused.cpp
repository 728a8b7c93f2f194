// The modern NPE's hand-written step (modern_fused.h): binding a ModernNPEImpl's parameters and
// gradients to the kernels' pointers.
#include <cstdint>
#include <vector>

#include <fmt/format.h>

#include "modern_fused.h"
#include "npe/model/model.h"

namespace npe::model::fused {

std::string bind_modern_model(NPEImpl& net, ModernModel* model) {
  const ModelConfig& mc = net.config();
  if (mc.kind != Kind::Modern) return fmt::format("the {} model", kind_name(mc.kind));
  if (mc.enc_blocks > kModernMaxBlocks || mc.dec_blocks > kModernMaxBlocks)
    return fmt::format("{} + {} blocks (at most {} each)", mc.enc_blocks, mc.dec_blocks, kModernMaxBlocks);
  auto named = net.named_parameters();
  if (named.size() != 8 + 6 * static_cast<size_t>(mc.enc_blocks + mc.dec_blocks)) return "unexpected parameters";
  std::string bad;
  const int64_t d = kModernWidth, h = kModernHidden;
  // the parameter `name` of shape `sizes`: its data and its gradient
  auto get = [&](const std::string& name, std::vector<int64_t> sizes, const float** p, float** g) {
    torch::Tensor* t = named.find(name);
    if (!t || t->sizes() != c10::IntArrayRef(sizes) || t->scalar_type() != torch::kFloat32 || !t->is_contiguous() ||
        reinterpret_cast<uintptr_t>(t->data_ptr()) % 16 != 0 || !t->grad().defined() || !t->grad().is_contiguous() ||
        t->grad().scalar_type() != torch::kFloat32) {
      if (bad.empty()) bad = fmt::format("unexpected parameter '{}'", name);
      return;
    }
    *p = t->data_ptr<float>();
    *g = t->mutable_grad().data_ptr<float>();
  };
  ModernModel& m = *model;
  m = ModernModel{};
  m.enc_blocks = mc.enc_blocks, m.dec_blocks = mc.dec_blocks, m.residual_velocity = mc.residual_velocity;
  get("enc_in.weight", {d, 2 * kFeat}, &m.enc_in_w, &m.g_enc_in_w);
  get("enc_in.bias", {d}, &m.enc_in_b, &m.g_enc_in_b);
  get("dec_in.weight", {d, d + kFeat}, &m.dec_in_w, &m.g_dec_in_w);
  get("dec_in.bias", {d}, &m.dec_in_b, &m.g_dec_in_b);
  auto blocks = [&](const char* prefix, int count, ModernBlock* b) {
    for (int k = 0; k < count; ++k) {
      const std::string at = fmt::format("{}.{}.", prefix, k);
      get(at + "norm.weight", {d}, &b[k].ln_w, &b[k].g_ln_w);
      get(at + "norm.bias", {d}, &b[k].ln_b, &b[k].g_ln_b);
      get(at + "fc1.weight", {h, d}, &b[k].w1, &b[k].g_w1);
      get(at + "fc1.bias", {h}, &b[k].b1, &b[k].g_b1);
      get(at + "fc2.weight", {d, h}, &b[k].w2, &b[k].g_w2);
      get(at + "fc2.bias", {d}, &b[k].b2, &b[k].g_b2);
    }
  };
  blocks("enc_blocks", mc.enc_blocks, m.enc);
  blocks("dec_blocks", mc.dec_blocks, m.dec);
  get("final_norm.weight", {d}, &m.norm_w, &m.g_norm_w);
  get("final_norm.bias", {d}, &m.norm_b, &m.g_norm_b);
  get("head.weight", {2, d}, &m.head_w, &m.g_head_w);
  get("head.bias", {2}, &m.head_b, &m.g_head_b);
  return bad;
}

}  // namespace npe::model::fused
