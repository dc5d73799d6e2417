"""``gru4rec generate``: write the built-in synthetic session dataset (train.tsv, test.tsv)."""
import json
import math

from absl import flags
from absl import logging

from gru4rec_tf.commands import common

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("output", None, "Directory to write train.tsv and test.tsv into.", required=True)
    flags.DEFINE_integer("n_items", 1000, "Catalogue size.")
    flags.DEFINE_integer("n_sessions", 20000, "Number of sessions.")
    flags.DEFINE_float("mean_length", 5.0, "Mean session length (events).")
    flags.DEFINE_float("test_days", 1.0, "Sessions starting in the last D days form the test split.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_integer("days", 10, "Days the sessions' start times span (day k starts 86400·k seconds after the "
                         "first day's start).")
    flags.DEFINE_integer("new_items_per_day", 0, "Release this many new items on every day after the first "
                         "(they get events from their release day on, at a popularity of the current top 10%).")
    flags.DEFINE_float("popularity_drift", 0.0, "Daily random-walk step (standard deviation) of every item's "
                       "log-popularity, so that the popularity ranking drifts from day to day; 0: no drift.")


def main(argv) -> None:
    del argv
    from gru4rec_tf.data import synthetic  # pylint: disable=g-import-not-at-top
    if FLAGS.days < 1:
        common.fail(f"--days must be >= 1, got {FLAGS.days}")
    if FLAGS.new_items_per_day < 0:
        common.fail(f"--new_items_per_day must be >= 0, got {FLAGS.new_items_per_day}")
    if not math.isfinite(FLAGS.popularity_drift) or FLAGS.popularity_drift < 0:
        common.fail(f"--popularity_drift must be a finite number >= 0, got {FLAGS.popularity_drift}")
    try:
        stats = synthetic.write_dataset(FLAGS.output, n_items=FLAGS.n_items, n_sessions=FLAGS.n_sessions,
                                        mean_length=FLAGS.mean_length, seed=FLAGS.seed, test_days=FLAGS.test_days,
                                        span_days=float(FLAGS.days), new_items_per_day=FLAGS.new_items_per_day,
                                        popularity_drift=FLAGS.popularity_drift)
    except ValueError as err:
        common.fail(str(err))
    logging.info("wrote the synthetic dataset: %s", json.dumps(stats))
