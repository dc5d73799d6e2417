"""Soak of the session service: 8 HTTP clients at once against two service instances on one Redis (each client's
events alternate between them), mixing bad requests in, for ``--soak-seconds`` seconds, while new model versions are
pushed and polled in. Every good answer equals serving_default of its ``model_version`` on the session so far, every
bad request gets its own error, nothing is lost, and the service serves on afterwards."""
import random
import threading
import time

import pytest

import serving_testlib as lib
import sizes
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from sessions_testlib import redis_server  # noqa: F401  (pytest fixture)
from serving import dev_server  # pylint: disable=g-import-not-at-top
from serving.sessions import http_service  # pylint: disable=g-import-not-at-top
from serving.sessions import recommender as rec_lib  # pylint: disable=g-import-not-at-top
from serving.sessions import store as store_lib  # pylint: disable=g-import-not-at-top

pytestmark = pytest.mark.slow
CLIENTS = 8
ITEMS = [int(i) for i in lib.ITEM_IDS]
BAD = [({"item_id": "500"}, "INVALID_ARGUMENT"), ({"k": 0}, "INVALID_ARGUMENT"), ({"k": 26}, "INVALID_ARGUMENT"),
       ({"session_id": ""}, "INVALID_ARGUMENT"), ({"session_id": "x" * 300}, "INVALID_ARGUMENT")]


def test_soak_two_instances_one_redis_with_pushes(tmp_path, redis_server):  # noqa: F811
    redis_server.flush()
    base = tmp_path / "models"
    loaded = {1: tf.saved_model.load(lib.export_model(base, version=1, seed=1))}
    model_server = dev_server.DevModelServer(str(base), lib.MODEL_NAME, port=lib.free_port(),
                                             version_policy=dev_server.VersionPolicy("latest", 2)).start()
    recommenders = [rec_lib.SessionRecommender(model_server.target, lib.MODEL_NAME, timeout_s=30, max_k=25,
                                               store=store_lib.RedisStore(redis_server.url)) for _ in range(2)]
    servers = [http_service.SessionHTTPServer(r, port=0).start() for r in recommenders]
    answers, failures, lock, stop = [], [], threading.Lock(), threading.Event()

    def client_loop(index):
        rng = random.Random(index)
        clients = [http_service.SessionServiceClient(s.target, timeout_s=60) for s in servers]
        session, prefix, n = f"c{index}-0", [], 0
        while not stop.is_set():
            n += 1
            if rng.random() < 0.15:  # a bad request: its own error, nothing written
                change, code = rng.choice(BAD)
                args = {"session_id": session, "item_id": ITEMS[0], "k": 5, **change}
                try:
                    clients[n % 2].event(args["session_id"], args["item_id"], k=args["k"])
                    failures.append(f"accepted {change}")
                except http_service.SessionServiceError as err:
                    if err.code != code:
                        failures.append(f"{change}: {err.code} {err.message}")
                continue
            if index == 0:  # one long, slow session: started on version 1, replayed when 3 unloads it
                time.sleep(0.2)
            elif len(prefix) >= rng.randint(3, 8):  # end the session, start another
                clients[0].end(session)
                session, prefix = f"c{index}-{n}", []
            prefix.append(rng.choice(ITEMS + [lib.UNKNOWN]))
            try:
                answer = clients[n % 2].event(session, prefix[-1], k=5)
            except http_service.SessionServiceError as err:
                failures.append(f"good event failed: {err}")
                continue
            with lock:
                answers.append((list(prefix), answer))

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        soak_s = sizes.current().soak_seconds
        for version in (2, 3):  # pushed a third and two thirds of the way through
            time.sleep(soak_s / 3)
            loaded[version] = tf.saved_model.load(lib.export_model(base, version=version, seed=version))
            model_server.poll()
        time.sleep(soak_s / 3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    try:
        assert failures == []
        assert {answer["model_version"] for _, answer in answers} >= {1, 3}
        assert all(len(prefix) <= rec_lib.DEFAULT_MAX_ITEMS for prefix, _ in answers)  # replays saw every item
        for prefix, answer in answers:
            out = lib.run_signature(loaded[answer["model_version"]], "serving_default",
                                    lib.session_inputs([prefix], k=5))
            ids, scores = lib.top(out)
            assert (answer["item_ids"], answer["scores"]) == (ids, [float(s) for s in scores]), prefix
        replays = sum(r.metrics.value("replays_total") for r in recommenders)
        assert replays >= 1  # the long session spanned both pushes
        print(f"soak: {len(answers)} answers, {replays} replays, "
              f"{sum(r.metrics.value('conflicts_total') for r in recommenders)} conflicts")
        probe = http_service.SessionServiceClient(servers[0].target)
        assert probe.health()[0] == 200 and probe.event("after", ITEMS[0], k=3)["model_version"] == 3
    finally:
        for server in servers:
            server.stop()
        for recommender in recommenders:
            recommender.close()
        model_server.stop()
