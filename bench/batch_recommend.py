"""Batch recommendations (`gru4rec recommend`, Beam RunInference) against the same sessions sent to the dev server.

Two logs: the test sessions of rsc15_100k (`../shared/data/rsc15_100k/test.tsv`, the model's catalogue = the items
of `train_full.tsv`) and a synthetic log over a `--n_items` (default 100,000) item catalogue. For each, an
untrained GRU4Rec (layers=100, shared embedding: the work per session does not depend on the weights' values) is
exported, then in the same run:

* ``gru4rec recommend`` as a separate process with the DirectRunner, 1 worker (in memory) and 2 workers
  (multi-processing), `--k 20`, JSON lines; sessions/s over the job's own time (stats.json's `seconds`: reading,
  sessionising, RunInference, writing; without the ~5 s of importing TensorFlow) and over the whole command;
* the same sessions sent to the development gRPC server (`gru4rec serve`, a separate process) with
  :class:`serving.client.GRU4RecClient`, one session per request and 64 sessions per request;
* peak resident memory of each process (the command with its Beam workers, the dev server).

Every output record is checked against the `serving_default` answer for the same session computed in this process
one session at a time (all rsc15 sessions, `--check_sample` synthetic ones): item IDs equal, scores equal to
float32 rounding; the dev server's answers are checked the same way. Writes `bench/results/batch_recommend.md`.
Usage::

    .venv/bin/python bench/batch_recommend.py [--n_items 100000 --n_sessions 5000 --check_sample 500]
"""
import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS)
import numpy as np
import pandas as pd
import portpicker
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gru4rec_tf.batch.model_handler import session_inputs  # noqa: E402
from gru4rec_tf.data.synthetic import generate_sessions  # noqa: E402
from gru4rec_tf.preprocessing import session_rules  # noqa: E402
from gru4rec_tf.preprocessing.records import parse_time_us  # noqa: E402
from serving import client as client_lib  # noqa: E402

import machine as machine_lib  # noqa: E402  (bench/machine.py)
import rsc15_configs  # noqa: E402  (bench/rsc15_configs.py)
from untrained_model import export_untrained  # noqa: E402  (bench/untrained_model.py)

MODEL_NAME = "gru4rec"
K = 20


def read_sessions(path: str, sep: str) -> dict:
    """Session ID -> item IDs (text), with the preprocessing's ordering rule (time, then item ID)."""
    frame = pd.read_csv(path, sep=sep, dtype=str)
    events: dict = {}
    for sid, item, stamp in zip(frame["SessionId"], frame["ItemId"], frame["Time"], strict=True):
        events.setdefault(sid.strip(), []).append((item.strip(), parse_time_us(stamp, "unix_s")))
    return {sid: list(session_rules.make_session(sid, evs)[2]) for sid, evs in events.items()}


def run_command(export: str, log: str, output: str, beam_args: list) -> dict:
    """``gru4rec recommend`` in a child process: wall seconds, peak RSS (MB, largest process) and its stats.json."""
    cmd = [sys.executable, "-m", "gru4rec_tf", "recommend", "--model", export, "--sessions", log, "--output",
           output, "--k", str(K), "--overwrite", *beam_args]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"recommend failed ({proc.returncode}): {stderr[-3000:]}\n{stdout}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    stats = json.loads(open(os.path.join(output, "stats.json"), encoding="utf-8").read())
    return {"wall": wall, "rss_mb": max(usage.ru_maxrss, 0) / 1024, "children_rss_mb": children / 1024,
            "stats": stats}


def read_records(output: str) -> dict:
    records = {}
    for name in sorted(os.listdir(output)):
        if name.startswith("part-"):
            with open(os.path.join(output, name), encoding="utf-8") as handle:
                for line in handle:
                    record = json.loads(line)
                    records[record["session_id"]] = record
    return records


def direct_answers(export: str, sessions: dict, ids: list) -> dict:
    serve = tf.saved_model.load(export).signatures["serving_default"]
    out = {}
    for sid in ids:
        result = serve(**{n: tf.constant(v) for n, v in session_inputs([sessions[sid]], "int64", K, False).items()})
        n = int(result["num_results"][0])
        out[sid] = (result["item_ids"][0, :n].numpy().tolist(), result["scores"][0, :n].numpy())
    return out


