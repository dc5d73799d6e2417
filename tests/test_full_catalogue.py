"""Tests for gru4rec_tf.evaluation.full_catalogue against brute-force NumPy / per-session references (spec §7)."""
import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gru4rec_tf.data import batching
from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.evaluation.full_catalogue import EVAL_MODES, Evaluator, metrics_from_ranks, rank_of_targets
from gru4rec_tf.model.network import GRU4Rec
from gru4rec_tf.params import GRU4RecParams

CUTOFFS = (1, 2, 3, 5, 20)


# ------------------------------------------------------------------------------------------ references
def brute_rank(scores_row, target_score, mode):
    """Spec §7: standard 1+#{>}; conservative #{≥}; median 1+#{>}+(#{=}−1)/2 (target included in #{=})."""
    greater = sum(1 for s in scores_row if s > target_score)
    equal = sum(1 for s in scores_row if s == target_score)
    if mode == "standard":
        return 1.0 + greater
    if mode == "conservative":
        return float(greater + equal)
    if mode == "median":
        return 1.0 + greater + (equal - 1) / 2.0
    raise AssertionError(mode)


def brute_metrics(ranks, cutoffs):
    out = {}
    n = len(ranks)
    for k in cutoffs:
        hits = [r for r in ranks if r <= k]
        out[f"recall@{k}"] = len(hits) / n if n else 0.0
        out[f"mrr@{k}"] = sum(1.0 / r for r in hits) / n if n else 0.0
    return out


# ------------------------------------------------------------------------------------------ rank_of_targets
@pytest.mark.parametrize("mode", EVAL_MODES)
@pytest.mark.parametrize("n_values", [2, 4, 50])
def test_rank_of_targets_matches_brute_force(mode, n_values):
    rng = np.random.RandomState(n_values)
    b, n = 40, 17
    scores = rng.randint(-n_values // 2, n_values // 2 + 1, size=(b, n)).astype(np.float32)  # many ties
    targets = rng.randint(0, n, size=b)
    target_scores = scores[np.arange(b), targets]
    got = rank_of_targets(tf.constant(scores), tf.constant(target_scores), mode).numpy()
    want = [brute_rank(scores[i], target_scores[i], mode) for i in range(b)]
    np.testing.assert_array_equal(got, want)


def test_rank_modes_on_a_hand_example():
    scores = tf.constant([[3.0, 5.0, 3.0, 3.0, 1.0]])
    target = tf.constant([3.0])  # one item above, three tied (target included)
    assert rank_of_targets(scores, target, "standard").numpy().tolist() == [2.0]
    assert rank_of_targets(scores, target, "conservative").numpy().tolist() == [4.0]
    assert rank_of_targets(scores, target, "median").numpy().tolist() == [3.0]
    with pytest.raises(ValueError):
        rank_of_targets(scores, target, "tiebreaking")


# ------------------------------------------------------------------------------------------ metrics_from_ranks
def test_metrics_from_ranks_matches_direct_computation():
    rng = np.random.RandomState(0)
    ranks = np.concatenate([rng.randint(1, 30, size=200).astype(float), [1.0, 2.5, 3.0, 5.5, 20.0, 20.5]])
    got = metrics_from_ranks(ranks, CUTOFFS)
    want = brute_metrics(list(ranks), CUTOFFS)
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), key
    assert got["recall@1"] == got["mrr@1"]  # MRR@1 = R@1


def test_metrics_from_ranks_small_cases():
    got = metrics_from_ranks([1.0, 2.0, 4.0, 2.5], (2, 3))
    assert got["recall@2"] == pytest.approx(0.5)
    assert got["mrr@2"] == pytest.approx((1 + 0.5) / 4)
    assert got["recall@3"] == pytest.approx(0.75)
    assert got["mrr@3"] == pytest.approx((1 + 0.5 + 0.4) / 4)
    empty = metrics_from_ranks(np.zeros(0), (5,))
    assert empty == {"recall@5": 0.0, "mrr@5": 0.0}


