"""Training loop: session-parallel steps compiled into multi-step TensorFlow calls (spec §1, §3-§6).

:class:`Trainer` is the front: it holds the model, the sampler, the optimizer and the dropout generator, and trains
epochs chunk by chunk (``steps_per_call`` steps per call of a compiled function), resumable after any chunk
(:class:`EpochProgress`). How the steps of a chunk run is one of three execution paths, each in its own module:

* :mod:`.host_steps` (default, fastest on CPU): the shared negative samples and the distinct item rows of a chunk are
  prepared in a background thread while the previous chunk trains in one compiled ``tf.while_loop``;
* :mod:`.device_steps` (``device_sampling``, for accelerators): samples and distinct rows inside the compiled loop;
* :mod:`.eager_steps`: the plain one-step-at-a-time reference that tests compare against.

All three compute a step with :class:`~.step_math.StepMath`; the compiled ones size it by the distinct-row budget
(:mod:`.row_budget`).
"""
import dataclasses
import time

import numpy as np
import tensorflow as tf
from absl import logging

from gru4rec_tf.data import batching
from gru4rec_tf.model import losses
from gru4rec_tf.train import device_steps as device_steps_lib
from gru4rec_tf.train import eager_steps as eager_steps_lib
from gru4rec_tf.train import host_steps as host_steps_lib
from gru4rec_tf.train import optimizer as optimizer_lib
from gru4rec_tf.train.options import DEFAULT_SEED, DEFAULT_STEPS_PER_CALL
from gru4rec_tf.train import row_budget as row_budget_lib
from gru4rec_tf.train import sampling
from gru4rec_tf.train import step_math as step_math_lib


@dataclasses.dataclass
class EpochStats:
    """What one epoch did: mean step loss, transitions trained, wall seconds, transitions per second."""
    epoch: int
    loss: float
    events: int
    seconds: float

    @property
    def events_per_sec(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


@dataclasses.dataclass
class EpochProgress:
    """Where an epoch stands after ``next_chunk`` of its ``n_chunks`` chunks: enough to resume it exactly.

    ``states`` are the hidden states of the batch slots, ``sampler_state`` and ``dropout_state`` the random
    generators' states at that point (numpy arrays); ``loss_sum``, ``steps``, ``events`` and ``seconds`` count
    the chunks done. ``last_chunk_losses`` holds the step losses of the latest chunk (not needed to resume).
    """
    epoch: int
    next_chunk: int
    n_chunks: int
    states: list[np.ndarray]
    sampler_state: np.ndarray
    dropout_state: np.ndarray
    loss_sum: float = 0.0
    steps: int = 0
    events: int = 0
    seconds: float = 0.0
    last_chunk_losses: np.ndarray | None = None

    @property
    def done(self) -> bool:
        return self.next_chunk >= self.n_chunks

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.steps, 1)


