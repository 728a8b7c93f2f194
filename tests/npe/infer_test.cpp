// The NPE mass-hypothesis test (npe/src/infer.cpp).
#include "npe/model/infer.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace npe::model {
namespace {

// A stand-in model whose prediction error grows with the distance of each ball's mass input from
// that ball's true mass, which the test hides in the x feature (x = m_true / 100):
// v(t+1) = v(t) + 0.01 (m_input - 100 x) per ball. On constant velocities the hypothesis test
// must then pick each focus ball's true mass.
class MassSensitive : public NPEImpl {
 public:
  MassSensitive() : NPEImpl(ModelConfig{}) {}
  torch::Tensor forward(const torch::Tensor&, const torch::Tensor& cur) override {
    seen_eval_ = seen_eval_ || !is_training();
    const auto dm = (cur.select(-1, 4) - 100 * cur.select(-1, 0)).unsqueeze(-1);
    return cur.narrow(-1, 2, 2) + 0.01 * dm;
  }
  bool seen_eval_ = false;
};

TEST(MassHypotheses, PickTheTrueMassOfEveryFocusBall) {
  torch::manual_seed(test::fresh_seed());
  const int64_t S = 5, T = 7, N = 3;
  const std::vector<double> choices{1, 5, 25};
  const torch::Tensor idx = torch::randint(0, 3, {S, N});
  const torch::Tensor truth_mass =
      torch::tensor(choices).to(torch::kFloat32).index_select(0, idx.view(-1)).view({S, N});
  // constant random velocities; masses as given (the test must overwrite the focus ball's only)
  torch::Tensor traj = torch::rand({S, T, N, 5});
  traj.narrow(-1, 2, 2).copy_(traj.narrow(-1, 2, 2).select(1, 0).unsqueeze(1).expand({S, T, N, 2}));
  traj.select(-1, 4).copy_(truth_mass.unsqueeze(1).expand({S, T, N}));
  traj.select(-1, 0).copy_(truth_mass.unsqueeze(1).expand({S, T, N}) / 100);
  MassSensitive net;
  net.train();
  const torch::Tensor err = mass_hypothesis_errors(net, traj, choices, /*batch=*/4);  // several batches
  ASSERT_EQ(err.sizes(), (std::vector<int64_t>{S, N, 3}));
  EXPECT_TRUE(torch::equal(err.argmin(-1), idx));
  // error of hypothesis h for focus f: 0.01^2 (m_h - m_f)^2 for each of 2 components of ball f
  for (int64_t s = 0; s < S; ++s)
    for (int64_t f = 0; f < N; ++f)
      for (int64_t h = 0; h < 3; ++h)
        EXPECT_NEAR(err[s][f][h].item<double>(), 2e-4 * std::pow(choices[h] - truth_mass[s][f].item<double>(), 2),
                    1e-6);
  EXPECT_TRUE(net.seen_eval_) << "the model runs in eval mode";
  EXPECT_TRUE(net.is_training()) << "and is given back in training mode";
}

}  // namespace
}  // namespace npe::model
