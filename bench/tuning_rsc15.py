"""Tuning on rsc15_100k: ``gru4rec tune`` per loss, then the best parameters against the fixed configurations.

1. ``gru4rec tune`` (the command line, as a user runs it) on ``train_tr.tsv`` / ``train_valid.tsv`` for BPR-max and
   cross-entropy (default spaces, objective MRR@20, median pruning), each with a time limit;
2. the best parameters of each study (with their best epoch count) and the reference configurations -- A and B of
   the accuracy benchmark (3 epochs) and the authors' ``rsc15_xe_shared_100_best`` paramfile (10 epochs) -- are
   trained on ``train_full.tsv`` and evaluated on ``test.tsv`` (full catalogue, standard ties), mean of the seeds;
3. writes ``bench/results/tuning_rsc15.md`` and the studies' optimisation-history plots beside it.

The studies are stored in ``--work_dir`` and resumed by a re-run (``--trials`` is each study's total). Usage::

    .venv/bin/python bench/tuning_rsc15.py [--trials 40] [--epochs 4] [--timeout_s 1140] [--seeds 2] \
        [--initial_params best_known]
"""
import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsc15_configs import CONFIG_A, CONFIG_B, RSC15  # pylint: disable=wrong-import-position
from gru4rec_tf.train.options import DEFAULT_EARLY_STOPPING_METRIC  # pylint: disable=wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results")
# The authors' paramfiles/rsc15_xe_shared_100_best.py (spec §9's footnote values).
XE_SHARED_100_BEST = ("loss=cross-entropy,final_act=softmax,constrained_embedding=True,embedding=0,layers=100,"
                      "batch_size=32,dropout_p_embed=0.0,dropout_p_hidden=0.4,learning_rate=0.2,momentum=0.2,"
                      "n_sample=2048,sample_alpha=0.5,bpreg=0.0,logq=1.0")
REFERENCES = [("A (BPR-max, elu-0.5)", CONFIG_A, 3), ("B (cross-entropy + logQ)", CONFIG_B, 3),
              ("authors' rsc15_xe_shared_100_best", XE_SHARED_100_BEST, 10)]
LOSSES = {"bpr-max": "loss=bpr-max,n_sample=2048", "cross-entropy": "loss=cross-entropy,n_sample=2048"}


