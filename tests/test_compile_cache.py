"""Reusing compiled loops: capacity padding changes no result; stable trace names; the persistent cache is hit."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from gru4rec_tf.train import compile_cache
from gru4rec_tf.evaluation import full_catalogue
from gru4rec_tf.model import model_dir as model_dir_lib
from gru4rec_tf.data import synthetic
from gru4rec_tf.train import routine
from gru4rec_tf.train import warm_start
from gru4rec_tf.train.options import TrainOptions
from gru4rec_tf.params import GRU4RecParams
from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.data.vocabulary import ItemVocabulary
from param_variants import BPR_MAX, PARAM_VARIANTS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMS = [BPR_MAX.with_overrides({"n_epochs": 2}), *PARAM_VARIANTS[1:]]


@pytest.fixture(scope="module")
def days():
    events = synthetic.generate_sessions(n_items=80, n_sessions=300, seed=4, span_days=4.0)
    day1, rest = synthetic.train_test_split_by_time(events, test_days=2.0)
    day2, day3 = synthetic.train_test_split_by_time(rest, test_days=1.0)
    return day1, day2, day3


def test_capacities_round_up_to_half_octaves_and_budgets_to_quarter_octaves():
    assert [compile_cache.item_capacity(n) for n in (1, 4, 5, 7, 80, 97, 1883, 2387, 2660, 2933)] == \
        [1, 4, 6, 8, 96, 128, 2048, 3072, 3072, 3072]
    assert [compile_cache.round_up(n) for n in (9, 80, 81, 1408, 1472, 1536)] == [10, 80, 96, 1536, 1536, 1536]
    for n in range(1, 5000):
        for steps, fn in ((2, compile_cache.item_capacity), (4, compile_cache.round_up)):
            c = fn(n)
            assert n <= c <= (1 + 1 / steps) * n + 1
            assert fn(c) == c  # a rounded size is its own bucket


def test_enable_after_tensorflow_started_only_warns(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    tf.constant(1)  # TensorFlow has run: its XLA flags are read
    assert not compile_cache.enable(str(tmp_path / "cache"))
    assert not compile_cache.enabled()


def _weights(model):
    return [v.numpy() for v in model.trainable_variables]


@pytest.mark.slow
@pytest.mark.parametrize("params", PARAMS, ids=["bpr-max-momentum-dropout", "xe-logq-separate", "top1-none"])
def test_padded_item_tables_give_the_unpadded_results(days, params, monkeypatch, tmp_path):
    """Cold run with validation, then a warm start on a grown catalogue: weights, optimizer state, validation
    history, losses and evaluation are exactly those of the unpadded runs with the same seed."""
    day1, day2, day3 = days
    vocab1 = ItemVocabulary.from_events(day1)
    options = TrainOptions(seed=3, steps_per_call=4, log_every_s=1e9)

    def runs():
        valid = routine.Validation(SessionData.from_events(day2, vocab1), patience=5)
        cold = routine.train(SessionData.from_events(day1, vocab1), vocab1, params, options, validation=valid)
        model_dir = str(tmp_path / f"cold_{compile_cache.enabled()}")
        model_dir_lib.save_model(model_dir, cold.model, vocab1, optimizer_state=cold.optimizer_state)
        saved = model_dir_lib.load_model(model_dir)
        vocab2 = warm_start.warm_vocabulary(saved.vocab, ItemVocabulary.from_events(day2))
        warm = routine.train(SessionData.from_events(day2, vocab2), vocab2, params, options, warm_start=saved)
        metrics = full_catalogue.Evaluator(warm.model).evaluate(SessionData.from_events(day3, vocab2), cutoffs=(5, 20))
        return cold, warm, metrics

    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    plain = runs()
    # The cache "on" (padding follows the flag; whether this process really persists programs does not matter).
    monkeypatch.setenv("TF_XLA_FLAGS", f"{compile_cache.FLAG}={tmp_path / 'cache'}")
    monkeypatch.setattr(compile_cache, "item_capacity", lambda n: n + 37)
    padded = runs()
    for a, b in zip(plain[:2], padded[:2], strict=True):
        assert b.model.n_items == a.model.n_items == len(a.vocab)
        for x, y in zip(_weights(a.model), _weights(b.model), strict=True):
            np.testing.assert_array_equal(x, y)
        assert a.optimizer_state.keys() == b.optimizer_state.keys()
        for key, value in a.optimizer_state.items():
            np.testing.assert_array_equal(value, b.optimizer_state[key])
        assert [h.loss for h in a.history] == [h.loss for h in b.history]
        assert a.valid_history == b.valid_history
    assert plain[2] == padded[2]
    # What the saved model records (the pipeline's re-run detection) is unchanged; warm_start names the directory.
    assert padded[0].identity == plain[0].identity
    assert {**padded[1].identity, "warm_start": None} == {**plain[1].identity, "warm_start": None}


@pytest.mark.slow
def test_a_checkpoint_of_padded_tables_resumes_only_with_the_same_capacity(days, monkeypatch, tmp_path):
    day1, _, _ = days
    vocab = ItemVocabulary.from_events(day1)
    data, ckpt = SessionData.from_events(day1, vocab), str(tmp_path / "ckpt")
    monkeypatch.setenv("TF_XLA_FLAGS", f"{compile_cache.FLAG}={tmp_path / 'cache'}")
    monkeypatch.setattr(compile_cache, "item_capacity", lambda n: n + 37)
    routine.train(data, vocab, PARAMS[0], TrainOptions(seed=3, epochs=1, steps_per_call=4, checkpoint_dir=ckpt))
    monkeypatch.delenv("TF_XLA_FLAGS")
    with pytest.raises(ValueError, match="item_capacity"):
        routine.train(data, vocab, PARAMS[0], TrainOptions(seed=3, epochs=2, steps_per_call=4, checkpoint_dir=ckpt))


def test_padded_rows_are_never_sampled_nor_ranked(days, monkeypatch):
    day1, _, _ = days
    vocab = ItemVocabulary.from_events(day1)
    params = PARAMS[0]
    trainer = routine.build_trainer(vocab.support, params, seed=1, capacity=len(vocab) + 50)
    assert trainer.model.n_items == len(vocab) + 50 and trainer.n_items == len(vocab)
    assert int(tf.reduce_max(trainer.sampler.sample(200))) < len(vocab)
    # Padded rows scoring above everything must not change a rank: the evaluator only ranks the catalogue.
    trainer.model.item_bias.assign(np.concatenate([np.zeros(len(vocab)), np.full(50, 1e6)]).astype(np.float32))
    ranks = full_catalogue.Evaluator(trainer.model, n_items=len(vocab)).ranks(SessionData.from_events(day1, vocab))
    assert ranks.max() <= len(vocab)


def test_the_same_configuration_gets_the_same_names_only_once_per_process():
    def traced_name(config):
        fn = tf.function(lambda x: tf.while_loop(lambda i: i < x, lambda i: i + 1, [0]), autograph=False,
                         input_signature=[tf.TensorSpec([], tf.int32)])
        with compile_cache.stable_trace_names(config):
            return fn.get_concrete_function().name

    first, other, again = traced_name("cfg-a"), traced_name("cfg-b"), traced_name("cfg-a")
    assert len({first, other, again}) == 3  # unique within the process
    compile_cache._trace_counts.pop("cfg-a")  # a new process: the first trace of cfg-a again
    assert traced_name("cfg-a") == first


_RUN = textwrap.dedent("""
    import sys
    import gru4rec_tf, numpy as np, tensorflow as tf
    from gru4rec_tf.data import synthetic
    from gru4rec_tf.train import routine
    from gru4rec_tf.train.options import TrainOptions
    from gru4rec_tf.params import GRU4RecParams
    from gru4rec_tf.data.session_data import SessionData
    from gru4rec_tf.data.vocabulary import ItemVocabulary
    for _ in range(int(sys.argv[2])):  # other tracing first: the process-wide uids differ between the runs
        tf.function(lambda x: x + 1)(tf.constant(1))
    events = synthetic.generate_sessions(n_items=int(sys.argv[3]), n_sessions=200, seed=4, span_days=2.0)
    vocab = ItemVocabulary.from_events(events)
    params = GRU4RecParams.from_string(sys.argv[4])
    options = TrainOptions(seed=1, steps_per_call=4, log_every_s=1e9, compile_cache_dir=sys.argv[1])
    result = routine.train(SessionData.from_events(events, vocab), vocab, params, options)
    print("ITEMS", len(vocab), result.model.n_items)
