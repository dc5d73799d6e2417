"""Tests of gru4rec_tf.model.model_dir: save -> load round trip, validation of model directories, atomic replacement."""
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order

from gru4rec_tf.data.vocabulary import ItemVocabulary  # pylint: disable=g-import-not-at-top
from gru4rec_tf.model import network as model_lib
from gru4rec_tf.model import model_dir as model_dir_lib
from gru4rec_tf import params as params_lib

N_ITEMS = 23
BASE = "loss=bpr-max,final_act=elu-0.5,layers=8/6,batch_size=4,n_sample=0,bpreg=0.5"
MODES = {
    "shared": BASE,
    "separate": BASE + ",embedding=8,constrained_embedding=False",
    "none": BASE + ",embedding=0,constrained_embedding=False",
}


def _vocab(n_items=N_ITEMS, str_ids=False):
    rng = np.random.default_rng(0)
    items = rng.permutation(n_items) * 7 + 1000
    items = np.concatenate([items, rng.choice(items, 30)])  # uneven support
    ids = [f"item-{i}" for i in items] if str_ids else items
    events = pd.DataFrame({"SessionId": np.arange(len(ids)) // 3, "ItemId": ids,
                           "Time": np.arange(len(ids), dtype=float)})
    return ItemVocabulary.from_events(events)


def _model(params_text, seed=3, n_items=N_ITEMS):
    """A model whose every variable holds random values (so that only a real restore reproduces them)."""
    params = params_lib.GRU4RecParams.from_string(params_text)
    model = model_lib.GRU4Rec(n_items, params, seed=seed)
    rng = np.random.default_rng(seed + 100)
    assert model.variables
    for var in model.variables:
        var.assign(rng.normal(0.0, 0.5, var.shape).astype(var.dtype.as_numpy_dtype))
    return model


def _scores(model, n_items=N_ITEMS):
    """Scores of two consecutive steps from non-zero states (exercises every variable)."""
    rng = np.random.default_rng(7)
    states = tuple(tf.constant(rng.normal(size=s.shape), tf.float32) for s in model.initial_states(5))
    first, states = model((tf.constant([0, 3, n_items - 1, 3, 7]), states))
    second, states = model((tf.constant([1, 1, 2, 0, n_items - 2]), states))
    return [first.numpy(), second.numpy()] + [s.numpy() for s in states]


def _assert_same_scores(a, b):
    for x, y in zip(_scores(a), _scores(b), strict=True):
        np.testing.assert_array_equal(x, y)


def _siblings(path):
    return sorted(os.listdir(os.path.dirname(os.path.abspath(path))))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_save_load_identical_scores(tmp_path, mode):
    model = _model(MODES[mode])
    assert model.embedding_mode == mode
    vocab = _vocab()
    model_dir = tmp_path / "model"
    model_dir_lib.save_model(str(model_dir), model, vocab, seed=3)
    saved = model_dir_lib.load_model(str(model_dir))
    assert saved.model.embedding_mode == mode
    assert [layer.units for layer in saved.model.gru_layers] == [8, 6]
    _assert_same_scores(model, saved.model)
    assert saved.params == model.hparams
    assert saved.vocab == vocab
    assert _siblings(model_dir) == ["model"]  # no staging or backup directory left behind
    assert sorted(os.listdir(model_dir)) == ["config.json", "vocab.tsv", "weights"]


def test_vocab_and_params_round_trip(tmp_path):
    text = ("loss=cross-entropy,final_act=softmax,layers=8,batch_size=16,dropout_p_embed=0.25,"
            "dropout_p_hidden=0.5,learning_rate=0.07,momentum=0.1,n_sample=64,sample_alpha=0.75,logq=1.0,"
            "constrained_embedding=False,embedding=5,n_epochs=4")
    model = _model(text, n_items=N_ITEMS)
    vocab = _vocab(str_ids=True)
    model_dir_lib.save_model(str(tmp_path / "m"), model, vocab)
    saved = model_dir_lib.load_model(str(tmp_path / "m"))
    assert saved.params == params_lib.GRU4RecParams.from_string(text)
    assert saved.params.to_dict() == model.hparams.to_dict()
    assert saved.vocab == vocab
    assert saved.vocab.item_ids.dtype == object
    np.testing.assert_array_equal(saved.vocab.support, vocab.support)
    np.testing.assert_array_equal(saved.vocab.lookup(["item-1000", "nope"]), vocab.lookup(["item-1000", "nope"]))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format"] == model_dir_lib.FORMAT and config["n_items"] == N_ITEMS


@pytest.fixture()
def saved_dir(tmp_path):
    model_dir = tmp_path / "model"
    model_dir_lib.save_model(str(model_dir), _model(MODES["shared"]), _vocab())
    return model_dir


def test_load_without_config_names_the_file(tmp_path, saved_dir):
    (saved_dir / "config.json").unlink()
    with pytest.raises(ValueError, match=r"config\.json does not exist") as err:
        model_dir_lib.load_model(str(saved_dir))
    assert str(saved_dir) in str(err.value)
    with pytest.raises(ValueError, match="not a gru4rec_tf model directory"):
        model_dir_lib.load_model(str(tmp_path / "does-not-exist"))


