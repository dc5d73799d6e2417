"""``gru4rec pipeline run|compile``: run the TFX pipeline locally, or compile it for Kubeflow Pipelines / Vertex AI.

::

    gru4rec pipeline run                      # built-in synthetic click log, everything under ./gru4rec_work
    gru4rec pipeline run --data clicks.tsv --test_days 1 --params "loss=bpr-max,final_act=elu-0.5,layers=100"
    gru4rec pipeline run --data train.tsv --data test.tsv --split_on end      # several files = one log
    gru4rec pipeline compile --output pipeline.json --image REGION-docker.pkg.dev/PROJECT/REPO/gru4rec-tfx:0.1.0 \\
        --pipeline_root gs://BUCKET/gru4rec --data gs://BUCKET/clicks --trainer_gpu_type NVIDIA_TESLA_T4

``run`` prints one line per component while it runs (``--verbose`` shows TFX's own logs too) and a summary at
the end: component states (``CACHED`` = reused, inputs unchanged), data sizes, Recall@k/MRR@k, whether the model
was blessed, and where it was pushed. It exits with status 1 when a component fails.

Registered through the ``gru4rec.commands`` entry point of setup.py (``pipeline = tfx_pipeline.cli``).
"""
import glob
import logging as std_logging
import os
import re
import sys
import time

from absl import flags
from absl import logging

from gru4rec_tf import fileio
from gru4rec_tf.commands import common, option_flags
from gru4rec_tf.evaluation.options import EvalOptions
from gru4rec_tf.train.options import TrainOptions

