"""End-to-end tests of the ``gru4rec`` command line (issue 2, "Command line"), run as subprocesses.

A run that trains costs a few seconds (TensorFlow import and tracing); the bad-input runs fail before TensorFlow is
imported (about a second each). Data: the built-in synthetic generator, 200 items and 600 sessions.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
GRU4REC = Path(sys.executable).parent / "gru4rec"
CUTOFFS = (1, 5, 20)
TRAIN_PARAMS = "loss=bpr-max,final_act=elu-0.5,layers=32,batch_size=8,learning_rate=0.1,n_sample=32,bpreg=1.0"

OFFICIAL_PARAMFILE = """from collections import OrderedDict
gru4rec_params = OrderedDict([
('loss', 'bpr-max'),
('constrained_embedding', True),
('embedding', 0),
('elu_param', 0.5),
('layers', [16]),
('n_epochs', 10),
('batch_size', 16),
('dropout_p_embed', 0.0),
('dropout_p_hidden', 0.0),
('learning_rate', 0.05),
('momentum', 0.0),
('n_sample', 32),
('sample_alpha', 0.0),
('bpreg', 1.0),
('logq', 0.0)
])
"""


def run_cli(*args, module=False, timeout=300):
    """Runs ``gru4rec ARGS`` (or ``python -m gru4rec_tf ARGS``); returns the CompletedProcess."""
    if module:
        command = [sys.executable, "-m", "gru4rec_tf", *map(str, args)]
    else:
        assert GRU4REC.is_file(), f"console script {GRU4REC} not found: install the package (pip install -e .)"
        command = [str(GRU4REC), *map(str, args)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO_ROOT),
                          check=False)


def assert_clean_failure(result, *fragments, prefix="gru4rec: error:"):
    """Non-zero exit, no traceback, and one error line (the last one) that contains every fragment."""
    stderr = result.stderr
    assert result.returncode != 0, f"expected a failure, got exit 0\nstderr:\n{stderr}"
    assert "Traceback" not in stderr and "Traceback" not in result.stdout, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(prefix)]
    assert len(errors) == 1 and lines[-1] == errors[0], f"expected one final '{prefix}' line:\n{stderr}"
    for fragment in fragments:
        assert str(fragment) in errors[0], f"{fragment!r} not in the error line: {errors[0]}"
    return errors[0]


def tree_digest(path: Path) -> dict:
    """Relative path -> sha256 of every file under ``path``."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def popularity_baseline(train_path, test_path, k=20):
    """Recall@k and MRR@k of recommending the k most popular train items for every test next-item event."""
    train = pd.read_csv(train_path, sep="\t")
    test = pd.read_csv(test_path, sep="\t").sort_values(["SessionId", "Time"], kind="stable")
    test = test[test.ItemId.isin(train.ItemId)]  # items unknown to training are dropped before evaluation
    test = test[test.groupby("SessionId").SessionId.transform("size") >= 2]
    targets = test[test.SessionId.duplicated()].ItemId.to_numpy()  # every event but the first of a session
    rank = {item: r + 1 for r, item in enumerate(train.ItemId.value_counts().index[:k])}
    ranks = np.array([rank.get(item, np.inf) for item in targets])
    return float(np.mean(ranks <= k)), float(np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0))), len(targets)


# ------------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


def generate_dataset(out: Path, seed: int) -> Path:
    """``gru4rec generate`` of 200 items and 600 sessions (2 test days) into ``out``."""
    result = run_cli("generate", "--output", out, "--n_items", 200, "--n_sessions", 600, "--seed", seed,
                     "--test_days", 2)
    assert result.returncode == 0, result.stderr
    assert (out / "train.tsv").is_file() and (out / "test.tsv").is_file()
    return out


@pytest.fixture(scope="module")
def dataset(workdir):
    return generate_dataset(workdir / "data", seed=1)


@pytest.fixture(scope="module")
def trained(workdir, dataset):
    """One training run with every output; returns (result, metrics dict, model dir)."""
    model_dir, metrics_path = workdir / "model", workdir / "out" / "metrics.json"
    result = run_cli("train", "--train", dataset / "train.tsv", "--test", dataset / "test.tsv",
                     "--params", TRAIN_PARAMS, "--epochs", 2, "--cutoffs", "1,5,20", "--eval_mode", "conservative",
                     "--save_model", model_dir, "--metrics_json", metrics_path, "--seed", 1)
    assert result.returncode == 0, result.stderr
    return result, json.loads(metrics_path.read_text()), model_dir


