"""``gru4rec pipeline run|compile`` as a user calls them (subprocesses; each pays the TFX import, ~15 s)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GRU4REC = Path(sys.executable).parent / "gru4rec"
TINY = ["--synthetic_sessions", "1500", "--synthetic_items", "200", "--min_item_support", "1", "--cutoffs", "5,20",
        "--thresholds", "recall@20=0.05", "--params",
        "loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=32,learning_rate=0.1,n_sample=64,n_epochs=1"]


def gru4rec(*args, cwd):
    return subprocess.run([str(GRU4REC), "pipeline", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.mark.slow
def test_run_with_no_data_trains_on_the_synthetic_log_and_prints_a_summary(tmp_path):
    result = gru4rec("run", "--work_dir", str(tmp_path / "work"), *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for node in ("ClickLogExampleGen", "SessionTensors", "Trainer", "SessionEvaluator", "Pusher"):
        assert f"{node} " in out and "COMPLETE" in out.split(node, 1)[1].splitlines()[0]
    assert "Recall@20" in out and "MRR@20" in out and "blessed: yes" in out
    assert "slices (candidate; no baseline; 95% bootstrap intervals over sessions):" in out  # the slice table
    assert "\n  position_1 " in out and "\n  popularity_tail " in out
    serving = tmp_path / "work" / "serving" / "gru4rec"
    assert f"pushed: {serving}{os.sep}" in out and len(os.listdir(serving)) == 1
    assert "Component Trainer is running." in result.stderr  # progress while it runs


@pytest.mark.slow
def test_run_reports_a_failing_component_with_status_1(tmp_path):
    (tmp_path / "clicks.csv").write_text("session,item,time\n1,2,3\n", encoding="utf-8")
    result = gru4rec("run", "--work_dir", str(tmp_path / "work"), "--data", str(tmp_path / "clicks.csv"), cwd=tmp_path)
    assert result.returncode == 1
    assert "ClickLogExampleGen failed: DataError:" in result.stderr and "missing column(s)" in result.stderr
    assert "pushed: no" in result.stdout


@pytest.mark.slow
def test_compile_writes_a_vertex_pipeline_spec(tmp_path):
    result = gru4rec("compile", "--output", str(tmp_path / "pipeline.json"), "--image", "example.com/gru4rec:1",
                     "--pipeline_root", "gs://bucket/root", "--trainer_gpu_type", "NVIDIA_L4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    spec = json.loads((tmp_path / "pipeline.json").read_text(encoding="utf-8"))
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    assert executors["Trainer_executor"]["container"]["resources"]["accelerator"]["type"] == "NVIDIA_L4"
    assert "wrote" in result.stdout and "SessionEvaluator" in result.stdout
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    assert tasks["ClickLogExampleGen"]["inputs"]["parameters"]["input_base"]["runtimeValue"]["constant"] == \
        "gs://bucket/root/data"


@pytest.mark.slow
def test_slice_gate_flags_out_of_range_fail_before_any_component(tmp_path):
    for flag, value, message in (("--min_slice_events", "0", "must be an integer >= 1, got 0"),
                                 ("--slice_regression_margin", "-0.1", "must be a number >= 0, got -0.1"),
                                 ("--eval_sample_sessions", "0", "must be an integer >= 1, got 0")):
        result = gru4rec("run", "--work_dir", str(tmp_path / "work"), flag, value, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == f"gru4rec pipeline: error: {flag} {message}", result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "work" / "metadata").exists()
