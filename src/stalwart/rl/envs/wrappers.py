"""One Gymnasium episode per problem, for learners that reset their memory at every episode end.

E-RL² (Duan et al. 2016, RL² with the exploration episode's rewards zeroed; the end-to-end
baseline of DREAM, arXiv 2008.02790) runs one recurrent policy across a problem's exploration
and exploitation episodes. A ``MetaEnv`` ends a Gymnasium episode between the two, which is
what DREAM needs; recurrent learners written for ordinary environments (sb3-contrib's
RecurrentPPO, TorchRL's collectors) reset their hidden state there and would forget what they
explored. ``MetaEpisode`` joins the two into one Gymnasium episode: when the exploration
episode ends, the same ``step`` returns the first observation of the exploitation episode of
the same problem, with ``terminated = truncated = False``, so only the end of the
exploitation episode ends the joined one. The observation's ``phase`` field still tells the
policy which episode it is in.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stalwart.rl.envs.meta import EXPLORE, MetaEnv, gymnasium


class MetaEpisode(gymnasium.Wrapper[np.ndarray, np.int64, np.ndarray, np.int64]):
    """Present a problem's exploration and exploitation episodes as one episode.

    At the switch, ``info`` is that of the exploitation episode's reset, plus
    ``"exploration_final_observation"``: the exploration episode's last observation, which the
    joined stream would otherwise skip (the reward of that last exploring step is 0).
    """

    def __init__(self, env: gymnasium.Env[np.ndarray, np.int64]) -> None:
        if not isinstance(env.unwrapped, MetaEnv):
            raise TypeError(f"MetaEpisode wraps a MetaEnv; got {type(env.unwrapped).__name__}")
        super().__init__(env)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One step; the end of the exploration episode moves on to the exploitation one."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and self.env.unwrapped.phase == EXPLORE:
            final = obs
            obs, info = self.env.reset()  # the next reset is the same problem's exploitation
            info = {**info, "exploration_final_observation": final}
            return obs, reward, False, False, info
        return obs, reward, terminated, truncated, info
