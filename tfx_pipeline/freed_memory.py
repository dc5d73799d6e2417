"""Gives the memory that a finished component freed back to the operating system.

The local runner (``LocalDagRunner``) runs every component in one process. Memory that a component frees stays in
the process's allocators (glibc's heap, Arrow's pool) and counts in its RSS, so the next component's peak adds on
top of the previous one's leftovers: at 5M events SessionTensors left 0.6 GB of freed heap behind (1.63 GB RSS
after the component, 1.04 GB after ``malloc_trim``), which the Trainer and the evaluator then stacked on
(issue 27: the whole command's peak was 2.65 GB against a target of 2.5 GB). The heavy executors' ``Do`` is
wrapped in :func:`releasing_freed_memory`, which releases after ``Do`` has returned: its locals (a finished Beam
pipeline and the runner's results, decoded batches) are gone by then, so their memory is free too. It only
returns free pages: nothing live is touched.

Example::

    class Executor(base_beam_executor.BaseBeamExecutor):
        @releasing_freed_memory    # before the next component of the same process starts
        def Do(self, input_dict, output_dict, exec_properties):
            ...                    # the component's work
"""
import ctypes
import ctypes.util
import functools
import gc

from absl import logging


def release_freed_memory() -> bool:
    """Collects garbage, returns Arrow's unused pool memory and glibc's free heap pages to the OS; True when
    ``malloc_trim`` ran (glibc only: elsewhere the Arrow pool and the garbage collector still run)."""
    gc.collect()
    try:
        import pyarrow as pa  # pylint: disable=g-import-not-at-top
        pa.default_memory_pool().release_unused()
    except ImportError:  # pragma: no cover - pyarrow is a dependency of every component
        pass
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        logging.debug("release_freed_memory: no malloc_trim in this C library")
        return False
    trim(0)
    return True


def releasing_freed_memory(function):
    """Decorates ``function`` (an executor's ``Do``) to :func:`release_freed_memory` once it has returned or
    raised, when its own frame no longer holds anything."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            release_freed_memory()
    return wrapper
