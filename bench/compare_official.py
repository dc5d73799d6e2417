"""Training and evaluation speed against the authors' official PyTorch code, one after the other, same machine.

The official code is not ours to vendor: pass the path of a local copy of its public repository
(``hidasib/GRU4Rec_PyTorch_Official``) and a Python that has torch, numpy, pandas and joblib. Each repetition runs,
alternately, the official ``run.py`` and ``gru4rec train`` as fresh processes on the same data, configuration,
epochs and thread count, and reads their own timings: the official per-epoch ``e/s`` and ``Evaluation took``
lines, our ``--metrics_json``. Ratios are taken within a repetition (same minutes, same machine load), and the
results go to ``bench/results/compare_official.md`` with the machine description. Usage::

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy pandas joblib
    .venv/bin/python bench/compare_official.py --official_dir /path/to/GRU4Rec_PyTorch_Official \\
        --official_python /tmp/torchvenv/bin/python [--configs A,B] [--repeats 2] [--epochs 3] [--threads 2]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import machine as machine_lib
from rsc15_configs import CONFIG_A, CONFIG_B, RSC15

CONFIGS = {"A": CONFIG_A, "B": CONFIG_B}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFFICIAL_EPOCH = re.compile(r"Epoch(\d+) --> loss: .*\[.* \| (\d+) e/s\]")
OFFICIAL_EVAL = re.compile(r"Evaluation took ([0-9.]+)s")
OFFICIAL_METRIC = re.compile(r"Recall@20: ([0-9.]+) MRR@20: ([0-9.]+)")


def thread_env(threads: int) -> dict:
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
             "TF_NUM_INTEROP_THREADS")
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **{n: str(threads) for n in names})


def official_params(params: str) -> str:
    """Our parameter string in the official code's names: ``final_act=elu-X`` is its ``elu_param=X``; the other
    final activations follow from the loss there."""
    out = []
    for pair in params.split(","):
        key, _, value = pair.partition("=")
        if key == "final_act":
            if value.startswith("elu-"):
                out.append(f"elu_param={value[len('elu-'):]}")
            continue
        out.append(pair)
    return ",".join(out)


# Newer torch refuses ``Tensor.set_`` with a float64 source on a float32 parameter, which the official code's
# compatibility-mode initialisation does; this launcher casts the source to the parameter's dtype (the values the
# official code means) and then runs its run.py unchanged.
TORCH_SET_SHIM = """
import runpy, sys, torch
_set = torch.Tensor.set_
def _set_same_dtype(self, source=None, *args, **kwargs):
    if isinstance(source, torch.Tensor) and source.dtype != self.dtype:
        source = source.to(self.dtype)
    return _set(self, source, *args, **kwargs) if source is not None else _set(self, *args, **kwargs)
