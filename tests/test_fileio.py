"""Tests for gru4rec_tf.fileio: atomic file and directory replacement."""
import os
from pathlib import Path

import pytest

from gru4rec_tf.fileio import atomic_dir, atomic_write_path, replace_dir



def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_atomic_write_path_failure_keeps_target(tmp_path):
    target = write(tmp_path / "out.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_write_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_write_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as staging:
        (staging / "a.txt").write_text("first")
    assert sorted(os.listdir(target)) == ["a.txt"]
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as staging:
            (staging / "b.txt").write_text("half")
            raise RuntimeError("boom")
    assert sorted(os.listdir(target)) == ["a.txt"] and (target / "a.txt").read_text() == "first"
    with atomic_dir(target) as staging:
        (staging / "b.txt").write_text("second")
    assert sorted(os.listdir(target)) == ["b.txt"]
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no staging or moved-aside directories left


def test_replace_dir_puts_the_old_directory_back_when_the_rename_fails(tmp_path, monkeypatch):
    target, new = tmp_path / "target", tmp_path / "new"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    new.mkdir()
    real_rename = os.rename

    def rename(src, dst):
        if os.fspath(src) == os.fspath(new):
            raise OSError("simulated")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        replace_dir(new, target)
    monkeypatch.undo()
    assert (target / "keep.txt").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["new", "target"]
