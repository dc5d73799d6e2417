"""Search spaces of ``gru4rec tune`` (gru4rec_tf.tune.search_space): defaults, the JSON formats, validation. No TF."""
import json

import pytest

from gru4rec_tf.params import GRU4RecParams
from gru4rec_tf.tune.search_space import SearchSpace, check_objective, default_fixed, initial_values

BPR = GRU4RecParams.from_string("loss=bpr-max,final_act=elu-0.5")
XE = GRU4RecParams.from_string("loss=cross-entropy,logq=1")


def test_default_spaces_are_the_authors_ranges():
    bpr = SearchSpace.default("bpr-max").to_dict()
    assert bpr["layers"] == {"type": "int", "low": 64, "high": 512, "step": 32}
    assert bpr["batch_size"] == {"type": "int", "low": 32, "high": 256, "step": 16}
    assert bpr["learning_rate"] == {"type": "float", "low": 0.01, "high": 0.25, "step": 0.005}
    assert bpr["dropout_p_embed"]["high"] == 0.5 and bpr["dropout_p_hidden"]["high"] == 0.7
    assert bpr["momentum"]["high"] == 0.9 and bpr["sample_alpha"] == {"type": "float", "low": 0.0, "high": 1.0,
                                                                       "step": 0.1}
    assert bpr["bpreg"] == {"type": "float", "low": 0.0, "high": 2.0, "step": 0.05}
    assert bpr["final_act"] == {"type": "choice", "values": ["elu-0.5", "elu-1", "linear"]}
    xe = SearchSpace.default("cross-entropy").to_dict()
    assert "bpreg" not in xe and "final_act" not in xe and "logq" not in xe and set(xe) < set(bpr)
    assert default_fixed("cross-entropy") == {"logq": 1.0} and default_fixed("bpr-max") == {}
    SearchSpace.default("bpr-max").check(BPR)
    SearchSpace.default("cross-entropy").check(XE)


def test_apply_gives_validated_params():
    space = SearchSpace.default("bpr-max")
    params = space.apply(BPR, {"layers": 96, "final_act": "linear", "bpreg": 0.35, "batch_size": 48})
    assert params.layers == (96,) and params.final_act == "linear" and params.bpreg == 0.35
    assert params.batch_size == 48 and params.loss == "bpr-max"
    assert SearchSpace.default("bpr-max").dimensions[0].grid()[-1] == 512


def test_json_object_and_authors_json_lines_formats(tmp_path):
    obj = tmp_path / "space.json"
    obj.write_text(json.dumps({"layers": {"low": 8, "high": 32, "step": 8},
                               "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
                               "final_act": {"values": ["elu-1", "linear"]}}))
    space = SearchSpace.from_file(obj)
    assert space.names == ("layers", "learning_rate", "final_act")
    assert space.dimensions[1].log and space.dimensions[1].step is None
    space.check(BPR)
    lines = tmp_path / "authors.json"
    lines.write_text('{"dtype": "int", "name": "layers", "low": 64, "high": 512, "step": 32}\n'
                     '{"dtype": "float", "name": "bpreg", "low": 0.0, "high": 2.0, "step": 0.05}\n'
                     '{"dtype": "categorical", "name": "elu_param", "choices": [0.5, 1, 0]}\n')
    space = SearchSpace.from_file(lines)
    assert space.to_dict()["final_act"]["values"] == ["elu-0.5", "elu-1", "linear"]
    assert space.to_dict()["layers"] == {"type": "int", "low": 64, "high": 512, "step": 32}


