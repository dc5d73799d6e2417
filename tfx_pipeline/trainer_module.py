"""The standard TFX Trainer's module: ``run_fn`` trains GRU4Rec with :mod:`gru4rec_tf` and exports it.

Referenced by name (``Trainer(run_fn="tfx_pipeline.trainer_module.run_fn", ...)``) rather than by module file, so
compiling for Kubeflow/Vertex packages nothing and needs no cloud access; the container image has this package.

Hyperparameters come from the component's ``custom_config``, with the official GRU4Rec names
(:class:`tfx_pipeline.options.TrainingOptions`)::

    custom_config={"params": "loss=bpr-max,final_act=elu-0.5,layers=100,batch_size=32,n_epochs=3",
                   "seed": 42, "steps_per_call": 256, "max_k": 100}   # other keys: TrainingOptions' defaults

What ``run_fn`` writes into the ``Model`` artifact (``<uri>`` = parent of ``fn_args.serving_model_dir``):

* ``<uri>/Format-Serving/`` -- the serving SavedModel of :func:`~gru4rec_tf.export.saved_model.export_saved_model`
  (top-k over original item IDs, ``serving_default`` and ``step`` signatures); the Pusher pushes this directory;
* ``<uri>/gru4rec_model/`` (:func:`tfx_pipeline.artifacts.library_model_dir`) -- the library's model directory
  (:func:`gru4rec_tf.model.model_dir.save_model`), which the SessionEvaluator loads for the full-catalogue evaluation
  (also of a later run's baseline) and a later Trainer warm-starts from.

and ``training.json`` (history, parameters, data sizes) into the ``ModelRun`` artifact.
"""
import dataclasses
import json
import os
from collections.abc import Callable

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from absl import logging

from tfx_pipeline import artifacts
from tfx_pipeline import remote_paths
from tfx_pipeline import session_data
from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.data.vocabulary import ItemVocabulary
from tfx_pipeline import tuner_module
from tfx_pipeline.freed_memory import freeze_loaded_objects, release_freed_memory
from tfx_pipeline.options import TrainingOptions

TRAINING_FILE = artifacts.TRAINING_FILE
CHECKPOINT_DIR = "checkpoints"  # in the ModelRun artifact: a retried Trainer with the same URIs resumes


def _write(target: str, writer: Callable[[str], object]) -> None:
    with remote_paths.local_target_dir(target) as local:
        writer(local)


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (``fn_args``: :class:`tfx.components.FnArgs`). The memory that training freed goes
    back to the OS when it ends: the evaluator runs next in the same process (local runs)."""
    freeze_loaded_objects()  # so that the releases walk only what training creates
    try:
        _train(fn_args)
    finally:
        release_freed_memory()


def _train(fn_args) -> None:
    from gru4rec_tf.train import routine  # pylint: disable=g-import-not-at-top

    options = TrainingOptions.from_custom_config(fn_args.custom_config)
    params = options.gru4rec_params()
    params = tuner_module.tuned_params(params, getattr(fn_args, "hyperparameters", None))  # a Tuner's result
    tensors_uri = session_data.tensors_uri_from_file_patterns(fn_args.train_files)
    train_events, valid_events, vocab = _training_events(tensors_uri, options)
    base = _base_model(fn_args, options)
    if base is not None and _trained_on_the_same(base, params, options, train_events, vocab):
        _save(fn_args, options, base.model, base.vocab, base.optimizer_state, base.training,
              {"reused_base_model": base.source, "params": params.to_dict(), "seed": options.seed})
        _copy_data_profile(tensors_uri, fn_args)
        logging.info("Trainer: the last blessed model was trained on these very data with these parameters; "
                     "it is the output as it is (%s)", base.source)
        return
    if base is not None:
        from gru4rec_tf.train import warm_start  # pylint: disable=g-import-not-at-top
        warm_start.check_compatible(base.params, params)
        vocab = warm_start.warm_vocabulary(base.vocab, vocab)
    train = SessionData.from_events(train_events, vocab)
    valid = SessionData.from_events(valid_events, vocab) if valid_events is not None else None
    del train_events, valid_events
    release_freed_memory()  # the event frames and their decoding, before training holds its own memory
    train_options = options.train_options(checkpoint_dir=os.path.join(fn_args.model_run_dir, CHECKPOINT_DIR),
                                          tensorboard_dir=fn_args.model_run_dir)
    validation = routine.Validation.from_options(valid, train_options) if valid is not None else None
    trained = routine.train(train, vocab, params, train_options, validation=validation, warm_start=base)
    summary = {
        **trained.summary(), "train_sessions": train.n_sessions, "train_events": train.n_events,
        "epochs": [{"epoch": h.epoch, "loss": h.loss, "events": h.events, "seconds": h.seconds}
                   for h in trained.history],
    }
    if base is not None:
        summary["warm_start_from"] = base.source  # the base model, for the model's report
    _save(fn_args, options, trained.model, vocab, trained.optimizer_state, {"identity": trained.identity}, summary)
    _copy_data_profile(tensors_uri, fn_args)
    logging.info("Trainer: %d epoch(s) in %.1f s, final loss %.4f; serving model in %s", len(trained.history),
                 trained.train_seconds, trained.history[-1].loss if trained.history else float("nan"),
                 fn_args.serving_model_dir)


def _copy_data_profile(tensors_uri: str, fn_args) -> None:
    """The span's data profile (when validation made one) goes into the model: the next run's DataValidator
    compares its span with the data of the last blessed model."""
    from tfx.dsl.io import fileio  # pylint: disable=g-import-not-at-top
    from tfx.utils import io_utils
    source = os.path.join(tensors_uri, artifacts.DATA_PROFILE_DIR)
    if fileio.exists(source):
        model_uri = os.path.dirname(fn_args.serving_model_dir.rstrip("/"))
        io_utils.copy_dir(source, os.path.join(model_uri, artifacts.DATA_PROFILE_DIR))


def _save(fn_args, options: TrainingOptions, model, vocab, optimizer_state, training_info, summary) -> None:
    """Writes the library model and the serving SavedModel into the Model artifact, the summary into ModelRun."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.export import saved_model
    from gru4rec_tf.model import model_dir  # pylint: disable=g-import-not-at-top
    model_uri = os.path.dirname(fn_args.serving_model_dir.rstrip("/"))
    _write(artifacts.library_model_dir(model_uri), lambda d: model_dir.save_model(
        d, model, vocab, seed=options.seed, optimizer_state=optimizer_state, training=training_info))
    _write(fn_args.serving_model_dir,
           lambda d: saved_model.export_saved_model(model, vocab, d, max_k=options.max_k, overwrite=True))
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, TRAINING_FILE), "w") as handle:
        handle.write(json.dumps(summary, indent=2))


