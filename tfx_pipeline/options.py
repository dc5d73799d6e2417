"""Options of the pipeline's data steps and of its Trainer, validated when the pipeline is built.

Three small frozen dataclasses travel to the components as JSON execution properties:

* :class:`IngestOptions` -- how to read the raw click log (ingestion component);
* :class:`SessionOptions` -- how to build, clean and split sessions (SessionTensors component);
* :class:`TrainingOptions` -- the GRU4Rec hyperparameters and training settings (the Trainer's ``custom_config``).

The first two are built from the fields of :class:`gru4rec_tf.preprocessing.options.PreprocessOptions` (names
listed per component in ``INGEST_FIELDS`` and ``SESSION_FIELDS``; types, defaults and help texts taken from there),
and the Beam preprocessing validates them with its own rules (:func:`preprocess_options`). The training settings of
the third are fields of :class:`gru4rec_tf.train.options.TrainOptions` (``TRAINER_FIELDS``). No TFX import here.

Example::

    >>> ingest = IngestOptions(delimiter="tab", time_format="unix_s")
    >>> sessions = SessionOptions(test_days=1.0, min_item_support=1)
    >>> preprocess_options(ingest, sessions, input="clicks.tsv", output="out").test_days
    1.0
    >>> TrainingOptions(params="loss=bpr-max,final_act=elu-0.5,layers=64", n_epochs=1).gru4rec_params().n_epochs
    1
"""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any
from collections.abc import Mapping

from gru4rec_tf.preprocessing.options import PreprocessOptions
from gru4rec_tf.train.options import TrainOptions

DEFAULT_PIPELINE_NAME = "gru4rec"
DEFAULT_MODEL_NAME = "gru4rec"
# The built-in run's hyperparameters: config A of the benchmarks with smaller layers and fewer samples, so the
# synthetic dataset trains in well under a minute on 2 CPU cores.
DEFAULT_PARAMS = ("loss=bpr-max,final_act=elu-0.5,layers=64,batch_size=64,learning_rate=0.05,n_sample=512,"
                  "sample_alpha=0.5,bpreg=1.0,constrained_embedding=True,n_epochs=3")


def _from_json(cls, text_or_mapping):
    """Builds dataclass ``cls`` from a JSON object (text or mapping); unknown keys are an error."""
    data = json.loads(text_or_mapping) if isinstance(text_or_mapping, str) else dict(text_or_mapping)
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be given as a JSON object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown option(s) {unknown}; known: {sorted(known)}")
    return cls(**data)


class _ComponentOptions:
    """What every component's options share: the JSON round trip of their execution property."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text_or_mapping):
        return _from_json(cls, text_or_mapping)


class _IngestBehaviour(_ComponentOptions):
    """The methods of :class:`IngestOptions` (its fields come from ``PreprocessOptions``)."""

    def __post_init__(self):
        object.__setattr__(self, "event_type_filter", tuple(self.event_type_filter))

    @property
    def event_key(self) -> str:
        """``"user"`` when sessions are built from user activity, else ``"session"``."""
        return "user" if self.user_key else "session"


def _component_options(name: str, field_names: tuple[str, ...], base: type, doc: str) -> type:
    """A frozen dataclass ``name`` with the fields ``field_names`` of ``PreprocessOptions``: same types, defaults
    and help texts, so a default changed there changes here."""
    library = {f.name: f for f in dataclasses.fields(PreprocessOptions)}
    types = typing.get_type_hints(PreprocessOptions)
    fields = [(n, types[n], dataclasses.field(default=library[n].default, metadata=library[n].metadata))
              for n in field_names]
    cls = dataclasses.make_dataclass(name, fields, bases=(base,), frozen=True, namespace={"__doc__": doc})
    cls.__module__ = __name__
    return cls


INGEST_FIELDS = ("input_format", "delimiter", "session_key", "item_key", "time_key", "user_key", "event_type_key",
                 "event_type_filter", "time_format", "max_rejected_ratio")
SESSION_FIELDS = ("session_gap_s", "dedupe_consecutive", "min_item_support", "min_session_length",
                  "iterate_filters", "max_filter_rounds", "test_days", "split_on", "rows_per_shard")

IngestOptions = _component_options("IngestOptions", INGEST_FIELDS, _IngestBehaviour, """\
How the ingestion component reads the raw click log: the fields ``INGEST_FIELDS`` of ``PreprocessOptions``.

    Example::

        >>> IngestOptions(user_key="user_id", time_format="iso").event_key
        'user'
    """)

SessionOptions = _component_options("SessionOptions", SESSION_FIELDS, _ComponentOptions, """\
How SessionTensors builds, cleans and splits sessions (spec §7): the fields ``SESSION_FIELDS`` of
    ``PreprocessOptions``.

    Example::

        >>> SessionOptions(test_days=1, split_on="end", min_item_support=1).split_on   # the RSC15 recipe
        'end'
    """)


def preprocess_options(ingest: IngestOptions, sessions: SessionOptions, input: str,  # pylint: disable=redefined-builtin
                       output: str, **overrides) -> PreprocessOptions:
    """The Beam preprocessing's options for these settings; raises ValueError naming a bad value."""
    fields = {**dataclasses.asdict(ingest), **dataclasses.asdict(sessions), **overrides}
    return PreprocessOptions(input=input, output=output, **fields)


