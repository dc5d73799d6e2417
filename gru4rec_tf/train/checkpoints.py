"""Resumable training: the whole state of a run in one file, written atomically, refused for another run.

``<checkpoint_dir>/checkpoint.npz`` holds the model's variables, the optimiser's accumulators and velocities, the
sampler's and the dropout's random-generator states, the hidden states of the batch slots, where the epoch stands
(:class:`~gru4rec_tf.train.trainer.EpochProgress`), the epoch and validation history and the best weights so far. It is
replaced with one ``os.replace``, so a kill during a write leaves the previous checkpoint whole.

A checkpoint records what makes a run the same run: the hyperparameters (except ``n_epochs``, which may grow), the
seed, the steps per compiled call and fingerprints of the training data and the vocabulary. Resuming with any of
them changed raises a ``ValueError`` naming each difference.

Example (a small run's identity; ``trainer`` and ``run_state`` come from a training run):
  >>> import pandas as pd
  >>> from gru4rec_tf import params as params_lib
  >>> from gru4rec_tf.data.session_data import SessionData
  >>> from gru4rec_tf.data.vocabulary import ItemVocabulary
  >>> events = pd.DataFrame({"SessionId": [1, 1, 2, 2], "ItemId": [10, 11, 11, 12], "Time": [0., 1., 2., 3.]})
  >>> vocab = ItemVocabulary.from_events(events)
  >>> train_data, params, seed = SessionData.from_events(events, vocab), params_lib.GRU4RecParams(), 42
  >>> store = CheckpointStore("ckpt/", identity=run_identity(params, seed, 256, train_data, vocab))
  >>> sorted(store.identity)
  ['params', 'seed', 'steps_per_call', 'train_data', 'vocabulary', 'warm_start']
  >>> state = store.load()            # None for a new run
  >>> state is None
  True
  >>> store.save(trainer, run_state)  # doctest: +SKIP
"""
import dataclasses
import io
import json
import os

import numpy as np

from gru4rec_tf import fileio
from gru4rec_tf.fingerprint import fingerprint

FORMAT = "gru4rec_tf.checkpoint/1"
FILE_NAME = "checkpoint.npz"


def run_identity(params, seed: int, steps_per_call: int, train_data, vocab, warm_start_source=None,
                 device_sampling: bool = False) -> dict:
    """What must not change between a run and its resumption (``device_sampling`` draws another sample stream; it
    is recorded only when set, so the identities of host-sampling runs are as before)."""
    hyperparameters = {k: v for k, v in params.to_dict().items() if k != "n_epochs"}
    extra = {"device_sampling": True} if device_sampling else {}
    return {**extra, "params": hyperparameters, "seed": int(seed), "steps_per_call": int(steps_per_call),
            "train_data": fingerprint(train_data.item_idx, train_data.session_offsets),
            "vocabulary": fingerprint(vocab.item_ids, vocab.support),
            "warm_start": os.path.abspath(warm_start_source) if warm_start_source else None}


@dataclasses.dataclass
class RunState:
    """Where a training run stands between chunks: enough, with the variables, to continue it exactly.

    ``epoch`` is the epoch in progress (or the next one when ``progress`` is None); ``history`` holds the finished
    epochs (dicts of :class:`~gru4rec_tf.train.trainer.EpochStats` fields), ``valid_history`` one dict of validation
    metrics per finished epoch; ``best_*`` describe the best epoch so far and its weights (early stopping).
    """
    epoch: int = 0
    progress: object | None = None  # trainer.EpochProgress of the unfinished epoch
    history: list[dict] = dataclasses.field(default_factory=list)
    valid_history: list[dict] = dataclasses.field(default_factory=list)
    best_value: float | None = None
    best_epoch: int | None = None
    best_weights: dict | None = None  # variable_arrays() of the best epoch
    stopped_early: bool = False

    @property
    def epochs_without_improvement(self) -> int:
        return 0 if self.best_epoch is None else len(self.valid_history) - self.best_epoch


def variable_arrays(trainer) -> dict:
    """Model variables and optimiser slots as ``{name: array}`` (names by position, stable for equal params)."""
    arrays = {f"var/{i}": v.numpy() for i, v in enumerate(trainer.model.trainable_variables)}
    for i, var in enumerate(trainer.model.trainable_variables):
        acc, vel = trainer.optimizer.slots(var)
        arrays[f"acc/{i}"] = acc.numpy()
        if vel is not None:
            arrays[f"vel/{i}"] = vel.numpy()
    return arrays


def assign_variable_arrays(trainer, arrays) -> None:
    """Sets the model variables and optimiser slots from :func:`variable_arrays` output (and the random
    generators, when ``arrays`` is a checkpoint's)."""
    if "sampler_state" in arrays:
        trainer.sampler.set_rng_state(arrays["sampler_state"])
        trainer.dropout_rng.reset(arrays["dropout_state"])
    for i, var in enumerate(trainer.model.trainable_variables):
        var.assign(arrays[f"var/{i}"])
        acc, vel = trainer.optimizer.slots(var)
        acc.assign(arrays[f"acc/{i}"])
        if vel is not None:
            vel.assign(arrays[f"vel/{i}"])


