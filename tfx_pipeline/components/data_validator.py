"""DataValidator: each span's verdict before anything trains on it (``--validation fail|warn``).

It gathers, for the span that ``ClickLogExampleGen`` ingested:

* the anomalies of TFX's ``ExampleValidator`` (the events' statistics against the inferred or pinned schema);
* TFDV's own checks against the span that trained the last blessed model (``baseline_model``, which carries that
  span's ``data_profile/``: its statistics, schema and profile): the schema of that span (or the pinned one) and
  the drift of the ``item_id`` distribution (TFDV's Jensen-Shannon divergence comparator, ``max_item_drift``);
* the session-level checks of :mod:`tfx_pipeline.data_checks` on the span, the events after the end of the last
  blessed model's data (time range, events and sessions per day, events per
  session, new items, rejected rows, events delivered twice, gaps).

Its ``verdict`` artifact (:class:`tfx_pipeline.artifacts.DataVerdict`) holds ``anomalies.json`` and this span's
``data_profile/``; its custom property ``valid`` is 0 when ``mode`` is ``fail`` and a check failed: the pipeline's
``Cond`` then skips SessionTensors and everything after it (nothing trains, nothing is pushed). SessionTensors
copies the profile into the session tensors and the Trainer into the model, so the next run compares with it.

Example::

    validator = DataValidator(statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
                              anomalies=example_validator.outputs["anomalies"],
                              examples=example_gen.outputs["examples"], baseline_model=resolver.outputs["model"],
                              options=ValidationOptions())
"""
import json
import os
import time
from typing import Any

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import base_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts

from tfx_pipeline import artifacts
from tfx_pipeline import data_checks
from tfx_pipeline import event_split
from tfx_pipeline.freed_memory import releasing_freed_memory
from tfx_pipeline.components import click_log_gen
from tfx_pipeline.validation_options import ValidationOptions

ANOMALIES_FILE = "anomalies.json"
STATS_FILE, SCHEMA_FILE, PROFILE_FILE = "statistics.pb", "schema.pbtxt", "profile.json"
KEY_FEATURES = ("session_id", "user_id")


