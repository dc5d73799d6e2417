"""End-to-end tests of the TFX pipeline (issue 5) under LocalDagRunner, inspecting the sqlite MLMD store.

One module-scoped store is shared by a chain of runs on a tiny synthetic click log (200 items, 1500 sessions,
1 epoch of a 16-unit GRU), so the whole file costs well under a minute after the imports:

1. ``first_run``: fresh store -> every component COMPLETE, blessed, pushed to <serving_root>/<model>/<version>/;
2. ``unblessed_run``: a new model (other seed) with an unreachable threshold -> not blessed, nothing pushed;
3. ``cached_runs``: the first configuration twice more -> data reused from the cache; the Trainer's base model (the
   last blessed model) was trained on these very data, so it is reused as it is, not blessed again and not pushed;
   on the last run every component CACHED and the Pusher skipped (the candidate is the model already pushed).
4. ``next_day_run``: a log with new items -> the Trainer warm-starts from the blessed model and carries its rows.

A broken input file fails at the first component with a clear message and pushes nothing (own store).
"""
import json
import re
import os

import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from gru4rec_tf.data import synthetic
from gru4rec_tf.data.event_columns import DataError
from tfx_pipeline import blessing, options, pipeline, runners, summary

PARAMS = "loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=32,learning_rate=0.1,n_sample=64,n_epochs=1"
EXECUTED = ("ClickLogExampleGen", "SessionTensors", "Trainer", "SessionEvaluator", "Pusher")
pytestmark = pytest.mark.slow


def write_click_log(directory, n_sessions=1500, n_items=200, seed=0):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "clicks.tsv")
    events = synthetic.generate_sessions(n_items=n_items, n_sessions=n_sessions, seed=seed)
    events.to_csv(path, sep="\t", index=False, float_format="%.3f")
    return path


def run_pipeline(work, data_dir, *, seed=42, thresholds=None, pattern="*"):
    """Builds and runs the pipeline in ``work``; returns (summary of the run, layout, raised exception or None)."""
    layout = runners.LocalLayout.create(str(work), "test")
    rule = blessing.BlessingOptions(cutoffs=(5, 20), thresholds=thresholds or {"recall@20": 0.05})
    built = pipeline.create_pipeline(
        "test", layout.pipeline_root, str(data_dir), layout.serving_root, data_pattern=pattern,
        sessions=options.SessionOptions(min_item_support=1),
        training=options.TrainingOptions(params=PARAMS, seed=seed, max_k=10),
        blessing=rule, metadata_connection_config=runners.sqlite_config(layout.metadata_path))
    error = None
    try:
        runners.run_local(built)
    except Exception as err:  # pylint: disable=broad-except
        error = err
    return summary.summarize_latest_run(layout.metadata_path, "test"), layout, error


def read_evaluation(result) -> dict:
    """The SessionEvaluator's metrics.json of a run."""
    with open(os.path.join(result.output("SessionEvaluator", "evaluation").uri, "metrics.json"),
              encoding="utf-8") as handle:
        return json.load(handle)


def versions(layout):
    base = pipeline.serving_base_directory(layout.serving_root)
    return sorted(os.listdir(base)) if os.path.isdir(base) else []


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfx_pipeline")
    write_click_log(root / "data")
    return root


@pytest.fixture(scope="module")
def first_run(work):
    result, layout, error = run_pipeline(work, work / "data")
    assert error is None, f"the pipeline failed: {error!r}"
    return result, layout, versions(layout)


@pytest.fixture(scope="module")
def unblessed_run(first_run, work):
    result, layout, error = run_pipeline(work, work / "data", seed=7, thresholds={"recall@20": 1.0})
    assert error is None, f"the pipeline failed: {error!r}"
    return result, layout, versions(layout)


@pytest.fixture(scope="module")
def cached_runs(unblessed_run, work):
    runs = [run_pipeline(work, work / "data") for _ in range(2)]
    for _, _, error in runs:
        assert error is None, f"the pipeline failed: {error!r}"
    return [r[0] for r in runs], versions(runs[-1][1])


# ------------------------------------------------------------------------------------------------- first run
def test_every_execution_completes(first_run):
    result, _, _ = first_run
    assert [(n.node_id, n.state) for n in result.nodes] == [(n, "COMPLETE") for n in EXECUTED]
    assert result.succeeded


