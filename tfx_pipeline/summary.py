"""What a pipeline run did, read back from its ML Metadata store: component states, metrics, blessing, push.

Used by ``gru4rec pipeline run`` for its end-of-run summary and by the tests to inspect the store.

Example::

    summary = summarize_latest_run("gru4rec_work/metadata/gru4rec.sqlite", "gru4rec")
    print(summary.format())
    summary.node("Trainer").state   # 'COMPLETE', 'CACHED', 'FAILED'; 'SKIPPED' (by its condition), 'NOT RUN'
"""
import dataclasses
import json
import os

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from tfx_pipeline import artifacts, model_report, slice_summary
from tfx_pipeline.pipeline import NODE_IDS, RECOMMENDER_ID, RESOLVER_ID, TUNER_ID, VALIDATION_IDS

_STATE_NAMES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


def open_store(metadata_path: str) -> mlmd.MetadataStore:
    """A read-write handle on a sqlite MLMD store (it must exist)."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return mlmd.MetadataStore(config)


@dataclasses.dataclass
class NodeRun:
    """One component's execution in a run (``state`` is ``SKIPPED`` when it did not execute)."""

    node_id: str
    state: str
    seconds: float = 0.0
    outputs: dict[str, list] = dataclasses.field(default_factory=dict)  # output key -> [mlmd Artifact]


