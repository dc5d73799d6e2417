"""Session-parallel schedule (spec §1) against a direct simulation of the official loop."""
import numpy as np
import pytest

from gru4rec_tf.data import batching


def _random_sessions(rng, n_sessions, max_len=7):
    lengths = rng.randint(2, max_len + 1, size=n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return rng.randint(0, 50, size=offsets[-1]).astype(np.int32), offsets


def _official_loop(items, offsets, batch_size, n_sample=1):
    """The official epoch loop (minlen inner loop, refill in slot order, row removal), as (input, target, session)
    triples per step and the list of sessions whose state is zeroed before each step."""
    n_sessions = len(offsets) - 1
    iters = np.arange(min(batch_size, n_sessions))
    maxiter = iters.max()
    start, end = offsets[iters].copy(), offsets[iters + 1].copy()
    steps, resets = [], []
    fresh = set(iters.tolist())
    while True:
        minlen = (end - start).min()
        for i in range(minlen - 1):
            steps.append(sorted(zip(items[start + i].tolist(), items[start + i + 1].tolist(), iters.tolist(),
                                    strict=True)))
            resets.append(sorted(fresh))
            fresh = set()
        start = start + minlen - 1
        finished = np.flatnonzero(end - start <= 1)
        for idx in finished:
            maxiter += 1
            iters[idx] = maxiter
        valid = iters < n_sessions
        if valid.sum() == 0 or (valid.sum() < 2 and n_sample == 0):
            break
        for idx in finished:
            if valid[idx]:
                start[idx], end[idx] = offsets[iters[idx]], offsets[iters[idx] + 1]
                fresh.add(int(iters[idx]))
        iters, start, end = iters[valid], start[valid], end[valid]
    return steps, resets


def _schedule_steps(sched):
    steps, resets = [], []
    for t in range(sched.n_steps):
        v = sched.valid[t]
        steps.append(sorted(zip(sched.inputs[t][v].tolist(), sched.targets[t][v].tolist(),
                                sched.session_index[t][v].tolist(), strict=True)))
        resets.append(sorted(sched.session_index[t][sched.reset[t]].tolist()))
    return steps, resets


@pytest.mark.parametrize("batch_size,n_sessions,seed", [(1, 5, 0), (3, 20, 1), (8, 40, 2), (16, 10, 3)])
@pytest.mark.parametrize("n_sample", [0, 16])
def test_schedule_matches_official_loop(batch_size, n_sessions, seed, n_sample):
    items, offsets = _random_sessions(np.random.RandomState(seed), n_sessions)
    sched = batching.make_schedule(items, offsets, batch_size, stop_below_two_rows=n_sample == 0)
    expected_steps, expected_resets = _official_loop(items, offsets, batch_size, n_sample)
    got_steps, got_resets = _schedule_steps(sched)
    assert got_steps == expected_steps
    assert got_resets == expected_resets


def test_every_transition_once_and_resets_at_session_boundaries():
    items, offsets = _random_sessions(np.random.RandomState(7), 60)
    sched = batching.make_schedule(items, offsets, batch_size=5)
    assert sched.n_transitions == len(items) - (len(offsets) - 1)
    seen = {}
    for t in range(sched.n_steps):
        for slot in np.flatnonzero(sched.valid[t]):
            seen.setdefault(int(sched.session_index[t, slot]), []).append(
                (t, slot, int(sched.inputs[t, slot]), int(sched.targets[t, slot]), bool(sched.reset[t, slot])))
    assert sorted(seen) == list(range(len(offsets) - 1))
    for session, rows in seen.items():
        events = items[offsets[session]:offsets[session + 1]]
        assert [r[2] for r in rows] == events[:-1].tolist()
        assert [r[3] for r in rows] == events[1:].tolist()
        assert [r[4] for r in rows] == [True] + [False] * (len(rows) - 1)  # reset exactly at the session start
        assert len({r[1] for r in rows}) == 1  # a session stays in one slot
        assert [r[0] for r in rows] == list(range(rows[0][0], rows[0][0] + len(rows)))  # consecutive steps


def test_sessions_start_in_session_order_and_tail_shrinks():
    items, offsets = _random_sessions(np.random.RandomState(3), 50)
    sched = batching.make_schedule(items, offsets, batch_size=6)
    first_step = {}
    for t in range(sched.n_steps):
        for s in sched.session_index[t][sched.reset[t]]:
            first_step[int(s)] = t
    starts = [first_step[s] for s in range(len(offsets) - 1)]
    assert starts == sorted(starts)
    active = sched.valid.sum(axis=1)
    assert active[0] == 6 and active[-1] >= 1
    assert np.all(np.diff(active) <= 0) or np.all(np.diff(active[np.argmax(active < 6):]) <= 0)
    for slot in range(6):  # once a slot goes invalid it stays invalid: the batch only shrinks
        column = sched.valid[:, slot]
        if not column.all():
            assert not column[np.argmin(column):].any()


def test_stop_below_two_rows_without_samples():
    items, offsets = np.arange(12, dtype=np.int32), np.array([0, 2, 12])
    assert batching.make_schedule(items, offsets, 2).n_steps == 9
    assert batching.make_schedule(items, offsets, 2, stop_below_two_rows=True).n_steps == 1


def test_chunks_cover_schedule():
    items, offsets = _random_sessions(np.random.RandomState(1), 30)
    sched = batching.make_schedule(items, offsets, 4)
    chunks = list(sched.chunks(7))
    assert sum(c.n_steps for c in chunks) == sched.n_steps
    np.testing.assert_array_equal(np.concatenate([c.targets for c in chunks]), sched.targets)


@pytest.mark.parametrize("offsets,message", [([0, 1, 3], "needs >= 2 events"), ([1, 3], "start at 0")])
def test_bad_input(offsets, message):
    with pytest.raises(ValueError, match=message):
        batching.make_schedule(np.arange(3), np.array(offsets), 2)
    with pytest.raises(ValueError, match="batch_size"):
        batching.make_schedule(np.arange(4), np.array([0, 4]), 0)
