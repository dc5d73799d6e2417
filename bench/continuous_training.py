"""Continuous training, day by day: cold retraining on all days so far against a daily warm start (issue #10, part 6).

For each day d of an event log (sessions assigned to the day they start on):

* **cold**: a new model trained from scratch on days 1..d;
* **warm**: day d-1's warm model (``model_dir.load_model``) continued on day d's events only, with its catalogue grown
  by day d's new items (``warm_start.warm_vocabulary``; items missing from day d are kept); on day 1 warm = cold.

Both are evaluated on day d+1 (full catalogue, standard ties; items the model does not know are dropped from the
test sessions, as ``SessionData.from_events`` does): Recall@20, MRR@20, and the **new-item hit rate**, the share
of day d+1's evaluated events whose target first appeared on day d that are ranked in the top 20. Training cost:
events processed (transitions × epochs) and the training seconds of each run (:func:`run_one`: reading the event
files, loading the warm-start model, building, tracing, compiling or loading the compiled loop, the epochs; not
starting Python, evaluating or saving). Every run is a new Python process, as a daily job is, and each chain (cold,
each warm setting) keeps its compiled loops in a persistent XLA cache of its own (``gru4rec train
--compile_cache_dir``): a run reuses what its own chain compiled on earlier days (a warm chain's day 1 is the cold
run, so its cache starts with that run's), never another chain's.

Datasets: (a) rsc15_100k, ``train_full.tsv`` + ``test.tsv`` in time order, days = UTC dates; (b) the built-in
synthetic generator with drifting popularity and new items every day (``gru4rec generate --days ...
--new_items_per_day ... --popularity_drift ...``), days counted from the generator's start time. Writes
``bench/results/continuous_training.md`` and ``bench/results/continuous_training.png``. The main warm setting is
config A with the epochs of :func:`warm_epochs_rule` (one fewer than cold, decided before any run) and the
optimizer state carried over; ``--warm_variants`` adds other warm
settings (e.g. fewer epochs, another learning rate), each as its own daily chain. About 15 minutes on the shared
2-core machine. Usage::

    .venv/bin/python bench/continuous_training.py [--epochs 3] [--warm_epochs N] [--seed 1] [--skip_rsc15]
        [--skip_synthetic] [--warm_variants epochs=3,learning_rate=0.025] [--compile_cache chain|none]
        [--no-isolate] [--max_days N]
"""
import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS)
import numpy as np
import pandas as pd
import tensorflow as tf

from gru4rec_tf.train import compile_cache

from gru4rec_tf.evaluation import full_catalogue

from gru4rec_tf.model import model_dir

from gru4rec_tf.data import synthetic

from gru4rec_tf.train import routine

from gru4rec_tf.train import warm_start
from gru4rec_tf.train.options import TrainOptions
from gru4rec_tf.data.event_columns import DEFAULT_ITEM_KEY, DEFAULT_SESSION_KEY, DEFAULT_TIME_KEY
from gru4rec_tf.data.event_log import load_events
from gru4rec_tf.params import GRU4RecParams
from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.data.vocabulary import ItemVocabulary
import machine as machine_lib
from rsc15_configs import CONFIG_A, RSC15

K = 20
TOLERANCE = 0.01  # warm within this of cold on Recall@20 and MRR@20
MAX_TIME_RATIO = 1 / 3  # warm training time at most this share of cold's
NEW_ITEM_MIN_SHARE = 0.5  # "not far below": new-item hit rate at least this share of the overall Recall@20
# More warm settings tried on rsc15_100k, written by this script into a file of their own.
SEE_ALSO = ("More warm settings on rsc15_100k (learning rates 0.1 and 0.01, a fresh optimizer state, no XLA), all "
            "further from cold than the main setting: `continuous_training_warm_settings.md`, written by this "
            "script with `--skip_synthetic --warm_variants learning_rate=0.1,learning_rate=0.01,optimizer=fresh,jit=0 "
            "--output bench/results/continuous_training_warm_settings.md --plot "
            "bench/results/continuous_training_warm_settings.png`.")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def warm_epochs_rule(cold_epochs: int) -> int:
    """Epochs of a daily warm run, fixed before any run: one fewer than a run from scratch, at least 1.

    A warm run continues a model already trained on the earlier days, with the Adagrad step sizes it had reached,
    on one day of data; training that day as many times as a new model trains on all days over-fits the newest day
    (the earlier days are not revisited). Config A's 3 epochs give 2 warm epochs.
    """
    return max(1, cold_epochs - 1)


