"""Warm start with a growing catalogue: continue a saved model on new data whose items partly differ.

The new vocabulary holds the items of the new training data (in their first-appearance order, with their new
supports, which drive the popularity sampler) followed, unless ``drop_unseen``, by the saved model's items that the
new data lacks (they stay recommendable; they get a support of 1, the smallest, since they have no new events).
The GRU weights and the rows of every item present in both vocabularies are carried over, with their Adagrad
accumulators and velocities when the saved model has them (``gru4rec train --save_model`` writes them); rows of
new items keep the fresh initialisation of spec §2 (and zero optimiser state).

Only hyperparameters that change no variable's shape or meaning may differ from the saved model's (learning rate,
epochs, loss, sampling, dropout, batch size, ...); the others are refused with a ``ValueError`` naming each one.

Example (a saved model directory and a new day's events; not run here):
  >>> saved = model_dir.load_model("models/day1")                                    # doctest: +SKIP
  >>> vocab = warm_vocabulary(saved.vocab, ItemVocabulary.from_events(day2_events))  # doctest: +SKIP
  >>> trainer = routine.build_trainer(vocab.support, params, seed=42)                # doctest: +SKIP
  >>> report = carry_over(saved, trainer, vocab)     # doctest: +SKIP

The vocabulary step on its own (item 11 comes back, 13 is new, 10 and 12 are kept with a support of 1):
  >>> saved_vocab = ItemVocabulary(np.array([10, 11, 12]), np.array([5, 3, 1]))
  >>> vocab = warm_vocabulary(saved_vocab, ItemVocabulary(np.array([11, 13]), np.array([4, 2])))
  >>> vocab.item_ids, vocab.support
  (array([11, 13, 10, 12]), array([4, 2, 1, 1]))
"""
import dataclasses

import numpy as np

from gru4rec_tf.data.vocabulary import ItemVocabulary

# Hyperparameters that fix the variables' shapes or meaning: they must equal the saved model's.
ARCHITECTURE_PARAMS = ("layers", "embedding", "constrained_embedding", "hidden_act")


@dataclasses.dataclass(frozen=True)
class WarmStartReport:
    """What a warm start carried: items in both vocabularies, items new in this data, saved items dropped."""
    source: str
    carried_items: int
    new_items: int
    dropped_items: int
    optimizer_state: bool  # whether the saved model's optimiser state was carried too

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_compatible(saved_params, params) -> None:
    """Raises ValueError naming every architecture hyperparameter that differs from the saved model's."""
    old, new = saved_params.to_dict(), params.to_dict()
    mismatches = [f"{name}={new[name]!r} (the saved model has {old[name]!r})" for name in ARCHITECTURE_PARAMS
                  if old[name] != new[name]]
    if mismatches:
        raise ValueError("--warm_start: the parameters do not fit the saved model: " + ", ".join(mismatches) +
                         "; only learning and sampling settings may change")


def warm_vocabulary(saved_vocab: ItemVocabulary, data_vocab: ItemVocabulary, drop_unseen: bool = False):
    """The vocabulary of the warm-started model (see the module docstring)."""
    if drop_unseen:
        return data_vocab
    unseen = saved_vocab.item_ids[data_vocab.lookup(saved_vocab.item_ids) < 0]
    if len(unseen) == 0:
        return data_vocab
    if saved_vocab.dtype != data_vocab.dtype:
        raise ValueError(f"--warm_start: the saved model's item IDs are {saved_vocab.dtype} but this data's are "
                         f"{data_vocab.dtype}; item IDs must keep their type")
    ids = np.concatenate([data_vocab.item_ids, unseen])
    support = np.concatenate([data_vocab.support, np.ones(len(unseen), dtype=data_vocab.support.dtype)])
    return ItemVocabulary(ids, support)


def carry_over(saved, trainer, vocab: ItemVocabulary, source: str = "") -> WarmStartReport:
    """Copies the saved model's GRU weights and shared item rows (and optimiser state) into ``trainer``'s model."""
    check_compatible(saved.params, trainer.params)
    old_rows = saved.vocab.lookup(vocab.item_ids)
    carried = old_rows >= 0
    new_positions, old_positions = np.flatnonzero(carried), old_rows[carried]
    old_model, model = saved.model, trainer.model
    item_tables = {v.ref() for v in model.item_tables}
    old_vars, new_vars = old_model.trainable_variables, model.trainable_variables
    for i, (old_var, new_var) in enumerate(zip(old_vars, new_vars, strict=True)):
        rows = (new_positions, old_positions) if new_var.ref() in item_tables else None
        _copy(old_var.numpy(), new_var, rows)
        if saved.optimizer_state is not None:
            for slot, key in zip(trainer.optimizer.slots(new_var), (f"acc/{i}", f"vel/{i}"), strict=True):
                if slot is not None and key in saved.optimizer_state:
                    _copy(saved.optimizer_state[key], slot, rows)
    return WarmStartReport(source=source, carried_items=int(carried.sum()), new_items=int((~carried).sum()),
                           dropped_items=int(len(saved.vocab) - carried.sum()),
                           optimizer_state=saved.optimizer_state is not None)


def _copy(old_value: np.ndarray, variable, rows=None) -> None:
    """Assigns ``old_value`` to ``variable``, or only the rows ``rows = (new_positions, old_positions)``."""
    if rows is None:
        variable.assign(old_value)
        return
    value = variable.numpy()
    value[rows[0]] = old_value[rows[1]]
    variable.assign(value)