# The fields of gru4rec_tf.train.options.TrainOptions that the Trainer's custom_config carries (same names, defaults,
# help texts and validation); the run's directories come from the Trainer's own artifacts instead.
TRAINER_FIELDS = ("seed", "steps_per_call", "early_stopping_metric", "patience", "checkpoint_every_s",
                  "device_sampling")


def _library_field(name: str):
    """A field with the default and help text of ``TrainOptions``'s field ``name``."""
    field = {f.name: f for f in dataclasses.fields(TrainOptions)}[name]
    return dataclasses.field(default=field.default, metadata=field.metadata)


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """GRU4Rec hyperparameters (official names, as a ``k=v,k=v`` string or a mapping) and training settings.

    ``n_epochs`` (when set) overrides the parameter string's. ``max_k`` is the largest ``k`` the serving
    signature accepts. :meth:`to_custom_config` gives the Trainer component's ``custom_config``.

    The training settings ``TRAINER_FIELDS`` are fields of :class:`gru4rec_tf.train.options.TrainOptions` (defaults,
    help texts and validation taken from there; :meth:`train_options` gives the library's options).

    Continuous training: ``valid_days`` holds out the sessions of the last D days *of the training split* (never
    the test period) for validation after every epoch, ``early_stopping_metric`` picks the best epoch (whose weights
    are kept) and ``patience`` stops early; ``warm_start`` starts from the last blessed model (the Trainer's
    ``base_model``) when there is one; ``checkpoint_every_s`` paces the checkpoints that let a retried Trainer
    resume. ``device_sampling``: samples and distinct rows inside the compiled loop (None: when the Trainer's
    machine has a GPU; ``gru4rec_tf.train.routine.use_device_sampling``).

    Example::

        >>> TrainingOptions(params={"loss": "bpr-max", "final_act": "elu-0.5", "layers": [32]}).gru4rec_params().layers
        (32,)
        >>> TrainingOptions(seed=3, patience=2, valid_days=1).train_options(checkpoint_dir="ckpt").patience
        2
    """

    params: Any = DEFAULT_PARAMS
    n_epochs: int | None = None
    seed: int = _library_field("seed")
    steps_per_call: int = _library_field("steps_per_call")
    max_k: int = 100
    valid_days: float | None = None
    early_stopping_metric: str = _library_field("early_stopping_metric")
    patience: int | None = _library_field("patience")
    warm_start: bool = True
    checkpoint_every_s: float = _library_field("checkpoint_every_s")
    device_sampling: bool | None = _library_field("device_sampling")

    def __post_init__(self):
        self.gru4rec_params()  # validates
        self.train_options()  # validates the training settings with the library's rules
        if self.valid_days is not None and not (isinstance(self.valid_days, (int, float)) and self.valid_days > 0):
            raise ValueError(f"valid_days must be a positive number, got {self.valid_days!r}")
        if self.patience is not None and self.valid_days is None:
            raise ValueError("patience needs valid_days (early stopping watches the validation split)")
        if isinstance(self.max_k, bool) or not isinstance(self.max_k, int) or self.max_k < 1:
            raise ValueError(f"max_k must be an integer >= 1, got {self.max_k!r}")

    def train_options(self, **runtime) -> TrainOptions:
        """The library's :class:`TrainOptions` of these settings, plus ``runtime`` ones (e.g. ``checkpoint_dir``).

        The epochs are those of :meth:`gru4rec_params` (``n_epochs``), so ``TrainOptions.epochs`` stays None.
        """
        return TrainOptions(**{name: getattr(self, name) for name in TRAINER_FIELDS}, **runtime)

    def gru4rec_params(self):
        """The validated :class:`gru4rec_tf.params.GRU4RecParams`."""
        from gru4rec_tf.params import GRU4RecParams  # pylint: disable=g-import-not-at-top
        if isinstance(self.params, str):
            params = GRU4RecParams.from_string(self.params)
        elif isinstance(self.params, Mapping):
            params = GRU4RecParams.from_dict(self.params)
        else:
            raise ValueError(f"params must be a 'k=v,k=v' string or a mapping, got {type(self.params).__name__}")
        if self.n_epochs is not None:
            params = params.with_overrides({"n_epochs": self.n_epochs})
        return params

    def to_custom_config(self) -> dict:
        """The Trainer's ``custom_config``: the normalised parameter string plus the training settings."""
        config = dataclasses.asdict(self)
        config["params"] = self.gru4rec_params().to_string()
        del config["n_epochs"]  # part of the parameter string
        return config

    @classmethod
    def from_custom_config(cls, config: Mapping | None) -> TrainingOptions:
        """Reads :meth:`to_custom_config` (or a hand-written dict with the same keys); missing keys get defaults."""
        return _from_json(cls, config or {})


