"""A trained model's report: Markdown with PNG plots, rendered from plain dicts (no TFX import).

The Pusher (:mod:`tfx_pipeline.components.pusher`) gathers what the pipeline recorded about a candidate and calls
:func:`write_report`; the pushed version carries the result in ``assets.extra/report/`` (TF Serving ignores
``assets.extra`` except its warm-up file). What :class:`ReportInputs` holds, and where the Pusher reads it:

* ``blessing``: the blessing's custom properties (``blessed``, ``blessing_message``, ``failed_slices``,
  ``is_new_model``);
* ``evaluation``: the SessionEvaluator's ``metrics.json`` (candidate and baseline metrics, checks, slice table);
* ``training``: the Trainer's ``training.json`` (hyperparameters, loss and validation metrics per epoch, warm start);
* ``data_profile`` / ``baseline_profile``: ``{"window", "span"}`` profiles (:class:`tfx_pipeline.data_checks.
  DataProfile` dicts) of this run's data (the DataValidator's verdict) and of the last blessed model's data;
* ``anomalies`` / ``validation``: the verdict's ``anomalies.json`` and its ``mode`` / ``valid``.

Each of them may be missing (validation off, a Trainer that reused its base model, no baseline): its section then
says "not available" and why. The plots need matplotlib (a runtime requirement); without it the report is written
without them and says so.

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> path = write_report(ReportInputs(model_name="gru4rec", blessing={"blessed": 1,
    ...     "blessing_message": "all checks passed"}, training={"epoch_loss": [0.6, 0.5], "params": {"layers": 16}}),
    ...     out)
    >>> text = open(path).read()
    >>> "**BLESSED**: all checks passed" in text, "| 2 | 0.5000 |" in text
    (True, True)
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
from collections.abc import Iterable, Sequence

from absl import logging

from gru4rec_tf.evaluation.slices import SLICE_NAMES

REPORT_DIR = os.path.join("assets.extra", "report")  # in a pushed version and in the PushedModel artifact
REPORT_FILE = "report.md"
LOSS_PLOT, VALID_PLOT, SLICE_PLOT = "training_loss.png", "validation_metrics.png", "slices.png"
NOT_AVAILABLE = "_Not available"
DAY_US = 86_400_000_000


@dataclasses.dataclass
class ReportInputs:
    """What the report shows (see the module docstring); every field but ``blessing`` may be None.

    Example:
        >>> ReportInputs(blessing={"blessed": 0, "blessing_message": "recall@20 0.05 < 0.1"}).blessed
        False
    """

    blessing: dict
    model_name: str = "model"
    evaluation: dict | None = None
    training: dict | None = None
    data_profile: dict | None = None
    baseline_profile: dict | None = None
    anomalies: list | None = None
    validation: dict | None = None
    model_uri: str | None = None
    base_model_uri: str | None = None
    pushed: dict | None = None  # {"version", "destination"} when it is pushed

    @property
    def blessed(self) -> bool:
        return bool(self.blessing.get("blessed"))


# ------------------------------------------------------------------------------------------------ formatting
def _num(value, form: str = ".4f") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:{form}}" if isinstance(value, float) else f"{value:,}"


def _interval(cell: dict, metric: str, signed: bool = False) -> str:
    """``value [lo, hi]``; ``-`` for a figure that does not exist (a slice without events)."""
    value, bounds = cell.get(metric), cell.get(f"{metric}_ci")
    if value is None:
        return "-"
    form = "+.4f" if signed else ".4f"
    known = bounds and None not in bounds
    return f"{value:{form}}" + (f" [{bounds[0]:{form}}, {bounds[1]:{form}}]" if known else "")


def _table(header: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def _missing(why: str) -> list[str]:
    return [f"{NOT_AVAILABLE}: {why}._", ""]


def _when(time_us) -> str:
    try:
        return datetime.datetime.fromtimestamp(time_us / 1e6, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, ValueError, OSError, TypeError):
        return str(time_us)


def _metric_keys(metrics: dict) -> list[str]:
    keys = [k for k in metrics if k.startswith(("recall@", "mrr@")) and "_" not in k]
    return sorted(keys, key=lambda k: (int(k.split("@")[1]), not k.startswith("recall")))


# ------------------------------------------------------------------------------------------------ sections
def blessing_section(inputs: ReportInputs) -> list[str]:
    """The decision, its reasons (every check of the evaluator) and the failed slices."""
    bless = inputs.blessing
    out = ["## Blessing", "", f"**{'BLESSED' if inputs.blessed else 'NOT BLESSED'}**: "
           f"{bless.get('blessing_message') or '(no message)'}", ""]
    if bless.get("failed_slices"):
        out += [f"Failed slices: {bless['failed_slices']}", ""]
    if bless.get("is_new_model") == 0:
        out += ["The candidate is the last blessed model (same weights): it is not blessed again.", ""]
    checks = (inputs.evaluation or {}).get("checks")
    if checks:
        out += ["Checks:", ""] + [f"- {line}" for line in checks] + [""]
    if inputs.pushed:
        out += [f"Pushed as version {inputs.pushed.get('version')}: `{inputs.pushed.get('destination')}`", ""]
    else:
        out += ["Not pushed.", ""]
    return out


def metrics_section(evaluation: dict | None) -> list[str]:
    """Overall metrics of the candidate and of the baseline on the same test split."""
    out = ["## Test metrics (candidate vs baseline)", ""]
    if not evaluation or not evaluation.get("candidate"):
        return out + _missing("no evaluation (the SessionEvaluator's metrics.json was not found)")
    candidate, baseline = evaluation["candidate"], evaluation.get("baseline") or {}
    keys = _metric_keys(candidate) + [k for k in sorted(candidate) if k.startswith(("coverage@", "mean_rec_pop"))]
    rows = [(k, _num(candidate.get(k)), _num(baseline.get(k)) if baseline else "-",
             _num(candidate[k] - baseline[k], "+.4f") if isinstance(baseline.get(k), (int, float)) else "-",
             _num((evaluation.get("thresholds") or {}).get(k))) for k in keys]
    out += _table(("metric", "candidate", "baseline", "difference", "threshold"), rows) + [""]
    out.append(f"Test events: {_num(candidate.get('eval_events'))} in {_num(candidate.get('eval_sessions'))} "
               f"sessions ({evaluation.get('eval_mode', '-')} ties); regression margin "
               f"{_num(evaluation.get('regression_margin'))}.")
    if not baseline:
        out.append("No baseline: this is the first blessed model candidate.")
    return out + [""]


def _slice_k(table: dict) -> int:
    keys = [k for row in table.values() for k in _metric_keys(row.get("candidate", {}))]
    return max(int(k.split("@")[1]) for k in keys)


def _gate(name: str, row: dict, gate: dict) -> str:
    if name == "all" or "difference" not in row:
        return ""
    if name in gate.get("failed_slices", []):
        return "**FAIL**"
    return "small" if row["events"] < gate.get("min_slice_events", 0) else "ok"


def slice_order(table: dict) -> list[str]:
    """The slices in their families' order (``metrics.json`` keeps its keys sorted)."""
    return [n for n in SLICE_NAMES if n in table] + sorted(set(table) - set(SLICE_NAMES))


