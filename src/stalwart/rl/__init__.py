"""Meta-reinforcement learning: environments where an agent must first learn what to learn.

- ``envs``: the meta-exploration benchmarks of DREAM (Liu, Raghunathan, Liang and Finn,
  "Decoupling Exploration and Exploitation for Meta-Reinforcement Learning without
  Sacrifices", ICML 2021, arXiv 2008.02790) on the Gymnasium 1.x API: distracting bus, map,
  cooking. Each problem is one exploration episode followed by one exploitation episode.

``stalwart.rl.envs`` needs Gymnasium: ``pip install "stalwart[rl]"``.
"""
