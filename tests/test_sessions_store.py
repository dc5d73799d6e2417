"""serving.sessions.store: the record's encoding, foreign values, compare-and-set, expiry, Redis URLs, and a real
redis-server (started here on a free loopback port): concurrent writers lose nothing, faults are UNAVAILABLE."""
import threading

import numpy as np
import pytest

from sessions_testlib import FakeClock, RedisServer, redis_server  # noqa: F401  (pytest fixture)
from serving.sessions import store as store_lib

MODEL = "gru4rec"


def record(items=(100042,), version=3, state=None, last_seen=10.0, events=1):
    state = np.arange(4, dtype=np.float32) / 7 if state is None else state
    return store_lib.SessionRecord(MODEL, version, state, list(items), last_seen, events)


def test_record_round_trip_is_exact():
    original = record(items=[1, 2, 3], state=np.random.RandomState(0).normal(size=20).astype(np.float32))
    decoded = store_lib.SessionRecord.decode(original.encode(), MODEL, "s")
    np.testing.assert_array_equal(decoded.state, original.state)
    assert (decoded.items, decoded.version, decoded.last_seen, decoded.events) == ([1, 2, 3], 3, 10.0, 1)
    strings = store_lib.SessionRecord.decode(record(items=["a", "7"]).encode(), MODEL, "s")
    assert strings.items == ["a", "7"]


@pytest.mark.parametrize("data, reason", [
    (b"\x00\xff", "not a JSON session record"),
    (b"[1, 2]", "format 'list'"),
    (b'{"format": "gru4rec-session/0"}', "format 'gru4rec-session/0'"),
    (record().encode().replace(b'"gru4rec"', b'"other"'), "a session of model 'other'"),
    (record().encode().replace(b'"version":3', b'"version":-3'), "malformed"),
    (record().encode().replace(b'"state_size":4', b'"state_size":5'), "malformed"),
    (record().encode().replace(b'"items":[100042]', b'"items":[true]'), "malformed"),
])
def test_foreign_values_are_never_misread(data, reason):
    with pytest.raises(store_lib.ForeignValueError, match="cannot read") as info:
        store_lib.SessionRecord.decode(data, MODEL, "s1")
    assert reason in str(info.value) and "'s1'" in str(info.value)


def test_key_layout_and_names():
    assert store_lib.session_key("p", MODEL, "a:b") == "p:v1:gru4rec:a:b"
    for prefix, model in (("", MODEL), ("p", ""), ("p", "a:b"), ("a:b", MODEL)):
        with pytest.raises(ValueError, match="non-empty string without ':'"):
            store_lib.check_names(prefix, model)


@pytest.mark.parametrize("url, fault", [
    ("redis://localhost:six/0", "the port must be an integer"),
    ("redis://localhost:0/0", "the port must be an integer"),
    ("redis://localhost/0", "the port must be an integer"),
    ("redis://:6379/0", "no host"),
    ("http://localhost:6379/0", "expected redis://"),
    ("redis://localhost:6379/x", "the database must be a non-negative integer"),
    ("redis://localhost:6379/0?ssl=1", "query strings"),
])
def test_redis_urls_that_do_not_parse(url, fault):
    with pytest.raises(ValueError, match=fault):
        store_lib.parse_redis_url(url)
    with pytest.raises(ValueError, match="Redis URL|--store must be"):
        store_lib.open_store(url)


def test_open_store_and_good_urls():
    assert store_lib.parse_redis_url("redis://:pw@h:1/3") == {"host": "h", "port": 1, "db": 3, "password": "pw"}
    assert store_lib.parse_redis_url("redis://h:6379")["db"] == 0
    assert isinstance(store_lib.open_store("memory"), store_lib.MemoryStore)
    with pytest.raises(ValueError, match="--store must be 'memory' or redis://"):
        store_lib.open_store("memcached://h:1")


def test_memory_store_expiry_and_sweep():
    clock = FakeClock()
    store = store_lib.MemoryStore(clock=clock, sweep_every=2)
    assert store.compare_and_set(MODEL, "a", 0, record(), expire_after_s=10)
    clock.now += 9.9
    assert store.get(MODEL, "a")[1] == 1
    clock.now += 0.2
    assert store.get(MODEL, "a") == (None, 0)
    assert store.compare_and_set(MODEL, "b", 0, record(), expire_after_s=10)
    assert store.compare_and_set(MODEL, "c", 0, record(), expire_after_s=100)
    clock.now += 50
    assert store.live_sessions() == 1  # b swept, c live


def _stores(redis_server):  # noqa: F811
    redis_server.flush()
    return [store_lib.MemoryStore(), store_lib.RedisStore(redis_server.url)]


