"""serving.sessions.http_service: the HTTP/JSON endpoints and their client over a SessionRecommender and the
development server (loopback): answers, errors with their HTTP status, health, metrics, and the service going on
after every bad request."""
import http.client
import json
import re

import pytest

import serving_testlib as lib
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from sessions_testlib import RedisServer
from serving import dev_server  # pylint: disable=g-import-not-at-top
from serving.sessions import http_service  # pylint: disable=g-import-not-at-top
from serving.sessions import recommender as rec_lib  # pylint: disable=g-import-not-at-top
from serving.sessions import store as store_lib  # pylint: disable=g-import-not-at-top

ITEMS = [int(i) for i in lib.ITEM_IDS]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    loaded = tf.saved_model.load(lib.export_model(base, version=2))
    model_server = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=lib.free_port()).start()
    recommender = rec_lib.SessionRecommender(model_server.target, lib.MODEL_NAME, timeout_s=10, max_k=25)
    server = http_service.SessionHTTPServer(recommender, port=0).start()
    client = http_service.SessionServiceClient(server.target)
    yield client, server, loaded
    client.close()
    server.stop()
    recommender.close()
    model_server.stop()


def reference(loaded, items, k, exclude_seen=False):
    ids, scores = lib.top(lib.run_signature(loaded, "serving_default", lib.session_inputs([items], k, exclude_seen)))
    return ids, [float(s) for s in scores]


