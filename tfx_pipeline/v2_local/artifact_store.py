"""The local stand-in for Vertex ML Metadata: the artifacts and executions of the runs under one local root.

The record is one JSON file, ``<local_root>/.v2_local/<pipeline>/metadata.json``; the driver adds the artifacts
its tasks report and one execution per task run, and looks cache hits up in it.

Example::

    from tfx_pipeline.v2_local.artifact_store import Store

    store = Store("/tmp/vertex/.v2_local/gru4rec/metadata.json")
    blessings = [a for a in store.artifacts.values() if a.schema_title == "tfx.ModelBlessing"]
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

STATE_DIR = ".v2_local"  # under the local root: the store and the synthetic data of each pipeline


@dataclasses.dataclass
class Artifact:
    """A recorded artifact: what Vertex ML Metadata would hold for it.

    Example::

        blessing = Artifact("local/metadataStores/default/artifacts/3", "title: tfx.ModelBlessing\\n",
                            "/tmp/vertex/bucket/root/blessing", {"blessed": 1.0}, "SessionEvaluator", "run-1", 0.0)
        blessing.schema_title  # 'tfx.ModelBlessing'
    """

    name: str
    schema: str  # the instanceSchema of its type (YAML with the title)
    uri: str
    metadata: dict[str, Any]
    producer: str
    run_id: str
    create_time: float
    state: str = "LIVE"

    @property
    def schema_title(self) -> str:
        match = re.search(r"^title:\s*(\S+)", self.schema, re.MULTILINE)
        return match.group(1) if match else ""

    def runtime_artifact(self) -> dict:
        """The ``RuntimeArtifact`` JSON of the ``ExecutorInput``."""
        return {"name": self.name, "type": {"instanceSchema": self.schema}, "uri": self.uri,
                "metadata": self.metadata}


class Store:
    """Artifacts and executions of the runs under one local root (JSON; stands in for Vertex ML Metadata).

    Example::

        store = Store("/tmp/vertex/.v2_local/gru4rec/metadata.json")  # empty when the file does not exist yet
        name = store.new_name()  # 'local/metadataStores/default/artifacts/1'
        store.save()
    """

    def __init__(self, path: str):
        self.path = path
        data = {"next_id": 1, "artifacts": [], "executions": []}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        self.next_id = data["next_id"]
        self.artifacts = {a["name"]: Artifact(**a) for a in data["artifacts"]}
        self.executions: list[dict] = data["executions"]

    def new_name(self, kind: str = "artifacts") -> str:
        name = f"local/metadataStores/default/{kind}/{self.next_id}"
        self.next_id += 1
        return name

    def add(self, artifact: Artifact) -> None:
        self.artifacts[artifact.name] = artifact

    def cached(self, cache_key: str) -> dict | None:
        """The newest successful execution with this cache key whose outputs are still recorded."""
        for execution in reversed(self.executions):
            if execution["cache_key"] == cache_key and execution["state"] == "COMPLETE" and all(
                    n in self.artifacts for names in execution["outputs"].values() for n in names):
                return execution
        return None

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"next_id": self.next_id, "artifacts": [dataclasses.asdict(a) for a in self.artifacts.values()],
                       "executions": self.executions}, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


def mlmd_artifact(artifact: Artifact):
    """An ML Metadata ``Artifact`` proto of a recorded artifact (integral numbers as ints), for the summary."""
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
    out = metadata_store_pb2.Artifact(uri=artifact.uri, name=artifact.name, type=artifact.schema_title.split(".")[-1])
    for key, value in artifact.metadata.items():
        if isinstance(value, bool):
            out.custom_properties[key].int_value = int(value)
        elif isinstance(value, (int, float)):
            if float(value).is_integer():
                out.custom_properties[key].int_value = int(value)
            else:
                out.custom_properties[key].double_value = float(value)
        elif isinstance(value, str):
            out.custom_properties[key].string_value = value
    return out
