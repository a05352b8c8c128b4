"""The MLflow UI, as the README starts it, checked in headless Chromium (Debian's package,
driven by Playwright): a study's parent run lists its trial runs, and comparing the trials
shows units, maxlen and dropout, and the parallel-coordinates plot draws them against
best_val_accuracy. Screenshots go to test-artifacts/ (the README shows the plot's)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from src import sweep
from src.lib import config
from tests.conftest import PROJECT, free_port, wait_until_serving

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
# Flags this machine needs: no sandbox as root, no GPU, no calls to Google's services.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = PROJECT / "test-artifacts"
TIMEOUT_MS = 60_000


def choose(page, label: str, names: list[str]) -> None:
    """Set the compare page's select after `label` ("Parameters:", "Metrics:") to exactly `names`:
    remove the other chips, then type each missing name into the select's search and take it."""
    box = page.locator(
        f"xpath=//div[normalize-space(text())='{label}']/following-sibling::div[contains(@class, 'select')][1]"
    )
    box.wait_for()
    chips = box.locator("[class$='-select-selection-item']")
    for chip in chips.all():
        if chip.inner_text().strip() not in names:
            chip.locator("[class$='-select-selection-item-remove']").click()
    shown = {chip.inner_text().strip() for chip in chips.all()}
    for name in names:
        if name not in shown:
            box.locator("[class$='-select-selector']").click()
            box.locator("input").press_sequentially(name)
            page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    assert sorted(chip.inner_text().strip() for chip in chips.all()) == sorted(names)


@pytest.fixture
def ui_with_a_sweep(sweep_overrides, tmp_path, monkeypatch):
    """`mlflow ui --host 127.0.0.1` (the README's command, on a free port) in a folder whose
    mlflow.db holds a 3-trial sweep; yields the UI's address."""
    monkeypatch.setattr(sweep, "EXPERIMENTS_DIR", tmp_path / "experiments")
    (tmp_path / "experiments").mkdir()
    overrides = sweep_overrides + ["sweep.n_trials=3"]
    sweep.sweep(config.compose(overrides), overrides)
    # The README's command finds mlflow.db in the working directory without flags.
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    port = free_port()
    server = subprocess.Popen(
        ["mlflow", "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    address = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, f"{address}/health")
        yield address
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_ui_lists_the_study_with_its_trials_and_compares_their_params(ui_with_a_sweep):
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), f"{CHROMIUM} missing: install Debian's chromium (tests/install_system_deps.sh)"
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{ui_with_a_sweep}/#/experiments/1/runs")
            # The study's parent run is the only top-level row; its trials are folded under it.
            parent = page.get_by_role("link", name="imdb-lstm", exact=True).last
            parent.wait_for()
            assert page.get_by_role("link", name="trial-0", exact=True).count() == 0
            page.locator("[role=gridcell]", has=parent).locator(
                "button[data-component-id*=runnamecellrenderer]"
            ).click()
            for n in range(3):
                trial = page.get_by_role("link", name=f"trial-{n}", exact=True)
                trial.wait_for()
                row = page.locator("[role=row]", has=trial).first.get_attribute("row-index")
                page.locator(f"[role=row][row-index='{row}'] input.ag-checkbox-input").first.check()
            page.screenshot(path=SCREENSHOTS / "mlflow-ui-study.png")

            page.get_by_role("button", name=re.compile("^Compare")).click()
            page.get_by_text("Comparing 3 Runs").wait_for()
            text = page.inner_text("body")
            for name in ("trial-0", "trial-1", "trial-2", "best_val_accuracy"):
                assert name in text, name
            for param in ("model.units", "data.maxlen", "model.dropout"):
                # A params row: the name, then one value per trial.
                assert re.search(rf"^{re.escape(param)}(\t[^\t\n]+){{3}}$", text, re.M), param
            # The parallel-coordinates plot as a researcher sets it: the swept params against
            # best_val_accuracy, waited for until plotly has drawn every axis.
            choose(page, "Parameters:", ["model.units", "data.maxlen", "model.dropout"])
            choose(page, "Metrics:", ["best_val_accuracy"])
            plot = page.locator(".js-plotly-plot")
            for axis in ("model.units", "data.maxlen", "model.dropout", "best_val_accuracy"):
                plot.get_by_text(axis, exact=True).first.wait_for()
            assert plot.get_by_text("loss", exact=True).count() == 0
            page.screenshot(path=SCREENSHOTS / "mlflow-ui-compare.png", full_page=True)
            page.screenshot(
                path=SCREENSHOTS / "mlflow-ui-parallel-coordinates.png",
                clip={"x": 200, "y": 80, "width": 990, "height": 520},
            )
        finally:
            browser.close()
