"""Writing recommendation records as JSON lines, Parquet or TFRecord files (the same four fields in each).

A record is ``{"session_id": str, "item_ids": [int64 or str], "scores": [float32], "model_version": str}``:
the session's (or, for the item-to-item table, the item's) ID as text, its top items best first and their raw
scores (``serving_default``'s), and the model that answered. Files are ``part-SSSSS-of-NNNNN.<format>`` under the
output directory:

* ``jsonl``: one JSON object per line;
* ``parquet``: columns ``session_id`` (string), ``item_ids`` (list of int64 or string), ``scores`` (list of
  float32), ``model_version`` (string);
* ``tfrecord``: ``tf.train.Example`` records with features ``session_id`` (bytes), ``item_ids`` (int64 or bytes),
  ``scores`` (float), ``model_version`` (bytes); no TensorFlow is needed to write them.

Example (what :mod:`gru4rec_tf.batch.pipeline` wires)::

    records | WriteRecords("out/recs", "parquet", id_dtype="int64")
"""
from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from gru4rec_tf.batch.options import OUTPUT_FORMATS
from gru4rec_tf.preprocessing import example_codec

__all__ = ["WriteRecords", "record_json", "record_example", "FILE_PREFIX"]

FILE_PREFIX = "part"


def record_json(record: dict) -> str:
    """One JSON line of a record.

    Example::

        >>> record_json({"session_id": "7", "item_ids": [5], "scores": [0.5], "model_version": "1"})
        '{"session_id": "7", "item_ids": [5], "scores": [0.5], "model_version": "1"}'
    """
    return json.dumps(record, ensure_ascii=False)


def record_example(record: dict, id_dtype: str) -> bytes:
    """The serialized ``tf.train.Example`` of a record."""
    if id_dtype == "int64":
        items = ("int64", record["item_ids"])
    else:
        items = ("bytes", [str(i).encode("utf-8") for i in record["item_ids"]])
    return example_codec.encode_example({
        "session_id": ("bytes", [record["session_id"].encode("utf-8")]), "item_ids": items,
        "scores": ("float", record["scores"]), "model_version": ("bytes", [record["model_version"].encode("utf-8")]),
    })


def parquet_schema(id_dtype: str):
    """The pyarrow schema of the Parquet output."""
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    return pa.schema([("session_id", pa.string()),
                      ("item_ids", pa.list_(pa.int64() if id_dtype == "int64" else pa.string())),
                      ("scores", pa.list_(pa.float32())), ("model_version", pa.string())])


class WriteRecords(beam.PTransform):
    """Writes records to ``directory/part-SSSSS-of-NNNNN.<output_format>``; returns the PCollection of file names.

    Example::

        files = records | WriteRecords("out", "jsonl", id_dtype="string")
    """

    def __init__(self, directory: str, output_format: str, id_dtype: str):
        super().__init__()
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
        self._prefix = FileSystems.join(directory, FILE_PREFIX)
        self._format, self._id_dtype = output_format, id_dtype

    def expand(self, records):
        suffix = "." + self._format
        if self._format == "jsonl":
            return (records | "ToJson" >> beam.Map(record_json)
                    | "Write" >> beam.io.WriteToText(self._prefix, file_name_suffix=suffix))
        if self._format == "parquet":
            return records | "Write" >> beam.io.WriteToParquet(self._prefix, parquet_schema(self._id_dtype),
                                                                file_name_suffix=suffix)
        id_dtype = self._id_dtype
        return (records | "ToExample" >> beam.Map(record_example, id_dtype=id_dtype)
                | "Write" >> beam.io.WriteToTFRecord(self._prefix, file_name_suffix=suffix))
