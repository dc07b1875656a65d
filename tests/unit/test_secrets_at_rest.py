"""Folder keys live in the per-user secret store, never in the synced folder; an old
folder's ``DIR/.chunksync/key`` is moved out when the folder is opened, surviving a
crash at every step (issue 19)."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import keyring
import pytest

from chunksync import folder_key
from chunksync.config import (
    Credential,
    FolderConfig,
    FolderPaths,
    load_credential,
    remove_credential,
    save_credential,
)
from chunksync.errors import ConfigError
from chunksync.folder import create_folder_state, remove_folder_state
from chunksync.keystore import secret_store

pytestmark = pytest.mark.unit

KEY = bytes(range(32))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHUNKSYNC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHUNKSYNC_SECRET_STORE", "file")
    return tmp_path / "home"


def _config() -> FolderConfig:
    return FolderConfig(folder="docs", server="http://127.0.0.1:1", device_name="d", user="u")


def _legacy_folder(root: Path, *, key_ref: str = "") -> FolderPaths:
    """A folder as older versions left it: the key inside, no key_ref."""
    paths = FolderPaths(root)
    paths.state.mkdir(parents=True, mode=0o700)
    config = _config()
    config.key_ref = key_ref
    config.save(paths)
    paths.key.write_bytes(KEY)
    os.chmod(paths.key, 0o600)
    return paths


def _stored_files(home: Path) -> list[Path]:
    return sorted((home / "secrets").iterdir()) if (home / "secrets").exists() else []


def test_a_new_folder_keeps_its_key_outside(home: Path, tmp_path: Path) -> None:
    paths = create_folder_state(tmp_path / "f", _config(), KEY)
    assert not paths.key.exists()
    assert not any(p.name == "key" for p in paths.root.rglob("*"))
    (stored,) = _stored_files(home)
    assert stored.stat().st_mode & 0o777 == 0o600
    assert (home / "secrets").stat().st_mode & 0o777 == 0o700
    assert paths.root not in stored.parents
    assert folder_key.load(paths) == KEY
    remove_folder_state(paths)
    assert _stored_files(home) == []


def test_an_old_folder_is_migrated_and_says_so(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = _legacy_folder(tmp_path / "f")
    with caplog.at_level(logging.WARNING):
        assert folder_key.load(paths) == KEY
    assert not paths.key.exists()  # the key file is outside the folder after migration
    (stored,) = _stored_files(home)
    assert base64.b64decode(stored.read_text()) == KEY
    assert FolderConfig.load(paths).key_ref
    assert any("moved the folder key" in r.getMessage() for r in caplog.records)
    assert all(KEY.hex() not in r.getMessage() for r in caplog.records)
    assert folder_key.load(paths) == KEY  # and later opens read the new place


def test_a_migration_cut_after_choosing_the_ref_resumes(home: Path, tmp_path: Path) -> None:
    paths = _legacy_folder(tmp_path / "f", key_ref="ab" * 16)  # crashed before the store
    assert folder_key.load(paths) == KEY
    assert not paths.key.exists()
    assert FolderConfig.load(paths).key_ref == "ab" * 16
    assert secret_store().get("folder-key/" + "ab" * 16) is not None


def test_a_migration_cut_before_removing_the_old_file_finishes(home: Path, tmp_path: Path) -> None:
    paths = _legacy_folder(tmp_path / "f", key_ref="cd" * 16)
    secret_store().set("folder-key/" + "cd" * 16, base64.b64encode(KEY).decode())
    assert folder_key.load(paths) == KEY
    assert not paths.key.exists()


def test_an_unwritable_store_keeps_reading_the_old_place(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = _legacy_folder(tmp_path / "f")
    home.mkdir()
    (home / "secrets").write_text("not a directory")  # the store cannot be written
    with caplog.at_level(logging.WARNING):
        assert folder_key.load(paths) == KEY
    assert paths.key.read_bytes() == KEY
    assert any("stays in" in r.getMessage() for r in caplog.records)


def test_a_missing_key_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    paths = create_folder_state(tmp_path / "f", _config(), KEY)
    for stored in _stored_files(home):
        stored.unlink()
    with pytest.raises(ConfigError, match="key of .* is missing"):
        folder_key.load(paths)


def test_a_damaged_stored_key_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    paths = create_folder_state(tmp_path / "f", _config(), KEY)
    (stored,) = _stored_files(home)
    stored.write_text("not base64!")
    with pytest.raises(ConfigError, match="damaged"):
        folder_key.load(paths)


def test_the_keyring_cannot_be_forced_without_one(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    monkeypatch.setenv("CHUNKSYNC_SECRET_STORE", "keyring")
    with pytest.raises(ConfigError, match="no OS keyring"):
        secret_store()
    monkeypatch.setenv("CHUNKSYNC_SECRET_STORE", "auto")
    assert secret_store().kind == "file"


class Memory:
    """An in-memory keyring that says it is a real one (priority > 0). Not a subclass of
    ``keyring.backend.KeyringBackend``: every subclass is registered as a backend, and
    would become the keyring of every later test."""

    priority = 5

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.items[(service, username)]


def test_a_real_keyring_is_used_when_there_is_one(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = Memory()
    monkeypatch.setattr(keyring, "get_keyring", lambda: ring)
    monkeypatch.setenv("CHUNKSYNC_SECRET_STORE", "auto")
    paths = _legacy_folder(tmp_path / "f")
    assert folder_key.load(paths) == KEY
    assert not paths.key.exists() and _stored_files(home) == []
    ((service, _name), value), *_ = ring.items.items()
    assert service == "chunksync" and base64.b64decode(value) == KEY


def test_with_a_real_keyring_the_token_is_not_in_the_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = Memory()
    monkeypatch.setattr(keyring, "get_keyring", lambda: ring)
    monkeypatch.setenv("CHUNKSYNC_SECRET_STORE", "auto")
    token = "t0ken-" + "x" * 40
    save_credential(Credential("http://127.0.0.1:1", "u", token, "ab" * 8, "d"))
    assert token not in (home / "credentials.json").read_text()
    assert load_credential().token == token
    assert token in ring.items.values()
    remove_credential("http://127.0.0.1:1")
    assert not ring.items
