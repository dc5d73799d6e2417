"""release_freed_memory (tfx_pipeline.freed_memory, issue 27): heap memory that was freed but kept by glibc is
returned to the OS, so the next component of the same process does not stack its peak on it."""
import psutil
import pytest

from tfx_pipeline import freed_memory

from tfx_pipeline.freed_memory import release_freed_memory, releasing_freed_memory


def test_freed_heap_memory_goes_back_to_the_os():
    process = psutil.Process()
    blocks = [bytes(2048) for _ in range(150_000)]  # ~300 MB in malloc'd blocks (above Python's small-object size)
    keep = blocks[::64]  # a few live blocks spread over the heap: it cannot shrink from the top alone
    del blocks
    before = process.memory_info().rss
    assert release_freed_memory() is True  # glibc (Debian): malloc_trim ran
    after = process.memory_info().rss
    assert before - after > 100 * 2**20, (before, after)
    assert len(keep) == 2344 and all(len(b) == 2048 for b in keep)  # live blocks untouched


def _allocate_and_drop(process: psutil.Process) -> int:
    """Fills ~300 MB of heap, keeps a few blocks spread over it, and returns the RSS while the rest is still live."""
    blocks = [bytes(2048) for _ in range(150_000)]
    _allocate_and_drop.kept = blocks[::64]  # live blocks spread over the heap: it cannot shrink from the top alone
    return process.memory_info().rss


def test_the_decorator_releases_what_the_function_held_once_it_returned():
    process = psutil.Process()
    wrapped = releasing_freed_memory(_allocate_and_drop)
    assert wrapped.__name__ == "_allocate_and_drop"  # functools.wraps: TFX logs and pickles executors by name
    while_live = wrapped(process)
    after = process.memory_info().rss
    assert while_live - after > 100 * 2**20, (while_live, after)  # the function's frame held the blocks: freed now


def test_the_decorator_freezes_first_and_releases_after_a_failure_and_reraises(monkeypatch):
    calls = []
    monkeypatch.setattr(freed_memory, "release_freed_memory", lambda: calls.append("released"))
    monkeypatch.setattr(freed_memory, "freeze_loaded_objects", lambda: calls.append("froze"))

    @freed_memory.releasing_freed_memory
    def failing():
        calls.append("ran")
        raise ValueError("bad split")

    with pytest.raises(ValueError, match="bad split"):
        failing()
    assert calls == ["froze", "ran", "released"]


@pytest.fixture
def fresh_freeze(monkeypatch):
    """A process state where nothing was frozen yet; unfrozen again afterwards (the collector walks it all again)."""
    import gc
    monkeypatch.setattr(freed_memory, "_FROZEN", [])
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freezing_the_loaded_objects_takes_them_out_of_later_collections_once(fresh_freeze):
    import gc
    import weakref

    class Node:
        pass

    garbage = Node()
    garbage.self = garbage  # a cycle: only the collector frees it
    dead = weakref.ref(garbage)
    del garbage
    tracked = len(gc.get_objects())
    frozen = freed_memory.freeze_loaded_objects()
    assert dead() is None  # collected first, not frozen for good
    assert frozen >= tracked * 0.8 and gc.get_freeze_count() == frozen  # what was alive then
    assert len(gc.get_objects()) < tracked * 0.1  # what a collection still walks
    assert freed_memory.freeze_loaded_objects() == 0  # once per process


def test_garbage_made_after_the_freeze_is_still_collected(fresh_freeze):
    import gc
    import weakref
    freed_memory.freeze_loaded_objects()

    class Node:
        pass

    cycle = Node()
    cycle.self = cycle  # only the cycle collector frees it
    alive = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert alive() is None


def test_run_local_freezes_before_the_runner_runs(monkeypatch):
    from tfx_pipeline import runners
    calls = []
    monkeypatch.setattr(freed_memory, "freeze_loaded_objects", lambda: calls.append("freeze"))

    class Runner:
        def run(self, pipeline):
            calls.append(("run", pipeline))

    monkeypatch.setattr(runners.tfx.orchestration, "LocalDagRunner", Runner)
    runners.run_local("the pipeline")
    assert calls == ["freeze", ("run", "the pipeline")]
