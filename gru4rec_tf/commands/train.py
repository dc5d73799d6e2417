"""``gru4rec train``: train on a session log, evaluate on a test log, save the model and the metrics.

Also the continuous-training loop of one day: ``--valid`` (evaluation after every epoch, early stopping, best epoch
kept), ``--checkpoint_dir`` (resume a killed run by running the same command again), ``--warm_start`` (continue a
saved model on new data with a changed catalogue) and ``--tensorboard_dir``.
"""
import os
import time

from absl import flags
from absl import logging

from gru4rec_tf.commands import common, option_flags
from gru4rec_tf.train.options import TrainOptions

FLAGS = flags.FLAGS


# The fields of TrainOptions that are flags of this command (jit_compile and log_every_s are for programs).
OPTION_FLAGS = ("epochs", "seed", "steps_per_call", "device_sampling", "early_stopping_metric", "patience",
                "checkpoint_dir", "checkpoint_every_s", "tensorboard_dir", "compile_cache_dir")


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines this command's flags (in ``flag_values``; the options' flags derived from their classes)."""
    fv = flag_values
    flags.DEFINE_string("train", None, "Training event log (TSV/CSV with header, or Parquet).", required=True,
                        flag_values=fv)
    flags.DEFINE_string("test", None, "Test event log, evaluated after training.", flag_values=fv)
    flags.DEFINE_string("params", "", "Hyperparameters as 'k=v,k=v' with official names (lists with '/').",
                        flag_values=fv)
    flags.DEFINE_string("params_file", None, "Parameter file (official .py paramfile, JSON, or k=v text); "
                        "--params overrides it.", flag_values=fv)
    flags.DEFINE_string("save_model", None, "Directory to save the trained model to.", flag_values=fv)
    flags.DEFINE_string("valid", None, "Validation event log, evaluated after every epoch (--eval_mode); the weights "
                        "of the best epoch are kept, and --epochs becomes the maximum.", flag_values=fv)
    flags.DEFINE_string("warm_start", None, "A saved model directory (--save_model) to start from: its GRU weights, "
                        "item rows and optimizer state carry over; new items get fresh rows.", flag_values=fv)
    flags.DEFINE_boolean("drop_items_unseen", False, "With --warm_start: drop the saved model's items that do not "
                         "occur in --train (default: keep them recommendable).", flag_values=fv)
    option_flags.define_option_flags(TrainOptions, fv, fields=OPTION_FLAGS)
    common.define_data_flags(fv)
    common.define_eval_flags(fv)


def train_options() -> TrainOptions:
    """The :class:`TrainOptions` of the flags; a ValueError names the flag at fault."""
    with option_flags.flag_wording():
        return TrainOptions(**option_flags.option_values(TrainOptions, fields=OPTION_FLAGS))


def resolve_params():
    """The hyperparameters of --params_file, --params (overriding the file) and --epochs; errors name the source."""
    from gru4rec_tf.params import GRU4RecParams  # pylint: disable=g-import-not-at-top
    params = GRU4RecParams.from_file(FLAGS.params_file) if FLAGS.params_file else GRU4RecParams()
    if FLAGS.params:
        try:
            params = (params.with_overrides(FLAGS.params) if FLAGS.params_file
                      else GRU4RecParams.from_string(FLAGS.params))
        except ValueError as err:
            raise ValueError(f"--params: {err}") from None
    if FLAGS.epochs is not None:
        try:
            params = params.with_overrides({"n_epochs": FLAGS.epochs})
        except ValueError as err:
            raise ValueError(f"--epochs: {err}") from None
    return params


def main(argv) -> None:
    del argv
    try:
        run()
    except (ValueError, OSError, FloatingPointError) as err:  # bad data, parameters or paths: one clear line
        common.fail(str(err))


def check_flags() -> None:
    """Flag combinations and paths that can be refused before anything is read or written."""
    if FLAGS.patience is not None and not FLAGS.valid:
        raise ValueError("--patience needs --valid (early stopping watches the validation metric)")
    if FLAGS.drop_items_unseen and not FLAGS.warm_start:
        raise ValueError("--drop_items_unseen needs --warm_start")
    if FLAGS.warm_start:
        common.check_model_dir(FLAGS.warm_start, flag="--warm_start")
    if FLAGS.checkpoint_dir and os.path.exists(FLAGS.checkpoint_dir) and not os.path.isdir(FLAGS.checkpoint_dir):
        raise ValueError(f"--checkpoint_dir {FLAGS.checkpoint_dir} exists and is not a directory")


def run() -> dict:
    from gru4rec_tf.data.session_data import SessionData  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.vocabulary import ItemVocabulary  # pylint: disable=g-import-not-at-top

    # Everything that can be checked without TensorFlow is checked first, so bad input fails in about a second and
    # before anything is written.
    params = resolve_params()
    evaluation = common.eval_options()
    cutoffs = evaluation.cutoffs
    check_flags()
    options = train_options()
    common.check_outputs(save_model=FLAGS.save_model, metrics_json=FLAGS.metrics_json)
    if options.compile_cache_dir:  # before TensorFlow's first operation: it reads its XLA flags once
        from gru4rec_tf.train import compile_cache  # pylint: disable=g-import-not-at-top
        compile_cache.enable(options.compile_cache_dir)
    logging.info("params: %s", params.to_string())
    train_events = common.load_events(FLAGS.train)
    test_events = common.load_events(FLAGS.test) if FLAGS.test else None
    valid_events = common.load_events(FLAGS.valid) if FLAGS.valid else None
    vocab = ItemVocabulary.from_events(train_events)
    if valid_events is not None:
        check_known_items(valid_events, vocab, FLAGS.valid)

    from gru4rec_tf.evaluation import full_catalogue

    from gru4rec_tf.model import model_dir

    from gru4rec_tf.train import routine  # pylint: disable=g-import-not-at-top
    saved = None
    if FLAGS.warm_start:
        from gru4rec_tf.train import warm_start  # pylint: disable=g-import-not-at-top
        saved = model_dir.load_model(FLAGS.warm_start)
        warm_start.check_compatible(saved.params, params)
        vocab = warm_start.warm_vocabulary(saved.vocab, vocab, drop_unseen=FLAGS.drop_items_unseen)
    train_data = SessionData.from_events(train_events, vocab)
    validation = None
    if valid_events is not None:
        validation = routine.Validation.from_options(SessionData.from_events(valid_events, vocab), options,
                                                     evaluation)
    trained = routine.train(train_data, vocab, params, options, validation=validation, warm_start=saved)
    model = trained.model
    result = trained.summary()
    if test_events is not None:
        test_data = SessionData.from_events(test_events, vocab)
        logging.info("test: %d events in %d sessions (%d events with unknown items dropped)", test_data.n_events,
                     test_data.n_sessions, test_data.n_dropped_unknown)
        start = time.perf_counter()
        metrics = full_catalogue.Evaluator(model, evaluation.eval_batch_size).evaluate(test_data, cutoffs,
                                                                                       evaluation.eval_mode)
        eval_seconds = time.perf_counter() - start
        result.update(metrics, eval_seconds=eval_seconds,
                      eval_events_per_sec=metrics["eval_events"] / eval_seconds if eval_seconds else 0.0)
        common.log_metrics(metrics, cutoffs)
    if FLAGS.save_model:
        model_dir.save_model(FLAGS.save_model, model, vocab, seed=options.seed, optimizer_state=trained.optimizer_state,
                            training={"identity": trained.identity})
        logging.info("saved the model to %s", FLAGS.save_model)
    if FLAGS.metrics_json:
        common.write_json(FLAGS.metrics_json, result)
    logging.info("done: %d epochs in %.1f s (%.0f events/s)%s", len(trained.history), trained.train_seconds,
                 result["train_events_per_sec"],
                 f", Recall@{cutoffs[-1]} {result[f'recall@{cutoffs[-1]}']:.4f}" if test_events is not None else "")
    return result


def check_known_items(events, vocab, path: str) -> None:
    """Refuses a validation log none of whose items the training data (the model) knows."""
    if not (vocab.lookup(events["ItemId"]) >= 0).any():
        raise ValueError(f"{path}: no item of this validation log occurs in --train; it cannot validate the model")
