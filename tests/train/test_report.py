"""``transferline report``: one self-contained HTML file about finished runs, checked without a
browser (the HTML parses, every inline image decodes and has the expected content), and once in
headless Chromium where it is installed."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from transferline.errors import TransferlineError

from ..conftest import REPO, SENSOR_SMALL, sensor_catalog_at



class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images, self.headings, self.tags, self._open = [], [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._open = tag if tag in ("h1", "h2", "h3") else None

    def handle_data(self, data):
        if self._open:
            self.headings.append((self._open, data.strip()))
            self._open = None


@pytest.fixture(scope="module")
def fused_pair(tmp_path_factory):
    """Two fused three-sensor runs, 0 hp -> 3 hp: without adaptation and with MMD."""
    from transferline.train import load_config, train_loop

    root = tmp_path_factory.mktemp("report")
    catalog = sensor_catalog_at(root)
    runs = []
    for method in ("source_only", "mmd"):
        config = load_config(REPO / "examples" / "configs" / "fusion_cwru.yaml",
                             [f"catalog={catalog.root}", *SENSOR_SMALL, "epochs=3", f"adaptation={method}",
                              f"run_dir={root / method}"])
        train_loop(config)
        runs.append(root / method)
    return runs


def test_a_run_saves_what_the_report_plots(fused_pair):
    with np.load(fused_pair[1] / "evaluation.npz") as npz:
        saved = {k: npz[k] for k in npz.files}
    assert set(saved) == {"source_before", "target_before", "source_after", "target_after", "test_target",
                          "test_predicted"}
    assert saved["source_before"].shape[1] == saved["source_after"].shape[1] == 128  # the fused features
    assert not np.allclose(saved["source_before"], saved["source_after"])  # trained between the two
    assert saved["test_target"].shape == saved["test_predicted"].shape and saved["test_predicted"].dtype.kind == "i"


def test_report_renders_every_plot(fused_pair, tmp_path, cli):
    from PIL import Image

    out = tmp_path / "out" / "report.html"
    code, stdout, err = cli("report", *fused_pair, "-o", out, "--title", "three sensors")
    assert code == 0, err
    assert stdout.strip() == f"report: {out.resolve()}"
    page = _Page()
    page.feed(out.read_text(encoding="utf-8"))
    assert ("h1", "three sensors") in page.headings
    assert [h for level, h in page.headings if level == "h2"] == ["source_only", "mmd"]
    # per run: learning curves, confusion matrix, per-input contributions, feature projection
    assert [h for level, h in page.headings if level == "h3"] == \
        ["learning curves", "test confusion matrix", "per-input contributions", "source and target features"] * 2
    assert len(page.images) == 8 and all(src.startswith("data:image/png;base64,") for src in page.images)
    for src in page.images:
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        image.load()
        assert image.width > 200 and image.height > 150
        assert np.asarray(image.convert("L")).std() > 5  # drawn on, not blank
    assert "<table>" in out.read_text() and "http" not in out.read_text().replace("http-equiv", "")  # no links out


def test_report_of_something_that_is_not_a_run(tmp_path, cli):
    from transferline.train.report import write_report

    (tmp_path / "empty").mkdir()
    with pytest.raises(TransferlineError, match="not a finished run"):
        write_report([tmp_path / "empty"])
    code, _, err = cli("report", tmp_path / "nowhere")
    assert code == 2 and "nowhere: no such run directory" in err


@pytest.mark.integration
def test_report_in_headless_chromium(fused_pair, tmp_path):
    """One screenshot of the report in a real browser (Debian's chromium, where installed)."""
    from PIL import Image

    from transferline.train.report import write_report

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    page = write_report(fused_pair, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
                    page.as_uri()], check=True, timeout=120, capture_output=True)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2000, 1200) and pixels.std() > 10


def test_predictions_are_titled_with_the_runs_own_rmse(monkeypatch):
    """A RUL head can predict below 0; the run scores its predictions clipped there, and the plot says
    that score, not one of its own over the raw points."""
    from transferline.train import report

    titles = []
    monkeypatch.setattr(report, "figure_img", lambda fig: titles.append(fig.axes[0].get_title()))
    target, predicted = np.array([5.0, 10.0]), np.array([-5.0, 10.0])
    report._scatter(target, predicted, rmse=float(np.sqrt(25 / 2)))  # the run's RMSE, -5 clipped to 0
    report._scatter(target, predicted)  # no score of the run's: the points' own
    assert titles == ["test: RMSE 3.54", "test: RMSE 7.07"]
