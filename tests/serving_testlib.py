"""Helpers shared by the tests/test_serving_*.py files: a tiny exported model and a development server."""
import numpy as np
import portpicker

import gru4rec_tf  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.export import saved_model
from gru4rec_tf.model import network as model_lib
from gru4rec_tf import params as params_lib

N_ITEMS = 40
ITEM_IDS = np.arange(500, 500 + 3 * N_ITEMS, 3, dtype=np.int64)
UNKNOWN = 7
STATE_SIZE = 12 + 8
MODEL_NAME = "gru4rec"


def export_model(base_path, version: int = 1, seed: int = 1) -> str:
    """Exports an untrained int-ID model (layers 12/8, shared embedding) to ``base_path/version``."""
    params = params_lib.GRU4RecParams.from_string("layers=12/8,n_sample=0,constrained_embedding=True")
    model = model_lib.GRU4Rec(N_ITEMS, params, seed=seed)
    model.item_bias.assign(np.random.RandomState(seed).normal(0, 0.1, N_ITEMS).astype(np.float32))
    return saved_model.export_saved_model(model, ItemVocabulary(ITEM_IDS), str(base_path / str(version)),
                                     max_k=25)


def free_port() -> int:
    return portpicker.pick_unused_port()


def session_inputs(sessions, k=5, exclude_seen=False):
    """Numpy inputs of ``serving_default`` for ragged sessions of int IDs."""
    width = max([len(s) for s in sessions] + [1])
    return {"items": np.array([list(s) + [-1] * (width - len(s)) for s in sessions], np.int64).reshape(-1, width),
            "lengths": np.array([len(s) for s in sessions], np.int32),
            "k": np.full(len(sessions), k, np.int32),
            "exclude_seen": np.full(len(sessions), exclude_seen)}


def step_inputs(items, state, k=5, exclude=None):
    exclude = exclude if exclude is not None else [[-1]] * len(items)
    width = max(len(e) for e in exclude)
    return {"items": np.array(items, np.int64), "state": np.asarray(state, np.float32),
            "k": np.full(len(items), k, np.int32),
            "exclude": np.array([list(e) + [-1] * (width - len(e)) for e in exclude], np.int64)}


def run_signature(loaded, name: str, inputs: dict) -> dict:
    """Runs a signature of an in-process SavedModel on numpy inputs."""
    out = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}


def top(out: dict, row: int = 0):
    """``(item_ids, scores)`` of a row, trimmed to ``num_results``."""
    n = int(out["num_results"][row])
    return [int(i) for i in out["item_ids"][row, :n]], list(out["scores"][row, :n])
