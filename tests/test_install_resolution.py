"""scripts/check_install_resolution.py (issue 15 §5): its offline parts here; the resolution itself needs the package
index and takes minutes per target, so it is marked ``needs_index`` and runs with ``--run-needs-index`` (skipped
otherwise; tests/conftest.py)."""
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "check_install_resolution.py"


def load():
    spec = importlib.util.spec_from_file_location("check_install_resolution", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_paths_share_one_constraints_file():
    script = (REPO / "scripts" / "install.sh").read_text(encoding="utf-8")
    glibc239 = script.split('if [ "$glibc_minor" -ge 39 ]; then', 1)[1].split("else", 1)[0]
    assert '-c "$REQ/tfx-constraints.txt"' in glibc239 and "tfx-requirements-glibc239.txt" in glibc239
    check = load()
    pinned = check.pins(REPO / "requirements" / "tfx-requirements-glibc239.txt")
    assert set(pinned) == {"tfx", "ml-pipelines-sdk", "ml-metadata", "tensorflow-data-validation"}
    nodeps = check.pins(REPO / "requirements" / "tfx-requirements-nodeps.txt")
    assert pinned["tfx"] == nodeps["tfx"] and pinned["ml-pipelines-sdk"] == nodeps["ml-pipelines-sdk"]
    constraints = check.pins(REPO / "requirements" / "tfx-constraints.txt")
    for name, version in check.pins(REPO / "requirements" / "dev.txt").items():
        assert constraints.get(name) in (None, version), name


def test_compare_allows_only_ml_metadata_and_tfdv(tmp_path):
    check = load()
    tested = {"tensorflow": "2.21.0", "ml-metadata": "1.17.1", "numpy": "2.4.6"}
    differences, allowed = check.compare(
        {"tensorflow": "2.21.0", "ml-metadata": "1.21.0", "numpy": "2.4.7", "setuptools": "84"}, tested)
    assert differences == ["numpy: resolved 2.4.7, tested 2.4.6"]
    assert allowed == ["ml-metadata: resolved 1.21.0, tested 1.17.1"]
    check.placeholder_wheel(tmp_path, "pyfarmhash", "0.3.2")
    (wheel,) = tmp_path.iterdir()
    assert wheel.name == "pyfarmhash-0.3.2-py3-none-any.whl"
    assert "Version: 0.3.2" in zipfile.ZipFile(wheel).read("pyfarmhash-0.3.2.dist-info/METADATA").decode()


@pytest.mark.slow
@pytest.mark.needs_index
def test_both_install_paths_resolve_to_the_tested_versions():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=1800,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "debian12 (glibc 2.36, Python 3.11): ok" in result.stdout
    assert "debian13 (glibc 2.41, Python 3.13): ok" in result.stdout
