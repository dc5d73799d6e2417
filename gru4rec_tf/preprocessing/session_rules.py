"""Session-level rules (spec §7) on single sessions, in pure Python; the Beam transforms apply them per element.

A *session* is a tuple ``(session_id, times, items)``: ``times`` is a tuple of integer microseconds and ``items``
a tuple of item-ID strings, both in event order. Events are ordered by time, ties by item ID (text order), so
the order never depends on how a runner delivered the rows.

Example::

    >>> s = make_session("7", [("b", 20), ("a", 10), ("a", 20)])
    >>> s
    ('7', (10, 20, 20), ('a', 'a', 'b'))
    >>> dedupe_consecutive(s)
    ('7', (10, 20), ('a', 'b'))
    >>> truncate_before(s, 20)
    ('7', (10,), ('a',))
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet

__all__ = [
    "Session", "make_session", "split_by_gap", "dedupe_consecutive", "drop_items", "keep_items", "truncate_before",
    "id_sort_key", "session_sort_key", "first_positions",
]

Session = tuple[str, tuple[int, ...], tuple[str, ...]]
_INT_TEXT = re.compile(r"-?[0-9]+\Z")


def id_sort_key(value: str) -> tuple:
    """Order of IDs: integer-looking IDs first, numerically, then the others as text.

    For logs whose IDs are all integers this is the numeric order the library uses for int64 IDs.

    Example::

        >>> sorted(["10", "9", "b", "a"], key=id_sort_key)
        ['9', '10', 'a', 'b']
    """
    if _INT_TEXT.match(value):
        return (0, int(value), value)
    return (1, 0, value)


def session_sort_key(session: Session) -> tuple:
    """Session order of the output files: first timestamp, ties by session ID (:func:`id_sort_key`)."""
    return (session[1][0], id_sort_key(session[0]))


def make_session(session_id: str, events: Iterable[tuple[str, int]]) -> Session:
    """Builds a session from ``(item, time_us)`` pairs in any order."""
    ordered = sorted(events, key=lambda e: (e[1], e[0]))
    return session_id, tuple(e[1] for e in ordered), tuple(e[0] for e in ordered)


def split_by_gap(user_id: str, events: Iterable[tuple[str, int]], gap_us: int) -> Iterator[Session]:
    """Splits one user's ``(item, time_us)`` events into sessions at gaps longer than ``gap_us``.

    Session IDs are ``<user>#<k>`` with k = 0, 1, ... in time order.

    Example::

        >>> list(split_by_gap("u", [("a", 0), ("b", 5), ("c", 100)], gap_us=10))
        [('u#0', (0, 5), ('a', 'b')), ('u#1', (100,), ('c',))]
    """
    _, times, items = make_session(user_id, events)
    start = 0
    k = 0
    for i in range(1, len(times) + 1):
        if i == len(times) or times[i] - times[i - 1] > gap_us:
            yield f"{user_id}#{k}", times[start:i], items[start:i]
            start = i
            k += 1


def dedupe_consecutive(session: Session) -> Session:
    """Drops each event whose item equals the previous event's item."""
    sid, times, items = session
    keep = [i for i in range(len(items)) if i == 0 or items[i] != items[i - 1]]
    if len(keep) == len(items):
        return session
    return sid, tuple(times[i] for i in keep), tuple(items[i] for i in keep)


def drop_items(session: Session, items_to_drop: AbstractSet[str]) -> Session:
    """Removes the events of the given items (neighbours are not merged or deduplicated again)."""
    sid, times, items = session
    if not items_to_drop or items_to_drop.isdisjoint(items):
        return session
    keep = [i for i, item in enumerate(items) if item not in items_to_drop]
    return sid, tuple(times[i] for i in keep), tuple(items[i] for i in keep)


def keep_items(session: Session, allowed: AbstractSet[str]) -> Session:
    """Keeps only the events whose item is in ``allowed``."""
    sid, times, items = session
    keep = [i for i, item in enumerate(items) if item in allowed]
    if len(keep) == len(items):
        return session
    return sid, tuple(times[i] for i in keep), tuple(items[i] for i in keep)


def truncate_before(session: Session, split_us: int) -> Session:
    """Keeps the events strictly before ``split_us``."""
    sid, times, items = session
    n = sum(1 for t in times if t < split_us)
    return session if n == len(times) else (sid, times[:n], items[:n])


def first_positions(session: Session) -> Iterator[tuple[str, int]]:
    """``(item, position)`` of the first occurrence of each item in the session."""
    seen = set()
    for pos, item in enumerate(session[2]):
        if item not in seen:
            seen.add(item)
            yield item, pos
