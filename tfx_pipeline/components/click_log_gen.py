"""Ingestion: ``ClickLogExampleGen`` reads a raw click log (CSV/TSV/Parquet) into an ``Examples`` artifact.

Why a custom ExampleGen executor rather than ``CsvExampleGen``:

* ``CsvExampleGen`` only parses comma-separated text, while click logs are often TSV (RSC15) or ``;``-separated
  (Diginetica) or Parquet;
* it stores floats as float32, which rounds a Unix time in seconds to about two minutes and scrambles the order
  of events inside a session; here times become int64 microseconds, parsed as ``unix_s``, ``unix_ms`` or ISO-8601;
* its default hash split into train/eval is wrong for sessions (spec §7 wants a time-based split): this
  component writes one ``events`` split, and SessionTensors splits by time;
* event logs need row-level checks: malformed rows are counted, written to ``<uri>/rejected/`` with their source
  line, and the run fails with a clear message past ``max_rejected_ratio``.

It is still a ``FileBasedExampleGen`` (the TFX extension point for other formats), so it keeps the standard
driver: the input files' fingerprint (sizes and modification times) decides whether a cached run can be reused,
spans/versions work, and the Kubeflow V2 compiler handles it like ``CsvExampleGen``.

Output: one ``events`` split with TFX's Parquet payload (``FORMAT_PARQUET``): columns ``session_id`` (or ``user_id``
when sessions are built from user activity) and ``item_id`` (bytes) and ``time_us`` (int64), one value per list
cell (:mod:`tfx_pipeline.event_split` says why Parquet and who reads it). Parsing is
:class:`gru4rec_tf.preprocessing.arrow_read.ReadClickLogBatches` (Arrow record batches, the rules of the Beam
preprocessing's ``ReadClickLog``, so both read a log identically); the batches are written as they come, a row group
per batch (:class:`tfx_pipeline.event_split.WriteEventFiles`), in the layout of TFX's ExampleGen.

Example::

    example_gen = ClickLogExampleGen(input_base="/data/clicks", pattern="*.tsv", options=IngestOptions())
"""
import dataclasses
import json
import os
from typing import Any

import apache_beam as beam
from absl import logging
from google.protobuf import json_format
from google.protobuf import struct_pb2
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen import base_example_gen_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs

from gru4rec_tf.data.event_columns import DataError
from tfx_pipeline import event_split
from tfx_pipeline.freed_memory import releasing_freed_memory
from tfx_pipeline.options import IngestOptions, SessionOptions, preprocess_options
from tfx_pipeline.local_beam import LocalRunnerBeamExecutor

SPLIT = event_split.SPLIT
REPORT_FILE = "ingest_report.json"
REJECTED_DIR = "rejected"
_TEMP_DIR = ".tmp-examples"  # files being written
_REPORT_DIR_KEY = "_gru4rec_report_dir"  # private exec property: where the Beam job writes its report
_WINDOW_KEY, _SPAN_PATTERN_KEY = "_window_spans", "_span_pattern"  # custom_config keys beside the options


# ---------------------------------------------------------------------------------------------------- options
def pack_options(options: IngestOptions, window_spans: int = 1, span_pattern: str = "") -> example_gen_pb2.CustomConfig:
    """The ingest options (and the span window) as ExampleGen's ``custom_config`` (a ``Struct`` in the ``Any``)."""
    config = example_gen_pb2.CustomConfig()
    payload = {**json.loads(options.to_json()), _WINDOW_KEY: window_spans, _SPAN_PATTERN_KEY: span_pattern}
    config.custom_config.Pack(json_format.ParseDict(payload, struct_pb2.Struct()))
    return config


def _unpack(exec_properties: dict[str, Any]) -> dict:
    config = example_gen_pb2.CustomConfig()
    json_format.Parse(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}", config)
    struct = struct_pb2.Struct()
    if config.HasField("custom_config") and not config.custom_config.Unpack(struct):
        raise ValueError(f"ClickLogExampleGen: custom_config must hold a Struct, got {config.custom_config.type_url}")
    return json_format.MessageToDict(struct)


