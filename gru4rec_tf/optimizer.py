"""Adagrad with heavy-ball momentum and sparse row updates (spec §6)."""
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

    def apply_sparse(self, var, indices, values):
        """Updates the rows ``indices`` of ``var`` with per-occurrence gradient rows ``values`` (coalesced).

        After coalescing the rows are unique, so every slot and the parameter are written with ``scatter_update``
        of the new rows (a row copy; several times faster on CPU than ``scatter_add``).
        """
        unique, position = tf.unique(indices)
        grad = tf.math.unsorted_segment_sum(values, position, tf.size(unique))
        acc, vel = self.slots(var)
        acc_rows = tf.gather(acc, unique) + tf.square(grad)
        acc.scatter_update(tf.IndexedSlices(acc_rows, unique))
        step = -self.learning_rate * grad / tf.sqrt(acc_rows + ADAGRAD_EPSILON)
        if vel is not None:
            step = self.momentum * tf.gather(vel, unique) + step
            vel.scatter_update(tf.IndexedSlices(step, unique))
        var.scatter_update(tf.IndexedSlices(tf.gather(var, unique) + step, unique))


def _slot_name(var, suffix):
    return var.name.split(":")[0].replace("/", "_") + "_" + suffix
