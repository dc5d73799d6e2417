"""The standard TFX Trainer's module: ``run_fn`` trains GRU4Rec with :mod:`gru4rec_tf` and exports it.

Referenced by name (``Trainer(run_fn="tfx_pipeline.trainer_module.run_fn", ...)``) rather than by module file, so
compiling for Kubeflow/Vertex packages nothing and needs no cloud access; the container image has this package.

Hyperparameters come from the component's ``custom_config``, with the official GRU4Rec names
(:class:`tfx_pipeline.options.TrainingOptions`)::

    custom_config={"params": "loss=bpr-max,final_act=elu-0.5,layers=100,batch_size=32,n_epochs=3",
                   "seed": 42, "steps_per_call": 256, "max_k": 100}

What ``run_fn`` writes into the ``Model`` artifact (``<uri>`` = parent of ``fn_args.serving_model_dir``):

* ``<uri>/Format-Serving/`` -- the serving SavedModel of :func:`gru4rec_tf.export.export_saved_model` (top-k over
  original item IDs, ``serving_default`` and ``step`` signatures); the Pusher pushes this directory;
* ``<uri>/gru4rec_model/`` -- the library's model directory (:func:`gru4rec_tf.model_io.save_model`), which the
  SessionEvaluator loads for the full-catalogue evaluation (also of a later run's baseline).

and ``training.json`` (history, parameters, data sizes) into the ``ModelRun`` artifact.
"""
import json
import os
from typing import Callable

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from absl import logging

from tfx_pipeline import remote_paths
from tfx_pipeline import session_data
from tfx_pipeline import tuner_module
from tfx_pipeline.options import TrainingOptions

LIBRARY_MODEL_DIR = "gru4rec_model"
TRAINING_FILE = "training.json"


def library_model_dir(model_uri: str) -> str:
    """Where ``run_fn`` saved the library model inside a ``Model`` artifact."""
    return os.path.join(model_uri, LIBRARY_MODEL_DIR)


def _write(target: str, writer: Callable[[str], object]) -> None:
    with remote_paths.local_target_dir(target) as local:
        writer(local)


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (``fn_args``: :class:`tfx.components.FnArgs`)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from gru4rec_tf import export, model_io, training  # pylint: disable=g-import-not-at-top

    options = TrainingOptions.from_custom_config(fn_args.custom_config)
    params = options.gru4rec_params()
    params = tuner_module.tuned_params(params, getattr(fn_args, "hyperparameters", None))  # a Tuner's result
    tensors_uri = session_data.tensors_uri_from_file_patterns(fn_args.train_files)
    vocab = session_data.load_vocabulary(tensors_uri)
    train = session_data.load_split(tensors_uri, "train", vocab)
    trained = training.train(train, vocab, params, seed=options.seed, steps_per_call=options.steps_per_call)
    model, history = trained.model, trained.history

    model_uri = os.path.dirname(fn_args.serving_model_dir.rstrip("/"))
    _write(library_model_dir(model_uri), lambda d: model_io.save_model(d, model, vocab, seed=options.seed))
    _write(fn_args.serving_model_dir,
           lambda d: export.export_saved_model(model, vocab, d, max_k=options.max_k, overwrite=True))
    summary = {
        "params": params.to_dict(), "seed": options.seed, "n_items": len(vocab),
        "train_events": train.n_events, "train_sessions": train.n_sessions, "train_seconds": trained.train_seconds,
        "epochs": [{"epoch": h.epoch, "loss": h.loss, "events": h.events, "seconds": h.seconds} for h in history],
    }
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, TRAINING_FILE), "w") as handle:
        handle.write(json.dumps(summary, indent=2))
    logging.info("Trainer: %d epoch(s) in %.1f s, final loss %.4f; serving model in %s", len(history),
                 trained.train_seconds, history[-1].loss if history else float("nan"), fn_args.serving_model_dir)
