"""The docstring examples of the library run as doctests (issue #22: "docstring examples run as doctests where
they can").

``DOCTEST_MODULES`` lists the modules whose examples run here: small literals, no data files, no trained model, no
server, each module's examples in well under a second (each runs in its own empty working directory, so examples
that write a file write it there). Lines of an example that need a data file, a trained model or minutes of work
carry ``# doctest: +SKIP`` and sit beside a small runnable example.

``NOT_RUN`` lists the modules with examples that do not run here, each with the reason. Every module of
``gru4rec_tf``, ``tfx_pipeline`` and ``serving`` with a ``>>>`` line must be in one of the two lists, so a new
example is never silently left untested.
"""
import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gru4rec_tf", "tfx_pipeline", "serving")
OPTION_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

DOCTEST_MODULES = (
    # no TensorFlow
    "gru4rec_tf.params",
    "gru4rec_tf.fingerprint",
    "gru4rec_tf.fileio",
    "gru4rec_tf.data.contracts",
    "gru4rec_tf.data.event_columns",
    "gru4rec_tf.data.event_log",
    "gru4rec_tf.data.vocabulary",
    "gru4rec_tf.data.batching",
    "gru4rec_tf.data.synthetic",
    "gru4rec_tf.data.session_data",
    "gru4rec_tf.evaluation.options",
    "gru4rec_tf.evaluation.bootstrap",
    "gru4rec_tf.evaluation.slices",
    "gru4rec_tf.evaluation.session_sample",
    "gru4rec_tf.export.signatures",
    "gru4rec_tf.export.export_dir",
    "gru4rec_tf.tune.search_space",
    "gru4rec_tf.tune.portfolio",
    "gru4rec_tf.preprocessing",
    "gru4rec_tf.preprocessing.options",
    "gru4rec_tf.preprocessing.session_rules",
    "gru4rec_tf.preprocessing.records",
    "gru4rec_tf.train.checkpoints",
    "gru4rec_tf.train.compile_cache",
    "gru4rec_tf.train.warm_start",
    "gru4rec_tf.train.progress",
    "gru4rec_tf.train.options",
    "gru4rec_tf.train.prefetch",
    "tfx_pipeline.options",
    "tfx_pipeline.blessing",
    "tfx_pipeline.slice_summary",
    "tfx_pipeline.tuning_options",
    "tfx_pipeline.validation_options",
    "tfx_pipeline.data_checks",
    "tfx_pipeline.model_report",
    # TensorFlow, Beam or TFX imports (which the rest of the tests import anyway); the examples themselves are small
    "gru4rec_tf.model.network",
    "gru4rec_tf.model.losses",
    "gru4rec_tf.model.fused_losses",
    "gru4rec_tf.train.optimizer",
    "gru4rec_tf.train.distinct_rows",
    "gru4rec_tf.train.sampling",
    "gru4rec_tf.train.row_budget",
    "gru4rec_tf.tune.tuner",
    "gru4rec_tf.evaluation.full_catalogue",
    "gru4rec_tf.export.topk",
    "gru4rec_tf.preprocessing.example_codec",
    "gru4rec_tf.preprocessing.input_files",
    "gru4rec_tf.preprocessing.arrow_read",
    "gru4rec_tf.preprocessing.arrow_sessions",
    "tfx_pipeline.event_split",
    "tfx_pipeline.local_beam",
    "tfx_pipeline.artifacts",
    "gru4rec_tf.commands.option_flags",
    "gru4rec_tf.commands.preprocess",
    "gru4rec_tf.commands.beam_command",
    "gru4rec_tf.option_fields",
    "gru4rec_tf.commands.recommend",
    "gru4rec_tf.batch.options",
    "gru4rec_tf.batch.model_handler",
    "gru4rec_tf.batch.writers",
    "gru4rec_tf.batch.pipeline",
    "serving.sessions.api",
    "serving.sessions.store",
    "serving.sessions.metrics",
    "serving.sessions.replay",
)

NOT_RUN = {
    "gru4rec_tf.data.tfrecord_io": "illustration: reads the session tensors that `gru4rec preprocess` wrote to out/",
    "gru4rec_tf.model.model_dir": "illustration: loads a saved model directory",
    "gru4rec_tf.export.saved_model": "illustration: exports a trained model to /models/gru4rec/<version>",
    "gru4rec_tf.export.serving_module": "illustration: the serving module of a trained model and its vocabulary",
    "gru4rec_tf.export.warmup": "illustration: warm-up requests of a trained model's serving module",
    "gru4rec_tf.train.routine": "illustration: a whole training run with validation and a saved model",
    "gru4rec_tf.train.trainer": "illustration: fits a model to training data",
    "gru4rec_tf.train.device_steps": "illustration: needs a Trainer's parts (step math, row budget, schedule)",
    "gru4rec_tf.train.eager_steps": "illustration: needs a Trainer's parts (step math, schedule, samples)",
    "gru4rec_tf.train.host_steps": "illustration: needs a Trainer's parts (step math, row budget, schedule)",
    "gru4rec_tf.train.step_math": "illustration: needs a Trainer's parts (model, sampler, optimizer, step inputs)",
    "serving.client": "illustration: talks to a running TF Serving (or development) server",
    "serving.dev_server": "illustration: serves an exported model directory",
    "serving.sessions.recommender": "illustration: talks to a running TF Serving (or development) server",
    "serving.sessions.http_service": "illustration: runs the session service over a running model server",
}


def _modules_with_examples() -> set:
    prompt = re.compile(r"^\s*>>>", re.MULTILINE)
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if prompt.search(path.read_text(encoding="utf-8")):
                found.add(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"))
    return found


@pytest.mark.parametrize("module_name", DOCTEST_MODULES)
def test_docstring_examples_run(module_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write a file (vocab.tsv, data/synthetic/...) write it here
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=OPTION_FLAGS, report=True)
    assert result.attempted > 0, f"{module_name} has no docstring example: take it out of DOCTEST_MODULES"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {module_name} fail (see above)"


def test_every_module_with_examples_is_listed():
    with_examples = _modules_with_examples()
    unlisted = sorted(with_examples - set(DOCTEST_MODULES) - set(NOT_RUN))
    assert not unlisted, (f"modules with docstring examples in neither DOCTEST_MODULES nor NOT_RUN (add each to "
                          f"DOCTEST_MODULES, or to NOT_RUN with the reason): {unlisted}")
    stale = sorted((set(DOCTEST_MODULES) | set(NOT_RUN)) - with_examples)
    assert not stale, f"listed modules without a `>>>` line (or without a file): {stale}"
    both = sorted(set(DOCTEST_MODULES) & set(NOT_RUN))
    assert not both, f"modules in both DOCTEST_MODULES and NOT_RUN: {both}"
    assert len(set(DOCTEST_MODULES)) == len(DOCTEST_MODULES), "a module is listed twice in DOCTEST_MODULES"
