"""The batch recommendation job: click log -> sessions -> RunInference (``serving_default``) -> records.

The log is read with the preprocessing's transforms and rules (:class:`~gru4rec_tf.preprocessing.beam_transforms.
ReadClickLog`, :class:`~gru4rec_tf.preprocessing.beam_transforms.GroupSessions`, optionally
:func:`~gru4rec_tf.preprocessing.session_rules.dedupe_consecutive`), the sessions are scored in batches by
:class:`~gru4rec_tf.batch.model_handler.SessionModelHandler` and written by :mod:`.writers`. With ``item_to_item``
the sessions are instead one one-event session per catalogue item (the export's vocabulary asset), with the item's
ID as ``session_id``. No session filter is applied: every session of the log gets a record.

The model is an exported SavedModel (``gru4rec export``) or a model directory (``gru4rec train --save_model``),
which is first exported to a temporary SavedModel on the local disk (so with a distributed runner, pass a
SavedModel on shared storage). The output directory is published only when complete (:mod:`gru4rec_tf.
preprocessing.staging`)::

    OUTPUT/part-SSSSS-of-NNNNN.<jsonl|parquet|tfrecord>   the records
    OUTPUT/stats.json                                     the summary (written last: it marks a complete output)

Example (an illustration: it needs an exported model and a click log)::

    from gru4rec_tf.batch.options import RecommendOptions
    summary = build_and_run(RecommendOptions(model="models/gru4rec/1", sessions="clicks.csv", output="recs"),
                            ["--runner=DirectRunner", "--direct_num_workers=2"])
    print(format_summary(summary))
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence

import apache_beam as beam
from absl import logging
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from gru4rec_tf.batch import writers
from gru4rec_tf.batch.model_handler import METRICS_NAMESPACE, SessionModelHandler
from gru4rec_tf.batch.options import RecommendOptions
from gru4rec_tf.data import contracts
from gru4rec_tf.export.export_dir import read_export_info
from gru4rec_tf.export.signatures import VOCAB_ASSET
from gru4rec_tf.preprocessing import beam_transforms as bt
from gru4rec_tf.preprocessing import session_rules
from gru4rec_tf.preprocessing.input_files import InputSpec, inspect_input
from gru4rec_tf.preprocessing.staging import MARKER_FILE, StagingDir

__all__ = ["ExportedModel", "find_model", "build_pipeline", "build_and_run", "format_summary", "SUMMARY_FILE"]

SUMMARY_FILE = MARKER_FILE  # stats.json


@dataclasses.dataclass(frozen=True)
class ExportedModel:
    """The SavedModel that answers, and what the job needs from its export info.

    Example::

        model = ExportedModel(path="models/gru4rec/1", id_dtype="int64", max_k=100, version="1")
    """

    path: str
    id_dtype: str
    max_k: int
    version: str

    def catalogue(self) -> list[str]:
        """Every catalogue item ID (as text), in index order, from the export's vocabulary asset."""
        with open(os.path.join(self.path, "assets", VOCAB_ASSET), encoding="utf-8") as handle:
            return [line.rstrip("\n") for line in handle if line.rstrip("\n")]


