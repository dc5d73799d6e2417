"""Adagrad with heavy-ball momentum and sparse row updates (spec §6)."""
import collections

import tensorflow as tf

ADAGRAD_EPSILON = 1e-6


class AdagradMomentum(tf.Module):
    """Adagrad with classical momentum, as in the official GRU4Rec code.

    For each dense parameter, or each *touched row* of an item-indexed parameter::

        acc ← acc + g²;  ĝ = g / sqrt(acc + 1e-6)
        μ > 0:  v ← μ·v − η·ĝ;  θ ← θ + v        μ = 0:  θ ← θ − η·ĝ

    ``acc`` and ``v`` start at 0; the learning rate is constant. Sparse updates first coalesce duplicate rows
    (summing their gradients, the recommended semantics), then update only those rows, so untouched rows keep their
    accumulator and velocity unchanged.

    Example:
      >>> opt = AdagradMomentum(learning_rate=0.1, momentum=0.0)
      >>> w = tf.Variable(tf.ones([4, 2]))
      >>> opt.build([w])
      >>> opt.apply_sparse(w, tf.constant([1, 1, 3]), tf.ones([3, 2]))
    """

    def __init__(self, learning_rate: float, momentum: float = 0.0, name: str = "adagrad_momentum"):
        super().__init__(name=name)
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.learning_rate, self.momentum = float(learning_rate), float(momentum)
        self._slots = {}

    def build(self, variables):
        """Creates the accumulator (and velocity) slots of ``variables``."""
        for var in variables:
            key = var.ref()
            if key in self._slots:
                continue
            acc = tf.Variable(tf.zeros_like(var), trainable=False, name=_slot_name(var, "acc"))
            vel = (tf.Variable(tf.zeros_like(var), trainable=False, name=_slot_name(var, "vel"))
                   if self.momentum > 0 else None)
            self._slots[key] = (acc, vel)

    def slots(self, var):
        """``(accumulator, velocity or None)`` of ``var``."""
        return self._slots[var.ref()]

    def apply_dense(self, var, grad):
        acc, vel = self.slots(var)
        acc.assign_add(tf.square(grad))
        scaled = grad / tf.sqrt(acc + ADAGRAD_EPSILON)
        if vel is None:
            var.assign_sub(self.learning_rate * scaled)
        else:
            vel.assign(self.momentum * vel - self.learning_rate * scaled)
            var.assign_add(vel)

    def apply_sparse(self, var, indices, values, mask=None):
        """Updates the rows ``indices`` of ``var`` with per-occurrence gradient rows ``values`` (coalesced).

        ``mask`` (bool, same length as ``indices``) drops occurrences: a row none of whose occurrences is kept is
        not touched at all. Equivalent to :meth:`sparse_rows` followed by :meth:`write_rows`.
        """
        self.write_rows(var, self.sparse_rows(var, indices, values, mask))

    def sparse_rows(self, var, indices, values, mask=None) -> "SparseRowUpdate":
        """Computes the new rows of ``var`` and of its slots from per-occurrence gradient rows, without writing.

        Static shapes throughout (padding after ``n_unique``), so this runs inside an XLA-compiled step; only the
        final :meth:`write_rows` needs the dynamic row count.
        """
        if mask is None:
            mask = tf.ones_like(indices, dtype=tf.bool)
        rows = unique_rows(indices, mask)
        kept = tf.reshape(tf.cast(mask, values.dtype), [-1] + [1] * (len(values.shape) - 1))
        grad = tf.math.unsorted_segment_sum(values * kept, rows.position, tf.shape(indices)[0])
        return self.coalesced_rows(var, rows, grad)

    def coalesced_rows(self, var, rows: "UniqueRows", grad, touched=None):
        """The update of ``var`` and its slots for the already coalesced gradient ``grad`` of ``rows.unique``.

        Rows where ``touched`` is False keep their values, accumulator and velocity, and so do padding rows (from
        ``rows.n_unique`` on): their gradient is zero, which leaves value and accumulator as they were, and with
        momentum their velocity is kept explicitly.

        Without momentum a zero gradient changes nothing, so the update is the gradient itself
        (:class:`RowGradient`), applied in place by the writers: one pass over the rows instead of reading the old
        rows, computing new ones and copying them back. With momentum it is the new rows (:class:`SparseRowUpdate`).
        """
        if self.momentum == 0:
            return RowGradient(rows.unique, rows.n_unique, grad)
        acc, vel = self.slots(var)
        old_acc = tf.gather(acc, rows.unique)
        acc_rows = old_acc + tf.square(grad)
        step = -self.learning_rate * grad / tf.sqrt(acc_rows + ADAGRAD_EPSILON)
        vel_rows = None
        if vel is not None:
            old_vel = tf.gather(vel, rows.unique)
            vel_rows = self.momentum * old_vel + step
            step = vel_rows
        old_var = tf.gather(var, rows.unique)
        var_rows = old_var + step
        untouched = None if touched is None else tf.logical_not(touched)
        if vel is not None:  # a zero gradient would still decay a padding row's velocity
            padding = tf.range(tf.shape(rows.unique)[0]) >= rows.n_unique
            untouched = padding if untouched is None else tf.logical_or(untouched, padding)
        if untouched is not None:
            keep = tf.reshape(untouched, [-1] + [1] * (len(var.shape) - 1))
            acc_rows, var_rows = tf.where(keep, old_acc, acc_rows), tf.where(keep, old_var, var_rows)
            vel_rows = None if vel_rows is None else tf.where(keep, old_vel, vel_rows)
        return SparseRowUpdate(rows.unique, rows.n_unique, var_rows, acc_rows, vel_rows)

    def write_rows(self, var, update):
        """Writes the first ``n_unique`` rows of ``update`` into ``var`` and its slots.

        The rows are unique, so ``scatter_update`` (a row copy, several times faster on CPU than ``scatter_add``)
        is exact.
        """
        if isinstance(update, RowGradient):
            n = update.n_unique
            self._apply_row_gradient(var, update.indices[:n, tf.newaxis], update.grad[:n])
            return
        acc, vel = self.slots(var)
        n, indices = update.n_unique, update.indices[:update.n_unique]
        acc.scatter_update(tf.IndexedSlices(update.acc_rows[:n], indices))
        if vel is not None:
            vel.scatter_update(tf.IndexedSlices(update.vel_rows[:n], indices))
        var.scatter_update(tf.IndexedSlices(update.var_rows[:n], indices))

    def write_distinct_rows(self, var, update: "SparseRowUpdate"):
        """Writes every entry of ``update`` into ``var`` and its slots: static shapes, for the compiled loop.

        The indices must be distinct, padding included (:func:`gru4rec_tf.train.distinct_rows.distinct_rows` pads with
        items the step does not use, whose rows :meth:`coalesced_rows` leaves unchanged).
        """
        if isinstance(update, RowGradient):
            self._apply_row_gradient(var, update.indices[:, tf.newaxis], update.grad)
            return
        acc, vel = self.slots(var)
        indices = update.indices[:, tf.newaxis]
        acc.scatter_nd_update(indices, update.acc_rows)
        if vel is not None:
            vel.scatter_nd_update(indices, update.vel_rows)
        var.scatter_nd_update(indices, update.var_rows)


    def _apply_row_gradient(self, var, indices, grad):
        """Adagrad without momentum on distinct rows, in place: ``acc += g²``, then ``θ −= η·g/sqrt(acc + ε)``."""
        acc, _ = self.slots(var)
        acc.scatter_nd_add(indices, tf.square(grad))
        new_acc = tf.gather(acc, indices[:, 0])
        var.scatter_nd_add(indices, -self.learning_rate * grad / tf.sqrt(new_acc + ADAGRAD_EPSILON))


