"""The preprocessing pipeline: wires the transforms of :mod:`.beam_transforms` and runs them on any Beam runner.

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
from collections.abc import Callable, Sequence

import apache_beam as beam
from absl import logging
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from gru4rec_tf.data import contracts
from gru4rec_tf.preprocessing import beam_transforms as bt
from gru4rec_tf.preprocessing.input_files import InputSpec, inspect_input
from gru4rec_tf.preprocessing.options import PreprocessOptions
from gru4rec_tf.preprocessing.report import assemble_stats, check_stats, format_summary
from gru4rec_tf.preprocessing.staging import MARKER_FILE, StagingDir

__all__ = ["build_pipeline", "build_and_run", "REPORT_FILE"]

REPORT_FILE = "_report.json"
_SPLIT_MIN_LENGTH = 2  # spec §7: splits keep sessions with >= 2 events (a session must give a transition)


def build_pipeline(pipeline: beam.Pipeline, options: PreprocessOptions, out_dir: str,
                   spec: InputSpec | None = None) -> None:
    """Adds the whole preprocessing graph to ``pipeline``, writing under ``out_dir`` (incl. ``_report.json``)."""
    read = pipeline | "Read" >> bt.ReadClickLog(options, spec)
    read["rejected"] | "WriteRejected" >> bt.WriteRejected(
        FileSystems.join(out_dir, contracts.REJECTED_DIR, contracts.REJECTED_FILE_PREFIX))
    build_from_events(read["events"], options, out_dir, counters=(read["counters"],))


def build_from_events(events, options, out_dir: str, counters=(), split_dir: Callable[[str], str] | None = None
                      ) -> None:
    """Adds sessions → cleaning → time split(s) → vocabulary → session tensors (+ report) to an events collection.

    ``events`` holds ``(session or user key, item ID, time in µs)`` tuples, as ``ReadClickLog`` emits them (the TFX
    component builds them from its ingested examples). ``counters`` are extra counter collections for the report;
    ``split_dir(name)`` names each split's output directory (default ``out_dir/<name>``).
    """
    join = FileSystems.join
    split_dir = split_dir or (lambda name: join(out_dir, name))
    gap = options.session_gap_us if options.user_key else None
    sessions = events | "Sessions" >> bt.GroupSessions(gap)
    clean = sessions | "Clean" >> bt.CleanSessions(
        dedupe=options.dedupe_consecutive, min_session_length=options.min_session_length,
        min_item_support=options.min_item_support, rounds=options.filter_rounds)
    all_counters = (*counters, clean["counters"]) | "AllCounters" >> beam.Flatten()
    reports = [all_counters | "SumCounters" >> bt.SumCounters(), clean["report"]]
    for label, pcoll in (("_grouped", sessions), ("_cleaned", clean["sessions"])):
        reports.append(pcoll | f"Summary{label}" >> bt.SummarizeSessions() | f"Report{label}" >> beam.Map(
            lambda s, label=label: ("summary", label, s)))

    test_split = clean["sessions"] | "SplitTest" >> bt.SplitByTime(
        options.days_us(options.test_days), options.split_on, ("train", "test"), _SPLIT_MIN_LENGTH)
    splits = {"train": test_split["train"], "test": test_split["test"]}
    vocabs = {"train": test_split["vocabulary"], "test": test_split["vocabulary"]}
    reports.append(test_split["report"])
    reports.append(test_split["vocabulary"] | "WriteVocab" >> bt.WriteVocabulary(
        join(out_dir, contracts.VOCAB_FILES["train"]), "train"))
    if getattr(options, "valid_days", None) is not None:
        valid_split = splits["train"] | "SplitValid" >> bt.SplitByTime(
            options.days_us(options.valid_days), options.split_on, ("train_tr", "valid"), _SPLIT_MIN_LENGTH)
        splits.update(train_tr=valid_split["train_tr"], valid=valid_split["valid"])
        vocabs.update(train_tr=valid_split["vocabulary"], valid=valid_split["vocabulary"])
        reports.append(valid_split["report"])
        reports.append(valid_split["vocabulary"] | "WriteVocabTrainTr" >> bt.WriteVocabulary(
            join(out_dir, contracts.VOCAB_FILES["train_tr"]), "train_tr"))

    for name, sessions_of_split in splits.items():
        written = sessions_of_split | f"Write_{name}" >> bt.WriteSessionTensors(
            split_dir(name), vocabs[name], name, options.rows_per_shard)
        reports.append(written["report"])
        reports.append(written["summary"] | f"Report_{name}" >> beam.Map(lambda s, name=name: ("summary", name, s)))
    tuple(reports) | "AllReports" >> beam.Flatten() | "WriteReport" >> bt.WriteReport(join(out_dir, REPORT_FILE))


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
