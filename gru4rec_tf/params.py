"""GRU4Rec hyperparameters: one immutable, validated object parsed from the official formats.

Accepted inputs (all end in :class:`GRU4RecParams`):

* the official ``run.py`` parameter string: ``"loss=bpr-max,final_act=elu-0.5,layers=100/100,batch_size=32"``
  (comma-separated ``key=value``; lists separated by ``/``; booleans ``True``/``False``/``1``/``0``);
* a mapping of Python values or strings (:meth:`GRU4RecParams.from_dict`);
* a parameter file (:meth:`GRU4RecParams.from_file`): the official ``paramfiles/*.py`` format (read with
  :mod:`ast`, never executed), a JSON object, or a text file holding a parameter string.

Names follow the official code. ``elu_param`` (the PyTorch/TF ports' name) is an alias that selects
``final_act`` for the ranking losses. Theano-only options (``adapt``, ``lmbd``, ``grad_cap``, ``sigma``,
``init_as_normal``, ``train_random_order``, ``time_sort``, ``smoothing``, ``decay``) are accepted only at their
default value, so official parameter strings and files parse unchanged. Any other value is rejected because the
feature is not implemented. This module does not import TensorFlow.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import math
import numbers
import re
from pathlib import Path
from typing import Any
from collections.abc import Mapping

LOSSES = ("cross-entropy", "xe_logit", "top1", "bpr", "top1-max", "bpr-max")
RANKING_LOSSES = ("top1", "bpr", "top1-max", "bpr-max")
HIDDEN_ACTS = ("tanh", "relu")
FINAL_ACT_FORMS = ("linear", "relu", "tanh", "leaky-X", "elu-X", "selu-X-Y", "softmax", "softmax_logit")

_RANKING_ACT_FORMS = ("linear", "relu", "tanh", "leaky-X", "elu-X", "selu-X-Y")
_ACT_FORMS_BY_LOSS = {
    "cross-entropy": ("softmax",),
    "xe_logit": ("softmax_logit",),
    **{loss: _RANKING_ACT_FORMS for loss in RANKING_LOSSES},
}
_DEFAULT_FINAL_ACT = {"cross-entropy": "softmax", "xe_logit": "softmax_logit"}  # ranking losses: "linear"

ALIASES = ("elu_param",)
# Theano-only options: accepted at their default value only.
LEGACY_DEFAULTS = {
    "adapt": "adagrad",
    "lmbd": 0.0,
    "grad_cap": 0.0,
    "sigma": 0.0,
    "init_as_normal": False,
    "train_random_order": False,
    "time_sort": True,
    "smoothing": 0.0,
}
# Theano-only options that are accepted with any value and ignored (decay only affects rmsprop).
IGNORED_LEGACY = ("decay",)

_STR_FIELDS = ("loss", "final_act", "hidden_act")
_INT_FIELDS = ("batch_size", "n_sample", "n_epochs", "sample_store_size")
_FLOAT_FIELDS = ("dropout_p_embed", "dropout_p_hidden", "learning_rate", "momentum", "sample_alpha", "bpreg", "logq")
_BOOL_FIELDS = ("constrained_embedding",)
_RANGE_CHECKS = (  # (name, predicate, description of the valid range)
    ("batch_size", lambda v: v >= 1, ">= 1"),
    ("dropout_p_embed", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("dropout_p_hidden", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("learning_rate", lambda v: v > 0, "> 0"),
    ("momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("n_sample", lambda v: v >= 0, ">= 0"),
    ("sample_alpha", lambda v: v >= 0, ">= 0"),
    ("bpreg", lambda v: v >= 0, ">= 0"),
    ("logq", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("n_epochs", lambda v: v >= 0, ">= 0"),
    ("sample_store_size", lambda v: v >= 0, ">= 0"),
)

_NUM = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_ACT_PATTERNS = (
    ("leaky", re.compile(rf"leaky-({_NUM})")),
    ("elu", re.compile(rf"elu-({_NUM})")),
    ("selu", re.compile(rf"selu-({_NUM})-({_NUM})")),
)
_PLAIN_ACTS = ("linear", "relu", "tanh", "softmax", "softmax_logit")
_TRUE, _FALSE = ("true", "1"), ("false", "0")


# ----------------------------------------------------------------------------------------------- value coercion
def _to_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value.strip()


def _to_int(name: str, value: Any) -> int:
    number = value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            number = _float_or_text(value.strip())  # accepts "1e7" and "32.0"
    if isinstance(number, numbers.Integral) and not isinstance(number, bool):
        return int(number)
    if isinstance(number, numbers.Real) and not isinstance(number, bool) and float(number).is_integer():
        return int(number)
    raise ValueError(f"{name} must be an integer, got {value!r}")


def _to_float(name: str, value: Any) -> float:
    result = _float_or_text(value.strip()) if isinstance(value, str) else value
    if isinstance(result, numbers.Real) and not isinstance(result, bool) and math.isfinite(result):
        return float(result)
    raise ValueError(f"{name} must be a finite number, got {value!r}")


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, numbers.Integral)) else None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{name} must be a boolean (True/False/true/false/1/0), got {value!r}")


def _to_layers(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = value.strip().split("/") if value.strip() else []
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    try:
        layers = tuple(_to_int("layers", p) for p in parts)
    except ValueError:
        raise ValueError(f"layers must be a list of integers (a string like '100/100'), got {value!r}") from None
    if not layers or min(layers) < 1:
        raise ValueError(f"layers must be a non-empty list of integers >= 1, got {value!r}")
    return layers


def _to_embedding(value: Any) -> int | str:
    if isinstance(value, str) and value.strip() == "layersize":
        return "layersize"
    try:
        embedding = _to_int("embedding", value)
    except ValueError:
        raise ValueError(f"embedding must be an integer >= 0 or 'layersize', got {value!r}") from None
    if embedding < 0:
        raise ValueError(f"embedding must be an integer >= 0 or 'layersize', got {value!r}")
    return embedding


def _float_or_text(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _coerce_field(name: str, value: Any) -> Any:
    """Convert a Python value or a string to the type of field ``name``; ValueError naming it if impossible."""
    if name in _STR_FIELDS:
        return _to_str(name, value)
    if name in _INT_FIELDS:
        return _to_int(name, value)
    if name in _FLOAT_FIELDS:
        return _to_float(name, value)
    if name in _BOOL_FIELDS:
        return _to_bool(name, value)
    if name == "layers":
        return _to_layers(value)
    if name == "embedding":
        return _to_embedding(value)
    raise AssertionError(f"no coercion for {name}")  # pragma: no cover


# ------------------------------------------------------------------------------------------ final activations
def parse_final_act(name: str) -> tuple[str, tuple[float, ...]]:
    """Split a final activation name into its kind and numeric arguments.

    >>> parse_final_act("elu-0.5")
    ('elu', (0.5,))
    >>> parse_final_act("selu-1.05-1.67")
    ('selu', (1.05, 1.67))
    >>> parse_final_act("linear")
    ('linear', ())
    """
    text = _to_str("final_act", name)
    if text in _PLAIN_ACTS:
        return text, ()
    for kind, pattern in _ACT_PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            return kind, tuple(float(g) for g in match.groups())
    raise ValueError(
        f"final_act must be one of {', '.join(FINAL_ACT_FORMS)} (X, Y non-negative numbers), got {name!r}"
    )


def _act_form(kind: str) -> str:
    return {"leaky": "leaky-X", "elu": "elu-X", "selu": "selu-X-Y"}.get(kind, kind)


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def final_act_from_elu_param(elu_param: float) -> str:
    """The final activation that the PyTorch/TF ports use for a ranking loss: ``elu-X``, or ``linear`` for X == 0."""
    return f"elu-{_format_number(elu_param)}" if elu_param > 0 else "linear"


# ------------------------------------------------------------------------------------------ raw input handling
def _known_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(GRU4RecParams)) + ALIASES


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ValueError(f"parameter names must be strings, got {name!r}")
    key = name.strip()
    if key in _known_names() or key in LEGACY_DEFAULTS or key in IGNORED_LEGACY:
        return key
    close = difflib.get_close_matches(key, _known_names() + tuple(LEGACY_DEFAULTS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown parameter {key!r}{hint}; valid parameters: {', '.join(_known_names())}")


def _check_legacy(name: str, value: Any) -> None:
    default = LEGACY_DEFAULTS[name]
    convert = {str: _to_str, bool: _to_bool, float: _to_float}[type(default)]
    try:
        ok = convert(name, value) == default
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name}={value!r} is not supported: {name} is a Theano-only option and only its default "
            f"{default!r} is accepted"
        )


def _split_raw(mapping: Mapping[Any, Any]) -> tuple[dict[str, Any], float | None]:
    """Check names, drop accepted legacy options, return (field values, elu_param or None)."""
    fields, elu_param = {}, None
    for raw_name, value in mapping.items():
        name = _check_name(raw_name)
        if name in fields or (name == "elu_param" and elu_param is not None):
            raise ValueError(f"parameter {name!r} is given more than once")
        if name == "elu_param":
            elu_param = _to_float("elu_param", value)
        elif name in LEGACY_DEFAULTS:
            _check_legacy(name, value)
        elif name not in IGNORED_LEGACY:
            fields[name] = _coerce_field(name, value)
    return fields, elu_param


def _resolve_final_act(fields: dict[str, Any], base: Mapping[str, Any], elu_param: float | None) -> str:
    """Pick final_act when it was not given, and check it against elu_param when both were."""
    loss = fields.get("loss", base.get("loss", GRU4RecParams.loss))
    use_elu = elu_param is not None and loss in RANKING_LOSSES
    if use_elu and elu_param < 0:
        raise ValueError(f"elu_param must be >= 0, got {elu_param!r}")
    if "final_act" in fields:
        if use_elu and parse_final_act(fields["final_act"]) != parse_final_act(final_act_from_elu_param(elu_param)):
            raise ValueError(
                f"final_act={fields['final_act']!r} disagrees with elu_param={elu_param!r} "
                f"(which means final_act={final_act_from_elu_param(elu_param)!r}); give only one of them"
            )
        return fields["final_act"]
    if use_elu:
        return final_act_from_elu_param(elu_param)
    previous = base.get("final_act")
    if previous is not None and _act_is_valid_for(previous, loss):
        return previous
    return _DEFAULT_FINAL_ACT.get(loss, "linear")


def _act_is_valid_for(final_act: str, loss: str) -> bool:
    try:
        kind, _ = parse_final_act(final_act)
    except ValueError:
        return False
    return _act_form(kind) in _ACT_FORMS_BY_LOSS.get(loss, ())


def check_loss_pairing(loss: str, final_act: str) -> None:
    """Raises ValueError unless ``final_act`` is a valid final activation for ``loss`` (spec §4 pairing)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    kind, _ = parse_final_act(final_act)
    valid = _ACT_FORMS_BY_LOSS[loss]
    if _act_form(kind) not in valid:
        raise ValueError(
            f"final_act={final_act!r} is not valid with loss={loss!r}; "
            f"valid final_act values for {loss}: {', '.join(valid)}"
        )


