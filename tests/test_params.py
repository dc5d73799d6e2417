"""Tests for gru4rec_tf.params: parsing the official formats, validation and round trips."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gru4rec_tf.params import GRU4RecParams, parse_final_act

CONFIG_A = (
    "loss=bpr-max,final_act=elu-0.5,layers=100,batch_size=32,dropout_p_embed=0.0,dropout_p_hidden=0.0,"
    "learning_rate=0.05,momentum=0.0,n_sample=2048,sample_alpha=0.5,bpreg=1.0,constrained_embedding=True"
)
CONFIG_B = (
    "loss=cross-entropy,final_act=softmax,logq=1.0,constrained_embedding=True,layers=100,batch_size=32,"
    "dropout_p_embed=0.1,dropout_p_hidden=0.0,learning_rate=0.1,momentum=0.0,n_sample=2048,sample_alpha=0.75"
)
PORT_PARAMFILE = """from collections import OrderedDict
gru4rec_params = OrderedDict([
('loss', 'bpr-max'),
('constrained_embedding', True),
('embedding', 0),
('elu_param', 1),
('layers', [512]),
('n_epochs', 10),
('batch_size', 144),
('dropout_p_embed', 0.35),
('dropout_p_hidden', 0.0),
('learning_rate', 0.05),
('momentum', 0.4),
('n_sample', 2048),
('sample_alpha', 0.2),
('bpreg', 1.85),
('logq', 0.0)
])
"""
THEANO_PARAMFILE = PORT_PARAMFILE.replace("('elu_param', 1)", "('final_act', 'elu-1')")


def test_defaults_are_the_ports_defaults():
    p = GRU4RecParams()
    assert p.to_dict() == {
        "loss": "cross-entropy", "final_act": "softmax", "layers": [100], "batch_size": 64,
        "dropout_p_embed": 0.0, "dropout_p_hidden": 0.0, "learning_rate": 0.05, "momentum": 0.0,
        "n_sample": 2048, "sample_alpha": 0.5, "bpreg": 1.0, "logq": 0.0, "constrained_embedding": True,
        "embedding": 0, "n_epochs": 10, "hidden_act": "tanh", "sample_store_size": 10_000_000,
    }
    assert GRU4RecParams.from_string("") == p
    assert GRU4RecParams.from_dict({}) == p


def test_config_a():
    p = GRU4RecParams.from_string(CONFIG_A)
    assert (p.loss, p.final_act, p.layers, p.batch_size) == ("bpr-max", "elu-0.5", (100,), 32)
    assert (p.dropout_p_embed, p.dropout_p_hidden, p.learning_rate, p.momentum) == (0.0, 0.0, 0.05, 0.0)
    assert (p.n_sample, p.sample_alpha, p.bpreg, p.constrained_embedding) == (2048, 0.5, 1.0, True)
    assert p.is_ranking_loss and p.embedding_mode == "shared"
    assert p.final_activation == ("elu", (0.5,))
    assert p.logq == 0.0 and p.n_epochs == 10  # defaults kept


def test_config_b():
    p = GRU4RecParams.from_string(CONFIG_B)
    assert (p.loss, p.final_act, p.logq, p.constrained_embedding) == ("cross-entropy", "softmax", 1.0, True)
    assert (p.layers, p.batch_size, p.dropout_p_embed, p.dropout_p_hidden) == ((100,), 32, 0.1, 0.0)
    assert (p.learning_rate, p.momentum, p.n_sample, p.sample_alpha) == (0.1, 0.0, 2048, 0.75)
    assert not p.is_ranking_loss


def test_string_format_details():
    p = GRU4RecParams.from_string(" layers = 200/200 , constrained_embedding=false, embedding=64,,hidden_act=relu ")
    assert p.layers == (200, 200) and p.constrained_embedding is False and p.embedding == 64
    assert p.hidden_act == "relu" and p.embedding_mode == "separate"
    assert GRU4RecParams.from_string("constrained_embedding=0").embedding_mode == "none"
    assert GRU4RecParams.from_string("constrained_embedding=1").constrained_embedding is True
    assert GRU4RecParams.from_string("constrained_embedding=True,embedding=64").embedding_mode == "shared"


def test_from_dict_python_values():
    p = GRU4RecParams.from_dict({"loss": "bpr-max", "final_act": "tanh", "layers": [128, 64], "batch_size": 16,
                                 "learning_rate": 1, "constrained_embedding": False})
    assert p.layers == (128, 64) and p.final_act == "tanh" and p.learning_rate == 1.0
    assert isinstance(p.learning_rate, float)
    assert GRU4RecParams.from_dict({"layers": 256}).layers == (256,)
    assert GRU4RecParams.from_dict({"layers": (256,)}).layers == (256,)


def test_port_paramfile(tmp_path):
    path = tmp_path / "coveo_bprmax_shared_best.py"
    path.write_text(PORT_PARAMFILE)
    p = GRU4RecParams.from_file(path)
    assert (p.loss, p.final_act, p.layers, p.batch_size) == ("bpr-max", "elu-1", (512,), 144)
    assert (p.dropout_p_embed, p.momentum, p.sample_alpha, p.bpreg, p.logq) == (0.35, 0.4, 0.2, 1.85, 0.0)


def test_theano_paramfile_equals_port_paramfile(tmp_path):
    theano, port = tmp_path / "theano.py", tmp_path / "port.py"
    theano.write_text(THEANO_PARAMFILE)
    port.write_text(PORT_PARAMFILE)
    assert GRU4RecParams.from_file(theano) == GRU4RecParams.from_file(port)


def test_paramfile_dict_literal_and_json_and_text(tmp_path):
    expected = GRU4RecParams.from_string("loss=bpr-max,final_act=elu-0.5,layers=64/32,batch_size=8")
    py = tmp_path / "p.py"
    py.write_text('"""doc"""\nimport collections\nparams = {"loss": "bpr-max", "elu_param": 0.5, '
                  '"layers": [64, 32], "batch_size": 8}\n')
    js = tmp_path / "p.json"
    js.write_text(json.dumps({"loss": "bpr-max", "final_act": "elu-0.5", "layers": [64, 32], "batch_size": 8}))
    txt = tmp_path / "p.txt"
    txt.write_text("# best config\nloss=bpr-max,final_act=elu-0.5\nlayers=64/32\n\nbatch_size=8\n")
    assert GRU4RecParams.from_file(py) == GRU4RecParams.from_file(js) == GRU4RecParams.from_file(txt) == expected


def test_elu_param_alias():
    assert GRU4RecParams.from_string("loss=bpr-max,elu_param=0.5").final_act == "elu-0.5"
    assert GRU4RecParams.from_string("loss=bpr-max,elu_param=1").final_act == "elu-1"
    assert GRU4RecParams.from_string("loss=top1-max,elu_param=0").final_act == "linear"
    assert GRU4RecParams.from_string("loss=bpr-max").final_act == "linear"
    assert GRU4RecParams.from_string("loss=xe_logit").final_act == "softmax_logit"
    assert GRU4RecParams.from_string("loss=cross-entropy,elu_param=0.5").final_act == "softmax"  # ignored
    assert GRU4RecParams.from_string("loss=bpr-max,final_act=elu-1.0,elu_param=1").final_act == "elu-1.0"
    assert "elu_param" not in GRU4RecParams.from_string("loss=bpr-max,elu_param=1").to_dict()


def test_layersize_embedding():
    p = GRU4RecParams.from_string("layers=96/48,embedding=layersize,constrained_embedding=False")
    assert p.embedding == 96 and p.embedding_mode == "separate"
    assert GRU4RecParams(layers=(32,), embedding="layersize").embedding == 32


def test_round_trips():
    for text in (CONFIG_A, CONFIG_B, "loss=top1,final_act=selu-1.05-1.67,layers=10/20/30,learning_rate=1e-05",
                 "loss=bpr,final_act=leaky-0.01,constrained_embedding=False,embedding=layersize,n_epochs=0"):
        p = GRU4RecParams.from_string(text)
        assert GRU4RecParams.from_string(p.to_string()) == p
        assert GRU4RecParams.from_dict(p.to_dict()) == p
        assert GRU4RecParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_with_overrides_cli_order(tmp_path):
    path = tmp_path / "best.py"
    path.write_text(PORT_PARAMFILE)
    base = GRU4RecParams.from_file(path)
    p = base.with_overrides("batch_size=32,n_epochs=2")
    assert (p.batch_size, p.n_epochs, p.layers, p.final_act) == (32, 2, (512,), "elu-1")
    assert base.batch_size == 144  # unchanged
    assert base.with_overrides({"elu_param": 0.5}).final_act == "elu-0.5"
    assert base.with_overrides("loss=top1-max").final_act == "elu-1"  # still valid: kept
    assert base.with_overrides("loss=cross-entropy").final_act == "softmax"  # invalid for XE: loss default
    with pytest.raises(ValueError, match="batch_size"):
        base.with_overrides("batch_size=0")


def test_parse_final_act():
    assert parse_final_act("elu-0.5") == ("elu", (0.5,))
    assert parse_final_act("selu-1.05-1.67") == ("selu", (1.05, 1.67))
    assert parse_final_act("leaky-0.01") == ("leaky", (0.01,))
    assert parse_final_act("linear") == ("linear", ())
    assert parse_final_act("softmax_logit") == ("softmax_logit", ())
    for bad in ("elu-x", "elu", "elu-", "selu-1", "leaky-1-2", "sigmoid", "elu--1"):
        with pytest.raises(ValueError, match="final_act"):
            parse_final_act(bad)


@pytest.mark.parametrize("text, name", [
    ("batch_size=abc", "batch_size"),
    ("batch_size=0", "batch_size"),
    ("batch_size=True", "batch_size"),
    ("layers=", "layers"),
    ("layers=100/0", "layers"),
    ("layers=a/b", "layers"),
    ("dropout_p_embed=1.0", "dropout_p_embed"),
    ("dropout_p_hidden=-0.1", "dropout_p_hidden"),
    ("learning_rate=0", "learning_rate"),
    ("learning_rate=nan", "learning_rate"),
    ("momentum=1", "momentum"),
    ("n_sample=-1", "n_sample"),
    ("sample_alpha=-0.5", "sample_alpha"),
    ("bpreg=-1", "bpreg"),
    ("logq=1.5", "logq"),
    ("n_epochs=-1", "n_epochs"),
    ("sample_store_size=-1", "sample_store_size"),
    ("embedding=-3", "embedding"),
    ("embedding=big", "embedding"),
    ("constrained_embedding=yes", "constrained_embedding"),
    ("loss=mse", "loss"),
    ("hidden_act=sigmoid", "hidden_act"),
    ("final_act=elu-x,loss=bpr-max", "final_act"),
    ("loss=cross-entropy,final_act=elu-1", "final_act"),
    ("loss=xe_logit,final_act=softmax", "final_act"),
    ("loss=bpr-max,final_act=softmax", "final_act"),
    ("loss=bpr-max,final_act=elu-1,elu_param=0.5", "elu_param"),
    ("loss=bpr-max,final_act=linear,elu_param=0.5", "elu_param"),
    ("loss=bpr-max,elu_param=-1", "elu_param"),
    ("elu_param=abc", "elu_param"),
    ("batchsize=32", "batchsize"),
    ("batch_size=32,batch_size=64", "batch_size"),
    ("adapt=adam", "adapt"),
    ("lmbd=0.1", "lmbd"),
    ("grad_cap=5", "grad_cap"),
    ("sigma=0.1", "sigma"),
    ("init_as_normal=True", "init_as_normal"),
    ("train_random_order=True", "train_random_order"),
    ("time_sort=False", "time_sort"),
    ("smoothing=0.1", "smoothing"),
])
def test_errors_name_the_parameter(text, name):
    with pytest.raises(ValueError, match=name):
        GRU4RecParams.from_string(text)


def test_error_messages_are_helpful():
    with pytest.raises(ValueError, match="batch_size must be an integer, got 'abc'"):
        GRU4RecParams.from_string("batch_size=abc")
    with pytest.raises(ValueError, match="did you mean 'batch_size'") as info:
        GRU4RecParams.from_string("batchsize=32")
    assert "learning_rate" in str(info.value)  # lists the valid names
    with pytest.raises(ValueError, match="valid final_act values for cross-entropy: softmax"):
        GRU4RecParams.from_string("loss=cross-entropy,final_act=elu-1")
    with pytest.raises(ValueError, match="elu-X"):
        GRU4RecParams.from_string("loss=bpr-max,final_act=softmax")
    with pytest.raises(ValueError, match="not supported"):
        GRU4RecParams.from_string("adapt=rmsprop")
    with pytest.raises(ValueError, match="key=value"):
        GRU4RecParams.from_string("loss")
    with pytest.raises(ValueError, match="final_act"):
        GRU4RecParams(loss="bpr-max")  # the constructor takes final_act literally


def test_legacy_names_at_default_accepted():
    text = ("adapt=adagrad,lmbd=0.0,grad_cap=0,sigma=0.0,init_as_normal=False,train_random_order=False,"
            "time_sort=True,smoothing=0.0,decay=0.9")
    assert GRU4RecParams.from_string(text) == GRU4RecParams()
    assert GRU4RecParams.from_dict({"decay": 0.5, "time_sort": True, "sigma": 0}) == GRU4RecParams()
    assert "adapt" not in GRU4RecParams.from_string(text).to_dict()


def test_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.py"
    with pytest.raises(ValueError, match="missing.py"):
        GRU4RecParams.from_file(missing)
    bad = tmp_path / "bad.json"
    bad.write_text('{"batch_size": "abc"}')
    with pytest.raises(ValueError, match=r"bad\.json: batch_size"):
        GRU4RecParams.from_file(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        GRU4RecParams.from_file(broken)
    syntax = tmp_path / "syntax.py"
    syntax.write_text("gru4rec_params = OrderedDict([\n")
    with pytest.raises(ValueError, match="syntax.py"):
        GRU4RecParams.from_file(syntax)
    empty = tmp_path / "empty.py"
    empty.write_text("from collections import OrderedDict\n")
    with pytest.raises(ValueError, match="empty.py"):
        GRU4RecParams.from_file(empty)


@pytest.mark.parametrize("body", [
    "import os\nos.system('touch {marker}')\ngru4rec_params = OrderedDict([('loss', 'bpr-max')])\n",
    "from collections import OrderedDict\ngru4rec_params = OrderedDict([('layers', open('{marker}', 'w'))])\n",
    "gru4rec_params = {{'loss': __import__('os').system('touch {marker}')}}\n",
    "gru4rec_params = OrderedDict([('n_epochs', 10)])\nopen('{marker}', 'w')\n",
    "def f():\n    open('{marker}', 'w')\ngru4rec_params = f()\n",
])
def test_malicious_paramfile_is_rejected_without_executing(tmp_path, body):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.py"
    path.write_text(body.format(marker=marker))
    with pytest.raises(ValueError, match="evil.py"):
        GRU4RecParams.from_file(path)
    assert not marker.exists()


def test_params_module_does_not_import_tensorflow():
    code = "import sys, gru4rec_tf.params; sys.exit('tensorflow' in sys.modules)"
    repo_root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=repo_root, check=False).returncode == 0
