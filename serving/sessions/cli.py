"""Live sessions: serve the session service, send one event, replay a click log (serve|event|replay).

    gru4rec sessions serve --serving localhost:8500 --model gru4rec --store memory --ttl_s 3600 --port 8600
    gru4rec sessions serve --serving localhost:8500 --store redis://10.0.0.3:6379/0      # several processes
    gru4rec sessions event --service localhost:8600 --session s1 --item 100042 [--k 20] [--exclude_seen]
    {"session_id": "s1", "item_ids": [...], "scores": [...], "model_version": 7}
    gru4rec sessions replay --service localhost:8600 --events test.tsv --concurrency 8 --output answers.jsonl

``serve`` runs the HTTP/JSON service (:mod:`serving.sessions.http_service`) over a
:class:`~serving.sessions.recommender.SessionRecommender` until SIGINT/SIGTERM. ``event`` prints the service's
answer as one JSON object. ``replay`` streams a click log (read like ``gru4rec train`` reads one: ``--session_key``,
``--item_key``, ``--time_key``) through the service in time order, ``--concurrency`` sessions at a time, writes one
JSON line per event (with its ``item_id``) and ends with a summary line on stderr; it exits 1 if any event failed.
"""
import json
import signal
import sys

from absl import flags
from absl import logging

FLAGS = flags.FLAGS
ACTIONS = ("serve", "event", "replay")


def define_flags() -> None:
    from gru4rec_tf.commands import common  # pylint: disable=g-import-not-at-top
    from serving.sessions import api  # pylint: disable=g-import-not-at-top
    # serve
    flags.DEFINE_string("serving", "localhost:8500", "serve: TF Serving's gRPC endpoint HOST:PORT.")
    flags.DEFINE_string("model", "gru4rec", "serve: the served model's name (ModelSpec.name).")
    flags.DEFINE_string("store", "memory", "serve: 'memory' (this process only) or redis://HOST:PORT/DB (shared by "
                        "several service processes).")
    flags.DEFINE_float("ttl_s", api.DEFAULT_TTL_S, "serve: a session without events for this long expires "
                       "(default: the preprocessing's --session_gap_s default).")
    flags.DEFINE_integer("port", 8600, "serve: HTTP port (0 = a free one, printed).")
    flags.DEFINE_string("host", "127.0.0.1", "serve: address to bind (0.0.0.0 for all interfaces).")
    flags.DEFINE_integer("max_items", api.DEFAULT_MAX_ITEMS, "serve: items kept per session; past it the "
                         "oldest are dropped (exclude_seen and replays then see the last max_items).")
    flags.DEFINE_integer("max_k", api.DEFAULT_MAX_K, "serve: the largest k accepted.")
    flags.DEFINE_float("serving_timeout_s", 2.0, "serve: deadline of each call to TF Serving.")
    flags.DEFINE_string("key_prefix", "gru4rec-sessions", "serve: prefix of the store's keys.")
    # event, replay
    flags.DEFINE_string("service", "localhost:8600", "event, replay: the session service's HOST:PORT.")
    flags.DEFINE_string("session", None, "event: the session ID.")
    flags.DEFINE_string("item", None, "event: the item ID.")
    flags.DEFINE_enum("item_type", "auto", ["auto", "int", "string"], "event: send --item as a JSON integer "
                      "(int), a string, or an integer when it looks like one (auto).")
    flags.DEFINE_integer("k", 20, "event, replay: number of recommendations.")
    flags.DEFINE_bool("exclude_seen", False, "event, replay: do not recommend the session's own items.")
    flags.DEFINE_float("timeout_s", 10.0, "event, replay: deadline of each call to the service.")
    flags.DEFINE_string("events", None, "replay: the click log (CSV/TSV/Parquet, SessionId/ItemId/Time columns).")
    flags.DEFINE_integer("concurrency", 8, "replay: sessions live at the same time.")
    flags.DEFINE_string("output", None, "replay: the answers, one JSON object per line ('-' = stdout).")
    flags.DEFINE_integer("max_sessions", None, "replay: only the first N sessions (by first event).")
    flags.DEFINE_string("session_prefix", "", "replay: prepended to the log's session IDs.")
    flags.DEFINE_bool("end_sessions", True, "replay: end each session after its last event.")
    common.define_data_flags()


