"""The live-session service (`gru4rec sessions serve`) against calling `step` directly, in the same run.

rsc15_100k's test sessions (`../shared/data/rsc15_100k/test.tsv`, the first `--max_sessions` by first event; the
model's catalogue = the items of `train_full.tsv`) are replayed as live events, in time order, `--concurrency`
sessions at a time, through:

* `step` called directly with :class:`serving.client.GRU4RecClient` (the state carried in the caller: the floor
  the service adds to);
* the session service (`gru4rec sessions serve`, separate processes, HTTP/JSON) with the memory store, one process;
* the session service with Redis (a `redis-server` started here), one process and two processes on one Redis (each
  event of a session goes to the other process than the one before, so every event reads the state the other
  process wrote).

All against one development gRPC server (`gru4rec serve`, a separate process) serving an untrained GRU4Rec
(layers=100, shared embedding: the work per event does not depend on the weights' values). Reported per setting:
events/s, p50/p99 latency per event seen by the caller, and what the service adds at p50/p99 over calling `step`
directly at the same concurrency. Every answer is checked against the `serving_default` answer for the same session
prefix computed in this process (item IDs and scores equal; none lost). Memory per live session: the store's
growth for `--memory_sessions` live sessions of the test set (Redis's `used_memory`; the memory store's Python
allocations, tracemalloc). Writes `bench/results/session_service.md`. Usage::

    .venv/bin/python bench/session_service.py [--max_sessions 500 --concurrency 1,8,64]
"""
import argparse
import itertools
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS)
import numpy as np
import pandas as pd
import portpicker
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from serving import client as client_lib  # noqa: E402
from serving.sessions import http_service  # noqa: E402
from serving.sessions import replay as replay_lib  # noqa: E402
from serving.sessions import store as store_lib  # noqa: E402

import machine as machine_lib  # noqa: E402  (bench/machine.py)
import rsc15_configs  # noqa: E402  (bench/rsc15_configs.py)
from untrained_model import export_untrained  # noqa: E402  (bench/untrained_model.py)

MODEL_NAME = "gru4rec"
K = 20


class Process:
    """A command in a subprocess that prints a line containing ``ready`` once it listens (or, with ``ready`` None,
    a redis-server answering PING)."""

    def __init__(self, args: list, ready: str | None):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE if ready else subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, text=True)
        if ready is None:
            import redis  # pylint: disable=g-import-not-at-top
            client = redis.Redis(port=int(args[args.index("--port") + 1]))
            for _ in range(300):
                try:
                    client.ping()
                    return
                except redis.exceptions.ConnectionError:
                    time.sleep(0.1)
            raise RuntimeError("redis-server did not answer PING")
        line = self.proc.stdout.readline()
        if ready not in line:
            self.close()
            raise RuntimeError(f"{args[:4]} did not start: {line!r}")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status", encoding="utf-8") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS")) / 1024

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def gru4rec(*args) -> list:
    return [sys.executable, "-m", "gru4rec_tf", *args]


def references(export: str, sessions: list) -> dict:
    """``(session_id, n) -> (item_ids, scores)`` of serving_default on each session's first n events."""
    serve = tf.saved_model.load(export).signatures["serving_default"]
    out = {}
    for sid, items in sessions:
        for n in range(1, len(items) + 1):
            result = serve(items=tf.constant([items[:n]], tf.int64), lengths=tf.constant([n], tf.int32),
                           k=tf.constant([K], tf.int32), exclude_seen=tf.constant([False]))
            m = int(result["num_results"][0])
            out[sid, n] = (result["item_ids"][0, :m].numpy().tolist(), result["scores"][0, :m].numpy().tolist())
    return out


class Collector:
    """Answers of a run as ``(session_id, n) -> (item_ids, scores)``, in each session's event order."""

    def __init__(self):
        self.answers, self._count, self._lock = {}, {}, threading.Lock()

    def write(self, line: str) -> None:
        record = json.loads(line)
        with self._lock:
            n = self._count[record["session_id"]] = self._count.get(record["session_id"], 0) + 1
            self.answers[record["session_id"], n] = (record.get("item_ids"), record.get("scores"))


