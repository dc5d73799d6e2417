"""Full-catalogue next-item evaluation: Recall@k and MRR@k with tie modes (spec §7)."""
import contextlib

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.eager import context as tf_context  # no public API sets call options for one call site

from gru4rec_tf.data import batching
from gru4rec_tf.evaluation.options import DEFAULT_CUTOFFS, DEFAULT_EVAL_BATCH_SIZE, DEFAULT_EVAL_MODE, EVAL_MODES
from gru4rec_tf.evaluation.slices import RankedEvents, positions_in_sessions

_MAX_SCORE_ELEMENTS = 1 << 25  # caps eval batch × n_items (128 MiB of float32 scores per step)
# Rows of one scoring block (events x the catalogue): a block holds its scores, their comparisons with the targets
# and the top-k at once, about three times 32 MiB at this size, whatever the batch.
_MAX_BLOCK_SCORES = 1 << 23


def rank_of_targets(scores, target_scores, mode: str):
    """Rank (1 = best) of each row's target among all items; ``scores [B, n]``, ``target_scores [B]``.

    standard: ``1 + #{s > s_t}``; conservative: ``#{s >= s_t}``; median: ``1 + #{>} + (#{=} − 1) / 2``.
    """
    if mode not in EVAL_MODES:
        raise ValueError(f"eval_mode must be one of {EVAL_MODES}, got {mode!r}")
    target = target_scores[:, tf.newaxis]
    greater = tf.reduce_sum(tf.cast(scores > target, tf.float32), axis=1)
    if mode == "standard":
        return greater + 1.0
    equal = tf.reduce_sum(tf.cast(scores == target, tf.float32), axis=1)
    if mode == "conservative":
        return greater + equal
    return 1.0 + greater + (equal - 1.0) / 2.0


