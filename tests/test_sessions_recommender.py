"""serving.sessions.recommender against the development server on loopback: every answer equals serving_default on
the session so far, recommendations without an event, end, expiry, the item bound, bad input, faults of the model
server and of Redis, and two recommenders (two service processes) writing one session at once."""
import threading
import time

import numpy as np
import pytest

import serving_testlib as lib
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from sessions_testlib import FakeClock, RedisServer, redis_server  # noqa: F401  (pytest fixture)
from serving import dev_server  # pylint: disable=g-import-not-at-top
from serving.sessions import recommender as rec_lib  # pylint: disable=g-import-not-at-top
from serving.sessions import store as store_lib  # pylint: disable=g-import-not-at-top

ITEMS = [int(i) for i in lib.ITEM_IDS]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    path = lib.export_model(base, version=1)
    server = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=lib.free_port()).start()
    yield server, tf.saved_model.load(path)
    server.stop()


def make(served, **kwargs):
    server, _ = served
    kwargs.setdefault("max_k", 25)
    return rec_lib.SessionRecommender(server.target, lib.MODEL_NAME, timeout_s=10, **kwargs)


def reference(loaded, items, k=5, exclude_seen=False):
    """``(item_ids, scores)`` of serving_default on the whole session."""
    return lib.top(lib.run_signature(loaded, "serving_default", lib.session_inputs([items], k, exclude_seen)))


def assert_answer(answer, loaded, items, k=5, exclude_seen=False):
    ids, scores = reference(loaded, items, k, exclude_seen)
    assert (answer.item_ids, answer.scores) == (ids, [float(s) for s in scores]), items


def test_every_answer_equals_serving_default_on_the_session_so_far(served):
    _, loaded = served
    sessions = {"a": [ITEMS[1], ITEMS[7], lib.UNKNOWN, ITEMS[7], ITEMS[30]], "b": [ITEMS[2], ITEMS[3], ITEMS[2]],
                "c": [lib.UNKNOWN, ITEMS[5]]}
    with make(served) as recommender:
        for t in range(5):  # interleaved sessions, both exclude_seen modes
            for sid, events in sessions.items():
                if t < len(events):
                    exclude = t % 2 == 1
                    answer = recommender.event(sid, events[t], k=5, exclude_seen=exclude)
                    assert_answer(answer, loaded, events[:t + 1], 5, exclude)
                    assert answer.model_version == 1 and answer.new_session == (t == 0)
                    assert answer.to_dict().keys() == {"session_id", "item_ids", "scores", "model_version"}
        assert recommender.metrics.value("events_total") == 10
        assert recommender.metrics.value("new_sessions_total") == 3


def test_unknown_items_keep_the_state(served):
    _, loaded = served
    with make(served) as recommender:
        first = recommender.event("u", lib.UNKNOWN, k=5)  # nothing to condition on yet: a defined empty answer
        assert (first.item_ids, first.scores, first.num_unknown) == ([], [], 1)
        recommender.event("u", ITEMS[4], k=5)
        answer = recommender.event("u", lib.UNKNOWN + 3, k=5)
        assert answer.num_unknown == 1
        assert_answer(answer, loaded, [lib.UNKNOWN, ITEMS[4], lib.UNKNOWN + 3])
        assert (answer.item_ids, answer.scores) == reference(loaded, [ITEMS[4]])  # same as without the unknowns


def test_recommend_without_event_and_end(served):
    _, loaded = served
    with make(served) as recommender:
        for item in (ITEMS[3], ITEMS[9]):
            recommender.event("r", item)
        for exclude in (False, True):
            assert_answer(recommender.recommend("r", k=4, exclude_seen=exclude), loaded, [ITEMS[3], ITEMS[9]], 4,
                          exclude)
        assert recommender.store.get(lib.MODEL_NAME, "r")[0].events == 2  # no event added
        assert recommender.end("r") and not recommender.end("r")
        with pytest.raises(rec_lib.ServiceError, match="no live session 'r'") as info:
            recommender.recommend("r")
        assert info.value.code == "NOT_FOUND"
        assert recommender.event("r", ITEMS[5]).new_session  # a new session after end


