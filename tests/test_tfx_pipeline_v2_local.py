"""The compiled Kubeflow V2 / Vertex spec, run task by task through TFX's own container entrypoint (issue 13).

:mod:`tfx_pipeline.v2_local` plays the Vertex backend: ExecutorInput JSON per task, the spec's own command and
args in a subprocess, executor output files, resolver queries and trigger conditions from the reported
metadata. One module-scoped local root holds a chain of runs on a tiny synthetic click log (the spec is
compiled without a data path, so the driver feeds it the built-in synthetic log):

1. the spec, next to the same pipeline under ``LocalDagRunner`` on the same data and seed (run at the same
   time): same data sizes and metrics, blessed, a SavedModel pushed;
2. the same spec again: data (and training) reused from the cache, the evaluation re-run against the now blessed
   model (found by the resolver queries), the Pusher (compiled without caching) finds the model already served:
   nothing new pushed, the summary says so as under ``LocalDagRunner``;
   then a spec of another serving root: every other task cached, the Pusher pushes the blessed model there; that
   root wiped and the spec run again: pushed there once more;
3. a spec of another seed, with data validation and the bulk inference step (``--recommend_data``): the span
   passes, a new model, blessed against the first one as baseline, pushed, and its recommendations written by the
   step after the push (beside it, a spec
   whose input file is broken fails at its first task, and one with validation whose span has its times in
   milliseconds is stopped by DataValidator, each under its own root); then the serving root wiped and a
   spec whose threshold no model reaches: its candidate is not blessed (so the step writes nothing), and the
   Pusher puts the last blessed model (run 3's) back, as ``gru4rec pipeline run``'s run guard does locally;
4. the first spec after the session tensors were deleted from the "bucket": a missing input artifact.

Each task costs ~10 s of TensorFlow/TFX imports in its subprocess, as each container does on Vertex.
"""
import concurrent.futures
import contextlib
import io
import json
import os
import re
import shutil

import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from tfx_pipeline import blessing, cli, options, pipeline, runners, summary, v2_local, validation_options
from tfx_pipeline.components import pusher

ROOT = "gs://bucket/gru4rec"
PARAMS = "loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=32,learning_rate=0.1,n_sample=64,n_epochs=1"
SYNTHETIC = ("--synthetic_sessions", "1500", "--synthetic_items", "200")
EXECUTED = ("ClickLogExampleGen", "SessionTensors", "Trainer", "SessionEvaluator", "Pusher")
RECOMMEND = options.RecommendStepOptions(data=f"{ROOT}/data/clicks.tsv", k=10)  # the synthetic log itself
VALIDATION = ("StatisticsGen", "SchemaGen", "ExampleValidator", "DataValidator")


def build(pipeline_root=ROOT, data_root=None, pattern="*", seed=42, margin=0.01, serving_root=f"{ROOT}/serving",
          threshold=0.05, **kwargs):
    return pipeline.create_pipeline(
        "test", pipeline_root, data_root or f"{ROOT}/data", serving_root, data_pattern=pattern,
        sessions=options.SessionOptions(min_item_support=1),
        training=options.TrainingOptions(params=PARAMS, seed=seed, max_k=10),
        blessing=blessing.BlessingOptions(cutoffs=(5, 20), thresholds={"recall@20": threshold},
                                        regression_margin=margin),
        **kwargs)


def compile_spec(path, **kwargs) -> str:
    runners.compile_kubeflow_v2(build(**kwargs), str(path), image="europe-docker.pkg.dev/p/r/gru4rec-tfx:0.1.0")
    return str(path)


def drive(spec, local_root, *extra):
    args = v2_local.parse_args(["--spec", str(spec), "--local_root", str(local_root), *SYNTHETIC, *extra])
    return v2_local.run_spec(args.spec, args.local_root, synthetic_sessions=args.synthetic_sessions,
                             synthetic_items=args.synthetic_items)


def serving_versions(local_root, serving="serving"):
    base = os.path.join(str(local_root), "bucket", "gru4rec", serving, pipeline.DEFAULT_MODEL_NAME)
    return sorted(os.listdir(base)) if os.path.isdir(base) else []


def states(result):
    return [(n.node_id, n.state) for n in result.summary.nodes]


