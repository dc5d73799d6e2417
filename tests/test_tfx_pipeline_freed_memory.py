"""release_freed_memory (tfx_pipeline.freed_memory, issue 27): heap memory that was freed but kept by glibc is
returned to the OS, so the next component of the same process does not stack its peak on it."""
import psutil

from tfx_pipeline.freed_memory import release_freed_memory


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
