"""The version directory of an export: checks before writing, atomic staging, the vocabulary asset, export info.

An export is written in a scratch directory beside its target and renamed into place (:func:`staging_dir`,
:func:`gru4rec_tf.fileio.replace_dir`), so TF Serving never sees a half-written version. This module imports
neither TensorFlow nor TensorFlow Recommenders: a command can check its ``--output`` before loading a model.

Example:
  >>> export_dir_problem("models/gru4rec/1", overwrite=False) is None  # not there yet: an export may write there
  True
  >>> with staging_dir(os.path.abspath("models/gru4rec/1")) as scratch:
  ...     os.listdir(scratch)
  []
  >>> with open("models/gru4rec/notes.txt", "w") as f:
  ...     _ = f.write("not a SavedModel")
  >>> export_dir_problem("models/gru4rec", overwrite=False)
  'is not empty'
  >>> export_dir_problem("models/gru4rec", overwrite=True)
  'is not empty and holds no saved_model.pb; refusing to replace it'
"""
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator

import numpy as np

from gru4rec_tf.export.signatures import EXPORT_INFO_FILE

ASSETS_EXTRA = "assets.extra"  # the SavedModel's directory of files TensorFlow does not read (TF Serving does)
NOT_EMPTY = "is not empty"


def export_dir_problem(export_dir: str, overwrite: bool) -> str | None:
    """Why :func:`~gru4rec_tf.export.saved_model.export_saved_model` would refuse ``export_dir`` (None when it can
    write there).

    The answer names no argument (:data:`NOT_EMPTY` is the one that ``overwrite`` solves), so a command can word
    the remedy with its own flags.
    """
    if not os.path.exists(export_dir):
        return None
    if not os.path.isdir(export_dir):
        return "exists and is not a directory"
    if not os.listdir(export_dir):
        return None
    if not overwrite:
        return NOT_EMPTY
    if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        return "is not empty and holds no saved_model.pb; refusing to replace it"
    return None


def check_export_dir(export_dir: str, overwrite: bool) -> None:
    """Raises ValueError naming ``export_dir`` and the remedy in the export's own arguments, where it is refused."""
    problem = export_dir_problem(export_dir, overwrite)
    if problem == NOT_EMPTY:
        problem += "; pass overwrite=True (or a new version directory)"
    if problem:
        raise ValueError(f"export_dir {export_dir} {problem}")


@contextlib.contextmanager
def staging_dir(export_dir: str) -> Iterator[str]:
    """Yields a new scratch directory beside ``export_dir`` (its parent is created); removed afterwards, always.

    Whatever the body moves out of it (with :func:`gru4rec_tf.fileio.replace_dir`) stays; the rest goes.
    """
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(export_dir)}.tmp-", dir=parent)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_vocab_file(vocab, path: str) -> None:
    """One original item ID per line, in index order (the table maps line number → index)."""
    if vocab.item_ids.dtype.kind in "iu":
        lines = vocab.item_ids.astype(np.int64).astype(str)
    else:
        lines = vocab.item_ids.astype(str)
        bad = [i for i in lines if "\n" in i or "\r" in i or i == ""]
        if bad:
            raise ValueError(f"item ID {bad[0]!r} cannot be exported: IDs must be non-empty and hold no line break")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def extra_dir(saved_dir: str) -> str:
    """The ``assets.extra`` directory of the SavedModel in ``saved_dir``, created if missing."""
    extra = os.path.join(saved_dir, ASSETS_EXTRA)
    os.makedirs(extra, exist_ok=True)
    return extra


def write_export_info(saved_dir: str, info: dict) -> None:
    """Writes ``info`` (what a client needs besides the signatures) to ``assets.extra/gru4rec_export.json``."""
    with open(os.path.join(extra_dir(saved_dir), EXPORT_INFO_FILE), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)


def read_export_info(export_dir: str) -> dict:
    """The ``assets.extra/gru4rec_export.json`` of an exported SavedModel."""
    path = os.path.join(export_dir, ASSETS_EXTRA, EXPORT_INFO_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{export_dir} is not a gru4rec_tf export: cannot read {path} ({err})") from None
