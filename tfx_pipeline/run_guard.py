"""Guards of a local ``gru4rec pipeline run``: one run at a time, no stale artifacts, the blessed model served.

* :func:`exclusive` -- an exclusive ``fcntl`` lock on the metadata store and on the serving root for the whole
  run; a second run on them at the same time is refused at once with :class:`InUseError` ("... is in use").
  The lock is released by the kernel when the process ends, even by SIGKILL, so a killed run never blocks the
  next one.
* :func:`forget_missing_artifacts` -- before a run: the artifacts recorded in the store whose local directory is
  gone (a deleted or changed ``--pipeline_root``) are marked ``DELETED``, so no resolver hands them to a component
  (the last blessed model falls back to an earlier one that still exists, or to none); TFX's cache already runs
  a component again when one of its cached outputs is missing.
* :func:`ensure_served` -- after a run: the latest blessed model is pushed to the serving root when no version
  there holds it (a new serving root, a wiped one, a deleted version), through the Pusher's idempotent, atomic
  :func:`tfx_pipeline.components.pusher.push_model`, with the report of the push that first archived it.

Example::

    with exclusive([metadata_path + ".lock", serving_lock]):
        forget_missing_artifacts(metadata_path, "gru4rec")
        run_local(pipeline)
        ensure_served(metadata_path, "gru4rec", "gru4rec_work/serving/gru4rec")
"""
import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator, Sequence

from absl import logging

from gru4rec_tf import fileio as gfileio


class InUseError(RuntimeError):
    """Another ``gru4rec pipeline run`` holds the metadata store or the serving root."""


def lock_paths(metadata_path: str, serving_base: str) -> list[str]:
    """The lock files of a run: beside the metadata store, and beside the served model's base directory."""
    paths = [os.path.abspath(metadata_path) + ".lock"]
    if not gfileio.is_remote(serving_base):
        base = os.path.abspath(serving_base)
        paths.append(os.path.join(os.path.dirname(base), f".{os.path.basename(base)}.lock"))
    return paths


@contextlib.contextmanager
def exclusive(paths: Sequence[str]) -> Iterator[None]:
    """Holds an exclusive, non-blocking ``flock`` on every path (created if needed); raises :class:`InUseError`."""
    handles = []
    try:
        for path in paths:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handle = open(path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
            handles.append(handle)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise InUseError(
                    f"{path[:-len('.lock')]} is in use by another `gru4rec pipeline run` ({holder}); wait for it "
                    "to finish, or give this run its own --work_dir (or --metadata_path and --serving_root)"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
        yield
    finally:
        for handle in handles:
            handle.close()  # releases the lock


def _pipeline_artifacts(store, pipeline_name: str):
    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    return [] if context is None else store.get_artifacts_by_context(context.id)


def forget_missing_artifacts(metadata_path: str, pipeline_name: str) -> list[str]:
    """Marks the pipeline's LIVE artifacts whose local URI no longer exists as DELETED; returns those URIs."""
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
    from tfx_pipeline import summary  # pylint: disable=g-import-not-at-top
    if not os.path.exists(metadata_path):
        return []
    store = summary.open_store(metadata_path)
    gone = [a for a in _pipeline_artifacts(store, pipeline_name)
            if a.state == metadata_store_pb2.Artifact.LIVE and a.uri and not gfileio.is_remote(a.uri)
            and not os.path.exists(a.uri)]
    for artifact in gone:
        artifact.state = metadata_store_pb2.Artifact.DELETED
        logging.warning("%s %d is gone from disk (%s): not reused; the component that made it runs again",
                        artifact.type, artifact.id, artifact.uri)
    if gone:
        store.put_artifacts(gone)
    return [a.uri for a in gone]


def latest_blessed_model(metadata_path: str, pipeline_name: str):
    """The newest LIVE ``Model`` with a ``blessed`` = 1 ``ModelBlessing`` (as ``LatestBlessedModelStrategy``)."""
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
    from tfx_pipeline import summary  # pylint: disable=g-import-not-at-top
    store = summary.open_store(metadata_path)
    artifacts = _pipeline_artifacts(store, pipeline_name)
    blessed_ids = {a.custom_properties["current_model_id"].int_value for a in artifacts
                   if a.type == "ModelBlessing" and "blessed" in a.custom_properties
                   and a.custom_properties["blessed"].int_value == 1 and "current_model_id" in a.custom_properties}
    models = [a for a in artifacts if a.type == "Model" and a.id in blessed_ids
              and a.state == metadata_store_pb2.Artifact.LIVE]
    return max(models, key=lambda a: a.id) if models else None


def ensure_served(metadata_path: str, pipeline_name: str, serving_base: str) -> str | None:
    """Pushes the latest blessed model to ``serving_base`` when no version there holds it.

    Returns the destination when it copied the model, None when there was nothing to do (no blessed model, or
    already served).
    """
    from tfx_pipeline.components import pusher  # pylint: disable=g-import-not-at-top
    from tfx_pipeline import summary  # pylint: disable=g-import-not-at-top
    model = latest_blessed_model(metadata_path, pipeline_name)
    if model is None:
        return None
    pushes = sorted((a for a in _pipeline_artifacts(summary.open_store(metadata_path), pipeline_name)
                     if a.type == "PushedModel" and a.uri), key=lambda a: -a.id)  # their reports, newest first
    pushed = pusher.push_model_artifact(model.uri, serving_base, [a.uri for a in pushes])
    if pushed is None:
        return None
    _, destination, copied = pushed
    return destination if copied else None
