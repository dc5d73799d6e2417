"""The development gRPC server: raw PredictionService requests, bad requests, versions (loopback only)."""
import grpc
import numpy as np
import pytest

import serving_testlib as lib
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import get_model_metadata_pb2  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import get_model_status_pb2  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import model_service_pb2_grpc  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top

from serving import dev_server  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    lib.export_model(base, version=1, seed=1)
    path = lib.export_model(base, version=12, seed=2)  # the newest numeric version is served
    (base / "30.tmp").mkdir()  # ignored: not numeric
    (base / "40").mkdir()  # ignored: no saved_model.pb
    server = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=lib.free_port()).start()
    channel = grpc.insecure_channel(server.target)
    yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel), tf.saved_model.load(path)
    channel.close()
    server.stop()


def request(signature, inputs, model=lib.MODEL_NAME, version=None):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    for name, value in inputs.items():
        req.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return req


def predict(stub, req) -> dict:
    return {name: tf.make_ndarray(proto) for name, proto in stub.Predict(req, timeout=10).outputs.items()}


def good_request():
    return request("serving_default", lib.session_inputs([[lib.ITEM_IDS[0], lib.ITEM_IDS[1]]]))


def assert_rejected(stub, req, code, match):
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(req, timeout=10)
    assert info.value.code() == code, info.value.details()
    assert match in info.value.details()
    assert predict(stub, good_request())["num_results"][0] == 5  # still serving


def test_serves_newest_version_and_metadata(served):
    server, stub, _ = served
    assert server.loaded.version == 12
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = lib.MODEL_NAME
    response = stub.GetModelMetadata(req, timeout=10)
    assert response.model_spec.version.value == 12
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    step = signature_map.signature_def["step"]
    assert set(step.inputs) == {"items", "state", "k", "exclude"}
    assert [d.size for d in step.inputs["state"].tensor_shape.dim] == [-1, lib.STATE_SIZE]
    assert set(signature_map.signature_def) >= {"serving_default", "step", "serving_candidates", "step_candidates"}
    status_stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(server.target))
    status_req = get_model_status_pb2.GetModelStatusRequest()
    status_req.model_spec.name = lib.MODEL_NAME
    status = status_stub.GetModelStatus(status_req, timeout=10).model_version_status[0]
    assert status.version == 12 and status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def test_all_signatures_equal_in_process_saved_model(served):
    _, stub, loaded = served
    sessions = [[lib.ITEM_IDS[3], lib.UNKNOWN, lib.ITEM_IDS[9]], [lib.ITEM_IDS[1]]]
    candidates = {"candidates": np.array([lib.ITEM_IDS[:10], lib.ITEM_IDS[5:15]], np.int64)}
    state = np.random.RandomState(0).uniform(-0.5, 0.5, [2, lib.STATE_SIZE]).astype(np.float32)
    cases = [("serving_default", lib.session_inputs(sessions, k=7, exclude_seen=True)),
             ("serving_candidates", {**lib.session_inputs(sessions, k=7), **candidates}),
             ("step", lib.step_inputs([lib.ITEM_IDS[4], lib.UNKNOWN], state, k=3)),
             ("step_candidates", {**lib.step_inputs([lib.ITEM_IDS[4], lib.ITEM_IDS[2]], state, k=30), **candidates})]
    for signature, inputs in cases:
        remote, local = predict(stub, request(signature, inputs)), lib.run_signature(loaded, signature, inputs)
        assert set(remote) == set(local)
        for name in local:
            np.testing.assert_array_equal(remote[name], local[name], err_msg=f"{signature}: {name}")


def test_output_filter(served):
    _, stub, _ = served
    req = good_request()
    req.output_filter.extend(["item_ids", "num_results"])
    assert set(predict(stub, req)) == {"item_ids", "num_results"}
    req.output_filter.append("nope")
    assert_rejected(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "output_filter")


