"""Data validation before training (issue 23, part 1): the checks, the options and a daily chain of spans.

Fast tier: each session-level check on hand-built profiles, the span profile of raw arrays, bad options and
schema files, and the pipeline's shape (the validation components, the ``Cond`` of the compiled spec).
Slow tier: a daily loop on the built-in generator's days (a window of 3 days, the newest one the span): clean days
pass and push; a day with re-keyed item IDs, a day of times in milliseconds, a re-delivered copy of the previous
day and a day with 4% of the usual events are each stopped (``gru4rec pipeline run`` exits with status 3, the
serving root keeps the last blessed model); ``--validation warn`` lets the small day through; the next clean day
trains and pushes.
"""
import datetime
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from tfx_pipeline import blessing, options, pipeline, runners, summary, validation_options
from tfx_pipeline.data_checks import DAY_US, DataProfile, check_span
from tfx_pipeline.validation_options import ValidationOptions

DEC6 = 1_796_515_200_000_000  # 2026-12-06 00:00 UTC, in microseconds
PARAMS = "loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=32,learning_rate=0.1,n_sample=64,n_epochs=1"


def day_profile(events=10_000, sessions=2_500, start=DEC6, rejected=0, duplicates=0):
    return DataProfile(events=events, sessions=sessions, items=900, time_min_us=start, time_max_us=start + DAY_US - 1,
                       rows_rejected=rejected, duplicate_events=duplicates)


def checks(current, baseline=None, share=None, **opts):
    return [a.check for a in check_span(current, baseline, ValidationOptions(**opts), now_us=DEC6 + 30 * DAY_US,
                                        new_item_share=share)]


# --------------------------------------------------------------------------------------------------- fast tier
def test_a_clean_next_day_passes_and_a_rerun_of_the_same_day_too():
    base = day_profile(start=DEC6 - DAY_US)
    assert checks(day_profile(events=11_000, sessions=2_700), base, share=0.03) == []
    assert checks(base, base, share=0.03) == []  # the baseline's own span: a re-run on unchanged data


@pytest.mark.parametrize("current, share, expected", [
    (day_profile(events=400, sessions=100), None, ["events_per_day", "sessions_per_day"]),  # 4% of a day
    (day_profile(events=80_000, sessions=20_000), None, ["events_per_day", "sessions_per_day"]),
    (day_profile(events=10_000, sessions=1_000), None, ["events_per_session"]),  # 10 per session, was 4
    (day_profile(), 1.0, ["new_item_share"]),  # item IDs re-keyed upstream
    (day_profile(rejected=600), None, ["rejected_rows"]),  # 5.7% of the rows rejected, was 0%
    (day_profile(events=20_000, sessions=5_000, duplicates=20_000), None, ["duplicate_events"]),  # sent twice
    (DataProfile(0, 0, 0, 0, 0), None, ["time_range"]),  # no event after the baseline's: a re-delivered day
    (day_profile(start=DEC6 + 9 * DAY_US), None, ["time_gap"]),
])
def test_each_broken_day_fails_its_check(current, share, expected):
    assert checks(current, day_profile(start=DEC6 - DAY_US), share=share) == expected


def test_times_in_milliseconds_fail_the_time_range_with_or_without_a_baseline():
    as_seconds = DataProfile(10, 3, 4, DEC6 * 1000, DEC6 * 1000 + 10)  # ms read as s, then scaled to us
    anomalies = check_span(as_seconds, None, ValidationOptions(), now_us=DEC6)
    assert [a.check for a in anomalies] == ["time_range"] and "beyond year 9999" in anomalies[0].value
    assert checks(as_seconds, day_profile()) == ["time_range"]
    assert checks(DataProfile(0, 0, 0, 0, 0)) == ["events"]


def test_the_first_run_has_only_the_absolute_checks():
    assert checks(day_profile(events=40, sessions=10), None, share=1.0) == []


def test_a_doubled_day_is_caught_by_its_duplicates_not_its_volume():
    base = day_profile(start=DEC6 - DAY_US, duplicates=300)  # 3% repeated by chance (whole-second times)
    assert checks(day_profile(events=11_000, duplicates=500), base) == []  # 4.5%: the same by chance
    assert checks(day_profile(events=11_000, duplicates=1_500), base) == ["duplicate_events"]  # 13.6%
    assert checks(day_profile(events=11_000, duplicates=1_500), base, max_duplicate_share_increase=0.2) == []
    old = DataProfile.from_dict({k: v for k, v in base.to_dict().items() if k != "duplicate_events"})
    assert old.duplicate_events == 0  # a profile written before the check: none