def slices_section(evaluation: dict | None, plot: str | None) -> list[str]:
    """The slice table against the baseline, with the 95% intervals and the gate's verdict per slice."""
    out = ["## Slices (candidate vs baseline on the same test events)", ""]
    table = (evaluation or {}).get("slices") or {}
    if not table:
        return out + _missing("no slice table in the evaluation")
    k, gate = _slice_k(table), evaluation.get("slice_gate") or {}
    paired = any("difference" in row for row in table.values())
    header = ["slice", "events"]
    for metric in (f"Recall@{k}", f"MRR@{k}"):
        header += [f"{metric} [95% CI]"] + (["baseline", "difference [95% CI]"] if paired else [])
    rows = []
    for name in slice_order(table):
        row = table[name]
        cells = [name, _num(row["events"])]
        for metric in (f"recall@{k}", f"mrr@{k}"):
            cells.append(_interval(row["candidate"], metric))
            if paired:
                cells += [_num((row.get("baseline") or {}).get(metric)),
                          _interval(row.get("difference") or {}, metric, signed=True)]
        rows.append(cells + ([_gate(name, row, gate)] if paired else []))
    out += _table(header + (["gate"] if paired else []), rows) + [""]
    if paired:
        out.append(f"Gate: a slice with at least {gate.get('min_slice_events', '-')} events fails when the whole "
                   f"interval of its difference lies below -{gate.get('slice_regression_margin', '-')} (the gate's "
                   "intervals are family-wise 95%, Bonferroni over the gated slices: wider than the 95% ones shown), "
                   f"and `target_new` when the candidate's figure there stays below "
                   f"{gate.get('min_new_item_ratio', '-')} x its own on known items; `small`: too few events to gate.")
    else:
        out.append("No baseline: the candidate alone; no sliced gate.")
    return out + [""] + ([f"![Recall@{k} per slice]({plot})", ""] if plot else [])


