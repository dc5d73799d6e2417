"""The ``preprocess`` command line: its flags contract, Beam pass-through flags, stats.json and errors."""
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

import preprocessing_testlib as lib
from gru4rec_tf.commands import beam_command
from gru4rec_tf.commands import preprocess as cli
from gru4rec_tf.data.synthetic import generate_sessions

REPO_ROOT = Path(__file__).resolve().parent.parent


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "gru4rec_tf", "preprocess", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_flags_parser_keeps_unknown_flags_for_beam():
    values = flags.FlagValues()
    cli.define_flags(values)
    cli.define_flags(values)  # idempotent
    rest = cli.flags_parser(["gru4rec preprocess", "--input", "a.csv", "--output=out", "--runner", "DirectRunner",
                             "--dedupe_consecutive", "--direct_num_workers=2", "--test_days=7"], values)
    assert rest == ["gru4rec preprocess", "--runner", "DirectRunner", "--direct_num_workers=2"]
    assert (values.input, values.output, values.dedupe_consecutive, values.test_days) == ("a.csv", "out", True, 7.0)
    assert values.session_gap_s == 3600.0 and values.min_item_support == 5 and values.split_on == "start"


def test_unknown_flags_are_neither_ours_nor_beam_options():
    args = ["--runner=FnApiRunner", "--direct_num_workers=2", "--project", "p", "--min_item_suport=3"]
    assert beam_command.unknown_beam_options(args) == ["min_item_suport"]


@pytest.mark.slow
def test_preprocess_command_writes_session_tensors_and_stats(tmp_path):
    events = generate_sessions(n_items=60, n_sessions=300, mean_length=4.0, seed=5, span_days=5.0)
    path = tmp_path / "clicks.csv.gz"  # compressed text is read by its extension
    path.write_bytes(gzip.compress(events.to_csv(index=False).encode()))
    output = tmp_path / "out"
    output.mkdir()  # an existing empty OUTPUT (as TFX creates it) is filled
    result = _cli("--input", path, "--output", output, "--delimiter", ",", "--session_key", "SessionId",
                  "--item_key", "ItemId", "--time_key", "Time", "--time_format", "unix_s", "--dedupe_consecutive",
                  "--min_item_support", 2, "--min_session_length", 2, "--iterate_filters", "--max_filter_rounds", 3,
                  "--test_days", 1, "--valid_days", 1, "--split_on", "start",
                  *lib.IN_MEMORY[:1], "--direct_running_mode", "in_memory")
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((output / "stats.json").read_text())
    for name in ("train", "test", "train_tr", "valid"):
        assert {"events", "sessions", "items"} <= set(stats[name]), name
        assert stats[name]["sessions"] > 0, name
    assert stats["input"]["rows"] == len(events)
    assert stats["train"]["events"] + stats["test"]["events"] <= len(events)
    assert "rows read: " in result.stdout and "train_tr:" in result.stdout  # the summary
    assert "Beam pipeline options: --runner=FnApiRunner --direct_running_mode in_memory" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clicks.csv.gz", "out"]  # no staging directory left


@pytest.mark.slow
def test_preprocess_command_fails_clearly_on_a_missing_column_or_a_mistyped_flag(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("SessionId,ItemId,Timestamp\n1,2,3\n")
    result = _cli("--input", path, "--output", tmp_path / "out")
    assert result.returncode == 1
    assert "gru4rec preprocess: error:" in result.stderr and "missing column(s) ['Time']" in result.stderr
    result = _cli("--input", path, "--output", tmp_path / "out", "--test_dayz=2")
    assert result.returncode == 1
    assert "unknown flag(s) --test_dayz (did you mean --test_days?)" in result.stderr
    assert not (tmp_path / "out").exists()


def test_flag_defaults_and_help_are_those_of_preprocess_options():
    import dataclasses  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.preprocessing.options import PreprocessOptions  # pylint: disable=g-import-not-at-top
    values = flags.FlagValues()
    cli.define_flags(values)
    for field in dataclasses.fields(PreprocessOptions):
        flag = values[field.name]
        default = None if field.default is dataclasses.MISSING else field.default
        assert (tuple(flag.default) if isinstance(flag.default, list) else flag.default) == default, field.name
        assert flag.help.endswith(field.metadata["help"]), field.name  # enums prefix their values
    values(["gru4rec preprocess", "--input=x.csv", "--output=out"])
    assert PreprocessOptions(**cli.option_flags.option_values(PreprocessOptions, values)) == \
        PreprocessOptions(input="x.csv", output="out")


def test_option_errors_name_the_flag():
    from gru4rec_tf.preprocessing.options import PreprocessOptions  # pylint: disable=g-import-not-at-top
    values = flags.FlagValues()
    cli.define_flags(values)
    with pytest.raises(ValueError, match="^--min_item_support must be an integer >= 1"):
        with cli.option_flags.flag_wording(values):
            PreprocessOptions(input="x.csv", output="out", min_item_support=0)