def test_session_tensors_and_vocabulary_artifacts(first_run):
    result, _, _ = first_run
    tensors = result.output("SessionTensors", "session_tensors")
    vocab = result.output("SessionTensors", "vocabulary")
    assert json.loads(tensors.properties["split_names"].string_value) == ["train", "test"]
    for split in ("train", "test"):
        assert any(f.startswith("part-") for f in os.listdir(os.path.join(tensors.uri, f"Split-{split}")))
    with open(os.path.join(tensors.uri, "stats.json"), encoding="utf-8") as handle:
        stats = json.load(handle)
    assert stats["train"]["events"] == result.data["train_events"] > 0
    assert stats["test"]["sessions"] == result.data["test_sessions"] > 0
    assert os.path.isfile(os.path.join(vocab.uri, "vocab.tsv"))
    assert vocab.custom_properties["n_items"].int_value == stats["train"]["items"]


def test_model_is_blessed_with_metrics(first_run):
    result, _, _ = first_run
    bless = result.blessing
    assert bless["blessed"] and bless["is_new_model"] and bless["baseline_model_id"] is None
    assert 0.05 <= bless["metrics"]["recall@20"] <= 1.0
    assert 0.0 < bless["metrics"]["mrr@20"] <= bless["metrics"]["recall@20"]
    blessing_artifact = result.output("SessionEvaluator", "blessing")
    model = result.output("Trainer", "model")
    assert blessing_artifact.custom_properties["current_model_id"].int_value == model.id
    assert os.path.isfile(os.path.join(blessing_artifact.uri, "BLESSED"))
    # the slice table (issue 23): the candidate alone, without a baseline; no sliced gate
    evaluation = read_evaluation(result)
    table = evaluation["slices"]
    assert table["all"]["events"] == evaluation["candidate"]["eval_events"] and "target_new" not in table
    assert table["all"]["candidate"]["recall@20"] == pytest.approx(bless["metrics"]["recall@20"], abs=1e-6)
    assert sum(table[f"position_{p}"]["events"] for p in ("1", "2-3", "4-7", "8+")) == table["all"]["events"]
    assert 0 < evaluation["candidate"]["coverage@20"] <= 1 and evaluation["slice_gate"]["failed_slices"] == []
    assert "slices (candidate; no baseline; 95% bootstrap intervals over sessions):" in result.format()


def test_pushed_saved_model_loads_and_returns_top_k(first_run):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.vocabulary import ItemVocabulary  # pylint: disable=g-import-not-at-top
    result, layout, pushed_versions = first_run
    push = result.push
    assert push["pushed"] and pushed_versions == [push["version"]]
    assert push["destination"] == os.path.join(pipeline.serving_base_directory(layout.serving_root),
                                               push["version"])
    vocab = ItemVocabulary.load(os.path.join(result.output("SessionTensors", "vocabulary").uri, "vocab.tsv"))
    serve = tf.saved_model.load(push["destination"]).signatures["serving_default"]
    session = [[int(vocab.item_ids[0]), int(vocab.item_ids[1])]]
    out = serve(items=tf.constant(session, tf.int64), lengths=tf.constant([2], tf.int32),
                k=tf.constant([5], tf.int32), exclude_seen=tf.constant([False]))
    ids = out["item_ids"].numpy()
    assert ids.shape == (1, 5) and set(ids[0]) <= set(vocab.item_ids.tolist())
    scores = out["scores"].numpy()[0]
    assert all(scores[i] >= scores[i + 1] for i in range(4))


# ---------------------------------------------------------------------------------------- unreachable threshold
def test_unreachable_threshold_is_not_blessed_and_nothing_is_pushed(first_run, unblessed_run):
    first, _, first_versions = first_run
    result, _, after = unblessed_run
    assert result.node("Trainer").state == "COMPLETE"  # another seed: a new candidate
    assert result.node("ClickLogExampleGen").state == result.node("SessionTensors").state == "CACHED"
    bless = result.blessing
    assert not bless["blessed"] and bless["is_new_model"]
    assert "recall@20" in bless["message"] and "threshold 1.0000" in bless["message"]
    # the baseline was the last blessed model: the first run's
    assert bless["baseline_model_id"] == first.output("Trainer", "model").id
    # the candidate is not pushed; the Pusher finds the last blessed model in the serving root (copies nothing)
    assert result.node("Pusher").state == "COMPLETE" and result.push == {
        "pushed": False, "destination": None, "version": None, "copied": True,
        "served": {"destination": first.push["destination"], "version": first.push["version"], "copied": False}}
    assert "pushed: no (the model is not blessed); serving the last blessed model: " \
        f"{first.push['destination']} (already there)" in result.format()
    assert after == first_versions