def training_section(training: dict | None, base_model_uri: str | None, plots: dict) -> list[str]:
    """Hyperparameters, the base model, and the loss and validation metrics per epoch."""
    out = ["## Training", ""]
    if not training:
        return out + _missing("no training.json (the Trainer's model_run artifact was not found)")
    if training.get("reused_base_model"):
        out += [f"Not trained: the last blessed model was already trained on these data with these parameters "
                f"and is this model as it is (`{training['reused_base_model']}`).", ""]
    out += _base_model_lines(training, base_model_uri)
    facts = {**training, "epochs": len(training["epochs"]) if isinstance(training.get("epochs"), list) else
             training.get("epochs")}  # the Trainer's training.json lists them
    info = [(k, _num(facts.get(k), ".1f") if k == "train_seconds" else _num(facts.get(k)))
            for k in ("seed", "train_events", "train_sessions", "n_items", "epochs", "best_epoch", "stopped_early",
                      "train_seconds") if k in facts]
    if info:
        out += _table(("", "value"), info) + [""]
    out += _epochs_lines(training, plots)
    params = training.get("params") or {}
    out += ["### Hyperparameters", ""]
    out += (_table(("parameter", "value"), sorted(params.items())) + [""]) if params else _missing(
        "no hyperparameters recorded")
    return out


def _base_model_lines(training: dict, base_model_uri: str | None) -> list[str]:
    warm = training.get("warm_start")
    if not warm:
        return ["Trained from scratch (no warm start).", ""] if not training.get("reused_base_model") else []
    base = training.get("warm_start_from") or base_model_uri or "the last blessed model"
    return [f"Warm-started from `{base}`: {_num(warm.get('carried_items'))} items carried over, "
            f"{_num(warm.get('new_items'))} new, {_num(warm.get('dropped_items'))} dropped; optimizer state "
            f"{'carried' if warm.get('optimizer_state') else 'not carried'}.", ""]


def _epochs_lines(training: dict, plots: dict) -> list[str]:
    losses, valid = training.get("epoch_loss") or [], training.get("valid_history") or []
    out = ["### Loss and validation metrics per epoch", ""]
    if not losses:
        return out + _missing("no epochs recorded")
    names = {k for row in valid for k in row}
    metrics = _metric_keys(dict.fromkeys(names)) + sorted(names - set(_metric_keys(dict.fromkeys(names))))
    rows = [[i + 1, _num(loss)] + [_num(valid[i].get(m)) if i < len(valid) else "-" for m in metrics]
            for i, loss in enumerate(losses)]
    out += _table(["epoch", "loss"] + [f"valid {m}" for m in metrics], rows) + [""]
    if not valid:
        out.append("No validation metrics (no `--valid_days`).")
        out.append("")
    for name in (LOSS_PLOT, VALID_PLOT):
        if plots.get(name):
            out += [f"![{name[:-4].replace('_', ' ')}]({name})", ""]
    return out