class RowGradient(collections.namedtuple("RowGradient", "indices n_unique grad")):
    """Coalesced gradient rows of distinct indices (only the first ``n_unique`` are real; the rest are zero rows of
    unused items), for an update without momentum, which the writers apply in place."""


class SparseRowUpdate(collections.namedtuple("SparseRowUpdate", "indices n_unique var_rows acc_rows vel_rows")):
    """New rows of an item-indexed variable and its slots; only the first ``n_unique`` entries are real."""


class UniqueRows(collections.namedtuple("UniqueRows", "unique position n_unique")):
    """Distinct row indices padded to a static length: ``unique[:n_unique]`` are the rows, then padding (index 0 from
    :func:`unique_rows`; unused items from :func:`gru4rec_tf.train.distinct_rows.distinct_rows`); ``position[j]`` is the
    slot of occurrence ``j`` in ``unique``."""


def unique_rows(indices, mask) -> UniqueRows:
    """Distinct rows among the occurrences of ``indices`` kept by ``mask``, padded to ``len(indices)``.

    A masked occurrence is mapped to the row of the first kept occurrence, so it adds no row of its own; its values
    must be zero (the caller's gradients of masked slots are) so that it changes no sum either. Uses ``tf.unique``,
    several times faster on CPU than a sort inside XLA, so it runs before the XLA-compiled part of a step.
    """
    size = indices.shape[0] if indices.shape[0] is not None else tf.shape(indices)[0]
    any_kept = tf.reduce_any(mask)
    first_kept = tf.gather(indices, tf.argmax(tf.cast(mask, tf.int32)))
    unique, position = tf.unique(tf.where(mask, indices, first_kept))
    n_unique = tf.where(any_kept, tf.size(unique), 0)
    padded = tf.concat([unique, tf.zeros([size - tf.size(unique)], unique.dtype)], axis=0)
    if isinstance(size, int):
        padded = tf.reshape(padded, [size])
    return UniqueRows(padded, position, n_unique)


def _slot_name(var, suffix):
    return var.name.split(":")[0].replace("/", "_") + "_" + suffix
