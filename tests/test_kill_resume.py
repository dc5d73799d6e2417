"""Kills at any moment (issue 15 §2): each command is SIGKILLed after random delays, then run again.

After every kill, what a consumer reads is absent or complete (no half-written file or version directory where
TF Serving, a later command or the pipeline would look); after the rerun the outputs are complete, valid and
identical to an uninterrupted run where the command is deterministic; what existed before is kept.
A few kills per command here (CI; ``--kills``, ``--pipeline-kills``); ``bench/reliability.py`` runs many and writes
``bench/results/reliability.md``.
The `gru4rec train --checkpoint_dir` resume is in ``test_cli_continuous.py``; ``gru4rec pipeline run`` is here.
"""
import hashlib
import shutil
from pathlib import Path

import pytest

import kill_harness as harness
import preprocessing_testlib as plib
import sizes
import tf_serving_loader as loader
from gru4rec_tf.data.synthetic import generate_sessions, train_test_split_by_time

pytestmark = pytest.mark.slow
KILLS = sizes.current().kills
# a pipeline run is the slowest command to kill and rerun (minutes on 2 cores): one kill in CI, the bench's count there
PIPELINE_KILLS = sizes.current().pipeline_kills
PARAMS = "loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=16,learning_rate=0.1,n_sample=32"