def model_kind(path: str) -> str:
    """``"saved_model"`` or ``"model_dir"``; a ValueError naming ``path`` when it is neither."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return "saved_model"
    if os.path.isfile(os.path.join(path, contracts.MODEL_CONFIG_FILE)):
        return "model_dir"
    raise ValueError(f"model {path} is neither an exported SavedModel (no saved_model.pb) nor a gru4rec_tf model "
                     f"directory (no {contracts.MODEL_CONFIG_FILE})")


def _exported(path: str, version: str) -> ExportedModel:
    try:
        info = read_export_info(path)
    except ValueError as err:
        raise ValueError(f"model {path} is a SavedModel but not a gru4rec_tf export ({err})") from None
    return ExportedModel(path=os.path.abspath(path), id_dtype=info["id_dtype"], max_k=int(info["max_k"]),
                         version=version)


def find_model(options: RecommendOptions, scratch: str) -> ExportedModel:
    """The SavedModel of ``options.model``: itself, or a model directory exported under ``scratch``."""
    if model_kind(options.model) == "saved_model":
        version = options.model_version or os.path.basename(os.path.abspath(options.model))
        return _exported(options.model, version)
    from gru4rec_tf.export.saved_model import export_saved_model  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.model.model_dir import load_model  # pylint: disable=g-import-not-at-top
    saved = load_model(options.model)
    logging.info("recommend: exporting the model directory %s to a temporary SavedModel", options.model)
    path = export_saved_model(saved.model, saved.vocab, os.path.join(scratch, "1"), max_k=max(100, options.k),
                              write_warmup=False)
    return _exported(path, options.model_version or saved.weights_fingerprint)


def _count(pair) -> None:
    name, n = pair
    Metrics.counter(METRICS_NAMESPACE, name).inc(n)


def build_pipeline(pipeline: beam.Pipeline, options: RecommendOptions, model: ExportedModel, out_dir: str,
                   spec: InputSpec | None = None) -> None:
    """Adds read -> sessions -> RunInference -> write (files under ``out_dir``) to ``pipeline``."""
    if options.item_to_item:
        sessions = pipeline | "Catalogue" >> beam.Create([(item, (item,)) for item in model.catalogue()])
    else:
        reading = options.reading_options()
        read = pipeline | "Read" >> bt.ReadClickLog(reading, spec)
        read["counters"] | "CountRows" >> beam.Map(_count)
        grouped = read["events"] | "Sessions" >> bt.GroupSessions(
            reading.session_gap_us if reading.user_key else None)
        if options.dedupe_consecutive:
            grouped = grouped | "Dedupe" >> beam.Map(session_rules.dedupe_consecutive)
        sessions = grouped | "Items" >> beam.Map(lambda s: (s[0], s[2]))
    handler = SessionModelHandler(model.path, k=options.k, exclude_seen=options.exclude_seen,
                                  id_dtype=model.id_dtype, model_version=model.version,
                                  max_batch_size=options.batch_size)
    records = sessions | "Recommend" >> RunInference(handler)
    records | "Write" >> writers.WriteRecords(out_dir, options.format, model.id_dtype)


def _counters(result) -> dict:
    totals: dict = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + int(value or 0)
    return totals


def _run(options: RecommendOptions, model: ExportedModel, spec, stage: StagingDir, beam_args) -> dict:
    pipeline_options = PipelineOptions(list(beam_args))
    runner = pipeline_options.view_as(StandardOptions).runner or "DirectRunner"
    logging.info("recommend: running the Beam pipeline on %s", runner)
    pipeline = beam.Pipeline(options=pipeline_options)
    build_pipeline(pipeline, options, model, stage.path, spec)
    result = pipeline.run()
    state = result.wait_until_finish()
    if state is not None and str(state).split(".")[-1] not in ("DONE", "UNKNOWN"):
        raise RuntimeError(f"the Beam pipeline ended in state {state}")
    return _counters(result)


def _files(stage: StagingDir) -> list[str]:
    matches = FileSystems.match([stage.join(f"{writers.FILE_PREFIX}-*")])[0].metadata_list
    return sorted(FileSystems.split(m.path)[1] for m in matches)


def build_and_run(options: RecommendOptions, beam_pipeline_args: Sequence[str] = ()) -> dict:
    """Checks the inputs, runs the job and publishes ``options.output``; returns the summary (also stats.json).

    Raises ValueError for a ``model`` that is neither a SavedModel nor a model directory and for an output that
    exists (without ``overwrite``), :class:`gru4rec_tf.data.event_columns.DataError` for a missing log or column;
    on every failure the output is left as it was.
    """
    started = time.time()
    model_kind(options.model)
    spec = None
    if not options.item_to_item:
        logging.info("recommend: checking the click log %s", options.sessions)
        spec = inspect_input(options.reading_options())
    stage = StagingDir(options.output, overwrite=options.overwrite)
    scratch = tempfile.mkdtemp(prefix="gru4rec-recommend-model-")
    try:
        model = find_model(options, scratch)
        if options.k > model.max_k:
            logging.warning("recommend: k=%d is above the export's max_k=%d; results are clipped to %d, as in "
                            "serving", options.k, model.max_k, model.max_k)
        counters = _run(options, model, spec, stage, beam_pipeline_args)
        summary = {
            "sessions": counters.get("sessions", 0), "unknown_items": counters.get("unknown_items", 0),
            "sessions_without_results": counters.get("sessions_without_results", 0),
            "rows_read": counters.get("rows_ok", 0),
            "rows_rejected": sum(n for name, n in counters.items() if name.startswith("rows_rejected")),
            "files": _files(stage), "model": options.model, "model_version": model.version,
            "seconds": round(time.time() - started, 1), "options": options.to_json(),
        }
        with FileSystems.create(stage.join(SUMMARY_FILE), mime_type="application/json") as handle:
            handle.write((json.dumps(summary, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        stage.publish()
    except BaseException:
        stage.discard()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logging.info("recommend: wrote %s\n%s", options.output, format_summary(summary))
    return summary


def format_summary(summary: dict) -> str:
    """The summary as a few lines of text.

    Example::

        >>> print(format_summary({"sessions": 3, "unknown_items": 1, "sessions_without_results": 0,
        ...                       "rows_read": 9, "rows_rejected": 0, "files": ["part-00000-of-00001.jsonl"],
        ...                       "model_version": "1", "seconds": 2.5}))
        sessions: 3 (0 without a known item), unknown items skipped: 1
        rows read: 9, rejected: 0
        model version: 1, 2.5 s
        output files (1): part-00000-of-00001.jsonl
    """
    return "\n".join([
        f"sessions: {summary['sessions']} ({summary['sessions_without_results']} without a known item), "
        f"unknown items skipped: {summary['unknown_items']}",
        f"rows read: {summary['rows_read']}, rejected: {summary['rows_rejected']}",
        f"model version: {summary['model_version']}, {summary['seconds']} s",
        f"output files ({len(summary['files'])}): {', '.join(summary['files'])}",
    ])
