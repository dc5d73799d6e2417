"""A local driver for the compiled Kubeflow V2 / Vertex AI pipeline spec: a test and benchmark helper, not a runner.

``gru4rec pipeline compile`` writes a KFP ``PipelineJob`` JSON. On Vertex AI Pipelines every container task of it
is started as ``python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor --executor_class_path
CLASS --json_serialized_invocation_args <ExecutorInput JSON> ...``, and the backend itself evaluates the resolver
tasks (metadata queries) and the Pusher's trigger condition from the metadata that earlier tasks reported through
their executor output files. This module plays the backend's part on one machine:

* it reads the spec, checks that it is this project's pipeline compiled by the installed TFX, and walks the DAG
  in dependency order;
* for each container task it builds the ``ExecutorInput`` as the KFP v2 backend does (input artifacts with
  ``name``, ``uri``, ``metadata`` and type schema; ``parameterValues``; pre-created output artifacts with URIs
  under the pipeline root; the ``outputFile``), runs the spec's own ``lifecycle.preCacheCheck`` command first
  when there is one (the file-based ExampleGen driver: span and input fingerprint), and then the task's **own
  command and args** in a subprocess of this Python environment with this checkout's code (the container
  stand-in); a task's stdout/stderr go to ``<task root>/container.log``;
* it records the output artifacts with the metadata the task reported in its executor output file (a local
  stand-in for Vertex ML Metadata, ``<local_root>/.v2_local/<pipeline>/metadata.json``), resolves the
  ``outputArtifactQueries`` of the resolver tasks against that record, and evaluates ``triggerPolicy.condition``
  (the CEL subset TFX emits) over the task's resolved inputs;
* it reuses a task's earlier outputs when its cache key (input artifact names, parameter values after the
  preCacheCheck, output types, image, command and args: the fields of the KFP backend's cache key) is unchanged.

Every ``gs://BUCKET/PATH`` of the spec (pipeline root, data root, serving root) becomes ``<local_root>/BUCKET/PATH``.
What this reproduces of the Vertex contract and what it cannot (IAM, GCS consistency, image pulls, Vertex's own
cache service ...) is listed in ``tfx_pipeline/README.md``.

Usage::

    gru4rec pipeline compile --output pipeline.json --pipeline_root gs://bucket/gru4rec
    python -m tfx_pipeline.v2_local --spec pipeline.json --local_root /tmp/vertex [--parameter NAME=VALUE ...]

It ends with the same summary as ``gru4rec pipeline run`` and exits with status 1 when a task fails. A spec
compiled without ``--data`` reads ``<pipeline_root>/data``; when that folder is empty the driver puts the built-in
synthetic click log there, as ``gru4rec pipeline run`` does.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any
from collections.abc import Sequence

import tfx_pipeline  # sets TF_USE_LEGACY_KERAS before TensorFlow is imported; locates this checkout

RESOLVER_TASKS = ("latest_blessed_model_resolver-model-blessing-resolver",
                  "latest_blessed_model_resolver-model-resolver")
EXAMPLE_GEN_TASK = "ClickLogExampleGen"
# What the container image sets for every task (tfx_pipeline/Dockerfile's ENV; a test checks that they agree).
CONTAINER_ENV = {"TF_USE_LEGACY_KERAS": "1", "PYTHONUNBUFFERED": "1"}
STATE_DIR = ".v2_local"
LOG_TAIL_LINES = 25
_EXECUTOR_INPUT = "{{$}}"


class SpecError(ValueError):
    """The spec cannot be run here (another pipeline, another TFX version, unsupported construct, bad input)."""


class TaskFailed(RuntimeError):
    """A task's container (or its preCacheCheck) exited with a non-zero status."""

    def __init__(self, task: str, message: str, log_tail: str):
        super().__init__(f"{task} failed: {message}\n--- last lines of its output ---\n{log_tail}")
        self.task = task


# ------------------------------------------------------------------------------------------------------ the spec
def expected_tasks() -> list[str]:
    """The task names of this project's compiled pipeline (the resolver compiles to two query tasks)."""
    from tfx_pipeline.pipeline import NODE_IDS, RESOLVER_ID  # pylint: disable=g-import-not-at-top
    return [t for n in NODE_IDS for t in (RESOLVER_TASKS if n == RESOLVER_ID else (n,))]