def test_expiry_after_ttl(served):
    _, loaded = served
    clock = FakeClock()
    with make(served, ttl_s=60, clock=clock) as recommender:
        recommender.event("e", ITEMS[1])
        clock.now += 60  # a gap of exactly ttl_s keeps the session (preprocessing splits at longer gaps)
        assert not recommender.event("e", ITEMS[2]).new_session
        clock.now += 61  # 61 s without events
        answer = recommender.event("e", ITEMS[3], k=5)
        assert answer.new_session and recommender.metrics.value("expired_total") == 1
        assert_answer(answer, loaded, [ITEMS[3]])
        clock.now += 61
        for _ in range(2):
            with pytest.raises(rec_lib.ServiceError, match="no live session"):
                recommender.recommend("e")
        assert recommender.metrics.value("expired_total") == 1  # counted when replaced, not when looked at


def test_default_ttl_is_the_preprocessing_session_gap():
    import dataclasses  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.preprocessing.options import PreprocessOptions  # pylint: disable=g-import-not-at-top
    gap = next(f.default for f in dataclasses.fields(PreprocessOptions) if f.name == "session_gap_s")
    assert rec_lib.DEFAULT_TTL_S == gap


def test_items_are_bounded(served):
    _, loaded = served
    with make(served, max_items=3) as recommender:
        events = ITEMS[10:16]
        for item in events:
            answer = recommender.event("long", item, k=25, exclude_seen=True)
        record = recommender.store.get(lib.MODEL_NAME, "long")[0]
        assert (record.items, record.dropped_items, record.events) == (events[-3:], 3, 6)
        assert not set(answer.item_ids) & set(events[-3:])  # the last max_items are excluded...
        assert set(answer.item_ids) & set(events[:3])  # ...the dropped ones may come back
        # the state is still the whole session's: without exclusions the answer is serving_default on all 6 events
        assert_answer(recommender.recommend("long", k=5), loaded, events)


@pytest.mark.parametrize("call, match", [
    (lambda r: r.event("", ITEMS[0]), "session_id must be a non-empty string"),
    (lambda r: r.event(None, ITEMS[0]), "session_id must be a non-empty string"),
    (lambda r: r.event(17, ITEMS[0]), "session_id must be a non-empty string"),
    (lambda r: r.event("x" * 257, ITEMS[0]), "session_id has 257 bytes, at most 256"),
    (lambda r: r.event("é" * 129, ITEMS[0]), "session_id has 258 bytes"),
    (lambda r: r.event("s", str(ITEMS[0])), "item_id must be of the model's ID type: integers"),
    (lambda r: r.event("s", 1.5), "item_id must be of the model's ID type"),
    (lambda r: r.event("s", True), "item_id must be of the model's ID type"),
    (lambda r: r.event("s", None), "item_id must be of the model's ID type"),
    (lambda r: r.event("s", 2 ** 63), "item_id must be of the model's ID type"),
    (lambda r: r.event("s", ITEMS[0], k=0), r"k must be an integer in \[1, 25\], got 0"),
    (lambda r: r.event("s", ITEMS[0], k=-3), r"k must be an integer in \[1, 25\]"),
    (lambda r: r.event("s", ITEMS[0], k=26), r"k must be an integer in \[1, 25\], got 26"),
    (lambda r: r.event("s", ITEMS[0], k=True), "k must be an integer"),
    (lambda r: r.event("s", ITEMS[0], k="5"), "k must be an integer"),
    (lambda r: r.event("s", ITEMS[0], exclude_seen="yes"), "exclude_seen must be true or false"),
    (lambda r: r.recommend("s", k=0), "k must be an integer"),
    (lambda r: r.end(""), "session_id must be a non-empty string"),
])
def test_bad_input_is_invalid_argument_and_writes_nothing(served, call, match):
    _, loaded = served
    with make(served) as recommender:
        with pytest.raises(rec_lib.ServiceError, match=match) as info:
            call(recommender)
        assert info.value.code == "INVALID_ARGUMENT"
        assert recommender.store.live_sessions() == 0
        assert_answer(recommender.event("s", ITEMS[0], k=5), loaded, [ITEMS[0]])  # still serving
        assert recommender.metrics.value("events_total") == 1
        assert sum(recommender.metrics.requests(m, "INVALID_ARGUMENT") for m in ("event", "recommend", "end")) == 1


