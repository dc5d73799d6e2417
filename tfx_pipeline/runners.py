"""Running the pipeline locally (LocalDagRunner + sqlite MLMD) and compiling it for Kubeflow Pipelines / Vertex AI.

Local layout (``work_dir`` defaults to ``./gru4rec_work``, or ``$GRU4REC_WORK_DIR``)::

    <work_dir>/data/synthetic/clicks.tsv     the built-in synthetic click log (written once)
    <work_dir>/inputs/<hash>/                links to several --data files, read as one log
    <work_dir>/pipelines/<pipeline_name>/    pipeline root: every component's artifacts
    <work_dir>/metadata/<pipeline_name>.sqlite   the ML Metadata store (lineage, cache, blessings)
    <work_dir>/serving/<model_name>/<version>/   pushed SavedModels (TF Serving's model base path)

Example::

    layout = LocalLayout.create("gru4rec_work", "gru4rec")
    pipeline = create_pipeline(..., metadata_connection_config=sqlite_config(layout.metadata_path))
    run_local(pipeline)
    compile_kubeflow_v2(pipeline, "pipeline.json", image="europe-docker.pkg.dev/p/r/gru4rec-tfx:0.1.0")
"""
import dataclasses
import hashlib
import json
import os

from tfx import v1 as tfx

from tfx_pipeline import freed_memory

DEFAULT_WORK_DIR = "gru4rec_work"
WORK_DIR_ENV = "GRU4REC_WORK_DIR"
DEFAULT_IMAGE = "gru4rec-tfx:latest"
# The KFP pipeline-spec schema of the compiled spec. 2.1.0: typed parameters (``parameterType``) passed to the
# containers as ``parameterValues``, with the component's inputs spec on the command line so that TFX's
# entrypoint restores integer types. The Kubeflow Pipelines v2 backend checks parameters by their `parameterType`
# (schema 2.1; the 2.0 `type` field leaves it unspecified); Vertex accepts both schemas.
PIPELINE_SPEC_SCHEMA = "2.1.0"
# Tasks compiled without caching. The Pusher's outcome depends on the serving root, which no cache key sees: a
# cached Pusher would leave a wiped serving root empty. Its executor is idempotent (it copies nothing when a
# version already holds the model), so running it on every run costs one container start and never a duplicate.
# (Local runs keep it cached: `gru4rec pipeline run` restores the served model itself, `run_guard.ensure_served`.)
UNCACHED_TASKS = ("Pusher",)
# The Beam options of a local run when none are given. The Beam components of this pipeline pass whole Arrow batches
# between stages; Beam's DirectRunner picks the FnApiRunner, which encodes every element between fused stages,
# while its BundleBasedDirectRunner hands the objects over in memory. Same files (the parity tests run both); at 5M
# events SessionTensors took 8.6 s instead of 12.0 s and 1.80 GB instead of 1.93 GB, ClickLogExampleGen's Beam job
# 4.0 s instead of 4.5 s (issue 27). Any --beam_pipeline_args replace it (a runner, workers, Dataflow).
LOCAL_BEAM_ARGS = ("--runner=BundleBasedDirectRunner",)


def default_work_dir() -> str:
    return os.path.abspath(os.environ.get(WORK_DIR_ENV) or DEFAULT_WORK_DIR)


@dataclasses.dataclass(frozen=True)
class LocalLayout:
    """The directories of a local run (see the module docstring)."""

    work_dir: str
    pipeline_root: str
    metadata_path: str
    serving_root: str

    @classmethod
    def create(cls, work_dir: str | None, pipeline_name: str, pipeline_root: str | None = None,
               metadata_path: str | None = None, serving_root: str | None = None) -> "LocalLayout":
        work = os.path.abspath(work_dir) if work_dir else default_work_dir()
        return cls(
            work_dir=work,
            pipeline_root=pipeline_root or os.path.join(work, "pipelines", pipeline_name),
            metadata_path=os.path.abspath(metadata_path or os.path.join(work, "metadata", f"{pipeline_name}.sqlite")),
            serving_root=serving_root or os.path.join(work, "serving"),
        )

    def synthetic_dir(self) -> str:
        return os.path.join(self.work_dir, "data", "synthetic")

    def inputs_dir(self, paths) -> str:
        """A directory for links to several input files, named after their absolute paths."""
        digest = hashlib.sha256(json.dumps(sorted(os.path.abspath(p) for p in paths)).encode()).hexdigest()[:12]
        return os.path.join(self.work_dir, "inputs", digest)


def sqlite_config(metadata_path: str):
    """An MLMD connection config for a sqlite file (its directory is created)."""
    os.makedirs(os.path.dirname(os.path.abspath(metadata_path)), exist_ok=True)
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)


def run_local(pipeline: tfx.dsl.Pipeline) -> None:
    """Runs ``pipeline`` in this process, component after component (raises when a component fails).

    The libraries loaded by then are frozen for the garbage collector first (:func:`tfx_pipeline.freed_memory.
    freeze_loaded_objects`): the memory release after each component then walks only what the run created.
    """
    freed_memory.freeze_loaded_objects()
    tfx.orchestration.LocalDagRunner().run(pipeline)


def compile_kubeflow_v2(pipeline: tfx.dsl.Pipeline, output_path: str, image: str = DEFAULT_IMAGE) -> dict:
    """Compiles ``pipeline`` to a Kubeflow Pipelines v2 / Vertex AI pipeline spec JSON; returns the parsed spec.

    Nothing runs and nothing is uploaded: the Trainer is referenced by ``run_fn`` (no module-file wheel), so the
    compile needs no cloud access. The tasks of :data:`UNCACHED_TASKS` (the Pusher) are compiled without caching.
    Submit the file with ``google.cloud.aiplatform.PipelineJob(template_path=...)`` or the KFP client.
    """
    output_path = os.path.abspath(output_path)
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=PIPELINE_SPEC_SCHEMA == "2.1.0"),
        output_dir=os.path.dirname(output_path),
        output_filename=os.path.basename(output_path),
    )
    runner.run(pipeline, write_out=True)
    with open(output_path, encoding="utf-8") as handle:
        job = json.load(handle)
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    for name in UNCACHED_TASKS:
        tasks[name].pop("cachingOptions", None)  # enableCache false (the proto default)
    tmp = output_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(job, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, output_path)
    return job