def load_spec(path: str) -> dict:
    """Reads and checks a compiled ``PipelineJob`` JSON; raises :class:`SpecError` naming what is wrong."""
    from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx import version as tfx_version

    from tfx_pipeline import runners
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
    spec = job["pipelineSpec"]
    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as err:
        raise SpecError(f"{path}: not a KFP PipelineSpec: {err}") from None
    want_sdk = f"tfx-{tfx_version.__version__}"
    if spec.get("sdkVersion") != want_sdk:
        raise SpecError(f"{path}: compiled by {spec.get('sdkVersion') or 'an unknown SDK'}, but this environment "
                        f"runs {want_sdk}; recompile it here with `gru4rec pipeline compile`")
    if spec.get("schemaVersion") != runners.PIPELINE_SPEC_SCHEMA:
        raise SpecError(f"{path}: pipeline spec schema {spec.get('schemaVersion')}, expected "
                        f"{runners.PIPELINE_SPEC_SCHEMA}; recompile it with `gru4rec pipeline compile`")
    tasks = sorted(spec.get("root", {}).get("dag", {}).get("tasks", {}))
    if tasks != sorted(expected_tasks()):
        raise SpecError(f"{path}: not the gru4rec pipeline (pipeline {spec.get('pipelineInfo', {}).get('name')!r} "
                        f"has tasks {', '.join(tasks) or 'none'}; expected {', '.join(sorted(expected_tasks()))})")
    components = spec.get("components", {})
    _check_artifact_types(path, components)
    for name, task in spec["root"]["dag"]["tasks"].items():
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source.get("taskOutputArtifact", {})
            declared = components.get(spec["root"]["dag"]["tasks"].get(producer.get("producerTask"), {}).get(
                "componentRef", {}).get("name"), {}).get("outputDefinitions", {}).get("artifacts", {})
            if producer and producer.get("outputArtifactKey") not in declared:
                raise SpecError(f"{path}: missing input artifact: task {name} reads {key} from "
                                f"{producer.get('producerTask')}.{producer.get('outputArtifactKey')}, which that "
                                f"task does not produce (it produces {', '.join(sorted(declared)) or 'nothing'})")
    root = job.get("runtimeConfig", {}).get("gcsOutputDirectory")
    if not root:
        raise SpecError(f"{path}: runtimeConfig.gcsOutputDirectory (the pipeline root) is missing")
    return job


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


# -------------------------------------------------------------------------------------------------- gs:// paths
def localize(value: Any, local_root: str) -> Any:
    """Every ``gs://BUCKET/PATH`` inside ``value`` (a string, possibly JSON) -> ``<local_root>/BUCKET/PATH``."""
    if isinstance(value, str):
        return value.replace("gs://", local_root.rstrip("/") + "/")
    return value


# ------------------------------------------------------------------------------------------------- the "store"
@dataclasses.dataclass
class Artifact:
    """A recorded artifact: what Vertex ML Metadata would hold for it."""

    name: str
    schema: str  # the instanceSchema of its type (YAML with the title)
    uri: str
    metadata: dict[str, Any]
    producer: str
    run_id: str
    create_time: float
    state: str = "LIVE"

    @property
    def schema_title(self) -> str:
        match = re.search(r"^title:\s*(\S+)", self.schema, re.MULTILINE)
        return match.group(1) if match else ""

    def runtime_artifact(self) -> dict:
        """The ``RuntimeArtifact`` JSON of the ``ExecutorInput``."""
        return {"name": self.name, "type": {"instanceSchema": self.schema}, "uri": self.uri,
                "metadata": self.metadata}


class Store:
    """Artifacts and executions of the runs under one local root (JSON; stands in for Vertex ML Metadata)."""

    def __init__(self, path: str):
        self.path = path
        data = {"next_id": 1, "artifacts": [], "executions": []}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        self.next_id = data["next_id"]
        self.artifacts = {a["name"]: Artifact(**a) for a in data["artifacts"]}
        self.executions: list[dict] = data["executions"]

    def new_name(self, kind: str = "artifacts") -> str:
        name = f"local/metadataStores/default/{kind}/{self.next_id}"
        self.next_id += 1
        return name

    def add(self, artifact: Artifact) -> None:
        self.artifacts[artifact.name] = artifact

    def cached(self, cache_key: str) -> dict | None:
        """The newest successful execution with this cache key whose outputs are still recorded."""
        for execution in reversed(self.executions):
            if execution["cache_key"] == cache_key and execution["state"] == "COMPLETE" and all(
                    n in self.artifacts for names in execution["outputs"].values() for n in names):
                return execution
        return None

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"next_id": self.next_id, "artifacts": [dataclasses.asdict(a) for a in self.artifacts.values()],
                       "executions": self.executions}, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