class Trainer:
    """Trains a :class:`~gru4rec_tf.model.network.GRU4Rec` with the GRU4Rec recipe.

    Example:
      >>> trainer = Trainer(model, support=vocab.support, params=params, seed=42)
      >>> history = trainer.fit(train_data)          # one EpochStats per epoch

    With ``device_sampling``, the negative samples (:meth:`~gru4rec_tf.train.sampling.PopularitySampler.draw_in_graph`,
    alias method) and the distinct rows of each step (:func:`~gru4rec_tf.train.distinct_rows.step_distinct_rows`) are
    computed inside the compiled loop, so nothing per step runs on the host (for accelerators); the default
    prepares them on the host in a prefetch thread, which is faster on CPU.
    """

    def __init__(self, model, support, params, seed: int = DEFAULT_SEED, steps_per_call: int = DEFAULT_STEPS_PER_CALL,
                 jit_compile: bool = True, device_sampling: bool = False):
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}")
        if not 0 < len(support) <= model.n_items:  # rows beyond the support: capacity padding (compile_cache)
            raise ValueError(f"support has {len(support)} items but the model has {model.n_items}")
        self.model, self.params, self.steps_per_call = model, params, steps_per_call
        self.n_items = len(support)
        self.sampler = sampling.PopularitySampler(support, params.sample_alpha, params.n_sample, seed=seed,
                                                  table_rows=model.n_items)
        self.loss_layer = losses.TopKRankingLoss(params.loss, params.final_act, params.batch_size,
                                                 bpreg=params.bpreg, logq=params.logq)
        self.optimizer = optimizer_lib.AdagradMomentum(params.learning_rate, params.momentum)
        self.optimizer.build(model.trainable_variables)
        self.dropout_rng = tf.random.Generator.from_seed(seed + 1)
        self.step_math = step_math_lib.StepMath(model, params, self.sampler, self.loss_layer, self.optimizer,
                                           self.dropout_rng)
        self.row_budget = row_budget_lib.RowBudget(params.batch_size, params.n_sample, self.step_math.shared_embedding,
                                                   table_rows=model.n_items, n_items=self.n_items,
                                                   sampler_cdf=self.sampler.cdf)
        self.host_steps = host_steps_lib.HostSteps(self.step_math, self.row_budget, params, steps_per_call, jit_compile)
        self.device_steps = device_steps_lib.DeviceSteps(self.step_math, self.row_budget, params, steps_per_call,
                                                         jit_compile)
        self.eager_steps = eager_steps_lib.EagerSteps(self.step_math, jit_compile)
        self.device_sampling = bool(device_sampling)

    # -- the execution paths (see the module docstring) ----------------------------------------------------
    def distinct_rows(self, schedule: batching.BatchSchedule, samples) -> tuple:
        """The distinct item rows of every step of ``schedule`` (:meth:`.host_steps.HostSteps.distinct_rows`)."""
        return self.host_steps.distinct_rows(schedule, samples)

    def run_steps(self, schedule: batching.BatchSchedule, samples, states, rows: tuple = None):
        """Trains ``schedule`` with host-prepared ``samples`` (and ``rows``) in the compiled loop; returns
        ``(states, [K] step losses)`` (:meth:`.host_steps.HostSteps.run_steps`)."""
        return self.host_steps.run_steps(schedule, samples, states, rows)

    def run_steps_sampling_in_loop(self, schedule: batching.BatchSchedule, states):
        """Trains ``schedule``, sampling inside the compiled loop; returns ``(states, [K] step losses, [K, n_sample]
        the samples drawn)`` (:meth:`.device_steps.DeviceSteps.run_steps`). With the same samples,
        :meth:`run_steps` computes exactly the same steps."""
        return self.device_steps.run_steps(schedule, states)

    def run_steps_eagerly(self, schedule: batching.BatchSchedule, samples, states):
        """Reference path: the same steps, one Python-level eager call per step (for tests and debugging)."""
        return self.eager_steps.run_steps(schedule, samples, states)

    # -- epochs ---------------------------------------------------------------------------------------------
    def make_schedule(self, data) -> batching.BatchSchedule:
        """The epoch schedule of ``data`` (a :class:`~gru4rec_tf.data.session_data.SessionData`)."""
        return batching.make_schedule(data.item_idx, data.session_offsets, self.params.batch_size,
                                      stop_below_two_rows=self.params.n_sample == 0)

    def start_epoch(self, schedule: batching.BatchSchedule, epoch: int) -> "EpochProgress":
        """The progress of an epoch before its first chunk."""
        return EpochProgress(epoch=epoch, next_chunk=0, n_chunks=schedule.n_chunks(self.steps_per_call),
                             states=[s.numpy() for s in self.model.initial_states(self.params.batch_size)],
                             sampler_state=self.sampler.rng_state(), dropout_state=self.dropout_rng.state.numpy())

    def train_epoch(self, schedule: batching.BatchSchedule, epoch: int = 0, log_every_s: float = 10.0,
                    progress: "EpochProgress" = None, after_chunk=None):
        """Trains one epoch over ``schedule``; returns :class:`EpochStats`.

        ``progress`` (default: the start of the epoch) resumes an interrupted epoch: the random generators, hidden
        states and running loss are set from it and training continues with chunk ``progress.next_chunk``, so the
        epoch ends exactly as an uninterrupted one. ``after_chunk(progress)`` is called after every chunk with the
        new :class:`EpochProgress` (e.g. to write a checkpoint or a TensorBoard point).
        """
        progress = progress or self.start_epoch(schedule, epoch)
        self.sampler.set_rng_state(progress.sampler_state)
        self.dropout_rng.reset(progress.dropout_state)
        resumed_states = tuple(tf.constant(s) for s in progress.states)
        start = last_log = time.perf_counter()
        resumed_seconds, resumed_events = progress.seconds, progress.events
        path = self.device_steps if self.device_sampling else self.host_steps
        chunk_results = path.train_chunks(schedule, progress.next_chunk, resumed_states)
        for chunk, states, step_losses, sampler_state in chunk_results:
            now = time.perf_counter()
            progress = dataclasses.replace(
                progress, next_chunk=progress.next_chunk + 1, states=[s.numpy() for s in states],
                sampler_state=sampler_state, dropout_state=self.dropout_rng.state.numpy(),
                loss_sum=progress.loss_sum + float(np.sum(step_losses, dtype=np.float64)),
                steps=progress.steps + chunk.n_steps, events=progress.events + chunk.n_transitions,
                seconds=resumed_seconds + now - start, last_chunk_losses=step_losses)
            if after_chunk is not None:
                after_chunk(progress)
            if now - last_log >= log_every_s and progress.steps < schedule.n_steps:
                rate = (progress.events - resumed_events) / (now - start)
                eta = (schedule.n_transitions - progress.events) / rate
                logging.info("epoch %d: %d/%d steps, loss %.4f, %.0f events/s, ETA %.0f s", epoch + 1,
                             progress.steps, schedule.n_steps, progress.mean_loss, rate, eta)
                last_log = now
        if not np.isfinite(progress.mean_loss):
            raise FloatingPointError(f"epoch {epoch + 1}: the loss is {progress.mean_loss}; lower learning_rate or "
                                     "check data")
        return EpochStats(epoch=epoch, loss=progress.mean_loss, events=progress.events, seconds=progress.seconds)

    def fit(self, train_data, n_epochs: int = None, log_every_s: float = 10.0):
        """Trains ``n_epochs`` (default: ``params.n_epochs``) epochs; returns the list of :class:`EpochStats`."""
        n_epochs = self.params.n_epochs if n_epochs is None else n_epochs
        schedule = self.make_schedule(train_data)
        history = []
        for epoch in range(n_epochs):
            stats = self.train_epoch(schedule, epoch, log_every_s)
            logging.info("epoch %d/%d: loss %.4f, %.1f s, %.0f events/s", epoch + 1, n_epochs, stats.loss,
                         stats.seconds, stats.events_per_sec)
            history.append(stats)
        return history