PROFILE_ROWS = ("events", "sessions", "items", "days", "events/day", "sessions/day", "events/session",
                "rejected rows", "rejected share", "first event", "last event")


def profile_figures(profile: dict | None) -> dict:
    """The figures of a :class:`~tfx_pipeline.data_checks.DataProfile` dict that the data table shows."""
    if not profile:
        return {}
    days = max((profile["time_max_us"] - profile["time_min_us"]) / DAY_US, 1.0)
    sessions, events, rejected = profile.get("sessions"), profile["events"], profile.get("rows_rejected", 0)
    return {"events": events, "sessions": sessions, "items": profile.get("items"), "days": days,
            "events/day": events / days, "sessions/day": sessions / days if sessions else None,
            "events/session": events / sessions if sessions else None, "rejected rows": rejected,
            "rejected share": rejected / max(events + rejected, 1), "first event": _when(profile["time_min_us"]),
            "last event": _when(profile["time_max_us"])}


def _ratio(current, previous) -> str:
    if isinstance(current, (int, float)) and isinstance(previous, (int, float)) and previous:
        return f"{current / previous:.2f}x"
    return "-"


def data_section(inputs: ReportInputs) -> list[str]:
    """This run's span against the span of the last blessed model's data, and the whole window."""
    out = ["## Data (this span vs the span of the last blessed model's data)", ""]
    if not inputs.data_profile:
        return out + _missing("no data profile (data validation was off, or the run had no DataValidator)")
    span, window = profile_figures(inputs.data_profile.get("span")), profile_figures(
        inputs.data_profile.get("window"))
    previous = profile_figures((inputs.baseline_profile or {}).get("span"))
    form = {"days": ".2f", "events/day": ",.1f", "sessions/day": ",.1f", "events/session": ".2f",
            "rejected share": ".4%"}
    rows = [(name, _num(span.get(name), form.get(name, ".4f")), _num(previous.get(name), form.get(name, ".4f")),
             _ratio(span.get(name), previous.get(name)), _num(window.get(name), form.get(name, ".4f")))
            for name in PROFILE_ROWS]
    out += _table(("", "this span", "previous span", "ratio", "whole window"), rows) + [""]
    if not previous:
        out.append("No previous span: no blessed model carried a data profile (the first validated run).")
        out.append("")
    return out


def validation_section(inputs: ReportInputs) -> list[str]:
    """The data validation's mode, verdict and anomalies."""
    out = ["## Data validation", ""]
    if inputs.anomalies is None:
        return out + _missing("no validation verdict (data validation was off)")
    mode = (inputs.validation or {}).get("mode", "-")
    valid = (inputs.validation or {}).get("valid")
    out += [f"Mode `{mode}`; verdict: {'valid' if valid or valid is None and not inputs.anomalies else 'INVALID'}"
            f"; {len(inputs.anomalies)} anomaly(ies).", ""]
    if inputs.anomalies:
        out += _table(("check", "value", "expected"), [(a.get("check"), a.get("value"), a.get("expected"))
                                                        for a in inputs.anomalies]) + [""]
    return out


# ------------------------------------------------------------------------------------------------ plots
def _figure():
    from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top  (no pyplot: no global state)
    figure = Figure(figsize=(6.4, 3.6), dpi=100)
    return figure, figure.add_subplot()


def plot_loss(losses: Sequence[float], path: str) -> None:
    figure, axes = _figure()
    axes.plot(range(1, len(losses) + 1), losses, marker="o")
    axes.set(xlabel="epoch", ylabel="training loss", title="Training loss per epoch")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)