def check(answers: dict, expected: dict) -> tuple:
    """``(equal, differing, lost)`` against the references."""
    equal = sum(1 for key, value in expected.items() if answers.get(key) == value)
    lost = sum(1 for key in expected if key not in answers or answers[key][0] is None)
    return equal, len(expected) - equal - lost, lost


class RoundRobin:
    """Sends each event to the next service process (consecutive events of a session alternate processes)."""

    def __init__(self, clients: list):
        self.clients, self._next = clients, itertools.count()

    def event(self, session_id, item_id, k=None, exclude_seen=None):
        return self.clients[next(self._next) % len(self.clients)].event(session_id, item_id, k, exclude_seen)

    def end(self, session_id):
        return self.clients[0].end(session_id)


def run_direct(target: str, sessions: list, concurrency: int) -> tuple:
    """``step`` called directly, the state carried here: ``(ReplaySummary, answers)``."""
    work = queue.Queue()
    for session in sessions:
        work.put(session)
    answers, latencies, lock = {}, [], threading.Lock()
    client = client_lib.GRU4RecClient(target, MODEL_NAME, timeout_s=60)
    client.info()

    def worker():
        while True:
            try:
                sid, items = work.get_nowait()
            except queue.Empty:
                return
            session = client.session(k=K)
            for n, item in enumerate(items, 1):
                t0 = time.perf_counter()
                rec = session.add(item)
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    answers[sid, n] = (rec.item_ids, rec.scores)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary = replay_lib.ReplaySummary(len(sessions), len(latencies), {}, time.perf_counter() - start, latencies)
    client.close()
    return summary, answers


def run_service(client, sessions: list, concurrency: int) -> tuple:
    collector = Collector()
    summary = replay_lib.replay(client, sessions, concurrency, collector, k=K, log=None)
    return summary, collector.answers


