"""Tests for gru4rec_tf.evaluation.bootstrap: session totals, seeded resampling, percentile intervals."""
import numpy as np
import pytest

from gru4rec_tf.evaluation import bootstrap


def _recall_totals(n_sessions, events_per_session=4, p=0.5, seed=0):
    """Per-session (hits, events) of sessions whose events are hits with probability ``p``."""
    rng = np.random.default_rng(seed)
    sessions = np.repeat(np.arange(n_sessions), events_per_session)
    hits = (rng.random(len(sessions)) < p).astype(float)
    return bootstrap.session_totals(np.stack([hits, np.ones_like(hits)], axis=1), sessions, n_sessions)


def _ratio(totals):
    return totals[:, :1] / totals[:, 1:]


def test_session_totals_sum_each_sessions_events():
    values = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert bootstrap.session_totals(values, np.array([2, 0, 2]), 4).tolist() == [
        [3.0, 4.0], [0.0, 0.0], [6.0, 8.0], [0.0, 0.0]]
    assert bootstrap.session_totals(np.array([1.0, 2.0]), np.array([0, 0]), 1).tolist() == [[3.0]]
    with pytest.raises(ValueError, match="session indices must lie in"):
        bootstrap.session_totals(values, np.array([0, 1, 4]), 4)
    with pytest.raises(ValueError, match="2 session indices for 3 events"):
        bootstrap.session_totals(values, np.array([0, 1]), 4)


def test_interval_contains_the_point_and_shrinks_with_more_sessions():
    widths = []
    for n_sessions in (100, 10_000):
        totals = _recall_totals(n_sessions)
        lo, hi = bootstrap.intervals(totals, _ratio, n_resamples=400, seed=1)
        point = _ratio(totals.sum(axis=0, keepdims=True))[0, 0]
        assert lo[0] < point < hi[0]
        widths.append(hi[0] - lo[0])
    # the width of a mean's interval falls as 1/sqrt(sessions): 100 times the sessions, about a tenth of the width
    assert 6 < widths[0] / widths[1] < 15, widths
    # binomial with 4 events per session: the 95% interval is about 4 standard errors wide
    assert widths[1] == pytest.approx(2 * 1.96 * np.sqrt(0.25 / 40_000), rel=0.2)
    # and the standard error (a corrected gate's interval: +- z errors) is the binomial one
    lo, hi, se = bootstrap.intervals_and_errors(_recall_totals(10_000), _ratio, n_resamples=400, seed=1)
    assert se[0] == pytest.approx(np.sqrt(0.25 / 40_000), rel=0.15) and (lo[0], hi[0]) == tuple(
        x[0] for x in bootstrap.intervals(_recall_totals(10_000), _ratio, n_resamples=400, seed=1))


def test_resampling_is_seeded_and_covers_the_requested_number():
    totals = _recall_totals(50)
    first = np.concatenate(list(bootstrap.resampled_totals(totals, 300, seed=5)))
    again = np.concatenate(list(bootstrap.resampled_totals(totals, 300, seed=5)))
    other = np.concatenate(list(bootstrap.resampled_totals(totals, 300, seed=6)))
    assert first.shape == (300, 2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(first[:, 1], 200.0)  # 50 sessions of 4 events drawn each time


def test_resamples_come_in_blocks_when_sessions_are_many(monkeypatch):
    monkeypatch.setattr(bootstrap, "_BLOCK_ELEMENTS", 1000)
    totals = _recall_totals(300)
    blocks = list(bootstrap.resampled_totals(totals, 10, seed=0))
    assert [len(b) for b in blocks] == [3, 3, 3, 1]


def test_a_statistic_without_any_value_gets_nan_bounds():
    totals = np.array([[1.0, 2.0, 0.0], [0.0, 2.0, 0.0]])
    with np.errstate(invalid="ignore", divide="ignore"):
        lo, hi = bootstrap.intervals(totals, lambda t: t[:, [0, 0]] / t[:, [1, 2]], n_resamples=50, seed=0)
    assert 0.0 <= lo[0] <= hi[0] <= 0.5
    assert np.isnan(lo[1]) and np.isnan(hi[1])


@pytest.mark.parametrize("kwargs,message", [
    ({"n_resamples": 0}, "n_resamples must be an integer >= 1, got 0"),
    ({"confidence": 1.0}, r"confidence must lie in \(0, 1\), got 1.0"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap.intervals(_recall_totals(5), _ratio, **kwargs)