def plot_validation(history: Sequence[dict], path: str) -> None:
    figure, axes = _figure()
    for metric in sorted({k for row in history for k in row}):
        axes.plot(range(1, len(history) + 1), [row.get(metric) for row in history], marker="o", label=metric)
    axes.set(xlabel="epoch", ylabel="value", title="Validation metrics per epoch")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def plot_slices(evaluation: dict, path: str) -> None:
    """Recall@k per slice with its 95% interval, candidate next to baseline."""
    table = evaluation["slices"]
    k, names = _slice_k(table), slice_order(table)
    metric = f"recall@{k}"
    figure, axes = _figure()
    for offset, who in ((-0.2, "candidate"), (0.2, "baseline")):
        cells = [table[n].get(who) or {} for n in names]
        if not any(metric in c for c in cells):
            continue
        values = [c.get(metric) or 0.0 for c in cells]  # a slice without events has no figure: drawn as 0
        bounds = [c.get(f"{metric}_ci") if None not in (c.get(f"{metric}_ci") or [None]) else (v, v)
                  for v, c in zip(values, cells, strict=True)]
        errors = [[max(v - lo, 0.0) for v, (lo, _) in zip(values, bounds, strict=True)],
                  [max(hi - v, 0.0) for v, (_, hi) in zip(values, bounds, strict=True)]]
        axes.bar([i + offset for i in range(len(names))], values, width=0.4, yerr=errors, capsize=2, label=who)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize="small")
    axes.set(ylabel=f"Recall@{k}", title=f"Recall@{k} per slice (95% bootstrap intervals)")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def write_plots(inputs: ReportInputs, out_dir: str) -> tuple[dict, str | None]:
    """The PNGs that the data allow, as ``({file name: True}, None)``, or ``({}, why)`` without matplotlib.

    A plot that fails (data of an unexpected shape) is left out; the report then shows the tables only."""
    try:
        import matplotlib  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
        return {}, "matplotlib is not installed"
    training, evaluation = inputs.training or {}, inputs.evaluation or {}
    wanted = {LOSS_PLOT: (plot_loss, training.get("epoch_loss")),
              VALID_PLOT: (plot_validation, training.get("valid_history")),
              SLICE_PLOT: (plot_slices, evaluation if evaluation.get("slices") else None)}
    made = {}
    for name, (plot, data) in wanted.items():
        if data:
            made[name] = _guarded(lambda p=plot, d=data, n=name: p(d, os.path.join(out_dir, n)) or True, False)
    return made, None


def _guarded(make, fallback):
    """``make()``, or ``fallback`` when it raises: one odd input costs its own part of the report only."""
    try:
        return make()
    except Exception as error:  # pylint: disable=broad-except
        logging.warning("model report: %s: %s", type(error).__name__, error)
        return fallback(error) if callable(fallback) else fallback


# ------------------------------------------------------------------------------------------------ the report
def render(inputs: ReportInputs, plots: dict, plots_missing: str | None = None) -> str:
    """The report's Markdown (``plots``: the PNG file names written beside it)."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# Model report: {inputs.model_name}", "",
           f"Written {now} by the pipeline's Pusher. Model artifact: `{inputs.model_uri or '-'}`.", ""]
    if plots_missing:
        out += [f"{NOT_AVAILABLE}: plots ({plots_missing})._", ""]
    sections = (lambda: blessing_section(inputs), lambda: metrics_section(inputs.evaluation),
                lambda: slices_section(inputs.evaluation, SLICE_PLOT if plots.get(SLICE_PLOT) else None),
                lambda: training_section(inputs.training, inputs.base_model_uri, plots),
                lambda: data_section(inputs), lambda: validation_section(inputs))
    for section in sections:
        out += _guarded(section, lambda error: _missing(
            f"a section could not be rendered ({type(error).__name__}: {error})"))
    return "\n".join(out).rstrip() + "\n"


def write_report(inputs: ReportInputs, out_dir: str) -> str:
    """Writes ``report.md``, its PNGs and ``report.json`` (the inputs) into the local directory ``out_dir``;
    returns the path of ``report.md``."""
    os.makedirs(out_dir, exist_ok=True)
    plots, why = write_plots(inputs, out_dir)
    path = os.path.join(out_dir, REPORT_FILE)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render(inputs, plots, why))
    with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as handle:
        json.dump(dataclasses.asdict(inputs), handle, indent=1, sort_keys=True, default=str)
    return path
