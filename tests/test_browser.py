"""Notebook 07 in a real browser: JupyterLab on localhost, headless Chromium driven by Playwright.

Runs all cells of a fresh copy of the notebook (no saved outputs), changes the class in the
rendered dropdown and checks that the sampler's <img> changes. Needs /usr/bin/chromium (CI:
``apt-get install -y chromium``); Playwright never downloads a browser here.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cgan_course import serve

CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "07_class_sampler.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SERVER_START_S, PAGE_LOAD_S, RUN_ALL_S, REDRAW_S = 60, 60, 120, 20  # generous, bounded

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} not found; install it with `apt-get install -y chromium`"),
]

# JavaScript run in the page; ``window.jupyterapp`` exists because of --LabApp.expose_app_in_browser
NOTEBOOK_STATE_JS = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext || !panel.context || !panel.context.isReady) return null;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const code = panel.content.widgets.filter(c => c.model.type === 'code');
  const errors = code.flatMap(c => c.model.outputs.toJSON().filter(o => o.output_type === 'error')
                                   .map(o => o.ename + ': ' + o.evalue));
  return {kernel: kernel ? kernel.status : 'none', cells: code.length,
          executed: code.filter(c => c.model.executionCount !== null).length, errors: errors};
}"""


def strip_outputs(src: Path, dst: Path) -> None:
    """Copy the notebook without outputs or saved widget state, so every <img> the test sees
    comes from this run's kernel."""
    nb = json.loads(src.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    dst.write_text(json.dumps(nb))


def wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"JupyterLab did not answer {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen, base: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then make sure the process group is gone."""
    try:
        req = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                     headers={"Authorization": f"token {token}"})
        urllib.request.urlopen(req, timeout=5).close()
        proc.wait(timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        pass
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # our own session: the server and the kernels it started
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def run_all_and_wait(page, timeout: float) -> dict:
    deadline = time.monotonic() + PAGE_LOAD_S
    state = None
    while time.monotonic() < deadline:  # notebook open and kernel idle
        state = page.evaluate(NOTEBOOK_STATE_JS)
        if state and state["kernel"] == "idle":
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the notebook did not open with an idle kernel within {PAGE_LOAD_S} s (last state: {state})")
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = page.evaluate(NOTEBOOK_STATE_JS)
        if state["errors"]:
            pytest.fail(f"a cell raised: {state['errors']}")
        if state["executed"] == state["cells"] and state["kernel"] == "idle":
            return state
        time.sleep(0.2)
    pytest.fail(f"run-all did not finish within {timeout} s (last state: {state})")


def test_changing_the_class_in_jupyterlab_redraws_the_sampler(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    strip_outputs(NOTEBOOK, tmp_path / NOTEBOOK.name)
    port, token = serve.free_port(), os.urandom(16).hex()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CGAN_COURSE_MODE": os.environ.get("CGAN_COURSE_MODE", "smoke"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    env.pop("MPLBACKEND", None)  # conftest's Agg would hide the notebook's figures; the kernel picks inline
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.open_browser=False",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
           "--LabApp.expose_app_in_browser=True", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
           f"--LabApp.user_settings_dir={tmp_path / 'settings'}", "--ServerApp.terminals_enabled=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers often run as root; the server only listens on 127.0.0.1
    log = tmp_path / "jupyterlab.log"
    with open(log, "w") as log_file:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for_server(f"{base}/api/status?token={token}", proc, log, SERVER_START_S)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?reset&token={token}", timeout=PAGE_LOAD_S * 1000)
                run_all_and_wait(page, RUN_ALL_S)

                img = page.locator(".cgan-class-sampler img").first
                select = page.locator(".cgan-class-sampler select").first
                img.scroll_into_view_if_needed(timeout=REDRAW_S * 1000)
                before = img.get_attribute("src", timeout=REDRAW_S * 1000)
                assert before and before.startswith("blob:"), f"the sampler shows no image (src={before!r})"
                selected_label = "s => s.options[s.selectedIndex].text"
                current = select.evaluate(selected_label)
                new_class = "ship" if current != "ship" else "cat"
                select.select_option(label=new_class)
                page.wait_for_function("([img, old]) => img.src !== old", arg=[img.element_handle(), before],
                                       timeout=REDRAW_S * 1000)
                assert img.get_attribute("src") != before
                assert select.evaluate(selected_label) == new_class
            finally:
                browser.close()
    finally:
        stop_server(proc, base, token)