FLAGS = flags.FLAGS
SUBCOMMANDS = ("run", "compile", "schema")
# The fields of TrainOptions and EvalOptions that are flags of this command (the Trainer's other settings keep their
# defaults; the evaluator's batch size is BlessingOptions').
TRAIN_OPTION_FLAGS = ("epochs", "seed", "device_sampling", "early_stopping_metric", "patience")
EVAL_OPTION_FLAGS = ("cutoffs", "eval_mode")
SYNTHETIC_FILE = "clicks.tsv"


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines the flags of both subcommands (``compile`` ignores the local-only ones)."""
    _define_location_flags(flag_values)
    _define_data_flags(flag_values)
    _define_training_flags(flag_values)
    _define_execution_flags(flag_values)
    _define_compile_flags(flag_values)
    _define_recommend_flags(flag_values)
    from tfx_pipeline import blessing  # pylint: disable=g-import-not-at-top  (light: no TFX)
    blessing.define_slice_gate_flags(flag_values)  # the sliced gate's flags
    from tfx_pipeline import tuning_options  # pylint: disable=g-import-not-at-top  (the optional Tuner)
    tuning_options.define_flags(flag_values)
    from tfx_pipeline import validation_options  # pylint: disable=g-import-not-at-top  (data validation)
    validation_options.define_flags(flag_values)


def _define_location_flags(fv: flags.FlagValues) -> None:
    from tfx_pipeline import options as opts  # pylint: disable=g-import-not-at-top  (light: no TFX)
    flags.DEFINE_multi_string("data", None, "Raw click log: a file, directory or glob (repeat for several files, "
                              "read as one log). Default (run): the built-in synthetic dataset. Default (compile): "
                              "<pipeline_root>/data.", flag_values=fv)
    flags.DEFINE_string("work_dir", None, "Local work directory (default ./gru4rec_work or $GRU4REC_WORK_DIR).",
                        flag_values=fv)
    flags.DEFINE_string("pipeline_name", opts.DEFAULT_PIPELINE_NAME, "Pipeline name (MLMD context, spec name).",
                        flag_values=fv)
    flags.DEFINE_string("pipeline_root", None, "Artifact root (run: <work_dir>/pipelines/<name>; compile: "
                        "required in practice, e.g. gs://BUCKET/gru4rec).", flag_values=fv)
    flags.DEFINE_string("metadata_path", None, "sqlite MLMD store (default <work_dir>/metadata/<name>.sqlite).",
                        flag_values=fv)
    flags.DEFINE_string("serving_root", None, "Models are pushed to <serving_root>/<model_name>/<version>/ "
                        "(run: <work_dir>/serving; compile: <pipeline_root>/serving).", flag_values=fv)
    flags.DEFINE_string("model_name", opts.DEFAULT_MODEL_NAME, "Served model name.", flag_values=fv)


def _define_data_flags(fv: flags.FlagValues) -> None:
    """Ingestion and session flags: one per field of IngestOptions and SessionOptions (defaults and help included)."""
    from tfx_pipeline import options as opts  # pylint: disable=g-import-not-at-top
    option_flags.define_option_flags(opts.IngestOptions, fv)
    option_flags.define_option_flags(opts.SessionOptions, fv)


def _define_training_flags(fv: flags.FlagValues) -> None:
    from tfx_pipeline import options as opts  # pylint: disable=g-import-not-at-top
    flags.DEFINE_string("params", opts.DEFAULT_PARAMS, "GRU4Rec hyperparameters, official names: 'k=v,k=v'.",
                        flag_values=fv)
    # --epochs, --seed, --device_sampling, --early_stopping_metric, --patience (it needs --valid_days)
    option_flags.define_option_flags(TrainOptions, fv, fields=TRAIN_OPTION_FLAGS)
    option_flags.define_option_flags(EvalOptions, fv, fields=EVAL_OPTION_FLAGS)  # --cutoffs, --eval_mode
    flags.DEFINE_string("thresholds", "recall@20=0.1,mrr@20=0.03", "Blessing floors: 'metric=value,...'.",
                        flag_values=fv)
    flags.DEFINE_float("regression_margin", 0.01, "Largest allowed drop of a gated metric vs the last blessed model.",
                       flag_values=fv)
    # continuous training
    flags.DEFINE_boolean("no_warm_start", False, "Train from scratch even when a blessed model exists (default: "
                         "warm-start the Trainer from the last blessed model, its base_model).", flag_values=fv)
    flags.DEFINE_float("valid_days", None, "Hold out the last D days of the training split for validation after "
                       "every epoch (the best epoch's weights are kept).", flag_values=fv)
    flags.DEFINE_integer("window_days", 1, "With daily partitions (--data DIR of YYYY-MM-DD folders, or a {SPAN} "
                         "or {YYYY}-{MM}-{DD} pattern): ingest the latest this many spans (default: the latest).",
                         lower_bound=1, flag_values=fv)


def _define_execution_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_list("beam_pipeline_args", [], "Beam options of the Beam components, e.g. "
                      "--beam_pipeline_args=--direct_num_workers=2,--direct_running_mode=multi_processing. A local "
                      "run without them uses --runner=BundleBasedDirectRunner (tfx_pipeline.runners.LOCAL_BEAM_ARGS).",
                      flag_values=fv)
    flags.DEFINE_boolean("enable_cache", True, "Reuse component outputs when inputs and options are unchanged.",
                         flag_values=fv)
    flags.DEFINE_boolean("verbose", False, "Show TFX's and Beam's own INFO logs.", flag_values=fv)
    flags.DEFINE_integer("synthetic_sessions", 20000, "Sessions of the built-in synthetic dataset.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("synthetic_items", 1000, "Items of the built-in synthetic dataset.", lower_bound=2,
                         flag_values=fv)


def _define_recommend_flags(fv: flags.FlagValues) -> None:
    """The optional bulk inference step after the Pusher (the flags of ``gru4rec recommend``, prefixed)."""
    from gru4rec_tf.batch.options import OUTPUT_FORMATS, RecommendOptions  # pylint: disable=g-import-not-at-top
    flags.DEFINE_string("recommend_data", None, "After the Pusher, write the blessed model's recommendations for "
                        "every session of this click log (file, glob or directory, read with the ingestion's "
                        "options) as the BulkRecommender's artifact. Default: no such step.", flag_values=fv)
    flags.DEFINE_integer("recommend_k", 20, "With --recommend_data: " + RecommendOptions.field_help("k"),
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("recommend_format", "jsonl", OUTPUT_FORMATS, "With --recommend_data: "
                      + RecommendOptions.field_help("format"), flag_values=fv)
    flags.DEFINE_boolean("recommend_exclude_seen", False, "With --recommend_data: "
                         + RecommendOptions.field_help("exclude_seen"), flag_values=fv)


def _define_compile_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("output", "pipeline.json", "compile: where to write the pipeline spec JSON; schema: where to "
                        "write the schema (default schema.pbtxt).", flag_values=fv)
    flags.DEFINE_string("image", None, "compile: container image of the components (see tfx_pipeline/Dockerfile).",
                        flag_values=fv)
    flags.DEFINE_string("trainer_gpu_type", None, "compile: Vertex accelerator of the Trainer, e.g. NVIDIA_TESLA_T4.",
                        flag_values=fv)
    flags.DEFINE_integer("trainer_gpu_count", 1, "compile: number of Trainer accelerators.", flag_values=fv)
    flags.DEFINE_float("trainer_cpu", None, "compile: Trainer vCPU limit.", flag_values=fv)
    flags.DEFINE_float("trainer_memory_gb", None, "compile: Trainer memory limit (GB).", flag_values=fv)


def main(argv) -> None:
    """``argv[1]`` is the subcommand (``run`` or ``compile``)."""
    if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
        common.fail(f"usage: gru4rec pipeline {{{'|'.join(SUBCOMMANDS)}}} [flags]  (got {argv[1:]!r})",
                    command="pipeline")
    if len(argv) > 2:
        common.fail(f"unexpected arguments {argv[2:]!r}", command="pipeline")
    from gru4rec_tf.data.event_columns import DataError  # pylint: disable=g-import-not-at-top
    try:
        if argv[1] == "run":
            ok = run_command()
        elif argv[1] == "schema":
            ok = schema_command()
        else:
            ok = compile_command()
    except (DataError, ValueError) as err:
        common.fail(str(err), command="pipeline")
    except RuntimeError as err:
        if type(err).__name__ != "InUseError":  # tfx_pipeline.run_guard.InUseError (TFX-free import)
            raise
        common.fail(str(err), command="pipeline")
    if ok is not True:
        sys.exit(1 if ok is False else ok)


# ----------------------------------------------------------------------------------------------------- options
def _pipeline_options() -> dict:
    """The components' options from the flags (validated by their constructors)."""
    from tfx_pipeline import blessing, options as opts, tuning_options, validation_options  # pylint: disable=g-import-not-at-top
    ingest = opts.IngestOptions(**option_flags.option_values(opts.IngestOptions))
    sessions = opts.SessionOptions(**option_flags.option_values(opts.SessionOptions))
    evaluation = common.eval_options(fields=EVAL_OPTION_FLAGS)
    with option_flags.flag_wording():
        opts.preprocess_options(ingest, sessions, input="unused", output="unused")  # validates them now
        return {
            "ingest": ingest,
            "sessions": sessions,
            "training": _training_options(),
            "window_spans": FLAGS.window_days,
            "tuning": tuning_options.from_flags(),  # the optional Tuner (--tune_trials N)
            "recommend": _recommend_options(),  # the optional BulkRecommender (--recommend_data PATH)
            "validation": validation_options.from_flags(),  # data validation (--validation fail|warn|off)
            "blessing": blessing.BlessingOptions(
                cutoffs=evaluation.cutoffs, thresholds=blessing.parse_thresholds(FLAGS.thresholds),
                regression_margin=FLAGS.regression_margin, eval_mode=evaluation.eval_mode,
                **blessing.slice_gate_flag_values()),
        }