def digest(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(path).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("kills")
    events = generate_sessions(n_items=120, n_sessions=600, mean_length=4.0, seed=3, span_days=5.0)
    train, test = train_test_split_by_time(events, test_days=1)
    train.to_csv(root / "train.tsv", sep="\t", index=False)
    test.to_csv(root / "test.tsv", sep="\t", index=False)
    events.to_csv(root / "clicks.csv", index=False)
    return root


def preprocess_args(data, output):
    return ["preprocess", "--input", data / "clicks.csv", "--output", output, "--delimiter", ",",
            "--time_format", "unix_s", "--min_item_support", 1, "--test_days", 1, *plib.IN_MEMORY]


def test_preprocess_survives_kills(data, tmp_path):
    reference, seconds = harness.timed_run(preprocess_args(data, tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr[-2000:]
    output = tmp_path / "out"

    def consumer_view():  # OUTPUT is absent or complete (stats.json marks it), never partial
        assert harness.visible_entries(tmp_path) in (["ref"], ["out", "ref"])
        if output.exists():
            assert digest(output) == digest(tmp_path / "ref")

    report = harness.kill_and_rerun(preprocess_args(data, output), kills=KILLS, window=(0.3 * seconds, seconds),
                                    seed=1, check_after_kill=consumer_view,
                                    done=lambda: (output / "stats.json").exists())
    if report.final is not None:
        assert report.final.returncode == 0, report.final.stderr[-2000:]
    harness.record("kills", command="gru4rec preprocess", killed=report.killed,
                   finished=report.finished_before_kill, delays=report.delays, rerun_s=round(report.final_seconds, 1))
    assert digest(output) == digest(tmp_path / "ref")  # deterministic: byte-identical to the uninterrupted run
    assert report.killed >= 1


def test_train_save_model_survives_kills(data, tmp_path):
    args = ["train", "--train", data / "train.tsv", "--params", PARAMS, "--epochs", 2, "--seed", 5]
    reference, seconds = harness.timed_run([*args, "--save_model", tmp_path / "ref"])
    assert reference.returncode == 0, reference.stderr[-2000:]
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "keep.txt").write_text("an existing file")
    model = tmp_path / "models" / "m"

    def consumer_view():
        assert harness.visible_entries(tmp_path / "models") in (["keep.txt"], ["keep.txt", "m"])
        if model.exists():
            assert (model / "vocab.tsv").is_file() and digest(model) == digest(tmp_path / "ref")

    report = harness.kill_and_rerun([*args, "--save_model", model], kills=KILLS, window=(0.3 * seconds, seconds),
                                    seed=2, check_after_kill=consumer_view)
    assert report.final.returncode == 0, report.final.stderr[-2000:]
    harness.record("kills", command="gru4rec train --save_model", killed=report.killed,
                   finished=report.finished_before_kill, delays=report.delays, rerun_s=round(report.final_seconds, 1))
    assert digest(model) == digest(tmp_path / "ref")  # same seed on CPU: the same model, byte for byte
    assert (tmp_path / "models" / "keep.txt").read_text() == "an existing file"
    assert report.killed >= 1


def test_export_survives_kills_and_tf_serving_never_sees_a_partial_version(data, tmp_path):
    model = tmp_path / "model"
    trained = harness.run(["train", "--train", data / "train.tsv", "--params", PARAMS, "--epochs", 1,
                           "--save_model", model])
    assert trained.returncode == 0, trained.stderr[-2000:]
    base = tmp_path / "serving" / "gru4rec"
    first, seconds = harness.timed_run(["export", "--model", model, "--output", base / "1"])
    assert first.returncode == 0, first.stderr[-2000:]
    before = digest(base / "1")

    def consumer_view():  # TF Serving lists numeric directories: each one must be a complete SavedModel
        assert harness.visible_entries(base) in (["1"], ["1", "2"])
        for version in harness.visible_entries(base):
            assert (base / version / "saved_model.pb").is_file()
            assert (base / version / "assets.extra" / "tf_serving_warmup_requests").is_file()

    report = harness.kill_and_rerun(["export", "--model", model, "--output", base / "2", "--overwrite"],
                                    kills=KILLS, window=(0.3 * seconds, seconds), seed=3,
                                    check_after_kill=consumer_view)
    assert report.final.returncode == 0, report.final.stderr[-2000:]
    harness.record("kills", command="gru4rec export", killed=report.killed,
                   finished=report.finished_before_kill, delays=report.delays, rerun_s=round(report.final_seconds, 1))
    assert harness.visible_entries(base) == ["1", "2"] and digest(base / "1") == before
    counts = loader.check_version(str(base / "2"))  # loads as TF Serving does; every warm-up record replays
    assert counts["warmup_records"] == 4
    assert report.killed >= 1


PIPELINE = ["--synthetic_sessions", "1500", "--synthetic_items", "200", "--min_item_support", "1", "--cutoffs",
            "5,20", "--thresholds", "recall@20=0.05", "--params",
            "loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=32,learning_rate=0.1,n_sample=64,n_epochs=1"]


def served_versions(serving: Path) -> dict:
    from tfx_pipeline.components import pusher  # pylint: disable=g-import-not-at-top
    return {v: pusher.model_fingerprint(str(serving / v)) for v in harness.visible_entries(serving)}


def test_pipeline_run_survives_kills(tmp_path):
    work = tmp_path / "work"
    serving = work / "serving" / "gru4rec"
    first, seconds = harness.timed_run(["pipeline", "run", "--work_dir", work, *PIPELINE])
    assert first.returncode == 0, first.stderr[-3000:]
    before = served_versions(serving)
    assert len(before) == 1
    kept = {v: digest(serving / v) for v in before}
    args = ["pipeline", "run", "--work_dir", work, *PIPELINE, "--seed", "7", "--regression_margin", "1"]

    def consumer_view():  # every numeric version is complete; the first one is intact
        for version in harness.visible_entries(serving):
            assert (serving / version / "saved_model.pb").is_file(), version
        for version, files in kept.items():
            assert digest(serving / version) == files

    report = harness.kill_and_rerun(args, kills=PIPELINE_KILLS, window=(0.4 * seconds, 1.1 * seconds), seed=4,
                                    check_after_kill=consumer_view)
    assert report.final.returncode == 0, report.final.stderr[-3000:]
    out = report.final.stdout
    assert "FAILED" not in out and "blessed: yes" in out and "pushed: " in out
    harness.record("kills", command="gru4rec pipeline run", killed=report.killed,
                   finished=report.finished_before_kill, delays=report.delays, rerun_s=round(report.final_seconds, 1))
    after = served_versions(serving)
    assert set(before) <= set(after) and len(set(after.values())) == len(after)  # nothing lost, no duplicate
    assert len(after) == 2  # the new (blessed) model, once
    consumer_view()
    newest = max(after, key=int)
    assert loader.check_version(str(serving / newest))["warmup_records"] == 4
    assert report.killed >= 1
    shutil.rmtree(serving)  # a wiped serving root: the next run serves the blessed model again
    wiped = harness.run(args)
    assert wiped.returncode == 0, wiped.stderr[-2000:]
    # the Pusher (when it ran: the candidate is the already-blessed model) or, when it was cached, the run guard
    assert "pushed the last blessed model again" in wiped.stdout or (
        f"pushed: {serving}" in wiped.stdout and "already there" not in wiped.stdout), wiped.stdout[-2000:]
    assert list(served_versions(serving).values()) == [after[newest]]
