"""Unit tests of the pipeline's plain-Python parts: the blessing rule, the options and the CLI's input handling."""
import os

import pytest

from tfx_pipeline import blessing, options


def test_blessing_needs_thresholds_and_no_regression_beyond_the_margin():
    rule = blessing.BlessingOptions(thresholds={"recall@20": 0.3, "mrr@20": 0.1}, regression_margin=0.01)
    good = {"recall@20": 0.40, "mrr@20": 0.15}
    assert blessing.decide(rule, good).blessed
    assert blessing.decide(rule, good, baseline={"recall@20": 0.405, "mrr@20": 0.15}).blessed  # within margin
    worse = blessing.decide(rule, good, baseline={"recall@20": 0.42, "mrr@20": 0.15})
    assert not worse.blessed and worse.failures == ["FAIL: recall@20 0.4000 < baseline 0.4200 - margin 0.0100"]
    low = blessing.decide(rule, {"recall@20": 0.2, "mrr@20": 0.15})
    assert not low.blessed and low.failures == ["FAIL: recall@20 0.2000 < threshold 0.3000"]


@pytest.mark.parametrize("kwargs,message", [
    ({"thresholds": {}}, "at least one metric"),
    ({"thresholds": {"hitrate@20": 0.1}}, "recall@K or mrr@K"),
    ({"thresholds": {"recall@50": 0.1}}, "not one of the cutoffs"),
    ({"thresholds": {"recall@20": 1.5}}, r"in \[0, 1\]"),
    ({"regression_margin": -0.1}, "regression_margin"),
    ({"eval_mode": "optimistic"}, "eval_mode"),
])
def test_bad_blessing_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        blessing.BlessingOptions(**kwargs)


def test_blessing_options_round_trip_and_threshold_parsing():
    rule = blessing.BlessingOptions(cutoffs=(5, 20), thresholds=blessing.parse_thresholds("recall@5=0.2, mrr@20=0.1"))
    assert blessing.BlessingOptions.from_json(rule.to_json()) == rule
    with pytest.raises(ValueError, match="recall@20=0.1"):
        blessing.parse_thresholds("recall@20")


def test_training_options_use_official_names_and_round_trip():
    train = options.TrainingOptions(params="loss=bpr-max,final_act=elu-0.5,layers=32", n_epochs=2, seed=3)
    config = train.to_custom_config()
    assert "layers=32" in config["params"] and "n_epochs=2" in config["params"] and config["seed"] == 3
    again = options.TrainingOptions.from_custom_config(config)
    assert again.gru4rec_params() == train.gru4rec_params()
    with pytest.raises(ValueError, match="loss"):
        options.TrainingOptions(params="loss=hinge")
    with pytest.raises(ValueError, match="unknown option"):
        options.TrainingOptions.from_custom_config({"epochs": 3})


def test_training_options_take_the_library_training_settings_and_keep_their_json_keys():
    from gru4rec_tf.train.options import TrainOptions  # pylint: disable=g-import-not-at-top
    config = options.TrainingOptions().to_custom_config()
    assert set(config) == {"params", "seed", "steps_per_call", "max_k", "valid_days", "early_stopping_metric",
                           "patience", "warm_start", "checkpoint_every_s", "device_sampling"}  # compiled pipelines
    library = TrainOptions()
    assert {name: config[name] for name in options.TRAINER_FIELDS} == {
        name: getattr(library, name) for name in options.TRAINER_FIELDS}
    trained = options.TrainingOptions(seed=3, steps_per_call=8, valid_days=1.0, patience=2,
                                      early_stopping_metric="recall@5").train_options(checkpoint_dir="ckpt")
    assert trained == TrainOptions(seed=3, steps_per_call=8, patience=2, early_stopping_metric="recall@5",
                                   checkpoint_dir="ckpt")
    with pytest.raises(ValueError, match="early_stopping_metric must be recall@K or mrr@K"):
        options.TrainingOptions(early_stopping_metric="ndcg@10")
    with pytest.raises(ValueError, match="steps_per_call must be an integer >= 1"):
        options.TrainingOptions.from_custom_config({"steps_per_call": 0})


