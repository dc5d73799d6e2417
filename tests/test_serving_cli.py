"""``gru4rec serve`` and ``gru4rec predict`` as subprocesses on loopback (one JSON object on stdout)."""
import json
import subprocess
import sys
import time

import pytest

import serving_testlib as lib

GRU4REC = [sys.executable, "-m", "gru4rec_tf"]


@pytest.fixture(scope="module")
def server_target(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    lib.export_model(base, version=2)
    port = lib.free_port()
    proc = subprocess.Popen(GRU4REC + ["serve", "--model_base_path", str(base), "--model_name", lib.MODEL_NAME,
                                       "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    line = proc.stdout.readline()  # printed once the server is listening
    assert f"on 127.0.0.1:{port}" in line, line
    yield f"127.0.0.1:{port}"
    proc.terminate()
    assert proc.wait(timeout=120) == 0  # a graceful stop; a loaded machine needs more than seconds


def predict_cli(*args):
    return subprocess.Popen(GRU4REC + ["predict", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_predict_prints_one_json_object(server_target):
    items = f"{lib.ITEM_IDS[4]},{lib.UNKNOWN},{lib.ITEM_IDS[11]}"
    common = ["--server", server_target, "--model", lib.MODEL_NAME, "--items", items, "--k", "7"]
    # both modes in parallel (each subprocess imports TensorFlow)
    session, step = predict_cli(*common), predict_cli(*common, "--mode", "step")
    outputs = []
    for proc in (session, step):
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr[-2000:]
        lines = stdout.strip().splitlines()
        assert len(lines) == 1
        outputs.append(json.loads(lines[0]))
    for out in outputs:
        assert len(out["item_ids"]) == len(out["scores"]) == 7
        assert all(isinstance(i, int) for i in out["item_ids"])
        assert out["scores"] == sorted(out["scores"], reverse=True)
        assert out["num_unknown"] == 1 and out["version"] == 2
    assert outputs[0]["item_ids"] == outputs[1]["item_ids"]
    assert outputs[0]["signature"] == "serving_default" and outputs[1]["signature"] == "step"


@pytest.mark.slow
def test_predict_unavailable_server_fails_cleanly():
    start = time.monotonic()
    proc = predict_cli("--server", f"127.0.0.1:{lib.free_port()}", "--items", "1", "--attempts", "2",
                       "--timeout", "1")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and stdout == ""
    assert "UNAVAILABLE after 2 attempt(s)" in stderr
    assert time.monotonic() - start < 120
