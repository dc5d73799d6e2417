"""The pipeline's optional bulk inference step after the Pusher (issue 25): BulkRecommender.

Fast tier: its options, its place in the pipeline (after the Pusher, fed by the candidate and its blessing), the
data fingerprint of its cache key, a clear error for a missing log, and the compiled Kubeflow V2 spec.
Slow tier: a chain of local runs on a tiny synthetic log: the records equal those of ``gru4rec recommend`` on the
pushed version (whose answers are ``serving_default``'s, tests/test_batch_recommend.py); an unchanged re-run is
cached; a changed log is recommended again; an unblessed candidate gets no recommendations.
(The compiled spec's step runs through TFX's container entrypoint in tests/test_tfx_pipeline_v2_local.py.)
"""
import json
import os
import re

import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from gru4rec_tf.data.event_columns import DataError
from tfx_pipeline import blessing, cli, options, pipeline, runners, summary
from tfx_pipeline.components import bulk_recommender

PARAMS = "loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=32,learning_rate=0.1,n_sample=64,n_epochs=1"
ROOT = "gs://bucket/gru4rec"


def build(root, data_root, serving_root, recommend, threshold=0.05, **kwargs):
    return pipeline.create_pipeline(
        "test", os.path.join(str(root), "pipeline") if "://" not in str(root) else root, data_root, serving_root,
        sessions=options.SessionOptions(min_item_support=1),
        training=options.TrainingOptions(params=PARAMS, seed=42, max_k=30),
        blessing=blessing.BlessingOptions(cutoffs=(20,), thresholds={"recall@20": threshold}),
        recommend=recommend, **kwargs)


def write_log(path, rows):
    path.write_text("SessionId\tItemId\tTime\n" + "".join(f"{s}\t{i}\t{t}\n" for s, i, t in rows))
    return str(path)


# --------------------------------------------------------------------------------------------------- fast tier
@pytest.mark.parametrize("kwargs, match", [
    ({"data": ""}, "data must name the click log"),
    ({"data": "x.tsv", "k": 0}, "k must be an integer >= 1"),
    ({"data": "x.tsv", "format": "csv"}, "format must be one of"),
    ({"data": "x.tsv", "batch_size": -1}, "batch_size must be an integer >= 1"),
])
def test_bad_step_options_are_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        options.RecommendStepOptions(**kwargs)


def test_step_reads_the_log_with_the_pipelines_reading_and_session_options():
    step = options.RecommendStepOptions(data="clicks.csv", k=7, format="parquet", exclude_seen=True)
    ingest = options.IngestOptions(delimiter="tab", item_key="item", time_format="iso")
    sessions = options.SessionOptions(session_gap_s=600.0, dedupe_consecutive=True)
    recommend = step.recommend_options(ingest, sessions, model="m", output="o", model_version="5")
    assert (recommend.k, recommend.format, recommend.exclude_seen, recommend.model_version) == (7, "parquet", True, "5")
    reading = recommend.reading_options()
    assert (reading.delimiter, reading.item_key, reading.time_format) == ("\t", "item", "iso")
    assert (reading.session_gap_s, reading.dedupe_consecutive) == (600.0, True)


def test_step_runs_after_the_pusher_on_the_candidate_and_its_blessing(tmp_path):
    log = write_log(tmp_path / "clicks.tsv", [(1, 10, 1.0), (1, 11, 2.0)])
    built = build(tmp_path, str(tmp_path), str(tmp_path / "serving"), options.RecommendStepOptions(data=log))
    nodes = {c.id: c for c in built.components}
    step = nodes[pipeline.RECOMMENDER_ID]
    assert [c.id for c in built.components][-2:] == ["Pusher", pipeline.RECOMMENDER_ID]
    assert nodes["Pusher"] in step.upstream_nodes
    assert step.inputs["model"].producer_component_id == "Trainer"
    assert step.inputs["model_blessing"].producer_component_id == "SessionEvaluator"
    assert step.exec_properties["serving_base_directory"] == os.path.join(str(tmp_path / "serving"), "gru4rec")
    assert pipeline.RECOMMENDER_ID not in {c.id for c in build(tmp_path, str(tmp_path), "s", None).components}