def _recommend_options():
    """The BulkRecommender's options from the --recommend_* flags, or None without --recommend_data."""
    if not FLAGS.recommend_data:
        return None
    from tfx_pipeline import options as opts  # pylint: disable=g-import-not-at-top
    data = FLAGS.recommend_data if fileio.is_remote(FLAGS.recommend_data) else os.path.abspath(FLAGS.recommend_data)
    return opts.RecommendStepOptions(data=data, k=FLAGS.recommend_k, format=FLAGS.recommend_format,
                                     exclude_seen=FLAGS.recommend_exclude_seen)


def _training_options():
    """The Trainer's options from --params, --epochs, --valid_days, --no_warm_start and the TrainOptions flags; an
    error names the flag at fault."""
    from tfx_pipeline import options as opts  # pylint: disable=g-import-not-at-top
    for flag, kwargs in (("--params", {}), ("--epochs", {"n_epochs": FLAGS.epochs})):
        try:
            opts.TrainingOptions(params=FLAGS.params, **kwargs)
        except ValueError as err:
            raise ValueError(f"{flag}: {err}") from None
    settings = option_flags.option_values(TrainOptions, fields=TRAIN_OPTION_FLAGS)
    epochs = settings.pop("epochs")
    with option_flags.flag_wording():
        return opts.TrainingOptions(params=FLAGS.params, n_epochs=epochs, valid_days=FLAGS.valid_days,
                                    warm_start=not FLAGS.no_warm_start, **settings)


