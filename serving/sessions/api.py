"""The session service's contract, without TensorFlow: the answer, the error, the limits and defaults.

The HTTP service, its client and the command line import only this module (and the store), so a client process
stays light; :mod:`serving.sessions.recommender` implements the contract.

Example:
  >>> Answer("s1", [100042, 100007], [2.5, 1.0], model_version=7).to_dict()["model_version"]
  7
"""
import dataclasses

MAX_SESSION_ID_BYTES = 256
DEFAULT_TTL_S = 3600.0  # the preprocessing's default inactivity gap (PreprocessOptions.session_gap_s)
DEFAULT_MAX_ITEMS = 200
DEFAULT_MAX_K = 100  # gru4rec export's default max_k


class ServiceError(Exception):
    """A call the service cannot answer; ``code`` is a gRPC status name (INVALID_ARGUMENT, NOT_FOUND, ...).

    Example:
      >>> ServiceError("INVALID_ARGUMENT", "k must be in [1, 100], got 0").to_dict()
      {'code': 'INVALID_ARGUMENT', 'message': 'k must be in [1, 100], got 0'}
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclasses.dataclass
class Answer:
    """The top-k for a session so far, and which model version gave it.

    Example:
      >>> Answer("s1", [100042], [1.5], 3).to_dict()
      {'session_id': 's1', 'item_ids': [100042], 'scores': [1.5], 'model_version': 3}
    """
    session_id: str
    item_ids: list
    scores: list
    model_version: int
    new_session: bool = False
    replayed: bool = False
    num_unknown: int = 0

    def to_dict(self) -> dict:
        return {"session_id": self.session_id, "item_ids": self.item_ids, "scores": self.scores,
                "model_version": self.model_version}