# ------------------------------------------------------------------------------------------------------ the CEL
_TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\d+)|('[^']*'|\"[^\"]*\")|(==|!=|<=|>=|&&|\|\||[()\[\].<>!])|([A-Za-z_]\w*))")


def evaluate_condition(condition: str, inputs: dict[str, list[Artifact]], task: str) -> bool:
    """Evaluates the CEL subset that TFX's compiler emits for ``Cond`` over the task's input artifacts.

    ``inputs.artifacts['KEY'].artifacts[0].metadata['NAME']`` paths, number/string literals, ``== != < > <= >=``,
    ``&& || !`` and parentheses. A path to an input the task does not have is an error, as on the backend.
    """
    tokens, pos = [], 0
    while pos < len(condition.rstrip()):
        match = _TOKEN.match(condition, pos)
        if not match:
            raise SpecError(f"{task}: cannot parse the trigger condition {condition!r} at {condition[pos:]!r}")
        tokens.append(match.groups())
        pos = match.end()
    view = {"artifacts": {k: {"artifacts": [{"metadata": a.metadata, "uri": a.uri, "name": a.name} for a in v]}
                          for k, v in inputs.items()}}
    i = 0

    def peek(kind=None):
        if i >= len(tokens):
            return None
        number, string, op, ident = tokens[i]
        return op if kind is None else {"n": number, "s": string, "i": ident}.get(kind)

    def take(op):
        nonlocal i
        if peek() != op:
            raise SpecError(f"{task}: trigger condition {condition!r}: expected {op!r}")
        i += 1

    def primary():
        nonlocal i
        if peek() == "(":
            take("(")
            value = disjunction()
            take(")")
            return value
        if peek("n") is not None:
            i += 1
            return float(tokens[i - 1][0])
        if peek("s") is not None:
            i += 1
            return tokens[i - 1][1][1:-1]
        if peek("i") != "inputs":
            raise SpecError(f"{task}: trigger condition {condition!r}: only inputs.artifacts[...] can be read")
        i += 1
        value, where = view, "inputs"
        while peek() in (".", "["):
            if peek() == ".":
                take(".")
                key = peek("i")
                i += 1
                where += f".{key}"
            else:
                take("[")
                key = peek("s")[1:-1] if peek("s") is not None else int(float(peek("n")))
                i += 1
                take("]")
                where += f"[{key!r}]"
            if isinstance(key, int):
                if not isinstance(value, list) or key >= len(value):
                    raise SpecError(f"{task}: trigger condition {condition!r}: {where} does not exist (no artifact)")
                value = value[key]
            else:
                if not isinstance(value, dict) or key not in value:
                    have = ", ".join(sorted(inputs)) if where.startswith("inputs.artifacts[") else ""
                    raise SpecError(f"{task}: trigger condition {condition!r} reads {where}, which this task does not "
                                    f"have{f' (its input artifacts: {have})' if have else ''}")
                value = value[key]
        return value

    def comparison():
        left = primary()
        op = peek()
        if op in ("==", "!=", "<", ">", "<=", ">="):
            take(op)
            right = primary()
            if isinstance(left, (int, float)) and isinstance(right, (int, float)):
                left, right = float(left), float(right)
            return {"==": left == right, "!=": left != right, "<": left < right, ">": left > right,
                    "<=": left <= right, ">=": left >= right}[op]
        return left

    def negation():
        if peek() == "!":
            take("!")
            return not negation()
        return comparison()

    def conjunction():
        value = negation()
        while peek() == "&&":
            take("&&")
            value = negation() and value
        return value

    def disjunction():
        value = conjunction()
        while peek() == "||":
            take("||")
            value = conjunction() or value
        return value

    result = disjunction()
    if i != len(tokens):
        raise SpecError(f"{task}: trigger condition {condition!r}: unexpected {''.join(filter(None, tokens[i]))!r}")
    return bool(result)


