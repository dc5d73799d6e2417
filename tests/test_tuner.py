"""The tuning engine (gru4rec_tf.tune.tuner): trials through routine.train, per-epoch reports, pruning, failures,
resume after an interruption, and the reports. Tiny synthetic data and layers: a trial takes about a second."""
import csv
import dataclasses
import json

import numpy as np
import pytest

from gru4rec_tf.data import synthetic
from gru4rec_tf.train import routine
from gru4rec_tf.train.options import TrainOptions
from gru4rec_tf.tune import tuner as tuner_lib
from gru4rec_tf.params import GRU4RecParams
from gru4rec_tf.tune.search_space import SearchSpace
from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.data.vocabulary import ItemVocabulary

BASE = GRU4RecParams.from_string("loss=bpr-max,final_act=elu-0.5,batch_size=16,n_sample=16")
SPACE = SearchSpace.from_dict({"layers": {"low": 8, "high": 24, "step": 8},
                               "learning_rate": {"low": 0.02, "high": 0.2, "step": 0.02},
                               "final_act": {"values": ["elu-0.5", "linear"]}})


@pytest.fixture(scope="module")
def data():
    events = synthetic.generate_sessions(n_items=60, n_sessions=300, seed=1, span_days=4.0)
    train_events, valid_events = synthetic.train_test_split_by_time(events, test_days=1.0)
    vocab = ItemVocabulary.from_events(train_events)
    return dict(train_data=SessionData.from_events(train_events, vocab),
                valid_data=SessionData.from_events(valid_events, vocab), vocab=vocab)


def make_tuner(directory, trials, epochs=2, base=BASE, space=SPACE, **kwargs):
    kwargs.setdefault("training", TrainOptions(jit_compile=False, steps_per_call=8))
    return tuner_lib.GRU4RecTuner(base, space, "mrr@20", epochs, max_trials=trials, directory=str(directory),
                               **kwargs)


@pytest.mark.slow
def test_a_study_reports_every_epoch_and_writes_the_reports(data, tmp_path):
    tuner = make_tuner(tmp_path / "study", trials=3, algorithm="random")
    tuner.search(**data)
    trials = tuner.oracle.trials
    assert len(trials) == 3
    for trial in trials.values():
        assert tuner_lib.trial_state(trial) == "COMPLETED"
        history = trial.metrics.get_history("mrr@20")
        assert [obs.step for obs in history] == [1, 2]  # reported after every epoch
        assert trial.score == max(max(obs.value) for obs in history)
    best = tuner_lib.write_reports(tuner, str(tmp_path))
    saved = json.loads((tmp_path / "best_params.json").read_text())
    assert set(saved) == {"params", "objective", "value", "trial", "epochs"}
    assert saved["objective"] == "mrr@20" and saved["value"] == max(t.score for t in trials.values())
    params = GRU4RecParams.from_string(saved["params"])
    assert params.n_epochs == saved["epochs"] == best.epochs and params.n_sample == 16
    assert params.layers[0] in (8, 16, 24) and params.loss == "bpr-max"
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert [r["trial"] for r in rows] == ["1", "2", "3"]
    assert {"state", "value", "best_epoch", "seconds", "layers", "learning_rate", "final_act", "mrr@20_epoch1",
            "mrr@20_epoch2"} <= set(rows[0])
    assert all(r["state"] == "COMPLETED" and float(r["seconds"]) > 0 for r in rows)
    assert (tmp_path / "optimization_history.png").read_bytes()[:4] == b"\x89PNG"
    # the best trial's parameters and epochs reproduce its validation value through the training routine
    again = routine.train(data["train_data"], data["vocab"], params,
                          TrainOptions(seed=42, steps_per_call=8, jit_compile=False),
                          validation=routine.Validation(data["valid_data"], cutoffs=(20,)))
    assert again.valid_history[-1]["mrr@20"] == pytest.approx(saved["value"], abs=1e-6)


