"""File helpers: atomic writes (a file or a directory is replaced whole or not at all) and :func:`is_remote`.

A kill or an error during a write never leaves a half-written file or directory where a reader (a later run,
TF Serving) would look: the new content is written beside the target and renamed into place.

Example::

    with atomic_write_path("out/metrics.json") as tmp:
        tmp.write_text("{}")
    with atomic_dir("models/gru4rec/3") as staging:
        tf.saved_model.save(module, str(staging))
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Union
from collections.abc import Iterator

PathLike = Union[str, "os.PathLike[str]"]


def is_remote(path: PathLike) -> bool:
    """Whether ``path`` is a URL of a remote filesystem (``gs://``, ``s3://``...) rather than a local path.

    Example::

        >>> is_remote("gs://bucket/clicks.csv"), is_remote("/data/clicks.csv")
        (True, False)
    """
    return "://" in os.fspath(path)


@contextlib.contextmanager
def atomic_write_path(path: PathLike) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; on success it is moved over ``path`` with ``os.replace``.

    If the body raises, the temporary file is removed and ``path`` is left untouched, so a failed write never
    leaves a half-written file behind.

    Example::

        with atomic_write_path("out/train.tsv") as tmp:
            df.to_csv(tmp, sep="\\t", index=False)
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def replace_dir(new_dir: PathLike, target: PathLike) -> None:
    """Renames ``new_dir`` to ``target``; an existing ``target`` is moved aside first and removed afterwards.

    If the final rename fails, the previous ``target`` is put back. Both must be on the same filesystem.
    """
    new_dir, target = os.fspath(new_dir), os.fspath(target)
    if not os.path.exists(target):
        os.rename(new_dir, target)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=os.path.dirname(os.path.abspath(target)))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(new_dir, target)
    except BaseException:
        os.rename(old, target)  # put the previous directory back
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(target: PathLike) -> Iterator[Path]:
    """Yields an empty staging directory beside ``target``; on success it replaces ``target`` (:func:`replace_dir`).

    If the body raises, the staging directory is removed and ``target`` is left untouched.
    """
    target = Path(os.path.abspath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=str(target.parent)))
    try:
        yield staging
        replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
