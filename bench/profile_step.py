"""Where a training step's time goes: the TensorFlow profiler over one chunk of steps, grouped by kind of work.

Runs config A (or B) on rsc15_100k (or RR, the authors' RetailRocket configuration, on ``compare_official.py``'s
synthetic data), warms up on a few chunks, then records one chunk of ``steps_per_call`` steps
with ``tf.profiler`` (XLA's CPU thunks traced with ``--xla_cpu_enable_xprof_traceme``) and sums the recorded time
per step by kind: XLA matrix products, XLA fusions by their leading op, XLA gathers/scatters/reductions, and the
TensorFlow executor ops that run outside XLA. Negative samples (and, since the loop is one XLA computation, the
distinct rows, which training prepares in a background thread) are prepared before the recorded call, so the wall
time is what the training thread spends per step. ``--code_dir`` profiles another checkout of the library (e.g. an older
commit, for a before/after comparison in one session). Profiling adds its own overhead, so compare the shares
within one table and the two tables with each other, not with ``train_speed.py``'s events/second. Usage::

    .venv/bin/python bench/profile_step.py --label after --out bench/results/profile.md
    .venv/bin/python bench/profile_step.py --label before --code_dir /tmp/old-checkout \
        --out bench/results/profile.md --append
"""
import argparse
import collections
import datetime
import glob
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
from rsc15_configs import CONFIG_A, CONFIG_B, RSC15  # noqa: E402  pylint: disable=wrong-import-position
from compare_official import CONFIG_RR, make_synthetic  # noqa: E402  pylint: disable=wrong-import-position

CONFIGS = {"A": CONFIG_A, "B": CONFIG_B, "RR": CONFIG_RR}  # RR: on compare_official's synthetic data
# Wrapper events that contain other recorded events (counting them would count time twice).
_CONTAINERS = {"ThunkExecutor::Execute", "SlinkyThreadPool::Await", "ExecutorState::Process",
               "ExecutorState::ProcessAsync::Start", "ExecutorState::ProcessAsync::Done",
               "CpuExecutable::ExecuteAsyncOnStream", "BlockUntilReady"}


def _kind(name: str) -> str:
    """Groups an event name: XLA thunks by their leading op, TensorFlow executor ops by op type."""
    if name.startswith("while/") or ":" in name:  # TensorFlow op run by the graph executor, e.g. while/Unique:Unique
        return "TF op outside XLA: " + name.rsplit(":", 1)[-1]
    base = re.sub(r"[._]\d+$", "", name)
    if base.startswith("MatMul"):
        return "XLA matrix products"
    if "scatter" in base:
        return "XLA scatter (row writes, segment sums)"
    if "gather" in base:
        return "XLA gather (row reads)"
    if "reduce" in base:
        return "XLA reductions"
    if base.endswith("fusion") or base.startswith("wrapped_"):
        return "XLA elementwise fusions"
    return "XLA other: " + base