@pytest.fixture(scope="module")
def guarded(workdir, trained):
    """An existing model directory (a copy of the trained one) that failing runs must leave intact."""
    guard = workdir / "guard" / "model"
    shutil.copytree(trained[2], guard)
    return guard


# ------------------------------------------------------------------------------------------------ the good path
def test_help_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for command in ("train", "evaluate", "generate"):
        assert re.search(rf"^\s+{command}\s+\S", result.stdout, re.M), result.stdout


def test_unknown_subcommand():
    result = run_cli("frobnicate", "--train", "x.tsv")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first == "gru4rec: unknown command 'frobnicate'", result.stderr
    assert re.search(r"^\s+train\s+\S", result.stderr, re.M)  # followed by the usage listing the commands


@pytest.mark.slow
def test_train_metrics_json(trained, dataset):
    _, metrics, _ = trained
    for k in CUTOFFS:
        assert 0.0 <= metrics[f"mrr@{k}"] <= metrics[f"recall@{k}"] <= 1.0
    assert "recall@10" not in metrics  # only the cut-offs asked for
    assert metrics["eval_mode"] == "conservative"
    assert metrics["epochs"] == 2
    assert metrics["n_items"] == pd.read_csv(dataset / "train.tsv", sep="\t").ItemId.nunique()
    assert metrics["train_seconds"] > 0 and metrics["train_events_per_sec"] > 0
    expected_rate = metrics["train_events"] * 2 / metrics["train_seconds"]
    assert metrics["train_events_per_sec"] == pytest.approx(expected_rate, rel=1e-6)
    params = metrics["params"]
    assert params["loss"] == "bpr-max" and params["final_act"] == "elu-0.5" and params["layers"] == [32]
    assert params["n_epochs"] == 2 and params["n_sample"] == 32 and params["batch_size"] == 8
    assert params["momentum"] == 0.0 and params["dropout_p_embed"] == 0.0  # defaults filled in
    assert params["constrained_embedding"] is True and params["sample_alpha"] == 0.5


@pytest.mark.slow
def test_train_log_lines(trained):
    stderr = trained[0].stderr
    for epoch in (1, 2):
        line = re.search(rf"epoch {epoch}/2: loss ([0-9.]+), ([0-9.]+) s, ([0-9]+) events/s", stderr)
        assert line, f"no log line for epoch {epoch}:\n{stderr}"
        assert float(line.group(1)) > 0 and int(line.group(3)) > 0
    for k in CUTOFFS:
        assert re.search(rf"Recall@{k}: [0-9.]+\s+MRR@{k}: [0-9.]+", stderr), stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_train_beats_popularity(trained, dataset):
    _, metrics, _ = trained
    pop_recall, pop_mrr, n_targets = popularity_baseline(dataset / "train.tsv", dataset / "test.tsv")
    assert metrics["eval_events"] == n_targets
    # 2 epochs on ~2.4k events: recall@20 ~0.62 and MRR@20 ~0.32 vs popularity ~0.47 / ~0.16
    assert metrics["recall@20"] >= pop_recall + 0.07, (metrics["recall@20"], pop_recall)
    assert metrics["mrr@20"] >= pop_mrr + 0.08, (metrics["mrr@20"], pop_mrr)


@pytest.mark.slow
def test_evaluate_reproduces_train_metrics(trained, dataset, workdir):
    _, train_metrics, model_dir = trained
    out = workdir / "eval.json"
    result = run_cli("evaluate", "--model", model_dir, "--test", dataset / "test.tsv", "--eval_mode", "conservative",
                     "--cutoffs", "1,5,20", "--metrics_json", out)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(out.read_text())
    for k in CUTOFFS:  # identical scores after reloading: identical ranks, identical metrics
        assert metrics[f"recall@{k}"] == train_metrics[f"recall@{k}"]
        assert metrics[f"mrr@{k}"] == train_metrics[f"mrr@{k}"]
    assert metrics["eval_mode"] == "conservative" and metrics["eval_events"] == train_metrics["eval_events"]
    assert metrics["n_items"] == train_metrics["n_items"] and metrics["params"] == train_metrics["params"]