def test_compare_and_set_delete_and_other_models(redis_server):  # noqa: F811
    for store in _stores(redis_server):
        assert store.get(MODEL, "s") == (None, 0)
        assert store.compare_and_set(MODEL, "s", 0, record(items=[1]), 60)
        assert not store.compare_and_set(MODEL, "s", 0, record(items=[2]), 60)  # stale sequence number
        assert store.compare_and_set(MODEL, "s", 1, record(items=[1, 2]), 60)
        got, seq = store.get(MODEL, "s")
        assert (got.items, seq) == ([1, 2], 2)
        assert store.get("other", "s") == (None, 0)  # another model's sessions live under other keys
        assert store.delete(MODEL, "s") and not store.delete(MODEL, "s")
        assert store.get(MODEL, "s") == (None, 0)
        store.close()


def test_redis_foreign_values(redis_server):  # noqa: F811
    import redis  # pylint: disable=g-import-not-at-top
    store = store_lib.RedisStore(redis_server.url, prefix="t")
    raw = redis.Redis(port=redis_server.port)
    raw.set("t:v1:gru4rec:str", "hello")  # a string, not a session hash
    raw.hset("t:v1:gru4rec:hash", mapping={"seq": "1", "data": b'{"format": "old"}'})
    raw.hset("t:v1:gru4rec:bare", mapping={"x": "1"})
    for session, reason in (("str", "not a session hash"), ("hash", "format 'old'"), ("bare", "without the fields")):
        with pytest.raises(store_lib.ForeignValueError, match=reason):
            store.get(MODEL, session)
    with pytest.raises(store_lib.ForeignValueError, match="not a session hash"):
        store.compare_and_set(MODEL, "str", 0, record(), 60)
    assert raw.get("t:v1:gru4rec:str") == b"hello"  # left untouched
    assert store.get(MODEL, "fine") == (None, 0)  # other sessions unaffected


def test_redis_expiry_is_set(redis_server):  # noqa: F811
    import redis  # pylint: disable=g-import-not-at-top
    store = store_lib.RedisStore(redis_server.url, prefix="ttl")
    assert store.compare_and_set(MODEL, "s", 0, record(), expire_after_s=30)
    ttl_ms = redis.Redis(port=redis_server.port).pttl("ttl:v1:gru4rec:s")
    assert 29_000 < ttl_ms <= 30_000
    assert store.compare_and_set(MODEL, "s2", 0, record(), expire_after_s=0.05)
    deadline = __import__("time").monotonic() + 5
    while store.get(MODEL, "s2")[0] is not None and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.02)
    assert store.get(MODEL, "s2") == (None, 0)
    assert store.memory_usage(MODEL, "s") > 0


def test_concurrent_writers_lose_nothing(redis_server):  # noqa: F811
    """Two stores (two connection pools, as two service processes) append to one session at once: every append is
    applied exactly once, in the order the store accepted them."""
    redis_server.flush()
    per_writer = 60
    stores = [store_lib.RedisStore(redis_server.url), store_lib.RedisStore(redis_server.url)]
    conflicts = [0, 0]

    def writer(index):
        store = stores[index]
        for n in range(per_writer):
            while True:
                current, seq = store.get(MODEL, "hot")
                items = (current.items if current else []) + [index * 1000 + n]
                if store.compare_and_set(MODEL, "hot", seq, record(items=items, events=len(items)), 60):
                    break
                conflicts[index] += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final, seq = stores[0].get(MODEL, "hot")
    assert seq == 2 * per_writer and len(final.items) == 2 * per_writer
    for index in range(2):  # each writer's events in its own order, none lost or duplicated
        assert [i for i in final.items if i // 1000 == index] == [index * 1000 + n for n in range(per_writer)]


def test_redis_down_is_unavailable_and_recovers():
    server = RedisServer().start()
    store = store_lib.RedisStore(server.url, timeout_s=0.5)
    assert store.compare_and_set(MODEL, "s", 0, record(), 60)
    server.stop()
    for call in (lambda: store.get(MODEL, "s"), lambda: store.compare_and_set(MODEL, "s", 1, record(), 60),
                 store.ping, lambda: store.delete(MODEL, "s")):
        with pytest.raises(store_lib.StoreUnavailableError, match="unavailable"):
            call()
    server.start()  # same port, empty (no persistence): the store reconnects by itself
    try:
        store.ping()
        assert store.get(MODEL, "s") == (None, 0)
        assert store.compare_and_set(MODEL, "s", 0, record(), 60)
    finally:
        server.stop()
