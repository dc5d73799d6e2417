"""SessionEvaluator: full-catalogue Recall@k / MRR@k on the test split, and the model blessing.

Why a custom component rather than the TFX Evaluator (TFMA): GRU4Rec's metric is a *stateful, session-parallel*
next-item ranking over the whole catalogue (spec §7: the hidden state runs through each test session, every event
after the first is ranked against all items). TFMA evaluates independent examples through a serving signature,
which would mean re-running every session prefix (O(L^2)) and re-implementing the tie rules; the library's
:class:`~gru4rec_tf.evaluation.full_catalogue.Evaluator` already does it exactly and fast. So this component calls it,
applies :mod:`tfx_pipeline.blessing`, and writes the standard artifacts:

* ``evaluation`` (``ModelEvaluation``): ``metrics.json`` with the candidate's and the baseline's metrics, the checks
  made and the slice table (``slices``: per slice of the test events, candidate and baseline on the same events,
  each figure with its 95% bootstrap interval over sessions, and the paired difference; ``slice_gate``: the sliced
  gate's settings and ``failed_slices``); the metrics are also custom properties (``recall_at_20``,
  ``coverage_at_20`` ...);
* ``blessing`` (``ModelBlessing``): a ``BLESSED`` or ``NOT_BLESSED`` file and the custom properties the standard
  components read: ``blessed`` (the Pusher pushes only when it is 1), ``current_model``/``current_model_id`` (what
  ``LatestBlessedModelStrategy`` uses to find the last blessed model), ``baseline_model``/``baseline_model_id``;
  plus ``failed_slices`` (comma-separated, empty when the sliced gate passed) and ``is_new_model`` (0 when the
  candidate *is* the last blessed model, e.g. a re-run whose Trainer was cached, or has the same weights, e.g. a
  warm-started Trainer that found the base model already trained on the same data: the pipeline then does not push
  the same model again, and such a copy is not blessed a second time, so that the next re-run is cached).

The baseline (the last blessed model, from a ``LatestBlessedModelStrategy`` resolver) is evaluated on the *same*
test split as the candidate, each through its own vocabulary (test events with items unknown to a model are
dropped for that model, spec §7). For the slices both models' ranked events are aligned on (session, position in
the test session, target): an event one model could not rank counts as a miss for it; the *new* items are those of
the candidate's catalogue that the baseline does not know (so the baseline's figures on them are 0 by
construction); popularity classes come from the candidate's training data. With ``eval_sample_sessions`` both
models rank the same seeded sample of test sessions, against the whole catalogue.

Example::

    evaluator = SessionEvaluator(examples=session_tensors.outputs["session_tensors"],
                                 model=trainer.outputs["model"], baseline_model=resolver.outputs["model"],
                                 options=BlessingOptions(thresholds={"recall@20": 0.1}, regression_margin=0.01))
"""
import dataclasses
import json
import os
from typing import Any

from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfma_evaluator_executor
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts

from tfx_pipeline import artifacts
from tfx_pipeline import blessing as blessing_lib
from tfx_pipeline import remote_paths
from tfx_pipeline import session_data
from tfx_pipeline.freed_memory import release_freed_memory, releasing_freed_memory
from tfx_pipeline.local_beam import LocalRunnerBeamExecutor

METRICS_FILE = "metrics.json"


