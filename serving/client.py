"""Python client for a GRU4Rec SavedModel served over gRPC (TF Serving, or the development server).

It speaks the signatures of :mod:`gru4rec_tf.export.signatures` (written by :mod:`~gru4rec_tf.export.saved_model`)
through
tensorflow-serving-api's ``PredictionService``: every call has a deadline, UNAVAILABLE is retried a bounded number
of times with exponential backoff and jitter, and :class:`SessionRecommender` carries a session's hidden state
between calls through the ``step`` signature, so each new event costs O(1) on the server whatever the session
length.

Example:
  >>> with GRU4RecClient("localhost:8500", "gru4rec") as client:
  ...     rec = client.recommend([[100042, 100007]], k=20)[0]      # whole session (serving_default)
  ...     session = client.session(k=20, exclude_seen=True)              # event by event (step)
  ...     for item in (100042, 100007):
  ...         rec = session.add(item)
  >>> rec.item_ids, rec.scores
"""
import dataclasses
import random
import time
from collections.abc import Sequence

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from gru4rec_tf.export import signatures

RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)


class PredictionError(Exception):
    """The server answered with an error status (``code`` is the ``grpc.StatusCode``)."""

    def __init__(self, message: str, code: grpc.StatusCode = None):
        super().__init__(message)
        self.code = code


class ServerUnavailableError(PredictionError):
    """UNAVAILABLE on every attempt: the server is down, starting, or unreachable."""


@dataclasses.dataclass
class Recommendation:
    """Top items for one session: original IDs (best first), raw scores, unknown events skipped, the new state.

    ``state`` is the GRU hidden state after the request's events (layers concatenated); pass it to
    :meth:`GRU4RecClient.step` with the next event, or let :class:`SessionRecommender` do it.
    """
    item_ids: list
    scores: list[float]
    num_unknown: int
    state: np.ndarray
    version: int | None = None  # the model version that answered (from the response's ModelSpec)

    def to_dict(self) -> dict:
        return {"item_ids": self.item_ids, "scores": self.scores, "num_unknown": self.num_unknown}


@dataclasses.dataclass
class ModelInfo:
    """What the client learns from ``GetModelMetadata``: version, ID dtype, state width."""
    version: int
    id_dtype: tf.DType
    state_size: int
    signatures: tuple

    @property
    def pad_id(self):
        return signatures.pad_id(self.id_dtype.name)


