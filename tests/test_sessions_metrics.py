"""serving.sessions.metrics: the Prometheus text exposition of the session service (no TensorFlow)."""
import threading

import pytest

from serving.sessions import metrics as metrics_lib


def samples(text: str) -> dict:
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_counters_histogram_and_gauges():
    metrics = metrics_lib.Metrics()
    metrics.count("replays_total", 2)
    for seconds in (0.0004, 0.0005, 0.003, 7.0):  # 0.0005 falls in le="0.0005" (bounds are inclusive)
        metrics.observe("event", "OK", seconds)
    metrics.observe("event", "UNAVAILABLE", 0.01)
    metrics.gauge("live_sessions", "Sessions held.", lambda: 5)
    metrics.gauge("absent", "Not reported.", lambda: None)
    got = samples(metrics.render())
    assert got["gru4rec_sessions_replays_total"] == "2" and got["gru4rec_sessions_events_total"] == "0"
    bucket = 'gru4rec_sessions_request_latency_seconds_bucket{method="event",le="%s"}'
    assert [got[bucket % le] for le in ("0.0005", "0.001", "0.005", "0.01", "5.0", "+Inf")] == \
        ["2", "2", "3", "4", "4", "5"]
    assert got['gru4rec_sessions_request_latency_seconds_count{method="event"}'] == "5"
    assert float(got['gru4rec_sessions_request_latency_seconds_sum{method="event"}']) == pytest.approx(7.0139)
    assert got['gru4rec_sessions_requests_total{method="event",code="UNAVAILABLE"}'] == "1"
    assert got['gru4rec_sessions_errors_total{code="UNAVAILABLE"}'] == "1"
    assert got["gru4rec_sessions_live_sessions"] == "5" and "gru4rec_sessions_absent" not in got
    assert (metrics.value("replays_total"), metrics.requests("event"), metrics.requests("event", "UNAVAILABLE")) == \
        (2, 4, 1)


def test_label_values_are_escaped_and_unknown_counters_refused():
    metrics = metrics_lib.Metrics()
    metrics.observe('a"b\\c\nd', "OK", 0.1)
    assert 'method="a\\"b\\\\c\\nd"' in metrics.render()
    with pytest.raises(ValueError, match="unknown counter 'nope'"):
        metrics.count("nope")


def test_counts_from_threads_add_up():
    metrics = metrics_lib.Metrics()

    def work():
        for _ in range(1000):
            metrics.count("events_total")
            metrics.observe("event", "OK", 0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metrics.value("events_total") == 4000 and metrics.requests("event") == 4000
