"""The blessing rule: thresholds on Recall@k / MRR@k, and no regression against the last blessed model.

Pure Python (no TFX, no TensorFlow), used by the SessionEvaluator component and tested on its own.

A candidate is blessed when, for every *gated* metric (the keys of ``thresholds``):

1. ``candidate[m] >= thresholds[m]`` (absolute floor), and
2. when a baseline (the last blessed model) exists: ``candidate[m] >= baseline[m] - regression_margin``, both
   measured on the *current* test split (the baseline is re-evaluated on the same data).

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
from collections.abc import Mapping

from gru4rec_tf.evaluation.options import DEFAULT_CUTOFFS, DEFAULT_EVAL_BATCH_SIZE, DEFAULT_EVAL_MODE, EVAL_MODES

_METRIC = re.compile(r"(recall|mrr)@([1-9][0-9]*)\Z")


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


@dataclasses.dataclass(frozen=True)
class BlessingDecision:
    """The outcome: ``blessed`` and one human-readable line per check (failed checks start with ``FAIL``)."""

    blessed: bool
    checks: list[str]

    @property
    def failures(self) -> list[str]:
        return [c for c in self.checks if c.startswith("FAIL")]


def decide(options: BlessingOptions, candidate: Mapping[str, float],
           baseline: Mapping[str, float] | None = None) -> BlessingDecision:
    """Applies the blessing rule of :class:`BlessingOptions` to the candidate's (and baseline's) metrics."""
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
    return BlessingDecision(blessed=not any(c.startswith("FAIL") for c in checks), checks=checks)
