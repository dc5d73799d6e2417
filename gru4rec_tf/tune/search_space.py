"""Hyperparameter search spaces for ``gru4rec tune`` and the pipeline's Tuner: defaults, JSON format, validation.

No TensorFlow or KerasTuner import here: a space is read and checked in milliseconds, before any trial runs.

**Default spaces** (the authors' published Optuna spaces, ``paramspaces/gru4rec_*_parspace.json`` of the official
code; facts, not code): for every loss ``layers`` 64-512 step 32 (one layer), ``batch_size`` 32-256 step 16,
``learning_rate`` 0.01-0.25 step 0.005, ``dropout_p_embed`` 0-0.5 step 0.05, ``dropout_p_hidden`` 0-0.7 step 0.05,
``momentum`` 0-0.9 step 0.05, ``sample_alpha`` 0-1 step 0.1; plus, for BPR-max, ``bpreg`` 0-2 step 0.05 and
``final_act`` one of elu-0.5 / elu-1 / linear (other ranking losses: the ``final_act`` choice only).
Cross-entropy is searched over the common ranges with ``logq`` fixed at 1 (:func:`default_fixed`).

**JSON format** of a ``--space`` file (it replaces the default space; parameters it does not name keep their fixed
value)::

    {
      "layers":        {"low": 64, "high": 512, "step": 32},
      "learning_rate": {"low": 0.01, "high": 0.25, "log": true},
      "final_act":     {"values": ["elu-0.5", "elu-1", "linear"]}
    }

* keys are official GRU4Rec parameter names (any except ``loss``, ``n_epochs`` and ``sample_store_size``; tune each
  loss separately with ``--fixed_params loss=...``); ``layers`` is the size of the one hidden layer;
* a range: ``low`` <= ``high`` (inclusive), optional ``step`` (> 0; sampled values are ``low + k * step``) and
  ``log`` (sample on a log scale; ``low`` > 0); integers for integer parameters;
* a choice: ``values``, a non-empty list (the only form for text and boolean parameters);
* an optional ``"type"``: ``"int"``, ``"float"`` or ``"choice"`` (checked against the parameter when given).

The authors' own JSON-lines files (one ``{"name": ..., "dtype": "int"|"float"|"categorical", "low", "high",
"step", "choices"}`` object per line) are read too.

Example::

    >>> space = SearchSpace.from_dict({"layers": {"low": 8, "high": 16, "step": 8}})
    >>> base = GRU4RecParams.from_string("loss=cross-entropy,n_sample=16")
    >>> space.check(base)
    >>> space.apply(base, {"layers": 16}).layers
    (16,)
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

from gru4rec_tf.params import RANKING_LOSSES, GRU4RecParams

_INT_PARAMS = ("layers", "batch_size", "n_sample", "embedding")
_FLOAT_PARAMS = ("dropout_p_embed", "dropout_p_hidden", "learning_rate", "momentum", "sample_alpha", "bpreg",
                 "logq")
_CHOICE_PARAMS = ("final_act", "hidden_act", "constrained_embedding")
TUNABLE = _INT_PARAMS + _FLOAT_PARAMS + _CHOICE_PARAMS
NOT_TUNABLE = {"loss": "tune each loss separately with --fixed_params loss=...",
               "n_epochs": "the number of epochs is --epochs",
               "sample_store_size": "it does not change the model"}
_KEYS = {"type", "low", "high", "step", "log", "values"}
FIXED_KEY = "gru4rec_fixed_params"  # the tuner's HyperParameters entry holding the fixed parameter string
EPOCHS_KEY = "gru4rec_epochs"  # ... and the best trial's epochs (in the best hyperparameters only)
RUNG_KEY = "gru4rec_rung"  # ... and a successive-halving trial's rung (its fidelity; not a GRU4Rec parameter)
_OBJECTIVE = re.compile(r"(recall|mrr)@([1-9][0-9]*)")


def check_objective(name: str) -> str:
    """Returns ``name`` when it is a computed metric (``recall@K`` or ``mrr@K``), else raises ValueError."""
    if not isinstance(name, str) or not _OBJECTIVE.fullmatch(name.strip()):
        raise ValueError(f"the objective must be a metric the evaluation computes, recall@K or mrr@K "
                         f"(e.g. mrr@20), got {name!r}")
    return name.strip()


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched parameter: a range (``low``..``high``, ``step``, ``log``) or a choice (``values``)."""
    name: str
    kind: str  # "int", "float" or "choice"
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    values: tuple[Any, ...] = ()

    def to_dict(self) -> dict:
        if self.kind == "choice":
            return {"type": "choice", "values": list(self.values)}
        out = {"type": self.kind, "low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out

    def grid(self) -> list:
        """Every value of a stepped range or choice (for checks and summaries); [] for a continuous range."""
        if self.kind == "choice":
            return list(self.values)
        if self.step is None:
            return []
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        values = [self.low + k * self.step for k in range(n + 1)]
        return [int(round(v)) for v in values] if self.kind == "int" else [round(v, 10) for v in values]


def _rng(name, low, high, step, kind="float", log=False):
    return Dimension(name, kind, low, high, step, log)


_COMMON = (
    _rng("layers", 64, 512, 32, "int"),
    _rng("batch_size", 32, 256, 16, "int"),
    _rng("learning_rate", 0.01, 0.25, 0.005),
    _rng("dropout_p_embed", 0.0, 0.5, 0.05),
    _rng("dropout_p_hidden", 0.0, 0.7, 0.05),
    _rng("momentum", 0.0, 0.9, 0.05),
    _rng("sample_alpha", 0.0, 1.0, 0.1),
)
_BPREG = _rng("bpreg", 0.0, 2.0, 0.05)
_FINAL_ACT = Dimension("final_act", "choice", values=("elu-0.5", "elu-1", "linear"))


def default_fixed(loss: str) -> dict[str, Any]:
    """Fixed values the default space assumes for ``loss`` (``logq=1`` for the cross-entropy losses)."""
    return {"logq": 1.0} if loss not in RANKING_LOSSES else {}


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The searched parameters, in order. Build with :meth:`default`, :meth:`from_dict` or :meth:`from_file`."""
    dimensions: tuple[Dimension, ...]
    source: str = "default"

    @classmethod
    def default(cls, loss: str) -> SearchSpace:
        """The authors' space for ``loss`` (see the module docstring)."""
        dims = _COMMON
        if loss == "bpr-max":
            dims = dims + (_BPREG, _FINAL_ACT)
        elif loss in RANKING_LOSSES:
            dims = dims + (_FINAL_ACT,)
        return cls(dims, source=f"the default {loss} space")

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], source: str = "the space") -> SearchSpace:
        """Parses the JSON format; raises ValueError naming the parameter and the problem."""
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{source}: must be a JSON object of parameter name -> range or choice, "
                             f"got {type(mapping).__name__}")
        if not mapping:
            raise ValueError(f"{source}: names no parameter to search")
        return cls(tuple(_parse_dimension(source, name, spec) for name, spec in mapping.items()), source=source)

    @classmethod
    def from_file(cls, path: str | Path) -> SearchSpace:
        """Reads a space file (the JSON object format, or the authors' JSON-lines format)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot read the space file {path}: {err}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            data = _read_json_lines(path, text, err)
        return cls.from_dict(data, source=str(path))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def to_dict(self) -> dict:
        return {d.name: d.to_dict() for d in self.dimensions}

    def check(self, base: GRU4RecParams, fixed_names: Sequence[str] = ()) -> None:
        """Raises ValueError when a parameter is both fixed and searched, or a bound/choice is invalid for ``base``.

        ``fixed_names``: the parameters the user fixed explicitly (``--fixed_params``).
        """
        both = [n for n in self.names if n in set(fixed_names)]
        if both:
            raise ValueError(f"{', '.join(both)} {'is' if len(both) == 1 else 'are'} both fixed (--fixed_params) "
                             f"and searched ({self.source}); remove {'it' if len(both) == 1 else 'them'} from one "
                             "of them (a --space file replaces the default space)")
        for dim in self.dimensions:
            candidates = list(dim.values) if dim.kind == "choice" else [dim.low, dim.high]
            for value in candidates:
                try:
                    self.apply(base, {dim.name: value})
                except ValueError as err:
                    raise ValueError(f"{self.source}: {dim.name}: the value {value!r} is invalid with "
                                     f"loss={base.loss}: {err}") from None

    def apply(self, base: GRU4RecParams, values: Mapping[str, Any]) -> GRU4RecParams:
        """``base`` with the searched ``values`` (``layers`` is one layer's size)."""
        overrides = {}
        for name, value in values.items():
            if name == "layers":
                value = [int(value)]
            elif name in _INT_PARAMS:
                value = int(value)
            elif name in _FLOAT_PARAMS:
                value = float(value)
            overrides[name] = value
        return base.with_overrides(overrides)


def _read_json_lines(path: Path, text: str, first_error) -> dict:
    """The authors' format: one ``{"name", "dtype", "low", "high", "step" | "choices"}`` object per line."""
    lines = [line for line in text.splitlines() if line.strip()]
    out = {}
    for number, line in enumerate(lines, 1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path}: invalid JSON: {first_error}") from None
        if not isinstance(item, dict) or "name" not in item:
            raise ValueError(f"{path}: line {number}: expected an object with a 'name' (authors' format)")
        item = dict(item)
        name, dtype = item.pop("name"), item.pop("dtype", None)
        if "choices" in item:
            item["values"] = item.pop("choices")
        if dtype is not None:
            item["type"] = {"categorical": "choice"}.get(dtype, dtype)
        if name == "elu_param" and "values" in item:  # the ports' name for the ranking losses' final activation
            name = "final_act"
            item["values"] = [f"elu-{v}" if float(v) > 0 else "linear" for v in item["values"]]
        out[name] = item
    return out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_dimension(source: str, name: Any, spec: Any) -> Dimension:
    where = f"{source}: {name}"
    if name not in TUNABLE:
        if name in NOT_TUNABLE:
            raise ValueError(f"{where}: cannot be searched ({NOT_TUNABLE[name]})")
        known = tuple(f.name for f in dataclasses.fields(GRU4RecParams))
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{source}: unknown parameter {name!r}{hint}; searchable: {', '.join(TUNABLE)}")
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected an object like {{\"low\": 0, \"high\": 1}} or {{\"values\": [...]}}, "
                         f"got {spec!r}")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                         f"{', '.join(sorted(_KEYS))}")
    natural = "int" if name in _INT_PARAMS else "float" if name in _FLOAT_PARAMS else "choice"
    kind = "choice" if "values" in spec else natural
    declared = spec.get("type")
    if declared is not None and declared not in ("int", "float", "choice"):
        raise ValueError(f"{where}: type must be int, float or choice, got {declared!r}")
    if declared is not None and declared != kind and not (declared == "choice" and "values" in spec):
        raise ValueError(f"{where}: type {declared!r} does not fit; {name} is searched as {natural!r}"
                         + (" (a choice needs 'values')" if declared == "choice" else ""))
    if kind == "choice" and "values" not in spec:
        raise ValueError(f"{where}: {name} is not numeric; give its candidates as {{\"values\": [...]}}")
    if kind == "choice":
        extra = sorted(set(spec) & {"low", "high", "step", "log"})
        if extra:
            raise ValueError(f"{where}: a choice ('values') cannot also have {', '.join(extra)}")
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}: 'values' must be a non-empty list, got {values!r} (an empty range)")
        if len(set(map(json.dumps, values))) != len(values):
            raise ValueError(f"{where}: 'values' has duplicates: {values!r}")
        return Dimension(name, "choice", values=tuple(values))
    missing = [k for k in ("low", "high") if k not in spec]
    if missing:
        raise ValueError(f"{where}: a range needs {' and '.join(missing)}")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    for key, value in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
        if not _is_number(value):
            raise ValueError(f"{where}: {key} must be a number, got {value!r}")
        if kind == "int" and float(value) != int(value):
            raise ValueError(f"{where}: {key} must be an integer for {name}, got {value!r}")
    if not isinstance(log, bool):
        raise ValueError(f"{where}: log must be true or false, got {log!r}")
    if low > high:
        raise ValueError(f"{where}: empty range: low {low} > high {high}")
    if step is not None and step <= 0:
        raise ValueError(f"{where}: step must be > 0, got {step}")
    if log and low <= 0:
        raise ValueError(f"{where}: a log-scale range needs low > 0, got {low}")
    if kind == "int":
        low, high, step = int(low), int(high), (int(step) if step is not None else None)
    else:
        low, high, step = float(low), float(high), (float(step) if step is not None else None)
    return Dimension(name, kind, low, high, step, log)