# -------------------------------------------------------------------------------------------- resolver queries
_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}")
_CLAUSE = re.compile(r'^(schema_title|state|name|metadata\.(\w+)\.(number_value|string_value))\s*=\s*("([^"]*)"|\S+)$')


def resolve_query(query: str, inputs: dict[str, list[Artifact]], store: Store, task: str) -> list[Artifact]:
    """The newest recorded artifact matching an ``outputArtifactQueries`` filter (``A AND B ...``), or none."""
    def fill(match):
        key, prop = match.groups()
        artifacts = inputs.get(key) or []
        if not artifacts or prop not in artifacts[0].metadata:
            raise LookupError
        value = artifacts[0].metadata[prop]
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    try:
        query = _PLACEHOLDER.sub(fill, query)
    except LookupError:
        return []  # its input resolved to nothing: so does the query
    clauses = []
    for clause in (c.strip() for c in query.split(" AND ")):
        match = _CLAUSE.match(clause)
        if not match:
            raise SpecError(f"{task}: unsupported resolver filter clause {clause!r} in {query!r}")
        field, prop, kind, raw, quoted = match.groups()
        clauses.append((field, prop, kind, quoted if quoted is not None else raw))

    def matches(artifact: Artifact) -> bool:
        for field, prop, kind, value in clauses:
            if field == "schema_title" and artifact.schema_title != value:
                return False
            if field == "state" and artifact.state != value:
                return False
            if field == "name" and artifact.name != value:
                return False
            if prop is not None:
                have = artifact.metadata.get(prop)
                if kind == "number_value":
                    if not isinstance(have, (int, float)) or isinstance(have, bool) or float(have) != float(value):
                        return False
                elif have != value:
                    return False
        return True

    found = [a for a in store.artifacts.values() if matches(a)]
    return [max(found, key=lambda a: (a.create_time, int(a.name.rsplit("/", 1)[1])))] if found else []


# ------------------------------------------------------------------------------------------------------ the run
@dataclasses.dataclass
class TaskRun:
    task: str
    state: str  # COMPLETE, CACHED, SKIPPED, FAILED, NOT RUN
    seconds: float = 0.0
    outputs: dict[str, list[Artifact]] = dataclasses.field(default_factory=dict)


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(tfx_pipeline.__file__)))


def container_env() -> dict[str, str]:
    """The task environment: this one, the image's ENV, and this checkout's code first on the import path."""
    env = {**os.environ, **CONTAINER_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_repo_root(), os.environ.get("PYTHONPATH")) if p)
    return env