def test_thresholds_move_the_decision():
    small = day_profile(events=1_500, sessions=400)
    base = day_profile(start=DEC6 - DAY_US)
    assert checks(small, base) == ["events_per_day", "sessions_per_day"]
    assert checks(small, base, min_volume_ratio=0.1) == []


def test_the_span_is_the_data_after_the_baseline_or_else_the_newest_test_days():
    from tfx_pipeline.components import data_validator  # pylint: disable=g-import-not-at-top
    times = np.array([DEC6 - 2 * DAY_US, DEC6 - DAY_US // 2, DEC6, DEC6 + 10, DEC6 + 20], dtype=np.int64)
    keys = np.array([b"a", b"b", b"c", b"c", b"d"], dtype=object)
    items = np.array([b"1", b"2", b"2", b"3", b"3"], dtype=object)
    newest = data_validator.span_mask(times, 1.0, None)
    assert list(newest) == [False, True, True, True, True]
    assert data_validator.profile_of(keys, items, times, newest, 2, user_keyed=False) == DataProfile(
        events=4, sessions=3, items=2, time_min_us=DEC6 - DAY_US // 2, time_max_us=DEC6 + 20, rows_rejected=2)
    after = data_validator.span_mask(times, 1.0, DEC6)  # the baseline's data ended at DEC6
    assert list(after) == [False, False, False, True, True]
    assert data_validator.profile_of(keys, items, times, after, 0, user_keyed=True).sessions is None
    nothing_new = data_validator.span_mask(times, 1.0, DEC6 + 20)
    assert data_validator.profile_of(keys, items, times, nothing_new, 0, user_keyed=False).events == 0
    # the same clicks twice (one under another session key): 4 of the 6 events repeat another's item and time
    twice = (np.r_[keys, [b"c", b"e"]], np.r_[items, [b"2", b"3"]], np.r_[times, [DEC6, DEC6 + 10]])
    every = np.ones(len(twice[0]), dtype=bool)
    assert data_validator.profile_of(*twice, every, 0, user_keyed=False).duplicate_events == 4


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "strict"}, "validation must be one of fail|warn|off"),
    ({"mode": "off", "schema_file": "s.pbtxt"}, "--schema needs validation"),
    ({"max_item_drift": 0}, r"--validation_max_item_drift\) must be a number in \(0, 1\]"),
    ({"max_volume_ratio": 0.5}, r"--validation_max_volume_ratio\) must be a number >= 1"),
    ({"min_volume_ratio": -1}, "min_volume_ratio"),
    ({"max_gap_days": 0}, "max_gap_days"),
    ({"max_duplicate_share_increase": 0}, r"--validation_max_duplicate_share_increase\) must be a number in \(0, 1\]"),
])
def test_bad_options_are_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ValidationOptions(**kwargs)


@pytest.mark.parametrize("text, match", [
    ('feature { name: "x" type: INT }\n', "does not describe the click events: no feature item_id, time_us"),
    ('feature { nme: "x" }\n', "not a TFDV schema text proto"),
    (None, "cannot read it"),
])
def test_bad_schema_files_are_one_clear_error(tmp_path, text, match):
    path = tmp_path / "schema.pbtxt"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ValueError, match=match):
        validation_options.check_schema_file(str(path))


def build(root, data_root, validation, **kwargs):
    return pipeline.create_pipeline(
        "test", str(root), str(data_root), str(root / "serving"), data_pattern="{YYYY}-{MM}-{DD}/*",
        sessions=options.SessionOptions(min_item_support=1, test_days=1.0),
        training=options.TrainingOptions(params=PARAMS, seed=42, max_k=20),
        blessing=blessing.BlessingOptions(cutoffs=(20,), thresholds={"recall@20": 0.05}),
        window_spans=3, validation=validation, **kwargs)


