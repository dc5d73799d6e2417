"""The guarded daily loop (issue 23): broken days against data validation, false alarms, and its cost.

For each dataset (the daily spans of ``rsc15_100k``, ``train_full`` + ``test``; the built-in generator's drifting
days), the pipeline runs day by day on ``YYYY-MM-DD/`` partitions (``--window_days 3 --test_days 1``, config A with
small layers, in-process ``LocalDagRunner``):

1. **clean loop**: every day clean, ``--validation fail``: the false alarms (target: none), and the seconds of the
   validation components (StatisticsGen, SchemaGen, ExampleValidator, DataValidator) against the whole run's
   (target: under 20%);
2. **broken days**, each applied to the middle day ``m`` in its own copy of one clean run of day ``m-1``:
   detected or not, by which check, what was pushed; then the clean day ``m`` trains and pushes;
3. **damage prevented**: the same broken day with ``--validation off`` (its own work directory): what the pipeline
   did with it, and, when a candidate was trained, its Recall@20/MRR@20 on the next clean day (``m+1``) against the
   model that validation kept serving (day ``m-1``'s), both ranked over the full catalogue, and their difference.

Broken days: ``rekeyed`` (item IDs re-keyed upstream), ``milliseconds`` (times in ms read as seconds),
``redelivered`` (the previous day's file delivered again as today's), ``small`` (4% of the usual sessions),
``duplicated`` (every event of the day twice: a double delivery within the day).

Usage::

    .venv/bin/python bench/guarded_loop.py [--datasets rsc15,synthetic] [--output bench/results/guarded_loop.md]
"""
import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS)
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import machine  # noqa: E402
from bench.rsc15_configs import RSC15 as RSC15_DIR  # noqa: E402
from tfx_pipeline import artifacts, blessing, options, pipeline, runners, summary  # noqa: E402
from tfx_pipeline.validation_options import ValidationOptions  # noqa: E402

PARAMS = "loss=bpr-max,final_act=elu-0.5,layers=64,batch_size=64,learning_rate=0.05,n_sample=512,sample_alpha=0.5," \
         "bpreg=1.0,constrained_embedding=True,n_epochs=2"
VALIDATION_NODES = ("StatisticsGen", "SchemaGen", "ExampleValidator", "DataValidator")
WINDOW = 3


# ------------------------------------------------------------------------------------------------------ data
def rsc15_days() -> list[pd.DataFrame]:
    """rsc15_100k's days (UTC); a last day of under 1% of the median day (events after midnight) joins the day
    before."""
    frame = pd.concat([pd.read_csv(os.path.join(RSC15_DIR, f"{n}.tsv"), sep="\t") for n in ("train_full", "test")])
    return _by_day(frame)


def synthetic_days(n_sessions: int = 20000) -> list[pd.DataFrame]:
    from gru4rec_tf.data import synthetic  # pylint: disable=g-import-not-at-top
    return _by_day(synthetic.generate_sessions(n_items=2000, n_sessions=n_sessions, seed=0, new_items_per_day=20,
                                               popularity_drift=0.3))


