"""Execution path 3 (the reference, for tests and debugging): one Python-level eager call per step.

Each step finds its distinct item rows with ``tf.unique``, computes at full size
(:meth:`~.step_math.StepMath.compute_step`, compiled with XLA on its own when ``jit_compile``) and writes exactly the
rows it touched. The compiled paths (:mod:`.host_steps`, :mod:`.device_steps`) must give the same losses and weights.
"""
import numpy as np
import tensorflow as tf

from gru4rec_tf.data import batching
from gru4rec_tf.train import optimizer as optimizer_lib
from gru4rec_tf.train import step_math as step_math_lib


class EagerSteps:
    """Trains steps one at a time from Python.

    Example:
      >>> eager = EagerSteps(step_math, jit_compile=False)
      >>> states, step_losses = eager.run_steps(schedule, samples, states)       # [K] losses
    """

    def __init__(self, step_math: step_math_lib.StepMath, jit_compile: bool):
        self.step_math = step_math
        # autograph=False: nothing here branches on tensor values, and converting the call tree costs seconds.
        self._compute_step = (tf.function(step_math.compute_step, jit_compile=True, autograph=False) if jit_compile
                              else step_math.compute_step)

    def train_step(self, inputs, targets, valid, samples, states):
        """One training step on ``[B]`` slot vectors; returns ``(step loss, new states)``."""
        row_columns = step_math_lib.step_row_columns(
            targets, samples, valid, tf.ones_like(samples, dtype=tf.bool), inputs, self.step_math.shared_embedding,
            lambda parts: tf.concat(parts, axis=0))
        row_sets = tuple(optimizer_lib.unique_rows(values, mask) for values, mask in row_columns)
        loss, new_states, row_updates = self._compute_step(inputs, targets, valid, samples, states, row_sets)
        self.step_math.write_rows(row_updates)
        return loss, new_states

    def run_steps(self, schedule: batching.BatchSchedule, samples, states):
        """The steps of ``schedule`` with the ``[K, n_sample]`` ``samples``; returns ``(states, [K] step losses)``."""
        step_losses = []
        for k in range(schedule.n_steps):
            reset = tf.constant(schedule.reset[k])[:, tf.newaxis]
            states = tuple(tf.where(reset, tf.zeros_like(s), s) for s in states)
            loss, states = self.train_step(tf.constant(schedule.inputs[k]), tf.constant(schedule.targets[k]),
                                           tf.constant(schedule.valid[k]), samples[k], states)
            step_losses.append(float(loss))
        return states, np.array(step_losses, dtype=np.float32)
