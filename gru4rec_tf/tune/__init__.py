"""Hyperparameter search: the search space and the one tuner behind ``gru4rec tune`` and the TFX Tuner."""
