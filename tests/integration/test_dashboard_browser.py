"""The local dashboard driven in headless Chromium, as a person would use it.

One server, two devices (A runs ``chunksync daemon`` with its dashboard; B uses the
command line), one browser for the whole module. In order: log in with the link
``chunksync ui`` prints; watch the folder go syncing → idle when B adds a file (live,
without reload); pause, make a conflict, resume, click keep-both and find the disk as
``resolve --keep both`` leaves it; restore an old version of a file from its history;
see the devices. Each page is saved as a screenshot (checked non-blank).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from chunksync.crypto import keyslots
from tests.helpers.browser import chromium, screenshot, wait_for
from tests.helpers.cli_setup import CliWorld
from tests.helpers.daemons import FAST, DaemonProcess, wait_until
from tests.helpers.server import DEFAULT_USER, ServerProcess, create_user

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIG = 3 * 1024 * 1024  # downloaded at 1 MiB/s: the folder stays "syncing" for seconds


@dataclass
class Dash:
    world: CliWorld
    daemon: DaemonProcess
    driver: WebDriver
    shots: Path

    @property
    def a(self) -> Path:
        return self.world.folder("a")

    @property
    def b(self) -> Path:
        return self.world.folder("b")

    def login_url(self) -> str:
        result = self.world.run("a", "ui", str(self.a))
        return result.output.strip().splitlines()[-1]

    def text(self, css: str) -> str:
        """The element's text, "" while htmx swaps it (a stale or missing element)."""
        try:
            return self.driver.find_element(By.CSS_SELECTOR, css).text
        except (StaleElementReferenceException, NoSuchElementException):
            return ""

    def badge(self) -> str:
        return self.text('[data-folder="0"] [data-field="state"]')


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    base = tmp_path_factory.mktemp("dash")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keyslots, "DEFAULT_PARAMS", keyslots.TEST_PARAMS)
        mp.setattr(keyslots, "MIN_PARAMS", keyslots.TEST_PARAMS)
        data = base / "server"
        data.mkdir()
        create_user(data, DEFAULT_USER)
        with ServerProcess(data) as proc:
            world = CliWorld(proc, base)
            world.init("a")
            world.join("b")
            args = (*FAST, "--limit-download", "1024", "--normal-priority")
            with DaemonProcess(world, "a", *args) as daemon, chromium() as driver:
                daemon.wait_ready()
                yield Dash(world, daemon, driver, base / "screenshots")


def test_log_in_with_the_one_time_link(dash: Dash) -> None:
    url = dash.login_url()
    assert url.startswith("http://127.0.0.1:") and "/login?" in url
    dash.driver.get(url)
    wait_for(dash.driver, lambda d: "Folders" in d.title, "the overview page")
    assert dash.text("main h1") == "Folders"
    assert "docs" in dash.text(".card h2")
    wait_for(dash.driver, lambda d: "on" in d.find_element(By.ID, "live").text, "live updates")
    screenshot(dash.driver, dash.shots, "dashboard-overview")
    dash.driver.get(url)  # the same link again: used up
    assert "not valid" in dash.driver.find_element(By.TAG_NAME, "body").text


def test_folder_goes_syncing_then_idle_when_a_file_arrives(dash: Dash) -> None:
    d = dash.driver
    d.get(f"{_base(dash)}/f/0")
    wait_for(d, lambda _: dash.badge() == "idle", "the folder idle")
    d.execute_script(  # remember every state the page shows, without reloading it
        "window.seen = [];"
        'const el = document.querySelector(\'[data-folder="0"] [data-field="state"]\');'
        "new MutationObserver(() => window.seen.push(el.textContent))"
        ".observe(el, {childList: true, characterData: true, subtree: true});"
    )
    (dash.b / "big.bin").write_bytes(os.urandom(BIG))
    dash.world.sync("b")
    wait_for(d, lambda _: dash.badge() == "syncing", "the folder syncing")
    screenshot(d, dash.shots, "dashboard-folder-syncing")
    try:
        wait_for(d, lambda _: dash.badge() == "idle", "the folder idle again", timeout=30)
    except AssertionError:
        proc = dash.daemon.proc
        raise AssertionError(
            f"{dash.badge()} {proc and proc.poll()} {dash.daemon.ask('status')} "
            f"{list((dash.a / '.chunksync').iterdir())} {dash.daemon.log_tail()}"
        ) from None
    seen = d.execute_script("return window.seen")
    assert "syncing" in seen and seen[-1] == "idle"
    assert (dash.a / "big.bin").read_bytes() == (dash.b / "big.bin").read_bytes()
    assert d.execute_script("return performance.getEntriesByType('navigation').length") == 1


def _base(dash: Dash) -> str:
    return json.loads((dash.a / ".chunksync" / "ui.json").read_text())["url"]


def _click(d: WebDriver, css: str) -> None:
    d.find_element(By.CSS_SELECTOR, css).click()


