"""Where live sessions are kept: the session record, its encoding, and two stores (process memory, Redis).

A :class:`SessionRecord` is everything the service knows about one live session: the model version that produced
its state (a state is only ever fed back to that version), the state, the session's items (bounded by the
recommender), the number of events and the last-seen time. Stores keep records as encoded bytes under a key
``<prefix>:v1:<model>:<session_id>`` (``v1`` is the key layout's version) with a sequence number, and update them
only by compare-and-set: :meth:`SessionStore.compare_and_set` writes a record only if the sequence number is still
the one :meth:`SessionStore.get` returned, so two events of one session arriving at two service processes at once
are both applied, one after the other, and neither is lost (the loser re-reads and recomputes). In Redis the check
and the write are one Lua script, atomic on the server; no lock is held in any process.

A value under a session key that this code did not write (another format version, another model, garbage) is never
misread: :meth:`SessionRecord.decode` raises :class:`ForeignValueError` instead.

Example:
  >>> store = MemoryStore()
  >>> record = SessionRecord("gru4rec", version=3, state=np.zeros(4, np.float32), items=[100042], last_seen=0.0)
  >>> store.get("gru4rec", "s1")
  (None, 0)
  >>> store.compare_and_set("gru4rec", "s1", 0, record, expire_after_s=60)
  True
  >>> got, seq = store.get("gru4rec", "s1")
  >>> got.version, got.items, seq
  (3, [100042], 1)
  >>> store.compare_and_set("gru4rec", "s1", 0, record, expire_after_s=60)   # someone else wrote first
  False
"""
import base64
import dataclasses
import json
import math
import threading
import time
import urllib.parse

import numpy as np

FORMAT = "gru4rec-session/1"  # the "format" field of every encoded record
KEY_LAYOUT = "v1"  # the key layout's version: <prefix>:v1:<model>:<session_id>
DEFAULT_PREFIX = "gru4rec-sessions"


class StoreError(Exception):
    """A store operation failed."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached (Redis down or unreachable); nothing was written."""


class ForeignValueError(StoreError):
    """The store holds a value under a session's key that this code cannot read; it is left untouched."""


@dataclasses.dataclass
class SessionRecord:
    """One live session: its model and pinned version, GRU state, items so far, event count and last-seen time.

    Example:
      >>> record = SessionRecord("gru4rec", 3, np.ones(2, np.float32), items=["a", "b"], last_seen=10.0, events=2)
      >>> SessionRecord.decode(record.encode(), "gru4rec", "s1").items
      ['a', 'b']
    """
    model_name: str
    version: int
    state: np.ndarray
    items: list
    last_seen: float
    events: int = 0
    dropped_items: int = 0  # items dropped from the front past the recommender's bound

    def encode(self) -> bytes:
        state = np.ascontiguousarray(self.state, dtype="<f4")
        return json.dumps({"format": FORMAT, "model": self.model_name, "version": int(self.version),
                           "state": base64.b64encode(state.tobytes()).decode("ascii"), "state_size": int(state.size),
                           "items": list(self.items), "last_seen": float(self.last_seen), "events": int(self.events),
                           "dropped_items": int(self.dropped_items)}, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes, model_name: str, session_id: str) -> "SessionRecord":
        """The record encoded in ``data``; raises :class:`ForeignValueError` for anything else."""
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            raise _foreign(session_id, "not a JSON session record") from None
        if not isinstance(value, dict) or value.get("format") != FORMAT:
            found = value.get("format") if isinstance(value, dict) else type(value).__name__
            raise _foreign(session_id, f"format {found!r}, this service reads {FORMAT!r}")
        if value.get("model") != model_name:
            raise _foreign(session_id, f"a session of model {value.get('model')!r}, this service serves "
                                       f"{model_name!r}")
        try:
            state = np.frombuffer(base64.b64decode(value["state"], validate=True), dtype="<f4").astype(np.float32)
            record = cls(model_name, _nonnegative_int(value["version"]), state, _item_list(value["items"]),
                         float(value["last_seen"]), _nonnegative_int(value["events"]),
                         _nonnegative_int(value["dropped_items"]))
        except (KeyError, TypeError, ValueError) as err:
            raise _foreign(session_id, f"a malformed record ({type(err).__name__}: {err})") from None
        if state.size != value.get("state_size") or not math.isfinite(record.last_seen):
            raise _foreign(session_id, "a malformed record (state size or last_seen)")
        return record


