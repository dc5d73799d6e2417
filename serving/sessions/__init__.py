"""Live sessions: a session service on top of a served GRU4Rec (TF Serving, or the development server).

TF Serving is stateless; the ``step`` signature needs the caller to keep each session's hidden state. This package
keeps it, shared by several service processes, and ties every state to the model version that produced it:

* :mod:`serving.sessions.store`: the per-session record (pinned model version, state, items, last-seen time) and
  where it lives: in process memory (:class:`~serving.sessions.store.MemoryStore`) or in Redis
  (:class:`~serving.sessions.store.RedisStore`), with atomic compare-and-set updates.
* :mod:`serving.sessions.recommender`: :class:`~serving.sessions.recommender.SessionRecommender`, the Python API:
  an event in, the top-k for the session so far out; a session whose pinned version is gone is replayed through
  ``serving_default`` of the current version.
* :mod:`serving.sessions.http_service`: the HTTP/JSON service on it and its client; :mod:`.metrics` its
  Prometheus metrics; :mod:`.replay` streams a click log through the service; :mod:`.cli` is
  ``gru4rec sessions serve|event|replay``.
"""
