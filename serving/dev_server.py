"""A DEVELOPMENT gRPC server for exported GRU4Rec SavedModels — NOT TensorFlow Serving.

TF Serving cannot be installed on the development machines (it is neither on PyPI nor in Debian), so this module
implements the part of its gRPC API that the client uses — ``PredictionService.Predict``, ``GetModelMetadata`` and
``ModelService.GetModelStatus`` — over SavedModels loaded in-process with ``tf.saved_model.load``. Like TF Serving
it serves the numeric versions under the model base path that its **version policy** names (:class:`VersionPolicy`:
``latest`` N, ``all`` or ``specific``, TF Serving's ``model_version_policy``, also read from a ``models.config``),
**polls** the base path for new versions every ``poll_wait_s`` seconds (TF Serving's
``--file_system_poll_wait_seconds``), loads the versions the policy names, unloads the others, and answers a request
for a version that is not loaded with ``NOT_FOUND``. A request without a version goes to the newest loaded one.
Bad requests are answered the way TF Serving does (``INVALID_ARGUMENT`` for wrong inputs, dtypes or shapes;
``FAILED_PRECONDITION`` for an unknown signature; ``NOT_FOUND`` for an unknown model or version).

What it does not do: server-side batching, GPU placement tuning, warm-up requests, REST, monitoring, several
models. Use it for development, tests and the load benchmark's baseline; deploy with TF Serving
(``serving/README.md``).

Example:
  >>> server = DevModelServer("/models/gru4rec", "gru4rec", port=0).start()
  >>> server.port    # the bound port (0 picks a free one)
  >>> server.stop()
"""
import concurrent.futures
import dataclasses
import os
import threading

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from gru4rec_tf.export import signatures

DEFAULT_SIGNATURE = signatures.SIGNATURE_SESSION
_OP_ERROR_CODES = {  # tf.errors codes are the canonical gRPC codes
    code.value[0]: code for code in grpc.StatusCode
}


