"""The one definition of the training and evaluation options (gru4rec_tf.train.options): defaults, validation, and
the flags of ``gru4rec train``, ``evaluate``, ``tune`` and ``pipeline run`` derived from it."""
import dataclasses

import pytest
from absl import flags

from gru4rec_tf.commands import evaluate as evaluate_command
from gru4rec_tf.commands import option_flags
from gru4rec_tf.commands import train as train_command
from gru4rec_tf.commands import tune as tune_command
from gru4rec_tf.train import options
from gru4rec_tf.train.options import EvalOptions, TrainOptions


def test_defaults_are_the_constants():
    train, evaluation = TrainOptions(), EvalOptions()
    assert (train.seed, train.steps_per_call, train.early_stopping_metric, train.checkpoint_every_s) == (
        42, 256, "mrr@20", 600.0)
    assert train.seed == options.DEFAULT_SEED and train.steps_per_call == options.DEFAULT_STEPS_PER_CALL
    assert train.early_stopping_metric == options.DEFAULT_EARLY_STOPPING_METRIC
    assert train.checkpoint_every_s == options.DEFAULT_CHECKPOINT_EVERY_S
    assert (train.epochs, train.patience, train.device_sampling, train.checkpoint_dir) == (None, None, None, None)
    assert (evaluation.cutoffs, evaluation.eval_mode, evaluation.eval_batch_size) == ((1, 5, 10, 20), "standard", 512)
    assert evaluation.cutoffs == options.DEFAULT_CUTOFFS


def test_every_field_has_a_help_text_and_choices_where_there_are_choices():
    for cls in (TrainOptions, EvalOptions):
        for field in dataclasses.fields(cls):
            assert field.metadata.get("help", "").strip(), f"{cls.__name__}.{field.name} has no help text"
    assert {f.name: f.metadata["choices"] for f in dataclasses.fields(EvalOptions) if "choices" in f.metadata} == {
        "eval_mode": ("standard", "conservative", "median")}


def test_cutoffs_given_as_flag_strings_become_integers():
    assert EvalOptions(cutoffs=("5", " 20")).cutoffs == (5, 20)
    assert EvalOptions(cutoffs=[1, 10]).cutoffs == (1, 10)