def main(argv) -> None:
    from gru4rec_tf.commands import common  # pylint: disable=g-import-not-at-top
    if len(argv) != 2 or argv[1] not in ACTIONS:
        common.fail(f"usage: gru4rec sessions {'|'.join(ACTIONS)} [flags] (got {argv[1:]})", "sessions")
    try:
        {"serve": serve, "event": event, "replay": replay_log}[argv[1]]()
    except ValueError as err:
        common.fail(str(err), f"sessions {argv[1]}")


def serve() -> None:
    from serving.sessions import http_service  # pylint: disable=g-import-not-at-top
    from serving.sessions import store as store_lib  # pylint: disable=g-import-not-at-top
    store = store_lib.open_store(FLAGS.store, prefix=FLAGS.key_prefix)  # a bad --store fails before TF loads
    from serving.sessions import recommender as rec_lib  # pylint: disable=g-import-not-at-top
    recommender = rec_lib.SessionRecommender(FLAGS.serving, FLAGS.model, store, ttl_s=FLAGS.ttl_s,
                                             max_items=FLAGS.max_items, max_k=FLAGS.max_k,
                                             timeout_s=FLAGS.serving_timeout_s, key_prefix=FLAGS.key_prefix)
    recommender.metrics.gauge("live_sessions", "Sessions held (memory store only).", store.live_sessions)
    server = http_service.SessionHTTPServer(recommender, port=FLAGS.port, host=FLAGS.host).start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.stop())
    health = recommender.health()
    if health["status"] != "SERVING":  # serve anyway: the service recovers when they come back
        logging.warning("not serving yet: model server %s, store %s", health["serving"], health["store"])
    print(f"sessions service on {server.target}: model {FLAGS.model!r} at {FLAGS.serving}, store "
          f"{store.describe()}, ttl {FLAGS.ttl_s:g} s", flush=True)
    server.wait()
    metrics = recommender.metrics
    print(f"stopped: {metrics.value('events_total')} events, {metrics.value('new_sessions_total')} sessions "
          f"started, {metrics.value('replays_total')} replays", flush=True)
    recommender.close()


def _item(text: str):
    if text is None:
        raise ValueError("--item is required")
    if FLAGS.item_type == "string":
        return text
    try:
        return int(text)
    except ValueError:
        if FLAGS.item_type == "int":
            raise ValueError(f"--item {text!r} is not an integer (--item_type int)") from None
        return text


def event() -> None:
    from serving.sessions import http_service  # pylint: disable=g-import-not-at-top
    if FLAGS.session is None:
        raise ValueError("--session is required")
    with http_service.SessionServiceClient(FLAGS.service, timeout_s=FLAGS.timeout_s) as client:
        try:
            answer = client.event(FLAGS.session, _item(FLAGS.item), k=FLAGS.k, exclude_seen=FLAGS.exclude_seen)
        except http_service.SessionServiceError as err:
            raise ValueError(str(err)) from None
    print(json.dumps(answer))


def replay_log() -> None:
    from gru4rec_tf.commands import common  # pylint: disable=g-import-not-at-top
    from serving.sessions import http_service  # pylint: disable=g-import-not-at-top
    from serving.sessions import replay  # pylint: disable=g-import-not-at-top
    if not FLAGS.events or not FLAGS.output:
        raise ValueError("--events and --output are required")
    if FLAGS.concurrency < 1:
        raise ValueError(f"--concurrency must be >= 1, got {FLAGS.concurrency}")
    sessions = replay.sessions_from_events(common.load_events(FLAGS.events), FLAGS.max_sessions,
                                           FLAGS.session_prefix)
    client = http_service.SessionServiceClient(FLAGS.service, timeout_s=FLAGS.timeout_s)
    out = sys.stdout if FLAGS.output == "-" else open(FLAGS.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        summary = replay.replay(client, sessions, FLAGS.concurrency, out, k=FLAGS.k,
                                exclude_seen=FLAGS.exclude_seen, end_sessions=FLAGS.end_sessions)
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"replay: {json.dumps(summary.to_dict())}", file=sys.stderr, flush=True)
    if summary.errors:
        sys.exit(1)
