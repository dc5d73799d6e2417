"""The container stand-in: a task's own command and args, run in a subprocess of this Python environment with this
checkout's code and the container image's ``ENV``.

Example::

    from tfx_pipeline.v2_local import containers

    argv = containers.container_command(executor["container"], executor_input, "Trainer")  # {{$}} filled in
    containers.launch(argv, "/tmp/vertex/.../Trainer_7/container.log", "Trainer", "its container")
    reported = containers.read_output_file("/tmp/vertex/.../Trainer_7/executor_output.json", "Trainer")
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import tfx_pipeline  # sets TF_USE_LEGACY_KERAS before TensorFlow is imported; locates this checkout
from tfx_pipeline.v2_local.errors import SpecError, TaskFailed

# What the container image sets for every task (tfx_pipeline/Dockerfile's ENV; a test checks that they agree).
CONTAINER_ENV = {"TF_USE_LEGACY_KERAS": "1", "PYTHONUNBUFFERED": "1"}
LOG_TAIL_LINES = 25
_EXECUTOR_INPUT = "{{$}}"


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(tfx_pipeline.__file__)))


def container_env() -> dict[str, str]:
    """The task environment: this one, the image's ENV, and this checkout's code first on the import path."""
    env = {**os.environ, **CONTAINER_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_repo_root(), os.environ.get("PYTHONPATH")) if p)
    return env


def container_command(container: dict, executor_input: dict, task_name: str) -> list[str]:
    """The container's command and args with ``{{$}}`` replaced by the ``ExecutorInput`` JSON, run by this Python."""
    argv = list(container.get("command", [])) + list(container.get("args", []))
    out = []
    for arg in argv:
        if arg == _EXECUTOR_INPUT:
            arg = json.dumps(executor_input)
        elif "{{$" in arg:
            raise SpecError(f"{task_name}: unsupported placeholder in the container args: {arg!r}")
        out.append(arg)
    if not out or out[0] not in ("python", "python3"):
        raise SpecError(f"{task_name}: the container command {argv[:3]} does not start Python")
    return [sys.executable] + out[1:]


def launch(argv: list[str], log_path: str, task_name: str, what: str) -> None:
    """Runs ``argv`` in an empty working directory, its output appended to ``log_path``; raises
    :class:`TaskFailed` with the log's last lines when it exits with a non-zero status."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="v2_local-") as workdir, \
            open(log_path, "ab") as log_file:
        code = subprocess.call(argv, cwd=workdir, env=container_env(), stdout=log_file, stderr=subprocess.STDOUT)
    if code != 0:
        raise TaskFailed(task_name, f"{what} exited with status {code} (full output: {log_path})",
                         _tail(log_path, LOG_TAIL_LINES))


def read_output_file(path: str, task_name: str) -> dict:
    """The executor output file a task wrote (``{}`` where it wrote none)."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as err:
            raise SpecError(f"{task_name}: its executor output file {path} is not JSON ({err})") from None


def _tail(path: str, lines: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return "".join(handle.readlines()[-lines:]).rstrip()
