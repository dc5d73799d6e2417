"""Serving load test: N concurrent clients for T seconds, dev server (gRPC) vs the in-process SavedModel.

Exports an untrained GRU4Rec with a catalogue of ``--n_items`` (default 100k) items, then for each signature
(``serving_default``: a whole session of 1..``--max_length`` events; ``step``: one event with the carried state,
sessions restarting every ``--max_length`` events) runs ``--clients`` threads for ``--seconds`` seconds:

* ``in-process``: each thread calls the loaded SavedModel's signature function directly;
* ``dev server``: each thread calls ``gru4rec serve`` (a separate process, the DEVELOPMENT server, not TF Serving)
  through :class:`serving.client.GRU4RecClient` over loopback gRPC.

One session per request (online serving). Reports requests/s, p50/p95/p99 latency and errors, and writes
``bench/results/serving.md``. Usage::

    .venv/bin/python bench/serving_load.py [--clients 4] [--seconds 10] [--n_items 100000]
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS)
import numpy as np
import portpicker
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gru4rec_tf.export import saved_model
from gru4rec_tf.model import network as model_lib  # noqa: E402  pylint: disable=wrong-import-position
from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.params import GRU4RecParams  # noqa: E402  pylint: disable=wrong-import-position
from serving import client as client_lib  # noqa: E402  pylint: disable=wrong-import-position

import machine as machine_lib  # noqa: E402  (bench/machine.py)

MODEL_NAME = "gru4rec"
SIGNATURES = ("serving_default", "step")


def export_untrained(base_path: str, n_items: int, layers: str) -> tuple:
    """``(model, export path)`` of an untrained model with integer IDs 10,000,000 + index."""
    params = GRU4RecParams.from_string(f"layers={layers},n_sample=0,constrained_embedding=True")
    model = model_lib.GRU4Rec(n_items, params, seed=0)
    vocab = ItemVocabulary(np.arange(10_000_000, 10_000_000 + n_items, dtype=np.int64))
    return model, saved_model.export_saved_model(model, vocab, os.path.join(base_path, "1"), write_warmup=False)


def scoring_only_ms(model, k: int, seconds: float = 3.0) -> float:
    """Median single-thread time of the bare full-catalogue scoring and top-k of one session (reference)."""
    top_k = tf.function(lambda h: tf.math.top_k(model.score_all(h), k))
    hidden = tf.random.normal([1, model.gru_layers[-1].units])
    times, stop = [], time.perf_counter() + seconds
    top_k(hidden)
    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        top_k(hidden)[0].numpy()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


class Workload:
    """One client's request stream: random sessions of original IDs, state carried for ``step``."""

    def __init__(self, item_ids, max_length: int, k: int, seed: int):
        self.item_ids, self.max_length, self.k = item_ids, max_length, k
        self.rng = np.random.default_rng(seed)
        self.events_left, self.state = 0, None

    def session(self):
        return list(self.rng.choice(self.item_ids, size=self.rng.integers(1, self.max_length + 1)))

    def next_event(self, state_size: int):
        if self.events_left == 0:
            self.events_left, self.state = self.max_length, np.zeros([1, state_size], np.float32)
        self.events_left -= 1
        return self.rng.choice(self.item_ids)


class InProcess:
    """Calls the SavedModel's signatures directly."""

    name = "in-process SavedModel"

    def __init__(self, path: str):
        self.functions = tf.saved_model.load(path).signatures
        self.state_size = saved_model.read_export_info(path)["state_size"]

    def call(self, signature: str, work: Workload) -> None:
        if signature == "serving_default":
            session = work.session()
            out = self.functions[signature](items=tf.constant([session], tf.int64), lengths=tf.constant([len(session)]),
                                            k=tf.constant([work.k]), exclude_seen=tf.constant([False]))
        else:
            item = work.next_event(self.state_size)
            out = self.functions[signature](items=tf.constant([item], tf.int64), state=tf.constant(work.state),
                                            k=tf.constant([work.k]), exclude=tf.constant([[-1]], tf.int64))
            work.state = out["state"].numpy()
        if int(out["num_results"][0]) != work.k:
            raise RuntimeError(f"expected {work.k} results, got {int(out['num_results'][0])}")