def unpack_options(exec_properties: dict[str, Any]) -> IngestOptions:
    """Reads the options written by :func:`pack_options` from the execution properties."""
    payload = _unpack(exec_properties)
    return IngestOptions.from_json({k: v for k, v in payload.items() if k not in (_WINDOW_KEY, _SPAN_PATTERN_KEY)})


def window_patterns(exec_properties: dict[str, Any], latest_pattern: str) -> list[str]:
    """The file patterns to read: the latest span's (resolved by the standard driver) and, with a window of N
    spans, those of the N-1 spans before it (days, for a ``{YYYY}-{MM}-{DD}`` pattern) that have files."""
    from tfx.components.example_gen import utils as example_gen_utils  # pylint: disable=g-import-not-at-top
    from tfx.dsl.io import fileio as tfx_fileio  # pylint: disable=g-import-not-at-top
    payload = _unpack(exec_properties)
    window, pattern = int(payload.get(_WINDOW_KEY, 1) or 1), payload.get(_SPAN_PATTERN_KEY) or ""
    if window <= 1 or not pattern:
        return [latest_pattern]
    span = int(exec_properties[example_gen_utils.SPAN_PROPERTY_NAME])
    is_date = example_gen_utils.YEAR_SPEC in pattern
    base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    patterns = []
    for earlier in range(span - window + 1, span):
        candidate = example_gen_utils.get_pattern_for_span_version(
            pattern=pattern, is_match_span=not is_date, is_match_date=is_date, is_match_version=False,
            span=earlier, version=None)
        if tfx_fileio.glob(os.path.join(base, candidate)):
            patterns.append(candidate)
    return patterns + [latest_pattern]


def _read_options(exec_properties: dict[str, Any], split_pattern: str):
    """The preprocessing options for one input split (file pattern under ``input_base``).

    With ``input_format="auto"`` and no delimiter, the format and delimiter follow the first matching file's
    extension (``.parquet``, ``.tsv``/``.txt`` = tab, else comma), also when the pattern is a directory or glob.
    """
    from gru4rec_tf.preprocessing.input_files import resolve_files  # pylint: disable=g-import-not-at-top
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    options = preprocess_options(unpack_options(exec_properties), SessionOptions(), input=pattern, output="unused")
    if options.input_format == "auto" or options.delimiter is None:
        probe = dataclasses.replace(options, input=resolve_files(pattern)[0])
        options = dataclasses.replace(options, input_format=probe.format,
                                      delimiter=options.delimiter or probe.text_delimiter)
    return options


# ------------------------------------------------------------------------------------------------------- Beam
def _read_click_log(pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str):
    """Reads one input split (the spans of its window) into event batches; writes the read counters and the
    rejected rows beside it. Returns ``(batches, key feature name)``."""
    from gru4rec_tf.preprocessing import arrow_read  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.preprocessing import beam_transforms as bt  # pylint: disable=g-import-not-at-top
    reads = []
    for i, pattern in enumerate(window_patterns(exec_properties, split_pattern)):
        options = _read_options(exec_properties, pattern)
        reads.append(pipeline | f"ReadClickLog{'' if i == 0 else i}" >> arrow_read.ReadClickLogBatches(options))
    report_dir = exec_properties[_REPORT_DIR_KEY]
    key_feature = f"{'user' if options.user_key else 'session'}_id"
    merged = {name: ([r[name] for r in reads] | f"Merge{name}" >> beam.Flatten()) if len(reads) > 1
              else reads[0][name] for name in ("batches", "rejected", "counters")}
    _ = merged["rejected"] | "WriteRejected" >> bt.WriteRejected(os.path.join(report_dir, REJECTED_DIR, "rejected"))
    _ = (merged["counters"] | "SumCounters" >> bt.SumCounters()
         | "WriteReport" >> bt.WriteReport(os.path.join(report_dir, REPORT_FILE)))
    return merged["batches"], key_feature


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
def _ClickLogToExample(pipeline: beam.Pipeline, exec_properties: dict[str, Any],  # pylint: disable=invalid-name
                       split_pattern: str) -> beam.pvalue.PCollection:
    """The ExampleGen extension point: one input split -> one dict per event, the records TFX's Parquet writer
    takes. The executor does not use it (it writes whole batches, see :class:`tfx_pipeline.event_split.
    WriteEventFiles`); kept for TFX's base ``GenerateExamplesByBeam``."""
    batches, key_feature = _read_click_log(pipeline, exec_properties, split_pattern)
    return batches | "ToRows" >> beam.FlatMap(lambda batch: event_split.to_list_columns(batch, key_feature).to_pylist())


