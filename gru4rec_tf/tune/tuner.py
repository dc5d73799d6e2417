"""Hyperparameter search: one KerasTuner tuner behind ``gru4rec tune`` and the TFX ``Tuner`` component.

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
from gru4rec_tf.tune.search_space import EPOCHS_KEY, FIXED_KEY, SearchSpace, check_objective, clean_value, \
    params_from_values

TRIAL_FILE = "gru4rec_trial.json"  # per-trial sidecar: seconds, state, error line
PROJECT = "study"
STATES = ("COMPLETED", "PRUNED", "DIVERGED", "FAILED", "RUNNING", "INVALID")
DIVERGENCE_FACTOR = 10.0  # a chunk's mean training loss above this many times the first step's loss: diverged


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


def make_hyperparameters(base: GRU4RecParams, space: SearchSpace):
    """The KerasTuner search space: one entry per searched parameter and the fixed parameters as one string."""
    hp = keras_tuner.HyperParameters()
    for dim in space.dimensions:
        if dim.kind == "choice":
            hp.Choice(dim.name, list(dim.values))
        elif dim.kind == "int":
            hp.Int(dim.name, dim.low, dim.high, step=dim.step, sampling="log" if dim.log else "linear")
        else:
            hp.Float(dim.name, dim.low, dim.high, step=dim.step, sampling="log" if dim.log else "linear")
    hp.Fixed(FIXED_KEY, base.to_string())
    return hp


def make_oracle(objective: str, hyperparameters, max_trials: int, algorithm: str = "bayesian", seed: int = 42,
                initial: Sequence[Mapping[str, Any]] = ()):
    """KerasTuner's Bayesian or random oracle; its first ``len(initial)`` trials run the given searched values
    (as Optuna's ``enqueue_trial``; e.g. the best-known configuration), the later ones are the oracle's own."""
    objective = keras_tuner.Objective(objective, direction="max")
    common = dict(objective=objective, max_trials=max_trials, hyperparameters=hyperparameters, seed=seed,
                  tune_new_entries=False, allow_new_entries=False, max_retries_per_trial=0,
                  max_consecutive_failed_trials=max(3, max_trials))
    if algorithm == "bayesian":
        return _seeded(keras_tuner.oracles.BayesianOptimizationOracle)(
            initial, num_initial_points=max(2, min(10, max_trials // 3)), **common)
    if algorithm == "random":
        return _seeded(keras_tuner.oracles.RandomSearchOracle)(initial, **common)
    raise ValueError(f"algorithm must be bayesian or random, got {algorithm!r}")


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
    """

    def __init__(self, base: GRU4RecParams, space: SearchSpace, objective: str, epochs: int, *, max_trials: int,
                 directory: str, algorithm: str = "bayesian", seed: int = 42, prune_after: int = 4,
                 timeout_s: float | None = None, training: TrainOptions | None = None,
                 evaluation: EvalOptions | None = None, overwrite: bool = False,
                 divergence_factor: float = DIVERGENCE_FACTOR, initial: Sequence[Mapping[str, Any]] = ()):
        if not divergence_factor >= 0:
            raise ValueError(f"divergence_factor must be >= 0, got {divergence_factor}")
        training = training or TrainOptions()
        if training.checkpoint_dir is not None:
            raise ValueError("training.checkpoint_dir must be None: the trials are different runs and cannot share "
                             "one checkpoint directory")
        self.divergence_factor = float(divergence_factor)
        self.base, self.space, self.objective, self.epochs = base, space, check_objective(objective), int(epochs)
        self.prune_after, self.timeout_s = prune_after, timeout_s
        # trials log no progress lines (the tuner logs one line per trial)
        self.training = dataclasses.replace(training, epochs=self.epochs, log_every_s=1e9)
        self.evaluation = evaluation or EvalOptions()
        oracle = make_oracle(self.objective, make_hyperparameters(base, space), max_trials, algorithm, seed,
                             initial)
        super().__init__(oracle, directory=os.path.dirname(os.path.abspath(directory)) or ".",
                         project_name=os.path.basename(os.path.abspath(directory)), overwrite=overwrite)
        self.oracle.max_trials = max_trials  # a resumed study's total is this run's --trials
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

    def pre_create_trial(self):
        if self.timeout_s is not None and time.monotonic() - self._started >= self.timeout_s:
            raise _Timeout()

    def run_trial(self, trial, train_data=None, valid_data=None, vocab=None, **kwargs):
        """Trains one configuration; reports the objective after every epoch; prunes; FAILED on any error."""
        del kwargs
        from gru4rec_tf.train import routine  # pylint: disable=g-import-not-at-top  (imports TensorFlow)
        params = params_from_values(trial.hyperparameters.values, epochs=self.epochs)
        started = time.monotonic()
        k = int(self.objective.partition("@")[2])
        validation = routine.Validation(valid_data, metric=self.objective, cutoffs=(k,),
                                        mode=self.evaluation.eval_mode, batch_size=self.evaluation.eval_batch_size)

        def on_epoch_end(epoch, metrics):
            value = float(metrics[self.objective])
            if not math.isfinite(value):
                raise FloatingPointError(f"the objective {self.objective} is {value} after epoch {epoch + 1}")
            report = {name: float(v) for name, v in metrics.items()}
            report["seconds"] = time.monotonic() - started
            self.oracle.update_trial(trial.trial_id, report, step=epoch + 1)
            if epoch + 1 < self.epochs:
                self._maybe_prune(trial, epoch + 1)

        try:
            routine.train(train_data, vocab, params, self.training, validation=validation,
                          on_epoch_end=on_epoch_end, on_chunk_end=DivergenceCheck(self.divergence_factor))
        except Pruned as pruned:
            trial.message = f"pruned: {pruned}"
        except Diverged as diverged:
            trial.message = f"diverged: {diverged}"
            self.oracle.update_trial(trial.trial_id, {self.objective: 0.0,
                                                      "seconds": time.monotonic() - started}, step=diverged.epoch)
        except Exception as err:  # pylint: disable=broad-except  (any error fails this trial, not the study)
            message = f"{type(err).__name__}: {err}".splitlines()[0][:500]
            self._write_sidecar(trial, "FAILED", time.monotonic() - started, message)
            raise keras_tuner.errors.FailedTrialError(message) from err
        # nothing to return: the values were reported per epoch

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
        searched = {k: clean_value(v) for k, v in trial.hyperparameters.values.items() if k != FIXED_KEY}
        logging.info("tune: trial %d/%d started: %s", int(trial.trial_id) + 1, self.oracle.max_trials,
                     ",".join(f"{k}={_fmt(v)}" for k, v in searched.items()))

    def on_trial_end(self, trial):
        seconds = time.monotonic() - self._trial_started.pop(trial.trial_id, time.monotonic())
        state = trial_state(trial)
        if state != "FAILED":
            self._write_sidecar(trial, state, seconds, trial.message if state in ("PRUNED", "DIVERGED") else None)
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

    def _write_sidecar(self, trial, state, seconds, message):
        path = os.path.join(self.project_dir, f"trial_{trial.trial_id}", TRIAL_FILE)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with fileio.atomic_write_path(path) as tmp:
            tmp.write_text(json.dumps({"state": state, "seconds": seconds, "message": message}), encoding="utf-8")

    def get_best_hyperparameters(self, num_trials=1):
        """The best trials' HyperParameters, each with its best epoch count as ``gru4rec_epochs``.

        The TFX Tuner writes the first one's config as the ``best_hyperparameters`` artifact, which the Trainer's
        ``run_fn`` turns back into GRU4Rec parameters (:func:`gru4rec_tf.tune.search_space.params_from_values`).
        """
        result = []
        trials = [t for t in self.oracle.get_best_trials(10 ** 6)
                  if trial_state(t, self.project_dir) != "DIVERGED"][:num_trials]
        for trial in trials:
            hp = trial.hyperparameters.copy()
            if trial.status == trial_lib.TrialStatus.COMPLETED and trial.best_step:
                hp.Fixed(EPOCHS_KEY, int(trial.best_step))
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


def best_trial(oracle, project_dir: str | None = None) -> BestTrial | None:
    """The best ended trial (completed or pruned, not diverged), or None when no trial has a value yet."""
    candidates = [t for t in oracle.get_best_trials(10 ** 6) if t.status == trial_lib.TrialStatus.COMPLETED
                  and t.score is not None and trial_state(t, project_dir) != "DIVERGED"]
    if not candidates:
        return None
    trial = candidates[0]
    epochs = int(trial.best_step)
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
    names = [hp.name for hp in oracle.get_space().space if hp.name not in (FIXED_KEY, EPOCHS_KEY)]
    for trial_id in sorted(oracle.trials):
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
        row.update({k: clean_value(values[k]) for k in names if k in values})
        row.update({f"{objective}_epoch{e}": per_epoch.get(e) for e in range(1, epochs + 1)})
        row["message"] = message if state != "COMPLETED" else ""
        rows.append(row)
    return rows


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
