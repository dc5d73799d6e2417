"""The model report (issue 23, part 3): rendering from hand-built dicts, and the Pusher writing it into the pushed
version's ``assets.extra/report/`` (outside the model fingerprint; TF Serving's loader and the development server
load such a version) and into the ``PushedModel`` artifact, also for an unpushed candidate."""
import json
import os
import sys

import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from tfx_pipeline import model_report
from tfx_pipeline.model_report import ReportInputs

DAY = 86_400_000_000
T0 = 1_796_515_200_000_000  # 2026-12-06 00:00 UTC
PNG = b"\x89PNG\r\n\x1a\n"


def cell(recall, mrr):
    return {"recall@20": recall, "recall@20_ci": [recall - 0.05, recall + 0.05], "mrr@20": mrr,
            "mrr@20_ci": [mrr - 0.02, mrr + 0.02]}


def evaluation():
    """A metrics.json payload of the SessionEvaluator: candidate vs baseline, a failed slice."""
    down = {"recall@20": -0.3, "recall@20_ci": [-0.35, -0.25], "mrr@20": -0.1, "mrr@20_ci": [-0.12, -0.08]}
    flat = {"recall@20": 0.01, "recall@20_ci": [-0.02, 0.04], "mrr@20": 0.0, "mrr@20_ci": [-0.01, 0.01]}
    return {
        "candidate": {"recall@20": 0.6123, "mrr@20": 0.3012, "coverage@20": 0.81, "mean_rec_popularity@20": 120.5,
                      "eval_events": 1234, "eval_sessions": 321},
        "baseline": {"recall@20": 0.6021, "mrr@20": 0.2987, "coverage@20": 0.7, "mean_rec_popularity@20": 130.0,
                     "eval_events": 1200, "eval_sessions": 321},
        "thresholds": {"recall@20": 0.1, "mrr@20": 0.03}, "regression_margin": 0.01, "eval_mode": "standard",
        "checks": ["ok: recall@20 0.6123 >= threshold 0.1000", "FAIL: slice target_new: recall@20 down 0.3000"],
        "blessed": False,
        "slices": {"all": {"events": 1234, "candidate": cell(0.6123, 0.3012), "baseline": cell(0.6021, 0.2987),
                           "difference": flat},
                   "target_new": {"events": 456, "candidate": cell(0.25, 0.1), "baseline": cell(0.55, 0.2),
                                  "difference": down},
                   "position_1": {"events": 99, "candidate": cell(0.5, 0.2), "baseline": cell(0.49, 0.2),
                                  "difference": flat},
                   "position_2-3": {"events": 500, "candidate": cell(0.6, 0.3), "baseline": cell(0.59, 0.3),
                                    "difference": flat}},
        "slice_gate": {"min_slice_events": 200, "slice_regression_margin": 0.02, "failed_slices": ["target_new"]},
    }


def training():
    return {"params": {"layers": 16, "loss": "bpr-max", "learning_rate": 0.1}, "seed": 42,
            "epochs": [{"epoch": e, "loss": 0.6, "events": 4000, "seconds": 1.0} for e in range(3)],
            "epoch_loss": [0.6931, 0.5512, 0.5234], "train_events": 5000, "train_sessions": 1200, "n_items": 200,
            "valid_history": [{"recall@20": 0.51, "mrr@20": 0.21}, {"recall@20": 0.55, "mrr@20": 0.22},
                              {"recall@20": 0.56, "mrr@20": 0.2345}], "best_epoch": 3, "stopped_early": False,
            "warm_start": {"carried_items": 180, "new_items": 20, "dropped_items": 0, "optimizer_state": True},
            "warm_start_from": "/root/Trainer/model/3/gru4rec_model"}


def profile(events, sessions, start):
    return {"events": events, "sessions": sessions, "items": 190, "time_min_us": start, "time_max_us": start + DAY,
            "rows_rejected": 5}


