#include "npe/model/infer.h"

namespace npe::model {

torch::Tensor mass_hypothesis_errors(NPEImpl& net, const torch::Tensor& traj, const std::vector<double>& hypotheses,
                                     int64_t batch) {
  torch::NoGradGuard no_grad;
  const bool was_training = net.is_training();
  net.eval();
  const int64_t S = traj.size(0), T = traj.size(1), N = traj.size(2), H = static_cast<int64_t>(hypotheses.size());
  torch::Tensor out = torch::zeros({S, N, H}, torch::kFloat64);
  const torch::Tensor next_v = traj.narrow(1, 2, T - 2).narrow(-1, 2, 2).reshape({S * (T - 2), N, 2});
  for (int64_t f = 0; f < N; ++f)
    for (int64_t h = 0; h < H; ++h) {
      torch::Tensor x = traj.clone();
      x.select(2, f).select(-1, 4).fill_(hypotheses[h]);
      const torch::Tensor prev = x.narrow(1, 0, T - 2).reshape({S * (T - 2), N, 5});
      const torch::Tensor cur = x.narrow(1, 1, T - 2).reshape({S * (T - 2), N, 5});
      std::vector<torch::Tensor> err;
      for (int64_t i = 0; i < prev.size(0); i += batch) {
        const int64_t n = std::min(batch, prev.size(0) - i);
        const torch::Tensor c = cur.narrow(0, i, n);
        err.push_back(
            ((net.forward(prev.narrow(0, i, n), c) - next_v.narrow(0, i, n)).pow(2).sum(2) * present_balls(c)).sum(1));
      }
      out.select(1, f).select(1, h).copy_(torch::cat(err).view({S, T - 2}).mean(1).to(torch::kCPU, torch::kFloat64));
    }
  if (was_training) net.train();
  return out;
}

}  // namespace npe::model