@pytest.mark.parametrize("cls,kwargs,message", [
    (TrainOptions, {"epochs": 0}, r"^epochs must be an integer >= 1, got 0$"),
    (TrainOptions, {"seed": -1}, r"^seed must be an integer >= 0, got -1$"),
    (TrainOptions, {"seed": True}, r"^seed must be an integer >= 0, got True$"),
    (TrainOptions, {"steps_per_call": 0}, r"^steps_per_call must be an integer >= 1, got 0$"),
    (TrainOptions, {"device_sampling": "yes"}, r"^device_sampling must be true, false or null, got 'yes'$"),
    (TrainOptions, {"early_stopping_metric": "ndcg@10"}, r"^early_stopping_metric must be recall@K or mrr@K"),
    (TrainOptions, {"early_stopping_metric": "mrr@0"}, r"^early_stopping_metric must be recall@K or mrr@K"),
    (TrainOptions, {"patience": 0}, r"^patience must be >= 1, got 0$"),
    (TrainOptions, {"checkpoint_every_s": -1.0}, r"^checkpoint_every_s must be >= 0, got -1.0$"),
    (TrainOptions, {"checkpoint_every_s": float("nan")}, r"^checkpoint_every_s must be >= 0"),
    (TrainOptions, {"log_every_s": 0}, r"^log_every_s must be > 0, got 0$"),
    (TrainOptions, {"jit_compile": 1}, r"^jit_compile must be true or false"),
    (TrainOptions, {"checkpoint_dir": ""}, r"^checkpoint_dir must be a directory path or None"),
    (TrainOptions, {"tensorboard_dir": 3}, r"^tensorboard_dir must be a directory path or None"),
    (EvalOptions, {"cutoffs": ("1", "x")}, r"^cutoffs must be integers, got 1,x$"),
    (EvalOptions, {"cutoffs": (0, 5)}, r"^cutoffs must be positive integers, got 0,5$"),
    (EvalOptions, {"cutoffs": ()}, r"^cutoffs must be positive integers"),
    (EvalOptions, {"eval_mode": "optimistic"}, r"^eval_mode must be one of \('standard', 'conservative', 'median'\)"),
    (EvalOptions, {"eval_batch_size": 0}, r"^eval_batch_size must be an integer >= 1, got 0$"),
])
def test_bad_values_are_refused_naming_the_field(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_accepted_edge_values():
    assert TrainOptions(checkpoint_every_s=0).checkpoint_every_s == 0  # a checkpoint after every chunk
    assert TrainOptions(log_every_s=float("inf"), device_sampling=False, patience=1).patience == 1
    assert TrainOptions(early_stopping_metric="recall@5").early_stopping_metric == "recall@5"


# ------------------------------------------------------------------------------------------ the commands' flags
def _pipeline_flags(flag_values):
    from tfx_pipeline import cli  # pylint: disable=g-import-not-at-top  (TFX-free at import)
    cli.define_flags(flag_values)
    return {TrainOptions: cli.TRAIN_OPTION_FLAGS, EvalOptions: cli.EVAL_OPTION_FLAGS}


def _train_flags(flag_values):
    train_command.define_flags(flag_values)
    return {TrainOptions: train_command.OPTION_FLAGS, EvalOptions: None}


def _evaluate_flags(flag_values):
    evaluate_command.define_flags(flag_values)
    return {EvalOptions: None}


def _tune_flags(flag_values):
    tune_command.define_flags(flag_values)
    return {TrainOptions: tune_command.TRAIN_OPTION_FLAGS, EvalOptions: tune_command.EVAL_OPTION_FLAGS}


COMMANDS = {
    "train": (_train_flags, ["--train=x.tsv"]),
    "evaluate": (_evaluate_flags, ["--model=m", "--test=x.tsv"]),
    "tune": (_tune_flags, ["--train=x.tsv", "--valid=v.tsv", "--output=out"]),
    "pipeline": (_pipeline_flags, []),
}
# The options each command must expose as flags (the CLI contract): at least these.
EXPECTED = {
    "train": {"epochs", "seed", "steps_per_call", "device_sampling", "early_stopping_metric", "patience",
              "checkpoint_dir", "checkpoint_every_s", "tensorboard_dir", "compile_cache_dir", "cutoffs", "eval_mode",
              "eval_batch_size"},
    "evaluate": {"cutoffs", "eval_mode", "eval_batch_size"},
    "tune": {"seed", "steps_per_call", "eval_mode"},
    "pipeline": {"epochs", "seed", "device_sampling", "early_stopping_metric", "patience", "cutoffs", "eval_mode"},
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_derived_flag_has_the_class_default(command):
    define, required = COMMANDS[command]
    flag_values = flags.FlagValues()
    derived = define(flag_values)
    flag_values([f"gru4rec {command}", *required])  # parsed with no option given
    names = set()
    for cls, fields in derived.items():
        for field in dataclasses.fields(cls):
            if fields is not None and field.name not in fields:
                continue
            names.add(field.name)
            flag = flag_values[field.name]
            assert flag.default == option_flags.flag_default(field), f"--{field.name} of {command}"
            assert flag.value == flag.default
        # the flags' values, read back as the command does, give the class defaults
        assert cls(**option_flags.option_values(cls, flag_values, fields=fields)) == cls()
    assert EXPECTED[command] <= names


@pytest.mark.parametrize("command", ["train", "evaluate", "pipeline"])
def test_derived_flags_carry_the_class_help_texts(command):
    define, _ = COMMANDS[command]
    flag_values = flags.FlagValues()
    for cls, fields in define(flag_values).items():
        for field in dataclasses.fields(cls):
            if fields is None or field.name in fields:
                assert flag_values[field.name].help.endswith(field.metadata["help"])  # enums: "<a|b>: " first


def test_a_flag_value_reaches_the_options_and_a_bad_one_names_the_flag():
    flag_values = flags.FlagValues()
    train_command.define_flags(flag_values)
    flag_values(["gru4rec train", "--train=x.tsv", "--cutoffs=5,20", "--eval_mode=median", "--patience=2",
                 "--nodevice_sampling", "--checkpoint_every_s=30"])
    got = TrainOptions(**option_flags.option_values(TrainOptions, flag_values, fields=train_command.OPTION_FLAGS))
    assert (got.patience, got.device_sampling, got.checkpoint_every_s) == (2, False, 30.0)
    assert EvalOptions(**option_flags.option_values(EvalOptions, flag_values)) == EvalOptions(
        cutoffs=(5, 20), eval_mode="median")
    flag_values["patience"].value = 0
    with pytest.raises(ValueError, match=r"^--patience must be >= 1, got 0$"):
        with option_flags.flag_wording(flag_values):
            TrainOptions(**option_flags.option_values(TrainOptions, flag_values, fields=train_command.OPTION_FLAGS))


def test_option_values_refuses_a_field_the_class_does_not_have():
    with pytest.raises(ValueError, match=r"TrainOptions has no field\(s\) \['cutoffs'\]"):
        option_flags.define_option_flags(TrainOptions, flags.FlagValues(), fields=("seed", "cutoffs"))