def _parse_kv_string(text: str) -> dict[str, str]:
    """Parse ``k=v,k=v`` (the official run.py format) into a dict of strings."""
    if not isinstance(text, str):
        raise ValueError(f"a parameter string must be a str, got {text!r}")
    result: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"expected key=value in the parameter string, got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        if key in result:
            raise ValueError(f"parameter {key!r} is given more than once")
        result[key] = value
    return result


# ------------------------------------------------------------------------------------------------ file reading
def _read_python_paramfile(path: Path, text: str) -> dict[str, Any]:
    """Find the dict / OrderedDict literal of an official paramfile without executing anything."""
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as err:
        raise ValueError(f"{path}: not a valid Python parameter file: {err.msg} (line {err.lineno})") from None
    found: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        if _is_allowed_import(node) or _is_docstring(node):
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = _literal_mapping(path, node.targets[0].id, node.value)
            continue
        raise ValueError(
            f"{path}: line {node.lineno}: unsupported statement; a parameter file may only contain "
            "'from collections import OrderedDict' and an assignment of a dict / OrderedDict literal"
        )
    if "gru4rec_params" in found:
        return found["gru4rec_params"]
    if len(found) == 1:
        return next(iter(found.values()))
    what = "no assignment" if not found else f"several assignments ({', '.join(found)})"
    raise ValueError(f"{path}: expected one dict assignment (gru4rec_params = OrderedDict([...])), found {what}")


