"""Headless Chromium for the page tests (Debian's ``chromium`` and ``chromium-driver``,
listed in scripts/system-packages.txt), driven by Selenium with the system chromedriver —
no browser download. :func:`chromium` starts one browser; :func:`screenshot` saves a page
as PNG under a directory and checks it is not blank; with ``CHUNKSYNC_UPDATE_DOCS=1``
it also copies it to ``docs/screenshots/`` (the copies the docs show).
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.helpers.daemons import wait_until

__all__ = ["CHROMEDRIVER", "CHROMIUM", "chromium", "screenshot", "wait_for"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
T = TypeVar("T")


@contextmanager
def chromium(width: int = 1000, height: int = 900) -> Iterator[WebDriver]:
    for path in (CHROMIUM, CHROMEDRIVER):
        assert path.exists(), f"{path} is missing: run ./scripts/setup_system.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(
    driver: WebDriver,
    check: Callable[[WebDriver], T],
    what: str,
    timeout: float = 20,
    what_else: Callable[[], str] | None = None,
) -> T:
    """Poll ``check`` until truthy; on time-out, the error adds ``what_else()`` (what
    the page shows instead)."""
    try:
        return wait_until(lambda: check(driver), timeout, what=what)
    except AssertionError as exc:
        if what_else is None:
            raise
        raise AssertionError(f"{exc}; instead: {what_else()[:2000]}") from None


def _png_rows(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the raw (still filtered) scanlines of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def is_blank(data: bytes) -> bool:
    """True when the picture is one flat colour (or nearly: fewer than 8 distinct bytes
    in its pixel data, filter bytes aside)."""
    width, height, raw = _png_rows(data)
    assert width > 0 and height > 0
    return len(set(raw)) < 8


def screenshot(driver: WebDriver, folder: Path, name: str, **_: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    data = driver.get_screenshot_as_png()
    assert not is_blank(data), f"screenshot {name} is blank"
    path.write_bytes(data)
    if os.environ.get("CHUNKSYNC_UPDATE_DOCS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / path.name)
    return path