def full_inputs(**changes) -> ReportInputs:
    inputs = ReportInputs(
        model_name="gru4rec", blessing={"blessed": 0, "blessing_message": "slice target_new: recall@20 down",
                                        "failed_slices": "target_new", "is_new_model": 1},
        evaluation=evaluation(), training=training(),
        data_profile={"window": profile(30_000, 7_000, T0 - 2 * DAY), "span": profile(5_000, 1_250, T0)},
        baseline_profile={"window": profile(30_000, 7_000, T0 - 3 * DAY), "span": profile(10_000, 2_500, T0 - DAY)},
        anomalies=[{"check": "events_per_day", "value": "5,000.0 (0.50x | low)", "expected": "0.6x .. 2x"}],
        validation={"mode": "warn", "valid": 1}, model_uri="/root/Trainer/model/7",
        pushed={"version": "1796600000", "destination": "/serving/gru4rec/1796600000"})
    for key, value in changes.items():
        setattr(inputs, key, value)
    return inputs


SECTIONS = ("## Blessing", "## Test metrics", "## Slices", "## Training", "### Loss and validation metrics",
            "### Hyperparameters", "## Data (this span", "## Data validation")


def test_every_section_with_its_numbers_and_the_plots(tmp_path):
    path = model_report.write_report(full_inputs(), str(tmp_path))
    text = open(path, encoding="utf-8").read()
    for section in SECTIONS:
        assert section in text
    assert "not available" not in text.lower()
    assert "**NOT BLESSED**: slice target_new: recall@20 down" in text and "Failed slices: target_new" in text
    assert "- FAIL: slice target_new: recall@20 down 0.3000" in text  # every check of the evaluator
    assert "Pushed as version 1796600000" in text
    assert "| recall@20 | 0.6123 | 0.6021 | +0.0102 | 0.1000 |" in text  # overall, against the baseline
    assert "| target_new | 456 | 0.2500 [0.2000, 0.3000] | 0.5500 | -0.3000 [-0.3500, -0.2500] |" in text
    assert text.count("**FAIL**") == 1 and "| small |" in text and "| ok |" in text
    assert "| 3 | 0.5234 | 0.5600 | 0.2345 |" in text  # epoch, loss, validation recall@20 and mrr@20
    assert "Warm-started from `/root/Trainer/model/3/gru4rec_model`: 180 items carried over, 20 new" in text
    assert "| layers | 16 |" in text and "| loss | bpr-max |" in text and "| epochs | 3 |" in text
    assert "| events/day | 5,000.0 | 10,000.0 | 0.50x | 30,000.0 |" in text  # this span vs the previous one
    assert "| first event | 2026-12-06 00:00 | 2026-12-05 00:00 |" in text
    assert "Mode `warn`; verdict: valid; 1 anomaly(ies)." in text
    assert "| events_per_day | 5,000.0 (0.50x \\| low) | 0.6x .. 2x |" in text  # a | in a value is escaped
    for name in (model_report.LOSS_PLOT, model_report.VALID_PLOT, model_report.SLICE_PLOT):
        assert f"]({name})" in text
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000
    assert json.loads((tmp_path / "report.json").read_text())["training"]["seed"] == 42


def test_missing_inputs_each_say_not_available(tmp_path):
    path = model_report.write_report(ReportInputs(blessing={"blessed": 1, "blessing_message": "all checks passed"}),
                                     str(tmp_path))
    text = open(path, encoding="utf-8").read()
    for section in ("## Blessing", "## Test metrics", "## Slices", "## Training", "## Data (", "## Data validation"):
        assert section in text
    assert "**BLESSED**: all checks passed" in text and "Not pushed." in text
    for why in ("no evaluation", "no slice table", "no training.json", "no data profile", "no validation verdict"):
        assert f"_Not available: {why}" in text, why
    assert sorted(os.listdir(tmp_path)) == ["report.json", "report.md"]  # nothing to plot


def test_partial_inputs_first_run_without_baseline_or_validation_metrics(tmp_path):
    payload = evaluation()
    payload["baseline"] = None
    payload["slices"] = {name: {"events": row["events"], "candidate": row["candidate"]}
                         for name, row in payload["slices"].items()}
    train = {k: v for k, v in training().items() if k not in ("valid_history", "warm_start", "warm_start_from")}
    inputs = full_inputs(evaluation=payload, training=train, baseline_profile=None, anomalies=[],
                         validation={"mode": "fail", "valid": 1})
    text = open(model_report.write_report(inputs, str(tmp_path)), encoding="utf-8").read()
    assert "No baseline: this is the first" in text and "No baseline: the candidate alone; no sliced gate." in text
    assert "| recall@20 | 0.6123 | - | - | 0.1000 |" in text and "gate |" not in text
    assert "Trained from scratch (no warm start)." in text and "No validation metrics" in text
    assert "| events | 5,000 | - | - | 30,000 |" in text and "No previous span" in text
    assert "verdict: valid; 0 anomaly(ies)." in text
    assert (tmp_path / model_report.SLICE_PLOT).stat().st_size > 0 and not (tmp_path / model_report.VALID_PLOT).exists()