def _is_allowed_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module == "collections" and all(a.name == "OrderedDict" for a in node.names)
    if isinstance(node, ast.Import):
        return all(a.name == "collections" for a in node.names)
    return False


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _literal_mapping(path: Path, target: str, node: ast.expr) -> dict[str, Any]:
    where = f"{path}: line {node.lineno}: {target}"
    if isinstance(node, ast.Dict):
        return _safe_literal(where, node)
    if not (_is_dict_constructor(node) and len(node.args) <= 1):
        raise ValueError(f"{where}: must be a dict literal or OrderedDict([...]) of literal (key, value) pairs")
    pairs = _safe_literal(where, node.args[0]) if node.args else []
    if isinstance(pairs, dict):
        pairs = list(pairs.items())
    if not isinstance(pairs, (list, tuple)):
        raise ValueError(f"{where}: expected a list of (name, value) pairs, got {pairs!r}")
    keywords = [(kw.arg, _safe_literal(where, kw.value)) for kw in node.keywords]
    return _pairs_to_dict(where, list(pairs) + keywords)


def _safe_literal(where: str, node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(
            f"{where}: only literal values are allowed, found {ast.unparse(node)[:80]!r}"
        ) from None


def _is_dict_constructor(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call) or any(kw.arg is None for kw in node.keywords):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in ("OrderedDict", "dict")
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "OrderedDict"
        and isinstance(func.value, ast.Name)
        and func.value.id == "collections"
    )


