"""The session service over HTTP/JSON, and its Python client.

Why HTTP/JSON rather than gRPC: the callers are web backends, which all speak HTTP/JSON without generated stubs or
a proto toolchain, and one event is a few hundred bytes each way, so JSON costs little next to the model call; the
tensor-heavy hop (service → TF Serving) stays gRPC. Endpoints (all bodies JSON objects):

* ``POST /v1/event`` ``{"session_id", "item_id"[, "k", "exclude_seen"]}`` → ``{"session_id", "item_ids",
  "scores", "model_version"}``: applies the event, answers the top-k for the session so far;
* ``POST /v1/recommend`` ``{"session_id"[, "k", "exclude_seen"]}`` → the same, without a new event;
* ``POST /v1/end`` ``{"session_id"}`` → ``{"session_id", "ended": true|false}``;
* ``GET /healthz`` → 200 ``{"status": "SERVING", ...}`` or 503 ``NOT_SERVING`` (model server and store checked);
* ``GET /metrics`` (also ``/monitoring/prometheus/metrics``, TF Serving's path): Prometheus text format.

Errors: ``{"error": {"code": "INVALID_ARGUMENT", "message": ...}}`` with the HTTP status of Google's gRPC-HTTP
mapping (400 INVALID_ARGUMENT / FAILED_PRECONDITION, 404 NOT_FOUND, 409 ABORTED, 503 UNAVAILABLE, 500 INTERNAL).

Example:
  >>> server = SessionHTTPServer(recommender, port=8600).start()        # doctest: +SKIP
  >>> with SessionServiceClient("127.0.0.1:8600") as client:            # doctest: +SKIP
  ...     client.event("s1", 100042, k=5)["item_ids"]
"""
import http.client
import http.server
import json
import socket
import threading

from serving.sessions import api

MAX_BODY_BYTES = 64 * 1024
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "NOT_FOUND": 404,
               "ABORTED": 409, "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503,
               "DEADLINE_EXCEEDED": 504, "UNIMPLEMENTED": 501}
FIELDS = {"/v1/event": ({"session_id", "item_id"}, {"k", "exclude_seen"}),
          "/v1/recommend": ({"session_id"}, {"k", "exclude_seen"}),
          "/v1/end": ({"session_id"}, set())}
METRICS_PATHS = ("/metrics", "/monitoring/prometheus/metrics")


