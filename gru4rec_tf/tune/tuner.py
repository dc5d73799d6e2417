"""Hyperparameter search: one KerasTuner tuner behind ``gru4rec tune`` and the TFX ``Tuner`` component.

**Successive halving** (``algorithm="halving"``, the default of both): ``max_trials`` is a budget of full trials
(``epochs`` epochs on the whole training log), spent by :class:`SuccessiveHalvingOracle` on many cheaper
evaluations (:func:`fidelities`: by default every epoch on the most recent part of the sessions), the best of each
rung promoted to the next; the first configurations are the given ``initial`` ones (the portfolio of published settings,
:mod:`gru4rec_tf.tune.portfolio`). The best full trial then continues from its checkpoint past ``epochs`` (the
*extension rung*: up to ``max_epochs``, default ``2 * epochs``, while the validation objective improves), so the
chosen model's epoch count comes from validation; its worst case is reserved in the budget (the number of epochs
carries over to the whole log unchanged: an epoch is a pass over the sessions, as the authors keep ``n_epochs``
from train_tr to train_full). Each evaluation is one KerasTuner trial carrying its rung, so resume and the
chief/worker mode work as for the other oracles. ``bayesian`` and ``random`` run full trials with the rules below.

Every trial trains with the library's one training routine (:func:`gru4rec_tf.train.routine.train`) on the training
sessions and scores the validation sessions with the full-catalogue evaluation after every epoch. The epoch's
objective (``recall@K`` or ``mrr@K``) goes to the oracle at once (``oracle.update_trial(..., step=epoch)``), and a
median-stopping rule prunes a trial whose best value so far is below the median of the finished trials at the same
epoch. A trial that raises (NaN loss, out of memory...) is recorded as ``FAILED`` and the search goes on.

**Divergence check.** After every compiled chunk of training steps, a trial whose training loss is not finite
fails at once, and a trial whose chunk's mean training loss exceeds ``divergence_factor`` (default 10) times the
loss of its first step (the untrained model: about log 2 for BPR-max, whose scores start near 0) is stopped as
``DIVERGED`` without spending its remaining epochs. A trained model's loss is below its untrained loss; 10 times
it means the scores have blown up. On rsc15_100k, BPR-max configurations with large learning rates and momentum
do this in the authors' own code too (``bench/results/tuning_rsc15.md``, notes): their chunks average 11-500
within the first epoch against 0.69 at the first step, while the good configurations stay below 0.6. A diverged
trial is reported to the oracle with the objective 0 at that epoch (so that the Bayesian optimisation learns to
avoid the region; a failed trial teaches it nothing), but ``trials.csv`` shows no value for it and it is never the
best trial.

Why KerasTuner (not Optuna, which the authors use): it is what the standard TFX ``Tuner`` component drives
(``tuner_fn`` returns a KerasTuner tuner; its ``best_hyperparameters`` artifact feeds the ``Trainer``), and
what Vertex AI's distributed tuning runs; it is already part of the pinned TFX stack; its oracles (Bayesian
optimisation with a Gaussian process, random search) keep the whole study in one directory, so a killed search
resumes where it stopped; its chief/worker mode (``KERASTUNER_*`` environment variables) runs trials in parallel
processes on one or several machines. Pruning, which KerasTuner's oracles lack, is the median rule here.

``gru4rec_tf`` does not import this module (nor KerasTuner) unless asked. KerasTuner 1.4 picks Keras 3 when it is
installed; this tuner never builds Keras models through it (a trial builds the ``tf_keras`` GRU4Rec), so the
``TF_USE_LEGACY_KERAS=1`` semantics of the library are untouched.

Example::

    tuner = GRU4RecTuner(base_params, SearchSpace.default("bpr-max"), "mrr@20", epochs=3, max_trials=30,
                         directory="tune_out/study")
    tuner.search(train_data=train, valid_data=valid, vocab=vocab)
    best = best_trial(tuner.oracle)        # BestTrial(params, value, trial_id, epochs)
"""
import dataclasses
import json
import math
import os
import statistics
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import keras_tuner
import numpy as np
from absl import logging
from keras_tuner.engine import base_tuner
from keras_tuner.engine import trial as trial_lib

from gru4rec_tf import fileio
from gru4rec_tf.evaluation.options import EvalOptions
from gru4rec_tf.params import GRU4RecParams
from gru4rec_tf.train.options import TrainOptions
from gru4rec_tf.tune.search_space import EPOCHS_KEY, FIXED_KEY, RUNG_KEY, SearchSpace, check_objective, clean_value, \
    params_from_values

TRIAL_FILE = "gru4rec_trial.json"  # per-trial sidecar: seconds, state, error line
PROJECT = "study"
STATES = ("COMPLETED", "PRUNED", "DIVERGED", "FAILED", "RUNNING", "INVALID")
# An evaluation training fewer event-passes than this runs without XLA: XLA's compile (about 5-10 s a configuration
# on 2 cores) costs more than it saves on a short run (rsc15_100k, 224 units: a third of the sessions for 1 epoch in
# 13 s plain against 18 s with XLA; 3 full epochs in 87 s plain against 60 s with XLA).
XLA_MIN_EVENT_PASSES = 100_000
DIVERGENCE_FACTOR = 10.0  # a chunk's mean training loss above this many times the first step's loss: diverged
ALGORITHMS = ("halving", "bayesian", "random")
# The extension rung (successive halving): the best full trial continues while its objective improves; it stops
# after this many epochs without improvement (or at ``max_epochs``). 2, not 1: the validation MRR@20 of one
# configuration moves by about 0.003 from epoch to epoch on a 20k-item log (bench/results/tuning_budget.md), so a
# single epoch without improvement often is noise, and the budget already reserves the extension's longest run.
EXTENSION_PATIENCE = 2


class Pruned(Exception):
    """Raised inside a trial's ``on_epoch_end`` to stop a hopeless trial (its values so far stay valid)."""


class Diverged(Exception):
    """Raised inside a trial's ``on_chunk_end`` when its training loss has blown up (see the module docstring)."""

    def __init__(self, message: str, epoch: int):
        super().__init__(message)
        self.epoch = epoch  # 1-based epoch in which it diverged


@dataclasses.dataclass
class BestTrial:
    params: GRU4RecParams  # with n_epochs = the best epoch
    value: float
    trial_id: str
    epochs: int

    def to_dict(self, objective: str) -> dict:
        return {"params": self.params.to_string(), "objective": objective, "value": self.value,
                "trial": int(self.trial_id) + 1, "epochs": self.epochs}