def _pairs_to_dict(where: str, pairs: list[Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError(f"{where}: expected a (name, value) pair, got {pair!r}")
        if pair[0] in result:
            raise ValueError(f"{where}: parameter {pair[0]!r} is given more than once")
        result[pair[0]] = pair[1]
    return result


def _read_json_paramfile(path: Path, text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a JSON parameter file must hold an object, got {type(data).__name__}")
    return data


def _read_text_paramfile(path: Path, text: str) -> dict[str, str]:
    lines = [line.strip() for line in text.splitlines()]
    return _parse_kv_string(",".join(line for line in lines if line and not line.startswith("#")))


# ----------------------------------------------------------------------------------------------- the parameters
@dataclasses.dataclass(frozen=True)
class GRU4RecParams:
    """Validated, immutable GRU4Rec hyperparameters (official names; defaults of the official PyTorch/TF ports).

    Build it from the official formats rather than by hand: :meth:`from_string`, :meth:`from_dict` and
    :meth:`from_file` choose ``final_act`` from the loss when it is not given (``softmax`` for cross-entropy,
    ``softmax_logit`` for xe_logit, ``elu-X`` from ``elu_param`` or else ``linear`` for the ranking losses).
    The constructor takes ``final_act`` literally (default ``"softmax"``), so a ranking loss needs it explicitly.

    Example:
        >>> p = GRU4RecParams.from_string("loss=bpr-max,final_act=elu-0.5,layers=100")
        >>> p.loss, p.final_act, p.layers, p.batch_size, p.embedding_mode
        ('bpr-max', 'elu-0.5', (100,), 64, 'shared')
        >>> GRU4RecParams.from_string(p.to_string()) == p
        True
        >>> p.with_overrides("batch_size=32").batch_size
        32

    Notes:
        * ``logq`` > 0 is allowed with every loss, but like in the official ports it only has an effect with
          ``cross-entropy`` / ``xe_logit`` (the logQ correction is applied inside the XE loss).
        * ``embedding`` is ignored when ``constrained_embedding`` is True (see :attr:`embedding_mode`);
          ``embedding="layersize"`` is stored as ``layers[0]``.
        * ``n_epochs=0`` is allowed (no training).
    """

    loss: str = "cross-entropy"
    final_act: str = "softmax"
    layers: tuple[int, ...] = (100,)
    batch_size: int = 64
    dropout_p_embed: float = 0.0
    dropout_p_hidden: float = 0.0
    learning_rate: float = 0.05
    momentum: float = 0.0
    n_sample: int = 2048
    sample_alpha: float = 0.5
    bpreg: float = 1.0
    logq: float = 0.0
    constrained_embedding: bool = True
    embedding: int = 0
    n_epochs: int = 10
    hidden_act: str = "tanh"
    sample_store_size: int = 10_000_000

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _coerce_field(field.name, getattr(self, field.name)))
        if self.embedding == "layersize":
            object.__setattr__(self, "embedding", self.layers[0])
        for name, is_valid, description in _RANGE_CHECKS:
            if not is_valid(getattr(self, name)):
                raise ValueError(f"{name} must be {description}, got {getattr(self, name)!r}")
        self._check_choices()

    def _check_choices(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.hidden_act not in HIDDEN_ACTS:
            raise ValueError(f"hidden_act must be one of {', '.join(HIDDEN_ACTS)}, got {self.hidden_act!r}")
        check_loss_pairing(self.loss, self.final_act)

    # -------------------------------------------------------------------------------------------- constructors
    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> GRU4RecParams:
        """Build from a mapping of Python values or strings (e.g. ``{"layers": [512], "elu_param": 1}``)."""
        return cls._build(mapping, base={})

    @classmethod
    def from_string(cls, text: str) -> GRU4RecParams:
        """Parse the official run.py format ``k=v,k=v`` (``layers=200/200``); an empty string gives the defaults."""
        return cls.from_dict(_parse_kv_string(text))

    @classmethod
    def from_file(cls, path: str | Path) -> GRU4RecParams:
        """Read an official ``.py`` paramfile (never executed), a ``.json`` object or a ``k=v`` text file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")  # a UTF-8 byte-order mark is dropped
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot read parameter file {path}: {err}") from None
        try:
            if path.suffix == ".py":
                raw = _read_python_paramfile(path, text)
            elif path.suffix == ".json" or text.lstrip().startswith("{"):
                raw = _read_json_paramfile(path, text)
            else:
                raw = _read_text_paramfile(path, text)
            return cls.from_dict(raw)
        except ValueError as err:  # every error names the file
            raise ValueError(str(err) if str(path) in str(err) else f"{path}: {err}") from None

    def with_overrides(self, overrides: str | Mapping[str, Any]) -> GRU4RecParams:
        """A new validated instance with ``overrides`` (a ``k=v,k=v`` string or a mapping) applied.

        If the loss changes and neither ``final_act`` nor ``elu_param`` is given, the current ``final_act`` is
        kept when it is valid for the new loss and otherwise replaced by the new loss's default.
        """
        mapping = _parse_kv_string(overrides) if isinstance(overrides, str) else overrides
        return self._build(mapping, base=self.to_dict())

    @classmethod
    def _build(cls, mapping: Mapping[str, Any], base: Mapping[str, Any]) -> GRU4RecParams:
        if not isinstance(mapping, Mapping):
            raise ValueError(f"parameters must be given as a mapping, got {type(mapping).__name__}")
        fields, elu_param = _split_raw(mapping)
        final_act = _resolve_final_act(fields, base, elu_param)
        return cls(**{**base, **fields, "final_act": final_act})

    # ------------------------------------------------------------------------------------------------- output
    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict (``layers`` as a list); ``from_dict`` reads it back."""
        result = dataclasses.asdict(self)
        result["layers"] = list(self.layers)
        return result

    def to_string(self) -> str:
        """The fields in the official ``k=v,k=v`` format; ``from_string`` reads it back to an equal object."""
        return ",".join(f"{name}={_format_value(value)}" for name, value in self.to_dict().items())

    # --------------------------------------------------------------------------------------------- properties
    @property
    def is_ranking_loss(self) -> bool:
        """True for top1, bpr, top1-max and bpr-max (not cross-entropy / xe_logit)."""
        return self.loss in RANKING_LOSSES

    @property
    def embedding_mode(self) -> str:
        """``"shared"`` if constrained_embedding, else ``"separate"`` if embedding > 0, else ``"none"``."""
        if self.constrained_embedding:
            return "shared"
        return "separate" if self.embedding > 0 else "none"

    @property
    def final_activation(self) -> tuple[str, tuple[float, ...]]:
        """``parse_final_act(self.final_act)``, e.g. ``("elu", (0.5,))``."""
        return parse_final_act(self.final_act)


def _format_value(value: Any) -> str:
    if isinstance(value, list):
        return "/".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)
