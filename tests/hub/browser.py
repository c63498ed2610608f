"""Headless Chromium from Debian's packages, driven by selenium through Debian's chromedriver.

Both paths are given, so that selenium never looks for (or downloads) a browser or driver of
its own. As root, Chromium needs --no-sandbox; without the background-networking flags it
opens connections to the outside that are refused, many at a time, and slows down.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)


def browser_problem() -> str | None:
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (bash .ci/provision installs the test-hub extra)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (bash .ci/provision installs Debian's {package}, as root)"
    return None


def start_browser(profile: Path, environment: dict[str, str], log: Path) -> Chrome:
    """A Chromium with a fresh profile in ``profile``; ``environment`` is added to its (and its driver's)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    service = Service(executable_path=CHROMEDRIVER, env={**os.environ, **environment}, log_output=str(log))
    return webdriver.Chrome(options=options, service=service)
