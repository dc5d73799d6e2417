"""Execution path 2 (``device_sampling``, for accelerators): sampling and distinct rows inside the compiled loop.

Each step of the compiled ``tf.while_loop`` draws its shared negative samples
(:meth:`~gru4rec_tf.train.sampling.PopularitySampler.draw_in_graph`, alias method), finds its distinct item rows
(:func:`~gru4rec_tf.train.distinct_rows.step_distinct_rows`) and runs :meth:`~.step_math.StepMath.compute_step` on
the distinct-row budget when its output rows fit, else at full size; nothing per step runs on the host. With the
same samples, :mod:`.host_steps` computes exactly the same steps.
"""
import itertools

import numpy as np
import tensorflow as tf

from gru4rec_tf.data import batching
from gru4rec_tf.train import distinct_rows as distinct_rows_lib
from gru4rec_tf.train import optimizer as optimizer_lib
from gru4rec_tf.train import step_math as step_math_lib


class DeviceSteps:
    """Trains chunks of steps that draw their samples and find their distinct rows inside the compiled loop.

    Example:
      >>> device = DeviceSteps(step_math, row_budget, params, steps_per_call=256, jit_compile=True)
      >>> states, step_losses, samples = device.run_steps(schedule, states)     # [K], [K, n_sample]
    """

    def __init__(self, step_math: step_math_lib.StepMath, row_budget, params, steps_per_call: int, jit_compile: bool):
        self.step_math, self.row_budget, self.params = step_math, row_budget, params
        self.model, self.sampler = step_math.model, step_math.sampler
        self.steps_per_call, self.jit_compile = steps_per_call, jit_compile
        self._loop = None  # the compiled multi-step function, built on first use

    def run_steps(self, schedule: batching.BatchSchedule, states):
        """Trains the steps of ``schedule``; returns ``(states, [K] step losses, [K, n_sample] the samples drawn)``.

        The samples come from the sampler's generator (its state after the call resumes the stream).
        """
        size, step_losses, step_samples = self.steps_per_call, [], []
        for begin in range(0, schedule.n_steps, size):
            block = schedule.steps(begin, min(begin + size, schedule.n_steps))
            arrays = [a if len(a) == size else np.concatenate([a, np.zeros((size - len(a),) + a.shape[1:], a.dtype)])
                      for a in (block.inputs, block.targets, block.valid, block.reset)]
            states, losses, samples = self.loop()(*arrays, tuple(states), tf.constant(block.n_steps))
            step_losses.append(losses.numpy()[:block.n_steps])
            step_samples.append(samples.numpy()[:block.n_steps])
        if not step_losses:
            return states, np.zeros([0], np.float32), np.zeros([0, self.params.n_sample], np.int32)
        return states, np.concatenate(step_losses), np.concatenate(step_samples)

    def train_chunks(self, schedule: batching.BatchSchedule, first_chunk: int, states):
        """Trains the chunks of ``schedule`` from ``first_chunk`` on; yields ``(chunk, states, [n_steps] step
        losses, sampler state)`` after each (nothing to prepare on the host)."""
        for chunk in itertools.islice(schedule.chunks(self.steps_per_call), first_chunk, None):
            states, step_losses, _ = self.run_steps(chunk, states)
            yield chunk, states, step_losses, self.sampler.rng_state()

    def loop(self):
        """The multi-step function that samples and finds distinct rows inside (compiled on first use)."""
        if self._loop is None:
            size, batch = self.steps_per_call, self.params.batch_size
            step_spec = lambda dtype: tf.TensorSpec([size, batch], dtype)  # noqa: E731
            state_specs = tuple(tf.TensorSpec([batch, layer.units], tf.float32) for layer in self.model.gru_layers)
            self._loop = tf.function(
                self._run_sampling_loop, jit_compile=self.jit_compile, autograph=False,
                input_signature=[step_spec(tf.int32), step_spec(tf.int32), step_spec(tf.bool), step_spec(tf.bool),
                                 state_specs, tf.TensorSpec([], tf.int32)])
        return self._loop

    def _run_sampling_loop(self, inputs, targets, valid, reset, states, end):
        """Body of :meth:`loop`: steps ``[0, end)``; each draws its samples, finds its distinct rows (as
        :meth:`HostSteps.distinct_rows <.host_steps.HostSteps.distinct_rows>` does) and runs on the distinct-row
        budget when its output rows fit, else at full size (as :meth:`~.row_budget.RowBudget.segments` chooses)."""
        n_items, n_sample, shared = self.model.n_items, self.params.n_sample, self.step_math.shared_embedding
        full, budget = self.row_budget.full_rows, self.row_budget.budget_rows

        def body(k, states, step_losses, step_samples):
            states = tuple(tf.where(reset[k][:, tf.newaxis], tf.zeros_like(s), s) for s in states)
            samples = self.sampler.draw_in_graph() if n_sample > 0 else tf.zeros([0], tf.int32)
            row_columns = step_math_lib.step_row_columns(targets[k], samples, valid[k], tf.ones([n_sample], tf.bool),
                                                         inputs[k], shared,
                                                         lambda parts: tf.concat(parts, axis=0))
            row_sets = tuple(distinct_rows_lib.step_distinct_rows(values, mask, n_items)
                             for values, mask in row_columns)

            def step(n_rows):
                def run():
                    sets = tuple(optimizer_lib.UniqueRows(u[:n_rows] if i == 0 else u, p, n)
                                 for i, (u, p, n) in enumerate(row_sets))
                    loss, new_states, row_updates = self.step_math.compute_step(inputs[k], targets[k], valid[k],
                                                                                samples, states, sets)
                    self.step_math.write_distinct_rows(row_updates)
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