def _foreign(session_id: str, reason: str) -> ForeignValueError:
    return ForeignValueError(f"session {session_id!r}: the store holds a value this service cannot read ({reason}); "
                             f"it is left as it is: end the session to discard it")


def _nonnegative_int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _item_list(items) -> list:
    if not isinstance(items, list) or not all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in items):
        raise ValueError("items must be a list of integers or strings")
    return items


def session_key(prefix: str, model_name: str, session_id: str) -> str:
    """The store key of a session: ``<prefix>:v1:<model>:<session_id>``.

    Example:
      >>> session_key("gru4rec-sessions", "gru4rec", "abc")
      'gru4rec-sessions:v1:gru4rec:abc'
    """
    return f"{prefix}:{KEY_LAYOUT}:{model_name}:{session_id}"


def check_names(prefix: str, model_name: str) -> None:
    """Raises ValueError unless prefix and model name are non-empty and free of ``:`` (keys stay unambiguous)."""
    for what, value in (("key prefix", prefix), ("model name", model_name)):
        if not isinstance(value, str) or not value or ":" in value:
            raise ValueError(f"the {what} must be a non-empty string without ':', got {value!r}")


class SessionStore:
    """What the recommender needs of a store. Subclasses: :class:`MemoryStore`, :class:`RedisStore`.

    Example:
      >>> store = open_store("memory")
      >>> store.describe()
      'memory'
    """

    def get(self, model_name: str, session_id: str) -> tuple:
        """``(record or None, sequence number)``; 0 when the session is absent."""
        raise NotImplementedError

    def compare_and_set(self, model_name: str, session_id: str, expected_seq: int, record: SessionRecord,
                        expire_after_s: float) -> bool:
        """Writes ``record`` if the session's sequence number is still ``expected_seq``; True when written.

        The key is forgotten ``expire_after_s`` seconds after the write.
        """
        raise NotImplementedError

    def delete(self, model_name: str, session_id: str) -> bool:
        """Removes a session; True when it existed."""
        raise NotImplementedError

    def ping(self) -> None:
        """Raises :class:`StoreUnavailableError` when the store cannot be reached."""

    def live_sessions(self):
        """Number of sessions held, or None where counting would be expensive (Redis)."""
        return None

    def describe(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Releases connections."""


class MemoryStore(SessionStore):
    """Sessions in this process's memory (one service process, nothing to install). Thread-safe.

    Keys are forgotten ``expire_after_s`` after their last write (checked on access, and swept every
    ``sweep_every`` writes so memory stays bounded by the live sessions).

    Example:
      >>> store = MemoryStore(clock=lambda: 100.0)
      >>> store.live_sessions()
      0
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX, clock=time.monotonic, sweep_every: int = 1024):
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"the key prefix must be a non-empty string, got {prefix!r}")
        if sweep_every < 1:
            raise ValueError(f"sweep_every must be >= 1, got {sweep_every}")
        self.prefix, self._clock, self._sweep_every = prefix, clock, sweep_every
        self._data = {}  # key -> (seq, encoded record, deadline)
        self._lock = threading.Lock()
        self._writes = 0

    def _live(self, key: str):
        entry = self._data.get(key)
        if entry is not None and entry[2] <= self._clock():
            del self._data[key]
            return None
        return entry

    def get(self, model_name, session_id):
        key = session_key(self.prefix, model_name, session_id)
        with self._lock:
            entry = self._live(key)
        if entry is None:
            return None, 0
        return SessionRecord.decode(entry[1], model_name, session_id), entry[0]

    def put_raw(self, key: str, data: bytes, expire_after_s: float = 3600.0) -> None:
        """Writes raw bytes under a key (for tests and migrations: a value of another writer)."""
        with self._lock:
            seq = self._data[key][0] + 1 if key in self._data else 1
            self._data[key] = (seq, data, self._clock() + expire_after_s)

    def compare_and_set(self, model_name, session_id, expected_seq, record, expire_after_s):
        key, data = session_key(self.prefix, model_name, session_id), record.encode()
        with self._lock:
            entry = self._live(key)
            if (entry[0] if entry else 0) != expected_seq:
                return False
            self._data[key] = (expected_seq + 1, data, self._clock() + expire_after_s)
            self._writes += 1
            if self._writes % self._sweep_every == 0:
                self._sweep()
        return True

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, entry in self._data.items() if entry[2] <= now]:
            del self._data[key]

    def delete(self, model_name, session_id):
        with self._lock:
            return self._data.pop(session_key(self.prefix, model_name, session_id), None) is not None

    def live_sessions(self):
        with self._lock:
            self._sweep()
            return len(self._data)

    def describe(self) -> str:
        return "memory"


