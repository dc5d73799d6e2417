"""Beam executors on a local runner: what only a distributed runner needs is skipped.

Given any ``beam_pipeline_args``, TFX's ``BaseBeamExecutor.__init__`` packages its own installation as an sdist
(``dependency_utils.make_beam_dependency_flags``: a copy of the whole ``tfx`` package and a ``setup.py sdist``) and
adds it as ``--extra_package``, so that remote workers can import TFX. A local runner (the DirectRunner family)
runs in this Python environment and never stages packages, yet the packaging ran for every Beam component: at 1M
events, 2.3 s each, 9.3 s of a run (profiled; ``gru4rec pipeline run`` passes ``--runner=BundleBasedDirectRunner``
by default, :data:`tfx_pipeline.runners.LOCAL_BEAM_ARGS`). Executors that mix in :class:`LocalRunnerBeamExecutor`
skip it on a local runner and keep TFX's behaviour on any other (Dataflow, Flink, portable runners).

Their pipelines on the BundleBasedDirectRunner also skip Beam's runner-API round trip: ``Pipeline.run`` serialises
the whole graph to its portable proto and builds it back before running it on a runner that is not Fn API based,
as a compatibility test (0.3-0.9 s per component at 1M events, profiled). Every other runner runs as Beam decides;
the FnApiRunner, which the parity tests also run, takes the graph through the runner API anyway.

Example::

    class Executor(LocalRunnerBeamExecutor, base_beam_executor.BaseBeamExecutor):
        def Do(self, input_dict, output_dict, exec_properties):
            with self._make_beam_pipeline() as pipeline:   # the beam_pipeline_args, unpackaged locally
                ...
"""
import copy
import functools
import sys

from absl import flags

LOCAL_RUNNERS = ("", "directrunner", "fnapirunner", "bundlebaseddirectrunner", "switchingdirectrunner")


def runs_locally(beam_pipeline_args) -> bool:
    """True when ``beam_pipeline_args`` name no runner or a local one (the DirectRunner's family).

    Example::

        >>> runs_locally(["--direct_num_workers=2"]), runs_locally(["--runner", "DataflowRunner"])
        (True, False)
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions  # pylint: disable=g-import-not-at-top
    runner = PipelineOptions(list(beam_pipeline_args or ())).view_as(StandardOptions).runner or ""
    return runner.lower() in LOCAL_RUNNERS


class LocalRunnerBeamExecutor:
    """Mixin, placed before a ``BaseBeamExecutor`` subclass: on a local runner the executor gets its
    ``beam_pipeline_args`` as given, without TFX's dependency package (see the module docstring)."""

    def __init__(self, context=None):
        args = list(getattr(context, "beam_pipeline_args", None) or [])
        if not args or not runs_locally(args):
            super().__init__(context)
            return
        without_args = copy.copy(context)
        without_args.beam_pipeline_args = None  # TFX's __init__ packages only when there are arguments
        super().__init__(without_args)
        self._beam_pipeline_args = args
        flags.FLAGS(sys.argv + args, known_only=True)  # as TFX's __init__ does with them

    def _make_beam_pipeline(self):
        pipeline = super()._make_beam_pipeline()
        if not self._make_beam_pipeline_fn and _is_bundle_based(pipeline.runner):
            # ``with pipeline:`` ends in ``self.run()``: this instance's run skips the round trip (module docstring)
            pipeline.run = functools.partial(type(pipeline).run, pipeline, test_runner_api=False)
        return pipeline


def _is_bundle_based(runner) -> bool:
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner  # pylint: disable=g-import-not-at-top
    return isinstance(runner, BundleBasedDirectRunner)
