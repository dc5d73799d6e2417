"""The blessing rule: thresholds on Recall@k / MRR@k, no regression against the last blessed model, overall and
per slice.

Pure Python (no TFX, no TensorFlow), used by the SessionEvaluator component and tested on its own.

A candidate is blessed when, for every *gated* metric (the keys of ``thresholds``):

1. ``candidate[m] >= thresholds[m]`` (absolute floor), and
2. when a baseline (the last blessed model) exists: ``candidate[m] >= baseline[m] - regression_margin``, both
   measured on the *current* test split (the baseline is re-evaluated on the same data), and
3. (the sliced gate) when a baseline exists, no slice of the test events (:mod:`gru4rec_tf.evaluation.slices`:
   target item new/known, session position, target popularity) with at least ``min_slice_events`` events falls
   more than ``slice_regression_margin`` below the baseline *beyond its noise*: a slice fails when the whole
   interval of the paired difference candidate - baseline (the same test sessions resampled for both) lies below
   ``-slice_regression_margin``. A small slice has a wide interval, so it fails only on a large drop. The
   intervals are *family-wise* 95% (Bonferroni): with ``m`` tests (gated slices x gated metrics, plus the new-item
   floor's) each is the bootstrap estimate +- ``z`` standard errors with ``z`` the normal quantile of
   ``1 - 0.05 / (2m)`` (2.99 for 18 tests, 1.96 for one), so a healthy candidate fails one of its many slices by
   chance in at most 5% of runs, not in one of every few;
4. (the new-item floor) when a baseline exists, the baseline has never seen the new items (its figures there are 0
   by construction), so the ``target_new`` slice cannot regress against it: instead the candidate's own figure on
   new items must reach ``min_new_item_ratio`` times its figure on known items (``target_known``), again unless the
   upper end of its interval reaches that floor. A candidate that stops recommending new items fails it.

Example::

    >>> rule = BlessingOptions(thresholds={"recall@20": 0.3}, regression_margin=0.01)
    >>> decide(rule, {"recall@20": 0.40}, baseline={"recall@20": 0.42}).blessed
    False
    >>> decide(rule, {"recall@20": 0.41}, baseline={"recall@20": 0.42}).blessed
    True
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import statistics
from collections.abc import Mapping

from gru4rec_tf.evaluation.options import DEFAULT_CUTOFFS, DEFAULT_EVAL_BATCH_SIZE, DEFAULT_EVAL_MODE, EVAL_MODES
from gru4rec_tf.evaluation.options import SliceOptions

_METRIC = re.compile(r"(recall|mrr)@([1-9][0-9]*)\Z")
FAMILY_CONFIDENCE = 0.95  # of the sliced gate's tests together (Bonferroni)


def parse_thresholds(text: str) -> dict:
    """``"recall@20=0.1,mrr@20=0.03"`` -> ``{"recall@20": 0.1, "mrr@20": 0.03}``; raises ValueError when malformed."""
    out = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"threshold {part!r} must look like 'recall@20=0.1'")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"threshold {part!r}: {value!r} is not a number") from None
    return out


@dataclasses.dataclass(frozen=True)
class BlessingOptions:
    """What the SessionEvaluator measures and how it decides (validated on construction).

    Fields:
        cutoffs: the ``k`` of Recall@k and MRR@k to report.
        thresholds: gated metric -> lower bound, e.g. ``{"recall@20": 0.1, "mrr@20": 0.03}`` (``k`` in ``cutoffs``).
        regression_margin: the largest allowed drop of a gated metric below the last blessed model's value
            (absolute, in metric units).
        eval_mode: how ties are ranked (spec §7): ``standard``, ``conservative`` or ``median``.
        eval_batch_size: session-parallel batch size of the evaluation.
        split: the split of the session tensors to evaluate on.
        min_slice_events: the sliced gate looks only at slices with at least this many test events.
        slice_regression_margin: the largest allowed drop of a gated metric in a slice below the baseline
            (absolute); a slice fails when the family-wise 95% interval of its drop lies entirely beyond it.
        popularity_slice_margin: ``slice_regression_margin`` of the target-popularity slices (``popularity_*``):
            a change of the model's popularity bias moves recall between head and tail while the whole improves
            (on the generator's clean drifting days the head lost up to 0.12 of Recall@20 while the tail gained
            0.15 and the whole 0.08), so these slices fail only on a larger drop.
        min_new_item_ratio: with a baseline, the candidate's gated metrics on new items (``target_new``, when it
            has ``min_slice_events``) must reach this fraction of its own on known items; 0 turns the floor off.
        eval_sample_sessions, bootstrap_resamples, eval_seed: as in
            :class:`gru4rec_tf.evaluation.options.SliceOptions` (None: every test session is ranked).

    Example::

        >>> BlessingOptions(thresholds={"recall@5": 0.2}).gated_metrics
        ('recall@5',)
    """

    cutoffs: tuple[int, ...] = DEFAULT_CUTOFFS
    thresholds: Mapping[str, float] = dataclasses.field(default_factory=lambda: {"recall@20": 0.1, "mrr@20": 0.03})
    regression_margin: float = 0.01
    eval_mode: str = DEFAULT_EVAL_MODE
    eval_batch_size: int = DEFAULT_EVAL_BATCH_SIZE
    split: str = "test"
    min_slice_events: int = 200
    slice_regression_margin: float = 0.02
    popularity_slice_margin: float = 0.1
    min_new_item_ratio: float = 0.1
    eval_sample_sessions: int | None = None
    bootstrap_resamples: int = SliceOptions.bootstrap_resamples
    eval_seed: int = SliceOptions.eval_seed

    def __post_init__(self):
        cutoffs = tuple(self.cutoffs)
        if not cutoffs or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in cutoffs):
            raise ValueError(f"cutoffs must be positive integers, got {self.cutoffs!r}")
        object.__setattr__(self, "cutoffs", cutoffs)
        thresholds = dict(self.thresholds)
        if not thresholds:
            raise ValueError("thresholds must name at least one metric, e.g. {'recall@20': 0.1}")
        for name, bound in thresholds.items():
            match = _METRIC.match(str(name))
            if not match:
                raise ValueError(f"threshold metric {name!r} must be recall@K or mrr@K")
            if int(match.group(2)) not in cutoffs:
                raise ValueError(f"threshold metric {name!r}: K={match.group(2)} is not one of the cutoffs {cutoffs}")
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not 0.0 <= bound <= 1.0:
                raise ValueError(f"threshold of {name} must be a number in [0, 1], got {bound!r}")
        object.__setattr__(self, "thresholds", {k: float(v) for k, v in sorted(thresholds.items())})
        margin = self.regression_margin
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin) or margin < 0:
            raise ValueError(f"regression_margin must be a number >= 0, got {margin!r}")
        if self.eval_mode not in EVAL_MODES:
            raise ValueError(f"eval_mode must be one of {EVAL_MODES}, got {self.eval_mode!r}")
        if isinstance(self.eval_batch_size, bool) or not isinstance(self.eval_batch_size, int) \
                or self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be an integer >= 1, got {self.eval_batch_size!r}")
        if not isinstance(self.split, str) or not self.split:
            raise ValueError(f"split must be a split name, got {self.split!r}")
        self._check_slice_gate()

    def _check_slice_gate(self) -> None:
        if isinstance(self.min_slice_events, bool) or not isinstance(self.min_slice_events, int) \
                or self.min_slice_events < 1:
            raise ValueError(f"min_slice_events must be an integer >= 1, got {self.min_slice_events!r}")
        margin = self.slice_regression_margin
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin) or margin < 0:
            raise ValueError(f"slice_regression_margin must be a number >= 0, got {margin!r}")
        margin = self.popularity_slice_margin
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin) or margin < 0:
            raise ValueError(f"popularity_slice_margin must be a number >= 0, got {margin!r}")
        ratio = self.min_new_item_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
            raise ValueError(f"min_new_item_ratio must be a number in [0, 1], got {ratio!r}")
        self.slice_options()  # validates the sample and bootstrap settings

    def slice_options(self) -> SliceOptions:
        """The sample and bootstrap settings of the sliced evaluation."""
        return SliceOptions(eval_sample_sessions=self.eval_sample_sessions,
                            bootstrap_resamples=self.bootstrap_resamples, eval_seed=self.eval_seed)

    @property
    def gated_metrics(self) -> tuple[str, ...]:
        return tuple(self.thresholds)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["cutoffs"] = list(self.cutoffs)
        data["thresholds"] = dict(self.thresholds)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BlessingOptions:
        data = json.loads(text)
        data["cutoffs"] = tuple(data.get("cutoffs", cls.cutoffs))
        return cls(**data)


SLICE_GATE_FLAGS = ("min_slice_events", "slice_regression_margin", "popularity_slice_margin", "min_new_item_ratio",
                    "eval_sample_sessions")


def define_slice_gate_flags(flag_values) -> None:
    """The sliced gate's flags of ``gru4rec pipeline run|compile`` (defaults: :class:`BlessingOptions`'s)."""
    from absl import flags  # pylint: disable=g-import-not-at-top
    defaults = {f.name: f.default for f in dataclasses.fields(BlessingOptions)}
    flags.DEFINE_integer("min_slice_events", defaults["min_slice_events"], "Sliced gate: only slices of the test "
                         "events (target new/known, session position, target popularity) with at least this many "
                         "events are gated.", flag_values=flag_values)
    flags.DEFINE_float("slice_regression_margin", defaults["slice_regression_margin"], "Sliced gate: a slice fails "
                       "when the family-wise 95% bootstrap interval (Bonferroni over the gated slices and metrics) of "
                       "its drop below the last blessed model (Recall@k, MRR@k of --thresholds) lies entirely beyond "
                       "this margin.", flag_values=flag_values)
    flags.DEFINE_float("popularity_slice_margin", defaults["popularity_slice_margin"], "Sliced gate: "
                       "--slice_regression_margin of the target-popularity slices (popularity_head/torso/tail), where "
                       "a change of the model's popularity bias trades head for tail.", flag_values=flag_values)
    flags.DEFINE_float("min_new_item_ratio", defaults["min_new_item_ratio"], "Sliced gate: the candidate's Recall@k "
                       "and MRR@k on items the last blessed model never saw (target_new) must reach this fraction of "
                       "its own on known items (0: no floor).", flag_values=flag_values)
    field = next(f for f in dataclasses.fields(SliceOptions) if f.name == "eval_sample_sessions")
    flags.DEFINE_integer("eval_sample_sessions", None, field.metadata["help"], flag_values=flag_values)


def slice_gate_flag_values(flag_values=None) -> dict:
    """The :class:`BlessingOptions` keyword arguments of the sliced gate's flags."""
    from absl import flags  # pylint: disable=g-import-not-at-top
    flag_values = flag_values or flags.FLAGS
    return {name: flag_values[name].value for name in SLICE_GATE_FLAGS}