def metrics_from_ranks(ranks: np.ndarray, cutoffs) -> dict:
    """Micro-averaged ``recall@K`` and ``mrr@K`` over all evaluated events."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {}
    for k in cutoffs:
        hit = ranks <= k
        out[f"recall@{k}"] = float(hit.mean()) if len(ranks) else 0.0
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / ranks, 0.0).mean()) if len(ranks) else 0.0
    return out


def _concat(parts, dtype, empty_shape=(0,)) -> np.ndarray:
    return (np.concatenate(parts) if parts else np.zeros(empty_shape, dtype)).astype(dtype, copy=False)


@contextlib.contextmanager
def _without_graph_optimizer():
    """Calls of TensorFlow functions on this thread, inside the block, skip Grappler.

    Grappler optimises a function's graph on its first call. For the evaluation function that took ~0.1 s of a
    ~0.45 s evaluation of 10k events in a fresh process, and the optimised graph ran no faster (bench/results/
    speed_history.md). The option is the thread's function-call options (what ``tf.function`` passes to the call),
    so other threads' functions, and this thread's after the block, keep TensorFlow's defaults.
    """
    eager_context = tf_context.context()
    saved = eager_context.function_call_options
    config = config_pb2.ConfigProto.FromString(saved.config_proto_serialized)
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    eager_context.function_call_options = tf_context.FunctionCallOptions(saved.executor_type, config)
    try:
        yield
    finally:
        eager_context.function_call_options = saved


class Evaluator:
    """Ranks each next item of the test sessions against the whole catalogue, session-parallel (spec §7).

    The hidden state starts at zero for every test session, dropout and logQ are off, and scores are the raw
    ``h·W_y + b_y`` (monotone final activations do not change rankings).

    Example (an untrained model and a three-item catalogue, so every target ranks within the top 5):
      >>> import pandas as pd
      >>> from gru4rec_tf import params as params_lib
      >>> from gru4rec_tf.data.session_data import SessionData
      >>> from gru4rec_tf.data.vocabulary import ItemVocabulary
      >>> from gru4rec_tf.model.network import GRU4Rec
      >>> events = pd.DataFrame({"SessionId": [1, 1, 1, 2, 2], "ItemId": [10, 11, 12, 11, 10],
      ...                        "Time": [0., 1., 2., 3., 4.]})
      >>> vocab = ItemVocabulary.from_events(events)
      >>> test_data = SessionData.from_events(events, vocab)
      >>> model = GRU4Rec(n_items=3, params=params_lib.GRU4RecParams.from_string("layers=8,n_sample=0"))
      >>> metrics = Evaluator(model).evaluate(test_data, cutoffs=(5, 20), mode="standard")
      >>> metrics["recall@5"], metrics["eval_events"]      # the events after the first of each session
      (1.0, 3)
      >>> 1 / 3 <= metrics["mrr@20"] <= 1.0
      True
    """

    def __init__(self, model, batch_size: int = DEFAULT_EVAL_BATCH_SIZE, steps_per_call: int = 128,
                 n_items: int | None = None):
        if batch_size < 1:
            raise ValueError(f"eval batch_size must be >= 1, got {batch_size}")
        self.model = model
        # The catalogue: the model's first n_items rows (the rest, if any, is capacity padding of a training run).
        self.n_items = model.n_items if n_items is None else int(n_items)
        self.batch_size = int(min(batch_size, max(1, _MAX_SCORE_ELEMENTS // self.n_items)))
        self.steps_per_call = steps_per_call
        self._compiled = {}

    def _rank_steps_fn(self, mode, top_k: int = 0):
        """The compiled ranking of a chunk of steps; with ``top_k`` > 0 it also returns each event's top-k items
        (a separate function, so the plain ranking is unchanged)."""
        key = (mode, top_k)
        if key not in self._compiled:
            model, batch = self.model, self.batch_size
            state_specs = tuple(tf.TensorSpec([batch, layer.units], tf.float32) for layer in model.gru_layers)
            spec = lambda dtype: tf.TensorSpec([None, batch], dtype)  # noqa: E731
            # Scoring is batched over the steps of a call: the recurrent loop only collects the hidden states of
            # the active slots, then the catalogue is scored for up to ``batch`` events at a time. The tail of a
            # test set (a few long sessions) then costs full-size matrix products, not one tiny one per step.
            score_rows = max(1, min(batch, _MAX_BLOCK_SCORES // self.n_items))

            # autograph=False with explicit while loops: converting the call tree costs more than a small test
            # set's whole evaluation.
            @tf.function(input_signature=[spec(tf.int32), spec(tf.int32), spec(tf.bool), spec(tf.bool),
                                          state_specs], autograph=False)
            def rank_steps(inputs, targets, valid, reset, states):
                # The item tables are read once per call, not once per step: after training (scatter updates) the
                # variables are in copy-on-read mode, where every dense read copies the whole table.
                n_items = self.n_items
                input_table = tf.convert_to_tensor(model.input_table)
                item_vectors = (input_table if model.embedding_mode == "shared"
                                else tf.convert_to_tensor(model.item_vectors))[:n_items]
                item_bias = tf.convert_to_tensor(model.item_bias)[:n_items]
                n_steps = tf.shape(inputs)[0]

                def step(k, states, hidden_out):
                    states = tuple(tf.where(reset[k][:, tf.newaxis], tf.zeros_like(s), s) for s in states)
                    # Only the active slots are run (the official loop drops finished rows): the cost of a step
                    # follows its active rows, so a long last session does not cost a full batch per step.
                    active = tf.where(valid[k])
                    hidden, new_states = model.step_from_rows(
                        tf.gather(input_table, tf.gather_nd(inputs[k], active)),
                        tuple(tf.gather_nd(s, active) for s in states))
                    states = tuple(tf.tensor_scatter_nd_update(s, active, new)
                                   for s, new in zip(states, new_states, strict=True))
                    return k + 1, states, hidden_out.write(k, hidden)

                _, states, hidden_out = tf.while_loop(
                    lambda k, *_: k < n_steps, step,
                    (tf.constant(0), tuple(states), tf.TensorArray(tf.float32, size=n_steps, infer_shape=False,
                                                                   element_shape=[None, model.gru_layers[-1].units])))
                hidden = hidden_out.concat()  # active events, steps then slots
                event_targets = tf.boolean_mask(targets, valid)
                n_events = tf.shape(hidden)[0]

                def score(begin, ranks, tops):
                    end = tf.minimum(begin + score_rows, n_events)
                    scores = tf.matmul(hidden[begin:end], item_vectors, transpose_b=True) + item_bias
                    target_scores = tf.gather(scores, event_targets[begin:end], batch_dims=1)
                    if top_k:
                        tops = tf.concat([tops, tf.math.top_k(scores, top_k, sorted=True).indices], axis=0)
                    return end, tf.concat([ranks, rank_of_targets(scores, target_scores, mode)], axis=0), tops

                _, ranks, tops = tf.while_loop(
                    lambda begin, *_: begin < n_events, score,
                    (tf.constant(0), tf.zeros([0], tf.float32), tf.zeros([0, top_k], tf.int32)),
                    shape_invariants=(tf.TensorShape([]), tf.TensorShape([None]), tf.TensorShape([None, top_k])))
                return (states, ranks, tops) if top_k else (states, ranks)

            self._compiled[key] = rank_steps
        return self._compiled[key]

    def ranks(self, test_data, mode: str = "standard") -> np.ndarray:
        """Rank of every evaluated event (every event after the first of each test session)."""
        return self.ranks_and_targets(test_data, mode)[0]

    def ranks_and_targets(self, test_data, mode: str = "standard"):
        """``(ranks, targets)``: each evaluated event's rank and its target's vocabulary index, aligned.

        Events come in the order of :meth:`ranks` (the session-parallel schedule: steps, then slots); the targets
        let a caller break the metrics down by item, e.g. ``vocab.item_ids[targets]`` for the items' IDs.

        Example (``model`` and ``test_data`` as in the class example; literal results below so that it runs):
          >>> ranks, targets = Evaluator(model).ranks_and_targets(test_data)  # doctest: +SKIP
          >>> ranks, targets = np.array([1.0, 3.0, 2.0]), np.array([1, 0, 2])
          >>> new_items = [0, 2]                                              # vocabulary indices
          >>> metrics_from_ranks(ranks[np.isin(targets, new_items)], cutoffs=(2,))   # recall on some items
          {'recall@2': 0.5, 'mrr@2': 0.25}
        """
        if mode not in EVAL_MODES:
            raise ValueError(f"eval_mode must be one of {EVAL_MODES}, got {mode!r}")
        schedule = batching.make_schedule(test_data.item_idx, test_data.session_offsets, self.batch_size)
        rank_steps = self._rank_steps_fn(mode)
        states = self.model.initial_states(self.batch_size)
        ranks_out, targets_out = [], []
        with _without_graph_optimizer():
            for chunk in schedule.chunks(self.steps_per_call):
                states, ranks = rank_steps(chunk.inputs, chunk.targets, chunk.valid, chunk.reset, states)
                ranks_out.append(ranks.numpy())
                targets_out.append(np.asarray(chunk.targets)[chunk.valid])
        if not ranks_out:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int32)
        return np.concatenate(ranks_out), np.concatenate(targets_out).astype(np.int32, copy=False)

    def ranked_events(self, test_data, mode: str = DEFAULT_EVAL_MODE, top_k: int = 0) -> RankedEvents:
        """Every evaluated event's rank, target, session and position (events so far), and with ``top_k`` > 0 its
        top-k items (at most the catalogue), for a sliced evaluation (:mod:`gru4rec_tf.evaluation.slices`).

        The ranks are those of :meth:`ranks`, in the same order.
        """
        if mode not in EVAL_MODES:
            raise ValueError(f"eval_mode must be one of {EVAL_MODES}, got {mode!r}")
        top_k = int(min(max(0, top_k), self.n_items))
        schedule = batching.make_schedule(test_data.item_idx, test_data.session_offsets, self.batch_size)
        rank_steps = self._rank_steps_fn(mode, top_k)
        states = self.model.initial_states(self.batch_size)
        ranks, targets, sessions, tops = [], [], [], []
        with _without_graph_optimizer():
            for chunk in schedule.chunks(self.steps_per_call):
                states, chunk_ranks, *chunk_tops = rank_steps(chunk.inputs, chunk.targets, chunk.valid, chunk.reset,
                                                              states)
                ranks.append(chunk_ranks.numpy())
                targets.append(np.asarray(chunk.targets)[chunk.valid])
                sessions.append(np.asarray(chunk.session_index)[chunk.valid])
                tops += [t.numpy() for t in chunk_tops]
        sessions = _concat(sessions, np.int64)
        return RankedEvents(_concat(ranks, np.float32), _concat(targets, np.int32), sessions,
                            positions_in_sessions(sessions), _concat(tops, np.int32, (0, top_k)) if top_k else None)

    def evaluate(self, test_data, cutoffs=DEFAULT_CUTOFFS, mode: str = DEFAULT_EVAL_MODE) -> dict:
        """``{"recall@K", "mrr@K" for each cutoff, "eval_mode", "eval_events"}``."""
        ranks = self.ranks(test_data, mode)
        return {**metrics_from_ranks(ranks, cutoffs), "eval_mode": mode, "eval_events": int(len(ranks))}