def resolve_data(paths, layout) -> tuple:
    """``--data`` values -> ``(input_base, pattern)`` for the ingestion component.

    One file: its directory and name; a directory: all its files; a glob: its directory and the pattern.
    Several values: their files are linked into one directory under the work directory (inputs/<hash>/), so
    the ingestion reads them as one log (they must share the header).
    """
    from gru4rec_tf.data.event_columns import DataError  # pylint: disable=g-import-not-at-top
    spans = span_pattern(paths[0]) if len(paths) == 1 else None
    if spans is not None:
        return spans
    if len(paths) == 1 and fileio.is_remote(paths[0]):
        path = paths[0].rstrip("/")
        return (os.path.dirname(path), os.path.basename(path)) if os.path.splitext(path)[1] else (path, "*")
    files = []
    for path in paths:
        matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        if not matches or not all(os.path.exists(m) for m in matches):
            raise DataError(f"{path}: file does not exist (or no file matches the pattern)")
        files += matches
    if len(paths) == 1:
        path = os.path.abspath(paths[0])
        if os.path.isdir(path):
            return path, "*"
        return os.path.dirname(path), os.path.basename(path)
    return _link_files(files, layout.inputs_dir(files)), "*"


def span_pattern(path: str):
    """``(input_base, pattern)`` when ``path`` holds spans, else None.

    A path with a TFX span spec (``clicks/span-{SPAN}/*``, ``clicks/{YYYY}-{MM}-{DD}/*``) is split at its first
    spec; a local directory whose subdirectories are all named ``YYYY-MM-DD`` is read as daily partitions.
    """
    specs = ("{SPAN", "{YYYY}", "{MM}", "{DD}", "{VERSION")
    first = min((path.find(spec) for spec in specs if spec in path), default=-1)
    if first >= 0:
        base = path[:first].rsplit("/", 1)[0] if "/" in path[:first] else "."
        return base, path[len(base) + 1:] if base != "." else path
    if not fileio.is_remote(path) and os.path.isdir(path):
        children = [c for c in os.listdir(path) if not c.startswith(".")]
        if children and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", c) and os.path.isdir(os.path.join(path, c))
                            for c in children):
            return os.path.abspath(path), "{YYYY}-{MM}-{DD}/*"
    return None


def _link_files(files, directory: str) -> str:
    """Symlinks ``files`` into ``directory`` as ``000-<name>``, ``001-<name>``...; returns the directory."""
    os.makedirs(directory, exist_ok=True)
    for i, path in enumerate(files):
        if os.path.isdir(path):
            raise ValueError(f"{path}: with several --data values each must be a file, not a directory")
        link = os.path.join(directory, f"{i:03d}-{os.path.basename(path)}")
        if os.path.islink(link) and os.readlink(link) == os.path.abspath(path):
            continue
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.abspath(path), link)
    return directory


def ensure_synthetic_data(layout, n_sessions: int, n_items: int) -> str:
    """Writes the built-in synthetic click log once (unchanged files keep the ingestion cache valid)."""
    from gru4rec_tf.data import synthetic  # pylint: disable=g-import-not-at-top
    directory = os.path.join(layout.synthetic_dir(), f"s{n_sessions}-i{n_items}")
    path = os.path.join(directory, SYNTHETIC_FILE)
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        events = synthetic.generate_sessions(n_items=n_items, n_sessions=n_sessions, seed=0)
        with fileio.atomic_write_path(path) as tmp:
            events.to_csv(tmp, sep="\t", index=False, float_format="%.3f")
        logging.info("wrote the synthetic click log %s (%d events, %d sessions, %d items, 10 days)", path,
                     len(events), n_sessions, n_items)
    return path


