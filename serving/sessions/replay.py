"""Replays a click log through the session service as live events: a replay and load tool, and the tests' driver.

Sessions start in the order of their first event (time order) and ``concurrency`` of them are live at once: each
worker takes the next session and sends its events one by one, in time order, waiting for each answer (a
session's events are never in flight together). Every event gives one JSON line ``{"session_id", "item_id",
"item_ids", "scores", "model_version"}`` (or ``{"session_id", "item_id", "error": {"code", "message"}}``); a
session's lines are in its event order. Sessions are ended after their last event (``end_sessions``).

Example:
  >>> sessions = sessions_from_events(pd.DataFrame({"SessionId": [2, 1, 1, 2], "ItemId": [7, 8, 9, 10],
  ...                                               "Time": [0.0, 1.0, 2.0, 3.0]}))
  >>> sessions
  [('2', [7, 10]), ('1', [8, 9])]
  >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
  2.5
"""
import dataclasses
import json
import queue
import sys
import threading
import time

import numpy as np
import pandas as pd  # noqa: F401  (the example)


@dataclasses.dataclass
class ReplaySummary:
    """What a replay did: sessions, events, errors by code, wall time and the per-event latencies (seconds).

    Example:
      >>> ReplaySummary(sessions=2, events=4, errors={}, seconds=2.0, latencies=[0.001] * 4).events_per_s
      2.0
    """
    sessions: int
    events: int
    errors: dict
    seconds: float
    latencies: list

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        lat = self.latencies
        return {"sessions": self.sessions, "events": self.events, "errors": dict(self.errors),
                "seconds": round(self.seconds, 3), "events_per_s": round(self.events_per_s, 1),
                "p50_ms": round(percentile(lat, 50) * 1e3, 3), "p99_ms": round(percentile(lat, 99) * 1e3, 3)}


def percentile(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def sessions_from_events(events, max_sessions: int | None = None, prefix: str = "") -> list:
    """``[(session_id as str, [items in time order])]`` ordered by each session's first event.

    ``events`` has the columns ``SessionId``, ``ItemId``, ``Time`` (:func:`gru4rec_tf.data.event_log.load_events`).
    """
    ordered = events.sort_values(["Time"], kind="stable")
    first = ordered.drop_duplicates("SessionId")["SessionId"].tolist()
    if max_sessions is not None:
        first = first[:max_sessions]
    items = {sid: [] for sid in first}
    for sid, item in zip(ordered["SessionId"].tolist(), ordered["ItemId"].tolist(), strict=True):
        if sid in items:
            items[sid].append(item if isinstance(item, str) else int(item))
    return [(f"{prefix}{sid}", items[sid]) for sid in first]


def replay(client, sessions: list, concurrency: int, output, k: int | None = None, exclude_seen: bool | None = None,
           end_sessions: bool = True, progress_every_s: float = 5.0, log=sys.stderr) -> ReplaySummary:
    """Streams ``sessions`` through ``client`` (a ``SessionServiceClient`` or anything with its ``event``/``end``),
    ``concurrency`` sessions at a time; writes one JSON line per event to ``output`` (a text file or None)."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    work = queue.Queue()
    for session in sessions:
        work.put(session)
    lock, latencies, errors = threading.Lock(), [], {}
    total = sum(len(items) for _, items in sessions)
    start = time.perf_counter()

    def worker():
        while True:
            try:
                session_id, items = work.get_nowait()
            except queue.Empty:
                return
            for item in items:
                t0 = time.perf_counter()
                try:
                    line = {"session_id": session_id, "item_id": item, **client.event(session_id, item, k=k,
                                                                                         exclude_seen=exclude_seen)}
                    line["session_id"] = session_id
                except Exception as err:  # pylint: disable=broad-except  (recorded per event; the replay goes on)
                    code = getattr(err, "code", type(err).__name__)
                    line = {"session_id": session_id, "item_id": item,
                            "error": {"code": code, "message": getattr(err, "message", str(err))}}
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    if "error" in line:
                        errors[line["error"]["code"]] = errors.get(line["error"]["code"], 0) + 1
                    if output is not None:
                        output.write(json.dumps(line) + "\n")
            if end_sessions:
                try:
                    client.end(session_id)
                except Exception:  # pylint: disable=broad-except  (the session expires anyway)
                    pass

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(concurrency, max(1, len(sessions))))]
    for thread in threads:
        thread.start()
    _progress(threads, lambda: len(latencies), total, start, progress_every_s, log)
    return ReplaySummary(len(sessions), len(latencies), errors, time.perf_counter() - start, latencies)


def _progress(threads, done, total: int, start: float, every_s: float, log) -> None:
    """Joins the workers, printing ``events done/total, events/s`` every ``every_s`` seconds."""
    next_report = time.perf_counter() + every_s
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.2)
            if log is not None and time.perf_counter() >= next_report:
                elapsed = time.perf_counter() - start
                print(f"replay: {done()}/{total} events, {done() / elapsed:.0f} events/s", file=log, flush=True)
                next_report += every_s
