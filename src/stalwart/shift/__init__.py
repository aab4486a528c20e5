"""Predicting accuracy under distribution shift: accuracy and agreement on the line.

Accuracy on the line is arXiv 2107.04649 (Miller et al.); agreement on the line is arXiv
2206.13089 (Baek et al.).

- ``scaling``: probit / logit / linear axes.
- ``outputs``: what a model leaves on an evaluation set for the label-free predictors.
"""
