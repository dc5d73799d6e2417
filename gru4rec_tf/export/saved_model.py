"""Export a trained GRU4Rec as a TensorFlow Serving SavedModel (spec §8).

GRU4Rec keeps a hidden state per session while TF Serving is stateless, so the SavedModel serves a session in two
exact ways, both ranking the whole catalogue (or a candidate list) with tensorflow-recommenders' brute-force top-k:

* **whole session** (``serving_default``): the session's events so far → top-k next items, plus the final hidden
  state, so a client can continue with ``step``;
* **one event** (``step``): the current event and the state returned by the previous call → top-k and the new
  state; O(1) per event however long the session is.

``serving_candidates`` and ``step_candidates`` are the same with scoring restricted to a per-session candidate list.
Original item IDs go in and come out (int64 or string, as in the training data); the vocabulary is a lookup-table
asset inside the SavedModel. Unknown IDs are skipped exactly as evaluation skips them (the state is left unchanged)
and counted in ``num_unknown``.

Signatures (``B`` = batch of sessions; every input has the batch dimension first, as TF Serving batching needs;
``ID`` = int64 or string, see :func:`id_dtype`)::

  serving_default / serving_candidates
    in   items         ID    [B, L]  the session's events, oldest first, right-padded (padding is ignored)
         lengths       int32 [B]     number of events of each row (entries past it are padding)
         k             int32 [B]     number of results wanted (clipped to [0, min(max_k, n_items)])
         exclude_seen  bool  [B]     drop the session's own items from the results
         candidates    ID    [B, C]  (serving_candidates only) rank only these items; unknown IDs are ignored
  step / step_candidates
    in   items         ID    [B]     the current event of each session
         state         float [B, S]  the ``state`` output of the previous call; all zeros for a new session
         k             int32 [B]
         exclude       ID    [B, E]  items to drop from the results (e.g. those already seen); IDs not in the
                                     catalogue are ignored, so rows are padded with ``PAD_ID`` (-1 or "")
         candidates    ID    [B, C]  (step_candidates only)
  outputs of all four
         item_ids      ID    [B, K]  top items, best first; K = the largest clipped k of the batch
         scores        float [B, K]  raw scores ``h·W_y + b_y`` (spec §4, no final activation)
         num_results   int32 [B]     valid entries of the row; the rest hold ``PAD_ID`` and ``PAD_SCORE``
         num_unknown   int32 [B]     events of the request that are not in the catalogue (skipped)
         state         float [B, S]  hidden state after the request's events (layers concatenated)

TF Serving's ``pad_variable_length_inputs`` batching option pads every variable-length input with the first element
of the request's tensor. ``lengths`` makes that harmless for ``items``; for ``exclude`` and ``candidates`` a client
should make the first element ``PAD_ID`` (a leading ``PAD_ID`` column, as :mod:`serving.client` sends), else the
padding would add row 0's first ID to the other rows of a multi-session request.

A row with no known event (empty session, only unknown IDs, or a zero state and an unknown item) has
``num_results`` 0: GRU4Rec has nothing to condition on. Bad *values* never raise inside the graph (under TF
Serving's batching one failing request would fail the whole merged batch); they give the defined results above.
The one in-graph check is that all inputs have the same batch size, which TF Serving's batching itself enforces
before merging, so it can only fail an unbatched request.

Example:
  >>> path = export_saved_model(model, vocab, "/models/gru4rec/1")
  >>> serve = tf.saved_model.load(path).signatures["serving_default"]
  >>> out = serve(items=tf.constant([[100042, 100007]], tf.int64), lengths=tf.constant([2]),
  ...             k=tf.constant([20]), exclude_seen=tf.constant([False]))
  >>> out["item_ids"], out["scores"]
"""
import json
import os
import shutil
import tempfile
import types

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from gru4rec_tf import fileio

