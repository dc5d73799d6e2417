"""The Pusher: an idempotent, atomic push of the blessed model to ``<serving_root>/<model_name>/``.

:class:`ServingPusher` is the standard ``tfx.components.Pusher`` (same inputs, parameters and ``PushedModel``
output) plus one optional input, ``baseline_model``: the last blessed model (the pipeline's
``LatestBlessedModelStrategy`` resolver). Its :class:`Executor` differs from the standard one in four ways:

* **what it pushes**: the candidate when it is blessed, *and* the candidate that is the already-blessed model
  (the blessing's ``is_new_model`` is 0: a re-run whose Trainer was cached or reused the base model); when the
  candidate is not blessed, the baseline (the model that should be served) is pushed if the serving root lacks
  it. So a new or wiped serving root gets the blessed model on every run, on every orchestrator (on Kubeflow V2 /
  Vertex, where no run guard runs after the pipeline, too); the candidate's ``PushedModel`` then says "not
  pushed" and carries the baseline's ``served_destination`` / ``served_version`` / ``served_copied``;
* **no duplicates**: when a version under the base directory already holds the same model (same
  :func:`model_fingerprint`: variables and assets), nothing is copied and that version is reported as the push;
* **atomic**: the SavedModel is copied into a hidden ``.tmp-<version>-...`` directory beside the versions and
  renamed into place, so TF Serving (which only loads numeric version directories) never sees a partial version;
  staging directories left by a killed push are removed by the next push. On an object store (``gs://``), which
  has no directory rename, the files are copied in place with ``saved_model.pb`` last, as the standard Pusher does;
* **a report**: the model's report (:mod:`tfx_pipeline.model_report`, Markdown and PNGs, from the optional inputs
  ``evaluation``, ``model_run`` and ``data_verdict``) goes into the staged version's ``assets.extra/report/``
  before it becomes visible (TF Serving ignores it; :func:`model_fingerprint` does not read it, so a version that
  already holds the model is still found, and keeps its own report), and into the ``PushedModel`` artifact at the
  same relative path, also when nothing is pushed (the unpushed candidate's report).

:func:`push_model` is the same push as a function (``gru4rec pipeline run`` calls it to restore a version that
was deleted after a cached push).

Example::

    version, destination, copied = push_model("root/Trainer/model/6/Format-Serving", "serving/gru4rec")
"""
import dataclasses
import hashlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import json_utils
from tfx.utils import path_utils
from tfx.utils import proto_utils
from tfx.proto import pusher_pb2

from tfx_pipeline import artifacts
from tfx_pipeline import model_report
from tfx_pipeline import slice_summary

STAGING_PREFIX = ".tmp-"
BASELINE_MODEL_KEY = "baseline_model"
REPORT_INPUT_KEYS = ("evaluation", "model_run", "data_verdict")  # optional inputs: what the model's report shows
_FINGERPRINTED = ("variables", "assets")  # saved_model.pb differs between two exports of the same weights


def model_fingerprint(saved_model_dir: str) -> str:
    """sha256 over the relative paths and bytes of a SavedModel's ``variables/`` and ``assets/`` files."""
    digest = hashlib.sha256()
    for sub in _FINGERPRINTED:
        top = os.path.join(saved_model_dir, sub)
        if not fileio.isdir(top):
            continue
        for dirpath, _, filenames in sorted(fileio.walk(top)):
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                digest.update(os.path.relpath(path, saved_model_dir).encode() + b"\0")
                with fileio.open(path, "rb") as handle:
                    digest.update(handle.read())
                digest.update(b"\0")
    return digest.hexdigest()


def complete_versions(base_directory: str) -> list[str]:
    """The numeric version directories under ``base_directory`` that hold a ``saved_model.pb``, oldest first."""
    if not fileio.isdir(base_directory):
        return []
    names = [n.rstrip("/") for n in fileio.listdir(base_directory)]
    versions = [n for n in names if n.isdigit()
                and fileio.exists(os.path.join(base_directory, n, "saved_model.pb"))]
    return sorted(versions, key=int)


def find_version(base_directory: str, fingerprint: str) -> str | None:
    """The newest version under ``base_directory`` holding the model of ``fingerprint``, or None."""
    for version in reversed(complete_versions(base_directory)):
        if model_fingerprint(os.path.join(base_directory, version)) == fingerprint:
            return version
    return None


def remove_stale_staging(base_directory: str) -> None:
    """Removes the staging directories of pushes that were killed (the caller holds the serving root)."""
    if "://" in base_directory or not fileio.isdir(base_directory):
        return
    for name in fileio.listdir(base_directory):
        if name.rstrip("/").startswith(STAGING_PREFIX):
            fileio.rmtree(os.path.join(base_directory, name.rstrip("/")))