def test_without_matplotlib_the_report_has_no_plots_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    text = open(model_report.write_report(full_inputs(), str(tmp_path)), encoding="utf-8").read()
    assert "_Not available: plots (matplotlib is not installed)._" in text and ".png)" not in text
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".png")]


def test_a_slice_without_events_and_a_malformed_input_cost_only_their_own_cells(tmp_path):
    payload = evaluation()
    none = {"recall@20": None, "recall@20_ci": [None, None], "mrr@20": None, "mrr@20_ci": [None, None]}
    payload["slices"]["target_new"] = {"events": 0, "candidate": none, "baseline": none, "difference": none}
    inputs = full_inputs(evaluation=payload, data_profile={"span": {"events": "many"}})  # a profile of no shape
    text = open(model_report.write_report(inputs, str(tmp_path)), encoding="utf-8").read()
    assert "| target_new | 0 | - | - | - | - | - | - | **FAIL** |" in text  # (as the gate said)
    assert (tmp_path / model_report.SLICE_PLOT).read_bytes().startswith(PNG)
    assert "_Not available: a section could not be rendered (KeyError: 'time_max_us')._" in text
    assert "## Data validation" in text and "| events_per_day |" in text  # the sections after it are there


def test_a_reused_base_model_is_named(tmp_path):
    train = {"reused_base_model": "/root/Trainer/model/3/gru4rec_model", "params": {"layers": 16}, "seed": 42}
    text = open(model_report.write_report(full_inputs(training=train), str(tmp_path)), encoding="utf-8").read()
    assert "Not trained: the last blessed model was already trained on these data" in text
    assert "_Not available: no epochs recorded._" in text


# ------------------------------------------------------------------------------------------------ the Pusher
def _artifact(kind, uri, **properties):
    artifact = kind()
    artifact.uri = str(uri)
    os.makedirs(uri, exist_ok=True)
    for key, value in properties.items():
        if isinstance(value, int):
            artifact.set_int_custom_property(key, value)
        else:
            artifact.set_string_custom_property(key, value)
    return artifact


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny exported SavedModel, as the Trainer's ``Format-Serving`` of a Model artifact."""
    import serving_testlib as lib  # pylint: disable=g-import-not-at-top
    model_uri = tmp_path_factory.mktemp("model")
    os.rename(lib.export_model(model_uri, version=1), model_uri / "Format-Serving")
    return model_uri


def run_pusher(tmp_path, model_uri, blessed: int, with_validation: bool = True):
    from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top
    from tfx.proto import pusher_pb2
    from tfx.utils import proto_utils
    from tfx_pipeline import artifacts
    from tfx_pipeline.components import pusher
    evaluation_dir, run_dir, verdict_dir = tmp_path / "evaluation", tmp_path / "model_run", tmp_path / "verdict"
    for directory in (evaluation_dir, run_dir, verdict_dir / "data_profile"):
        directory.mkdir(parents=True, exist_ok=True)
    (evaluation_dir / "metrics.json").write_text(json.dumps(evaluation()))
    (run_dir / "training.json").write_text(json.dumps(training()))
    (verdict_dir / "data_profile" / "profile.json").write_text(json.dumps(full_inputs().data_profile))
    (verdict_dir / "anomalies.json").write_text("[]")
    message = "all checks passed" if blessed else "recall@20 0.05 < 0.1"
    inputs = {
        "model": [_artifact(standard_artifacts.Model, model_uri)],
        "model_blessing": [_artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing", blessed=blessed,
                                     is_new_model=1, blessing_message=message, failed_slices="")],
        "evaluation": [_artifact(standard_artifacts.ModelEvaluation, evaluation_dir)],
        "model_run": [_artifact(standard_artifacts.ModelRun, run_dir)],
    }
    if with_validation:
        inputs["data_verdict"] = [_artifact(artifacts.DataVerdict, verdict_dir, valid=1, mode="fail")]
    pushed = _artifact(standard_artifacts.PushedModel, tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=str(tmp_path / "serving" / "gru4rec")))
    pusher.Executor().Do(inputs, {"pushed_model": [pushed]},
                         {"push_destination": proto_utils.proto_to_json(destination), "custom_config": "null"})
    return pushed