def profile(args):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()
    sys.path.insert(0, os.path.abspath(args.code_dir))
    import numpy as np  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from gru4rec_tf.train import routine  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.vocabulary import ItemVocabulary
    from gru4rec_tf.data.session_data import SessionData
    from gru4rec_tf.data.event_log import load_events
    from gru4rec_tf.params import GRU4RecParams  # pylint: disable=g-import-not-at-top
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top

    train_path = (make_synthetic(tempfile.mkdtemp(prefix="gru4rec-rr-"))[0] if args.config == "RR"
                  else os.path.join(RSC15, "train_full.tsv"))
    train = load_events(train_path)
    vocab = ItemVocabulary.from_events(train)
    params = GRU4RecParams.from_string(CONFIGS[args.config])
    trainer = routine.build_trainer(vocab.support, params, seed=1)
    model = trainer.model
    chunks = list(trainer.make_schedule(SessionData.from_events(train, vocab)).chunks(trainer.steps_per_call))

    new_api = hasattr(trainer, "run_steps") and not hasattr(trainer, "_compiled_steps")

    def prepare(chunk):  # what training does before the compiled call (in a background thread, since the XLA loop)
        samples = trainer.sampler.sample(chunk.n_steps)
        return (samples.numpy(), trainer.distinct_rows(chunk, samples.numpy())) if new_api else (samples, None)

    def run(chunk, prepared, states):
        samples, rows = prepared
        if new_api:
            states, losses = trainer.run_steps(chunk, samples, states, rows)
        else:  # the library before the whole loop became one XLA computation
            states, losses = trainer._compiled_steps(chunk.inputs, chunk.targets, chunk.valid,  # pylint: disable=protected-access
                                                     chunk.reset, samples, states)
        float(np.sum(losses))
        return states

    states = model.initial_states(params.batch_size)
    for chunk in chunks[:args.warmup]:
        states = run(chunk, prepare(chunk), states)
    chunk = chunks[args.warmup]
    prepared = prepare(chunk)
    log_dir = tempfile.mkdtemp(prefix="gru4rec-profile-")
    tf.profiler.experimental.start(log_dir)
    start = time.perf_counter()
    run(chunk, prepared, states)
    wall_ms = (time.perf_counter() - start) * 1e3 / chunk.n_steps
    tf.profiler.experimental.stop()

    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
        space.ParseFromString(f.read())
    per_kind, xla_busy = collections.Counter(), 0.0
    per_name, per_line = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                if name == "CpuExecutable::ExecuteAsyncOnStream":
                    xla_busy += event.duration_ps
                if name in _CONTAINERS or name.startswith("end:") or not (
                        "Eigen" in line.name or "tf_Compute" in line.name):
                    continue
                per_kind[_kind(name)] += event.duration_ps
                per_name[name] += event.duration_ps
                per_line[line.name] += event.duration_ps
    to_us = lambda ps: ps / 1e6 / chunk.n_steps  # noqa: E731
    return {"wall_ms": wall_ms, "xla_us": to_us(xla_busy), "steps": chunk.n_steps,
            "kinds": [(kind, to_us(ps)) for kind, ps in per_kind.most_common()],
            "top": [(name, to_us(ps)) for name, ps in per_name.most_common(args.top)],
            "threads": [(name, to_us(ps)) for name, ps in per_line.most_common()]}


def report(args, result) -> str:
    lines = [f"## {args.label}: config {args.config}, code at `{args.code_dir}`",
             "",
             f"Written by `bench/profile_step.py` on {datetime.datetime.now():%Y-%m-%d %H:%M}; one chunk of "
             f"{result['steps']} steps after {args.warmup} warm-up chunks, {args.threads} TensorFlow threads, "
             f"profiler on. Wall time {result['wall_ms']:.3f} ms/step; inside XLA executables "
             f"{result['xla_us'] / 1e3:.3f} ms/step.",
             "",
             "| recorded work (summed over threads) | µs per step |",
             "|---|---|"]
    shown = [(k, us) for k, us in result["kinds"] if us >= 2.0]
    lines += [f"| {kind} | {us:.1f} |" for kind, us in shown]
    rest = sum(us for _, us in result["kinds"]) - sum(us for _, us in shown)
    lines += [f"| everything else (each under 2 µs) | {rest:.1f} |", ""]
    if result.get("top"):
        lines += ["| op (costliest first) | µs per step |", "|---|---|"]
        lines += [f"| {name} | {us:.1f} |" for name, us in result["top"]] + [""]
        lines += ["| thread | µs per step |", "|---|---|"]
        lines += [f"| {name} | {us:.1f} |" for name, us in result["threads"]] + [""]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="A")
    parser.add_argument("--label", default="profile")
    parser.add_argument("--code_dir", default=os.path.join(HERE, ".."))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "profile.md"))
    parser.add_argument("--top", type=int, default=0, help="also list the N costliest recorded ops")
    parser.add_argument("--append", action="store_true", help="add a section to --out instead of replacing it")
    args = parser.parse_args()
    if not os.path.isdir(RSC15):
        sys.exit(f"rsc15_100k not found at {RSC15} (../shared/data is needed for this benchmark)")
    text = report(args, profile(args))
    print(text)
    header = "# Where a training step's time goes (TensorFlow profiler)\n\n"
    mode = "a" if args.append and os.path.exists(args.out) else "w"
    with open(args.out, mode, encoding="utf-8") as f:
        f.write(text if mode == "a" else header + text)


if __name__ == "__main__":
    main()
