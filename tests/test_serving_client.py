"""serving.client against the development server on loopback: results, state carrying, retries, errors."""
import threading
import time

import grpc
import numpy as np
import pytest

import serving_testlib as lib
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from serving import client as client_lib  # pylint: disable=g-import-not-at-top
from serving import dev_server  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    lib.export_model(base, version=3)
    return base


@pytest.fixture(scope="module")
def served(base_path):
    server = dev_server.DevModelServer(str(base_path), lib.MODEL_NAME, port=lib.free_port()).start()
    client = client_lib.GRU4RecClient(server.target, lib.MODEL_NAME, timeout_s=10)
    yield client, tf.saved_model.load(str(base_path / "3"))
    client.close()
    server.stop()


def test_info(served):
    client, _ = served
    info = client.info()
    assert (info.version, info.id_dtype, info.state_size) == (3, tf.int64, lib.STATE_SIZE)


def test_recommend_equals_in_process_saved_model(served):
    client, loaded = served
    sessions = [[lib.ITEM_IDS[2], lib.UNKNOWN, lib.ITEM_IDS[8]], [lib.ITEM_IDS[5]]]
    recs = client.recommend(sessions, k=6, exclude_seen=True)
    local = lib.run_signature(loaded, "serving_default", lib.session_inputs(sessions, k=6, exclude_seen=True))
    for row, rec in enumerate(recs):
        assert (rec.item_ids, rec.scores) == lib.top(local, row)
        np.testing.assert_array_equal(rec.state, local["state"][row])
    assert [r.num_unknown for r in recs] == [1, 0]
    assert not set(recs[0].item_ids) & set(sessions[0])
    candidates = [list(lib.ITEM_IDS[:4]), [lib.ITEM_IDS[9], lib.UNKNOWN]]
    recs = client.recommend(sessions, k=6, candidates=candidates)
    assert set(recs[0].item_ids) == set(lib.ITEM_IDS[:4]) and recs[1].item_ids == [lib.ITEM_IDS[9]]


def test_session_object_carries_state(served):
    client, loaded = served
    events = [lib.ITEM_IDS[1], lib.ITEM_IDS[7], lib.UNKNOWN, lib.ITEM_IDS[7], lib.ITEM_IDS[30]]
    session = client.session(k=5)
    for t, item in enumerate(events):
        rec = session.add(item)
        whole = lib.run_signature(loaded, "serving_default", lib.session_inputs([events[:t + 1]], k=5))
        assert (rec.item_ids, rec.scores) == lib.top(whole)
        np.testing.assert_array_equal(session.state, whole["state"][0])
    assert session.num_unknown == 1
    session.reset()
    assert not session.state.any() and session.seen == []


def test_session_object_exclusions_and_candidates(served):
    client, _ = served
    session = client.session(k=40, exclude_seen=True)
    for item in lib.ITEM_IDS[:3]:
        rec = session.add(item)
    assert len(rec.item_ids) == 25 and not set(rec.item_ids) & set(lib.ITEM_IDS[:3])  # max_k is 25
    restricted = client.session(k=5, candidates=lib.ITEM_IDS[10:13])
    assert sorted(restricted.add(lib.ITEM_IDS[0]).item_ids) == list(lib.ITEM_IDS[10:13])


def test_client_side_validation(served):
    client, _ = served
    with pytest.raises(ValueError, match="k must be a positive integer"):
        client.recommend([[lib.ITEM_IDS[0]]], k=0)
    with pytest.raises(ValueError, match="item IDs are integers"):
        client.recommend([["abc"]])
    with pytest.raises(ValueError, match="states must have shape"):
        client.step([lib.ITEM_IDS[0]], np.zeros([1, 3]))
    with pytest.raises(ValueError, match="max_attempts"):
        client_lib.GRU4RecClient("127.0.0.1:1", "m", max_attempts=0)


def test_server_errors_are_not_retried(served):
    client, _ = served
    start = time.monotonic()
    with pytest.raises(client_lib.PredictionError) as info:
        client.predict("nope", {"k": np.array([1], np.int32)})
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert time.monotonic() - start < 2
    wrong = client_lib.GRU4RecClient(client.target, "other", timeout_s=5)
    with pytest.raises(client_lib.PredictionError, match="NOT_FOUND"):
        wrong.recommend([[1]])


def test_bounded_retries_then_clear_error():
    port = lib.free_port()
    client = client_lib.GRU4RecClient(f"127.0.0.1:{port}", lib.MODEL_NAME, timeout_s=1, max_attempts=3,
                                      initial_backoff_s=0.05, max_backoff_s=0.1)
    calls = []
    original = client._call  # pylint: disable=protected-access

    def counting(method, request):
        calls.append(1)
        return original(method, request)

    start = time.monotonic()
    with pytest.raises(client_lib.ServerUnavailableError, match=r"UNAVAILABLE after 3 attempt\(s\)"):
        client.info()
    assert time.monotonic() - start < 5
    client._call = counting  # pylint: disable=protected-access
    with pytest.raises(client_lib.ServerUnavailableError):
        client.predict("serving_default", {})
    assert len(calls) == 1  # one call, three attempts inside it


def test_client_started_before_server(base_path):
    port = lib.free_port()
    client = client_lib.GRU4RecClient(f"127.0.0.1:{port}", lib.MODEL_NAME, timeout_s=2, max_attempts=30,
                                      initial_backoff_s=0.1, max_backoff_s=0.3)
    holder = {}

    def start_later():
        time.sleep(1.0)
        holder["server"] = dev_server.DevModelServer(str(base_path), lib.MODEL_NAME, port=port).start()

    thread = threading.Thread(target=start_later)
    thread.start()
    try:
        rec = client.recommend([[lib.ITEM_IDS[0]]], k=3)[0]  # UNAVAILABLE until the server is up, then served
        assert len(rec.item_ids) == 3
    finally:
        thread.join()
        holder["server"].stop()
    with pytest.raises(client_lib.ServerUnavailableError):  # the stopped server: bounded retries, clear error
        client.max_attempts = 2
        client.recommend([[lib.ITEM_IDS[0]]], k=3)
    client.close()


@pytest.mark.slow
def test_importing_the_client_stays_light():
    """The client needs only the serving contract (gru4rec_tf.export.signatures), not the exporter and its TFRS."""
    import os  # pylint: disable=g-import-not-at-top
    import subprocess  # pylint: disable=g-import-not-at-top
    import sys  # pylint: disable=g-import-not-at-top
    code = ("import sys; import serving.client; "
            "heavy = [m for m in ('tensorflow_recommenders', 'gru4rec_tf.export.saved_model', 'tfx') "
            "if m in sys.modules]; "
            "assert not heavy, heavy")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