@dataclasses.dataclass
class RunSummary:
    """A run of the pipeline as recorded in MLMD."""

    pipeline_name: str
    run_id: str
    nodes: list[NodeRun]
    latest_push: dict | None = None  # the newest push of this pipeline (any run): destination, version

    def node(self, node_id: str) -> NodeRun:
        return next((n for n in self.nodes if n.node_id == node_id), NodeRun(node_id, "SKIPPED"))

    def output(self, node_id: str, key: str):
        artifacts = self.node(node_id).outputs.get(key) or []
        return artifacts[0] if artifacts else None

    @property
    def succeeded(self) -> bool:
        return bool(self.nodes) and all(n.state in ("COMPLETE", "CACHED", "SKIPPED") for n in self.nodes)

    @property
    def blessing(self) -> dict:
        """``blessed``, ``is_new_model``, ``message`` and the metrics (``recall@20`` ...) of the run's blessing."""
        artifact = self.output("SessionEvaluator", "blessing")
        if artifact is None:
            return {}
        props = _props(artifact)
        out = {"blessed": props.get("blessed") == 1, "is_new_model": props.get("is_new_model") == 1,
               "message": props.get("blessing_message", ""), "baseline_model_id": props.get("baseline_model_id")}
        out["metrics"] = {k.replace("_at_", "@"): v for k, v in props.items() if "_at_" in k}
        return out

    @property
    def push(self) -> dict | None:
        """This run's push (``pushed``, ``destination``, ``version``, ``copied``), or None when the Pusher did not run.

        When the candidate was not pushed, ``served`` is the last blessed model's version that the Pusher found or
        put back in the serving root (``destination``, ``version``, ``copied``), or None.
        """
        artifact = self.output("Pusher", "pushed_model")
        if artifact is None:
            return None
        props = _props(artifact)
        served = None
        if props.get("served_destination"):
            served = {"destination": props["served_destination"], "version": props.get("served_version"),
                      "copied": props.get("served_copied") == 1}
        return {"pushed": props.get("pushed") == 1, "destination": props.get("pushed_destination"),
                "version": props.get("pushed_version"), "copied": props.get("copied", 1) == 1, "served": served}

    @property
    def report_path(self) -> str | None:
        """The ``report.md`` of this run's model (:mod:`tfx_pipeline.model_report`): in the version it pushed, or
        else in its ``PushedModel`` artifact; None when the Pusher did not run or wrote none."""
        artifact, push = self.output("Pusher", "pushed_model"), self.push
        if artifact is None:
            return None
        root = push["destination"] if push["pushed"] and push["copied"] else artifact.uri
        path = os.path.join(root, model_report.REPORT_DIR, model_report.REPORT_FILE)
        return path if "://" in path or os.path.exists(path) else None

    @property
    def validation(self) -> dict | None:
        """The DataValidator's verdict (``valid``, ``mode``, ``anomalies``: lines naming each failed check), or None
        when the run has no data validation."""
        artifact = self.output("DataValidator", "verdict")
        if artifact is None:
            return None
        props = _props(artifact)
        return {"valid": props.get("valid") == 1, "mode": props.get("mode"),
                "anomalies": json.loads(props.get("anomaly_lines") or "[]")}

    @property
    def stopped_by_validation(self) -> bool:
        """Whether data validation stopped this run (``--validation fail`` and an anomalous span)."""
        verdict = self.validation
        return verdict is not None and not verdict["valid"]

    @property
    def recommendations(self) -> dict | None:
        """The BulkRecommender's outcome (``recommended``, ``uri``, ``sessions``, ``unknown_items``,
        ``model_version``, ``files``, ``reason``), or None when the run has no such step."""
        artifact = self.output(RECOMMENDER_ID, "recommendations")
        if artifact is None:
            return None
        props = _props(artifact)
        return {"recommended": props.get("recommended") == 1, "uri": artifact.uri, "reason": props.get("reason"),
                "sessions": props.get("sessions"), "unknown_items": props.get("unknown_items"),
                "model_version": props.get("model_version"), "files": json.loads(props.get("files") or "[]")}

    @property
    def data(self) -> dict:
        artifact = self.output("SessionTensors", "session_tensors")
        return _props(artifact) if artifact is not None else {}

    def format(self) -> str:
        """The human-readable end-of-run summary."""
        lines = [f"pipeline {self.pipeline_name}, run {self.run_id}:"]
        for node in self.nodes:
            lines.append(f"  {node.node_id:<32} {node.state:<9} {node.seconds:7.1f} s")
        lines += self._validation_lines()
        data = self.data
        if data:
            lines.append(f"data: train {data.get('train_events', 0):,} events / {data.get('train_sessions', 0):,} "
                         f"sessions / {data.get('train_items', 0):,} items; test {data.get('test_events', 0):,} "
                         f"events / {data.get('test_sessions', 0):,} sessions")
        training_line = self._training_line()
        if training_line:
            lines.append(training_line)
        bless = self.blessing
        if bless:
            metrics = bless["metrics"]
            ks = sorted({int(k.split("@")[1]) for k in metrics})
            nan = float("nan")
            lines.append("metrics (test split): " + "  ".join(
                f"Recall@{k} {metrics.get(f'recall@{k}', nan):.4f} MRR@{k} {metrics.get(f'mrr@{k}', nan):.4f}"
                for k in ks))
            lines.append(f"blessed: {'yes' if bless['blessed'] else 'no'} ({bless['message']})")
            lines += self._slice_lines()
        lines.append(self._push_line())
        if self.report_path:
            lines.append(f"report: {self.report_path}")
        recs = self.recommendations
        if recs is not None:
            lines.append(f"recommendations: {recs['sessions']:,} sessions by model version {recs['model_version']} "
                         f"({recs['unknown_items']:,} unknown items skipped), {len(recs['files'])} file(s) in "
                         f"{recs['uri']}" if recs["recommended"] else f"recommendations: none ({recs['reason']})")
        return "\n".join(lines)

    @property
    def training(self) -> dict:
        """The Trainer's ``training.json`` of this run (empty when the Trainer did not run or was cached)."""
        artifact = self.output("Trainer", "model_run")
        if artifact is None or self.node("Trainer").state != "COMPLETE":
            return {}
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        path = os.path.join(artifact.uri, artifacts.TRAINING_FILE)
        if not tf.io.gfile.exists(path):
            return {}
        with tf.io.gfile.GFile(path) as handle:
            return json.load(handle)

    def _slice_lines(self) -> list[str]:
        """The SessionEvaluator's slice table (:mod:`tfx_pipeline.slice_summary`)."""
        artifact = self.output("SessionEvaluator", "evaluation")
        return slice_summary.lines(slice_summary.read_payload(artifact.uri)) if artifact is not None else []

    def _training_line(self) -> str:
        info = self.training
        if not info:
            return ""
        if "reused_base_model" in info:
            return f"trained: no, the last blessed model was trained on these data ({info['reused_base_model']})"
        warm = info.get("warm_start")
        how = (f"warm start from {warm['source']} ({warm['carried_items']:,} items carried, {warm['new_items']:,} "
               f"new, {warm['dropped_items']:,} dropped)" if warm else "from scratch")
        best = f", best epoch {info['best_epoch']} of {info['epochs_run']}" if info.get("best_epoch") else ""
        epochs = len(info.get("epoch_loss", []))
        return f"trained: {how}, {epochs} epoch(s) in {info.get('train_seconds', 0):.1f} s{best}"

    def _validation_lines(self) -> list[str]:
        verdict = self.validation
        if verdict is None:
            return []
        if not verdict["anomalies"]:
            return ["data validation: passed"]
        head = ("data validation: STOPPED the run (nothing trained or pushed; the serving root keeps the last blessed "
                "model):" if not verdict["valid"] else "data validation: anomalies (--validation warn: the run went "
                "on):")
        return [head] + [f"  - {line}" for line in verdict["anomalies"]]

    def _push_line(self) -> str:
        push, bless = self.push, self.blessing
        if push and push["pushed"]:
            already = "" if push["copied"] else " (already there: the serving root holds this model; nothing copied)"
            return f"pushed: {push['destination']}{already}"
        if push and push["served"]:
            served = push["served"]
            how = "copied again: the serving root lacked it" if served["copied"] else "already there"
            return f"pushed: no (the model is not blessed); serving the last blessed model: {served['destination']} " \
                f"({how})"
        if push:
            return "pushed: no (the model is not blessed)"
        if bless and not bless["is_new_model"]:
            where = f"; serving {self.latest_push['destination']}" if self.latest_push else ""
            return f"pushed: no (the candidate is the already-blessed model of an earlier run{where})"
        return "pushed: no (the Pusher did not run)"