def test_data_fingerprint_follows_the_files_content(tmp_path):
    log = write_log(tmp_path / "clicks.tsv", [(1, 10, 1.0), (1, 11, 2.0)])
    first = bulk_recommender.data_fingerprint(log)
    assert bulk_recommender.data_fingerprint(log) == first
    write_log(tmp_path / "clicks.tsv", [(1, 10, 1.0), (1, 12, 2.0), (2, 10, 3.0)])
    assert bulk_recommender.data_fingerprint(log) != first
    directory = bulk_recommender.data_fingerprint(str(tmp_path))
    write_log(tmp_path / "more.tsv", [(3, 10, 4.0)])  # a new file in the directory
    assert bulk_recommender.data_fingerprint(str(tmp_path)) != directory
    assert bulk_recommender.data_fingerprint("gs://bucket/clicks/2026-12-06.tsv") == ""  # the path is the key


def test_missing_recommend_data_fails_when_the_pipeline_is_built(tmp_path):
    missing = str(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match=re.escape(missing)):
        build(tmp_path, str(tmp_path), "s", options.RecommendStepOptions(data=missing))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    built = build(ROOT, f"{ROOT}/data", f"{ROOT}/serving",
                  options.RecommendStepOptions(data=f"{ROOT}/recommend/clicks.tsv", k=15))
    path = tmp_path_factory.mktemp("compile") / "pipeline.json"
    runners.compile_kubeflow_v2(built, str(path), image="europe-docker.pkg.dev/p/r/gru4rec-tfx:0.1.0")
    return str(path), json.loads(path.read_text())


def test_compiled_spec_runs_the_step_after_the_pusher_with_caching(compiled):
    from tfx_pipeline import v2_local  # pylint: disable=g-import-not-at-top
    path, job = compiled
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    task = tasks[pipeline.RECOMMENDER_ID]
    assert "Pusher" in task["dependentTasks"]
    assert task["cachingOptions"] == {"enableCache": True}
    params = task["inputs"]["parameters"]
    step = json.loads(params["recommend_options"]["runtimeValue"]["constant"])
    assert step["data"] == f"{ROOT}/recommend/clicks.tsv" and step["k"] == 15
    assert params["serving_base_directory"]["runtimeValue"]["constant"] == f"{ROOT}/serving/gru4rec"
    container = job["pipelineSpec"]["deploymentSpec"]["executors"][f"{pipeline.RECOMMENDER_ID}_executor"]["container"]
    class_path = container["args"][container["args"].index("--executor_class_path") + 1]
    assert class_path == "tfx_pipeline.components.bulk_recommender.Executor"
    v2_local.load_spec(path)  # the local V2 driver accepts the spec with its optional task


def test_cli_flags_give_the_step_options(tmp_path, monkeypatch):
    from absl import flags  # pylint: disable=g-import-not-at-top
    fv = flags.FlagValues()
    monkeypatch.setattr(cli, "FLAGS", fv)
    cli.define_flags(fv)
    fv(["gru4rec", "--recommend_data", "rel/clicks.tsv", "--recommend_k", "5", "--recommend_format", "tfrecord",
        "--recommend_exclude_seen"])
    step = cli._recommend_options()  # pylint: disable=protected-access
    assert step == options.RecommendStepOptions(data=os.path.abspath("rel/clicks.tsv"), k=5, format="tfrecord",
                                                exclude_seen=True)
    fv.unparse_flags()
    fv(["gru4rec"])
    assert cli._recommend_options() is None  # pylint: disable=protected-access


# --------------------------------------------------------------------------------------------------- slow tier
def run(work, recommend, threshold=0.05):
    layout = runners.LocalLayout.create(str(work), "test")
    data = cli.ensure_synthetic_data(layout, 1500, 200)
    built = build(work, os.path.dirname(data), layout.serving_root, recommend, threshold=threshold,
                  metadata_connection_config=runners.sqlite_config(layout.metadata_path))
    runners.run_local(built)
    return summary.summarize_latest_run(layout.metadata_path, "test"), layout