@pytest.mark.parametrize("value", [None, True, False])
def test_device_sampling_option_round_trips(value):
    config = options.TrainingOptions(device_sampling=value).to_custom_config()
    assert config["device_sampling"] is value
    assert options.TrainingOptions.from_custom_config(config).device_sampling is value


def test_device_sampling_option_must_be_a_boolean_or_null():
    with pytest.raises(ValueError, match="device_sampling must be true, false or null, got 'yes'"):
        options.TrainingOptions(device_sampling="yes")


def test_ingest_and_session_options_are_validated_by_the_preprocessing_rules():
    opts = options.preprocess_options(options.IngestOptions(delimiter="tab"), options.SessionOptions(test_days=2),
                                      input="x.tsv", output="out")
    assert opts.delimiter == "\t" and opts.test_days == 2.0
    with pytest.raises(ValueError, match="time_format"):
        options.preprocess_options(options.IngestOptions(time_format="days"), options.SessionOptions(),
                                   input="x.tsv", output="out")
    assert options.SessionOptions.from_json(options.SessionOptions(split_on="end").to_json()).split_on == "end"


def test_several_data_files_are_linked_into_one_input_directory(tmp_path):
    from gru4rec_tf.data.event_columns import DataError  # pylint: disable=g-import-not-at-top
    from tfx_pipeline import cli, runners  # pylint: disable=g-import-not-at-top
    layout = runners.LocalLayout.create(str(tmp_path / "work"), "p")
    for name in ("train.tsv", "test.tsv"):
        (tmp_path / name).write_text("SessionId\tItemId\tTime\n", encoding="utf-8")
    assert cli.resolve_data([str(tmp_path / "train.tsv")], layout) == (str(tmp_path), "train.tsv")
    base, pattern = cli.resolve_data([str(tmp_path / "train.tsv"), str(tmp_path / "test.tsv")], layout)
    assert pattern == "*" and sorted(os.listdir(base)) == ["000-train.tsv", "001-test.tsv"]
    assert cli.resolve_data([str(tmp_path / "train.tsv"), str(tmp_path / "test.tsv")], layout)[0] == base
    with pytest.raises(DataError, match="does not exist"):
        cli.resolve_data([str(tmp_path / "missing.tsv")], layout)


def test_tensors_uri_comes_from_the_trainer_file_patterns():
    from tfx_pipeline import session_data  # pylint: disable=g-import-not-at-top
    assert session_data.tensors_uri_from_file_patterns(["/root/SessionTensors/x/7/Split-train/*"]) == \
        "/root/SessionTensors/x/7"
    with pytest.raises(ValueError, match="Split-"):
        session_data.tensors_uri_from_file_patterns(["/root/train/*"])


def test_ingest_and_session_options_take_their_fields_and_defaults_from_preprocess_options():
    import dataclasses  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.preprocessing.options import PreprocessOptions  # pylint: disable=g-import-not-at-top
    library = {f.name: f for f in dataclasses.fields(PreprocessOptions)}
    for cls in (options.IngestOptions, options.SessionOptions):
        for field in dataclasses.fields(cls):
            assert (field.default, field.metadata) == (library[field.name].default, library[field.name].metadata)
    assert options.preprocess_options(options.IngestOptions(), options.SessionOptions(), input="x", output="y") == \
        PreprocessOptions(input="x", output="y")


def test_pipeline_run_flag_defaults_are_the_option_class_defaults():
    import dataclasses  # pylint: disable=g-import-not-at-top
    from absl import flags  # pylint: disable=g-import-not-at-top
    from tfx_pipeline import cli  # pylint: disable=g-import-not-at-top
    values = flags.FlagValues()
    cli.define_flags(values)
    for cls in (options.IngestOptions, options.SessionOptions):
        for field in dataclasses.fields(cls):
            flag = values[field.name]
            assert (tuple(flag.default) if isinstance(flag.default, list) else flag.default) == field.default, \
                field.name
            assert flag.help.endswith(field.metadata["help"]), field.name  # enums prefix their values
