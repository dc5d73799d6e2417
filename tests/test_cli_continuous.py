"""``gru4rec train`` as a daily loop: --valid with early stopping, --checkpoint_dir surviving SIGKILL, --warm_start,
--tensorboard_dir, and their bad inputs (one error line, nothing written). Run as subprocesses."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from test_cli import GRU4REC, REPO_ROOT, TRAIN_PARAMS, assert_clean_failure, generate_dataset, run_cli

pytestmark = pytest.mark.slow  # the daily loop end to end: a dozen `gru4rec train` processes, a SIGKILL and resume


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("continuous")


@pytest.fixture(scope="module")
def days(workdir):
    """Two consecutive "days" of the synthetic generator (day 2 adds items) and a validation log."""
    out = generate_dataset(workdir / "data", seed=2)
    test = pd.read_csv(out / "test.tsv", sep="\t")
    sessions = test.SessionId.unique()
    test[test.SessionId.isin(sessions[::2])].to_csv(out / "valid.tsv", sep="\t", index=False)
    day2 = test[~test.SessionId.isin(sessions[::2])].copy()
    day2.loc[day2.index[::7], "ItemId"] = 999_000 + day2.index[::7] % 13  # items that day 1 never saw
    day2.to_csv(out / "day2.tsv", sep="\t", index=False)
    return out


def test_valid_early_stopping_and_metrics(days, workdir):
    metrics = workdir / "valid_metrics.json"
    result = run_cli("train", "--train", days / "train.tsv", "--valid", days / "valid.tsv", "--params",
                     TRAIN_PARAMS.replace("learning_rate=0.1", "learning_rate=0.3"), "--epochs", 6, "--patience", 1,
                     "--early_stopping_metric", "recall@5", "--metrics_json", metrics, "--seed", 3)
    assert result.returncode == 0, result.stderr
    out = json.loads(metrics.read_text())
    history = [m["recall@5"] for m in out["valid_history"]]
    assert out["epochs_run"] == len(history) == len(out["epoch_loss"]) <= 6
    assert out["best_epoch"] == history.index(max(history)) + 1
    assert "validation recall@5" in result.stderr


def _max_weight_difference(model_a, model_b) -> float:
    """Largest absolute difference between the weights of two saved models (loaded in a subprocess)."""
    code = ("import sys; import numpy as np; from gru4rec_tf.model import model_dir; "
            "a, b = (model_dir.load_model(p).model.trainable_variables for p in sys.argv[1:]); "
            "print(max(float(np.abs(x.numpy() - y.numpy()).max()) for x, y in zip(a, b)))")
    out = subprocess.run([sys.executable, "-c", code, str(model_a), str(model_b)], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=300, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def test_checkpoint_survives_sigkill_and_resumes_to_the_same_model(days, workdir):
    common = ["train", "--train", days / "train.tsv", "--test", days / "test.tsv", "--params",
              TRAIN_PARAMS + ",momentum=0.2,dropout_p_hidden=0.1", "--epochs", 3, "--seed", 4,
              "--steps_per_call", 4]
    reference = run_cli(*common, "--save_model", workdir / "ref_model", "--metrics_json", workdir / "ref.json")
    assert reference.returncode == 0, reference.stderr
    ckpt, model = workdir / "ckpt", workdir / "resumed_model"
    args = [*common, "--checkpoint_dir", ckpt, "--checkpoint_every_s", 0, "--save_model", model,
            "--metrics_json", workdir / "resumed.json"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    kills = 0
    for delay in (0.3, 1.5):  # two kills: soon after the first checkpoint, and later
        process = subprocess.Popen([str(GRU4REC), *map(str, args)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=env, cwd=REPO_ROOT)
        deadline = time.monotonic() + 240
        while not (ckpt / "checkpoint.npz").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        assert not model.exists() or kills == 0  # a killed run never left a model behind
    assert kills >= 1
    assert (ckpt / "checkpoint.npz").is_file()  # always whole: written beside it and renamed over it
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stderr
    assert sorted(p.name for p in ckpt.iterdir()) == ["checkpoint.npz"]  # a killed write's temporary file is gone
    ref, resumed = json.loads((workdir / "ref.json").read_text()), json.loads((workdir / "resumed.json").read_text())
    assert resumed["resumed_from_epoch"] > 0
    for key in ("recall@20", "mrr@20"):
        assert resumed[key] == pytest.approx(ref[key], abs=1e-6)
    assert resumed["epoch_loss"] == pytest.approx(ref["epoch_loss"], rel=1e-5)
    assert _max_weight_difference(model, workdir / "ref_model") < 1e-5


def test_warm_start_with_new_items(days, workdir):
    day1 = workdir / "day1_model"
    assert run_cli("train", "--train", days / "train.tsv", "--params", TRAIN_PARAMS, "--epochs", 1,
                   "--save_model", day1).returncode == 0
    assert (day1 / "optimizer.npz").is_file()  # --save_model keeps the optimizer state for warm starts
    metrics = workdir / "warm.json"
    result = run_cli("train", "--train", days / "day2.tsv", "--test", days / "valid.tsv", "--params",
                     TRAIN_PARAMS.replace("learning_rate=0.1", "learning_rate=0.05"), "--epochs", 1,
                     "--warm_start", day1,
                     "--save_model", workdir / "day2_model", "--metrics_json", metrics,
                     "--tensorboard_dir", workdir / "tb")
    assert result.returncode == 0, result.stderr
    report = json.loads(metrics.read_text())["warm_start"]
    day1_items = set(pd.read_csv(days / "train.tsv", sep="\t").ItemId)
    day2_items = set(pd.read_csv(days / "day2.tsv", sep="\t").ItemId)
    assert report["carried_items"] == len(day1_items)  # kept: every day-1 row carries over, seen or not
    assert report["new_items"] == len(day2_items - day1_items) > 0
    assert report["dropped_items"] == 0 and report["optimizer_state"]
    vocab = pd.read_csv(workdir / "day2_model" / "vocab.tsv", sep="\t", comment="#")
    assert len(vocab) == len(day1_items | day2_items)
    assert any(name.startswith("events.") for name in os.listdir(workdir / "tb"))

    dropped = run_cli("train", "--train", days / "day2.tsv", "--params", TRAIN_PARAMS, "--epochs", 1,
                      "--warm_start", day1, "--drop_items_unseen", "--metrics_json", workdir / "dropped.json")
    assert dropped.returncode == 0, dropped.stderr
    report = json.loads((workdir / "dropped.json").read_text())["warm_start"]
    assert report["dropped_items"] == len(day1_items - day2_items) > 0
    assert report["carried_items"] == len(day1_items & day2_items)


def test_bad_continuous_training_input(days, workdir):
    out_model, out_metrics = workdir / "never_model", workdir / "never.json"
    outputs = ["--save_model", out_model, "--metrics_json", out_metrics]
    def train_args(params=TRAIN_PARAMS):
        return ["train", "--train", days / "train.tsv", "--params", params, "--epochs", 1]

    base = train_args()
    assert_clean_failure(run_cli(*base, "--patience", 2, *outputs), "--patience needs --valid")
    assert_clean_failure(run_cli(*base, "--warm_start", workdir / "missing", *outputs),
                         "--warm_start", "is not a gru4rec_tf model directory")
    a_file = workdir / "a_file"
    a_file.write_text("x")
    assert_clean_failure(run_cli(*base, "--checkpoint_dir", a_file, *outputs),
                         "--checkpoint_dir", "is not a directory")
    unknown = workdir / "unknown_valid.tsv"
    pd.DataFrame({"SessionId": [1, 1], "ItemId": [1, 2], "Time": [0.0, 1.0]}).to_csv(unknown, sep="\t", index=False)
    assert_clean_failure(run_cli(*base, "--valid", unknown, *outputs), "unknown_valid.tsv", "no item")
    ckpt = workdir / "other_ckpt"
    assert run_cli(*base, "--checkpoint_dir", ckpt).returncode == 0
    assert_clean_failure(run_cli(*train_args(TRAIN_PARAMS.replace("n_sample=32", "n_sample=16")),
                                 "--checkpoint_dir", ckpt, *outputs),
                         "checkpoint of another run", "n_sample: 32 in the checkpoint, 16 now")
    day1 = workdir / "small_model"
    assert run_cli(*base, "--save_model", day1).returncode == 0
    assert_clean_failure(run_cli(*train_args(TRAIN_PARAMS.replace("layers=32", "layers=16")),
                                 "--warm_start", day1, *outputs), "--warm_start", "layers=[16]", "[32]")
    assert not out_model.exists() and not out_metrics.exists()


def test_compile_cache_dir_is_reused_by_the_next_run(days, workdir):
    cache, day1 = workdir / "xla_cache", workdir / "cached_day1"
    assert run_cli("train", "--train", days / "train.tsv", "--params", TRAIN_PARAMS, "--epochs", 1,
                   "--save_model", day1, "--compile_cache_dir", cache).returncode == 0
    assert any(name.startswith("xla_compile_cache") for name in os.listdir(cache))

    def warm(name):
        result = run_cli("train", "--train", days / "day2.tsv", "--params", TRAIN_PARAMS, "--epochs", 1,
                         "--warm_start", day1, "--save_model", workdir / name, "--compile_cache_dir", cache)
        assert result.returncode == 0, result.stderr
        return json.loads((workdir / name / "config.json").read_text()), sorted(os.listdir(cache))

    first, files = warm("cached_day2")
    again, files_again = warm("cached_day2_again")
    assert files_again == files  # the second process loaded every program the first one compiled
    assert again["weights_fingerprint"] == first["weights_fingerprint"]
    vocab = pd.read_csv(workdir / "cached_day2" / "vocab.tsv", sep="\t", comment="#")
    assert first["n_items"] == len(vocab)  # the saved model has the real catalogue, not the padded tables