def test_a_failing_trial_is_recorded_and_the_study_goes_on(data, tmp_path, monkeypatch):
    real_train = routine.train
    calls = []

    def flaky_train(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("the training loss is nan at chunk 3")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(routine, "train", flaky_train)
    tuner = make_tuner(tmp_path / "study", trials=3, epochs=1)
    tuner.search(**data)
    states = [tuner_lib.trial_state(tuner.oracle.trials[t]) for t in sorted(tuner.oracle.trials)]
    assert states == ["COMPLETED", "FAILED", "COMPLETED"]
    rows = tuner_lib.trial_rows(tuner.oracle, "mrr@20", 1, tuner.project_dir)
    assert rows[1]["state"] == "FAILED" and "nan" in rows[1]["message"] and rows[1]["value"] is None
    assert tuner_lib.best_trial(tuner.oracle).trial_id in ("0", "2")


def test_a_diverging_learning_rate_fails_its_trial_only(data, tmp_path):
    base = BASE.with_overrides("learning_rate=1e30,momentum=0.9")
    space = SearchSpace.from_dict({"layers": {"values": [8, 16]}})
    tuner = make_tuner(tmp_path / "study", trials=2, epochs=1, base=base, space=space)
    tuner.search(**data)
    rows = tuner_lib.trial_rows(tuner.oracle, "mrr@20", 1, tuner.project_dir)
    assert [r["state"] for r in rows] == ["FAILED", "FAILED"]
    assert all("FloatingPointError" in r["message"] for r in rows)


@pytest.mark.slow
def test_median_pruning_stops_trials_below_the_median(data, tmp_path, monkeypatch):
    tuner = make_tuner(tmp_path / "study", trials=4, epochs=2, prune_after=2, algorithm="random")
    values = iter([0.5, 0.6, 0.4, 0.5, 0.1, 0.9, 0.9])  # trial 3 is below the median after epoch 1

    real_train = routine.train

    def fake_metrics_train(*args, on_epoch_end=None, **kwargs):
        def patched(epoch, metrics):
            on_epoch_end(epoch, {**metrics, "mrr@20": next(values)})
        return real_train(*args, on_epoch_end=patched, **kwargs)

    monkeypatch.setattr(routine, "train", fake_metrics_train)
    tuner.search(**data)
    rows = tuner_lib.trial_rows(tuner.oracle, "mrr@20", 2, tuner.project_dir)
    assert [r["state"] for r in rows] == ["COMPLETED", "COMPLETED", "PRUNED", "COMPLETED"]
    assert rows[2]["mrr@20_epoch2"] is None and rows[2]["value"] == 0.1 and "median" in rows[2]["message"]
    assert tuner_lib.best_trial(tuner.oracle).value == 0.9


@pytest.mark.slow
def test_an_interrupted_study_resumes_to_the_total(data, tmp_path, monkeypatch):
    real_train = routine.train

    def interrupted_train(*args, on_epoch_end=None, **kwargs):
        def hook(epoch, metrics):
            on_epoch_end(epoch, metrics)
            raise KeyboardInterrupt  # a kill during the second trial
        return real_train(*args, on_epoch_end=hook, **kwargs)

    tuner = make_tuner(tmp_path / "study", trials=1, epochs=2)
    tuner.search(**data)  # one trial done
    monkeypatch.setattr(routine, "train", interrupted_train)
    tuner = make_tuner(tmp_path / "study", trials=3, epochs=2)
    with pytest.raises(KeyboardInterrupt):
        tuner.search(**data)
    monkeypatch.setattr(routine, "train", real_train)
    tuner = make_tuner(tmp_path / "study", trials=3, epochs=2)  # the same call again continues the study
    tuner.search(**data)
    rows = tuner_lib.trial_rows(tuner.oracle, "mrr@20", 2, tuner.project_dir)
    assert [r["state"] for r in rows] == ["COMPLETED"] * 3
    assert all(r["mrr@20_epoch2"] is not None for r in rows)  # the interrupted trial was run again


def test_best_hyperparameters_carry_the_fixed_params_and_the_best_epoch(data, tmp_path):
    tuner = make_tuner(tmp_path / "study", trials=2, epochs=1)
    tuner.search(**data)
    config = tuner.get_best_hyperparameters()[0].get_config()  # what the TFX Tuner writes
    values = json.loads(json.dumps(config))["values"]
    params = tuner_lib.params_from_values(values)
    assert params.n_epochs == 1 and params.n_sample == 16 and params.batch_size == 16
    assert params == tuner_lib.best_trial(tuner.oracle).params
    assert tuner_lib.params_from_values(tuner_lib.best_hyperparameters_values(tuner.oracle)) == params


def test_timeout_starts_no_new_trial(data, tmp_path):
    tuner = make_tuner(tmp_path / "study", trials=5, epochs=1, timeout_s=0.5)
    tuner.search(**data)  # the first trial takes longer than the timeout: the study stops after it
    assert len(tuner.oracle.trials) == 1
    assert tuner_lib.trial_state(tuner.oracle.trials["0"]) == "COMPLETED"


def _progress(losses, epoch=0, steps=8):
    from gru4rec_tf.train.trainer import EpochProgress  # pylint: disable=import-outside-toplevel
    return EpochProgress(epoch=epoch, next_chunk=1, n_chunks=3, states=[], sampler_state=None, dropout_state=None,
                         steps=steps, last_chunk_losses=np.asarray(losses, dtype=np.float32))


def test_the_divergence_check_compares_each_chunk_with_the_first_step():
    check = tuner_lib.DivergenceCheck(10.0)
    check(_progress([0.7, 0.69, 0.6, 0.5]))  # the first step's loss (0.7) is the reference
    check(_progress([6.0, 7.0, 7.5], steps=16))  # mean 6.8 <= 7: still training
    with pytest.raises(tuner_lib.Diverged, match=r"training loss 35 .* > 10 x 0.7") as raised:
        check(_progress([30.0, 40.0], epoch=1, steps=24))
    assert raised.value.epoch == 2
    with pytest.raises(FloatingPointError, match="nan at epoch 1, step 8"):
        tuner_lib.DivergenceCheck(10.0)(_progress([0.7, float("nan")]))
    off = tuner_lib.DivergenceCheck(0.0)  # 0 disables the ratio, not the non-finite check
    off(_progress([0.7]))
    off(_progress([1e6]))
    with pytest.raises(FloatingPointError):
        off(_progress([float("inf")]))


def test_a_diverging_trial_stops_early_is_never_best_and_tells_the_oracle(data, tmp_path, monkeypatch):
    real_train = routine.train
    chunks_seen = []

    def exploding_train(*args, on_chunk_end=None, **kwargs):
        trial = len(chunks_seen)
        chunks_seen.append(0)

        def hook(progress):
            chunks_seen[trial] += 1
            if trial == 1 and chunks_seen[trial] >= 2:  # the second trial's loss blows up from its second chunk
                progress = dataclasses.replace(progress, last_chunk_losses=progress.last_chunk_losses * 1000)
            on_chunk_end(progress)
        return real_train(*args, on_chunk_end=hook, **kwargs)

    monkeypatch.setattr(routine, "train", exploding_train)
    tuner = make_tuner(tmp_path / "study", trials=3, epochs=2, algorithm="random")
    tuner.search(**data)
    assert chunks_seen[1] == 2 and chunks_seen[0] > 2  # stopped after the chunk that diverged
    rows = tuner_lib.trial_rows(tuner.oracle, "mrr@20", 2, tuner.project_dir)
    assert [r["state"] for r in rows] == ["COMPLETED", "DIVERGED", "COMPLETED"]
    assert rows[1]["value"] is None and rows[1]["mrr@20_epoch1"] is None and "first step" in rows[1]["message"]
    assert tuner.oracle.trials["1"].score == 0.0  # what the Bayesian oracle learns from it
    assert tuner_lib.best_trial(tuner.oracle).trial_id in ("0", "2")
    tuner_lib.write_reports(tuner, str(tmp_path))
    saved = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert saved[1]["state"] == "DIVERGED" and saved[1]["value"] == ""


def test_the_initial_values_are_the_first_trial_only_once(data, tmp_path):
    initial = {"layers": 16, "learning_rate": 0.05, "final_act": "linear"}  # 0.05 is off the space's 0.02 grid
    tuner = make_tuner(tmp_path / "study", trials=2, epochs=1, initial=[initial])
    tuner.search(**data)
    first = tuner.oracle.trials["0"].hyperparameters.values
    assert {k: first[k] for k in initial} == initial
    assert tuner_lib.params_from_values(first).learning_rate == 0.05
    assert tuner_lib.trial_state(tuner.oracle.trials["1"]) == "COMPLETED"
    tuner = make_tuner(tmp_path / "study", trials=3, epochs=1, initial=[initial])  # resumed: not run again
    tuner.search(**data)
    third = tuner.oracle.trials["2"].hyperparameters.values
    assert len(tuner.oracle.trials) == 3 and {k: third[k] for k in initial} != initial


HALVING_INITIAL = [{"layers": 16, "learning_rate": 0.05, "final_act": "linear"},
                   {"layers": 8, "learning_rate": 0.1, "final_act": "elu-0.5"}]


def _key(row):
    return (row["layers"], row["learning_rate"], row["final_act"])


@pytest.mark.slow  # a whole halving search: 9-10 s on 2 cores
def test_successive_halving_tries_the_portfolio_first_and_promotes_the_best(data, tmp_path):
    tuner = make_tuner(tmp_path / "study", trials=2, epochs=2, algorithm="halving", initial=HALVING_INITIAL,
                       fidelity="epochs")
    assert tuner.schedule == [5, 1, 1]  # 5 configurations for the price of 2 full trials
    assert [(round(f.fraction, 3), f.epochs) for f in tuner.levels] == [(0.222, 1), (0.667, 1), (1.0, 2)]
    tuner.search(**data)
    rows = tuner_lib.trial_rows(tuner.oracle, "mrr@20", 2, tuner.project_dir)
    assert [r["rung"] for r in rows] == [0, 0, 0, 0, 0, 1, 2] and {r["state"] for r in rows} == {"COMPLETED"}
    assert [{k: rows[i][k] for k in HALVING_INITIAL[i]} for i in range(2)] == HALVING_INITIAL  # the portfolio first
    assert len({_key(r) for r in rows[:5]}) == 5
    best_first = max(rows[:5], key=lambda r: r["value"])
    assert _key(rows[5]) == _key(best_first) and _key(rows[6]) == _key(rows[5])  # the best goes up each rung
    assert rows[6]["mrr@20_epoch2"] is not None and rows[0]["mrr@20_epoch2"] is None
    spent = sum(tuner.levels[r["rung"]].cost(2) for r in rows)
    assert spent <= 2 + 1e-9
    best = tuner_lib.best_trial(tuner.oracle, tuner.project_dir)
    assert best.trial_id == "6" and best.epochs == rows[6]["best_epoch"]  # the full trial, not a cheaper rung
    values = tuner.get_best_hyperparameters()[0].values
    assert tuner_lib.params_from_values(values) == best.params  # what the TFX Trainer reads


@pytest.mark.slow
def test_a_halving_study_resumes_and_a_larger_budget_adds_configurations(data, tmp_path, monkeypatch):
    """The plain halving plan (max_epochs=epochs: no extension rung, whose own tests are below)."""
    real_train = routine.train
    calls = []

    def interrupted_train(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # a kill during the fourth evaluation
        return real_train(*args, **kwargs)

    monkeypatch.setattr(routine, "train", interrupted_train)
    with pytest.raises(KeyboardInterrupt):
        make_tuner(tmp_path / "study", trials=2, epochs=2, algorithm="halving", initial=HALVING_INITIAL,
                       max_epochs=2).search(**data)
    monkeypatch.setattr(routine, "train", real_train)
    tuner = make_tuner(tmp_path / "study", trials=2, epochs=2, algorithm="halving", initial=HALVING_INITIAL,
                       max_epochs=2)
    tuner.search(**data)
    first = tuner_lib.trial_rows(tuner.oracle, "mrr@20", 2, tuner.project_dir)
    assert [r["rung"] for r in first] == [0, 0, 0, 0, 0, 1, 2] and {r["state"] for r in first} == {"COMPLETED"}
    tuner = make_tuner(tmp_path / "study", trials=3, epochs=2, algorithm="halving", initial=HALVING_INITIAL,
                       max_epochs=2)
    assert tuner.schedule == [9, 3, 1]
    tuner.search(**data)
    rows = tuner_lib.trial_rows(tuner.oracle, "mrr@20", 2, tuner.project_dir)
    assert rows[:7] == first  # nothing rerun
    assert sorted(r["rung"] for r in rows) == [0] * 9 + [1] * 3 + [2]
    top = sorted((r for r in rows if r["rung"] == 0), key=lambda r: r["value"], reverse=True)[:3]
    assert {_key(r) for r in rows if r["rung"] == 1} == {_key(r) for r in top}


@pytest.fixture(name="training_runs")
def _training_runs(monkeypatch):
    """``(epochs, checkpoint_dir)`` of every ``routine.train`` call, in order; training itself runs as usual."""
    real_train = routine.train
    runs = []

    def spy(train_data, vocab, params, options, **kwargs):
        runs.append((options.epochs, options.checkpoint_dir))
        return real_train(train_data, vocab, params, options, **kwargs)

    monkeypatch.setattr(routine, "train", spy)
    return runs


def test_a_promotion_to_more_epochs_continues_the_run_of_the_rung_below(data, tmp_path, training_runs):
    runs = training_runs
    tuner = make_tuner(tmp_path / "study", trials=1, epochs=3, algorithm="halving", initial=HALVING_INITIAL[:1],
                       fidelity="epochs")
    assert tuner_lib.continues(tuner.levels) == [False, False, True]  # 1/3 x 1 epoch, all x 1, all x 3
    assert tuner.costs == pytest.approx([1 / 9, 1 / 3, 2 / 3])  # the continued rung costs its 2 added epochs
    tuner.search(**data)
    rows = tuner_lib.trial_rows(tuner.oracle, "mrr@20", 3, tuner.project_dir)
    assert [r["rung"] for r in rows] == [0, 1, 2]
    assert runs[0][1] is None and runs[1][1] is not None and runs[2][1] == runs[1][1]  # one shared run
    assert rows[2]["mrr@20_epoch1"] == rows[1]["mrr@20_epoch1"] and rows[2]["mrr@20_epoch3"] is not None
    fresh = routine.train(data["train_data"], data["vocab"], tuner_lib.params_from_values(
        tuner.oracle.trials["2"].hyperparameters.values, epochs=3), TrainOptions(steps_per_call=8, jit_compile=False),
        validation=routine.Validation(data["valid_data"], cutoffs=(20,)))
    assert [h["mrr@20"] for h in fresh.valid_history] == pytest.approx(
        [rows[2][f"mrr@20_epoch{e}"] for e in (1, 2, 3)], abs=1e-6)  # the same as training 3 epochs at once
    assert not (tmp_path / "study" / "continued_runs").exists()  # removed when the search ends


@pytest.mark.slow  # a whole halving search: 9-10 s on 2 cores
def test_the_default_fidelity_trains_every_epoch_on_the_most_recent_sessions(tmp_path, monkeypatch):
    events = synthetic.generate_sessions(n_items=60, n_sessions=2000, seed=2, span_days=4.0)
    train_events, valid_events = synthetic.train_test_split_by_time(events, test_days=1.0)
    vocab = ItemVocabulary.from_events(train_events)
    train = SessionData.from_events(train_events, vocab)
    real_train = routine.train
    runs = []

    def spy(train_data, vocab, params, options, **kwargs):
        runs.append((train_data, options.epochs, options.checkpoint_dir))
        return real_train(train_data, vocab, params, options, **kwargs)

    monkeypatch.setattr(routine, "train", spy)
    tuner = make_tuner(tmp_path / "study", trials=2, epochs=2, algorithm="halving", initial=HALVING_INITIAL,
                       rungs=3, eta=2)
    assert tuner.levels == [tuner_lib.Fidelity(0.25, 2), tuner_lib.Fidelity(0.5, 2), tuner_lib.Fidelity(1.0, 2)]
    assert tuner_lib.continues(tuner.levels) == [False, False, False] and tuner.costs == [0.25, 0.5, 1.0]
    assert tuner.schedule == [2, 1, 1]  # 2 x 1/4 + 1/2 + 1 = 2 full trials
    tuner.search(train_data=train, valid_data=SessionData.from_events(valid_events, vocab), vocab=vocab)
    rows = tuner_lib.trial_rows(tuner.oracle, "mrr@20", 2, tuner.project_dir)
    assert [r["rung"] for r in rows] == [0, 0, 1, 2] and {r["state"] for r in rows} == {"COMPLETED"}
    assert all(epochs == 2 and checkpoint is None for _, epochs, checkpoint in runs)  # all epochs, from scratch
    assert all(r["mrr@20_epoch1"] is not None and r["mrr@20_epoch2"] is not None for r in rows)
    sessions = [data.n_sessions for data, _, _ in runs]
    assert sessions == [round(train.n_sessions / 4)] * 2 + [round(train.n_sessions / 2), train.n_sessions]
    for data, _, _ in runs:  # the most recent sessions: the tail of the training log
        assert np.array_equal(data.session_ids, train.session_ids[-data.n_sessions:])
        assert np.array_equal(data.item_idx, train.item_idx[-data.n_events:])
    best_first = max(rows[:2], key=lambda r: r["value"])
    assert _key(rows[2]) == _key(best_first) and _key(rows[3]) == _key(rows[2])


def test_the_best_full_trial_continues_while_the_objective_improves_and_its_best_epoch_is_chosen(
        data, tmp_path, monkeypatch, training_runs):
    from gru4rec_tf.evaluation import full_catalogue  # pylint: disable=import-outside-toplevel
    # the validation after each trained epoch, in order: rung 0 (3 configurations x 1 epoch), rung 1 (the best, 1
    # epoch on all the sessions), then the extension: better at epoch 2, worse at 3 (one dip: it goes on), better
    # again at 4, then worse at 5 and 6 -> two epochs without improvement: it stops there, before max_epochs 7
    scripted = iter([0.10, 0.30, 0.20, 0.30, 0.35, 0.33, 0.36, 0.34, 0.30, 0.99])
    monkeypatch.setattr(full_catalogue.Evaluator, "evaluate",
                        lambda self, *args, **kwargs: {"mrr@20": next(scripted), "recall@20": 0.5})
    runs = training_runs
    tuner = make_tuner(tmp_path / "study", trials=8, epochs=1, algorithm="halving", initial=HALVING_INITIAL,
                       rungs=2, max_epochs=7)
    # 3 x 1/3 + 1 full trial + the extension's worst case (6 more epochs on all the sessions) = 8 full trials
    assert tuner.extension and tuner.schedule == [3, 1, 1]
    assert tuner.levels[-1] == tuner_lib.Fidelity(1.0, 7) and tuner.costs == pytest.approx([1 / 3, 1, 6])
    tuner.search(**data)
    rows = tuner_lib.trial_rows(tuner.oracle, "mrr@20", 1, tuner.project_dir)
    assert [r["rung"] for r in rows] == [0, 0, 0, 1, 2] and {r["state"] for r in rows} == {"COMPLETED"}
    assert _key(rows[3]) == _key(rows[1]) and _key(rows[4]) == _key(rows[3])  # the best goes up, then continues
    assert runs[3][1] is not None and runs[4] == (7, runs[3][1])  # from the full trial's checkpoint, to 7 at most
    extension = rows[4]
    assert [extension[f"mrr@20_epoch{e}"] for e in range(1, 8)] == [0.30, 0.35, 0.33, 0.36, 0.34, 0.30, None]
    assert extension["epochs_trained"] == 5 and extension["best_epoch"] == 4 and extension["value"] == 0.36
    best = tuner_lib.best_trial(tuner.oracle, tuner.project_dir)
    assert best.trial_id == "4" and best.epochs == 4 and best.params.n_epochs == 4  # the chosen model's epochs
    assert tuner_lib.params_from_values(tuner.get_best_hyperparameters()[0].values) == best.params  # TFX Trainer
    # what was spent: the cheap rungs at their cost, the extension by the 5 epochs it trained (not its worst case)
    assert tuner_lib.budget_spent(tuner) == pytest.approx(3 / 3 + 1 + 5)
    assert not (tmp_path / "study" / "continued_runs").exists()


def test_without_room_in_the_budget_or_with_max_epochs_at_epochs_there_is_no_extension(tmp_path):
    assert not make_tuner(tmp_path / "a", trials=2, epochs=2, algorithm="halving").extension  # no room
    off = make_tuner(tmp_path / "b", trials=12, epochs=3, algorithm="halving", max_epochs=3)
    assert not off.extension and off.schedule == [36, 12, 4] and len(off.levels) == 3
    on = make_tuner(tmp_path / "c", trials=12, epochs=3, algorithm="halving")  # default: up to 2 x epochs
    assert on.extension and on.schedule == [36, 12, 3, 1] and on.levels[-1] == tuner_lib.Fidelity(1.0, 6)
    assert sum(c * n for c, n in zip(on.costs, on.schedule, strict=True)) == pytest.approx(12)
    with pytest.raises(ValueError, match="max_epochs must be >= epochs"):
        make_tuner(tmp_path / "d", trials=12, epochs=3, algorithm="halving", max_epochs=2)