def test_validation_runs_between_ingestion_and_session_tensors(tmp_path):
    built = build(tmp_path, tmp_path, ValidationOptions())
    ids = [c.id for c in built.components]  # in topological order
    order = [ids.index(n) for n in ("ClickLogExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
                                    "DataValidator", "SessionTensors", "Trainer")]
    assert order == sorted(order)
    pinned = build(tmp_path, tmp_path, ValidationOptions(schema_file=str(tmp_path / "s.pbtxt")))
    assert "ImportSchemaGen" in [c.id for c in pinned.components]
    for off in (None, ValidationOptions(mode="off")):
        assert not set(pipeline.VALIDATION_IDS) & {c.id for c in build(tmp_path, tmp_path, off).components}


@pytest.mark.parametrize("mode, conditioned", [("fail", True), ("warn", False)])
def test_compiled_spec_gates_everything_after_validation_on_the_verdict(tmp_path, mode, conditioned):
    from tfx_pipeline import v2_local  # pylint: disable=g-import-not-at-top
    path = tmp_path / "spec.json"
    runners.compile_kubeflow_v2(build(tmp_path, "gs://b/data", ValidationOptions(mode=mode)), str(path))
    tasks = json.loads(path.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]
    gated = ("SessionTensors", "Trainer", "SessionEvaluator", "Pusher")
    for name in gated:  # the verdict by its fixed key, or by the task's own input of it (the Pusher's data_verdict)
        condition = tasks[name].get("triggerPolicy", {}).get("condition")
        keys = ["_DataValidator.verdict"] + (["data_verdict"] if name == "Pusher" else [])
        assert (condition in [f"(inputs.artifacts['{key}'].artifacts[0].metadata['valid'] == 1.0)" for key in keys]) \
            is conditioned, (name, condition)
    assert all("triggerPolicy" not in tasks[n] for n in pipeline.VALIDATION_IDS if n in tasks)
    assert "DataValidator" in tasks["SessionTensors"]["dependentTasks"]
    v2_local.load_spec(str(path))  # the local V2 driver accepts the validation tasks


def test_stopped_exit_status_is_its_own():
    assert validation_options.EXIT_STOPPED_BY_VALIDATION not in (0, 1, 2)