def test_pusher_writes_the_report_into_the_version_outside_the_fingerprint(tmp_path, exported):
    from tfx_pipeline.components import pusher  # pylint: disable=g-import-not-at-top
    pushed = run_pusher(tmp_path, exported, blessed=1)
    base = tmp_path / "serving" / "gru4rec"
    (version,) = os.listdir(base)
    report = base / version / "assets.extra" / "report" / "report.md"
    text = report.read_text()
    assert "**BLESSED**: all checks passed" in text and f"Pushed as version {version}" in text
    assert "# Model report: gru4rec" in text and "| target_new | 456 |" in text
    assert (base / version / "assets.extra" / "report" / model_report.LOSS_PLOT).stat().st_size > 0
    assert pusher.model_fingerprint(str(base / version)) == pusher.model_fingerprint(
        str(exported / "Format-Serving"))  # assets.extra is not part of the model
    archive = os.path.join(pushed.uri, model_report.REPORT_DIR, model_report.REPORT_FILE)
    assert "**BLESSED**" in open(archive, encoding="utf-8").read()  # and the PushedModel carries it too
    assert pushed.get_int_custom_property("pushed") == 1 and pushed.get_int_custom_property("copied") == 1


def test_an_already_served_model_keeps_its_report(tmp_path, exported):
    run_pusher(tmp_path, exported, blessed=1)
    base = tmp_path / "serving" / "gru4rec"
    (version,) = os.listdir(base)
    report = base / version / "assets.extra" / "report" / "report.md"
    report.write_text("the first push's report\n")
    second = run_pusher(tmp_path, exported, blessed=1, with_validation=False)
    assert os.listdir(base) == [version] and second.get_int_custom_property("copied") == 0
    assert report.read_text() == "the first push's report\n"
    archive = os.path.join(second.uri, model_report.REPORT_DIR, model_report.REPORT_FILE)
    text = open(archive, encoding="utf-8").read()  # this run's report, in its PushedModel
    assert "_Not available: no validation verdict" in text and f"Pushed as version {version}" in text


def test_an_unpushed_candidate_gets_its_report_in_the_pushed_model_artifact(tmp_path, exported):
    pushed = run_pusher(tmp_path, exported, blessed=0)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not (tmp_path / "serving" / "gru4rec").exists() or not os.listdir(tmp_path / "serving" / "gru4rec")
    text = open(os.path.join(pushed.uri, model_report.REPORT_DIR, model_report.REPORT_FILE), encoding="utf-8").read()
    assert "**NOT BLESSED**: recall@20 0.05 < 0.1" in text and "Not pushed." in text
    assert sorted(os.listdir(pushed.uri)) == ["assets.extra"]  # the report only, no model


def test_tf_serving_loads_a_version_with_a_report(tmp_path, exported):
    """TF Serving's loader path (graph session + warm-up replay) and the development server load the version."""
    import grpc  # pylint: disable=g-import-not-at-top
    import numpy as np
    import serving_testlib as lib
    import tf_serving_loader
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    from serving import dev_server
    from test_serving_dev_server import predict, request
    run_pusher(tmp_path, exported, blessed=1)
    base = tmp_path / "serving" / "gru4rec"
    (version,) = os.listdir(base)
    assert (base / version / "assets.extra" / "report" / "report.md").is_file()
    assert (base / version / "assets.extra" / "tf_serving_warmup_requests").is_file()
    tf_serving_loader.check_version(str(base / version))
    server = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=lib.free_port()).start()
    try:
        assert server.versions == [int(version)]
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.target))
        out = predict(stub, request("serving_default", lib.session_inputs([[lib.ITEM_IDS[0], lib.ITEM_IDS[1]]])))
        assert out["item_ids"].shape == (1, 5) and np.isin(out["item_ids"], lib.ITEM_IDS).all()
    finally:
        server.stop()
