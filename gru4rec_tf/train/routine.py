"""The one training routine: seeds, model, :class:`~gru4rec_tf.train.trainer.Trainer`, epochs, and what they produced.

Every entry point trains through :func:`train` (``gru4rec train``, the TFX Trainer's ``run_fn``, tuning trials, the
benchmarks), so everything around the epochs is written once here:

* **validation and early stopping** (:class:`Validation`): full-catalogue evaluation after every epoch, stop after
  ``patience`` epochs without improvement, and keep the weights of the best epoch;
* **resumable runs** (``options.checkpoint_dir``): a checkpoint after every epoch and every ``checkpoint_every_s``
  seconds; the same call after a kill continues from it and ends with the weights of an uninterrupted run;
* **warm start** (the ``warm_start`` argument): continue a saved model on new data with a grown or changed catalogue;
* **TensorBoard** (``options.tensorboard_dir``): training loss and events/second per chunk, validation metrics per
  epoch;
* **reusing compiled loops** (``options.compile_cache_dir``, :mod:`.compile_cache`): with TensorFlow's persistent
  XLA cache on, item tables are allocated at a rounded-up capacity so that the next day's run loads the compiled
  loop instead of compiling it; the returned model has the real size and the same weights as without the cache;
* a progress bar per epoch on an interactive terminal.

The run's settings are one :class:`~gru4rec_tf.train.options.TrainOptions` (the flags of ``gru4rec train`` and the
pipeline Trainer's ``custom_config`` are derived from it); what is not an option (the validation data, a loaded
warm-start model, callbacks) is passed as an argument.

Example:
  >>> vocab = ItemVocabulary.from_events(train_events)
  >>> options = TrainOptions(seed=42, patience=2)
  >>> result = train(SessionData.from_events(train_events, vocab), vocab, params, options,
  ...                validation=Validation.from_options(SessionData.from_events(valid_events, vocab), options))
  >>> result.best_epoch, result.summary()["valid_history"]
  >>> model_dir.save_model("model/", result.model, result.vocab, seed=result.seed,
  ...                      optimizer_state=result.optimizer_state)
"""
import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from gru4rec_tf.train import checkpoints
from gru4rec_tf.train import compile_cache
from gru4rec_tf.evaluation import full_catalogue
from gru4rec_tf.model import network as model_lib
from gru4rec_tf.train import progress as progress_lib
from gru4rec_tf.train import trainer as trainer_lib
from gru4rec_tf.train import warm_start as warm_start_lib
from gru4rec_tf.evaluation.options import EvalOptions, metric_cutoff
from gru4rec_tf.train.options import (DEFAULT_CUTOFFS, DEFAULT_EARLY_STOPPING_METRIC, DEFAULT_EVAL_BATCH_SIZE,
                                      DEFAULT_EVAL_MODE, DEFAULT_SEED, DEFAULT_STEPS_PER_CALL, TrainOptions)
from gru4rec_tf.params import GRU4RecParams
from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.data.vocabulary import ItemVocabulary