# The best-known configuration per loss, a study's optional first trial (``--initial_params best_known``); facts:
# BPR-max is configuration A of this project's accuracy benchmark (bench/rsc15_configs.py: the authors' RSC15
# BPR-max setting with 100 units), cross-entropy the authors' paramfile rsc15_xe_shared_100_best.
BEST_KNOWN = {
    "bpr-max": "final_act=elu-0.5,layers=100,batch_size=32,dropout_p_embed=0.0,dropout_p_hidden=0.0,"
               "learning_rate=0.05,momentum=0.0,sample_alpha=0.5,bpreg=1.0",
    "cross-entropy": "layers=100,batch_size=32,dropout_p_embed=0.0,dropout_p_hidden=0.4,learning_rate=0.2,"
                     "momentum=0.2,sample_alpha=0.5",
}


def initial_values(text: str, space: SearchSpace, base: GRU4RecParams) -> dict[str, Any]:
    """The searched values of a study's first trial from ``--initial_params``; ValueError naming what is wrong.

    ``text`` is ``k=v,...`` (official names, ``elu_param`` accepted) giving a value to every searched parameter
    and nothing else, or ``best_known`` (:data:`BEST_KNOWN` of ``base.loss``, its searched parameters). Each
    value must lie in its range (it need not be on the ``step`` grid) or among its choices.
    """
    where = "--initial_params"
    text = (text or "").strip()
    if text == "best_known":
        if base.loss not in BEST_KNOWN:
            raise ValueError(f"{where}: no best-known configuration for loss={base.loss} (known: "
                             f"{', '.join(BEST_KNOWN)}); give the values as k=v,...")
        known = BEST_KNOWN[base.loss]
        names = {item.split("=", 1)[0] for item in known.split(",")}
        lacking = [n for n in space.names if n not in names]
        if lacking:
            raise ValueError(f"{where}: the best-known {base.loss} configuration has no value for the searched "
                             f"{', '.join(lacking)}; give the values as k=v,...")
        text = ",".join(item for item in known.split(",") if item.split("=", 1)[0] in space.names)
        where = f"--initial_params best_known ({base.loss}: {known})"
    names = [item.split("=", 1)[0].strip() for item in text.split(",") if item.strip()]
    names = ["final_act" if n == "elu_param" else n for n in names]
    try:
        params = base.with_overrides(text)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    unsearched = [n for n in names if n not in space.names]
    if unsearched:
        raise ValueError(f"{where}: {', '.join(unsearched)} {'is' if len(unsearched) == 1 else 'are'} not searched "
                         f"({space.source}); fixed values go in --fixed_params")
    missing = [n for n in space.names if n not in names]
    if missing:
        raise ValueError(f"{where}: the first trial needs a value for every searched parameter; missing "
                         f"{', '.join(missing)}")
    try:
        return values_in_space(space, params)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def values_in_space(space: SearchSpace, params: GRU4RecParams) -> dict[str, Any]:
    """The searched values of ``params`` (``{name: value}``); ValueError naming a value the space rejects.

    Example::

        values_in_space(SearchSpace.default("bpr-max"), GRU4RecParams(loss="bpr-max", layers=(100,)))
    """
    values = {}
    for dim in space.dimensions:
        value = getattr(params, dim.name)
        if dim.name == "layers":
            if len(value) != 1:
                raise ValueError(f"layers must be one layer's size, got {'/'.join(map(str, value))}")
            value = value[0]
        if dim.kind == "choice":
            if value not in dim.values:
                raise ValueError(f"{dim.name}={value} is not one of {list(dim.values)}")
        elif not dim.low - 1e-9 <= value <= dim.high + 1e-9:
            raise ValueError(f"{dim.name}={value} is outside the searched range {dim.low}-{dim.high}")
        values[dim.name] = value
    return values


def clean_value(value):
    """A sampled value without the float noise of stepped ranges (0.19999999999999998 -> 0.2)."""
    return round(value, 10) if isinstance(value, float) else value


def params_from_values(values: Mapping[str, Any], epochs: int | None = None) -> GRU4RecParams:
    """The GRU4Rec parameters of a tuner trial's values or of the ``best_hyperparameters`` artifact's values.

    ``values[FIXED_KEY]`` holds the fixed parameters as a ``k=v`` string, the other entries the searched values,
    ``values[EPOCHS_KEY]`` (optional) the best trial's epochs; ``epochs`` overrides it.
    """
    if FIXED_KEY not in values:
        raise ValueError(f"the hyperparameters lack {FIXED_KEY!r}: they were not written by the gru4rec tuner")
    base = GRU4RecParams.from_string(values[FIXED_KEY])
    searched = {k: clean_value(v) for k, v in values.items() if k not in (FIXED_KEY, EPOCHS_KEY, RUNG_KEY)}
    params = SearchSpace(()).apply(base, searched)
    n_epochs = epochs if epochs is not None else values.get(EPOCHS_KEY)
    return params.with_overrides({"n_epochs": int(n_epochs)}) if n_epochs is not None else params