def parse_redis_url(url: str) -> dict:
    """``redis://[:PASSWORD@]HOST:PORT/DB`` → ``{"host", "port", "db", "password"}``; ValueError naming the fault.

    Example:
      >>> parse_redis_url("redis://10.0.0.3:6379/2")
      {'host': '10.0.0.3', 'port': 6379, 'db': 2, 'password': None}
      >>> parse_redis_url("redis://localhost:six/0")
      Traceback (most recent call last):
      ...
      ValueError: Redis URL 'redis://localhost:six/0': the port must be an integer in [1, 65535]
    """
    if not isinstance(url, str):
        raise ValueError(f"a Redis URL must be a string, got {url!r}")
    parsed = urllib.parse.urlsplit(url)
    fault = None
    try:
        port = parsed.port
    except ValueError:
        port, fault = None, "the port must be an integer in [1, 65535]"
    db_text = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    if fault is None and parsed.scheme != "redis":
        fault = "expected redis://HOST:PORT/DB"
    elif fault is None and not parsed.hostname:
        fault = "no host (expected redis://HOST:PORT/DB)"
    elif fault is None and (port is None or not 1 <= port <= 65535):
        fault = "the port must be an integer in [1, 65535]"
    elif fault is None and db_text and not db_text.isdigit():
        fault = f"the database must be a non-negative integer, got {db_text!r}"
    elif fault is None and (parsed.query or parsed.fragment):
        fault = "query strings and fragments are not supported"
    if fault:
        raise ValueError(f"Redis URL {url!r}: {fault}")
    return {"host": parsed.hostname, "port": port, "db": int(db_text or 0), "password": parsed.password}


