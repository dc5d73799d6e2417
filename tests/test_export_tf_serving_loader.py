"""Exported versions through TF Serving's own path (issue 15 §4): the v1 loader in a graph session, tag ``serve``,
every signature run by its SignatureDef tensor names and compared with the eager results (int64 and string IDs,
unknown IDs, exclusions, candidates, empty batches), and every warm-up record replayed. A few seconds per model.
"""
import numpy as np
import pytest

import gru4rec_tf  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from gru4rec_tf.export import saved_model
from gru4rec_tf.data.vocabulary import ItemVocabulary

import tf_serving_loader as loader
from test_saved_model import INT_IDS, make_model


def requests(vocab, state_size: int, pad, cast):
    """A few requests per signature: several rows, unknown and padded IDs, exclusions, candidates, empty batches."""
    ids = vocab.item_ids
    unknown = cast(["no such item"])[0] if pad == b"" else -5
    items = cast([[ids[0], ids[1], ids[2], pad], [ids[3], unknown, pad, pad], [ids[4], ids[5], ids[6], ids[7]]])
    lengths = np.array([3, 2, 4], np.int32)
    session = {"items": items, "lengths": lengths, "k": np.array([5, 1, 3], np.int32),
               "exclude_seen": np.array([True, False, True])}
    empty_session = {"items": np.zeros([0, 2], np.int64) if pad != b"" else np.empty([0, 2], object),
                     "lengths": np.zeros([0], np.int32), "k": np.zeros([0], np.int32),
                     "exclude_seen": np.zeros([0], bool)}
    rng = np.random.RandomState(0)
    step = {"items": cast([ids[1], unknown, ids[2]]), "state": rng.normal(0, 0.3, [3, state_size]).astype(np.float32),
            "k": np.array([4, 2, 7], np.int32), "exclude": cast([[ids[0], pad], [pad, pad], [ids[2], ids[3]]])}
    candidates = cast([[ids[0], ids[3], ids[9], pad], [ids[1], unknown, pad, pad], [ids[2], ids[5], ids[6], ids[7]]])
    return {
        "serving_default": [session, {**session, "exclude_seen": np.array([False] * 3)}, empty_session],
        "step": [step],
        "serving_candidates": [{**session, "candidates": candidates}],
        "step_candidates": [{**step, "candidates": candidates}],
    }


@pytest.mark.slow
@pytest.mark.parametrize("id_kind", ["int64", "string"])
def test_every_signature_and_warmup_record_through_the_v1_graph_loader(tmp_path, id_kind):
    if id_kind == "int64":
        model = make_model("layers=16/12,n_sample=0,constrained_embedding=True")
        vocab, pad = ItemVocabulary(INT_IDS), -1
        cast = lambda a: np.asarray(a, np.int64)  # noqa: E731
    else:
        model = make_model("layers=10,embedding=6,n_sample=0,constrained_embedding=False", n_items=30)
        vocab, pad = ItemVocabulary(np.array([f"item {i}\t#" for i in range(30)], dtype=object)), b""
        cast = lambda a: np.asarray(a, dtype=object).astype(str).astype(bytes).astype(object)  # noqa: E731
    path = saved_model.export_saved_model(model, vocab, str(tmp_path / "1"), max_k=8)
    state_size = saved_model.read_export_info(path)["state_size"]
    counts = loader.check_version(path, requests(vocab, state_size, pad, cast))
    assert counts["warmup_records"] == 4 and counts["cases"] == 6 + 4
