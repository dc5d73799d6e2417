"""An exported SavedModel of an untrained GRU4Rec over given item IDs, for the serving benchmarks.

The answers of an untrained model are as expensive to compute as a trained one's, and its random item biases make
the rankings distinct, which is all that a speed benchmark and an equality check against ``serving_default`` need.
"""
import os

import numpy as np

from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.export import saved_model
from gru4rec_tf.model import network as model_lib
from gru4rec_tf.params import GRU4RecParams


def export_untrained(base_path: str, item_ids: np.ndarray) -> str:
    """Exports version 1 under ``base_path`` (layers 100, random item biases); returns its directory."""
    params = GRU4RecParams.from_string("layers=100,n_sample=0,constrained_embedding=True")
    model = model_lib.GRU4Rec(len(item_ids), params, seed=0)
    model.item_bias.assign(np.random.RandomState(0).normal(0, 0.1, len(item_ids)).astype(np.float32))
    return saved_model.export_saved_model(model, ItemVocabulary(item_ids), os.path.join(base_path, "1"),
                                          write_warmup=False)
