"""Control environments of npe's ball worlds (docs/control.md) from Python: npe/control's batched
environments, stepped on the CPU or the GPU through the differentiable simulator, with Gymnasium's
vector-environment conventions (same-step autoreset)."""
import json
import numbers

import torch

from . import _ops


class VecEnv:
    """`num_envs` environments of `task` ("billiards", "herding", "reach" or a task file).

    reset() -> obs [E, obs_dim]
    step(action [E, 2] in [-1, 1]) -> (obs, reward, terminated, truncated, info): obs [E, obs_dim]
        (where an episode ended: the next episode's first observation), reward [E], terminated
        and truncated [E] bool, info a dict with "success" [E] bool, "final_obs" [E, obs_dim] and
        "final_state" [E, bodies, 4] (px, px/s), what the step reached before the reset.
    When the action requires grad, obs and reward are differentiable with respect to it and,
    through the carried state, to earlier actions; detach() cuts that chain.
    Errors: ValueError / TypeError naming the argument.
    """

    def __init__(self, task, num_envs, device="cpu", seed=0, dtype=torch.float32):
        if not isinstance(task, str):
            raise TypeError(f"npe.control.VecEnv: task: expected a name or a task file path, found {type(task).__name__}")
        for name, value in (("num_envs", num_envs), ("seed", seed)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise TypeError(f"npe.control.VecEnv: {name}: expected an int, found {type(value).__name__}")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"npe.control.VecEnv: dtype: expected torch.float32 or torch.float64, found {dtype}")
        self._env = torch.classes.npe.VecEnv(task, int(num_envs), str(device), int(seed),
                                             "float64" if dtype == torch.float64 else "float32")
        self.num_envs = int(num_envs)
        self.task = json.loads(self._env.task())
        self.obs_dim = self._env.obs_dim()
        self.action_dim = 2
        self.device = torch.device(device)
        self.dtype = dtype

    def reset(self):
        return self._env.reset()

    def step(self, action):
        if not isinstance(action, torch.Tensor):
            raise TypeError(f"npe.control.VecEnv.step: action: expected a tensor [{self.num_envs}, 2], "
                            f"found {type(action).__name__}")
        obs, reward, terminated, truncated, success, final_obs, final_state = self._env.step(action)
        return obs, reward, terminated, truncated, {"success": success, "final_obs": final_obs,
                                                    "final_state": final_state}

    def detach(self):
        self._env.detach()

    @property
    def state(self):
        """The dynamic state [E, bodies, 4] (px, px/s)."""
        return self._env.state()

    @property
    def frames(self):
        """Environment frames simulated so far, every environment's summed."""
        return self._env.frames()
