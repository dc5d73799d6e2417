"""``gru4rec evaluate``: full-catalogue evaluation of a saved model on a test log."""
import time

from absl import flags
from absl import logging

from gru4rec_tf.commands import common

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines this command's flags (in ``flag_values``; the options' flags derived from their classes)."""
    fv = flag_values
    flags.DEFINE_string("model", None, "Model directory written by 'gru4rec train --save_model'.", required=True,
                        flag_values=fv)
    flags.DEFINE_string("test", None, "Test event log.", required=True, flag_values=fv)
    common.define_data_flags(fv)
    common.define_eval_flags(fv)


def main(argv) -> None:
    del argv
    try:
        run()
    except (ValueError, OSError) as err:  # bad data, model directory or paths: one clear line, no traceback
        common.fail(str(err))


def run() -> dict:
    from gru4rec_tf.data.session_data import SessionData  # pylint: disable=g-import-not-at-top

    # Checks that need no TensorFlow first: bad input fails fast.
    evaluation = common.eval_options()
    common.check_outputs(metrics_json=FLAGS.metrics_json)
    common.check_model_dir(FLAGS.model)
    test_events = common.load_events(FLAGS.test)

    from gru4rec_tf.evaluation import full_catalogue

    from gru4rec_tf.model import model_dir  # pylint: disable=g-import-not-at-top
    saved = model_dir.load_model(FLAGS.model)
    test_data = SessionData.from_events(test_events, saved.vocab)
    logging.info("test: %d events in %d sessions (%d events with unknown items dropped)", test_data.n_events,
                 test_data.n_sessions, test_data.n_dropped_unknown)
    start = time.perf_counter()
    metrics = full_catalogue.Evaluator(saved.model, evaluation.eval_batch_size).evaluate(
        test_data, evaluation.cutoffs, evaluation.eval_mode)
    seconds = time.perf_counter() - start
    result = {**metrics, "n_items": len(saved.vocab), "params": saved.params.to_dict(), "eval_seconds": seconds,
              "eval_events_per_sec": metrics["eval_events"] / seconds if seconds else 0.0}
    common.log_metrics(metrics, evaluation.cutoffs)
    if FLAGS.metrics_json:
        common.write_json(FLAGS.metrics_json, result)
    return result