class Driver:
    """Runs one compiled spec under ``local_root`` (see the module docstring)."""

    def __init__(self, job: dict, local_root: str, parameters: dict[str, str] | None = None,
                 enable_cache: bool = True, synthetic_sessions: int = 20000, synthetic_items: int = 1000,
                 log=None):
        self.job, self.spec = job, job["pipelineSpec"]
        self.local_root = os.path.abspath(local_root)
        self.pipeline_name = self.spec["pipelineInfo"]["name"]
        self.enable_cache = enable_cache
        self.synthetic = (synthetic_sessions, synthetic_items)
        self.log = log or _progress
        self.remote_root = job["runtimeConfig"]["gcsOutputDirectory"].rstrip("/")
        self.pipeline_root = localize(self.remote_root, self.local_root)
        self.state_dir = os.path.join(self.local_root, STATE_DIR, self.pipeline_name)
        self.store = Store(os.path.join(self.state_dir, "metadata.json"))
        self.parameters = self._root_parameters(parameters or {})
        self.run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")

    # ------------------------------------------------------------------ parameters
    def _root_parameters(self, given: dict[str, str]) -> dict[str, Any]:
        definitions = self.spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
        unknown = sorted(set(given) - set(definitions))
        if unknown:
            raise SpecError(f"unknown runtime parameter(s) {unknown}; this spec has "
                            f"{sorted(definitions) or 'none'}")
        defaults = self.job.get("runtimeConfig", {}).get("parameterValues", {})
        values = {}
        for name, definition in definitions.items():
            kind = definition.get("parameterType", "STRING")
            if name in given:
                values[name] = _typed(name, given[name], kind)
            elif name in defaults:
                values[name] = defaults[name]
            elif "defaultValue" in definition:
                values[name] = definition["defaultValue"]
            elif not definition.get("isOptional"):
                raise SpecError(f"runtime parameter {name!r} has no default: set it with --parameter {name}=VALUE")
        return values

    def _task_parameters(self, task_name: str, task: dict) -> dict[str, Any]:
        values = {}
        for key, spec in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in spec:
                runtime = spec["runtimeValue"]
                if "constant" not in runtime:
                    raise SpecError(f"{task_name}.{key}: unsupported runtime value {runtime}")
                value = runtime["constant"]
            elif "componentInputParameter" in spec:
                name = spec["componentInputParameter"]
                if name not in self.parameters:
                    raise SpecError(f"{task_name}.{key} reads the pipeline parameter {name!r}, which has no value")
                value = self.parameters[name]
            else:
                raise SpecError(f"{task_name}.{key}: unsupported parameter source {sorted(spec)}")
            values[key] = localize(value, self.local_root)
        return values

    # ------------------------------------------------------------------ inputs
    def _task_inputs(self, task_name: str, task: dict, done: dict[str, TaskRun]) -> dict[str, list[Artifact]]:
        inputs = {}
        for key, spec in task.get("inputs", {}).get("artifacts", {}).items():
            if "taskOutputArtifact" not in spec:
                raise SpecError(f"{task_name}.{key}: unsupported artifact source {sorted(spec)}")
            producer, out_key = spec["taskOutputArtifact"]["producerTask"], spec["taskOutputArtifact"][
                "outputArtifactKey"]
            run = done.get(producer)
            if run is None or run.state not in ("COMPLETE", "CACHED"):
                raise SpecError(f"{task_name} reads {producer}.{out_key}, but {producer} did not run "
                                f"({run.state if run else 'not started'})")
            if out_key not in run.outputs:
                raise SpecError(f"missing input artifact: {task_name}.{key} reads {producer}.{out_key}, which "
                                f"{producer} does not produce (its outputs: {', '.join(sorted(run.outputs))})")
            inputs[key] = run.outputs[out_key]
        return inputs

    @staticmethod
    def _check_inputs_exist(task_name: str, inputs: dict[str, list[Artifact]]) -> None:
        for key, artifacts in inputs.items():
            for artifact in artifacts:
                if not os.path.exists(artifact.uri):
                    raise SpecError(f"missing input artifact: {task_name}.{key} is {artifact.name} "
                                    f"({artifact.schema_title}, from {artifact.producer}), but its URI "
                                    f"{artifact.uri} does not exist")

    # ------------------------------------------------------------------ data
    def _feed_synthetic_data(self, params: dict[str, Any]) -> None:
        """Compiled without --data (``input_base`` = ``<pipeline_root>/data``) and that folder empty: the synthetic
        log goes there, as ``gru4rec pipeline run`` does without --data."""
        input_base = params.get("input_base")
        if input_base != localize(self.remote_root + "/data", self.local_root):
            return
        if os.path.isdir(input_base) and any(not n.startswith(".") for n in os.listdir(input_base)):
            return
        from tfx_pipeline import cli, runners  # pylint: disable=g-import-not-at-top
        layout = runners.LocalLayout.create(os.path.join(self.local_root, STATE_DIR), self.pipeline_name)
        source = cli.ensure_synthetic_data(layout, *self.synthetic)
        os.makedirs(input_base, exist_ok=True)
        shutil.copy2(source, os.path.join(input_base, cli.SYNTHETIC_FILE))
        self.log(f"v2_local: no data under {input_base}: copied the built-in synthetic click log "
                 f"({self.synthetic[0]} sessions, {self.synthetic[1]} items) there")

    # ------------------------------------------------------------------ containers
    def _command(self, container: dict, executor_input: dict, task_name: str) -> list[str]:
        argv = list(container.get("command", [])) + list(container.get("args", []))
        out = []
        for arg in argv:
            if arg == _EXECUTOR_INPUT:
                arg = json.dumps(executor_input)
            elif "{{$" in arg:
                raise SpecError(f"{task_name}: unsupported placeholder in the container args: {arg!r}")
            out.append(arg)
        if not out or out[0] not in ("python", "python3"):
            raise SpecError(f"{task_name}: the container command {argv[:3]} does not start Python")
        return [sys.executable] + out[1:]

    def _launch(self, argv: list[str], log_path: str, task_name: str, what: str) -> None:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="v2_local-") as workdir, \
                open(log_path, "ab") as log_file:
            code = subprocess.call(argv, cwd=workdir, env=container_env(), stdout=log_file, stderr=subprocess.STDOUT)
        if code != 0:
            raise TaskFailed(task_name, f"{what} exited with status {code} (full output: {log_path})",
                             _tail(log_path, LOG_TAIL_LINES))

    @staticmethod
    def _read_output_file(path: str, task_name: str) -> dict:
        if not os.path.exists(path):
            return {}
        with open(path, encoding="utf-8") as handle:
            try:
                return json.load(handle)
            except json.JSONDecodeError as err:
                raise SpecError(f"{task_name}: its executor output file {path} is not JSON ({err})") from None

    def _cache_key(self, task_name: str, component: dict, container: dict, inputs, params) -> str:
        key = {
            "inputArtifactNames": {k: [a.name for a in v] for k, v in sorted(inputs.items())},
            "inputParameterValues": params,
            "outputArtifactsSpec": {k: d["artifactType"] for k, d in sorted(
                component.get("outputDefinitions", {}).get("artifacts", {}).items())},
            "containerSpec": {"image": container.get("image"), "cmdArgs": container.get("command", []) + container.get(
                "args", [])},
            "task": task_name,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def _run_container(self, task_name: str, task: dict, component: dict, container: dict,
                       inputs: dict[str, list[Artifact]], params: dict[str, Any]) -> TaskRun:
        started = time.perf_counter()
        execution = self.store.new_name("executions").rsplit("/", 1)[1]
        task_root = os.path.join(self.pipeline_root, f"{self.pipeline_name}-{self.run_id}", f"{task_name}_{execution}")
        outputs = {}
        for key, definition in sorted(component.get("outputDefinitions", {}).get("artifacts", {}).items()):
            outputs[key] = [Artifact(name=self.store.new_name(), schema=definition["artifactType"]["instanceSchema"],
                                     uri=os.path.join(task_root, key), metadata={}, producer=task_name,
                                     run_id=self.run_id, create_time=time.time())]
        output_file = os.path.join(task_root, "executor_output.json")
        executor_input = {
            "inputs": {"artifacts": {k: {"artifacts": [a.runtime_artifact() for a in v]} for k, v in inputs.items()},
                       "parameterValues": params},
            "outputs": {"artifacts": {k: {"artifacts": [a.runtime_artifact() for a in v]}
                                      for k, v in outputs.items()},
                        "outputFile": output_file},
        }
        log_path = os.path.join(task_root, "container.log")
        effective = dict(params)
        pre_cache = container.get("lifecycle", {}).get("preCacheCheck")
        if pre_cache:
            self._launch(self._command(pre_cache, executor_input, task_name), log_path, task_name,
                         "its preCacheCheck (" + " ".join(pre_cache.get("command", [])[-1:]) + ")")
            updates = self._read_output_file(output_file, task_name).get("parameterValues", {})
            effective.update(updates)
        cache_key = self._cache_key(task_name, component, container, inputs, effective)
        caching = self.enable_cache and task.get("cachingOptions", {}).get("enableCache", False)
        hit = self.store.cached(cache_key) if caching else None
        if hit is not None:
            cached = {k: [self.store.artifacts[n] for n in names] for k, names in hit["outputs"].items()}
            self._record(task_name, "CACHED", cache_key, cached, 0.0, effective)
            return TaskRun(task_name, "CACHED", 0.0, cached)
        self._check_inputs_exist(task_name, inputs)
        try:
            self._launch(self._command(container, executor_input, task_name), log_path, task_name,
                         "its container (" + " ".join(container.get("command", [])[-1:]) + ")")
        except TaskFailed:
            self._record(task_name, "FAILED", cache_key, {}, time.perf_counter() - started, effective)
            raise
        reported = self._read_output_file(output_file, task_name).get("artifacts", {})
        for key, artifacts in outputs.items():
            for i, artifact in enumerate(artifacts):
                entries = reported.get(key, {}).get("artifacts", [])
                if i < len(entries):
                    entry = entries[i]
                    if entry.get("name") and entry["name"] != artifact.name:
                        raise SpecError(f"{task_name}: its executor output names {entry['name']} for {key}, "
                                        f"expected {artifact.name}")
                    artifact.metadata = entry.get("metadata", {})
                    artifact.uri = entry.get("uri") or artifact.uri
                self.store.add(artifact)
        seconds = time.perf_counter() - started
        self._record(task_name, "COMPLETE", cache_key, outputs, seconds, effective)
        return TaskRun(task_name, "COMPLETE", seconds, outputs)

    def _record(self, task_name, state, cache_key, outputs, seconds, parameters) -> None:
        """Records an execution: its parameter values (after the preCacheCheck) and output artifact names."""
        self.store.executions.append({"run_id": self.run_id, "task": task_name, "state": state, "cache_key": cache_key,
                                      "outputs": {k: [a.name for a in v] for k, v in outputs.items()},
                                      "parameters": parameters, "seconds": seconds})
        self.store.save()

    # ------------------------------------------------------------------ the DAG
    def run(self) -> tuple[dict[str, TaskRun], BaseException | None]:
        """Runs every task in order; returns the task runs and the error that stopped the run (or None)."""
        tasks = self.spec["root"]["dag"]["tasks"]
        components = self.spec["components"]
        executors = self.spec["deploymentSpec"]["executors"]
        done: dict[str, TaskRun] = {}
        for task_name in topological_order(tasks):
            task = tasks[task_name]
            component = components[task["componentRef"]["name"]]
            executor = executors[component["executorLabel"]]
            try:
                inputs = self._task_inputs(task_name, task, done)
                condition = task.get("triggerPolicy", {}).get("condition")
                if condition and not evaluate_condition(condition, inputs, task_name):
                    self.log(f"v2_local: {task_name}: skipped (trigger condition {condition} is false)")
                    done[task_name] = TaskRun(task_name, "SKIPPED")
                    continue
                if "resolver" in executor:
                    outputs = {key: resolve_query(query["filter"], inputs, self.store, task_name)
                               for key, query in executor["resolver"].get("outputArtifactQueries", {}).items()}
                    done[task_name] = TaskRun(task_name, "COMPLETE", 0.0, outputs)
                    self.log(f"v2_local: {task_name}: resolved "
                             + ", ".join(f"{k}={[a.name for a in v] or 'nothing'}" for k, v in outputs.items()))
                    continue
                if "container" not in executor:
                    raise SpecError(f"{task_name}: unsupported executor kind {sorted(executor)}")
                params = self._task_parameters(task_name, task)
                if task_name == EXAMPLE_GEN_TASK:
                    self._feed_synthetic_data(params)
                self.log(f"v2_local: {task_name}: starting")
                run = self._run_container(task_name, task, component, executor["container"], inputs, params)
                done[task_name] = run
                self.log(f"v2_local: {task_name}: {run.state} ({run.seconds:.1f} s)")
            except (SpecError, TaskFailed) as err:
                done[task_name] = TaskRun(task_name, "FAILED")
                for rest in tasks:
                    done.setdefault(rest, TaskRun(rest, "NOT RUN"))
                return done, err
        return done, None

    # ------------------------------------------------------------------ summary
    def summary(self, done: dict[str, TaskRun]):
        """The run as a :class:`tfx_pipeline.summary.RunSummary` (the summary of ``gru4rec pipeline run``)."""
        from tfx_pipeline import summary as summary_lib  # pylint: disable=g-import-not-at-top
        from tfx_pipeline.pipeline import NODE_IDS, RESOLVER_ID
        nodes = []
        for node_id in (n for n in NODE_IDS if n != RESOLVER_ID):
            run = done.get(node_id, TaskRun(node_id, "NOT RUN"))
            nodes.append(summary_lib.NodeRun(node_id, run.state, run.seconds,
                                             {k: [mlmd_artifact(a) for a in v] for k, v in run.outputs.items()}))
        pushes = [a for a in self.store.artifacts.values()
                  if a.schema_title == "tfx.PushedModel" and a.metadata.get("pushed") == 1]
        latest = max(pushes, key=lambda a: a.create_time) if pushes else None
        latest_push = {"destination": latest.metadata.get("pushed_destination"),
                       "version": latest.metadata.get("pushed_version")} if latest else None
        return summary_lib.RunSummary(self.pipeline_name, self.run_id, nodes, latest_push)


def mlmd_artifact(artifact: Artifact):
    """An ML Metadata ``Artifact`` proto of a recorded artifact (integral numbers as ints), for the summary."""
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
    out = metadata_store_pb2.Artifact(uri=artifact.uri, name=artifact.name, type=artifact.schema_title.split(".")[-1])
    for key, value in artifact.metadata.items():
        if isinstance(value, bool):
            out.custom_properties[key].int_value = int(value)
        elif isinstance(value, (int, float)):
            if float(value).is_integer():
                out.custom_properties[key].int_value = int(value)
            else:
                out.custom_properties[key].double_value = float(value)
        elif isinstance(value, str):
            out.custom_properties[key].string_value = value
    return out


def _progress(line: str) -> None:
    """A progress line on stderr (the summary goes to stdout), as ``gru4rec pipeline run`` logs its progress."""
    print(line, file=sys.stderr, flush=True)


def _typed(name: str, text: str, kind: str):
    try:
        if kind == "NUMBER_INTEGER":
            return int(text)
        if kind == "NUMBER_DOUBLE":
            return float(text)
        if kind == "BOOLEAN":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
    except ValueError:
        raise SpecError(f"runtime parameter {name}={text!r} is not a valid {kind}") from None
    return text


def _tail(path: str, lines: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return "".join(handle.readlines()[-lines:]).rstrip()


# ---------------------------------------------------------------------------------------------------- command
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tfx_pipeline.v2_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="the PipelineJob JSON written by `gru4rec pipeline compile`")
    parser.add_argument("--local_root", required=True, help="every gs://BUCKET/PATH maps to LOCAL_ROOT/BUCKET/PATH")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="a runtime parameter of the pipeline (repeat for several)")
    parser.add_argument("--no_cache", action="store_true", help="run every task, ignoring earlier outputs")
    parser.add_argument("--synthetic_sessions", type=int, default=20000,
                        help="sessions of the synthetic log fed to a spec compiled without --data")
    parser.add_argument("--synthetic_items", type=int, default=1000, help="items of that synthetic log")
    return parser.parse_args(list(argv))


