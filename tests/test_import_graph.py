"""The library's import graph (module-level and lazy imports alike): no cycle, parts import only downwards, and nothing
imports the pipeline or serving."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str) -> dict:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, known) -> set:
    """Modules of ``known`` that ``path`` imports anywhere in its body (function-level imports included).

    ``from package import submodule`` depends on the submodule (the package's ``__init__`` runs first, as for any
    import of a submodule, which is not counted); ``from module import name`` depends on the module.
    """
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = {f"{base}.{alias.name}" for alias in node.names}
            found |= names if names <= set(known) else names | {base}
    return {m for m in found if m in known and m != name}


def _cycle(graph: dict):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_library_import_graph_has_no_cycle():
    modules = _modules("gru4rec_tf")
    # the package root only sets TF_USE_LEGACY_KERAS; importing it from a submodule is not a dependency cycle
    graph = {name: _imports(name, path, modules) - {"gru4rec_tf"} for name, path in modules.items()}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_library_never_imports_the_pipeline_or_serving():
    modules = _modules("gru4rec_tf")
    for name, path in modules.items():
        outside = {m for m in _imports(name, path, _modules("tfx_pipeline") | _modules("serving"))}
        assert not outside, f"{name} imports {sorted(outside)}"


# The library's parts, lowest first: a module may import its own part and the parts below it, never one above.
# (``gru4rec_tf`` itself and its top-level modules are the foundation every part may use.)
LAYERS = (
    ("gru4rec_tf", "gru4rec_tf.params", "gru4rec_tf.fileio", "gru4rec_tf.fingerprint", "gru4rec_tf.option_fields"),
    ("gru4rec_tf.data",),
    ("gru4rec_tf.preprocessing", "gru4rec_tf.model"),
    ("gru4rec_tf.evaluation",),
    ("gru4rec_tf.train", "gru4rec_tf.export"),
    ("gru4rec_tf.tune", "gru4rec_tf.batch"),
    ("gru4rec_tf.commands", "gru4rec_tf.__main__"),
)


def _part(module: str) -> str:
    """The part a module belongs to: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _layer(module: str) -> int:
    part = _part(module)
    found = [index for index, layer in enumerate(LAYERS) if part in layer]
    assert found, f"{module}: its part {part} is in no layer of LAYERS; add it where it belongs"
    return found[0]


def test_every_part_has_a_layer_and_the_parts_import_only_downwards():
    modules = _modules("gru4rec_tf")
    upward = []
    for name, path in modules.items():
        for imported in _imports(name, path, modules):
            if _part(imported) != _part(name) and _layer(imported) > _layer(name):
                upward.append(f"{name} -> {imported}")
    assert not upward, f"imports of a higher part: {upward}"


def test_layer_check_sees_an_upward_import(tmp_path):
    """The check above is not vacuous: a data module importing the training routine is caught."""
    path = tmp_path / "event_log.py"
    path.write_text("from gru4rec_tf.train import routine\n", encoding="utf-8")
    modules = _modules("gru4rec_tf")
    imported = _imports("gru4rec_tf.data.event_log", path, modules)
    assert imported == {"gru4rec_tf.train.routine"}
    assert _layer("gru4rec_tf.train.routine") > _layer("gru4rec_tf.data.event_log")