class RequestError(Exception):
    """A request the server rejects; carries the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def available_versions(model_base_path: str) -> list:
    """The numeric subdirectories of ``model_base_path`` holding a ``saved_model.pb``, ascending."""
    if not os.path.isdir(model_base_path):
        raise ValueError(f"model base path {model_base_path} is not a directory")
    return sorted(int(name) for name in os.listdir(model_base_path)
                  if name.isdigit() and os.path.isfile(os.path.join(model_base_path, name, "saved_model.pb")))


def latest_version(model_base_path: str) -> tuple:
    """``(version, path)`` of the largest numeric subdirectory of ``model_base_path`` (TF Serving's default)."""
    versions = available_versions(model_base_path)
    if not versions:
        raise ValueError(f"no version under {model_base_path}: expected <model_base_path>/<integer>/saved_model.pb "
                         f"(write one with 'gru4rec export --output {model_base_path}/1')")
    version = max(versions)
    return version, os.path.join(model_base_path, str(version))


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which versions to serve: TF Serving's ``model_version_policy`` (``latest`` N, ``all``, ``specific``).

    Example:
      >>> VersionPolicy.parse("latest:2").select([1, 3, 7])
      [3, 7]
      >>> VersionPolicy.parse("specific:1,7").select([1, 3, 7])
      [1, 7]
      >>> VersionPolicy.parse("all").select([1, 3])
      [1, 3]
    """
    kind: str = "latest"
    num_versions: int = 1
    versions: tuple = ()

    def __post_init__(self):
        if self.kind not in ("latest", "all", "specific"):
            raise ValueError(f"version policy must be latest, all or specific, got {self.kind!r}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"latest policy needs num_versions >= 1, got {self.num_versions}")
        if self.kind == "specific" and not self.versions:
            raise ValueError("specific policy needs at least one version")

    @classmethod
    def parse(cls, text: str) -> "VersionPolicy":
        """``latest:N``, ``all`` or ``specific:V1,V2`` (the ``--version_policy`` flag); ValueError otherwise."""
        kind, _, arg = text.partition(":")
        try:
            if kind == "latest":
                return cls("latest", int(arg or 1))
            if kind == "specific":
                return cls("specific", versions=tuple(sorted(int(v) for v in arg.split(","))))
        except ValueError:
            pass
        else:
            if kind == "all" and not arg:
                return cls("all")
        raise ValueError(f"version policy must be latest:N, all or specific:V1,V2, got {text!r}")

    @classmethod
    def from_model_config(cls, path: str, model_name: str) -> tuple:
        """``(base_path, policy)`` of ``model_name`` in a TF Serving ``models.config`` (ModelServerConfig text)."""
        from tensorflow_serving.config import model_server_config_pb2  # pylint: disable=g-import-not-at-top
        with open(path, encoding="utf-8") as f:
            try:
                config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
            except text_format.ParseError as err:
                raise ValueError(f"{path}: not a ModelServerConfig: {err}") from None
        models = {model.name: model for model in config.model_config_list.config}
        if model_name not in models:
            raise ValueError(f"{path}: no model named {model_name!r} (models: {sorted(models)})")
        policy = models[model_name].model_version_policy
        which = policy.WhichOneof("policy_choice")
        if which == "all":
            return models[model_name].base_path, cls("all")
        if which == "specific":
            return models[model_name].base_path, cls("specific", versions=tuple(sorted(policy.specific.versions)))
        return models[model_name].base_path, cls("latest", policy.latest.num_versions if which else 1)

    def select(self, available) -> list:
        available = sorted(available)
        if self.kind == "all":
            return available
        if self.kind == "specific":
            return [v for v in available if v in self.versions]
        return available[-self.num_versions:]


class LoadedVersion:
    """One SavedModel version: its signature functions and SignatureDefs.

    Example:
      >>> version = LoadedVersion(*latest_version("/models/gru4rec"))
      >>> version.run("serving_default", {"items": ..., "lengths": ..., "k": ..., "exclude_seen": ...})
    """

    def __init__(self, version: int, path: str):
        self.version, self.path = version, path
        self._saved = tf.saved_model.load(path)
        self.functions = dict(self._saved.signatures)
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        self.signature_defs = proto.meta_graphs[0].signature_def

    def input_specs(self, signature: str) -> dict:
        """``{input name: tf.TensorSpec}`` of a signature."""
        return self.functions[signature].structured_input_signature[1]

    def run(self, signature: str, inputs: dict) -> dict:
        """Runs a signature on numpy inputs; returns numpy outputs."""
        tensors = {name: tf.constant(value) for name, value in inputs.items()}
        return {name: value.numpy() for name, value in self.functions[signature](**tensors).items()}


def _check_inputs(specs: dict, request_inputs) -> dict:
    """Request TensorProtos → numpy arrays checked against the signature; raises RequestError(INVALID_ARGUMENT)."""
    sent, expected = set(request_inputs.keys()), set(specs)
    if sent != expected:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input size does not match signature: {len(sent)}!={len(expected)} "
                           f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                           f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
                           f"Missing but required: {{{','.join(sorted(expected - sent))}}}.")
    arrays = {}
    for name, spec in specs.items():
        proto = request_inputs[name]
        if proto.dtype != spec.dtype.as_datatype_enum:
            got = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "an unset dtype"
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{name}' must be {spec.dtype.name}, got {got}")
        try:
            value = tf.make_ndarray(proto)
        except Exception as err:  # malformed TensorProto (content size and shape disagree, ...)
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' is malformed: {err}") from None
        if not spec.shape.is_compatible_with(value.shape):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{name}' has shape {list(value.shape)}, the signature expects "
                               f"{spec.shape.as_list()} (None = any size)")
        arrays[name] = value
    batch_sizes = {name: value.shape[0] for name, value in arrays.items()}
    if len(set(batch_sizes.values())) > 1:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"all inputs must have the same 0th (batch) dimension, got {batch_sizes}")
    return arrays


class DevPredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer,
                            model_service_pb2_grpc.ModelServiceServicer):
    """``Predict``, ``GetModelMetadata`` and ``GetModelStatus`` over the loaded versions. Never raises to gRPC.

    ``versions`` is one :class:`LoadedVersion`, or a function returning ``{version: LoadedVersion}`` (the server's
    current set, which its polling replaces).

    Example:
      >>> servicer = DevPredictionServicer("gru4rec", LoadedVersion(*latest_version("/models/gru4rec")))
    """

    def __init__(self, model_name: str, versions):
        self.model_name = model_name
        self._versions = versions if callable(versions) else (lambda: {versions.version: versions})

    def _resolve(self, spec) -> LoadedVersion:
        """The version a request's ModelSpec names (the newest loaded when it names none)."""
        if spec.name != self.model_name:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
        if spec.HasField("version_label"):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "version labels are not supported by the "
                               "development server (TF Serving needs them in models.config)")
        versions = self._versions()
        if spec.HasField("version"):
            if spec.version.value not in versions:
                raise RequestError(grpc.StatusCode.NOT_FOUND,
                                   f"Servable not found for request: Specific({spec.name}, {spec.version.value})")
            return versions[spec.version.value]
        if not versions:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
        return versions[max(versions)]

    def _fill_spec(self, spec, loaded: LoadedVersion, signature_name: str = None) -> None:
        spec.name = self.model_name
        spec.version.value = loaded.version
        if signature_name is not None:
            spec.signature_name = signature_name

    def _predict(self, request) -> predict_pb2.PredictResponse:
        loaded = self._resolve(request.model_spec)
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature not in loaded.functions:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'Serving signature key "{signature}" not found. '
                               f"Available: {sorted(loaded.functions)}")
        inputs = _check_inputs(loaded.input_specs(signature), request.inputs)
        try:
            outputs = loaded.run(signature, inputs)
        except tf.errors.OpError as err:
            raise RequestError(_OP_ERROR_CODES.get(err.error_code, grpc.StatusCode.INTERNAL), err.message) from None
        wanted = list(request.output_filter) or list(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown or len(set(wanted)) != len(wanted):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"bad output_filter {list(wanted)}: outputs "
                               f"must be distinct names from {sorted(outputs)}")
        response = predict_pb2.PredictResponse()
        self._fill_spec(response.model_spec, loaded, signature)
        for name in wanted:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(outputs[name])))
        return response

    def _metadata(self, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
        loaded = self._resolve(request.model_spec)
        unsupported = [f for f in request.metadata_field if f != "signature_def"]
        if unsupported or not request.metadata_field:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Metadata field {unsupported[0] if unsupported else '(none)'} is not supported; "
                               f"ask for 'signature_def'")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        self._fill_spec(response.model_spec, loaded)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in loaded.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def _status(self, request) -> get_model_status_pb2.GetModelStatusResponse:
        """The requested version's status, or every loaded version's (newest first) when none is named."""
        spec = request.model_spec
        chosen = [self._resolve(spec)] if spec.HasField("version") else None
        if chosen is None:
            self._resolve(spec)  # the model name's check
            chosen = [v for _, v in sorted(self._versions().items(), reverse=True)]
        response = get_model_status_pb2.GetModelStatusResponse()
        for loaded in chosen:
            status = response.model_version_status.add()
            status.version = loaded.version
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response

    @staticmethod
    def _answer(handler, request, context, empty):
        try:
            return handler(request)
        except RequestError as err:
            context.set_code(err.code)
            context.set_details(str(err))
        except Exception as err:  # pylint: disable=broad-except  (never let a request take the server down)
            context.set_code(grpc.StatusCode.INTERNAL)
            context.set_details(f"{type(err).__name__}: {err}")
        return empty

    def Predict(self, request, context):  # noqa: N802  (gRPC method name)
        return self._answer(self._predict, request, context, predict_pb2.PredictResponse())

    def GetModelMetadata(self, request, context):  # noqa: N802
        return self._answer(self._metadata, request, context, get_model_metadata_pb2.GetModelMetadataResponse())

    def GetModelStatus(self, request, context):  # noqa: N802
        return self._answer(self._status, request, context, get_model_status_pb2.GetModelStatusResponse())