def _by_day(frame: pd.DataFrame) -> list[pd.DataFrame]:
    day = (frame.Time // 86400).astype(int)
    days = [g.reset_index(drop=True) for _, g in frame.groupby(day)]
    median = sorted(len(d) for d in days)[len(days) // 2]
    if len(days[-1]) < 0.01 * median:
        days[-2:] = [pd.concat(days[-2:], ignore_index=True)]
    return days


def broken(kind: str, today: pd.DataFrame, yesterday: pd.DataFrame) -> pd.DataFrame:
    if kind == "rekeyed":
        return today.assign(ItemId=today.ItemId + 10_000_000_000)
    if kind == "milliseconds":
        return today.assign(Time=today.Time * 1000)
    if kind == "redelivered":
        return yesterday
    if kind == "small":
        keep = today.SessionId.drop_duplicates().sample(frac=0.04, random_state=0)
        return today[today.SessionId.isin(keep)]
    if kind == "duplicated":
        return pd.concat([today, today.assign(SessionId=today.SessionId + 10_000_000_000)], ignore_index=True)
    raise ValueError(kind)


KINDS = ("rekeyed", "milliseconds", "redelivered", "small", "duplicated")


def put_day(data_dir: str, index: int, frame: pd.DataFrame) -> None:
    name = (datetime.date(2026, 11, 1) + datetime.timedelta(days=index)).isoformat()
    os.makedirs(os.path.join(data_dir, name), exist_ok=True)
    frame.to_csv(os.path.join(data_dir, name, "clicks.tsv"), sep="\t", index=False)


# ------------------------------------------------------------------------------------------------------ runs
def run(work: str, data_dir: str, mode: str) -> tuple:
    """One pipeline run; ``(summary, wall seconds, error)``."""
    layout = runners.LocalLayout.create(work, "loop")
    built = pipeline.create_pipeline(
        "loop", layout.pipeline_root, data_dir, layout.serving_root, data_pattern="{YYYY}-{MM}-{DD}/*",
        sessions=options.SessionOptions(min_item_support=1, test_days=1.0),
        training=options.TrainingOptions(params=PARAMS, seed=42, max_k=20),
        blessing=blessing.BlessingOptions(cutoffs=(20,), thresholds={"recall@20": 0.05}),
        window_spans=WINDOW, validation=ValidationOptions(mode=mode),
        metadata_connection_config=runners.sqlite_config(layout.metadata_path))
    started, error = time.perf_counter(), None
    try:
        runners.run_local(built)
    except Exception as err:  # pylint: disable=broad-except  (recorded: a broken day may fail a component)
        error = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
    return summary.summarize_latest_run(layout.metadata_path, "loop"), time.perf_counter() - started, error


def outcome(result, error) -> str:
    if error:
        failed = next((n.node_id for n in result.nodes if n.state == "FAILED"), "a component")
        return f"failed in {failed}: {error}"
    if result.stopped_by_validation:
        return "stopped; nothing pushed"
    push = result.push or {}
    bless = result.blessing
    if push.get("pushed"):
        return f"trained, blessed, pushed (Recall@20 {bless['metrics'].get('recall@20', float('nan')):.3f})"
    return f"trained, not blessed ({bless.get('message', '')[:60]}); not pushed"


def clean_loop(days, work: str) -> dict:
    data = os.path.join(work, "data")
    rows, alarms, shares = [], 0, []
    for i, day in enumerate(days):
        put_day(data, i, day)
        if i < WINDOW - 1:
            continue
        result, wall, error = run(os.path.join(work, "w"), data, "fail")
        seconds = {n.node_id: n.seconds for n in result.nodes}
        validation = sum(seconds.get(n, 0.0) for n in VALIDATION_NODES)
        alarms += int(result.stopped_by_validation)
        shares.append(validation / max(sum(seconds.values()), 1e-9))
        rows.append({"day": i, "events": len(day), "outcome": outcome(result, error),
                     "anomalies": "; ".join((result.validation or {}).get("anomalies", [])) or "none",
                     "validation_s": validation, "run_s": sum(seconds.values()), "wall_s": wall})
        print(f"  clean day {i}: {rows[-1]['outcome']} (validation {validation:.1f} s of {rows[-1]['run_s']:.1f} s)",
              flush=True)
    return {"rows": rows, "false_alarms": alarms, "validation_share": sum(shares) / len(shares)}


def kept_state(days, middle: int, work: str):
    """Days up to ``middle - 1`` and one clean run (validation fail) in ``work``: the state every broken day starts
    from (copied, so each broken day and mode runs on its own copy of the same store, pipeline root and serving
    root; the copies' store names artifacts of this one, which stay in place)."""
    data = os.path.join(work, "data")
    for i in range(middle - WINDOW + 1, middle):
        put_day(data, i, days[i])
    kept, _, _ = run(os.path.join(work, "w"), data, "fail")
    return kept


def broken_day(days, kind: str, middle: int, kept_work: str, kept, work: str, mode: str) -> dict:
    """The broken ``middle`` day on a copy of ``kept_work``, and with ``fail`` the clean day after."""
    shutil.copytree(kept_work, work)
    data = os.path.join(work, "data")
    put_day(data, middle, broken(kind, days[middle], days[middle - 1]))
    result, _, error = run(os.path.join(work, "w"), data, mode)
    row = {"kind": kind, "mode": mode, "outcome": outcome(result, error),
           "checks": ", ".join(sorted({line.split(":")[0] for line in (result.validation or {}).get("anomalies", [])}))
           or "none", "kept_model": kept.output("Trainer", "model").uri}
    if mode == "off":
        model = result.output("Trainer", "model")
        row["candidate_model"] = model.uri if model is not None and result.node("Trainer").state in (
            "COMPLETE", "CACHED") else None
        row["pushed"] = bool((result.push or {}).get("pushed"))
    else:
        put_day(data, middle, days[middle])
        after, _, after_error = run(os.path.join(work, "w"), data, mode)
        row["next_clean"] = outcome(after, after_error)
    return row


def next_day_metrics(model_uri: str, next_day: pd.DataFrame) -> dict:
    """Recall@20 / MRR@20 of a pipeline model on a day's sessions (full catalogue; unknown items dropped)."""
    from gru4rec_tf.data.session_data import SessionData  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.evaluation.full_catalogue import Evaluator
    from gru4rec_tf.model.model_dir import load_model
    saved = load_model(artifacts.library_model_dir(model_uri))
    events = next_day.assign(ItemId=next_day.ItemId.astype(str))
    metrics = Evaluator(saved.model).evaluate(SessionData.from_events(events, saved.vocab), cutoffs=(20,))
    return {"recall@20": metrics["recall@20"], "mrr@20": metrics["mrr@20"]}


# ------------------------------------------------------------------------------------------------------ report
def dataset_section(name: str, days, clean: dict, caught: list, damage: list) -> list[str]:
    lines = [f"## {name}: {len(days)} days, {sum(len(d) for d in days):,} events (window {WINDOW} days, the newest "
             "the span)", "", "### Clean days (validation fail)", "",
             "| day | events | outcome | anomalies | validation s | run s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['day']} | {r['events']:,} | {r['outcome']} | {r['anomalies']} | {r['validation_s']:.1f} | "
              f"{r['run_s']:.1f} |" for r in clean["rows"]]
    lines += ["", f"False alarms: **{clean['false_alarms']}** of {len(clean['rows'])} clean days. Validation "
              f"components: **{clean['validation_share']:.1%}** of the run's component seconds on average.", "",
              "### Broken days (validation fail), applied to the middle day", "",
              "| broken day | detected by | outcome | next clean day |", "|---|---|---|---|"]
    lines += [f"| {r['kind']} | {r['checks']} | {r['outcome']} | {r['next_clean']} |" for r in caught]
    lines += ["", "### The same broken days with validation off (the damage prevented)", "",
              "On the next clean day (full catalogue, unknown items dropped): the candidate trained on the broken "
              "day, the model validation kept serving (the day before's), and the difference (candidate - kept).", "",
              "| broken day | outcome | broken day's candidate R@20 / MRR@20 | model validation kept R@20 / MRR@20 "
              "| difference R@20 / MRR@20 |", "|---|---|---|---|---|"]
    crashed = pushed = 0
    for r in damage:
        cand, kept = r.get("candidate_metrics"), r["kept_metrics"]
        cand_text = f"{cand['recall@20']:.4f} / {cand['mrr@20']:.4f}" if cand else "no candidate"
        diff = f"{cand['recall@20'] - kept['recall@20']:+.4f} / {cand['mrr@20'] - kept['mrr@20']:+.4f}" if cand \
            else "-"
        crashed += r["outcome"].startswith("failed in")
        pushed += bool(r.get("pushed"))
        lines.append(f"| {r['kind']} | {r['outcome']} | {cand_text} | {kept['recall@20']:.4f} / "
                     f"{kept['mrr@20']:.4f} | {diff} |")
    lines += ["", f"With validation off: **{crashed}** of {len(damage)} broken days failed a component, **{pushed}** "
              "pushed a model trained on the broken day."]
    return lines + [""]


def bench_dataset(name: str, days, work: str, kinds=KINDS) -> list[str]:
    print(f"{name}: clean loop over {len(days)} days", flush=True)
    clean = clean_loop(days, os.path.join(work, "clean"))
    middle = len(days) // 2
    caught, damage = [], []
    kept_work = os.path.join(work, "kept")
    kept = kept_state(days, middle, kept_work)
    for kind in kinds:
        print(f"{name}: broken day {kind} at day {middle}", flush=True)
        caught.append(broken_day(days, kind, middle, kept_work, kept, os.path.join(work, f"fail-{kind}"), "fail"))
        off = broken_day(days, kind, middle, kept_work, kept, os.path.join(work, f"off-{kind}"), "off")
        off["kept_metrics"] = next_day_metrics(off["kept_model"], days[middle + 1])
        if off.get("candidate_model"):
            off["candidate_metrics"] = next_day_metrics(off["candidate_model"], days[middle + 1])
        damage.append(off)
        print(f"  fail: {caught[-1]['outcome']} ({caught[-1]['checks']}); off: {off['outcome']}", flush=True)
    return dataset_section(name, days, clean, caught, damage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="rsc15,synthetic")
    parser.add_argument("--output", default="bench/results/guarded_loop.md")
    parser.add_argument("--kinds", default=",".join(KINDS), help="broken days to apply")
    parser.add_argument("--synthetic_sessions", type=int, default=20000)
    args = parser.parse_args()
    started = time.time()
    work = tempfile.mkdtemp(prefix="guarded-loop-")
    lines = ["# The guarded daily loop: broken days against data validation", "",
             f"`{' '.join(['.venv/bin/python'] + sys.argv)}`, {datetime.datetime.now():%Y-%m-%d %H:%M}, "
             f"{machine.cpu_summary()}, Python {platform.python_version()}. Config A with layers=64, 2 epochs; "
             f"window {WINDOW} days, test_days 1, `--validation` defaults.", ""]
    try:
        for name in args.datasets.split(","):
            days = rsc15_days() if name == "rsc15" else synthetic_days(args.synthetic_sessions)
            lines += bench_dataset(name, days, os.path.join(work, name), args.kinds.split(","))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines.append(f"Total time: {(time.time() - started) / 60:.1f} min.")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
