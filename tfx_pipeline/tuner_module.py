"""The standard TFX ``Tuner``'s module: ``tuner_fn`` returns the library's KerasTuner tuner (one implementation
with ``gru4rec tune``), and :func:`tuned_params` is how the Trainer's ``run_fn`` reads ``best_hyperparameters``.

Referenced by name (``Tuner(tuner_fn="tfx_pipeline.tuner_module.tuner_fn", ...)``). ``custom_config``::

    {"params": "<the Trainer's k=v string: the fixed parameters>", "seed": 42,
     "tuning": "<TuningOptions JSON>", "steps_per_call": 256}

The tuner trains on the ``train`` split's sessions before its last ``valid_days`` days and validates on those
days (:class:`tfx_pipeline.tuning_options.TuningOptions`); the study lives in the component's working directory,
and TFX's cache reuses the result when the session tensors and the options are unchanged.
"""
import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from absl import logging

from tfx_pipeline import session_data
from tfx_pipeline.tuning_options import TuningOptions

TUNER_FN = "tfx_pipeline.tuner_module.tuner_fn"
# The Trainer's training settings (fields of gru4rec_tf.train.options.TrainOptions) that the trials use too.
TRAINING_FIELDS = ("seed", "steps_per_call")


def tuner_component(session_tensors, training_options, tuning: TuningOptions):
    """The standard ``Tuner`` component for these options (TFX imported here)."""
    from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
    base = training_options.gru4rec_params()
    space = tuning.search_space(base.loss)
    space.check(base)  # a bad space or initial_params fails when the pipeline is built
    initial_configurations(tuning, space, base)
    return tfx.components.Tuner(
        tuner_fn=TUNER_FN, examples=session_tensors,
        train_args=tfx.proto.TrainArgs(splits=["train"]), eval_args=tfx.proto.EvalArgs(splits=["train"]),
        custom_config={"params": base.to_string(),
                       **{name: getattr(training_options, name) for name in TRAINING_FIELDS},
                       "tuning": tuning.to_json()})


def split_for_tuning(events, valid_days: float):
    """``(vocab, train SessionData, valid SessionData)``: the last ``valid_days`` days of ``events`` validate."""
    from gru4rec_tf.data import synthetic  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.session_data import SessionData  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.vocabulary import ItemVocabulary  # pylint: disable=g-import-not-at-top
    train_events, valid_events = synthetic.train_test_split_by_time(events, test_days=valid_days)
    if len(train_events) == 0 or len(valid_events) == 0:
        raise ValueError(f"tuning: holding out the last {valid_days:g} day(s) of the train split leaves "
                         f"{len(train_events)} training and {len(valid_events)} validation events; change "
                         "valid_days (--tune_valid_days)")
    vocab = ItemVocabulary.from_events(train_events)
    return vocab, SessionData.from_events(train_events, vocab), SessionData.from_events(valid_events, vocab)


def initial_configurations(options: TuningOptions, space, base) -> list:
    """The study's first searched values (``options.initial_params``); skipped portfolio entries are logged."""
    from gru4rec_tf.tune.portfolio import resolve_initial  # pylint: disable=g-import-not-at-top
    entries, skipped = resolve_initial(options.initial_params, space, base)
    for name, reason in skipped:
        logging.warning("Tuner: portfolio entry %s skipped: %s", name, reason)
    return [values for _, values in entries]


def tuner_fn(fn_args):
    """TFX Tuner entry point: ``TunerFnResult(tuner=GRU4RecTuner, fit_kwargs={train_data, valid_data, vocab})``."""
    from tfx.components.tuner.component import TunerFnResult  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.tune import tuner as tuner_lib  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.params import GRU4RecParams  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.train.options import TrainOptions  # pylint: disable=g-import-not-at-top

    config = fn_args.custom_config or {}
    options = TuningOptions.from_json(config["tuning"])
    base = GRU4RecParams.from_string(config["params"])
    space = options.search_space(base.loss)
    space.check(base)
    tensors_uri = session_data.tensors_uri_from_file_patterns(fn_args.train_files)
    events = session_data.read_events(tensors_uri, "train")
    vocab, train, valid = split_for_tuning(events, options.valid_days)
    logging.info("Tuner: %d trials x %d epochs on %d events, validating on %d events (last %g day(s) of the "
                 "train split), objective %s", options.trials, options.epochs, train.n_events, valid.n_events,
                 options.valid_days, options.objective)
    tuner = tuner_lib.GRU4RecTuner(
        base, space, options.objective, options.epochs, max_trials=options.trials,
        directory=f"{fn_args.working_dir.rstrip('/')}/{tuner_lib.PROJECT}", algorithm=options.algorithm,
        seed=options.seed, prune_after=options.prune_after, rungs=options.rungs, eta=options.eta,
        initial=initial_configurations(options, space, base),
        training=TrainOptions(**{name: int(config[name]) for name in TRAINING_FIELDS if name in config}))
    return TunerFnResult(tuner=tuner, fit_kwargs={"train_data": train, "valid_data": valid, "vocab": vocab})


def tuned_params(params, hyperparameters):
    """``params`` replaced by the tuned ones when the Trainer got ``best_hyperparameters`` (TFX convention).

    ``hyperparameters``: ``fn_args.hyperparameters`` (a KerasTuner ``HyperParameters`` config, or None). The tuned
    parameters carry the fixed ones and the best trial's epoch count.
    """
    if not hyperparameters:
        return params
    from gru4rec_tf.tune.search_space import params_from_values  # pylint: disable=g-import-not-at-top
    values = hyperparameters.get("values", hyperparameters)
    tuned = params_from_values(values)
    logging.info("Trainer: tuned hyperparameters %s", tuned.to_string())
    return tuned
