"""The preprocessing pipeline: the batched reader of :mod:`.arrow_read` and the session builder of
:mod:`.arrow_sessions`, on any Beam runner.

Output directory (published only when complete, see :mod:`.staging`)::

    OUTPUT/stats.json                 per split: events, sessions, items, length distribution, time range, files
    OUTPUT/vocab.tsv                  vocabulary of train (used by train and test), ItemVocabulary.save format
    OUTPUT/vocab_train_tr.tsv         vocabulary of train_tr (used by train_tr and valid), with valid_days only
    OUTPUT/<split>/part-SSSSS.tfrecord   tf.train.Example per session, in session-start order
    OUTPUT/rejected/rejected-*.jsonl  malformed rows with their source file, reason and line

Example::

    from gru4rec_tf.preprocessing import PreprocessOptions, build_and_run
    stats = build_and_run(PreprocessOptions(input="clicks.csv", output="out", test_days=7),
                          ["--runner=DirectRunner", "--direct_num_workers=2",
                           "--direct_running_mode=multi_processing"])
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence

import apache_beam as beam
from absl import logging
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from gru4rec_tf.data import contracts
from gru4rec_tf.preprocessing import arrow_sessions
from gru4rec_tf.preprocessing import beam_transforms as bt
from gru4rec_tf.preprocessing.arrow_read import ReadClickLogBatches
from gru4rec_tf.preprocessing.input_files import InputSpec, inspect_input
from gru4rec_tf.preprocessing.options import PreprocessOptions
from gru4rec_tf.preprocessing.report import assemble_stats, check_stats, format_summary
from gru4rec_tf.preprocessing.staging import MARKER_FILE, StagingDir

__all__ = ["build_pipeline", "build_and_run", "estimated_events", "REPORT_FILE"]

REPORT_FILE = arrow_sessions.REPORT_FILE
_BYTES_PER_EVENT = {"csv": 25, "parquet": 6}  # rough sizes of one event in the input, for the partition count
_COMPRESSED = (".gz", ".bz2", ".zst", ".deflate")


def estimated_events(spec: InputSpec) -> int:
    """A rough number of events in the input files (from their sizes), to size the session partitions."""
    total = 0
    for meta in FileSystems.match(list(spec.files)):
        for found in meta.metadata_list:
            factor = 5 if found.path.lower().endswith(_COMPRESSED) else 1
            total += found.size_in_bytes * factor
    return total // _BYTES_PER_EVENT.get(spec.format, 25)


def build_pipeline(pipeline: beam.Pipeline, options: PreprocessOptions, out_dir: str,
                   spec: InputSpec | None = None) -> None:
    """Adds the whole preprocessing graph to ``pipeline``, writing under ``out_dir`` (incl. ``_report.json``)."""
    spec = spec or inspect_input(options)
    read = pipeline | "Read" >> ReadClickLogBatches(options, spec)
    read["rejected"] | "WriteRejected" >> bt.WriteRejected(
        FileSystems.join(out_dir, contracts.REJECTED_DIR, contracts.REJECTED_FILE_PREFIX))
    partitions = arrow_sessions.partitions_for(estimated_events(spec))
    arrow_sessions.build_from_event_batches(read["batches"], options, out_dir, counters=(read["counters"],),
                                            partitions=partitions)


def _read_text(path: str) -> str:
    with FileSystems.open(path) as handle:
        return handle.read().decode("utf-8")


def _rejected_examples(stage: StagingDir, limit: int = 5) -> list[str]:
    pattern = stage.join(contracts.REJECTED_DIR, f"{contracts.REJECTED_FILE_PREFIX}-*")
    matches = FileSystems.match([pattern])[0].metadata_list
    lines: list[str] = []
    for meta in sorted(matches, key=lambda m: m.path):
        lines += [ln for ln in _read_text(meta.path).splitlines() if ln][: limit - len(lines)]
        if len(lines) >= limit:
            break
    return lines


def _run(options: PreprocessOptions, spec: InputSpec, stage: StagingDir, beam_args: Sequence[str]) -> None:
    pipeline_options = PipelineOptions(list(beam_args))
    runner = pipeline_options.view_as(StandardOptions).runner or "DirectRunner"
    logging.info("preprocess: running the Beam pipeline on %s (%d input file(s))", runner, len(spec.files))
    started = time.time()
    pipeline = beam.Pipeline(options=pipeline_options)
    build_pipeline(pipeline, options, stage.path, spec)
    result = pipeline.run()
    state = result.wait_until_finish()
    if state is not None and str(state).split(".")[-1] not in ("DONE", "UNKNOWN"):
        raise RuntimeError(f"the Beam pipeline ended in state {state}")
    logging.info("preprocess: pipeline finished in %.1f s", time.time() - started)


def _make_split_dirs(stage: StagingDir, names: Sequence[str]) -> None:
    """Creates empty split directories (a split without sessions writes no file) on local filesystems."""
    if stage.local:
        import os  # pylint: disable=g-import-not-at-top
        for name in (*names, contracts.REJECTED_DIR):
            os.makedirs(stage.join(name), exist_ok=True)


def build_and_run(options: PreprocessOptions, beam_pipeline_args: Sequence[str] = ()) -> dict:
    """Checks the input, runs the pipeline, checks the result and publishes OUTPUT; returns the stats dict.

    ``beam_pipeline_args`` are standard Beam pipeline options (``--runner``, ``--direct_num_workers``,
    ``--project``...). Raises :class:`gru4rec_tf.data.event_columns.DataError` for a missing/unreadable input, a missing
    column, too many malformed rows or an empty result, and ``ValueError`` for a non-empty OUTPUT or filters that
    did not converge; in every failure OUTPUT is left untouched.
    """
    logging.info("preprocess: checking the input %s", options.input)
    spec = inspect_input(options)
    stage = StagingDir(options.output, overwrite=options.overwrite)
    try:
        _run(options, spec, stage, beam_pipeline_args)
        triples = json.loads(_read_text(stage.join(REPORT_FILE)))
        stats = assemble_stats(triples, options, spec.files)
        check_stats(stats, options, _rejected_examples(stage))
        FileSystems.delete([stage.join(REPORT_FILE)])
        _make_split_dirs(stage, options.split_names)
        with FileSystems.create(stage.join(MARKER_FILE), mime_type="application/json") as handle:
            handle.write((json.dumps(stats, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        stage.publish()
    except BaseException:
        stage.discard()
        raise
    logging.info("preprocess: wrote %s\n%s", options.output, format_summary(stats))
    return stats
