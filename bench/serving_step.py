"""The `step` and `serving_default` signatures in-process against their arithmetic floor (issue 12, serving).

Exports untrained GRU4Rec models (layers=100, shared embedding, integer IDs; ``bench/serving_load.py``'s
``export_untrained``) with ``--n_items`` catalogues, loads them with ``tf.saved_model.load`` in this process and, per
batch size, times in alternating rounds (so that the shared machine's noise hits every variant alike):

* ``step`` (k=20, no exclusions), ``step`` with ``--n_exclude`` excluded IDs per session, ``serving_default``
  (sessions of ``--session_length`` events, ``exclude_seen`` off);
* the floor: the bare ``tf.matmul(hidden [B, 100], W [n_items, 100], transpose_b=True) + b`` in a ``tf.function``
  at that shape, and NumPy's sgemm at that shape for reference.

With ``--baseline_src DIR`` (a checkout of an earlier commit, e.g. a git worktree) the same models are also exported
by that code in a subprocess and timed in the same rounds ("before" rows). Reports median ms per call, the ratio to
the same round's TensorFlow floor, peak RSS (``resource.getrusage``) and the SavedModel size; writes
``bench/results/serving_step.md``. TensorFlow intra-/inter-op threads = ``--threads``. Usage::

    PYTHONPATH=. .venv/bin/python bench/serving_step.py [--baseline_src /path/to/old/checkout]
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS)
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine as machine_lib  # noqa: E402  (bench/machine.py)
from serving_load import export_untrained  # noqa: E402

ID0 = 10_000_000  # export_untrained's first item ID


def rss_mb() -> tuple:
    """(current, peak) resident set size of this process in MB."""
    with open("/proc/self/status", encoding="utf-8") as f:
        current = next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files) / 1e6


def export_baseline(src: str, base: str, n_items: int, layers: str) -> str:
    """Exports the same untrained model with the code in ``src`` (a subprocess with ``PYTHONPATH=src``)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1] + '/bench'); from serving_load import export_untrained; "
            "print(export_untrained(sys.argv[2], int(sys.argv[3]), sys.argv[4])[1])")
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", code, src, base, str(n_items), layers], env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def make_cases(signatures: dict, weights: tuple, batch: int, args, rng) -> dict:
    """Name → zero-argument callable (returns once the outputs are in host memory): the TensorFlow cases, and
    NumPy's sgemm apart."""
    w, b = weights
    n_items = w.shape[0]
    ids = lambda *shape: tf.constant(rng.integers(ID0, ID0 + n_items, shape), tf.int64)  # noqa: E731
    items, state = ids(batch), tf.constant(rng.normal(0, 0.3, [batch, args.units]).astype(np.float32))
    k = tf.constant([args.k] * batch)
    no_exclude, exclude = tf.constant([[-1]] * batch, tf.int64), ids(batch, args.n_exclude)
    sessions, lengths = ids(batch, args.session_length), tf.constant([args.session_length] * batch)
    seen = tf.constant([False] * batch)
    w_t, b_t = tf.constant(w), tf.constant(b)
    # The row maxima are fetched, not the [B, n_items] scores: copying those out to NumPy is memory traffic that
    # no signature pays (each returns its top k only), so it would inflate the floor.
    floor = tf.function(lambda h: tf.reduce_max(tf.matmul(h, w_t, transpose_b=True) + b_t, axis=1))
    hidden, h_np = state, state.numpy()
    cases = {"floor: tf.matmul + b": lambda: floor(hidden).numpy()}
    for label, sig in signatures.items():
        step, session = sig["step"], sig["serving_default"]
        cases[f"{label} step"] = lambda s=step: s(items=items, state=state, k=k, exclude=no_exclude)["item_ids"].numpy()
        cases[f"{label} step, {args.n_exclude} excluded"] = \
            lambda s=step: s(items=items, state=state, k=k, exclude=exclude)["item_ids"].numpy()
        cases[f"{label} serving_default"] = lambda s=session: s(items=sessions, lengths=lengths, k=k,
                                                               exclude_seen=seen)["item_ids"].numpy()
    return cases, {"floor: NumPy sgemm + b": lambda: (h_np @ w.T + b).max(axis=1)}