class DevModelServer:
    """The development server: the versions under ``model_base_path`` that ``version_policy`` names, on
    ``host:port`` (0 = a free port).

    NOT TensorFlow Serving (see the module docstring). Binds to loopback by default. With ``poll_wait_s`` > 0 a
    thread calls :meth:`poll` that often (TF Serving's ``--file_system_poll_wait_seconds``); tests call it
    directly.

    Example:
      >>> with DevModelServer("/models/gru4rec", "gru4rec", port=8500, version_policy=VersionPolicy("latest", 2),
      ...                     poll_wait_s=1.0) as server:
      ...     server.wait()
    """

    def __init__(self, model_base_path: str, model_name: str, port: int = 8500, host: str = "127.0.0.1",
                 max_workers: int = 8, version_policy: VersionPolicy | None = None, poll_wait_s: float = 0.0):
        if not model_name:
            raise ValueError("model_name must not be empty")
        if not 0 <= port < 65536:
            raise ValueError(f"port must be in [0, 65535], got {port}")
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        if not poll_wait_s >= 0:
            raise ValueError(f"poll_wait_s must be >= 0 (0 = no polling), got {poll_wait_s}")
        self.model_base_path, self.model_name, self.host, self.requested_port = (model_base_path, model_name, host,
                                                                                  port)
        self.policy = version_policy or VersionPolicy()
        self.poll_wait_s = poll_wait_s
        self._versions = {}
        self._poll_lock = threading.Lock()
        self.poll()
        if not self._versions:
            latest_version(model_base_path)  # raises the "no version under" error
            raise ValueError(f"no version under {model_base_path} matches the version policy {self.policy}")
        self.servicer = DevPredictionServicer(model_name, lambda: self._versions)
        self._max_workers = max_workers
        self._server = None
        self.port = None
        self._stopped = threading.Event()
        self._poller = None

    @property
    def loaded(self) -> LoadedVersion:
        """The newest loaded version (what a request without a version gets)."""
        versions = self._versions
        return versions[max(versions)]

    @property
    def versions(self) -> list:
        """The loaded version numbers, ascending."""
        return sorted(self._versions)

    def poll(self) -> tuple:
        """Loads the versions the policy names that are not loaded, unloads the others; ``(loaded, unloaded)``.

        A version that fails to load is logged and skipped (the others keep serving); if no version is available
        at all, the loaded ones stay (a base path emptied by mistake does not take the model down).
        """
        with self._poll_lock:
            try:
                wanted = self.policy.select(available_versions(self.model_base_path))
            except (OSError, ValueError) as err:
                logging.warning("dev server: cannot list %s: %s", self.model_base_path, err)
                return [], []
            if not wanted:
                return [], []
            current, versions = self._versions, {}
            for version in wanted:
                if version in current:
                    versions[version] = current[version]
                    continue
                try:
                    versions[version] = LoadedVersion(version, os.path.join(self.model_base_path, str(version)))
                except Exception as err:  # pylint: disable=broad-except  (a bad version must not stop the others)
                    logging.error("dev server: version %d failed to load: %s", version, err)
            if not versions:
                return [], []
            self._versions = versions  # one assignment: requests see the old set or the new one
            loaded, unloaded = sorted(set(versions) - set(current)), sorted(set(current) - set(versions))
            for version in loaded:
                logging.info("dev server: loaded %s version %d", self.model_name, version)
            for version in unloaded:
                logging.info("dev server: unloaded %s version %d", self.model_name, version)
            return loaded, unloaded

    def _poll_loop(self) -> None:
        while not self._stopped.wait(self.poll_wait_s):
            self.poll()

    def start(self) -> "DevModelServer":
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=self._max_workers),
                                   options=[("grpc.so_reuseport", 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(self.servicer, self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(self.servicer, self._server)
        self.port = self._server.add_insecure_port(f"{self.host}:{self.requested_port}")
        if self.port == 0:
            raise ValueError(f"cannot bind {self.host}:{self.requested_port}")
        self._server.start()
        if self.poll_wait_s > 0:
            self._poller = threading.Thread(target=self._poll_loop, name="dev-server-poll", daemon=True)
            self._poller.start()
        return self

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, grace_s: float = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace_s).wait()
            self._server = None
        self._stopped.set()
        if self._poller is not None:
            self._poller.join(timeout=60)
            self._poller = None

    def wait(self, timeout_s: float = None) -> bool:
        """Blocks until :meth:`stop` (or the timeout); True when stopped."""
        return self._stopped.wait(timeout_s)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
