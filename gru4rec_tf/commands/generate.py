"""``gru4rec generate``: write the built-in synthetic session dataset (train.tsv, test.tsv)."""
import json

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


def main(argv) -> None:
    del argv
    from gru4rec_tf import synthetic  # pylint: disable=g-import-not-at-top
    try:
        stats = synthetic.write_dataset(FLAGS.output, n_items=FLAGS.n_items, n_sessions=FLAGS.n_sessions,
                                        mean_length=FLAGS.mean_length, seed=FLAGS.seed, test_days=FLAGS.test_days)
    except ValueError as err:
        common.fail(str(err))
    logging.info("wrote the synthetic dataset: %s", json.dumps(stats))