# -------------------------------------------------------------------------------------------------------- run
class _ProgressFilter(std_logging.Filter):
    """Keeps warnings, the runner's per-component lines and this project's own log lines."""

    _OWN = (os.sep + "tfx_pipeline" + os.sep, os.sep + "gru4rec_tf" + os.sep)

    _RUNNER_LINES = (("local_dag_runner.py", "Component "), ("launcher.py", "A cached execution"),
                     ("launcher.py", "Skipping execution"))
    _NOISE = ("ArtifactQuery.property_predicate is not supported",)  # ml-metadata 1.17 under TFX 1.21, harmless

    def filter(self, record: std_logging.LogRecord) -> bool:
        message = str(record.msg)
        if record.levelno >= std_logging.WARNING:
            return not message.startswith(self._NOISE)
        if any(part in record.pathname for part in self._OWN):
            return True
        return any(record.pathname.endswith(f) and message.startswith(m) for f, m in self._RUNNER_LINES)


def _configure_logging() -> None:
    logging.set_verbosity(logging.INFO)
    if not FLAGS.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        logging.get_absl_handler().addFilter(_ProgressFilter())


def run_command() -> bool:
    """``gru4rec pipeline run``: builds and runs the pipeline locally; prints the summary; True on success."""
    _configure_logging()
    options = _pipeline_options()  # a bad flag fails here, before TFX and TensorFlow are imported (~10-20 s)
    from tfx_pipeline import pipeline as pl, run_guard, runners, summary  # pylint: disable=g-import-not-at-top
    layout = runners.LocalLayout.create(FLAGS.work_dir, FLAGS.pipeline_name, FLAGS.pipeline_root,
                                        FLAGS.metadata_path, FLAGS.serving_root)
    data = FLAGS.data or [ensure_synthetic_data(layout, FLAGS.synthetic_sessions, FLAGS.synthetic_items)]
    data_root, pattern = resolve_data(data, layout)
    pipeline = pl.create_pipeline(
        FLAGS.pipeline_name, layout.pipeline_root, data_root, layout.serving_root, data_pattern=pattern,
        model_name=FLAGS.model_name, metadata_connection_config=runners.sqlite_config(layout.metadata_path),
        beam_pipeline_args=FLAGS.beam_pipeline_args or list(runners.LOCAL_BEAM_ARGS), enable_cache=FLAGS.enable_cache,
        **options)
    logging.info("pipeline %s: data %s, pipeline root %s, metadata %s", FLAGS.pipeline_name,
                 os.path.join(data_root, pattern), layout.pipeline_root, layout.metadata_path)
    serving_base = pl.serving_base_directory(layout.serving_root, FLAGS.model_name)
    with run_guard.exclusive(run_guard.lock_paths(layout.metadata_path, serving_base)):
        started = time.perf_counter()
        error, served_again = None, None
        try:
            run_guard.forget_missing_artifacts(layout.metadata_path, FLAGS.pipeline_name)
            runners.run_local(pipeline)
            served_again = run_guard.ensure_served(layout.metadata_path, FLAGS.pipeline_name, serving_base)
        except Exception as err:  # pylint: disable=broad-except  (reported below with the failed component)
            error = err
        wall = time.perf_counter() - started
    try:
        result = summary.summarize_latest_run(layout.metadata_path, FLAGS.pipeline_name)
    except ValueError:  # nothing recorded: the run failed before its first component
        if error is None:
            raise
        result = None
    if result is not None:
        again = f"\nserving: pushed the last blessed model again to {served_again} (the serving root lacked it)" \
            if served_again else ""
        print(result.format() + again + f"\nwall time: {wall:.1f} s", flush=True)
    if error is not None:
        failed = next((n.node_id for n in result.nodes if n.state == "FAILED"), None) if result else None
        print(f"gru4rec pipeline: error: {failed or 'the pipeline'} failed: {type(error).__name__}: {error}",
              file=sys.stderr)
        return False
    if result is not None and result.stopped_by_validation:
        from tfx_pipeline.validation_options import EXIT_STOPPED_BY_VALIDATION  # pylint: disable=g-import-not-at-top
        print("gru4rec pipeline: stopped by data validation: the span is anomalous (see above); nothing was "
              f"trained or pushed (exit status {EXIT_STOPPED_BY_VALIDATION})", file=sys.stderr)
        return EXIT_STOPPED_BY_VALIDATION
    return True


