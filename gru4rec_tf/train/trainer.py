"""Training loop: session-parallel steps compiled into multi-step TensorFlow calls (spec §1, §3-§6).

One call of a compiled function (XLA when ``jit_compile``) runs a whole chunk of steps (``steps_per_call``) of the
precomputed epoch schedule inside a ``tf.while_loop``: hidden-state resets, the forward pass, the loss on the
sampled columns, gradients, and the sparse/dense Adagrad-momentum updates all stay in one compiled computation, so
Python is visited once per chunk rather than once per step. The shared negative samples of a chunk and the distinct
item rows of its steps (:mod:`.distinct_rows`) are prepared in a background thread while the previous chunk
trains. :meth:`Trainer.run_steps_eagerly` is the plain one-step-at-a-time reference that tests compare against.
"""
import concurrent.futures
import dataclasses
import itertools
import time

import numpy as np
import tensorflow as tf
from absl import logging

from gru4rec_tf.data import batching
from gru4rec_tf.train import compile_cache
from gru4rec_tf.train import distinct_rows as distinct_rows_lib
from gru4rec_tf.model import losses
from gru4rec_tf.train import optimizer as optimizer_lib
from gru4rec_tf.train import sampling

_XE_LOSSES = ("cross-entropy", "xe_logit")


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

    def __init__(self, model, support, params, seed: int = 42, steps_per_call: int = 256,
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
        self._sparse_vars = model.item_tables
        sparse = {v.ref() for v in self._sparse_vars}
        self._dense_vars = [v for v in model.trainable_variables if v.ref() not in sparse]
        self._use_logq = params.loss in _XE_LOSSES and params.logq > 0
        self._row_budget = self._distinct_row_budget()
        self._jit_compile = jit_compile
        # autograph=False: nothing here branches on tensor values, and converting the call tree costs seconds.
        self._compute_step = (tf.function(self.compute_step, jit_compile=True, autograph=False) if jit_compile
                              else self.compute_step)
        self._loops = {}  # number of distinct output rows -> compiled multi-step function
        self._loop_compiled = False  # the budget's loop was compiled ahead of the first chunk (_compile_loop)
        self.device_sampling = bool(device_sampling)
        self._device_loop_fn = None

    def _distinct_row_budget(self, n_draws: int = 200):
        """A static number of distinct item rows that almost every step stays within, or None.

        Popularity sampling repeats items, so a step has far fewer distinct rows than ``B + n_sample`` columns
        (e.g. ~1,360 of 2,112 for rsc15_100k config A). Computing on a budget sized from simulated draws (the
        targets and inputs may add ``B`` rows each) saves that share of the work; a step above it runs the full size.
        """
        params = self.params
        if params.n_sample == 0:
            return None
        full = self._output_row_width()
        granularity = max(8, 2 ** int(np.log2(full / 32)))  # 64 for config A's 2,112 columns and inputs
        draws = np.sort(np.searchsorted(self.sampler.cdf, np.random.default_rng(0).random((n_draws, params.n_sample))),
                        axis=1)
        distinct = 1 + int(np.max(np.count_nonzero(np.diff(draws, axis=1), axis=1)))  # distinct values per draw
        extra = full - params.n_sample  # the targets (and, with a shared embedding, the inputs)
        budget = min(self.n_items, -(-int(distinct * 1.02 + extra) // granularity) * granularity)
        if compile_cache.enabled():  # a coarser size, so that the next day's loop has the same shapes
            budget = min(self.n_items, compile_cache.round_up(budget))
        return budget if budget < 0.9 * full else None

    def _output_row_width(self) -> int:
        """Occurrences of output-table rows in a step: targets, samples and, with a shared embedding, inputs."""
        batch = self.params.batch_size
        return batch * (2 if self.model.embedding_mode == "shared" else 1) + self.params.n_sample

    # -- one step (reference path) ------------------------------------------------------------------------
    def train_step(self, inputs, targets, valid, samples, states):
        """One training step on ``[B]`` slot vectors; returns ``(step loss, new states)``.

        The reference form of a step: its distinct item rows come from ``tf.unique``, it computes at full size and
        writes exactly the rows it touched. :meth:`run_steps` computes the same thing for many steps at once.
        """
        cols = tf.concat([targets, samples], axis=0)
        col_valid = tf.concat([valid, tf.ones_like(samples, dtype=tf.bool)], axis=0)
        if self.model.embedding_mode == "shared":
            row_sets = (optimizer_lib.unique_rows(tf.concat([cols, inputs], 0), tf.concat([col_valid, valid], 0)),)
        else:
            row_sets = (optimizer_lib.unique_rows(cols, col_valid), optimizer_lib.unique_rows(inputs, valid))
        loss, new_states, row_updates = self._compute_step(inputs, targets, valid, samples, states, row_sets)
        for var, update in zip(self._sparse_vars, row_updates, strict=True):
            self.optimizer.write_rows(var, update)
        return loss, new_states

    def compute_step(self, inputs, targets, valid, samples, states, row_sets):
        """Forward pass, step loss, gradients, dense updates, and the new rows of the item-indexed variables.

        The output columns ``[targets, samples]`` (and, with shared embedding, the inputs) are reduced to their
        distinct items (``row_sets``); each distinct item is scored once and the loss weights it by its number of
        columns (:func:`~gru4rec_tf.model.losses.weighted_loss_per_row`, exactly the column formulation). The gradients
        of the item rows therefore come out coalesced (duplicates summed, the recommended semantics), and only rows
        of active slots and of the shared samples get new values, so inactive slots touch nothing. All gradients are
        taken before any update, as in the reference. Static shapes throughout: compiled with XLA when enabled.
        """
        model, opt = self.model, self.optimizer
        shared = model.embedding_mode == "shared"
        batch, n_cols = _dim(targets, 0), _dim(targets, 0) + _dim(samples, 0)
        item_rows = row_sets[0]
        n_rows = _dim(item_rows.unique, 0)
        target_weight = tf.math.unsorted_segment_sum(tf.cast(valid, tf.float32), item_rows.position[:batch], n_rows)
        sample_weight = tf.math.unsorted_segment_sum(tf.ones_like(samples, tf.float32),
                                                     item_rows.position[batch:n_cols], n_rows)
        log_q_target, log_q_sample = self.sampler.item_log_q(item_rows.unique) if self._use_logq else (None, None)
        item_table = tf.gather(model.item_vectors, item_rows.unique)
        bias_table = tf.gather(model.item_bias, item_rows.unique)
        watched = [item_table, bias_table]
        if not shared:
            input_row_set = row_sets[1]
            watched.append(tf.gather(model.input_table, input_row_set.unique))
        with tf.GradientTape() as tape:
            tape.watch(watched)
            input_rows = (tf.gather(item_table, item_rows.position[n_cols:]) if shared
                          else tf.gather(watched[2], input_row_set.position))
            hidden, new_states = model.step_from_rows(input_rows, states, training=True, rng=self.dropout_rng)
            scores = tf.matmul(hidden, item_table, transpose_b=True) + bias_table
            loss = self.loss_layer.from_item_scores(scores, target_weight, sample_weight, item_rows.position[:batch],
                                                    valid, log_q_target, log_q_sample)
        grads = tape.gradient(loss, watched + self._dense_vars)
        grads[:len(watched)] = [tf.convert_to_tensor(g) for g in grads[:len(watched)]]  # gathers give IndexedSlices
        for var, grad in zip(self._dense_vars, grads[len(watched):], strict=True):
            if grad is not None:
                opt.apply_dense(var, grad)
        updates = [opt.coalesced_rows(model.item_vectors, item_rows, grads[0])]
        if not shared:
            updates.append(opt.coalesced_rows(model.input_table, input_row_set, grads[2]))
        output_row = (target_weight + sample_weight > 0) if shared else None
        updates.append(opt.coalesced_rows(model.item_bias, item_rows, grads[1], touched=output_row))
        return loss, new_states, updates

    # -- many steps -------------------------------------------------------------------------------------------
    def distinct_rows(self, schedule: batching.BatchSchedule, samples) -> tuple:
        """The distinct item rows of every step of ``schedule``: one :class:`ChunkRows` per item-indexed table.

        The output rows cover ``[targets, samples]`` (and the inputs, with a shared embedding); a separate input
        embedding gets its own rows. Inactive slots are masked out.
        """
        samples, n_items = np.asarray(samples, dtype=np.int32), self.model.n_items
        cols = np.concatenate([schedule.targets, samples], axis=1)
        col_valid = np.concatenate([schedule.valid, np.ones_like(samples, dtype=bool)], axis=1)
        if self.model.embedding_mode == "shared":
            return (distinct_rows_lib.distinct_rows(np.concatenate([cols, schedule.inputs], axis=1),
                                                    np.concatenate([col_valid, schedule.valid], axis=1), n_items),)
        return (distinct_rows_lib.distinct_rows(cols, col_valid, n_items),
                distinct_rows_lib.distinct_rows(schedule.inputs, schedule.valid, n_items))

    def run_steps(self, schedule: batching.BatchSchedule, samples, states, rows: tuple = None):
        """Trains the steps of ``schedule`` with the compiled loop; returns ``(states, [K] step losses)``.

        ``samples`` is the ``[K, n_sample]`` store of shared negatives; ``rows`` (default: computed here) is
        :meth:`distinct_rows` of the same steps. Each block of ``steps_per_call`` steps is one call of the compiled
        loop (two or more in the rare block where some steps exceed the distinct-row budget).
        """
        samples = np.asarray(samples, dtype=np.int32)
        step_losses = []
        for begin in range(0, schedule.n_steps, self.steps_per_call):
            end = min(begin + self.steps_per_call, schedule.n_steps)
            block, block_samples = schedule.steps(begin, end), samples[begin:end]
            block_rows = (self.distinct_rows(block, block_samples) if rows is None
                          else tuple(r.steps(begin, end) for r in rows))
            states, losses = self._run_block(block, block_samples, block_rows, states)
            step_losses.append(losses)
        return states, np.concatenate(step_losses) if step_losses else np.zeros([0], np.float32)

    def _run_block(self, block: batching.BatchSchedule, samples, rows, states):
        """Runs at most ``steps_per_call`` steps; inputs are zero-padded to that many (static shapes for XLA)."""
        size = self.steps_per_call

        def padded(array):
            if len(array) == size:  # every chunk but an epoch's last
                return array
            return np.concatenate([array, np.zeros((size - len(array),) + array.shape[1:], array.dtype)])

        arrays = [padded(a) for a in (block.inputs, block.targets, block.valid, block.reset, samples)]
        padded_rows = tuple(distinct_rows_lib.ChunkRows(*(padded(field) for field in r)) for r in rows)
        step_losses = []
        for begin, end, n_rows in self._segments(rows[0]):
            states, losses = self._loop(n_rows)(*arrays, padded_rows, tuple(states), begin, end)
            step_losses.append(losses.numpy()[begin:end])
        return states, np.concatenate(step_losses)

    def _segments(self, output_rows: distinct_rows_lib.ChunkRows):
        """``(begin, end, n_rows)`` runs of steps: the budget where steps stay within it, else the full size."""
        full, n_steps, budget = output_rows.unique.shape[1], len(output_rows.n_unique), self._budget_rows()
        if budget is None:
            return [(0, n_steps, full)]
        sizes = np.where(output_rows.n_unique <= budget, budget, full)
        bounds = np.flatnonzero(np.diff(sizes)) + 1
        begins, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [n_steps]])
        return [(int(b), int(e), int(sizes[b])) for b, e in zip(begins, ends, strict=True)]

    def _loop(self, n_rows: int):
        """The multi-step function compiled for ``n_rows`` distinct output rows per step (built on first use).

        Every argument has a static shape (``steps_per_call`` steps), so XLA compiles it once per ``n_rows``.
        """
        if n_rows not in self._loops:
            size, batch, n_sample = self.steps_per_call, self.params.batch_size, self.params.n_sample
            width = self._output_row_width()
            rows_spec = lambda w: distinct_rows_lib.ChunkRows(  # noqa: E731
                tf.TensorSpec([size, min(w, self.model.n_items)], tf.int32), tf.TensorSpec([size, w], tf.int32),
                tf.TensorSpec([size], tf.int32))
            row_specs = (rows_spec(width),) if self.model.embedding_mode == "shared" else (rows_spec(width),
                                                                                            rows_spec(batch))
            step_spec = lambda dtype, w=batch: tf.TensorSpec([size, w], dtype)  # noqa: E731
            state_specs = tuple(tf.TensorSpec([batch, layer.units], tf.float32) for layer in self.model.gru_layers)

            def loop(inputs, targets, valid, reset, samples, rows, states, begin, end):
                return self._run_loop(n_rows, inputs, targets, valid, reset, samples, rows, states, begin, end)

            function = tf.function(loop, jit_compile=self._jit_compile, autograph=False, input_signature=[
                step_spec(tf.int32), step_spec(tf.int32), step_spec(tf.bool), step_spec(tf.bool),
                step_spec(tf.int32, n_sample), row_specs, state_specs, tf.TensorSpec([], tf.int32),
                tf.TensorSpec([], tf.int32)])
            if self._jit_compile and compile_cache.enabled():  # names the persistent XLA cache can find again
                config = f"{self.params.to_string()}|{self.model.n_items}|{n_rows}|{size}"
                with compile_cache.stable_trace_names(config):
                    function.get_concrete_function()
            self._loops[n_rows] = function
        return self._loops[n_rows]

    def _full_rows(self) -> int:
        """The distinct output rows a step can have: its output columns, at most the table's rows."""
        return min(self._output_row_width(), self.model.n_items)

    def _budget_rows(self) -> int | None:
        """The distinct-row budget when it is below the full size, else None (every step runs at full size)."""
        return self._row_budget if self._row_budget is not None and self._row_budget < self._full_rows() else None

    def _budget_loop(self):
        """The (traced) loop of the chunks whose steps stay within the distinct-row budget: almost all of them."""
        return self._loop(self._budget_rows() or self._full_rows())

    def _compile_loop(self, function) -> None:
        """Compiles (or loads from the persistent cache) the traced loop ``function``, once, by a call that runs
        no step (``begin == end == 0``: no variable is read or written).

        Called while the prefetch thread prepares the first chunk, so that the compilation overlaps it. (Tracing
        does not: the uids a concurrent TensorFlow op takes would change the traced names, and so the cache key.)
        """
        if self._loop_compiled:
            return
        self._loop_compiled = True
        function(*tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype), function.input_signature))

    def _run_loop(self, n_rows, inputs, targets, valid, reset, samples, rows, states, begin, end):
        """Body of the compiled function: steps ``[begin, end)`` of ``[steps_per_call, B]`` arrays.

        Returns ``(states, [steps_per_call] losses)``; only the losses of steps ``[begin, end)`` are set.
        """
        def body(k, states, step_losses):
            at = lambda array: tf.gather(array, k)  # noqa: E731  (fewer graph ops than array[k]: a shorter trace)
            states = tuple(tf.where(at(reset)[:, tf.newaxis], tf.zeros_like(s), s) for s in states)
            row_sets = tuple(optimizer_lib.UniqueRows(at(r.unique)[:n_rows] if i == 0 else at(r.unique),
                                                      at(r.position), at(r.n_unique)) for i, r in enumerate(rows))
            loss, states, row_updates = self.compute_step(at(inputs), at(targets), at(valid), at(samples), states,
                                                          row_sets)
            for var, update in zip(self._sparse_vars, row_updates, strict=True):
                self.optimizer.write_distinct_rows(var, update)
            return k + 1, states, tf.tensor_scatter_nd_update(step_losses, [[k]], [loss])

        _, states, step_losses = tf.while_loop(lambda k, *_: k < end, body,
                                               (begin, tuple(states), tf.zeros([self.steps_per_call], tf.float32)))
        return states, step_losses

    # -- many steps, sampling inside the loop ------------------------------------------------------------------
    def run_steps_sampling_in_loop(self, schedule: batching.BatchSchedule, states):
        """Trains the steps of ``schedule``, drawing each step's samples and finding its distinct rows inside the
        compiled loop; returns ``(states, [K] step losses, [K, n_sample] the samples drawn)``.

        The samples come from the sampler's generator (its state after the call resumes the stream); with the
        same samples, :meth:`run_steps` computes exactly the same steps.
        """
        size, step_losses, step_samples = self.steps_per_call, [], []
        for begin in range(0, schedule.n_steps, size):
            block = schedule.steps(begin, min(begin + size, schedule.n_steps))
            arrays = [a if len(a) == size else np.concatenate([a, np.zeros((size - len(a),) + a.shape[1:], a.dtype)])
                      for a in (block.inputs, block.targets, block.valid, block.reset)]
            states, losses, samples = self._device_loop()(*arrays, tuple(states), tf.constant(block.n_steps))
            step_losses.append(losses.numpy()[:block.n_steps])
            step_samples.append(samples.numpy()[:block.n_steps])
        if not step_losses:
            return states, np.zeros([0], np.float32), np.zeros([0, self.params.n_sample], np.int32)
        return states, np.concatenate(step_losses), np.concatenate(step_samples)

    def _device_loop(self):
        """The multi-step function that samples and finds distinct rows inside (compiled on first use)."""
        if self._device_loop_fn is None:
            size, batch = self.steps_per_call, self.params.batch_size
            step_spec = lambda dtype: tf.TensorSpec([size, batch], dtype)  # noqa: E731
            state_specs = tuple(tf.TensorSpec([batch, layer.units], tf.float32) for layer in self.model.gru_layers)
            self._device_loop_fn = tf.function(
                self._run_sampling_loop, jit_compile=self._jit_compile, autograph=False,
                input_signature=[step_spec(tf.int32), step_spec(tf.int32), step_spec(tf.bool), step_spec(tf.bool),
                                 state_specs, tf.TensorSpec([], tf.int32)])
        return self._device_loop_fn

    def _run_sampling_loop(self, inputs, targets, valid, reset, states, end):
        """Body of :meth:`_device_loop`: steps ``[0, end)``; each draws its samples, finds its distinct rows
        (as :meth:`distinct_rows` does) and runs on the distinct-row budget when its output rows fit, else at full
        size (as :meth:`_segments` chooses)."""
        n_items, n_sample = self.model.n_items, self.params.n_sample
        shared = self.model.embedding_mode == "shared"
        full, budget = self._full_rows(), self._budget_rows()

        def body(k, states, step_losses, step_samples):
            states = tuple(tf.where(reset[k][:, tf.newaxis], tf.zeros_like(s), s) for s in states)
            samples = self.sampler.draw_in_graph() if n_sample > 0 else tf.zeros([0], tf.int32)
            cols = tf.concat([targets[k], samples], axis=0)
            col_valid = tf.concat([valid[k], tf.ones([n_sample], tf.bool)], axis=0)
            if shared:
                row_sets = (distinct_rows_lib.step_distinct_rows(tf.concat([cols, inputs[k]], 0),
                                                                 tf.concat([col_valid, valid[k]], 0), n_items),)
            else:
                row_sets = (distinct_rows_lib.step_distinct_rows(cols, col_valid, n_items),
                            distinct_rows_lib.step_distinct_rows(inputs[k], valid[k], n_items))

            def step(n_rows):
                def run():
                    sets = tuple(optimizer_lib.UniqueRows(u[:n_rows] if i == 0 else u, p, n)
                                 for i, (u, p, n) in enumerate(row_sets))
                    loss, new_states, row_updates = self.compute_step(inputs[k], targets[k], valid[k], samples,
                                                                      states, sets)
                    for var, update in zip(self._sparse_vars, row_updates, strict=True):
                        self.optimizer.write_distinct_rows(var, update)
                    return (loss,) + tuple(new_states)
                return run

            if budget is None:
                loss, *new_states = step(full)()
            else:
                loss, *new_states = tf.cond(row_sets[0][2] <= budget, step(budget), step(full))
            if n_sample > 0:
                step_samples = tf.tensor_scatter_nd_update(step_samples, [[k]], samples[tf.newaxis])
            return k + 1, tuple(new_states), tf.tensor_scatter_nd_update(step_losses, [[k]], [loss]), step_samples

        _, states, step_losses, step_samples = tf.while_loop(
            lambda k, *_: k < end, body, (tf.constant(0), tuple(states), tf.zeros([self.steps_per_call], tf.float32),
                                          tf.zeros([self.steps_per_call, n_sample], tf.int32)))
        return states, step_losses, step_samples

    def run_steps_eagerly(self, schedule: batching.BatchSchedule, samples, states):
        """Reference path: the same steps, one Python-level eager call per step (for tests and debugging)."""
        step_losses = []
        for k in range(schedule.n_steps):
            reset = tf.constant(schedule.reset[k])[:, tf.newaxis]
            states = tuple(tf.where(reset, tf.zeros_like(s), s) for s in states)
            loss, states = self.train_step(tf.constant(schedule.inputs[k]), tf.constant(schedule.targets[k]),
                                           tf.constant(schedule.valid[k]), samples[k], states)
            step_losses.append(float(loss))
        return states, np.array(step_losses, dtype=np.float32)

    def make_schedule(self, data) -> batching.BatchSchedule:
        """The epoch schedule of ``data`` (a :class:`~gru4rec_tf.data.session_data.SessionData`)."""
        return batching.make_schedule(data.item_idx, data.session_offsets, self.params.batch_size,
                                      stop_below_two_rows=self.params.n_sample == 0)

    def _prepare(self, chunk):
        """Samples and distinct rows of ``chunk`` (runs in the prefetch thread); None passes through.

        Also returns the sampler's state after drawing this chunk's samples: the state a run resumed after this
        chunk must start from (the thread has usually drawn the next chunk's samples by then).
        """
        if chunk is None:
            return None
        samples = self.sampler.sample(chunk.n_steps).numpy()
        return chunk, samples, self.distinct_rows(chunk, samples), self.sampler.rng_state()

    def _prepared_chunks(self, schedule: batching.BatchSchedule, first_chunk: int = 0):
        """Yields ``(chunk, samples, rows, sampler state)`` from chunk ``first_chunk`` on; the next chunk is
        prepared in a background thread meanwhile.

        Chunks are prepared strictly in order, so the samples are the same stream as without the thread.
        """
        chunks = itertools.islice(schedule.chunks(self.steps_per_call), first_chunk, None)
        loop = self._budget_loop()  # traced before the thread starts: a trace must not race its TensorFlow ops
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gru4rec-prefetch") as pool:
            upcoming = pool.submit(self._prepare, next(chunks, None))
            self._compile_loop(loop)  # while the first chunk is being prepared
            while (prepared := upcoming.result()) is not None:
                upcoming = pool.submit(self._prepare, next(chunks, None))
                yield prepared

    def _chunks(self, schedule: batching.BatchSchedule, first_chunk: int = 0):
        """:meth:`_prepared_chunks`, or with ``device_sampling`` just ``(chunk, None, None, None)``: nothing to
        prepare on the host."""
        if not self.device_sampling:
            yield from self._prepared_chunks(schedule, first_chunk)
            return
        for chunk in itertools.islice(schedule.chunks(self.steps_per_call), first_chunk, None):
            yield chunk, None, None, None

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
        states = tuple(tf.constant(s) for s in progress.states)
        start = last_log = time.perf_counter()
        resumed_seconds, resumed_events = progress.seconds, progress.events
        for chunk, samples, rows, sampler_state in self._chunks(schedule, progress.next_chunk):
            if self.device_sampling:
                states, step_losses, _ = self.run_steps_sampling_in_loop(chunk, states)
                sampler_state = self.sampler.rng_state()
            else:
                states, step_losses = self.run_steps(chunk, samples, states, rows)
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


def _dim(tensor, axis: int):
    """``tensor``'s size along ``axis``: a Python int when static (no graph op), else a scalar tensor."""
    size = tensor.shape[axis]
    return size if size is not None else tf.shape(tensor)[axis]
