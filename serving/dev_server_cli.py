"""``gru4rec serve``: the DEVELOPMENT gRPC server (not TF Serving) for an exported model base path.

    gru4rec serve --model_base_path /models/gru4rec --model_name gru4rec --port 8500
    gru4rec serve --model_config_file serving/models.config --model_name gru4rec --file_system_poll_wait_seconds 1

Serves the versions under ``--model_base_path`` that ``--version_policy`` names (default ``latest:1``: the newest),
or the base path and policy of ``--model_name`` in a TF Serving ``--model_config_file``, until SIGINT/SIGTERM, and
polls the base path for new versions every ``--file_system_poll_wait_seconds`` (TF Serving's flag; 0 = never).
See :mod:`serving.dev_server` for what it implements and what it does not; production deployments use TF Serving
(``serving/README.md``).
"""
import signal

from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("model_base_path", None, "Directory holding numeric version subdirectories "
                        "(<model_base_path>/<version>/saved_model.pb). Or give --model_config_file.")
    flags.DEFINE_string("model_config_file", None, "A TF Serving models.config (ModelServerConfig text): the base "
                        "path and version policy of --model_name are read from it.")
    flags.DEFINE_string("version_policy", "latest:1", "Versions to serve: latest:N, all or specific:V1,V2 (TF "
                        "Serving's model_version_policy); ignored with --model_config_file.")
    flags.DEFINE_float("file_system_poll_wait_seconds", 1.0, "Seconds between polls of the base path for new "
                       "versions (TF Serving's flag and default); 0 = load once.")
    flags.DEFINE_string("model_name", "gru4rec", "Model name clients put in ModelSpec.name.")
    flags.DEFINE_integer("port", 8500, "gRPC port (0 = pick a free one and log it).")
    flags.DEFINE_string("host", "127.0.0.1", "Address to bind; the default accepts loopback connections only.")
    flags.DEFINE_integer("max_workers", 8, "gRPC worker threads.")


def _base_path_and_policy(dev_server) -> tuple:
    if (FLAGS.model_base_path is None) == (FLAGS.model_config_file is None):
        raise ValueError("give one of --model_base_path and --model_config_file")
    if FLAGS.model_config_file:
        return dev_server.VersionPolicy.from_model_config(FLAGS.model_config_file, FLAGS.model_name)
    return FLAGS.model_base_path, dev_server.VersionPolicy.parse(FLAGS.version_policy)


def main(argv) -> None:
    del argv
    from gru4rec_tf.commands import common  # pylint: disable=g-import-not-at-top
    from serving import dev_server  # pylint: disable=g-import-not-at-top
    try:
        base_path, policy = _base_path_and_policy(dev_server)
        server = dev_server.DevModelServer(base_path, FLAGS.model_name, port=FLAGS.port, host=FLAGS.host,
                                           max_workers=FLAGS.max_workers, version_policy=policy,
                                           poll_wait_s=FLAGS.file_system_poll_wait_seconds).start()
    except (ValueError, OSError) as err:
        common.fail(str(err))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.stop())
    logging.info("DEVELOPMENT server (not TF Serving): model %r versions %s from %s on %s", server.model_name,
                 server.versions, base_path, server.target)
    print(f"serving {server.model_name} version {server.loaded.version} on {server.target}", flush=True)
    server.wait()
    logging.info("stopped")
