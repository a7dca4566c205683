"""Headless Chromium for the browser tests: Debian's `chromium` and `chromium-driver` driven
through Selenium, both found on the machine and never downloaded.

Where either is missing a test that asks for the browser is skipped with the reason; with
HEADLAB_BROWSER=1 (CI sets it after installing both) it fails instead, so a browser test can
never pass silently without a browser. Selenium is a declared dev dependency: imported, never
skipped for. The flags keep Chromium off the network: the machines have none, and its
background connections would only be refused.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

BROWSERS = ("chromium", "chromium-browser")
DRIVER = "chromedriver"
REQUIRED = "HEADLAB_BROWSER"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
WAIT_SECONDS = 20.0
T = TypeVar("T")


def browser_binaries() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or why the browser tests cannot run here."""
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    driver = shutil.which(DRIVER)
    if browser is None or driver is None:
        missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if path is None]
        return f"{' and '.join(missing)} not found: apt-get install -y chromium chromium-driver (root)"
    return browser, driver


def require_browser() -> tuple[str, str]:
    """The binaries; skips the test with the reason when they are missing (fails under HEADLAB_BROWSER=1)."""
    found = browser_binaries()
    if isinstance(found, str):
        if os.environ.get(REQUIRED) == "1":
            pytest.fail(f"{REQUIRED}=1 but the browser cannot run: {found}")
        pytest.skip(f"no headless browser: {found}")
    return found


@contextmanager
def headless_chromium(profile_dir: Path, width: int = 1100, height: int = 900) -> Iterator[Any]:
    """A Selenium Chrome driver on a headless Chromium with a fresh profile in `profile_dir`;
    the browser's console is kept (`console_errors`). Quit on exit."""
    browser, driver_path = require_browser()
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager, should it run, stays offline
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    profile_dir.mkdir(parents=True, exist_ok=True)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition: Callable[[], T], what: str, timeout: float = WAIT_SECONDS) -> T:
    """Poll `condition` until it returns something true; its value (fails after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def element(driver: Any, xpath: str, timeout: float = WAIT_SECONDS) -> Any:
    """The first element matching `xpath`, once there is one."""
    return wait_for(lambda: driver.find_elements(By.XPATH, xpath), xpath, timeout)[0]


def click(driver: Any, xpath: str, timeout: float = WAIT_SECONDS) -> None:
    """Click the first element matching `xpath` as a DOM click: a pointer click at its centre can
    be taken by an overlapping element (the report's icons overlap its links while it lays out)."""
    target = element(driver, xpath, timeout)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", target)


def body_text(driver: Any, containing: str = "") -> str:
    """The page's visible text; "" while it does not contain `containing`."""
    text = driver.find_element(By.TAG_NAME, "body").text
    return text if containing in text else ""


def frame_sources(driver: Any, prefix: str = "") -> list[str]:
    """The src of every <iframe> on the page that starts with `prefix`."""
    sources = driver.execute_script("return Array.from(document.querySelectorAll('iframe'), f => f.src);")
    return [src for src in sources if src and src.startswith(prefix)]


def console_errors(driver: Any) -> list[str]:
    """The SEVERE messages of the browser console since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def broken_images(driver: Any) -> list[str]:
    """The src of every <img> on the page (all frames' top document) that did not load."""
    return driver.execute_script(
        "return Array.from(document.images)"
        " .filter(img => img.getAttribute('src') && !(img.complete && img.naturalWidth > 0))"
        " .map(img => img.getAttribute('src').slice(0, 120));"
    )
