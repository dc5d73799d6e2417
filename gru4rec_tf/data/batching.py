"""Session-parallel mini-batch schedule (spec §1).

Each of the ``batch_size`` slots of a mini-batch holds one session. At every step a slot feeds its current event and
is trained to predict the next event of the same session. When a slot's session is exhausted it takes the next
unused session (in session order, i.e. by first timestamp) and its hidden state is zeroed before that session's
first step. When no session is left, the slot becomes invalid for the rest of the epoch: the batch shrinks.

The whole epoch is precomputed as dense ``[n_steps, batch_size]`` arrays so that a compiled loop can run many steps
without returning to Python. An invalid slot is *masked*, not padded: its row yields no loss, its target is not an
output column and none of its parameter rows is touched (see :mod:`gru4rec_tf.train.trainer`), which is exactly the same
computation as removing the row, as the official implementations do.
"""
import dataclasses
import heapq

import numpy as np


@dataclasses.dataclass(frozen=True)
class BatchSchedule:
    """A precomputed epoch of session-parallel mini-batches.

    Attributes:
      inputs: int32 ``[n_steps, batch_size]`` input item index of each slot at each step (0 where invalid).
      targets: int32 ``[n_steps, batch_size]`` next item index (the training target / item to rank).
      valid: bool ``[n_steps, batch_size]``; False where the slot has no session left.
      reset: bool ``[n_steps, batch_size]``; True where the slot starts a new session at this step, i.e. its hidden
        state must be zeroed before the step (equivalently, after the previous session's last step).
      session_index: int32 ``[n_steps, batch_size]`` index (in session order) of the session in each slot, -1 where
        invalid.

    Example:
      >>> sched = make_schedule(np.array([0, 1, 2, 3, 4]), np.array([0, 3, 5]), batch_size=2)
      >>> sched.inputs.tolist(), sched.targets.tolist()
      ([[0, 3], [1, 0]], [[1, 4], [2, 0]])
    """

    inputs: np.ndarray
    targets: np.ndarray
    valid: np.ndarray
    reset: np.ndarray
    session_index: np.ndarray

    @property
    def n_steps(self) -> int:
        return self.inputs.shape[0]

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[1]

    @property
    def n_transitions(self) -> int:
        return int(self.valid.sum())

    def n_chunks(self, max_steps: int) -> int:
        """Number of chunks :meth:`chunks` yields."""
        return -(-self.n_steps // max_steps)

    def chunks(self, max_steps: int):
        """Yields consecutive sub-schedules of at most ``max_steps`` steps (for compiled multi-step calls)."""
        for begin in range(0, self.n_steps, max_steps):
            yield self.steps(begin, min(begin + max_steps, self.n_steps))

    def steps(self, begin: int, end: int) -> "BatchSchedule":
        """The sub-schedule of steps ``[begin, end)``."""
        return BatchSchedule(*(getattr(self, f.name)[begin:end] for f in dataclasses.fields(self)))


def _assign_sessions(session_lengths: np.ndarray, batch_size: int):
    """Returns (slot, first_step) of every session, following the official slot refill order.

    A session of length n occupies its slot for n - 1 steps. Slots that free up at the same step take the next
    sessions in slot order, as in the official loop (``for idx in finished_mask``).
    """
    n_sessions = len(session_lengths)
    slot = np.full(n_sessions, -1, dtype=np.int64)
    first_step = np.zeros(n_sessions, dtype=np.int64)
    free_at = [(0, s) for s in range(batch_size)]  # (step the slot becomes free, slot); heap order = refill order
    heapq.heapify(free_at)
    for session in range(n_sessions):
        step, s = heapq.heappop(free_at)
        slot[session] = s
        first_step[session] = step
        heapq.heappush(free_at, (step + int(session_lengths[session]) - 1, s))
    return slot, first_step


def _truncate_single_row_tail(valid: np.ndarray, reset: np.ndarray) -> int:
    """Number of steps kept when sampling is off.

    The official loop checks, each time slots are refilled, whether fewer than 2 rows remain (a single row would
    have no negatives) and then stops. A refill happens before step t when some slot starts a session there or
    has just run out of sessions.
    """
    refill = reset[1:].any(axis=1) | (valid[:-1] & ~valid[1:]).any(axis=1)
    too_few = np.flatnonzero(refill & (valid[1:].sum(axis=1) < 2))
    return int(too_few[0]) + 1 if len(too_few) else valid.shape[0]


def make_schedule(item_idx: np.ndarray, session_offsets: np.ndarray, batch_size: int,
                  stop_below_two_rows: bool = False) -> BatchSchedule:
    """Builds the session-parallel schedule of one epoch.

    Args:
      item_idx: item indices of all events, session after session, in session order.
      session_offsets: ``n_sessions + 1`` start offsets into ``item_idx``.
      batch_size: number of slots ``B``.
      stop_below_two_rows: end the epoch when fewer than two slots remain active (the official rule when
        ``n_sample == 0``, since a single row would have no negatives).

    Raises:
      ValueError: on a non-positive batch size, inconsistent offsets or a session shorter than 2 events.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    offsets = np.asarray(session_offsets, dtype=np.int64)
    items = np.asarray(item_idx)
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(items):
        raise ValueError("session_offsets must start at 0 and end at len(item_idx)")
    lengths = np.diff(offsets)
    if np.any(lengths < 2):
        raise ValueError(f"every session needs >= 2 events; session {int(np.argmax(lengths < 2))} has "
                         f"{int(lengths[np.argmax(lengths < 2)])}")
    slot, first_step = _assign_sessions(lengths, batch_size)
    n_steps = int(np.max(first_step + lengths - 1)) if len(lengths) else 0

    n_trans = lengths - 1
    session_of_transition = np.repeat(np.arange(len(lengths)), n_trans)
    position = np.arange(n_trans.sum()) - np.repeat(np.cumsum(n_trans) - n_trans, n_trans)
    steps = first_step[session_of_transition] + position
    slots = slot[session_of_transition]
    event = offsets[session_of_transition] + position

    shape = (n_steps, batch_size)
    inputs = np.zeros(shape, dtype=np.int32)
    targets = np.zeros(shape, dtype=np.int32)
    valid = np.zeros(shape, dtype=bool)
    reset = np.zeros(shape, dtype=bool)
    session_index = np.full(shape, -1, dtype=np.int32)
    inputs[steps, slots] = items[event]
    targets[steps, slots] = items[event + 1]
    valid[steps, slots] = True
    reset[steps, slots] = position == 0
    session_index[steps, slots] = session_of_transition
    schedule = BatchSchedule(inputs, targets, valid, reset, session_index)
    if stop_below_two_rows:
        schedule = schedule.steps(0, _truncate_single_row_tail(valid, reset))
    return schedule
