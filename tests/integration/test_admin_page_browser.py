"""The server's admin page driven in headless Chromium: an admin logs in, sees health,
users, folders and the verified audit log, and revokes a device, whose next sync is then
refused. A user who is not an admin cannot log in. Screenshots of each page are saved."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from chunksync.crypto import keyslots
from tests.helpers.browser import chromium, screenshot, wait_for
from tests.helpers.cli_setup import CliWorld
from tests.helpers.server import DEFAULT_PASSWORD, DEFAULT_USER, ServerProcess, create_user

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = "root"


@dataclass
class Admin:
    world: CliWorld
    driver: WebDriver
    shots: Path

    def url(self, path: str) -> str:
        return f"{self.world.url}/admin{path}"

    def main(self) -> str:
        """The page's main text (the whole body on a bare error page; "" mid-load)."""
        try:
            found = self.driver.find_elements(By.ID, "main")
            return (found or self.driver.find_elements(By.TAG_NAME, "body"))[0].text
        except (StaleElementReferenceException, IndexError):
            return ""

    def log_in(self, user: str) -> None:
        d = self.driver
        d.get(self.url("/login"))
        d.find_element(By.ID, "user").send_keys(user)
        d.find_element(By.ID, "password").send_keys(DEFAULT_PASSWORD)
        d.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    base = tmp_path_factory.mktemp("admin")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keyslots, "DEFAULT_PARAMS", keyslots.TEST_PARAMS)
        mp.setattr(keyslots, "MIN_PARAMS", keyslots.TEST_PARAMS)
        data = base / "server"
        data.mkdir()
        create_user(data, DEFAULT_USER)
        create_user(data, ADMIN, admin_user=True)
        with ServerProcess(data) as proc, chromium() as driver:
            world = CliWorld(proc, base)
            world.init("a")
            (world.folder("a") / "report.txt").write_text("quarterly\n")
            world.sync("a")
            world.join("b")
            yield Admin(world, driver, base / "screenshots")


def test_pages_need_an_admin_login(admin: Admin) -> None:
    d = admin.driver
    d.get(admin.url("/"))
    assert "not logged in" in d.find_element(By.TAG_NAME, "body").text
    admin.log_in(DEFAULT_USER)  # a user, not an admin
    wait_for(d, lambda _: "not an admin" in admin.main(), "the refusal", what_else=admin.main)
    screenshot(d, admin.shots, "admin-login")


def test_admin_sees_health_users_folders_and_the_verified_audit_log(admin: Admin) -> None:
    d = admin.driver
    admin.log_in(ADMIN)
    wait_for(d, lambda _: "Health" in d.title, "the health page")
    assert "verified" in admin.main()
    screenshot(d, admin.shots, "admin-health")
    d.get(admin.url("/users"))
    assert DEFAULT_USER in admin.main() and ADMIN in admin.main()
    screenshot(d, admin.shots, "admin-users")
    d.get(admin.url("/folders"))
    text = admin.main()
    assert "docs" in text and f"{DEFAULT_USER} (owner)" in text and "objects" in text
    screenshot(d, admin.shots, "admin-folders")
    d.get(admin.url("/audit"))
    assert "Chain verified" in d.find_element(By.ID, "audit-status").text
    assert "admin.web.login" in admin.main()
    screenshot(d, admin.shots, "admin-audit")


def test_revoking_a_device_refuses_its_next_sync(admin: Admin) -> None:
    d = admin.driver
    d.get(admin.url("/devices"))
    screenshot(d, admin.shots, "admin-devices")
    d.find_element(By.CSS_SELECTOR, 'tr[data-device="b"] button[type=submit]').click()
    wait_for(d, lambda _: "revoked device" in admin.main(), "the revocation")
    row = d.find_element(By.CSS_SELECTOR, 'tr[data-device="b"]')
    assert "revoked" in row.text
    refused = admin.world.run("b", "sync", str(admin.world.folder("b")), ok=False)
    assert refused.exit_code == 11, refused.output
    assert admin.world.sync("a").exit_code == 0  # the other device goes on
