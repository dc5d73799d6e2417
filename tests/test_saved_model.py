"""Tests of gru4rec_tf.export.saved_model: the SavedModel's signatures against the in-memory model (spec §8)."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gru4rec_tf  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.export import saved_model
from gru4rec_tf.export import signatures
from gru4rec_tf.export import topk
from gru4rec_tf.model import network as model_lib
from gru4rec_tf import params as params_lib

N_ITEMS = 60
INT_IDS = np.arange(1000, 1000 + 7 * N_ITEMS, 7, dtype=np.int64)  # original IDs unlike the indices
UNKNOWN = 5  # not an item ID
RNG = np.random.RandomState(0)


def make_model(params: str, n_items: int = N_ITEMS, seed: int = 3):
    model = model_lib.GRU4Rec(n_items, params_lib.GRU4RecParams.from_string(params), seed=seed)
    model.item_bias.assign(np.random.RandomState(seed).normal(0, 0.1, n_items).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def int_export(tmp_path_factory):
    model = make_model("layers=16/12,n_sample=0,constrained_embedding=True")
    vocab = ItemVocabulary(INT_IDS)
    path = saved_model.export_saved_model(model, vocab, str(tmp_path_factory.mktemp("int") / "1"), max_k=100)
    return model, vocab, path, tf.saved_model.load(path)


@pytest.fixture(scope="module")
def str_export(tmp_path_factory):
    model = make_model("layers=10,embedding=6,n_sample=0,constrained_embedding=False", n_items=30)
    vocab = ItemVocabulary(np.array([f"item {i}\t#" for i in range(30)], dtype=object))
    path = saved_model.export_saved_model(model, vocab, str(tmp_path_factory.mktemp("str") / "7"), max_k=8)
    return model, vocab, path, tf.saved_model.load(path)


# ---- reference: the in-memory model, stepping only over known items ------------------------------------------------


def reference(model, vocab, session, k, excluded=(), candidates=None):
    """Top-k IDs, scores and final state of the in-memory model for one session of original IDs."""
    states = model.initial_states(1)
    scores = None
    for idx in vocab.lookup(np.asarray(session, dtype=vocab.item_ids.dtype)) if len(session) else []:
        if idx >= 0:
            scores, states = model((tf.constant([idx]), states))
    if scores is None:
        return np.zeros(0, vocab.item_ids.dtype), np.zeros(0, np.float32), np.concatenate(states, axis=1)[0]
    scores = scores.numpy()[0]
    rankable = np.ones(model.n_items, bool)
    if candidates is not None:
        rankable[:] = False
        rankable[[i for i in vocab.lookup(np.asarray(candidates, dtype=vocab.item_ids.dtype)) if i >= 0]] = True
    rankable[[i for i in vocab.lookup(np.asarray(excluded, dtype=vocab.item_ids.dtype)) if i >= 0]] = False
    order = [i for i in np.argsort(-scores, kind="stable") if rankable[i]][:k]
    return vocab.item_ids[order], scores[order], np.concatenate(states, axis=1)[0]


def random_session(vocab, length, p_unknown=0.2):
    ids = list(RNG.choice(vocab.item_ids, size=length))
    return [UNKNOWN if RNG.rand() < p_unknown else i for i in ids]


def session_inputs(sessions, k, exclude_seen=False, dtype=tf.int64, pad=-1):
    width = max([len(s) for s in sessions] + [1])
    items = np.array([list(s) + [pad] * (width - len(s)) for s in sessions], dtype=object).reshape(-1, width)
    return {"items": tf.constant(items.tolist() if len(sessions) else np.zeros([0, width]), dtype),
            "lengths": tf.constant([len(s) for s in sessions], tf.int32),
            "k": tf.constant([k] * len(sessions), tf.int32),
            "exclude_seen": tf.constant(np.array([exclude_seen] * len(sessions), dtype=bool))}


def step_inputs(items, state, k, exclude=None, dtype=tf.int64, pad=-1):
    exclude = exclude or [[pad]] * len(items)
    width = max(len(e) for e in exclude)
    return {"items": tf.constant(items, dtype), "state": tf.constant(state, tf.float32),
            "k": tf.constant([k] * len(items), tf.int32),
            "exclude": tf.constant([list(e) + [pad] * (width - len(e)) for e in exclude], dtype)}


def check_row(out, row, ref_ids, ref_scores, ref_state=None):
    n = int(out["num_results"][row])
    assert n == len(ref_ids)
    np.testing.assert_array_equal(out["item_ids"].numpy()[row, :n], ref_ids)
    np.testing.assert_allclose(out["scores"].numpy()[row, :n], ref_scores, rtol=1e-6, atol=1e-6)
    if ref_state is not None:
        np.testing.assert_allclose(out["state"].numpy()[row], ref_state, rtol=1e-6, atol=1e-6)


# ---- tests -----------------------------------------------------------------------------------------------------------


def test_session_signature_equals_in_memory_model(int_export):
    model, vocab, _, loaded = int_export
    sessions = [random_session(vocab, n) for n in (1, 2, 5, 9, 3)]
    out = loaded.signatures["serving_default"](**session_inputs(sessions, k=10))
    for row, session in enumerate(sessions):
        ids, scores, state = reference(model, vocab, session, 10)
        check_row(out, row, ids, scores, state)
        assert out["num_unknown"].numpy()[row] == sum(1 for i in session if i == UNKNOWN)


def test_step_with_carried_state_equals_whole_session(int_export):
    model, vocab, _, loaded = int_export
    sessions = [random_session(vocab, 6, p_unknown=0.3) for _ in range(3)]
    state = np.zeros([3, 28], np.float32)
    for t in range(6):
        out = loaded.signatures["step"](**step_inputs([s[t] for s in sessions], state, k=7))
        state = out["state"].numpy()
        whole = loaded.signatures["serving_default"](**session_inputs([s[:t + 1] for s in sessions], k=7))
        for row, session in enumerate(sessions):
            ids, scores, ref_state = reference(model, vocab, session[:t + 1], 7)
            check_row(out, row, ids, scores, ref_state)
            check_row(whole, row, ids, scores, ref_state)
            assert out["num_unknown"].numpy()[row] == int(session[t] == UNKNOWN)


def test_exclusions(int_export):
    model, vocab, _, loaded = int_export
    session = list(vocab.item_ids[:4]) + [UNKNOWN]
    out = loaded.signatures["serving_default"](**session_inputs([session], k=N_ITEMS, exclude_seen=True))
    ids, scores, _ = reference(model, vocab, session, N_ITEMS, excluded=session)
    check_row(out, 0, ids, scores)
    assert out["num_results"].numpy()[0] == N_ITEMS - 4  # every item but the 4 seen ones
    assert not set(out["item_ids"].numpy()[0, :N_ITEMS - 4]) & set(session)
    state = out["state"].numpy()
    seen = session + [vocab.item_ids[5]]
    step = loaded.signatures["step"](**step_inputs([vocab.item_ids[5]], state, k=5, exclude=[seen]))
    ids, scores, _ = reference(model, vocab, seen, 5, excluded=seen)
    check_row(step, 0, ids, scores)


def test_candidate_restriction(int_export):
    model, vocab, _, loaded = int_export
    session = list(vocab.item_ids[10:13])
    candidates = [vocab.item_ids[3], UNKNOWN, vocab.item_ids[40], vocab.item_ids[3], vocab.item_ids[11],
                  vocab.item_ids[20]]  # an unknown ID and a duplicate are ignored
    inputs = session_inputs([session], k=10, exclude_seen=True)
    out = loaded.signatures["serving_candidates"](**inputs, candidates=tf.constant([candidates], tf.int64))
    ids, scores, _ = reference(model, vocab, session, 10, excluded=session, candidates=candidates)
    assert len(ids) == 3  # item 11 is excluded as seen
    check_row(out, 0, ids, scores)
    step = loaded.signatures["step_candidates"](**step_inputs([vocab.item_ids[12]], out["state"].numpy() * 0, k=2),
                                                candidates=tf.constant([candidates], tf.int64))
    ids, scores, _ = reference(model, vocab, [vocab.item_ids[12]], 2, candidates=candidates)
    check_row(step, 0, ids, scores)


def test_defined_results_for_degenerate_requests(int_export):
    _, vocab, _, loaded = int_export
    sessions = [[], [UNKNOWN, UNKNOWN], [vocab.item_ids[0]], [vocab.item_ids[0]], [vocab.item_ids[0], -1]]
    inputs = session_inputs(sessions, k=3)
    inputs["k"] = tf.constant([3, 3, 0, -4, 10_000])
    out = loaded.signatures["serving_default"](**inputs)
    np.testing.assert_array_equal(out["num_results"], [0, 0, 0, 0, N_ITEMS])  # k clipped to the catalogue
    np.testing.assert_array_equal(out["num_unknown"], [0, 2, 0, 0, 1])
    assert out["item_ids"].shape == (5, N_ITEMS)
    assert (out["item_ids"].numpy()[:4] == -1).all() and (out["scores"].numpy()[:4] == signatures.PAD_SCORE).all()
    zero = np.zeros([2, 28], np.float32)
    step = loaded.signatures["step"](**step_inputs([UNKNOWN, vocab.item_ids[1]], zero, k=3))
    np.testing.assert_array_equal(step["num_results"], [0, 3])
    np.testing.assert_array_equal(step["state"].numpy()[0], zero[0])  # unknown: state unchanged
    empty = loaded.signatures["serving_default"](**session_inputs([], k=3))
    assert empty["item_ids"].shape[0] == 0


def test_one_hot_input_mode_and_relu(tmp_path):
    model = make_model("layers=9/7,embedding=0,constrained_embedding=False,hidden_act=relu,n_sample=0", n_items=25)
    vocab = ItemVocabulary(np.arange(25) * 2)
    loaded = tf.saved_model.load(saved_model.export_saved_model(model, vocab, str(tmp_path / "1"), write_warmup=False))
    sessions = [[0, 4, 3, 48], [10]]  # 3 is unknown
    out = loaded.signatures["serving_default"](**session_inputs(sessions, k=6))
    for row, session in enumerate(sessions):
        check_row(out, row, *reference(model, vocab, session, 6))


def test_mismatched_batch_sizes_raise(int_export):
    _, vocab, _, loaded = int_export
    inputs = session_inputs([[vocab.item_ids[0]]], k=3)
    inputs["k"] = tf.constant([3, 3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="input k differs from input items"):
        loaded.signatures["serving_default"](**inputs)
    step = step_inputs([vocab.item_ids[0]], np.zeros([2, 28], np.float32), k=3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="input state differs from input items"):
        loaded.signatures["step"](**step)


def test_string_ids(str_export):
    model, vocab, _, loaded = str_export
    session = [vocab.item_ids[3], "not an item", vocab.item_ids[7]]
    inputs = session_inputs([session], k=100, dtype=tf.string, pad="")
    out = loaded.signatures["serving_default"](**inputs)
    ids, scores, state = reference(model, vocab, session, 8)  # max_k=8 clips k
    assert out["item_ids"].dtype == tf.string
    n = int(out["num_results"][0])
    assert [i.decode() for i in out["item_ids"].numpy()[0, :n]] == list(ids)
    np.testing.assert_allclose(out["scores"].numpy()[0, :n], scores, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["state"].numpy()[0], state, rtol=1e-6, atol=1e-6)
    assert out["num_unknown"].numpy()[0] == 1


def _called_functions(attrs):
    for value in attrs.values():
        if value.HasField("func"):
            yield value.func.name
        yield from (f.name for f in value.list.func)


def _serving_device_strings(meta_graph):
    """Device strings of every node reachable from a signature (serving and ``__saved_model_init_op``).

    TF's own checkpoint save/restore functions pin their file I/O to the CPU; nothing serving-related may.
    """
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    todo = [info.name.split(":")[0] for sig in meta_graph.signature_def.values()
            for info in list(sig.outputs.values()) + list(sig.inputs.values())]
    seen_nodes, seen_functions, found = set(), set(), []
    while todo:
        name = todo.pop().lstrip("^").split(":")[0]
        if name in seen_nodes or name not in nodes:
            continue
        seen_nodes.add(name)
        node = nodes[name]
        found += [node.device] if node.device else []
        todo += list(node.input)
        pending = list(_called_functions(node.attr))
        while pending:
            fname = pending.pop()
            if fname in seen_functions or fname not in functions:
                continue
            seen_functions.add(fname)
            for fnode in functions[fname].node_def:
                found += [fnode.device] if fnode.device else []
                pending += list(_called_functions(fnode.attr))
    assert len(seen_functions) > 4  # the four signatures and what they call were walked
    return found


def test_no_pinned_devices(int_export, str_export, blocked_export):
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
    for _, _, path, _ in (int_export, str_export, blocked_export):
        saved = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved.ParseFromString(f.read())
        for meta_graph in saved.meta_graphs:
            assert _serving_device_strings(meta_graph) == []
        assert set(saved.meta_graphs[0].signature_def) >= set(signatures.SIGNATURES)


# Ops of the serving graph, all available in TF Serving releases long before the exporting TensorFlow 2.21. A new op
# here may not load in the pinned tensorflow/serving image (serving/Dockerfile): check before extending the list.
SERVING_OPS = {
    "AddV2", "Any", "AssignVariableOp", "BroadcastTo", "Cast", "ConcatV2", "Const", "ExpandDims", "Fill", "FloorDiv",
    "FloorMod", "GatherV2", "Greater", "GreaterEqual", "HashTableV2", "Identity", "InitializeTableFromTextFileV2",
    "Less", "LogicalAnd", "LogicalNot", "LogicalOr", "LookupTableFindV2", "MatMul", "Max", "Maximum", "Minimum",
    "Mul", "NoOp", "NotEqual", "Pack", "Placeholder", "Prod", "Range", "ReadVariableOp", "Reshape",
    "ResourceGather", "ScatterNd", "SelectV2", "Shape", "Sigmoid", "Split", "SplitV", "Squeeze",
    "StatefulPartitionedCall", "StridedSlice", "Sub", "Sum", "Tanh", "TopKV2", "VarHandleOp", "VarIsInitializedOp",
    "Where", "While", "If", "Relu", "Select", "StatelessWhile", "StatelessIf", "PartitionedCall", "All", "Assert",
    "Equal"}


def test_uses_only_long_standing_ops(int_export, str_export, blocked_export):
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
    for _, _, path, _ in (int_export, str_export, blocked_export):
        saved = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved.ParseFromString(f.read())
        graph = saved.meta_graphs[0].graph_def
        nodes = list(graph.node)
        for function in graph.library.function:
            if "traced_save" not in function.signature.name and "traced_restore" not in function.signature.name:
                nodes += list(function.node_def)
        ops = {node.op for node in nodes}
        assert ops <= SERVING_OPS, sorted(ops - SERVING_OPS)
        # No sparse read of a float variable (W_y, E, Wx): a ResourceGather switches a variable to copy-on-read mode,
        # and then every dense read of it (the scoring matmul) copies the whole item matrix per request.
        gathered = {tf.dtypes.as_dtype(node.attr["dtype"].type) for node in nodes if node.op == "ResourceGather"}
        assert tf.float32 not in gathered


def test_warmup_requests_run(int_export, str_export):
    from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
    for _, _, path, loaded in (int_export, str_export):
        records = list(tf.data.TFRecordDataset(os.path.join(path, "assets.extra", signatures.WARMUP_FILE)))
        replayed = []
        for record in records:
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            request = log.predict_log.request
            inputs = {key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()}
            out = loaded.signatures[request.model_spec.signature_name](**inputs)
            assert out["num_results"].numpy()[0] > 0
            replayed.append(request.model_spec.signature_name)
        assert sorted(replayed) == sorted(signatures.SIGNATURES)


def test_export_info_and_asset(int_export):
    _, vocab, path, _ = int_export
    info = saved_model.read_export_info(path)
    assert info["n_items"] == N_ITEMS and info["state_size"] == 28 and info["id_dtype"] == "int64"
    with open(os.path.join(path, "assets", signatures.VOCAB_ASSET), encoding="utf-8") as f:
        assert f.read().split() == [str(i) for i in vocab.item_ids]


def test_module_level_imports_exclude_grpc_and_tensorflow_serving():
    """No module of the export (the front and the parts it is made of) needs gRPC, TF Serving, TFX or Beam to import."""
    paths = sorted(Path(saved_model.__file__).parent.glob("*.py"))
    assert {"saved_model.py", "serving_module.py", "topk.py", "warmup.py", "export_dir.py"} <= {p.name for p in paths}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        names = [alias.name for node in top_level for alias in node.names] + [
            node.module for node in top_level if isinstance(node, ast.ImportFrom)]
        heavy = [n for n in names if n and n.split(".")[0] in ("grpc", "tensorflow_serving", "tfx", "apache_beam")]
        assert not heavy, f"{path.name} imports {heavy} at module level"


def test_refuses_non_empty_dir_and_bad_arguments(int_export, tmp_path):
    model, vocab, path, _ = int_export
    with pytest.raises(ValueError, match="not empty"):
        saved_model.export_saved_model(model, vocab, path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no saved_model.pb"):
        saved_model.export_saved_model(model, vocab, str(tmp_path / "data"), overwrite=True)
    assert (tmp_path / "data" / "precious.txt").exists()
    small, small_vocab = make_model("layers=4,n_sample=0", n_items=6), ItemVocabulary(np.arange(6))
    target = str(tmp_path / "models" / "1")
    saved_model.export_saved_model(small, small_vocab, target, max_k=3, write_warmup=False)
    saved_model.export_saved_model(small, small_vocab, target, max_k=2, write_warmup=False, overwrite=True)
    assert saved_model.read_export_info(target)["max_k"] == 2
    assert os.listdir(tmp_path / "models") == ["1"]  # no staging or old directories left behind
    with pytest.raises(ValueError, match="max_k"):
        saved_model.export_saved_model(model, vocab, str(tmp_path / "1"), max_k=0)
    with pytest.raises(ValueError, match="vocabulary has"):
        saved_model.export_saved_model(model, ItemVocabulary(INT_IDS[:5]), str(tmp_path / "2"))
    assert not os.path.exists(tmp_path / "1") and not os.path.exists(tmp_path / "2")


@pytest.mark.slow
def test_export_command(tmp_path):
    from gru4rec_tf.model import model_dir  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.commands import export as export_cmd  # pylint: disable=g-import-not-at-top
    with pytest.raises(ValueError, match="numeric version"):
        export_cmd.check_version_dir(str(tmp_path / "models" / "latest"))
    model = make_model("layers=8,n_sample=0", n_items=20)
    model_dir.save_model(str(tmp_path / "model"), model, ItemVocabulary(np.arange(20)))
    out = tmp_path / "models" / "gru4rec" / "3"
    result = subprocess.run([sys.executable, "-m", "gru4rec_tf", "export", "--model", str(tmp_path / "model"),
                             "--output", str(out), "--max_k", "5"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(out)
    assert saved_model.read_export_info(str(out))["max_k"] == 5


def test_export_command_names_its_own_flags_in_errors(tmp_path):
    from gru4rec_tf.commands import export as export_cmd  # pylint: disable=g-import-not-at-top
    target = tmp_path / "models" / "1"
    target.mkdir(parents=True)
    (target / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ValueError, match="pass --overwrite to replace it, or choose a new version directory"):
        export_cmd.check_output(str(target), overwrite=False)
    export_cmd.check_output(str(target), overwrite=True)  # an existing SavedModel may be replaced
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"^--output .*file exists and is not a directory"):
        export_cmd.check_output(str(tmp_path / "file"), overwrite=True)


# ---- the exact two-stage top-k and the exclusion paths ------------------------------------------------------------


@pytest.mark.parametrize("n,block", [(60, 7), (60, 6), (61, 1), (100, 33), (50, 64)])
def test_blocked_top_k_equals_top_k_with_ties(n, block):
    rng = np.random.RandomState(n + block)
    scores = rng.randint(-3, 3, size=[9, n]).astype(np.float32)  # many ties
    scores[0] = 1.0  # a row of equal scores
    scores[1, rng.rand(n) < 0.5] = -np.inf
    scores[2] = -np.inf
    for k in sorted({0, 1, 3, 7, min(20, n), n}):
        values, indices = topk.blocked_top_k(tf.constant(scores), tf.constant(k), block)
        ref_values, ref_indices = tf.math.top_k(scores, k)
        np.testing.assert_array_equal(indices, ref_indices)
        np.testing.assert_array_equal(values, ref_values)
    empty = topk.blocked_top_k(tf.zeros([0, n]), 3, block)
    assert empty[1].shape == (0, 3)


def test_default_top_k_block():
    assert topk.default_top_k_block(1000) is None
    assert topk.default_top_k_block(100_000) == 80  # a divisor near sqrt(100,000 / 20)
    assert topk.default_top_k_block(1_000_000) == 200
    assert topk.default_top_k_block(100_003) == 71  # no divisor near 71: the last block is padded


@pytest.fixture(scope="module")
def blocked_export(tmp_path_factory):
    """Tied scores (duplicated item vectors and biases) and a block size that does not divide the catalogue."""
    model = make_model("layers=16/12,n_sample=0,constrained_embedding=True")
    vectors, bias = model.item_vectors.numpy(), model.item_bias.numpy()
    for dup, src in [(7, 3), (8, 3), (30, 3), (41, 12), (59, 0), (22, 12)]:
        vectors[dup], bias[dup] = vectors[src], bias[src]
    model.item_vectors.assign(vectors)
    model.item_bias.assign(bias)
    vocab = ItemVocabulary(INT_IDS)
    path = saved_model.export_saved_model(model, vocab, str(tmp_path_factory.mktemp("blocked") / "1"), max_k=100,
                                     top_k_block=7)
    return model, vocab, path, tf.saved_model.load(path)


def test_blocked_export_equals_in_memory_model_with_ties(blocked_export):
    model, vocab, _, loaded = blocked_export
    tied = [vocab.item_ids[i] for i in (3, 7, 8, 30, 12, 41, 22, 0, 59)]
    sessions = [random_session(vocab, n) for n in (1, 4, 6)] + [tied[:3], tied[3:]]
    for k in (1, 5, N_ITEMS):
        out = loaded.signatures["serving_default"](**session_inputs(sessions, k=k))
        seen = loaded.signatures["serving_default"](**session_inputs(sessions, k=k, exclude_seen=True))
        for row, session in enumerate(sessions):
            check_row(out, row, *reference(model, vocab, session, k))
            check_row(seen, row, *reference(model, vocab, session, k, excluded=session))
    state = np.zeros([len(sessions), 28], np.float32)
    exclude = [tied[:4], [], tied + [UNKNOWN, tied[1]], [vocab.item_ids[5]] * 3, [-1, tied[0]]]
    for k in (3, N_ITEMS):
        step = loaded.signatures["step"](**step_inputs([s[0] for s in sessions], state, k=k, exclude=exclude))
        for row, session in enumerate(sessions):
            check_row(step, row, *reference(model, vocab, session[:1], k, excluded=exclude[row]))


def test_long_exclusion_lists_take_the_mask_path_with_the_same_results(blocked_export, int_export):
    """Past MAX_FILTERED_EXCLUSIONS IDs the [B, n] mask is used; the same request under it gives the same rows."""
    for _, vocab, _, loaded in (blocked_export, int_export):
        rng = np.random.RandomState(1)
        short = [list(rng.choice(vocab.item_ids, 12)) + [UNKNOWN] for _ in range(3)]
        pad = [-1] * topk.MAX_FILTERED_EXCLUSIONS
        state = rng.normal(0, 0.3, [3, 28]).astype(np.float32)
        for k in (4, N_ITEMS):
            items = [vocab.item_ids[1], UNKNOWN, vocab.item_ids[2]]
            a = loaded.signatures["step"](**step_inputs(items, state, k=k, exclude=short))
            b = loaded.signatures["step"](**step_inputs(items, state, k=k, exclude=[pad + e for e in short]))
            for key in ("item_ids", "scores", "num_results", "state"):
                np.testing.assert_array_equal(a[key], b[key])
            np.testing.assert_array_equal(a["num_results"], [min(k, N_ITEMS - len(set(e) - {UNKNOWN}))
                                                            for e in short])
