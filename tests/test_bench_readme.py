"""bench/README.md and README.md against the tree: every benchmark script and results file is described, every
path they cite exists (no TensorFlow; reads files only).

Example::

    .venv/bin/python -m pytest -q tests/test_bench_readme.py
"""
import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"


def _text(path: pathlib.Path) -> str:
    return path.read_text(encoding="utf-8")


def _scripts_table_rows() -> list[str]:
    """The rows of bench/README.md's scripts table (between '## Scripts' and the next '## ')."""
    text = _text(BENCH / "README.md")
    section = text.split("## Scripts", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_every_bench_script_has_a_row_of_the_scripts_table():
    rows = _scripts_table_rows()
    named = {name for row in rows for name in re.findall(r"`([a-z_0-9]+\.py)`", row.split("|")[1])}
    scripts = {path.name for path in BENCH.glob("*.py")}
    assert scripts - named == set(), "bench/README.md's scripts table lacks a row for these scripts"
    assert named - scripts == set(), "bench/README.md's scripts table names scripts that do not exist"


def test_every_results_file_is_described():
    text = _text(BENCH / "README.md")
    section = text.split("## Results files", 1)[1].split("\n## ", 1)[0]
    missing = [path.name for path in sorted(RESULTS.iterdir())
               if path.is_file() and path.name not in section
               and not (path.suffix == ".png" and f"{path.stem}.md` + `.png`" in section)]
    assert missing == [], "bench/README.md's results table does not describe these files"


@pytest.mark.parametrize("doc", ["README.md", "bench/README.md", "tfx_pipeline/README.md", "serving/README.md"])
def test_cited_results_files_exist(doc):
    text = _text(ROOT / doc)
    cited = set(re.findall(r"bench/results/[A-Za-z0-9_.-]+\.(?:md|png)", text))
    if doc == "bench/README.md":
        cited |= {"bench/" + p for p in re.findall(r"(?<![/\w])results/[A-Za-z0-9_.-]+\.(?:md|png)", text)}
    missing = sorted(p for p in cited if not (ROOT / p).exists())
    assert missing == [], f"{doc} cites results files that do not exist"


def _names_a_module_or_its_attribute(dotted: str) -> bool:
    """``gru4rec_tf.a.b`` is a module, or ``gru4rec_tf.a`` is one whose source defines ``b`` at top level."""
    parts = dotted.split(".")
    for cut in (len(parts), len(parts) - 1):
        try:
            spec = importlib.util.find_spec(".".join(parts[:cut]))
        except ModuleNotFoundError:  # a parent package is missing
            spec = None
        if spec is None:
            continue
        if cut == len(parts):
            return True
        source = pathlib.Path(spec.origin).read_text(encoding="utf-8")
        attribute = re.escape(parts[-1])
        return re.search(rf"^(?:def|class) {attribute}\b|^{attribute}\s*[:=]", source, re.MULTILINE) is not None
    return False


def test_module_paths_in_readme_exist():
    text = _text(ROOT / "README.md")
    files = set(re.findall(r"gru4rec_tf/[a-z_/]+\.py", text))
    missing = sorted(p for p in files if not (ROOT / p).exists())
    for name in sorted(set(re.findall(r"gru4rec_tf(?:\.[a-z_]+)+", text))):
        if not _names_a_module_or_its_attribute(name):
            missing.append(name)
    assert missing == [], "README.md names modules that do not exist"
