"""The serving module: the ``tf.Module`` that TF Serving loads, with the vocabulary table and the four signatures.

:class:`GRU4RecServing` holds the model's variables, an item-ID → index lookup table built from the vocabulary
asset and the top-k layer (:mod:`.topk`); its traced functions are the signatures that
:mod:`gru4rec_tf.export.saved_model` documents (names in :mod:`.signatures`). Keras objects stay out of the
SavedModel's object graph, so a loaded export is a plain TF module.

Example:
  >>> module = GRU4RecServing(model, vocab, vocab_file="/tmp/item_ids.txt", max_k=100)
  >>> tf.saved_model.save(module, "/models/gru4rec/1", signatures=module.signatures())
  >>> module.info()["signatures"]
  ['serving_default', 'step', 'serving_candidates', 'step_candidates']
"""
import types

import numpy as np
import tensorflow as tf

from gru4rec_tf.export import topk
from gru4rec_tf.export.signatures import (
    CANDIDATES, EXCLUDE, EXCLUDE_SEEN, ITEM_IDS, ITEMS, K, LENGTHS, NUM_RESULTS, NUM_UNKNOWN, PAD_ID, PAD_SCORE,
    SCORES, SIGNATURE_SESSION, SIGNATURE_SESSION_CANDIDATES, SIGNATURE_STEP, SIGNATURE_STEP_CANDIDATES, SIGNATURES,
    STATE)

EXPORT_FORMAT = "gru4rec_tf.export/1"  # the "format" field of the export info


def id_dtype(vocab) -> tf.DType:
    """The signatures' item-ID dtype: ``tf.int64`` for integer vocabularies, else ``tf.string``."""
    return tf.int64 if vocab.item_ids.dtype.kind in "iu" else tf.string