@pytest.mark.slow
def test_evaluate_slices_prints_the_table_and_writes_it_to_the_metrics(trained, dataset, workdir):
    _, train_metrics, model_dir = trained
    out, sampled_out = workdir / "slices.json", workdir / "slices_sampled.json"
    args = ("evaluate", "--model", model_dir, "--test", dataset / "test.tsv", "--eval_mode", "conservative",
            "--cutoffs", "1,5,20", "--slices", "--previous_model", model_dir)
    result = run_cli(*args, "--metrics_json", out)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(out.read_text())
    for k in CUTOFFS:  # the sliced evaluation ranks exactly as the plain one
        assert metrics[f"recall@{k}"] == train_metrics[f"recall@{k}"]
        assert metrics[f"mrr@{k}"] == train_metrics[f"mrr@{k}"]
    table = metrics["slices"]
    assert table["all"]["events"] == metrics["eval_events"] and table["all"]["recall@20"] == metrics["recall@20"]
    for family in (("target_new", "target_known"), ("position_1", "position_2-3", "position_4-7", "position_8+"),
                   ("popularity_head", "popularity_torso", "popularity_tail")):
        assert sum(table[name]["events"] for name in family) == metrics["eval_events"], family
    assert table["target_new"]["events"] == 0  # the previous model is this one: no new item
    row = table["position_1"]
    assert row["events"] == row["sessions"] == metrics["eval_sessions"] > 0
    for key in ("recall@20", "mrr@20"):
        lo, hi = row[f"{key}_ci"]
        assert 0.0 <= lo <= row[key] <= hi <= 1.0
    assert 0.0 < metrics["coverage@20"] <= 1.0 and metrics["mean_rec_popularity@20"] > 0
    assert metrics["bootstrap"] == {"resamples": 500, "seed": 0, "confidence": 0.95, "unit": "session"}
    assert re.search(r"^position_1 +\d+ +\d+ +0\.\d{4} +\[0\.\d{4}, 0\.\d{4}\]", result.stdout, re.MULTILINE), \
        result.stdout
    # a sample of every session is the full evaluation; a smaller one ranks fewer sessions, still exactly
    result = run_cli(*args, "--eval_sample_sessions", 100_000, "--metrics_json", sampled_out)
    assert result.returncode == 0, result.stderr
    assert json.loads(sampled_out.read_text())["slices"] == table
    result = run_cli(*args, "--eval_sample_sessions", 20, "--metrics_json", sampled_out)
    assert result.returncode == 0, result.stderr
    sampled = json.loads(sampled_out.read_text())
    assert sampled["eval_sessions"] == 20 and sampled["slices"]["position_1"]["events"] == 20
    width = lambda t: t["all"]["recall@20_ci"][1] - t["all"]["recall@20_ci"][0]  # noqa: E731
    assert width(sampled["slices"]) > width(table)  # the interval shows the cost of sampling


@pytest.mark.parametrize("flag,value,message", [
    ("--eval_sample_sessions", 0, "--eval_sample_sessions must be an integer >= 1, got 0"),
    ("--bootstrap_resamples", 0, "--bootstrap_resamples must be an integer >= 1, got 0"),
    ("--eval_seed", -1, "--eval_seed must be an integer >= 0, got -1"),
])
def test_evaluate_bad_slice_options(flag, value, message, workdir, dataset):
    result = run_cli("evaluate", "--model", workdir / "no_model_here", "--test", dataset / "test.tsv", "--slices",
                     flag, value)
    assert_clean_failure(result, message)