def test_wrong_dtype(served):
    _, stub, _ = served
    inputs = lib.session_inputs([[lib.ITEM_IDS[0]]])
    assert_rejected(stub, request("serving_default", {**inputs, "k": inputs["k"].astype(np.int64)}),
                    grpc.StatusCode.INVALID_ARGUMENT, "input 'k' must be int32, got int64")
    assert_rejected(stub, request("serving_default", {**inputs, "items": np.array([[b"500"]], dtype=object)}),
                    grpc.StatusCode.INVALID_ARGUMENT, "input 'items' must be int64, got string")


def test_wrong_shape(served):
    _, stub, _ = served
    inputs = lib.session_inputs([[lib.ITEM_IDS[0]]])
    assert_rejected(stub, request("serving_default", {**inputs, "items": inputs["items"][0]}),
                    grpc.StatusCode.INVALID_ARGUMENT, "input 'items' has shape [1]")
    bad_state = lib.step_inputs([lib.ITEM_IDS[0]], np.zeros([1, lib.STATE_SIZE + 1]))
    assert_rejected(stub, request("step", bad_state), grpc.StatusCode.INVALID_ARGUMENT, "input 'state' has shape")
    assert_rejected(stub, request("serving_default", {**inputs, "k": np.array([5, 5], np.int32)}),
                    grpc.StatusCode.INVALID_ARGUMENT, "same 0th (batch) dimension")


def test_missing_or_extra_inputs(served):
    _, stub, _ = served
    inputs = lib.session_inputs([[lib.ITEM_IDS[0]]])
    del inputs["exclude_seen"]
    assert_rejected(stub, request("serving_default", inputs), grpc.StatusCode.INVALID_ARGUMENT,
                    "Missing but required: {exclude_seen}")
    inputs = {**lib.session_inputs([[lib.ITEM_IDS[0]]]), "candidates": np.array([[1]], np.int64)}
    assert_rejected(stub, request("serving_default", inputs), grpc.StatusCode.INVALID_ARGUMENT,
                    "Sent extra: {candidates}")


def test_malformed_tensor(served):
    _, stub, _ = served
    req = good_request()
    req.inputs["lengths"].tensor_content = b"\x01\x00"  # 2 bytes for one int32
    assert_rejected(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "input 'lengths' is malformed")


def test_unknown_signature_model_and_version(served):
    _, stub, _ = served
    inputs = lib.session_inputs([[lib.ITEM_IDS[0]]])
    # TF Serving answers an unknown signature with FAILED_PRECONDITION (predict_util.cc); so does the dev server.
    assert_rejected(stub, request("nope", inputs), grpc.StatusCode.FAILED_PRECONDITION,
                    'Serving signature key "nope" not found')
    assert_rejected(stub, request("serving_default", inputs, model="other"), grpc.StatusCode.NOT_FOUND,
                    "Servable not found")
    assert_rejected(stub, request("serving_default", inputs, version=1), grpc.StatusCode.NOT_FOUND,
                    "Specific(gru4rec, 1)")


def test_defined_results(served):
    _, stub, _ = served
    # empty session, only unknown IDs, k <= 0, k > catalogue, an empty batch: defined results, not errors
    inputs = lib.session_inputs([[], [lib.UNKNOWN, lib.UNKNOWN], [lib.ITEM_IDS[0]], [lib.ITEM_IDS[0]]], k=3)
    inputs["k"] = np.array([3, 3, 0, 10_000], np.int32)
    out = predict(stub, request("serving_default", inputs))
    np.testing.assert_array_equal(out["num_results"], [0, 0, 0, 25])  # k clipped to max_k=25 (< 40 items)
    np.testing.assert_array_equal(out["num_unknown"], [0, 2, 0, 0])
    empty = predict(stub, request("serving_default", lib.session_inputs([])))
    assert empty["item_ids"].shape[0] == 0
    out = predict(stub, request("step", lib.step_inputs([lib.UNKNOWN], np.zeros([1, lib.STATE_SIZE]), k=-1)))
    assert out["num_results"][0] == 0 and out["num_unknown"][0] == 1


def test_latest_version_errors(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        dev_server.latest_version(str(tmp_path / "missing"))
    (tmp_path / "7").mkdir()
    with pytest.raises(ValueError, match="no version under"):
        dev_server.latest_version(str(tmp_path))
