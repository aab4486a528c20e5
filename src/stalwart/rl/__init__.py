"""Meta-reinforcement learning: environments where an agent must first learn what to learn.

- ``envs``: the meta-exploration benchmarks of DREAM (Liu, Raghunathan, Liang and Finn,
  "Decoupling Exploration and Exploitation for Meta-Reinforcement Learning without
  Sacrifices", ICML 2021, arXiv 2008.02790) on the Gymnasium 1.x API: distracting bus, map,
  cooking. Each problem is one exploration episode followed by one exploitation episode.

- ``loop.train``: meta-train DREAM (``dream``) or E-RL² (``erl2``) on a benchmark and get the
  learning curve on held-out problems; checkpoints resume exactly. The parts: ``replay``
  (episode replay), ``networks`` (recurrent Q-network), ``dqn`` (double DQN), ``rollout``
  (playing problems in lockstep), ``dream`` and ``erl2`` (the learners), ``evaluate``
  (held-out returns, oracle and random references), ``information`` (the exact value of
  knowing the problem in a bus city), ``config`` (the strict run config).

``stalwart.rl.envs`` needs Gymnasium: ``pip install "stalwart[rl]"``. The learners need torch;
importing ``stalwart.rl`` or ``stalwart.rl.envs`` does not load it.
"""