def push_model(model_dir: str, base_directory: str,
               write_extra: Callable[[str, str], None] | None = None) -> tuple[str, str, bool]:
    """Pushes the SavedModel ``model_dir`` to ``base_directory/<version>`` unless a version already holds it.

    Returns ``(version, destination, copied)``. The version is the UNIX time in seconds (as the standard
    Pusher's), above every existing version, so TF Serving's latest-version policy serves it. ``write_extra(dir,
    version)`` adds files (the model's report, under ``assets.extra/``) to the copy before it becomes visible; it
    is not called when a version already holds the model (that version keeps what it has).
    """
    if not fileio.exists(os.path.join(model_dir, "saved_model.pb")):
        raise ValueError(f"{model_dir}: no SavedModel to push (saved_model.pb is missing)")
    fingerprint = model_fingerprint(model_dir)
    fileio.makedirs(base_directory)
    remove_stale_staging(base_directory)
    existing = find_version(base_directory, fingerprint)
    if existing is not None:
        destination = os.path.join(base_directory, existing)
        logging.info("Pusher: %s already holds this model; nothing copied", destination)
        return existing, destination, False
    names = [n.rstrip("/") for n in fileio.listdir(base_directory)]
    version = max([int(time.time())] + [int(n) + 1 for n in names if n.isdigit()])
    destination = os.path.join(base_directory, str(version))
    if "://" in base_directory:  # object stores have no directory rename: saved_model.pb last, as TFX's Pusher
        io_utils.copy_dir(model_dir, destination, deny_regex_patterns=[r"saved_model\.pb"])
        if write_extra is not None:
            write_extra(destination, str(version))
        io_utils.copy_file(os.path.join(model_dir, "saved_model.pb"), os.path.join(destination, "saved_model.pb"))
        return str(version), destination, True
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        io_utils.copy_dir(model_dir, staging, deny_regex_patterns=[r"saved_model\.pb"])
        if write_extra is not None:
            write_extra(staging, str(version))
        io_utils.copy_file(os.path.join(model_dir, "saved_model.pb"), os.path.join(staging, "saved_model.pb"))
        fileio.rename(staging, destination)  # atomic on a local filesystem
    except BaseException:
        if fileio.exists(staging):
            fileio.rmtree(staging)
        raise
    logging.info("Pusher: model written to serving path %s", destination)
    return str(version), destination, True


def push_model_artifact(model_uri: str, base_directory: str, pushed_uris: Sequence[str] = ()
                        ) -> tuple[str, str, bool] | None:
    """:func:`push_model` of the serving SavedModel inside the ``Model`` artifact at ``model_uri``, or None (with a
    warning, nothing written) when that SavedModel is gone. When it copies the model, it copies along the report
    of the ``PushedModel`` (among ``pushed_uris``, newest first) that archived this very model, if any
    (:func:`pushed_report`): a version put back carries the report it was blessed with."""
    model_dir = path_utils.serving_model_path(model_uri)
    if not fileio.exists(os.path.join(model_dir, "saved_model.pb")):
        logging.warning("Pusher: the SavedModel %s is gone; the serving root %s is left as it is", model_dir,
                        base_directory)
        return None

    def copy_report(target: str, _version: str) -> None:
        report = pushed_report(model_dir, pushed_uris)
        if report is None:
            logging.info("Pusher: no report found for %s; the restored version has none", model_dir)
            return
        io_utils.copy_dir(report, os.path.join(target, model_report.REPORT_DIR))

    return push_model(model_dir, base_directory, write_extra=copy_report if pushed_uris else None)


def pushed_report(model_dir: str, pushed_uris: Sequence[str]) -> str | None:
    """The report directory of the first ``PushedModel`` of ``pushed_uris`` whose archived SavedModel is the model
    of ``model_dir`` (same :func:`model_fingerprint`), or None. Only archives with a report are fingerprinted."""
    fingerprint = None
    for uri in pushed_uris:
        report = os.path.join(uri, model_report.REPORT_DIR)
        if not fileio.exists(os.path.join(uri, "saved_model.pb")) or not fileio.isdir(report):
            continue
        fingerprint = fingerprint or model_fingerprint(model_dir)
        if model_fingerprint(uri) == fingerprint:
            return report
    return None


