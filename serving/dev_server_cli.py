"""``gru4rec serve``: the DEVELOPMENT gRPC server (not TF Serving) for an exported model base path.

    gru4rec serve --model_base_path /models/gru4rec --model_name gru4rec --port 8500

Serves the newest numeric version under ``--model_base_path`` until SIGINT/SIGTERM. See :mod:`serving.dev_server`
for what it implements and what it does not; production deployments use TF Serving (``serving/README.md``).
"""
import signal

from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("model_base_path", None, "Directory holding numeric version subdirectories "
                        "(<model_base_path>/<version>/saved_model.pb).", required=True)
    flags.DEFINE_string("model_name", "gru4rec", "Model name clients put in ModelSpec.name.")
    flags.DEFINE_integer("port", 8500, "gRPC port (0 = pick a free one and log it).")
    flags.DEFINE_string("host", "127.0.0.1", "Address to bind; the default accepts loopback connections only.")
    flags.DEFINE_integer("max_workers", 8, "gRPC worker threads.")


def main(argv) -> None:
    del argv
    from gru4rec_tf.commands import common  # pylint: disable=g-import-not-at-top
    from serving import dev_server  # pylint: disable=g-import-not-at-top
    try:
        server = dev_server.DevModelServer(FLAGS.model_base_path, FLAGS.model_name, port=FLAGS.port,
                                           host=FLAGS.host, max_workers=FLAGS.max_workers).start()
    except ValueError as err:
        common.fail(str(err))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.stop())
    logging.info("DEVELOPMENT server (not TF Serving): model %r version %d from %s on %s", server.model_name,
                 server.loaded.version, server.loaded.path, server.target)
    print(f"serving {server.model_name} version {server.loaded.version} on {server.target}", flush=True)
    server.wait()
    logging.info("stopped")