def test_store_holding_other_values(served):
    _, loaded = served
    store = store_lib.MemoryStore()
    with make(served, store=store) as recommender:
        key = store_lib.session_key(store.prefix, lib.MODEL_NAME, "f")
        other = store_lib.SessionRecord("other-model", 1, np.zeros(lib.STATE_SIZE, np.float32), [ITEMS[0]], 0.0, 1)
        for n, (value, match) in enumerate(((b"garbage", "not a JSON"),
                                            (other.encode(), "a session of model 'other-model'"))):
            store.put_raw(key, value)
            for call in (lambda: recommender.event("f", ITEMS[1]), lambda: recommender.recommend("f")):
                with pytest.raises(rec_lib.ServiceError, match=match) as info:
                    call()
                assert info.value.code == "FAILED_PRECONDITION"
            assert store._data[key][1] == value  # left as it is  # pylint: disable=protected-access
            assert_answer(recommender.event(f"g{n}", ITEMS[2], k=5), loaded, [ITEMS[2]])  # other sessions are served
            assert recommender.end("f")  # ending the session discards the value
            assert recommender.event("f", ITEMS[1]).new_session
            recommender.end("f")
        # a record of ours whose state does not fit the version (e.g. a store shared by another deployment)
        bad = store_lib.SessionRecord(lib.MODEL_NAME, 1, np.zeros(lib.STATE_SIZE + 1, np.float32), [ITEMS[0]],
                                      recommender._clock(), 1)  # pylint: disable=protected-access
        store.put_raw(key, bad.encode())
        with pytest.raises(rec_lib.ServiceError, match="does not fit version 1") as info:
            recommender.event("f", ITEMS[1])
        assert info.value.code == "FAILED_PRECONDITION"


def test_constructor_refusals():
    for kwargs, match in (({"ttl_s": 0}, "ttl_s must be > 0"), ({"max_items": 0}, "max_items must be a positive"),
                          ({"max_k": 1.5}, "max_k must be a positive"), ({"key_prefix": "a:b"}, "without ':'")):
        with pytest.raises(ValueError, match=match):
            rec_lib.SessionRecommender("127.0.0.1:1", lib.MODEL_NAME, **kwargs)
    with pytest.raises(ValueError, match="model name"):
        rec_lib.SessionRecommender("127.0.0.1:1", "")


