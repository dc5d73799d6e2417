"""The pipeline's optional standard TFX Tuner (``--tune_trials N``): compile structure, the Trainer's reading of
``best_hyperparameters``, and a tiny end-to-end run (2 trials of 1 epoch, 8-16 units) with a cached re-run."""
import glob
import json
import os
from pathlib import Path

import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from gru4rec_tf.data import synthetic
from gru4rec_tf.params import GRU4RecParams
from gru4rec_tf.tune.search_space import EPOCHS_KEY, FIXED_KEY
from tfx_pipeline import blessing, options, pipeline, runners, summary, tuner_module
from tfx_pipeline.tuning_options import TuningOptions

PARAMS = "loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=32,learning_rate=0.1,n_sample=64,n_epochs=1"
TUNING = TuningOptions(trials=2, epochs=1, space={"layers": {"low": 8, "high": 16, "step": 8},
                                                  "learning_rate": {"low": 0.05, "high": 0.2, "step": 0.05}})


def test_tuning_options_validate():
    assert not TuningOptions().enabled and TUNING.enabled
    assert TuningOptions.from_json(TUNING.to_json()) == TUNING
    for bad, fragment in [(dict(trials=-1), "trials"), (dict(objective="ndcg@10"), "recall@K or mrr@K"),
                          (dict(space={"layers": {"low": 9, "high": 2}}), "empty range"),
                          (dict(valid_days=0), "valid_days")]:
        with pytest.raises(ValueError, match=fragment):
            TuningOptions(**bad)


def test_trainer_reads_best_hyperparameters():
    base = GRU4RecParams.from_string(PARAMS)
    assert tuner_module.tuned_params(base, None) is base
    config = {"space": [], "values": {FIXED_KEY: base.to_string(), "layers": 24, "learning_rate": 0.15000000000000002,
                                      EPOCHS_KEY: 2}}
    tuned = tuner_module.tuned_params(base, config)
    assert tuned.layers == (24,) and tuned.learning_rate == 0.15 and tuned.n_epochs == 2
    assert tuned.n_sample == 64 and tuned.loss == "bpr-max"


def test_compiled_spec_has_the_tuner_feeding_the_trainer(tmp_path):
    root = "gs://bucket/gru4rec"
    built = pipeline.create_pipeline("gru4rec", root, f"{root}/data", f"{root}/serving",
                                     training=options.TrainingOptions(params=PARAMS), tuning=TUNING)
    path = tmp_path / "pipeline.json"
    runners.compile_kubeflow_v2(built, str(path), image="image:1")
    tasks = json.loads(path.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]
    assert tasks["Tuner"]["dependentTasks"] == ["SessionTensors"]
    assert "Tuner" in tasks["Trainer"]["dependentTasks"]
    assert "hyperparameters" in tasks["Trainer"]["inputs"]["artifacts"]
    params = tasks["Tuner"]["inputs"]["parameters"]
    assert params["tuner_fn"]["runtimeValue"]["constant"] == tuner_module.TUNER_FN  # spec schema 2.1: typed values
    config = json.loads(params["custom_config"]["runtimeValue"]["constant"])
    assert TuningOptions.from_json(config["tuning"]) == TUNING and "loss=bpr-max" in config["params"]
    without = pipeline.create_pipeline("gru4rec", root, f"{root}/data", f"{root}/serving")
    assert "Tuner" not in [c.id for c in without.components]


def test_a_bad_space_fails_when_the_pipeline_is_built():
    xe = options.TrainingOptions(params="loss=cross-entropy,layers=16,n_sample=64")
    with pytest.raises(ValueError, match="final_act"):
        pipeline.create_pipeline("p", "/tmp/r", "/tmp/d", "/tmp/s", training=xe,
                                 tuning=TuningOptions(trials=1, space={"final_act": {"values": ["elu-1"]}}))


def run_pipeline(work, data_dir):
    layout = runners.LocalLayout.create(str(work), "tune")
    built = pipeline.create_pipeline(
        "tune", layout.pipeline_root, str(data_dir), layout.serving_root,
        sessions=options.SessionOptions(min_item_support=1), training=options.TrainingOptions(params=PARAMS),
        blessing=blessing.BlessingOptions(cutoffs=(20,), thresholds={"recall@20": 0.05}), tuning=TUNING,
        metadata_connection_config=runners.sqlite_config(layout.metadata_path))
    runners.run_local(built)
    return summary.summarize_latest_run(layout.metadata_path, "tune"), layout


@pytest.mark.slow
def test_pipeline_with_tuner_trains_the_best_parameters_and_caches_it(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    synthetic.generate_sessions(n_items=200, n_sessions=1500, seed=0).to_csv(
        data / "clicks.tsv", sep="\t", index=False, float_format="%.3f")
    first, layout = run_pipeline(tmp_path, data)
    states = {n.node_id: n.state for n in first.nodes}
    assert states["Tuner"] == "COMPLETE" and states["Trainer"] == "COMPLETE"
    assert [n.node_id for n in first.nodes][:4] == ["ClickLogExampleGen", "SessionTensors", "Tuner", "Trainer"]
    [best_file] = glob.glob(os.path.join(layout.pipeline_root, "Tuner", "best_hyperparameters", "*",
                                         "best_hyperparameters.txt"))
    values = json.loads(Path(best_file).read_text(encoding="utf-8"))["values"]
    assert values["layers"] in (8, 16) and values[EPOCHS_KEY] == 1
    [training_file] = glob.glob(os.path.join(layout.pipeline_root, "Trainer", "model_run", "*", "training.json"))
    trained = json.loads(Path(training_file).read_text(encoding="utf-8"))["params"]
    tuned = tuner_module.tuned_params(None, {"values": values})
    assert trained == tuned.to_dict()
    again, _ = run_pipeline(tmp_path, data)  # unchanged inputs: the Tuner's result is reused
    assert {n.node_id: n.state for n in again.nodes}["Tuner"] == "CACHED"