def _trained_on_the_same(base, params, options: TrainingOptions, train_events, vocab) -> bool:
    """Whether the base model came from a run with these data, parameters and seed (so training again from it
    would only add epochs to a model that is already the result): a re-run on unchanged data then reproduces it."""
    from gru4rec_tf.train import checkpoints
    from gru4rec_tf.train import routine  # pylint: disable=g-import-not-at-top
    recorded = (base.training or {}).get("identity")
    if not recorded or base.params.n_epochs != params.n_epochs:
        return False
    identity = checkpoints.run_identity(params, options.seed, options.steps_per_call,
                                        SessionData.from_events(train_events, vocab), vocab,
                                        device_sampling=routine.use_device_sampling(options.device_sampling))
    drop = lambda d: {k: v for k, v in d.items() if k != "warm_start"}  # noqa: E731
    return drop(recorded) == drop(identity)
def _training_events(tensors_uri: str, options: TrainingOptions):
    """``(train events, validation events or None, vocabulary)`` of the SessionTensors artifact.

    With ``valid_days``, the sessions that start in the last ``valid_days`` of the *training* split are held out
    for validation (the test split stays untouched for the evaluator), and training uses the rest.
    """
    events = session_data.read_nonempty_events(tensors_uri, "train")
    if options.valid_days is None:
        return events, None, session_data.load_vocabulary(tensors_uri)
    from gru4rec_tf.data import synthetic  # pylint: disable=g-import-not-at-top
    train_events, valid_events = synthetic.train_test_split_by_time(events, test_days=options.valid_days)
    logging.info("Trainer: validation on the last %g day(s) of the training split: %d events", options.valid_days,
                 len(valid_events))
    return train_events, valid_events, ItemVocabulary.from_events(train_events)


def _base_model(fn_args, options: TrainingOptions):
    """The last blessed model (``fn_args.base_model``) as a loaded library model, when warm starting."""
    if not options.warm_start or not fn_args.base_model:
        return None
    from gru4rec_tf.model import model_dir  # pylint: disable=g-import-not-at-top
    source = artifacts.library_model_dir(os.path.dirname(fn_args.base_model.rstrip("/")))
    with remote_paths.local_dir(source) as local:
        saved = model_dir.load_model(local)
    logging.info("Trainer: warm start from %s (%d items)", source, len(saved.vocab))
    return dataclasses.replace(saved, source=source)