# ------------------------------------------------------------------------------------------------- cache reuse
def test_unchanged_rerun_reuses_cached_outputs(first_run, cached_runs):
    first, _, first_versions = first_run
    (third, fourth), after = cached_runs
    for node in ("ClickLogExampleGen", "SessionTensors"):
        assert third.node(node).state == "CACHED"
    # the Trainer's base_model is the first run's blessed model, trained on these very data: reused, not retrained
    assert third.node("Trainer").state == "COMPLETE" and "trained: no, the last blessed model" in third.format()
    assert not third.blessing["is_new_model"] and not third.blessing["blessed"]
    # the candidate is the already-blessed model: the Pusher finds it in the serving root and copies nothing
    assert third.node("Pusher").state == "COMPLETE"
    assert third.push == {"pushed": True, "copied": False, "version": first.push["version"],
                          "destination": first.push["destination"], "served": None}
    assert [(n.node_id, n.state) for n in fourth.nodes] == [
        ("ClickLogExampleGen", "CACHED"), ("SessionTensors", "CACHED"), ("Trainer", "CACHED"),
        ("SessionEvaluator", "CACHED"), ("Pusher", "CACHED")]
    assert after == first_versions
    assert "already there: the serving root holds this model" in fourth.format()


def test_next_day_warm_starts_from_the_blessed_model(first_run, cached_runs, work):
    first, _, first_versions = first_run
    write_click_log(work / "day2", n_sessions=1500, n_items=260, seed=5)
    result, layout, error = run_pipeline(work, work / "day2")
    assert error is None, f"the pipeline failed: {error!r}"
    assert result.node("ClickLogExampleGen").state == result.node("Trainer").state == "COMPLETE"
    warm = result.training["warm_start"]
    assert warm["source"].startswith(first.output("Trainer", "model").uri)
    assert warm["carried_items"] > 0 and warm["new_items"] > 0 and warm["dropped_items"] == 0
    assert "trained: warm start from" in result.format()
    assert result.blessing["is_new_model"]
    if result.blessing["blessed"]:
        assert len(versions(layout)) == len(first_versions) + 1
    # candidate and baseline on the same test events, per slice; the new items are unknown to the baseline
    evaluation = read_evaluation(result)
    new = evaluation["slices"]["target_new"]
    assert new["events"] > 0 and new["baseline"]["recall@20"] == 0.0
    assert new["events"] + evaluation["slices"]["target_known"]["events"] == evaluation["candidate"]["eval_events"]
    lo, hi = new["difference"]["recall@20_ci"]
    assert lo <= new["difference"]["recall@20"] <= hi
    failed = evaluation["slice_gate"]["failed_slices"]
    assert result.output("SessionEvaluator", "blessing").custom_properties["failed_slices"].string_value == \
        ",".join(failed)
    text = result.format()
    assert "slices (candidate vs baseline on the same test events" in text
    assert re.search(r"^  target_new +\d+ .* (ok|small|FAIL)$", text, re.MULTILINE), text


# ------------------------------------------------------------------------------------------------ broken input
@pytest.mark.parametrize("content,expected", [
    ("SessionId\tItem\tTime\n1\t10\t1.0\n1\t11\t2.0\n", r"broken\.tsv: missing column\(s\) \['ItemId'\]"),
    ("SessionId\tItemId\tTime\n1\t10\tnoon\n1\t11\tlater\n2\t12\t3.0\n",
     r"broken\.tsv: 2 of 3 rows .* malformed .*bad_time.*max_rejected_ratio"),
])
def test_broken_input_fails_at_the_first_component(tmp_path, content, expected):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "broken.tsv").write_text(content, encoding="utf-8")
    result, layout, error = run_pipeline(tmp_path, tmp_path / "data", pattern="broken.tsv")
    assert isinstance(error, DataError)
    assert re.search(expected, str(error)), str(error)
    assert [(n.node_id, n.state) for n in result.nodes] == [("ClickLogExampleGen", "FAILED")] + [
        (n, "NOT RUN") for n in EXECUTED[1:]]
    assert versions(layout) == [] and result.push is None