class SessionEvaluatorSpec(component_spec.ComponentSpec):
    """Inputs, outputs and parameters of :class:`SessionEvaluator`."""

    PARAMETERS = {"blessing_options": component_spec.ExecutionParameter(type=str)}
    INPUTS = {
        "examples": component_spec.ChannelParameter(type=standard_artifacts.Examples),
        "model": component_spec.ChannelParameter(type=standard_artifacts.Model),
        "baseline_model": component_spec.ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        "evaluation": component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


def property_name(metric: str) -> str:
    """``recall@20`` -> ``recall_at_20`` (the custom-property name of a metric)."""
    return metric.replace("@", "_at_")


@dataclasses.dataclass
class ModelResult:
    """A model's evaluation: its ``metrics`` (what metrics.json and the blessing record), its ranked test events
    (:func:`gru4rec_tf.evaluation.slices.event_frame`) and its vocabulary."""

    metrics: dict
    events: Any  # pandas DataFrame: session, position, item, rank
    vocab: Any


def evaluate_model(model_uri: str, events, options: blessing_lib.BlessingOptions) -> ModelResult:
    """Loads the library model of a ``Model`` artifact and evaluates it on ``events`` (spec §7), keeping each ranked
    event for the slices, and the coverage and popularity of its top-k recommendations (k: the largest cutoff)."""
    import pandas as pd  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.evaluation import full_catalogue, slices
    from gru4rec_tf.model import model_dir as model_dir_lib  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.session_data import SessionData
    with remote_paths.local_dir(artifacts.library_model_dir(model_uri)) as model_dir:
        saved = model_dir_lib.load_model(model_dir)
    test = SessionData.from_events(events, saved.vocab)
    logging.info("SessionEvaluator: %s: %d test events in %d sessions (%d events with unknown items dropped)",
                 model_uri, test.n_events, test.n_sessions, test.n_dropped_unknown)
    evaluator = full_catalogue.Evaluator(saved.model, options.eval_batch_size)
    ranked = evaluator.ranked_events(test, options.eval_mode, top_k=max(options.cutoffs))
    popularity = pd.Series(saved.vocab.support, index=saved.vocab.item_ids)
    metrics = {**full_catalogue.metrics_from_ranks(ranked.ranks, options.cutoffs), "eval_mode": options.eval_mode,
               "eval_events": ranked.n_events, "eval_sessions": test.n_sessions,
               **slices.recommendation_figures(ranked.top_items, saved.vocab.item_ids, popularity),
               "n_items": len(saved.vocab), "dropped_unknown": int(test.n_dropped_unknown),
               "weights_fingerprint": saved.weights_fingerprint}
    return ModelResult(metrics, slices.event_frame(ranked, test, saved.vocab, events=events), saved.vocab)


def slice_report(candidate: ModelResult, baseline: ModelResult | None, options: blessing_lib.BlessingOptions):
    """The slice table: candidate and baseline on the same test events (:func:`~gru4rec_tf.evaluation.slices.align`)
    with the paired differences, or the candidate alone without a baseline.

    Popularity is the candidate's (its training data: the newest); the *new* items are those of the candidate's
    catalogue that the baseline does not know (without a baseline there is no such slice).
    """
    import pandas as pd  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.evaluation import slices  # pylint: disable=g-import-not-at-top
    popularity = pd.Series(candidate.vocab.support, index=candidate.vocab.item_ids)
    settings = options.slice_options()
    args = dict(cutoffs=options.cutoffs, n_resamples=settings.bootstrap_resamples, seed=settings.eval_seed)
    if baseline is None:
        masks = slices.slice_masks(candidate.events, popularity)
        return {name: {"events": row["events"], "sessions": row["sessions"],
                       "candidate": {k: v for k, v in row.items() if k not in ("events", "sessions")}}
                for name, row in slices.slice_table(candidate.events, masks, **args).items()}
    new_items = candidate.vocab.item_ids[baseline.vocab.lookup(candidate.vocab.item_ids) < 0]
    frame = slices.align(candidate.events, baseline.events)
    return slices.paired_slice_table(frame, slices.slice_masks(frame, popularity, new_items), **args)


class Executor(LocalRunnerBeamExecutor, tfma_evaluator_executor.Executor):
    """Evaluates the candidate (and the baseline), decides the blessing, writes both artifacts.

    Derived from the standard Evaluator's executor (none of whose code it uses) for one reason: TFX's Kubeflow V2
    container entrypoint (``kubeflow_v2_run_executor``) rewrites a blessing's ``current_model_id`` and
    ``baseline_model_id`` from the container's integer IDs to the metadata store's artifact *names* only for
    executors of that class. The compiled ``LatestBlessedModelStrategy`` looks the last blessed model up by that
    name (``name="{{$.inputs.artifacts['input'].metadata['current_model_id']}}"``), so with a plain
    ``BaseExecutor`` no baseline is ever found on Vertex: every model counts as new and none is held to the last
    blessed one.
    """

    @releasing_freed_memory
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        release_freed_memory()  # what the components before it freed in this process (the Trainer's, locally)
        options = blessing_lib.BlessingOptions.from_json(exec_properties["blessing_options"])
        tensors = artifact_utils.get_single_instance(input_dict["examples"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        baselines = input_dict.get("baseline_model") or []
        baseline = baselines[0] if baselines else None
        from gru4rec_tf.evaluation import session_sample  # pylint: disable=g-import-not-at-top
        events = session_sample.sample_sessions(session_data.read_events(tensors.uri, options.split),
                                                options.eval_sample_sessions, options.eval_seed)
        result = evaluate_model(model.uri, events, options)
        baseline_result = None
        if baseline is not None:
            baseline_result = result if baseline.id == model.id else evaluate_model(baseline.uri, events, options)
        candidate = result.metrics
        baseline_metrics = baseline_result.metrics if baseline_result is not None else None
        table = slice_report(result, baseline_result, options)
        decision = blessing_lib.decide(options, candidate, baseline_metrics, slices=table)
        same_as_baseline = baseline is not None and baseline.id != model.id and \
            candidate["weights_fingerprint"] == baseline_metrics["weights_fingerprint"]
        if same_as_baseline:  # e.g. a re-run on unchanged data: not blessed again, so the next re-run is cached
            decision = blessing_lib.BlessingDecision(blessed=False, checks=decision.checks + [
                "FAIL: identical to the last blessed model (same weights): not blessed again"],
                failed_slices=decision.failed_slices)
        for line in decision.checks:
            logging.info("SessionEvaluator: %s", line)
        logging.info("SessionEvaluator: %s", "BLESSED" if decision.blessed else "NOT BLESSED")
        self._write_evaluation(output_dict, options, candidate, baseline_metrics, decision, baseline, table)
        self._write_blessing(output_dict, candidate, decision, model, baseline, same_as_baseline)

    @staticmethod
    def _write_evaluation(output_dict, options, candidate, baseline_metrics, decision, baseline, table) -> None:
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        evaluation = artifact_utils.get_single_instance(output_dict["evaluation"])
        payload = {"split": options.split, "eval_mode": options.eval_mode, "candidate": candidate,
                   "baseline": baseline_metrics, "baseline_uri": baseline.uri if baseline is not None else None,
                   "thresholds": dict(options.thresholds), "regression_margin": options.regression_margin,
                   "checks": decision.checks, "blessed": decision.blessed, "slices": table,
                   "slice_gate": {"min_slice_events": options.min_slice_events,
                                  "slice_regression_margin": options.slice_regression_margin,
                                  "popularity_slice_margin": options.popularity_slice_margin,
                                  "min_new_item_ratio": options.min_new_item_ratio,
                                  "family_confidence": blessing_lib.FAMILY_CONFIDENCE,
                                  "failed_slices": list(decision.failed_slices)},
                   "eval_sample_sessions": options.eval_sample_sessions,
                   "bootstrap": {"resamples": options.bootstrap_resamples, "seed": options.eval_seed,
                                 "confidence": 0.95, "unit": "session"}}
        tf.io.gfile.makedirs(evaluation.uri)
        with tf.io.gfile.GFile(os.path.join(evaluation.uri, METRICS_FILE), "w") as handle:
            handle.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        for key in _metric_keys(candidate):
            evaluation.set_float_custom_property(property_name(key), float(candidate[key]))
        evaluation.set_int_custom_property("eval_events", int(candidate["eval_events"]))
        for key in _recommendation_keys(candidate):
            evaluation.set_float_custom_property(property_name(key), float(candidate[key]))
        evaluation.set_string_custom_property("failed_slices", ",".join(decision.failed_slices))

    @staticmethod
    def _write_blessing(output_dict, candidate, decision, model, baseline: types.Artifact | None,
                        same_as_baseline: bool) -> None:
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        name = constants.BLESSED_FILE_NAME if decision.blessed else constants.NOT_BLESSED_FILE_NAME
        tf.io.gfile.makedirs(blessing.uri)
        with tf.io.gfile.GFile(os.path.join(blessing.uri, name), "w") as handle:
            handle.write("\n".join(decision.checks) + "\n")
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                         constants.BLESSED_VALUE if decision.blessed else constants.NOT_BLESSED_VALUE)
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        if baseline is not None:
            blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri)
            blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id)
        is_new = baseline is None or (baseline.id != model.id and not same_as_baseline)
        blessing.set_int_custom_property("is_new_model", int(is_new))
        blessing.set_string_custom_property("blessing_message", "; ".join(decision.failures) or "all checks passed")
        blessing.set_string_custom_property("failed_slices", ",".join(decision.failed_slices))
        for key in _metric_keys(candidate):
            blessing.set_float_custom_property(property_name(key), float(candidate[key]))


