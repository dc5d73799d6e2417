"""``gru4rec export``: write a saved model as a TF Serving SavedModel version (:mod:`gru4rec_tf.export.saved_model`)."""
import os

from absl import flags
from absl import logging

from gru4rec_tf.commands import common

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("model", None, "Model directory written by 'gru4rec train --save_model'.", required=True)
    flags.DEFINE_string("output", None, "Version directory to write, <model_base_path>/<version> (e.g. "
                        "/models/gru4rec/1); TF Serving loads only numeric version directories.", required=True)
    flags.DEFINE_integer("max_k", 100, "Largest k a request can get (larger k are clipped).")
    flags.DEFINE_bool("warmup", True, "Write warm-up requests to assets.extra/tf_serving_warmup_requests.")
    flags.DEFINE_bool("overwrite", False, "Replace a non-empty output directory.")


def check_version_dir(path: str) -> None:
    """TF Serving ignores version directories whose name is not a non-negative integer."""
    version = os.path.basename(os.path.normpath(path))
    if not version.isdigit():
        raise ValueError(f"--output {path}: the last path component must be a numeric version (e.g. {path}/1), "
                         f"since TF Serving loads only <model_base_path>/<integer> directories")


def check_output(path: str, overwrite: bool) -> None:
    """Refuses, in this command's flags, an ``--output`` that the export would refuse (before the model loads)."""
    from gru4rec_tf.export import saved_model  # pylint: disable=g-import-not-at-top
    problem = saved_model.export_dir_problem(os.path.abspath(path), overwrite)
    if problem == saved_model.NOT_EMPTY:
        problem += "; pass --overwrite to replace it, or choose a new version directory"
    if problem:
        raise ValueError(f"--output {path} {problem}")


def main(argv) -> None:
    del argv
    try:
        run()
    except ValueError as err:
        common.fail(str(err))


def run() -> str:
    from gru4rec_tf.export import saved_model
    from gru4rec_tf.model import model_dir
    from gru4rec_tf.export import signatures  # pylint: disable=g-import-not-at-top

    check_version_dir(FLAGS.output)
    check_output(FLAGS.output, FLAGS.overwrite)
    if FLAGS.max_k < 1:
        raise ValueError(f"--max_k must be >= 1, got {FLAGS.max_k}")
    saved = model_dir.load_model(FLAGS.model)
    path = saved_model.export_saved_model(saved.model, saved.vocab, FLAGS.output, max_k=FLAGS.max_k,
                                     write_warmup=FLAGS.warmup, overwrite=FLAGS.overwrite)
    logging.info("exported %d items (%s IDs) to %s; signatures: %s", len(saved.vocab),
                 saved_model.id_dtype(saved.vocab).name, path, ", ".join(signatures.SIGNATURES))
    print(path)
    return path
