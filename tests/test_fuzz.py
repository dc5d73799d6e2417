"""Fuzzed inputs and requests (issue 15 §3), property-based (Hypothesis): every case ends in a result or one clear
error (a ValueError/DataError naming the problem, or the right gRPC status code), never a crash, a hang or a
partial output, and the development server keeps serving afterwards.

Targets: parameter strings and files, click-log files (encodings, delimiters, quotes, huge/negative numbers,
NaN/inf, empty fields, BOMs, CRLF), and PredictRequests to the development server over loopback (wrong dtypes,
ranks, shapes, empty batches, unknown IDs, ``k`` of every sign and size, huge ``exclude``/``candidates``).
``--fuzz-examples`` sets the examples per target (default 40; ``bench/reliability.py`` runs more);
``--reliability-log`` names a JSON-lines file that receives every case's outcome (the figures of
``bench/results/reliability.md``). Options: ``tests/conftest.py``.
"""
import json
import math

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import serving_testlib as lib
import sizes
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top

from gru4rec_tf import params as params_lib
from gru4rec_tf.export import signatures
from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.data.event_log import load_events
from serving import dev_server  # pylint: disable=g-import-not-at-top

pytestmark = pytest.mark.slow
EXAMPLES = sizes.current().fuzz_examples
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


def log(target: str, case, outcome: str) -> None:
    path = sizes.current().reliability_log
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"kind": "fuzz", "target": target, "case": str(case)[:160],
                                     "outcome": outcome[:300]}) + "\n")


def assert_clear(err: BaseException) -> str:
    """One clear error: a non-empty single-line-ish message, not an internal exception text."""
    text = str(err)
    assert text.strip(), f"{type(err).__name__} without a message"
    assert "Traceback" not in text
    return text


# ---------------------------------------------------------------------------------------------------- parameters
NAMES = list(params_lib._known_names()) + ["elu_param", "n_epoch", "", " layers", "LAYERS", "layers "]  # noqa: SLF001
NUMBERS = st.one_of(st.integers(min_value=-10**30, max_value=10**30).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["nan", "inf", "-inf", "1e400", "-0", "0x10", "1_000", "", " ", "True", "none",
                                     "100/100", "100//", "/", "0/0", "-5/3", "elu-0.5", "softmax", "elu-", "tanh",
                                     "bpr-max", "cross-entropy", "top1", "linear", "relu", "elu-nan", "leaky-1e9"]))
VALUES = st.one_of(NUMBERS, st.text(max_size=12))
PAIR = st.tuples(st.sampled_from(NAMES), VALUES).map(lambda kv: f"{kv[0]}={kv[1]}")
PARAM_STRINGS = st.one_of(st.lists(PAIR, max_size=6).map(",".join), st.text(max_size=40))


def _parse(text: str):
    try:
        result = params_lib.GRU4RecParams.from_string(text)
    except ValueError as err:
        return "error: " + assert_clear(err)
    assert isinstance(result, params_lib.GRU4RecParams)
    assert all(n > 0 for n in result.layers) and result.batch_size > 0
    return "ok"


@FUZZ
@given(PARAM_STRINGS)
def test_parameter_strings(text):
    log("parameter string", text, _parse(text))


@FUZZ
@given(suffix=st.sampled_from([".py", ".json", ".txt", ""]), body=st.one_of(
    PARAM_STRINGS.map(lambda s: s.replace(",", "\n")),
    st.lists(PAIR, max_size=5).map(lambda ps: "{" + ",".join(
        '"{}": {}'.format(*p.split("=", 1)) for p in ps) + "}"),
    st.lists(PAIR, max_size=5).map(lambda ps: "gru4rec_params = OrderedDict([" + ",".join(
        "('{}', {})".format(*p.split("=", 1)) for p in ps) + "])"),
    st.text(max_size=60), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))),
    encoding=st.sampled_from(["utf-8", "utf-16", "latin-1", "utf-8-sig"]))
def test_parameter_files(tmp_path_factory, suffix, body, encoding):
    path = tmp_path_factory.mktemp("params") / f"params{suffix}"
    try:
        path.write_bytes(body.encode(encoding))
    except UnicodeEncodeError:
        path.write_bytes(body.encode("utf-8", "replace"))
    try:
        params_lib.GRU4RecParams.from_file(path)
        outcome = "ok"
    except ValueError as err:
        outcome = "error: " + assert_clear(err)
        assert str(path) in str(err) or path.name in str(err), str(err)  # names the file
    log("parameter file", (suffix, encoding, body), outcome)