# ------------------------------------------------------------------------------------------ end to end
N_TIED = 4  # items 0..3 get identical output vectors / biases, so their scores tie exactly


def _events():
    """Tiny test split: sessions of lengths 2..7 with item IDs 100+ and first times out of SessionId order."""
    rng = np.random.RandomState(7)
    rows = []
    lengths = [3, 2, 7, 4, 2, 5, 3, 6, 2, 4, 3]
    start_times = rng.permutation(len(lengths)) * 100.0
    for sid, (length, t0) in enumerate(zip(lengths, start_times, strict=True)):
        for k in range(length):
            # draw often from the first items so that the tied items 0..3 are frequent targets
            item = 100 + (rng.randint(0, 5) if rng.rand() < 0.6 else rng.randint(0, 14))
            rows.append((sid + 1, item, t0 + k))
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


@pytest.fixture(scope="module")
def setup():
    events = _events()
    vocab = ItemVocabulary.from_events(events)
    data = SessionData.from_events(events, vocab)
    assert data.n_sessions == 11 and vocab.n_items >= 10
    model = GRU4Rec(vocab.n_items, GRU4RecParams.from_string("layers=8"), seed=3)
    model((tf.constant([0], tf.int32), model.initial_states(1)))  # build
    wy = model.item_vectors.numpy()
    wy[1:N_TIED] = wy[0]
    model.item_vectors.assign(wy)
    by = np.linspace(-0.2, 0.2, vocab.n_items).astype(np.float32)
    by[1:N_TIED] = by[0]
    model.item_bias.assign(by)
    return data, model


def brute_force_ranks(model, data, mode):
    """{(session k, position t): rank of item t+1 given items 0..t}, each session from a zero state, batch of 1."""
    out = {}
    for k in range(data.n_sessions):
        items = data.item_idx[data.session_offsets[k]:data.session_offsets[k + 1]]
        states = model.initial_states(1)
        for t in range(len(items) - 1):
            scores, states = model((tf.constant([items[t]], tf.int32), states))
            row = scores.numpy()[0]
            out[(k, t)] = brute_rank(row, row[items[t + 1]], mode)
    return out


@pytest.fixture(scope="module")
def reference(setup):
    data, model = setup
    return {mode: brute_force_ranks(model, data, mode) for mode in EVAL_MODES}


def _event_order(data, batch_size):
    """(session, position) of each rank returned by Evaluator.ranks: schedule order, steps then slots."""
    sched = batching.make_schedule(data.item_idx, data.session_offsets, batch_size)
    seen = {}
    order = []
    for step, slot in zip(*np.nonzero(sched.valid), strict=True):
        k = int(sched.session_index[step, slot])
        order.append((k, seen.get(k, 0)))
        seen[k] = seen.get(k, 0) + 1
    return order


def test_reference_has_ties(setup, reference):
    """The fixture is meaningful: tie modes disagree on some events."""
    std, cons = reference["standard"], reference["conservative"]
    assert sum(std[e] != cons[e] for e in std) >= 3


@pytest.mark.parametrize("mode", EVAL_MODES)
@pytest.mark.parametrize("batch_size,steps_per_call", [(3, 128), (3, 2), (1, 128), (512, 128)])
def test_evaluator_ranks_equal_per_session_brute_force(setup, reference, mode, batch_size, steps_per_call):
    data, model = setup
    got = Evaluator(model, batch_size=batch_size, steps_per_call=steps_per_call).ranks(data, mode)
    want = reference[mode]
    assert len(got) == data.n_transitions == len(want)
    # as multisets (no assumption about the output order) ...
    np.testing.assert_array_equal(np.sort(got), np.sort(np.array(list(want.values()))))
    # ... and event by event, in the documented order (schedule steps, then slots)
    order = _event_order(data, batch_size)
    np.testing.assert_array_equal(got, [want[e] for e in order])


