"""The development server's versions, as TF Serving's: the version policy (also read from serving/models.config),
polling the base path for new versions, unloading the others, NOT_FOUND for a version that is gone."""
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

import serving_testlib as lib
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import get_model_status_pb2  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import model_service_pb2_grpc  # pylint: disable=g-import-not-at-top
from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top

from serving import dev_server  # pylint: disable=g-import-not-at-top
from test_serving_dev_server import predict, request  # pylint: disable=g-import-not-at-top

ROOT = Path(__file__).resolve().parent.parent
INPUTS = lib.session_inputs([[lib.ITEM_IDS[0], lib.ITEM_IDS[1]]])


def test_policy_parse_and_select():
    assert dev_server.VersionPolicy.parse("latest:2") == dev_server.VersionPolicy("latest", 2)
    assert dev_server.VersionPolicy.parse("latest").select([4, 1, 9]) == [9]
    assert dev_server.VersionPolicy.parse("specific:3,1").versions == (1, 3)
    assert dev_server.VersionPolicy.parse("all").select([2, 1]) == [1, 2]
    for text in ("latest:0", "latest:x", "specific:", "specific:a", "all:3", "newest"):
        with pytest.raises(ValueError, match="version policy|num_versions|at least one"):
            dev_server.VersionPolicy.parse(text)


def test_policy_from_models_config(tmp_path):
    base, policy = dev_server.VersionPolicy.from_model_config(str(ROOT / "serving" / "models.config"), "gru4rec")
    assert (base, policy) == ("/models/gru4rec", dev_server.VersionPolicy("latest", 2))  # the grace version
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "m" base_path: "/b" model_platform: "tensorflow" '
                      'model_version_policy { specific { versions: 7 versions: 3 } } } }')
    assert dev_server.VersionPolicy.from_model_config(str(config), "m") == ("/b", dev_server.VersionPolicy(
        "specific", versions=(3, 7)))
    with pytest.raises(ValueError, match="no model named 'x'"):
        dev_server.VersionPolicy.from_model_config(str(config), "x")
    config.write_text("model_config_list { nonsense")
    with pytest.raises(ValueError, match="not a ModelServerConfig"):
        dev_server.VersionPolicy.from_model_config(str(config), "m")


def status_versions(server) -> list:
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(server.target))
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = lib.MODEL_NAME
    return [s.version for s in stub.GetModelStatus(req, timeout=10).model_version_status]


def test_poll_loads_new_versions_unloads_others_and_gone_is_not_found(tmp_path):
    lib.export_model(tmp_path, version=1, seed=1)
    server = dev_server.DevModelServer(str(tmp_path), lib.MODEL_NAME, port=lib.free_port(),
                                       version_policy=dev_server.VersionPolicy("latest", 2)).start()
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.target))
    try:
        assert server.versions == [1] and server.poll() == ([], [])
        lib.export_model(tmp_path, version=2, seed=2)
        assert server.poll() == ([2], [])
        assert status_versions(server) == [2, 1]
        old = predict(stub, request("serving_default", INPUTS, version=1))
        newest = stub.Predict(request("serving_default", INPUTS), timeout=10)
        assert newest.model_spec.version.value == 2  # no version: the newest loaded
        assert not np.array_equal(old["scores"], tf.make_ndarray(newest.outputs["scores"]))
        lib.export_model(tmp_path, version=3, seed=3)
        (tmp_path / "4").mkdir()  # no saved_model.pb yet: not a version
        assert server.poll() == ([3], [1])
        assert server.versions == [2, 3] and status_versions(server) == [3, 2]
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request("serving_default", INPUTS, version=1), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "Specific(gru4rec, 1)" in info.value.details()
        np.testing.assert_array_equal(predict(stub, request("serving_default", INPUTS, version=2))["scores"],
                                      tf.make_ndarray(newest.outputs["scores"]))  # version 2 unchanged
    finally:
        server.stop()


def test_a_version_that_fails_to_load_is_skipped(tmp_path):
    lib.export_model(tmp_path, version=1)
    server = dev_server.DevModelServer(str(tmp_path), lib.MODEL_NAME, port=lib.free_port())
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")
    assert server.poll() == ([], [])  # nothing loadable: version 1 keeps serving
    assert server.versions == [1]


@pytest.mark.slow  # ~15 s of waiting on the poll thread; test_poll_loads_... checks the same poll step directly
def test_polling_thread_picks_up_a_new_version(tmp_path):
    lib.export_model(tmp_path, version=1)
    server = dev_server.DevModelServer(str(tmp_path), lib.MODEL_NAME, port=lib.free_port(), poll_wait_s=0.2).start()
    try:
        lib.export_model(tmp_path, version=5, seed=5)
        deadline = time.monotonic() + 60
        while server.versions != [5] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.versions == [5]  # latest:1 by default: version 1 unloaded
    finally:
        server.stop()
    with pytest.raises(ValueError, match="poll_wait_s must be >= 0"):
        dev_server.DevModelServer(str(tmp_path), lib.MODEL_NAME, poll_wait_s=-1)
    with pytest.raises(ValueError, match="matches the version policy"):
        dev_server.DevModelServer(str(tmp_path), lib.MODEL_NAME,
                                  version_policy=dev_server.VersionPolicy("specific", versions=(9,)))


@pytest.mark.slow
def test_serve_command_reads_models_config(tmp_path):
    base = tmp_path / "models"
    lib.export_model(base, version=1)
    lib.export_model(base, version=2)
    config = tmp_path / "models.config"
    config.write_text((ROOT / "serving" / "models.config").read_text().replace("/models/gru4rec", str(base)))
    port = lib.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gru4rec_tf", "serve", "--model_config_file", str(config),
                             "--port", str(port), "--file_system_poll_wait_seconds", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert f"version 2 on 127.0.0.1:{port}" in proc.stdout.readline()
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        assert predict(stub, request("serving_default", INPUTS, version=1))["num_results"][0] == 5  # both loaded
        lib.export_model(base, version=3)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                stub.Predict(request("serving_default", INPUTS, version=1), timeout=10)
                time.sleep(0.2)
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.NOT_FOUND
                break
        else:
            raise AssertionError("version 1 was not unloaded after version 3 appeared")
        assert predict(stub, request("serving_default", INPUTS, version=3))["num_results"][0] == 5
    finally:
        proc.terminate()
        assert proc.wait(timeout=120) == 0
