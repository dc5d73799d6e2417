"""serving.sessions.replay: a click log streamed through the HTTP service, N sessions at a time; every line equals
serving_default on its session so far, lines of a session in its event order, sessions ended afterwards."""
import io
import json
import random

import pandas as pd
import pytest

import serving_testlib as lib
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from serving import dev_server  # pylint: disable=g-import-not-at-top
from serving.sessions import http_service  # pylint: disable=g-import-not-at-top
from serving.sessions import recommender as rec_lib  # pylint: disable=g-import-not-at-top
from serving.sessions import replay  # pylint: disable=g-import-not-at-top

ITEMS = [int(i) for i in lib.ITEM_IDS]


def click_log(n_sessions=12, seed=3) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for sid in range(n_sessions):
        start = rng.uniform(0, 100)
        for j in range(rng.randint(2, 6)):
            rows.append((1000 + sid, rng.choice(ITEMS + [lib.UNKNOWN]), start + j * rng.uniform(1, 5)))
    rows.reverse()  # file order is not time order
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


def test_sessions_from_events_orders_by_time():
    events = pd.DataFrame({"SessionId": [5, 3, 5, 3, 9], "ItemId": [1, 2, 3, 4, 5], "Time": [2.0, 1.0, 0.5, 3.0, 9]})
    assert replay.sessions_from_events(events) == [("5", [3, 1]), ("3", [2, 4]), ("9", [5])]
    assert replay.sessions_from_events(events, max_sessions=1, prefix="r-") == [("r-5", [3, 1])]
    with pytest.raises(ValueError, match="concurrency must be a positive integer"):
        replay.replay(None, [], 0, None)


@pytest.mark.parametrize("concurrency", [1, 5])
def test_replay_answers_equal_serving_default(tmp_path, concurrency):
    base = tmp_path / "models"
    loaded = tf.saved_model.load(lib.export_model(base, version=1))
    model_server = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=lib.free_port()).start()
    recommender = rec_lib.SessionRecommender(model_server.target, lib.MODEL_NAME, timeout_s=10, max_k=25)
    sessions = replay.sessions_from_events(click_log())
    out = io.StringIO()
    try:
        with http_service.SessionHTTPServer(recommender, port=0) as server:
            client = http_service.SessionServiceClient(server.target)
            summary = replay.replay(client, sessions, concurrency, out, k=5, exclude_seen=True, log=None)
        assert recommender.store.live_sessions() == 0  # every session ended after its last event
    finally:
        recommender.close()
        model_server.stop()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    total = sum(len(items) for _, items in sessions)
    assert summary.events == len(lines) == total and summary.errors == {} and len(summary.latencies) == total
    assert summary.to_dict()["events_per_s"] > 0
    position = {}
    expected = dict(sessions)
    for line in lines:
        assert set(line) == {"session_id", "item_id", "item_ids", "scores", "model_version"}
        sid = line["session_id"]
        n = position[sid] = position.get(sid, 0) + 1
        prefix = expected[sid][:n]
        assert line["item_id"] == prefix[-1]  # the session's lines are in its event order
        ids, scores = lib.top(lib.run_signature(loaded, "serving_default", lib.session_inputs([prefix], 5, True)))
        assert (line["item_ids"], line["scores"]) == (ids, [float(s) for s in scores])
    assert position == {sid: len(items) for sid, items in sessions}


def test_replay_records_errors_and_goes_on():
    class Flaky:
        def event(self, session_id, item_id, k=None, exclude_seen=None):
            if item_id == 2:
                raise http_service.SessionServiceError("UNAVAILABLE", "down")
            return {"session_id": session_id, "item_ids": [item_id], "scores": [1.0], "model_version": 1}

        def end(self, session_id):
            raise OSError("ignored")

    out = io.StringIO()
    summary = replay.replay(Flaky(), [("a", [1, 2, 3])], 2, out, log=None)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert summary.errors == {"UNAVAILABLE": 1} and len(lines) == 3
    assert lines[1] == {"session_id": "a", "item_id": 2, "error": {"code": "UNAVAILABLE", "message": "down"}}
