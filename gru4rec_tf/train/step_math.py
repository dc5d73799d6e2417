"""The math of one training step, shared by every execution path of the :class:`~gru4rec_tf.train.trainer.Trainer`.

A step scores its distinct output item rows (targets, shared negative samples and, with a shared embedding, the
inputs), takes the loss and all gradients, applies the dense updates and returns the new values of the touched item
rows. How the steps are driven (host-prepared chunks, sampling inside the compiled loop, one eager call per step)
is the business of :mod:`.host_steps`, :mod:`.device_steps` and :mod:`.eager_steps`; they all compute through
:meth:`StepMath.compute_step`, so the paths agree to float rounding.
"""
import tensorflow as tf

_XE_LOSSES = ("cross-entropy", "xe_logit")


def step_row_columns(targets, samples, valid, sample_valid, inputs, shared_embedding: bool, concat) -> tuple:
    """The ``(values, mask)`` occurrences of each item-indexed table's rows in a step (or in many steps).

    The output table's occurrences are ``[targets, samples]`` and, with a shared embedding, the inputs too; a
    separate input embedding gets its own ``(inputs, valid)``. ``concat`` joins a list along the column axis
    (``tf.concat(parts, 0)`` for one step's ``[B]`` vectors, ``np.concatenate(parts, axis=1)`` for ``[K, B]`` arrays).

    Example:
      >>> step_row_columns(targets, samples, valid, np.ones_like(samples, bool), inputs, False,
      ...                  lambda parts: np.concatenate(parts, axis=1))
      ((targets_and_samples, their_mask), (inputs, valid))
    """
    cols, col_valid = concat([targets, samples]), concat([valid, sample_valid])
    if shared_embedding:
        return (concat([cols, inputs]), concat([col_valid, valid])),
    return (cols, col_valid), (inputs, valid)


class StepMath:
    """Forward pass, loss, gradients and Adagrad-momentum updates of one session-parallel step.

    Holds what a step reads and writes: the model, the sampler (for logQ), the loss layer, the optimizer and the
    dropout generator. The item-indexed variables (``sparse_vars``) get new rows, the others (``dense_vars``) dense
    updates.

    Example:
      >>> step_math = StepMath(model, params, sampler, loss_layer, optimizer, dropout_rng)
      >>> loss, new_states, row_updates = step_math.compute_step(inputs, targets, valid, samples, states, row_sets)
      >>> step_math.write_distinct_rows(row_updates)
    """

    def __init__(self, model, params, sampler, loss_layer, optimizer, dropout_rng):
        self.model, self.sampler, self.loss_layer = model, sampler, loss_layer
        self.optimizer, self.dropout_rng = optimizer, dropout_rng
        self.shared_embedding = model.embedding_mode == "shared"
        self.sparse_vars = model.item_tables
        sparse = {v.ref() for v in self.sparse_vars}
        self.dense_vars = [v for v in model.trainable_variables if v.ref() not in sparse]
        self.use_logq = params.loss in _XE_LOSSES and params.logq > 0

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
        shared = self.shared_embedding
        batch, n_cols = _dim(targets, 0), _dim(targets, 0) + _dim(samples, 0)
        item_rows = row_sets[0]
        n_rows = _dim(item_rows.unique, 0)
        target_weight = tf.math.unsorted_segment_sum(tf.cast(valid, tf.float32), item_rows.position[:batch], n_rows)
        sample_weight = tf.math.unsorted_segment_sum(tf.ones_like(samples, tf.float32),
                                                     item_rows.position[batch:n_cols], n_rows)
        log_q_target, log_q_sample = self.sampler.item_log_q(item_rows.unique) if self.use_logq else (None, None)
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
        grads = tape.gradient(loss, watched + self.dense_vars)
        grads[:len(watched)] = [tf.convert_to_tensor(g) for g in grads[:len(watched)]]  # gathers give IndexedSlices
        for var, grad in zip(self.dense_vars, grads[len(watched):], strict=True):
            if grad is not None:
                opt.apply_dense(var, grad)
        updates = [opt.coalesced_rows(model.item_vectors, item_rows, grads[0])]
        if not shared:
            updates.append(opt.coalesced_rows(model.input_table, input_row_set, grads[2]))
        output_row = (target_weight + sample_weight > 0) if shared else None
        updates.append(opt.coalesced_rows(model.item_bias, item_rows, grads[1], touched=output_row))
        return loss, new_states, updates

    def write_distinct_rows(self, row_updates) -> None:
        """Writes every row of ``row_updates`` (padding included: static shapes) into the item-indexed variables."""
        for var, update in zip(self.sparse_vars, row_updates, strict=True):
            self.optimizer.write_distinct_rows(var, update)

    def write_rows(self, row_updates) -> None:
        """Writes only the real rows (the first ``n_unique``) of ``row_updates``: the eager reference's writes."""
        for var, update in zip(self.sparse_vars, row_updates, strict=True):
            self.optimizer.write_rows(var, update)


def _dim(tensor, axis: int):
    """``tensor``'s size along ``axis``: a Python int when static (no graph op), else a scalar tensor."""
    size = tensor.shape[axis]
    return size if size is not None else tf.shape(tensor)[axis]