def test_schedule_order_is_exercised(setup):
    """Batch 3 really interleaves sessions and refills slots (so resets are exercised)."""
    data, _ = setup
    sched = batching.make_schedule(data.item_idx, data.session_offsets, 3)
    assert sched.reset[1:].any()  # some slot starts a new session after step 0
    assert sched.n_steps < data.n_transitions


@pytest.mark.parametrize("mode", EVAL_MODES)
def test_evaluate_metrics_and_batch_size_independence(setup, reference, mode):
    data, model = setup
    want = brute_metrics(list(reference[mode].values()), CUTOFFS)
    results = [Evaluator(model, batch_size=b).evaluate(data, cutoffs=CUTOFFS, mode=mode) for b in (1, 3, 512)]
    for res in results:
        assert res["eval_mode"] == mode
        assert res["eval_events"] == data.n_transitions
        for key, value in want.items():
            assert res[key] == pytest.approx(value, rel=1e-12), key
    for res in results[1:]:  # same values; only the summation order (event order) differs
        assert res.keys() == results[0].keys()
        for key, value in results[0].items():
            assert res[key] == pytest.approx(value, rel=1e-12), key


def test_evaluator_rejects_bad_mode_and_batch(setup):
    data, model = setup
    with pytest.raises(ValueError):
        Evaluator(model, batch_size=0)
    with pytest.raises(ValueError):
        Evaluator(model, batch_size=2).ranks(data, "tiebreaking")


@pytest.mark.parametrize("batch_size,steps_per_call", [(3, 2), (512, 128)])
def test_ranks_and_targets_align_with_the_events(setup, reference, batch_size, steps_per_call):
    """Per-event ranks equal ``ranks`` and each target is the item that follows the event in its session."""
    data, model = setup
    evaluator = Evaluator(model, batch_size=batch_size, steps_per_call=steps_per_call)
    ranks, targets = evaluator.ranks_and_targets(data, "conservative")
    np.testing.assert_array_equal(ranks, evaluator.ranks(data, "conservative"))
    order = _event_order(data, batch_size)
    want_targets = [data.item_idx[data.session_offsets[k] + t + 1] for k, t in order]
    np.testing.assert_array_equal(targets, want_targets)
    np.testing.assert_array_equal(ranks, [reference["conservative"][e] for e in order])
    with pytest.raises(ValueError):
        evaluator.ranks_and_targets(data, "tiebreaking")


def _meta_optimizer_disabled() -> bool:
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context as tf_context
    options = tf_context.context().function_call_options
    return config_pb2.ConfigProto.FromString(options.config_proto_serialized).graph_options.rewrite_options\
        .disable_meta_optimizer


def test_evaluation_calls_skip_grappler_and_the_thread_gets_its_options_back(setup, reference, monkeypatch):
    """Grappler is off for the evaluation function's calls (a fixed cost that bought no speed there), and only
    for them: the thread's function-call options are restored afterwards, also when a call fails."""
    data, model = setup
    evaluator = Evaluator(model, batch_size=3, steps_per_call=2)
    compiled, seen = evaluator._rank_steps_fn, []

    def recording(mode):
        rank_steps = compiled(mode)

        def call(*args):
            seen.append(_meta_optimizer_disabled())
            return rank_steps(*args)
        return call

    monkeypatch.setattr(evaluator, "_rank_steps_fn", recording)
    assert not _meta_optimizer_disabled()
    ranks = evaluator.ranks(data, "standard")
    np.testing.assert_array_equal(ranks, [reference["standard"][e] for e in _event_order(data, 3)])
    assert len(seen) > 1 and all(seen)
    assert not _meta_optimizer_disabled()

    def failing(mode):
        def call(*args):
            raise RuntimeError("a failing call")
        return call

    monkeypatch.setattr(evaluator, "_rank_steps_fn", failing)
    with pytest.raises(RuntimeError, match="a failing call"):
        evaluator.ranks(data, "standard")
    assert not _meta_optimizer_disabled()