def mismatches(answers: dict, got: dict) -> int:
    """Sessions whose item IDs differ or whose scores differ beyond float32 rounding."""
    bad = 0
    for sid, (ids, scores) in answers.items():
        got_ids, got_scores = got[sid]
        if list(got_ids) != ids or not np.allclose(np.float32(got_scores), scores, rtol=1e-6, atol=1e-7):
            bad += 1
    return bad


class DevServer:
    """``gru4rec serve`` in a subprocess; its peak RSS from /proc before it stops."""

    def __init__(self, base_path: str):
        port = portpicker.pick_unused_port()
        self.target = f"127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "gru4rec_tf", "serve", "--model_base_path", base_path,
                                      "--model_name", MODEL_NAME, "--port", str(port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if self.target not in line:
            raise RuntimeError(f"dev server did not start: {line!r}")

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status", encoding="utf-8") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM")) / 1024

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def via_server(server: DevServer, sessions: dict, ids: list, per_request: int) -> tuple:
    """Seconds to get every session's answer with ``per_request`` sessions per request; the answers."""
    answers = {}
    with client_lib.GRU4RecClient(server.target, MODEL_NAME, timeout_s=60) as client:
        client.recommend([[int(i) for i in sessions[ids[0]]]], k=K)  # connect and warm up
        started = time.perf_counter()
        for lo in range(0, len(ids), per_request):
            chunk = ids[lo:lo + per_request]
            rows = [[int(i) if i.lstrip("-").isdigit() else -1 for i in sessions[sid]] for sid in chunk]
            for sid, rec in zip(chunk, client.recommend(rows, k=K), strict=True):
                answers[sid] = (rec.item_ids, rec.scores)
        seconds = time.perf_counter() - started
    return seconds, answers


