"""Training loop: compiled multi-step path vs step-by-step reference, masking of inactive rows, learning."""
import numpy as np
import pytest
import tensorflow as tf

from gru4rec_tf.data import batching
from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.evaluation import full_catalogue
from gru4rec_tf.model import network as model_lib
from gru4rec_tf.data import synthetic
from gru4rec_tf.train import trainer as trainer_lib
from gru4rec_tf.params import GRU4RecParams

N_ITEMS = 60


def _sessions(seed=0, n_sessions=40):
    rng = np.random.RandomState(seed)
    lengths = rng.randint(2, 6, size=n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return rng.randint(0, N_ITEMS, size=offsets[-1]).astype(np.int32), offsets


def _trainer(param_string, jit_compile, seed=3):
    params = GRU4RecParams.from_string(param_string)
    model = model_lib.GRU4Rec(N_ITEMS, params, seed=seed)
    support = np.arange(1, N_ITEMS + 1)
    return trainer_lib.Trainer(model, support, params, seed=seed, jit_compile=jit_compile)


CONFIGS = [
    "loss=bpr-max,final_act=elu-0.5,layers=8,batch_size=4,n_sample=6,bpreg=1.0,learning_rate=0.1",
    "loss=cross-entropy,logq=1.0,layers=8,batch_size=4,n_sample=6,learning_rate=0.1,momentum=0.5",
    "loss=top1-max,final_act=linear,layers=8/6,batch_size=4,n_sample=6,constrained_embedding=False,embedding=5",
    "loss=bpr,final_act=tanh,layers=8,batch_size=4,n_sample=0,constrained_embedding=False,embedding=0,momentum=0.2",
    "loss=xe_logit,final_act=softmax_logit,layers=8,batch_size=4,n_sample=3",
    "loss=top1,final_act=relu,layers=8,batch_size=4,n_sample=3,constrained_embedding=False,embedding=4",
]
DROPOUT_CONFIG = "loss=cross-entropy,logq=1.0,layers=8,batch_size=4,n_sample=6,dropout_p_embed=0.3,dropout_p_hidden=0.2"


@pytest.mark.parametrize("param_string,fast_jit,reference_jit", [  # the loop without XLA: slow tier
    pytest.param(c, jit, False, marks=() if jit else pytest.mark.slow) for c in CONFIGS for jit in (True, False)] + [
    # XLA draws other dropout masks than the TensorFlow kernels, so the reference steps use the fast path's kernels.
    (DROPOUT_CONFIG, True, True), (DROPOUT_CONFIG, False, False)])
def test_compiled_steps_equal_eager_reference(param_string, fast_jit, reference_jit):
    """The compiled multi-step loop (with or without XLA) gives the same losses and weights as eager steps."""
    items, offsets = _sessions()
    fast, slow = _trainer(param_string, jit_compile=fast_jit), _trainer(param_string, jit_compile=reference_jit)
    schedule = fast.make_schedule(type("D", (), {"item_idx": items, "session_offsets": offsets})())
    schedule = schedule.steps(0, 12)
    samples = fast.sampler.sample(schedule.n_steps)
    states_fast, losses_fast = fast.run_steps(schedule, samples, fast.model.initial_states(4))
    states_slow, losses_slow = slow.run_steps_eagerly(schedule, samples, slow.model.initial_states(4))
    np.testing.assert_allclose(losses_fast, losses_slow, rtol=1e-4, atol=1e-6)
    assert np.all(np.isfinite(losses_slow)) and losses_slow.std() > 0
    for a, b in zip(fast.model.trainable_variables, slow.model.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.name)
    for a, b in zip(states_fast, states_slow, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


def test_first_step_loss_matches_numpy_forward():
    """Loss of one bpr-max step recomputed in NumPy from the initial weights (GRU of spec §2.1, BPR-max §5)."""
    tr = _trainer("loss=bpr-max,final_act=elu-1,layers=8,batch_size=3,n_sample=4,bpreg=0.5", jit_compile=False)
    m = tr.model
    w = {v.name.split("/")[-1].split(":")[0]: v.numpy() for v in m.trainable_variables}
    inputs, targets, samples = np.array([1, 5, 9]), np.array([2, 6, 10]), np.array([[3, 3, 40, 59]], np.int32)
    sched = batching.BatchSchedule(inputs[None].astype(np.int32), targets[None].astype(np.int32),
                                   np.ones((1, 3), bool), np.ones((1, 3), bool), np.zeros((1, 3), np.int32))
    _, losses = tr.run_steps_eagerly(sched, tf.constant(samples), m.initial_states(3))
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    x, h = w["Wy"][inputs], np.zeros((3, 8))
    v = x @ w["Wx"] + w["Bh"]
    r, z = sig(v[:, 8:16] + h @ w["Wrz"][:, :8]), sig(v[:, 16:] + h @ w["Wrz"][:, 8:])
    h = (1 - z) * h + z * np.tanh((r * h) @ w["Wh"] + v[:, :8])
    cols = np.concatenate([targets, samples[0]])
    o = h @ w["Wy"][cols].T + w["By"][cols]
    act = np.where(o >= 0, o, np.expm1(np.minimum(o, 0)))
    total = 0.0
    for i in range(3):
        neg = np.array([j for j in range(len(cols)) if j != i])
        s = np.exp(act[i, neg] - act[i, neg].max())
        s /= s.sum()
        total += -np.log((s * sig(act[i, i] - act[i, neg])).sum() + 1e-24) + 0.5 * (s * act[i, neg] ** 2).sum()
    np.testing.assert_allclose(losses[0], total / 3, rtol=1e-5)


def test_inactive_rows_touch_no_parameter_rows():
    tr = _trainer("loss=bpr-max,final_act=elu-0.5,layers=8,batch_size=3,n_sample=2,momentum=0.5", jit_compile=False)
    before = tr.model.item_vectors.numpy().copy(), tr.model.item_bias.numpy().copy()
    # slot 2 is inactive; its (dummy) input/target 0 must not be updated, nor must any row but 1, 2, 4, 5, 7, 8
    sched = batching.BatchSchedule(np.array([[1, 4, 0]], np.int32), np.array([[2, 5, 0]], np.int32),
                                   np.array([[True, True, False]]), np.array([[True, True, False]]),
                                   np.array([[0, 1, -1]], np.int32))
    tr.run_steps_eagerly(sched, tf.constant([[7, 8]], tf.int32), tr.model.initial_states(3))
    changed = np.flatnonzero(np.any(tr.model.item_vectors.numpy() != before[0], axis=1))
    assert changed.tolist() == [1, 2, 4, 5, 7, 8]
    assert np.flatnonzero(tr.model.item_bias.numpy() != before[1]).tolist() == [2, 5, 7, 8]
    acc, vel = tr.optimizer.slots(tr.model.item_vectors)
    assert np.all(acc.numpy()[0] == 0) and np.all(vel.numpy()[0] == 0)


def test_training_learns_synthetic_sequences():
    events = synthetic.generate_sessions(n_items=200, n_sessions=3000, seed=1)
    train, test = synthetic.train_test_split_by_time(events, test_days=1.0)
    vocab = ItemVocabulary.from_events(train)
    train_data, test_data = SessionData.from_events(train, vocab), SessionData.from_events(test, vocab)
    params = GRU4RecParams.from_string("loss=bpr-max,final_act=elu-0.5,layers=32,batch_size=32,n_sample=64")
    model = model_lib.GRU4Rec(len(vocab), params)
    history = trainer_lib.Trainer(model, vocab.support, params).fit(train_data, n_epochs=3)
    assert history[-1].loss < history[0].loss
    assert [h.events for h in history] == [train_data.n_transitions] * 3
    metrics = full_catalogue.Evaluator(model).evaluate(test_data, cutoffs=(20,))
    popular = np.argsort(-vocab.support)[:20]
    targets = np.concatenate([test_data.item_idx[a + 1:b] for a, b in
                              zip(test_data.session_offsets[:-1], test_data.session_offsets[1:], strict=True)])
    popularity_recall = np.isin(targets, popular).mean()
    assert metrics["recall@20"] > popularity_recall + 0.15, (metrics, popularity_recall)


def test_trainer_rejects_mismatched_support():
    params = GRU4RecParams.from_string("layers=4")
    with pytest.raises(ValueError, match="support has 7 items"):
        trainer_lib.Trainer(model_lib.GRU4Rec(5, params), np.ones(7), params)
    # A shorter support: the rows beyond it are capacity padding (compile_cache), never sampled.
    trainer = trainer_lib.Trainer(model_lib.GRU4Rec(5, params), np.ones(3), params)
    assert trainer.n_items == 3 and trainer.model.n_items == 5


@pytest.mark.slow
def test_distinct_row_budget_and_its_fallback_match_the_full_size():
    """Steps computed on the distinct-row budget (and the full-size fallback) equal the full-size computation."""
    param_string = "loss=bpr-max,final_act=elu-0.5,layers=8,batch_size=4,n_sample=40,sample_alpha=1.0"
    params = GRU4RecParams.from_string(param_string)
    support = np.concatenate([[1000, 500, 200, 100], np.ones(196)])  # popular head: samples repeat a lot
    make = lambda: trainer_lib.Trainer(model_lib.GRU4Rec(200, params, seed=5), support, params, seed=5)  # noqa
    budgeted, full = make(), make()
    assert budgeted.row_budget.budget is not None and budgeted.row_budget.budget < 4 * 2 + 40
    full.row_budget.budget = None
    rng = np.random.RandomState(0)
    lengths = rng.randint(2, 6, size=30)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.randint(0, 200, size=offsets[-1]).astype(np.int32)
    schedule = batching.make_schedule(items, offsets, 4).steps(0, 10)
    samples = budgeted.sampler.sample(schedule.n_steps)
    samples = tf.concat([samples[:5], tf.reshape(tf.range(5 * 40) % 200, [5, 40])], 0)  # 5 steps exceed the budget
    results = []
    for tr in (budgeted, full):
        _, losses = tr.run_steps(schedule, samples, tr.model.initial_states(4))
        results.append((losses, [v.numpy() for v in tr.model.trainable_variables]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-7)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("param_string", [
    "loss=bpr-max,final_act=elu-0.5,layers=8,batch_size=4,n_sample=6,momentum=0.5",
    "loss=cross-entropy,layers=8,batch_size=4,n_sample=6,constrained_embedding=False,embedding=5",
])
def test_compiled_loop_leaves_rows_outside_the_steps_bit_identical(param_string):
    """Padding rows of the compiled loop (items a step does not use) are written back exactly as they were."""
    params = GRU4RecParams.from_string(param_string)
    n_items = 400
    tr = trainer_lib.Trainer(model_lib.GRU4Rec(n_items, params, seed=2), np.arange(1, n_items + 1), params, seed=2)
    tables = [v for v in tr.step_math.sparse_vars]  # noqa: C416
    tables += [slot for v in tr.step_math.sparse_vars for slot in tr.optimizer.slots(v) if slot is not None]
    tr.optimizer.apply_dense(tr.model.item_vectors, tf.random.normal(tr.model.item_vectors.shape))  # non-zero slots
    before = [t.numpy().copy() for t in tables]
    items, offsets = _sessions(seed=4)  # items < 60: rows 60.. are used only as samples
    schedule = tr.make_schedule(type("D", (), {"item_idx": items, "session_offsets": offsets})()).steps(0, 12)
    samples = tr.sampler.sample(schedule.n_steps).numpy()
    tr.run_steps(schedule, samples, tr.model.initial_states(4))
    used = np.union1d(np.concatenate([schedule.targets[schedule.valid], schedule.inputs[schedule.valid]]), samples)
    unused = np.setdiff1d(np.arange(n_items), used)
    assert len(unused) > 250
    for table, old in zip(tables, before, strict=True):
        np.testing.assert_array_equal(table.numpy()[unused], old[unused], err_msg=table.name)
        assert not np.array_equal(table.numpy()[used], old[used]) or "input" in table.name


@pytest.mark.parametrize("param_string", [
    "loss=bpr-max,final_act=elu-0.5,layers=8,batch_size=4,n_sample=6,momentum=0.3",
    "loss=cross-entropy,layers=8,batch_size=4,n_sample=6,constrained_embedding=False,embedding=3",
])
def test_catalogue_smaller_than_a_steps_columns(param_string):
    """With 3 items and 10+ columns per step, every row set is the whole catalogue: still the reference result."""
    params = GRU4RecParams.from_string(param_string)
    make = lambda jit: trainer_lib.Trainer(model_lib.GRU4Rec(3, params, seed=1), np.array([3, 2, 1]),  # noqa
                                           params, seed=1, jit_compile=jit)
    fast, slow = make(True), make(False)
    rng = np.random.RandomState(0)
    offsets = np.concatenate([[0], np.cumsum(rng.randint(2, 5, size=12))])
    schedule = batching.make_schedule(rng.randint(0, 3, size=offsets[-1]).astype(np.int32), offsets, 4)
    samples = fast.sampler.sample(schedule.n_steps).numpy()
    _, losses_fast = fast.run_steps(schedule, samples, fast.model.initial_states(4))
    _, losses_slow = slow.run_steps_eagerly(schedule, tf.constant(samples), slow.model.initial_states(4))
    np.testing.assert_allclose(losses_fast, losses_slow, rtol=1e-4, atol=1e-6)
    for a, b in zip(fast.model.trainable_variables, slow.model.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.name)


@pytest.mark.slow
@pytest.mark.parametrize("param_string,jit", [(c, True) for c in CONFIGS] + [(CONFIGS[1], False), (CONFIGS[2], False)])
def test_sampling_inside_the_loop_computes_the_host_paths_steps(param_string, jit):
    """With device sampling, the loop's own samples and distinct rows give exactly the host path's steps."""
    items, offsets = _sessions()
    params = GRU4RecParams.from_string(param_string)
    make = lambda device: trainer_lib.Trainer(  # noqa: E731
        model_lib.GRU4Rec(N_ITEMS, params, seed=3), np.arange(1, N_ITEMS + 1), params, seed=3, jit_compile=jit,
        steps_per_call=5, device_sampling=device)
    device, host = make(True), make(False)
    schedule = batching.make_schedule(items, offsets, 4).steps(0, 12)  # 3 calls, the last one partly padded
    states_device, losses_device, samples = device.run_steps_sampling_in_loop(schedule, device.model.initial_states(4))
    assert samples.shape == (12, params.n_sample) and np.all((samples >= 0) & (samples < N_ITEMS))
    if params.n_sample:
        assert len(np.unique(samples)) > params.n_sample  # fresh samples every step
    states_host, losses_host = host.run_steps(schedule, samples, host.model.initial_states(4))
    np.testing.assert_allclose(losses_device, losses_host, rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(losses_device))
    for a, b in zip(device.model.trainable_variables, host.model.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7, err_msg=a.name)
    for a, b in zip(states_device, states_host, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_sampling_inside_the_loop_keeps_the_distinct_row_budget_and_its_fallback():
    """Steps within the budget and steps above it (full size, chosen inside the loop) equal the host path's."""
    params = GRU4RecParams.from_string("loss=bpr-max,final_act=elu-0.5,layers=8,batch_size=4,n_sample=40,"
                                       "sample_alpha=0.3")
    support = np.concatenate([[1000, 500, 200, 100], np.ones(196)])
    make = lambda device: trainer_lib.Trainer(model_lib.GRU4Rec(200, params, seed=5), support, params,  # noqa: E731
                                              seed=5, steps_per_call=8, device_sampling=device)
    device, host = make(True), make(False)
    rng = np.random.RandomState(0)
    offsets = np.concatenate([[0], np.cumsum(rng.randint(2, 6, size=30))])
    schedule = batching.make_schedule(rng.randint(0, 200, size=offsets[-1]).astype(np.int32), offsets, 4).steps(0, 16)
    # a budget that some steps exceed: find the steps' distinct rows from a first run's samples
    _, _, samples = make(True).run_steps_sampling_in_loop(schedule, device.model.initial_states(4))
    n_unique = host.distinct_rows(schedule, samples)[0].n_unique
    budget = int(np.median(n_unique))
    assert np.any(n_unique > budget) and np.any(n_unique <= budget)
    device.row_budget.budget = host.row_budget.budget = budget
    _, losses_device, samples_device = device.run_steps_sampling_in_loop(schedule, device.model.initial_states(4))
    np.testing.assert_array_equal(samples_device, samples)  # same seed, same stream
    assert len(host.row_budget.segments(host.distinct_rows(schedule, samples)[0])) > 2  # both sizes really ran
    _, losses_host = host.run_steps(schedule, samples, host.model.initial_states(4))
    np.testing.assert_allclose(losses_device, losses_host, rtol=1e-5, atol=1e-7)
    for a, b in zip(device.model.trainable_variables, host.model.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7, err_msg=a.name)


@pytest.mark.slow
def test_training_with_device_sampling_learns_like_host_sampling():
    """Same data, both sampling modes: finite, decreasing losses and a similar recall on held-out sequences."""
    events = synthetic.generate_sessions(n_items=50, n_sessions=400, seed=2, span_days=5.0)
    train_events, test_events = synthetic.train_test_split_by_time(events, test_days=1.0)
    vocab = ItemVocabulary.from_events(train_events)
    train_data, test_data = SessionData.from_events(train_events, vocab), SessionData.from_events(test_events, vocab)
    params = GRU4RecParams.from_string("loss=bpr-max,final_act=elu-0.5,layers=32,batch_size=16,n_sample=32,"
                                       "learning_rate=0.1,momentum=0.2")
    results = {}
    for device in (False, True):
        model = model_lib.GRU4Rec(len(vocab), params, seed=1)
        history = trainer_lib.Trainer(model, vocab.support, params, seed=1, steps_per_call=16,
                                      device_sampling=device).fit(train_data, n_epochs=4)
        losses = [h.loss for h in history]
        assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] * 0.95, (device, losses)
        results[device] = full_catalogue.Evaluator(model).evaluate(test_data, cutoffs=(5,))["recall@5"]
    assert results[True] == pytest.approx(results[False], abs=0.05), results
    assert min(results.values()) > 0.15, results