@dataclasses.dataclass
class Validation:
    """Evaluation of a validation split after every epoch, and early stopping on one of its metrics.

    ``metric`` (``recall@K`` or ``mrr@K``; higher is better) picks the best epoch, whose weights the run keeps;
    ``patience`` stops training after that many epochs without improvement (None: run every epoch). The defaults
    are those of :class:`~gru4rec_tf.train.options.TrainOptions` and
    :class:`~gru4rec_tf.evaluation.options.EvalOptions`.

    Example:
      >>> Validation.from_options(valid_data, TrainOptions(patience=2), EvalOptions(eval_mode="conservative"))
    """
    data: SessionData
    metric: str = DEFAULT_EARLY_STOPPING_METRIC
    patience: int | None = None
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS
    mode: str = DEFAULT_EVAL_MODE
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE

    @classmethod
    def from_options(cls, data: SessionData, options: TrainOptions,
                     evaluation: EvalOptions | None = None) -> "Validation":
        """Validation of ``data`` with the early-stopping settings of ``options`` and the ranking of ``evaluation``."""
        evaluation = evaluation or EvalOptions()
        return cls(data, metric=options.early_stopping_metric, patience=options.patience,
                   cutoffs=evaluation.cutoffs, mode=evaluation.eval_mode, batch_size=evaluation.eval_batch_size)

    def __post_init__(self):
        k = metric_cutoff(self.metric, "the early-stopping metric")
        if k not in self.cutoffs:
            self.cutoffs = tuple(sorted(set(self.cutoffs) | {k}))
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.data.n_transitions == 0:
            raise ValueError("the validation data has no event to predict: no session keeps 2 or more events "
                             "of items the model knows")


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` produced: the model (best epoch's weights with validation), its vocabulary, history."""
    model: model_lib.GRU4Rec
    vocab: ItemVocabulary
    params: GRU4RecParams
    seed: int
    history: list[trainer_lib.EpochStats]
    train_events: int  # transitions (events with a successor in their session) per epoch
    optimizer_state: dict = dataclasses.field(default_factory=dict, repr=False)
    valid_history: list[dict] = dataclasses.field(default_factory=list)
    best_epoch: int | None = None  # 1-based, with validation
    stopped_early: bool = False
    warm_start: warm_start_lib.WarmStartReport | None = None
    resumed_from_epoch: float | None = None  # epochs already done when a checkpoint was resumed
    identity: dict = dataclasses.field(default_factory=dict)  # checkpoints.run_identity of this run

    @property
    def train_seconds(self) -> float:
        return sum(h.seconds for h in self.history)

    @property
    def train_events_per_sec(self) -> float:
        seconds = self.train_seconds
        return sum(h.events for h in self.history) / seconds if seconds else 0.0

    def summary(self) -> dict:
        """JSON-ready description: parameters, data size, per-epoch loss and time, validation, warm start."""
        out = {
            "epochs": len(self.history), "n_items": len(self.vocab), "params": self.params.to_dict(),
            "seed": self.seed, "train_events": self.train_events, "train_seconds": self.train_seconds,
            "train_events_per_sec": self.train_events_per_sec,
            "epoch_loss": [h.loss for h in self.history], "epoch_seconds": [h.seconds for h in self.history],
        }
        if self.valid_history:
            out.update(best_epoch=self.best_epoch, epochs_run=len(self.history), valid_history=self.valid_history,
                       stopped_early=self.stopped_early)
        if self.warm_start is not None:
            out["warm_start"] = self.warm_start.to_dict()
        if self.resumed_from_epoch is not None:
            out["resumed_from_epoch"] = self.resumed_from_epoch
        return out


def use_device_sampling(requested: bool | None = None) -> bool:
    """Whether training draws its samples inside the compiled loop: ``requested``, or when it is None, whether
    TensorFlow sees a GPU (on CPU the host path is faster; on an accelerator no step should wait for the host)."""
    if requested is not None:
        return bool(requested)
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    logging.info("negative samples and distinct rows: %s", "inside the compiled loop (a GPU is visible)" if on_gpu
                 else "on the host (no GPU; faster on CPU)")
    return on_gpu


def build_trainer(support, params: GRU4RecParams, *, seed: int = DEFAULT_SEED,
                  steps_per_call: int = DEFAULT_STEPS_PER_CALL,
                  jit_compile: bool = True, capacity: int | None = None,
                  device_sampling: bool = False) -> trainer_lib.Trainer:
    """A new model (initialised from ``seed``) and its :class:`~gru4rec_tf.train.trainer.Trainer` (``.model``).

    ``capacity`` (> ``len(support)``): the item tables get that many rows; the first ``len(support)`` hold exactly
    the initial values of an unpadded model, the others are zero and never sampled (see :func:`unpadded_model`).
    """
    tf.random.set_seed(seed)
    model = model_lib.GRU4Rec(len(support), params, seed=seed)
    if capacity is not None and capacity > len(support):
        model = _padded(model, capacity, params, seed)
    return trainer_lib.Trainer(model, support, params, seed=seed, steps_per_call=steps_per_call,
                               jit_compile=jit_compile, device_sampling=device_sampling)


def _item_table_positions(model) -> set[int]:
    tables = {v.ref() for v in model.item_tables}
    return {i for i, v in enumerate(model.trainable_variables) if v.ref() in tables}


def _padded(model, capacity: int, params, seed: int):
    padded = model_lib.GRU4Rec(capacity, params, seed=seed)
    tables = _item_table_positions(padded)
    for i, (source, target) in enumerate(zip(model.trainable_variables, padded.trainable_variables, strict=True)):
        value = source.numpy()
        if i in tables:
            value = np.concatenate([value, np.zeros((capacity - len(value),) + value.shape[1:], value.dtype)])
        target.assign(value)
    return padded


def unpadded_model(model, n_items: int):
    """``model`` itself when it has ``n_items`` rows, else a copy holding only the first ``n_items`` item rows."""
    if model.n_items == n_items:
        return model
    out = model_lib.GRU4Rec(n_items, model.hparams)
    tables = _item_table_positions(model)
    for i, (source, target) in enumerate(zip(model.trainable_variables, out.trainable_variables, strict=True)):
        target.assign(source.numpy()[:n_items] if i in tables else source.numpy())
    return out


def _unpadded_arrays(arrays: dict, model, n_items: int) -> dict:
    """Checkpoint-style arrays (``var/i``, ``acc/i``, ``vel/i``) with the item tables cut to ``n_items`` rows."""
    if model.n_items == n_items:
        return arrays
    tables = _item_table_positions(model)
    return {k: v[:n_items] if int(k.partition("/")[2]) in tables else v for k, v in arrays.items()}


def train(train_data: SessionData, vocab: ItemVocabulary, params: GRU4RecParams, options: TrainOptions | None = None,
          *, validation: Validation | None = None, warm_start=None,
          on_epoch_end: Callable[[int, dict], None] | None = None,
          on_chunk_end: Callable[[trainer_lib.EpochProgress], None] | None = None) -> TrainResult:
    """Trains GRU4Rec on ``train_data`` for at most ``options.epochs`` (default ``params.n_epochs``) epochs.

    Args:
      train_data, vocab: the sessions and their vocabulary (with warm start: :func:`warm_start.warm_vocabulary`).
      options: the run's settings (:class:`~gru4rec_tf.train.options.TrainOptions`; default: its defaults):
        ``seed``, ``steps_per_call``, ``jit_compile``, ``log_every_s``;
        ``device_sampling``: draw the negative samples and find each step's distinct rows inside the compiled loop
        (:class:`~.trainer.Trainer`) instead of on the host; None (default): inside the loop when a GPU is
        visible, so that no step waits for the host, else on the host, which is faster on CPU
        (:func:`use_device_sampling`);
        ``checkpoint_dir``: resume from / write checkpoints (:mod:`gru4rec_tf.train.checkpoints`), also every
        ``checkpoint_every_s`` seconds inside an epoch;
        ``tensorboard_dir``: write TensorBoard scalars there;
        ``compile_cache_dir``: TensorFlow's persistent XLA cache there (:func:`compile_cache.enable`; it must be set
        before TensorFlow's first operation in the process, else a warning). Whenever the cache is on (also via
        ``TF_XLA_FLAGS``) and ``jit_compile``, item tables are padded to :func:`compile_cache.item_capacity` during
        training; the returned model is that of an unpadded run (the distinct-row budget, rounded up with the
        cache on, changes results by float rounding only).
        Its ``early_stopping_metric`` and ``patience`` are read by :meth:`Validation.from_options`, not here.
      validation: evaluate after every epoch, keep the best epoch's weights, stop early (:class:`Validation`).
      warm_start: a loaded saved model (:class:`~gru4rec_tf.model.model_dir.SavedGRU4Rec`) to start from.
      on_epoch_end: ``on_epoch_end(epoch, metrics)`` after every epoch's validation (e.g. a tuner's pruning);
        it may raise to stop the run.
      on_chunk_end: ``on_chunk_end(progress)`` after every compiled chunk of ``steps_per_call`` steps, with the
        epoch's :class:`~.trainer.EpochProgress` (``last_chunk_losses``: that chunk's step losses; e.g. a
        tuner's divergence check); it may raise to stop the run.

    Raises:
      ValueError: a checkpoint of another run, or parameters that do not fit the warm-start model.
      FloatingPointError: the loss became NaN or infinite.
    """
    options = options or TrainOptions()
    seed = options.seed
    n_epochs = params.n_epochs if options.epochs is None else options.epochs
    if options.compile_cache_dir:
        compile_cache.enable(options.compile_cache_dir)  # before anything starts TensorFlow (use_device_sampling does)
    device_sampling = use_device_sampling(options.device_sampling)
    capacity = compile_cache.item_capacity(len(vocab)) if options.jit_compile and compile_cache.enabled() else None
    gru_trainer = build_trainer(vocab.support, params, seed=seed, steps_per_call=options.steps_per_call,
                                jit_compile=options.jit_compile, capacity=capacity, device_sampling=device_sampling)
    report = None
    if warm_start is not None:
        report = warm_start_lib.carry_over(warm_start, gru_trainer, vocab, source=warm_start.source)
        logging.info("warm start: %d items carried over, %d new, %d dropped", report.carried_items,
                     report.new_items, report.dropped_items)
    identity = checkpoints.run_identity(params, seed, options.steps_per_call, train_data, vocab,
                                        report.source if report else None, device_sampling=device_sampling)
    checkpoint_identity = dict(identity)  # the run's identity (recorded with the model) is that of the unpadded run
    if gru_trainer.model.n_items != len(vocab):  # a checkpoint holds the padded tables: same capacity to resume
        checkpoint_identity["item_capacity"] = gru_trainer.model.n_items
    store, state = _restore(options.checkpoint_dir, gru_trainer, checkpoint_identity)
    resumed_from = None if state.epoch == 0 and state.progress is None else _epochs_done(state)
    logging.info("training on %d events, %d sessions, %d items; params %s", train_data.n_events,
                 train_data.n_sessions, len(vocab), params.to_string())
    loop = _EpochLoop(gru_trainer, gru_trainer.make_schedule(train_data), n_epochs, state, validation, store,
                      options.checkpoint_every_s, options.tensorboard_dir, options.log_every_s, on_epoch_end,
                      on_chunk_end)
    loop.run()
    if state.best_weights is not None:
        checkpoints.assign_variable_arrays(gru_trainer, state.best_weights)
        logging.info("kept the weights of epoch %d (best %s %.4f)", state.best_epoch, validation.metric,
                     state.best_value)
    history = [trainer_lib.EpochStats(**h) for h in state.history]
    arrays = _unpadded_arrays(checkpoints.variable_arrays(gru_trainer), gru_trainer.model, len(vocab))
    result = TrainResult(model=unpadded_model(gru_trainer.model, len(vocab)), vocab=vocab, params=params, seed=seed,
                         history=history, train_events=train_data.n_transitions,
                         optimizer_state={k: v for k, v in arrays.items() if not k.startswith("var/")},
                         valid_history=state.valid_history, best_epoch=state.best_epoch,
                         stopped_early=state.stopped_early, warm_start=report, resumed_from_epoch=resumed_from,
                         identity=identity)
    logging.info("trained %d epoch(s) in %.1f s (%.0f events/s)", len(history), result.train_seconds,
                 result.train_events_per_sec)
    return result


def _epochs_done(state: checkpoints.RunState) -> float:
    if state.progress is None:
        return float(state.epoch)
    return state.epoch + state.progress.next_chunk / max(state.progress.n_chunks, 1)


def _restore(checkpoint_dir, gru_trainer, identity):
    """``(CheckpointStore or None, RunState)``: the checkpoint's state (variables set) or a new run's."""
    if not checkpoint_dir:
        return None, checkpoints.RunState()
    store = checkpoints.CheckpointStore(checkpoint_dir, identity)
    store.check_writable()
    loaded = store.load()
    if loaded is None:
        return store, checkpoints.RunState()
    state, arrays = loaded
    checkpoints.assign_variable_arrays(gru_trainer, arrays)
    logging.info("resuming from %s: %.2f epoch(s) done", store.path, _epochs_done(state))
    return store, state


class _EpochLoop:
    """The epochs of one :func:`train` call, with validation, checkpoints, TensorBoard and the progress bar."""

    def __init__(self, gru_trainer, schedule, n_epochs, state, validation, store, checkpoint_every_s,
                 tensorboard_dir, log_every_s, on_epoch_end, on_chunk_end=None):
        self.trainer, self.schedule, self.n_epochs, self.state = gru_trainer, schedule, n_epochs, state
        self.on_chunk_end = on_chunk_end
        self.validation, self.store, self.checkpoint_every_s = validation, store, checkpoint_every_s
        self.on_epoch_end, self.log_every_s = on_epoch_end, log_every_s
        self.writer = tf.summary.create_file_writer(tensorboard_dir) if tensorboard_dir else None
        self.evaluator = (full_catalogue.Evaluator(gru_trainer.model, validation.batch_size,
                                                   n_items=gru_trainer.n_items)
                          if validation else None)
        self.bar = None
        self.last_checkpoint = time.monotonic()
        self.steps_per_epoch = schedule.n_steps

    def run(self) -> None:
        state = self.state
        while state.epoch < self.n_epochs and not state.stopped_early:
            epoch = state.epoch
            self._train_epoch(epoch, state.progress)
            self._end_epoch(epoch)
        if self.writer is not None:
            self.writer.flush()

    def _train_epoch(self, epoch: int, resume) -> None:
        if progress_lib.interactive():
            self.bar = progress_lib.EpochBar(epoch, self.n_epochs, self.schedule.n_transitions)
        log_every_s = math.inf if self.bar else self.log_every_s
        try:
            stats = self.trainer.train_epoch(self.schedule, epoch, log_every_s, progress=resume,
                                             after_chunk=self._after_chunk)
        finally:
            if self.bar:
                self.bar.close()
                self.bar = None
        logging.info("epoch %d/%d: loss %.4f, %.1f s, %.0f events/s", epoch + 1, self.n_epochs, stats.loss,
                     stats.seconds, stats.events_per_sec)
        self.state.history.append(dataclasses.asdict(stats))
        self.state.epoch, self.state.progress = epoch + 1, None

    def _after_chunk(self, progress) -> None:
        self.state.progress = progress
        if self.bar:
            self.bar.update(progress.events, progress.seconds)
        if self.writer is not None:
            step = progress.epoch * self.steps_per_epoch + progress.steps
            with self.writer.as_default(step=step):
                tf.summary.scalar("train/loss", float(progress.last_chunk_losses.mean()))
                tf.summary.scalar("train/events_per_second", progress.events / max(progress.seconds, 1e-9))
        if self.store is not None and not progress.done and \
                time.monotonic() - self.last_checkpoint >= self.checkpoint_every_s:
            self._checkpoint()
        if self.on_chunk_end is not None:
            self.on_chunk_end(progress)

    def _end_epoch(self, epoch: int) -> None:
        state, metrics = self.state, {}
        if self.validation is not None:
            metrics = self._validate(epoch)
        if self.writer is not None:
            with self.writer.as_default(step=(epoch + 1) * self.steps_per_epoch):
                tf.summary.scalar("train/epoch_loss", state.history[-1]["loss"])
                for name, value in metrics.items():
                    tf.summary.scalar(f"valid/{name}", value)
        if self.store is not None:
            self._checkpoint()
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch, metrics)

    def _validate(self, epoch: int) -> dict:
        validation, state = self.validation, self.state
        evaluated = self.evaluator.evaluate(validation.data, validation.cutoffs, validation.mode)
        metrics = {k: v for k, v in evaluated.items() if "@" in k}
        state.valid_history.append(metrics)
        value = metrics[validation.metric]
        if state.best_value is None or value > state.best_value:
            state.best_value, state.best_epoch = value, epoch + 1
            state.best_weights = checkpoints.variable_arrays(self.trainer)
        logging.info("epoch %d/%d: validation %s %.4f (best %.4f at epoch %d)", epoch + 1, self.n_epochs,
                     validation.metric, value, state.best_value, state.best_epoch)
        if validation.patience is not None and state.epochs_without_improvement >= validation.patience:
            state.stopped_early = True
            logging.info("early stop: no improvement of %s for %d epoch(s)", validation.metric, validation.patience)
        return metrics

    def _checkpoint(self) -> None:
        self.store.save(self.trainer, self.state)
        self.last_checkpoint = time.monotonic()