@dataclasses.dataclass
class RunResult:
    """One run of a spec: the summary (as ``gru4rec pipeline run`` prints it), the task runs, the stopping error."""

    summary: Any  # tfx_pipeline.summary.RunSummary
    tasks: dict[str, TaskRun]
    error: BaseException | None
    seconds: float

    def format(self) -> str:
        return self.summary.format() + f"\nwall time: {self.seconds:.1f} s"


def run_spec(spec_path: str, local_root: str, parameters: dict[str, str] | None = None, **options) -> RunResult:
    """Loads, checks and runs a compiled spec under ``local_root`` (options: see :class:`Driver`).

    Raises :class:`SpecError` when the spec or a parameter is unusable before anything runs; a failure during the
    run is returned as ``RunResult.error`` (:class:`TaskFailed`, or :class:`SpecError` for a missing input).
    """
    started = time.perf_counter()
    driver = Driver(load_spec(spec_path), local_root, parameters, **options)
    done, error = driver.run()
    return RunResult(driver.summary(done), done, error, time.perf_counter() - started)


def main(argv: Sequence[str] = ()) -> int:
    """Runs the spec; prints the summary; returns the exit status (0 ok, 1 failed)."""
    args = parse_args(argv)
    try:
        parameters = {}
        for item in args.parameter:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise SpecError(f"--parameter {item!r} must look like NAME=VALUE")
            parameters[name] = value
        result = run_spec(args.spec, args.local_root, parameters, enable_cache=not args.no_cache,
                          synthetic_sessions=args.synthetic_sessions, synthetic_items=args.synthetic_items)
    except SpecError as err:
        print(f"v2_local: error: {err}", file=sys.stderr)
        return 1
    print(result.format(), flush=True)
    if result.error is not None:
        print(f"v2_local: error: {result.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