def memory_per_session(sessions: list, redis_url: str, state_size: int, n: int) -> dict:
    """Bytes per live session: Redis's used_memory growth and the memory store's Python allocations."""
    import redis  # pylint: disable=g-import-not-at-top
    rng = np.random.RandomState(0)
    chosen = [sessions[i % len(sessions)] for i in range(n)]
    records = [store_lib.SessionRecord(MODEL_NAME, 1, rng.normal(size=state_size).astype(np.float32), list(items),
                                       time.time(), len(items)) for _, items in chosen]
    raw = redis.Redis.from_url(redis_url)
    raw.flushall()
    before = raw.info("memory")["used_memory"]
    store = store_lib.RedisStore(redis_url, prefix="mem")
    for i, record in enumerate(records):
        store.compare_and_set(MODEL_NAME, f"live-{i}", 0, record, 3600)
    redis_bytes = (raw.info("memory")["used_memory"] - before) / n
    key_bytes = np.mean([store.memory_usage(MODEL_NAME, f"live-{i}") for i in range(0, n, max(1, n // 100))])
    raw.flushall()
    memory = store_lib.MemoryStore()
    tracemalloc.start()
    snapshot = tracemalloc.take_snapshot()
    for i, record in enumerate(records):
        memory.compare_and_set(MODEL_NAME, f"live-{i}", 0, record, 3600)
    grown = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(snapshot, "filename"))
    tracemalloc.stop()
    return {"n": n, "redis_used_memory": redis_bytes, "redis_memory_usage_key": float(key_bytes),
            "memory_store": grown / n, "encoded": float(np.mean([len(r.encode()) for r in records])),
            "mean_items": float(np.mean([len(r.items) for r in records]))}


def percentile_ms(latencies, q) -> float:
    return replay_lib.percentile(latencies, q) * 1e3


def write_report(path: str, args, rows: list, memory: dict, notes: list, started: float, n_events: int) -> None:
    direct = {r["concurrency"]: r for r in rows if r["setting"].startswith("`step` directly")}
    lines = [
        "# Live-session service (`bench/session_service.py`)", "",
        f"Machine: {machine_lib.cpu_summary()}, no GPU, Python {platform.python_version()}, TensorFlow "
        f"{tf.__version__}, redis-server {args.redis_version}; every process (dev server, service processes, "
        "redis-server and the 64 client threads) on these 2 cores, shared with other jobs while it ran (figures of "
        "this run compare with each other only).", "",
        f"Command: `.venv/bin/python bench/session_service.py --max_sessions {args.max_sessions} --concurrency "
        f"{args.concurrency}`; measured {time.strftime('%Y-%m-%d %H:%M')} UTC, {(time.time() - started) / 60:.1f} "
        "min in all.", "",
        *notes, "",
        "| setting | concurrent sessions | events | events/s | p50 ms | p99 ms | added p50 ms | added p99 ms | "
        "answers equal to serving_default | differing | lost |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = direct.get(r["concurrency"])
        added = ("-", "-") if r is base or base is None else (
            f"{r['p50'] - base['p50']:+.2f}", f"{r['p99'] - base['p99']:+.2f}")
        lines.append(f"| {r['setting']} | {r['concurrency']} | {r['events']:,} | {r['rate']:.0f} | {r['p50']:.2f} | "
                     f"{r['p99']:.2f} | {added[0]} | {added[1]} | {r['equal']:,} / {n_events:,} | {r['differing']} "
                     f"| {r['lost']} |")
    lines += [
        "",
        "*p50/p99*: latency of one event as the caller sees it (the replay's client threads: HTTP/JSON to the "
        "service, which reads the session from the store, calls `step` of the pinned version over gRPC and writes "
        "the session back by compare-and-set; or the direct `step` call). *added*: the setting's figure minus "
        "`step` directly at the same concurrency, in the same run. *equal*: answers whose item IDs and scores equal "
        "the in-process `serving_default` answer for the same session prefix; *lost*: events without an answer.",
        "",
        f"Memory per live session ({memory['n']:,} live sessions of the test set, {memory['mean_items']:.1f} items "
        f"on average, state of 100 floats; encoded record {memory['encoded']:.0f} bytes): Redis "
        f"{memory['redis_used_memory']:.0f} bytes (`used_memory` growth; `MEMORY USAGE` of a key "
        f"{memory['redis_memory_usage_key']:.0f}), memory store {memory['memory_store']:.0f} bytes (Python "
        "allocations, tracemalloc). A session holds at most `--max_items` (200) items: about 8 more bytes per item "
        "in the encoded record.",
    ]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def row(setting: str, concurrency: int, summary, answers: dict, expected: dict) -> dict:
    equal, differing, lost = check(answers, expected)
    result = {"setting": setting, "concurrency": concurrency, "events": summary.events, "rate": summary.events_per_s,
              "p50": percentile_ms(summary.latencies, 50), "p99": percentile_ms(summary.latencies, 99),
              "equal": equal, "differing": differing, "lost": lost, "errors": summary.errors}
    print(f"{setting}, {concurrency} sessions: {summary.events} events, {result['rate']:.0f} events/s, p50 "
          f"{result['p50']:.2f} ms, p99 {result['p99']:.2f} ms, equal {equal}, differing {differing}, lost {lost}",
          flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_sessions", type=int, default=500, help="test sessions replayed (by first event)")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--memory_sessions", type=int, default=2000)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "session_service.md"))
    args = parser.parse_args()
    started = time.time()
    levels = [int(c) for c in args.concurrency.split(",")]
    data = rsc15_configs.RSC15
    train = pd.read_csv(os.path.join(data, "train_full.tsv"), sep="\t")
    item_ids = np.unique(train["ItemId"].to_numpy(np.int64))
    test = pd.read_csv(os.path.join(data, "test.tsv"), sep="\t")
    sessions = replay_lib.sessions_from_events(test, args.max_sessions)
    args.all_sessions = test["SessionId"].nunique()
    n_events = sum(len(items) for _, items in sessions)
    print(f"{len(sessions)} sessions, {n_events} events; catalogue {len(item_ids)} items", flush=True)
    work = tempfile.mkdtemp(prefix="session-bench-")
    processes = []
    try:
        export = export_untrained(os.path.join(work, "models"), item_ids)
        expected = references(export, sessions)
        print(f"references: {len(expected)} prefixes ({time.time() - started:.0f} s)", flush=True)
        model_port = portpicker.pick_unused_port()
        processes.append(Process(gru4rec("serve", "--model_base_path", os.path.join(work, "models"),
                                         "--port", str(model_port)), f"127.0.0.1:{model_port}"))
        target = f"127.0.0.1:{model_port}"
        redis_port = portpicker.pick_unused_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        processes.append(Process([shutil.which("redis-server"), "--port", str(redis_port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no"], None))
        args.redis_version = subprocess.run([shutil.which("redis-server"), "--version"], capture_output=True,
                                            text=True).stdout.split()[2].removeprefix("v=")
        services = {}
        for name, store in (("memory", "memory"), ("redis-a", redis_url), ("redis-b", redis_url)):
            port = portpicker.pick_unused_port()
            processes.append(Process(gru4rec("sessions", "serve", "--serving", target, "--store", store,
                                             "--port", str(port)), "sessions service on"))
            services[name] = http_service.SessionServiceClient(f"127.0.0.1:{port}", timeout_s=60)
        print(f"processes started ({time.time() - started:.0f} s)", flush=True)
        warm = sessions[:4]
        run_direct(target, warm, 1)
        for client in services.values():
            run_service(client, [(f"warm-{sid}", items) for sid, items in warm], 1)
        settings = [("`step` directly (gRPC, state in the caller)", None),
                    ("service, memory store, 1 process", services["memory"]),
                    ("service, Redis, 1 process", services["redis-a"]),
                    ("service, Redis, 2 processes (events alternate)", RoundRobin([services["redis-a"],
                                                                                   services["redis-b"]]))]
        rows = []
        for concurrency in levels:
            for setting, client in settings:
                if client is None:
                    summary, answers = run_direct(target, sessions, concurrency)
                else:
                    summary, answers = run_service(client, sessions, concurrency)
                rows.append(row(setting, concurrency, summary, answers, expected))
        memory = memory_per_session(sessions, redis_url, 100, args.memory_sessions)
        print(f"memory per live session: {memory}", flush=True)
        rss = {name: proc.rss_mb() for name, proc in zip(("dev server", "redis", "memory", "redis-a", "redis-b"),
                                                          processes, strict=True)}
    finally:
        for proc in reversed(processes):
            proc.close()
        shutil.rmtree(work, ignore_errors=True)
    notes = [
        f"Data: the first {len(sessions):,} of rsc15_100k's {args.all_sessions:,} test sessions by first event "
        f"({n_events:,} events, a subset so that the run stays at a few minutes: the whole set would take "
        f"{args.all_sessions / len(sessions):.1f} times as long in every setting), each replayed from its first "
        "event in time order, `k` 20. With 8 and 64 concurrent sessions the 2 cores are saturated by the dev "
        "server, the service processes and the client threads together, so latency there is mostly queueing for a "
        "core. Resident memory at the end: "
        + ", ".join(f"{name} {mb:.0f} MB" for name, mb in rss.items()) + ".",
    ]
    bad = [r for r in rows if r["errors"]]
    if bad:
        notes.append(f"Errors: {[(r['setting'], r['concurrency'], r['errors']) for r in bad]}.")
    write_report(args.output, args, rows, memory, notes, started, n_events)
    print(f"wrote {args.output} ({(time.time() - started) / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
