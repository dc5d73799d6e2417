"""Output roots of the TFX pipeline (issue 15 §1): new, wiped or changed serving and pipeline roots, concurrent runs.

A module-scoped chain of runs on the tiny synthetic log of ``test_tfx_pipeline`` (one store):

1. ``first``: pushed to serving root A;
2. a new serving root B: the Pusher runs again (its destination changed) and pushes the blessed model there;
3. B wiped: the run is all cached (the Pusher too); :func:`run_guard.ensure_served` pushes the blessed model
   again, exactly once;
4. a new pipeline root with the old one deleted: the missing artifacts are marked DELETED, every component runs
   again under the new root, the Trainer starts from scratch (the old blessed model is gone) and no duplicate
   version is pushed.

The lock: a second run on the same store is refused with "in use" (``gru4rec pipeline run`` as a subprocess).
"""
import os
import shutil
import subprocess
import sys

import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from test_tfx_pipeline import PARAMS, write_click_log
from tfx_pipeline import blessing, options, pipeline, run_guard, runners, summary
from tfx_pipeline.components import pusher

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


def run(work, *, pipeline_root=None, serving_root=None, guard=True):
    layout = runners.LocalLayout.create(str(work), "test", pipeline_root=pipeline_root and str(pipeline_root),
                                        serving_root=serving_root and str(serving_root))
    built = pipeline.create_pipeline(
        "test", layout.pipeline_root, str(work / "data"), layout.serving_root,
        sessions=options.SessionOptions(min_item_support=1),
        training=options.TrainingOptions(params=PARAMS, seed=42, max_k=10),
        blessing=blessing.BlessingOptions(cutoffs=(5, 20), thresholds={"recall@20": 0.05}),
        metadata_connection_config=runners.sqlite_config(layout.metadata_path))
    gone = run_guard.forget_missing_artifacts(layout.metadata_path, "test") if guard else []
    runners.run_local(built)
    return summary.summarize_latest_run(layout.metadata_path, "test"), layout, gone


def fingerprints(serving_root):
    base = pipeline.serving_base_directory(str(serving_root))
    return {v: pusher.model_fingerprint(os.path.join(base, v)) for v in pusher.complete_versions(base)}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("roots")
    write_click_log(root / "data")
    return root


@pytest.fixture(scope="module")
def first(work):
    result, layout, _ = run(work, serving_root=work / "A")
    assert result.push["pushed"] and result.push["copied"]
    return result, layout


@pytest.fixture(scope="module")
def new_serving_root(first, work):
    result, _, _ = run(work, serving_root=work / "B")
    return result


@pytest.fixture(scope="module")
def wiped_serving_root(new_serving_root, work):
    shutil.rmtree(work / "B")
    result, layout, _ = run(work, serving_root=work / "B")
    base = pipeline.serving_base_directory(layout.serving_root)
    pushed = run_guard.ensure_served(layout.metadata_path, "test", base)
    again = run_guard.ensure_served(layout.metadata_path, "test", base)
    return result, pushed, again


def test_a_new_serving_root_gets_the_blessed_model(first, new_serving_root, work):
    result = new_serving_root
    assert [result.node(n).state for n in ("ClickLogExampleGen", "SessionTensors")] == ["CACHED", "CACHED"]
    assert result.node("Pusher").state == "COMPLETE" and result.push["pushed"]
    served_a, served_b = fingerprints(work / "A"), fingerprints(work / "B")
    assert len(served_a) == 1 and len(served_b) == 1
    assert list(served_b.values()) == list(served_a.values())  # the same model
    assert result.push["destination"].startswith(str(work / "B"))


def test_a_wiped_serving_root_gets_the_blessed_model_once(first, wiped_serving_root, work):
    result, pushed, again = wiped_serving_root
    assert [n.state for n in result.nodes] == ["CACHED"] * 5  # nothing in TFX runs again...
    assert pushed and pushed.startswith(str(work / "B")) and again is None  # ...the guard pushes it, once
    # with the report it was blessed with (copied from the push that archived it)
    assert os.path.isfile(os.path.join(pushed, "assets.extra", "report", "report.md"))
    assert list(fingerprints(work / "B").values()) == list(fingerprints(work / "A").values())
    assert not [n for n in os.listdir(pipeline.serving_base_directory(str(work / "B"))) if not n.isdigit()]


def test_a_deleted_version_is_pushed_again(first, wiped_serving_root, work):
    _, layout = first
    base = pipeline.serving_base_directory(str(work / "A"))
    (version,) = pusher.complete_versions(base)
    before = fingerprints(work / "A")[version]
    shutil.rmtree(os.path.join(base, version))
    destination = run_guard.ensure_served(layout.metadata_path, "test", base)
    assert destination and list(fingerprints(work / "A").values()) == [before]
    assert os.path.isfile(os.path.join(destination, "assets.extra", "report", "report.md"))
    assert run_guard.ensure_served(layout.metadata_path, "test", base) is None


def test_a_new_pipeline_root_does_not_reuse_deleted_artifacts(first, wiped_serving_root, work):
    old_root = first[1].pipeline_root
    shutil.rmtree(old_root)
    result, _, gone = run(work, pipeline_root=work / "root2", serving_root=work / "B")
    assert gone and all(uri.startswith(old_root) for uri in gone)
    assert [n.state for n in result.nodes] == ["COMPLETE"] * 5
    for node, key in (("SessionTensors", "session_tensors"), ("Trainer", "model")):
        assert result.output(node, key).uri.startswith(str(work / "root2"))
    assert "warm_start" not in result.training or result.training["warm_start"] is None  # old model gone
    prints = list(fingerprints(work / "B").values())
    assert len(prints) == len(set(prints))  # no duplicate version


def test_push_model_cleans_a_killed_push_and_never_duplicates(first, wiped_serving_root, work, tmp_path):
    served = pipeline.serving_base_directory(str(work / "B"))
    model_dir = os.path.join(served, pusher.complete_versions(served)[-1])
    base = tmp_path / "serving" / "m"
    (base / ".tmp-123-dead").mkdir(parents=True)  # what a push killed mid-copy leaves
    (base / ".tmp-123-dead" / "variables").mkdir()
    version, destination, copied = pusher.push_model(model_dir, str(base))
    assert copied and sorted(os.listdir(base)) == [version]
    assert pusher.push_model(model_dir, str(base)) == (version, destination, False)
    with pytest.raises(ValueError, match="saved_model.pb is missing"):
        pusher.push_model(str(tmp_path), str(base))


def test_a_second_run_on_the_same_store_is_refused(tmp_path):
    work = tmp_path / "work"
    layout = runners.LocalLayout.create(str(work), "gru4rec")
    locks = run_guard.lock_paths(layout.metadata_path, pipeline.serving_base_directory(layout.serving_root))
    with run_guard.exclusive(locks):
        result = subprocess.run(
            [sys.executable, "-m", "gru4rec_tf", "pipeline", "run", "--work_dir", str(work),
             "--synthetic_sessions", "50", "--synthetic_items", "20"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=300,
            check=False)
        with pytest.raises(run_guard.InUseError, match="is in use"):
            with run_guard.exclusive(locks):
                pass
    assert result.returncode == 1
    assert "is in use by another `gru4rec pipeline run` (pid" in result.stderr, result.stderr[-2000:]
    assert not os.path.exists(pipeline.serving_base_directory(layout.serving_root))  # no model pushed
    with run_guard.exclusive(locks):  # released: the next run may go
        pass