# ----------------------------------------------------------------------------------------------------- schema
def schema_command() -> bool:
    """``gru4rec pipeline schema --output FILE``: the newest inferred schema of the pipeline's local runs."""
    from tfx_pipeline import runners, summary  # pylint: disable=g-import-not-at-top
    layout = runners.LocalLayout.create(FLAGS.work_dir, FLAGS.pipeline_name, FLAGS.pipeline_root,
                                        FLAGS.metadata_path, FLAGS.serving_root)
    if not os.path.exists(layout.metadata_path):
        raise ValueError(f"{layout.metadata_path}: no run of pipeline {FLAGS.pipeline_name!r} yet; run `gru4rec "
                         "pipeline run` (with --validation fail or warn) first")
    source = summary.latest_schema_file(layout.metadata_path, FLAGS.pipeline_name)
    if source is None:
        raise ValueError(f"{layout.metadata_path}: no inferred schema recorded (the runs had --validation off)")
    output = FLAGS.output if FLAGS.output != "pipeline.json" else "schema.pbtxt"
    with open(source, encoding="utf-8") as handle, fileio.atomic_write_path(output) as tmp:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(handle.read())
    print(f"wrote {os.path.abspath(output)}: the schema inferred from {source}; review it and pin it with "
          f"--schema {output}")
    return True


# ---------------------------------------------------------------------------------------------------- compile
def _trainer_resources():
    if not (FLAGS.trainer_gpu_type or FLAGS.trainer_cpu or FLAGS.trainer_memory_gb):
        return None
    from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=g-import-not-at-top
    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if FLAGS.trainer_cpu:
        spec.cpu_limit = FLAGS.trainer_cpu
    if FLAGS.trainer_memory_gb:
        spec.memory_limit = FLAGS.trainer_memory_gb
    if FLAGS.trainer_gpu_type:
        spec.accelerator.type = FLAGS.trainer_gpu_type
        spec.accelerator.count = FLAGS.trainer_gpu_count
    return spec


def compile_command() -> bool:
    """``gru4rec pipeline compile``: writes the Kubeflow V2 / Vertex pipeline spec JSON."""
    logging.set_verbosity(logging.WARNING if not FLAGS.verbose else logging.INFO)
    root = (FLAGS.pipeline_root or "gs://YOUR_BUCKET/gru4rec").rstrip("/")
    if len(FLAGS.data or []) > 1:
        raise ValueError("compile: give one --data directory or glob (several files cannot be linked remotely)")
    options = _pipeline_options()  # a bad flag fails here, before TFX and TensorFlow are imported
    from tfx_pipeline import pipeline as pl, runners  # pylint: disable=g-import-not-at-top
    data = (FLAGS.data or [f"{root}/data"])[0].rstrip("/")
    data_root, pattern = span_pattern(data) or ((os.path.dirname(data), os.path.basename(data))
                                                if os.path.splitext(data)[1] or glob.has_magic(data) else (data, "*"))
    pipeline = pl.create_pipeline(
        FLAGS.pipeline_name, root, data_root, FLAGS.serving_root or f"{root}/serving", data_pattern=pattern,
        model_name=FLAGS.model_name, beam_pipeline_args=FLAGS.beam_pipeline_args, enable_cache=FLAGS.enable_cache,
        trainer_resources=_trainer_resources(), **options)
    spec = runners.compile_kubeflow_v2(pipeline, FLAGS.output, image=FLAGS.image or runners.DEFAULT_IMAGE)
    tasks = sorted(spec["pipelineSpec"]["root"]["dag"]["tasks"]) if "pipelineSpec" in spec \
        else sorted(spec["root"]["dag"]["tasks"])
    print(f"wrote {os.path.abspath(FLAGS.output)}: pipeline {FLAGS.pipeline_name}, tasks {', '.join(tasks)}; "
          f"image {FLAGS.image or runners.DEFAULT_IMAGE}, root {root}")
    return True