def make_hyperparameters(base: GRU4RecParams, space: SearchSpace, rungs: int = 0):
    """The KerasTuner search space: one entry per searched parameter and the fixed parameters as one string (and,
    for successive halving, the trial's rung)."""
    hp = keras_tuner.HyperParameters()
    for dim in space.dimensions:
        if dim.kind == "choice":
            hp.Choice(dim.name, list(dim.values))
        elif dim.kind == "int":
            hp.Int(dim.name, dim.low, dim.high, step=dim.step, sampling="log" if dim.log else "linear")
        else:
            hp.Float(dim.name, dim.low, dim.high, step=dim.step, sampling="log" if dim.log else "linear")
    hp.Fixed(FIXED_KEY, base.to_string())
    if rungs:
        hp.Int(RUNG_KEY, 0, max(int(rungs) - 1, 1))
    return hp


def make_oracle(objective: str, hyperparameters, max_trials: int, algorithm: str = "bayesian", seed: int = 42,
                initial: Sequence[Mapping[str, Any]] = (), schedule: Sequence[int] = (),
                levels: Sequence["Fidelity"] = ()):
    """KerasTuner's Bayesian or random oracle, or the successive-halving one (``halving``: ``schedule`` configurations
    per rung of ``levels``); their first ``len(initial)`` configurations are the given searched values (as
    Optuna's ``enqueue_trial``; e.g. the portfolio), the later ones are the oracle's own."""
    objective = keras_tuner.Objective(objective, direction="max")
    if algorithm == "halving":
        max_trials = sum(schedule)
    common = dict(objective=objective, max_trials=max_trials, hyperparameters=hyperparameters, seed=seed,
                  tune_new_entries=False, allow_new_entries=False, max_retries_per_trial=0,
                  max_consecutive_failed_trials=max(3, max_trials))
    if algorithm == "halving":
        return SuccessiveHalvingOracle(initial, schedule, levels, **common)
    if algorithm == "bayesian":
        return _seeded(keras_tuner.oracles.BayesianOptimizationOracle)(
            initial, num_initial_points=max(2, min(10, max_trials // 3)), **common)
    if algorithm == "random":
        return _seeded(keras_tuner.oracles.RandomSearchOracle)(initial, **common)
    raise ValueError(f"algorithm must be halving, bayesian or random, got {algorithm!r}")


def _seeded(oracle_class):
    """``oracle_class`` whose trial number i < len(initial) gets ``initial[i]`` (a resumed study counts its trials,
    so a seeded trial runs once)."""

    class SeededOracle(oracle_class):  # pylint: disable=abstract-method

        def __init__(self, initial, **kwargs):
            super().__init__(**kwargs)
            self.initial = [dict(values) for values in initial]

        def populate_space(self, trial_id):
            if len(self.trials) < len(self.initial):
                values = {hp.name: hp.default for hp in self.hyperparameters.space}
                values.update(self.initial[len(self.trials)])
                return {"status": trial_lib.TrialStatus.RUNNING, "values": values}
            return super().populate_space(trial_id)

    SeededOracle.__name__ = SeededOracle.__qualname__ = f"Seeded{oracle_class.__name__}"
    return SeededOracle


# ------------------------------------------------------------------------------------ successive halving
@dataclasses.dataclass(frozen=True)
class Fidelity:
    """How much one evaluation trains: the most recent ``fraction`` of the training sessions for ``epochs`` epochs.

    ``cost(full_epochs)``: its share of a full trial (the whole log for ``full_epochs`` epochs), in data passes.
    """
    fraction: float
    epochs: int

    def cost(self, full_epochs: int) -> float:
        return self.fraction * self.epochs / full_epochs


FIDELITY_MODES = ("sessions", "epochs")


def fidelities(epochs: int, rungs: int = 3, eta: int = 3, mode: str = "sessions") -> list[Fidelity]:
    """The rungs' fidelities, lowest first: the top rung is a full trial (the whole log, ``epochs`` epochs), each
    rung below trains ``1/eta`` of the data passes of the next one.

    ``mode="sessions"`` (the default): every rung trains all ``epochs`` epochs, on the most recent ``1/eta**k`` of
    the training sessions (``epochs=3, rungs=3, eta=3``: 1/9 of the sessions, 1/3, all, each for 3 epochs). A cheap
    evaluation then goes through the same number of epochs as the full trial, so it ranks configurations by how
    they do after those epochs: how much they need regularisation (dropout) against how fast they learn. On
    rsc15_100k (cross-entropy, 18 configurations of a search) the ranks after 1/9 and 1/3 of the sessions x 3
    epochs agreed with those of the full trial at Spearman 0.82 and 0.92; after 1 epoch (a third or all of the
    sessions) at -0.16 and 0.05 (``bench/results/tuning_budget.md``, notes).

    ``mode="epochs"``: fewer epochs first (down to 1), then the most recent part of the sessions (``epochs=3``:
    1/3 of the sessions x 1 epoch, all x 1, all x 3); a promotion to more epochs on the same sessions continues the
    run of the rung below (:func:`continues`), so the top rung costs only its added epochs.

    >>> [(round(f.fraction, 3), f.epochs) for f in fidelities(3)]
    [(0.111, 3), (0.333, 3), (1.0, 3)]
    >>> [(round(f.fraction, 3), f.epochs) for f in fidelities(3, mode="epochs")]
    [(0.333, 1), (1.0, 1), (1.0, 3)]
    """
    if rungs < 1 or eta < 2 or epochs < 1:
        raise ValueError(f"rungs must be >= 1, eta >= 2 and epochs >= 1, got {rungs}, {eta}, {epochs}")
    if mode not in FIDELITY_MODES:
        raise ValueError(f"the fidelity mode must be one of {', '.join(FIDELITY_MODES)}, got {mode!r}")
    if mode == "sessions":
        return [Fidelity(float(eta) ** -(rungs - 1 - r), int(epochs)) for r in range(rungs)]
    out, passes = [Fidelity(1.0, int(epochs))], float(epochs)
    for _ in range(rungs - 1):
        passes /= eta
        out.insert(0, Fidelity(1.0, int(round(passes))) if passes >= 1 else Fidelity(passes, 1))
    return out


def continues(levels: Sequence[Fidelity]) -> list[bool]:
    """Per rung: True when it continues the run of the rung below (the same sessions, more epochs), so a promoted
    configuration resumes from that run's checkpoint instead of training its first epochs again."""
    return [False] + [low.fraction == high.fraction and low.epochs < high.epochs
                      for low, high in zip(levels[:-1], levels[1:], strict=True)]


def rung_costs(levels: Sequence[Fidelity], epochs: int) -> list[float]:
    """What one evaluation at each rung costs, in full trials (a continued rung only its added epochs).

    >>> [round(c, 3) for c in rung_costs(fidelities(3, mode="epochs"), 3)]
    [0.111, 0.333, 0.667]
    >>> [round(c, 3) for c in rung_costs(fidelities(3), 3)]
    [0.111, 0.333, 1.0]
    """
    costs = [f.cost(epochs) for f in levels]
    return [c - (costs[r - 1] if r and cont else 0.0) for r, (c, cont) in enumerate(zip(costs, continues(levels),
                                                                                       strict=True))]


def halving_schedule(budget: float, costs: Sequence[float], eta: int = 3, extension: float = 0.0) -> list[int]:
    """Configurations per rung (lowest first) of the largest successive-halving bracket whose cost fits ``budget``
    full trials: ``n`` configurations at the lowest rung, ``max(1, n // eta**r)`` at rung ``r``.

    ``extension`` > 0 (the worst-case cost of the extension rung, in full trials: the best full trial continuing
    to ``max_epochs``) reserves that much of the budget and appends one more rung of 1 configuration: first by
    running one full trial fewer (the extension takes the place of one finalist), else a smaller bracket. When
    not even the smallest bracket leaves room for it, no extension is planned (the plain schedule is returned).

    >>> halving_schedule(12, [1 / 9, 1 / 3, 1])      # 36/9 + 12/3 + 4 = 12 full trials
    [36, 12, 4]
    >>> halving_schedule(12, [1 / 9, 1 / 3, 1], extension=1.0)      # 36/9 + 12/3 + 3 + at most 1 = 12
    [36, 12, 3, 1]
    """
    def counts(n):
        return [max(1, n // eta ** r) for r in range(len(costs))]

    def total(shape):
        return sum(c * k for c, k in zip(costs, shape, strict=True))

    n = 1
    while total(counts(n + 1)) <= budget + 1e-9:
        n += 1
    if extension <= 0:
        return counts(n)
    for m in range(n + eta ** len(costs), 0, -1):  # a trimmed top rung can leave room for a larger bracket
        shape = counts(m)
        for top in (shape[-1], shape[-1] - 1):
            trimmed = shape[:-1] + [top]
            if top >= 1 and total(trimmed) + extension <= budget + 1e-9:
                return trimmed + [1]
    return counts(n)


def fidelity_of(values: Mapping[str, Any], oracle) -> Fidelity | None:
    """The fidelity of a halving trial's values (None for a full trial of the other algorithms)."""
    rung = values.get(RUNG_KEY)
    levels = getattr(oracle, "fidelities", None)
    if rung is None or not levels:
        return None
    return levels[min(int(rung), len(levels) - 1)]


def _config_key(values: Mapping[str, Any]) -> str:
    return json.dumps({k: clean_value(v) for k, v in sorted(values.items()) if k not in (RUNG_KEY, FIXED_KEY)},
                      sort_keys=True, default=str)


class SuccessiveHalvingOracle(keras_tuner.Oracle):
    """Successive halving over fidelities (:func:`fidelities`), as one KerasTuner oracle (resumable, distributable).

    Rung 0 evaluates ``schedule[0]`` configurations at the lowest fidelity: the ``initial`` ones first (the
    portfolio), then new ones, alternately drawn at random from the space and mutated from one of the three best
    finished so far (so the search continues from what the portfolio showed). Once every evaluation of a rung has
    ended, its best ``schedule[r + 1]`` configurations (by the objective; failed and diverged ones never) are run
    again at the next rung's fidelity, from scratch. The state is the trials themselves (each carries its rung),
    so a killed study resumes where it stopped, and a larger budget on resume adds configurations and promotions.

    Example::

        oracle = SuccessiveHalvingOracle(initial, [36, 12, 4], fidelities(3), objective=..., hyperparameters=...)
    """

    def __init__(self, initial, schedule, levels, **kwargs):
        super().__init__(**kwargs)
        self.initial = [dict(values) for values in initial]
        self.schedule = [int(n) for n in schedule]
        self.fidelities = list(levels)
        if len(self.schedule) != len(self.fidelities):
            raise ValueError(f"{len(self.schedule)} rung sizes for {len(self.fidelities)} fidelities")

    # the oracle's view of a trial
    def _rung_trials(self) -> list[list]:
        rungs = [[] for _ in self.schedule]
        for trial in self.trials.values():
            rung = trial.hyperparameters.values.get(RUNG_KEY)
            if rung is not None and int(rung) < len(rungs):
                rungs[int(rung)].append(trial)
        return rungs

    def _value(self, trial) -> float | None:
        if trial.status != trial_lib.TrialStatus.COMPLETED or trial.score is None:
            return None
        if trial_state(trial, self._project_dir) == "DIVERGED":
            return None
        return float(trial.score)

    @staticmethod
    def _ended(trials) -> bool:
        return all(t.status not in (trial_lib.TrialStatus.RUNNING, trial_lib.TrialStatus.IDLE) for t in trials)

    def _candidates(self, below, above) -> list:
        promoted = {_config_key(t.hyperparameters.values) for t in above}
        ranked = sorted((t for t in below if self._value(t) is not None), key=self._value, reverse=True)
        return [t for t in ranked if _config_key(t.hyperparameters.values) not in promoted]

    def populate_space(self, trial_id):
        rungs = self._rung_trials()
        complete = len(rungs[0]) >= self.schedule[0] and self._ended(rungs[0])
        for r in range(1, len(self.schedule)):
            if not complete:
                break
            candidates = self._candidates(rungs[r - 1], rungs[r])
            if len(rungs[r]) < self.schedule[r] and candidates:
                values = dict(candidates[0].hyperparameters.values)
                values[RUNG_KEY] = r
                return {"status": trial_lib.TrialStatus.RUNNING, "values": values}
            complete = self._ended(rungs[r])
        if len(rungs[0]) < self.schedule[0]:
            return {"status": trial_lib.TrialStatus.RUNNING, "values": self._new_values(rungs[0])}
        if any(t.status == trial_lib.TrialStatus.RUNNING for rung in rungs for t in rung):
            return {"status": trial_lib.TrialStatus.IDLE}
        return {"status": trial_lib.TrialStatus.STOPPED}

    def _new_values(self, first_rung) -> dict:
        fixed = {hp.name: hp.default for hp in self.hyperparameters.space}
        index = len(first_rung)
        seen = {_config_key(t.hyperparameters.values) for t in first_rung}
        if index < len(self.initial):
            values = dict(fixed, **self.initial[index])
            values[RUNG_KEY] = 0
            return values
        rng = np.random.default_rng([int(self.seed or 0), index])
        searched = [hp for hp in self.hyperparameters.space if hp.name not in (FIXED_KEY, RUNG_KEY)]
        finished = sorted((t for t in first_rung if self._value(t) is not None), key=self._value, reverse=True)
        values = {}
        for attempt in range(50):
            mutate = finished and (index - len(self.initial)) % 2 == 1 and attempt < 25
            if mutate:
                parent = finished[int(rng.integers(min(3, len(finished))))].hyperparameters.values
                values = dict(fixed, **{k: v for k, v in parent.items()})
                chosen = [hp for hp in searched if rng.random() < 0.35] or [searched[int(rng.integers(len(searched)))]]
                for hp in chosen:
                    if type(hp).__name__ == "Choice":
                        values[hp.name] = hp.prob_to_value(rng.random())
                    else:
                        prob = hp.value_to_prob(values[hp.name]) + rng.normal(0.0, 0.15)
                        values[hp.name] = hp.prob_to_value(float(np.clip(prob, 0.0, 1.0 - 1e-9)))
            else:
                values = dict(fixed, **{hp.name: hp.prob_to_value(rng.random()) for hp in searched})
            values[RUNG_KEY] = 0
            if _config_key(values) not in seen:
                break
        return values


def rung_agreement(oracle, project_dir: str | None = None) -> list[dict]:
    """How well each rung predicted the next: per adjacent pair, the configurations run at both and the Spearman
    rank correlation of their values (None below 3 configurations). A low value says the cheap rung misranks."""
    if not getattr(oracle, "fidelities", None):
        return []
    by_rung: dict[int, dict[str, float]] = {}
    for trial in oracle.trials.values():
        rung = trial.hyperparameters.values.get(RUNG_KEY)
        if rung is None or trial.status != trial_lib.TrialStatus.COMPLETED or trial.score is None or \
                trial_state(trial, project_dir) == "DIVERGED":
            continue
        by_rung.setdefault(int(rung), {})[_config_key(trial.hyperparameters.values)] = float(trial.score)
    out = []
    for r in range(len(oracle.fidelities) - 1):
        low, high = by_rung.get(r, {}), by_rung.get(r + 1, {})
        both = [k for k in low if k in high]
        rho = None
        if len(both) >= 3:
            a = np.argsort(np.argsort([low[k] for k in both]))
            b = np.argsort(np.argsort([high[k] for k in both]))
            rho = float(np.corrcoef(a, b)[0, 1]) if np.std(a) > 0 and np.std(b) > 0 else None
        out.append({"rungs": (r, r + 1), "configurations": len(both), "spearman": rho})
    return out


class GRU4RecTuner(base_tuner.BaseTuner):
    """KerasTuner tuner whose trials train GRU4Rec through :func:`gru4rec_tf.train.routine.train`.

    ``search(train_data=..., valid_data=..., vocab=...)`` runs until ``max_trials`` trials (counted over resumed
    runs too) have ended. Arguments:

      base: the fixed parameters (searched ones are overridden per trial); space: the searched ones.
      objective: ``recall@K`` or ``mrr@K`` of the validation data, maximised; epochs: epochs per trial.
      directory: the study's directory (resumed when it holds one, unless ``overwrite``).
      prune_after: the median rule starts once this many trials have reached an epoch (0 disables pruning).
      timeout_s: no trial starts after this many seconds (the running one finishes).
      training: every trial's training settings (:class:`~gru4rec_tf.train.options.TrainOptions`: seed, steps
        per call, ...); its ``epochs`` is replaced by ``epochs``, it must have no ``checkpoint_dir``, and its
        early-stopping settings are unused (each trial runs every epoch and reports the objective).
      evaluation: how the validation ranks (``eval_mode``, ``eval_batch_size``); only the objective's cut-off is
        computed.
      initial: searched values of the study's first trials (:func:`gru4rec_tf.tune.search_space.initial_values`).
      divergence_factor: stop a trial as DIVERGED once a chunk's mean training loss exceeds this many times its
        first step's loss (0 disables the check; a non-finite loss always fails the trial at once).
      algorithm: ``halving`` (``max_trials`` is then the budget in full trials; ``rungs`` fidelity levels, 1 of
        every ``eta`` configurations promoted; no median pruning), ``bayesian`` or ``random`` (``max_trials`` full
        trials).
      fidelity: how a halving rung below the top one is cheaper (:func:`fidelities`): ``sessions`` (all the
        epochs on the most recent part of the sessions; default) or ``epochs`` (fewer epochs first).
      max_epochs: halving only: the best full trial (the top rung's best) continues from its checkpoint as one more
        evaluation, the *extension rung*, for at most ``max_epochs`` epochs in all, stopping after
        ``EXTENSION_PATIENCE`` (2) epochs without improvement of the objective; its best epoch is then the chosen
        model's. None: ``2 * epochs``; ``epochs`` turns the extension off. Its worst case (``max_epochs - epochs``
        epochs on the whole log) is reserved in the budget (:func:`halving_schedule`), and what it ran is counted
        (:func:`budget_spent`).
    """

    def __init__(self, base: GRU4RecParams, space: SearchSpace, objective: str, epochs: int, *, max_trials: int,
                 directory: str, algorithm: str = "bayesian", seed: int = 42, prune_after: int = 4,
                 timeout_s: float | None = None, training: TrainOptions | None = None,
                 evaluation: EvalOptions | None = None, overwrite: bool = False,
                 divergence_factor: float = DIVERGENCE_FACTOR, initial: Sequence[Mapping[str, Any]] = (),
                 rungs: int = 3, eta: int = 3, fidelity: str = "sessions", max_epochs: int | None = None):
        if not divergence_factor >= 0:
            raise ValueError(f"divergence_factor must be >= 0, got {divergence_factor}")
        training = training or TrainOptions()
        if training.checkpoint_dir is not None:  # (the tuner's own continued runs set theirs per trial)
            raise ValueError("training.checkpoint_dir must be None: the trials are different runs and cannot share "
                             "one checkpoint directory")
        self.divergence_factor = float(divergence_factor)
        self.base, self.space, self.objective, self.epochs = base, space, check_objective(objective), int(epochs)
        self.prune_after, self.timeout_s = prune_after, timeout_s
        # trials log no progress lines (the tuner logs one line per trial)
        self.training = dataclasses.replace(training, epochs=self.epochs, log_every_s=1e9)
        self.evaluation = evaluation or EvalOptions()
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
        self.algorithm, self.budget = algorithm, max_trials
        self.max_epochs = 2 * self.epochs if max_epochs is None else int(max_epochs)
        if self.max_epochs < self.epochs:
            raise ValueError(f"max_epochs must be >= epochs ({self.epochs}), got {self.max_epochs}")
        self.levels, self.schedule, self.costs, self.extension = [], [], [], False
        if algorithm == "halving":
            self.levels = fidelities(self.epochs, rungs, eta, fidelity)
            self.costs = rung_costs(self.levels, self.epochs)
            extension = 0.0
            if self.max_epochs > self.epochs:
                extension = rung_costs(self.levels + [Fidelity(1.0, self.max_epochs)], self.epochs)[-1]
            self.schedule = halving_schedule(max_trials, self.costs, eta, extension)
            if len(self.schedule) > len(self.levels):  # room for the extension rung
                self.extension = True
                self.levels.append(Fidelity(1.0, self.max_epochs))
                self.costs.append(extension)
            self.prune_after = 0  # the halving is the early stopping
        oracle = make_oracle(self.objective, make_hyperparameters(base, space, len(self.levels)), max_trials,
                             algorithm, seed, initial, self.schedule, self.levels)
        super().__init__(oracle, directory=os.path.dirname(os.path.abspath(directory)) or ".",
                         project_name=os.path.basename(os.path.abspath(directory)), overwrite=overwrite)
        # a resumed study's total is this run's --trials (and, halving, this run's schedule)
        self.oracle.max_trials = sum(self.schedule) if self.schedule else max_trials
        if self.schedule:
            self.oracle.schedule, self.oracle.fidelities = list(self.schedule), list(self.levels)
            self.oracle.initial = [dict(v) for v in initial]
        self._subsamples = {}
        self._epochs_trained: dict[str, int] = {}
        self._started = time.monotonic()
        self._trial_started = {}
        self._durations: list[float] = []

    # ------------------------------------------------------------------------------------------------- search
    def search(self, *fit_args, **fit_kwargs):
        fit_kwargs.setdefault("verbose", 0)  # KerasTuner's own tables; the progress lines are ours
        self._started = time.monotonic()
        with warnings.catch_warnings():
            # Reporting every epoch through oracle.update_trial is how KerasTuner's own Keras tuner reports
            # epochs; BaseTuner warns about it because it also accepts a returned value. The Gaussian process's
            # convergence warnings (scikit-learn) are noise for a user.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="keras_tuner")
            warnings.filterwarnings("ignore", module="sklearn")
            try:
                super().search(*fit_args, **fit_kwargs)
            except _Timeout:
                logging.info("tune: --timeout_s %s reached; no new trial started", self.timeout_s)
                self.on_search_end()
        if os.environ.get("KERASTUNER_TUNER_ID", "chief") == "chief":  # no promotion is left to continue a run
            import shutil  # pylint: disable=g-import-not-at-top
            shutil.rmtree(os.path.join(self.project_dir, "continued_runs"), ignore_errors=True)

    def pre_create_trial(self):
        if self.timeout_s is not None and time.monotonic() - self._started >= self.timeout_s:
            raise _Timeout()

    def run_trial(self, trial, train_data=None, valid_data=None, vocab=None, **kwargs):
        """Trains one configuration; reports the objective after every epoch; prunes; FAILED on any error."""
        del kwargs
        from gru4rec_tf.train import routine  # pylint: disable=g-import-not-at-top  (imports TensorFlow)
        fidelity = fidelity_of(trial.hyperparameters.values, self.oracle) or Fidelity(1.0, self.epochs)
        params = params_from_values(trial.hyperparameters.values, epochs=self.epochs)  # n_epochs: one run identity
        train_data = self._subsample(train_data, fidelity.fraction)
        checkpoint_dir = self._continuation(trial)
        started = time.monotonic()
        k = int(self.objective.partition("@")[2])
        # the extension rung stops once the objective has not improved for EXTENSION_PATIENCE epochs (the count
        # runs on from the continued run's checkpoint, which holds its best value so far)
        validation = routine.Validation(valid_data, metric=self.objective, cutoffs=(k,),
                                        mode=self.evaluation.eval_mode, batch_size=self.evaluation.eval_batch_size,
                                        patience=EXTENSION_PATIENCE if self.is_extension(trial) else None)
        self._epochs_trained[trial.trial_id] = 0

        def on_epoch_end(epoch, metrics):
            self._epochs_trained[trial.trial_id] += 1
            value = float(metrics[self.objective])
            if not math.isfinite(value):
                raise FloatingPointError(f"the objective {self.objective} is {value} after epoch {epoch + 1}")
            report = {name: float(v) for name, v in metrics.items()}
            report["seconds"] = time.monotonic() - started
            self.oracle.update_trial(trial.trial_id, report, step=epoch + 1)
            if epoch + 1 < fidelity.epochs:
                self._maybe_prune(trial, epoch + 1)

        training = dataclasses.replace(self.training, epochs=fidelity.epochs, checkpoint_dir=checkpoint_dir,
                                       checkpoint_every_s=1e9)
        if training.jit_compile and train_data.n_events * fidelity.epochs < XLA_MIN_EVENT_PASSES:
            training = dataclasses.replace(training, jit_compile=False)
        try:
            routine.train(train_data, vocab, params, training, validation=validation,
                          on_epoch_end=on_epoch_end, on_chunk_end=DivergenceCheck(self.divergence_factor))
        except Pruned as pruned:
            trial.message = f"pruned: {pruned}"
        except Diverged as diverged:
            trial.message = f"diverged: {diverged}"
            self.oracle.update_trial(trial.trial_id, {self.objective: 0.0,
                                                      "seconds": time.monotonic() - started}, step=diverged.epoch)
        except Exception as err:  # pylint: disable=broad-except  (any error fails this trial, not the study)
            message = f"{type(err).__name__}: {err}".splitlines()[0][:500]
            self._write_sidecar(trial, "FAILED", time.monotonic() - started, message,
                                self._epochs_trained.pop(trial.trial_id, None))
            raise keras_tuner.errors.FailedTrialError(message) from err
        # nothing to return: the values were reported per epoch

    def _continuation(self, trial) -> str | None:
        """The checkpoint directory a halving trial shares with its configuration's run at the rungs it continues
        (None when neither it nor the next rung continues a run). A continuing trial first reports the epochs it
        resumes from (the parent trial's values), then trains only the added epochs."""
        rung = trial.hyperparameters.values.get(RUNG_KEY)
        if rung is None or not self.levels:
            return None
        rung, chain = int(rung), continues(self.levels) + [False]
        if not (chain[rung] or chain[rung + 1]):
            return None
        import hashlib  # pylint: disable=g-import-not-at-top
        key = hashlib.sha256(_config_key(trial.hyperparameters.values).encode()).hexdigest()[:16]
        directory = os.path.join(self.project_dir, "continued_runs", key)
        if not chain[rung] and os.path.isdir(directory):  # a rerun after a kill: from scratch, as the first run
            import shutil  # pylint: disable=g-import-not-at-top
            shutil.rmtree(directory)
        if chain[rung] and os.path.isdir(directory) and os.listdir(directory):
            parent = [t for t in self.oracle.trials.values() if t.trial_id != trial.trial_id
                      and t.hyperparameters.values.get(RUNG_KEY) == rung - 1
                      and _config_key(t.hyperparameters.values) == _config_key(trial.hyperparameters.values)
                      and t.metrics.exists(self.objective)]
            for obs in parent[0].metrics.get_history(self.objective) if parent else ():
                self.oracle.update_trial(trial.trial_id, {self.objective: max(obs.value)}, step=obs.step)
        return directory

    def is_extension(self, trial) -> bool:
        """Whether ``trial`` is the extension rung's (the best full trial continuing past ``epochs``)."""
        rung = trial.hyperparameters.values.get(RUNG_KEY)
        return self.extension and rung is not None and int(rung) == len(self.levels) - 1

    def _subsample(self, data, fraction: float):
        """The most recent ``fraction`` of ``data``'s sessions (nearest the validation period); all for 1."""
        if fraction >= 1.0:
            return data
        if fraction not in self._subsamples:
            from gru4rec_tf.data.session_data import SessionData  # pylint: disable=g-import-not-at-top
            # at least 256 sessions (or all): a handful of sessions fills no mini-batch
            first = max(0, min(int(round(data.n_sessions * (1.0 - fraction))), data.n_sessions - 256))
            start = int(data.session_offsets[first])
            self._subsamples[fraction] = SessionData(
                data.item_idx[start:], data.session_offsets[first:] - start, data.session_ids[first:],
                data.times[start:])
        return self._subsamples[fraction]

    def _maybe_prune(self, trial, step: int) -> None:
        if self.prune_after <= 0:
            return
        mine = _best_until(trial, self.objective, step)
        others = [_best_until(t, self.objective, step) for t in self.oracle.get_best_trials(10 ** 6)
                  if t.trial_id != trial.trial_id and t.status in (trial_lib.TrialStatus.COMPLETED,)]
        others = [v for v in others if v is not None]
        if len(others) < self.prune_after or mine is None:
            return
        median = statistics.median(others)
        if mine < median:
            raise Pruned(f"after epoch {step}: {self.objective} {mine:.4f} < median {median:.4f} of "
                         f"{len(others)} trials at that epoch")

    # --------------------------------------------------------------------------------------------- progress
    def on_trial_begin(self, trial):
        self._trial_started[trial.trial_id] = time.monotonic()
        searched = {k: clean_value(v) for k, v in trial.hyperparameters.values.items()
                    if k not in (FIXED_KEY, RUNG_KEY)}
        fidelity = fidelity_of(trial.hyperparameters.values, self.oracle)
        where = "" if fidelity is None else \
            (f" rung {trial.hyperparameters.values[RUNG_KEY]} ({fidelity.fraction:.3g} of the sessions, "
             f"{fidelity.epochs} epoch{'s' if fidelity.epochs > 1 else ''})")
        if fidelity is not None and self.is_extension(trial):
            where = (f" rung {trial.hyperparameters.values[RUNG_KEY]} (extension: the best full trial continues to at "
                     f"most {fidelity.epochs} epochs while {self.objective} improves)")
        logging.info("tune: trial %d/%d%s started: %s", int(trial.trial_id) + 1, self.oracle.max_trials, where,
                     ",".join(f"{k}={_fmt(v)}" for k, v in searched.items()))

    def on_trial_end(self, trial):
        seconds = time.monotonic() - self._trial_started.pop(trial.trial_id, time.monotonic())
        state = trial_state(trial)
        if state != "FAILED":
            self._write_sidecar(trial, state, seconds, trial.message if state in ("PRUNED", "DIVERGED") else None,
                                self._epochs_trained.pop(trial.trial_id, None))
        super().on_trial_end(trial)
        self._durations.append(seconds)
        self._log_progress(trial, state, seconds)

    def _log_progress(self, trial, state, seconds):
        oracle = self.oracle
        ended = sum(1 for t in oracle.trials.values() if t.status not in (trial_lib.TrialStatus.RUNNING,)) \
            if hasattr(oracle, "trials") else int(trial.trial_id) + 1
        remaining = max(oracle.max_trials - ended, 0)
        eta = remaining * statistics.mean(self._durations) if self._durations else float("nan")
        elapsed = time.monotonic() - self._started
        if self.timeout_s is not None:  # no trial starts after the timeout: the study ends about then
            eta = min(eta, max(self.timeout_s - elapsed, 0.0) + statistics.mean(self._durations)) if remaining else 0.0
        best = best_trial(oracle, self.project_dir)
        value = oracle.get_trial(trial.trial_id).score if state in ("COMPLETED", "PRUNED") else None
        logging.info("tune: trial %d/%d %s%s in %.0f s; best so far %s; elapsed %.0f s, ETA %.0f s",
                     int(trial.trial_id) + 1, oracle.max_trials, state,
                     f" {self.objective} {value:.4f}" if value is not None else
                     f" ({(trial.message or '').strip().splitlines()[-1][:200]})" if state in ("FAILED", "DIVERGED")
                     else "",
                     seconds, f"{best.value:.4f} (trial {int(best.trial_id) + 1})" if best else "none",
                     elapsed, eta)

    def _write_sidecar(self, trial, state, seconds, message, epochs_trained=None):
        path = os.path.join(self.project_dir, f"trial_{trial.trial_id}", TRIAL_FILE)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        record = {"state": state, "seconds": seconds, "message": message}
        if epochs_trained is not None:  # the epochs this trial trained itself (not those it continued from)
            record["epochs_trained"] = epochs_trained
        with fileio.atomic_write_path(path) as tmp:
            tmp.write_text(json.dumps(record), encoding="utf-8")

    def get_best_hyperparameters(self, num_trials=1):
        """The best trials' HyperParameters, each with its best epoch count as ``gru4rec_epochs``.

        The TFX Tuner writes the first one's config as the ``best_hyperparameters`` artifact, which the Trainer's
        ``run_fn`` turns back into GRU4Rec parameters (:func:`gru4rec_tf.tune.search_space.params_from_values`).
        """
        result = []
        for trial in _ranked(self.oracle, self.project_dir)[:num_trials]:
            hp = trial.hyperparameters.copy()
            if trial.status == trial_lib.TrialStatus.COMPLETED and trial.best_step:
                hp.Fixed(EPOCHS_KEY, full_epochs(trial, self.oracle))
            result.append(hp)
        return result

    # BaseTuner's abstract model methods: a trial's model is not kept (retrain the best parameters instead).
    def save_model(self, trial_id, model, step=0):
        del trial_id, model, step

    def load_model(self, trial):
        raise NotImplementedError("trials do not keep their models; train the best parameters with gru4rec train")


class _Timeout(Exception):
    pass


class DivergenceCheck:
    """``routine.train``'s ``on_chunk_end`` for a trial: FloatingPointError on a non-finite training loss,
    :class:`Diverged` once a chunk's mean loss exceeds ``factor`` times the first step's loss (0: no such check)."""

    def __init__(self, factor: float = DIVERGENCE_FACTOR):
        self.factor = factor
        self.initial = None

    def __call__(self, progress) -> None:
        losses = progress.last_chunk_losses
        if losses is None or len(losses) == 0:
            return
        where = f"epoch {progress.epoch + 1}, step {progress.steps}"
        if not np.all(np.isfinite(losses)):
            raise FloatingPointError(f"the training loss is {losses[~np.isfinite(losses)][0]} at {where}; "
                                     "lower learning_rate")
        if self.initial is None:
            self.initial = float(losses[0])  # the untrained model's loss on the first mini-batch
        mean = float(np.mean(losses))
        if self.factor > 0 and self.initial > 0 and mean > self.factor * self.initial:
            raise Diverged(f"training loss {mean:.4g} over the {len(losses)} steps up to {where} > "
                           f"{self.factor:g} x {self.initial:.4g} (the first step's)", epoch=progress.epoch + 1)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _best_until(trial, objective: str, step: int) -> float | None:
    if not trial.metrics.exists(objective):
        return None
    values = [max(obs.value) for obs in trial.metrics.get_history(objective) if obs.step <= step]
    reached = any(obs.step == step for obs in trial.metrics.get_history(objective))
    return max(values) if values and reached else None


def trial_state(trial, project_dir: str | None = None) -> str:
    """COMPLETED, PRUNED (stopped early by the median rule), DIVERGED (training loss blew up), FAILED, RUNNING
    (interrupted: rerun on resume).

    With ``project_dir`` the trial's sidecar decides between them: a worker process's trial reaches the chief's
    oracle without its message (KerasTuner's protocol carries status and metrics only), so there a pruned or
    diverged trial looks completed.
    """
    status = trial.status
    if project_dir is not None and status in (trial_lib.TrialStatus.COMPLETED, trial_lib.TrialStatus.FAILED):
        sidecar = _read_sidecar(os.path.join(project_dir, f"trial_{trial.trial_id}", TRIAL_FILE)).get("state")
        if sidecar in ("COMPLETED", "PRUNED", "DIVERGED", "FAILED"):
            return sidecar
    if status == trial_lib.TrialStatus.COMPLETED:
        message = trial.message or ""
        return "PRUNED" if message.startswith("pruned") else "DIVERGED" if message.startswith("diverged") \
            else "COMPLETED"
    return str(status)


def _ranked(oracle, project_dir: str | None = None) -> list:
    """Ended trials with a value (completed or pruned, not diverged), best first; with successive halving only
    those of the highest rung any of them reached (a cheaper rung's value is not comparable)."""
    candidates = [t for t in oracle.get_best_trials(10 ** 6) if t.status == trial_lib.TrialStatus.COMPLETED
                  and t.score is not None and trial_state(t, project_dir) != "DIVERGED"]
    rungs = [int(t.hyperparameters.values[RUNG_KEY]) for t in candidates if RUNG_KEY in t.hyperparameters.values]
    if rungs:
        candidates = [t for t in candidates if int(t.hyperparameters.values.get(RUNG_KEY, -1)) == max(rungs)]
    return candidates


def full_epochs(trial, oracle) -> int:
    """The epochs for the whole training log of ``trial``'s best epoch: unchanged for a trial on the whole log (an
    epoch is one pass, as the authors keep n_epochs from train_tr to train_full); for a trial on a fraction of the
    sessions, the same number of training steps (``best epoch x fraction``, at least 1)."""
    fidelity = fidelity_of(trial.hyperparameters.values, oracle)
    epochs = int(trial.best_step)
    if fidelity is not None and fidelity.fraction < 1.0:
        epochs = max(1, int(round(epochs * fidelity.fraction)))
    return epochs


def best_trial(oracle, project_dir: str | None = None) -> BestTrial | None:
    """The best ended trial (completed or pruned, not diverged; with successive halving, of the highest rung
    reached), or None when no trial has a value yet."""
    candidates = _ranked(oracle, project_dir)
    if not candidates:
        return None
    trial = candidates[0]
    epochs = full_epochs(trial, oracle)
    return BestTrial(params=params_from_values(trial.hyperparameters.values, epochs=epochs),
                     value=float(trial.score), trial_id=trial.trial_id, epochs=epochs)


def best_hyperparameters_values(oracle, project_dir: str | None = None) -> dict[str, Any]:
    """The best trial's values plus its epochs (what the TFX Trainer reads from ``best_hyperparameters``)."""
    best = best_trial(oracle, project_dir)
    if best is None:
        raise ValueError("no trial finished, so there are no best parameters")
    values = dict(oracle.get_trial(best.trial_id).hyperparameters.values)
    values[EPOCHS_KEY] = best.epochs
    return values


# --------------------------------------------------------------------------------------------------- reports
def trial_rows(oracle, objective: str, epochs: int, project_dir: str) -> list[dict]:
    """One dict per trial: trial, state, value, best_epoch, seconds, the searched parameters, per-epoch values."""
    rows = []
    epochs = max([epochs] + [f.epochs for f in getattr(oracle, "fidelities", None) or ()])  # the extension's too
    names = [hp.name for hp in oracle.get_space().space if hp.name not in (FIXED_KEY, EPOCHS_KEY, RUNG_KEY)]
    for trial_id in sorted(oracle.trials, key=int):  # ids are padded to the total's digits, which can grow
        trial = oracle.trials[trial_id]
        sidecar = _read_sidecar(os.path.join(project_dir, f"trial_{trial_id}", TRIAL_FILE))
        state = trial_state(trial, project_dir)
        per_epoch = {}
        if trial.metrics.exists(objective):
            per_epoch = {obs.step: max(obs.value) for obs in trial.metrics.get_history(objective)}
        if state == "DIVERGED":  # its last report is the stand-in 0 for the oracle, not a measured value
            per_epoch.pop(max(per_epoch, default=None), None)
        message = sidecar.get("message") or (trial.message or "").strip().splitlines()[-1:] or [""]
        if isinstance(message, list):
            message = message[0]
        row = {"trial": int(trial_id) + 1, "state": state,
               "value": trial.score if state in ("COMPLETED", "PRUNED") else None,
               "best_epoch": trial.best_step if state in ("COMPLETED", "PRUNED") else None,
               "seconds": sidecar.get("seconds")}
        values = trial.hyperparameters.values
        fidelity = fidelity_of(values, oracle)
        if fidelity is not None:
            row.update({"rung": int(values[RUNG_KEY]), "fraction": round(fidelity.fraction, 6),
                        "epochs": fidelity.epochs, "epochs_trained": sidecar.get("epochs_trained")})
        row.update({k: clean_value(values[k]) for k in names if k in values})
        row.update({f"{objective}_epoch{e}": per_epoch.get(e) for e in range(1, epochs + 1)})
        row["message"] = message if state != "COMPLETED" else ""
        rows.append(row)
    return rows


def budget_spent(tuner) -> float | None:
    """What a halving study has spent, in full trials (None for the other algorithms): each evaluation below the
    extension rung at its rung's cost (:func:`rung_costs`), the extension rung by the epochs it trained (it stops
    when the objective stops improving; its sidecar's count, else its reported epochs past the rung below)."""
    if not tuner.schedule:
        return None
    spent = 0.0
    for trial in tuner.oracle.trials.values():
        rung = trial.hyperparameters.values.get(RUNG_KEY)
        if rung is None:
            continue
        rung = min(int(rung), len(tuner.levels) - 1)
        if not tuner.extension or rung < len(tuner.levels) - 1:
            spent += tuner.costs[rung]
            continue
        trained = _read_sidecar(os.path.join(tuner.project_dir, f"trial_{trial.trial_id}", TRIAL_FILE)).get(
            "epochs_trained")
        if trained is None:
            steps = [obs.step for obs in trial.metrics.get_history(tuner.objective)] \
                if trial.metrics.exists(tuner.objective) else []
            trained = max(max(steps, default=0) - tuner.levels[rung - 1].epochs, 0)
        spent += tuner.levels[rung].fraction * trained / tuner.epochs
    return spent


def _read_sidecar(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def write_trials_csv(rows: list[dict], path: str) -> None:
    import csv  # pylint: disable=g-import-not-at-top
    columns = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with fileio.atomic_write_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if v is None else v for k, v in row.items()})


def write_history_plot(rows: list[dict], objective: str, path: str, title: str = "") -> bool:
    """``optimization_history.png``: each trial's best value and the running best; False without matplotlib."""
    try:
        import matplotlib  # pylint: disable=g-import-not-at-top
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    except ImportError:
        logging.warning("tune: matplotlib is not installed, so %s was not written (pip install matplotlib)", path)
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    styles = {"COMPLETED": ("tab:blue", "o"), "PRUNED": ("tab:gray", "v")}
    for state, (color, marker) in styles.items():
        points = [(r["trial"], r["value"]) for r in rows if r["state"] == state and r["value"] is not None]
        if points:
            ax.scatter(*zip(*points, strict=True), c=color, marker=marker, label=state.lower(), s=22, zorder=3)
    failed = [r["trial"] for r in rows if r["state"] == "FAILED"]
    diverged = [r["trial"] for r in rows if r["state"] == "DIVERGED"]
    valued = [(r["trial"], r["value"]) for r in rows if r["value"] is not None]
    if valued:
        best, xs, ys = -math.inf, [], []
        for trial, value in valued:
            best = max(best, value)
            xs.append(trial)
            ys.append(best)
        ax.step(xs, ys, where="post", c="tab:red", label="best so far", zorder=2)
        low = min(v for _, v in valued)
        if failed:
            ax.scatter(failed, [low] * len(failed), c="black", marker="x", label="failed", zorder=3)
        if diverged:
            ax.scatter(diverged, [low] * len(diverged), c="tab:orange", marker="X", label="diverged", zorder=3)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {objective}")
    ax.set_title(title or f"optimisation history ({len(rows)} trials)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with fileio.atomic_write_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return True


def write_reports(tuner: GRU4RecTuner, output_dir: str) -> BestTrial | None:
    """``best_params.json``, ``trials.csv`` and ``optimization_history.png`` in ``output_dir``."""
    oracle = tuner.oracle
    rows = trial_rows(oracle, tuner.objective, tuner.epochs, tuner.project_dir)
    write_trials_csv(rows, os.path.join(output_dir, "trials.csv"))
    write_history_plot(rows, tuner.objective, os.path.join(output_dir, "optimization_history.png"))
    best = best_trial(oracle, tuner.project_dir)
    if best is not None:
        path = os.path.join(output_dir, "best_params.json")
        with fileio.atomic_write_path(path) as tmp:
            tmp.write_text(json.dumps(best.to_dict(tuner.objective), indent=2) + "\n", encoding="utf-8")
    return best
