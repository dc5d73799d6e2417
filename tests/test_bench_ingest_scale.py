"""bench/ingest_scale.py: the peak RSS of each component, from the log's component start lines."""
import datetime

from bench import ingest_scale

LOG = """I1207 12:12:03.500000 1 local_dag_runner.py:105] Component ClickLogExampleGen is running.
I1207 12:12:05.000000 1 local_dag_runner.py:110] Component ClickLogExampleGen is finished.
I1207 12:12:05.000000 1 local_dag_runner.py:105] Component Trainer is running.
"""


def test_each_sample_counts_for_the_component_that_was_running():
    start = datetime.datetime(2026, 12, 7, 12, 12, tzinfo=datetime.UTC).timestamp()
    samples = [(start + 3.0, 500), (start + 3.6, 900), (start + 4.9, 700), (start + 5.1, 400), (start + 9.0, 800)]
    peaks = ingest_scale.component_peaks(LOG, samples, 2026)
    assert peaks == {"ClickLogExampleGen": 900, "Trainer": 800}  # 500 was before any component started