def run_local_dag(work):
    """The same pipeline under LocalDagRunner on the same synthetic log (as `gru4rec pipeline run` writes it)."""
    layout = runners.LocalLayout.create(str(work), "test")
    data = cli.ensure_synthetic_data(layout, 1500, 200)
    built = pipeline.create_pipeline(
        "test", layout.pipeline_root, os.path.dirname(data), layout.serving_root,
        sessions=options.SessionOptions(min_item_support=1),
        training=options.TrainingOptions(params=PARAMS, seed=42, max_k=10),
        blessing=blessing.BlessingOptions(cutoffs=(5, 20), thresholds={"recall@20": 0.05}),
        metadata_connection_config=runners.sqlite_config(layout.metadata_path))
    runners.run_local(built)
    return summary.summarize_latest_run(layout.metadata_path, "test")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("v2_local")


@pytest.fixture(scope="module")
def first(work):
    """Run 1 of the spec, with the LocalDagRunner run beside it (2 cores; the driver mostly waits on its tasks)."""
    spec = compile_spec(work / "spec.json")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        v2_run = pool.submit(drive, spec, work / "vertex")
        local = run_local_dag(work / "local")
        return {"spec": spec, "v2": v2_run.result(), "local": local, "versions": serving_versions(work / "vertex")}


