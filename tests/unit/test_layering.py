"""The architecture's dependency rules, checked on the source (like import-linter).

* The server sees only ciphertext: it may import the shared protocol modules of
  ``chunksync`` (wire, errors, objects) and nothing that touches keys or files.
* The client never imports the server.
* The object model imports only the error tree; the sync engine talks to the server
  only through the ``ChunkStore`` protocol, never the HTTP client.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def imports_of(path: Path) -> set[str]:
    """Absolute module names imported by a file (relative imports resolved)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def modules(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize(
    "path", modules("chunksync_server"), ids=lambda p: str(p.relative_to(REPO))
)
def test_server_imports_only_the_shared_protocol(path: Path) -> None:
    # webguard: the web pages' session/CSRF/CSP middleware, which holds no key, no file;
    # logsetup: the one logging setup the daemon and the server share (issue 19);
    # retention: the pure retention-policy rules both sides apply (issue 16)
    allowed = (
        "chunksync.wire",
        "chunksync.errors",
        "chunksync.objects",
        "chunksync.webguard",
        "chunksync.logsetup",
        "chunksync.retention",
    )
    bad = {
        name
        for name in imports_of(path)
        if name.startswith("chunksync.") and not name.startswith(allowed)
    }
    assert not bad, f"{path.name} imports client-side modules: {sorted(bad)}"


@pytest.mark.parametrize("path", modules("chunksync"), ids=lambda p: str(p.relative_to(REPO)))
def test_client_never_imports_the_server(path: Path) -> None:
    assert not {
        n for n in imports_of(path) if n == "chunksync_server" or n.startswith("chunksync_server.")
    }


def test_object_model_imports_only_errors() -> None:
    inside = {n for n in imports_of(REPO / "chunksync" / "objects.py") if n.startswith("chunksync")}
    assert inside <= {"chunksync.errors", "chunksync.errors.IntegrityError"}


@pytest.mark.parametrize("path", modules("chunksync/sync"), ids=lambda p: p.name)
def test_sync_engine_depends_on_the_store_protocol_not_http(path: Path) -> None:
    assert not {n for n in imports_of(path) if n.startswith("chunksync.transport.http")}
