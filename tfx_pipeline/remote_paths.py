"""Local stand-ins for remote (e.g. ``gs://``) paths, for library code that reads and writes local files.

On Vertex AI / Kubeflow the artifact URIs are object-store paths, while the library's model directory, vocabulary
file and SavedModel export work on local paths. These context managers copy down (or up) around such calls; local
paths pass through untouched.
"""
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from gru4rec_tf.fileio import is_remote


@contextlib.contextmanager
def _scratch(prefix: str) -> Iterator[str]:
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def local_file(path: str) -> Iterator[str]:
    """A local path holding the content of the file ``path``."""
    if not is_remote(path):
        yield path
        return
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    with _scratch("gru4rec-") as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        tf.io.gfile.copy(path, local)
        yield local


@contextlib.contextmanager
def local_dir(path: str) -> Iterator[str]:
    """A local copy of the directory ``path``."""
    if not is_remote(path):
        yield path
        return
    from tfx.utils import io_utils  # pylint: disable=g-import-not-at-top
    with _scratch("gru4rec-model-") as tmp:
        local = os.path.join(tmp, "model")
        io_utils.copy_dir(path, local)
        yield local


@contextlib.contextmanager
def local_target_dir(target: str) -> Iterator[str]:
    """A local directory path to write ``target`` through; a remote target is copied up when the block succeeds."""
    if not is_remote(target):
        yield target
        return
    from tfx.utils import io_utils  # pylint: disable=g-import-not-at-top
    with _scratch("gru4rec-export-") as tmp:
        local = os.path.join(tmp, "out")
        yield local
        io_utils.copy_dir(local, target)
