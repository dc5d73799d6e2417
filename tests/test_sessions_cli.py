"""``gru4rec sessions serve|event|replay`` as subprocesses against the development server (loopback): the CLI
contract (commands, flags, one JSON object / one JSON line per event), with Redis, and bad flags."""
import json
import subprocess
import sys

import pytest

import serving_testlib as lib
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from sessions_testlib import redis_server  # noqa: F401  (pytest fixture)
from serving import dev_server  # pylint: disable=g-import-not-at-top

GRU4REC = [sys.executable, "-m", "gru4rec_tf", "sessions"]
ITEMS = [int(i) for i in lib.ITEM_IDS]


def run(*args, timeout=120):
    return subprocess.run(GRU4REC + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["bogus"], "usage: gru4rec sessions serve|event|replay"),
    ([], "usage: gru4rec sessions serve|event|replay"),
    (["serve", "--store", "redis://localhost:x/0"], "Redis URL 'redis://localhost:x/0': the port must be"),
    (["serve", "--store", "sqlite"], "--store must be 'memory' or redis://HOST:PORT/DB"),
    (["event", "--session", "s"], "--item is required"),
    (["event", "--service", "nowhere", "--session", "s", "--item", "1"], "HOST:PORT"),
    (["event", "--session", "s", "--item", "x1", "--item_type", "int"], "not an integer"),
    (["replay", "--service", "127.0.0.1:1", "--events", "x.tsv"], "--events and --output are required"),
])
def test_bad_flags_end_with_one_error_line(args, message):
    proc = run(*args)
    assert proc.returncode == 1 and proc.stdout == ""
    assert message in proc.stderr.strip().splitlines()[-1], proc.stderr[-1000:]


@pytest.mark.slow
def test_serve_event_replay(tmp_path, redis_server):  # noqa: F811
    base = tmp_path / "models"
    loaded = tf.saved_model.load(lib.export_model(base, version=3))
    model_server = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=lib.free_port()).start()
    port = lib.free_port()
    serve = subprocess.Popen(GRU4REC + ["serve", "--serving", model_server.target, "--model", lib.MODEL_NAME,
                                        "--store", redis_server.url, "--ttl_s", "1800", "--port", str(port),
                                        "--max_k", "25"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
    try:
        assert f"sessions service on 127.0.0.1:{port}" in serve.stdout.readline()
        service = f"127.0.0.1:{port}"
        proc = run("event", "--service", service, "--session", "cli-1", "--item", str(ITEMS[4]), "--k", "5",
                   "--exclude_seen")
        assert proc.returncode == 0, proc.stderr[-2000:]
        (line,) = proc.stdout.strip().splitlines()
        answer = json.loads(line)
        assert set(answer) == {"session_id", "item_ids", "scores", "model_version"}
        ids, _ = lib.top(lib.run_signature(loaded, "serving_default", lib.session_inputs([[ITEMS[4]]], 5, True)))
        assert (answer["session_id"], answer["item_ids"], answer["model_version"]) == ("cli-1", ids, 3)
        log = tmp_path / "clicks.tsv"
        log.write_text("SessionId\tItemId\tTime\n" + "".join(
            f"{sid}\t{item}\t{t}\n" for sid, item, t in [(1, ITEMS[1], 5), (2, ITEMS[2], 1), (1, ITEMS[3], 6),
                                                         (2, lib.UNKNOWN, 2), (2, ITEMS[5], 3)]))
        answers = tmp_path / "answers.jsonl"
        proc = run("replay", "--service", service, "--events", str(log), "--concurrency", "2", "--output",
                   str(answers), "--k", "4")
        assert proc.returncode == 0, proc.stderr[-2000:]
        summary = json.loads(proc.stderr.strip().splitlines()[-1].split("replay: ", 1)[1])
        assert (summary["events"], summary["sessions"], summary["errors"]) == (5, 2, {})
        lines = [json.loads(x) for x in answers.read_text().splitlines()]
        by_session = {}
        for line in lines:
            by_session.setdefault(line["session_id"], []).append(line["item_id"])
            prefix = by_session[line["session_id"]]
            ids, _ = lib.top(lib.run_signature(loaded, "serving_default", lib.session_inputs([prefix], 4)))
            assert line["item_ids"] == ids
        assert by_session == {"1": [ITEMS[1], ITEMS[3]], "2": [ITEMS[2], lib.UNKNOWN, ITEMS[5]]}
    finally:
        serve.terminate()
        assert serve.wait(timeout=60) == 0
        model_server.stop()
    assert "stopped: 6 events" in serve.stdout.read()
