"""The two errors of the local driver: a spec (or input) it cannot run, and a task that failed.

Example::

    from tfx_pipeline.v2_local import SpecError, TaskFailed, run_spec

    try:
        result = run_spec("pipeline.json", "/tmp/vertex")
    except SpecError as err:  # before anything ran: another pipeline, another TFX version, a bad parameter
        print(f"v2_local: error: {err}")
    else:
        if isinstance(result.error, TaskFailed):
            print(result.error.task, "failed")
"""


class SpecError(ValueError):
    """The spec cannot be run here (another pipeline, another TFX version, unsupported construct, bad input).

    Example: ``raise SpecError("pipeline.json: not a compiled pipeline job (no 'pipelineSpec')")``.
    """


class TaskFailed(RuntimeError):
    """A task's container (or its preCacheCheck) exited with a non-zero status.

    Example: ``TaskFailed("Trainer", "its container exited with status 1", log_tail).task == "Trainer"``; the
    message ends with the last lines of the task's output.
    """

    def __init__(self, task: str, message: str, log_tail: str):
        super().__init__(f"{task} failed: {message}\n--- last lines of its output ---\n{log_tail}")
        self.task = task