def raw(server, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def test_event_recommend_end(service):
    client, _, loaded = service
    first = client.event("web-1", ITEMS[3], k=4)
    assert first == {"session_id": "web-1", "item_ids": reference(loaded, [ITEMS[3]], 4)[0],
                     "scores": reference(loaded, [ITEMS[3]], 4)[1], "model_version": 2}
    second = client.event("web-1", ITEMS[8], k=6, exclude_seen=True)
    assert (second["item_ids"], second["scores"]) == reference(loaded, [ITEMS[3], ITEMS[8]], 6, True)
    assert len(client.event("web-1", ITEMS[1])["item_ids"]) == 20  # default k
    again = client.recommend("web-1", k=3)
    assert (again["item_ids"], again["scores"]) == reference(loaded, [ITEMS[3], ITEMS[8], ITEMS[1]], 3)
    assert client.end("web-1") is True and client.end("web-1") is False
    with pytest.raises(http_service.SessionServiceError) as info:
        client.recommend("web-1")
    assert (info.value.code, info.value.http_status) == ("NOT_FOUND", 404)


@pytest.mark.parametrize("payload, code, status, match", [
    ({"session_id": "", "item_id": ITEMS[0]}, "INVALID_ARGUMENT", 400, "session_id must be a non-empty string"),
    ({"session_id": "x" * 300, "item_id": ITEMS[0]}, "INVALID_ARGUMENT", 400, "at most 256"),
    ({"session_id": 5, "item_id": ITEMS[0]}, "INVALID_ARGUMENT", 400, "session_id must be a non-empty string"),
    ({"session_id": "b", "item_id": "500"}, "INVALID_ARGUMENT", 400, "item_id must be of the model's ID type"),
    ({"session_id": "b", "item_id": [500]}, "INVALID_ARGUMENT", 400, "item_id must be of the model's ID type"),
    ({"session_id": "b", "item_id": 500.0}, "INVALID_ARGUMENT", 400, "item_id must be of the model's ID type"),
    ({"session_id": "b", "item_id": ITEMS[0], "k": 0}, "INVALID_ARGUMENT", 400, r"k must be an integer in \[1, 25\]"),
    ({"session_id": "b", "item_id": ITEMS[0], "k": 26}, "INVALID_ARGUMENT", 400, r"\[1, 25\], got 26"),
    ({"session_id": "b", "item_id": ITEMS[0], "k": 2.0}, "INVALID_ARGUMENT", 400, "k must be an integer"),
    ({"session_id": "b", "item_id": ITEMS[0], "exclude_seen": 1}, "INVALID_ARGUMENT", 400, "exclude_seen"),
    ({"session_id": "b"}, "INVALID_ARGUMENT", 400, r"missing fields \['item_id'\]"),
    ({"session_id": "b", "item_id": 1, "item": 2}, "INVALID_ARGUMENT", 400, r"unknown fields \['item'\]"),
])
def test_bad_events(service, payload, code, status, match):
    client, server, loaded = service
    status_got, data = raw(server, "POST", "/v1/event", json.dumps(payload).encode())
    error = json.loads(data)["error"]
    assert (status_got, error["code"]) == (status, code)
    assert re.search(match, error["message"]), error["message"]
    answer = client.event("after-bad", ITEMS[0], k=5)  # still serving
    assert answer["item_ids"] == reference(loaded, [ITEMS[0]], 5)[0]
    client.end("after-bad")


def test_unknown_item_is_a_defined_answer(service):
    client, _, loaded = service
    assert client.event("unk", lib.UNKNOWN, k=5)["item_ids"] == []
    answer = client.event("unk", ITEMS[2], k=5)
    assert answer["item_ids"] == reference(loaded, [lib.UNKNOWN, ITEMS[2]], 5)[0]


@pytest.mark.parametrize("method, path, body, status, match", [
    ("POST", "/v1/event", b"{not json", 400, "the body is not JSON"),
    ("POST", "/v1/event", b"[1, 2]", 400, "must be a JSON object"),
    ("POST", "/v1/event", b"\xff\xfe", 400, "the body is not JSON"),
    ("POST", "/v1/nope", b"{}", 404, "no such path"),
    ("GET", "/v1/event", None, 404, "no such path"),
    ("POST", "/v1/end", b'{"session_id": ""}', 400, "non-empty string"),
])
def test_bad_requests(service, method, path, body, status, match):
    client, server, _ = service
    got, data = raw(server, method, path, body)
    assert got == status and match in json.loads(data)["error"]["message"]
    assert client.health()[0] == 200


def test_oversized_body_is_refused(service):
    client, server, _ = service
    body = json.dumps({"session_id": "big", "item_id": 1, "pad": "x" * 70_000}).encode()
    got, data = raw(server, "POST", "/v1/event", body)
    assert got == 400 and "at most 65536 bytes" in json.loads(data)["error"]["message"]
    assert client.health()[0] == 200


def test_health_and_metrics(service):
    client, _, _ = service
    status, report = client.health()
    assert status == 200 and report == {"status": "SERVING", "serving": "ok", "store": "ok", "model_version": 2}
    client.event("m", ITEMS[0])
    with pytest.raises(http_service.SessionServiceError):
        client.event("m", ITEMS[0], k=0)
    text = client.metrics()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert int(samples['gru4rec_sessions_requests_total{method="event",code="OK"}']) >= 1
    assert int(samples['gru4rec_sessions_errors_total{code="INVALID_ARGUMENT"}']) >= 1
    assert int(samples["gru4rec_sessions_events_total"]) >= 1
    assert "# TYPE gru4rec_sessions_request_latency_seconds histogram" in text
    for line in text.splitlines():  # every sample line: name{labels} value
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_client_refusals_and_unreachable_service():
    with pytest.raises(ValueError, match="HOST:PORT"):
        http_service.SessionServiceClient("localhost")
    client = http_service.SessionServiceClient(f"127.0.0.1:{lib.free_port()}", timeout_s=2)
    with pytest.raises(http_service.SessionServiceError) as info:
        client.event("s", 1)
    assert info.value.code == "UNAVAILABLE"


def test_store_down_is_503_unavailable_and_the_service_recovers(service):
    _, server, loaded = service
    redis = RedisServer().start()
    recommender = rec_lib.SessionRecommender(server.recommender.serving_target, lib.MODEL_NAME, max_k=25,
                                             store=store_lib.RedisStore(redis.url, timeout_s=0.5))
    try:
        with http_service.SessionHTTPServer(recommender, port=0) as redis_server:
            client = http_service.SessionServiceClient(redis_server.target)
            client.event("down", ITEMS[1], k=5)
            redis.stop()
            with pytest.raises(http_service.SessionServiceError) as info:
                client.event("down", ITEMS[2], k=5)
            assert (info.value.code, info.value.http_status) == ("UNAVAILABLE", 503)
            status, report = client.health()
            assert status == 503 and report["status"] == "NOT_SERVING" and "unavailable" in report["store"]
            redis.start()
            assert client.health()[0] == 200
            answer = client.event("down", ITEMS[2], k=5)  # Redis restarted empty: a new session
            assert answer["item_ids"] == reference(loaded, [ITEMS[2]], 5)[0]
            client.close()
    finally:
        recommender.close()
        redis.stop()


def test_http_09_and_keep_alive(service):
    client, server, _ = service
    import socket  # pylint: disable=g-import-not-at-top
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz\r\n\r\n")  # HTTP/0.9: the body only, then the connection closes
        data = b"".join(iter(lambda: sock.recv(4096), b""))
    assert json.loads(data)["status"] == "SERVING"
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    for n in range(3):  # three requests on one kept-alive connection
        connection.request("POST", "/v1/end", body=json.dumps({"session_id": f"ka{n}"}).encode())
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read()) == {"session_id": f"ka{n}", "ended": False}
    connection.close()
    assert client.health()[0] == 200
