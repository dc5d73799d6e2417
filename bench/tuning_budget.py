"""Tuning on a small budget (#26): ``gru4rec tune`` (portfolio first, successive halving) against the fixed settings.

For each cell (dataset, loss, budget in full trials, seed of the search):

1. ``gru4rec tune --trials BUDGET --epochs 3 --seed SEED --fixed_params loss=LOSS,n_sample=2048`` (the defaults:
   ``--algorithm halving --initial_params portfolio``) on ``train_tr`` -> ``train_valid``, timed as a user runs it
   (a subprocess, TensorFlow start-up included);
2. the chosen parameters trained on ``train_full`` for the chosen epochs and evaluated on ``test`` (full catalogue,
   standard ties; Recall@20 / MRR@20).

The references, trained and evaluated the same way (3 epochs, the same training seed): configurations A and B of
the accuracy benchmark and every portfolio entry of the loss alone. The target per cell: the tuned model at least
as good as the best of A, B and every portfolio entry on both metrics, with the search under 10 minutes.

Every finished cell and reference is stored in ``--state`` (JSON) at once and the Markdown rewritten, so a run
that is stopped keeps what it finished and a re-run continues. Usage::

    flock /tmp/gru4rec-bench.lock .venv/bin/python bench/tuning_budget.py [--budgets 12,30] [--seeds 1,2] \
        [--losses bpr-max,cross-entropy] [--dataset rsc15|generator] [--only search|references]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsc15_configs import CONFIG_A, CONFIG_B, RSC15  # pylint: disable=wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results")
EPOCHS = 3
TRAIN_SEED = 42  # every model of the test table (the library's default training seed)
LOSS_FIXED = {"bpr-max": "loss=bpr-max,n_sample=2048", "cross-entropy": "loss=cross-entropy,n_sample=2048"}
# trials.csv columns that are not searched values (the rest, but the per-epoch ones, identify a configuration)
NOT_SEARCHED = ("trial", "state", "value", "best_epoch", "seconds", "rung", "fraction", "epochs", "epochs_trained",
                "message")
# the built-in generator's data: a catalogue of 20k items (the issue), 20k sessions over 12 days (~100k events,
# 84k of them in train_tr: 1.6x rsc15_100k's, so its 16 references and 4 cells fit a session; 60k sessions, 5x,
# would take about 3 hours on this 2-core machine)
PAIRED_RESAMPLES = 2000  # bootstrap resamples of the test sessions for the paired differences
GENERATOR = {"n_items": 20_000, "n_sessions": 20_000, "seed": 3, "span_days": 12.0}


def log(message):
    print(time.strftime("%H:%M:%S ") + message, flush=True)


# ----------------------------------------------------------------------------------------------------- data
def dataset_files(name, work_dir):
    """``{train_tr, train_valid, train_full, test}`` paths of the dataset (the generator's written once)."""
    if name == "rsc15":
        return {k: os.path.join(RSC15, f"{k}.tsv") for k in ("train_tr", "train_valid", "train_full", "test")}
    root = os.path.join(work_dir, "generator-s{n_sessions}-i{n_items}".format(**GENERATOR))
    files = {k: os.path.join(root, f"{k}.tsv") for k in ("train_tr", "train_valid", "train_full", "test")}
    if not all(os.path.exists(p) for p in files.values()):
        import gru4rec_tf  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
        from gru4rec_tf.data import synthetic  # pylint: disable=g-import-not-at-top
        os.makedirs(root, exist_ok=True)
        events = synthetic.generate_sessions(**GENERATOR)
        full, test = synthetic.train_test_split_by_time(events, test_days=1.0)
        train_tr, valid = synthetic.train_test_split_by_time(full, test_days=1.0)
        for key, frame in (("train_full", full), ("test", test), ("train_tr", train_tr), ("train_valid", valid)):
            frame.to_csv(files[key], sep="\t", index=False, float_format="%.3f")
    return files


# --------------------------------------------------------------------------------------------- the models
_LOADED = {}


def _trained(params_text, epochs, files):
    """``(TrainResult, test data, seconds)``: ``params_text`` trained on train_full for ``epochs`` epochs (seed
    TRAIN_SEED)."""
    import gru4rec_tf  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    from gru4rec_tf.data.event_log import load_events  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.session_data import SessionData  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.vocabulary import ItemVocabulary  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.params import GRU4RecParams  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.train import routine  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.train.options import TrainOptions  # pylint: disable=g-import-not-at-top
    key = files["train_full"]
    if key not in _LOADED:
        train_events, test_events = load_events(files["train_full"]), load_events(files["test"])
        vocab = ItemVocabulary.from_events(train_events)
        _LOADED[key] = (vocab, SessionData.from_events(train_events, vocab), SessionData.from_events(test_events,
                                                                                                     vocab))
    vocab, train, test = _LOADED[key]
    params = GRU4RecParams.from_string(params_text).with_overrides({"n_epochs": int(epochs)})
    started = time.perf_counter()
    trained = routine.train(train, vocab, params, TrainOptions(seed=TRAIN_SEED, log_every_s=1e9))
    return trained, test, time.perf_counter() - started


def evaluate(params_text, epochs, files):
    """Trains ``params_text`` on train_full for ``epochs`` epochs (seed TRAIN_SEED); test Recall@20 / MRR@20."""
    from gru4rec_tf.evaluation import full_catalogue  # pylint: disable=g-import-not-at-top
    started = time.perf_counter()
    trained, test, _ = _trained(params_text, epochs, files)
    metrics = full_catalogue.Evaluator(trained.model).evaluate(test, cutoffs=(20,), mode="standard")
    return {"recall@20": float(metrics["recall@20"]), "mrr@20": float(metrics["mrr@20"]), "epochs": int(epochs),
            "params": trained.params.to_string(), "seconds": time.perf_counter() - started}


def ranked_test_events(params_text, epochs, files, path):
    """``{"rank", "session"}`` arrays of every test event of the model :func:`evaluate` trains (the same seed, so
    the same model), kept in ``path`` (.npz) so that each model is trained once for all comparisons."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    if not os.path.exists(path):
        from gru4rec_tf.evaluation import full_catalogue  # pylint: disable=g-import-not-at-top
        trained, test, seconds = _trained(params_text, epochs, files)
        ranked = full_catalogue.Evaluator(trained.model).ranked_events(test, mode="standard")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.savez(path + ".tmp.npz", rank=ranked.ranks, session=ranked.sessions)
        os.replace(path + ".tmp.npz", path)
        log(f"  ranked {os.path.basename(path)} ({seconds:.0f} s training)")
    with np.load(path) as stored:
        return {"rank": stored["rank"], "session": stored["session"]}


def references(loss):
    """``[(name, params, source)]``: A, B and every portfolio entry of ``loss`` (with the loss's fixed params)."""
    from gru4rec_tf.tune import portfolio  # pylint: disable=g-import-not-at-top
    out = [("A", CONFIG_A, "bench/rsc15_configs.py"), ("B", CONFIG_B, "bench/rsc15_configs.py")]
    extra = ",logq=1.0" if loss == "cross-entropy" else ""
    for entry in portfolio.entries_for(loss):
        out.append((entry.name, f"{LOSS_FIXED[loss]}{extra},constrained_embedding=True,{entry.params}",
                    entry.source))
    return out


def references_of(state, dataset, loss):
    """``{name: stored result}`` of the references evaluated for ``dataset`` and ``loss`` (A and B included)."""
    return {k.split("|")[2]: v for k, v in state["references"].items()
            if k.split("|")[0] == dataset and k.split("|")[1] in (loss, "*")}


def ranks_path(work_dir, cell, reference=None):
    """Where the test ranks of ``cell``'s tuned model (or of the reference named ``reference``) are kept."""
    name = f"reference_{reference}" if reference else f"tuned_{cell['loss']}_{cell['budget']}_{cell['seed']}"
    return os.path.join(work_dir, "ranks", cell["dataset"], name + ".npz")


def paired_comparison(cell, refs, files, work_dir):
    """The tuned model of ``cell`` against the best reference of each metric on the same test events: ``{metric:
    {"reference", "difference", "ci", "reproduced"}}``, the difference tuned - reference with its 95% interval
    from test sessions resampled for both models at once (a paired bootstrap: the library's sliced evaluation,
    one slice of all events). ``reproduced``: whether both retrained models gave the stored figures again."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    import pandas as pd  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.evaluation import full_catalogue, slices  # pylint: disable=g-import-not-at-top
    test = cell["test"]
    tuned = ranked_test_events(test["params"], test["epochs"], files, ranks_path(work_dir, cell))
    out = {}
    for metric in ("recall@20", "mrr@20"):
        name = max(refs, key=lambda k, m=metric: refs[k][m])
        reference = ranked_test_events(refs[name]["params"], refs[name]["epochs"], files,
                                       ranks_path(work_dir, cell, reference=name))
        if not np.array_equal(reference["session"], tuned["session"]):
            raise RuntimeError(f"the test events of {name} and the tuned model are not aligned")
        reproduced = all(abs(full_catalogue.metrics_from_ranks(ranks["rank"], (20,))[metric] - stored[metric])
                         < 1e-6 for ranks, stored in ((tuned, test), (reference, refs[name])))
        frame = pd.DataFrame({"session": tuned["session"], "rank": tuned["rank"], "baseline_rank": reference["rank"]})
        table = slices.paired_slice_table(frame, {"all": np.ones(len(frame), dtype=bool)}, (20,),
                                          n_resamples=PAIRED_RESAMPLES, seed=0)
        difference = table["all"]["difference"]
        out[metric] = {"reference": name, "difference": difference[metric], "ci": difference[f"{metric}_ci"],
                       "reproduced": reproduced, "events": table["all"]["events"],
                       "sessions": table["all"]["sessions"]}
        log(f"  {metric}: tuned - {name} = {difference[metric]:+.4f} [{difference[f'{metric}_ci'][0]:+.4f}, "
            f"{difference[f'{metric}_ci'][1]:+.4f}]" + ("" if reproduced else " (NOT reproduced)"))
    return out


def search(dataset, loss, budget, seed, files, work_dir, force=False):
    output = os.path.join(work_dir, f"{dataset}_{loss}_{budget}_{seed}")
    command = [sys.executable, "-m", "gru4rec_tf", "tune", "--train", files["train_tr"], "--valid",
               files["train_valid"], "--trials", str(budget), "--epochs", str(EPOCHS), "--seed", str(seed),
               "--fixed_params", LOSS_FIXED[loss], "--output", output]
    if force and os.path.isdir(output):  # a re-run with the current engine: the old study moves aside
        import shutil  # pylint: disable=g-import-not-at-top
        shutil.rmtree(output + ".prev", ignore_errors=True)
        os.replace(output, output + ".prev")
    log("$ gru4rec " + " ".join(command[3:]))
    load_before = os.getloadavg()
    started = time.perf_counter()
    process = subprocess.run(command, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), check=False,
                             stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    lines = [line.split("] ", 1)[-1] for line in process.stderr.splitlines() if "tune:" in line]
    if process.returncode != 0:
        sys.exit(f"gru4rec tune failed ({loss}, {budget}, seed {seed}):\n{process.stderr[-3000:]}")
    with open(os.path.join(output, "best_params.json"), encoding="utf-8") as handle:
        best = json.load(handle)
    import csv  # pylint: disable=g-import-not-at-top
    with open(os.path.join(output, "trials.csv"), encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    configs = {tuple((k, r[k]) for k in r if k not in NOT_SEARCHED and "_epoch" not in k) for r in rows}
    best_row = rows[int(best["trial"]) - 1]
    summary = [line for line in lines if "successive halving" in line or "Spearman" in line]
    return {"wall_s": wall, "evaluations": len(rows), "configurations": len(configs), "best": best,
            "states": {s: [r["state"] for r in rows].count(s) for s in sorted({r["state"] for r in rows})},
            "per_rung": [sum(1 for r in rows if r.get("rung") == str(k)) for k in range(4)
                         if k < 3 or any(r.get("rung") == str(k) for r in rows)],  # rung 3: the extension
            "winner_first_rung_trial": next((int(r["trial"]) for r in rows if r.get("rung") == "0" and all(
                r[k] == best_row[k] for k in best_row if k not in NOT_SEARCHED and "_epoch" not in k)), None),
            "summary": summary, "last_line": lines[-1] if lines else "",
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
            "engine": _engine()}


def _engine():
    """The last commit of the tuner's files the search ran with (+changes when they had uncommitted ones)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()
    paths = ("gru4rec_tf/tune", "gru4rec_tf/commands/tune.py")
    dirty = git("status", "--porcelain", "--", *paths)
    return git("log", "-1", "--format=%h", "--", *paths) + ("+changes" if dirty else "")


# ----------------------------------------------------------------------------------------------- the report
def write_report(state, path):
    lines = ["# Tuning on a small budget (`bench/tuning_budget.py`, #26)", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M')} UTC ({platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}; each cell's row gives the 1-minute load average before and after "
             "its search (the search itself keeps about 2-3 of it busy; more means other jobs) and the last commit "
             "of the tuner's files it ran with). Each cell: "
             f"`gru4rec tune --trials BUDGET --epochs {EPOCHS} --seed SEED "
             "--fixed_params loss=LOSS,n_sample=2048` with the defaults (`--algorithm halving --initial_params "
             "portfolio`, objective MRR@20) on `train_tr` -> `train_valid`; the chosen parameters and epochs then "
             f"trained on `train_full` and evaluated on `test` (full catalogue, standard ties), training seed "
             f"{TRAIN_SEED} for every model. References: configurations A and B and every portfolio entry of the "
             f"loss alone, {EPOCHS} epochs, same training seed. Target: tuned >= the best of A, B and every "
             "portfolio entry on both metrics, search under 10 minutes.", ""]
    for dataset in sorted({c["dataset"] for c in state["cells"].values()} | {k.split("|")[0]
                                                                               for k in state["references"]}):
        lines += [f"## {dataset}", ""]
        for loss in ("bpr-max", "cross-entropy"):
            refs = references_of(state, dataset, loss)
            cells = [c for c in state["cells"].values() if c["dataset"] == dataset and c["loss"] == loss]
            if not refs and not cells:
                continue
            lines += [f"### {loss}", "", "| model | epochs | Recall@20 | MRR@20 | train s |", "|---|---|---|---|---|"]
            for name, ref in refs.items():
                lines.append(f"| {name} | {ref['epochs']} | {ref['recall@20']:.4f} | {ref['mrr@20']:.4f} | "
                             f"{ref['seconds']:.0f} |")
            expected = len(references(loss))
            complete = len(refs) == expected
            best_r = max((r["recall@20"] for r in refs.values()), default=None)
            best_m = max((r["mrr@20"] for r in refs.values()), default=None)
            portfolio_refs = {k: v for k, v in refs.items() if k not in ("A", "B")}
            best_entry = max(portfolio_refs, key=lambda k: portfolio_refs[k]["mrr@20"]) if portfolio_refs else None
            lines += ["", f"References evaluated: {len(refs)} of {expected}"
                      + ("" if complete else " (the missing ones were not run: the verdicts below compare with "
                                             "those evaluated)")
                      + (f"; best of them: Recall@20 {best_r:.4f}, MRR@20 {best_m:.4f}; best portfolio entry "
                         f"alone (by MRR@20): {best_entry}." if refs else "."), ""]
            if cells:
                lines += ["| budget | seed | search wall | evaluations (rungs 0/1/2[/extension]) | configurations | "
                          "chosen | epochs | valid MRR@20 | test Recall@20 | test MRR@20 | target | load | engine |",
                          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
                for c in sorted(cells, key=lambda c: (c["budget"], c["seed"])):
                    s, t = c["search"], c["test"]
                    ok = best_r is not None and t["recall@20"] >= best_r and t["mrr@20"] >= best_m
                    fast = s["wall_s"] < 600 or c["budget"] != 12
                    verdict = ("met" if ok and fast else "quality met, time NOT met" if ok else "NOT met") \
                        if refs else "no references yet"
                    lines.append(f"| {c['budget']} | {c['seed']} | {s['wall_s'] / 60:.1f} min | {s['evaluations']} "
                                 f"({'/'.join(map(str, s['per_rung']))}) | {s['configurations']} | "
                                 f"trial {s['best']['trial']} | {t['epochs']} | {s['best']['value']:.4f} | "
                                 f"{t['recall@20']:.4f} | {t['mrr@20']:.4f} | {verdict} | {_load(s)} | "
                                 f"{s.get('engine', 'before 6f7c6b7')} |")
                lines += ["", "Chosen parameters and the search's own summary:", ""]
                for c in sorted(cells, key=lambda c: (c["budget"], c["seed"])):
                    lines.append(f"* budget {c['budget']}, seed {c['seed']}: `{c['test']['params']}`; "
                                 + "; ".join(c["search"]["summary"]))
                lines.append("")
                lines += _paired_lines(state, dataset, cells)
    notes = state.get("notes", "")
    if notes:
        lines += ["## Notes", "", notes, ""]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _paired_lines(state, dataset, cells):
    """The paired comparisons of ``cells`` (those computed) as a Markdown table, or nothing."""
    rows = []
    for c in sorted(cells, key=lambda c: (c["budget"], c["seed"])):
        paired = state.get("paired", {}).get(f"{dataset}|{c['loss']}|{c['budget']}|{c['seed']}")
        if not paired:
            continue
        cols = []
        for metric in ("recall@20", "mrr@20"):
            p = paired[metric]
            lo, hi = p["ci"]
            reading = "above" if lo > 0 else "below" if hi < 0 else "tie (the interval holds 0)"
            cols += [p["reference"] + ("" if p["reproduced"] else " (not reproduced)"),
                     f"{p['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]", reading]
        rows.append(f"| {c['budget']} | {c['seed']} | " + " | ".join(cols) + " |")
    if not rows:
        return []
    any_paired = next(v for k, v in state["paired"].items() if k.startswith(dataset + "|"))["recall@20"]
    return [f"Tuned minus the best reference of each metric, on the same {any_paired['events']:,} test events of "
            f"{any_paired['sessions']:,} sessions: the difference and its 95% interval from {PAIRED_RESAMPLES:,} "
            "resamples of the test sessions taken for both models at once (a paired bootstrap). \"above\" or "
            "\"below\": the interval excludes 0; a tie: this test set cannot tell the two models apart on that "
            "metric.", "",
            "| budget | seed | Recall@20 reference | tuned - reference [95%] | reading | MRR@20 reference | "
            "tuned - reference [95%] | reading |", "|---|---|---|---|---|---|---|---|", *rows, ""]


def _load(search_result):
    """The 1-minute load average before / after the search ("?" for cells stored without it)."""
    if "load_before" not in search_result:
        return "?"
    return f"{search_result['load_before'][0]:.1f} / {search_result['load_after'][0]:.1f}"


def selected_cells(args, losses):
    """``(key, loss, budget, seed)`` of every cell that ``--dataset``, ``--budgets``, ``--seeds`` and ``losses``
    select."""
    for budget in [int(b) for b in args.budgets.split(",")]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for loss in losses:
                yield f"{args.dataset}|{loss}|{budget}|{seed}", loss, budget, seed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="rsc15", choices=["rsc15", "generator"])
    parser.add_argument("--budgets", default="12")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--losses", default="bpr-max,cross-entropy")
    parser.add_argument("--only", default="", choices=["", "search", "references", "paired"],
                        help="run only the searches (with their test runs), only the references, or only the paired "
                        "comparisons of the stored cells with the best references (each model trained once more "
                        "to rank every test event)")
    parser.add_argument("--references", default="", help="comma-separated reference names to evaluate (default: "
                        "all; A,B first)")
    parser.add_argument("--rerun", action="store_true", help="run the selected cells again even when stored (a "
                        "changed engine); their old study directories move to DIR.prev")
    parser.add_argument("--work_dir", default="/tmp/gru4rec_tuning_budget")
    parser.add_argument("--state", default=os.path.join(RESULTS, "tuning_budget.json"))
    parser.add_argument("--output", default=os.path.join(RESULTS, "tuning_budget.md"))
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    state = {"cells": {}, "references": {}}
    if os.path.exists(args.state):
        with open(args.state, encoding="utf-8") as handle:
            state = json.load(handle)

    def save():
        with open(args.state + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
        os.replace(args.state + ".tmp", args.state)
        write_report(state, args.output)

    files = dataset_files(args.dataset, args.work_dir)
    losses = [x.strip() for x in args.losses.split(",") if x.strip()]
    wanted = {x.strip() for x in args.references.split(",") if x.strip()}
    if args.only != "search":
        for loss in losses:
            for name, params, _ in references(loss):
                key = f"{args.dataset}|{'*' if name in ('A', 'B') else loss}|{name}"  # A and B: once
                if key in state["references"] or (wanted and name not in wanted):
                    continue
                log(f"reference {key}")
                state["references"][key] = evaluate(params, EPOCHS, files)
                log(f"  {state['references'][key]['recall@20']:.4f} / {state['references'][key]['mrr@20']:.4f}")
                save()
    if args.only in ("", "search"):
        for key, loss, budget, seed in selected_cells(args, losses):
            if key in state["cells"] and not args.rerun:
                continue
            result = search(args.dataset, loss, budget, seed, files, args.work_dir, force=args.rerun)
            log(f"  search {result['wall_s'] / 60:.1f} min, {result['evaluations']} evaluations, "
                f"{result['configurations']} configurations; {result['last_line']}")
            best = result["best"]
            test = evaluate(best["params"], best["epochs"], files)
            log(f"  test {test['recall@20']:.4f} / {test['mrr@20']:.4f}")
            state["cells"][key] = {"dataset": args.dataset, "loss": loss, "budget": budget, "seed": seed,
                                   "search": result, "test": test}
            state.get("paired", {}).pop(key, None)  # a new tuned model: its comparison is made again
            if os.path.exists(ranks_path(args.work_dir, state["cells"][key])):
                os.remove(ranks_path(args.work_dir, state["cells"][key]))
            save()
    if args.only in ("", "paired"):
        for key, loss, _, _ in selected_cells(args, losses):
            refs = references_of(state, args.dataset, loss)
            if key not in state["cells"] or key in state.get("paired", {}) or not refs:
                continue
            log(f"paired comparison {key}")
            state.setdefault("paired", {})[key] = paired_comparison(state["cells"][key], refs, files, args.work_dir)
            save()
    save()
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
