"""The ``gru4rec`` command: ``gru4rec <subcommand> [flags]`` (also ``python -m gru4rec_tf``).

Subcommands are modules exposing ``define_flags()`` and ``main(argv)`` (absl), imported only when called, so the
library never imports TFX, Beam or gRPC for a command that does not need them. The library's own subcommands are
listed here; packages built on it (``tfx_pipeline``, ``serving``) add theirs through the ``gru4rec.commands`` entry
point group of their distribution, which keeps the dependency pointing from them to the library.
"""
import ast
import importlib
import importlib.metadata
import importlib.util
import sys

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)

LIBRARY_COMMANDS = {
    "train": ("gru4rec_tf.commands.train", "train a model on a session log, optionally evaluate and save it"),
    "evaluate": ("gru4rec_tf.commands.evaluate", "evaluate a saved model on a test log"),
    "generate": ("gru4rec_tf.commands.generate", "write the built-in synthetic session dataset"),
    "export": ("gru4rec_tf.commands.export", "export a saved model as a TF Serving SavedModel version"),
    "tune": ("gru4rec_tf.commands.tune", "hyperparameter search; writes the best parameters for gru4rec train"),
    "preprocess": ("gru4rec_tf.commands.preprocess", "Beam pipeline: raw click log -> session tensors"),
    "recommend": ("gru4rec_tf.commands.recommend", "Beam RunInference: top-k for every session of a log (or item)"),
}


def _commands() -> dict:
    commands = dict(LIBRARY_COMMANDS)
    for entry in importlib.metadata.entry_points(group="gru4rec.commands"):
        commands.setdefault(entry.name, (entry.value, _summary_line(entry.value)))
    return commands


def _summary_line(module_name: str) -> str:
    """First line of a module's docstring, read from its source without importing it (imports can be heavy)."""
    try:
        spec = importlib.util.find_spec(module_name)
        with open(spec.origin, encoding="utf-8") as f:
            docstring = ast.get_docstring(ast.parse(f.read())) or ""
    except (ImportError, AttributeError, OSError, SyntaxError, TypeError, ValueError):
        docstring = ""
    return docstring.strip().splitlines()[0] if docstring.strip() else f"(from {module_name})"


def _usage(commands) -> str:
    lines = ["usage: gru4rec <command> [flags]   (gru4rec <command> --helpfull for its flags)", "", "commands:"]
    lines += [f"  {name:<11} {help_text}" for name, (_, help_text) in sorted(commands.items())]
    return "\n".join(lines)


def run(argv=None) -> None:
    """Console-script entry point."""
    argv = list(sys.argv if argv is None else argv)
    commands = _commands()
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage(commands))
        sys.exit(0 if len(argv) >= 2 else 2)
    name = argv[1]
    if name not in commands:
        print(f"gru4rec: unknown command {name!r}\n\n{_usage(commands)}", file=sys.stderr)
        sys.exit(2)
    try:
        module = importlib.import_module(commands[name][0])
    except ImportError as err:
        print(f"gru4rec: the {name!r} command cannot start, a dependency is missing: {err}\n"
              "(install the project with scripts/install.sh)", file=sys.stderr)
        sys.exit(1)
    module.define_flags()
    from absl import app  # pylint: disable=g-import-not-at-top
    app.run(module.main, argv=[f"gru4rec {name}"] + argv[2:], flags_parser=getattr(module, "flags_parser", None)
            or app.parse_flags_with_usage)


if __name__ == "__main__":
    run()
