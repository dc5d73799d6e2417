"""A local driver for the compiled Kubeflow V2 / Vertex AI pipeline spec: not a runner, but a way to try a spec
on one machine before submitting it to Vertex AI Pipelines (and the tests' and benchmarks' way to exercise it)::

    gru4rec pipeline compile --output pipeline.json --pipeline_root gs://bucket/gru4rec
    python -m tfx_pipeline.v2_local --spec pipeline.json --local_root /tmp/vertex [--parameter NAME=VALUE ...]

It ends with the same summary as ``gru4rec pipeline run`` and exits with status 1 when a task fails. A spec
compiled without ``--data`` reads ``<pipeline_root>/data``; when that folder is empty the driver puts the built-in
synthetic click log there, as ``gru4rec pipeline run`` does. Every ``gs://BUCKET/PATH`` of the spec (pipeline
root, data root, serving root) becomes ``<local_root>/BUCKET/PATH``.

On Vertex AI Pipelines every container task of the spec is started as ``python -m
tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor --executor_class_path CLASS
--json_serialized_invocation_args <ExecutorInput JSON> ...``, and the backend itself evaluates the resolver tasks
(metadata queries) and the Pusher's trigger condition from the metadata that earlier tasks reported through their
executor output files. This package plays the backend's part, one module per concept:

* :mod:`.spec_checks` -- reads the spec, checks that it is this project's pipeline compiled by the installed TFX,
  and orders the DAG;
* :mod:`.artifact_store` -- records the output artifacts with the metadata each task reported in its executor
  output file, and the executions (a local stand-in for Vertex ML Metadata,
  ``<local_root>/.v2_local/<pipeline>/metadata.json``);
* :mod:`.resolver` -- answers the ``outputArtifactQueries`` of the resolver tasks from that record;
* :mod:`.cel` -- evaluates ``triggerPolicy.condition`` (the CEL subset TFX emits) over a task's resolved inputs;
* :mod:`.containers` -- runs a task's **own command and args** (``{{$}}`` = its ``ExecutorInput``) in a
  subprocess of this Python environment with this checkout's code (the container stand-in); its stdout/stderr go
  to ``<task root>/container.log``;
* :mod:`.driver` -- walks the DAG: builds each container task's ``ExecutorInput`` as the KFP v2 backend does (input
  artifacts with ``name``, ``uri``, ``metadata`` and type schema; ``parameterValues``; pre-created output
  artifacts with URIs under the pipeline root; the ``outputFile``), runs the spec's ``lifecycle.preCacheCheck``
  first when there is one (the file-based ExampleGen driver: span and input fingerprint), and reuses a task's
  earlier outputs when its cache key (input artifact names, parameter values after the preCacheCheck, output
  types, image, command and args: the fields of the KFP backend's cache key) is unchanged;
* :mod:`.cli` -- the command above (``__main__`` runs it); :mod:`.errors` -- :class:`SpecError`, :class:`TaskFailed`.

What this reproduces of the Vertex contract and what it cannot (IAM, GCS consistency, image pulls, Vertex's own
cache service ...) is listed in ``tfx_pipeline/README.md``.

From Python::

    from tfx_pipeline import v2_local

    result = v2_local.run_spec("pipeline.json", "/tmp/vertex", {"data_root": "gs://bucket/clicks"})
    print(result.format())
"""
from tfx_pipeline.v2_local.artifact_store import STATE_DIR, Artifact, Store, mlmd_artifact
from tfx_pipeline.v2_local.cel import evaluate_condition
from tfx_pipeline.v2_local.cli import main, parse_args
from tfx_pipeline.v2_local.containers import CONTAINER_ENV, LOG_TAIL_LINES, container_env
from tfx_pipeline.v2_local.driver import EXAMPLE_GEN_TASK, Driver, RunResult, TaskRun, localize, run_spec
from tfx_pipeline.v2_local.errors import SpecError, TaskFailed
from tfx_pipeline.v2_local.resolver import resolve_query
from tfx_pipeline.v2_local.spec_checks import RESOLVER_TASKS, expected_tasks, load_spec, topological_order

__all__ = [
    "CONTAINER_ENV", "EXAMPLE_GEN_TASK", "LOG_TAIL_LINES", "RESOLVER_TASKS", "STATE_DIR",
    "Artifact", "Driver", "RunResult", "SpecError", "Store", "TaskFailed", "TaskRun",
    "container_env", "evaluate_condition", "expected_tasks", "load_spec", "localize", "main", "mlmd_artifact",
    "parse_args", "resolve_query", "run_spec", "topological_order",
]
