"""Execution path 1 (the default, fastest on CPU): chunks prepared on the host, trained by a compiled loop.

For each chunk of ``steps_per_call`` steps, a background thread draws the shared negative samples and finds the
distinct item rows of every step (:func:`~gru4rec_tf.train.distinct_rows.distinct_rows`, one vectorised NumPy sort)
while the previous chunk trains. One call of a compiled function (XLA when ``jit_compile``) then runs the chunk's
steps inside a ``tf.while_loop``: hidden-state resets, :meth:`~.step_math.StepMath.compute_step` and the row
writes all stay in one computation, so Python is visited once per chunk rather than once per step.
"""
import itertools

import numpy as np
import tensorflow as tf

from gru4rec_tf.data import batching
from gru4rec_tf.train import compile_cache
from gru4rec_tf.train import distinct_rows as distinct_rows_lib
from gru4rec_tf.train import optimizer as optimizer_lib
from gru4rec_tf.train import prefetch
from gru4rec_tf.train import step_math as step_math_lib


class HostSteps:
    """Trains chunks of steps whose samples and distinct rows were prepared on the host.

    Example:
      >>> host = HostSteps(step_math, row_budget, params, steps_per_call=256, jit_compile=True)
      >>> states, step_losses = host.run_steps(schedule, samples, states)        # [K] losses
      >>> for chunk, states, step_losses, sampler_state in host.train_chunks(schedule, 0, states): ...
    """

    def __init__(self, step_math: step_math_lib.StepMath, row_budget, params, steps_per_call: int, jit_compile: bool):
        self.step_math, self.row_budget, self.params = step_math, row_budget, params
        self.model, self.sampler = step_math.model, step_math.sampler
        self.steps_per_call, self.jit_compile = steps_per_call, jit_compile
        self._loops = {}  # number of distinct output rows -> compiled multi-step function
        self._loop_compiled = False  # the budget's loop was compiled ahead of the first chunk (compile_once)

    def distinct_rows(self, schedule: batching.BatchSchedule, samples) -> tuple:
        """The distinct item rows of every step of ``schedule``: one :class:`ChunkRows` per item-indexed table.

        The output rows cover ``[targets, samples]`` (and the inputs, with a shared embedding); a separate input
        embedding gets its own rows. Inactive slots are masked out.
        """
        samples = np.asarray(samples, dtype=np.int32)
        row_columns = step_math_lib.step_row_columns(
            schedule.targets, samples, schedule.valid, np.ones_like(samples, dtype=bool), schedule.inputs,
            self.step_math.shared_embedding, lambda parts: np.concatenate(parts, axis=1))
        return tuple(distinct_rows_lib.distinct_rows(values, mask, self.model.n_items) for values, mask in row_columns)

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

    def train_chunks(self, schedule: batching.BatchSchedule, first_chunk: int, states):
        """Trains the chunks of ``schedule`` from ``first_chunk`` on, each prepared in the background while the
        previous one trains; yields ``(chunk, states, [n_steps] step losses, sampler state)`` after each.

        The sampler state is the one right after drawing that chunk's samples: the state a run resumed after the
        chunk must start from (the thread has usually drawn the next chunk's samples by then).
        """
        chunks = itertools.islice(schedule.chunks(self.steps_per_call), first_chunk, None)
        loop = self.loop(self.row_budget.loop_rows)  # traced before the thread starts: no race with its TF ops
        for chunk, samples, rows, sampler_state in prefetch.prefetched(chunks, self._prepare,
                                                                       meanwhile=lambda: self.compile_once(loop)):
            states, step_losses = self.run_steps(chunk, samples, states, rows)
            yield chunk, states, step_losses, sampler_state

    def _prepare(self, chunk):
        """Samples, distinct rows and the sampler's state after drawing them (runs in the prefetch thread)."""
        samples = self.sampler.sample(chunk.n_steps).numpy()
        return chunk, samples, self.distinct_rows(chunk, samples), self.sampler.rng_state()

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
        for begin, end, n_rows in self.row_budget.segments(rows[0]):
            states, losses = self.loop(n_rows)(*arrays, padded_rows, tuple(states), begin, end)
            step_losses.append(losses.numpy()[begin:end])
        return states, np.concatenate(step_losses)

    def loop(self, n_rows: int):
        """The multi-step function compiled for ``n_rows`` distinct output rows per step (built on first use).

        Every argument has a static shape (``steps_per_call`` steps), so XLA compiles it once per ``n_rows``.
        """
        if n_rows not in self._loops:
            function = tf.function(self._loop_function(n_rows), jit_compile=self.jit_compile, autograph=False,
                                   input_signature=self._loop_signature())
            if self.jit_compile and compile_cache.enabled():  # names the persistent XLA cache can find again
                config = f"{self.params.to_string()}|{self.model.n_items}|{n_rows}|{self.steps_per_call}"
                with compile_cache.stable_trace_names(config):
                    function.get_concrete_function()
            self._loops[n_rows] = function
        return self._loops[n_rows]

    def _loop_signature(self) -> list:
        """The static shapes of the loop's arguments: ``steps_per_call`` steps of ``B`` slots."""
        size, batch, n_sample = self.steps_per_call, self.params.batch_size, self.params.n_sample
        width = self.row_budget.output_row_width
        rows_spec = lambda w: distinct_rows_lib.ChunkRows(  # noqa: E731
            tf.TensorSpec([size, min(w, self.model.n_items)], tf.int32), tf.TensorSpec([size, w], tf.int32),
            tf.TensorSpec([size], tf.int32))
        row_specs = (rows_spec(width),) if self.step_math.shared_embedding else (rows_spec(width), rows_spec(batch))
        step_spec = lambda dtype, w=batch: tf.TensorSpec([size, w], dtype)  # noqa: E731
        state_specs = tuple(tf.TensorSpec([batch, layer.units], tf.float32) for layer in self.model.gru_layers)
        return [step_spec(tf.int32), step_spec(tf.int32), step_spec(tf.bool), step_spec(tf.bool),
                step_spec(tf.int32, n_sample), row_specs, state_specs, tf.TensorSpec([], tf.int32),
                tf.TensorSpec([], tf.int32)]

    def _loop_function(self, n_rows: int):
        """The Python function traced into the loop for ``n_rows`` (named ``loop`` in the traced graph)."""
        def loop(inputs, targets, valid, reset, samples, rows, states, begin, end):
            return self._run_loop(n_rows, inputs, targets, valid, reset, samples, rows, states, begin, end)
        return loop

    def compile_once(self, function) -> None:
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
            loss, states, row_updates = self.step_math.compute_step(at(inputs), at(targets), at(valid), at(samples),
                                                               states, row_sets)
            self.step_math.write_distinct_rows(row_updates)
            return k + 1, states, tf.tensor_scatter_nd_update(step_losses, [[k]], [loss])

        _, states, step_losses = tf.while_loop(lambda k, *_: k < end, body,
                                               (begin, tuple(states), tf.zeros([self.steps_per_call], tf.float32)))
        return states, step_losses

