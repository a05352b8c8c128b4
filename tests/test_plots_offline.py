"""Plots that draw with no network, as on a cluster: `dvc plots show` fills the project's page
(.dvc/config's plots.html_template, .dvc/plots/offline.html: Vega, Vega-Lite and Vega-Embed inlined)
and the sweep's Optuna plots carry plotly.js. Each page is opened from disk in headless Chromium
(tests/test_mlflow_ui.py's) that resolves no host name and aborts every request that is not for a
local file; a page must draw its charts and send nothing."""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path

import optuna
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

from src import sweep
from tests.conftest import copy_project, dvc
from tests.test_mlflow_ui import CHROMIUM, CHROMIUM_FLAGS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

OFFLINE_FLAGS = ["--host-resolver-rules=MAP * ~NOTFOUND"]
TIMEOUT_MS = 30_000
LOCAL = ("file:", "data:", "blob:", "about:")
MIN_MARK_PIXELS = 200

# The reports the project's dvc.yaml plots (train's history.csv, evaluate's roc.csv and confusion.csv).
REPORTS = {
    "history.csv": "epoch,accuracy,val_accuracy,loss,val_loss\n"
    "0,0.71,0.68,0.58,0.62\n1,0.82,0.76,0.43,0.51\n2,0.88,0.80,0.31,0.45\n",
    "roc.csv": "fpr,tpr,threshold\n0.0,0.0,1.0\n0.1,0.62,0.7\n0.3,0.86,0.5\n1.0,1.0,0.0\n",
    "confusion.csv": "actual,predicted\nneg,neg\nneg,neg\nneg,pos\npos,pos\npos,pos\npos,neg\n",
}

# Per Vega-Embed container: the pixels of its canvas in a saturated colour (the marks: lines,
# cells), not the white background, the grey axes and black labels.
MARK_PIXELS_JS = """() => [...document.querySelectorAll('.vega-embed')].map(embed => {
    const canvas = embed.querySelector('canvas');
    if (!canvas || !canvas.width || !canvas.height) return 0;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let marks = 0;
    for (let i = 0; i < data.length; i += 4) {
        const rgb = [data[i], data[i + 1], data[i + 2]];
        if (data[i + 3] > 0 && Math.max(...rgb) - Math.min(...rgb) > 60) marks++;
    }
    return marks;
})"""


@contextlib.contextmanager
def offline_page():
    """A page in headless Chromium cut off from the network; yields (page, the addresses it
    asked for that are not local, the errors its scripts threw)."""
    assert shutil.which(CHROMIUM), f"{CHROMIUM} missing: install Debian's chromium (tests/install_system_deps.sh)"
    sent: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS + OFFLINE_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("request", lambda request: None if request.url.startswith(LOCAL) else sent.append(request.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.route(re.compile(r"^(?!file:)"), lambda route: route.abort("internetdisconnected"))
            yield page, sent, errors
        finally:
            browser.close()


@pytest.fixture
def plots_repo(tmp_path, monkeypatch):
    """A copy of the project (its .dvc/config and .dvc/plots as committed) whose reports hold
    a few rows, as after train and evaluate."""
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    repo = copy_project(tmp_path / "repo")
    (repo / "reports").mkdir()
    for name, text in REPORTS.items():
        (repo / "reports" / name).write_text(text)
    return repo


def plots_show(repo: Path, out: Path) -> tuple[Path, int]:
    """`dvc plots show --out <out>` as a user runs it; the page and how many plots it holds."""
    dvc(repo, "plots", "show", "--out", str(out))
    page = out / "index.html"
    return page, page.read_text().count("vegaEmbed(")


def test_dvc_plots_show_draws_every_plot_offline(plots_repo, tmp_path):
    page_file, plots = plots_show(plots_repo, tmp_path / "dvc_plots")
    assert plots == 3  # dvc.yaml's training curves, ROC curve and confusion matrix
    assert not re.search(r"<script[^>]*\bsrc\s*=", page_file.read_text())
    with offline_page() as (page, sent, errors):
        page.goto(page_file.as_uri())
        try:
            page.wait_for_function(f"() => ({MARK_PIXELS_JS})().filter(n => n > {MIN_MARK_PIXELS}).length === {plots}")
        except PlaywrightTimeoutError:
            pytest.fail(f"plots not drawn: mark pixels {page.evaluate(MARK_PIXELS_JS)}, errors {errors}, sent {sent}")
        assert page.locator(".vega-embed").count() == plots
        assert errors == []
        assert sent == []


def test_dvc_default_page_stays_blank_offline(plots_repo, tmp_path):
    """The control: without the setting, DVC's own page asks its CDN for Vega, is refused, and
    draws nothing; so the test above passes on the project's page, not on a leaky block."""
    dvc(plots_repo, "config", "--unset", "plots.html_template")
    page_file, plots = plots_show(plots_repo, tmp_path / "dvc_plots")
    assert plots == 3
    with offline_page() as (page, sent, errors):
        page.goto(page_file.as_uri())  # waits for the load event: the scripts have run or failed
        assert sent and all(url.startswith("https://cdn.jsdelivr.net/") for url in sent), sent
        assert page.locator(".vega-embed").count() == 0
        assert errors and all("vegaEmbed is not defined" in error for error in errors), errors


def test_optuna_plots_carry_plotly_js_and_draw_offline(tmp_path):
    from plotly.offline import get_plotlyjs

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        units = trial.suggest_int("units", 4, 8)
        for epoch in range(2):
            trial.report(x * units * (epoch + 1), epoch)
        return x * units

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=4)
    (tmp_path / "plots").mkdir()
    sweep.save_plots(study, tmp_path / "plots")
    pages = sorted((tmp_path / "plots").glob("*.html"))
    assert {"optimization_history", "parallel_coordinate", "intermediate_values"} <= {p.stem for p in pages}
    plotly_js = get_plotlyjs()
    with offline_page() as (page, sent, errors):
        for path in pages:
            html = path.read_text()
            assert plotly_js in html, path.name
            assert not re.search(r"<script[^>]*\bsrc\s*=", html), path.name
            page.goto(path.as_uri())
            page.locator(".js-plotly-plot .main-svg").first.wait_for()
            if path.stem == "optimization_history":
                # One marker per trial, drawn by plotly.js.
                assert page.locator(".js-plotly-plot .scatterlayer .points path").count() >= len(study.trials)
        assert errors == []
        assert sent == []
