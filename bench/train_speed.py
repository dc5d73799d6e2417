"""Training and evaluation speed: events/second, first-epoch overhead, peak memory, scaling plots.

Every case runs in its own subprocess (so its peak RSS is its own) with TensorFlow limited to ``--threads`` threads.
Cases:
  * rsc15_100k configs A (BPR-max) and B (cross-entropy + logQ): ``--epochs`` epochs, repeated ``--reps`` times;
    median training events/second over the epochs after the first, first-epoch/later-epoch time ratio, evaluation
    events/second over the full catalogue;
  * the execution paths on config A, as a breakdown of where the time goes: one eager Python call per step (what
    the official ports do), the compiled multi-step loop without XLA, and the loop as one XLA computation (full-size
    distinct rows, and the default distinct-row budget); ``bench/profile_step.py`` breaks a step down further;
  * synthetic data with 100k and 1M items (~2M events, the project's generator): one epoch, evaluation on a capped
    number of test sessions;
  * batch size 32..512 and layer size 100/256/512 on rsc15 config A (a fixed number of steps), plotted to PNG.
Results: ``bench/results/speed_breakdown.md`` and ``bench/results/speed_scaling.png``. Usage::

    .venv/bin/python bench/train_speed.py [--quick] [--threads 2] [--reps 3]
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
from rsc15_configs import CONFIG_A, CONFIG_B, RSC15  # noqa: E402  pylint: disable=wrong-import-position


# ---------------------------------------------------------------------------------------------- one case (child)
def _load(case):
    from gru4rec_tf.data import synthetic  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.vocabulary import ItemVocabulary
    from gru4rec_tf.data.session_data import SessionData
    from gru4rec_tf.data.event_log import load_events
    if case["data"] == "rsc15":
        train = load_events(os.path.join(RSC15, "train_full.tsv"))
        test = load_events(os.path.join(RSC15, "test.tsv"))
    else:
        events = synthetic.generate_sessions(n_items=case["n_items"], n_sessions=case["n_sessions"], seed=0,
                                             span_days=30.0)
        train, test = synthetic.train_test_split_by_time(events, test_days=1.0)
    vocab = ItemVocabulary.from_events(train)
    test_data = SessionData.from_events(test, vocab)
    if case.get("max_test_sessions"):
        test_data = test_data.first_sessions(case["max_test_sessions"])
    return vocab, SessionData.from_events(train, vocab), test_data


def run_case(case):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.threading.set_intra_op_parallelism_threads(case["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(case["threads"])
    from gru4rec_tf.evaluation import full_catalogue
    from gru4rec_tf.train import routine  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.params import GRU4RecParams  # pylint: disable=g-import-not-at-top
    vocab, train_data, test_data = _load(case)
    params = GRU4RecParams.from_string(case["params"])
    trainer = routine.build_trainer(vocab.support, params, seed=1, jit_compile=case.get("jit", True))
    model = trainer.model
    if case.get("no_row_budget"):
        trainer.row_budget.budget = None  # the ablation: always the full size
    schedule = trainer.make_schedule(train_data)
    if case.get("max_steps"):
        schedule = schedule.steps(0, min(case["max_steps"], schedule.n_steps))
    epochs = []
    for epoch in range(case["epochs"]):
        if case.get("path") == "eager":
            start = time.perf_counter()
            states = model.initial_states(params.batch_size)
            for chunk in schedule.chunks(256):
                states, _ = trainer.run_steps_eagerly(chunk, trainer.sampler.sample(chunk.n_steps), states)
            seconds = time.perf_counter() - start
            epochs.append({"seconds": seconds, "events_per_sec": schedule.n_transitions / seconds})
        else:
            stats = trainer.train_epoch(schedule, epoch, log_every_s=1e9)
            epochs.append({"seconds": stats.seconds, "events_per_sec": stats.events_per_sec})
    result = {"case": case, "epochs": epochs, "n_items": len(vocab), "train_events": schedule.n_transitions}
    if case.get("evaluate"):
        evaluator = full_catalogue.Evaluator(model)
        evaluator.ranks(test_data.first_sessions(50))  # warm-up: tracing is not evaluation time
        start = time.perf_counter()
        metrics = evaluator.evaluate(test_data, cutoffs=(20,))
        seconds = time.perf_counter() - start
        result["eval"] = {"events": metrics["eval_events"], "seconds": seconds,
                          "events_per_sec": metrics["eval_events"] / seconds, "recall@20": metrics["recall@20"],
                          "batch_size": evaluator.batch_size}
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return result


# ---------------------------------------------------------------------------------------------- driver (parent)
def spawn(case):
    proc = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps({k: v for k, v in result.items() if k != "case"}), flush=True)
    return result


def later_rates(results):
    """Events/s of every epoch after the first (the first includes tracing and XLA compilation)."""
    return [e["events_per_sec"] for r in results for e in (r["epochs"][1:] or r["epochs"])]


def later_median(result):
    return statistics.median(later_rates([result]))


def spread(results) -> str:
    rates = later_rates(results)
    return f"{min(rates):,.0f}-{max(rates):,.0f}"


def rsc15_rows(args):
    rows = []
    for name, params in (("A", CONFIG_A), ("B", CONFIG_B)):
        reps = [spawn({"data": "rsc15", "params": params, "epochs": args.epochs, "threads": args.threads,
                       "evaluate": True}) for _ in range(args.reps)]
        train_eps = statistics.median(later_median(r) for r in reps)
        first_ratio = statistics.median(r["epochs"][0]["seconds"] / statistics.median(
            e["seconds"] for e in r["epochs"][1:]) for r in reps)
        eval_eps = statistics.median(r["eval"]["events_per_sec"] for r in reps)
        rows.append((f"rsc15_100k config {name}", reps[0]["n_items"], train_eps, first_ratio, eval_eps,
                     max(r["peak_rss_gib"] for r in reps), reps[0]["eval"]["events"], spread(reps)))
    return rows


def path_rows(args):
    rows = []
    for label, extra in (("eager: one Python call per step (what the official ports do)", {"path": "eager",
                                                                                           "jit": False}),
                         ("compiled multi-step loop, no XLA", {"jit": False}),
                         ("compiled loop as one XLA computation, full-size distinct rows", {"no_row_budget": True}),
                         ("compiled loop as one XLA computation + distinct-row budget (default)", {})):
        result = spawn({"data": "rsc15", "params": CONFIG_A, "epochs": 2 if extra.get("path") == "eager" else 5,
                        "threads": args.threads, "max_steps": 300 if extra.get("path") == "eager" else 1650, **extra})
        rows.append((label, later_median(result), spread([result])))
    return rows


def scale_rows(args):
    rows = []
    for n_items in (100_000, 1_000_000):
        result = spawn({"data": "synthetic", "n_items": n_items, "n_sessions": args.scale_sessions,
                        "params": CONFIG_A, "epochs": 1, "threads": args.threads, "evaluate": True,
                        "max_test_sessions": 1000})
        rows.append((f"synthetic {n_items:,} items", result["n_items"], result["train_events"],
                     result["epochs"][0]["events_per_sec"], result["eval"]["events_per_sec"],
                     result["eval"]["batch_size"], result["peak_rss_gib"]))
    return rows


def sweep(args, key, values):
    out = []
    for value in values:
        params = CONFIG_A.replace("batch_size=32", f"batch_size={value}") if key == "batch_size" else \
            CONFIG_A.replace("layers=100", f"layers={value}")
        result = spawn({"data": "rsc15", "params": params, "epochs": 4, "threads": args.threads,
                        "max_steps": max(100, 30000 // (value if key == "batch_size" else 32))})
        out.append((value, later_median(result), spread([result])))
    return out


def plot(batch_sweep, layer_sweep, path):
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, points, label in ((axes[0], batch_sweep, "batch size (layers=100)"),
                              (axes[1], layer_sweep, "layer size (batch_size=32)")):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
        ax.set_ylim(bottom=0)
        ax.set_xscale("log", base=2)
        ax.set_xticks([p[0] for p in points], [str(p[0]) for p in points])
        ax.set_xlabel(label)
        ax.set_ylabel("training events / second")
        ax.grid(True, alpha=0.3)
    fig.suptitle("gru4rec_tf training speed, rsc15_100k config A (n_sample=2048), CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scale_sessions", type=int, default=400_000, help="synthetic sessions (~5 events each)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no scale cases")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "speed_breakdown.md"))
    args = parser.parse_args()
    if args.case:
        import gru4rec_tf  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
        print(json.dumps(run_case(json.loads(args.case))))
        return
    if args.quick:
        args.reps = 1
    started = time.time()
    rsc = rsc15_rows(args)
    paths = path_rows(args)
    scales = [] if args.quick else scale_rows(args)
    batch_sweep = sweep(args, "batch_size", (32, 64, 128, 256, 512))
    layer_sweep = sweep(args, "layers", (100, 256, 512))
    png = os.path.join(os.path.dirname(args.output), "speed_scaling.png")
    plot(batch_sweep, layer_sweep, png)
    write_report(args, rsc, paths, scales, batch_sweep, layer_sweep, time.time() - started)


def write_report(args, rsc, paths, scales, batch_sweep, layer_sweep, seconds):
    lines = [
        "# Training and evaluation speed", "",
        f"Written by `bench/train_speed.py` on {time.strftime('%Y-%m-%d %H:%M')} in {seconds / 60:.1f} min. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
        f"{platform.platform()}; TensorFlow limited to {args.threads} intra-op and {args.threads} inter-op threads; "
        "CPU only. Each figure comes from its own subprocess. Training events = training transitions (set-up "
        "excluded); evaluation events = ranked next items over the full catalogue. The machine is a shared VM: "
        "the same configuration varies by about ±20% from epoch to epoch, hence medians and ranges; compare "
        "figures within one table.", "",
        f"## rsc15_100k (median of {args.reps} runs; training rate = median over epochs 2..{args.epochs})", "",
        "| case | items | train events/s (median) | range over epochs | first epoch / later epoch | eval events/s | "
        "peak RSS GiB | eval events |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]:,} | {r[2]:,.0f} | {r[7]} | {r[3]:.2f} | {r[4]:,.0f} | {r[5]:.2f} | {r[6]:,} |"
              for r in rsc]
    lines += ["", "Official implementations on this machine kind (library issue): PyTorch 2,000-4,500 and "
              "TensorFlow 1,500-2,900 training events/s on config A; evaluation of the 10,152 test events in "
              "0.3-2.5 s (PyTorch about 30,000 events/s).", "",
              "## Where the time goes: execution paths (config A, same data)", "",
              "| path | train events/s (median of epochs 2..) | range |", "|---|---|---|"]
    lines += [f"| {label} | {eps:,.0f} | {rng} |" for label, eps, rng in paths]
    if scales:
        lines += ["", "## Scale (synthetic, project generator, config A, one epoch)", "",
                  "| case | items | train events | train events/s | eval events/s (1,000 test sessions) | "
                  "eval batch | peak RSS GiB |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r[0]} | {r[1]:,} | {r[2]:,} | {r[3]:,.0f} | {r[4]:,.0f} | {r[5]} | {r[6]:.2f} |"
                  for r in scales]
    lines += ["", "## Scaling (rsc15_100k config A, fixed number of steps)", "", "![scaling](speed_scaling.png)", "",
              "| batch size | train events/s (median of epochs 2-4) | range |", "|---|---|---|"]
    lines += [f"| {b} | {e:,.0f} | {rng} |" for b, e, rng in batch_sweep]
    lines += ["", "| layer size | train events/s (median of epochs 2-4) | range |", "|---|---|---|"]
    lines += [f"| {b} | {e:,.0f} | {rng} |" for b, e, rng in layer_sweep]
    lines += ["", "Per-step profile before/after: `profile.md`. GPU: `gpu.md`. Earlier runs and the development "
              "measurements behind each speed-up: `speed_history.md`."]
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
