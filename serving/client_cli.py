"""``gru4rec predict``: top-k next items for one session from a served model, printed as one JSON object.

    gru4rec predict --server localhost:8500 --model gru4rec --items 100042,100007 --k 20
    {"item_ids": [...], "scores": [...], "num_unknown": 0, "model": "gru4rec", "version": 1, "signature": ...}

``--mode session`` (default) sends the whole session to ``serving_default``; ``--mode step`` feeds the events one by
one through the ``step`` signature, carrying the hidden state (the result is the same).
"""
import json

from absl import flags

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("server", "localhost:8500", "gRPC endpoint host:port.")
    flags.DEFINE_string("model", "gru4rec", "Model name (ModelSpec.name).")
    flags.DEFINE_list("items", None, "The session's item IDs so far, oldest first, comma-separated.", required=True)
    flags.DEFINE_integer("k", 20, "Number of recommendations.")
    flags.DEFINE_bool("exclude_seen", False, "Do not recommend the session's own items.")
    flags.DEFINE_list("candidates", None, "Rank only these item IDs.")
    flags.DEFINE_enum("mode", "session", ["session", "step"], "Whole session at once, or event by event.")
    flags.DEFINE_integer("version", None, "A specific model version (default: the newest).")
    flags.DEFINE_float("timeout", 5.0, "Deadline of each attempt, seconds.")
    flags.DEFINE_integer("attempts", 4, "Attempts when the server is UNAVAILABLE.")


def check_flags() -> None:
    """Refuses, in this command's flags, values the client would refuse in its own argument names."""
    if FLAGS.k < 1:
        raise ValueError(f"--k must be >= 1, got {FLAGS.k}")
    if not FLAGS.timeout > 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {FLAGS.timeout}")
    if FLAGS.attempts < 1:
        raise ValueError(f"--attempts must be >= 1, got {FLAGS.attempts}")


def run() -> dict:
    from serving import client as client_lib  # pylint: disable=g-import-not-at-top
    check_flags()
    with client_lib.GRU4RecClient(FLAGS.server, FLAGS.model, timeout_s=FLAGS.timeout, max_attempts=FLAGS.attempts,
                                  version=FLAGS.version) as client:
        if FLAGS.mode == "session":
            candidates = None if FLAGS.candidates is None else [FLAGS.candidates]
            rec = client.recommend([FLAGS.items], k=FLAGS.k, exclude_seen=FLAGS.exclude_seen,
                                   candidates=candidates)[0]
        else:
            session = client.session(k=FLAGS.k, exclude_seen=FLAGS.exclude_seen, candidates=FLAGS.candidates)
            for item in FLAGS.items:
                rec = session.add(item)
            rec.num_unknown = session.num_unknown
        signature = {("session", False): "serving_default", ("session", True): "serving_candidates",
                     ("step", False): "step", ("step", True): "step_candidates"}[
                         FLAGS.mode, FLAGS.candidates is not None]
        return {**rec.to_dict(), "model": FLAGS.model, "version": client.info().version, "signature": signature}


def main(argv) -> None:
    del argv
    from gru4rec_tf.commands import common  # pylint: disable=g-import-not-at-top
    from serving import client as client_lib  # pylint: disable=g-import-not-at-top
    try:
        result = run()
    except (ValueError, client_lib.PredictionError) as err:
        common.fail(str(err))
    print(json.dumps(result))
