"""Fault injection: run a command, SIGKILL it after a random delay, check what a consumer would see, run it again.

Used by ``tests/test_kill_resume.py`` (a few kills per command, for CI) and ``bench/reliability.py`` (many kills,
figures to ``bench/results/reliability.md``). The commands run as ``python -m gru4rec_tf`` with this checkout
first on ``PYTHONPATH``, so the code under test is this working tree's.

Example::

    report = kill_and_rerun(["preprocess", "--input", "c.csv", "--output", "out"], kills=3, window=(2.0, 9.0),
                            check_after_kill=lambda: assert_visible_outputs_complete(...))
    assert report.final.returncode == 0
"""
import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def command(args: Sequence) -> list[str]:
    return [sys.executable, "-m", "gru4rec_tf", *map(str, args)]


def run(args: Sequence, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs ``gru4rec ARGS`` to the end (this checkout's code)."""
    return subprocess.run(command(args), capture_output=True, text=True, timeout=timeout, env=env(),
                          cwd=str(REPO_ROOT), check=False)


def timed_run(args: Sequence, timeout: float = 600) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = run(args, timeout)
    return result, time.monotonic() - started


@dataclasses.dataclass
class KillReport:
    """What happened: the delays, how many attempts were killed, and the final (uninterrupted) run."""

    delays: list[float] = dataclasses.field(default_factory=list)
    killed: int = 0
    finished_before_kill: int = 0
    final: subprocess.CompletedProcess | None = None
    final_seconds: float = 0.0


def kill_and_rerun(args: Sequence, *, kills: int, window: tuple[float, float], seed: int = 0,
                   check_after_kill: Callable[[], None] | None = None, timeout: float = 600,
                   done: Callable[[], bool] | None = None) -> KillReport:
    """Starts ``gru4rec ARGS`` ``kills`` times, each SIGKILLed after a delay uniform in ``window`` (seconds since
    its start; an attempt that finishes first narrows the window to the time it took); after each attempt calls
    ``check_after_kill`` (what a consumer may see then). Then runs it once
    more to the end (``report.final``). An attempt that ends before its kill counts as ``finished_before_kill``.
    When ``done()`` says the output is complete (for commands that refuse to overwrite it), the loop stops there
    and ``report.final`` stays None.
    """
    rng = random.Random(seed)
    report = KillReport()
    for _ in range(kills):
        delay = rng.uniform(*window)
        report.delays.append(round(delay, 2))
        process = subprocess.Popen(command(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(),
                                   cwd=str(REPO_ROOT))
        started = time.monotonic()
        deadline = started + delay
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            report.killed += 1
        else:
            report.finished_before_kill += 1
            # The command ran faster than the window assumed (e.g. the reference run was timed on a loaded
            # machine): aim the next kills inside the time it really took.
            ran = time.monotonic() - started
            window = (min(window[0], 0.3 * ran), min(window[1], 0.9 * ran))
        process.wait(timeout=60)
        if check_after_kill is not None:
            check_after_kill()
        if done is not None and done():
            return report
    report.final, report.final_seconds = timed_run(args, timeout)
    return report


def record(kind: str, **fields) -> None:
    """Appends a JSON line to pytest's ``--reliability-log`` file (read by ``bench/reliability.py``), if it is set."""
    import json  # pylint: disable=g-import-not-at-top
    import sizes  # pylint: disable=g-import-not-at-top
    path = sizes.current().reliability_log
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"kind": kind, **fields}) + "\n")


def visible_entries(directory: Path) -> list[str]:
    """The names a consumer lists (hidden staging entries ``.*`` excluded)."""
    return sorted(p.name for p in Path(directory).iterdir() if not p.name.startswith(".")) \
        if Path(directory).is_dir() else []


def hidden_entries(directory: Path) -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir() if p.name.startswith(".")) \
        if Path(directory).is_dir() else []