# ---------------------------------------------------------------------------------------------------------- data
def split_days(events: pd.DataFrame, origin: float, min_sessions: int):
    """``(days, kept, dropped)``: the events of each day in order (a session belongs to the day it starts on, day k
    = ``[origin + k·86400, origin + (k+1)·86400)``), their day indices k, and ``(k, sessions, events)`` of the days
    left out for having fewer than ``min_sessions`` sessions (e.g. a log's last hour)."""
    first = events.groupby(DEFAULT_SESSION_KEY)[DEFAULT_TIME_KEY].transform("min").to_numpy()
    day = np.floor((first - origin) / synthetic.DAY_SECONDS).astype(np.int64)
    days, kept, dropped = [], [], []
    for k in np.unique(day):
        part = events[day == k].reset_index(drop=True)
        n_sessions = part[DEFAULT_SESSION_KEY].nunique()
        if n_sessions < min_sessions:
            dropped.append((int(k), n_sessions, len(part)))
        else:
            days.append(part)
            kept.append(int(k))
    return days, kept, dropped


def first_day_of_items(days) -> pd.Series:
    """Item ID -> index (0-based) of the first day it occurs on."""
    firsts = pd.concat([pd.Series(d, index=pd.unique(day[DEFAULT_ITEM_KEY])) for d, day in enumerate(days)])
    return firsts.groupby(level=0).min()


def rsc15_days(data_dir: str, min_sessions: int):
    events = pd.concat([load_events(os.path.join(data_dir, "train_full.tsv")),
                        load_events(os.path.join(data_dir, "test.tsv"))], ignore_index=True)
    origin = np.floor(events[DEFAULT_TIME_KEY].min() / synthetic.DAY_SECONDS) * synthetic.DAY_SECONDS  # UTC midnight
    days, kept, dropped = split_days(events, origin, min_sessions)
    label = lambda k: time.strftime("%m-%d", time.gmtime(origin + k * synthetic.DAY_SECONDS))  # noqa: E731
    return days, [label(k) for k in kept], [(label(k), s, e) for k, s, e in dropped]


def synthetic_days(args, workdir: str, min_sessions: int):
    """Writes the dataset exactly as ``gru4rec generate`` with the same options would and reads it back."""
    out = os.path.join(workdir, "synthetic")
    synthetic.write_dataset(out, n_items=args.syn_items, n_sessions=args.syn_sessions, seed=args.syn_seed,
                            test_days=1.0, span_days=float(args.syn_days), new_items_per_day=args.syn_new_items,
                            popularity_drift=args.syn_drift)
    events = pd.concat([load_events(os.path.join(out, "train.tsv")), load_events(os.path.join(out, "test.tsv"))],
                       ignore_index=True)
    origin = 1_600_000_000.0  # generate_sessions' default start_time: its days start there
    days, kept, dropped = split_days(events, origin, min_sessions)
    return days, [f"day {k + 1}" for k in kept], [(f"day {k + 1}", s, e) for k, s, e in dropped]


def synthetic_command(args) -> str:
    return (f"gru4rec generate --output DIR --n_items {args.syn_items} --n_sessions {args.syn_sessions} "
            f"--seed {args.syn_seed} --days {args.syn_days} --new_items_per_day {args.syn_new_items} "
            f"--popularity_drift {args.syn_drift}")


# ------------------------------------------------------------------------------------------------------ one day
def evaluate(model, vocab, next_day: pd.DataFrame, new_items: np.ndarray) -> dict:
    """Recall@K and MRR@K on ``next_day``, and the hit rate on events whose target is one of ``new_items``."""
    ranks, targets = full_catalogue.Evaluator(model).ranks_and_targets(SessionData.from_events(next_day, vocab))
    metrics = full_catalogue.metrics_from_ranks(ranks, (K,))
    is_new = np.isin(vocab.item_ids[targets], new_items)
    new_hits = int(np.count_nonzero(ranks[is_new] <= K))
    return {"recall": metrics[f"recall@{K}"], "mrr": metrics[f"mrr@{K}"], "eval_events": int(len(ranks)),
            "new_events": int(is_new.sum()), "new_hits": new_hits,
            "new_hit_rate": new_hits / int(is_new.sum()) if is_new.any() else float("nan")}


