"""Serving GRU4Rec: TF Serving deployment files, a gRPC client and a DEVELOPMENT server.

* ``serving/models.config``, ``batching_parameters.txt``, ``monitoring.config``, ``Dockerfile`` and
  ``docker-compose.yml``: the production deployment on the official ``tensorflow/serving`` GPU image (README.md).
* :mod:`serving.client`: Python client over tensorflow-serving-api (deadlines, retries, a session object that carries
  the GRU hidden state through the ``step`` signature); ``gru4rec predict`` is its command line.
* :mod:`serving.dev_server`: a small in-process implementation of the gRPC ``PredictionService`` for development
  and tests (``gru4rec serve``), with TF Serving's version policy and polling of the base path. It is **not**
  TensorFlow Serving: no batching, no GPU tuning, no warm-up.
* :mod:`serving.sessions`: the live-session service (``gru4rec sessions serve|event|replay``): each session's state
  kept in memory or Redis and pinned to the model version that produced it.

The SavedModel itself comes from :func:`gru4rec_tf.export.saved_model.export_saved_model` (``gru4rec export``).
"""
