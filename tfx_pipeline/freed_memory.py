"""Gives the memory that a finished component freed back to the operating system.

The local runner (``LocalDagRunner``) runs every component in one process. Memory that a component frees stays in
the process's allocators (glibc's heap, Arrow's pool) and counts in its RSS, so the next component's peak adds on
top of the previous one's leftovers: at 5M events SessionTensors left 0.6 GB of freed heap behind (1.63 GB RSS
after the component, 1.04 GB after ``malloc_trim``), which the Trainer and the evaluator then stacked on
(issue 27: the whole command's peak was 2.65 GB against a target of 2.5 GB). The heavy executors' ``Do`` is
wrapped in :func:`releasing_freed_memory`, which releases after ``Do`` has returned: its locals (a finished Beam
pipeline and the runner's results, decoded batches) are gone by then, so their memory is free too. It only
returns free pages: nothing live is touched.

Its garbage collection is cheap only if the collector need not walk the loaded libraries: after TensorFlow, TFX,
TFDV and Beam are imported the process tracks about 0.9M objects, and a full ``gc.collect()`` walks them all (0.6-1.5 s
on this 2-core machine, measured) after each of the 8 components that release, although only 60 of them were
garbage. :func:`freeze_loaded_objects` collects once and moves what is alive then to the collector's permanent
generation (``gc.freeze``), so a release walks only what was created since. It runs once per process, before any
work: in ``runners.run_local`` before the run, and otherwise (a Vertex/Kubeflow task's container, the Trainer's
``run_fn``) when the first wrapped ``Do`` starts.

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


_FROZEN = []  # set once a process has frozen its loaded objects


def freeze_loaded_objects() -> int:
    """Collects garbage, then moves every object still alive (the imported libraries, the built pipeline) to the
    garbage collector's permanent generation, once per process: later collections, automatic ones too, no longer
    walk them. Returns the number of objects frozen by this call (0 after the first).

    Call it before work starts, not after: nothing is garbage when it is frozen, so nothing is kept that a later
    collection would have freed (frozen objects that die later are still freed by reference counting; only cycles
    among them would stay).

    Example::

        freeze_loaded_objects()      # after the imports and the pipeline's construction, before its run
        LocalDagRunner().run(pipeline)
    """
    if _FROZEN:
        return 0
    gc.collect()
    before = gc.get_freeze_count()
    gc.freeze()
    _FROZEN.append(True)
    return gc.get_freeze_count() - before


def releasing_freed_memory(function):
    """Decorates ``function`` (an executor's ``Do``) to :func:`release_freed_memory` once it has returned or
    raised, when its own frame no longer holds anything (and to :func:`freeze_loaded_objects` before it starts)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        freeze_loaded_objects()  # a no-op after the first time (a local run froze before its first component)
        try:
            return function(*args, **kwargs)
        finally:
            release_freed_memory()
    return wrapper
