"""``create_pipeline``: the GRU4Rec TFX pipeline (the TFX way, as in the TFX penguin example).

::

    ClickLogExampleGen --examples--> SessionTensors --session_tensors--> Trainer (run_fn) --model--+
                                                    |                      ^ base_model           v
                                                    +----------------------|-session_tensors-> SessionEvaluator
    latest_blessed_model_resolver --model (last blessed)-------------------+--------------------^     |
                                                                                               blessing
                                                                                                  v
                        (last blessed model: baseline_model) --> Pusher (blessed model, when the serving root lacks it)
                                                                                                  |  (after it)
                                                          (optional) BulkRecommender <-- model, blessing

1. ``ClickLogExampleGen`` ingests the raw click log (a custom ``FileBasedExampleGen`` executor; why not
   ``CsvExampleGen``: see :mod:`tfx_pipeline.components.click_log_gen`).
2. ``SessionTensors`` runs the Beam preprocessing: sessions, cleaning, time split, vocabulary, TFRecords.
3. The standard ``Trainer`` runs :func:`tfx_pipeline.trainer_module.run_fn` (hyperparameters in ``custom_config``,
   official GRU4Rec names) and exports the serving SavedModel. Its ``base_model`` is the last blessed model (the
   same resolver): it warm-starts from it (new items get fresh rows), unless ``TrainingOptions.warm_start`` is off.
4. ``SessionEvaluator`` measures Recall@k / MRR@k with the library's full-catalogue evaluation against the last
   blessed model (a ``LatestBlessedModelStrategy`` resolver) and writes a ``ModelBlessing``.
5. The Pusher (the standard one plus the last blessed model as ``baseline_model``, with an idempotent, atomic
   executor: :mod:`tfx_pipeline.components.pusher`) copies the SavedModel to
   ``<serving_root>/<model_name>/<version>/`` when the candidate is blessed or is the already-blessed model
   (``is_new_model`` 0), and the last blessed model when the candidate is not blessed, unless a version there
   already holds that model: a new or wiped serving root gets the blessed model, an unchanged one no duplicate.
   It also reads the evaluation, the Trainer's ``model_run`` and the data verdict, and writes the model's report
   (:mod:`tfx_pipeline.model_report`) into the pushed version's ``assets.extra/report/`` and its ``PushedModel``.
6. The optional ``BulkRecommender`` (``recommend`` options: ``gru4rec pipeline run --recommend_data PATH``) runs
   after the Pusher and writes the blessed model's recommendations for every session of that click log
   (:mod:`tfx_pipeline.components.bulk_recommender`).

Example::

    pipeline = create_pipeline("gru4rec", "/tmp/root", data_root="/data/clicks", serving_root="/models",
                               metadata_connection_config=runners.sqlite_config("/tmp/metadata.sqlite"))
"""
import os
from collections.abc import Sequence

from tfx import v1 as tfx

from tfx_pipeline.blessing import BlessingOptions
from tfx_pipeline.components import pusher as pusher_component
from tfx_pipeline.components.bulk_recommender import BulkRecommender
from tfx_pipeline.components.click_log_gen import ClickLogExampleGen
from tfx_pipeline.components.session_evaluator import SessionEvaluator
from tfx_pipeline.components.session_tensors import SessionTensors
from tfx_pipeline.options import DEFAULT_MODEL_NAME, DEFAULT_PIPELINE_NAME  # noqa: F401  (re-exported)
from tfx_pipeline.options import IngestOptions, RecommendStepOptions, SessionOptions, TrainingOptions
from tfx_pipeline.tuning_options import TuningOptions
from tfx_pipeline.validation_options import ValidationOptions

