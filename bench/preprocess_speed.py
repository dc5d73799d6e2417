"""Preprocessing speed: the Beam pipeline on a local runner vs the in-memory pandas reference, same input.

Generates a synthetic click log (``gru4rec_tf.data.synthetic``, default 1M sessions ~ 5M events) as CSV in a temporary
directory, runs ``gru4rec_tf.preprocessing.build_and_run`` with each requested local runner configuration and
``pandas_reference`` (read + preprocess) on it, checks that both give the same split sizes, prints events/second
and writes ``bench/results/preprocess_speed.md``.

    .venv/bin/python bench/preprocess_speed.py                     # ~5M events, in-memory + 2-worker FnApiRunner
    .venv/bin/python bench/preprocess_speed.py --n_sessions 20000  # a quick smoke run
"""
import argparse
import datetime
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the pandas reference is a test helper, not shipped

import gru4rec_tf  # noqa: E402,F401  (TF_USE_LEGACY_KERAS first)
from gru4rec_tf.preprocessing import PreprocessOptions, build_and_run  # noqa: E402
from pandas_reference import preprocess_pandas, read_click_log_pandas  # noqa: E402
from gru4rec_tf.data.synthetic import generate_sessions  # noqa: E402

RUNNERS = {
    "fnapi-in-memory": ["--runner=FnApiRunner", "--direct_running_mode=in_memory"],
    "fnapi-2-processes": ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                          "--direct_num_workers=2"],
}


def _options(path: str, output: str, rounds: int) -> PreprocessOptions:
    """The 2023 recipe of spec §7 (dedupe, iterate filters, support 5, 1-day test and valid splits)."""
    return PreprocessOptions(input=path, output=output, dedupe_consecutive=True, iterate_filters=True,
                             max_filter_rounds=rounds, min_item_support=5, test_days=1, valid_days=1)


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n_sessions", type=int, default=1_000_000)
    parser.add_argument("--n_items", type=int, default=50_000)
    parser.add_argument("--max_filter_rounds", type=int, default=20)
    parser.add_argument("--runners", default=",".join(RUNNERS), help=f"comma-separated, of {list(RUNNERS)}")
    parser.add_argument("--results", default=str(REPO_ROOT / "bench" / "results" / "preprocess_speed.md"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="preprocess_speed_"))
    try:
        started = time.time()
        events = generate_sessions(n_items=args.n_items, n_sessions=args.n_sessions, mean_length=5.0, seed=0)
        csv_path = work / "clicks.csv"
        events.to_csv(csv_path, index=False)
        n_events = len(events)
        del events
        print(f"wrote {n_events:,} events ({csv_path.stat().st_size / 2**20:.0f} MiB) in {time.time() - started:.0f} s",
              flush=True)

        rows = []
        started = time.time()
        opts = _options(str(csv_path), str(work / "unused"), args.max_filter_rounds)
        reference = preprocess_pandas(read_click_log_pandas(opts).events, opts)
        seconds = time.time() - started
        ref_sizes = {k: len(v) for k, v in reference.items() if not k.startswith("_")}
        del reference
        rows.append(("pandas reference (read + preprocess, 1 process)", seconds, ref_sizes))
        print(f"pandas: {seconds:.1f} s, {n_events / seconds:,.0f} events/s, peak RSS {_peak_rss_gib():.1f} GiB",
              flush=True)

        for name in args.runners.split(","):
            output = work / f"out_{name}"
            started = time.time()
            stats = build_and_run(_options(str(csv_path), str(output), args.max_filter_rounds), RUNNERS[name])
            seconds = time.time() - started
            sizes = {k: stats[k]["events"] for k in ref_sizes}
            if sizes != ref_sizes:
                raise SystemExit(f"{name}: split sizes {sizes} differ from the pandas reference {ref_sizes}")
            rows.append((f"Beam {name} ({' '.join(RUNNERS[name])})", seconds, sizes))
            print(f"{name}: {seconds:.1f} s, {n_events / seconds:,.0f} events/s", flush=True)
            shutil.rmtree(output, ignore_errors=True)
        _write_results(Path(args.results), args, n_events, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_results(path: Path, args, n_events: int, rows) -> None:
    sizes = rows[0][2]
    lines = [
        "# Preprocessing speed: Beam pipeline (local runners) vs pandas reference",
        "",
        f"Written by `bench/preprocess_speed.py` on {datetime.date.today().isoformat()}. Machine: "
        f"{os.cpu_count()} CPU cores (shared with other jobs while this ran), {platform.python_version()} Python, "
        f"apache-beam {__import__('apache_beam').__version__}.",
        "",
        f"Input: synthetic click log (`gru4rec_tf.data.synthetic.generate_sessions`, {args.n_sessions:,} sessions, "
        f"{args.n_items:,} items, seed 0) as one CSV: **{n_events:,} events**. Options: the 2023 recipe of spec §7 "
        f"(dedupe consecutive repeats, iterate the filters (the pipeline unrolls {args.max_filter_rounds} rounds), "
        "min item support 5, min session length 2, test = sessions starting in the last day, valid = the same on "
        f"train). Output split sizes (events): {sizes}; Beam and pandas agree.",
        "",
        "| implementation | wall time (s) | events / s |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {seconds:.1f} | {n_events / seconds:,.0f} |" for name, seconds, _ in rows]
    ratios = ", ".join(f"{seconds / rows[0][1]:.1f}x" for _, seconds, _ in rows[1:])
    lines += [
        "",
        f"Load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; all rows come from "
        "the same run, so their ratios are comparable even though other jobs shared the machine.",
        "",
        "Wall times include reading the CSV, Beam's pipeline construction and worker start-up and writing the "
        f"TFRecord output (Beam) or nothing (pandas keeps the frames in memory). The local Beam runners take "
        f"{ratios} the pandas time: they run Python transforms per element in one or two processes, where pandas "
        "runs vectorised code. The pandas reference is bounded by one machine's memory; the Beam pipeline runs "
        "unchanged on distributed runners (Dataflow, Flink, Spark), where throughput scales with the workers.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