def _costs(result, seconds) -> dict:
    """Training cost of a run: wall seconds, the epochs' seconds, events, and the seconds without compilation
    (estimated: the first epoch's extra time over the later epochs' mean is tracing and XLA compilation)."""
    epochs = [h.seconds for h in result.history]
    compile_s = max(0.0, epochs[0] - float(np.mean(epochs[1:]))) if len(epochs) > 1 else float("nan")
    return {"seconds": seconds, "epoch_seconds": result.train_seconds, "compile_seconds": compile_s,
            "steady_seconds": result.train_seconds - compile_s, "events": sum(h.events for h in result.history),
            "n_items": len(result.vocab)}


def parse_warm_setting(spec: str, params, epochs: int) -> dict:
    """A warm run's setting from ``key=value`` parts joined by ``+``: ``epochs=N``, ``optimizer=fresh`` (do not carry
    the saved Adagrad state), ``jit=0`` (``TrainOptions(jit_compile=False)``: no XLA compilation), or any
    hyperparameter that a warm start may change (``learning_rate=0.1``)."""
    setting = {"name": spec, "epochs": epochs, "fresh_optimizer": False, "params": params, "jit_compile": True}
    overrides = {}
    for part in filter(None, spec.split("+")):
        key, _, value = part.partition("=")
        if key == "epochs":
            setting["epochs"] = int(value)
        elif key == "optimizer" and value == "fresh":
            setting["fresh_optimizer"] = True
        elif key == "jit":
            setting["jit_compile"] = value not in ("0", "false", "False")
        else:
            overrides[key] = value
    if overrides:
        setting["params"] = params.with_overrides(overrides)
    return setting


def run_one(spec: dict) -> dict:
    """One training run as a daily job runs it, then its evaluation on the next day and its saved model.

    ``spec``: ``train`` (event files; cold: days 1..d, warm: day d), ``warm_from`` (the previous model directory or
    None), ``params``, ``epochs``, ``seed``, ``jit_compile``, ``fresh_optimizer``, ``cache_dir`` (the chain's
    persistent XLA cache or None), ``test`` (day d+1), ``new_items`` (.npy of day d's new item IDs), ``save``.
    **Training seconds** are timed from reading the event files to the end of ``routine.train`` (data loading,
    vocabulary and sessions, loading the warm-start model, building the model, tracing, compiling or loading the
    compiled loop, the epochs); not timed: starting Python and importing TensorFlow, evaluating, saving.
    """
    if spec["cache_dir"]:
        compile_cache.enable(spec["cache_dir"])  # before this process's first TensorFlow operation
    start = time.perf_counter()
    saved = None
    if spec["warm_from"] is None:
        events = pd.concat([load_events(path) for path in spec["train"]], ignore_index=True)
        vocab = ItemVocabulary.from_events(events)
    else:
        events = load_events(spec["train"][0])
        saved = model_dir.load_model(spec["warm_from"])
        if spec["fresh_optimizer"]:
            saved.optimizer_state = None
        vocab = warm_start.warm_vocabulary(saved.vocab, ItemVocabulary.from_events(events))
    options = TrainOptions(seed=spec["seed"], epochs=spec["epochs"], log_every_s=1e9, jit_compile=spec["jit_compile"])
    result = routine.train(SessionData.from_events(events, vocab), vocab, GRU4RecParams.from_string(spec["params"]),
                           options, warm_start=saved)
    seconds = time.perf_counter() - start
    out = {**evaluate(result.model, vocab, load_events(spec["test"]), np.load(spec["new_items"], allow_pickle=True)),
           **_costs(result, seconds), "capacity": compile_cache.item_capacity(len(vocab))
           if spec["cache_dir"] and spec["jit_compile"] else len(vocab)}
    if saved is not None:
        out.update(carried=result.warm_start.carried_items, new=result.warm_start.new_items)
    model_dir.save_model(spec["save"], result.model, vocab, seed=spec["seed"], optimizer_state=result.optimizer_state)
    return out


