"""The driver: plays the Vertex backend's part for one compiled spec, task by task, on one machine.

For each task in dependency order it reads the task's inputs from the tasks before it, evaluates the trigger
condition (:mod:`.cel`), answers a resolver task's queries from the store (:mod:`.resolver`), or builds a container
task's ``ExecutorInput``, runs its preCacheCheck, looks its cache key up in the store and runs its own command
(:mod:`.containers`), then records what the task reported (:mod:`.artifact_store`).

Example::

    from tfx_pipeline.v2_local import driver

    result = driver.run_spec("pipeline.json", "/tmp/vertex", {"data_root": "gs://bucket/clicks"})
    print(result.format())  # the summary of `gru4rec pipeline run`, then the wall time
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import sys
import time
from typing import Any

from tfx_pipeline.v2_local import containers
from tfx_pipeline.v2_local.artifact_store import STATE_DIR, Artifact, Store, mlmd_artifact
from tfx_pipeline.v2_local.cel import evaluate_condition
from tfx_pipeline.v2_local.errors import SpecError, TaskFailed
from tfx_pipeline.v2_local.resolver import resolve_query
from tfx_pipeline.v2_local.spec_checks import load_spec, topological_order

EXAMPLE_GEN_TASK = "ClickLogExampleGen"


def localize(value: Any, local_root: str) -> Any:
    """Every ``gs://BUCKET/PATH`` inside ``value`` (a string, possibly JSON) -> ``<local_root>/BUCKET/PATH``."""
    if isinstance(value, str):
        return value.replace("gs://", local_root.rstrip("/") + "/")
    return value


@dataclasses.dataclass
class TaskRun:
    """What one task did in a run, with its output artifacts.

    Example: ``TaskRun("Pusher", "SKIPPED")``; ``TaskRun("Trainer", "COMPLETE", 42.0, {"model": [artifact]})``.
    """

    task: str
    state: str  # COMPLETE, CACHED, SKIPPED, FAILED, NOT RUN
    seconds: float = 0.0
    outputs: dict[str, list[Artifact]] = dataclasses.field(default_factory=dict)