# --------------------------------------------------------------------------------------------------- executor
def read_report(path: str) -> list:
    """The report triples ``("counter", name, total)`` written by the ingestion's Beam job."""
    from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
    with FileSystems.open(path) as handle:
        return json.loads(handle.read().decode("utf-8"))


def row_counts(triples) -> dict:
    """``{"rows_ok", "rows_rejected", "rows_filtered_event_type", "by_reason": {reason: n}}`` from the triples."""
    counters = {key: int(value) for section, key, value in triples if section == "counter"}
    by_reason = {k.split(":", 1)[1]: v for k, v in sorted(counters.items()) if k.startswith("rows_rejected:")}
    return {"rows_ok": counters.get("rows_ok", 0), "rows_rejected": sum(by_reason.values()),
            "rows_filtered_event_type": counters.get("rows_filtered_event_type", 0), "by_reason": by_reason}


def rejected_examples(directory: str, limit: int = 3) -> list[str]:
    """The first rejected rows (JSON lines with source file, reason and line) written under ``directory``."""
    from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
    lines: list[str] = []
    for meta in sorted(FileSystems.match([os.path.join(directory, "*")])[0].metadata_list, key=lambda m: m.path):
        with FileSystems.open(meta.path) as handle:
            lines += [ln for ln in handle.read().decode("utf-8").splitlines() if ln][: limit - len(lines)]
        if len(lines) >= limit:
            break
    return lines


def check_rejections(report: dict, max_ratio: float, where: str, examples: list[str] = ()) -> None:
    """Raises DataError when no row parsed or the rejected share of the data rows exceeds ``max_ratio``."""
    rows = report["rows_ok"] + report["rows_rejected"] + report["rows_filtered_event_type"]
    shown = "".join(f"\n  {line}" for line in examples)
    if report["rows_ok"] == 0:
        raise DataError(f"{where}: no valid event rows were read ({rows} data rows, {report['rows_rejected']} "
                        f"rejected: {report['by_reason']}){'; first rejected rows:' + shown if shown else ''}")
    ratio = report["rows_rejected"] / rows if rows else 0.0
    if ratio > max_ratio:
        raise DataError(f"{where}: {report['rows_rejected']} of {rows} rows ({ratio:.2%}) are malformed "
                        f"({report['by_reason']}), more than max_rejected_ratio={max_ratio:g}; first rejected "
                        f"rows:{shown}")


