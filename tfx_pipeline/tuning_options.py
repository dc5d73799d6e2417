"""Options of the pipeline's optional TFX ``Tuner`` (``gru4rec pipeline run --tune_trials N``). No TFX import.

The Tuner searches GRU4Rec hyperparameters with :mod:`gru4rec_tf.tune.tuner` (the engine of ``gru4rec tune``) on the
SessionTensors ``train`` split: the sessions of its last ``valid_days`` days are the validation data, the earlier
ones the training data (the test split stays unseen until the evaluator). The Trainer's parameters are the fixed
ones; ``space`` (the JSON format of :mod:`gru4rec_tf.tune.search_space`, as a mapping) replaces the default space of the
Trainer's loss. The best trial's parameters and epoch count go to the Trainer through the ``best_hyperparameters``
artifact (``fn_args.hyperparameters``).

Example::

    >>> TuningOptions(trials=2, epochs=1, space={"layers": {"low": 16, "high": 32, "step": 16}}).enabled
    True
    >>> TuningOptions().enabled
    False
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any
from collections.abc import Mapping

from gru4rec_tf.train.options import DEFAULT_EARLY_STOPPING_METRIC, DEFAULT_SEED


@dataclasses.dataclass(frozen=True)
class TuningOptions:
    trials: int = 0  # 0: no Tuner component
    epochs: int = 3
    objective: str = DEFAULT_EARLY_STOPPING_METRIC
    space: Mapping[str, Any] | None = None  # None: the default space of the Trainer's loss
    valid_days: float = 1.0
    algorithm: str = "halving"  # successive halving (gru4rec_tf.tune.tuner), or "bayesian" / "random"
    seed: int = DEFAULT_SEED
    prune_after: int = 4
    initial_params: str = "portfolio"  # the first configurations: portfolio, none, best_known or k=v,...
    rungs: int = 3
    eta: int = 3

    def __post_init__(self):
        from gru4rec_tf.tune.search_space import SearchSpace, check_objective  # pylint: disable=g-import-not-at-top
        for name, low in (("trials", 0), ("epochs", 1), ("seed", 0), ("prune_after", 0), ("rungs", 1), ("eta", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"tuning: {name} must be an integer >= {low}, got {value!r}")
        check_objective(self.objective)
        if self.space is not None:
            SearchSpace.from_dict(self.space, source="tuning space")
        if not isinstance(self.valid_days, (int, float)) or isinstance(self.valid_days, bool) or \
                self.valid_days <= 0:
            raise ValueError(f"tuning: valid_days must be > 0, got {self.valid_days!r}")
        if self.algorithm not in ("halving", "bayesian", "random"):
            raise ValueError(f"tuning: algorithm must be halving, bayesian or random, got {self.algorithm!r}")
        if not isinstance(self.initial_params, str):
            raise ValueError(f"tuning: initial_params must be a string, got {self.initial_params!r}")

    @property
    def enabled(self) -> bool:
        return self.trials > 0

    def search_space(self, loss: str):
        """The :class:`~gru4rec_tf.tune.search_space.SearchSpace` searched for ``loss``."""
        from gru4rec_tf.tune.search_space import SearchSpace  # pylint: disable=g-import-not-at-top
        return SearchSpace.from_dict(self.space, "tuning space") if self.space is not None \
            else SearchSpace.default(loss)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text_or_mapping) -> TuningOptions:
        data = json.loads(text_or_mapping) if isinstance(text_or_mapping, str) else dict(text_or_mapping)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TuningOptions: unknown option(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


# ------------------------------------------------------------------------------ the pipeline command's flags
def define_flags(flag_values=None) -> None:
    """The ``--tune_*`` flags of ``gru4rec pipeline run|compile``."""
    from absl import flags  # pylint: disable=g-import-not-at-top
    fv = flag_values if flag_values is not None else flags.FLAGS
    flags.DEFINE_integer("tune_trials", 0, "Trials of the optional TFX Tuner (0: no Tuner); its best "
                         "hyperparameters feed the Trainer.", flag_values=fv)
    flags.DEFINE_integer("tune_epochs", 3, "Tuner: epochs per trial (the Trainer trains the best trial's epochs).",
                         flag_values=fv)
    flags.DEFINE_string("tune_objective", DEFAULT_EARLY_STOPPING_METRIC, "Tuner: validation metric to maximise, "
                        "recall@K or mrr@K.", flag_values=fv)
    flags.DEFINE_string("tune_space", None, "Tuner: search space JSON file (default: the Trainer loss's space).",
                        flag_values=fv)
    flags.DEFINE_float("tune_valid_days", 1.0, "Tuner: the last days of the train split validate the trials.",
                       flag_values=fv)
    flags.DEFINE_enum("tune_algorithm", "halving", ["halving", "bayesian", "random"], "Tuner: successive halving "
                      "(the trials are a budget of full trials spent on cheaper evaluations; as gru4rec tune), or "
                      "Bayesian optimisation / random search of full trials.", flag_values=fv)
    flags.DEFINE_string("tune_initial_params", "portfolio", "Tuner: the first configurations: portfolio (the "
                        "authors' published settings of the loss), none, best_known or k=v,...", flag_values=fv)


def from_flags() -> TuningOptions:
    """The :class:`TuningOptions` of the ``--tune_*`` flags (a ``--tune_space`` file is read and embedded)."""
    from absl import flags  # pylint: disable=g-import-not-at-top
    f = flags.FLAGS
    space = None
    if f.tune_space:
        from gru4rec_tf.tune.search_space import SearchSpace  # pylint: disable=g-import-not-at-top
        space = SearchSpace.from_file(f.tune_space).to_dict()
    return TuningOptions(trials=f.tune_trials, epochs=f.tune_epochs, objective=f.tune_objective, space=space,
                         valid_days=f.tune_valid_days, algorithm=f.tune_algorithm,
                         initial_params=f.tune_initial_params)
