"""Saving and loading a trained model: configuration, item vocabulary and weights in one directory.

Layout of a model directory::

    config.json   {"format": "gru4rec_tf.model/1", "n_items": ..., "seed": ..., "params": {...}}
    vocab.tsv     original item ID, index, support (see :class:`gru4rec_tf.data.vocabulary.ItemVocabulary`)
    weights/      a TensorFlow checkpoint of the :class:`~gru4rec_tf.model.network.GRU4Rec` variables
    optimizer.npz (optional) the Adagrad accumulators and momentum velocities, for warm starts

The file names and the format tag are the contract of :mod:`gru4rec_tf.data.contracts`. The directory is written
next to its destination and renamed into place at the end, so a failed save never leaves a half-written model and
never destroys the model that was there before.
"""
import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from gru4rec_tf.data import contracts
from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf import fileio
from gru4rec_tf.fingerprint import fingerprint
from gru4rec_tf.model import network as model_lib
from gru4rec_tf import params as params_lib

FORMAT = contracts.MODEL_FORMAT  # config.json's "format"


@dataclasses.dataclass
class SavedGRU4Rec:
    """A loaded model with what is needed to use it: vocabulary and hyperparameters.

    Example:
      >>> saved = load_model("/tmp/model")
      >>> scores, states = saved.model((saved.vocab.lookup([100042]), saved.model.initial_states(1)))
    """
    model: model_lib.GRU4Rec
    vocab: ItemVocabulary
    params: params_lib.GRU4RecParams
    optimizer_state: dict | None = None  # {"acc/i", "vel/i": array} by trainable-variable position, if saved
    source: str = ""  # the directory it was loaded from
    training: dict | None = None  # what save_model was told about the training run (e.g. its identity)
    weights_fingerprint: str = ""  # a hash of the weights: equal fingerprints mean the same model


def save_model(model_dir: str, model: model_lib.GRU4Rec, vocab: ItemVocabulary, seed: int = 42,
               optimizer_state: dict | None = None, training: dict | None = None) -> None:
    """Writes ``model`` and ``vocab`` to ``model_dir`` atomically (replacing an existing model directory).

    ``optimizer_state`` (the Adagrad accumulators and momentum velocities, as ``{"acc/i"|"vel/i": array}`` by
    position in ``model.trainable_variables``) is written to ``optimizer.npz`` when given, so that a warm start
    from this directory continues with the step sizes training had reached. ``training`` (JSON-ready, e.g.
    ``{"identity": TrainResult.identity}``) is recorded in ``config.json``.
    """
    if len(vocab) != model.n_items:
        raise ValueError(f"vocabulary has {len(vocab)} items but the model has {model.n_items}")
    if os.path.exists(model_dir) and not os.path.isfile(os.path.join(model_dir, contracts.MODEL_CONFIG_FILE)):
        raise ValueError(f"{model_dir} exists and is not a gru4rec_tf model directory; refusing to replace it")
    with fileio.atomic_dir(model_dir) as staging:
        config = {"format": FORMAT, "n_items": model.n_items, "seed": seed, "params": model.hparams.to_dict(),
                  "weights_fingerprint": weights_fingerprint(model), "training": training}
        with open(os.path.join(staging, contracts.MODEL_CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        vocab.save(os.path.join(staging, contracts.MODEL_VOCAB_FILE))
        tf.train.Checkpoint(model=model).write(_weights_prefix(staging))
        if optimizer_state is not None:
            np.savez(os.path.join(staging, contracts.MODEL_OPTIMIZER_FILE), **optimizer_state)


def load_model(model_dir: str) -> SavedGRU4Rec:
    """Loads a model directory written by :func:`save_model`; raises ValueError naming what is wrong."""
    config_path = os.path.join(model_dir, contracts.MODEL_CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ValueError(f"{model_dir} is not a gru4rec_tf model directory: {config_path} does not exist")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {config_path}: {err}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{config_path}: unsupported model format {found!r}, expected {FORMAT!r}")
    missing = [key for key in ("n_items", "params") if key not in config]
    if missing:
        raise ValueError(f"{config_path}: missing key(s) {missing}")
    try:
        params = params_lib.GRU4RecParams.from_dict(config["params"])
    except ValueError as err:
        raise ValueError(f"{config_path}: {err}") from None
    vocab_path = os.path.join(model_dir, contracts.MODEL_VOCAB_FILE)
    vocab = ItemVocabulary.load(vocab_path)
    if len(vocab) != config["n_items"]:
        raise ValueError(f"{vocab_path}: has {len(vocab)} items but {config_path} says n_items={config['n_items']}")
    model = model_lib.GRU4Rec(config["n_items"], params, seed=config.get("seed", 42))
    weights = _weights_prefix(model_dir)
    try:
        status = tf.train.Checkpoint(model=model).read(weights)
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{weights}: cannot restore the model weights ({first_line})") from None
    return SavedGRU4Rec(model=model, vocab=vocab, params=params, optimizer_state=_load_optimizer_state(model_dir),
                        source=model_dir, training=config.get("training"),
                        weights_fingerprint=config.get("weights_fingerprint") or weights_fingerprint(model))


def _weights_prefix(model_dir: str) -> str:
    """The checkpoint prefix of the weights inside ``model_dir`` (``weights/ckpt``)."""
    return os.path.join(model_dir, contracts.MODEL_WEIGHTS_DIR, contracts.MODEL_WEIGHTS_PREFIX)


def weights_fingerprint(model: model_lib.GRU4Rec) -> str:
    """A short hash of every weight of ``model`` (equal for the same model, whatever directory holds it)."""
    return fingerprint(*(v.numpy() for v in model.trainable_variables))


def _load_optimizer_state(model_dir: str) -> dict | None:
    path = os.path.join(model_dir, contracts.MODEL_OPTIMIZER_FILE)
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the optimizer state ({err})") from None
