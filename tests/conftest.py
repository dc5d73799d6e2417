"""Shared pytest fixtures, the test tiers' markers and the reliability tests' size options.

Tiers: ``slow`` (pytest.ini) marks whole pipelines, kills, soaks, fuzzing and real-data runs; ``-m "not slow"`` is the
everyday run. ``needs_index`` marks tests that need the package index: skipped unless ``--run-needs-index``.
Sizes (``tests/sizes.py``): ``--fuzz-examples``, ``--fuzz-beam-examples``, ``--kills``, ``--pipeline-kills``,
``--soak-seconds``, ``--reliability-log``.
"""
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # so that `pytest` (not only `python -m pytest`) finds gru4rec_tf
    sys.path.insert(0, str(REPO_ROOT))

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

import sizes  # noqa: E402  (tests/ is on sys.path: pytest's rootdir-relative imports)


def pytest_addoption(parser):
    defaults = sizes.ReliabilitySizes()
    group = parser.getgroup("gru4rec", "gru4rec-tf test sizes and tiers")
    group.addoption("--fuzz-examples", type=int, default=defaults.fuzz_examples,
                    help="Hypothesis examples per target of tests/test_fuzz.py (default %(default)s)")
    group.addoption("--fuzz-beam-examples", type=int, default=defaults.fuzz_beam_examples,
                    help="fuzzed click logs through the Beam preprocessing, a pipeline run each "
                         "(tests/test_fuzz_beam_preprocessing.py; default %(default)s)")
    group.addoption("--kills", type=int, default=None,
                    help=f"SIGKILLs per command in tests/test_kill_resume.py (default {defaults.kills})")
    group.addoption("--pipeline-kills", type=int, default=None,
                    help=f"SIGKILLs of `gru4rec pipeline run` (default: --kills if given, else "
                         f"{defaults.pipeline_kills})")
    group.addoption("--soak-seconds", type=float, default=defaults.soak_seconds,
                    help="duration of tests/test_serving_soak.py (default %(default)s)")
    group.addoption("--reliability-log", default=None, metavar="PATH",
                    help="append every fuzz case's, kill's and soak's outcome to this JSON-lines file "
                         "(read by bench/reliability.py)")
    group.addoption("--run-needs-index", action="store_true", default=False,
                    help="also run the tests marked needs_index (they resolve packages against the package index; "
                         "minutes per target)")


def pytest_configure(config):
    defaults = sizes.ReliabilitySizes()
    kills = config.getoption("--kills")
    pipeline_kills = config.getoption("--pipeline-kills")
    if pipeline_kills is None:  # as many as --kills when that is given: bench/reliability.py gives only --kills
        pipeline_kills = defaults.pipeline_kills if kills is None else kills
    try:
        sizes.configure(sizes.ReliabilitySizes(
            fuzz_examples=config.getoption("--fuzz-examples"),
            fuzz_beam_examples=config.getoption("--fuzz-beam-examples"),
            kills=defaults.kills if kills is None else kills,
            pipeline_kills=pipeline_kills,
            soak_seconds=config.getoption("--soak-seconds"),
            reliability_log=config.getoption("--reliability-log")))
    except ValueError as err:
        raise pytest.UsageError(str(err)) from err


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-needs-index"):
        return
    skip = pytest.mark.skip(reason="needs the package index (network) and minutes per target: "
                                   "run with --run-needs-index")
    for item in items:
        if "needs_index" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``<repo>/../shared/data`` (read-only real data); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data is absent: {SHARED_DATA} not found, so the real-data checks cannot run")
    return SHARED_DATA
