"""Checks that both install paths of ``scripts/install.sh`` resolve to the tested versions (issue 15 §5).

Machines of this kind run Debian 12 (glibc 2.36, Python 3.11) or Debian 13 (glibc 2.41, Python 3.13). For each,
this asks pip for a ``--dry-run --report`` resolution of exactly what ``install.sh`` installs there, for that
platform (``manylinux_2_<glibc>_x86_64`` and every older manylinux tag) and Python version, binary wheels only,
and compares every resolved version with ``requirements/tfx-constraints.txt``: they must be equal, except
ml-metadata and tensorflow-data-validation, which may differ where the wheels allow (listed in the output).
Nothing is installed. sdist-only packages (pyfarmhash) cannot be resolved for another platform, so a
metadata-only placeholder wheel with the pinned version stands in for each (it is never installed).

::

    .venv/bin/python scripts/check_install_resolution.py            # both targets; exit 1 on a difference
    .venv/bin/python scripts/check_install_resolution.py --target debian13 --python 3.12

Needs the package index (PyPI); about a minute per target.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQ = REPO / "requirements"
TARGETS = {"debian12": {"glibc": 36, "python": "3.11"}, "debian13": {"glibc": 41, "python": "3.13"}}
SDIST_ONLY = ("pyfarmhash",)
MAY_DIFFER = ("ml-metadata", "tensorflow-data-validation")
INSTALLER_TOOLS = ("pip", "setuptools", "wheel")  # install.sh's first step: pip<27 setuptools<81 wheel


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+?)(\[[^\]]*\])?==([^\s;]+)", line)
        if match:
            out[canonical(match.group(1))] = match.group(3)
    return out


def placeholder_wheel(directory: Path, name: str, version: str) -> None:
    """A metadata-only ``py3-none-any`` wheel of ``name==version`` (stands in for an sdist-only package)."""
    dist = f"{name.replace('-', '_')}-{version}"
    files = {f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: check_install_resolution\n"
                                        "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}.dist-info/RECORD,,")
    with zipfile.ZipFile(directory / f"{dist}-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
        wheel.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")


def install_steps(glibc: int) -> list:
    """What install.sh installs on this glibc: ``(requirement files, constraints?, no_deps)`` per pip call."""
    steps = []
    if glibc >= 39:
        steps.append((["tfx-requirements.txt", "tfx-requirements-glibc239.txt"], True, False))
    else:
        steps.append((["tfx-requirements.txt"], True, False))
        steps.append((["tfx-requirements-nodeps.txt"], False, True))
    steps.append((["dev.txt"], True, False))
    return steps


def resolve(target: str, glibc: int, python: str, workdir: Path) -> dict:
    """name -> version of everything install.sh would install on ``target``."""
    constraints = pins(REQ / "tfx-constraints.txt")
    wheels = workdir / f"placeholders-{target}"
    wheels.mkdir(exist_ok=True)
    for name in SDIST_ONLY:
        placeholder_wheel(wheels, name, constraints[name])
    for _ in range(10):  # a constrained package with no wheel at all gets a placeholder too, then pip tries again
        try:
            return _resolve(target, glibc, python, workdir, wheels)
        except RuntimeError as err:
            missing = re.findall(r"no matching distributions available for your environment:\n((?:\s+\S+\n?)+)",
                                 str(err))
            names = [canonical(n) for block in missing for n in block.split()]
            new = [n for n in names if n in constraints and n not in PLACEHOLDERS]
            if not new:
                raise
            for name in new:
                PLACEHOLDERS.append(name)
                placeholder_wheel(wheels, name, constraints[name])
    raise RuntimeError(f"{target}: too many packages without a wheel")


PLACEHOLDERS = list(SDIST_ONLY)


def _resolve(target: str, glibc: int, python: str, workdir: Path, wheels: Path) -> dict:
    platforms = [f"manylinux_2_{m}_x86_64" for m in range(glibc, 16, -1)] + ["manylinux2014_x86_64"]
    resolved = {}
    for i, (files, constrained, no_deps) in enumerate(install_steps(glibc)):
        report = workdir / f"{target}-{i}.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                   "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                   "--find-links", str(wheels), "--report", str(report)]
        command += [arg for p in platforms for arg in ("--platform", p)]
        for name in files:
            command += ["-r", str(REQ / name)]
        if constrained:
            command += ["-c", str(REQ / "tfx-constraints.txt")]
        if no_deps:
            command.append("--no-deps")
        result = subprocess.run(command, capture_output=True, text=True, check=False,
                                env={**os.environ, "PIP_CONSTRAINT": ""})
        if result.returncode != 0:
            noise = ("Collecting", "  Using", "Looking", "Would")
            errors = "\n".join(line for line in (result.stdout + result.stderr).splitlines()
                               if "is ignored" not in line and not line.startswith(noise))
            raise RuntimeError(f"{target}: pip cannot resolve {' '.join(files)} for Python {python}, glibc 2.{glibc}:"
                               f"\n{errors[-3000:]}")
        for item in json.loads(report.read_text(encoding="utf-8"))["install"]:
            resolved[canonical(item["metadata"]["name"])] = item["metadata"]["version"]
    return resolved


def compare(resolved: dict, tested: dict) -> tuple:
    """``(differences, allowed differences)``: lines ``name: resolved X, tested Y``."""
    differences, allowed = [], []
    for name in sorted(set(resolved) - set(INSTALLER_TOOLS)):
        want = tested.get(name)
        if want is None or want != resolved[name]:
            line = f"{name}: resolved {resolved[name]}, tested {want or '(not in the tested set)'}"
            (allowed if name in MAY_DIFFER else differences).append(line)
    return differences, allowed


def tested_set() -> dict:
    """The Debian 12 set: the constraints, the --no-deps pins (ml-metadata, TFDV, tfx...) and the dev tools."""
    return {**pins(REQ / "tfx-constraints.txt"), **pins(REQ / "tfx-requirements-nodeps.txt"),
            **pins(REQ / "dev.txt")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=sorted(TARGETS), action="append")
    parser.add_argument("--python", help="override the target's Python version")
    args = parser.parse_args()
    tested = tested_set()
    failed = False
    with tempfile.TemporaryDirectory(prefix="gru4rec-resolve-") as tmp:
        for target in args.target or sorted(TARGETS):
            spec = TARGETS[target]
            python = args.python or spec["python"]
            try:
                resolved = resolve(target, spec["glibc"], python, Path(tmp))
            except RuntimeError as err:
                print(f"{target}: FAIL: {err}")
                failed = True
                continue
            differences, allowed = compare(resolved, tested)
            status = "FAIL" if differences else "ok"
            print(f"{target} (glibc 2.{spec['glibc']}, Python {python}): {status}: {len(resolved)} packages resolved"
                  + (f"; allowed differences: {'; '.join(allowed)}" if allowed else "")
                  + f"; sdist-only, taken at their pinned version: {', '.join(sorted(set(PLACEHOLDERS)))}")
            for line in differences:
                print(f"  {line}")
            failed |= bool(differences)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