@pytest.mark.parametrize("spec, base, fragments", [
    ({"layerz": {"low": 8, "high": 16}}, BPR, ["unknown parameter 'layerz'", "did you mean 'layers'"]),
    ({"loss": {"values": ["top1"]}}, BPR, ["loss: cannot be searched"]),
    ({"layers": {"low": 32, "high": 16}}, BPR, ["layers: empty range", "low 32 > high 16"]),
    ({"final_act": {"values": []}}, BPR, ["final_act", "non-empty"]),
    ({"dropout_p_hidden": {"low": 0.0, "high": 1.0}}, BPR, ["dropout_p_hidden", "1.0 is invalid", "[0, 1)"]),
    ({"final_act": {"values": ["elu-1"]}}, XE, ["final_act", "not valid with loss='cross-entropy'"]),
    ({"layers": {"low": 8, "hi": 16}}, BPR, ["unknown key(s) 'hi'"]),
    ({"layers": {"low": 8.5, "high": 16}}, BPR, ["low must be an integer"]),
    ({"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}, BPR, ["log-scale range needs low > 0"]),
    ({"learning_rate": {"low": 0.01, "high": 0.1, "step": 0}}, BPR, ["step must be > 0"]),
    ({"hidden_act": {"low": 0, "high": 1}}, BPR, ["not numeric"]),
    ({}, BPR, ["names no parameter"]),
])
def test_bad_spaces_are_refused_with_one_message(spec, base, fragments):
    with pytest.raises(ValueError) as err:
        SearchSpace.from_dict(spec, source="space.json").check(base)
    for fragment in fragments:
        assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_fixed_and_searched_parameter_is_refused():
    with pytest.raises(ValueError, match="layers is both fixed .*and searched"):
        SearchSpace.default("bpr-max").check(BPR, fixed_names=["loss", "layers"])


def test_unreadable_space_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        SearchSpace.from_file(bad)
    with pytest.raises(ValueError, match="cannot read the space file"):
        SearchSpace.from_file(tmp_path / "missing.json")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        SearchSpace.from_file(listed)


@pytest.mark.parametrize("name", ["mrr@20", "recall@5", " mrr@1 "])
def test_computed_objectives(name):
    assert check_objective(name) == name.strip()


@pytest.mark.parametrize("name", ["ndcg@20", "mrr", "recall@0", "mrr@x", "precision@10"])
def test_objectives_that_are_not_computed(name):
    with pytest.raises(ValueError, match="recall@K or mrr@K"):
        check_objective(name)


def test_initial_values_best_known_and_explicit():
    bpr = initial_values("best_known", SearchSpace.default("bpr-max"), BPR)
    assert bpr == {"layers": 100, "batch_size": 32, "learning_rate": 0.05, "dropout_p_embed": 0.0,
                   "dropout_p_hidden": 0.0, "momentum": 0.0, "sample_alpha": 0.5, "bpreg": 1.0,
                   "final_act": "elu-0.5"}  # configuration A (layers 100 lies between the grid's 96 and 128)
    xe = initial_values("best_known", SearchSpace.default("cross-entropy"), XE)
    assert xe == {"layers": 100, "batch_size": 32, "learning_rate": 0.2, "dropout_p_embed": 0.0,
                  "dropout_p_hidden": 0.4, "momentum": 0.2, "sample_alpha": 0.5}  # rsc15_xe_shared_100_best
    space = SearchSpace.from_dict({"layers": {"low": 64, "high": 128}, "final_act": {"values": ["elu-1", "linear"]}})
    assert initial_values("layers=80,elu_param=1", space, BPR) == {"layers": 80, "final_act": "elu-1"}
    narrow = SearchSpace.from_dict({"layers": {"low": 64, "high": 128}, "learning_rate": {"low": 0.01, "high": 0.1}})
    assert initial_values("best_known", narrow, BPR) == {"layers": 100, "learning_rate": 0.05}  # searched ones only


@pytest.mark.parametrize("text, space, fragments", [
    ("layers=80", {"layers": {"low": 64, "high": 128}, "momentum": {"low": 0, "high": 0.5}},
     ["every searched parameter", "missing momentum"]),
    ("layers=80,bpreg=0.5", {"layers": {"low": 64, "high": 128}}, ["bpreg is not searched", "--fixed_params"]),
    ("layers=200", {"layers": {"low": 64, "high": 128}}, ["layers=200 is outside the searched range 64-128"]),
    ("final_act=elu-2", {"final_act": {"values": ["elu-1", "linear"]}}, ["final_act=elu-2 is not one of"]),
    ("layerz=3", {"layers": {"low": 64, "high": 128}}, ["--initial_params", "layerz"]),
    ("layers=80/80", {"layers": {"low": 64, "high": 128}}, ["one layer's size"]),
    ("best_known", {"layers": {"low": 64, "high": 96}}, ["best_known", "layers=100 is outside"]),
    ("best_known", {"hidden_act": {"values": ["tanh", "relu"]}}, ["best-known bpr-max configuration has no value",
                                                                  "hidden_act"]),
])
def test_initial_values_errors_name_the_problem(text, space, fragments):
    with pytest.raises(ValueError) as raised:
        initial_values(text, SearchSpace.from_dict(space), BPR)
    for fragment in fragments:
        assert fragment in str(raised.value), str(raised.value)