RUN_FN = "tfx_pipeline.trainer_module.run_fn"
RESOLVER_ID = "latest_blessed_model_resolver"
# Node ids, in execution order (the Kubeflow V2 spec's task names).
NODE_IDS = ("ClickLogExampleGen", "SessionTensors", RESOLVER_ID, "Trainer", "SessionEvaluator", "Pusher")
TUNER_ID = "Tuner"  # optional (TuningOptions.trials > 0), between SessionTensors and the Trainer
RECOMMENDER_ID = "BulkRecommender"  # optional (recommend options given), after the Pusher
# Data validation (ValidationOptions.mode fail or warn), between ClickLogExampleGen and SessionTensors; with a pinned
# schema, ImportSchemaGen replaces SchemaGen.
VALIDATION_IDS = ("StatisticsGen", "SchemaGen", "ImportSchemaGen", "ExampleValidator", "DataValidator")


def serving_base_directory(serving_root: str, model_name: str = DEFAULT_MODEL_NAME) -> str:
    """``<serving_root>/<model_name>``: the TF Serving model base path; versions are its subdirectories."""
    return os.path.join(serving_root, model_name)


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root,
    serving_root: str,
    *,
    data_pattern: str = "*",
    model_name: str = DEFAULT_MODEL_NAME,
    ingest: IngestOptions = IngestOptions(),
    sessions: SessionOptions = SessionOptions(),
    training: TrainingOptions = TrainingOptions(),
    blessing: BlessingOptions = BlessingOptions(),
    metadata_connection_config=None,
    beam_pipeline_args: Sequence[str] = (),
    enable_cache: bool = True,
    trainer_resources=None,
    window_spans: int = 1,
    tuning: TuningOptions = TuningOptions(),
    recommend: RecommendStepOptions | None = None,
    validation: ValidationOptions | None = None,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline.

    Args:
        pipeline_name: the pipeline's name (its MLMD context; also the name of the compiled spec).
        pipeline_root: where the components write their artifacts (a local directory or ``gs://...``).
        data_root: the directory of the raw click log files (``str`` or a ``RuntimeParameter``).
        serving_root: the models are pushed to ``<serving_root>/<model_name>/<version>/``.
        data_pattern: which files under ``data_root`` to read (a name or glob).
        model_name: the served model's name.
        ingest, sessions, training, blessing: the components' options (validated here).
        metadata_connection_config: the MLMD store (local runs); None for Kubeflow/Vertex.
        beam_pipeline_args: Beam options of the Beam components (ingestion and SessionTensors).
        enable_cache: reuse a component's earlier outputs when its inputs and options are unchanged.
        trainer_resources: optional Vertex/Kubeflow ``ResourceSpec`` of the Trainer (CPU, memory, GPU).
        window_spans: with a span ``data_pattern`` (``{SPAN}``, ``{YYYY}-{MM}-{DD}``), train on the latest this many
            spans (days) instead of the latest one.
        tuning: with ``trials`` > 0, a standard ``Tuner`` searches the hyperparameters on the train split and its
            ``best_hyperparameters`` feed the Trainer (:mod:`tfx_pipeline.tuner_module`).
        recommend: when given, a ``BulkRecommender`` after the Pusher writes the blessed model's recommendations
            for the sessions of ``recommend.data`` (read with ``ingest`` and ``sessions``).
        validation: data validation of the ingested span before SessionTensors (None or mode ``off``: none);
            with mode ``fail`` an anomalous span skips SessionTensors and every later component.
    """
    example_gen = ClickLogExampleGen(input_base=data_root, pattern=data_pattern, options=ingest,
                                     window_spans=window_spans)
    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(RESOLVER_ID)
    validators = []
    if validation is not None and validation.enabled:
        validators = _validation_components(example_gen, resolver, validation, sessions.test_days)
    if validators and validation.mode == "fail":
        with tfx.dsl.Cond(validators[-1].outputs["verdict"].future()[0].custom_property("valid") == 1):
            trained = _training_components(example_gen, resolver, validators, serving_root, model_name, sessions,
                                           ingest, training, blessing, tuning, recommend, trainer_resources,
                                           gated=True)
    else:
        trained = _training_components(example_gen, resolver, validators, serving_root, model_name, sessions,
                                       ingest, training, blessing, tuning, recommend, trainer_resources)
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[example_gen] + validators + [resolver] + trained,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args),
    )


def _validation_components(example_gen, resolver, validation: ValidationOptions, span_days: float) -> list:
    """StatisticsGen, SchemaGen (or ImportSchemaGen with a pinned schema), ExampleValidator and DataValidator."""
    from tfx_pipeline.components.data_validator import DataValidator  # pylint: disable=g-import-not-at-top
    from tfx_pipeline.components.event_statistics import EventStatisticsGen
    # TFX's StatisticsGen, computing a small span's statistics in memory instead of a Beam job (most of
    # validation's time on a daily span); its id stays "StatisticsGen"
    statistics = EventStatisticsGen(examples=example_gen.outputs["examples"]).with_id("StatisticsGen")
    if validation.schema_file:
        schema = tfx.components.ImportSchemaGen(schema_file=validation.schema_file)
    else:
        schema = tfx.components.SchemaGen(statistics=statistics.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(statistics=statistics.outputs["statistics"],
                                                        schema=schema.outputs["schema"])
    verdict = DataValidator(statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"],
                            anomalies=example_validator.outputs["anomalies"], examples=example_gen.outputs["examples"],
                            baseline_model=resolver.outputs["model"], options=validation, span_days=span_days)
    return [statistics, schema, example_validator, verdict]


def _training_components(example_gen, resolver, validators, serving_root, model_name, sessions, ingest, training,
                         blessing, tuning, recommend, trainer_resources, gated: bool = False) -> list:
    """SessionTensors, the optional Tuner, the Trainer, SessionEvaluator, the Pusher, the optional BulkRecommender."""
    # The span's verdict reaches SessionTensors as the Cond's implicit input (fail), else as data_verdict (warn): a
    # channel that is both a Cond predicate and a named input compiles (Kubeflow V2) to a condition on a key the
    # task lacks.
    verdict = validators[-1].outputs["verdict"] if validators else None
    session_tensors = SessionTensors(examples=example_gen.outputs["examples"], options=sessions,
                                     data_verdict=verdict if verdict is not None and not gated else None)
    tuner = None  # the optional standard Tuner; its best_hyperparameters feed the Trainer
    if tuning.enabled:
        from tfx_pipeline import tuner_module  # pylint: disable=g-import-not-at-top
        tuner = tuner_module.tuner_component(session_tensors.outputs["session_tensors"], training, tuning)
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=session_tensors.outputs["session_tensors"],
        base_model=resolver.outputs["model"] if training.warm_start else None,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=[blessing.split]),
        custom_config=training.to_custom_config(),
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
    )
    if trainer_resources is not None:
        trainer.with_platform_config(trainer_resources)
    evaluator = SessionEvaluator(
        examples=session_tensors.outputs["session_tensors"],
        model=trainer.outputs["model"],
        baseline_model=resolver.outputs["model"],
        options=blessing,
    )
    pusher = pusher_component.ServingPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        baseline_model=resolver.outputs["model"],
        evaluation=evaluator.outputs["evaluation"],  # these three: what the model's report shows
        model_run=trainer.outputs["model_run"],
        data_verdict=validators[-1].outputs["verdict"] if validators else None,
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
            base_directory=serving_base_directory(serving_root, model_name))),
    ).with_id("Pusher")
    recommender = None
    if recommend is not None:
        recommender = BulkRecommender(
            model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"], options=recommend,
            ingest=ingest, sessions=sessions,
            serving_base_directory=serving_base_directory(serving_root, model_name)).with_id(RECOMMENDER_ID)
        recommender.add_upstream_node(pusher)  # after the push; no data edge (see bulk_recommender)
    return [session_tensors] + ([tuner] if tuner else []) + [trainer, evaluator, pusher] + (
        [recommender] if recommender else [])


