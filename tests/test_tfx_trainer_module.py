"""The TFX Trainer's run_fn: a retried executor (same URIs, as on Vertex/Kubeflow) resumes from its checkpoint."""
import os
import types

import numpy as np
import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from gru4rec_tf.model import model_dir
from gru4rec_tf.data import synthetic
from gru4rec_tf.train import routine
from gru4rec_tf.preprocessing.options import PreprocessOptions
from gru4rec_tf.preprocessing.pipeline import build_and_run
from tfx_pipeline import artifacts, options, trainer_module

PARAMS = "loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=16,learning_rate=0.1,n_sample=32,momentum=0.2"


@pytest.fixture(scope="module")
def tensors_uri(tmp_path_factory):
    """A SessionTensors-like artifact: Split-train/ and Split-test/ TFRecords and vocab.tsv."""
    root = tmp_path_factory.mktemp("trainer_module")
    log = root / "clicks.tsv"
    synthetic.generate_sessions(n_items=120, n_sessions=500, seed=3, span_days=4.0).to_csv(
        log, sep="\t", index=False, float_format="%.3f")
    out = root / "tensors"
    build_and_run(PreprocessOptions(input=str(log), output=str(out), min_item_support=1))
    for split in ("train", "test"):
        os.symlink(out / split, out / f"Split-{split}")
    return str(out)


def _fn_args(tensors_uri, root, **training_options):
    config = options.TrainingOptions(params=PARAMS, n_epochs=3, seed=2, steps_per_call=4, max_k=10,
                                     checkpoint_every_s=0.0, **training_options).to_custom_config()
    return types.SimpleNamespace(
        train_files=[os.path.join(tensors_uri, "Split-train", "*")], custom_config=config, base_model=None,
        serving_model_dir=str(root / "model" / "Format-Serving"), model_run_dir=str(root / "model_run"))


def _library_weights(root):
    saved = model_dir.load_model(artifacts.library_model_dir(str(root / "model")))
    return [v.numpy() for v in saved.model.trainable_variables]


@pytest.mark.slow
def test_a_retried_trainer_resumes_to_the_uninterrupted_model(tensors_uri, tmp_path, monkeypatch):
    trainer_module.run_fn(_fn_args(tensors_uri, tmp_path / "reference"))
    reference = _library_weights(tmp_path / "reference")

    original, seen = routine._EpochLoop._after_chunk, []  # pylint: disable=protected-access

    def preempted(self, progress):
        original(self, progress)
        seen.append(progress.next_chunk)
        if len(seen) == 7:  # the executor is pre-empted after its 7th chunk (its checkpoint is written)
            raise KeyboardInterrupt("pre-empted")

    monkeypatch.setattr(routine._EpochLoop, "_after_chunk", preempted)  # pylint: disable=protected-access
    args = _fn_args(tensors_uri, tmp_path / "retried")
    with pytest.raises(KeyboardInterrupt):
        trainer_module.run_fn(args)
    assert not os.path.exists(artifacts.library_model_dir(str(tmp_path / "retried" / "model")))
    assert os.path.isfile(os.path.join(args.model_run_dir, trainer_module.CHECKPOINT_DIR, "checkpoint.npz"))
    monkeypatch.undo()
    trainer_module.run_fn(args)  # the retry: same URIs
    for a, b in zip(reference, _library_weights(tmp_path / "retried"), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_validation_days_hold_out_the_end_of_the_training_split(tensors_uri, tmp_path):
    import json  # pylint: disable=g-import-not-at-top
    args = _fn_args(tensors_uri, tmp_path, valid_days=1.0, patience=1, early_stopping_metric="recall@20")
    trainer_module.run_fn(args)
    with open(os.path.join(args.model_run_dir, trainer_module.TRAINING_FILE), encoding="utf-8") as handle:
        summary = json.load(handle)
    assert 1 <= summary["best_epoch"] <= summary["epochs_run"] == len(summary["valid_history"]) <= 3
    assert any(name.startswith("events.") for name in os.listdir(args.model_run_dir))  # TensorBoard


@pytest.mark.slow
def test_device_sampling_reaches_the_training_routine(tensors_uri, tmp_path, monkeypatch):
    """``TrainingOptions.device_sampling`` (None: when a GPU is visible) is what ``run_fn`` trains with, and what the
    saved model's run identity records (a re-run on the same data recognises its own model)."""
    requested = []
    original = routine.train

    def spy(train_data, vocab, params, options, **kwargs):
        requested.append(options.device_sampling)
        return original(train_data, vocab, params, options, **kwargs)

    monkeypatch.setattr(routine, "train", spy)
    trainer_module.run_fn(_fn_args(tensors_uri, tmp_path / "device", device_sampling=True))
    trainer_module.run_fn(_fn_args(tensors_uri, tmp_path / "default"))
    assert requested == [True, None]
    identities = [model_dir.load_model(artifacts.library_model_dir(str(tmp_path / run / "model"))).training["identity"]
                  for run in ("device", "default")]
    assert identities[0]["device_sampling"] is True
    # the default: inside the loop only where a GPU is visible (the host path on CI's machines)
    assert identities[1].get("device_sampling", False) is routine.use_device_sampling(None)