@pytest.fixture(scope="module")
def second(first, work):
    """Run 2: the same spec, through the command line entry point (prints the summary)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = v2_local.main(["--spec", first["spec"], "--local_root", str(work / "vertex"), *SYNTHETIC])
    return status, out.getvalue(), serving_versions(work / "vertex")


@pytest.fixture(scope="module")
def other_serving_root(second, work):
    """After run 2: a spec of another serving root (run 2 left every other task's outputs cached), then that root
    wiped and the same spec again."""
    spec = compile_spec(work / "other_serving.json", serving_root=f"{ROOT}/other_serving")

    def run_and_look():
        result = drive(spec, work / "vertex")
        versions = serving_versions(work / "vertex", "other_serving")
        fingerprints = [_served_fingerprint(work / "vertex", "other_serving", v) for v in versions]
        return result, versions, fingerprints

    new = run_and_look()
    shutil.rmtree(work / "vertex" / "bucket" / "gru4rec" / "other_serving")
    return {"new": new, "wiped": run_and_look()}


@pytest.fixture(scope="module")
def third(second, work):
    """Run 3: a spec of another seed (and a regression margin that any sane model passes): a new model; beside
    it, a spec whose input file is broken runs under its own root."""
    spec = compile_spec(work / "seed7.json", seed=7, margin=1.0, recommend=RECOMMEND,
                        validation=validation_options.ValidationOptions())
    broken = work / "broken_root"
    os.makedirs(broken / "bucket" / "broken")
    (broken / "bucket" / "broken" / "clicks.tsv").write_text("SessionId\tItem\tTime\n1\t10\t1.0\n1\t11\t2.0\n")
    broken_spec = compile_spec(work / "broken.json", data_root="gs://bucket/broken")
    stopped = work / "stopped_root"  # and a span of times in milliseconds, with validation: stopped (time_range)
    os.makedirs(stopped / "bucket" / "ms")
    (stopped / "bucket" / "ms" / "clicks.tsv").write_text("SessionId\tItemId\tTime\n" + "".join(
        f"{s}\t{(s * 7 + e) % 50}\t{1_796_515_200_000 + 60_000 * (10 * s + e)}\n"
        for s in range(300) for e in range(3)))
    stopped_spec = compile_spec(work / "stopped.json", data_root="gs://bucket/ms",
                                validation=validation_options.ValidationOptions())

    def stopped_run():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = v2_local.main(["--spec", stopped_spec, "--local_root", str(stopped)])
        return status, out.getvalue()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        failed = pool.submit(drive, broken_spec, broken)
        halted = pool.submit(stopped_run)
        result = drive(spec, work / "vertex")
        return result, serving_versions(work / "vertex"), {"result": failed.result(), "root": broken,
                                                           "stopped": halted.result(), "stopped_root": stopped}


# ------------------------------------------------------------------------------------------------------ run 1
@pytest.mark.slow
def test_first_run_completes_blesses_and_pushes(first, work):
    result = first["v2"]
    assert result.error is None, result.error
    assert states(result) == [(n, "COMPLETE") for n in EXECUTED]
    bless = result.summary.blessing
    assert bless["blessed"] and bless["is_new_model"] and bless["baseline_model_id"] is None
    push = result.summary.push
    assert push["pushed"] and first["versions"] == [push["version"]]
    assert push["destination"] == os.path.join(str(work / "vertex"), "bucket", "gru4rec", "serving",
                                               pipeline.DEFAULT_MODEL_NAME, push["version"])
    assert os.path.isfile(os.path.join(push["destination"], "saved_model.pb"))
    # the synthetic log went to the spec's default data folder, <pipeline root>/data
    data = work / "vertex" / "bucket" / "gru4rec" / "data"
    assert os.listdir(data) == ["clicks.tsv"]
    # the ExampleGen's preCacheCheck fingerprinted that file; the fingerprint is part of the task's cache key
    store = v2_local.Store(str(work / "vertex" / ".v2_local" / "test" / "metadata.json"))
    gen = next(e for e in store.executions
               if e["task"] == "ClickLogExampleGen" and e["run_id"] == result.summary.run_id)
    assert f"num_files:1,total_bytes:{os.path.getsize(data / 'clicks.tsv')}," in gen["parameters"]["input_fingerprint"]
    assert json.loads(gen["parameters"]["input_config"])["splits"][0]["pattern"] == "*"


@pytest.mark.slow
def test_same_outcome_as_local_dag_runner(first):
    v2, local = first["v2"].summary, first["local"]
    assert local.succeeded and v2.succeeded
    counts = [f"{split}_{what}" for split in ("train", "test") for what in ("events", "sessions", "items")]
    assert [v2.data[k] for k in counts] == [local.data[k] for k in counts] and v2.data["train_events"] > 0
    assert v2.blessing["metrics"] == pytest.approx(local.blessing["metrics"], abs=1e-6)
    assert v2.blessing["blessed"] == local.blessing["blessed"] is True
    assert v2.push["pushed"] and local.push["pushed"]
    # the same slice table (issue 23): events per slice, figures and their bootstrap intervals
    tables = []
    for run in (v2, local):
        with open(os.path.join(run.output("SessionEvaluator", "evaluation").uri, "metrics.json"),
                  encoding="utf-8") as handle:
            tables.append(json.load(handle)["slices"])
    assert tables[0].keys() == tables[1].keys() and "position_1" in tables[0]
    for name, row in tables[0].items():
        other = tables[1][name]
        assert row["events"] == other["events"], name
        assert row["candidate"]["recall@20"] == pytest.approx(other["candidate"]["recall@20"], abs=1e-6), name
        assert row["candidate"]["mrr@20_ci"] == pytest.approx(other["candidate"]["mrr@20_ci"], abs=1e-6), name


@pytest.mark.slow
def test_blessing_reports_model_names_through_the_executor_output(first):
    """The V2 resolver finds the last blessed model by the artifact *name* the blessing reports."""
    summary_ = first["v2"].summary
    blessing_ = summary_.output("SessionEvaluator", "blessing")
    model = summary_.output("Trainer", "model")
    assert model.name.startswith("local/metadataStores/default/artifacts/")
    assert blessing_.custom_properties["current_model_id"].string_value == model.name
    assert blessing_.custom_properties["blessed"].int_value == 1


# ------------------------------------------------------------------------------------------------------ run 2
@pytest.mark.slow
def test_unchanged_rerun_is_cached_and_pushes_nothing_new(first, second):
    status, printed, versions = second
    assert status == 0
    rows = {line.split()[0]: line.split()[1] for line in printed.splitlines() if line.startswith("  ")}
    assert rows["ClickLogExampleGen"] == rows["SessionTensors"] == "CACHED"
    # CACHED; or COMPLETE where the Trainer warm-starts from the last blessed model (its base_model input is new):
    # it then reuses that model, and a model with its weights is not new either
    assert rows["Trainer"] in ("CACHED", "COMPLETE")
    # re-evaluated against the last blessed model, which the resolver queries found by its artifact name
    assert rows["SessionEvaluator"] == "COMPLETE" and rows["Pusher"] == "COMPLETE"
    # the candidate is (or has the weights of) the served model: the Pusher finds it in the serving root, copies
    # nothing and reports that version, in the words of `gru4rec pipeline run` under LocalDagRunner
    destination = first["v2"].summary.push["destination"]
    assert f"pushed: {destination} (already there: the serving root holds this model; nothing copied)" in printed
    assert versions == first["versions"]


# ------------------------------------------------------------------------------------------ other serving roots
def _served_fingerprint(local_root, serving, version):
    base = os.path.join(str(local_root), "bucket", "gru4rec", serving, pipeline.DEFAULT_MODEL_NAME)
    return pusher.model_fingerprint(os.path.join(base, version))


def _check_pushed_to_other_root(result, versions, fingerprints, first, work):
    assert result.error is None, result.error
    # every task but the Pusher (compiled without caching) reuses run 2's outputs
    assert states(result) == [(n, "CACHED") for n in EXECUTED[:-1]] + [("Pusher", "COMPLETE")]
    push = result.summary.push
    assert push["pushed"] and push["copied"] and versions == [push["version"]]
    assert push["destination"] == os.path.join(str(work / "vertex"), "bucket", "gru4rec", "other_serving",
                                               pipeline.DEFAULT_MODEL_NAME, push["version"])
    assert f"pushed: {push['destination']}" in result.format().splitlines()  # copied: no "already there"
    # the blessed model of run 1 (variables and assets), not another one
    assert fingerprints == [_served_fingerprint(work / "vertex", "serving", first["versions"][0])]
    assert serving_versions(work / "vertex") == first["versions"]  # the first serving root is left alone


@pytest.mark.slow
def test_a_new_serving_root_gets_the_blessed_model(first, other_serving_root, work):
    _check_pushed_to_other_root(*other_serving_root["new"], first, work)


@pytest.mark.slow
def test_a_wiped_serving_root_gets_the_blessed_model_again(first, other_serving_root, work):
    _check_pushed_to_other_root(*other_serving_root["wiped"], first, work)


# ------------------------------------------------------------------------------------------------------ run 3
@pytest.mark.slow
def test_new_blessed_model_is_pushed(first, third):
    result, versions, _ = third
    assert result.error is None, result.error
    # with data validation (its tasks run through the container entrypoint; the Cond on the verdict lets the rest
    # run), so SessionTensors (a new data_verdict input) runs again
    assert states(result) == [("ClickLogExampleGen", "CACHED")] + [(n, "COMPLETE") for n in VALIDATION] + [
        ("SessionTensors", "COMPLETE"), ("Trainer", "COMPLETE"), ("SessionEvaluator", "COMPLETE"),
        ("Pusher", "COMPLETE"), (pipeline.RECOMMENDER_ID, "COMPLETE")]
    assert result.summary.validation == {"valid": True, "mode": "fail", "anomalies": []}
    bless = result.summary.blessing
    assert bless["blessed"] and bless["is_new_model"]
    assert bless["baseline_model_id"] == first["v2"].summary.output("Trainer", "model").name
    push = result.summary.push
    assert push["pushed"] and versions == sorted(first["versions"] + [push["version"]])


@pytest.mark.slow
def test_bulk_recommender_writes_the_pushed_models_recommendations(third, work, tmp_path):
    """The step of the compiled spec, through TFX's container entrypoint: after the push, the pushed version's
    answers (those of `gru4rec recommend` on that version) for every session of the log."""
    from gru4rec_tf.batch.options import RecommendOptions  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.batch.pipeline import build_and_run
    result = third[0]
    push, recs = result.summary.push, result.summary.recommendations
    assert recs["recommended"] and recs["model_version"] == push["version"] and recs["sessions"] == 1500
    assert recs["files"] == ["part-00000-of-00001.jsonl"]
    out_dir = v2_local.localize(recs["uri"], str(work / "vertex"))
    local_log = v2_local.localize(RECOMMEND.data, str(work / "vertex"))
    build_and_run(RecommendOptions(model=v2_local.localize(push["destination"], str(work / "vertex")),
                                   sessions=local_log, k=10, output=str(tmp_path / "direct")))
    for name in recs["files"]:
        with open(os.path.join(out_dir, name), encoding="utf-8") as ours, \
                open(tmp_path / "direct" / name, encoding="utf-8") as direct:
            assert sorted(ours) == sorted(direct)


@pytest.mark.slow
def test_failing_task_stops_the_run_and_shows_its_output(third):
    result, root = third[2]["result"], third[2]["root"]
    assert isinstance(result.error, v2_local.TaskFailed) and result.error.task == "ClickLogExampleGen"
    message = str(result.error)
    assert "exited with status 1" in message and "container.log" in message
    assert "missing column(s) ['ItemId']" in message  # the executor's own error, from its output's tail
    assert states(result) == [("ClickLogExampleGen", "FAILED")] + [(n, "NOT RUN") for n in EXECUTED[1:]]
    assert serving_versions(root) == [] and result.summary.push is None


@pytest.mark.slow
def test_a_span_stopped_by_validation_trains_and_pushes_nothing(third):
    """The compiled Cond on the verdict under the driver: a first span of times in milliseconds (an absolute check:
    no baseline needed) is stopped; every task after DataValidator is skipped, nothing is served, the summary names
    the anomaly and the exit status is gru4rec pipeline run's for a stopped run."""
    status, out = third[2]["stopped"]
    assert status == validation_options.EXIT_STOPPED_BY_VALIDATION, out[-3000:]
    assert "data validation: STOPPED the run" in out and "time_range: " in out and "beyond year 9999" in out
    assert "SessionTensors" in out and serving_versions(third[2]["stopped_root"]) == []
    for name in ("SessionTensors", "Trainer", "SessionEvaluator", "Pusher"):
        assert re.search(rf"{name}\s+SKIPPED", out), out[-3000:]


@pytest.fixture(scope="module")
def unblessed_after_wipe(third, work):
    """After run 3: the serving root wiped, then a spec of another seed whose threshold no model reaches."""
    shutil.rmtree(work / "vertex" / "bucket" / "gru4rec" / "serving")
    spec = compile_spec(work / "unblessed.json", seed=8, threshold=1.0, recommend=RECOMMEND)
    return drive(spec, work / "vertex"), serving_versions(work / "vertex")


@pytest.mark.slow
def test_a_wiped_serving_root_gets_the_last_blessed_model_when_the_candidate_is_not(third, unblessed_after_wipe,
                                                                                     work):
    result, versions = unblessed_after_wipe
    assert result.error is None, result.error
    assert dict(states(result))["Trainer"] == "COMPLETE"  # another seed: a new candidate
    bless = result.summary.blessing
    assert not bless["blessed"] and bless["is_new_model"]
    assert bless["baseline_model_id"] == third[0].summary.output("Trainer", "model").name
    push = result.summary.push
    assert not push["pushed"] and push["served"]["copied"] and versions == [push["served"]["version"]]
    # run 3's blessed model (variables and assets), not the candidate
    third_model = os.path.join(third[0].summary.output("Trainer", "model").uri, "Format-Serving")
    assert _served_fingerprint(work / "vertex", "serving", versions[0]) == pusher.model_fingerprint(
        v2_local.localize(third_model, str(work / "vertex")))
    assert f"serving the last blessed model: {push['served']['destination']} (copied again" in result.format()
    recs = result.summary.recommendations  # an unblessed candidate: the step writes nothing
    assert not recs["recommended"] and recs["reason"] == "the model is not blessed"


# ------------------------------------------------------------------------------------------------------ run 4
@pytest.mark.slow
def test_missing_input_artifact_is_one_clear_error(first, third, unblessed_after_wipe, work):
    tensors = first["v2"].summary.output("SessionTensors", "session_tensors")
    shutil.rmtree(tensors.uri)
    result = drive(first["spec"], work / "vertex")
    assert isinstance(result.error, v2_local.SpecError)
    # the first task that reads them and is not cached: SessionEvaluator (its baseline changed), or the Trainer
    # where it warm-starts from the last blessed model (its base_model input changed)
    assert re.match(r"missing input artifact: (Trainer|SessionEvaluator)\.examples is local/", str(result.error))
    assert tensors.uri in str(result.error)
    assert result.summary.node("Pusher").state == "NOT RUN"
    assert serving_versions(work / "vertex") == unblessed_after_wipe[1]  # the serving root is left as it was


# ------------------------------------------------------------------------------------------------- bad specs
@pytest.fixture(scope="module")
def spec_json(work):
    with open(compile_spec(work / "plain.json"), encoding="utf-8") as handle:
        return json.load(handle)


def write(tmp_path, job) -> str:
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    return str(path)


def test_spec_of_another_tfx_version_is_rejected(spec_json, tmp_path, capsys):
    job = json.loads(json.dumps(spec_json))
    job["pipelineSpec"]["sdkVersion"] = "tfx-1.14.0"
    assert v2_local.main(["--spec", write(tmp_path, job), "--local_root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "compiled by tfx-1.14.0" in err and "recompile" in err and err.count("\n") == 1


def test_spec_of_another_pipeline_is_rejected(spec_json, tmp_path):
    job = json.loads(json.dumps(spec_json))
    job["pipelineSpec"]["root"]["dag"]["tasks"]["Evaluator"] = job["pipelineSpec"]["root"]["dag"]["tasks"].pop(
        "SessionEvaluator")
    with pytest.raises(v2_local.SpecError, match="not the gru4rec pipeline"):
        v2_local.load_spec(write(tmp_path, job))


@pytest.mark.parametrize("edit,match", [
    (lambda job: job["pipelineSpec"].update(schemaVersion="2.0.0"), r"schema 2\.0\.0, expected 2\.1\.0"),
    (lambda job: job.pop("pipelineSpec"), "not a compiled pipeline job"),
    (lambda job: job["pipelineSpec"]["components"]["SessionTensors"]["outputDefinitions"]["artifacts"]["vocabulary"][
        "artifactType"].update(instanceSchema="title: gru4rec.ItemVocabulary\ntype: object\n"),
     (r"SessionTensors\.vocabulary has the artifact type 'gru4rec\.ItemVocabulary', which TFX's container "
      "entrypoint cannot import")),
    (lambda job: job["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["artifacts"]["examples"][
        "taskOutputArtifact"].update(outputArtifactKey="nope"),
     r"missing input artifact: task Trainer reads examples from SessionTensors\.nope"),
])
def test_unusable_spec_is_one_clear_error(spec_json, tmp_path, edit, match):
    job = json.loads(json.dumps(spec_json))
    edit(job)
    with pytest.raises(v2_local.SpecError, match=match):
        v2_local.load_spec(write(tmp_path, job))


def test_unknown_runtime_parameter_is_rejected(spec_json, tmp_path):
    with pytest.raises(v2_local.SpecError, match=r"unknown runtime parameter\(s\) \['seed'\]"):
        v2_local.Driver(spec_json, str(tmp_path), {"seed": "1"})


def test_runtime_parameter_reaches_the_task(work, tmp_path):
    """A RuntimeParameter of the pipeline is set with --parameter and arrives as the task's parameter value."""
    from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
    data = tfx.dsl.experimental.RuntimeParameter(name="data_root", ptype=str, default=f"{ROOT}/data")
    with open(compile_spec(tmp_path / "param.json", data_root=data), encoding="utf-8") as handle:
        job = json.load(handle)
    driver = v2_local.Driver(job, str(tmp_path), {"data_root": "gs://other/clicks"})
    task = job["pipelineSpec"]["root"]["dag"]["tasks"]["ClickLogExampleGen"]
    assert driver._task_parameters("ClickLogExampleGen", task)["input_base"] == str(tmp_path / "other" / "clicks")
    # TFX's compiler keeps no default of a RuntimeParameter in the spec: Vertex needs the value at submission
    with pytest.raises(v2_local.SpecError, match=r"'data_root' has no default: set it with --parameter data_root="):
        v2_local.Driver(job, str(tmp_path))
    job["runtimeConfig"]["parameterValues"] = {"data_root": "gs://job/clicks"}  # as PipelineJob(parameter_values=)
    default = v2_local.Driver(job, str(tmp_path))._task_parameters("ClickLogExampleGen", task)
    assert default["input_base"] == str(tmp_path / "job" / "clicks")


@pytest.mark.parametrize("metadata,push", [
    ({"blessed": 1.0, "is_new_model": 1.0}, True),
    ({"blessed": 0.0, "is_new_model": 0.0}, True),  # the already-blessed model (same weights): pushed if missing
    ({"blessed": 1.0, "is_new_model": 0.0}, True),
    ({"blessed": 0.0, "is_new_model": 1.0}, False),  # a new model that is not blessed
    ({}, False),
])
def test_pusher_reads_the_blessing_as_the_container_entrypoint_rebuilds_it(metadata, push):
    """Through the V2 entrypoint a blessing's integers arrive as JSON-struct doubles; TFX's ``get_custom_property``
    returns None for a 0 there, which once made the Pusher skip the already-blessed model (nothing pushed to a
    new or wiped serving root)."""
    from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
    runtime = json_format.ParseDict({"name": "local/metadataStores/default/artifacts/9", "uri": "/blessing",
                                     "type": {"instanceSchema": "title: tfx.ModelBlessing\ntype: object\n"},
                                     "metadata": metadata}, pipeline_spec_pb2.RuntimeArtifact())
    blessing_ = kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(
        {"model_blessing": pipeline_spec_pb2.ArtifactList(artifacts=[runtime])})["model_blessing"][0]
    for key, value in metadata.items():
        assert blessing_.mlmd_artifact.custom_properties[key].HasField("struct_value")
        assert pusher.custom_number(blessing_, key) == value
    assert pusher.should_push(blessing_) is push
