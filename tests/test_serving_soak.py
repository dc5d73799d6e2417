"""Soak test of the development server (issue 15 §3): 8 clients at once, mixing valid and invalid requests, over
loopback, for ``--soak-seconds`` seconds (default 15 here; ``bench/reliability.py`` runs 60 s and records the
figures). Every valid request succeeds with the same answer as the model in-process; every invalid one gets its
own gRPC code; the server serves on afterwards.
"""
import threading
import time

import grpc
import numpy as np
import pytest

import kill_harness as harness
import serving_testlib as lib
import sizes
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top

from serving import dev_server  # pylint: disable=g-import-not-at-top

pytestmark = pytest.mark.slow
SOAK_S = sizes.current().soak_seconds
CLIENTS = 8


def request(inputs, signature="serving_default", model=lib.MODEL_NAME):
    req = predict_pb2.PredictRequest()
    req.model_spec.name, req.model_spec.signature_name = model, signature
    for name, value in inputs.items():
        req.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return req


def invalid_requests():
    """``(name, request, expected code)`` of the invalid kinds a client mixes in."""
    good = lib.session_inputs([[lib.ITEM_IDS[0], lib.ITEM_IDS[1]]])
    return [
        ("wrong dtype", request({**good, "items": good["items"].astype(np.float32)}),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("wrong rank", request({**good, "lengths": good["lengths"].reshape(1, 1)}), grpc.StatusCode.INVALID_ARGUMENT),
        ("missing input", request({k: v for k, v in good.items() if k != "k"}), grpc.StatusCode.INVALID_ARGUMENT),
        ("batch mismatch", request({**good, "k": np.array([5, 5], np.int32)}), grpc.StatusCode.INVALID_ARGUMENT),
        ("unknown signature", request(good, signature="nope"), grpc.StatusCode.FAILED_PRECONDITION),
        ("unknown model", request(good, model="other"), grpc.StatusCode.NOT_FOUND),
    ]


def soak(target: str, seconds: float, clients: int = CLIENTS, reference=None) -> dict:
    """Runs the soak; returns the counts (``valid``, ``valid_errors``, ``invalid``, ``invalid_wrong_code``...)."""
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    counts = {"valid": 0, "valid_errors": 0, "invalid": 0, "invalid_wrong_code": 0, "wrong_answers": 0,
              "errors_seen": []}
    bad = invalid_requests()

    def client(seed: int):
        rng = np.random.RandomState(seed)
        channel = grpc.insecure_channel(target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        local = {"valid": 0, "valid_errors": 0, "invalid": 0, "invalid_wrong_code": 0, "wrong_answers": 0}
        errors = []
        try:
            while time.monotonic() < stop:
                if rng.rand() < 0.5:
                    sessions = [list(rng.choice(lib.ITEM_IDS, rng.randint(1, 6))) for _ in range(rng.randint(1, 5))]
                    inputs = lib.session_inputs(sessions, k=int(rng.randint(1, 25)))
                    local["valid"] += 1
                    try:
                        response = stub.Predict(request(inputs), timeout=30)
                    except grpc.RpcError as err:
                        local["valid_errors"] += 1
                        errors.append(f"valid: {err.code().name}: {err.details()}")
                        continue
                    if reference is not None:
                        got = tf.make_ndarray(response.outputs["item_ids"])
                        if not np.array_equal(got, reference(inputs)):
                            local["wrong_answers"] += 1
                else:
                    name, req, code = bad[rng.randint(len(bad))]
                    local["invalid"] += 1
                    try:
                        stub.Predict(req, timeout=30)
                        local["invalid_wrong_code"] += 1
                        errors.append(f"{name}: accepted")
                    except grpc.RpcError as err:
                        if err.code() != code:
                            local["invalid_wrong_code"] += 1
                            errors.append(f"{name}: {err.code().name} instead of {code.name}: {err.details()}")
        finally:
            channel.close()
            with lock:
                for key, value in local.items():
                    counts[key] += value
                counts["errors_seen"] += errors[:5]

    threads = [threading.Thread(target=client, args=(seed,), daemon=True) for seed in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    counts["hung_clients"] = sum(t.is_alive() for t in threads)
    counts["seconds"] = time.monotonic() - started
    return counts


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("soak_models")
    path = lib.export_model(base, version=3)
    server = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=lib.free_port()).start()
    loaded = tf.saved_model.load(path)
    yield server, loaded
    server.stop()


def test_soak_8_clients_mixed_valid_and_invalid(served):
    server, loaded = served
    reference = lambda inputs: lib.run_signature(loaded, "serving_default", inputs)["item_ids"]  # noqa: E731
    counts = soak(server.target, SOAK_S, reference=reference)
    harness.record("soak", clients=CLIENTS, **{k: v for k, v in counts.items() if k != "errors_seen"})
    assert counts["hung_clients"] == 0 and counts["seconds"] < SOAK_S + 120
    assert counts["valid"] > 0 and counts["invalid"] > 0
    assert counts["valid_errors"] == 0 and counts["invalid_wrong_code"] == 0, counts["errors_seen"]
    assert counts["wrong_answers"] == 0
    channel = grpc.insecure_channel(server.target)  # still serving
    out = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
        request(lib.session_inputs([[lib.ITEM_IDS[0]]])), timeout=30)
    assert tf.make_ndarray(out.outputs["num_results"])[0] == 5
    channel.close()
