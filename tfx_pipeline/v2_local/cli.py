"""The command ``python -m tfx_pipeline.v2_local --spec SPEC --local_root DIR [--parameter NAME=VALUE ...]``.

It prints the summary of ``gru4rec pipeline run`` (progress lines go to stderr) and returns 0, or 1 with one
``v2_local: error: ...`` line on stderr when the spec is unusable or a task fails.

Example::

    from tfx_pipeline.v2_local import cli

    status = cli.main(["--spec", "pipeline.json", "--local_root", "/tmp/vertex", "--parameter", "data_root=gs://b/c"])
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tfx_pipeline.v2_local.driver import run_spec
from tfx_pipeline.v2_local.errors import SpecError

PROG = "python -m tfx_pipeline.v2_local"
DESCRIPTION = "A local driver for the compiled Kubeflow V2 / Vertex AI pipeline spec: a test and benchmark helper, " \
              "not a runner."


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("--spec", required=True, help="the PipelineJob JSON written by `gru4rec pipeline compile`")
    parser.add_argument("--local_root", required=True, help="every gs://BUCKET/PATH maps to LOCAL_ROOT/BUCKET/PATH")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="a runtime parameter of the pipeline (repeat for several)")
    parser.add_argument("--no_cache", action="store_true", help="run every task, ignoring earlier outputs")
    parser.add_argument("--synthetic_sessions", type=int, default=20000,
                        help="sessions of the synthetic log fed to a spec compiled without --data")
    parser.add_argument("--synthetic_items", type=int, default=1000, help="items of that synthetic log")
    return parser.parse_args(list(argv))


def parse_parameters(items: Sequence[str]) -> dict[str, str]:
    """``--parameter NAME=VALUE`` items as ``{NAME: VALUE}``; :class:`SpecError` for an item of another shape."""
    parameters = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SpecError(f"--parameter {item!r} must look like NAME=VALUE")
        parameters[name] = value
    return parameters


def main(argv: Sequence[str] = ()) -> int:
    """Runs the spec; prints the summary; returns the exit status (0 ok, 1 failed, 3 stopped by data validation:
    as ``gru4rec pipeline run``)."""
    args = parse_args(argv)
    try:
        result = run_spec(args.spec, args.local_root, parse_parameters(args.parameter),
                          enable_cache=not args.no_cache, synthetic_sessions=args.synthetic_sessions,
                          synthetic_items=args.synthetic_items)
    except SpecError as err:
        print(f"v2_local: error: {err}", file=sys.stderr)
        return 1
    print(result.format(), flush=True)
    if result.error is not None:
        print(f"v2_local: error: {result.error}", file=sys.stderr)
        return 1
    if result.summary.stopped_by_validation:
        from tfx_pipeline.validation_options import EXIT_STOPPED_BY_VALIDATION  # pylint: disable=g-import-not-at-top
        print("v2_local: the run was stopped by data validation; nothing trained or pushed", file=sys.stderr)
        return EXIT_STOPPED_BY_VALIDATION
    return 0
