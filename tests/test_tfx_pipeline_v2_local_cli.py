"""The command of the local Vertex driver, ``python -m tfx_pipeline.v2_local`` (:mod:`tfx_pipeline.v2_local.cli`)."""
import subprocess
import sys

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from tfx_pipeline import v2_local

FLAGS = ("--spec", "--local_root", "--parameter", "--no_cache", "--synthetic_sessions", "--synthetic_items")


def test_module_command_help_lists_its_flags():
    done = subprocess.run([sys.executable, "-m", "tfx_pipeline.v2_local", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m tfx_pipeline.v2_local ")
    assert all(flag in done.stdout for flag in FLAGS)


def test_module_command_without_its_required_flags_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "tfx_pipeline.v2_local"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2
    assert "the following arguments are required: --spec, --local_root" in done.stderr


def test_defaults_and_repeated_parameters():
    args = v2_local.parse_args(["--spec", "s.json", "--local_root", "/r", "--parameter", "a=1", "--parameter", "b=x=y"])
    assert (args.spec, args.local_root, args.no_cache) == ("s.json", "/r", False)
    assert (args.synthetic_sessions, args.synthetic_items) == (20000, 1000)
    assert v2_local.cli.parse_parameters(args.parameter) == {"a": "1", "b": "x=y"}


def test_malformed_parameter_is_one_error_line(tmp_path, capsys):
    status = v2_local.main(["--spec", str(tmp_path / "spec.json"), "--local_root", str(tmp_path), "--parameter", "x"])
    assert status == 1
    assert capsys.readouterr().err == "v2_local: error: --parameter 'x' must look like NAME=VALUE\n"


def test_unreadable_spec_is_one_error_line(tmp_path, capsys):
    status = v2_local.main(["--spec", str(tmp_path / "missing.json"), "--local_root", str(tmp_path)])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("v2_local: error: ") and "cannot read the spec" in err and err.count("\n") == 1