# ------------------------------------------------------------------------------------------------ click-log rows
FIELDS = st.one_of(
    st.integers(min_value=-2**70, max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", " ", "NaN", "nan", "inf", "-inf", "NULL", '"1"', '"1,2"', "'3'", '""', "1e308", "1e309",
                     "9223372036854775808", "-9223372036854775809", "0x1F", "1 000", "١٢", "ä", "\t", '"a""b"']),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6))
ROWS = st.lists(st.tuples(FIELDS, FIELDS, FIELDS), min_size=0, max_size=12)


@FUZZ
@given(rows=ROWS, delimiter=st.sampled_from([",", ";", "\t", "|"]), newline=st.sampled_from(["\n", "\r\n", "\r"]),
       bom=st.booleans(), encoding=st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1252"]),
       suffix=st.sampled_from([".csv", ".tsv", ".txt"]), quote_header=st.booleans())
def test_click_log_rows(tmp_path_factory, rows, delimiter, newline, bom, encoding, suffix, quote_header):
    header = ["SessionId", "ItemId", "Time"]
    if quote_header:
        header = [f'"{h}"' for h in header]
    text = newline.join([delimiter.join(header)] + [delimiter.join(r) for r in rows]) + newline
    data = text.encode(encoding, "replace") if encoding != "utf-16" else text.encode("utf-16")
    if bom and encoding == "utf-8":
        data = b"\xef\xbb\xbf" + data
    path = tmp_path_factory.mktemp("clicks") / f"clicks{suffix}"
    path.write_bytes(data)
    try:
        events = load_events(path, delimiter=None if suffix != ".txt" else delimiter)
    except DataError as err:
        message = assert_clear(err)
        assert message.startswith(str(path)), message  # names the file
        log("click-log file", (encoding, repr(delimiter), repr(newline), bom, rows[:3]), "error: " + message)
        return
    except ValueError as err:  # an unsupported option, worded as such
        log("click-log file", (encoding, repr(delimiter), rows[:3]), "error: " + assert_clear(err))
        return
    assert list(events.columns) == ["SessionId", "ItemId", "Time"] and len(events) > 0
    assert events.Time.dtype == np.float64 and not events.Time.isna().any()
    assert not events.SessionId.isna().any() and not events.ItemId.isna().any()
    log("click-log file", (encoding, repr(delimiter), repr(newline), bom, rows[:3]), f"ok: {len(events)} events")


# ----------------------------------------------------------------------------------------------------- requests
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz_models")
    lib.export_model(base, version=1)
    served = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=lib.free_port()).start()
    channel = grpc.insecure_channel(served.target)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()
    served.stop()


INPUTS = {signatures.SIGNATURE_SESSION: ("items", "lengths", "k", "exclude_seen"),
          signatures.SIGNATURE_STEP: ("items", "state", "k", "exclude"),
          signatures.SIGNATURE_SESSION_CANDIDATES: ("items", "lengths", "k", "exclude_seen", "candidates"),
          signatures.SIGNATURE_STEP_CANDIDATES: ("items", "state", "k", "exclude", "candidates")}
RANK = {"items": None, "lengths": 1, "k": 1, "exclude_seen": 1, "state": 2, "exclude": 2, "candidates": 2}
DTYPES = [np.int64, np.int32, np.float32, np.float64, np.bool_, object]
INT32 = st.integers(min_value=-2**31, max_value=2**31 - 1)
IDS = st.one_of(st.sampled_from(lib.ITEM_IDS.tolist()), st.integers(min_value=-2**63, max_value=2**63 - 1),
                st.just(-1))


@st.composite
def tensors(draw, name: str, batch: int):
    """A value for input ``name``: mostly well-formed, sometimes of a wrong dtype, rank or batch size."""
    rank = RANK[name] if RANK[name] is not None else draw(st.sampled_from([1, 2]))
    if draw(st.integers(0, 9)) == 0:
        rank = draw(st.integers(0, 3))
    n = batch if draw(st.integers(0, 9)) else draw(st.integers(0, 5))
    shape = [n] + [draw(st.integers(0, 6)) for _ in range(rank - 1)] if rank else []
    if name == "state":
        shape = [n, lib.STATE_SIZE if draw(st.integers(0, 5)) else draw(st.integers(0, 40))][:max(rank, 0) or 0] \
            if rank == 2 else shape
    size = int(np.prod(shape)) if shape else 1
    if name == "k":
        values, dtype = draw(st.lists(INT32, min_size=size, max_size=size)), np.int32
    elif name in ("lengths",):
        values, dtype = draw(st.lists(st.integers(-5, 10), min_size=size, max_size=size)), np.int32
    elif name == "exclude_seen":
        values, dtype = draw(st.lists(st.booleans(), min_size=size, max_size=size)), np.bool_
    elif name == "state":
        values = draw(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=size,
                               max_size=size))
        dtype = np.float32
    else:
        values, dtype = draw(st.lists(IDS, min_size=size, max_size=size)), np.int64
    if draw(st.integers(0, 9)) == 0:
        dtype = draw(st.sampled_from(DTYPES))
    array = np.array(values, dtype=np.float64 if dtype in (np.float32, np.float64) else object).reshape(shape)
    if dtype is object:
        return array.astype(str).astype(bytes)
    with np.errstate(all="ignore"):
        try:
            return array.astype(dtype)
        except (OverflowError, ValueError):
            return array.astype(np.float64).astype(np.float32)


