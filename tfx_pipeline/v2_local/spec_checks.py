"""Checks that a compiled ``PipelineJob`` JSON is this project's pipeline, compiled by the installed TFX, and orders
its DAG.

Example::

    from tfx_pipeline.v2_local import spec_checks

    job = spec_checks.load_spec("pipeline.json")  # raises SpecError naming what is wrong
    order = spec_checks.topological_order(job["pipelineSpec"]["root"]["dag"]["tasks"])
"""
from __future__ import annotations

import json

from tfx_pipeline.v2_local.errors import SpecError

RESOLVER_TASKS = ("latest_blessed_model_resolver-model-blessing-resolver",
                  "latest_blessed_model_resolver-model-resolver")


def expected_tasks() -> list[str]:
    """The task names of this project's compiled pipeline (the resolver compiles to two query tasks)."""
    from tfx_pipeline.pipeline import NODE_IDS, RESOLVER_ID  # pylint: disable=g-import-not-at-top
    return [t for n in NODE_IDS for t in (RESOLVER_TASKS if n == RESOLVER_ID else (n,))]


def optional_tasks() -> list[str]:
    """Tasks a compiled spec may also have: the bulk inference step after the Pusher (``--recommend_data``) and the
    data validation (``--validation fail|warn``)."""
    from tfx_pipeline.pipeline import RECOMMENDER_ID, VALIDATION_IDS  # pylint: disable=g-import-not-at-top
    return [RECOMMENDER_ID, *VALIDATION_IDS]


def load_spec(path: str) -> dict:
    """Reads and checks a compiled ``PipelineJob`` JSON; raises :class:`SpecError` naming what is wrong."""
    job = _read_job(path)
    spec = job["pipelineSpec"]
    _check_pipeline_spec(path, spec)
    _check_compiler(path, spec)
    _check_tasks(path, spec)
    _check_artifact_types(path, spec.get("components", {}))
    _check_producers(path, spec)
    if not job.get("runtimeConfig", {}).get("gcsOutputDirectory"):
        raise SpecError(f"{path}: runtimeConfig.gcsOutputDirectory (the pipeline root) is missing")
    return job


def _read_job(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            job = json.load(handle)
    except OSError as err:
        raise SpecError(f"{path}: cannot read the spec ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise SpecError(f"{path}: not JSON ({err})") from None
    if not isinstance(job, dict) or "pipelineSpec" not in job:
        raise SpecError(f"{path}: not a compiled pipeline job (no 'pipelineSpec'); compile it with "
                        "`gru4rec pipeline compile`")
    return job


def _check_pipeline_spec(path: str, spec: dict) -> None:
    """The ``pipelineSpec`` parses as KFP's ``PipelineSpec`` proto."""
    from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
    from kfp.pipeline_spec import pipeline_spec_pb2
    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as err:
        raise SpecError(f"{path}: not a KFP PipelineSpec: {err}") from None


def _check_compiler(path: str, spec: dict) -> None:
    """Compiled by the installed TFX, with the schema version that ``gru4rec pipeline compile`` writes."""
    from tfx import version as tfx_version  # pylint: disable=g-import-not-at-top

    from tfx_pipeline import runners
    want_sdk = f"tfx-{tfx_version.__version__}"
    if spec.get("sdkVersion") != want_sdk:
        raise SpecError(f"{path}: compiled by {spec.get('sdkVersion') or 'an unknown SDK'}, but this environment "
                        f"runs {want_sdk}; recompile it here with `gru4rec pipeline compile`")
    if spec.get("schemaVersion") != runners.PIPELINE_SPEC_SCHEMA:
        raise SpecError(f"{path}: pipeline spec schema {spec.get('schemaVersion')}, expected "
                        f"{runners.PIPELINE_SPEC_SCHEMA}; recompile it with `gru4rec pipeline compile`")


def _check_tasks(path: str, spec: dict) -> None:
    """The DAG has exactly the tasks of this project's pipeline (and possibly its optional ones)."""
    tasks = sorted(spec.get("root", {}).get("dag", {}).get("tasks", {}))
    if sorted(t for t in tasks if t not in optional_tasks()) != sorted(expected_tasks()):
        raise SpecError(f"{path}: not the gru4rec pipeline (pipeline {spec.get('pipelineInfo', {}).get('name')!r} "
                        f"has tasks {', '.join(tasks) or 'none'}; expected {', '.join(sorted(expected_tasks()))})")


def _check_artifact_types(path: str, components: dict[str, dict]) -> None:
    """Every artifact type must be one the container entrypoint can rebuild: a ``tfx.*`` title it knows, or a title
    that is the import path of the artifact class (``kubeflow_v2_entrypoint_utils._retrieve_class_path``)."""
    import yaml  # pylint: disable=g-import-not-at-top
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.utils import import_utils
    for component_name, component in components.items():
        for side in ("inputDefinitions", "outputDefinitions"):
            for key, definition in component.get(side, {}).get("artifacts", {}).items():
                schema = definition.get("artifactType", {})
                title = schema.get("schemaTitle") or (yaml.safe_load(schema.get("instanceSchema", "")) or {}).get(
                    "title", "")
                if title in compiler_utils.TITLE_TO_CLASS_PATH:
                    continue
                try:
                    import_utils.import_class_by_path(title)
                except ImportError:
                    raise SpecError(f"{path}: {component_name}.{key} has the artifact type {title!r}, which TFX's "
                                    "container entrypoint cannot import (a custom type's schema title must be the "
                                    "import path of its class)") from None


def _check_producers(path: str, spec: dict) -> None:
    """Every input artifact a task reads from another task is one that task declares as an output."""
    components, tasks = spec.get("components", {}), spec["root"]["dag"]["tasks"]
    for name, task in tasks.items():
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source.get("taskOutputArtifact", {})
            declared = components.get(tasks.get(producer.get("producerTask"), {}).get(
                "componentRef", {}).get("name"), {}).get("outputDefinitions", {}).get("artifacts", {})
            if producer and producer.get("outputArtifactKey") not in declared:
                raise SpecError(f"{path}: missing input artifact: task {name} reads {key} from "
                                f"{producer.get('producerTask')}.{producer.get('outputArtifactKey')}, which that "
                                f"task does not produce (it produces {', '.join(sorted(declared)) or 'nothing'})")


def topological_order(tasks: dict[str, dict]) -> list[str]:
    """Task names in dependency order (ties broken by name, so the order is stable)."""
    deps = {name: set(t.get("dependentTasks", [])) | {
        a["taskOutputArtifact"]["producerTask"] for a in t.get("inputs", {}).get("artifacts", {}).values()
        if "taskOutputArtifact" in a} for name, t in tasks.items()}
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(n for n, d in deps.items() if n not in order and d <= set(order))
        if not ready:
            raise SpecError(f"the DAG has a cycle or an unknown dependency among {sorted(set(tasks) - set(order))}")
        order.append(ready[0])
    return order
