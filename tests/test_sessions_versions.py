"""A state is used only with the version that produced it: new model versions are pushed in the middle of a stream of
live sessions, and every answer is exactly what serving_default of its pinned version gives for the session so far,
or, once that version is gone, a full replay on the current version; never a mix."""
import random

import numpy as np
import pytest

import serving_testlib as lib
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from sessions_testlib import redis_server  # noqa: F401  (pytest fixture)
from serving import dev_server  # pylint: disable=g-import-not-at-top
from serving.sessions import recommender as rec_lib  # pylint: disable=g-import-not-at-top
from serving.sessions import store as store_lib  # pylint: disable=g-import-not-at-top

ITEMS = [int(i) for i in lib.ITEM_IDS]


def stream(n_sessions=14, seed=0):
    """Interleaved events ``(session_id, item, k, exclude_seen)`` of sessions of 3-9 events, some unknown IDs."""
    rng = random.Random(seed)
    pending = {f"s{n}": [rng.choice(ITEMS + [lib.UNKNOWN]) for _ in range(rng.randint(3, 9))]
               for n in range(n_sessions)}
    settings = {sid: (rng.choice([3, 5, 25]), rng.random() < 0.5) for sid in pending}
    events = []
    while pending:
        sid = rng.choice(sorted(pending))
        events.append((sid, pending[sid].pop(0), *settings[sid]))
        if not pending[sid]:
            del pending[sid]
    return events


@pytest.mark.slow  # ~15 s per store on an idle machine: the fast tier was at 4 min 57 s with the memory store in it
@pytest.mark.parametrize("store_kind", ["memory", "redis"])
def test_push_mid_stream_every_answer_is_pinned_or_replayed(tmp_path, store_kind, redis_server):  # noqa: F811
    base = tmp_path / "models"
    loaded = {1: tf.saved_model.load(lib.export_model(base, version=1, seed=1))}
    server = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=lib.free_port(),
                                       version_policy=dev_server.VersionPolicy("latest", 2)).start()
    store = store_lib.MemoryStore() if store_kind == "memory" else store_lib.RedisStore(redis_server.url)
    if store_kind == "redis":
        redis_server.flush()
    events = stream()
    pushes = {len(events) // 3: 2, 2 * len(events) // 3: 3}  # event index -> version pushed before it
    prefixes, pinned, outcomes = {}, {}, []
    try:
        with rec_lib.SessionRecommender(server.target, lib.MODEL_NAME, store=store, timeout_s=10,
                                        max_k=25) as recommender:
            for index, (sid, item, k, exclude) in enumerate(events):
                if index in pushes:
                    version = pushes[index]
                    loaded[version] = tf.saved_model.load(lib.export_model(base, version=version, seed=version))
                    server.poll()  # what the polling thread does every --file_system_poll_wait_seconds
                prefixes.setdefault(sid, []).append(item)
                answer = recommender.event(sid, item, k=k, exclude_seen=exclude)
                # the contract: the pinned version while it is loaded; else a replay on the newest
                if sid not in pinned:
                    expected, replay = max(server.versions), False
                elif pinned[sid] in server.versions:
                    expected, replay = pinned[sid], False
                else:
                    expected, replay = max(server.versions), True
                assert (answer.model_version, answer.replayed) == (expected, replay), (index, sid)
                pinned[sid] = answer.model_version
                # the exact reference: serving_default of that version on the whole session so far
                out = lib.run_signature(loaded[expected], "serving_default",
                                        lib.session_inputs([prefixes[sid]], k=k, exclude_seen=exclude))
                ids, scores = lib.top(out)
                assert (answer.item_ids, answer.scores) == (ids, [float(s) for s in scores]), (index, sid)
                outcomes.append((sid, answer.model_version, replay, ids))
            assert recommender.metrics.value("replays_total") == sum(o[2] for o in outcomes)
    finally:
        server.stop()
        store.close()
    versions_of = {}
    for sid, version, _, _ in outcomes:
        versions_of.setdefault(sid, []).append(version)
    # the stream did span the pushes: sessions pinned to 1 across the first push, replayed onto 3 at the second
    assert any(vs[0] == 1 and 3 in vs for vs in versions_of.values())
    assert any(1 in vs and vs.index(1) < len(vs) - 1 for vs in versions_of.values() if vs[0] == 1)
    assert sum(o[2] for o in outcomes) >= 1
    assert any(vs[0] == 2 and vs[-1] == 2 and len(vs) > 1 for vs in versions_of.values())  # 2 kept after push 3
    # and the versions differ, so a state fed to the wrong version would have been caught
    sid, version, _, ids = next(o for o in outcomes if o[1] == 1 and len(o[3]) > 1)
    other = lib.top(lib.run_signature(loaded[3], "serving_default", lib.session_inputs([prefixes[sid][:1]], k=25)))
    first = lib.top(lib.run_signature(loaded[1], "serving_default", lib.session_inputs([prefixes[sid][:1]], k=25)))
    assert not np.allclose(first[1][:len(other[1])], other[1][:len(first[1])])