from gru4rec_tf.export.signatures import (
    CANDIDATES, EXCLUDE, EXCLUDE_SEEN, EXPORT_INFO_FILE, ITEM_IDS, ITEMS, K, LENGTHS, NUM_RESULTS, NUM_UNKNOWN,
    PAD_ID, PAD_SCORE, SCORES, SIGNATURE_SESSION, SIGNATURE_SESSION_CANDIDATES, SIGNATURE_STEP,
    SIGNATURE_STEP_CANDIDATES, SIGNATURES, STATE, VOCAB_ASSET, WARMUP_FILE)

def id_dtype(vocab) -> tf.DType:
    """The signatures' item-ID dtype: ``tf.int64`` for integer vocabularies, else ``tf.string``."""
    return tf.int64 if vocab.item_ids.dtype.kind in "iu" else tf.string


class ItemTopK(tfrs.layers.factorized_top_k.BruteForce):
    """Exact top-k over the catalogue: tfrs ``BruteForce`` scoring ``h·W_yᵀ + b_y`` plus an additive mask.

    ``BruteForce.call`` does the scoring, the top-k and the index → original-ID gather. Three departures, for
    exactness, memory and speed:

    * ``BruteForce.index`` copies the candidate matrix into new variables; this layer uses the model's own ``W_y``
      and ``b_y`` variables (the GPU holds the item vectors once) and adds the item bias, so scores equal
      :meth:`GRU4Rec.score_all`.
    * Exclusions and candidate lists are an additive ``penalty`` (0 / -inf, see :func:`penalty_from_masks`) applied
      before the top-k, not ``query_with_exclusions``: that method reads the exclusion width statically (a
      signature with variable-length sessions fails to trace with a TypeError), raises when ``k`` plus the number
      of exclusions exceeds the catalogue (under TF Serving's batching that would fail every merged request), and
      returns excluded items when fewer than ``k`` others remain. It also cannot restrict to candidates.
    * The top-k is :func:`blocked_top_k` (two stages over blocks of ``block`` items; ``None`` = plain
      ``tf.math.top_k``): the same values and indices, ties included, at a fraction of the cost on CPU.

    The query is a pair ``(hidden [B, h], penalty [B, n] or None)``.

    Example:
      >>> top = ItemTopK(model.item_vectors, model.item_bias, tf.constant(vocab.item_ids))
      >>> scores, ids = top((hidden, None), k=20)
    """

    def __init__(self, item_vectors: tf.Variable, item_bias: tf.Variable, identifiers, name: str = "item_top_k",
                 block: int | None = None):
        super().__init__(k=10, name=name)
        if identifiers.shape[0] != item_vectors.shape[0]:
            raise ValueError(f"{identifiers.shape[0]} identifiers for {item_vectors.shape[0]} item vectors")
        self._candidates = item_vectors
        self._item_bias = item_bias
        self._identifiers = identifiers
        self.block = block

    def _compute_score(self, queries, candidates):
        hidden, penalty = queries
        scores = tf.matmul(hidden, candidates, transpose_b=True) + self._item_bias
        return scores if penalty is None else scores + penalty

    def top_indices(self, queries, k):
        """``(scores [B, k], item indices [B, k])``, best first, ties by lower index (as ``tf.math.top_k``)."""
        return blocked_top_k(self._compute_score(queries, self._candidates), k, self.block)

    def identifiers_of(self, indices):
        """Original item IDs of item indices."""
        return tf.gather(self._identifiers, indices)

    def call(self, queries, k=None):
        values, indices = self.top_indices(queries, self._k if k is None else k)
        return values, self.identifiers_of(indices)