@dataclasses.dataclass(frozen=True)
class BlessingDecision:
    """The outcome: ``blessed``, one human-readable line per check (failed checks start with ``FAIL``) and the
    slices that failed the sliced gate."""

    blessed: bool
    checks: list[str]
    failed_slices: tuple[str, ...] = ()

    @property
    def failures(self) -> list[str]:
        return [c for c in self.checks if c.startswith("FAIL")]


def decide(options: BlessingOptions, candidate: Mapping[str, float],
           baseline: Mapping[str, float] | None = None, slices: Mapping[str, Mapping] | None = None
           ) -> BlessingDecision:
    """Applies the blessing rule of :class:`BlessingOptions` to the candidate's (and baseline's) metrics and, with
    a baseline, to ``slices``: the paired slice table of
    :func:`gru4rec_tf.evaluation.slices.paired_slice_table` (``{slice: {"events", "difference": {"recall@20_ci":
    [lo, hi], ...}}}``).

    Example (the candidate loses 0.1 of Recall@20 on new items, interval [-0.15, -0.05], beyond the margin 0.02):
        >>> rule = BlessingOptions(thresholds={"recall@20": 0.1}, min_slice_events=100)
        >>> table = {"target_new": {"events": 400, "difference": {"recall@20": -0.1, "recall@20_ci": [-0.15, -0.05]}}}
        >>> decision = decide(rule, {"recall@20": 0.5}, {"recall@20": 0.5}, slices=table)
        >>> decision.blessed, decision.failed_slices
        (False, ('target_new',))
        >>> decide(BlessingOptions(thresholds={"recall@20": 0.1}, min_slice_events=500), {"recall@20": 0.5},
        ...        {"recall@20": 0.5}, slices=table).blessed          # a slice below min_slice_events is not gated
        True
    """
    checks = []
    for name, bound in options.thresholds.items():
        value = float(candidate[name])
        ok = value >= bound
        checks.append(f"{'ok' if ok else 'FAIL'}: {name} {value:.4f} {'>=' if ok else '<'} threshold {bound:.4f}")
        if baseline is not None:
            floor = float(baseline[name]) - options.regression_margin
            ok = value >= floor
            checks.append(f"{'ok' if ok else 'FAIL'}: {name} {value:.4f} {'>=' if ok else '<'} baseline "
                          f"{float(baseline[name]):.4f} - margin {options.regression_margin:.4f}")
    failed_slices = ()
    if baseline is not None and slices:
        slice_checks, failed_slices = slice_gate(options, slices)
        checks += slice_checks
    return BlessingDecision(blessed=not any(c.startswith("FAIL") for c in checks), checks=checks,
                            failed_slices=failed_slices)