def train_run(spec: dict, isolate: bool) -> dict:
    """:func:`run_one` in a new Python process (``isolate``, as each daily job is one) or in this one."""
    if not isolate:
        return run_one(spec)
    spec_path = spec["save"] + ".spec.json"
    with open(spec_path, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    subprocess.run([sys.executable, os.path.abspath(__file__), "--one_run", spec_path], check=True)
    with open(spec_path + ".out", encoding="utf-8") as f:
        return json.load(f)


def seed_chain_cache(day1_cache: str | None, chain_cache: str | None) -> None:
    """A warm chain's day 1 is the cold run: its cache starts with what that run compiled (a daily job's cache
    directory holds its first, from-scratch run's programs too)."""
    if day1_cache and chain_cache and os.path.isdir(day1_cache):
        shutil.copytree(day1_cache, chain_cache, dirs_exist_ok=True)


def simulate(name, days, labels, params, args, workdir):
    """One row per training day d (1-based, up to the second-to-last day): cold and warm, evaluated on d+1.

    ``row["warm"]`` is the main warm setting (``--warm_epochs``, the config's learning rate, carried optimizer
    state); ``row["warm:SPEC"]`` are the other warm settings of ``--warm_variants``, each its own daily chain. With
    ``--compile_cache chain`` every chain (cold, and each warm setting) has a persistent XLA cache of its own, as a
    daily job would: a run loads the loop compiled by the same chain's earlier runs (for a warm chain, day 1's is the
    cold run), never the other chains'.
    """
    first_day = first_day_of_items(days)
    settings = {"warm": parse_warm_setting("", params, args.warm_epochs)}
    settings.update({f"warm:{spec}": parse_warm_setting(spec, params, args.warm_epochs)
                     for spec in filter(None, args.warm_variants.split(","))})
    day_files = []
    for d, day in enumerate(days):
        day_files.append(os.path.join(workdir, f"{name}_day{d + 1}.tsv"))
        day.to_csv(day_files[-1], sep="\t", index=False)

    def chain_cache(side):
        return (os.path.join(workdir, f"xla_{name}_{side.replace(':', '_')}")
                if args.compile_cache == "chain" and args.isolate else None)

    def spec(side, train, warm_from, setting, d, new_items_file):
        return {"train": train, "warm_from": warm_from, "params": setting["params"].to_string(),
                "epochs": setting["epochs"], "seed": args.seed, "jit_compile": setting["jit_compile"],
                "fresh_optimizer": setting["fresh_optimizer"], "cache_dir": chain_cache(side), "test": day_files[d],
                "new_items": new_items_file, "save": os.path.join(workdir, f"{name}_{side.replace(':', '_')}_day{d}")}

    cold_setting = {"params": params, "epochs": args.epochs, "jit_compile": True, "fresh_optimizer": False}
    rows, warm_dirs = [], {}
    for d in range(1, len(days)):
        new_items = first_day.index[first_day.to_numpy() == d - 1].to_numpy()
        new_items_file = os.path.join(workdir, f"{name}_new_items_day{d}.npy")
        np.save(new_items_file, new_items)
        cold_spec = spec("cold", day_files[:d], None, cold_setting, d, new_items_file)
        row = {"day": d, "label": f"{labels[d - 1]} → {labels[d]}", "new_items": len(new_items),
               "cold": train_run(cold_spec, args.isolate)}
        for side, setting in settings.items():
            if d == 1:  # nothing to warm-start from: the warm chains start with the cold model
                row[side], warm_dirs[side] = dict(row["cold"], same_as_cold=True), cold_spec["save"]
                seed_chain_cache(cold_spec["cache_dir"], chain_cache(side))
            else:
                warm_spec = spec(side, [day_files[d - 1]], warm_dirs[side], setting, d, new_items_file)
                row[side], warm_dirs[side] = train_run(warm_spec, args.isolate), warm_spec["save"]
        print(f"[{name}] day {d} ({row['label']}, {len(new_items)} new items): " + " | ".join(
            f"{side} R@20 {m['recall']:.4f} MRR@20 {m['mrr']:.4f} new {m['new_hit_rate']:.3f} ({m['new_events']}) "
            f"{m['events']} ev {m['seconds']:.1f}s" for side, m in row.items() if isinstance(m, dict)), flush=True)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------------- report
def summarise(rows, warm_side: str = "warm") -> dict:
    """Averages over the warm-start days (d >= 2; on day 1 warm is the cold model) and the target checks, for the
    warm setting ``warm_side`` (``"warm"`` or ``"warm:SPEC"``)."""
    warm_days = [r for r in rows if r["day"] >= 2]
    out = {}
    for side, key in (("cold", "cold"), ("warm", warm_side)):
        out[side] = {name: float(np.mean([r[key][name] for r in warm_days])) for name in ("recall", "mrr")}
        out[side].update({name: float(sum(r[key][name] for r in warm_days)) for name in (
            "seconds", "events", "epoch_seconds", "steady_seconds", "new_events", "new_hits")})
        out[side]["new_hit_rate"] = (out[side]["new_hits"] / out[side]["new_events"] if out[side]["new_events"]
                                     else float("nan"))
    gap_recall = out["cold"]["recall"] - out["warm"]["recall"]
    gap_mrr = out["cold"]["mrr"] - out["warm"]["mrr"]
    time_ratio = out["warm"]["seconds"] / out["cold"]["seconds"]
    new_rate, recall = out["warm"]["new_hit_rate"], out["warm"]["recall"]
    per_day_new = [r[warm_side]["new_hit_rate"] for r in warm_days if r[warm_side]["new_events"]]
    out["checks"] = {
        "accuracy": (gap_recall <= TOLERANCE and gap_mrr <= TOLERANCE, gap_recall, gap_mrr),
        "time": (time_ratio <= MAX_TIME_RATIO, time_ratio,
                 out["warm"]["steady_seconds"] / out["cold"]["steady_seconds"]),
        "new_items": (bool(new_rate > 0 and new_rate >= NEW_ITEM_MIN_SHARE * recall
                           and all(v > 0 for v in per_day_new)), new_rate, recall),
        "max_day_gap": (max(r["cold"]["recall"] - r[warm_side]["recall"] for r in warm_days),
                        max(r["cold"]["mrr"] - r[warm_side]["mrr"] for r in warm_days)),
    }
    return out


def _ratio(value) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2f}"


