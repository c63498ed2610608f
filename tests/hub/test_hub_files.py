"""A container's files, as a browser shows them: JupyterLab, a real kernel of a hub user, headless Chromium.

An image and an SVG appear as pictures; an HTML file with a script and a tracking image is
shown in its sandboxed frame, where the script does not run and nothing is fetched (a local
HTTP server counts the fetches); a Markdown file's raw HTML does not run either. With
``--trust-html`` the user asked for the page as it is, and its script runs.

Screenshots are left in test-artifacts/hub/<test name>/.
"""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (the test-hub extra)")
from helpers import wait_until
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from .hubserver import Hub, User
from .test_hub_browser import PAGE_TIMEOUT, code_cells, log_in, output_text, type_cell, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.hub]

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


@pytest.fixture
def beacon() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every path asked of it: what a hostile page would phone home to."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            asked.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_files_render_in_jupyterlab_and_no_script_runs_unless_the_user_trusts_the_html(
    alice: User, hub: Hub, browser: Chrome, artifacts: Path, test_image: str, beacon: tuple[str, list[str]]
) -> None:
    url, asked = beacon
    shots = iter(range(1, 100))

    def screenshot(name: str) -> None:
        browser.save_screenshot(str(artifacts / f"{next(shots):02d}-{name}.png"))

    log_in(browser, hub, alice)
    wait_for(browser, '.jp-LauncherCard[data-category="Notebook"]').click()
    wait_for(browser, ".jp-NotebookPanel .jp-CodeCell .cm-content")
    kernel_idle = "//*[contains(@class, 'jp-StatusBar')]//*[contains(text(), 'Idle')]"
    WebDriverWait(browser, PAGE_TIMEOUT).until(expected_conditions.presence_of_element_located((By.XPATH, kernel_idle)))
    title = browser.title

    page = (
        "<h1>Hostile report</h1><p id=status>static</p>"
        "<script>document.getElementById('status').textContent = 'SCRIPT RAN'; top.document.title = 'pwned';</script>"
        f"<img src='{url}/from-html'><link rel=stylesheet href='{url}/from-css'>"
    )
    markdown = f"# Notes\n\n<img src='{url}/from-markdown' onerror=\"top.document.title = 'md-pwned'\">\n"
    first = code_cells(browser)[0]
    type_cell(
        browser,
        first,
        [
            f"%%docker {test_image}",
            f"echo {base64.b64encode(PNG).decode()} | base64 -d > $DOCKYTER_OUT/a-dot.png",
            f"echo {base64.b64encode(page.encode()).decode()} | base64 -d > $DOCKYTER_OUT/b-report.html",
            f"echo {base64.b64encode(markdown.encode()).decode()} | base64 -d > $DOCKYTER_OUT/c-notes.md",
            "echo files written",
        ],
    )
    frame = wait_for(browser, ".jp-OutputArea-output iframe[sandbox]")
    assert wait_until(lambda: "files written" in output_text(first), timeout=PAGE_TIMEOUT)
    images = first.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
    assert any((image.get_attribute("src") or "").startswith("data:image/png") for image in images)
    assert "Notes" in output_text(first)  # the Markdown, rendered
    screenshot("sandboxed")

    assert frame.get_attribute("sandbox") == ""
    browser.switch_to.frame(frame)
    try:
        inside = browser.find_element(By.TAG_NAME, "body").text
    finally:
        browser.switch_to.default_content()
    assert "Hostile report" in inside and "static" in inside and "SCRIPT RAN" not in inside
    assert browser.title == title  # neither the frame's script nor the Markdown's handler reached the page
    assert asked == []  # nothing was fetched: not the image, not the style sheet, not the Markdown's image

    # The user asks for the HTML as it is: its script runs in the page, as with any trusted output.
    second = code_cells(browser)[1]
    type_cell(
        browser,
        second,
        [
            f"%%docker --trust-html {test_image}",
            "echo \"<p id=trusted>static</p><script>document.getElementById('trusted').textContent = 'trusted script ran'</script>\" > $DOCKYTER_OUT/app.html",
        ],
    )
    assert wait_until(lambda: "trusted script ran" in output_text(second), timeout=PAGE_TIMEOUT), output_text(second)
    screenshot("trusted")