def tune(loss, args):
    output = os.path.join(args.work_dir, loss)
    command = [sys.executable, "-m", "gru4rec_tf", "tune", "--train", os.path.join(args.data, "train_tr.tsv"),
               "--valid", os.path.join(args.data, "train_valid.tsv"), "--trials", str(args.trials),
               "--epochs", str(args.epochs), "--objective", args.objective, "--fixed_params", LOSSES[loss],
               "--timeout_s", str(args.timeout_s), "--output", output]
    if args.initial_params:
        command += ["--initial_params", args.initial_params]
    print("$ " + " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.run(command, cwd=REPO, env=env, check=False, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    progress = [line for line in process.stderr.splitlines() if "tune:" in line]
    print("\n".join(progress[-3:]), flush=True)
    if process.returncode != 0:
        sys.exit(f"gru4rec tune failed for {loss}:\n{process.stderr[-3000:]}")
    with open(os.path.join(output, "best_params.json"), encoding="utf-8") as handle:
        best = json.load(handle)
    with open(os.path.join(output, "trials.csv"), encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    stem = os.path.splitext(os.path.basename(args.output))[0]
    plot = os.path.join(os.path.dirname(os.path.abspath(args.output)), f"{stem}_{loss}.png")
    shutil.copyfile(os.path.join(output, "optimization_history.png"), plot)
    states = [r["state"] for r in rows]
    return {"loss": loss, "best": best, "wall_s": wall, "trials": len(rows),
            "states": {s: states.count(s) for s in sorted(set(states))},
            "trial_seconds": sum(float(r["seconds"] or 0) for r in rows), "plot": os.path.basename(plot),
            "progress_tail": progress[-1] if progress else ""}


def evaluate(params_text, epochs, seeds, train_events, test_events):
    from gru4rec_tf.evaluation import full_catalogue
    from gru4rec_tf.train import routine  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.train.options import TrainOptions  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.params import GRU4RecParams  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.session_data import SessionData  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.vocabulary import ItemVocabulary  # pylint: disable=g-import-not-at-top
    params = GRU4RecParams.from_string(params_text).with_overrides({"n_epochs": epochs})
    vocab = ItemVocabulary.from_events(train_events)
    train_data, test_data = SessionData.from_events(train_events, vocab), SessionData.from_events(test_events, vocab)
    runs = []
    for seed in range(1, seeds + 1):
        trained = routine.train(train_data, vocab, params, TrainOptions(seed=seed, log_every_s=1e9))
        metrics = full_catalogue.Evaluator(trained.model).evaluate(test_data, cutoffs=(5, 20), mode="standard")
        runs.append({"recall@20": metrics["recall@20"], "mrr@20": metrics["mrr@20"],
                     "train_seconds": trained.train_seconds})
        print(f"  seed {seed}: {metrics['recall@20']:.4f} / {metrics['mrr@20']:.4f}", flush=True)
    return {"recall@20": float(np.mean([r["recall@20"] for r in runs])),
            "mrr@20": float(np.mean([r["mrr@20"] for r in runs])), "runs": runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=RSC15)
    parser.add_argument("--trials", type=int, default=40, help="trials per loss (each study's total)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per trial (the best epoch is kept)")
    parser.add_argument("--timeout_s", type=float, default=1140.0, help="per loss: no new trial after this")
    parser.add_argument("--objective", default=DEFAULT_EARLY_STOPPING_METRIC)
    parser.add_argument("--initial_params", default="", help="passed to gru4rec tune, e.g. best_known (each "
                        "study's first trial: configuration A / the authors' XE paramfile)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the final train_full -> test runs")
    parser.add_argument("--losses", default="bpr-max,cross-entropy")
    parser.add_argument("--work_dir", default=os.path.join("/tmp", "gru4rec_tuning_rsc15"))
    parser.add_argument("--output", default=os.path.join(RESULTS, "tuning_rsc15.md"))
    args = parser.parse_args()
    needed = ["train_tr.tsv", "train_valid.tsv", "train_full.tsv", "test.tsv"]
    missing = [n for n in needed if not os.path.isfile(os.path.join(args.data, n))]
    if missing:
        sys.exit(f"rsc15_100k not found: {args.data} lacks {', '.join(missing)} (give --data DIR)")
    os.makedirs(RESULTS, exist_ok=True)
    started = time.perf_counter()
    studies = [tune(loss.strip(), args) for loss in args.losses.split(",")]
    tuning_wall = time.perf_counter() - started

    import gru4rec_tf  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (TF_USE_LEGACY_KERAS)
    from gru4rec_tf.data.event_log import load_events  # pylint: disable=g-import-not-at-top
    train_events = load_events(os.path.join(args.data, "train_full.tsv"))
    test_events = load_events(os.path.join(args.data, "test.tsv"))
    results = []
    for name, params, epochs in REFERENCES:
        print(f"{name}, {epochs} epochs", flush=True)
        results.append((name, epochs, params, evaluate(params, epochs, args.seeds, train_events, test_events)))
    for study in studies:
        best = study["best"]
        name = f"tuned {study['loss']} (trial {best['trial']})"
        print(f"{name}, {best['epochs']} epochs", flush=True)
        results.append((name, best["epochs"], best["params"],
                        evaluate(best["params"], best["epochs"], args.seeds, train_events, test_events)))
    write_report(args, studies, results, tuning_wall)


def write_report(args, studies, results, tuning_wall):
    references = results[:len(REFERENCES)]
    best_recall = max(r[3]["recall@20"] for r in references)
    best_mrr = max(r[3]["mrr@20"] for r in references)
    lines = ["| model | epochs | Recall@20 | MRR@20 | runs (R@20/M@20) |", "|---|---|---|---|---|"]
    for name, epochs, _, metrics in results:
        runs = ", ".join(f"{r['recall@20']:.4f}/{r['mrr@20']:.4f}" for r in metrics["runs"])
        lines.append(f"| {name} | {epochs} | {metrics['recall@20']:.4f} | {metrics['mrr@20']:.4f} | {runs} |")
    verdicts = []
    for name, _, _, metrics in results[len(REFERENCES):]:
        ok_r, ok_m = metrics["recall@20"] >= best_recall, metrics["mrr@20"] >= best_mrr
        verdicts.append(f"* {name}: Recall@20 {metrics['recall@20']:.4f} vs best reference {best_recall:.4f} "
                        f"({'>=' if ok_r else 'BELOW'}), MRR@20 {metrics['mrr@20']:.4f} vs {best_mrr:.4f} "
                        f"({'>=' if ok_m else 'BELOW'}): target {'met' if ok_r and ok_m else 'NOT met'}")
    study_lines = ["| loss | trials (states) | tuning wall time | best validation " + args.objective +
                   " | best epoch | best parameters |", "|---|---|---|---|---|---|"]
    for s in studies:
        states = ", ".join(f"{n} {k.lower()}" for k, n in s["states"].items())
        study_lines.append(f"| {s['loss']} | {s['trials']} ({states}) | {s['wall_s'] / 60:.1f} min | "
                           f"{s['best']['value']:.4f} | {s['best']['epochs']} | `{s['best']['params']}` |")
    initial = f" --initial_params {args.initial_params}" if args.initial_params else ""
    plots = "\n".join(f"![{s['loss']} optimisation history]({s['plot']})" for s in studies)
    text = f"""# Hyperparameter tuning on rsc15_100k (`bench/tuning_rsc15.py`)

Written on {time.strftime('%Y-%m-%d %H:%M')} ({platform.machine()}, {os.cpu_count()} cores shared with other jobs,
Python {platform.python_version()}). Settings: `--trials {args.trials} --epochs {args.epochs} --timeout_s
{args.timeout_s:g} --objective {args.objective}{initial}` per loss (KerasTuner Bayesian optimisation, default spaces,
median pruning after 4 trials), tuning on `train_tr.tsv` -> `train_valid.tsv`; then every model below trained on
`train_full.tsv` and evaluated on `test.tsv` (full catalogue, standard ties), mean of {args.seeds} seed(s).

**Whole tuning run: {tuning_wall / 60:.1f} min** (both studies, including TensorFlow start-up of each command).

## Studies

{chr(10).join(study_lines)}

## Test set (train_full -> test)

{chr(10).join(lines)}

Target: at least as good as the best reference on both metrics (Recall@20 {best_recall:.4f}, MRR@20
{best_mrr:.4f} in this run).

{chr(10).join(verdicts)}

## Optimisation history

{plots}
"""
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