class DevServer:
    """Calls ``gru4rec serve`` in a subprocess over loopback gRPC with the client library (one channel each)."""

    name = "dev server (gRPC, loopback)"

    def __init__(self, base_path: str):
        port = portpicker.pick_unused_port()
        self.target = f"127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "gru4rec_tf", "serve", "--model_base_path", base_path,
                                      "--model_name", MODEL_NAME, "--port", str(port), "--max_workers", "16"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if self.target not in line:
            raise RuntimeError(f"dev server did not start: {line!r}")
        self.clients = threading.local()

    def _client(self):
        if not hasattr(self.clients, "client"):
            self.clients.client = client_lib.GRU4RecClient(self.target, MODEL_NAME, timeout_s=10)
        return self.clients.client

    def call(self, signature: str, work: Workload) -> None:
        client = self._client()
        if signature == "serving_default":
            rec = client.recommend([work.session()], k=work.k)[0]
        else:
            item = work.next_event(client.info().state_size)
            rec = client.step([item], work.state, k=work.k)[0]
            work.state = rec.state[np.newaxis]
        if len(rec.item_ids) != work.k:
            raise RuntimeError(f"expected {work.k} results, got {len(rec.item_ids)}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def run_case(target, signature: str, item_ids, args) -> dict:
    """``args.clients`` threads call ``target`` for ``args.seconds`` (after ``args.warmup`` s); latency stats."""
    latencies, errors, lock = [], [], threading.Lock()
    start = time.perf_counter()
    measure_from, stop_at = start + args.warmup, start + args.warmup + args.seconds

    def worker(seed):
        work = Workload(item_ids, args.max_length, args.k, seed)
        mine = []
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                break
            try:
                target.call(signature, work)
                if t0 >= measure_from:
                    mine.append(time.perf_counter() - t0)
            except Exception as err:  # pylint: disable=broad-except  (count, report, keep going)
                with lock:
                    errors.append(f"{type(err).__name__}: {err}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ms = np.array(latencies) * 1000.0
    return {"target": f"{target.name}, {args.clients} clients", "signature": signature, "requests": len(ms),
            "rps": len(ms) / args.seconds,
            "p50": np.percentile(ms, 50), "p95": np.percentile(ms, 95), "p99": np.percentile(ms, 99),
            "errors": len(errors), "first_error": errors[0] if errors else ""}


def machine() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    return (f"{machine_lib.cpu_summary()}, {'GPU: ' + str(gpus) if gpus else 'no GPU'}, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}")


def write_report(path: str, rows, args, export_seconds: float, scoring_ms: float) -> None:
    lines = [
        "# Serving load benchmark (`bench/serving_load.py`)", "",
        f"Machine: {machine()}. The clients, and for the dev-server rows the server process too, share these "
        "cores (the machine was also shared with other jobs).", "",
        "**The dev server is the DEVELOPMENT server (`gru4rec serve`, Python gRPC + an in-process SavedModel), not "
        "TF Serving**: no server-side batching, no GPU. These figures measure the export and the client/dev-server "
        "path on CPU; they say nothing about TF Serving on a GPU (docker and GPUs are not available here).", "",
        f"Model: untrained GRU4Rec, {args.n_items:,} items, layers={args.layers}, shared embedding; export "
        f"{export_seconds:.1f} s. Load: {args.clients} concurrent clients x {args.seconds:g} s per case (after "
        f"{args.warmup:g} s warm-up), one session per request, k={args.k}; `serving_default` sends a whole session "
        f"of 1..{args.max_length} events, `step` one event with the carried state (a new session every "
        f"{args.max_length} events). Every call is checked (k results); failures count as errors.", "",
        f"Reference without load: the bare scoring of one session (`h·W_yᵀ + b_y` over all {args.n_items:,} items "
        f"and the top-{args.k}, one caller; TensorFlow's intra-op threads use both cores) takes {scoring_ms:.1f} ms "
        "(median); the rows marked *1 client* are the whole SavedModel signatures without concurrency. Each request "
        f"reads the whole item matrix ({args.n_items * int(args.layers.split('/')[-1]) * 4 / 1e6:.0f} MB of "
        f"float32), a memory-bound matrix-vector product. With {args.clients} clients the 2 cores are saturated, so "
        "latency is about clients / throughput (Little's law) and throughput is what to compare. Server-side "
        "batching (TF Serving, `serving/batching_parameters.txt`) reads the item matrix once per batch instead of "
        "once per request; the dev server does not batch.", "",
        "| target | signature | requests | requests/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['target']} | `{r['signature']}` | {r['requests']} | {r['rps']:.1f} | {r['p50']:.2f} | "
                     f"{r['p95']:.2f} | {r['p99']:.2f} | {r['errors']} |")
    errors = [r for r in rows if r["errors"]]
    lines += [""] + [f"First error ({r['target']}, {r['signature']}): `{r['first_error']}`" for r in errors]
    lines += ["", f"Command: `.venv/bin/python bench/serving_load.py --clients {args.clients} --seconds "
              f"{args.seconds:g} --n_items {args.n_items}`", ""]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--n_items", type=int, default=100_000)
    parser.add_argument("--layers", default="100")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--max_length", type=int, default=10)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "serving.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as base:
        t0 = time.perf_counter()
        model, path = export_untrained(base, args.n_items, args.layers)
        export_seconds = time.perf_counter() - t0
        scoring_ms = scoring_only_ms(model, args.k)
        print(f"scoring only: {scoring_ms:.2f} ms", flush=True)
        item_ids = np.arange(10_000_000, 10_000_000 + args.n_items, dtype=np.int64)
        rows = []
        in_process = InProcess(path)
        alone = argparse.Namespace(**{**vars(args), "clients": 1, "seconds": min(args.seconds, 3.0), "warmup": 1.0})
        for signature in SIGNATURES:
            rows.append({**run_case(in_process, signature, item_ids, alone), "target": "in-process SavedModel, "
                         "1 client"})
            print(rows[-1], flush=True)
        for signature in SIGNATURES:
            rows.append(run_case(in_process, signature, item_ids, args))
            print(rows[-1], flush=True)
        del in_process
        server = DevServer(base)
        try:
            for signature in SIGNATURES:
                rows.append(run_case(server, signature, item_ids, args))
                print(rows[-1], flush=True)
        finally:
            server.close()
    write_report(args.output, rows, args, export_seconds, scoring_ms)
    print(f"wrote {args.output}")
    if any(r["errors"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