""")


@pytest.mark.slow
@pytest.mark.parametrize("params", [
    "loss=bpr-max,layers=8,batch_size=8,n_sample=16,n_epochs=1",
    # the logQ table (log supports, different every day) is a variable, not a constant of the loop
    "loss=cross-entropy,logq=1.0,layers=8,batch_size=8,n_sample=16,n_epochs=1",
], ids=["bpr-max", "xe-logq"])
def test_a_later_process_with_a_grown_catalogue_loads_the_compiled_loop(tmp_path, params):
    cache = tmp_path / "xla"

    def run(extra_traces, n_items):
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("TF_XLA_FLAGS", None)
        out = subprocess.run([sys.executable, "-c", _RUN, str(cache), str(extra_traces), str(n_items), params],
                             env=env, capture_output=True, text=True, timeout=300, check=True).stdout
        return out.split("ITEMS")[1].split(), sorted(os.listdir(cache))

    (n1, m1), files = run(0, 56)
    assert files and int(n1) == int(m1)  # compiled and saved; the returned model has the real size
    (n2, _), files_again = run(3, 62)
    assert int(n2) != int(n1) and compile_cache.item_capacity(int(n2)) == compile_cache.item_capacity(int(n1))
    assert files_again == files  # same capacity bucket, other uids before: loaded, nothing new compiled


@pytest.mark.slow
def test_padding_changes_nothing_where_the_distinct_row_budget_applies(monkeypatch, tmp_path):
    """With the cache on, the distinct-row budget is rounded up to a quarter octave (shapes stable across days);
    with the same budget, padded tables give the unpadded weights bit for bit."""
    events = synthetic.generate_sessions(n_items=300, n_sessions=300, seed=2, span_days=1.0)
    vocab = ItemVocabulary.from_events(events)
    data = SessionData.from_events(events, vocab)
    params = GRU4RecParams.from_string("loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=8,n_sample=256,"
                                       "sample_alpha=0.5,learning_rate=0.1,n_epochs=1")
    monkeypatch.setenv("TF_XLA_FLAGS", f"{compile_cache.FLAG}={tmp_path / 'cache'}")
    plain = routine.build_trainer(vocab.support, params, seed=3, steps_per_call=8)
    padded = routine.build_trainer(vocab.support, params, seed=3, steps_per_call=8, capacity=len(vocab) + 37)
    assert plain.row_budget.budget is not None and plain.row_budget.budget == padded.row_budget.budget
    assert compile_cache.round_up(plain.row_budget.budget) == plain.row_budget.budget
    assert [h.loss for h in plain.fit(data)] == [h.loss for h in padded.fit(data)]
    unpadded = routine.unpadded_model(padded.model, len(vocab))
    for x, y in zip(_weights(plain.model), _weights(unpadded), strict=True):
        np.testing.assert_array_equal(x, y)
