"""The slice table of a run's summary, read from the SessionEvaluator's ``metrics.json`` (no TFX import).

One line per slice: its test events, the candidate's Recall@k and MRR@k (k: the largest cutoff) with their 95%
bootstrap intervals and, with a baseline, the baseline's figures, the paired difference with its interval and the
gate's verdict (``ok``; ``FAIL``; ``small``: fewer than ``--min_slice_events`` events, not gated).

Example:
    >>> cell = {"recall@20": 0.5, "recall@20_ci": [0.4, 0.6], "mrr@20": 0.2, "mrr@20_ci": [0.15, 0.25]}
    >>> diff = {"recall@20": -0.1, "recall@20_ci": [-0.2, 0.0], "mrr@20": 0.0, "mrr@20_ci": [-0.05, 0.05]}
    >>> payload = {"slices": {"position_1": {"events": 300, "candidate": cell, "baseline": cell, "difference": diff}},
    ...            "slice_gate": {"min_slice_events": 200, "failed_slices": []}}
    >>> print("\\n".join(lines(payload)))   # doctest: +NORMALIZE_WHITESPACE
    slices (candidate vs baseline on the same test events; 95% bootstrap intervals over sessions):
      slice     events  Recall@20 [95% CI]  base  diff [95% CI]   MRR@20 [95% CI]  base  diff [95% CI]  gate
      position_1   300  0.5000 [0.4000, 0.6000]  0.5000  -0.1000 [-0.2000, +0.0000]  0.2000 [0.1500, 0.2500] \
0.2000  +0.0000 [-0.0500, +0.0500]  ok
"""
from __future__ import annotations

import json
import os

from gru4rec_tf.evaluation.slices import SLICE_NAMES

METRICS_FILE = "metrics.json"  # the SessionEvaluator's evaluation artifact file


def read_payload(evaluation_uri: str) -> dict:
    """The ``metrics.json`` of an evaluation artifact, or an empty dict when there is none."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  (any TF filesystem)
    path = os.path.join(evaluation_uri, METRICS_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def _k(table: dict) -> int:
    keys = [key for row in table.values() for key in row["candidate"] if key.startswith("recall@") and "_" not in key]
    return max(int(key.split("@")[1]) for key in keys)


def _figure(cell: dict, metric: str, signed: bool = False) -> str:
    value, (lo, hi) = cell.get(metric), cell.get(f"{metric}_ci") or (None, None)
    if value is None:
        return "-"
    form = "+.4f" if signed else ".4f"
    bounds = f"[{lo:{form}}, {hi:{form}}]" if lo is not None else "[-, -]"
    return f"{value:{form}} {bounds}"


def _verdict(name: str, row: dict, gate: dict) -> str:
    if name == "all" or "difference" not in row:
        return ""
    if name in gate.get("failed_slices", []):
        return "FAIL"
    return "small" if row["events"] < gate.get("min_slice_events", 0) else "ok"


def lines(payload: dict) -> list[str]:
    """The slice table's lines of a ``metrics.json`` payload (none when it has no slices)."""
    table = payload.get("slices") or {}
    if not table:
        return []
    k, gate = _k(table), payload.get("slice_gate") or {}
    paired = any("difference" in row for row in table.values())
    title = "candidate vs baseline on the same test events" if paired else "candidate; no baseline"
    header = f"  {'slice':<18}{'events':>7}  {f'Recall@{k} [95% CI]':<25}"
    if paired:
        header += f"  {'base':<6}  {'diff [95% CI]':<27}"
    header += f"  {f'MRR@{k} [95% CI]':<25}" + (f"  {'base':<6}  {'diff [95% CI]':<27}  gate" if paired else "")
    out = [f"slices ({title}; 95% bootstrap intervals over sessions):", header]
    order = [name for name in SLICE_NAMES if name in table] + sorted(set(table) - set(SLICE_NAMES))
    for name in order:  # metrics.json keeps its keys sorted: the families in their own order again
        row = table[name]
        line = f"  {name:<18}{row['events']:>7}"
        for metric in (f"recall@{k}", f"mrr@{k}"):
            line += f"  {_figure(row['candidate'], metric):<25}"
            if paired:
                base = row["baseline"].get(metric)
                line += f"  {'-' if base is None else f'{base:.4f}':<6}  {_figure(row['difference'], metric, True):<27}"
        out.append((line + f"  {_verdict(name, row, gate)}").rstrip())
    return out
