"""Prometheus metrics of the session service, written in the text exposition format (version 0.0.4).

prometheus_client is not part of the pinned stack, so the few metric kinds needed (counters with labels, one
latency histogram per method, gauges read at scrape time) are written here; the output parses with any
Prometheus scraper. Names start with ``gru4rec_sessions_``:

* ``requests_total{method, code}``: every call of ``event``, ``recommend`` and ``end`` with its outcome
  (``OK`` or the error code); ``errors_total{code}`` counts the failed ones again by code alone;
* ``request_latency_seconds{method}``: a histogram of the calls' latency;
* ``events_total``, ``new_sessions_total``, ``replays_total`` (a session whose pinned version was gone, replayed
  through ``serving_default`` of the current version), ``expired_total`` (expired sessions replaced by a new one
  at their next event),
  ``conflicts_total`` (compare-and-set retries: two writers of one session at once);
* gauges registered by the service, e.g. ``live_sessions`` (memory store only).

Example:
  >>> metrics = Metrics()
  >>> metrics.count("events_total")
  >>> metrics.observe("event", "OK", 0.0012)
  >>> text = metrics.render()
  >>> "gru4rec_sessions_events_total 1" in text
  True
  >>> 'gru4rec_sessions_request_latency_seconds_bucket{method="event",le="0.002"} 1' in text
  True
"""
import bisect
import collections
import threading

PREFIX = "gru4rec_sessions_"
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
COUNTERS = {
    "events_total": "Events applied to sessions.",
    "new_sessions_total": "Sessions started (first event, or first event after expiry).",
    "replays_total": "Sessions whose pinned model version was gone, replayed through serving_default.",
    "expired_total": "Expired sessions (no event for --ttl_s) replaced by a new one at their next event.",
    "conflicts_total": "Compare-and-set retries: another writer updated the session first.",
}


def _labels(**labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Thread-safe counters, a latency histogram per method and scrape-time gauges, rendered for Prometheus.

    Example:
      >>> metrics = Metrics()
      >>> metrics.gauge("live_sessions", "Sessions held.", lambda: 3)
      >>> "gru4rec_sessions_live_sessions 3" in metrics.render()
      True
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._counters = collections.Counter({name: 0 for name in COUNTERS})
        self._requests = collections.Counter()  # (method, code) -> n
        self._errors = collections.Counter()  # code -> n
        self._latency = {}  # method -> [bucket counts..., sum, count]
        self._gauges = {}  # name -> (help, function)

    def count(self, name: str, n: int = 1) -> None:
        if name not in COUNTERS:
            raise ValueError(f"unknown counter {name!r}; one of {sorted(COUNTERS)}")
        with self._lock:
            self._counters[name] += n

    def observe(self, method: str, code: str, seconds: float) -> None:
        """One finished call: its outcome code (``OK`` or an error code) and latency."""
        with self._lock:
            self._requests[method, code] += 1
            if code != "OK":
                self._errors[code] += 1
            hist = self._latency.setdefault(method, [0] * (len(LATENCY_BUCKETS_S) + 3))  # buckets, +Inf, sum, n
            hist[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
            hist[-2] += seconds
            hist[-1] += 1

    def gauge(self, name: str, help_text: str, function) -> None:
        """A gauge whose value ``function()`` gives at scrape time (None: not reported)."""
        self._gauges[name] = (help_text, function)

    def value(self, name: str) -> int:
        """A counter's value (for tests and summaries)."""
        with self._lock:
            return self._counters[name]

    def requests(self, method: str, code: str = "OK") -> int:
        with self._lock:
            return self._requests[method, code]

    def render(self) -> str:
        """The text exposition format."""
        with self._lock:
            counters, requests = dict(self._counters), dict(self._requests)
            errors, latency = dict(self._errors), {m: list(h) for m, h in self._latency.items()}
        lines = []
        for name, help_text in COUNTERS.items():
            lines += [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} counter",
                      f"{PREFIX}{name} {counters[name]}"]
        lines += [f"# HELP {PREFIX}requests_total Calls by method and outcome code.",
                  f"# TYPE {PREFIX}requests_total counter"]
        lines += [f"{PREFIX}requests_total{_labels(method=m, code=c)} {n}" for (m, c), n in sorted(requests.items())]
        lines += [f"# HELP {PREFIX}errors_total Failed calls by error code.", f"# TYPE {PREFIX}errors_total counter"]
        lines += [f"{PREFIX}errors_total{_labels(code=c)} {n}" for c, n in sorted(errors.items())]
        lines += [f"# HELP {PREFIX}request_latency_seconds Latency of calls through the service.",
                  f"# TYPE {PREFIX}request_latency_seconds histogram"]
        for method, hist in sorted(latency.items()):
            cumulative = 0
            for bound, n in zip(LATENCY_BUCKETS_S, hist, strict=False):
                cumulative += n
                lines.append(f"{PREFIX}request_latency_seconds_bucket{_labels(method=method, le=bound)} {cumulative}")
            lines.append(f"{PREFIX}request_latency_seconds_bucket{_labels(method=method, le='+Inf')} {hist[-1]}")
            lines.append(f"{PREFIX}request_latency_seconds_sum{_labels(method=method)} {hist[-2]:.6f}")
            lines.append(f"{PREFIX}request_latency_seconds_count{_labels(method=method)} {hist[-1]}")
        for name, (help_text, function) in sorted(self._gauges.items()):
            value = function()
            if value is not None:
                lines += [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} gauge",
                          f"{PREFIX}{name} {value}"]
        return "\n".join(lines) + "\n"
