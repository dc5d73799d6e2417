"""Reusing compiled training loops across runs: TensorFlow's persistent XLA cache and shape-stable item tables.

Every training run compiles its multi-step loop with XLA (seconds on CPU, whatever the data size), which dominates
a short daily warm-start run. TensorFlow can keep compiled programs on disk
(``TF_XLA_FLAGS=--tf_xla_persistent_cache_directory=DIR``) and load them in a later process, but only a program of
the very same computation: same argument shapes, same traced function names. So, when the cache is on:

* the item-indexed variables are allocated at a **capacity** (:func:`item_capacity`: the catalogue size rounded up
  to a half octave, at most 50% larger), so that consecutive days whose catalogues grow a little share one
  program; the padding rows are never sampled, trained, evaluated, saved or exported (``routine.train`` returns a
  model of the real size, identical to an unpadded run with the same seed);
* the **distinct-row budget** of a step (the trainer's computation size for the sampled output rows, which depends
  on the day's popularity distribution) is rounded up to a quarter octave (:func:`round_up`), so it stays the same
  from day to day; this changes results only by float rounding (a computation over more zero-weight rows; about
  1e-4 on a weight after an epoch of rsc15_100k);
* the loop is traced with **stable names** (:func:`stable_trace_names`): the uid TensorFlow appends to the names of
  traced functions is a process-wide counter, so the same loop traced after other work gets other names and a
  different cache key; inside this context the names depend only on the loop's configuration (and on how many
  loops of that configuration this process traced before), so the same run in a new process finds its program.

The directory must be set before TensorFlow runs its first operation in the process (TensorFlow reads its XLA flags
once): :func:`enable` says whether it could, and ``gru4rec train --compile_cache_dir`` calls it first thing. In
containers (the TFX Trainer) set ``TF_XLA_FLAGS=--tf_xla_persistent_cache_directory=DIR`` in the environment.

Example (the first two lines sketch a run; they change the process's XLA flags, so they are not run here):
  >>> compile_cache.enable("/var/cache/gru4rec_xla")   # doctest: +SKIP
  >>> routine.train(...)                               # doctest: +SKIP
  >>> item_capacity(2387), item_capacity(2933)         # catalogues of two days, one capacity
  (3072, 3072)
"""
import contextlib
import hashlib
import os
import threading

from absl import logging

FLAG = "--tf_xla_persistent_cache_directory"
_lock = threading.Lock()
_trace_counts: dict[str, int] = {}


def directory() -> str | None:
    """The persistent cache directory named in ``TF_XLA_FLAGS``, or None."""
    for part in os.environ.get("TF_XLA_FLAGS", "").split():
        name, _, value = part.partition("=")
        if name == FLAG and value:
            return value
    return None


def enabled() -> bool:
    return directory() is not None


def _tensorflow_started() -> bool:
    import sys  # pylint: disable=g-import-not-at-top
    if "tensorflow" not in sys.modules:
        return False
    from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top
    return bool(getattr(context.context(), "_initialized", True))


def enable(cache_dir: str) -> bool:
    """Turns on TensorFlow's persistent XLA cache in ``cache_dir`` for this process; True when it is in effect.

    False (with a warning) when TensorFlow has already started with another or no directory: its XLA flags are
    read once per process.
    """
    cache_dir = os.path.abspath(cache_dir)
    current = directory()
    if current is not None and os.path.abspath(current) == cache_dir:
        return True
    if _tensorflow_started():
        logging.warning("compile cache: TensorFlow already runs in this process with %s; %s is not used (set it "
                        "before the first TensorFlow operation, or TF_XLA_FLAGS=%s=%s in the environment)",
                        f"the cache in {current}" if current else "no persistent cache", cache_dir, FLAG, cache_dir)
        return False
    os.makedirs(cache_dir, exist_ok=True)
    flags = [p for p in os.environ.get("TF_XLA_FLAGS", "").split() if not p.startswith(FLAG + "=")]
    os.environ["TF_XLA_FLAGS"] = " ".join(flags + [f"{FLAG}={cache_dir}"])
    return True


def round_up(n: int, steps_per_octave: int = 4) -> int:
    """The smallest ``m·2^k >= n`` with ``m`` in ``[steps, 2·steps)``: ``n`` rounded up to 1/``steps_per_octave``
    of an octave (a power of 2), at most ``1 + 1/steps_per_octave`` times ``n``; a rounded value is its own bucket."""
    shift = int(steps_per_octave).bit_length() - 1  # steps_per_octave is a power of 2
    if n <= 2 * steps_per_octave:
        return max(int(n), 1)
    k = max(0, int(n - 1).bit_length() - shift - 1)
    return -(-int(n) // (1 << k)) * (1 << k)


def item_capacity(n_items: int) -> int:
    """Rows allocated for ``n_items`` items: rounded up to a half octave (2^k or 1.5·2^k, at most 50% above).

    A catalogue keeps its capacity while it grows within the bucket: on rsc15_100k, days 2 to 6 (2,387 to 2,933
    items) all get 3,072 rows.
    """
    return round_up(n_items, 2)


@contextlib.contextmanager
def stable_trace_names(config: str):
    """Within the context, TensorFlow's uids (the numbers in traced function names) come from a counter seeded by
    ``config`` and by how many times this process entered the context with it, not from the process-wide count.

    Names stay unique in the process (a repeated ``config`` gets another seed), and equal in another process that
    traces the same configuration, which is what the persistent cache's key needs. A uid taken meanwhile by another
    thread only costs a cache miss. Trace only inside (``tf.function.get_concrete_function``), never run.
    """
    from tensorflow.python.framework import ops  # pylint: disable=g-import-not-at-top
    with _lock:
        occurrence = _trace_counts.get(config, 0)
        _trace_counts[config] = occurrence + 1
        digest = hashlib.sha256(f"{config}#{occurrence}".encode()).digest()
        # Far above any uid the process-wide counter reaches, below 2**61 (uids are also int64 tensor ids);
        # 2**20 uids per trace.
        next_uid = [(1 << 60) + (int.from_bytes(digest[:5], "big") >> 4 << 20)]
        original = ops.uid

        def uid():
            with _lock:
                next_uid[0] += 1
                return next_uid[0]

        ops.uid = uid
    try:
        yield
    finally:
        ops.uid = original