def default_top_k_block(n_items: int, typical_k: int = 20) -> int | None:
    """Block size of :func:`blocked_top_k` for a catalogue: about ``sqrt(n_items / typical_k)`` (which balances the
    two stages), preferring a divisor of ``n_items`` (no padding); ``None`` (plain top-k) for small catalogues."""
    if n_items < 4096:
        return None
    target = max(2, round((n_items / typical_k) ** 0.5))
    for delta in range(target // 2):
        for block in (target + delta, target - delta):
            if n_items % block == 0:
                return block
    return target


def blocked_top_k(scores, k, block: int | None):
    """``tf.math.top_k(scores, k)`` of ``[B, n]`` scores (``n`` static), computed in two exact stages.

    The maxima of blocks of ``block`` consecutive items are ranked first; the ``k`` best blocks (ties: lower block
    first, as ``top_k``) hold the top-k items *with ``top_k``'s tie order*: every block holding a selected item
    either has a maximum above the k-th value (fewer than k such blocks) or, at that value, a lower-indexed one than
    any block left out, which would otherwise give k items ranked before it. Those blocks, in index order, are
    ranked in full, so ties among their items again resolve by lower index. Returns the same values and indices as
    ``tf.math.top_k`` for ``0 <= k <= n`` (NaN scores aside); ``block`` None or >= n is ``tf.math.top_k`` itself.
    """
    n = int(scores.shape[1])
    if block is None or block >= n:
        return tf.math.top_k(scores, k)
    n_blocks = -(-n // block)
    batch = tf.shape(scores)[0]
    if n_blocks * block != n:  # -inf padding at the end: never ranked before a real item, as 0 <= k <= n
        scores = tf.concat([scores, tf.fill([batch, n_blocks * block - n], tf.constant(-np.inf, tf.float32))], 1)
    blocks = tf.reshape(scores, [batch, n_blocks, block])
    n_best = tf.minimum(k, n_blocks)
    best = tf.math.top_k(tf.reduce_max(blocks, axis=2), n_best).indices
    best = (n_blocks - 1) - tf.math.top_k((n_blocks - 1) - best, n_best).values  # ascending block order
    pooled = tf.reshape(tf.gather(blocks, best, batch_dims=1), [batch, n_best * block])
    values, pos = tf.math.top_k(pooled, k)
    indices = tf.gather(best, pos // block, batch_dims=1) * block + pos % block
    return values, indices


def index_mask(idx, n_items: int):
    """``[B, n_items]`` bool: True where the item index appears in the row of ``idx`` ``[B, E]`` (-1 = nothing)."""
    rows = tf.broadcast_to(tf.range(tf.shape(idx)[0])[:, tf.newaxis], tf.shape(idx))
    valid = idx >= 0
    coords = tf.stack([tf.boolean_mask(rows, valid), tf.boolean_mask(idx, valid)], axis=1)
    counts = tf.scatter_nd(coords, tf.ones(tf.shape(coords)[:1], tf.int32), [tf.shape(idx)[0], n_items])
    return counts > 0


def count_distinct(idx):
    """``[B]`` int32: the number of distinct item indices (>= 0) in each row of ``idx`` ``[B, E]``."""
    ordered = tf.math.top_k(idx, tf.shape(idx)[1]).values  # descending, so equal indices are adjacent
    previous = tf.concat([tf.fill([tf.shape(idx)[0], 1], -1), ordered[:, :-1]], axis=1)
    return tf.reduce_sum(tf.cast(tf.logical_and(ordered >= 0, tf.not_equal(ordered, previous)), tf.int32), axis=1)


# Exclusion lists up to this width are applied after a top-(k + E) ([B, k + E, E] comparisons); longer ones by a
# [B, n_items] mask before the top-k. Both give the same results.
MAX_FILTERED_EXCLUSIONS = 256


def penalty_from_masks(excluded, allowed=None):
    """Additive score mask (0 / -inf) and the number of rankable items per row."""
    rankable = tf.logical_not(excluded) if allowed is None else tf.logical_and(allowed, tf.logical_not(excluded))
    penalty = tf.where(rankable, tf.constant(0.0), tf.constant(-np.inf, tf.float32))
    return penalty, tf.reduce_sum(tf.cast(rankable, tf.int32), axis=1)


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
        block = default_top_k_block(self.n_items) if top_k_block == "auto" else top_k_block
        self._keras.top_k = ItemTopK(model.item_vectors, model.item_bias, self.identifiers, block=block)

    @property
    def model(self):
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
        hidden = states[-1]

        def masked():
            excluded = index_mask(excluded_idx, self.n_items)
            allowed = None if candidate_idx is None else index_mask(candidate_idx, self.n_items)
            penalty, n_rankable = penalty_from_masks(excluded, allowed)
            return (*self._keras.top_k((hidden, penalty), k=width), n_rankable)

        def filtered():  # a short exclusion list: rank width + E items, then drop the excluded ones (no [B, n] mask)
            top = self._keras.top_k
            wide = tf.minimum(width + tf.shape(excluded_idx)[1], self.n_items)
            scores, idx = top.top_indices((hidden, None), k=wide)
            hit = tf.reduce_any(tf.equal(idx[:, :, tf.newaxis], excluded_idx[:, tf.newaxis, :]), axis=2)
            order = tf.math.top_k(tf.where(hit, -2 * wide, 0) - tf.range(wide)[tf.newaxis, :], width).indices
            n_rankable = self.n_items - count_distinct(excluded_idx)
            return (tf.gather(scores, order, batch_dims=1), top.identifiers_of(tf.gather(idx, order, batch_dims=1)),
                    n_rankable)

        def excluding():
            return tf.cond(tf.less(tf.shape(excluded_idx)[1], MAX_FILTERED_EXCLUSIONS + 1), filtered, masked)

        def unmasked():  # the common case: nothing to exclude, whole catalogue (saves [B, n_items] of mask work)
            return (*self._keras.top_k((hidden, None), k=width), tf.fill(tf.shape(k), self.n_items))

        if candidate_idx is None:
            scores, ids, n_rankable = tf.cond(tf.reduce_any(excluded_idx >= 0), excluding, unmasked)
        else:
            scores, ids, n_rankable = masked()
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
        """Whole-session scoring (see the module docstring)."""
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
        """One event per session with the carried state (see the module docstring)."""
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
        return {"format": "gru4rec_tf.export/1", "n_items": self.n_items, "max_k": self.max_k,
                "state_size": self.state_size, "state_sizes": self.state_sizes,
                "id_dtype": self.id_dtype.name, "pad_id": PAD_ID[self.id_dtype.name], "signatures": list(SIGNATURES),
                "params": self.model.hparams.to_dict()}


# ---- files ---------------------------------------------------------------------------------------------------------


def write_vocab_file(vocab, path: str) -> None:
    """One original item ID per line, in index order (the table maps line number → index)."""
    if vocab.item_ids.dtype.kind in "iu":
        lines = vocab.item_ids.astype(np.int64).astype(str)
    else:
        lines = vocab.item_ids.astype(str)
        bad = [i for i in lines if "\n" in i or "\r" in i or i == ""]
        if bad:
            raise ValueError(f"item ID {bad[0]!r} cannot be exported: IDs must be non-empty and hold no line break")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def warmup_requests(module: GRU4RecServing, vocab) -> list:
    """``(signature_name, inputs)`` pairs of small, valid requests (numpy inputs) for every signature."""
    n = min(3, len(vocab))
    first = vocab.item_ids[:n]
    cast = (lambda a: np.asarray(a, np.int64)) if module.id_dtype == tf.int64 else \
        (lambda a: np.asarray(a, dtype=object).astype(str).astype(bytes))
    k = np.array([min(10, module.max_k)], np.int32)
    session = {ITEMS: cast([first]), LENGTHS: np.array([n], np.int32), K: k,
               EXCLUDE_SEEN: np.array([True])}
    step = {ITEMS: cast(first[:1]), STATE: np.zeros([1, module.state_size], np.float32), K: k,
            EXCLUDE: cast([first[:1]])}
    return [(SIGNATURE_SESSION, session), (SIGNATURE_STEP, step),
            (SIGNATURE_SESSION_CANDIDATES,
             {**session, EXCLUDE_SEEN: np.array([False]), CANDIDATES: cast([first])}),
            (SIGNATURE_STEP_CANDIDATES, {**step, CANDIDATES: cast([first])})]


def write_warmup_file(path: str, requests) -> None:
    """Writes TF Serving warm-up records (``PredictionLog`` TFRecords) for ``(signature, inputs)`` pairs.

    tensorflow_serving is imported here, so importing this module does not need it.
    """
    # pylint: disable-next=g-import-not-at-top
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature))
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


NOT_EMPTY = "is not empty"


def export_dir_problem(export_dir: str, overwrite: bool) -> str | None:
    """Why :func:`export_saved_model` would refuse ``export_dir`` (None when it can write there).

    The answer names no argument (:data:`NOT_EMPTY` is the one that ``overwrite`` solves), so a command can word
    the remedy with its own flags.
    """
    if not os.path.exists(export_dir):
        return None
    if not os.path.isdir(export_dir):
        return "exists and is not a directory"
    if not os.listdir(export_dir):
        return None
    if not overwrite:
        return NOT_EMPTY
    if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        return "is not empty and holds no saved_model.pb; refusing to replace it"
    return None


def _prepare_target(export_dir: str, overwrite: bool) -> None:
    problem = export_dir_problem(export_dir, overwrite)
    if problem == NOT_EMPTY:
        problem += "; pass overwrite=True (or a new version directory)"
    if problem:
        raise ValueError(f"export_dir {export_dir} {problem}")


def export_saved_model(model, vocab, export_dir: str, *, max_k: int = 100, write_warmup: bool = True,
                       overwrite: bool = False, top_k_block: int | None | str = "auto") -> str:
    """Writes the serving SavedModel of ``model`` and ``vocab`` to ``export_dir``; returns its absolute path.

    ``export_dir`` is the version directory TF Serving loads (``<model_base_path>/<version>``); it must not exist
    or be empty, unless ``overwrite`` (which replaces an existing SavedModel, never another kind of directory).
    The SavedModel is written next to it and renamed into place, so TF Serving never sees a half-written version.
    ``max_k`` caps ``k`` (and the output width). With ``write_warmup``, warm-up requests for every signature go
    to ``assets.extra/tf_serving_warmup_requests``. ``top_k_block`` is the block size of the exact two-stage top-k
    (:func:`blocked_top_k`; ``"auto"``: :func:`default_top_k_block`, ``None``: plain ``tf.math.top_k``); results do
    not depend on it.

    Example:
      >>> export_saved_model(saved.model, saved.vocab, "/models/gru4rec/3")
      '/models/gru4rec/3'
    """
    export_dir = os.path.abspath(export_dir)
    _prepare_target(export_dir, overwrite)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(export_dir)}.tmp-", dir=parent)
    try:
        vocab_file = os.path.join(staging, "vocab", VOCAB_ASSET)
        os.makedirs(os.path.dirname(vocab_file))
        write_vocab_file(vocab, vocab_file)
        module = GRU4RecServing(model, vocab, vocab_file, max_k=max_k, top_k_block=top_k_block)
        saved = os.path.join(staging, "saved_model")
        tf.saved_model.save(module, saved, signatures=module.signatures())
        extra = os.path.join(saved, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, EXPORT_INFO_FILE), "w", encoding="utf-8") as f:
            json.dump(module.info(), f, indent=2)
        if write_warmup:
            write_warmup_file(os.path.join(extra, WARMUP_FILE), warmup_requests(module, vocab))
        fileio.replace_dir(saved, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return export_dir


def read_export_info(export_dir: str) -> dict:
    """The ``assets.extra/gru4rec_export.json`` of an exported SavedModel."""
    path = os.path.join(export_dir, "assets.extra", EXPORT_INFO_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{export_dir} is not a gru4rec_tf export: cannot read {path} ({err})") from None