class GRU4RecClient:
    """gRPC client for one served GRU4Rec model.

    Args:
      target: ``host:port`` of the gRPC endpoint (TF Serving's ``--port``, 8500 by default).
      model_name: the model's name in TF Serving's ``models.config`` (``ModelSpec.name``).
      timeout_s: deadline of each attempt.
      max_attempts: attempts per call when the server answers UNAVAILABLE (1 = no retry).
      initial_backoff_s, max_backoff_s: the wait before retry ``i`` is ``min(max, initial·2^i)`` ± 50 % jitter.
      version: a specific model version (default: the newest the server has).

    Example:
      >>> client = GRU4RecClient("localhost:8500", "gru4rec", timeout_s=1.0, max_attempts=3)
      >>> client.recommend([["a12", "b7"]], k=10, exclude_seen=True)[0].item_ids
    """

    def __init__(self, target: str, model_name: str, *, timeout_s: float = 5.0, max_attempts: int = 4,
                 initial_backoff_s: float = 0.1, max_backoff_s: float = 2.0, version: int | None = None,
                 channel: grpc.Channel | None = None):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if initial_backoff_s < 0 or max_backoff_s < initial_backoff_s:
            raise ValueError(f"need 0 <= initial_backoff_s <= max_backoff_s, got {initial_backoff_s}, {max_backoff_s}")
        if not model_name:
            raise ValueError("model_name must not be empty")
        self.target, self.model_name, self.version = target, model_name, version
        self.timeout_s, self.max_attempts = timeout_s, max_attempts
        self.initial_backoff_s, self.max_backoff_s = initial_backoff_s, max_backoff_s
        self._channel = channel or grpc.insecure_channel(target)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._info = None

    # ---- transport -----------------------------------------------------------------------------------------------

    def _call(self, method, request):
        """Calls ``method`` with the deadline, retrying UNAVAILABLE with backoff; raises PredictionError."""
        for attempt in range(self.max_attempts):
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as err:
                code, details = err.code(), err.details()
                if code not in RETRYABLE:
                    raise PredictionError(f"{self.target}: {code.name}: {details}", code) from None
                if attempt + 1 == self.max_attempts:
                    raise ServerUnavailableError(
                        f"{self.target}: UNAVAILABLE after {self.max_attempts} attempt(s): {details}", code) from None
                time.sleep(self._backoff(attempt))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        wait = min(self.max_backoff_s, self.initial_backoff_s * 2 ** attempt)
        return wait * random.uniform(0.5, 1.5)

    def _model_spec(self, spec, signature: str = None) -> None:
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = self.version
        if signature:
            spec.signature_name = signature

    def predict(self, signature: str, inputs: dict) -> dict:
        """Raw Predict: ``{name: numpy array}`` in and out."""
        return self.predict_versioned(signature, inputs)[0]

    def predict_versioned(self, signature: str, inputs: dict) -> tuple:
        """Raw Predict: ``({name: numpy array}, the version that answered)``."""
        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, signature)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self._call(self._stub.Predict, request)
        outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
        return outputs, response.model_spec.version.value

    def info(self) -> ModelInfo:
        """Model metadata (cached after the first call)."""
        if self._info is None:
            request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            self._model_spec(request.model_spec)
            response = self._call(self._stub.GetModelMetadata, request)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signature_map)
            served = signature_map.signature_def
            if signatures.SIGNATURE_STEP not in served:
                raise PredictionError(f"{self.target}: model {self.model_name!r} has no {signatures.SIGNATURE_STEP!r} "
                                      f"signature; is it a gru4rec_tf export? Signatures: {sorted(served)}")
            step = served[signatures.SIGNATURE_STEP].inputs
            self._info = ModelInfo(version=response.model_spec.version.value,
                                   id_dtype=tf.dtypes.as_dtype(step[signatures.ITEMS].dtype),
                                   state_size=step[signatures.STATE].tensor_shape.dim[1].size,
                                   signatures=tuple(sorted(served)))
        return self._info

    # ---- conversions ---------------------------------------------------------------------------------------------

    def _ids(self, rows: Sequence[Sequence], what: str, lead_pad: bool = False) -> np.ndarray:
        """Ragged rows of IDs → a right-padded 2-D array of the model's ID dtype (padding = the pad ID).

        ``lead_pad`` prepends a pad column: TF Serving's batching pads with the tensor's first element, which must
        then be the (ignored) pad ID for ``exclude`` and ``candidates``.
        """
        info = self.info()
        rows = [([info.pad_id] if lead_pad else []) + list(r) for r in rows]
        width = max([len(r) for r in rows] + [1])
        padded = [r + [info.pad_id] * (width - len(r)) for r in rows]
        if info.id_dtype == tf.string:
            return np.array([[str(i).encode() for i in r] for r in padded], dtype=object).reshape(len(rows), width)
        try:
            return np.array([[int(i) for i in r] for r in padded], dtype=np.int64).reshape(len(rows), width)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: this model's item IDs are integers, got {rows!r}") from None

    def _results(self, out: dict, version: int | None = None) -> list[Recommendation]:
        recs = []
        for row in range(len(out[signatures.NUM_RESULTS])):
            n = int(out[signatures.NUM_RESULTS][row])
            ids = out[signatures.ITEM_IDS][row, :n]
            ids = [i.decode() for i in ids] if ids.dtype == object else [int(i) for i in ids]
            recs.append(Recommendation(ids, [float(s) for s in out[signatures.SCORES][row, :n]],
                                       int(out[signatures.NUM_UNKNOWN][row]), out[signatures.STATE][row], version))
        return recs

    @staticmethod
    def _check_k(k: int) -> None:
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")

    # ---- the signatures ------------------------------------------------------------------------------------------

    def recommend(self, sessions: Sequence[Sequence], k: int = 20, exclude_seen: bool = False,
                  candidates: Sequence[Sequence] | None = None) -> list[Recommendation]:
        """Top-k next items for whole sessions (``serving_default``, or ``serving_candidates`` with candidates)."""
        return self._results(*self.predict_versioned(*self.session_request(sessions, k, exclude_seen, candidates)))

    def step(self, items: Sequence, states: np.ndarray, k: int = 20, exclude: Sequence[Sequence] | None = None,
             candidates: Sequence[Sequence] | None = None) -> list[Recommendation]:
        """One event per session with the states of the previous call (zeros for new sessions)."""
        return self._results(*self.predict_versioned(*self.step_request(items, states, k, exclude, candidates)))

    def session_request(self, sessions: Sequence[Sequence], k: int = 20, exclude_seen: bool = False,
                        candidates: Sequence[Sequence] | None = None) -> tuple:
        """``(signature, numpy inputs)`` of :meth:`recommend` (to send with :meth:`predict`)."""
        self._check_k(k)
        inputs = {signatures.ITEMS: self._ids(sessions, "sessions"),
                  signatures.LENGTHS: np.array([len(s) for s in sessions], np.int32),
                  signatures.K: np.full(len(sessions), k, np.int32),
                  signatures.EXCLUDE_SEEN: np.full(len(sessions), bool(exclude_seen))}
        return self._with_candidates(signatures.SIGNATURE_SESSION, signatures.SIGNATURE_SESSION_CANDIDATES, inputs,
                                     candidates, len(sessions))

    def step_request(self, items: Sequence, states: np.ndarray, k: int = 20,
                     exclude: Sequence[Sequence] | None = None,
                     candidates: Sequence[Sequence] | None = None) -> tuple:
        """``(signature, numpy inputs)`` of :meth:`step` (to send with :meth:`predict`)."""
        self._check_k(k)
        states = np.asarray(states, np.float32)
        if states.shape != (len(items), self.info().state_size):
            raise ValueError(f"states must have shape ({len(items)}, {self.info().state_size}), got {states.shape}")
        if exclude is not None and len(exclude) != len(items):
            raise ValueError(f"exclude must have one list per session ({len(items)}), got {len(exclude)}")
        inputs = {signatures.ITEMS: self._ids([items], "items")[0],
                  signatures.STATE: states,
                  signatures.K: np.full(len(items), k, np.int32),
                  signatures.EXCLUDE: self._ids(exclude if exclude is not None else [[]] * len(items), "exclude",
                                       lead_pad=True)}
        return self._with_candidates(signatures.SIGNATURE_STEP, signatures.SIGNATURE_STEP_CANDIDATES, inputs,
                                     candidates, len(items))

    def _with_candidates(self, plain: str, restricted: str, inputs: dict, candidates, batch: int) -> tuple:
        if candidates is None:
            return plain, inputs
        if len(candidates) != batch:
            raise ValueError(f"candidates must have one list per session ({batch}), got {len(candidates)}")
        return restricted, {**inputs, signatures.CANDIDATES: self._ids(candidates, "candidates", lead_pad=True)}

    def new_state(self, batch: int = 1) -> np.ndarray:
        """The state of new sessions (zeros)."""
        return np.zeros([batch, self.info().state_size], np.float32)

    def session(self, k: int = 20, exclude_seen: bool = False, candidates: Sequence | None = None):
        """A :class:`SessionRecommender` for one new session."""
        return SessionRecommender(self, k=k, exclude_seen=exclude_seen, candidates=candidates)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SessionRecommender:
    """One user session served event by event through the ``step`` signature, carrying the hidden state.

    Unknown items leave the state unchanged (the server skips them). With ``exclude_seen`` the items of the session
    so far are sent as the ``exclude`` list. :meth:`reset` starts a new session (zero state).

    Example:
      >>> session = client.session(k=10, exclude_seen=True)
      >>> session.add(100042).item_ids
      >>> session.add(100007).item_ids   # conditioned on both events
    """

    def __init__(self, client: GRU4RecClient, k: int = 20, exclude_seen: bool = False,
                 candidates: Sequence | None = None):
        client._check_k(k)  # pylint: disable=protected-access
        self.client, self.k, self.exclude_seen = client, k, exclude_seen
        self.candidates = None if candidates is None else list(candidates)
        self.reset()

    def reset(self) -> None:
        self.state = self.client.new_state(1)[0]
        self.seen = []
        self.num_unknown = 0  # unknown events of the whole session so far

    def add(self, item_id) -> Recommendation:
        """Feeds one event; returns the top-k after it and keeps the new state."""
        self.seen.append(item_id)
        exclude = [self.seen] if self.exclude_seen else None
        candidates = None if self.candidates is None else [self.candidates]
        rec = self.client.step([item_id], self.state[np.newaxis], k=self.k, exclude=exclude, candidates=candidates)[0]
        self.state = rec.state
        self.num_unknown += rec.num_unknown
        return rec
