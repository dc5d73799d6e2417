"""Session data: the events of one split laid out for session-parallel batching (spec §1, §7)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from gru4rec_tf.data.event_columns import CANONICAL_COLUMNS as _CANONICAL
from gru4rec_tf.data.event_columns import DEFAULT_ITEM_KEY, DEFAULT_SESSION_KEY, DEFAULT_TIME_KEY
from gru4rec_tf.data.vocabulary import ItemVocabulary


class SessionData:
    """Events of one split, ready for session-parallel batching (spec §1, §7).

    Built by :meth:`from_events`: events whose item is not in the vocabulary are dropped *first* (which can join
    the events on either side of a dropped one), then sessions with fewer than 2 events are dropped (they give no
    transitions). Sessions are ordered by their first timestamp (stable; ties broken by SessionId order); events
    inside a session by Time (stable, so equal times keep file order).

    Attributes:
        item_idx: int32 item indices of all events, session after session.
        session_offsets: int64, length ``n_sessions + 1``; session k is ``item_idx[offsets[k]:offsets[k+1]]``.
        session_ids: original session IDs, in session order.
        times: float64 event times aligned with ``item_idx``.
        n_dropped_unknown: events dropped because their item is not in the vocabulary.
        n_dropped_short_sessions: sessions dropped for having < 2 events after that (including sessions whose
            events were all unknown).

    Example::

        >>> train = pd.DataFrame({"SessionId": [7, 7, 3, 3, 3], "ItemId": [10, 11, 10, 12, 11],
        ...                       "Time": [5., 6., 1., 2., 3.]})
        >>> vocab = ItemVocabulary.from_events(train)                  # 10 -> 0, 11 -> 1, 12 -> 2
        >>> data = SessionData.from_events(train, vocab)
        >>> data.session_ids, data.session_offsets, data.item_idx      # session 3 starts first
        (array([3, 7]), array([0, 3, 5]), array([0, 2, 1, 0, 1], dtype=int32))
        >>> data.n_sessions, data.n_events, data.n_transitions
        (2, 5, 3)
    """

    def __init__(
        self,
        item_idx,
        session_offsets,
        session_ids,
        times,
        n_dropped_unknown: int = 0,
        n_dropped_short_sessions: int = 0,
    ):
        item_idx = np.asarray(item_idx, dtype=np.int32)
        offsets = np.asarray(session_offsets, dtype=np.int64)
        session_ids = np.asarray(session_ids)
        times = np.asarray(times, dtype=np.float64)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(item_idx):
            raise ValueError(
                f"session_offsets must be 1-D, start at 0 and end at len(item_idx)={len(item_idx)}"
            )
        if (np.diff(offsets) < 1).any():
            raise ValueError("session_offsets must be strictly increasing (no empty sessions)")
        if len(session_ids) != len(offsets) - 1:
            raise ValueError(f"{len(session_ids)} session_ids for {len(offsets) - 1} sessions")
        if times.shape != item_idx.shape:
            raise ValueError(f"times has shape {times.shape}, expected {item_idx.shape}")
        self.item_idx: np.ndarray = item_idx
        self.session_offsets: np.ndarray = offsets
        self.session_ids: np.ndarray = session_ids
        self.times: np.ndarray = times
        self.n_dropped_unknown: int = int(n_dropped_unknown)
        self.n_dropped_short_sessions: int = int(n_dropped_short_sessions)

    def first_sessions(self, n_sessions: int) -> SessionData:
        """The first ``n_sessions`` sessions (in session order), e.g. for a warm-up or a capped evaluation."""
        n = max(0, min(int(n_sessions), self.n_sessions))
        end = int(self.session_offsets[n])
        return SessionData(self.item_idx[:end], self.session_offsets[:n + 1], self.session_ids[:n],
                           self.times[:end])

    @classmethod
    def from_events(cls, events: pd.DataFrame, vocab: ItemVocabulary) -> SessionData:
        """Maps items through ``vocab``, drops unknown-item events, then short sessions, and orders everything."""
        missing = [c for c in _CANONICAL if c not in events.columns]
        if missing:
            raise ValueError(f"events lacks column(s) {missing}; columns: {list(events.columns)}")
        sess_col = events[DEFAULT_SESSION_KEY]
        if sess_col.isna().any():
            pos = int(np.flatnonzero(sess_col.isna().to_numpy())[0])
            raise ValueError(f"events[{DEFAULT_SESSION_KEY!r}] has a missing value at row {pos + 1}")
        times = events[DEFAULT_TIME_KEY].to_numpy(dtype=np.float64)
        if not np.isfinite(times).all():
            pos = int(np.flatnonzero(~np.isfinite(times))[0])
            raise ValueError(f"events[{DEFAULT_TIME_KEY!r}] has a non-finite value at row {pos + 1}")

        item_idx = vocab.lookup(events[DEFAULT_ITEM_KEY])
        try:  # codes follow SessionId order, which breaks ties between equal first timestamps
            codes, uniques = pd.factorize(sess_col.to_numpy(), sort=True)
        except TypeError:  # unorderable mix of types: fall back to first appearance
            codes, uniques = pd.factorize(sess_col.to_numpy(), sort=False)
        n_all_sessions = len(uniques)

        known = item_idx >= 0
        n_dropped_unknown = int(len(known) - np.count_nonzero(known))
        if n_dropped_unknown:
            item_idx, codes, times = item_idx[known], codes[known], times[known]

        lengths = np.bincount(codes, minlength=n_all_sessions)
        long_enough = lengths >= 2
        n_dropped_short = int(n_all_sessions - np.count_nonzero(long_enough))
        if n_dropped_short:
            keep = long_enough[codes]
            item_idx, codes, times = item_idx[keep], codes[keep], times[keep]

        if len(codes) == 0:
            return cls(
                np.zeros(0, np.int32), np.zeros(1, np.int64), np.asarray(uniques)[:0], np.zeros(0, np.float64),
                n_dropped_unknown, n_dropped_short,
            )

        # first timestamp per session (indexed by code; sessions that were dropped get +inf and are never used)
        first_time = (
            pd.Series(times).groupby(codes, sort=True).min().reindex(np.arange(n_all_sessions), fill_value=np.inf)
        ).to_numpy()
        kept_codes = np.flatnonzero(long_enough)
        session_order = kept_codes[np.argsort(first_time[kept_codes], kind="stable")]  # ties: SessionId order
        rank = np.empty(n_all_sessions, dtype=np.int64)
        rank[session_order] = np.arange(len(session_order))

        ev_rank = rank[codes]
        order = np.lexsort((times, ev_rank))  # stable: equal (session, time) keep file order
        ev_rank = ev_rank[order]
        starts = np.flatnonzero(np.diff(ev_rank)) + 1
        offsets = np.concatenate(([0], starts, [len(order)])).astype(np.int64)
        return cls(
            item_idx[order],
            offsets,
            np.asarray(uniques)[session_order],
            times[order],
            n_dropped_unknown,
            n_dropped_short,
        )

    @property
    def n_sessions(self) -> int:
        return len(self.session_offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.item_idx)

    @property
    def n_transitions(self) -> int:
        return self.n_events - self.n_sessions

    @property
    def session_lengths(self) -> np.ndarray:
        """int64 number of events of each session, in session order."""
        return np.diff(self.session_offsets)

    def __len__(self) -> int:
        return self.n_sessions

    def __repr__(self) -> str:
        return (
            f"SessionData(n_sessions={self.n_sessions}, n_events={self.n_events}, "
            f"n_dropped_unknown={self.n_dropped_unknown}, n_dropped_short_sessions={self.n_dropped_short_sessions})"
        )