def variants_table(rows) -> str:
    """One line per warm setting: means over days 2+ and the three targets."""
    sides = [k for k in rows[0] if k == "warm" or k.startswith("warm:")]
    lines = ["| warm setting | Recall@20 (cold − warm) | MRR@20 (cold − warm) | new-item hit rate | time / cold's "
             "(without compilation) | events / cold's | targets met (accuracy, time, new items) |",
             "|---|---|---|---|---|---|---|"]
    for side in sides:
        summary = summarise(rows, side)
        w, checks = summary["warm"], summary["checks"]
        spec = side.partition(":")[2] or "main setting"
        yes = lambda ok: "yes" if ok else "no"  # noqa: E731
        lines.append(f"| {spec} | {w['recall']:.4f} ({checks['accuracy'][1]:+.4f}) | {w['mrr']:.4f} "
                     f"({checks['accuracy'][2]:+.4f}) | {w['new_hit_rate']:.3f} | {checks['time'][1]:.2f} "
                     f"({_ratio(checks['time'][2])}) | {w['events'] / summary['cold']['events']:.2f} | "
                     f"{yes(checks['accuracy'][0])}, {yes(checks['time'][0])}, {yes(checks['new_items'][0])} |")
    return "\n".join(lines)


def _rate(x, n):
    return "n/a (0 events)" if not n else f"{x:.3f} ({n})"


