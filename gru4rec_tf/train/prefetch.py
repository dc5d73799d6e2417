"""Preparing the next work item in a background thread while the caller works on the current one.

Example:
  >>> list(prefetched([1, 2, 3], lambda chunk: chunk * 10))   # prepares chunk 2 while the caller holds 10
  [10, 20, 30]
"""
import concurrent.futures

_END = object()


def prefetched(items, prepare, meanwhile=None):
    """Yields ``prepare(item)`` for each of ``items`` in order; the next item is prepared in a background thread
    while the caller handles the current one.

    Items are prepared strictly one after the other, so a random stream drawn by ``prepare`` is the same as
    without the thread. ``meanwhile()`` (optional) runs once in the calling thread while the first item is being
    prepared.
    """
    items = iter(items)

    def prepare_item(item):
        return _END if item is _END else prepare(item)

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gru4rec-prefetch") as pool:
        upcoming = pool.submit(prepare_item, next(items, _END))
        if meanwhile is not None:
            meanwhile()
        while (prepared := upcoming.result()) is not _END:
            upcoming = pool.submit(prepare_item, next(items, _END))
            yield prepared