def _fields(path: str, body: bytes) -> dict:
    """The request's JSON object, checked against the endpoint's fields; ServiceError(INVALID_ARGUMENT)."""
    try:
        value = json.loads(body or b"null")
    except (UnicodeDecodeError, ValueError) as err:
        raise api.ServiceError("INVALID_ARGUMENT", f"the body is not JSON: {err}") from None
    if not isinstance(value, dict):
        raise api.ServiceError("INVALID_ARGUMENT", "the body must be a JSON object")
    required, optional = FIELDS[path]
    missing, unknown = sorted(required - set(value)), sorted(set(value) - required - optional)
    if missing or unknown:
        raise api.ServiceError("INVALID_ARGUMENT", f"{path}: missing fields {missing}, unknown fields "
                                                       f"{unknown}; it takes {sorted(required | optional)}")
    return value


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client thread
    server_version = "gru4rec-sessions/1"
    timeout = 300  # idle keep-alive connections are closed after this

    def setup(self):
        super().setup()
        # headers and body are written separately: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms per answer
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):  # quiet: the metrics count every call
        del args

    def _send(self, status: int, payload, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if hasattr(self, "_headers_buffer"):  # end_headers() with the body appended: one send instead of two
            self._headers_buffer.append(b"\r\n" + data)
            self.flush_headers()
        else:  # an HTTP/0.9 request has no headers
            self.end_headers()
            self.wfile.write(data)

    def _error(self, err: api.ServiceError) -> None:
        self._send(HTTP_STATUS.get(err.code, 500), {"error": err.to_dict()})

    def do_GET(self):  # noqa: N802  (http.server's method name)
        recommender = self.server.recommender
        if self.path in ("/healthz", "/v1/health"):
            report = recommender.health()
            self._send(200 if report["status"] == "SERVING" else 503, report)
        elif self.path in METRICS_PATHS:
            self._send(200, recommender.metrics.render().encode(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._error(api.ServiceError("NOT_FOUND", f"no such path {self.path!r} (GET /healthz, /metrics)"))

    def do_POST(self):  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._error(api.ServiceError("INVALID_ARGUMENT", f"the body must have a Content-Length of at most "
                                                                 f"{MAX_BODY_BYTES} bytes"))
            return
        body = self.rfile.read(length)
        try:
            self._send(200, self._dispatch(self.path, body))
        except api.ServiceError as err:
            self._error(err)

    def _dispatch(self, path: str, body: bytes) -> dict:
        if path not in FIELDS:
            raise api.ServiceError("NOT_FOUND", f"no such path {path!r} (POST {', '.join(FIELDS)})")
        fields = _fields(path, body)
        recommender, session_id = self.server.recommender, fields["session_id"]
        options = {name: fields[name] for name in ("k", "exclude_seen") if name in fields}
        if path == "/v1/event":
            return recommender.event(session_id, fields["item_id"], **options).to_dict()
        if path == "/v1/recommend":
            return recommender.recommend(session_id, **options).to_dict()
        return {"session_id": session_id, "ended": recommender.end(session_id)}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class SessionHTTPServer:
    """The HTTP/JSON session service over a :class:`~serving.sessions.recommender.SessionRecommender`.

    Example:
      >>> with SessionHTTPServer(recommender, port=0) as server:      # doctest: +SKIP
      ...     print(server.target)                                      # 127.0.0.1:<a free port>
    """

    def __init__(self, recommender, port: int = 8600, host: str = "127.0.0.1"):
        if not 0 <= port < 65536:
            raise ValueError(f"port must be in [0, 65535], got {port}")
        self.recommender = recommender
        self._server = _Server((host, port), _Handler)
        self._server.recommender = recommender
        self.host, self.port = host, self._server.server_address[1]
        self._thread = None
        self._stopped = threading.Event()

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "SessionHTTPServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="sessions-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._stopped.set()

    def wait(self, timeout_s: float = None) -> bool:
        return self._stopped.wait(timeout_s)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SessionServiceError(Exception):
    """The service answered an error, or could not be reached (``code`` ``UNAVAILABLE``)."""

    def __init__(self, code: str, message: str, http_status: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.http_status = code, message, http_status


class SessionServiceClient:
    """HTTP/JSON client of the session service; one keep-alive connection per thread. Thread-safe.

    Example:
      >>> with SessionServiceClient("127.0.0.1:8600", timeout_s=5) as client:   # doctest: +SKIP
      ...     client.event("s1", 100042, k=20, exclude_seen=True)
      ...     client.recommend("s1", k=5)
      ...     client.end("s1")
    """

    def __init__(self, target: str, timeout_s: float = 10.0):
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"the service address must be HOST:PORT, got {target!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.target, self._host, self._port, self.timeout_s = target, host, int(port), timeout_s
        self._local = threading.local()

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        if fresh or getattr(self._local, "connection", None) is None:
            if getattr(self._local, "connection", None) is not None:
                self._local.connection.close()
            self._local.connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)
        return self._local.connection

    def _request(self, method: str, path: str, payload=None) -> tuple:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in range(2):  # a kept-alive connection the server closed while idle: reconnect once
            connection = self._connection(fresh=attempt > 0)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read(), response.getheader("Content-Type", "")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as err:
                if attempt:
                    raise SessionServiceError("UNAVAILABLE", f"{self.target}: {err}") from None
            except (OSError, http.client.HTTPException) as err:
                self._connection(fresh=True)
                raise SessionServiceError("UNAVAILABLE", f"{self.target}: {type(err).__name__}: {err}") from None
        raise AssertionError("unreachable")

    def _json(self, path: str, payload: dict) -> dict:
        status, data, _ = self._request("POST", path, payload)
        value = json.loads(data)
        if status != 200:
            error = value.get("error", {}) if isinstance(value, dict) else {}
            raise SessionServiceError(error.get("code", "UNKNOWN"), error.get("message", data.decode()), status)
        return value

    def event(self, session_id: str, item_id, k: int | None = None, exclude_seen: bool | None = None) -> dict:
        """``{"session_id", "item_ids", "scores", "model_version"}`` after the event."""
        return self._json("/v1/event", {"session_id": session_id, "item_id": item_id,
                                        **_options(k, exclude_seen)})

    def recommend(self, session_id: str, k: int | None = None, exclude_seen: bool | None = None) -> dict:
        return self._json("/v1/recommend", {"session_id": session_id, **_options(k, exclude_seen)})

    def end(self, session_id: str) -> bool:
        return self._json("/v1/end", {"session_id": session_id})["ended"]

    def health(self) -> tuple:
        """``(HTTP status, report)``."""
        status, data, _ = self._request("GET", "/healthz")
        return status, json.loads(data)

    def metrics(self) -> str:
        return self._request("GET", "/metrics")[1].decode("utf-8")

    def close(self) -> None:
        if getattr(self._local, "connection", None) is not None:
            self._local.connection.close()
            self._local.connection = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _options(k, exclude_seen) -> dict:
    return {**({} if k is None else {"k": k}), **({} if exclude_seen is None else {"exclude_seen": exclude_seen})}


def free_port() -> int:
    """A free TCP port on loopback (for tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
