"""The Kubeflow V2 / Vertex AI compile of the pipeline (issue 5): valid JSON, expected tasks, importable executors.

Compiling runs nothing and needs no cloud access (the Trainer is referenced by ``run_fn``); a few seconds.
"""
import importlib
import json

import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from tfx_pipeline import options, pipeline, runners

IMAGE = "europe-docker.pkg.dev/project/repo/gru4rec-tfx:0.1.0"
ROOT = "gs://bucket/gru4rec"
EXPECTED_TASKS = {
    "ClickLogExampleGen", "SessionTensors", "Trainer", "SessionEvaluator", "Pusher",
    # the LatestBlessedModelStrategy resolver compiles to two metadata-query tasks
    "latest_blessed_model_resolver-model-blessing-resolver", "latest_blessed_model_resolver-model-resolver",
}


def import_path(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=g-import-not-at-top
    gpu = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    gpu.accelerator.type, gpu.accelerator.count = "NVIDIA_TESLA_T4", 1
    built = pipeline.create_pipeline(
        "gru4rec", ROOT, f"{ROOT}/data", f"{ROOT}/serving",
        training=options.TrainingOptions(n_epochs=3), trainer_resources=gpu)
    path = tmp_path_factory.mktemp("compile") / "pipeline.json"
    runners.compile_kubeflow_v2(built, str(path), image=IMAGE)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)  # valid JSON


def test_spec_has_the_expected_tasks(spec):
    dag = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    assert set(dag) == EXPECTED_TASKS
    assert dag["SessionTensors"]["dependentTasks"] == ["ClickLogExampleGen"]
    assert set(dag["SessionEvaluator"]["dependentTasks"]) == {
        "SessionTensors", "Trainer", "latest_blessed_model_resolver-model-resolver"}
    assert spec["pipelineSpec"]["schemaVersion"] == runners.PIPELINE_SPEC_SCHEMA
    assert "triggerPolicy" not in dag["Pusher"]  # its executor decides (idempotent push of the blessed model)
    assert spec["runtimeConfig"]["gcsOutputDirectory"] == ROOT


def test_pusher_is_compiled_without_caching(spec):
    """A cached Pusher would leave a wiped serving root empty on Vertex; its executor is idempotent instead."""
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    assert "cachingOptions" not in tasks["Pusher"]
    assert all(task["cachingOptions"] == {"enableCache": True} for name, task in tasks.items()
               if name != "Pusher" and "resolver" not in name)


def test_custom_artifact_types_are_importable_by_their_schema_title(spec):
    """TFX's container entrypoint imports a non-standard artifact class by the schema title of its type."""
    import yaml  # pylint: disable=g-import-not-at-top
    for component in spec["pipelineSpec"]["components"].values():
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            title = yaml.safe_load(definition["artifactType"]["instanceSchema"])["title"]
            if not title.startswith("tfx."):
                assert callable(import_path(title)), (key, title)


def test_every_executor_class_can_be_imported(spec):
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    containers = {name: e["container"] for name, e in executors.items() if "container" in e}
    assert len(containers) == 5
    for name, container in containers.items():
        assert container["image"] == IMAGE, name
        class_path = container["args"][container["args"].index("--executor_class_path") + 1]
        assert callable(import_path(class_path)), class_path
    pusher_args = containers["Pusher_executor"]["args"]
    assert pusher_args[pusher_args.index("--executor_class_path") + 1] == "tfx_pipeline.components.pusher.Executor"
    assert containers["Trainer_executor"]["resources"]["accelerator"] == {"count": "1", "type": "NVIDIA_TESLA_T4"}


def test_trainer_run_fn_and_hyperparameters_are_referenced_by_name(spec):
    params = spec["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    run_fn = params["run_fn"]["runtimeValue"]["constant"]
    assert run_fn == pipeline.RUN_FN and callable(import_path(run_fn))
    config = json.loads(params["custom_config"]["runtimeValue"]["constant"])
    assert "loss=bpr-max" in config["params"] and "n_epochs=3" in config["params"]
    assert "module_file" not in params  # nothing to upload at compile time
