"""Sizes of the reliability tests (fuzz cases, kills, soak time), set by pytest options.

``tests/conftest.py`` registers the options (``--fuzz-examples``, ``--fuzz-beam-examples``, ``--kills``,
``--pipeline-kills``, ``--soak-seconds``, ``--reliability-log``) and calls :func:`configure` before the test modules
are collected, so that a module can read a size at import time (Hypothesis takes ``max_examples`` in a decorator).
``bench/reliability.py`` runs the same tests with larger sizes.
"""
import dataclasses


@dataclasses.dataclass(frozen=True)
class ReliabilitySizes:
    """How much work the kill, fuzz and soak tests do; the defaults are the CI sizes.

    ``pipeline_kills`` is the number of kills of ``gru4rec pipeline run`` (the slowest command to kill and rerun);
    ``reliability_log`` names a JSON-lines file that receives every case's outcome, or is None (no log).

    Example::

        >>> ReliabilitySizes().fuzz_examples
        40
        >>> ReliabilitySizes(kills=0)
        Traceback (most recent call last):
        ValueError: kills (--kills) must be an integer >= 1, got 0
    """

    fuzz_examples: int = 40
    fuzz_beam_examples: int = 15
    kills: int = 2
    pipeline_kills: int = 1
    soak_seconds: float = 15.0
    reliability_log: str | None = None

    def __post_init__(self):
        for field in ("fuzz_examples", "fuzz_beam_examples", "kills", "pipeline_kills"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} (--{field.replace('_', '-')}) must be an integer >= 1, got {value!r}")
        if not self.soak_seconds > 0:
            raise ValueError(f"soak_seconds (--soak-seconds) must be > 0, got {self.soak_seconds!r}")


_current = ReliabilitySizes()


def configure(sizes: ReliabilitySizes) -> None:
    """Sets the sizes that :func:`current` returns (called by ``tests/conftest.py`` from the command line)."""
    global _current  # pylint: disable=global-statement
    _current = sizes


def current() -> ReliabilitySizes:
    """The sizes of this run: the pytest options' values, or the defaults outside pytest."""
    return _current
