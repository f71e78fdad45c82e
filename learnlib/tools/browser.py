"""The course as a learner meets it: JupyterLab in headless Chromium runs chapters top to bottom.

`make test-browser` (not part of `make test`) calls this. It starts JupyterLab on 127.0.0.1 with a
random token, opens copies of the chosen notebooks (so the stored ones are never touched) in headless
Chromium driven by Selenium, runs every cell with JupyterLab's own "Run All Cells" command, waits
until the kernel is idle, and then checks what a learner would see: no cell shows an error, the figures
render as images, and where the trainer draws its progress bar, it renders as a widget. One screenshot
per notebook (top, and after scrolling to the last figure) is saved under the output folder.

Needs Debian's `chromium` and `chromium-driver` (`apt-get install chromium chromium-driver`) and the
`browser` extra (selenium). Nothing is downloaded at run time: the driver is /usr/bin/chromedriver,
given explicitly, so Selenium's driver manager never runs.

    python -m learnlib.tools.browser notebooks/00_pytorch_fundamentals.ipynb --out runs/browser
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

# Runs in the page: what the notebook model holds after the run (errors, figures, widgets, running cells).
SUMMARY_JS = """
const panel = window.jupyterapp.shell.currentWidget;
if (!panel || !panel.content || !panel.content.model) { return null; }
const cells = panel.content.model.cells;
let errors = [], code = 0, executed = 0;
for (let i = 0; i < cells.length; i++) {
  const cell = cells.get(i);
  if (cell.type !== 'code') continue;
  code += 1;
  if (cell.executionCount) executed += 1;
  const outputs = cell.outputs.toJSON();
  for (const out of outputs) {
    if (out.output_type === 'error') errors.push({cell: i, ename: out.ename, evalue: String(out.evalue).slice(0, 300)});
  }
}
const node = panel.content.node;
return {
  code_cells: code, executed: executed, errors: errors,
  running: node.querySelectorAll('.jp-InputPrompt').length === 0 ? -1 :
           Array.from(node.querySelectorAll('.jp-InputPrompt')).filter(p => p.textContent.includes('*')).length,
  images: node.querySelectorAll('.jp-OutputArea-output img').length,
  widgets: node.querySelectorAll('.jp-OutputArea-output .widget-hprogress, .jp-OutputArea-output .jupyter-widget-progress, .jp-OutputArea-output .widget-progress').length,
  kernel: panel.sessionContext.session && panel.sessionContext.session.kernel ? panel.sessionContext.session.kernel.status : 'none'
};
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_lab(port: int, token: str, out: Path) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:`port`, rooted at the repository, the app object exposed to the page; its
    workspace and settings live under `out` (a fresh session: no tabs restored, no news prompt)."""
    settings = out / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}\n')
    shutil.rmtree(out / "lab-workspaces", ignore_errors=True)
    log = out / "jupyterlab.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("LEARNLIB_PROGRESS", None)  # a learner's session: progress bars on
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
               "--LabApp.expose_app_in_browser=True", "--ServerApp.allow_root=True",
               f"--LabApp.user_settings_dir={out / 'lab-settings'}", f"--LabApp.workspaces_dir={out / 'lab-workspaces'}"]
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    for _ in range(120):
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited; see {log}") from None
            time.sleep(1)
    process.terminate()
    raise RuntimeError(f"JupyterLab did not answer on port {port} within 2 minutes; see {log}")


def open_browser(width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        raise RuntimeError("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def run_notebook(driver, base: str, token: str, relative: str, timeout: float) -> dict:
    """Open `relative` (a path under the repository) in JupyterLab, run all cells, wait, summarize."""
    driver.get(f"{base}/lab/tree/{relative}?token={token}")
    deadline = time.time() + 120
    summary = None
    while time.time() < deadline:
        try:
            summary = driver.execute_script(SUMMARY_JS)
        except Exception:  # the app is not loaded yet  # noqa: BLE001
            summary = None
        if summary and summary["kernel"] == "idle":
            break
        time.sleep(1)
    if not summary:
        raise RuntimeError(f"{relative}: the notebook did not open in JupyterLab within 2 minutes")
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
    start, done_since = time.time(), None
    while time.time() - start < timeout:
        time.sleep(2)
        summary = driver.execute_script(SUMMARY_JS)
        done = summary["kernel"] == "idle" and summary["running"] == 0 and summary["executed"] > 0
        if summary["errors"]:
            break
        if done:
            done_since = done_since or time.time()
            if time.time() - done_since > 4:  # idle for a few seconds: every queued cell has run
                break
        else:
            done_since = None
    summary["seconds"] = round(time.time() - start, 1)
    summary["finished"] = bool(done_since) and not summary["errors"]
    return summary


def screenshots(driver, out: Path, stem: str) -> list[str]:
    """The notebook's top and the last figure in view, as PNG files under `out`."""
    paths = []
    driver.execute_script("window.jupyterapp.commands.execute('notebook:move-cursor-to-top');")
    time.sleep(1)
    top = out / f"{stem}_top.png"
    driver.save_screenshot(str(top))
    paths.append(str(top))
    driver.execute_script("""
      const imgs = window.jupyterapp.shell.currentWidget.content.node.querySelectorAll('.jp-OutputArea-output img');
      if (imgs.length) imgs[imgs.length - 1].scrollIntoView({block: 'center'});""")
    time.sleep(1)
    last = out / f"{stem}_last_figure.png"
    driver.save_screenshot(str(last))
    paths.append(str(last))
    widget = driver.execute_script("""
      const w = window.jupyterapp.shell.currentWidget.content.node.querySelector(
        '.jp-OutputArea-output .widget-hprogress, .jp-OutputArea-output .jupyter-widget-progress, .jp-OutputArea-output .widget-progress');
      if (w) { w.scrollIntoView({block: 'center'}); return true; } return false;""")
    if widget:
        time.sleep(1)
        bar = out / f"{stem}_progress_widget.png"
        driver.save_screenshot(str(bar))
        paths.append(str(bar))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", help="notebooks to run (paths in the repository)")
    parser.add_argument("--out", default="runs/browser", help="folder for the copies, screenshots and report")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per notebook")
    parser.add_argument("--expect-widgets", nargs="*", default=[],
                        help="notebooks (file names) that must show at least one progress widget")
    args = parser.parse_args(argv)
    out = (ROOT / args.out).resolve()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    token, port = secrets.token_hex(16), free_port()
    lab = start_lab(port, token, out)
    report, failed = {}, False
    try:
        driver = open_browser()
        try:
            for notebook in args.notebooks:
                source = (ROOT / notebook).resolve()
                copy = work / source.name
                shutil.copyfile(source, copy)  # the stored notebook is never run or saved by the UI
                summary = run_notebook(driver, f"http://127.0.0.1:{port}", token,
                                       copy.relative_to(ROOT).as_posix(), args.timeout)
                summary["screenshots"] = [str(Path(p).relative_to(ROOT)) for p in screenshots(driver, out, source.stem)]
                problems = [f"{len(summary['errors'])} cell(s) show an error"] if summary["errors"] else []
                if not summary["finished"]:
                    problems.append("did not finish")
                if summary["images"] == 0:
                    problems.append("no figure rendered")
                if source.name in args.expect_widgets and summary["widgets"] == 0:
                    problems.append("no progress widget rendered")
                summary["problems"] = problems
                failed |= bool(problems)
                report[notebook] = summary
                print(f"{notebook}: {summary['executed']}/{summary['code_cells']} code cells run in "
                      f"{summary['seconds']} s, {summary['images']} figures, {summary['widgets']} progress widgets, "
                      f"errors {summary['errors'] or 'none'} -> {'; '.join(problems) or 'OK'}", flush=True)
                driver.execute_script("window.jupyterapp.commands.execute('kernelmenu:shutdown');")
        finally:
            driver.quit()
    finally:
        lab.terminate()
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            lab.kill()
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"report and screenshots in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
