"""All-or-nothing output directories: write into a hidden staging directory next to OUTPUT, then move it in place.

A failed or interrupted run leaves at most a hidden ``.<name>.tmp-<id>`` directory, never a half-written OUTPUT.
Local paths are published with one ``os.rename`` (atomic); object stores (``gs://``...) have no directory rename,
so there the files are renamed one by one with ``stats.json`` last: its presence marks a complete output.

Example::

    stage = StagingDir("out/sessions")          # checks that out/sessions is absent or empty
    ... write files under stage.path ...
    stage.publish()                             # or stage.discard() on failure
"""
from __future__ import annotations

import os
import posixpath
import shutil
import uuid

from apache_beam.io.filesystems import FileSystems

from gru4rec_tf.data import contracts
from gru4rec_tf.fileio import is_remote

__all__ = ["StagingDir", "MARKER_FILE"]

MARKER_FILE = contracts.STATS_FILE  # its presence marks a complete output


class StagingDir:
    """A staging directory for ``output``; ``publish()`` moves it to ``output``, ``discard()`` removes it."""

    def __init__(self, output: str, overwrite: bool = False):
        self.local = not is_remote(output)
        self.output = os.path.abspath(output) if self.local else output.rstrip("/")
        self.overwrite = overwrite
        self._check_output()
        token = uuid.uuid4().hex[:12]
        if self.local:
            parent, name = os.path.split(self.output)
            os.makedirs(parent, exist_ok=True)
            self.path = os.path.join(parent, f".{name}.tmp-{token}")
            os.makedirs(self.path)
        else:
            parent, name = posixpath.split(self.output)
            self.path = posixpath.join(parent, f".{name}.tmp-{token}")

    def _check_output(self) -> None:
        if self.overwrite:
            return
        if self.local:
            if os.path.exists(self.output) and (not os.path.isdir(self.output) or os.listdir(self.output)):
                raise ValueError(f"{self.output}: output exists and is not an empty directory; remove it, choose "
                                 "another --output or pass --overwrite")
        elif FileSystems.exists(posixpath.join(self.output, MARKER_FILE)):
            raise ValueError(f"{self.output}: output already holds a preprocessing result; remove it, choose "
                             "another --output or pass --overwrite")

    def join(self, *parts: str) -> str:
        return FileSystems.join(self.path, *parts)

    def publish(self) -> None:
        """Moves the staged files to ``output`` (replacing it when ``overwrite``)."""
        if self.local:
            self._publish_local()
        else:
            self._publish_by_file()

    def _publish_local(self) -> None:
        old = None
        if os.path.isdir(self.output) and not os.listdir(self.output):
            os.rmdir(self.output)
        elif os.path.exists(self.output):  # only with overwrite (checked at construction)
            parent, name = os.path.split(self.output)
            old = os.path.join(parent, f".{name}.old-{uuid.uuid4().hex[:12]}")
            os.rename(self.output, old)
        os.rename(self.path, self.output)
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def _publish_by_file(self) -> None:
        if self.overwrite and FileSystems.exists(self.output):
            FileSystems.delete([self.output])
        sources = sorted(m.path for m in FileSystems.match([self.path + "/**"])[0].metadata_list)
        sources.sort(key=lambda p: posixpath.basename(p) == MARKER_FILE)  # the marker goes last
        targets = [self.output + p[len(self.path):] for p in sources]
        for src, dst in zip(sources, targets, strict=True):
            try:
                FileSystems.mkdirs(posixpath.dirname(dst))  # a no-op on object stores
            except OSError:
                pass  # exists already
            FileSystems.rename([src], [dst])
        self.discard()

    def discard(self) -> None:
        """Removes the staging directory (best effort)."""
        if self.local:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            try:
                if FileSystems.exists(self.path):
                    FileSystems.delete([self.path])
            except Exception:  # pylint: disable=broad-except
                pass