# --------------------------------------------------------------------------------------------------- slow tier
def generator_days(tmp_path):
    """The built-in generator's days, one ``YYYY-MM-DD/clicks.tsv`` per day."""
    from gru4rec_tf.data import synthetic  # pylint: disable=g-import-not-at-top
    events = synthetic.generate_sessions(n_items=200, n_sessions=3000, seed=0)
    day = (events.Time // 86400).astype(int)
    return [events[day == d].reset_index(drop=True) for d in sorted(day.unique())]


def put_day(data_dir, index, frame):
    name = (datetime.date(2026, 11, 1) + datetime.timedelta(days=index)).isoformat()
    os.makedirs(data_dir / name, exist_ok=True)
    frame.to_csv(data_dir / name / "clicks.tsv", sep="\t", index=False)


def run(work, data_dir, mode="fail"):
    layout = runners.LocalLayout.create(str(work), "test")
    runners.run_local(build(work / "root", data_dir, ValidationOptions(mode=mode),
                            metadata_connection_config=runners.sqlite_config(layout.metadata_path)))
    return summary.summarize_latest_run(layout.metadata_path, "test")


def served(work):
    base = work / "root" / "serving" / "gru4rec"
    return sorted(os.listdir(base)) if base.is_dir() else []


@pytest.fixture(scope="module")
def daily(tmp_path_factory):
    """Days 1-3, day 4 (clean), then four broken versions of day 5, day 5 clean, then day 6 small with warn."""
    work = tmp_path_factory.mktemp("daily")
    data = work / "data"
    days = generator_days(work)
    for i in range(4):
        put_day(data, i, days[i])
        if i >= 2:
            first_runs = run(work, data)
    broken = {
        "rekeyed": days[4].assign(ItemId=days[4].ItemId + 1_000_000),
        "milliseconds": days[4].assign(Time=days[4].Time * 1000),
        "redelivered": days[3],
        "small": days[4][days[4].SessionId.isin(days[4].SessionId.unique()[:12])],
    }
    results = {}
    for name, frame in broken.items():
        put_day(data, 4, frame)
        results[name] = (run(work, data), served(work))
    put_day(data, 4, days[4])
    results["clean"] = (run(work, data), served(work))
    put_day(data, 5, broken["small"].assign(Time=broken["small"].Time + 86400))
    results["small_warn"] = (run(work, data, mode="warn"), served(work))
    return {"work": work, "data": data, "day4": first_runs, "results": results, "days": days}


@pytest.mark.slow
def test_clean_days_pass_and_push(daily):
    day4 = daily["day4"]
    assert day4.validation == {"valid": True, "mode": "fail", "anomalies": []} and day4.push["pushed"]
    clean, versions = daily["results"]["clean"]
    assert clean.validation["valid"] and not clean.validation["anomalies"] and clean.push["pushed"]
    assert clean.node("Trainer").state == "COMPLETE" and versions[-1] == clean.push["version"]
    # the pushed version carries its report (issue 23, part 3): decision, this span against the previous one
    path = os.path.join(clean.push["destination"], "assets.extra", "report", "report.md")
    assert clean.report_path == path and f"\nreport: {path}" in clean.format()
    with open(path, encoding="utf-8") as handle:
        report = handle.read()
    assert "**BLESSED**: all checks passed" in report and f"Pushed as version {clean.push['version']}" in report
    assert "| events/day |" in report and "No previous span" not in report and "Warm-started from `" in report
    assert "Mode `fail`; verdict: valid; 0 anomaly(ies)." in report and "| target_new |" in report


@pytest.mark.slow
@pytest.mark.parametrize("name, check", [("rekeyed", "new_item_share"), ("milliseconds", "time_range"),
                                         ("redelivered", "time_range"), ("small", "events_per_day")])
def test_a_broken_day_is_stopped_and_nothing_is_pushed(daily, name, check):
    result, versions = daily["results"][name]
    assert result.stopped_by_validation
    assert any(line.startswith(check + ":") for line in result.validation["anomalies"]), result.validation
    assert [result.node(n).state for n in ("SessionTensors", "Trainer", "SessionEvaluator", "Pusher")] == \
        ["SKIPPED"] * 4
    assert versions == [daily["day4"].push["version"]] or versions[-1] == daily["day4"].push["version"]
    assert "data validation: STOPPED the run" in result.format()


@pytest.mark.slow
def test_warn_reports_the_anomaly_and_trains(daily):
    result, _ = daily["results"]["small_warn"]
    assert not result.stopped_by_validation and result.validation["mode"] == "warn"
    assert any(line.startswith("events_per_day:") for line in result.validation["anomalies"])
    assert result.node("Trainer").state == "COMPLETE"
    assert "data validation: anomalies (--validation warn: the run went on)" in result.format()
    with open(result.report_path, encoding="utf-8") as handle:  # pushed or not, the model's report names them
        report = handle.read()
    assert "Mode `warn`; verdict: valid; " in report and "| events_per_day |" in report
    assert "| target_new |" in report and "## Training" in report


@pytest.mark.slow
def test_gru4rec_pipeline_run_exits_with_the_validation_status(daily, tmp_path):
    """The command line: a span stopped by validation exits with status 3 and names the anomaly (a first run, so
    only the absolute checks: times in milliseconds); its inferred schema is written for review."""
    data = tmp_path / "data"
    for i in range(3):
        put_day(data, i, daily["days"][i] if i < 2 else daily["days"][i].assign(Time=daily["days"][i].Time * 1000))
    command = [sys.executable, "-m", "gru4rec_tf", "pipeline", "run", "--work_dir", str(tmp_path / "w"),
               "--data", str(data), "--window_days", "3", "--test_days", "1", "--params", PARAMS,
               "--min_item_support", "1", "--thresholds", "recall@20=0.05"]
    stopped = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert stopped.returncode == validation_options.EXIT_STOPPED_BY_VALIDATION, stopped.stderr[-2000:]
    assert "  - time_range: " in stopped.stdout and "beyond year 9999" in stopped.stdout
    assert "stopped by data validation" in stopped.stderr
    base = tmp_path / "w" / "serving" / "gru4rec"
    assert not base.exists() or not [v for v in os.listdir(base) if v.isdigit()]  # nothing pushed
    schema = tmp_path / "schema.pbtxt"
    written = subprocess.run([sys.executable, "-m", "gru4rec_tf", "pipeline", "schema", "--work_dir",
                              str(tmp_path / "w"), "--output", str(schema)], capture_output=True, text=True,
                             timeout=300, check=False)
    assert written.returncode == 0, written.stderr[-2000:]
    validation_options.check_schema_file(str(schema))  # describes the events: usable as --schema
