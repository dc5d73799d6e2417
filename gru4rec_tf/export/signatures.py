"""The serving contract of an exported GRU4Rec: signature, input and output names, padding, asset file names.

The exporter (:mod:`.saved_model`) writes SavedModels with these names; the gRPC client, the development
server and the tests read them from here. This module imports neither TensorFlow nor TensorFlow Recommenders, so a
client that only talks to a server stays light. :mod:`gru4rec_tf.export.saved_model` documents each signature's shapes.

Example:
  >>> from gru4rec_tf.export import signatures
  >>> request = {signatures.ITEMS: [[100042, 100007]], signatures.LENGTHS: [2], signatures.K: [20],
  ...            signatures.EXCLUDE_SEEN: [False]}
  >>> signatures.pad_id("string")
  ''
"""
import numpy as np

SIGNATURE_SESSION = "serving_default"  # a whole session's events -> top-k and the final state
SIGNATURE_STEP = "step"  # one event and the previous state -> top-k and the new state
SIGNATURE_SESSION_CANDIDATES = "serving_candidates"
SIGNATURE_STEP_CANDIDATES = "step_candidates"
SIGNATURES = (SIGNATURE_SESSION, SIGNATURE_STEP, SIGNATURE_SESSION_CANDIDATES, SIGNATURE_STEP_CANDIDATES)

# Inputs.
ITEMS, LENGTHS, K, EXCLUDE_SEEN = "items", "lengths", "k", "exclude_seen"
STATE, EXCLUDE, CANDIDATES = "state", "exclude", "candidates"
SESSION_INPUTS = (ITEMS, LENGTHS, K, EXCLUDE_SEEN)
STEP_INPUTS = (ITEMS, STATE, K, EXCLUDE)

# Outputs (all four signatures).
ITEM_IDS, SCORES, NUM_RESULTS, NUM_UNKNOWN = "item_ids", "scores", "num_results", "num_unknown"
OUTPUTS = (ITEM_IDS, SCORES, NUM_RESULTS, NUM_UNKNOWN, STATE)

# Padding of ID inputs and of result rows, by the ID dtype's name (int64 or string item IDs).
PAD_ID = {"int64": -1, "string": ""}
PAD_SCORE = float(np.finfo(np.float32).min)  # finite, so REST (JSON) responses stay valid

# Files inside an exported version directory.
WARMUP_FILE = "tf_serving_warmup_requests"  # assets.extra/, PredictionLog records
EXPORT_INFO_FILE = "gru4rec_export.json"  # assets.extra/, what a client needs besides the signatures
VOCAB_ASSET = "item_ids.txt"  # assets/, one original item ID per line, in index order


def pad_id(dtype_name: str):
    """The padding ID for item IDs of dtype ``dtype_name`` (``"int64"`` or ``"string"``)."""
    try:
        return PAD_ID[dtype_name]
    except KeyError:
        raise ValueError(f"item IDs must be int64 or string, got {dtype_name!r}") from None