def table(rows, summary) -> str:
    lines = ["| day d (train → test) | new items on d | model | Recall@20 | MRR@20 | new-item hit rate (events) | "
             "training events | seconds: wall (epochs; without compilation) | catalogue |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for side in ("cold", "warm"):
            m = r[side]
            note = " (= cold)" if m.get("same_as_cold") else ""
            lines.append(f"| {r['day']} ({r['label']}) | {r['new_items']} | {side}{note} | {m['recall']:.4f} | "
                         f"{m['mrr']:.4f} | {_rate(m['new_hit_rate'], m['new_events'])} | {m['events']:,} | "
                         f"{m['seconds']:.1f} ({m['epoch_seconds']:.1f}; {m['steady_seconds']:.1f}) | "
                         f"{m['n_items']:,} |")
    c, w = summary["cold"], summary["warm"]
    lines.append(f"| **mean, days 2–{rows[-1]['day']}** | | cold | {c['recall']:.4f} | {c['mrr']:.4f} | "
                 f"{_rate(c['new_hit_rate'], int(c['new_events']))} | {c['events']:,.0f} (total) | "
                 f"{c['seconds']:.1f} ({c['epoch_seconds']:.1f}; {c['steady_seconds']:.1f}) (total) | |")
    lines.append(f"| | | warm | {w['recall']:.4f} | {w['mrr']:.4f} | "
                 f"{_rate(w['new_hit_rate'], int(w['new_events']))} | {w['events']:,.0f} (total) | "
                 f"{w['seconds']:.1f} ({w['epoch_seconds']:.1f}; {w['steady_seconds']:.1f}) (total) | |")
    return "\n".join(lines)


def verdicts(summary) -> str:
    ok_acc, gap_r, gap_m = summary["checks"]["accuracy"]
    ok_time, ratio, steady_ratio = summary["checks"]["time"]
    ok_new, new_rate, recall = summary["checks"]["new_items"]
    max_r, max_m = summary["checks"]["max_day_gap"]
    word = lambda ok: "**met**" if ok else "**missed**"  # noqa: E731
    return "\n".join([
        f"* warm within {TOLERANCE} of cold (means over days 2+; warm above cold counts as within): {word(ok_acc)}: "
        f"cold − warm = {gap_r:+.4f} Recall@20, {gap_m:+.4f} MRR@20 (largest single-day cold − warm "
        f"{max_r:+.4f} / {max_m:+.4f}).",
        f"* warm training time at most 1/3 of cold's (wall seconds, days 2+): {word(ok_time)}: {ratio:.2f} of "
        f"cold's wall seconds, {summary['warm']['events'] / summary['cold']['events']:.2f} of its training events; "
        f"without each run's tracing and XLA compilation (estimated, see above) {_ratio(steady_ratio)}.",
        f"* new items recommended after one update (warm hit rate > 0 on every day with new-item events and at "
        f"least {NEW_ITEM_MIN_SHARE:g}× the overall Recall@20): {word(ok_new)}: {new_rate:.3f} against "
        f"Recall@20 {recall:.4f}.",
    ])


def machine() -> str:
    return (f"{machine_lib.cpu_summary()}, no GPU, shared with other jobs; Python "
            f"{platform.python_version()}, TensorFlow {tf.__version__}")


def plot(results, path):
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    panels = [("recall", "Recall@20"), ("mrr", "MRR@20"), ("new_hit_rate", "new-item hit rate@20"),
              ("seconds", "training wall seconds")]
    fig, axes = plt.subplots(len(results), len(panels), figsize=(4.2 * len(panels), 3.4 * len(results)),
                             squeeze=False)
    for row_axes, (title, rows) in zip(axes, results.items(), strict=True):
        days = [r["day"] for r in rows]
        for ax, (key, label) in zip(row_axes, panels, strict=True):
            for side, style in (("cold", "o-"), ("warm", "s--")):
                ax.plot(days, [r[side][key] for r in rows], style, label=side)
            for side in [k for k in rows[0] if k.startswith("warm:")]:  # other warm settings, thin
                ax.plot(days, [r[side][key] for r in rows], ":", linewidth=1, alpha=0.8, label=side)
            ax.set_title(f"{title}: {label}", fontsize=9)
            ax.set_xlabel("training day d (evaluated on d+1)", fontsize=8)
            ax.set_xticks(days)
            ax.grid(alpha=0.3)
        row_axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=RSC15, help="rsc15_100k directory (train_full.tsv, test.tsv)")
    parser.add_argument("--skip_rsc15", action="store_true", help="run the synthetic part only")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of every cold run")
    parser.add_argument("--warm_epochs", type=int, default=None,
                        help="epochs of every warm run (default: the rule of warm_epochs_rule, --epochs minus 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--warm_variants", default="epochs=3",
                        help="other warm settings to run beside the main one, comma-separated; each is key=value "
                             "parts joined by '+': epochs=N, optimizer=fresh, or a hyperparameter such as "
                             "learning_rate=0.1, jit=0 (e.g. 'epochs=1,learning_rate=0.1,optimizer=fresh')")
    parser.add_argument("--skip_synthetic", action="store_true", help="run the rsc15_100k part only")
    parser.add_argument("--max_days", type=int, default=None, help="simulate only the first N days (a quick run)")
    parser.add_argument("--min_day_sessions", type=int, default=100,
                        help="days with fewer sessions are left out (rsc15_100k's last day has 1 session)")
    parser.add_argument("--syn_items", type=int, default=1000)
    parser.add_argument("--syn_sessions", type=int, default=64000,
                        help="sessions over --syn_days days (64,000: ~32k events a day; 16,000 leaves ~10k events a "
                        "day, where each run's ~1 s of fixed costs dominate: continuous_training_small_days.md)")
    parser.add_argument("--syn_days", type=int, default=8)
    parser.add_argument("--syn_new_items", type=int, default=20)
    parser.add_argument("--syn_drift", type=float, default=0.3)
    parser.add_argument("--syn_seed", type=int, default=1)
    parser.add_argument("--syn_params", default="layers=64,n_sample=512",
                        help="overrides of config A for the synthetic data")
    parser.add_argument("--compile_cache", choices=("chain", "none"), default="chain",
                        help="chain: each chain (cold, each warm setting) keeps its compiled training loops in a "
                             "persistent XLA cache of its own, as a daily job with --compile_cache_dir does; none: "
                             "every run compiles")
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=True,
                        help="run every training in a new Python process, as daily jobs run (--no-isolate: all in "
                             "this process, without the persistent cache)")
    parser.add_argument("--one_run", help=argparse.SUPPRESS)  # internal: one run_one spec file (--isolate)
    parser.add_argument("--output", default=os.path.join(RESULTS, "continuous_training.md"))
    parser.add_argument("--plot", default=os.path.join(RESULTS, "continuous_training.png"))
    args = parser.parse_args()
    if args.one_run:
        with open(args.one_run, encoding="utf-8") as f:
            out = run_one(json.load(f))
        with open(args.one_run + ".out", "w", encoding="utf-8") as f:
            json.dump(out, f)
        return
    if args.warm_epochs is None:
        args.warm_epochs = warm_epochs_rule(args.epochs)
    if not args.skip_rsc15 and not os.path.isfile(os.path.join(args.data, "train_full.tsv")):
        sys.exit(f"rsc15_100k not found at {args.data} (train_full.tsv, test.tsv): pass --data DIR, or "
                 "--skip_rsc15 for the synthetic part only")
    started = time.perf_counter()
    params_a = GRU4RecParams.from_string(CONFIG_A)
    params_syn = params_a.with_overrides(args.syn_params) if args.syn_params else params_a
    results, sections = {}, []
    with tempfile.TemporaryDirectory(prefix="continuous_training_") as workdir:
        datasets = []
        if not args.skip_rsc15:
            datasets.append(("rsc15_100k", rsc15_days(args.data, args.min_day_sessions), params_a,
                             f"`{os.path.relpath(args.data)}`: train_full.tsv + test.tsv, days = UTC dates of the "
                             "sessions' starts"))
        if not args.skip_synthetic:
            datasets.append(("synthetic", synthetic_days(args, workdir, args.min_day_sessions), params_syn,
                             f"`{synthetic_command(args)}` (the same files; days counted from the generator's "
                             "start)"))
        for name, (days, labels, dropped), params, source in datasets:
            days, labels = days[:args.max_days], labels[:args.max_days]
            rows = simulate(name, days, labels, params, args, workdir)
            results[name] = rows
            summary = summarise(rows)
            sizes = ", ".join(f"{labels[k]}: {len(day):,}" for k, day in enumerate(days))
            left_out = "; ".join(f"{k} ({s} session(s), {e} events)" for k, s, e in dropped)
            sections.append("\n".join([
                f"## ({'ab'[len(sections)]}) {name}", "",
                f"Data: {source}. Events per day: {sizes}."
                + (f" Left out (fewer than {args.min_day_sessions} sessions): {left_out}." if dropped else ""),
                f"Parameters: `{params.to_string()}`.", "", table(rows, summary), "", verdicts(summary), ""]
                + (["Other warm settings (each its own daily chain from the same day-1 model; means over days 2+):",
                    "", variants_table(rows), ""] if args.warm_variants else [])))
    elapsed = time.perf_counter() - started
    command = (f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else "") + \
        ".venv/bin/python bench/continuous_training.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = "\n".join([
        "# Continuous training: daily warm start against cold retraining", "",
        f"Written by `bench/continuous_training.py` on {time.strftime('%Y-%m-%d %H:%M')} in {elapsed / 60:.1f} "
        f"minutes. Command: `{command.strip()}`. Machine: {machine()}.", "",
        "For each day d: **cold** = a new model trained on days 1..d; **warm** = day d−1's warm model "
        "(`model_dir.load_model`, with its optimizer state) continued on day d's events only, with the catalogue "
        "grown by day d's new items (`warm_start.warm_vocabulary`; older items stay recommendable); on day 1 warm "
        "is the cold model. Both are evaluated on day d+1: full catalogue, standard ties, items unknown to the "
        "model dropped from the test sessions (both models know the same items: those of days 1..d). "
        f"Epochs: {args.epochs} per cold run, {args.warm_epochs} per warm run (config A's 3 epochs, "
        "`bench/rsc15_configs.py`). **New-item hit rate**: among day d+1's evaluated events whose target first "
        "appeared on day d, the share ranked in the top 20 (number of such events in brackets; per-event ranks "
        "from `Evaluator.ranks_and_targets`). **Training events**: transitions × epochs. **Seconds**: each run's "
        "training time, timed in the run's own process"
        + (" (every run is a new Python process, as a daily job is)" if args.isolate else "")
        + ": reading its event files, loading the warm-start model, building the model, tracing, compiling or "
        "loading the compiled loop, and the epochs; not starting Python and TensorFlow, evaluating or saving. "
        + ("Each chain (cold, and each warm setting) keeps its compiled training loops in a persistent XLA cache "
           "of its own (`gru4rec train --compile_cache_dir`), so a run loads the loop its own chain compiled on an "
           "earlier day when the item capacity (`compile_cache.item_capacity`) is unchanged (a warm chain's day 1 is "
           "the cold run, so its cache starts with that run's programs, as a daily job's does), and never uses "
           "another chain's. " if args.compile_cache == "chain" and args.isolate else
           "Every run compiles its training loop (no persistent cache). ")
        + "In brackets the epochs' own time, and that time without the first epoch's excess over the mean of the "
        "later epochs (tracing, compiling or loading the loop). Means and the "
        "targets use the warm-start days d ≥ 2 (on day 1 the two are the same model); the new-item rate in the "
        "mean row pools the events of those days (on day 1 every item is new, so its rate is the whole day's "
        "Recall@20). The main warm setting is the cold runs' parameters with the epochs of `warm_epochs_rule` "
        "(one fewer than cold, at least 1: a warm run continues a model trained on the earlier days and trains "
        "only the newest day, which more epochs over-fit) and the optimizer state carried over, decided before "
        "this run"
        + (f"; the other warm settings (`--warm_variants {args.warm_variants}`) are reported beside it, each as its "
           "own daily chain." if args.warm_variants else "."), "",
        *([SEE_ALSO, ""] if os.path.basename(args.output) == "continuous_training.md" else []),
        *sections,
        f"![per-day curves]({os.path.basename(args.plot)})", "",
        "<details><summary>raw per-day figures</summary>", "", "```json", json.dumps(results, indent=1), "```",
        "</details>", "",
    ])
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    plot(results, args.plot)
    print(f"wrote {args.output} and {args.plot} ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