torch.Tensor.set_ = _set_same_dtype
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_official(args, params: str, data: str) -> dict:
    command = [args.official_python, "-c", TORCH_SET_SHIM, os.path.join(args.official_dir, "run.py"),
               os.path.join(data, "train_full.tsv"),
               "-ps", f"{official_params(params)},n_epochs={args.epochs}", "-t", os.path.join(data, "test.tsv"),
               "-m", "20", "-d", "cpu"]
    out = subprocess.run(command, capture_output=True, text=True, env=thread_env(args.threads), check=False,
                         timeout=3600)
    if out.returncode != 0:
        sys.exit(f"the official code failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    epochs = [int(m.group(2)) for m in OFFICIAL_EPOCH.finditer(out.stdout)]
    recall, mrr = (float(v) for v in OFFICIAL_METRIC.search(out.stdout).groups())
    return {"epoch_events_per_sec": epochs, "eval_seconds": float(OFFICIAL_EVAL.search(out.stdout).group(1)),
            "recall@20": recall, "mrr@20": mrr}


def run_ours(args, params: str, data: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        metrics_path = os.path.join(tmp, "metrics.json")
        command = [os.path.join(REPO, ".venv", "bin", "gru4rec"), "train", "--train",
                   os.path.join(data, "train_full.tsv"), "--test", os.path.join(data, "test.tsv"), "--params", params,
                   "--epochs", str(args.epochs), "--cutoffs", "20", "--metrics_json", metrics_path, "--seed", "1"]
        out = subprocess.run(command, capture_output=True, text=True, env=thread_env(args.threads), check=False,
                             timeout=3600)
        if out.returncode != 0:
            sys.exit(f"gru4rec train failed ({out.returncode}):\n{out.stderr[-2000:]}")
        with open(metrics_path, encoding="utf-8") as handle:
            metrics = json.load(handle)
    per_epoch = [metrics["train_events"] / s for s in metrics["epoch_seconds"]]
    return {"epoch_events_per_sec": per_epoch, "eval_seconds": metrics["eval_seconds"],
            "eval_events": metrics["eval_events"], "recall@20": metrics["recall@20"], "mrr@20": metrics["mrr@20"]}


def summarize(runs: list) -> dict:
    """Median training events/s over epochs 2+ (epoch 1 holds our compilation), and evaluation events/s."""
    train = statistics.median(e for r in runs for e in r["epoch_events_per_sec"][1:] or r["epoch_events_per_sec"])
    return {"train_events_per_sec": train, "eval_seconds": statistics.median(r["eval_seconds"] for r in runs),
            "recall@20": statistics.mean(r["recall@20"] for r in runs),
            "mrr@20": statistics.mean(r["mrr@20"] for r in runs)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official_dir", required=True, help="a local copy of hidasib/GRU4Rec_PyTorch_Official")
    parser.add_argument("--official_python", required=True, help="a Python with torch, numpy, pandas, joblib")
    parser.add_argument("--data", default=RSC15)
    parser.add_argument("--configs", default="A,B")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "compare_official.md"))
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.official_dir, "run.py")):
        sys.exit(f"--official_dir {args.official_dir}: no run.py (a copy of hidasib/GRU4Rec_PyTorch_Official?)")
    check = subprocess.run([args.official_python, "-c", "import torch, numpy, pandas, joblib"], capture_output=True,
                           text=True, check=False)
    if check.returncode != 0:
        sys.exit(f"--official_python {args.official_python} cannot import torch/numpy/pandas/joblib: "
                 f"{check.stderr.strip().splitlines()[-1] if check.stderr.strip() else check.returncode}")
    if not os.path.isdir(args.data):
        sys.exit(f"rsc15_100k not found at {args.data}")
    rows, raw = [], {}
    for name in args.configs.split(","):
        official, ours = [], []
        for repeat in range(args.repeats):
            for side, runner, store in (("official", run_official, official), ("ours", run_ours, ours)):
                started = time.perf_counter()
                store.append(runner(args, CONFIGS[name], args.data))
                print(f"config {name}, repeat {repeat + 1}: {side} done in {time.perf_counter() - started:.0f} s: "
                      f"{[round(e) for e in store[-1]['epoch_events_per_sec']]} events/s", flush=True)
        raw[name] = {"official": official, "ours": ours}
        off, us = summarize(official), summarize(ours)
        eval_events = ours[0]["eval_events"]
        rows.append(f"| {name} | {off['train_events_per_sec']:,.0f} | {us['train_events_per_sec']:,.0f} | "
                    f"**{us['train_events_per_sec'] / off['train_events_per_sec']:.2f}×** | "
                    f"{eval_events / off['eval_seconds']:,.0f} | {eval_events / us['eval_seconds']:,.0f} | "
                    f"**{off['eval_seconds'] / us['eval_seconds']:.2f}×** | {off['recall@20']:.4f} / "
                    f"{off['mrr@20']:.4f} | {us['recall@20']:.4f} / {us['mrr@20']:.4f} |")
    text = "\n".join([
        "# Speed against the official PyTorch code (same machine, one after the other)", "",
        f"Written by `bench/compare_official.py` on {time.strftime('%Y-%m-%d %H:%M')}: {machine_lib.cpu_summary()}; "
        f"{args.threads} threads each (torch and TensorFlow); rsc15_100k train_full → test; {args.epochs} epochs; "
        f"{args.repeats} alternating repetitions per configuration, each a fresh process. Training: median events/s "
        "of epochs 2+ (our first epoch includes tracing and XLA compilation). Evaluation: full catalogue, standard "
        "ties, the same test events.", "",
        "| config | official train events/s | ours | ratio | official eval events/s | ours | ratio | "
        "official R@20 / MRR@20 | ours |",
        "|---|---|---|---|---|---|---|---|---|", *rows, "",
        "<details><summary>raw</summary>", "", "```json", json.dumps(raw, indent=1), "```", "</details>", ""])
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
