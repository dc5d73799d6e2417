"""Options of training and evaluation: their one definition (defaults, help texts, choices, validation), no TensorFlow.

* :class:`TrainOptions` -- how :func:`gru4rec_tf.train.routine.train` trains: epochs, seed, compiled steps per call,
  where negative samples are drawn, early stopping, checkpoints, TensorBoard, the compile cache;
* :class:`~gru4rec_tf.evaluation.options.EvalOptions` -- how the full-catalogue evaluation ranks and what it reports
  (defined next to the evaluator, re-exported here).

The flags of ``gru4rec train``, ``gru4rec evaluate``, ``gru4rec tune`` and ``gru4rec pipeline run`` are derived from
these fields (:func:`gru4rec_tf.commands.option_flags.define_option_flags`), and so is the TFX Trainer's
``custom_config`` (``tfx_pipeline.options.TrainingOptions``). The GRU4Rec hyperparameters themselves are
:class:`gru4rec_tf.params.GRU4RecParams`.

Example::

    >>> options = TrainOptions(seed=7, early_stopping_metric="recall@20", patience=2)
    >>> options.checkpoint_every_s == DEFAULT_CHECKPOINT_EVERY_S
    True
    >>> TrainOptions(patience=0)
    Traceback (most recent call last):
    ValueError: patience must be >= 1, got 0
"""
from __future__ import annotations

import dataclasses
import math

from gru4rec_tf.evaluation.options import (DEFAULT_CUTOFFS, DEFAULT_EVAL_BATCH_SIZE, DEFAULT_EVAL_MODE, EVAL_MODES,
                                           EvalOptions, metric_cutoff)
from gru4rec_tf.option_fields import option_field, positive_int

__all__ = ["DEFAULT_CHECKPOINT_EVERY_S", "DEFAULT_CUTOFFS", "DEFAULT_EARLY_STOPPING_METRIC", "DEFAULT_EVAL_BATCH_SIZE",
           "DEFAULT_EVAL_MODE", "DEFAULT_SEED", "DEFAULT_STEPS_PER_CALL", "EVAL_MODES", "EvalOptions", "TrainOptions"]

DEFAULT_SEED = 42
DEFAULT_STEPS_PER_CALL = 256
DEFAULT_EARLY_STOPPING_METRIC = "mrr@20"  # also the default objective of hyperparameter tuning
DEFAULT_CHECKPOINT_EVERY_S = 600.0


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How one training run goes, apart from the hyperparameters. Validated on construction.

    ``epochs`` (None: the parameters' ``n_epochs``) is the maximum with validation. ``early_stopping_metric`` and
    ``patience`` are used when the run validates (:meth:`gru4rec_tf.train.routine.Validation.from_options`).
    ``checkpoint_dir``, ``tensorboard_dir`` and ``compile_cache_dir`` are directories (None: off).

    Example::

        >>> TrainOptions(device_sampling=False, checkpoint_dir="ckpt/day1", checkpoint_every_s=60.0).seed
        42
        >>> TrainOptions(early_stopping_metric="ndcg@10")
        Traceback (most recent call last):
        ValueError: early_stopping_metric must be recall@K or mrr@K, got 'ndcg@10'
    """

    epochs: int | None = option_field(None, help="Number of epochs (overrides n_epochs of the parameters).")
    seed: int = option_field(DEFAULT_SEED, help="Random seed (initialisation, sampling, dropout).")
    steps_per_call: int = option_field(DEFAULT_STEPS_PER_CALL, help="Training steps per compiled TensorFlow call.")
    device_sampling: bool | None = option_field(
        None, help="Draw the negative samples and find each step's distinct item rows inside the compiled loop "
                   "instead of on the host (default: inside when a GPU is visible; the host is faster on CPU); "
                   "--nodevice_sampling forces the host.")
    early_stopping_metric: str = option_field(DEFAULT_EARLY_STOPPING_METRIC,
                                              help="Validation metric that picks the best epoch (recall@K or mrr@K).")
    patience: int | None = option_field(None, help="Stop after this many epochs without improvement of the "
                                                   "validation metric (default: no early stop).")
    checkpoint_dir: str | None = option_field(None, help="Write a checkpoint there after every epoch and every "
                                                         "--checkpoint_every_s seconds; running the same command "
                                                         "again resumes from it.")
    checkpoint_every_s: float = option_field(DEFAULT_CHECKPOINT_EVERY_S,
                                             help="Seconds between checkpoints inside an epoch.")
    tensorboard_dir: str | None = option_field(None, help="Write TensorBoard scalars there (training loss, "
                                                          "events/s, validation metrics).")
    compile_cache_dir: str | None = option_field(
        None, help="Keep the compiled (XLA) training loop there and load it in later runs of a similar catalogue "
                   "size instead of compiling again (the daily loop: seconds a run); results do not change.")
    jit_compile: bool = option_field(True, help="Compile the training loop with XLA (off: plain TensorFlow "
                                                "graphs, slower; for tests and benchmarks).")
    log_every_s: float = option_field(10.0, help="Seconds between progress log lines inside an epoch (when no "
                                                 "progress bar is shown).")

    def __post_init__(self):
        if self.epochs is not None:
            positive_int("epochs", self.epochs)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        positive_int("steps_per_call", self.steps_per_call)
        if self.device_sampling is not None and not isinstance(self.device_sampling, bool):
            raise ValueError(f"device_sampling must be true, false or null, got {self.device_sampling!r}")
        metric_cutoff(self.early_stopping_metric, "early_stopping_metric")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ValueError(f"patience must be >= 1, got {self.patience!r}")
        _seconds("checkpoint_every_s", self.checkpoint_every_s, allow_zero=True)
        _seconds("log_every_s", self.log_every_s, allow_zero=False)
        if not isinstance(self.jit_compile, bool):
            raise ValueError(f"jit_compile must be true or false, got {self.jit_compile!r}")
        for name in ("checkpoint_dir", "tensorboard_dir", "compile_cache_dir"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{name} must be a directory path or None, got {value!r}")


def _seconds(name: str, value, allow_zero: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and not math.isnan(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