class Driver:
    """Runs one compiled spec under ``local_root`` (see :mod:`tfx_pipeline.v2_local`).

    Example::

        driver = Driver(load_spec("pipeline.json"), "/tmp/vertex", {"data_root": "gs://bucket/clicks"})
        done, error = driver.run()  # error: None, or the SpecError / TaskFailed that stopped the run
        print(driver.summary(done).format())
    """

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

    def _output_artifacts(self, task_name: str, component: dict, task_root: str) -> dict[str, list[Artifact]]:
        """The task's output artifacts, pre-created (names, URIs under its task root) as the backend does."""
        outputs = {}
        for key, definition in sorted(component.get("outputDefinitions", {}).get("artifacts", {}).items()):
            outputs[key] = [Artifact(name=self.store.new_name(), schema=definition["artifactType"]["instanceSchema"],
                                     uri=os.path.join(task_root, key), metadata={}, producer=task_name,
                                     run_id=self.run_id, create_time=time.time())]
        return outputs

    @staticmethod
    def _executor_input(inputs: dict[str, list[Artifact]], params: dict[str, Any],
                        outputs: dict[str, list[Artifact]], output_file: str) -> dict:
        """The ``ExecutorInput`` JSON the KFP v2 backend hands a container task."""
        return {
            "inputs": {"artifacts": {k: {"artifacts": [a.runtime_artifact() for a in v]} for k, v in inputs.items()},
                       "parameterValues": params},
            "outputs": {"artifacts": {k: {"artifacts": [a.runtime_artifact() for a in v]}
                                      for k, v in outputs.items()},
                        "outputFile": output_file},
        }

    def _pre_cache_check(self, task_name: str, container: dict, executor_input: dict, log_path: str,
                         output_file: str, params: dict[str, Any]) -> dict[str, Any]:
        """Runs the container's ``lifecycle.preCacheCheck`` if it has one; the parameter values it leaves."""
        effective = dict(params)
        pre_cache = container.get("lifecycle", {}).get("preCacheCheck")
        if pre_cache:
            containers.launch(containers.container_command(pre_cache, executor_input, task_name), log_path,
                              task_name, "its preCacheCheck (" + " ".join(pre_cache.get("command", [])[-1:]) + ")")
            effective.update(containers.read_output_file(output_file, task_name).get("parameterValues", {}))
        return effective

    def _record_reported(self, task_name: str, outputs: dict[str, list[Artifact]], output_file: str) -> None:
        """Takes each output artifact's metadata (and URI) from the executor output file, and stores it."""
        reported = containers.read_output_file(output_file, task_name).get("artifacts", {})
        for key, artifacts in outputs.items():
            entries = reported.get(key, {}).get("artifacts", [])
            for i, artifact in enumerate(artifacts):
                if i < len(entries):
                    entry = entries[i]
                    if entry.get("name") and entry["name"] != artifact.name:
                        raise SpecError(f"{task_name}: its executor output names {entry['name']} for {key}, "
                                        f"expected {artifact.name}")
                    artifact.metadata = entry.get("metadata", {})
                    artifact.uri = entry.get("uri") or artifact.uri
                self.store.add(artifact)

    def _run_container(self, task_name: str, task: dict, component: dict, container: dict,
                       inputs: dict[str, list[Artifact]], params: dict[str, Any]) -> TaskRun:
        started = time.perf_counter()
        execution = self.store.new_name("executions").rsplit("/", 1)[1]
        task_root = os.path.join(self.pipeline_root, f"{self.pipeline_name}-{self.run_id}", f"{task_name}_{execution}")
        outputs = self._output_artifacts(task_name, component, task_root)
        output_file = os.path.join(task_root, "executor_output.json")
        executor_input = self._executor_input(inputs, params, outputs, output_file)
        log_path = os.path.join(task_root, "container.log")
        effective = self._pre_cache_check(task_name, container, executor_input, log_path, output_file, params)
        cache_key = self._cache_key(task_name, component, container, inputs, effective)
        caching = self.enable_cache and task.get("cachingOptions", {}).get("enableCache", False)
        hit = self.store.cached(cache_key) if caching else None
        if hit is not None:
            cached = {k: [self.store.artifacts[n] for n in names] for k, names in hit["outputs"].items()}
            self._record(task_name, "CACHED", cache_key, cached, 0.0, effective)
            return TaskRun(task_name, "CACHED", 0.0, cached)
        self._check_inputs_exist(task_name, inputs)
        try:
            containers.launch(containers.container_command(container, executor_input, task_name), log_path,
                              task_name, "its container (" + " ".join(container.get("command", [])[-1:]) + ")")
        except TaskFailed:
            self._record(task_name, "FAILED", cache_key, {}, time.perf_counter() - started, effective)
            raise
        self._record_reported(task_name, outputs, output_file)
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
        done: dict[str, TaskRun] = {}
        for task_name in topological_order(tasks):
            try:
                done[task_name] = self._run_task(task_name, tasks[task_name], done)
            except (SpecError, TaskFailed) as err:
                done[task_name] = TaskRun(task_name, "FAILED")
                for rest in tasks:
                    done.setdefault(rest, TaskRun(rest, "NOT RUN"))
                return done, err
        return done, None

    def _run_task(self, task_name: str, task: dict, done: dict[str, TaskRun]) -> TaskRun:
        """One task: skipped by its trigger condition, a resolver's queries, or a container run."""
        component = self.spec["components"][task["componentRef"]["name"]]
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        skipped = [spec["taskOutputArtifact"]["producerTask"] for spec in task.get("inputs", {}).get(
            "artifacts", {}).values() if "taskOutputArtifact" in spec and getattr(
            done.get(spec["taskOutputArtifact"]["producerTask"]), "state", None) == "SKIPPED"]
        if skipped:  # as on Vertex: a task reading the output of a skipped task (a false Cond) is skipped too
            self.log(f"v2_local: {task_name}: skipped (its input's producer {skipped[0]} was skipped)")
            return TaskRun(task_name, "SKIPPED")
        inputs = self._task_inputs(task_name, task, done)
        condition = task.get("triggerPolicy", {}).get("condition")
        if condition and not evaluate_condition(condition, inputs, task_name):
            self.log(f"v2_local: {task_name}: skipped (trigger condition {condition} is false)")
            return TaskRun(task_name, "SKIPPED")
        if "resolver" in executor:
            return self._resolve(task_name, executor["resolver"], inputs)
        if "container" not in executor:
            raise SpecError(f"{task_name}: unsupported executor kind {sorted(executor)}")
        params = self._task_parameters(task_name, task)
        if task_name == EXAMPLE_GEN_TASK:
            self._feed_synthetic_data(params)
        self.log(f"v2_local: {task_name}: starting")
        run = self._run_container(task_name, task, component, executor["container"], inputs, params)
        self.log(f"v2_local: {task_name}: {run.state} ({run.seconds:.1f} s)")
        return run

    def _resolve(self, task_name: str, resolver: dict, inputs: dict[str, list[Artifact]]) -> TaskRun:
        """A resolver task: each output is the newest recorded artifact its query matches (or nothing)."""
        outputs = {key: resolve_query(query["filter"], inputs, self.store, task_name)
                   for key, query in resolver.get("outputArtifactQueries", {}).items()}
        self.log(f"v2_local: {task_name}: resolved "
                 + ", ".join(f"{k}={[a.name for a in v] or 'nothing'}" for k, v in outputs.items()))
        return TaskRun(task_name, "COMPLETE", 0.0, outputs)

    # ------------------------------------------------------------------ summary
    def summary(self, done: dict[str, TaskRun]):
        """The run as a :class:`tfx_pipeline.summary.RunSummary` (the summary of ``gru4rec pipeline run``)."""
        from tfx_pipeline import summary as summary_lib  # pylint: disable=g-import-not-at-top
        from tfx_pipeline.pipeline import NODE_IDS, RECOMMENDER_ID, RESOLVER_ID, VALIDATION_IDS
        nodes = []
        tasks = self.spec["root"]["dag"]["tasks"]
        order = [n for n in NODE_IDS if n != RESOLVER_ID] + ([RECOMMENDER_ID] if RECOMMENDER_ID in tasks else [])
        order[1:1] = [n for n in VALIDATION_IDS if n in tasks]
        for node_id in order:
            run = done.get(node_id, TaskRun(node_id, "NOT RUN"))
            nodes.append(summary_lib.NodeRun(node_id, run.state, run.seconds,
                                             {k: [mlmd_artifact(a) for a in v] for k, v in run.outputs.items()}))
        pushes = [a for a in self.store.artifacts.values()
                  if a.schema_title == "tfx.PushedModel" and a.metadata.get("pushed") == 1]
        latest = max(pushes, key=lambda a: a.create_time) if pushes else None
        latest_push = {"destination": latest.metadata.get("pushed_destination"),
                       "version": latest.metadata.get("pushed_version")} if latest else None
        return summary_lib.RunSummary(self.pipeline_name, self.run_id, nodes, latest_push)


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


# ------------------------------------------------------------------------------------------------------ a run
@dataclasses.dataclass
class RunResult:
    """One run of a spec: the summary (as ``gru4rec pipeline run`` prints it), the task runs, the stopping error.

    Example::

        result = run_spec("pipeline.json", "/tmp/vertex")
        print(result.format())
        failed = result.error is not None
    """

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
