"""Syntax checks of the TF Serving deployment files in serving/ (docker cannot run here, so this is all we can do).

models.config is parsed with TF Serving's own ModelServerConfig proto (shipped in tensorflow-serving-api). The
BatchingParameters and MonitoringConfig protos are not shipped there, so their text files are parsed against
descriptors built below with the same field names and types as session_bundle_config.proto and
monitoring_config.proto.
"""
import json
import re
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
from google.protobuf import wrappers_pb2  # noqa: F401  (registers google/protobuf/wrappers.proto in the pool)

yaml = pytest.importorskip("yaml")
SERVING = Path(__file__).resolve().parent.parent / "serving"
_F = descriptor_pb2.FieldDescriptorProto


def _message_class(file_name: str, package: str, messages: dict, name: str):
    """A message class from ``{message: [(field, number, type, label, type_name)]}`` in a private pool."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3",
                                               dependency=["google/protobuf/wrappers.proto"])
    for message, fields in messages.items():
        msg = proto.message_type.add(name=message)
        for field, number, ftype, label, type_name in fields:
            msg.field.add(name=field, number=number, type=ftype, label=label, type_name=type_name or None)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))


def batching_parameters_class():
    opt, rep, msg = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED, _F.TYPE_MESSAGE
    int64_value = ".google.protobuf.Int64Value"
    fields = [("max_batch_size", 1, msg, opt, int64_value), ("batch_timeout_micros", 2, msg, opt, int64_value),
              ("max_enqueued_batches", 3, msg, opt, int64_value), ("num_batch_threads", 4, msg, opt, int64_value),
              ("thread_pool_name", 5, msg, opt, ".google.protobuf.StringValue"),
              ("allowed_batch_sizes", 6, _F.TYPE_INT64, rep, None),
              ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, opt, None)]
    return _message_class("batching_test.proto", "tensorflow.serving", {"BatchingParameters": fields},
                          "BatchingParameters")


def monitoring_config_class():
    opt = _F.LABEL_OPTIONAL
    messages = {"PrometheusConfig": [("enable", 1, _F.TYPE_BOOL, opt, None), ("path", 2, _F.TYPE_STRING, opt, None)],
                "MonitoringConfig": [("prometheus_config", 1, _F.TYPE_MESSAGE, opt,
                                      ".tensorflow.serving.PrometheusConfig")]}
    return _message_class("monitoring_test.proto", "tensorflow.serving", messages, "MonitoringConfig")


def entrypoint():
    text = (SERVING / "Dockerfile").read_text()
    body = re.search(r"^ENTRYPOINT (\[.*?\])\s*$", text.replace("\\\n", ""), re.M | re.S).group(1)
    return json.loads(body)


def test_models_config():
    from tensorflow_serving.config import model_server_config_pb2  # pylint: disable=g-import-not-at-top
    config = text_format.Parse((SERVING / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("gru4rec", "/models/gru4rec", "tensorflow")


def test_batching_parameters():
    params = text_format.Parse((SERVING / "batching_parameters.txt").read_text(), batching_parameters_class()())
    sizes = list(params.allowed_batch_sizes)
    assert sizes == sorted(sizes) and sizes[-1] == params.max_batch_size.value  # TF Serving's requirements
    assert params.pad_variable_length_inputs  # variable-length sessions, exclude and candidate lists
    assert params.num_batch_threads.value >= 1 and params.batch_timeout_micros.value > 0


def test_monitoring_config():
    config = text_format.Parse((SERVING / "monitoring.config").read_text(), monitoring_config_class()())
    assert config.prometheus_config.enable and config.prometheus_config.path.startswith("/")


def test_dockerfile_command_line():
    text = (SERVING / "Dockerfile").read_text()
    assert re.search(r"^FROM tensorflow/serving:\d+\.\d+\.\d+-gpu$", text, re.M)
    copied = re.search(r"^COPY (.+) /config/$", text, re.M).group(1).split()
    assert all((SERVING / name).is_file() for name in copied)
    command = entrypoint()
    assert command[0] == "tensorflow_model_server"
    flags = dict(arg[2:].split("=", 1) for arg in command[1:])
    assert (flags["port"], flags["rest_api_port"], flags["enable_batching"]) == ("8500", "8501", "true")
    for flag in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
        assert flags[flag].startswith("/config/") and flags[flag][len("/config/"):] in copied


def test_compose_file():
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())
    service = compose["services"]["gru4rec-serving"]
    assert set(service["ports"]) == {"8500:8500", "8501:8501"}
    assert any(v.endswith(":/models:ro") for v in service["volumes"])
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