@pytest.mark.parametrize("content, pattern", [
    ({"format": "gru4rec_tf.model/999"}, "unsupported model format 'gru4rec_tf.model/999'"),
    ({"n_items": N_ITEMS}, "unsupported model format None"),
    ([1, 2], "unsupported model format 'list'"),
    ("{not json", "cannot read"),
])
def test_load_wrong_format_names_the_file(saved_dir, content, pattern):
    config_path = saved_dir / "config.json"
    config_path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError, match=pattern) as err:
        model_dir_lib.load_model(str(saved_dir))
    assert str(config_path) in str(err.value)


def test_load_bad_params_or_missing_keys_names_the_file(saved_dir):
    config_path = saved_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["params"]["bogus"] = 1
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unknown parameter 'bogus'") as err:
        model_dir_lib.load_model(str(saved_dir))
    assert str(config_path) in str(err.value)
    del config["n_items"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"missing key\(s\) \['n_items'\]"):
        model_dir_lib.load_model(str(saved_dir))


def test_load_vocab_size_mismatch_names_the_file(saved_dir):
    _vocab(N_ITEMS - 1).save(saved_dir / "vocab.tsv")
    with pytest.raises(ValueError, match=f"has {N_ITEMS - 1} items .*n_items={N_ITEMS}") as err:
        model_dir_lib.load_model(str(saved_dir))
    assert str(saved_dir / "vocab.tsv") in str(err.value)


def test_load_missing_vocab_or_weights(saved_dir):
    shutil.rmtree(saved_dir / "weights")
    with pytest.raises(ValueError, match="cannot restore the model weights") as err:
        model_dir_lib.load_model(str(saved_dir))
    assert str(saved_dir / "weights") in str(err.value)
    (saved_dir / "vocab.tsv").unlink()
    with pytest.raises(ValueError, match="vocab.tsv: file does not exist"):
        model_dir_lib.load_model(str(saved_dir))


def test_load_weights_of_another_architecture_fails_clearly(saved_dir):
    config_path = saved_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["params"]["layers"] = [8]  # the checkpoint has two GRU layers of sizes 8 and 6
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="cannot restore the model weights"):
        model_dir_lib.load_model(str(saved_dir))


def test_save_over_existing_model_replaces_it(tmp_path):
    model_dir = tmp_path / "model"
    first, second = _model(MODES["shared"], seed=1), _model(MODES["separate"], seed=2)
    model_dir_lib.save_model(str(model_dir), first, _vocab())
    model_dir_lib.save_model(str(model_dir), second, _vocab())
    saved = model_dir_lib.load_model(str(model_dir))
    assert saved.model.embedding_mode == "separate"
    _assert_same_scores(second, saved.model)
    assert _siblings(model_dir) == ["model"]


def test_failed_save_keeps_previous_model_and_leaves_no_staging(tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    first = _model(MODES["shared"], seed=1)
    model_dir_lib.save_model(str(model_dir), first, _vocab())
    before = {p: (model_dir / p).read_bytes() for p in ("config.json", "vocab.tsv")}

    def broken_write(self, *args, **kwargs):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(tf.train.Checkpoint, "write", broken_write)
    with pytest.raises(RuntimeError, match="simulated"):
        model_dir_lib.save_model(str(model_dir), _model(MODES["none"], seed=2), _vocab())
    monkeypatch.undo()
    assert _siblings(model_dir) == ["model"]
    assert {p: (model_dir / p).read_bytes() for p in before} == before
    _assert_same_scores(first, model_dir_lib.load_model(str(model_dir)).model)


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def broken_write(self, *args, **kwargs):
        raise RuntimeError("simulated")

    monkeypatch.setattr(tf.train.Checkpoint, "write", broken_write)
    with pytest.raises(RuntimeError):
        model_dir_lib.save_model(str(tmp_path / "model"), _model(MODES["shared"]), _vocab())
    assert os.listdir(tmp_path) == []


def test_failed_swap_restores_previous_model(tmp_path, monkeypatch):
    """If moving the new directory into place fails, the previous model is put back (no .old left)."""
    model_dir = tmp_path / "model"
    first = _model(MODES["shared"], seed=1)
    model_dir_lib.save_model(str(model_dir), first, _vocab())
    real_rename = os.rename

    def rename(src, dst):
        if ".tmp-" in os.path.basename(src):
            raise OSError("simulated rename failure")
        real_rename(src, dst)

    monkeypatch.setattr(model_dir_lib.os, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        model_dir_lib.save_model(str(model_dir), _model(MODES["separate"], seed=2), _vocab())
    monkeypatch.undo()
    assert _siblings(model_dir) == ["model"]
    _assert_same_scores(first, model_dir_lib.load_model(str(model_dir)).model)


def test_refuses_to_overwrite_non_model_directory(tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="is not a gru4rec_tf model directory; refusing to replace it"):
        model_dir_lib.save_model(str(target), _model(MODES["shared"]), _vocab())
    assert (target / "notes.txt").read_text() == "keep me"
    assert os.listdir(target) == ["notes.txt"]
    assert _siblings(target) == ["precious"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="refusing to replace it"):
        model_dir_lib.save_model(str(a_file), _model(MODES["shared"]), _vocab())
    assert a_file.read_text() == "x"
    assert sorted(os.listdir(tmp_path)) == ["file.txt", "precious"]


def test_save_rejects_vocab_size_mismatch(tmp_path):
    with pytest.raises(ValueError, match=f"vocabulary has {N_ITEMS - 2} items but the model has {N_ITEMS}"):
        model_dir_lib.save_model(str(tmp_path / "m"), _model(MODES["shared"]), _vocab(N_ITEMS - 2))
    assert os.listdir(tmp_path) == []
