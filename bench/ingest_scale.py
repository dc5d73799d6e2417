"""The main job at scale (issue #27): `gru4rec pipeline run` on the built-in generator's data at several sizes.

For each size (events; sessions = events / 5, the generator's mean session length): writes the synthetic click log
once (cached under ``--work``, outside the timed command), runs the whole main job as a fresh pipeline (own work
directory, the data file hard-linked into it; Beam options: the command's defaults unless ``--beam_args``), and
records each component's seconds
(the run summary), the ingestion rate (events / (ClickLogExampleGen + SessionTensors seconds)), the command's wall
time and peak memory (sum of the RSS of its process tree, polled every 0.2 s; Beam workers included); then, in the
same run, a pandas script doing the same reading and cleaning on the same file in one process (the pandas reference
of the tests: read, parse, sessions, filters, time splits; its seconds, events/s and peak RSS); and the split sizes
of both, which must agree. Writes ``bench/results/ingest_scale.md`` and a plot of time and memory against events.

    flock /tmp/gru4rec-bench.lock .venv/bin/python bench/ingest_scale.py                       # 1M, 5M, 20M
    flock /tmp/gru4rec-bench.lock .venv/bin/python bench/ingest_scale.py --events 1000000       # one size
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

INGESTION = ("ClickLogExampleGen", "SessionTensors")
PANDAS_SCRIPT = r"""
import json, resource, sys, time
sys.path[:0] = [sys.argv[2], sys.argv[2] + "/tests"]
from pandas_reference import preprocess_pandas, read_click_log_pandas
from tfx_pipeline.options import IngestOptions, SessionOptions, preprocess_options
options = preprocess_options(IngestOptions(), SessionOptions(), input=sys.argv[1], output="unused")
started = time.time()
raw = read_click_log_pandas(options)
read_s = time.time() - started
splits = preprocess_pandas(raw.events, options)
seconds = time.time() - started
print(json.dumps({"seconds": seconds, "read_s": read_s, "rows": int(len(raw.events)),
                  "splits": {k: int(len(v)) for k, v in splits.items() if not k.startswith("_")},
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""

# The "plain pandas script": read the file, drop consecutive repeats, filter items and sessions once,
# split by the last day, map IDs to indices; integer ID columns (as this file has), no exact ordering rules, no row
# checks. It does less
# than the pipeline (and than the reference above), so its rate is the stricter yardstick.
LEAN_PANDAS_SCRIPT = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
sys.path[:0] = [sys.argv[2]]
from tfx_pipeline.options import IngestOptions, SessionOptions, preprocess_options
options = preprocess_options(IngestOptions(), SessionOptions(), input=sys.argv[1], output="unused")
started = time.time()
df = pd.read_csv(sys.argv[1], sep="\t", dtype={"SessionId": np.int64, "ItemId": np.int64, "Time": np.float64})
df = df.sort_values(["SessionId", "Time"], kind="stable")
repeat = df["SessionId"].eq(df["SessionId"].shift()) & df["ItemId"].eq(df["ItemId"].shift())
df = df[~repeat]
support = df.groupby("ItemId")["ItemId"].transform("size")
df = df[support >= options.min_item_support]
length = df.groupby("SessionId")["SessionId"].transform("size")
df = df[length >= options.min_session_length]
split = df["Time"].max() - 86400 * options.test_days
start = df.groupby("SessionId")["Time"].transform("min")
train, test = df[start < split], df[start >= split]
items = pd.Index(train["ItemId"].unique())
test = test[test["ItemId"].isin(items)]
train_idx, test_idx = items.get_indexer(train["ItemId"]), items.get_indexer(test["ItemId"])
seconds = time.time() - started
print(json.dumps({"seconds": seconds, "rows": int(sum(1 for _ in open(sys.argv[1], "rb")) - 1),
                  "splits": {"train": int(len(train_idx)), "test": int(len(test_idx))},
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


class TreeMemory:
    """Polls the summed RSS of a process and its descendants; ``peak`` in bytes, ``samples`` as (time, bytes)."""

    def __init__(self, pid: int, every_s: float = 0.2):
        import psutil  # pylint: disable=g-import-not-at-top
        self._root, self._every, self.peak, self.samples = psutil.Process(pid), every_s, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import psutil  # pylint: disable=g-import-not-at-top
        while not self._stop.is_set():
            total = 0
            try:
                for proc in [self._root, *self._root.children(recursive=True)]:
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                break
            self.peak = max(self.peak, total)
            self.samples.append((time.time(), total))
            self._stop.wait(self._every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


_COMPONENT_START = re.compile(r"^I(\d\d)(\d\d) (\d\d):(\d\d):(\d\d\.\d+) .*Component (\w+) is running", re.MULTILINE)


def component_peaks(log_text: str, samples: list, year: int) -> dict:
    """Peak RSS (bytes) while each component ran: from its start line in the log (absl's UTC timestamps) to the next
    component's start (the last one: to the end)."""
    starts = []
    for m in _COMPONENT_START.finditer(log_text):
        month, day, hour, minute, second = m.group(1, 2, 3, 4, 5)
        moment = datetime.datetime(year, int(month), int(day), int(hour), int(minute), tzinfo=datetime.UTC)
        starts.append((moment.timestamp() + float(second), m.group(6)))
    peaks = {}
    for i, (begin, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else float("inf")
        window = [rss for t, rss in samples if begin <= t < end]
        if window:
            peaks[name] = max(peaks.get(name, 0), max(window))
    return peaks


def _env() -> dict:
    """This checkout's code first (the benchmark may run from a worktree beside the installed one)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}


def _data_file(cache: Path, n_sessions: int, n_items: int) -> Path:
    from tfx_pipeline import cli  # pylint: disable=g-import-not-at-top

    class Layout:  # the one directory ensure_synthetic_data asks a LocalLayout for
        def synthetic_dir(self) -> str:
            return str(cache / "data" / "synthetic")

    return Path(cli.ensure_synthetic_data(Layout(), n_sessions, n_items))


def _run_pipeline(work: Path, data: Path, n_sessions: int, n_items: int, timeout_s: float, beam_args: str,
                  extra_args: list[str]) -> dict:
    from tfx_pipeline.cli import SYNTHETIC_FILE  # pylint: disable=g-import-not-at-top
    target = work / "data" / "synthetic" / f"s{n_sessions}-i{n_items}" / SYNTHETIC_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(data, target)  # the command finds its synthetic data and does not generate it again
    command = [sys.executable, "-m", "gru4rec_tf", "pipeline", "run", f"--work_dir={work}",
               f"--synthetic_sessions={n_sessions}", f"--synthetic_items={n_items}", "--epochs=1"]
    command += [f"--beam_pipeline_args={beam_args}"] if beam_args else []
    command += extra_args
    log_path = work / "command.log"
    started = time.time()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=_env())
        memory = TreeMemory(proc.pid)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "timeout"
        peak = memory.stop()
    wall = time.time() - started
    text = log_path.read_text(encoding="utf-8", errors="replace")
    components = {name: float(s) for name, s in re.findall(r"^  (\w+) +COMPLETE +([0-9.]+) s$", text, re.MULTILINE)}
    peaks = component_peaks(text, memory.samples, datetime.datetime.now(datetime.UTC).year)
    train_events = re.search(r"^data: train ([0-9,]+) events", text, re.MULTILINE)
    test_events = re.search(r"; test ([0-9,]+) events", text)
    return {"command": "gru4rec " + " ".join(command[3:]), "exit": code, "wall_s": wall, "peak_rss_bytes": peak,
            "components": components, "component_peak_rss_gib": {c: round(_gib(b), 2) for c, b in peaks.items()},
            "log": str(log_path), "log_tail": text[-3000:] if code != 0 else "",
            "train_events": int(train_events.group(1).replace(",", "")) if train_events else None,
            "test_events": int(test_events.group(1).replace(",", "")) if test_events else None}


def _run_pandas(data: Path, script: str = PANDAS_SCRIPT) -> dict:
    out = subprocess.run([sys.executable, "-c", script, str(data), str(REPO_ROOT)], capture_output=True,
                         text=True, check=True, env={**_env(), "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _gib(n_bytes: float) -> float:
    return n_bytes / 2**30


def _write_results(path: Path, plot: Path, rows: list, args) -> None:
    import apache_beam  # pylint: disable=g-import-not-at-top
    from bench import machine  # pylint: disable=g-import-not-at-top
    lines = [
        "# The main job at scale: ingestion in Arrow batches (issue #27)",
        "",
        f"Written by `bench/ingest_scale.py` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. "
        f"Machine: {machine.cpu_summary()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, apache-beam {apache_beam.__version__}. Command per size: `gru4rec "
        f"pipeline run --synthetic_sessions N/5 --synthetic_items {args.items} --epochs 1"
        + (f" --beam_pipeline_args={args.beam_args}" if args.beam_args else "")
        + "` (the issue's command; a fresh work directory each time: nothing cached; the synthetic log is "
        "written before the timed command). The machine's 2 cores were shared with other jobs while this ran (load "
        "average in the table); figures of one row compare with each other.",
        "",
        "Ingestion = ClickLogExampleGen + SessionTensors. Peak RSS = the largest sum of the RSS of the command's "
        "process tree (driver + Beam workers), polled every 0.2 s. pandas = the tests' pandas reference "
        "(`tests/pandas_reference.py`: read, parse, sessions, filters, time splits with the pipeline's options) on "
        "the same file, one process, right after the pipeline. Lean pandas = the issue's plain script "
        "(`LEAN_PANDAS_SCRIPT`: integer ID columns, one filter pass, a last-day split, IDs mapped to indices; no row "
        "checks, no exact ordering), run right after: the stricter yardstick of the issue's target (a quarter of its "
        "rate).",
        "",
        "| events | ClickLogExampleGen s | SessionTensors s | ingestion events/s | other components s | command "
        "wall s | peak RSS GiB | pandas s | pandas events/s | pandas peak RSS GiB | ingestion / pandas rate | "
        "lean pandas s | ingestion / lean pandas rate | splits agree | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        run, pandas, n = row["pipeline"], row["pandas"], row["events"]
        comp = run["components"]
        ingest_s = sum(comp.get(c, float("nan")) for c in INGESTION)
        other = sum(s for c, s in comp.items() if c not in INGESTION)
        rate = n / ingest_s
        p_rate = n / pandas["seconds"] if pandas else float("nan")
        agree, lean = row.get("agree", "n/a"), row.get("lean_pandas")
        lines.append(
            f"| {n:,} | {comp.get('ClickLogExampleGen', float('nan')):.1f} | "
            f"{comp.get('SessionTensors', float('nan')):.1f} "
            f"| {rate:,.0f} | {other:.1f} | {run['wall_s']:.0f} | {_gib(run['peak_rss_bytes']):.2f} | "
            + (f"{pandas['seconds']:.1f} | {p_rate:,.0f} | {pandas['peak_rss_gib']:.2f} | {rate / p_rate:.2f} | "
               if pandas else "n/a | n/a | n/a | n/a | ")
            + (f"{lean['seconds']:.1f} | {rate / (n / lean['seconds']):.2f} | " if lean else "n/a | n/a | ")
            + f"{agree} | {row['load']:.1f} |")
    lines += ["", "Per-component seconds of each run (the run summary), and the process tree's peak RSS while each "
              "component ran (from its start line in the log to the next one's):", ""]
    for row in rows:
        run = row["pipeline"]
        splits = f"; train/test events {run['train_events']:,}/{run['test_events']:,}" if run["train_events"] else ""
        extra = run["command"].split("--epochs=1", 1)[-1].strip()
        peaks = run.get("component_peak_rss_gib") or {}
        lines.append(f"- {row['events']:,} events: " + ", ".join(f"{c} {s:.1f}" for c, s in run["components"].items())
                     + f"; exit {run['exit']}{splits}" + (f"; more flags: `{extra}`" if extra else ""))
        if peaks:
            lines.append("  - peak RSS GiB while each ran: " + ", ".join(f"{c} {g:.2f}" for c, g in peaks.items()))
    lines += ["", f"![time and memory against events]({plot.name})", "", "Raw figures (JSON):", "", "```json",
              json.dumps(rows, indent=1, default=str), "```", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {path}")


def _plot(path: Path, rows: list) -> None:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    events = [r["events"] / 1e6 for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, key in (("ClickLogExampleGen", "ClickLogExampleGen"), ("SessionTensors", "SessionTensors")):
        left.plot(events, [r["pipeline"]["components"].get(key, float("nan")) for r in rows], "o-", label=label)
    left.plot(events, [r["pipeline"]["wall_s"] for r in rows], "s-", label="whole command")
    left.plot(events, [r["pandas"]["seconds"] if r["pandas"] else float("nan") for r in rows], "^--",
              label="pandas reference (1 process)")
    left.plot(events, [r["lean_pandas"]["seconds"] if r.get("lean_pandas") else float("nan") for r in rows], "v:",
              label="lean pandas (the issue's script)")
    left.set_xlabel("events (millions)")
    left.set_ylabel("seconds")
    left.set_title("time")
    left.legend()
    right.plot(events, [_gib(r["pipeline"]["peak_rss_bytes"]) for r in rows], "s-", label="main job (process tree)")
    right.plot(events, [r["pandas"]["peak_rss_gib"] if r["pandas"] else float("nan") for r in rows], "^--",
               label="pandas reference")
    right.set_xlabel("events (millions)")
    right.set_ylabel("peak RSS (GiB)")
    right.set_title("memory")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", default="1000000,5000000,20000000", help="comma-separated sizes")
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--work", default="/tmp/ingest_scale", help="data cache and work directories")
    parser.add_argument("--timeout_s", type=float, default=3600)
    parser.add_argument("--beam_args", default="", help="--beam_pipeline_args of the command (default: none, the "
                        "command's default runner: DirectRunner, in memory)")
    parser.add_argument("--no_pandas_above", type=int, default=10**12, help="skip pandas above this many events")
    parser.add_argument("--no_exact_pandas_above", type=int, default=10**12,
                        help="skip the tests' exact pandas reference (not the lean script) above this many events")
    parser.add_argument("--command_args", default="", help="more flags of the command, space-separated (e.g. "
                        "--eval_sample_sessions=20000 where the full-catalogue evaluation of every test event would "
                        "take longer than the session allows)")
    parser.add_argument("--results", default=str(REPO_ROOT / "bench" / "results" / "ingest_scale.md"))
    parser.add_argument("--plot", default=str(REPO_ROOT / "bench" / "results" / "ingest_scale.png"))
    parser.add_argument("--append", action="store_true", help="keep the rows of the JSON beside --results")
    args = parser.parse_args()
    work = Path(args.work)
    raw_path = work / "rows.json"
    work.mkdir(parents=True, exist_ok=True)
    rows = json.loads(raw_path.read_text()) if args.append and raw_path.exists() else []
    for n_events in (int(x) for x in args.events.split(",")):
        n_sessions = n_events // 5
        started = time.time()
        data = _data_file(work / "cache", n_sessions, args.items)
        print(f"{n_events:,} events: data {data} ({data.stat().st_size / 2**20:.0f} MiB, "
              f"{time.time() - started:.0f} s)", flush=True)
        run_dir = work / f"run-{n_events}-{int(time.time())}"
        run = _run_pipeline(run_dir, data, n_sessions, args.items, args.timeout_s, args.beam_args,
                            args.command_args.split())
        print(f"  pipeline: exit {run['exit']}, {run['wall_s']:.0f} s, peak RSS {_gib(run['peak_rss_bytes']):.2f} GiB,"
              f" {run['components']}", flush=True)
        if run["exit"] != 0:
            print(run["log_tail"], flush=True)
        load = os.getloadavg()[0]
        pandas = _run_pandas(data) if n_events <= min(args.no_pandas_above, args.no_exact_pandas_above) else None
        if pandas:
            print(f"  pandas: {pandas['seconds']:.1f} s ({pandas['rows'] / pandas['seconds']:,.0f} events/s), "
                  f"peak RSS {pandas['peak_rss_gib']:.2f} GiB, splits {pandas['splits']}", flush=True)
        lean = _run_pandas(data, LEAN_PANDAS_SCRIPT) if n_events <= args.no_pandas_above else None
        if lean:
            print(f"  lean pandas: {lean['seconds']:.1f} s ({lean['rows'] / lean['seconds']:,.0f} events/s)",
                  flush=True)
        real = pandas["rows"] if pandas else lean["rows"] if lean else n_events  # rows of the file
        agree = ("yes" if pandas and run["train_events"] == pandas["splits"].get("train")
                 and run["test_events"] == pandas["splits"].get("test") else "NO" if pandas else "n/a")
        rows = [r for r in rows if r["events"] != real] + [
            {"events": real, "sessions": n_sessions, "pipeline": run, "pandas": pandas, "lean_pandas": lean,
             "agree": agree, "load": load}]
        rows.sort(key=lambda r: r["events"])
        raw_path.write_text(json.dumps(rows, default=str))
        _write_results(Path(args.results), Path(args.plot), rows, args)
        _plot(Path(args.plot), rows)


if __name__ == "__main__":
    main()