def eventually(call, within_s=15.0):
    """``call()`` once it stops raising UNAVAILABLE (the channel reconnects within about a second)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return call()
        except rec_lib.ServiceError as err:
            if err.code != "UNAVAILABLE" or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_model_server_down_is_unavailable_writes_nothing_and_recovers(tmp_path):
    base = tmp_path / "models"
    loaded = tf.saved_model.load(lib.export_model(base, version=4))
    port = lib.free_port()
    store = store_lib.MemoryStore()
    with rec_lib.SessionRecommender(f"127.0.0.1:{port}", lib.MODEL_NAME, store=store, timeout_s=2,
                                    max_attempts=1, max_k=25) as recommender:
        with pytest.raises(rec_lib.ServiceError, match="UNAVAILABLE") as info:
            recommender.event("d", ITEMS[1])
        assert info.value.code == "UNAVAILABLE" and store.live_sessions() == 0
        assert recommender.health()["status"] == "NOT_SERVING"
        server = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=port).start()
        try:
            eventually(lambda: recommender.event("d", ITEMS[1]))
            server.stop()
            with pytest.raises(rec_lib.ServiceError) as info:
                recommender.event("d", ITEMS[2])
            assert info.value.code == "UNAVAILABLE"
            assert store.get(lib.MODEL_NAME, "d")[0].items == [ITEMS[1]]  # the failed event wrote nothing
            server = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=port).start()
            deadline = time.monotonic() + 15
            while recommender.health()["status"] != "SERVING" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert recommender.health() == {"status": "SERVING", "serving": "ok", "store": "ok", "model_version": 4}
            assert_answer(recommender.event("d", ITEMS[2], k=5), loaded, [ITEMS[1], ITEMS[2]])
        finally:
            server.stop()


def test_redis_down_is_unavailable_and_recovers(served):
    _, loaded = served
    redis = RedisServer().start()
    try:
        with make(served, store=store_lib.RedisStore(redis.url, timeout_s=0.5)) as recommender:
            recommender.event("rd", ITEMS[1])
            redis.stop()
            for call in (lambda: recommender.event("rd", ITEMS[2]), lambda: recommender.recommend("rd"),
                         lambda: recommender.end("rd")):
                with pytest.raises(rec_lib.ServiceError, match="unavailable") as info:
                    call()
                assert info.value.code == "UNAVAILABLE"
            assert recommender.health()["status"] == "NOT_SERVING"
            redis.start()  # empty after the restart (no persistence): the session starts again
            answer = recommender.event("rd", ITEMS[2], k=5)
            assert answer.new_session
            assert_answer(answer, loaded, [ITEMS[2]])
            assert recommender.metrics.value("events_total") == 2
    finally:
        redis.stop()


def test_two_processes_one_session_at_once(served, redis_server):  # noqa: F811
    """Two recommenders (two service processes) on one Redis get events of the same session at the same time: every
    event is applied once, in the order the store accepted them, and every answer is serving_default on the session
    up to its own event in that order."""
    _, loaded = served
    redis_server.flush()
    recommenders = [make(served, store=store_lib.RedisStore(redis_server.url)) for _ in range(2)]
    answers = {}
    events = [ITEMS[:20:2], ITEMS[1:20:2]]  # distinct items, so the final order tells where each event went

    def send(index):
        for item in events[index]:
            answers[item] = recommenders[index].event("hot", item, k=5)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = recommenders[0].store.get(lib.MODEL_NAME, "hot")[0]
    assert sorted(record.items) == sorted(events[0] + events[1]) and record.events == 20
    for index in range(2):
        assert [i for i in record.items if i in events[index]] == events[index]  # each sender's order kept
    for position, item in enumerate(record.items):
        assert_answer(answers[item], loaded, record.items[:position + 1])
    assert_answer(recommenders[1].recommend("hot", k=5), loaded, record.items)
    for recommender in recommenders:
        recommender.close()


def test_string_item_ids(tmp_path):
    from gru4rec_tf import params as params_lib  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.vocabulary import ItemVocabulary  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.export import saved_model  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.model import network as model_lib  # pylint: disable=g-import-not-at-top
    ids = np.array([f"p{i}" for i in range(lib.N_ITEMS)])
    model = model_lib.GRU4Rec(lib.N_ITEMS, params_lib.GRU4RecParams.from_string("layers=8,n_sample=0"), seed=3)
    path = saved_model.export_saved_model(model, ItemVocabulary(ids), str(tmp_path / "m" / "1"), max_k=25)
    loaded = tf.saved_model.load(path)
    server = dev_server.DevModelServer(str(tmp_path / "m"), lib.MODEL_NAME, port=lib.free_port()).start()
    try:
        with rec_lib.SessionRecommender(server.target, lib.MODEL_NAME, timeout_s=10, max_k=25) as recommender:
            with pytest.raises(rec_lib.ServiceError, match="item_id must be of the model's ID type: strings"):
                recommender.event("s", 3)
            session = ["p3", "nope", "p7"]
            for n, item in enumerate(session, 1):
                answer = recommender.event("s", item, k=5, exclude_seen=True)
                out = lib.run_signature(loaded, "serving_default", {
                    "items": np.array([session[:n]], object), "lengths": np.array([n], np.int32),
                    "k": np.array([5], np.int32), "exclude_seen": np.array([True])})
                count = int(out["num_results"][0])
                assert answer.item_ids == [i.decode() for i in out["item_ids"][0, :count]]
                assert answer.scores == [float(s) for s in out["scores"][0, :count]]
            assert recommender.recommend("s", k=5, exclude_seen=True).item_ids == answer.item_ids
    finally:
        server.stop()