class CheckpointStore:
    """The checkpoint of one training run in ``directory`` (created when missing)."""

    def __init__(self, directory: str, identity: dict):
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise ValueError(f"--checkpoint_dir {directory} exists and is not a directory")
        self.directory, self.identity = directory, identity
        self.path = os.path.join(directory, FILE_NAME)

    def check_writable(self) -> None:
        """Creates the directory and fails now (not after an epoch) when it cannot be written; removes the temporary
        files of writes that a kill interrupted (the checkpoint itself is always whole)."""
        if fileio.is_remote(self.directory):
            _gfile().makedirs(self.directory)
            return
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as err:
            raise ValueError(f"--checkpoint_dir {self.directory} cannot be created: {err.strerror}") from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise ValueError(f"--checkpoint_dir {self.directory} is not writable")
        for name in os.listdir(self.directory):
            if name.startswith(f".{FILE_NAME}.") and name.endswith(".tmp"):
                os.remove(os.path.join(self.directory, name))

    def load(self) -> tuple | None:
        """``(RunState, variable arrays)`` of the checkpoint, or None when there is none yet."""
        if not (_gfile().exists(self.path) if fileio.is_remote(self.path) else os.path.exists(self.path)):
            return None
        try:
            source = io.BytesIO(_gfile().GFile(self.path, "rb").read()) if fileio.is_remote(self.path) else self.path
            with np.load(source, allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{self.path}: not a readable gru4rec_tf checkpoint ({err})") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"{self.path}: unsupported checkpoint format {meta.get('format')!r}, expected {FORMAT!r}")
        self._check_identity(meta["identity"])
        return self._run_state(meta, arrays), arrays

    def _check_identity(self, stored: dict) -> None:
        differences = []
        for key in sorted(set(stored) | set(self.identity)):
            old, new = stored.get(key), self.identity.get(key)
            if key == "params" and isinstance(old, dict) and isinstance(new, dict):
                differences += [f"{name}: {old.get(name)!r} in the checkpoint, {new.get(name)!r} now"
                                for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
            elif old != new:
                differences.append(f"{key}: {old!r} in the checkpoint, {new!r} now")
        if differences:
            raise ValueError(f"{self.path} is the checkpoint of another run ({'; '.join(differences)}); use another "
                             "--checkpoint_dir, or delete it to start over")

    @staticmethod
    def _run_state(meta: dict, arrays: dict) -> RunState:
        from gru4rec_tf.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
        progress = None
        if meta["progress"] is not None:
            progress = trainer_lib.EpochProgress(
                **meta["progress"], states=[arrays[f"state/{i}"] for i in range(meta["n_states"])],
                sampler_state=arrays["sampler_state"], dropout_state=arrays["dropout_state"])
        best = {key[len("best:"):]: value for key, value in arrays.items() if key.startswith("best:")} or None
        return RunState(epoch=meta["epoch"], progress=progress, history=meta["history"],
                        valid_history=meta["valid_history"], best_value=meta["best_value"],
                        best_epoch=meta["best_epoch"], best_weights=best, stopped_early=meta["stopped_early"])

    def save(self, trainer, state: RunState) -> None:
        """Writes the run's state atomically (the previous checkpoint stays whole until the new one is)."""
        arrays = variable_arrays(trainer)
        progress = state.progress
        progress_meta = None
        if progress is not None:
            progress_meta = {k: getattr(progress, k) for k in ("epoch", "next_chunk", "n_chunks", "loss_sum",
                                                               "steps", "events", "seconds")}
            arrays.update({f"state/{i}": s for i, s in enumerate(progress.states)})
            arrays.update(sampler_state=progress.sampler_state, dropout_state=progress.dropout_state)
        else:  # between epochs: the generators' current states are where the next epoch starts
            arrays.update(sampler_state=trainer.sampler.rng_state(), dropout_state=trainer.dropout_rng.state.numpy())
        arrays.update({f"best:{key}": value for key, value in (state.best_weights or {}).items()})
        meta = {"format": FORMAT, "identity": self.identity, "epoch": state.epoch, "progress": progress_meta,
                "n_states": len(progress.states) if progress is not None else 0, "history": state.history,
                "valid_history": state.valid_history, "best_value": state.best_value, "best_epoch": state.best_epoch,
                "stopped_early": state.stopped_early}
        arrays["meta"] = np.array(json.dumps(meta))
        if fileio.is_remote(self.path):  # an object store: write beside, then rename over (copy + delete on GCS)
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            with _gfile().GFile(self.path + ".tmp", "wb") as handle:
                handle.write(buffer.getvalue())
            _gfile().rename(self.path + ".tmp", self.path, overwrite=True)
            return
        os.makedirs(self.directory, exist_ok=True)
        with fileio.atomic_write_path(self.path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())


def _gfile():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.io.gfile
