"""tfx_pipeline.local_beam (issue 27): a Beam executor on a local runner keeps its beam_pipeline_args but skips
TFX's dependency packaging (an sdist of TFX for remote workers, seconds per component); other runners keep it."""
import apache_beam as beam
import pytest
from tfx.dsl.components.base import base_beam_executor
from tfx.utils import dependency_utils

from tfx_pipeline import local_beam
from tfx_pipeline.components import click_log_gen
from tfx_pipeline.components import event_statistics
from tfx_pipeline.components import session_evaluator
from tfx_pipeline.components import session_tensors
from tfx_pipeline.components import bulk_recommender


def test_only_the_direct_runners_family_counts_as_local():
    assert local_beam.runs_locally([]) and local_beam.runs_locally(["--direct_num_workers=2"])
    assert local_beam.runs_locally(["--runner=DirectRunner"])
    assert local_beam.runs_locally(["--runner=BundleBasedDirectRunner", "--direct_num_workers=2"])
    assert not local_beam.runs_locally(["--runner=DataflowRunner"])
    assert not local_beam.runs_locally(["--runner", "PortableRunner"])


@pytest.fixture(name="packaging_calls")
def _packaging_calls(monkeypatch):
    """TFX's packaging, recorded instead of building an sdist (what it returns is what TFX would add)."""
    calls = []

    def make_flags(args):
        calls.append(list(args))
        return list(args) + ["--extra_package=/tmp/tfx_ephemeral.tar.gz"]

    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags", make_flags)
    return calls


def _context(args):
    return base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=args, tmp_dir="/tmp", unique_id="1")


@pytest.mark.parametrize("executor_class", [click_log_gen.Executor, event_statistics.Executor,
                                            session_tensors.Executor, session_evaluator.Executor,
                                            bulk_recommender.Executor])
def test_a_local_runner_keeps_its_arguments_without_the_package(executor_class, packaging_calls):
    args = ["--runner=BundleBasedDirectRunner", "--direct_num_workers=2"]
    executor = executor_class(_context(args))
    assert packaging_calls == []
    assert executor._beam_pipeline_args == args  # pylint: disable=protected-access
    options = executor._make_beam_pipeline().options.get_all_options()  # pylint: disable=protected-access
    assert options["runner"] == "BundleBasedDirectRunner" and options["direct_num_workers"] == 2


def test_a_distributed_runner_still_gets_tfx_s_package(packaging_calls):
    args = ["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=gs://b/t"]
    executor = session_tensors.Executor(_context(args))
    assert packaging_calls == [args]
    assert "--extra_package=/tmp/tfx_ephemeral.tar.gz" in executor._beam_pipeline_args  # pylint: disable=protected-access


def test_no_arguments_is_tfx_s_default_runner(packaging_calls):
    executor = session_tensors.Executor(_context(None))
    assert packaging_calls == [] and executor._beam_pipeline_args == []  # pylint: disable=protected-access


def _round_trips(monkeypatch):
    calls = []
    original = beam.Pipeline.from_runner_api

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(beam.Pipeline, "from_runner_api", staticmethod(counted))
    return calls


def _run_doubling(pipeline, tmp_path):
    with pipeline:
        _ = (pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda x: 2 * x)
             | beam.io.WriteToText(str(tmp_path / "out"), shard_name_template=""))
    return sorted(int(v) for v in (tmp_path / "out").read_text().split())


def test_the_bundle_based_runner_runs_without_the_runner_api_round_trip(monkeypatch, tmp_path, packaging_calls):
    round_trips = _round_trips(monkeypatch)
    plain = beam.Pipeline(argv=["--runner=BundleBasedDirectRunner"])
    assert _run_doubling(plain, tmp_path) == [2, 4, 6] and len(round_trips) == 1  # Beam's own test round trip
    executor = session_tensors.Executor(_context(["--runner=BundleBasedDirectRunner"]))
    assert _run_doubling(executor._make_beam_pipeline(), tmp_path) == [2, 4, 6]  # pylint: disable=protected-access
    assert len(round_trips) == 1  # none more


def test_other_runners_run_as_beam_decides(monkeypatch, packaging_calls):
    executor = session_tensors.Executor(_context(["--runner=FnApiRunner"]))
    pipeline = executor._make_beam_pipeline()  # pylint: disable=protected-access
    assert "run" not in vars(pipeline)  # Beam's own Pipeline.run
