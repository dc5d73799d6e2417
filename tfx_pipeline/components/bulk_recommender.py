"""BulkRecommender: the optional bulk inference step after the Pusher (``gru4rec pipeline run --recommend_data``).

The pipeline's counterpart of TFX's ``BulkInferrer``: it runs ``gru4rec recommend``'s Beam job
(:func:`gru4rec_tf.batch.pipeline.build_and_run`: RunInference over the exported SavedModel's ``serving_default``)
on every session of a click log, and writes the records (``session_id``, ``item_ids``, ``scores``,
``model_version``) into its ``recommendations`` artifact (a standard ``InferenceResult``)::

    <recommendations uri>/part-SSSSS-of-NNNNN.<jsonl|parquet|tfrecord>
    <recommendations uri>/stats.json            the job's summary (sessions, unknown items, files, model version)

* **Only for a blessed model**: the candidate is used when the Pusher would push it (blessed, or it *is* the
  already-blessed model: :func:`tfx_pipeline.components.pusher.should_push`); otherwise nothing is computed and the
  artifact says why (custom property ``recommended`` 0, ``reason``), as ``BulkInferrer`` skips an unblessed model.
* **After the Pusher**: the step is an upstream-ordered successor of the Pusher (no data edge, so the Pusher, which
  the Kubeflow V2 compile leaves uncached, does not defeat this step's cache). The records' ``model_version`` is
  the serving version that holds the model (found by its fingerprint under the serving base directory), i.e. the
  ``model_version`` TF Serving reports for it.
* **Cached like the rest**: the cache key holds the model and blessing artifacts and the execution properties:
  the step's options, the reading options, and ``data_fingerprint`` (sizes and modification times of the data
  files, computed when a local pipeline is built). A compiled spec cannot fingerprint tomorrow's files, so there
  the key holds the data path: give each day's data its own path.
* The log is read with the pipeline's ingestion and session options (same columns, time format, session gap and
  consecutive-repeat rule as the ingestion), sessions longer than the model's input and unknown items are handled
  as serving handles them, and the output appears complete or not at all.

Example::

    recommender = BulkRecommender(model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                                  options=RecommendStepOptions(data="/data/clicks/2026-12-06.tsv", k=20),
                                  ingest=IngestOptions(), sessions=SessionOptions(),
                                  serving_base_directory="/models/gru4rec")
    recommender.add_upstream_node(pusher)
"""
import hashlib
import json
import os
from typing import Any

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from gru4rec_tf.fileio import is_remote
from tfx_pipeline import remote_paths
from tfx_pipeline.components import pusher
from tfx_pipeline.options import IngestOptions, RecommendStepOptions, SessionOptions
from tfx_pipeline.local_beam import LocalRunnerBeamExecutor

OUTPUT_KEY = "recommendations"


class BulkRecommenderSpec(component_spec.ComponentSpec):
    """Inputs, outputs and parameters of :class:`BulkRecommender`."""

    PARAMETERS = {
        "recommend_options": component_spec.ExecutionParameter(type=str),
        "ingest_options": component_spec.ExecutionParameter(type=str),
        "session_options": component_spec.ExecutionParameter(type=str),
        "data_fingerprint": component_spec.ExecutionParameter(type=str),
        "serving_base_directory": component_spec.ExecutionParameter(type=str),
    }
    INPUTS = {
        "model": component_spec.ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing),
    }
    OUTPUTS = {OUTPUT_KEY: component_spec.ChannelParameter(type=standard_artifacts.InferenceResult)}


def data_fingerprint(data: str) -> str:
    """sha256 over the names, sizes and modification times of the files of ``data`` (a file, glob or directory);
    empty for a remote path (a compiled spec runs on files that do not exist yet)."""
    if is_remote(data):
        return ""
    from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.preprocessing.input_files import resolve_files
    digest = hashlib.sha256()
    for path in resolve_files(data):
        metadata = FileSystems.match([path])[0].metadata_list[0]
        digest.update(f"{path}\0{metadata.size_in_bytes}\0{os.stat(path).st_mtime_ns}\n".encode())
    return digest.hexdigest()