class GRU4RecServing(tf.Module):
    """The exported module: vocabulary table, the model's variables and the four serving functions.

    Example:
      >>> module = GRU4RecServing(model, vocab, vocab_file="/tmp/item_ids.txt", max_k=100)
      >>> tf.saved_model.save(module, "/models/gru4rec/1", signatures=module.signatures())
    """

    def __init__(self, model, vocab, vocab_file: str, max_k: int = 100, top_k_block: int | None | str = "auto"):
        super().__init__(name="gru4rec_serving")
        if len(vocab) != model.n_items:
            raise ValueError(f"vocabulary has {len(vocab)} items but the model has {model.n_items}")
        if max_k < 1:
            raise ValueError(f"max_k must be >= 1, got {max_k}")
        # The Keras objects are kept out of the SavedModel's object graph (only their variables are saved), so the
        # export is a plain TF module: no Keras metadata, nothing to deserialize but tensors and the table.
        self._keras = types.SimpleNamespace(model=model, top_k=None)
        self.model_variables = list(model.variables)
        self.n_items = int(model.n_items)
        self.max_k = int(min(max_k, self.n_items))
        self.id_dtype = id_dtype(vocab)
        self.pad_id = tf.constant(PAD_ID[self.id_dtype.name], self.id_dtype)
        self.state_sizes = [int(layer.units) for layer in model.gru_layers]
        self.state_size = sum(self.state_sizes)
        self.vocab_asset = tf.saved_model.Asset(vocab_file)
        self.item_index = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(self.vocab_asset, self.id_dtype, tf.lookup.TextFileIndex.WHOLE_LINE,
                                          tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER),
            default_value=-1)
        ids = vocab.item_ids.astype(np.int64) if self.id_dtype == tf.int64 else vocab.item_ids.astype(str)
        self.identifiers = tf.Variable(ids, trainable=False, name=ITEM_IDS, dtype=self.id_dtype)
        block = topk.default_top_k_block(self.n_items) if top_k_block == "auto" else top_k_block
        self._keras.top_k = topk.ItemTopK(model.item_vectors, model.item_bias, self.identifiers, block=block)

    @property
    def model(self):
        """The Keras GRU4Rec whose variables the module serves."""
        return self._keras.model

    # ---- building blocks ---------------------------------------------------------------------------------------

    @staticmethod
    def check_batch(**inputs) -> None:
        """Raises InvalidArgumentError unless all inputs have the same batch size (dimension 0).

        Safe under TF Serving's batching: it rejects such requests before merging, so merged batches always pass.
        """
        sizes = [tf.shape(value)[0] for value in inputs.values()]
        for (name, _), size in zip(list(inputs.items())[1:], sizes[1:], strict=True):
            tf.debugging.assert_equal(size, sizes[0], message=f"all inputs must have the same batch size "
                                      f"(dimension 0): input {name} differs from input {next(iter(inputs))}")

    def lookup(self, ids):
        """Dense item indices (int32) of original IDs; -1 for IDs not in the catalogue."""
        return tf.cast(self.item_index.lookup(ids), tf.int32)

    def advance(self, idx, known, states):
        """One GRU step for the rows where ``known``; the other rows keep their state (unknown IDs are skipped)."""
        # Gather from a dense read, not from the variable: a ResourceGather switches the variable to copy-on-read
        # mode, after which every dense read (the scoring matmul reads W_y, which is also the input table in the
        # shared-embedding mode) copies the whole item matrix on every request.
        table = tf.convert_to_tensor(self.model.input_table)
        rows = tf.gather(table, tf.maximum(idx, 0))
        _, new_states = self.model.step_from_rows(rows, states)
        return tuple(tf.where(known[:, tf.newaxis], new, old) for new, old in zip(new_states, states, strict=True))

    def run_session(self, idx, known):
        """Final per-layer states after feeding ``idx [B, L]`` where ``known`` (from zero states)."""
        states = self.model.initial_states(tf.shape(idx)[0])
        for t in tf.range(tf.shape(idx)[1]):
            tf.autograph.experimental.set_loop_options(
                shape_invariants=[(s, tf.TensorShape([None, n]))
                                  for s, n in zip(states, self.state_sizes, strict=True)])
            states = self.advance(idx[:, t], known[:, t], states)
        return states

    def rank(self, states, k, excluded_idx, candidate_idx, has_input):
        """Top-k outputs from the last layer's state; ``excluded_idx``/``candidate_idx`` ``[B, *]`` (-1 = none)."""
        k = tf.clip_by_value(k, 0, self.max_k)
        width = tf.clip_by_value(tf.reduce_max(k), 0, self.max_k)  # reduce_max of an empty batch is INT_MIN
        scores, ids, n_rankable = topk.top_k_items(self._keras.top_k, states[-1], width, k, excluded_idx,
                                                   candidate_idx)
        num_results = tf.where(has_input, tf.minimum(k, n_rankable), 0)
        valid = tf.range(width)[tf.newaxis, :] < num_results[:, tf.newaxis]
        return {
            ITEM_IDS: tf.where(valid, ids, self.pad_id),
            SCORES: tf.where(valid, scores, tf.constant(PAD_SCORE, tf.float32)),
            NUM_RESULTS: num_results,
            STATE: tf.concat(states, axis=1),
        }

    # ---- the serving functions ---------------------------------------------------------------------------------

    def session(self, items, lengths, k, exclude_seen, candidates=None):
        """Whole-session scoring (``serving_default``, ``serving_candidates``; see :mod:`.saved_model`)."""
        self.check_batch(items=items, lengths=lengths, k=k, exclude_seen=exclude_seen,
                         **({} if candidates is None else {CANDIDATES: candidates}))
        idx = self.lookup(items)
        in_range = tf.sequence_mask(lengths, tf.shape(items)[1])
        known = tf.logical_and(in_range, idx >= 0)
        states = self.run_session(idx, known)
        excluded_idx = tf.where(tf.logical_and(known, exclude_seen[:, tf.newaxis]), idx, -1)
        candidate_idx = None if candidates is None else self.lookup(candidates)
        has_input = tf.reduce_any(known, axis=1)
        out = self.rank(states, k, excluded_idx, candidate_idx, has_input)
        out[NUM_UNKNOWN] = tf.reduce_sum(tf.cast(tf.logical_and(in_range, idx < 0), tf.int32), axis=1)
        return out

    def step(self, items, state, k, exclude, candidates=None):
        """One event per session with the carried state (``step``, ``step_candidates``; see :mod:`.saved_model`)."""
        self.check_batch(items=items, state=state, k=k, exclude=exclude,
                         **({} if candidates is None else {CANDIDATES: candidates}))
        idx = self.lookup(items)
        known = idx >= 0
        states = tuple(tf.split(state, self.state_sizes, axis=1))
        new_states = self.advance(idx, known, states)
        candidate_idx = None if candidates is None else self.lookup(candidates)
        has_input = tf.logical_or(known, tf.reduce_any(tf.not_equal(state, 0.0), axis=1))
        out = self.rank(new_states, k, self.lookup(exclude), candidate_idx, has_input)
        out[NUM_UNKNOWN] = tf.cast(tf.logical_not(known), tf.int32)
        return out

    def signatures(self) -> dict:
        """Concrete functions of the four signatures, keyed by signature name."""
        ids = lambda *shape, name: tf.TensorSpec(shape, self.id_dtype, name=name)  # noqa: E731
        vec = lambda dtype, name: tf.TensorSpec([None], dtype, name=name)  # noqa: E731
        session_specs = [ids(None, None, name=ITEMS), vec(tf.int32, LENGTHS), vec(tf.int32, K),
                         vec(tf.bool, EXCLUDE_SEEN)]
        step_specs = [ids(None, name=ITEMS), tf.TensorSpec([None, self.state_size], tf.float32, name=STATE),
                      vec(tf.int32, K), ids(None, None, name=EXCLUDE)]
        candidates = ids(None, None, name=CANDIDATES)
        session = tf.function(lambda items, lengths, k, exclude_seen: self.session(items, lengths, k, exclude_seen))
        step = tf.function(lambda items, state, k, exclude: self.step(items, state, k, exclude))
        session_c = tf.function(lambda items, lengths, k, exclude_seen, candidates:
                                self.session(items, lengths, k, exclude_seen, candidates))
        step_c = tf.function(lambda items, state, k, exclude, candidates:
                             self.step(items, state, k, exclude, candidates))
        return {
            SIGNATURE_SESSION: session.get_concrete_function(*session_specs),
            SIGNATURE_STEP: step.get_concrete_function(*step_specs),
            SIGNATURE_SESSION_CANDIDATES: session_c.get_concrete_function(*session_specs, candidates),
            SIGNATURE_STEP_CANDIDATES: step_c.get_concrete_function(*step_specs, candidates),
        }

    def info(self) -> dict:
        """What a client needs to know besides the signatures (written to ``assets.extra``)."""
        return {"format": EXPORT_FORMAT, "n_items": self.n_items, "max_k": self.max_k,
                "state_size": self.state_size, "state_sizes": self.state_sizes,
                "id_dtype": self.id_dtype.name, "pad_id": PAD_ID[self.id_dtype.name], "signatures": list(SIGNATURES),
                "params": self.model.hparams.to_dict()}
