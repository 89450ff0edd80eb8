"""JupyterLab as a learner opens it, in a real browser. `make lab` starts it (as root too: CI runs as root); headless
Chromium, Debian's package, driven by Playwright, opens lesson 00, runs all its cells, finds no error in any output,
follows the lesson's link to its exercises and opens the exercise notebook. A screenshot of each is kept in
build/browser/. The lesson runs in the cpu profile, offline, as in `make test`.
"""
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import types
import urllib.request

import pytest

from ftlab.environment import require
from ftlab.paths import ROOT

CHROMIUM = "/usr/bin/chromium"  # Debian's package (the Makefile installs it); Playwright downloads no browser
# Headless as root; nothing in the background: on a machine whose network reaches only package registries,
# Chromium's own connections would be refused, many at a time.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
OFFLINE = {"FTLAB_PROFILE": "cpu", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
SHOTS = ROOT / "build" / "browser"
LESSON = "notebooks/00_welcome.ipynb"
EXERCISES = "00_welcome_exercises.ipynb"
# JupyterLab's user settings for the test: every cell in the page (by default it draws only those in view), no
# pop-up asking to fetch news.
SETTINGS = {"notebook-extension/tracker": {"windowingMode": "none"},
            "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in the current tab
# JupyterLab shows a cell's error as text on stderr (its traceback), as it shows warnings: the traceback tells them
# apart.
ERROR = re.compile(r"Traceback \(most recent call last\)|^\w+(Error|Exception): ", re.M)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, method="GET", timeout=5):
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout) as response:
        return response.status


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` with this test's port and token and its own settings; shut down after the tests."""
    settings = tmp_path_factory.mktemp("lab-settings")
    for name, values in SETTINGS.items():
        path = settings / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, **OFFLINE, JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path_factory.mktemp("lab-workspaces")))
    log = open(tmp_path_factory.mktemp("lab-log") / "lab.log", "w+")
    server = subprocess.Popen(["make", "--no-print-directory", "lab",
                               f"LAB_OPTIONS=--no-browser --port={port} --IdentityProvider.token={token}"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            request(f"{url}/api/status?token={token}")
            break
        except OSError:
            log.seek(0)
            assert server.poll() is None and time.monotonic() < deadline, \
                f"make lab did not start:\n{log.read()[-3000:]}"
            time.sleep(1)
    log.seek(0)
    started = log.read()
    served = re.search(r"Serving notebooks from local directory: (.+)", started)
    assert served and served.group(1).strip() == str(ROOT), "make lab must serve the repository's root"
    address = re.search(rf"(http://127\.0\.0\.1:{port}/\S+)", started)  # the address a learner is given
    assert address and f"/lab/tree/{LESSON}?" in address.group(1), f"make lab must open {LESSON}:\n{started[-2000:]}"
    print(f"make lab, run by user id {os.geteuid()}, serves {served.group(1).strip()} and opens {address.group(1)}")
    yield types.SimpleNamespace(url=url, token=token, address=address.group(1).replace("...", token))
    request(f"{url}/api/shutdown?token={token}", method="POST")  # stops the kernels, then the server
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGTERM)


@pytest.fixture(scope="module")
def page():
    require("playwright")  # says how to install it when it is missing
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def kernel_idle(page, timeout):
    page.wait_for_selector(f"{NOTEBOOK} .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout)


def run_all_cells(page, tries=3):
    """Run > Run All Cells, until the first code cell has started ([*]) or run ([1]). A click made while JupyterLab
    is still connecting the notebook to its kernel can be dropped: CI once found every prompt still at [ ]."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    started = f"""() => /\\[(\\*|\\d+)\\]/.test(
        document.querySelector('{NOTEBOOK} .jp-CodeCell .jp-InputPrompt')?.textContent ?? '')"""
    for attempt in range(1, tries + 1):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(started, timeout=30_000, polling=500)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")  # close the menu if it stayed open
            if attempt == tries:
                page.screenshot(path=SHOTS / "00_welcome_not_started.png")
                raise AssertionError(f"Run All Cells started no cell in {tries} tries; screenshot "
                                     f"{SHOTS / '00_welcome_not_started.png'}") from None


def test_lesson_00_runs_all_its_cells_without_an_error(lab, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    page.goto(lab.address)  # the address make lab printed
    kernel_idle(page, timeout=120_000)
    run_all_cells(page)
    # Done when no cell waits or runs ([*]) and the kernel is idle.
    page.wait_for_function(f"""() => [...document.querySelectorAll('{NOTEBOOK} .jp-InputPrompt')]
                                       .every(p => !p.textContent.includes('*'))""", timeout=600_000, polling=1000)
    kernel_idle(page, timeout=60_000)
    prompts = page.locator(f"{NOTEBOOK} .jp-CodeCell .jp-InputPrompt").all_inner_texts()
    stderr = page.locator(f"{NOTEBOOK} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    page.screenshot(path=SHOTS / "00_welcome.png")
    errors = [text[:2000] for text in stderr.all_inner_texts() if ERROR.search(text)]
    assert not errors, f"a cell of {LESSON} shows an error:\n" + "\n---\n".join(errors)
    assert prompts and all(re.search(r"\[\d+\]", p) for p in prompts), f"cells that did not run: {prompts}"
    print(f"{LESSON}: {len(prompts)} code cells ran in JupyterLab without an error "
          f"({time.perf_counter() - started:.0f} s); screenshot {SHOTS / '00_welcome.png'}")


def test_the_lessons_exercise_link_opens_the_exercise_notebook(lab, page):
    page.locator(f"{NOTEBOOK} .jp-RenderedMarkdown a", has_text=EXERCISES).first.click()
    tab = page.locator(".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel", has_text=EXERCISES)
    tab.wait_for(timeout=60_000)
    page.locator(f"{NOTEBOOK} .jp-RenderedMarkdown", has_text="Exercises of the lesson").first.wait_for(timeout=60_000)
    kernel_idle(page, timeout=120_000)
    page.screenshot(path=SHOTS / "00_welcome_exercises.png")
    assert not page.locator(".jp-Dialog").count(), page.locator(".jp-Dialog").all_inner_texts()
    # the lessons' other link out of notebooks/, the glossary, is served too
    assert request(f"{lab.url}/api/contents/docs/glossary.md?content=0&token={lab.token}") == 200
    print(f"the lesson's link opened {EXERCISES}; screenshot {SHOTS / '00_welcome_exercises.png'}")
