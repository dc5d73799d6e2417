"""``gru4rec evaluate``: full-catalogue evaluation of a saved model on a test log."""
import os
import time

from absl import flags
from absl import logging

from gru4rec_tf.commands import common, option_flags
from gru4rec_tf.data import contracts
from gru4rec_tf.evaluation.options import SliceOptions

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines this command's flags (in ``flag_values``; the options' flags derived from their classes)."""
    fv = flag_values
    flags.DEFINE_string("model", None, "Model directory written by 'gru4rec train --save_model'.", required=True,
                        flag_values=fv)
    flags.DEFINE_string("test", None, "Test event log.", required=True, flag_values=fv)
    common.define_data_flags(fv)
    common.define_eval_flags(fv)
    flags.DEFINE_boolean("slices", False, "Also report Recall@k and MRR@k per slice of the test events (target item "
                         "new/known, session position, target popularity) with 95% bootstrap intervals over "
                         "sessions, catalogue coverage and the popularity of the recommended items; in "
                         "--metrics_json under \"slices\".", flag_values=fv)
    flags.DEFINE_string("previous_model", None, "With --slices: the items of --model that this model directory "
                        "lacks are the 'new' items (slices target_new / target_known).", flag_values=fv)
    option_flags.define_option_flags(SliceOptions, fv)  # --eval_sample_sessions, --bootstrap_resamples, --eval_seed


def main(argv) -> None:
    del argv
    try:
        run()
    except (ValueError, OSError) as err:  # bad data, model directory or paths: one clear line, no traceback
        common.fail(str(err))


def run() -> dict:
    from gru4rec_tf.data.session_data import SessionData  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.evaluation import session_sample  # pylint: disable=g-import-not-at-top

    # Checks that need no TensorFlow first: bad input fails fast.
    evaluation = common.eval_options()
    with option_flags.flag_wording():
        slicing = SliceOptions(**option_flags.option_values(SliceOptions))
    common.check_outputs(metrics_json=FLAGS.metrics_json)
    common.check_model_dir(FLAGS.model)
    if FLAGS.previous_model:
        common.check_model_dir(FLAGS.previous_model, "--previous_model")
    test_events = session_sample.sample_sessions(common.load_events(FLAGS.test), slicing.eval_sample_sessions,
                                                 slicing.eval_seed)

    from gru4rec_tf.evaluation import full_catalogue

    from gru4rec_tf.model import model_dir  # pylint: disable=g-import-not-at-top
    saved = model_dir.load_model(FLAGS.model)
    test_data = SessionData.from_events(test_events, saved.vocab)
    logging.info("test: %d events in %d sessions (%d events with unknown items dropped)", test_data.n_events,
                 test_data.n_sessions, test_data.n_dropped_unknown)
    start = time.perf_counter()
    evaluator = full_catalogue.Evaluator(saved.model, evaluation.eval_batch_size)
    if FLAGS.slices:
        ranked = evaluator.ranked_events(test_data, evaluation.eval_mode, top_k=max(evaluation.cutoffs))
        metrics = {**full_catalogue.metrics_from_ranks(ranked.ranks, evaluation.cutoffs),
                   "eval_mode": evaluation.eval_mode, "eval_events": ranked.n_events}
    else:
        metrics = evaluator.evaluate(test_data, evaluation.cutoffs, evaluation.eval_mode)
    seconds = time.perf_counter() - start
    result = {**metrics, "n_items": len(saved.vocab), "params": saved.params.to_dict(), "eval_seconds": seconds,
              "eval_events_per_sec": metrics["eval_events"] / seconds if seconds else 0.0,
              "eval_sessions": test_data.n_sessions}
    common.log_metrics(metrics, evaluation.cutoffs)
    if FLAGS.slices:
        result.update(_slices(ranked, test_data, saved.vocab, evaluation, slicing))
    if FLAGS.metrics_json:
        common.write_json(FLAGS.metrics_json, result)
    return result


def _slices(ranked, test_data, vocab, evaluation, slicing) -> dict:
    """The slice table (printed) and the figures it adds to the metrics: ``slices``, ``coverage@K`` ..."""
    import pandas as pd  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.evaluation import slices  # pylint: disable=g-import-not-at-top
    new_items = None
    if FLAGS.previous_model:
        from gru4rec_tf.data.vocabulary import ItemVocabulary  # pylint: disable=g-import-not-at-top
        previous = ItemVocabulary.load(os.path.join(FLAGS.previous_model, contracts.MODEL_VOCAB_FILE))
        new_items = vocab.item_ids[previous.lookup(vocab.item_ids) < 0]
    popularity = pd.Series(vocab.support, index=vocab.item_ids)
    frame = slices.event_frame(ranked, test_data, vocab)
    table = slices.slice_table(frame, slices.slice_masks(frame, popularity, new_items), evaluation.cutoffs,
                               slicing.bootstrap_resamples, slicing.eval_seed)
    figures = slices.recommendation_figures(ranked.top_items, vocab.item_ids, popularity)
    k = max(evaluation.cutoffs)
    print(slices.format_table(table, k), flush=True)
    print("  ".join(f"{name} {value:.4f}" for name, value in figures.items()), flush=True)
    return {**figures, "slices": table, "bootstrap": {"resamples": slicing.bootstrap_resamples,
                                                      "seed": slicing.eval_seed, "confidence": 0.95,
                                                      "unit": "session"}}
