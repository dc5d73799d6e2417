"""A DEVELOPMENT gRPC server for exported GRU4Rec SavedModels — NOT TensorFlow Serving.

TF Serving cannot be installed on the development machines (it is neither on PyPI nor in Debian), so this module
implements the part of its gRPC API that the client uses — ``PredictionService.Predict``, ``GetModelMetadata`` and
``ModelService.GetModelStatus`` — over a SavedModel loaded in-process with ``tf.saved_model.load``. It serves the
newest numeric version under the model base path, as TF Serving does with its default version policy, and answers
bad requests the way TF Serving does (``INVALID_ARGUMENT`` for wrong inputs, dtypes or shapes;
``FAILED_PRECONDITION`` for an unknown signature; ``NOT_FOUND`` for an unknown model or version).

What it does not do: server-side batching, GPU placement tuning, version polling and hot reload, model config
files, REST, monitoring. Use it for development, tests and the load benchmark's baseline; deploy with TF Serving
(``serving/README.md``).

Example:
  >>> server = DevModelServer("/models/gru4rec", "gru4rec", port=0).start()
  >>> server.port    # the bound port (0 picks a free one)
  >>> server.stop()
"""
import concurrent.futures
import os
import threading

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import grpc
import numpy as np
import tensorflow as tf
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


def latest_version(model_base_path: str) -> tuple:
    """``(version, path)`` of the largest numeric subdirectory of ``model_base_path`` (TF Serving's default)."""
    if not os.path.isdir(model_base_path):
        raise ValueError(f"model base path {model_base_path} is not a directory")
    versions = [int(name) for name in os.listdir(model_base_path)
                if name.isdigit() and os.path.isfile(os.path.join(model_base_path, name, "saved_model.pb"))]
    if not versions:
        raise ValueError(f"no version under {model_base_path}: expected <model_base_path>/<integer>/saved_model.pb "
                         f"(write one with 'gru4rec export --output {model_base_path}/1')")
    version = max(versions)
    return version, os.path.join(model_base_path, str(version))


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
    """``Predict``, ``GetModelMetadata`` and ``GetModelStatus`` over one loaded version. Never raises to gRPC.

    Example:
      >>> servicer = DevPredictionServicer("gru4rec", LoadedVersion(*latest_version("/models/gru4rec")))
    """

    def __init__(self, model_name: str, version: LoadedVersion):
        self.model_name, self.loaded = model_name, version

    def _check_model_spec(self, spec) -> None:
        if spec.name != self.model_name:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
        if spec.HasField("version") and spec.version.value != self.loaded.version:
            raise RequestError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: Specific({spec.name}, {spec.version.value})")
        if spec.HasField("version_label"):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "version labels are not supported by the "
                               "development server (TF Serving needs them in models.config)")

    def _fill_spec(self, spec, signature_name: str = None) -> None:
        spec.name = self.model_name
        spec.version.value = self.loaded.version
        if signature_name is not None:
            spec.signature_name = signature_name

    def _predict(self, request) -> predict_pb2.PredictResponse:
        self._check_model_spec(request.model_spec)
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature not in self.loaded.functions:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'Serving signature key "{signature}" not found. '
                               f"Available: {sorted(self.loaded.functions)}")
        inputs = _check_inputs(self.loaded.input_specs(signature), request.inputs)
        try:
            outputs = self.loaded.run(signature, inputs)
        except tf.errors.OpError as err:
            raise RequestError(_OP_ERROR_CODES.get(err.error_code, grpc.StatusCode.INTERNAL), err.message) from None
        wanted = list(request.output_filter) or list(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown or len(set(wanted)) != len(wanted):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"bad output_filter {list(wanted)}: outputs "
                               f"must be distinct names from {sorted(outputs)}")
        response = predict_pb2.PredictResponse()
        self._fill_spec(response.model_spec, signature)
        for name in wanted:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(outputs[name])))
        return response

    def _metadata(self, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
        self._check_model_spec(request.model_spec)
        unsupported = [f for f in request.metadata_field if f != "signature_def"]
        if unsupported or not request.metadata_field:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Metadata field {unsupported[0] if unsupported else '(none)'} is not supported; "
                               f"ask for 'signature_def'")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        self._fill_spec(response.model_spec)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in self.loaded.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def _status(self, request) -> get_model_status_pb2.GetModelStatusResponse:
        self._check_model_spec(request.model_spec)
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = self.loaded.version
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
    """The development server: newest version under ``model_base_path`` on ``host:port`` (0 = a free port).

    NOT TensorFlow Serving (see the module docstring). Binds to loopback by default.

    Example:
      >>> with DevModelServer("/models/gru4rec", "gru4rec", port=8500) as server:
      ...     server.wait()
    """

    def __init__(self, model_base_path: str, model_name: str, port: int = 8500, host: str = "127.0.0.1",
                 max_workers: int = 8):
        if not model_name:
            raise ValueError("model_name must not be empty")
        if not 0 <= port < 65536:
            raise ValueError(f"port must be in [0, 65535], got {port}")
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.model_name, self.host, self.requested_port = model_name, host, port
        self.loaded = LoadedVersion(*latest_version(model_base_path))
        self.servicer = DevPredictionServicer(model_name, self.loaded)
        self._max_workers = max_workers
        self._server = None
        self.port = None
        self._stopped = threading.Event()

    def start(self) -> "DevModelServer":
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=self._max_workers),
                                   options=[("grpc.so_reuseport", 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(self.servicer, self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(self.servicer, self._server)
        self.port = self._server.add_insecure_port(f"{self.host}:{self.requested_port}")
        if self.port == 0:
            raise ValueError(f"cannot bind {self.host}:{self.requested_port}")
        self._server.start()
        return self

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, grace_s: float = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace_s).wait()
            self._server = None
        self._stopped.set()

    def wait(self, timeout_s: float = None) -> bool:
        """Blocks until :meth:`stop` (or the timeout); True when stopped."""
        return self._stopped.wait(timeout_s)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
