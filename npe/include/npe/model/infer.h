// npe/model/infer.h: inferring a hidden property with a trained NPE, as in the paper's mass
// inference (Chang et al. 2017, section 4.3, "Inferring latent properties"): the focus ball's
// mass is unknown; the model is run under each mass hypothesis and the hypothesis whose
// predictions fit the observed trajectory best is chosen.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "npe/model/model.h"

namespace npe::model {

// traj: [S, T, N, 5] observed trajectories (normalised dataset states, on the model's device).
// For every scene s, focus ball f and hypothesis h, the mass feature of ball f is set to
// hypotheses[h] in every frame, the model predicts the velocities of frame t+1 from frames
// (t-1, t) for t = 1..T-2 (one step, observed inputs); the squared error of the predicted
// velocities against the observation, summed over balls and both components and averaged over
// the windows, is returned: [S, N, H] float64 on the CPU.
// The inferred mass of ball f is the hypothesis of least error. Runs without gradients, `batch`
// windows per forward pass.
torch::Tensor mass_hypothesis_errors(NPEImpl& net, const torch::Tensor& traj, const std::vector<double>& hypotheses,
                                     int64_t batch = 65536);

}  // namespace npe::model