@st.composite
def requests(draw):
    signature = draw(st.one_of(st.sampled_from(list(INPUTS)), st.sampled_from(["", "nope", "SERVING_DEFAULT"])))
    names = list(INPUTS.get(signature or signatures.SIGNATURE_SESSION, INPUTS[signatures.SIGNATURE_SESSION]))
    if draw(st.integers(0, 9)) == 0 and names:
        names.remove(draw(st.sampled_from(names)))
    if draw(st.integers(0, 19)) == 0:
        names.append("extra")
    batch = draw(st.integers(0, 4))
    inputs = {name: draw(tensors(name if name in RANK else "k", batch)) for name in names}
    return signature, inputs


def predict(stub, signature, inputs, model=lib.MODEL_NAME):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    response = stub.Predict(request, timeout=30)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


ACCEPTED_CODES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)


def still_serving(stub):
    out = predict(stub, signatures.SIGNATURE_SESSION, lib.session_inputs([[lib.ITEM_IDS[0], lib.ITEM_IDS[1]]]))
    assert out["num_results"][0] == 5


@FUZZ
@given(case=requests())
def test_requests(server, case):
    signature, inputs = case
    summary = (signature, {k: (str(v.dtype), list(v.shape)) for k, v in inputs.items()})
    try:
        out = predict(server, signature, inputs)
    except grpc.RpcError as err:
        assert err.code() in ACCEPTED_CODES, (err.code(), err.details(), summary)
        assert err.details().strip()
        log("PredictRequest", summary, f"error {err.code().name}: {err.details()}")
    else:
        batch = len(inputs["k"])
        assert out["item_ids"].shape[0] == out["scores"].shape[0] == batch
        k = np.clip(inputs["k"].astype(np.int64), 0, None)
        assert (out["num_results"] <= np.minimum(k, 25)).all()  # max_k of the test export is 25
        assert np.isfinite(out["scores"]).all() or not np.isfinite(inputs.get("state", np.zeros(1))).all()
        log("PredictRequest", summary, "ok")
    still_serving(server)


@pytest.mark.parametrize("width", [0, 1, 10_000, 100_000, 400_000])
@pytest.mark.parametrize("signature", [signatures.SIGNATURE_STEP_CANDIDATES, signatures.SIGNATURE_SESSION_CANDIDATES])
def test_huge_exclude_and_candidates(server, signature, width):
    rng = np.random.RandomState(width)
    ids = np.where(rng.rand(2, width) < 0.5, rng.choice(lib.ITEM_IDS, (2, width)),
                   rng.randint(-10**12, 10**12, (2, width))).astype(np.int64)
    if signature == signatures.SIGNATURE_STEP_CANDIDATES:
        inputs = {**lib.step_inputs(lib.ITEM_IDS[:2], np.zeros([2, lib.STATE_SIZE]), k=2**31 - 1), "exclude": ids,
                  "candidates": ids[::-1].copy()}
    else:
        inputs = {**lib.session_inputs([lib.ITEM_IDS[:3], lib.ITEM_IDS[3:4]], k=7), "candidates": ids}
    size = sum(v.nbytes for v in inputs.values())
    if size > 4 * 2**20:  # over gRPC's default 4 MiB message limit: one clear error, and the server goes on
        with pytest.raises(grpc.RpcError) as info:
            predict(server, signature, inputs)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in info.value.details()
        log("PredictRequest", (signature, f"exclude/candidates width {width}"),
            f"error {info.value.code().name}: {info.value.details()}")
        still_serving(server)
        return
    out = predict(server, signature, inputs)
    known = [set(row) & set(lib.ITEM_IDS.tolist()) for row in inputs["candidates"].tolist()]
    for row, allowed in enumerate(known):
        got = out["item_ids"][row, :out["num_results"][row]].tolist()
        assert set(got) <= allowed
    log("PredictRequest", (signature, f"exclude/candidates width {width}"), "ok")
    still_serving(server)


def test_fuzz_budget_is_bounded():
    assert 1 <= EXAMPLES and math.isfinite(EXAMPLES)
