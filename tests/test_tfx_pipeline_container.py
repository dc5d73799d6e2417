"""The component image (``tfx_pipeline/Dockerfile``) against the compiled spec and ``scripts/install.sh`` (issue 13).

There is no Docker engine on these machines, so the image cannot be built here: these tests check what can be
checked from the files. The image must install exactly the packages of ``scripts/install.sh`` (its glibc < 2.39
branch, which is the one a Debian 12 base takes; its test tools excepted), on the Python version the spec was
compiled with, and its entrypoint must be the command that every container task of the spec runs.
"""
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from tfx_pipeline import pipeline, runners, v2_local

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "tfx_pipeline" / "Dockerfile"
INSTALL_SH = REPO / "scripts" / "install.sh"
GPU_EXTRA = "and-cuda"


def dockerfile_instructions():
    """``[(INSTRUCTION, argument text)]`` with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines()
                                           if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", text, re.MULTILINE)]


def normalize(tokens):
    """A pip install command -> comparable form: flags, requirement/constraint files, explicit requirements."""
    flags, files, specs = set(), [], []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("-r", "-c"):
            files.append((token, tokens[i + 1].replace("$REQ", "requirements")))
            i += 2
            continue
        if token.startswith("-"):
            if token not in ("-q", "-e"):  # quiet output; editable (a checkout) vs installed (an image)
                flags.add(token)
        else:
            specs.append(token)
        i += 1
    return {"flags": sorted(flags), "files": files, "specs": specs}


def docker_pip_installs():
    out = []
    for instruction, argument in dockerfile_instructions():
        if instruction == "RUN":
            for part in argument.split("&&"):
                tokens = shlex.split(part.strip())
                if tokens[:2] == ["pip", "install"]:
                    out.append(normalize(tokens[2:]))
    return out


def script_pip_installs(branch: str):
    """The pip installs of install.sh, in order, taking the ``if glibc >= 39`` branch or the ``else`` branch."""
    out, state = [], None
    for line in INSTALL_SH.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("if [") and "glibc_minor" in stripped:
            state = "if"
            continue
        if state and stripped == "else":
            state = "else"
            continue
        if state and stripped == "fi":
            state = None
            continue
        if '"${pip[@]}" install' in stripped and state in (None, branch):
            tokens = shlex.split(stripped.split('"${pip[@]}" install', 1)[1].replace('"$REQ', '"requirements'))
            out.append(normalize(tokens))
    return out


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("container") / "pipeline.json"
    built = pipeline.create_pipeline("gru4rec", "gs://bucket/root", "gs://bucket/root/data", "gs://bucket/serving")
    runners.compile_kubeflow_v2(built, str(path), image="gru4rec-tfx:test")
    return json.loads(path.read_text())


def containers(spec):
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    return {name: e["container"] for name, e in executors.items() if "container" in e}


def test_entrypoint_is_the_command_of_every_container_task(spec):
    entrypoints = [json.loads(arg) for instruction, arg in dockerfile_instructions() if instruction == "ENTRYPOINT"]
    assert len(entrypoints) == 1, "the Dockerfile must declare one ENTRYPOINT (exec form)"
    assert not [1 for instruction, _ in dockerfile_instructions() if instruction == "CMD"]
    for name, container in containers(spec).items():
        assert container["command"] == entrypoints[0], name
        pre_cache = container.get("lifecycle", {}).get("preCacheCheck")
        if pre_cache:  # runs in the same image: its module must be installed there, too
            assert pre_cache["command"][:2] == ["python", "-m"]
            assert importlib.util.find_spec(pre_cache["command"][2]) is not None
    assert importlib.util.find_spec(entrypoints[0][2]) is not None


def test_python_version_agrees_with_the_spec_and_the_installed_environment(spec):
    base = next(arg for instruction, arg in dockerfile_instructions() if instruction == "FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim-bookworm", base)
    assert match, f"unexpected base image {base}"
    version = (int(match.group(1)), int(match.group(2)))
    assert spec["labels"]["tfx_py_version"] == f"{version[0]}-{version[1]}"  # the Python that compiled the spec
    assert sys.version_info[:2] == version  # the environment install.sh made, where the tests run


def test_requirements_are_exactly_those_of_install_sh():
    # bookworm = Debian 12 = glibc 2.36: install.sh's three-step (else) branch applies in the image
    assert re.search(r'if \[ "\$glibc_minor" -ge 39 \]', INSTALL_SH.read_text())
    script = [step for step in script_pip_installs("else")
              if ("-r", "requirements/dev.txt") not in step["files"]]  # test tools: not in the image
    docker = docker_pip_installs()
    gpu = [step for step in docker if any(f"[{GPU_EXTRA}]" in s for s in step["specs"])]
    assert len(gpu) == 1
    assert [step for step in docker if step not in gpu] == script
    # the GPU layer adds CUDA libraries to the *pinned* TensorFlow, under the same constraints file
    requirements = (REPO / "requirements" / "tfx-requirements.txt").read_text()
    pinned = re.search(r"^tensorflow==(\S+)", requirements, re.MULTILINE)
    assert gpu[0]["specs"] == [f"tensorflow[{GPU_EXTRA}]=={pinned.group(1)}"]
    assert gpu[0]["files"] == [("-c", "requirements/tfx-constraints.txt")]


def test_image_holds_the_code_and_environment_the_spec_needs(spec):
    copied = {arg.split()[0].rstrip("/") for instruction, arg in dockerfile_instructions() if instruction == "COPY"}
    ignore = (REPO / "tfx_pipeline" / "Dockerfile.dockerignore").read_text().split()
    for container in containers(spec).values():
        class_path = container["args"][container["args"].index("--executor_class_path") + 1]
        package = class_path.split(".")[0]
        if package != "tfx":
            assert package in copied and f"!{package}/" in ignore, class_path
    assert {"gru4rec_tf", "setup.py", "requirements"} <= copied
    env = dict(re.findall(r"(\w+)=(\S+)", next(arg for i, arg in dockerfile_instructions() if i == "ENV")))
    assert v2_local.CONTAINER_ENV.items() <= env.items()  # what the local driver gives its "containers"
