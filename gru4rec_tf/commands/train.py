"""``gru4rec train``: train on a session log, evaluate on a test log, save the model and the metrics."""
import time

from absl import flags
from absl import logging

from gru4rec_tf.commands import common

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("train", None, "Training event log (TSV/CSV with header, or Parquet).", required=True)
    flags.DEFINE_string("test", None, "Test event log, evaluated after training.")
    flags.DEFINE_string("params", "", "Hyperparameters as 'k=v,k=v' with official names (lists with '/').")
    flags.DEFINE_string("params_file", None, "Parameter file (official .py paramfile, JSON, or k=v text); "
                        "--params overrides it.")
    flags.DEFINE_integer("epochs", None, "Number of epochs (overrides n_epochs).")
    flags.DEFINE_string("save_model", None, "Directory to save the trained model to.")
    flags.DEFINE_integer("seed", 42, "Random seed (initialisation, sampling, dropout).")
    flags.DEFINE_integer("steps_per_call", 256, "Training steps per compiled TensorFlow call.")
    common.define_data_flags()
    common.define_eval_flags()


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


def run() -> dict:
    from gru4rec_tf.vocabulary import ItemVocabulary  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.sessions import SessionData  # pylint: disable=g-import-not-at-top

    # Everything that can be checked without TensorFlow is checked first, so bad input fails in about a second and
    # before anything is written.
    params = resolve_params()
    cutoffs = common.parse_cutoffs(FLAGS.cutoffs)
    common.check_outputs(save_model=FLAGS.save_model, metrics_json=FLAGS.metrics_json)
    logging.info("params: %s", params.to_string())
    train_events = common.load_events(FLAGS.train)
    test_events = common.load_events(FLAGS.test) if FLAGS.test else None

    from gru4rec_tf import evaluation, model_io, training  # pylint: disable=g-import-not-at-top
    vocab = ItemVocabulary.from_events(train_events)
    train_data = SessionData.from_events(train_events, vocab)
    trained = training.train(train_data, vocab, params, seed=FLAGS.seed, steps_per_call=FLAGS.steps_per_call)
    model = trained.model
    result = trained.summary()
    if test_events is not None:
        test_data = SessionData.from_events(test_events, vocab)
        logging.info("test: %d events in %d sessions (%d events with unknown items dropped)", test_data.n_events,
                     test_data.n_sessions, test_data.n_dropped_unknown)
        start = time.perf_counter()
        metrics = evaluation.Evaluator(model, FLAGS.eval_batch_size).evaluate(test_data, cutoffs, FLAGS.eval_mode)
        eval_seconds = time.perf_counter() - start
        result.update(metrics, eval_seconds=eval_seconds,
                      eval_events_per_sec=metrics["eval_events"] / eval_seconds if eval_seconds else 0.0)
        common.log_metrics(metrics, cutoffs)
    if FLAGS.save_model:
        model_io.save_model(FLAGS.save_model, model, vocab, seed=FLAGS.seed)
        logging.info("saved the model to %s", FLAGS.save_model)
    if FLAGS.metrics_json:
        common.write_json(FLAGS.metrics_json, result)
    logging.info("done: %d epochs in %.1f s (%.0f events/s)%s", len(trained.history), trained.train_seconds,
                 result["train_events_per_sec"],
                 f", Recall@{cutoffs[-1]} {result[f'recall@{cutoffs[-1]}']:.4f}" if test_events is not None else "")
    return result