# KEYS[1]: the session key. Returns {type, seq, data}; seq and data only for a hash (false = nil otherwise).
_READ_SCRIPT = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'hash' then return {kind, false, false} end
local fields = redis.call('HMGET', KEYS[1], 'seq', 'data')
return {kind, fields[1], fields[2]}
"""

# KEYS[1]: the session key. ARGV: expected sequence number, encoded record, expiry in ms.
# Returns 1 when written, 0 when the sequence number moved (another writer won), -1 for a key of another type.
_CAS_SCRIPT = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'hash' then return -1 end
if kind == 'hash' and redis.call('HEXISTS', KEYS[1], 'data') == 0 then return -1 end
local current = redis.call('HGET', KEYS[1], 'seq') or '0'
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'seq', tostring(tonumber(ARGV[1]) + 1), 'data', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisStore(SessionStore):
    """Sessions in Redis (several service processes; Memorystore on Google Cloud), one hash per session.

    Each session is a hash ``{seq, data}`` under :func:`session_key`; updates go through a Lua compare-and-set
    script, so they are atomic on the server. Connection faults raise :class:`StoreUnavailableError` (nothing
    written) and the next call reconnects by itself.

    Example:
      >>> store = RedisStore("redis://127.0.0.1:6379/0")     # doctest: +SKIP
      >>> store.ping()                                        # doctest: +SKIP
    """

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, timeout_s: float = 1.0, max_connections: int = 256):
        import redis  # pylint: disable=g-import-not-at-top  (only this store needs redis-py)
        from redis.backoff import NoBackoff  # pylint: disable=g-import-not-at-top
        from redis.retry import Retry  # pylint: disable=g-import-not-at-top
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"the key prefix must be a non-empty string, got {prefix!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.url, self.prefix = url, prefix
        address = parse_redis_url(url)
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        # one immediate retry: a pooled connection that died with a restarted server reconnects; no backoff sleeps
        self._redis = redis.Redis(host=address["host"], port=address["port"], db=address["db"],
                                  password=address["password"], socket_timeout=timeout_s,
                                  socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 1),
                                  max_connections=max_connections)
        self._cas = self._redis.register_script(_CAS_SCRIPT)
        self._read = self._redis.register_script(_READ_SCRIPT)

    def _call(self, what: str, function, *args):
        try:
            return function(*args)
        except self._errors as err:
            raise StoreUnavailableError(f"Redis {self.url} unavailable ({what}): {err}") from None

    def get(self, model_name, session_id):
        key = session_key(self.prefix, model_name, session_id)
        kind, seq, data = self._call("get", self._read, [key])  # one round trip, whatever the key holds
        if kind == b"none":
            return None, 0
        if kind != b"hash":
            raise _foreign(session_id, f"a Redis value that is not a session hash (a {kind.decode()})")
        if seq is None or data is None or not seq.isdigit():
            raise _foreign(session_id, "a hash without the fields seq and data")
        return SessionRecord.decode(data, model_name, session_id), int(seq)

    def compare_and_set(self, model_name, session_id, expected_seq, record, expire_after_s):
        key = session_key(self.prefix, model_name, session_id)
        written = self._call("compare-and-set", self._cas, [key],
                             [str(int(expected_seq)), record.encode(), max(1, int(expire_after_s * 1000))])
        if written == -1:
            raise _foreign(session_id, "a Redis value that is not a session hash")
        return written == 1

    def delete(self, model_name, session_id):
        return bool(self._call("delete", self._redis.delete, session_key(self.prefix, model_name, session_id)))

    def ping(self):
        self._call("ping", self._redis.ping)

    def memory_usage(self, model_name: str, session_id: str):
        """Bytes Redis uses for one session's key and value (``MEMORY USAGE``), or None when absent."""
        return self._call("memory usage", self._redis.memory_usage, session_key(self.prefix, model_name,
                                                                                 session_id))

    def describe(self) -> str:
        return self.url

    def close(self):
        self._redis.close()


def open_store(spec: str, prefix: str = DEFAULT_PREFIX, **kwargs) -> SessionStore:
    """The store named by ``--store``: ``memory`` or ``redis://HOST:PORT/DB``; ValueError otherwise.

    Example:
      >>> open_store("mongodb://x")
      Traceback (most recent call last):
      ...
      ValueError: --store must be 'memory' or redis://HOST:PORT/DB, got 'mongodb://x'
    """
    if spec == "memory":
        return MemoryStore(prefix=prefix, **kwargs)
    if isinstance(spec, str) and spec.startswith("redis:"):
        return RedisStore(spec, prefix=prefix, **kwargs)
    raise ValueError(f"--store must be 'memory' or redis://HOST:PORT/DB, got {spec!r}")