class DataValidatorSpec(component_spec.ComponentSpec):
    """Inputs, outputs and parameters of :class:`DataValidator`."""

    PARAMETERS = {"validation_options": component_spec.ExecutionParameter(type=str),
                  "span_days": component_spec.ExecutionParameter(type=float)}
    INPUTS = {
        "statistics": component_spec.ChannelParameter(type=standard_artifacts.ExampleStatistics),
        "schema": component_spec.ChannelParameter(type=standard_artifacts.Schema),
        "anomalies": component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        "examples": component_spec.ChannelParameter(type=standard_artifacts.Examples),
        "baseline_model": component_spec.ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {"verdict": component_spec.ChannelParameter(type=artifacts.DataVerdict)}


# ------------------------------------------------------------------------------------------------ statistics
def profile_of(keys, items, times, mask, rows_rejected: int, user_keyed: bool) -> data_checks.DataProfile:
    """The :class:`~tfx_pipeline.data_checks.DataProfile` of the events selected by the boolean ``mask``."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    import pandas as pd
    if not mask.any():
        return data_checks.DataProfile(0, 0, 0, 0, 0, rows_rejected)
    repeated = pd.DataFrame({"item": items[mask], "time": times[mask]}).duplicated(keep=False)
    return data_checks.DataProfile(
        events=int(mask.sum()), sessions=None if user_keyed else int(len(np.unique(keys[mask]))),
        items=int(len(np.unique(items[mask]))), time_min_us=int(times[mask].min()),
        time_max_us=int(times[mask].max()), rows_rejected=rows_rejected, duplicate_events=int(repeated.sum()))


def span_mask(times, span_days: float, baseline_end_us: int | None):
    """The span: the events after the end of the last blessed model's data, or (without one) the newest
    ``span_days`` (the period that becomes the test split)."""
    if baseline_end_us is not None:
        return times > baseline_end_us
    if len(times) == 0:
        return times > 0
    return times >= times.max() - int(span_days * data_checks.DAY_US)


def tfdv_anomalies(statistics_list, schema, baseline_statistics, max_item_drift: float) -> list:
    """TFDV's schema check and its ``item_id`` drift comparator, as :class:`~tfx_pipeline.data_checks.Anomaly`."""
    import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top  (after tfx, see the notes)
    schema = type(schema).FromString(schema.SerializeToString())
    item = tfdv.get_feature(schema, "item_id") if baseline_statistics is not None else None
    if item is not None:
        item.drift_comparator.jensen_shannon_divergence.threshold = max_item_drift
    found = tfdv.validate_statistics(statistics_list, schema, previous_statistics=baseline_statistics)
    return [data_checks.Anomaly(f"tfdv:{name}", "; ".join(r.description for r in info.reason),
                                "as in the schema" if "divergence" not in info.description.lower() else
                                f"Jensen-Shannon divergence <= {max_item_drift:g}")
            for name, info in sorted(found.anomaly_info.items())]


def example_validator_anomalies(anomalies_artifact: types.Artifact) -> list:
    """The anomalies that TFX's ExampleValidator wrote for the ``events`` split."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2  # pylint: disable=g-import-not-at-top
    path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], click_log_gen.SPLIT), "SchemaDiff.pb")
    if not fileio.exists(path):
        return []
    with fileio.open(path, "rb") as handle:
        found = anomalies_pb2.Anomalies.FromString(handle.read())
    return [data_checks.Anomaly(f"schema:{name}", "; ".join(r.description for r in info.reason), "as in the schema")
            for name, info in sorted(found.anomaly_info.items())]


# ------------------------------------------------------------------------------------------------ the baseline
class _Baseline:
    """The data profile that the last blessed model carries (``<model uri>/data_profile/``), when it has one."""

    def __init__(self, models: list[types.Artifact]):
        self.dir = os.path.join(models[0].uri, artifacts.DATA_PROFILE_DIR) if models else None
        if self.dir and not fileio.exists(os.path.join(self.dir, PROFILE_FILE)):
            logging.info("DataValidator: the last blessed model carries no data profile; absolute checks only")
            self.dir = None
        self.model_uri = models[0].uri if models else None

    def profiles(self) -> tuple:
        """``(window, span)``: the profiles of all the data and of the span that trained the last blessed model."""
        if not self.dir:
            return None, None
        with fileio.open(os.path.join(self.dir, PROFILE_FILE)) as handle:
            data = json.load(handle)
        return (data_checks.DataProfile.from_dict(data["window"]), data_checks.DataProfile.from_dict(data["span"]))

    def statistics(self):
        if not self.dir:
            return None
        from tensorflow_metadata.proto.v0 import statistics_pb2  # pylint: disable=g-import-not-at-top
        with fileio.open(os.path.join(self.dir, STATS_FILE), "rb") as handle:
            return statistics_pb2.DatasetFeatureStatisticsList.FromString(handle.read())

    def schema(self):
        if not self.dir:
            return None
        from tfx.utils import io_utils  # pylint: disable=g-import-not-at-top
        from tensorflow_metadata.proto.v0 import schema_pb2
        return io_utils.SchemaReader().read(os.path.join(self.dir, SCHEMA_FILE)) if fileio.exists(
            os.path.join(self.dir, SCHEMA_FILE)) else schema_pb2.Schema()

    def new_item_share(self, item_ids, span_codes) -> float | None:
        """The share of the span's events (their item codes ``span_codes``, indices into ``item_ids``, bytes) whose
        item the last blessed model lacks."""
        if not self.model_uri or len(span_codes) == 0:
            return None
        import numpy as np  # pylint: disable=g-import-not-at-top
        from gru4rec_tf.data import contracts
        path = os.path.join(artifacts.library_model_dir(self.model_uri), contracts.MODEL_VOCAB_FILE)
        if not fileio.exists(path):
            return None
        with fileio.open(path) as handle:
            known = [line.split("\t", 1)[0].encode() for line in handle.read().splitlines()[1:] if line]
        return float(1.0 - np.isin(item_ids, np.array(known, dtype=object))[span_codes].mean())


# ------------------------------------------------------------------------------------------------ executor
class Executor(base_executor.BaseExecutor):
    """Runs every check and writes the verdict (see the module docstring)."""

    @releasing_freed_memory
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        from tfx.components.statistics_gen import stats_artifact_utils  # pylint: disable=g-import-not-at-top
        from tfx.utils import io_utils
        options = ValidationOptions.from_json(exec_properties["validation_options"])
        verdict = artifact_utils.get_single_instance(output_dict["verdict"])
        stats_artifact = artifact_utils.get_single_instance(input_dict["statistics"])
        statistics_list = stats_artifact_utils.load_statistics(stats_artifact, click_log_gen.SPLIT).proto()
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        rejected = int(examples.get_int_custom_property("rows_rejected") or 0)
        keys, items, item_ids, times = event_split.read_event_arrays(examples)  # IDs as integer codes
        user_keyed = examples.get_string_custom_property("event_key") == "user"
        window = profile_of(keys, items, times, times == times, rejected, user_keyed)
        schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
            artifact_utils.get_single_uri(input_dict["schema"])))
        baseline = _Baseline(input_dict.get("baseline_model") or [])
        base_window, base_span = baseline.profiles()
        if window == base_window:  # a re-run on the very data of the last blessed model: nothing new to check
            logging.info("DataValidator: the same data as the last blessed model's (a re-run)")
            base_window = base_span = None
        mask = span_mask(times, float(exec_properties["span_days"]),
                         base_window.time_max_us if base_window else None)
        current = profile_of(keys, items, times, mask, rejected, user_keyed)
        found = example_validator_anomalies(artifact_utils.get_single_instance(input_dict["anomalies"]))
        new_share = baseline.new_item_share(item_ids, items[mask]) if base_span else None
        found += data_checks.check_span(current, base_span, options, now_us=int(time.time() * 1e6),
                                        new_item_share=new_share,
                                        baseline_end_us=base_window.time_max_us if base_window else None)
        if not any(a.check == "time_range" for a in found):
            found += self._window_times(times)
        reference = schema if options.schema_file or baseline.dir is None else baseline.schema()
        found += tfdv_anomalies(statistics_list, reference, baseline.statistics(), options.max_item_drift)
        self._write(verdict, found, options, {"window": window.to_dict(), "span": current.to_dict()},
                    statistics_list, schema)

    @staticmethod
    def _window_times(times) -> list:
        """The time sanity of every ingested event (the span's own range is checked with the span)."""
        if len(times) == 0:
            return []
        window = data_checks.DataProfile(len(times), None, 0, int(times.min()), int(times.max()))
        return [a for a in data_checks.check_time_range(window, int(time.time() * 1e6)) if a.check == "time_range"]

    @staticmethod
    def _write(verdict, found, options: ValidationOptions, profiles: dict, statistics_list, schema) -> None:
        from tfx.utils import io_utils  # pylint: disable=g-import-not-at-top
        valid = not found or options.mode == "warn"
        profile_dir = os.path.join(verdict.uri, artifacts.DATA_PROFILE_DIR)
        fileio.makedirs(profile_dir)
        with fileio.open(os.path.join(profile_dir, PROFILE_FILE), "w") as handle:
            handle.write(json.dumps(profiles, indent=1, sort_keys=True))
        with fileio.open(os.path.join(profile_dir, STATS_FILE), "wb") as handle:
            handle.write(statistics_list.SerializeToString())
        io_utils.write_pbtxt_file(os.path.join(profile_dir, SCHEMA_FILE), schema)
        with fileio.open(os.path.join(verdict.uri, ANOMALIES_FILE), "w") as handle:
            handle.write(json.dumps([a.__dict__ for a in found], indent=1))
        verdict.set_int_custom_property("valid", int(valid))
        verdict.set_int_custom_property("anomalies", len(found))
        verdict.set_string_custom_property("mode", options.mode)
        verdict.set_string_custom_property("anomaly_lines", json.dumps([a.format() for a in found]))
        for anomaly in found:
            logging.warning("DataValidator: %s", anomaly.format())
        logging.info("DataValidator: %d new event(s), %d anomaly(ies): %s", profiles["span"]["events"], len(found),
                     "valid" if not found else ("the run goes on (--validation warn)" if valid else
                                                "the run stops here (--validation fail)"))


class DataValidator(base_component.BaseComponent):
    """Custom TFX component: the span's data verdict (see the module docstring).

    Example::

        validator = DataValidator(statistics=stats.outputs["statistics"], schema=schema.outputs["schema"],
                                  anomalies=validator.outputs["anomalies"], examples=gen.outputs["examples"],
                                  baseline_model=resolver.outputs["model"], options=ValidationOptions(mode="warn"))
    """

    SPEC_CLASS = DataValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, statistics: channel.BaseChannel, schema: channel.BaseChannel,
                 anomalies: channel.BaseChannel, examples: channel.BaseChannel,
                 baseline_model: channel.BaseChannel | None = None,
                 options: ValidationOptions | None = None, span_days: float = 1.0):
        options = options or ValidationOptions()
        super().__init__(spec=DataValidatorSpec(
            statistics=statistics, schema=schema, anomalies=anomalies, examples=examples,
            baseline_model=baseline_model, validation_options=options.to_json(), span_days=float(span_days),
            verdict=channel.Channel(type=artifacts.DataVerdict)))