def sibling_pushes(model_push_uri: str) -> list[str]:
    """The other ``PushedModel`` directories beside ``model_push_uri`` (the Pusher's earlier executions), newest
    (highest execution ID) first."""
    parent = os.path.dirname(model_push_uri.rstrip("/"))
    if not fileio.isdir(parent):
        return []
    names = [n.rstrip("/") for n in fileio.listdir(parent)]
    own = os.path.basename(model_push_uri.rstrip("/"))
    return [os.path.join(parent, n) for n in sorted((n for n in names if n.isdigit() and n != own), key=int,
                                                    reverse=True)]


def custom_number(artifact: types.Artifact, key: str) -> float | None:
    """The number in the custom property ``key`` whatever its MLMD type, or None when absent or not a number.

    On Kubeflow V2 / Vertex the container entrypoint rebuilds artifact metadata from a JSON struct, so an integer
    property arrives as a ``struct_value`` double; TFX's ``Artifact.get_custom_property`` returns None for such a
    value when it is falsy (0), so a 0 must be read from the struct directly.
    """
    props = artifact.mlmd_artifact.custom_properties
    if key not in props:
        return None
    kind = props[key].WhichOneof("value")
    if kind == "struct_value":
        value = artifact.get_json_value_custom_property(key)
    elif kind in ("int_value", "double_value"):
        value = getattr(props[key], kind)
    else:
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def should_push(blessing: types.Artifact) -> bool:
    """Blessed, or the candidate is the already-blessed model (``is_new_model`` 0: its baseline was blessed).

    Values are read whatever their MLMD type (:func:`custom_number`): on Kubeflow V2 / Vertex an integer property
    arrives as a double inside a JSON struct.
    """
    if custom_number(blessing, "blessed") == 1:
        return True
    # is_new_model 0 implies a baseline (the evaluator sets it only when the candidate is, or equals, the last
    # blessed model); the baseline's ID property is not relied on: on Vertex it is rewritten to an artifact name
    return custom_number(blessing, "is_new_model") == 0


def _read_json(directory: str | None, *names: str):
    """The JSON file ``directory/names...``, or None when there is no directory or no such file."""
    path = os.path.join(directory, *names) if directory else None
    if not path or not fileio.exists(path):
        return None
    with fileio.open(path) as handle:
        return json.load(handle)


def _uri(input_dict: dict[str, list[types.Artifact]], key: str) -> str | None:
    found = input_dict.get(key) or []
    return found[0].uri if found else None


def _blessing_facts(blessing: types.Artifact) -> dict:
    return {"blessed": custom_number(blessing, "blessed"), "is_new_model": custom_number(blessing, "is_new_model"),
            "blessing_message": blessing.get_string_custom_property("blessing_message"),
            "failed_slices": blessing.get_string_custom_property("failed_slices")}


def report_inputs(input_dict: dict[str, list[types.Artifact]]) -> model_report.ReportInputs:
    """What the model's report shows, read from the Pusher's inputs (each of the optional ones may be absent)."""
    from tfx_pipeline.components import data_validator  # pylint: disable=g-import-not-at-top
    blessing = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_BLESSING_KEY])
    verdicts = input_dict.get("data_verdict") or []
    verdict_uri, baseline_uri = _uri(input_dict, "data_verdict"), _uri(input_dict, BASELINE_MODEL_KEY)
    profile = (artifacts.DATA_PROFILE_DIR, data_validator.PROFILE_FILE)
    return model_report.ReportInputs(
        blessing=_blessing_facts(blessing), model_uri=_uri(input_dict, "model"), base_model_uri=baseline_uri,
        evaluation=_read_json(_uri(input_dict, "evaluation"), slice_summary.METRICS_FILE),
        training=_read_json(_uri(input_dict, "model_run"), artifacts.TRAINING_FILE),
        data_profile=_read_json(verdict_uri, *profile), baseline_profile=_read_json(baseline_uri, *profile),
        anomalies=_read_json(verdict_uri, data_validator.ANOMALIES_FILE),
        validation={"mode": verdicts[0].get_string_custom_property("mode"),
                    "valid": custom_number(verdicts[0], "valid")} if verdicts else None)


def write_model_report(input_dict: dict[str, list[types.Artifact]], target: str, pushed: dict | None,
                       model_name: str = "model") -> bool:
    """Writes the model's report (:mod:`tfx_pipeline.model_report`) into ``<target>/assets.extra/report/``.

    Rendered in a local temporary directory and copied (``target`` may be remote). A report that cannot be made
    is logged and skipped (returns False): it never stops a push.
    """
    try:
        inputs = dataclasses.replace(report_inputs(input_dict), model_name=model_name, pushed=pushed)
        with tempfile.TemporaryDirectory() as local:
            model_report.write_report(inputs, local)
            io_utils.copy_dir(local, os.path.join(target, model_report.REPORT_DIR))
        return True
    except Exception:  # pylint: disable=broad-except  (a report is never worth a failed push)
        logging.exception("Pusher: the model report could not be written into %s", target)
        return False