def _props(artifact) -> dict:
    out = {}
    for key, value in artifact.custom_properties.items():
        kind = value.WhichOneof("value")
        out[key] = getattr(value, kind) if kind else None
    return out


def _node_of(store, execution_id: int, pipeline_name: str) -> str | None:
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == "node" and context.name.startswith(pipeline_name + "."):
            return context.name[len(pipeline_name) + 1:]
    return None


def _outputs(store, execution_id: int) -> dict[str, list]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in _OUTPUT_EVENTS]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    out: dict[str, list] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        out.setdefault(key, []).append(artifacts[event.artifact_id])
    return out


def _latest_push(store, pipeline_name: str) -> dict | None:
    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if context is None:
        return None
    pushes = [a for a in store.get_artifacts_by_context(context.id)
              if a.type == "PushedModel" and _props(a).get("pushed") == 1]
    if not pushes:
        return None
    props = _props(max(pushes, key=lambda a: a.id))
    return {"destination": props.get("pushed_destination"), "version": props.get("pushed_version")}


def summarize_run(store, pipeline_name: str, run_context) -> RunSummary:
    """The summary of the run whose ``pipeline_run`` context is ``run_context``."""
    by_node = {}
    for execution in sorted(store.get_executions_by_context(run_context.id), key=lambda e: e.id):
        node_id = _node_of(store, execution.id, pipeline_name)
        if node_id and node_id != RESOLVER_ID:
            by_node[node_id] = execution  # a retried node keeps its last execution
    nodes = []
    order = [n for n in NODE_IDS if n != RESOLVER_ID]
    validators = [n for n in VALIDATION_IDS if n in by_node]  # data validation, listed only in runs that have it
    order[1:1] = validators
    if TUNER_ID in by_node:  # the optional Tuner, listed only in runs that have it
        order.insert(order.index("Trainer"), TUNER_ID)
    if RECOMMENDER_ID in by_node:  # the optional bulk inference step, listed only in runs that have it
        order.append(RECOMMENDER_ID)
    for node_id in order:
        execution = by_node.get(node_id)
        if execution is None:  # after a failure: not run; else skipped by its condition
            failed = any(n.state == "FAILED" for n in nodes)
            nodes.append(NodeRun(node_id, "NOT RUN" if failed else "SKIPPED"))
            continue
        seconds = max(0, execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0
        nodes.append(NodeRun(node_id, _STATE_NAMES.get(execution.last_known_state, "UNKNOWN"), seconds,
                             _outputs(store, execution.id)))
    return RunSummary(pipeline_name, run_context.name, nodes, _latest_push(store, pipeline_name))


def latest_schema_file(metadata_path: str, pipeline_name: str) -> str | None:
    """The ``schema.pbtxt`` of the pipeline's newest ``Schema`` artifact (SchemaGen's or ImportSchemaGen's)."""
    store = open_store(metadata_path)
    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if context is None:
        return None
    schemas = [a for a in store.get_artifacts_by_context(context.id)
               if store.get_artifact_types_by_id([a.type_id])[0].name == "Schema"
               and a.state == metadata_store_pb2.Artifact.LIVE and os.path.isfile(os.path.join(a.uri, "schema.pbtxt"))]
    return os.path.join(max(schemas, key=lambda a: a.id).uri, "schema.pbtxt") if schemas else None


def summarize_latest_run(metadata_path: str, pipeline_name: str) -> RunSummary:
    """The summary of the pipeline's most recent run in the sqlite store at ``metadata_path``."""
    store = open_store(metadata_path)
    runs = [c for c in store.get_contexts_by_type("pipeline_run") if _belongs(store, c, pipeline_name)]
    if not runs:
        raise ValueError(f"{metadata_path}: no run of pipeline {pipeline_name!r} is recorded")
    return summarize_run(store, pipeline_name, max(runs, key=lambda c: (c.create_time_since_epoch, c.id)))


def _belongs(store, run_context, pipeline_name: str) -> bool:
    executions = store.get_executions_by_context(run_context.id)
    return bool(executions) and _node_of(store, executions[0].id, pipeline_name) is not None