class Executor(LocalRunnerBeamExecutor, base_example_gen_executor.BaseExampleGenExecutor):
    """Checks the input files and columns first, runs the Beam read, then enforces the rejection ratio."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ClickLogToExample

    @releasing_freed_memory
    def Do(self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]],
           exec_properties: dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        options = unpack_options(exec_properties)
        input_config = example_gen_pb2.Input()
        json_format.Parse(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        pattern = input_config.splits[0].pattern  # one input split ("events") by construction
        where = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], pattern)
        spec = self._check_input(exec_properties, pattern)
        self._generate(input_dict, output_dict, {**exec_properties, _REPORT_DIR_KEY: examples.uri}, pattern)
        report = row_counts(read_report(os.path.join(examples.uri, REPORT_FILE)))
        rejected_dir = os.path.join(examples.uri, REJECTED_DIR)
        check_rejections(report, options.max_rejected_ratio, where,
                         rejected_examples(rejected_dir) if report["rows_rejected"] else [])
        self._record(examples, options, report, where, spec.format)
        logging.info("ClickLogExampleGen: %d events read, %d rows rejected%s, %d filtered by event type",
                     report["rows_ok"], report["rows_rejected"], f" (see {rejected_dir})" if report["rows_rejected"]
                     else "", report["rows_filtered_event_type"])

    def _generate(self, input_dict, output_dict, exec_properties: dict[str, Any], pattern: str) -> None:
        """What the base executor's ``Do`` does, with the events written a batch at a time: the base class would
        shuffle and write every record as one Beam element."""
        from tfx.components.util import examples_utils  # pylint: disable=g-import-not-at-top
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        examples.split_names = artifact_utils.encode_split_names([SPLIT])
        split_dir = artifact_utils.get_split_uri([examples], SPLIT)
        with self._make_beam_pipeline() as pipeline:
            batches, key_feature = _read_click_log(pipeline, exec_properties, pattern)
            _ = batches | f"WriteSplit[{SPLIT}]" >> event_split.WriteEventFiles(
                split_dir, os.path.join(examples.uri, _TEMP_DIR), key_feature)
        # always Parquet (the component sets these exec properties to match); TFX 1.21's write_split names no Parquet
        # file format, and its TFXIO factory reads the enum's name
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_PARQUET)
        examples_utils.set_file_format(examples, event_split.FILE_FORMAT)

    @staticmethod
    def _check_input(exec_properties: dict[str, Any], pattern: str):
        """A missing file or column fails here, naming it, before Beam starts."""
        from gru4rec_tf.preprocessing.input_files import inspect_input  # pylint: disable=g-import-not-at-top
        spec = inspect_input(_read_options(exec_properties, pattern))
        logging.info("ClickLogExampleGen: reading %d file(s) with columns %s: %s", len(spec.files), spec.header,
                     ", ".join(spec.files[:5]) + (" ..." if len(spec.files) > 5 else ""))
        return spec

    @staticmethod
    def _record(examples, options: IngestOptions, report: dict, where: str, input_format: str) -> None:
        """Custom properties read by SessionTensors (``event_key``) and shown in lineage (counts, source)."""
        examples.set_string_custom_property("event_key", options.event_key)
        examples.set_string_custom_property("input_pattern", where)
        examples.set_string_custom_property("input_format", input_format)
        for key in ("rows_ok", "rows_rejected", "rows_filtered_event_type"):
            examples.set_int_custom_property(key, report[key])


class ClickLogExampleGen(example_gen_component.FileBasedExampleGen):
    """ExampleGen for raw click logs: one ``events`` split of ``(session_id|user_id, item_id, time_us)`` records.

    Args:
        input_base: the directory holding the log files (any Beam/TFX filesystem: local, ``gs://``, ...).
        pattern: the files under ``input_base`` (a name or a glob); ``*`` reads every data file. A TFX span
            pattern (``span-{SPAN}/*``, or daily partitions ``{YYYY}-{MM}-{DD}/*``) reads the latest span only (the
            standard driver resolves it; its files' fingerprint decides whether a cached run is reused).
        options: how to read them (:class:`tfx_pipeline.options.IngestOptions`).
        window_spans: with a span pattern, read the latest span and the ``window_spans - 1`` before it (a rolling
            window of days); spans are taken as immutable once written (only the latest span's files are
            fingerprinted).

    Example::

        gen = ClickLogExampleGen(input_base="gs://bucket/clicks", pattern="2026-11-*.csv",
                                 options=IngestOptions(delimiter=";", time_format="unix_ms"))
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, input_base, pattern: str = "*", options: IngestOptions = IngestOptions(),
                 window_spans: int = 1):
        base = input_base if isinstance(input_base, str) else "runtime-parameter"
        preprocess_options(options, SessionOptions(), input=os.path.join(base, pattern),
                           output="unused")  # validates the options now, at pipeline construction
        if window_spans < 1:
            raise ValueError(f"window_spans must be >= 1, got {window_spans}")
        has_span = "{SPAN" in pattern or "{YYYY}" in pattern
        if window_spans > 1 and not has_span:
            raise ValueError("a window of several spans needs a span pattern ({SPAN} or {YYYY}-{MM}-{DD}), "
                             f"got {pattern!r}")
        super().__init__(
            input_base=input_base,
            input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=SPLIT, pattern=pattern)]),
            output_config=example_gen_pb2.Output(),  # no hash split: the output split is the input split
            custom_config=pack_options(options, window_spans, pattern if has_span else ""),
            output_data_format=example_gen_pb2.FORMAT_PARQUET,  # see tfx_pipeline.event_split
            output_file_format=example_gen_pb2.FILE_FORMAT_PARQUET,
        )