def time_rounds(cases: dict, seconds: float, min_calls: int) -> dict:
    """Median ms per call of each case, the cases alternating in rounds, after one warm-up call each."""
    for call in cases.values():
        call()
    times = {name: [] for name in cases}
    start = time.perf_counter()
    while time.perf_counter() - start < seconds * len(cases) or min(len(t) for t in times.values()) < min_calls:
        for name, call in cases.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t) * 1000.0) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_items", default="100000,1000000")
    parser.add_argument("--batches", default="1,8,32,128")
    parser.add_argument("--batches_large", default="1,32,128", help="batch sizes for catalogues over 500k items")
    parser.add_argument("--layers", default="100")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--n_exclude", type=int, default=10)
    parser.add_argument("--session_length", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.6, help="per case and batch size")
    parser.add_argument("--min_calls", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline_src", default=None, help="source tree of the 'before' export code")
    parser.add_argument("--baseline_label", default="before")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "serving_step.md"))
    args = parser.parse_args()
    args.units = int(args.layers.split("/")[-1])
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    rng = np.random.default_rng(0)
    rows, notes, t_start = [], [], time.perf_counter()
    for n_items in [int(n) for n in args.n_items.split(",")]:
        with tempfile.TemporaryDirectory() as base:
            t0 = time.perf_counter()
            model, path = export_untrained(os.path.join(base, "after"), n_items, args.layers)
            paths = {"after": path}
            if args.baseline_src:
                paths[args.baseline_label] = export_baseline(args.baseline_src, os.path.join(base, "before"),
                                                             n_items, args.layers)
            weights = (model.item_vectors.numpy(), model.item_bias.numpy())
            del model
            print(f"{n_items:,} items: exported in {time.perf_counter() - t0:.1f} s", flush=True)
            signatures, rss_before = {}, rss_mb()[0]
            for label, p in paths.items():
                signatures[label] = tf.saved_model.load(p).signatures
                notes.append(f"{n_items:,} items, {label}: SavedModel {dir_mb(p):.1f} MB on disk")
            notes.append(f"{n_items:,} items: loading {len(paths)} SavedModel(s) added "
                         f"{rss_mb()[0] - rss_before:.0f} MB of RSS")
            batches = args.batches if n_items <= 500_000 else args.batches_large
            for batch in [int(b) for b in batches.split(",")]:
                cases, numpy_case = make_cases(signatures, weights, batch, args, rng)
                ms = time_rounds(cases, args.seconds, args.min_calls)
                # Alone, after the others: OpenBLAS's threads spin after a call and would slow the next case down.
                ms.update(time_rounds(numpy_case, args.seconds, args.min_calls))
                floor = ms["floor: tf.matmul + b"]
                for name, value in ms.items():
                    rows.append((n_items, batch, name, value, value / floor))
                current, peak = rss_mb()
                print(f"  B={batch}: " + ", ".join(f"{n} {v:.2f}" for n, v in ms.items()) +
                      f" ms; RSS {current:.0f} MB (peak {peak:.0f}) [{time.perf_counter() - t_start:.0f} s]",
                      flush=True)
            del signatures
    write_report(args, rows, notes)
    print(f"wrote {args.output}")


def write_report(args, rows, notes) -> None:
    gflop = lambda n, b: 2.0 * n * b * args.units / 1e9  # noqa: E731
    lines = [
        "# `step` and `serving_default` against the arithmetic floor (`bench/serving_step.py`)", "",
        f"Machine: {machine_lib.cpu_summary()}, TensorFlow {tf.__version__}, intra-/inter-op threads = "
        f"{args.threads}. The machine was shared with other jobs while this ran: absolute times are noisy; the "
        "variants alternate in rounds within one process, so compare ratios within a row group.", "",
        f"Untrained GRU4Rec, layers={args.layers}, shared embedding, integer IDs, k={args.k}; `step` without "
        f"exclusions and with {args.n_exclude} random excluded IDs per session; `serving_default` with sessions of "
        f"{args.session_length} events. Floor = `tf.matmul(hidden [B, {args.units}], W [n_items, {args.units}], "
        "transpose_b=True) + b` and its row maxima in a `tf.function` (constants, same process, same rounds; only "
        "the maxima are fetched, as the signatures fetch only their top k); *ratio* = ms / floor. Median ms per call "
        "(outputs fetched to host)." +
        (f" *{args.baseline_label}*: the same models exported by the code in `{args.baseline_src}` (the starting "
         "commit), loaded in the same process; *after*: this tree." if args.baseline_src else ""), "",
        "| items | batch | GFLOP | case | ms per call | ratio to floor |", "|---:|---:|---:|---|---:|---:|"]
    for n_items, batch, name, ms, ratio in rows:
        lines.append(f"| {n_items:,} | {batch} | {gflop(n_items, batch):.3f} | {name} | {ms:.2f} | {ratio:.2f} |")
    _, peak = rss_mb()
    lines += ["", "Memory: " + "; ".join(notes) + f". Peak RSS of the whole run {peak:.0f} MB (every model above, "
              "the float32 item matrices copied for the floor, TensorFlow itself).", "",
              "Command: `PYTHONPATH=. .venv/bin/python bench/serving_step.py" +
              (f" --baseline_src {args.baseline_src}`" if args.baseline_src else "`"), ""]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