@pytest.mark.slow
def test_params_file_with_override_via_python_m(workdir, dataset, trained):
    """Official .py paramfile + --params override, run as ``python -m gru4rec_tf``; saves over an existing model."""
    paramfile = workdir / "rsc15_bprmax_port.py"
    paramfile.write_text(OFFICIAL_PARAMFILE)
    model_dir = workdir / "replaced" / "model"
    shutil.copytree(trained[2], model_dir)
    out = workdir / "pf.json"
    result = run_cli("train", "--train", dataset / "train.tsv", "--params_file", paramfile,
                     "--params", "learning_rate=0.2,n_sample=16,bpreg=0.5", "--epochs", 1,
                     "--save_model", model_dir, "--metrics_json", out, module=True)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(out.read_text())
    params = metrics["params"]
    assert (params["loss"], params["final_act"], params["layers"], params["batch_size"]) == \
        ("bpr-max", "elu-0.5", [16], 16)  # from the file (elu_param=0.5 -> elu-0.5)
    assert (params["learning_rate"], params["n_sample"], params["bpreg"]) == (0.2, 16, 0.5)  # --params wins
    assert params["n_epochs"] == 1 and metrics["epochs"] == 1  # --epochs wins over the file's n_epochs=10
    assert "recall@20" not in metrics  # no --test
    config = json.loads((model_dir / "config.json").read_text())
    assert config["params"] == params  # the previous model directory was replaced by the new one
    assert sorted(os.listdir(model_dir.parent)) == ["model"]


# ------------------------------------------------------------------------------------------------ bad input
BAD_FILES = {
    "missing.tsv": (None, "file does not exist"),
    "empty.tsv": ("", "file is empty"),
    "nocol.tsv": ("SessionId\tItemId\n1\t10\n1\t11\n", "missing column(s) ['Time']"),
    "badtime.tsv": ("SessionId\tItemId\tTime\n1\t10\t5.0\n1\t11\tyesterday\n", "non-numeric Time 'yesterday'"),
    "nansession.tsv": ("SessionId\tItemId\tTime\n1\t10\t5.0\nNaN\t11\t6.0\n", "missing SessionId"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_train_file(name, workdir, guarded):
    content, problem = BAD_FILES[name]
    path = workdir / "bad" / name
    path.parent.mkdir(exist_ok=True)
    if content is not None:
        path.write_text(content)
    before = tree_digest(guarded)
    metrics = workdir / "bad" / f"{name}.json"
    result = run_cli("train", "--train", path, "--params", TRAIN_PARAMS, "--epochs", 1,
                     "--save_model", guarded, "--metrics_json", metrics)
    assert_clean_failure(result, str(path), problem)
    # nothing half-written, nothing destroyed
    assert not metrics.exists()
    assert not [p for p in os.listdir(metrics.parent) if p.endswith(".tmp")]
    assert tree_digest(guarded) == before
    assert sorted(os.listdir(guarded.parent)) == ["model"]


@pytest.mark.parametrize("args, fragments", [
    (["--params", "layers=16,n_sampel=32"], ["--params", "unknown parameter 'n_sampel'"]),
    (["--params", "loss=cross-entropy,final_act=elu-1"], ["final_act='elu-1'", "loss='cross-entropy'"]),
    (["--cutoffs", "1,five,20"], ["--cutoffs", "1,five,20"]),
])
def test_bad_parameters(args, fragments, dataset, workdir, guarded):
    before = tree_digest(guarded)
    metrics = workdir / "bad" / "params.json"
    metrics.parent.mkdir(exist_ok=True)
    result = run_cli("train", "--train", dataset / "train.tsv", "--test", dataset / "test.tsv", *args,
                     "--save_model", guarded, "--metrics_json", metrics)
    assert_clean_failure(result, *fragments)
    assert not metrics.exists()
    assert tree_digest(guarded) == before


def test_refuses_to_save_over_non_model_directory(workdir, dataset):
    target = workdir / "not_a_model"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    result = run_cli("train", "--train", dataset / "train.tsv", "--params", TRAIN_PARAMS, "--epochs", 1,
                     "--save_model", target)
    assert_clean_failure(result, str(target), "not a gru4rec_tf model directory")
    assert os.listdir(target) == ["precious.txt"] and (target / "precious.txt").read_text() == "keep"


def test_evaluate_bad_model_dir(workdir, dataset):
    result = run_cli("evaluate", "--model", workdir / "no_model_here", "--test", dataset / "test.tsv")
    assert_clean_failure(result, str(workdir / "no_model_here" / "config.json"), "does not exist")