def _metric_keys(metrics: dict) -> list[str]:
    return [k for k in metrics if k.startswith(("recall@", "mrr@"))]


def _recommendation_keys(metrics: dict) -> list[str]:
    return [k for k in metrics if k.startswith(("coverage@", "mean_rec_popularity@"))]


class SessionEvaluator(base_beam_component.BaseBeamComponent):
    """Custom TFX component: evaluates a GRU4Rec ``Model`` on the test split and writes a ``ModelBlessing``.

    Args:
        examples: the ``session_tensors`` channel of SessionTensors.
        model: the Trainer's ``model`` channel (the candidate).
        baseline_model: optional ``Model`` channel of the last blessed model (``LatestBlessedModelStrategy``).
        options: metrics, thresholds and regression margin (:class:`tfx_pipeline.blessing.BlessingOptions`).
    """

    SPEC_CLASS = SessionEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)  # its executor derives from a Beam executor

    def __init__(self, examples: channel.BaseChannel, model: channel.BaseChannel,
                 baseline_model: channel.BaseChannel | None = None,
                 options: blessing_lib.BlessingOptions = blessing_lib.BlessingOptions()):
        super().__init__(spec=SessionEvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model,
            blessing_options=options.to_json(),
            evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=channel.Channel(type=standard_artifacts.ModelBlessing),
        ))