def read_jsonl(directory):
    records = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".jsonl"):
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                records += [json.loads(line) for line in handle]
    return sorted(records, key=lambda r: r["session_id"])


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Run 1 with a log to recommend for; runs 2 and 3 unchanged; run 4 after the log changed."""
    work = tmp_path_factory.mktemp("bulk")
    log_dir = work / "recommend"
    log_dir.mkdir()
    rows = [(1, 100001, 1.0), (1, 100002, 2.0), (1, 100003, 3.0), (2, 100004, 4.0), (2, 999999, 5.0),
            (3, 999998, 6.0)] + [(4, 100000 + i % 50, 10.0 + i) for i in range(40)]  # longer than any input
    log = write_log(log_dir / "clicks.tsv", rows)
    step = options.RecommendStepOptions(data=log, k=12)
    runs = [run(work, step) for _ in range(3)]
    os.utime(log, ns=(1, 1))  # same bytes, other modification time: recommended again
    runs.append(run(work, step))
    return {"work": work, "log": log, "runs": runs}


@pytest.mark.slow
def test_recommendations_are_those_of_gru4rec_recommend_on_the_pushed_version(chain, tmp_path):
    from gru4rec_tf.batch.options import RecommendOptions  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.batch.pipeline import build_and_run
    result, _ = chain["runs"][0]
    assert result.succeeded and result.node(pipeline.RECOMMENDER_ID).state == "COMPLETE"
    push, recs = result.push, result.recommendations
    assert push["pushed"] and recs["recommended"] and recs["model_version"] == push["version"]
    assert (recs["sessions"], recs["unknown_items"], recs["files"]) == (4, 2, ["part-00000-of-00001.jsonl"])
    direct = build_and_run(RecommendOptions(model=push["destination"], sessions=chain["log"], k=12,
                                            output=str(tmp_path / "direct")))
    assert direct["model_version"] == push["version"]
    records = read_jsonl(recs["uri"])
    assert records == read_jsonl(tmp_path / "direct")
    assert [r["session_id"] for r in records] == ["1", "2", "3", "4"]
    assert all(r["model_version"] == push["version"] for r in records)
    assert [len(r["item_ids"]) for r in records] == [12, 12, 0, 12]  # session 3 has no known item
    stats = json.loads(open(os.path.join(recs["uri"], "stats.json"), encoding="utf-8").read())
    assert stats["sessions"] == 4 and stats["unknown_items"] == 2
    assert f"recommendations: 4 sessions by model version {push['version']}" in result.format()


@pytest.mark.slow
def test_unchanged_rerun_is_cached_and_a_changed_log_is_recommended_again(chain):
    first, second, third, fourth = (r for r, _ in chain["runs"])
    # run 2: the Trainer warm-starts from run 1's now blessed model (a new base_model input), finds it trained on
    # these data and reuses it: the candidate is the served model, so the step recommends with it again
    assert second.node("Trainer").state == "COMPLETE" and not second.blessing["is_new_model"]
    assert second.node(pipeline.RECOMMENDER_ID).state == "COMPLETE"
    assert read_jsonl(second.recommendations["uri"]) == read_jsonl(first.recommendations["uri"])
    # run 3: nothing changed: every component is cached, the step too
    assert [n.state for n in third.nodes] == ["CACHED"] * len(third.nodes)
    assert third.recommendations["uri"] == second.recommendations["uri"]
    # run 4: the log's modification time changed: only the step runs again
    assert [n.state for n in fourth.nodes] == ["CACHED"] * (len(fourth.nodes) - 1) + ["COMPLETE"]
    assert fourth.recommendations["uri"] != third.recommendations["uri"]
    assert read_jsonl(fourth.recommendations["uri"]) == read_jsonl(first.recommendations["uri"])


@pytest.mark.slow
def test_an_unblessed_model_gets_no_recommendations(chain, tmp_path):
    result, layout = run(tmp_path / "unblessed", options.RecommendStepOptions(data=chain["log"]), threshold=0.999)
    assert result.succeeded and not result.blessing["blessed"]
    recs = result.recommendations
    assert result.node(pipeline.RECOMMENDER_ID).state == "COMPLETE"
    assert not recs["recommended"] and recs["reason"] == "the model is not blessed"
    assert os.listdir(recs["uri"]) == []
    assert "recommendations: none (the model is not blessed)" in result.format()
