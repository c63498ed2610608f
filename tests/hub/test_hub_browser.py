"""A hub user in a real browser: log in, open JupyterLab, run a %%docker cell whose output
streams into the page, interrupt it with the toolbar's button, and the container is gone; run
a cell whose image must be pulled (from a local registry) and see one progress line that
ends as the pull's summary. Every container runs on dockyter-server, the hub's service, as the
recipe's site profile sets it up.

Screenshots of each step are left in test-artifacts/hub/<test name>/.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (the test-hub extra)")
from helpers import Registry, docker, wait_until
from selenium.webdriver import ActionChains, Chrome, Keys
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from .hubserver import Hub, User

pytestmark = [pytest.mark.docker, pytest.mark.hub]

PAGE_TIMEOUT = 60  # seconds for a page (JupyterLab is large) or a kernel to come up


def wait_for(driver: Chrome, selector: str, timeout: float = PAGE_TIMEOUT) -> WebElement:
    element: WebElement = WebDriverWait(driver, timeout).until(
        expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, selector))
    )
    return element


def log_in(driver: Chrome, hub: Hub, user: User) -> None:
    driver.get(f"{hub.url}/hub/login?next=/hub/user-redirect/lab")
    wait_for(driver, "#username_input").send_keys(user.name)
    driver.find_element(By.ID, "password_input").send_keys(hub.password)
    driver.find_element(By.ID, "login_submit").click()
    # Then JupyterLab's ?reset: its default workspace (the launcher), not the notebook an earlier
    # test left open (the hub's redirects drop the query, so it is asked for once logged in).
    WebDriverWait(driver, PAGE_TIMEOUT).until(lambda d: f"/user/{user.name}/" in d.current_url)
    driver.get(f"{hub.url}/user/{user.name}/lab?reset")


def type_cell(driver: Chrome, cell: WebElement, lines: list[str]) -> None:
    """Type into the cell's editor as a person would, then run it with Shift+Enter."""
    cell.find_element(By.CSS_SELECTOR, ".cm-content").click()
    ActionChains(driver).send_keys(*("\n".join(lines))).perform()
    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()


def code_cells(driver: Chrome) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell")


def output_text(cell: WebElement) -> str:
    return "\n".join(element.text for element in cell.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))


def test_a_docker_cell_streams_into_jupyterlab_and_its_interrupt_button_stops_the_container(
    alice: User, hub: Hub, browser: Chrome, artifacts: Path, test_image: str, hub_registry: Registry
) -> None:
    shots = iter(range(1, 100))

    def screenshot(name: str) -> None:
        browser.save_screenshot(str(artifacts / f"{next(shots):02d}-{name}.png"))

    log_in(browser, hub, alice)
    wait_for(browser, '.jp-LauncherCard[data-category="Notebook"]').click()
    wait_for(browser, ".jp-NotebookPanel .jp-CodeCell .cm-content")
    kernel_idle = "//*[contains(@class, 'jp-StatusBar')]//*[contains(text(), 'Idle')]"
    WebDriverWait(browser, PAGE_TIMEOUT).until(expected_conditions.presence_of_element_located((By.XPATH, kernel_idle)))
    first = code_cells(browser)[0]
    screenshot("notebook")

    # Output reaches the page while the cell runs, one line a second.
    type_cell(browser, first, [f"%%docker {test_image}", "for i in 1 2 3 4 5 6; do echo tick $i; sleep 1; done"])
    seen: list[tuple[float, str]] = []  # (when, the output then), each time it changed
    deadline = time.monotonic() + PAGE_TIMEOUT
    while time.monotonic() < deadline and "tick 6" not in (seen[-1][1] if seen else ""):
        text = output_text(first)
        if text and (not seen or text != seen[-1][1]):
            seen.append((time.monotonic(), text))
            if "tick 2" in text and "tick 3" not in text:
                screenshot("streaming")
        time.sleep(0.1)
    screenshot("streamed")
    assert seen and "tick 6" in seen[-1][1], seen
    stages = [text.count("tick") for _, text in seen]
    assert len(set(stages)) >= 4, f"the output came in {stages} lines at a time, not as it was printed"
    assert seen[-1][0] - seen[0][0] > 3, "the first and last lines came together"

    # The interrupt button stops the cell's container, not only the kernel's wait for it.
    second = code_cells(browser)[1]
    # A line never run before: its container is made for it, never one prestarted (see server_containers).
    type_cell(browser, second, [f"%%docker -e LINE={secrets.token_hex(4)} {test_image}", "echo waiting; sleep 300"])
    assert wait_until(lambda: "waiting" in output_text(second), timeout=PAGE_TIMEOUT), output_text(second)
    containers = hub.server_containers()
    assert len(containers) == 1, containers
    screenshot("running")
    wait_for(browser, '[data-jp-item-name="interrupt"] jp-button, [data-jp-item-name="interrupt"] button').click()
    try:
        gone = wait_until(lambda: docker("container", "inspect", containers[0]).returncode != 0, timeout=20)
        assert gone, f"{containers[0]} is still there after the interrupt button"
        said = re.compile(r"Dockyter: interrupted: execution \S+ cancelled")
        assert wait_until(lambda: said.search(output_text(second)), timeout=10), output_text(second)
        screenshot("interrupted")
    finally:
        docker("rm", "-f", containers[0])

    # A pull shows one line, updated in place, that ends as its summary.
    image = hub_registry.push_fresh_image(megabytes=40)
    third = code_cells(browser)[2]
    type_cell(browser, third, [f"%%docker {image}", "wc -c < /blob"])
    pull_lines: list[list[str]] = []  # the pull's lines on the page, each time they changed
    deadline = time.monotonic() + PAGE_TIMEOUT
    while time.monotonic() < deadline and "40000000" not in output_text(third):
        lines = [line for line in output_text(third).splitlines() if line.startswith("Dockyter: pull")]
        if lines and (not pull_lines or lines != pull_lines[-1]):
            pull_lines.append(lines)
            if lines[0].startswith("Dockyter: pulling"):
                screenshot("pulling")
        time.sleep(0.05)
    screenshot("pulled")
    final = output_text(third)
    assert "40000000" in final, final
    # Seen while it pulled, then as the summary: always one line, rewritten in place.
    assert all(len(lines) == 1 for lines in pull_lines), pull_lines
    assert pull_lines[0][0].startswith(f"Dockyter: pulling {image}"), pull_lines
    (summary,) = [line for line in final.splitlines() if line.startswith("Dockyter: pull")]
    assert summary.startswith(f"Dockyter: pulled {image}: "), final