def bench_log(name: str, export: str, base: str, log: str, sessions: dict, check_ids: list, work: str) -> list:
    ids = sorted(sessions)
    answers = direct_answers(export, sessions, check_ids)
    rows = []
    for label, beam_args in (
            ("`gru4rec recommend`, DirectRunner, 1 worker", ["--runner=DirectRunner", "--direct_num_workers=1"]),
            ("`gru4rec recommend`, DirectRunner, 2 workers (multi-processing)",
             ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"])):
        out_dir = os.path.join(work, f"{name}-out")
        run = run_command(export, log, out_dir, beam_args)
        records = read_records(out_dir)
        assert len(records) == len(ids) == run["stats"]["sessions"], (len(records), len(ids))
        got = {sid: (r["item_ids"], r["scores"]) for sid, r in records.items()}
        seconds = run["stats"]["seconds"]
        rows.append({"log": name, "how": label, "sessions": len(ids), "seconds": seconds,
                     "rate": len(ids) / seconds, "wall": run["wall"], "rate_wall": len(ids) / run["wall"],
                     "rss": run["rss_mb"], "checked": len(answers), "bad": mismatches(answers, got),
                     "unknown": run["stats"]["unknown_items"]})
        print(rows[-1], flush=True)
    server = DevServer(base)
    try:
        for per_request in (1, 64):
            seconds, got = via_server(server, sessions, ids, per_request)
            rows.append({"log": name, "how": f"dev server (gRPC), {per_request} session(s) per request",
                         "sessions": len(ids), "seconds": seconds, "rate": len(ids) / seconds, "wall": None,
                         "rate_wall": None, "rss": server.peak_rss_mb(), "checked": len(answers),
                         "bad": mismatches(answers, got), "unknown": None})
            print(rows[-1], flush=True)
    finally:
        server.close()
    return rows


def write_report(path: str, rows: list, args, notes: list, started: float) -> None:
    lines = [
        "# Batch recommendations (`bench/batch_recommend.py`)", "",
        f"Machine: {machine_lib.cpu_summary()}, no GPU, Python {platform.python_version()}, TensorFlow "
        f"{tf.__version__}; shared with other jobs while it ran (figures of this run compare with each other "
        "only).", "",
        f"Command: `.venv/bin/python bench/batch_recommend.py --n_items {args.n_items} --n_sessions "
        f"{args.n_sessions} --check_sample {args.check_sample}`; measured {time.strftime('%Y-%m-%d %H:%M')} UTC, "
        f"{(time.time() - started) / 60:.1f} min in all.", "",
        *notes, "",
        "| log | how | sessions | seconds | sessions/s | whole command s (sessions/s) | peak RSS MB | checked "
        "against serving_default | mismatches |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        whole = f"{r['wall']:.1f} ({r['rate_wall']:.0f})" if r["wall"] is not None else "-"
        lines.append(f"| {r['log']} | {r['how']} | {r['sessions']:,} | {r['seconds']:.1f} | {r['rate']:.0f} | "
                     f"{whole} | {r['rss']:.0f} | {r['checked']:,} | {r['bad']} |")
    lines += [
        "",
        "*seconds*: for `gru4rec recommend`, the job's own time (stats.json: checking the input, reading and "
        "sessionising the log with the preprocessing's transforms, RunInference in batches of up to 64 sessions, "
        "writing JSON lines, publishing the directory); *whole command* adds starting Python and importing "
        "TensorFlow and Beam. For the dev server, the client's time to get every answer over loopback gRPC after "
        "the server started and one warm-up request (the server's start, ~5 s, is not counted). *peak RSS*: the "
        "largest process of the command (its Beam workers included), or the dev server process.",
        "",
        "*mismatches*: sessions whose item IDs differ from a one-session `serving_default` call in this process, or "
        "whose scores differ beyond float32 rounding (rtol 1e-6: a batch of many sessions takes another matrix "
        "kernel than a batch of one, which moves scores by an ulp or two).",
    ]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_items", type=int, default=100_000)
    parser.add_argument("--n_sessions", type=int, default=5_000)
    parser.add_argument("--check_sample", type=int, default=500)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "batch_recommend.md"))
    args = parser.parse_args()
    started = time.time()
    work = tempfile.mkdtemp(prefix="bench-batch-recommend-")
    rows, notes = [], []
    try:
        # rsc15_100k: the test sessions, the model over train_full's items
        train = pd.read_csv(os.path.join(rsc15_configs.RSC15, "train_full.tsv"), sep="\t", usecols=["ItemId"])
        items = np.unique(train["ItemId"].to_numpy(np.int64))
        base = os.path.join(work, "rsc15-models")
        export = export_untrained(base, items)
        log = os.path.join(rsc15_configs.RSC15, "test.tsv")
        sessions = read_sessions(log, "\t")
        notes.append(f"rsc15_100k: {len(sessions):,} test sessions ({sum(map(len, sessions.values())):,} events), "
                     f"catalogue of {len(items):,} items (train_full); every session checked.")
        rows += bench_log("rsc15_100k test", export, base, log, sessions, sorted(sessions), work)
        # synthetic: a 100k-item catalogue
        events = generate_sessions(n_items=args.n_items, n_sessions=args.n_sessions, mean_length=5.0, seed=7)
        log = os.path.join(work, "synthetic.csv")
        events.to_csv(log, index=False)
        items = np.arange(100_000, 100_000 + args.n_items, dtype=np.int64)  # generate_sessions' default offset
        base = os.path.join(work, "synthetic-models")
        export = export_untrained(base, items)
        sessions = read_sessions(log, ",")
        check = sorted(np.random.RandomState(0).choice(sorted(sessions), min(args.check_sample, len(sessions)),
                                                       replace=False))
        notes.append(f"synthetic: {len(sessions):,} sessions ({sum(map(len, sessions.values())):,} events, "
                     f"`generate_sessions(n_items={args.n_items}, n_sessions={args.n_sessions}, mean_length=5, "
                     f"seed=7)`), catalogue of {args.n_items:,} items; a random sample of {len(check)} sessions "
                     "checked.")
        rows += bench_log("synthetic", export, base, log, sessions, check, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notes.append("Model: untrained GRU4Rec, layers=100, shared embedding, random item biases, k=20 "
                 "(the work per session does not depend on the weights' values).")
    write_report(args.output, rows, args, notes, started)
    print(open(args.output, encoding="utf-8").read())


if __name__ == "__main__":
    main()