def _recommend_field(name: str):
    """A field with the default and help text of ``RecommendOptions``'s field ``name``."""
    from gru4rec_tf.batch.options import RecommendOptions  # pylint: disable=g-import-not-at-top  (no Beam import)
    field = {f.name: f for f in dataclasses.fields(RecommendOptions)}[name]
    return dataclasses.field(default=field.default, metadata=field.metadata)


@dataclasses.dataclass(frozen=True)
class RecommendStepOptions(_ComponentOptions):
    """The optional bulk inference step after the Pusher: recommendations for every session of ``data``.

    ``data`` is a click log (file, glob or directory) read with the pipeline's own ingestion and session options;
    ``k``, ``format``, ``exclude_seen`` and ``batch_size`` are those of ``gru4rec recommend``
    (:class:`gru4rec_tf.batch.options.RecommendOptions`: same defaults, help texts and validation).

    Example::

        >>> step = RecommendStepOptions(data="clicks/2026-12-06.tsv", k=10)
        >>> step.recommend_options(IngestOptions(), SessionOptions(), model="m/1", output="out").sessions
        'clicks/2026-12-06.tsv'
        >>> RecommendStepOptions(data="clicks.tsv", k=0)
        Traceback (most recent call last):
        ValueError: k must be an integer >= 1, got 0
    """

    data: str = ""
    k: int = _recommend_field("k")
    format: str = _recommend_field("format")
    exclude_seen: bool = _recommend_field("exclude_seen")
    batch_size: int = _recommend_field("batch_size")

    def __post_init__(self):
        if not isinstance(self.data, str) or not self.data.strip():
            raise ValueError(f"data must name the click log to recommend for, got {self.data!r}")
        self.recommend_options(IngestOptions(), SessionOptions(), model="unused", output="unused")  # validates

    def recommend_options(self, ingest: IngestOptions, sessions: SessionOptions, *, model: str, output: str,
                          **overrides):
        """The :class:`gru4rec_tf.batch.options.RecommendOptions` of this step for the pipeline's reading options."""
        from gru4rec_tf.batch.options import READING_FIELDS, RecommendOptions  # pylint: disable=g-import-not-at-top
        settings = {**dataclasses.asdict(ingest), **dataclasses.asdict(sessions)}
        reading = {name: settings[name] for name in READING_FIELDS}
        return RecommendOptions(model=model, output=output, sessions=self.data, k=self.k, format=self.format,
                                exclude_seen=self.exclude_seen, batch_size=self.batch_size,
                                **{**reading, **overrides})