def _bounds(cell: Mapping, metric: str, z: float) -> tuple[float | None, float | None]:
    """``(lo, hi)``: the estimate +- ``z`` bootstrap standard errors; a table without errors (written before they
    were recorded) gives its 95% percentile interval."""
    value, se = cell.get(metric), cell.get(f"{metric}_se")
    if value is None:
        return None, None
    if se is None:
        lo, hi = cell.get(f"{metric}_ci") or (None, None)
        return lo, hi
    return value - z * se, value + z * se


def slice_gate(options: BlessingOptions, slices: Mapping[str, Mapping]) -> tuple[list[str], tuple[str, ...]]:
    """The sliced gate's check lines and the failed slices (``all`` is the overall rule's, not gated here):
    the regression of each gated slice against the baseline and the new-item floor, their intervals family-wise
    95% (Bonferroni over all these tests)."""
    failures, failed = [], []
    gated = [name for name, row in slices.items() if name != "all" and row["events"] >= options.min_slice_events]
    new_floor = options.min_new_item_ratio > 0 and "target_new" in gated and "target_known" in slices \
        and "candidate" in slices["target_new"] and "candidate" in slices["target_known"]
    metrics = options.gated_metrics
    tests = len(gated) * len(metrics) + (len(metrics) if new_floor else 0)
    z = statistics.NormalDist().inv_cdf(1.0 - (1.0 - FAMILY_CONFIDENCE) / (2 * max(tests, 1)))
    for name in gated:
        difference = slices[name].get("difference") or {}
        margin = options.popularity_slice_margin if name.startswith("popularity_") else options.slice_regression_margin
        for metric in metrics:
            lo, hi = _bounds(difference, metric, z)
            if hi is not None and hi < -margin:
                failures.append(f"FAIL: slice {name} ({slices[name]['events']} events): {metric} "
                                f"{difference[metric]:+.4f} below the baseline, family-wise 95% CI [{lo:+.4f}, "
                                f"{hi:+.4f}] entirely below -margin {margin:.4f}")
                if name not in failed:
                    failed.append(name)
    floor_lines = []
    if new_floor:
        new, known = slices["target_new"]["candidate"], slices["target_known"]["candidate"]
        for metric in metrics:
            lo, hi = _bounds(new, metric, z)
            if hi is None or known.get(metric) is None:
                continue
            floor = options.min_new_item_ratio * known[metric]
            ok = hi >= floor
            floor_lines.append(
                f"{'ok' if ok else 'FAIL'}: slice target_new ({slices['target_new']['events']} events): {metric} "
                f"{new[metric]:.4f} (family-wise 95% CI [{lo:.4f}, {hi:.4f}]) {'reaches' if ok else 'below'} "
                f"{options.min_new_item_ratio:g} x {known[metric]:.4f} on known items = {floor:.4f}")
            if not ok and "target_new" not in failed:
                failed.append("target_new")
    ok = f"ok: no slice of >= {options.min_slice_events} events ({len(gated)} gated) falls beyond -margin " \
        f"{options.slice_regression_margin:.4f} (popularity slices: {options.popularity_slice_margin:.4f}) of the " \
        f"baseline with family-wise 95% confidence (Bonferroni over {tests} tests: +-{z:.2f} standard errors)"
    return (failures or [ok]) + floor_lines, tuple(failed)