def test_keep_both_on_a_conflict_leaves_both_files(dash: Dash) -> None:
    d = dash.driver
    (dash.b / "notes.txt").write_text("first\n")
    dash.world.sync("b")
    wait_until(lambda: (dash.a / "notes.txt").exists(), what="notes.txt on A")
    d.get(f"{_base(dash)}/f/0")
    _click(d, 'button[value="pause"]')
    wait_for(d, lambda _: dash.badge() == "paused", "the folder paused")
    (dash.a / "notes.txt").write_text("mine\n")
    (dash.b / "notes.txt").write_text("theirs\n")
    dash.world.sync("b")
    _click(d, 'button[value="resume"]')
    wait_for(d, lambda _: d.find_elements(By.CSS_SELECTOR, ".conflict"), "the conflict listed")
    screenshot(d, dash.shots, "dashboard-folder-conflict")
    copy = next(p for p in dash.a.iterdir() if "conflicted copy" in p.name)
    _click(d, '.conflict button[value="both"]')
    wait_for(d, lambda _: "kept both versions" in dash.text("#main"), "resolved")
    assert not d.find_elements(By.CSS_SELECTOR, ".conflict")
    wait_for(d, lambda _: dash.text('[data-field="conflicts"]') == "0", "no conflict counted")
    assert (dash.a / "notes.txt").read_text() == "theirs\n"
    assert copy.read_text() == "mine\n"
    assert dash.world.run("a", "conflicts", str(dash.a)).output.strip().startswith("no conflicts")
    _click(d, 'button[value="sync-now"]')
    wait_for(d, lambda _: "sync started" in dash.text("#main"), "sync now")
    dash.daemon.wait_at_head()
    dash.world.sync("b")
    assert (dash.b / copy.name).read_text() == "mine\n"


def test_undo_an_automatic_merge_brings_back_one_side(dash: Dash) -> None:
    d = dash.driver
    lines = [f"line {n}\n" for n in range(12)]
    (dash.b / "plan.txt").write_text("".join(lines))
    dash.world.sync("b")
    wait_until(lambda: (dash.a / "plan.txt").exists(), what="plan.txt on A")
    d.get(f"{_base(dash)}/f/0")
    _click(d, 'button[value="pause"]')
    wait_for(d, lambda _: dash.badge() == "paused", "the folder paused")
    mine = "".join(["line 0 edited on A\n", *lines[1:]])
    (dash.a / "plan.txt").write_text(mine)
    (dash.b / "plan.txt").write_text("".join([*lines[:11], "line 11 edited on B\n"]))
    dash.world.sync("b")
    _click(d, 'button[value="resume"]')

    def merge_listed(_: WebDriver) -> bool:
        d.get(f"{_base(dash)}/f/0")  # the journal may be written after the head moved
        return bool(d.find_elements(By.CSS_SELECTOR, ".merge"))

    wait_for(d, merge_listed, "the merge listed", what_else=lambda: dash.text("#merges"))
    merged = (dash.a / "plan.txt").read_text()
    assert "edited on A" in merged and "edited on B" in merged
    assert not [p for p in dash.a.iterdir() if p.name.startswith("plan (conflicted copy")]
    screenshot(d, dash.shots, "dashboard-folder-merge")
    _click(d, '.merge button[value="mine"]')
    wait_for(d, lambda _: "brought back" in dash.text("#main"), "undone")
    assert (dash.a / "plan.txt").read_text() == mine


def test_restore_an_old_version_from_a_files_history(dash: Dash, tmp_path: Path) -> None:
    d = dash.driver
    d.get(f"{_base(dash)}/f/0/history?path=notes.txt")
    rows = d.find_elements(By.CSS_SELECTOR, "table.history tbody tr")
    assert len(rows) >= 2
    screenshot(d, dash.shots, "dashboard-file-history")
    oldest = rows[-1]  # newest first: the last row added notes.txt ("first")
    assert "added" in oldest.text
    target = tmp_path / "restored"
    oldest.find_element(By.CSS_SELECTOR, "input[name=to]").send_keys(str(target))
    oldest.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(
        d,
        lambda _: "restored 1 file" in dash.text("#main"),
        "restored",
        what_else=lambda: dash.text("#main"),
    )
    assert (target / "notes.txt").read_text() == "first\n"
    d.get(f"{_base(dash)}/f/0/history")
    assert len(d.find_elements(By.CSS_SELECTOR, "table.history tbody tr")) >= 3
    screenshot(d, dash.shots, "dashboard-history")


def test_devices_page_lists_this_device_and_the_other(dash: Dash) -> None:
    d = dash.driver
    d.get(f"{_base(dash)}/devices")
    text = dash.text("#main")
    assert "a this device" in text and "\nb " in text
    screenshot(d, dash.shots, "dashboard-devices")
    d.set_window_size(420, 900)  # a narrow window: still readable
    d.get(f"{_base(dash)}/f/0")
    screenshot(d, dash.shots, "dashboard-narrow")
    d.set_window_size(1000, 900)


def test_metrics_on_the_dashboard_port_need_the_token(dash: Dash) -> None:
    doc = json.loads((dash.a / ".chunksync" / "ui.json").read_text())
    request = urllib.request.Request(f"{doc['url']}/metrics")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    refused.value.close()
    request.add_header("Authorization", f"Bearer {doc['token']}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        text = resp.read().decode()
    assert 'chunksync_client_state{folder="docs",state="idle"} 1.0' in text
    for name in ("pending_changes", "conflicts", "failed_items", "bytes_down_total"):
        assert f"chunksync_client_{name}" in text
    assert 'chunksync_client_round_seconds_count{folder="docs"}' in text
    assert "notes.txt" not in text and "big.bin" not in text
