"""``gru4rec tune`` end to end as a subprocess: the three outputs, resume, and bad input (one error line each,
before any trial). Data: the synthetic generator, 60 items; the space searches layers 8-24 so a trial is ~5 s."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gru4rec_tf.data import synthetic

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXED = "loss=bpr-max,final_act=elu-0.5,batch_size=16,n_sample=16"
SPACE = {"layers": {"low": 8, "high": 24, "step": 8}, "learning_rate": {"low": 0.02, "high": 0.2, "step": 0.02}}


def run_cli(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "gru4rec_tf", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(REPO_ROOT), check=False)


def assert_one_error_line(result, *fragments):
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("gru4rec: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune_data")
    events = synthetic.generate_sessions(n_items=60, n_sessions=300, seed=1, span_days=4.0)
    train, valid = synthetic.train_test_split_by_time(events, test_days=1.0)
    train.to_csv(root / "train.tsv", sep="\t", index=False)
    valid.to_csv(root / "valid.tsv", sep="\t", index=False)
    other = valid.copy()
    other["ItemId"] = other["ItemId"] + 10_000_000  # no item in common with train
    other.to_csv(root / "foreign.tsv", sep="\t", index=False)
    (root / "space.json").write_text(json.dumps(SPACE))
    return root


def tune_args(files, output, trials=2, *extra, algorithm="bayesian"):
    return ["tune", "--train", files / "train.tsv", "--valid", files / "valid.tsv", "--trials", trials,
            "--epochs", 1, "--space", files / "space.json", "--fixed_params", FIXED, "--output", output,
            "--steps_per_call", 8, "--algorithm", algorithm, *extra]


@pytest.mark.slow
def test_tune_writes_best_params_trials_and_plot_then_resumes_to_the_total(files, tmp_path):
    out = tmp_path / "out"
    result = run_cli(*tune_args(files, out, 2))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trial 2/2" in result.stderr and "best so far" in result.stderr and "ETA" in result.stderr
    best = json.loads((out / "best_params.json").read_text())
    assert set(best) == {"params", "objective", "value", "trial", "epochs"}
    assert best["objective"] == "mrr@20" and best["epochs"] == 1 and best["trial"] in (1, 2)
    assert 0 < best["value"] <= 1
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 2 and {r["state"] for r in rows} == {"COMPLETED"}
    assert max(float(r["value"]) for r in rows) == pytest.approx(best["value"])
    assert {"layers", "learning_rate", "seconds", "mrr@20_epoch1"} <= set(rows[0])
    assert (out / "optimization_history.png").stat().st_size > 1000

    trained = run_cli("train", "--train", files / "train.tsv", "--test", files / "valid.tsv",
                      "--params", best["params"], "--metrics_json", tmp_path / "m.json")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert json.loads((tmp_path / "m.json").read_text())["params"]["n_sample"] == 16

    resumed = run_cli(*tune_args(files, out, 3))  # the same command with a larger total continues the study
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming a study" in resumed.stderr and "trial 3/3" in resumed.stderr
    assert "trial 1/3 started" not in resumed.stderr
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["trial"] for r in rows] == ["1", "2", "3"]

    other = run_cli(*tune_args(files, out, 3, "--objective", "recall@20"))
    assert_one_error_line(other, "holds a study with other settings (objective)")


@pytest.mark.parametrize("change, fragments", [
    ({"space": {"layerz": {"low": 8, "high": 16}}}, ["unknown parameter 'layerz'"]),
    ({"space": {"layers": {"low": 24, "high": 8}}}, ["layers: empty range"]),
    ({"space": {"layers": {"low": 8, "high": 16}, "learning_rate": {"low": 0.0, "high": 0.1}}},
     ["learning_rate", "must be > 0"]),
    ({"fixed": FIXED + ",layers=16"}, ["layers is both fixed (--fixed_params) and searched"]),
    ({"valid": "foreign.tsv"}, ["foreign.tsv", "share 0 item(s)", "nothing to score"]),
    ({"objective": "ndcg@20"}, ["recall@K or mrr@K", "ndcg@20"]),
    ({"fixed": "loss=bpr-max,layerz=3"}, ["--fixed_params", "unknown parameter 'layerz'"]),
    ({"initial": "layers=200,learning_rate=0.1"}, ["--initial_params", "layers=200 is outside the searched range"]),
    ({"initial": "layers=16"}, ["--initial_params", "missing learning_rate"]),
    ({"initial": "best_known"}, ["--initial_params best_known", "layers=100 is outside"]),
    ({"initial": "portfolio", "fixed": "loss=top1,final_act=elu-0.5,batch_size=16,n_sample=16"},
     ["--initial_params portfolio", "no configuration for loss=top1", "--initial_params none"]),
    ({"initial": "portfolo"}, ["--initial_params", "expected portfolio, none, best_known or k=v", "'portfolo'"]),
])
def test_bad_input_fails_with_one_line_before_any_trial(files, tmp_path, change, fragments):
    space = tmp_path / "space.json"
    space.write_text(json.dumps(change.get("space", SPACE)))
    out = tmp_path / "out"
    result = run_cli("tune", "--train", files / "train.tsv", "--valid", files / change.get("valid", "valid.tsv"),
                     "--trials", 2, "--epochs", 1, "--space", space, "--fixed_params", change.get("fixed", FIXED),
                     "--objective", change.get("objective", "mrr@20"), "--output", out,
                     "--initial_params", change.get("initial", ""), timeout=60)
    assert_one_error_line(result, *fragments)
    assert not (out / "study").exists() and not (out / "trials.csv").exists()


def test_worker_processes_get_the_same_flags_with_one_worker(monkeypatch):
    from gru4rec_tf.commands import tune  # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(sys, "argv", ["gru4rec", "tune", "--train", "t.tsv", "--workers", "3", "--trials=9",
                                      "--workers=2", "--output", "out"])
    assert tune._worker_argv()[1:] == ["-m", "gru4rec_tf", "tune", "--train", "t.tsv", "--trials=9", "--output",
                                       "out", "--workers=1"]


@pytest.mark.slow
def test_two_worker_processes_run_every_trial_once(files, tmp_path):
    out = tmp_path / "out"
    result = run_cli(*tune_args(files, out, 3, "--workers", 2, "--initial_params", "layers=16,learning_rate=0.05"),
                     timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 worker processes" in result.stderr
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert sorted(r["trial"] for r in rows) == ["1", "2", "3"] and {r["state"] for r in rows} == {"COMPLETED"}
    assert (rows[0]["layers"], float(rows[0]["learning_rate"])) == ("16", 0.05)  # the initial trial
    started = [line for line in result.stderr.splitlines() if "started:" in line]
    assert len(started) == 3  # each trial ran once, in one of the two workers
    assert json.loads((out / "best_params.json").read_text())["trial"] in (1, 2, 3)


@pytest.mark.slow
def test_halving_by_default_reports_skipped_portfolio_entries_and_spends_the_budget(files, tmp_path):
    out = tmp_path / "out"
    space = tmp_path / "space.json"  # the RSC15 entries (100 units, lr 0.05 / 0.2) fit it; the others do not
    space.write_text(json.dumps({"layers": {"low": 64, "high": 128, "step": 32},
                                 "learning_rate": {"low": 0.02, "high": 0.2}}))
    args = ["tune", "--train", files / "train.tsv", "--valid", files / "valid.tsv", "--trials", 2, "--epochs", 1,
            "--space", space, "--fixed_params", FIXED, "--output", out, "--steps_per_call", 8]
    result = run_cli(*args, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "portfolio entry diginetica_bprmax_shared_best skipped: layers=512 is outside" in result.stderr
    assert "the portfolio gives 2 of its 7 bpr-max configuration(s): rsc15_bprmax_shared_100, " \
           "rsc15_bprmax_elu05_100" in result.stderr
    assert "successive halving: 5/1/1 evaluations per rung" in result.stderr
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["rung"] for r in rows] == ["0"] * 5 + ["1", "2"]
    assert (rows[0]["layers"], float(rows[0]["learning_rate"])) == ("100", 0.2)  # the portfolio first
    assert (rows[1]["layers"], float(rows[1]["learning_rate"])) == ("100", 0.05)
    best = json.loads((out / "best_params.json").read_text())
    assert best["trial"] == 7 and best["value"] == pytest.approx(float(rows[6]["value"]))
