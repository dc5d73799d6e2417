"""SessionRecommender: live sessions over a served GRU4Rec, each state used only with the version that produced it.

An event ``(session_id, item_id)`` is answered with the top-k for the session so far:

* a **new** session (or one expired after ``ttl_s`` without events) is sent whole to ``serving_default`` without a
  version: the server answers with its current version, and the session is **pinned** to that version;
* a **live** session sends the event and its stored state to ``step`` of its pinned version (O(1) per event);
* if the pinned version is **gone** (TF Serving answers ``NOT_FOUND`` once its version policy unloads it), the
  session's items are **replayed** through ``serving_default`` of the current version and the session is pinned to
  that one.

So every answer is exactly what its ``model_version`` gives for the session's items through ``serving_default``:
never an old version's state fed to a new model. The record (version, state, items, last-seen time) is written
to the store by compare-and-set only after the server answered: a fault of TF Serving or of the store leaves the
session as it was, and two events of one session at two processes are both applied (the later writer re-reads
and recomputes on the other's result).

The items are bounded by ``max_items`` (default 200): past it the oldest are dropped, so ``exclude_seen`` then
excludes the last ``max_items`` items and a replay restarts from them (``dropped_items`` in the record counts them).

Example:
  >>> recommender = SessionRecommender("localhost:8500", "gru4rec", store=MemoryStore())   # doctest: +SKIP
  >>> answer = recommender.event("s1", 100042, k=5, exclude_seen=True)                     # doctest: +SKIP
  >>> answer.to_dict()   # {"session_id": "s1", "item_ids": [...], "scores": [...], "model_version": 7}
  ...                                                                                       # doctest: +SKIP
"""
import dataclasses
import threading
import time

import grpc
import numpy as np

from gru4rec_tf.export import signatures
from serving import client as client_lib
from serving.sessions import metrics as metrics_lib
from serving.sessions.api import (  # noqa: F401  (ServiceError and Answer are part of this module's API)
    DEFAULT_MAX_ITEMS, DEFAULT_MAX_K, DEFAULT_TTL_S, MAX_SESSION_ID_BYTES, Answer, ServiceError)
from serving.sessions import store as store_lib

_INT64 = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)


class _VersionGone(Exception):
    pass