def serving_version(model_dir: str, base_directory: str) -> str:
    """The version under ``base_directory`` that holds the SavedModel ``model_dir``; else ``unpushed-<fingerprint>``
    (with a warning: the serving root lost it, or none was given)."""
    fingerprint = pusher.model_fingerprint(model_dir)
    version = pusher.find_version(base_directory, fingerprint) if base_directory else None
    if version is None:
        logging.warning("BulkRecommender: no version under %r holds this model; model_version is its fingerprint",
                        base_directory)
        return f"unpushed-{fingerprint[:12]}"
    return version


class Executor(LocalRunnerBeamExecutor, base_beam_executor.BaseBeamExecutor):
    """Runs ``gru4rec recommend``'s Beam job for a blessed candidate (see the module docstring)."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        from gru4rec_tf.batch import pipeline as batch_pipeline  # pylint: disable=g-import-not-at-top
        model = artifact_utils.get_single_instance(input_dict["model"])
        blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        output = artifact_utils.get_single_instance(output_dict[OUTPUT_KEY])
        if not pusher.should_push(blessing):
            reason = "the model is not blessed"
            logging.info("BulkRecommender: no recommendations: %s", reason)
            output.set_int_custom_property("recommended", 0)
            output.set_string_custom_property("reason", reason)
            return
        step = RecommendStepOptions.from_json(exec_properties["recommend_options"])
        ingest = IngestOptions.from_json(exec_properties["ingest_options"])
        sessions = SessionOptions.from_json(exec_properties["session_options"])
        with remote_paths.local_dir(path_utils.serving_model_path(model.uri)) as model_dir:
            version = serving_version(model_dir, exec_properties.get("serving_base_directory") or "")
            options = step.recommend_options(ingest, sessions, model=model_dir, output=output.uri,
                                             model_version=version, overwrite=True)
            logging.info("BulkRecommender: recommendations of model version %s for the sessions of %s", version,
                         step.data)
            summary = batch_pipeline.build_and_run(options, self._beam_pipeline_args)
        self._record(output, summary, step)

    @staticmethod
    def _record(output: types.Artifact, summary: dict, step: RecommendStepOptions) -> None:
        output.set_int_custom_property("recommended", 1)
        for key in ("sessions", "unknown_items", "sessions_without_results", "rows_read", "rows_rejected"):
            output.set_int_custom_property(key, int(summary[key]))
        output.set_string_custom_property("model_version", str(summary["model_version"]))
        output.set_string_custom_property("format", step.format)
        output.set_int_custom_property("k", step.k)
        output.set_string_custom_property("files", json.dumps(summary["files"]))


class BulkRecommender(base_beam_component.BaseBeamComponent):
    """Custom TFX component: recommendations for every session of a click log, by the blessed candidate.

    Args:
        model: the Trainer's ``model`` channel.
        model_blessing: the evaluator's ``blessing`` channel (nothing is computed for an unblessed candidate).
        options: the data and what to write (:class:`tfx_pipeline.options.RecommendStepOptions`).
        ingest, sessions: the pipeline's reading and session options (the log is read as the ingestion reads it).
        serving_base_directory: the Pusher's base directory, where the records' ``model_version`` is looked up.

    Example::

        recommender = BulkRecommender(model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                                      options=RecommendStepOptions(data="/data/yesterday.tsv"),
                                      serving_base_directory="/models/gru4rec").with_id("BulkRecommender")
        recommender.add_upstream_node(pusher)   # runs after the push
    """

    SPEC_CLASS = BulkRecommenderSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, model: channel.BaseChannel, model_blessing: channel.BaseChannel,
                 options: RecommendStepOptions, ingest: IngestOptions = IngestOptions(),
                 sessions: SessionOptions = SessionOptions(), serving_base_directory: str = ""):
        options.recommend_options(ingest, sessions, model="unused", output="unused")  # validates now
        super().__init__(spec=BulkRecommenderSpec(
            model=model,
            model_blessing=model_blessing,
            recommend_options=options.to_json(),
            ingest_options=ingest.to_json(),
            session_options=sessions.to_json(),
            data_fingerprint=data_fingerprint(options.data),
            serving_base_directory=serving_base_directory,
            recommendations=channel.Channel(type=standard_artifacts.InferenceResult),
        ))