class Executor(tfx_pusher_executor.Executor):
    """The standard Pusher executor with :func:`should_push` and :func:`push_model` (see the module docstring)."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        blessing = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_BLESSING_KEY])
        base_directory = self._base_directory(exec_properties)
        name = os.path.basename(base_directory.rstrip("/"))

        def report(target: str, pushed: dict | None) -> None:
            write_model_report(input_dict, target, pushed, model_name=name)

        if not should_push(blessing):
            self._MarkNotPushed(model_push)
            report(model_push.uri, None)  # the unpushed candidate's report, in its PushedModel artifact
            self._serve_baseline(input_dict.get(BASELINE_MODEL_KEY) or [], base_directory, model_push)
            return
        model_path = self.GetModelPath(input_dict)
        version, serving_path, copied = push_model(model_path, base_directory, write_extra=lambda target, v: report(
            target, {"version": v, "destination": os.path.join(base_directory, v)}))
        model_push.set_int_custom_property("copied", int(copied))
        io_utils.copy_dir(model_path, model_push.uri)  # the archive copy, as the standard Pusher's
        report(model_push.uri, {"version": version, "destination": serving_path, "copied": copied})
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)

    @staticmethod
    def _base_directory(exec_properties: dict[str, Any]) -> str:
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError(f"push destination {destination.WhichOneof('destination')!r}")
        return destination.filesystem.base_directory

    @staticmethod
    def _serve_baseline(baselines: list[types.Artifact], base_directory: str, model_push: types.Artifact) -> None:
        """The candidate is not blessed: pushes the last blessed model if the serving root lacks it."""
        if not baselines:
            return
        pushed = push_model_artifact(baselines[0].uri, base_directory, sibling_pushes(model_push.uri))
        if pushed is None:
            return
        version, serving_path, copied = pushed
        logging.info("Pusher: candidate not blessed; the last blessed model is served from %s (%s)", serving_path,
                     "copied: the serving root lacked it" if copied else "already there")
        model_push.set_string_custom_property("served_destination", serving_path)
        model_push.set_string_custom_property("served_version", version)
        model_push.set_int_custom_property("served_copied", int(copied))


class ServingPusherSpec(component_spec.ComponentSpec):
    """``PusherSpec`` plus optional inputs: ``baseline_model`` (the last blessed model) and what the model's report
    shows (:data:`REPORT_INPUT_KEYS`: the SessionEvaluator's ``evaluation``, the Trainer's ``model_run``, the
    DataValidator's ``data_verdict``)."""

    PARAMETERS = dict(standard_component_specs.PusherSpec.PARAMETERS)
    INPUTS = {**standard_component_specs.PusherSpec.INPUTS,
              BASELINE_MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model, optional=True),
              "evaluation": component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
              "model_run": component_spec.ChannelParameter(type=standard_artifacts.ModelRun, optional=True),
              "data_verdict": component_spec.ChannelParameter(type=artifacts.DataVerdict, optional=True)}
    OUTPUTS = dict(standard_component_specs.PusherSpec.OUTPUTS)
    TYPE_ANNOTATION = standard_component_specs.PusherSpec.TYPE_ANNOTATION


class ServingPusher(base_component.BaseComponent):
    """The standard Pusher with a ``baseline_model`` input, run by :class:`Executor` (see the module docstring).

    Example::

        pusher = ServingPusher(
            model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
            baseline_model=resolver.outputs["model"], evaluation=evaluator.outputs["evaluation"],
            model_run=trainer.outputs["model_run"],  # + data_verdict=...: what the model's report shows
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory="/models/gru4rec"))).with_id("Pusher")
    """

    SPEC_CLASS = ServingPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
                 push_destination: pusher_pb2.PushDestination, baseline_model: types.BaseChannel | None = None,
                 evaluation: types.BaseChannel | None = None, model_run: types.BaseChannel | None = None,
                 data_verdict: types.BaseChannel | None = None):
        if push_destination.WhichOneof("destination") != "filesystem":
            raise ValueError("ServingPusher: push_destination must be a filesystem base directory")
        spec = ServingPusherSpec(model=model, model_blessing=model_blessing, baseline_model=baseline_model,
                                 evaluation=evaluation, model_run=model_run, data_verdict=data_verdict,
                                 push_destination=push_destination, custom_config=json_utils.dumps(None),
                                 pushed_model=types.Channel(type=standard_artifacts.PushedModel))
        super().__init__(spec=spec)