class SessionRecommender:
    """Live sessions over a served model: events in, top-k out, state kept in ``store`` and pinned to its version.

    Args:
      serving_target: ``host:port`` of TF Serving's gRPC port (or the development server).
      model_name: the served model's name (``ModelSpec.name``).
      store: a :class:`~serving.sessions.store.SessionStore` (default: a new in-process ``MemoryStore``).
      ttl_s: a session without events for longer than this is expired (the next event starts a new one).
      max_items: items kept per session (for ``exclude_seen`` and replays); the oldest go first past it.
      max_k: the largest ``k`` accepted (the export's ``max_k`` clips further).
      timeout_s, max_attempts: deadline and UNAVAILABLE attempts of each call to the model server.
      max_conflicts: compare-and-set retries of one call before it fails with ``ABORTED``.
      metrics: a :class:`~serving.sessions.metrics.Metrics` to count into (default: a new one).
      clock: wall-clock seconds (tests pass a fake one).

    Example:
      >>> with SessionRecommender("localhost:8500", "gru4rec") as recommender:       # doctest: +SKIP
      ...     recommender.event("s1", 100042).item_ids
      ...     recommender.recommend("s1", k=5).item_ids      # without a new event
      ...     recommender.end("s1")
    """

    def __init__(self, serving_target: str, model_name: str = "gru4rec", store=None, *,
                 ttl_s: float = DEFAULT_TTL_S, max_items: int = DEFAULT_MAX_ITEMS, max_k: int = DEFAULT_MAX_K,
                 timeout_s: float = 2.0, max_attempts: int = 2, max_conflicts: int = 32, metrics=None,
                 clock=time.time, key_prefix: str = store_lib.DEFAULT_PREFIX):
        store_lib.check_names(key_prefix, model_name)
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0 seconds, got {ttl_s}")
        for name, value in (("max_items", max_items), ("max_k", max_k), ("max_conflicts", max_conflicts)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.serving_target, self.model_name = serving_target, model_name
        self.store = store if store is not None else store_lib.MemoryStore(prefix=key_prefix)
        self.ttl_s, self.max_items, self.max_k, self.max_conflicts = float(ttl_s), max_items, max_k, max_conflicts
        self.metrics = metrics if metrics is not None else metrics_lib.Metrics()
        self._clock = clock
        # reconnect quickly after the model server comes back (gRPC's default backoff grows to 120 s)
        self._channel = grpc.insecure_channel(serving_target, options=[
            ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000)])
        self._client_args = {"timeout_s": timeout_s, "max_attempts": max_attempts, "initial_backoff_s": 0.05,
                             "max_backoff_s": 0.5, "channel": self._channel}
        self._latest = client_lib.GRU4RecClient(serving_target, model_name, **self._client_args)
        self._pinned = {}  # version -> GRU4RecClient pinned to it
        self._lock = threading.Lock()

    # ---- the API -------------------------------------------------------------------------------------------------

    def event(self, session_id: str, item_id, k: int = 20, exclude_seen: bool = False) -> Answer:
        """Applies one event to the session and returns its top-k; raises :class:`ServiceError`."""
        return self._observed("event", self._event, session_id, item_id, k, exclude_seen)

    def recommend(self, session_id: str, k: int = 20, exclude_seen: bool = False) -> Answer:
        """The top-k for a live session without a new event (NOT_FOUND when there is none)."""
        return self._observed("recommend", self._recommend, session_id, k, exclude_seen)

    def end(self, session_id: str) -> bool:
        """Forgets a session; True when it was live."""
        return self._observed("end", self._end, session_id)

    def health(self) -> dict:
        """``{"status": "SERVING" | "NOT_SERVING", "serving": ..., "store": ..., "model_version": ...}``."""
        report = {"status": "SERVING", "serving": "ok", "store": "ok", "model_version": None}
        try:
            self.store.ping()
        except store_lib.StoreError as err:
            report["store"], report["status"] = str(err), "NOT_SERVING"
        try:
            report["model_version"] = self._call_server(self._probe)
        except ServiceError as err:
            report["serving"], report["status"] = err.message, "NOT_SERVING"
        return report

    def close(self) -> None:
        self._channel.close()
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- checks --------------------------------------------------------------------------------------------------

    def _observed(self, method: str, function, *args):
        start = time.perf_counter()
        code = "OK"
        try:
            return function(*args)
        except ServiceError as err:
            code = err.code
            raise
        except Exception as err:  # pylint: disable=broad-except  (reported as INTERNAL, the service keeps serving)
            code = "INTERNAL"
            raise ServiceError("INTERNAL", f"{type(err).__name__}: {err}") from err
        finally:
            self.metrics.observe(method, code, time.perf_counter() - start)

    @staticmethod
    def check_session_id(session_id) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise ServiceError("INVALID_ARGUMENT", f"session_id must be a non-empty string, got {session_id!r}")
        size = len(session_id.encode("utf-8", "surrogatepass"))
        if size > MAX_SESSION_ID_BYTES:
            raise ServiceError("INVALID_ARGUMENT", f"session_id has {size} bytes, at most {MAX_SESSION_ID_BYTES} "
                                                   f"are allowed")

    def _check_k(self, k, exclude_seen) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.max_k:
            raise ServiceError("INVALID_ARGUMENT", f"k must be an integer in [1, {self.max_k}], got {k!r}")
        if not isinstance(exclude_seen, (bool, np.bool_)):
            raise ServiceError("INVALID_ARGUMENT", f"exclude_seen must be true or false, got {exclude_seen!r}")

    def _check_item(self, item_id) -> None:
        id_dtype = self._call_server(lambda: self._latest.info().id_dtype.name)
        if id_dtype == "int64":
            ok = (not isinstance(item_id, (bool, np.bool_)) and isinstance(item_id, (int, np.integer))
                  and _INT64[0] <= item_id <= _INT64[1])
        else:
            ok = isinstance(item_id, str)
        if not ok:
            kind = "integers (int64)" if id_dtype == "int64" else "strings"
            raise ServiceError("INVALID_ARGUMENT", f"item_id must be of the model's ID type: {kind}, got "
                                                   f"{item_id!r} ({type(item_id).__name__})")

    # ---- store and server calls ----------------------------------------------------------------------------------

    def _get(self, session_id: str) -> tuple:
        try:
            return self.store.get(self.model_name, session_id)
        except store_lib.StoreUnavailableError as err:
            raise ServiceError("UNAVAILABLE", str(err)) from None
        except store_lib.ForeignValueError as err:
            raise ServiceError("FAILED_PRECONDITION", str(err)) from None

    def _put(self, session_id: str, seq: int, record: store_lib.SessionRecord) -> bool:
        try:
            return self.store.compare_and_set(self.model_name, session_id, seq, record, 2 * self.ttl_s)
        except store_lib.StoreUnavailableError as err:
            raise ServiceError("UNAVAILABLE", str(err)) from None
        except store_lib.ForeignValueError as err:
            raise ServiceError("FAILED_PRECONDITION", str(err)) from None

    @staticmethod
    def _call_server(function, *args):
        try:
            return function(*args)
        except client_lib.PredictionError as err:
            code = err.code.name if err.code is not None else "INTERNAL"
            raise ServiceError(code, f"model server: {err}") from None

    def _probe(self) -> int:
        """A Predict of an empty batch (checks the server end to end); the version that answered."""
        id_dtype = self._latest.info().id_dtype
        items = np.zeros([0, 1], np.int64) if id_dtype.name == "int64" else np.zeros([0, 1], object)
        inputs = {signatures.ITEMS: items, signatures.LENGTHS: np.zeros([0], np.int32),
                  signatures.K: np.zeros([0], np.int32), signatures.EXCLUDE_SEEN: np.zeros([0], bool)}
        return self._latest.predict_versioned(signatures.SIGNATURE_SESSION, inputs)[1]

    def _pinned_client(self, version: int) -> client_lib.GRU4RecClient:
        with self._lock:
            if version not in self._pinned:
                self._pinned[version] = client_lib.GRU4RecClient(self.serving_target, self.model_name,
                                                                 version=version, **self._client_args)
            return self._pinned[version]

    def _step(self, record: store_lib.SessionRecord, item, items: list, k: int, exclude_seen: bool):
        """``step`` of the record's version; raises _VersionGone when the server no longer has it."""
        client = self._pinned_client(record.version)
        try:
            return client.step([item], record.state[np.newaxis], k=int(k),
                               exclude=[items] if exclude_seen else None)[0]
        except client_lib.PredictionError as err:
            if err.code == grpc.StatusCode.NOT_FOUND:
                with self._lock:
                    self._pinned.pop(record.version, None)
                raise _VersionGone() from None
            raise
        except ValueError as err:  # the stored state's width is not the version's
            raise ServiceError("FAILED_PRECONDITION", f"the stored state does not fit version {record.version} "
                                                      f"of model {self.model_name!r}: {err}") from None

    def _whole_session(self, items: list, k: int, exclude_seen: bool):
        """``serving_default`` of the server's current version on the whole session (a start or a replay)."""
        return self._latest.recommend([items], k=int(k), exclude_seen=bool(exclude_seen))[0]

    def _answer_for(self, record, item, items, k, exclude_seen) -> tuple:
        """``(Recommendation, replayed)`` for ``items`` (ending with ``item``) given the stored record or None."""
        if record is None:
            return self._whole_session(items, k, exclude_seen), False
        try:
            return self._step(record, item, items, k, exclude_seen), False
        except _VersionGone:
            return self._whole_session(items, k, exclude_seen), True

    def _bounded(self, items: list, dropped: int) -> tuple:
        over = max(0, len(items) - self.max_items)
        return items[over:], dropped + over

    # ---- the calls -----------------------------------------------------------------------------------------------

    def _live_record(self, session_id: str) -> tuple:
        """``(record or None if absent or expired, seq, expired)``."""
        record, seq = self._get(session_id)
        if record is not None and self._clock() - record.last_seen > self.ttl_s:
            return None, seq, True
        return record, seq, False

    def _event(self, session_id, item_id, k, exclude_seen) -> Answer:
        self.check_session_id(session_id)
        self._check_k(k, exclude_seen)
        self._check_item(item_id)
        item_id = item_id if isinstance(item_id, str) else int(item_id)
        for attempt in range(self.max_conflicts):
            record, seq, expired = self._live_record(session_id)
            items, dropped = self._bounded((record.items if record else []) + [item_id],
                                           record.dropped_items if record else 0)
            rec, replayed = self._call_server(self._answer_for, record, item_id, items, k, exclude_seen)
            updated = store_lib.SessionRecord(self.model_name, rec.version, rec.state, items, self._clock(),
                                              (record.events if record else 0) + 1, dropped)
            if self._put(session_id, seq, updated):
                self._count_event(record is None, replayed, expired, attempt)
                return Answer(session_id, rec.item_ids, rec.scores, rec.version, record is None, replayed,
                              rec.num_unknown)
        self.metrics.count("conflicts_total", self.max_conflicts)
        raise ServiceError("ABORTED", f"session {session_id!r}: {self.max_conflicts} concurrent updates in a row "
                                      f"won over this event; it was not applied, send it again")

    def _count_event(self, new: bool, replayed: bool, expired: bool, conflicts: int) -> None:
        self.metrics.count("events_total")
        if new:
            self.metrics.count("new_sessions_total")
        if expired:  # counted once, when the expired session is replaced
            self.metrics.count("expired_total")
        if replayed:
            self.metrics.count("replays_total")
        if conflicts:
            self.metrics.count("conflicts_total", conflicts)

    def _recommend(self, session_id, k, exclude_seen) -> Answer:
        self.check_session_id(session_id)
        self._check_k(k, exclude_seen)
        record, seq, _ = self._live_record(session_id)
        if record is None:
            raise ServiceError("NOT_FOUND", f"no live session {session_id!r} (never started, ended or expired)")
        pad = self._call_server(lambda: self._latest.info().pad_id)
        # ``step`` with an ID outside the catalogue leaves the state as it is and ranks from it: the session's
        # top-k without an event (the same as serving_default on its items)
        rec, replayed = self._call_server(self._answer_for, record, pad, record.items, k, exclude_seen)
        if replayed:  # pin the session to the version that answered (a lost race only means a later replay)
            self.metrics.count("replays_total")
            self._put(session_id, seq, dataclasses.replace(record, version=rec.version, state=rec.state))
        return Answer(session_id, rec.item_ids, rec.scores, rec.version, False, replayed, 0)

    def _end(self, session_id) -> bool:
        self.check_session_id(session_id)
        try:
            return self.store.delete(self.model_name, session_id)
        except store_lib.StoreUnavailableError as err:
            raise ServiceError("UNAVAILABLE", str(err)) from None
