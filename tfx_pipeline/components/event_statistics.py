"""StatisticsGen for the click events: TFX's StatisticsGen, with the statistics of a small span computed in memory.

The standard StatisticsGen runs a Beam job for every span. On a daily window of ~30k events that job is almost all
fixed cost (pipeline construction and the DirectRunner's bundles: about 4-6 s unloaded, 12-18 s on a loaded 2-core
machine, the same with a 1% sample), most of data validation's share of a daily run. For an ``Examples`` artifact
of at most :data:`IN_MEMORY_MAX_EVENTS` events (its ``rows_ok``, written by ``ClickLogExampleGen``), this
executor reads the records itself, decodes them into one Arrow record batch with the decoder TFX's own source uses
(``tfx_bsl``'s ``ExamplesToRecordBatchDecoder``) and computes the same statistics with TFDV's in-memory
``generate_statistics_in_memory`` (same ``StatsOptions``), written where and how StatisticsGen writes them
(``Split-<split>/FeatureStats.pb``, the ``split_names``, ``span`` and ``sample_rate_by_split`` properties). Bigger
spans (or an artifact without ``rows_ok``) go through the standard Beam executor unchanged: memory stays bounded
by the limit (3 columns of ~2M events: ~200 MB), scale stays Beam's.

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

IN_MEMORY_MAX_EVENTS = 2_000_000


def read_record_batch(file_pattern: str):
    """The serialized ``tf.Example`` records of ``file_pattern`` (GZIP TFRecords) as one Arrow record batch."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tfx_bsl.coders import example_coder
    files = tf.io.gfile.glob(file_pattern)
    records = [r for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(65536)
               for r in batch.numpy().tolist()]
    return example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)


class Executor(statistics_gen_executor.Executor):
    """In memory for a small ``Examples`` artifact, else the standard StatisticsGen executor (module docstring)."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY])
        events = examples.get_int_custom_property("rows_ok") if examples.has_custom_property("rows_ok") else None
        if events is None or events > IN_MEMORY_MAX_EVENTS or input_dict.get(standard_component_specs.SCHEMA_KEY) \
                or json_utils.loads(exec_properties.get(standard_component_specs.EXCLUDE_SPLITS_KEY, "null")) \
                or exec_properties.get(standard_component_specs.SHARDED_STATS_OUTPUT_KEY):
            logging.info("StatisticsGen: %s events: the Beam executor", events)
            super().Do(input_dict, output_dict, exec_properties)
            return
        import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top  (after tfx)
        from tensorflow_data_validation.statistics import stats_impl
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
            batch = read_record_batch(os.path.join(artifact_utils.get_split_uri([examples], split), "*"))
            result = stats_impl.generate_statistics_in_memory(batch, options)
            output = artifact_utils.get_split_uri([statistics], split)
            fileio.makedirs(output)
            with fileio.open(os.path.join(output, statistics_gen_executor.DEFAULT_FILE_NAME), "wb") as handle:
                handle.write(result.SerializeToString())
            logging.info("StatisticsGen: %d events of split %s: statistics computed in memory, written to %s",
                         batch.num_rows, split, output)


class EventStatisticsGen(StatisticsGen):
    """TFX's StatisticsGen with :class:`Executor` (same spec, inputs, outputs and options)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
