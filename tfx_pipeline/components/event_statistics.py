"""StatisticsGen for the click events: TFX's StatisticsGen, computed by streaming the events through TFDV's
generators in one process when the pipeline runs on a local Beam runner.

The standard StatisticsGen runs a Beam job for every span. On a daily window of ~30k events that job is almost all
fixed cost (pipeline construction and the DirectRunner's bundles: about 4-6 s unloaded, 12-18 s on a loaded 2-core
machine), most of data validation's share of a daily run; on millions of events the local runner's per-element
machinery makes it the slowest component but one (issue 27: 221 s of a 5M-event run). On a local runner this
executor instead reads the ``events`` split a batch at a time (:func:`tfx_pipeline.event_split.iter_list_batches`:
a Parquet row group, or 64k decoded ``tf.Example`` records) and feeds each batch to the accumulators of TFDV's
in-memory generators (``get_generators(options, in_memory=True)``, the generators of
``generate_statistics_in_memory``, same ``StatsOptions``), then writes the result where and how StatisticsGen
writes it (``Split-<split>/FeatureStats.pb``, the ``split_names``, ``span`` and ``sample_rate_by_split``
properties). Memory: one batch plus the accumulators, which grow with the distinct values kept for the top-k
and unique counts (session and item IDs), not with the events.

On a distributed runner (``--runner`` other than the DirectRunner), with a schema input, excluded splits or
sharded output, the standard Beam executor runs unchanged: scale stays Beam's.

Example::

    statistics = EventStatisticsGen(examples=example_gen.outputs["examples"])   # component id "StatisticsGen"
"""
import os
from typing import Any

from absl import logging
from tfx import types
from tfx.components.statistics_gen import executor as statistics_gen_executor
from tfx.components.statistics_gen.component import StatisticsGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import json_utils

from tfx_pipeline import event_split
from tfx_pipeline.freed_memory import releasing_freed_memory
from tfx_pipeline.local_beam import LocalRunnerBeamExecutor, runs_locally

def streamed_statistics(batches, options):
    """TFDV's in-memory statistics (a ``DatasetFeatureStatisticsList``) of record batches, one batch at a time."""
    from tensorflow_data_validation.statistics import stats_impl  # pylint: disable=g-import-not-at-top (after tfx)
    generators = stats_impl.get_generators(options, in_memory=True)
    accumulators = [generator.create_accumulator() for generator in generators]
    for batch in batches:
        if options.feature_allowlist:  # as generate_statistics_in_memory does
            batch = batch.select([name for name in options.feature_allowlist if name in batch.schema.names])
        accumulators = [generator.add_input(acc, batch)
                        for generator, acc in zip(generators, accumulators, strict=True)]
    return stats_impl.extract_statistics_output(accumulators, generators)


class Executor(LocalRunnerBeamExecutor, statistics_gen_executor.Executor):
    """Streamed in one process on a local runner, else the standard StatisticsGen executor (module docstring)."""

    @releasing_freed_memory
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY])
        if not runs_locally(self._beam_pipeline_args) or input_dict.get(standard_component_specs.SCHEMA_KEY) \
                or json_utils.loads(exec_properties.get(standard_component_specs.EXCLUDE_SPLITS_KEY, "null")) \
                or exec_properties.get(standard_component_specs.SHARDED_STATS_OUTPUT_KEY):
            logging.info("StatisticsGen: the Beam executor")
            super().Do(input_dict, output_dict, exec_properties)
            return
        import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top  (after tfx)
        options = tfdv.StatsOptions()
        if exec_properties.get(standard_component_specs.STATS_OPTIONS_JSON_KEY):
            options = tfdv.StatsOptions.from_json(exec_properties[standard_component_specs.STATS_OPTIONS_JSON_KEY])
        splits = artifact_utils.decode_split_names(examples.split_names)
        statistics = artifact_utils.get_single_instance(output_dict[standard_component_specs.STATISTICS_KEY])
        statistics.split_names = artifact_utils.encode_split_names(splits)
        statistics.span = examples.span
        statistics.set_json_value_custom_property(statistics_gen_executor.SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME,
                                                  json_utils.dumps({s: options.sample_rate or 1.0 for s in splits}))
        for split in splits:
            result = streamed_statistics(event_split.iter_list_batches(examples, split), options)
            output = artifact_utils.get_split_uri([statistics], split)
            fileio.makedirs(output)
            with fileio.open(os.path.join(output, statistics_gen_executor.DEFAULT_FILE_NAME), "wb") as handle:
                handle.write(result.SerializeToString())
            logging.info("StatisticsGen: %d events of split %s: statistics streamed in one process, written to %s",
                         result.datasets[0].num_examples if result.datasets else 0, split, output)


class EventStatisticsGen(StatisticsGen):
    """TFX's StatisticsGen with :class:`Executor` (same spec, inputs, outputs and options)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
