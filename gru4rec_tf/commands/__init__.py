"""Subcommands of the ``gru4rec`` command line (see :mod:`gru4rec_tf.__main__`)."""
